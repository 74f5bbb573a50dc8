"""Echoes: Tandem's own writes coming back as notifications, and what they cost.

    python bench/echo.py [changes] [store] [crm ...]

For each CRM: a simulated store and CRM account, backfilled, with the CRM's push channel
pointed at Tandem (HubSpot webhooks, a Zoho watch channel, a Salesforce outbound message).
Then ``changes`` customers change in the store: Tandem writes them to the CRM, the CRM
notifies Tandem of those writes, and the count of store write calls that followed must be
0. Then a rep edits ``changes // 10`` contacts in the CRM: Tandem writes them to the store,
the store's webhooks of those writes come back, and the CRM write calls that followed must
be 0. Every figure is read from the simulators' own call and delivery logs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import demo
from app import create_app, tandem_of
from sandbox.server import serve
from sync import migrate
from sync.db import transaction
from sync.models import Link
from sync.worker import InProcessWorker


def run(changes: int, store: str, crm: str) -> dict[str, object]:
    sandbox = demo.start_sandbox(
        platform=store, crm=crm, customers=changes + 20, orders=changes, seed=5
    )
    with tempfile.TemporaryDirectory(prefix="tandem-echo-") as tmp:
        app = create_app(demo.sandbox_config(sandbox, Path(tmp)))
        t = tandem_of(app)
        migrate.upgrade(t.engine)
        receiver = serve(app)
        sandbox.subscribe(f"{receiver.url}/webhooks/shopify")
        worker = InProcessWorker(t.worker()).start()
        try:
            connection_id = demo.connect(t, sandbox, public_url=receiver.url)
            sandbox.notify(t, connection_id, receiver.url)
            assert demo.wait_until(lambda: demo.backfill_done(t, connection_id), 600)
            demo.settle(sandbox, t, [connection_id])

            store_before = len(demo.store_writes(sandbox))
            crm_before = len(demo.crm_writes(sandbox))
            told_before = demo.crm_notifications(sandbox)
            started = time.monotonic()
            sandbox.store_control(
                "POST", "/activity", json={"changed_customers": changes, "seed": 9}
            )
            assert demo.wait_until(lambda: demo.compare(sandbox).in_step, 300)
            demo.settle(sandbox, t, [connection_id])
            out: dict[str, object] = {
                "store changes": changes,
                "CRM write calls": len(demo.crm_writes(sandbox)) - crm_before,
                "notifications back": demo.crm_notifications(sandbox) - told_before,
                "store writes they caused": len(demo.store_writes(sandbox)) - store_before,
                "seconds": round(time.monotonic() - started, 1),
            }

            with transaction(t.sessions) as session:
                linked = session.execute(
                    select(Link.store_id, Link.crm_id)
                    .where(Link.connection_id == connection_id, Link.entity == "customer")
                    .order_by(Link.id)
                    .limit(max(1, changes // 10))
                ).all()
            store_before = len(demo.store_writes(sandbox))
            crm_before = len(demo.crm_writes(sandbox))
            for n, (_, crm_id) in enumerate(linked):
                sandbox.rep_edit_contact(crm_id, first_name=f"Echo{n}")
            wanted = {sid: f"Echo{n}" for n, (sid, _) in enumerate(linked)}

            def arrived() -> bool:
                names = {c["id"]: c.get("first_name") for c in sandbox.summary()["customers"]}
                return all(names.get(sid) == name for sid, name in wanted.items())

            assert demo.wait_until(arrived, 120)
            demo.settle(sandbox, t, [connection_id])
            out["rep edits"] = len(linked)
            out["store write calls"] = len(demo.store_writes(sandbox)) - store_before
            out["CRM writes they caused"] = len(demo.crm_writes(sandbox)) - crm_before
            return out
        finally:
            worker.stop()
            receiver.stop()
            sandbox.stop()
            t.close()


def main(changes: int, store: str, crms: list[str]) -> None:
    for crm in crms:
        figures = run(changes, store, crm)
        print(f"{store} -> {crm}: " + ", ".join(f"{k} {v}" for k, v in figures.items()))


if __name__ == "__main__":
    args = sys.argv[1:]
    main(
        int(args[0]) if args else 100,
        args[1] if len(args) > 1 else "shopify",
        args[2:] or ["hubspot", "zoho", "salesforce"],
    )
