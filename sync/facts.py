"""Commerce facts on the CRM contact: recorded per store order, computed per profile, written to
the profile's contact.

A profile (``sync.models.Profile``) is one person in one CRM account, and every connection
(store) of that account shares it: so a profile's facts come from the ``OrderFact`` rows of all
those connections. That is the one read here that crosses connections, and it is made only for
the profile ids the caller gives (the ones the engine resolved for its own connection's
records); :func:`write_facts` also refuses a profile of another CRM account than the
connection's.

Writes go to the profile's contact (``Profile.crm_id``) by id, in the CRM's batch size, and are
skipped when the properties equal what this connection last wrote for that profile (kept in a
``Link`` of entity ``"facts"``, store id ``"profile:<id>"``). Before the first write of a
currency in a process, its fields are created (HubSpot, where an app may create properties) or
checked (Zoho CRM, Salesforce, where an admin must); a missing field is named in a
ConfigurationError, and the profiles that need it wait while the others are written.

Callers write facts after the transaction that recorded the orders has committed (the facts
are read in a transaction of their own); two workers writing one profile at once may leave the
older figures until its next change, so the engine should serialise facts writes per CRM
account, as it does contact writes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.crm import WriteResult
from connectors.errors import ConfigurationError
from mapping import CrmSchema, Order
from mapping.facts import (
    ContactFacts,
    FactRow,
    FactsNaming,
    contact_facts,
    fact_properties,
    order_fact,
)
from sync import links
from sync.db import transaction
from sync.models import Connection, OrderFact, Profile

log = logging.getLogger("tandem.sync")

ENTITY = "facts"  # the Link entity holding what was last written to a profile's contact
_CHUNK = 500  # ids per IN (...) query, below every database's bound-parameter limit


def link_key(profile_id: int) -> str:
    """The Link store id under which a profile's last facts write is kept."""
    return f"profile:{profile_id}"


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------- recording


def _newest(orders: Iterable[Order]) -> dict[str, Order]:
    best: dict[str, Order] = {}
    for order in orders:
        current = best.get(order.source_id)
        if current is None or order.updated_at >= current.updated_at:
            best[order.source_id] = order
    return best


def record_orders(
    session: Session,
    connection_id: int,
    orders: Sequence[Order],
    profiles: Mapping[str, int | None],
) -> set[int]:
    """Create or update the OrderFact row of each order of this connection, joined to the
    profile ``profiles`` names for its ``source_id`` (None: a guest without an email, whose
    order is kept but belongs to no contact). Of several versions of one order, the newest
    ``updated_at`` wins; the caller passes versions newer than what was recorded (the engine's
    stale check), and recording the same version again changes nothing.

    Returns the profile ids whose facts changed, including the profile an order moved away
    from (its email changed): write those.

    Raises:
        KeyError: an order whose ``source_id`` is not in ``profiles``.
        MappingError: an order whose total or refunds are in another currency than the order.
    """
    newest = _newest(orders)
    unknown = sorted(set(newest) - set(profiles))
    if unknown:
        raise KeyError(f"no profile given for orders {', '.join(unknown)}")
    existing: dict[str, OrderFact] = {}
    ids = list(newest)
    for chunk in _chunks(ids, _CHUNK):
        for row in session.scalars(
            select(OrderFact).where(
                OrderFact.connection_id == connection_id, OrderFact.store_id.in_(chunk)
            )
        ):
            existing[row.store_id] = row
    changed: set[int] = set()
    for source_id, order in newest.items():
        fact = order_fact(order)
        profile_id = profiles[source_id]
        values = {
            "profile_id": profile_id,
            "currency": fact.currency,
            "total": str(fact.total),
            "refunded": str(fact.refunded),
            "placed_at": fact.placed_at,
            "counts": fact.counts,
        }
        row = existing.get(source_id)
        if row is None:
            session.add(OrderFact(connection_id=connection_id, store_id=source_id, **values))
            if profile_id is not None:
                changed.add(profile_id)
            continue
        if all(getattr(row, name) == value for name, value in values.items()):
            continue
        changed.update(p for p in (row.profile_id, profile_id) if p is not None)
        for name, value in values.items():
            setattr(row, name, value)
    session.flush()
    return changed


def _fact_row(row: OrderFact) -> FactRow:
    return FactRow(
        currency=row.currency,
        total=Decimal(row.total),
        refunded=Decimal(row.refunded),
        placed_at=row.placed_at,
        counts=row.counts,
    )


def profiles_facts(session: Session, profile_ids: Iterable[int]) -> dict[int, ContactFacts]:
    """The facts of each given profile, from the OrderFact rows of every connection that names
    it (empty facts for a profile without orders). Reads no row of any other profile."""
    ids = sorted(set(profile_ids))
    rows: dict[int, list[FactRow]] = {profile_id: [] for profile_id in ids}
    for chunk in _chunks(ids, _CHUNK):
        for row in session.scalars(select(OrderFact).where(OrderFact.profile_id.in_(chunk))):
            rows[row.profile_id].append(_fact_row(row))  # type: ignore[index]
    return {profile_id: contact_facts(found) for profile_id, found in rows.items()}


# ---------------------------------------------------------------------------------- CRM fields


def _naming(schema: CrmSchema) -> FactsNaming:
    if schema.facts is None:
        raise ConfigurationError(
            f"{schema.title} has no commerce facts fields", platform=schema.platform
        )
    return schema.facts


def required_fact_fields(schema: CrmSchema, currencies: Iterable[str]) -> dict[str, list[str]]:
    """``{contact object: [field names]}`` of the facts for ``currencies``: what the connect-time
    check must find (Zoho CRM, Salesforce) or create (HubSpot, with
    ``mapping.hubspot.fact_property_definitions``). Empty for a schema without facts.

    Raises:
        ValueError: an unknown currency code.
    """
    if schema.facts is None:
        return {}
    return {schema.contact_object: schema.facts.names(currencies)}


class FactFields:
    """Which facts fields are known to exist in which CRM account, for this process: each
    currency's fields are created or checked once, not before every write. Forgotten for an
    account after a refused write, so a field deleted since is created (or named) again.

    The connector is asked ``ensure_properties({object: definitions})`` where the CRM's
    naming has ``definitions`` (HubSpot), else ``prepare({object: fields}, {})``, the
    connect-time field check of the Zoho CRM and Salesforce connectors.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: set[tuple[str, str, str, str]] = set()

    def _key(self, schema: CrmSchema, account: str, currency: str) -> tuple[str, str, str, str]:
        return (schema.platform, account, schema.contact_object, currency)

    def ensure(
        self, crm: Any, schema: CrmSchema, account: str, currencies: Iterable[str]
    ) -> dict[str, str]:
        """Create (HubSpot) or check (elsewhere) the fields of the contact-wide facts and of
        each of ``currencies`` not yet known in ``account``. Returns ``{currency: problem}``
        for currencies whose fields are missing in a CRM where Tandem cannot create them.

        Raises:
            ConfigurationError: the contact-wide facts fields are missing (nothing can be
                written), or whatever the connector raises.
        """
        naming = _naming(schema)
        codes = sorted(set(currencies))
        with self._lock:
            base_known = self._key(schema, account, "") in self._known
            pending = [c for c in codes if self._key(schema, account, c) not in self._known]
        if base_known and not pending:
            return {}
        problems: dict[str, str] = {}
        if naming.definitions is not None:
            # One listing of the properties; only the missing ones are created.
            crm.ensure_properties({schema.contact_object: naming.definitions(pending)})
            ready = ["", *pending]
        else:
            ready = []
            if not base_known:
                try:
                    crm.prepare({schema.contact_object: naming.names()}, {})
                except ConfigurationError as exc:
                    raise ConfigurationError(
                        _missing_message(schema, naming.names(), exc), platform=schema.platform
                    ) from exc
                ready.append("")
            for code in pending:
                names = naming.currency_names(code)
                try:
                    crm.prepare({schema.contact_object: names}, {})
                except ConfigurationError as exc:
                    problems[code] = _missing_message(schema, names, exc)
                    continue
                ready.append(code)
        with self._lock:
            self._known.update(self._key(schema, account, c) for c in ready)
        return problems

    def forget(self, schema: CrmSchema, account: str) -> None:
        with self._lock:
            self._known = {
                k for k in self._known if k[:3] != (schema.platform, account, schema.contact_object)
            }


def _missing_message(schema: CrmSchema, names: Sequence[str], cause: Exception) -> str:
    return (
        f"Tandem's commerce facts need these {schema.title} {schema.contact_object} fields, "
        f"which an admin must create (numbers for counts and amounts, not currency fields: "
        f"the currency is in the name; dates for dates): {', '.join(names)}. "
        f"{schema.title} said: {cause}"
    )


# The process-wide cache write_facts uses unless given another.
FACT_FIELDS = FactFields()


# ---------------------------------------------------------------------------------- writing


@dataclass
class FactsOutcome:
    """What one :func:`write_facts` did."""

    written: int = 0
    unchanged: int = 0
    # Profiles without a CRM contact yet (no ``crm_id``), unknown ids, and profiles with no
    # order and nothing written before.
    skipped: int = 0
    calls: int = 0
    failed: dict[int, WriteResult] = field(default_factory=dict)  # profile id -> refusal


@dataclass(frozen=True)
class _Planned:
    profile_id: int
    crm_id: str
    properties: dict[str, Any]
    currencies: tuple[str, ...]


def write_facts(
    crm: Any,
    schema: CrmSchema,
    sessions: sessionmaker[Session],
    profile_ids: Iterable[int],
    *,
    connection_id: int,
    fields: FactFields = FACT_FIELDS,
) -> FactsOutcome:
    """Compute the facts of each profile and write them to its contact with
    ``crm.update_objects(schema.contact_object, ...)``, one call per CRM batch
    (``crm.BATCH_SIZE``), skipping profiles whose properties equal what ``connection_id`` last
    wrote for them. A currency written before and in no order now is written as zeros.

    A refused write (a deleted contact: ``WriteResult.not_found``) is reported in
    ``FactsOutcome.failed`` and tried again on the next call; the others proceed.

    Raises:
        ValueError: a profile of another CRM account than the connection's (nothing written).
        ConfigurationError: facts fields are missing in a CRM where Tandem cannot create them;
            raised after writing the profiles that do not need them. Or whatever the
            connector raises (RetriableError, RateLimitedError, ...: retry the call; what was
            confirmed is recorded and will not be written twice).
    """
    _naming(schema)  # fail before any read for a CRM without facts fields
    ids = sorted(set(profile_ids))
    outcome = FactsOutcome()
    with transaction(sessions) as session:
        connection = session.get(Connection, connection_id)
        if connection is None:
            raise ValueError(f"no connection {connection_id}")
        account = connection.crm_account
        found: dict[int, Profile] = {}
        for chunk in _chunks(ids, _CHUNK):
            found.update(
                (p.id, p) for p in session.scalars(select(Profile).where(Profile.id.in_(chunk)))
            )
        foreign = sorted(
            p.id
            for p in found.values()
            if (p.crm_platform, p.crm_account) != (connection.crm_platform, account)
        )
        if foreign:
            raise ValueError(
                f"profiles {foreign} belong to another CRM account than connection {connection_id}"
            )
        crm_ids = {p.id: p.crm_id for p in found.values()}
        facts = profiles_facts(session, list(found))
        prior = links.load(session, connection_id, ENTITY, [link_key(i) for i in found])
        before = {key: (dict(link.last_written or {}), link.crm_id) for key, link in prior.items()}

    plan: list[_Planned] = []
    for profile_id in ids:
        crm_id = crm_ids.get(profile_id)
        if not crm_id:
            outcome.skipped += 1
            continue
        written, written_to = before.get(link_key(profile_id), ({}, None))
        profile_facts = facts[profile_id]
        if not profile_facts.currencies and not written:
            outcome.skipped += 1  # no order, nothing shown: nothing to say
            continue
        # A contact re-linked to another CRM record gets everything again.
        if written_to != crm_id:
            written = {}
        currencies = tuple(
            sorted(set(profile_facts.currencies) | set(written.get("currencies") or ()))
        )
        props = fact_properties(schema, profile_facts, currencies)
        if written.get("properties") == props:
            outcome.unchanged += 1
            continue
        plan.append(_Planned(profile_id, crm_id, props, currencies))
    if not plan:
        return outcome

    problems = fields.ensure(crm, schema, account, {c for p in plan for c in p.currencies})
    blocked = [p for p in plan if problems.keys() & set(p.currencies)]
    plan = [p for p in plan if not problems.keys() & set(p.currencies)]

    size = int(getattr(crm, "BATCH_SIZE", 100))
    for chunk in _chunks(plan, size):
        results = crm.update_objects(
            schema.contact_object, [(p.crm_id, p.properties) for p in chunk]
        )
        outcome.calls += 1
        with transaction(sessions) as session:
            for planned, result in zip(chunk, results, strict=True):
                if not result.ok:
                    outcome.failed[planned.profile_id] = result
                    continue
                links.save(
                    session,
                    connection_id,
                    ENTITY,
                    link_key(planned.profile_id),
                    crm_object=schema.contact_object,
                    crm_id=planned.crm_id,
                    written={
                        "currencies": list(planned.currencies),
                        "properties": planned.properties,
                    },
                )
                outcome.written += 1
    if outcome.failed:
        fields.forget(schema, account)
        log.warning(
            "facts of %d profiles refused by %s (connection %s): %s",
            len(outcome.failed),
            schema.title,
            connection_id,
            "; ".join(f"{pid}: {r.error}" for pid, r in sorted(outcome.failed.items())),
        )
    if blocked:
        raise ConfigurationError(
            f"facts of {len(blocked)} profiles not written: "
            + " | ".join(problems[code] for code in sorted(problems)),
            platform=schema.platform,
        )
    return outcome
