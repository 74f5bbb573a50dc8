"""The jobs table: the unit of work and the source of truth. Huey only executes jobs.

Life of a job: written ``pending`` in the same transaction as its cause; claimed by a worker,
which sets ``running`` and a lease; finished ``done`` or, after too many attempts, ``failed``.
A worker killed mid-job leaves a ``running`` row whose lease expires; the reconciler puts it
back to ``pending`` and enqueues it again, so nothing is lost. Claims are exclusive per
connection: two jobs of one connection never run at once, so links and checkpoints of a
connection have a single writer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sync.models import Connection, Job, JobStatus, utcnow

PRIORITY_LIVE = 0
PRIORITY_POLL = 1
PRIORITY_BACKFILL = 2


def add_job(
    session: Session,
    *,
    kind: str,
    connection_id: int | None,
    payload: dict[str, Any] | None = None,
    priority: int = PRIORITY_LIVE,
    dedupe_key: str | None = None,
    run_after: datetime | None = None,
    max_attempts: int = 10,
) -> int | None:
    """Insert a pending job in the caller's transaction; returns its id.

    With ``dedupe_key``, returns None when a pending job with that key already exists (the
    existing one will do the work).
    """
    values = {
        "kind": kind,
        "connection_id": connection_id,
        "payload": payload or {},
        "priority": priority,
        "status": JobStatus.PENDING,
        "dedupe_key": dedupe_key,
        "run_after": run_after or utcnow(),
        "max_attempts": max_attempts,
        "created_at": utcnow(),
    }
    if dedupe_key is None:
        return session.execute(insert(Job).values(**values).returning(Job.id)).scalar_one()
    dialect = session.get_bind().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(Job).values(**values)
    stmt = ins.on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(Job.id)
    return session.execute(stmt).scalar_one_or_none()


def claim(session: Session, job_id: int, lease_seconds: float) -> Job | None:
    """Take the job if it is ready, its connection has no other job running, and no more
    urgent job of the connection is waiting.

    Returns the claimed job, or None when it is not claimable now (already done, running under
    a live lease, not yet due, or its connection is busy). Must run in its own transaction: on
    SQLite that transaction holds the write lock (BEGIN IMMEDIATE); on PostgreSQL the
    connection row is locked FOR UPDATE, so two workers cannot both pass the busy check.
    """
    now = utcnow()
    job = session.get(Job, job_id)
    if job is None or job.run_after > now:
        return None
    claimable = job.status == JobStatus.PENDING or (
        job.status == JobStatus.RUNNING and job.lease_until is not None and job.lease_until < now
    )
    if not claimable:
        return None
    if job.connection_id is not None:
        connection = session.scalar(
            select(Connection).where(Connection.id == job.connection_id).with_for_update()
        )
        if connection is None:
            return None
        busy = session.scalar(
            select(func.count(Job.id)).where(
                Job.connection_id == job.connection_id,
                Job.id != job.id,
                Job.status == JobStatus.RUNNING,
                Job.lease_until >= now,
            )
        )
        if busy:
            return None
        # Live changes before polls, polls before backfills: a chain of page jobs must not
        # starve a waiting webhook drain of the same connection.
        urgent = session.scalar(
            select(func.count(Job.id)).where(
                Job.connection_id == job.connection_id,
                Job.id != job.id,
                Job.status == JobStatus.PENDING,
                Job.priority < job.priority,
                Job.run_after <= now,
            )
        )
        if urgent:
            return None
    job.status = JobStatus.RUNNING
    job.lease_until = now + timedelta(seconds=lease_seconds)
    job.attempts += 1
    job.dedupe_key = None
    session.flush()
    return job


def extend_lease(session: Session, job_id: int, lease_seconds: float) -> None:
    """Heartbeat for long steps (e.g. waiting on a platform's rate limit)."""
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.RUNNING)
        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
    )


def finish(session: Session, job_id: int) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=JobStatus.DONE, lease_until=None, finished_at=utcnow(), last_error=None)
    )


def retry_later(session: Session, job_id: int, delay: float, error: str, *, count: bool) -> bool:
    """Put a job back to pending after ``delay`` seconds. Returns False if it is now failed.

    ``count`` False means the attempt does not count (rate limits, busy connection): waiting
    for a platform's quota is not a failure of the job.
    """
    job = session.get(Job, job_id)
    if job is None:
        return False
    if not count:
        job.attempts = max(job.attempts - 1, 0)
    if count and job.attempts >= job.max_attempts:
        job.status = JobStatus.FAILED
        job.last_error = error
        job.lease_until = None
        job.finished_at = utcnow()
        return False
    job.status = JobStatus.PENDING
    job.lease_until = None
    job.last_error = error
    job.enqueued_at = None
    job.run_after = utcnow() + timedelta(seconds=delay)
    return True


def fail(session: Session, job_id: int, error: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(status=JobStatus.FAILED, lease_until=None, finished_at=utcnow(), last_error=error)
    )


def mark_enqueued(session: Session, job_ids: Sequence[int]) -> None:
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(enqueued_at=utcnow()))


def needing_enqueue(session: Session, *, stale_after: float, limit: int = 500) -> list[Job]:
    """Jobs the queue may not know about: expired leases, and due pending jobs never enqueued
    (or enqueued so long ago that the message was evidently lost, e.g. a killed consumer).

    Expired leases are put back to pending here, in the caller's transaction.
    """
    now = utcnow()
    session.execute(
        update(Job)
        .where(Job.status == JobStatus.RUNNING, Job.lease_until < now)
        .values(status=JobStatus.PENDING, lease_until=None, enqueued_at=None)
    )
    stale = now - timedelta(seconds=stale_after)
    return list(
        session.scalars(
            select(Job)
            .where(
                Job.status == JobStatus.PENDING,
                Job.run_after <= now,
                or_(Job.enqueued_at.is_(None), Job.enqueued_at < stale),
            )
            .order_by(Job.priority, Job.id)
            .limit(limit)
        )
    )


def counts(session: Session, connection_id: int | None = None) -> dict[str, int]:
    """Jobs per status (for one connection, or all for operators)."""
    stmt = select(Job.status, func.count(Job.id)).group_by(Job.status)
    if connection_id is not None:
        stmt = stmt.where(Job.connection_id == connection_id)
    return {status: n for status, n in session.execute(stmt)}


def active(session: Session, connection_id: int) -> int:
    """Pending or running jobs of a connection."""
    return session.scalar(
        select(func.count(Job.id)).where(
            Job.connection_id == connection_id,
            and_(Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING])),
        )
    )
