"""What operators watch: per connection, what synced, what waits, what failed.

This is the one operator-wide view: it reads across connections on purpose (the operator runs
the hub); nothing here is exposed to a merchant.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from sync.models import Checkpoint, Connection, DeadLetter, DeadLetterStatus, InboxEvent, Job, Link


def _grouped(session: Session, column, *where) -> dict[tuple[int | None, str], int]:
    model = column.class_
    stmt = select(model.connection_id, column, func.count()).group_by(model.connection_id, column)
    for clause in where:
        stmt = stmt.where(clause)
    return {(cid, key): n for cid, key, n in session.execute(stmt)}


def snapshot(session: Session) -> dict[str, Any]:
    jobs = _grouped(session, Job.status)
    inbox = _grouped(session, InboxEvent.status)
    links = _grouped(session, Link.entity)
    dead = _grouped(session, DeadLetter.entity, DeadLetter.status == DeadLetterStatus.OPEN)
    failed_jobs = {
        cid: err
        for cid, err in session.execute(
            select(Job.connection_id, Job.last_error).where(Job.status == "failed").order_by(Job.id)
        )
    }
    checkpoints: dict[int, dict[str, Any]] = {}
    for cp in session.scalars(select(Checkpoint)):
        checkpoints.setdefault(cp.connection_id, {})[f"{cp.entity}/{cp.stream}"] = {
            "position": cp.position_updated_at.isoformat() if cp.position_updated_at else None,
            "next_run_at": cp.next_run_at.isoformat() if cp.next_run_at else None,
            **({"state": cp.state} if cp.state else {}),
        }

    def of(table: dict, cid: int | None) -> dict[str, int]:
        return {key: n for (c, key), n in table.items() if c == cid}

    result: dict[str, Any] = {"connections": []}
    for c in session.scalars(select(Connection).order_by(Connection.id)):
        result["connections"].append(
            {
                "id": c.id,
                "name": c.name,
                "status": c.status,
                "store": f"{c.store_platform}:{c.store_account}",
                "crm": f"{c.crm_platform}:{c.crm_account}",
                "linked": of(links, c.id),
                "jobs": of(jobs, c.id),
                "inbox": of(inbox, c.id),
                "dead_letters": of(dead, c.id),
                "last_job_failure": failed_jobs.get(c.id),
                "checkpoints": checkpoints.get(c.id, {}),
            }
        )
    result["unroutable_deliveries"] = sum(n for (cid, _), n in inbox.items() if cid is None)
    return result


def render(snap: dict[str, Any]) -> str:
    lines = []
    for c in snap["connections"]:
        lines.append(f"[{c['id']}] {c['name']} ({c['status']}): {c['store']} -> {c['crm']}")
        lines.append(f"    linked       {_fmt(c['linked'])}")
        lines.append(f"    jobs         {_fmt(c['jobs'])}")
        lines.append(f"    inbox        {_fmt(c['inbox'])}")
        lines.append(f"    dead letters {_fmt(c['dead_letters'])}")
        for name, cp in c["checkpoints"].items():
            lines.append(
                f"    checkpoint   {name}: {cp['position'] or '-'} (next {cp['next_run_at'] or '-'})"
            )
        if c["last_job_failure"]:
            lines.append(f"    last failure {c['last_job_failure']}")
    lines.append(f"unroutable deliveries: {snap['unroutable_deliveries']}")
    return "\n".join(lines)


def _fmt(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "-"
