"""Links between store records and CRM records, and dead letters, for one connection."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from sync.models import DeadLetter, DeadLetterStatus, Link, utcnow


def digest(value: Any) -> str:
    """A stable fingerprint of what we would write (sorted keys, exact strings)."""
    return hashlib.sha256(
        json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def load(
    session: Session, connection_id: int, entity: str, store_ids: Iterable[str]
) -> dict[str, Link]:
    ids = list(set(store_ids))
    found: dict[str, Link] = {}
    # Chunked so a large page never exceeds the database's bound-parameter limit.
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = session.scalars(
            select(Link).where(
                Link.connection_id == connection_id,
                Link.entity == entity,
                Link.store_id.in_(chunk),
            )
        )
        found.update({row.store_id: row for row in rows})
    return found


def load_by_crm(
    session: Session, connection_id: int, entity: str, crm_object: str, crm_ids: Iterable[str]
) -> dict[str, list[Link]]:
    """The links of this connection pointing at each of ``crm_ids`` (CRM -> store)."""
    ids = list(dict.fromkeys(str(i) for i in crm_ids))
    found: dict[str, list[Link]] = {}
    for start in range(0, len(ids), 500):
        for row in session.scalars(
            select(Link).where(
                Link.connection_id == connection_id,
                Link.entity == entity,
                Link.crm_object == crm_object,
                Link.crm_id.in_(ids[start : start + 500]),
            )
        ):
            found.setdefault(row.crm_id, []).append(row)
    return found


def save(
    session: Session,
    connection_id: int,
    entity: str,
    store_id: str,
    *,
    crm_object: str,
    crm_id: str,
    written: Mapping[str, Any] | None = None,
    store_updated_at: datetime | None = None,
) -> Link:
    """Create or update the link after the CRM confirmed a write."""
    link = session.scalar(
        select(Link).where(
            Link.connection_id == connection_id, Link.entity == entity, Link.store_id == store_id
        )
    )
    if link is None:
        link = Link(connection_id=connection_id, entity=entity, store_id=store_id)
        session.add(link)
    link.crm_object = crm_object
    link.crm_id = crm_id
    if written is not None:
        link.last_written = dict(written)
        link.last_hash = digest(written)
    if store_updated_at is not None:
        link.store_updated_at = store_updated_at
    link.store_deleted_at = None
    return link


def forget(session: Session, connection_id: int, entity: str, store_ids: Iterable[str]) -> None:
    """Drop links whose store records no longer exist (e.g. line items an edit removed)."""
    ids = list(store_ids)
    for start in range(0, len(ids), 500):
        session.execute(
            delete(Link).where(
                Link.connection_id == connection_id,
                Link.entity == entity,
                Link.store_id.in_(ids[start : start + 500]),
            )
        )


def dead_letter(
    session: Session,
    connection_id: int,
    *,
    entity: str,
    store_id: str,
    platform: str,
    reason: str,
    details: Any = None,
    record: Mapping[str, Any] | None = None,
) -> DeadLetter:
    """Record (or refresh) the open dead letter of one store record."""
    row = session.scalar(
        select(DeadLetter).where(
            DeadLetter.connection_id == connection_id,
            DeadLetter.entity == entity,
            DeadLetter.store_id == store_id,
            DeadLetter.status == DeadLetterStatus.OPEN,
        )
    )
    if row is None:
        row = DeadLetter(
            connection_id=connection_id, entity=entity, store_id=store_id, occurrences=0
        )
        session.add(row)
    row.platform = platform
    row.reason = reason
    row.details = _jsonable(details)
    if record is not None:
        row.record = dict(record)
    row.occurrences = (row.occurrences or 0) + 1
    row.updated_at = utcnow()
    return row


def resolve_dead_letters(
    session: Session, connection_id: int, entity: str, store_ids: Iterable[str]
) -> None:
    """A record that synced after failing earlier closes its open dead letter."""
    ids = list(store_ids)
    for start in range(0, len(ids), 500):
        for row in session.scalars(
            select(DeadLetter).where(
                DeadLetter.connection_id == connection_id,
                DeadLetter.entity == entity,
                DeadLetter.store_id.in_(ids[start : start + 500]),
                DeadLetter.status == DeadLetterStatus.OPEN,
            )
        ):
            row.status = DeadLetterStatus.RESOLVED


def _jsonable(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, dict):
        return json.loads(json.dumps(value, default=str))
    return {"detail": json.loads(json.dumps(value, default=str))}
