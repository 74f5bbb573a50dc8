"""Two-way contact fields: each side's changes judged against the ledger, winners written across.

Store -> CRM: :meth:`FieldSync.on_store` is called by the engine for every customer it is
about to write; it says which two-way fields go to the CRM, and which the store must take
back (the CRM owns them, or its change was newer).

CRM -> store: :meth:`FieldSync.apply_crm` takes CRM contacts as read back (a webhook, an
outbound message, a poll), finds the store customers linked to each, decides per field, writes
the store's customers in the store's batches (and restores the CRM where the store owns a
field), and updates the ledger once the platform confirmed. An inbound value equal to what
Tandem wrote is an echo: no write, no API call.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from connectors.crm import WriteResult
from mapping import twoway, writeback
from mapping.crm import CrmSchema
from mapping.fieldmap import FieldMap
from mapping.models import Customer
from mapping.twoway import CrmContact
from sync import identity, links, notifications
from sync import ledger as ledgers
from sync.db import transaction
from sync.ledger import Ledger, State
from sync.models import ConflictRecord, Connection, Link, utcnow

log = logging.getLogger("tandem.twoway")


class StoreWriter(Protocol):
    """What write-back asks of a store connector (see connectors/*.write_customers)."""

    platform: str
    writable_fields: frozenset[str]

    def write_customers(
        self, patches: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]: ...


class CrmUpdater(Protocol):
    platform: str

    def update_objects(
        self, object_type: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]: ...


@dataclass(frozen=True)
class TwoWaySettings:
    """A connection's two-way fields (source paths) and the conflict policy of each."""

    paths: tuple[str, ...] = ()
    policies: Mapping[str, str] = field(default_factory=dict)
    default_region: str | None = None


@dataclass
class Tally:
    """What two-way sync did, for progress, reports and the echo figures."""

    echoes: int = 0
    reads_saved: int = 0  # CRM notifications of our own writes that needed no re-read
    stale: int = 0
    unchanged: int = 0
    conflicts: int = 0
    store_writes: int = 0  # customers written back to the store
    crm_writes: int = 0  # contacts restored in the CRM (the store owns the field)
    store_calls: int = 0
    crm_calls: int = 0
    dead: int = 0
    unlinked: int = 0  # CRM contacts no store customer of this connection is linked to

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass
class _Pending:
    """Writes one record needs after its observations were judged."""

    to_crm: dict[str, Any] = field(default_factory=dict)
    to_store: dict[str, Any] = field(default_factory=dict)
    conflicts: list[ConflictRecord] = field(default_factory=list)
    at: datetime | None = None  # the modification time of the change that was judged


def seed(state: State, value: Any, link: Link | None) -> State:
    """A ledger entry for a record linked before the ledger existed: what Tandem last wrote to
    the CRM is what the store had then, and what the CRM got."""
    if state.store is not None or state.crm is not None or link is None:
        return state
    seen = ledgers.Seen(value, link.store_updated_at)
    return State(
        agreed=value,
        has_agreed=True,
        store=seen,
        crm=seen,
        crm_written=((value, link.updated_at),),
    )


class FieldSync:
    """Two-way field decisions and write-back for one connection."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        connection_id: int,
        schema: CrmSchema,
        fields: FieldMap,
        settings: TwoWaySettings,
        *,
        crm: CrmUpdater | None = None,
        store: StoreWriter | None = None,
        now=utcnow,
    ) -> None:
        self.sessions = sessions
        self.connection_id = connection_id
        self.schema = schema
        self.fields = fields
        self.settings = settings
        self.crm = crm
        self.store = store
        self.now = now
        self._prop_of = {path: prop for prop, path in fields.items()}

    @property
    def enabled(self) -> bool:
        return bool(self.settings.paths)

    def prop_of(self, path: str) -> str:
        """The CRM property a two-way path is written to."""
        return self._prop_of[path]

    def unread(self, session: Session, notices, linked: Mapping[str, Sequence[Link]]) -> set[str]:
        """The CRM ids among ``notices`` whose every change is either to a field that does not
        sync back, or, by the CRM's own account (a change made through the API by an app:
        HubSpot's ``changeSource`` INTEGRATION) and by the ledger (the value Tandem last wrote
        to the CRM), Tandem's write coming back: those need no re-read. The platform's hint
        alone never decides: the ledger must agree."""
        by_prop = {
            prop: path for path, prop in self._prop_of.items() if path in self.settings.paths
        }
        verdict: dict[str, bool] = {}
        ledger = Ledger(self.connection_id).load(
            session, (k.store_id for n in notices for i in n.ids for k in linked.get(i, ()))
        )
        for notice in notices:
            for crm_id in notice.ids:
                ours = False
                if notice.hint is not None:
                    prop, value, source = notice.hint
                    by_us = (source or "").startswith("INTEGRATION") and bool(linked.get(crm_id))
                    if prop == notifications.CREATED:
                        # Created through the API, and every field that syncs back is one
                        # Tandem wrote there (its first write of the contact).
                        ours = by_us and all(
                            ledger.get(k.store_id, path).writes("crm")
                            for k in linked.get(crm_id, ())
                            for path in self.settings.paths
                        )
                    elif (path := by_prop.get(prop)) is None:
                        ours = True  # a field that does not sync back: irrelevant
                    else:
                        ours = by_us and all(
                            ledger.get(k.store_id, path).wrote(
                                "crm", twoway.comparable(path, value)
                            )
                            for k in linked.get(crm_id, ())
                        )
                verdict[crm_id] = verdict.get(crm_id, True) and ours
        return {crm_id for crm_id, ours in verdict.items() if ours}

    def two_way_props(self) -> frozenset[str]:
        return frozenset(self._prop_of[p] for p in self.settings.paths if p in self._prop_of)

    # ------------------------------------------------------------------ judging
    def _judge(
        self,
        ledger: Ledger,
        store_id: str,
        crm_id: str | None,
        side: str,
        values: Mapping[str, Any],
        at: datetime | None,
        link: Link | None,
        tally: Tally,
    ) -> _Pending:
        pending = _Pending(at=at)
        for path, value in values.items():
            policy = self.settings.policies.get(path, twoway.DEFAULT_POLICY)
            written = link.last_written.get(self._prop_of[path]) if link else None
            state = seed(ledger.get(store_id, path), twoway.comparable(path, written), link)
            decision = ledgers.observe(state, side, value, at, policy)
            ledger.set(store_id, path, decision.state)
            if decision.kind == "echo":
                tally.echoes += 1
            elif decision.kind == "stale":
                tally.stale += 1
            elif decision.kind in ("unchanged", "agreed"):
                tally.unchanged += 1
            if decision.kind == "conflict":
                tally.conflicts += 1
                pending.conflicts.append(
                    ledgers.conflict_record(
                        self.connection_id,
                        store_id=store_id,
                        crm_id=crm_id,
                        field=path,
                        state=decision.state,
                        decision=decision,
                        policy=policy,
                    )
                )
            if decision.write_to == "crm":
                pending.to_crm[path] = decision.value
            elif decision.write_to == "store":
                pending.to_store[path] = decision.value
        return pending

    def on_store(
        self,
        ledger: Ledger,
        customer: Customer,
        props: Mapping[str, Any],
        link: Link | None,
        tally: Tally,
    ) -> _Pending:
        """Judge a store customer's two-way fields (``props`` as rendered for the CRM)."""
        values = twoway.crm_values(self.fields, props, self.settings.paths)
        return self._judge(
            ledger,
            customer.source_id,
            link.crm_id if link else None,
            "store",
            values,
            customer.updated_at,
            link,
            tally,
        )

    def confirmed(
        self,
        ledger: Ledger,
        store_id: str,
        side: str,
        values: Mapping[str, Any],
        at: datetime | None,
    ) -> None:
        """Tandem's write of ``values`` to ``side`` was confirmed; ``at`` is when the change it
        carried was made (see :func:`sync.ledger.confirm`)."""
        now = self.now()
        for path, value in values.items():
            ledger.set(
                store_id, path, ledgers.confirm(ledger.get(store_id, path), side, value, at, now)
            )

    def crm_props(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return twoway.crm_props(self.fields, self.schema, values)

    # ------------------------------------------------------------------ CRM -> store
    def apply_crm(self, contacts: Sequence[CrmContact]) -> Tally:
        """Bring CRM contact changes to the linked store customers (and restore the CRM where
        the store owns a field). Raises connector errors that should retry the batch: nothing
        is kept then, so the retry judges again. A customer the store refuses becomes a dead
        letter and its ledger stays as it was, so the change is tried again when it is next
        seen."""
        tally = Tally()
        if not contacts or not self.enabled:
            return tally
        newest: dict[str, CrmContact] = {}
        for contact in contacts:  # one version per contact: the newest
            seen = newest.get(contact.id)
            if seen is None or _time(contact) >= _time(seen):
                newest[contact.id] = contact
        with transaction(self.sessions) as session:
            linked = links.load_by_crm(
                session, self.connection_id, "customer", self.schema.contact_object, newest
            )
            ledger = Ledger(self.connection_id).load(
                session, (link.store_id for rows in linked.values() for link in rows)
            )
            connection = session.get(Connection, self.connection_id)
            # A contact another store of the merchant is joined to has more than one store
            # behind it: "the store owns this field" cannot restore one store's value over
            # the other's (they would take turns for ever), so there it restores nothing.
            shared = identity.shared_contacts(
                session,
                connection_id=self.connection_id,
                crm_platform=connection.crm_platform,
                crm_account=connection.crm_account,
                crm_ids=linked,
            )
        judged: list[tuple[Link, _Pending]] = []
        for crm_id, contact in newest.items():
            rows = linked.get(crm_id) or []
            tally.unlinked += not rows
            values = twoway.crm_values(self.fields, contact.props, self.settings.paths)
            for link in rows:
                pending = self._judge(
                    ledger, link.store_id, crm_id, "crm", values, contact.modified_at, link, tally
                )
                if crm_id in shared:
                    pending.to_crm.clear()
                judged.append((link, pending))
        at_of = {link.store_id: p.at for link, p in judged}
        failed = self.write_store(
            ledger, [(link, p.to_store) for link, p in judged if p.to_store], tally, at_of
        )
        failed |= self.restore_crm(
            ledger, [(link, p.to_crm) for link, p in judged if p.to_crm], tally
        )
        with transaction(self.sessions) as session:
            kept = [(link, p) for link, p in judged if link.store_id not in failed]
            for _, pending in kept:
                session.add_all(pending.conflicts)
            ledger.save(session, (link.store_id for link, _ in kept))
        return tally

    def write_store(
        self,
        ledger: Ledger,
        items: Sequence[tuple[Link, Mapping[str, Any]]],
        tally: Tally,
        at_of: Mapping[str, datetime | None],
    ) -> set[str]:
        """Write CRM-won values to the store's customers and confirm them in the ledger.
        Returns the store ids that were refused (dead letters now)."""
        if not items:
            return set()
        if self.store is None:
            raise RuntimeError("write-back needs the connection's store connector")
        patches: list[tuple[Link, Mapping[str, Any], dict[str, Any]]] = []
        refused: list[tuple[Link, str, str, Any]] = []
        for link, values in items:
            try:
                patch = twoway.store_patch(values, default_region=self.settings.default_region)
                # What this store can take (a consent state such as "redacted" it cannot):
                # refused here, it is this record's dead letter, not the whole batch's error.
                writeback.check_patch(patch, self.store.writable_fields)
            except ValueError as exc:
                refused.append((link, "tandem", str(exc), None))
                continue
            patches.append((link, twoway.held(values, patch), patch))
        if patches:
            log.info(
                "connection %s: writing back to %s: %s",
                self.connection_id,
                self.store.platform,
                [(link.store_id, sorted(values)) for link, values, _ in patches],
            )
            results = self.store.write_customers(
                [(link.store_id, patch) for link, _, patch in patches]
            )
            tally.store_calls += 1
            for (link, values, _), result in zip(patches, results, strict=True):
                if result.ok:
                    self.confirmed(ledger, link.store_id, "store", values, at_of.get(link.store_id))
                    tally.store_writes += 1
                else:
                    refused.append(
                        (link, self.store.platform, result.error or "rejected", result.details)
                    )
        self._dead(refused, "write-back to the store refused", tally)
        return {link.store_id for link, _, _, _ in refused}

    def restore_crm(
        self, ledger: Ledger, items: Sequence[tuple[Link, Mapping[str, Any]]], tally: Tally
    ) -> set[str]:
        """Write the store's values of store-owned fields back over a CRM change. Returns the
        store ids whose contact the CRM refused."""
        if not items:
            return set()
        if self.crm is None:
            raise RuntimeError("restoring the CRM needs the connection's CRM connector")
        results = self.crm.update_objects(
            self.schema.contact_object,
            [(link.crm_id, self.crm_props(values)) for link, values in items],
        )
        tally.crm_calls += 1
        refused = []
        with transaction(self.sessions) as session:
            for (link, values), result in zip(items, results, strict=True):
                if not result.ok:
                    refused.append((link, self.crm.platform, result.error, result.details))
                    continue
                self.confirmed(ledger, link.store_id, "crm", values, None)
                tally.crm_writes += 1
                row = session.get(Link, link.id)
                if row is not None:
                    row.last_written = {**row.last_written, **self.crm_props(values)}
        self._dead(refused, "restoring a store-owned field refused", tally)
        return {link.store_id for link, _, _, _ in refused}

    def _dead(self, refused, what: str, tally: Tally) -> None:
        if not refused:
            return
        tally.dead += len(refused)
        with transaction(self.sessions) as session:
            for link, platform, reason, details in refused:
                links.dead_letter(
                    session,
                    self.connection_id,
                    entity="customer",
                    store_id=link.store_id,
                    platform=platform,
                    reason=f"{what}: {reason or 'rejected'}",
                    details=details,
                    record={"crm_id": link.crm_id},
                )


def _time(contact: CrmContact) -> datetime:
    return contact.modified_at or datetime.min.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------- settings

SETTINGS = ("two_way", "two_way_fields", "field_policies", "default_policy")


def check_setting(key: str, value: Any) -> Any:
    """The value of a two-way connection setting, checked. Raises ValueError saying what is
    wrong (an unknown key, a field that does not sync back, a policy that is none of
    store/crm/latest)."""
    fields = sorted(twoway.WRITE_BACK)
    policies = ", ".join(twoway.POLICIES)
    if key == "two_way":
        if not isinstance(value, bool):
            raise ValueError("two_way is true or false")
    elif key == "two_way_fields":
        if not isinstance(value, list) or any(v not in twoway.WRITE_BACK for v in value):
            raise ValueError(f"two_way_fields is a list of: {', '.join(fields)}")
    elif key == "field_policies":
        if not isinstance(value, dict):
            raise ValueError('field_policies is an object like {"phone": "crm"}')
        for path, policy in value.items():
            if path not in twoway.WRITE_BACK:
                raise ValueError(f"{path!r} does not sync back; fields: {', '.join(fields)}")
            if policy not in twoway.POLICIES:
                raise ValueError(f"policy {policy!r} for {path}: one of {policies}")
    elif key == "default_policy":
        if value not in twoway.POLICIES:
            raise ValueError(f"default_policy is one of {policies}")
    else:
        raise ValueError(f"unknown setting {key!r}: one of {', '.join(SETTINGS)}")
    return value
