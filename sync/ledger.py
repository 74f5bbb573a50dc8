"""The per-field ledger and the conflict policy: what to do when one side shows a field's value.

For each two-way field of a linked record the ledger keeps the value both sides last agreed
on, each side's newest value with the platform's own modification time, and Tandem's last
write (to which side, what, when). :func:`observe` is the whole decision, pure and small
enough to test over thousands of generated interleavings:

- an observation older than what the ledger has for that side is **stale** and changes nothing
  (a late or replayed event never moves a record back);
- a value equal to what Tandem wrote to that side is an **echo**; equal to what that side
  already had, **unchanged**: no write, no API call (an old write of ours that landed after
  a newer one is **superseded**: that side gets the agreed value again, once);
- a value both sides now share is **agreed**: nothing to write;
- otherwise it is a change, and the connection's policy for the field decides who wins:
  ``store`` or ``crm`` (that side owns the field) or ``latest`` (the most recent change by the
  platforms' modification times; a tie goes to the store). When the other side had also
  changed since they agreed, or when an owner's value overrides the change, the decision is a
  **conflict** and is kept as an audit record.

The caller writes the winner's value to the other side and, once that platform confirmed,
calls :func:`confirm` so the ledger knows what Tandem wrote (and the echo is recognised).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mapping.twoway import DEFAULT_POLICY, POLICIES
from sync.models import ConflictRecord, FieldState

SIDES = ("store", "crm")


def other(side: str) -> str:
    return "crm" if side == "store" else "store"


@dataclass(frozen=True)
class Seen:
    value: Any
    at: datetime | None


HISTORY = 4  # Tandem's last writes remembered per side


@dataclass(frozen=True)
class State:
    """One field's ledger entry (an immutable value; FieldState is its row).

    ``store_written``/``crm_written``: Tandem's last few writes to each side, oldest first, as
    (value, when our write was confirmed by our clock).
    """

    agreed: Any = None
    has_agreed: bool = False
    store: Seen | None = None
    crm: Seen | None = None
    store_written: tuple[tuple[Any, datetime | None], ...] = ()
    crm_written: tuple[tuple[Any, datetime | None], ...] = ()
    written_at: datetime | None = None
    origin: str | None = None

    def seen(self, side: str) -> Seen | None:
        return self.store if side == "store" else self.crm

    def with_seen(self, side: str, seen: Seen) -> State:
        return replace(self, store=seen) if side == "store" else replace(self, crm=seen)

    def writes(self, side: str) -> tuple[tuple[Any, datetime | None], ...]:
        return self.store_written if side == "store" else self.crm_written

    def wrote(self, side: str, value: Any) -> bool:
        """Tandem's latest write to ``side`` was ``value``."""
        writes = self.writes(side)
        return bool(writes) and writes[-1][0] == value


@dataclass(frozen=True)
class Decision:
    """What one observation means. ``write_to``/``value``: the write it calls for, if any."""

    kind: str  # stale | unchanged | echo | agreed | change | conflict
    state: State  # the ledger entry after the observation (before any write)
    write_to: str | None = None
    value: Any = None
    winner: str | None = None
    reason: str | None = None


def _later(a: datetime | None, b: datetime | None) -> bool:
    """True when ``a`` is strictly newer than ``b``; an unknown time is never newer."""
    return a is not None and (b is None or a > b)


def observe(state: State, side: str, value: Any, at: datetime | None, policy: str) -> Decision:
    """Decide what ``side`` showing ``value`` (as of its modification time ``at``) calls for."""
    current = state.seen(side)
    if current is not None and at is not None and current.at is not None and at < current.at:
        return Decision("stale", state)
    seen_at = at if at is not None else (current.at if current is not None else None)
    writes = state.writes(side)
    # A delivery of one of our writes is no later than our confirmation of it; a real edit
    # that happens to restore a value we once wrote comes after.
    ours = bool(writes) and (at is None or writes[-1][1] is None or at <= writes[-1][1])
    if ours and value == writes[-1][0]:
        seen = state.with_seen(side, Seen(value, seen_at))
        if not state.has_agreed or value == state.agreed:
            return Decision("echo", seen)  # our own write coming back
        # Our latest write to this side overwrote a change we had not seen yet, and that
        # change won: the side still holds our superseded value and gets the agreed one.
        return Decision(
            "superseded",
            seen,
            write_to=side,
            value=state.agreed,
            winner=state.origin,
            reason="a change crossed Tandem's write on the way; the agreed value is restored",
        )
    if ours and any(value == old for old, _ in writes[:-1]):
        # An earlier write of ours, from before our latest one: already overwritten by it.
        return Decision("echo", state)
    if current is not None and value == current.value:
        return Decision("unchanged", state.with_seen(side, Seen(value, seen_at)))
    state = state.with_seen(side, Seen(value, seen_at))
    opposite = state.seen(other(side))
    if opposite is not None and opposite.value == value:
        return Decision("agreed", replace(state, agreed=value, has_agreed=True, origin=side))
    if opposite is None:
        # The other side has not been seen (a record's first sync): this side's value goes.
        return Decision("change", state, write_to=other(side), value=value, winner=side)
    opposite_changed = state.has_agreed and opposite.value != state.agreed
    if policy == "latest":
        if not opposite_changed:
            winner, reason = side, f"only the {side} changed"
        elif _later(opposite.at, seen_at):
            winner, reason = other(side), f"the {other(side)}'s change is newer"
        elif _later(seen_at, opposite.at):
            winner, reason = side, f"the {side}'s change is newer"
        else:
            winner, reason = "store", "both changed at the same instant: the store wins ties"
    elif policy in SIDES:  # one side owns the field
        winner = policy
        reason = f"the {policy} owns this field"
    else:
        raise ValueError(f"unknown conflict policy {policy!r}")
    conflict = opposite_changed or winner != side
    if winner == side:
        return Decision(
            "conflict" if conflict else "change",
            state,
            write_to=other(side),
            value=value,
            winner=side,
            reason=reason if conflict else None,
        )
    return Decision(
        "conflict", state, write_to=side, value=opposite.value, winner=other(side), reason=reason
    )


def confirm(state: State, side: str, value: Any, at: datetime | None, now: datetime) -> State:
    """The ledger after ``side`` confirmed Tandem's write of ``value``.

    ``at`` is the modification time of the change being carried across (the winner's), not
    the time of our write: an event from ``side`` older than that change is stale, but a real
    edit made there after it, even one made while our write was on its way, is newer and
    wins under "latest" instead of being silently overwritten. For a value restored on the
    side whose event asked for it (an owner's value, a superseded write) pass None: that side
    is then as of ``now``, so a repeat of the event that was overruled is stale.
    """
    history = (*state.writes(side), (value, now))[-HISTORY:]
    written = {"store_written": history} if side == "store" else {"crm_written": history}
    return replace(
        state.with_seen(side, Seen(value, at or now)),
        agreed=value,
        has_agreed=True,
        written_at=now,
        origin=other(side),
        **written,
    )


# ---------------------------------------------------------------------------------- storage


def _box(value: Any) -> dict[str, Any]:
    return {"v": value}


def _unbox(box: dict[str, Any] | None) -> tuple[bool, Any]:
    return (False, None) if box is None else (True, box.get("v"))


def _writes(box: dict[str, Any] | None) -> tuple[tuple[Any, datetime | None], ...]:
    _, items = _unbox(box)
    return tuple((value, datetime.fromisoformat(at) if at else None) for value, at in items or ())


def _from_row(row: FieldState) -> State:
    has_agreed, agreed = _unbox(row.agreed)
    has_store, store = _unbox(row.store_value)
    has_crm, crm = _unbox(row.crm_value)
    return State(
        agreed=agreed,
        has_agreed=has_agreed,
        store=Seen(store, row.store_at) if has_store else None,
        crm=Seen(crm, row.crm_at) if has_crm else None,
        store_written=_writes(row.store_written),
        crm_written=_writes(row.crm_written),
        written_at=row.written_at,
        origin=row.origin,
    )


def _to_row(row: FieldState, state: State) -> None:
    row.agreed = _box(state.agreed) if state.has_agreed else None
    row.store_value = _box(state.store.value) if state.store else None
    row.store_at = state.store.at if state.store else None
    row.crm_value = _box(state.crm.value) if state.crm else None
    row.crm_at = state.crm.at if state.crm else None
    row.store_written = _box([[v, at.isoformat() if at else None] for v, at in state.store_written])
    row.crm_written = _box([[v, at.isoformat() if at else None] for v, at in state.crm_written])
    row.written_at = state.written_at
    row.origin = state.origin


class Ledger:
    """The ledger entries of some records of one connection: loaded at once, saved at once.

    Only one job of a connection runs at a time (``sync.jobs.claim``), so nothing else writes
    these rows between the load and the save.
    """

    def __init__(self, connection_id: int, entity: str = "customer") -> None:
        self.connection_id = connection_id
        self.entity = entity
        self._states: dict[tuple[str, str], State] = {}
        self._dirty: set[tuple[str, str]] = set()

    def _rows(self, session: Session, store_ids: Iterable[str]) -> Iterable[FieldState]:
        ids = list(dict.fromkeys(store_ids))
        for start in range(0, len(ids), 500):
            yield from session.scalars(
                select(FieldState).where(
                    FieldState.connection_id == self.connection_id,
                    FieldState.entity == self.entity,
                    FieldState.store_id.in_(ids[start : start + 500]),
                )
            )

    def load(self, session: Session, store_ids: Iterable[str]) -> Ledger:
        for row in self._rows(session, store_ids):
            self._states[(row.store_id, row.field)] = _from_row(row)
        return self

    def get(self, store_id: str, field: str) -> State:
        return self._states.get((store_id, field), State())

    def set(self, store_id: str, field: str, state: State) -> None:
        self._states[(store_id, field)] = state
        self._dirty.add((store_id, field))

    def save(self, session: Session, store_ids: Iterable[str] | None = None) -> None:
        """Write what :meth:`set` changed (for ``store_ids`` only, when given)."""
        wanted = None if store_ids is None else set(store_ids)
        keys = [k for k in self._dirty if wanted is None or k[0] in wanted]
        if not keys:
            return
        existing = {(r.store_id, r.field): r for r in self._rows(session, {k[0] for k in keys})}
        for key in keys:
            row = existing.get(key)
            if row is None:
                row = FieldState(
                    connection_id=self.connection_id,
                    entity=self.entity,
                    store_id=key[0],
                    field=key[1],
                )
                session.add(row)
            _to_row(row, self._states[key])
            self._dirty.discard(key)


def conflict_record(
    connection_id: int,
    *,
    store_id: str,
    crm_id: str | None,
    field: str,
    state: State,
    decision: Decision,
    policy: str,
    entity: str = "customer",
) -> ConflictRecord:
    """The audit record of a conflict decision: both values, the winner and why."""
    return ConflictRecord(
        connection_id=connection_id,
        entity=entity,
        store_id=store_id,
        crm_id=crm_id,
        field=field,
        store_value=_box(state.store.value) if state.store else None,
        store_at=state.store.at if state.store else None,
        crm_value=_box(state.crm.value) if state.crm else None,
        crm_at=state.crm.at if state.crm else None,
        winner=decision.winner or "",
        policy=policy,
        reason=decision.reason or "",
    )


def policies(settings: Mapping[str, Any], paths: Iterable[str]) -> dict[str, str]:
    """The conflict policy of each two-way path: the connection's ``field_policies`` setting,
    else its ``default_policy``, else "latest"."""
    chosen = settings.get("field_policies") or {}
    default = settings.get("default_policy") or DEFAULT_POLICY
    out = {}
    for path in paths:
        policy = chosen.get(path, default)
        if policy not in POLICIES:
            raise ValueError(f"field_policies[{path!r}] is {policy!r}: use store, crm or latest")
        out[path] = policy
    return out
