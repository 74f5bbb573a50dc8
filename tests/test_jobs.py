"""The jobs table: claims, leases, per-connection exclusivity, reconciliation."""

from __future__ import annotations

from datetime import timedelta

from sync import jobs
from sync.db import transaction
from sync.models import Job, JobStatus, utcnow
from tests.conftest import add_connection


def _add(sessions, connection_id, **kw) -> int | None:
    with transaction(sessions) as s:
        return jobs.add_job(s, kind="poll", connection_id=connection_id, **kw)


def test_dedupe_key_allows_one_pending_job_then_frees_on_claim(sessions):
    cid = add_connection(sessions)
    first = _add(sessions, cid, dedupe_key="drain:1")
    assert first is not None
    assert _add(sessions, cid, dedupe_key="drain:1") is None
    with transaction(sessions) as s:
        assert jobs.claim(s, first, lease_seconds=60) is not None
    # Claimed: a new delivery must be able to queue the next drain.
    assert _add(sessions, cid, dedupe_key="drain:1") is not None


def test_claim_is_exclusive_peradd_connection(sessions):
    cid = add_connection(sessions)
    other = add_connection(sessions, "b.myshopify.com")
    a, b, c = _add(sessions, cid), _add(sessions, cid), _add(sessions, other)
    with transaction(sessions) as s:
        assert jobs.claim(s, a, lease_seconds=60) is not None
    with transaction(sessions) as s:
        assert jobs.claim(s, b, lease_seconds=60) is None  # same connection busy
        assert jobs.claim(s, c, lease_seconds=60) is not None  # another tenant is not blocked
    with transaction(sessions) as s:
        jobs.finish(s, a)
    with transaction(sessions) as s:
        assert jobs.claim(s, b, lease_seconds=60) is not None


def test_a_claimed_job_is_not_claimed_twice_until_its_lease_expires(sessions):
    cid = add_connection(sessions)
    job_id = _add(sessions, cid)
    with transaction(sessions) as s:
        assert jobs.claim(s, job_id, lease_seconds=60) is not None
    with transaction(sessions) as s:
        assert jobs.claim(s, job_id, lease_seconds=60) is None
        s.get(Job, job_id).lease_until = utcnow() - timedelta(seconds=1)  # the worker died
    with transaction(sessions) as s:
        job = jobs.claim(s, job_id, lease_seconds=60)
        assert job is not None and job.attempts == 2


def test_reconciler_requeues_expired_leases_and_never_enqueued_jobs(sessions):
    cid = add_connection(sessions)
    running, fresh, future = (
        _add(sessions, cid),
        _add(sessions, cid),
        _add(sessions, cid, run_after=utcnow() + timedelta(hours=1)),
    )
    with transaction(sessions) as s:
        jobs.claim(s, running, lease_seconds=60)
        s.get(Job, running).lease_until = utcnow() - timedelta(seconds=5)
    with transaction(sessions) as s:
        found = {j.id for j in jobs.needing_enqueue(s, stale_after=60)}
        jobs.mark_enqueued(s, list(found))
    assert found == {running, fresh}
    with transaction(sessions) as s:
        assert s.get(Job, running).status == JobStatus.PENDING
        # Just enqueued: not handed out again until the message is evidently lost.
        assert jobs.needing_enqueue(s, stale_after=60) == []
    assert future not in found


def test_retry_later_counts_attempts_but_rate_limits_do_not(sessions):
    cid = add_connection(sessions)
    job_id = _add(sessions, cid, max_attempts=2)
    for _ in range(5):
        with transaction(sessions) as s:
            s.get(Job, job_id).run_after = utcnow()
            assert jobs.claim(s, job_id, 60) is not None
        with transaction(sessions) as s:
            assert jobs.retry_later(s, job_id, 0, "429", count=False)
    with transaction(sessions) as s:
        assert s.get(Job, job_id).attempts == 0
    outcomes = []
    for _ in range(2):
        with transaction(sessions) as s:
            s.get(Job, job_id).run_after = utcnow()
            jobs.claim(s, job_id, 60)
        with transaction(sessions) as s:
            outcomes.append(jobs.retry_later(s, job_id, 0, "boom", count=True))
    assert outcomes == [True, False]
    with transaction(sessions) as s:
        job = s.get(Job, job_id)
        assert job.status == JobStatus.FAILED and job.last_error == "boom"


def test_a_waiting_live_job_goes_before_the_next_poll_page(sessions):
    cid = add_connection(sessions)
    page = _add(sessions, cid, priority=jobs.PRIORITY_POLL)
    drain = _add(sessions, cid, priority=jobs.PRIORITY_LIVE)
    with transaction(sessions) as s:
        assert jobs.claim(s, page, lease_seconds=60) is None
        assert jobs.claim(s, drain, lease_seconds=60) is not None
    with transaction(sessions) as s:
        jobs.finish(s, drain)
    with transaction(sessions) as s:
        assert jobs.claim(s, page, lease_seconds=60) is not None
