"""A Salesforce backfill stops at the daily reserve, keeps its place, and resumes when the
rolling allocation gives calls back; live changes are never held back by it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

import demo
from sync.db import transaction
from sync.models import Job, JobStatus, RateBucket, utcnow
from tests.e2e.test_end_to_end import converge, start

pytestmark = pytest.mark.slow

PROBE = 40.0  # longer than a worker blocks inline (30 s): a paused job is rescheduled


def _backfill_jobs(t, connection_id):
    with transaction(t.sessions) as session:
        return session.scalars(
            select(Job).where(Job.connection_id == connection_id, Job.kind == "backfill")
        ).all()


def test_a_salesforce_backfill_pauses_at_the_reserve_and_resumes_in_place(tmp_path):
    run = start(
        tmp_path,
        platform="woocommerce",
        crm="salesforce",
        customers=40,
        orders=120,
        daily_probe_seconds=PROBE,
    )
    try:
        # 1,000 calls a day, 790 spent: the connect-time checks leave ~207, and a backfill
        # keeps 20 % (200) for everything else, so it gets a handful of calls, then waits.
        run.sandbox.crm_control("PATCH", "", json={"daily_limit": 1000, "used": 790})
        connection_id = demo.connect(run.t, run.sandbox, public_url=run.receiver.url)

        def paused():
            return any(
                j.status == JobStatus.PENDING and "budget is spent" in (j.last_error or "")
                for j in _backfill_jobs(run.t, connection_id)
            )

        assert demo.wait_until(paused, 60), [
            j.last_error for j in _backfill_jobs(run.t, connection_id)
        ]
        jobs = _backfill_jobs(run.t, connection_id)
        assert not any(j.status == JobStatus.FAILED for j in jobs)
        waiting = next(j for j in jobs if j.status == JobStatus.PENDING)
        usage = run.sandbox.crm_control("GET", "/usage")
        assert usage["max"] - usage["used"] >= 195  # the reserve was not spent
        assert not demo.backfill_done(run.t, connection_id)

        # A day later the rolling window has given the calls back; the probe interval passes.
        run.sandbox.crm_control("PATCH", "", json={"used": 0})
        with transaction(run.t.sessions) as session:
            session.execute(
                update(RateBucket)
                .where(RateBucket.key == f"salesforce:{run.sandbox.crm_account}")
                .values(daily_as_of=RateBucket.daily_as_of - PROBE)
            )
            session.execute(
                update(Job)
                .where(Job.id == waiting.id)
                .values(run_after=utcnow() - timedelta(seconds=1), enqueued_at=None)
            )
        assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 90)
        with transaction(run.t.sessions) as session:
            resumed = session.get(Job, waiting.id)
            assert resumed.status == JobStatus.DONE  # the same job, at the same page
            assert resumed.payload == waiting.payload
        converge(run.sandbox)
    finally:
        run.stop()
