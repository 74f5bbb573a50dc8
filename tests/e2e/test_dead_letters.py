"""A record HubSpot refuses becomes a dead letter with HubSpot's reason, the rest of its batch
goes through, and a replay after the cause is fixed lands it. Faults (5xx, random 429s) are on
throughout: they cost retries, never records."""

from __future__ import annotations

import pytest
from sqlalchemy import select

import demo
from sync.db import transaction
from sync.models import DeadLetter
from tests.e2e.test_end_to_end import converge, start

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("partial_mode", ["207", "400"])
def test_refused_records_are_dead_lettered_then_replayed(tmp_path, partial_mode):
    run = start(tmp_path, customers=40, orders=60)
    try:
        store = run.sandbox.store_dump()
        refused = [
            c
            for c in store["customers"]
            if (c.get("defaultEmailAddress") or {}).get("emailAddress")
        ][:2]
        emails = [c["defaultEmailAddress"]["emailAddress"].lower() for c in refused]
        run.sandbox.control(
            run.sandbox.crm,
            "POST",
            "/knobs",
            json={
                "fault_values": emails,
                "partial_mode": partial_mode,
                "error_5xx_rate": 0.1,
                "random_429_rate": 0.05,
            },
        )
        connection_id = demo.connect(run.t, run.sandbox)
        assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 120)

        with transaction(run.t.sessions) as session:
            letters = session.scalars(
                select(DeadLetter).where(
                    DeadLetter.status == "open", DeadLetter.platform == "hubspot"
                )
            ).all()
            by_id = {d.store_id: d for d in letters}
            refused_ids = {c["legacyResourceId"] for c in refused}
            assert refused_ids <= set(by_id)
            assert all(by_id[i].reason for i in refused_ids)  # HubSpot's message, kept
            assert all(by_id[i].entity == "customer" for i in refused_ids)
        problems = demo.compare(run.sandbox).problems
        # Only the refused people (and their orders) are missing: nothing behind them was blocked.
        assert problems and all(any(e in p for e in emails) or "order" in p for p in problems)

        run.sandbox.control(
            run.sandbox.crm,
            "POST",
            "/knobs",
            json={"fault_values": [], "error_5xx_rate": 0.0, "random_429_rate": 0.0},
        )
        runner = run.app.test_cli_runner()
        for letter_id in [by_id[i].id for i in refused_ids]:
            result = runner.invoke(args=["deadletters", "replay", str(letter_id)])
            assert result.exit_code == 0, result.output
        # The refused buyers' orders are replayed by themselves once their contacts exist.
        converge(run.sandbox)
        with transaction(run.t.sessions) as session:
            assert (
                session.scalars(
                    select(DeadLetter).where(
                        DeadLetter.status == "open", DeadLetter.platform == "hubspot"
                    )
                ).all()
                == []
            )
    finally:
        run.stop()
