"""Deletes and privacy: forgetting a person, exporting what Tandem holds, purging a shop.

Causes, and the action each becomes (one job kind, :data:`JOB`, with the action in its payload):

- Shopify ``customers/redact`` -> ``customer_redact``; a store-side customer delete (Shopify
  ``customers/delete``, WooCommerce ``customer.deleted``, BigCommerce ``store/customer/deleted``
  or a customer a thin notification named that is no longer there; the drain queues it through
  :func:`store_delete_jobs`) -> ``customer_deleted``; ``flask privacy forget`` -> ``forget``.
  Each does to the CRM contact what the connection's ``on_customer_delete`` setting says, then
  removes Tandem's own copies of the person in that connection (:func:`purge_person` and the
  inbox and dead-letter scans).
- Shopify ``customers/data_request`` -> ``data_request``: a :class:`PrivacyExport` of what Tandem
  holds about the person in that connection.
- Shopify ``app/uninstalled``, BigCommerce ``store/app/uninstalled`` -> ``uninstalled``: the
  connection is disconnected, its pending jobs cancelled, its store credentials deleted (the
  token is revoked anyway), and the shop's purge planned: Shopify sends ``shop/redact`` 48 hours
  after an uninstall (SH-COMPLY), so the purge waits for it; BigCommerce sends nothing, so a
  ``shop_purge`` job is scheduled after the connection's retention window.
- Shopify ``shop/redact`` -> ``shop_redact``, and the scheduled ``shop_purge``: every row of the
  connection goes, the connection row last (:func:`purge_shop`); the audit log stays.

Every action writes an :class:`AuditEntry`: what was done and how many rows, what the CRM got,
never the person's data (subjects are store ids, ``customer:<id>``, or a hash of a guest's email).

Connection settings (``Connection.settings``):

- ``on_customer_delete``: ``"keep"`` (default: the CRM contact stays as it is), ``"delete"``
  (the contact is archived: HubSpot's recycle bin, restorable for 90 days; Zoho's and
  Salesforce's recycle bins) or ``"anonymise"`` (its mapped personal fields are overwritten, see
  :func:`anonymised_fields`). For ``customers/redact`` too: Tandem's copies go in every case,
  the CRM side follows the setting. A contact another connection still links (a member of the
  same profile from another store of the merchant) is never deleted or anonymised by one store:
  only this connection's links go, and the audit says why the contact was kept.
- ``purge_after_uninstall_hours`` (default 48): how long after an uninstall that no
  ``shop/redact`` will follow (BigCommerce) the shop's data is purged. A connection made active
  again before then is not purged.

Email per CRM when anonymising: all three take a new address on an update by id, and the
contact's key goes with it, so the real address no longer matches the record: HubSpot's
``email`` (its unique contact key), Zoho's ``Email``, Salesforce's ``Email`` and Tandem's
contact key field (``Tandem_Contact_Key__c``, whose value is the email). The placeholder is
``redacted-<random>@redacted.invalid``: ``.invalid`` is reserved and never resolves (RFC 2606,
RFC 6761), and the domain has a dot because HubSpot refuses an address without one. A CRM that
refuses the update (e.g. a validation rule on the email) gets the contact archived instead.
Field history the CRM keeps on its own (HubSpot property history, Zoho and Salesforce field
history tracking, where an org enabled it) may still show old values: where that matters,
``delete`` is the setting to use.

Privacy jobs carry ``connection_id`` None and name their connection in the payload: the worker
holds a job of a paused or disconnected connection, and these must run regardless (a purge runs
on a disconnected connection by definition). In exchange a customer job waits while another job
of its connection is running, so the drain and the purge do not write the same rows at once.
Job payloads name store ids and inbox rows only, never an email.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from connectors.errors import ConfigurationError, PermanentError, RateLimitedError
from mapping import FieldMapError, crm_schema
from mapping.crm import CrmSchema
from mapping.fieldmap import FieldMap
from mapping.normalise import normalise_email
from mapping.salesforce import CONTACT_KEY_FIELD
from sync import jobs
from sync.db import transaction
from sync.models import (
    AccessTokenRow,
    AuditEntry,
    Base,
    ConflictRecord,
    Connection,
    ConnectionStatus,
    Credential,
    DeadLetter,
    FieldMapOverride,
    FieldState,
    InboxEvent,
    InboxStatus,
    Job,
    JobStatus,
    Link,
    OrderFact,
    PrivacyExport,
    Profile,
    ProfileMember,
    RateBucket,
    utcnow,
)
from sync.records import PRIVACY_TOPICS, TOPICS, source_id
from sync.secrets import SecretsError

if TYPE_CHECKING:
    from sync.platforms import Platforms

log = logging.getLogger("tandem.privacy")

JOB = "privacy"

CUSTOMER_REDACT = "customer_redact"
CUSTOMER_DELETED = "customer_deleted"
FORGET = "forget"
DATA_REQUEST = "data_request"
UNINSTALLED = "uninstalled"
SHOP_REDACT = "shop_redact"
SHOP_PURGE = "shop_purge"

KEEP, DELETE, ANONYMISE = "keep", "delete", "anonymise"
ON_CUSTOMER_DELETE = (KEEP, DELETE, ANONYMISE)
DEFAULT_RETENTION_HOURS = 48.0

# Rows read per transaction when scanning a connection's inbox and dead letters.
CHUNK = 500
REDACTED_PAYLOAD: dict[str, Any] = {"redacted": True}
REDACTED_TEXT = "[redacted]"
# Shopify sends shop/redact itself 48 hours after an uninstall (SH-COMPLY).
SENDS_SHOP_REDACT = frozenset({"shopify"})

# The audit's action names, per job action.
AUDIT_ACTIONS = {
    CUSTOMER_REDACT: "customer.redact",
    CUSTOMER_DELETED: "customer.delete",
    FORGET: "customer.forget",
    DATA_REQUEST: "customer.export",
    UNINSTALLED: "app.uninstall",
    SHOP_REDACT: "shop.purge",
    SHOP_PURGE: "shop.purge",
}


# ---------------------------------------------------------------------- settings
def customer_delete_setting(settings: Mapping[str, Any] | None) -> str:
    """The connection's ``on_customer_delete``. Raises ConfigurationError for an unknown one."""
    value = (settings or {}).get("on_customer_delete") or KEEP
    if value not in ON_CUSTOMER_DELETE:
        raise ConfigurationError(
            f"on_customer_delete is {value!r}; one of {', '.join(ON_CUSTOMER_DELETE)}"
        )
    return value


def retention_hours(settings: Mapping[str, Any] | None) -> float:
    """Hours between an uninstall without shop/redact and the shop's purge.

    Raises ConfigurationError for a value that is not a positive number.
    """
    value = (settings or {}).get("purge_after_uninstall_hours", DEFAULT_RETENTION_HOURS)
    try:
        hours = float(value)
    except (TypeError, ValueError):
        hours = -1.0
    if hours <= 0:
        raise ConfigurationError(
            f"purge_after_uninstall_hours is {value!r}; a positive number of hours"
        )
    return hours


# ---------------------------------------------------------------------- creating jobs
def _spec(connection_id: int, action: str, **payload: Any) -> dict[str, Any]:
    return {
        "kind": JOB,
        "connection_id": None,  # see the module docstring: runs whatever the status
        "priority": jobs.PRIORITY_LIVE,
        "payload": {"action": action, "connection_id": connection_id, **payload},
    }


def queue_delivery(
    session: Session, connection: Connection, topic: str, inbox_id: int | None
) -> int | None:
    """The privacy job of one stored compliance or uninstall delivery, in the caller's
    transaction (``inbox.record`` calls it). None for a topic that has no privacy action."""
    action = PRIVACY_TOPICS.get(connection.store_platform, {}).get(topic)
    if action is None or inbox_id is None:
        return None
    return jobs.add_job(
        session,
        **_spec(
            connection.id,
            action,
            inbox_id=inbox_id,
            actor=f"{connection.store_platform} webhook",
        ),
    )


def store_delete_jobs(
    connection: Connection, deletes: Iterable[tuple[str, str]], *, actor: str | None = None
) -> list[dict[str, Any]]:
    """Follow-up job specs for the store's customer deletes among ``deletes`` ((entity, store
    id) pairs): the drain adds them to its final transaction (``step.follow_ups``)."""
    return [
        {
            **_spec(
                connection.id,
                CUSTOMER_DELETED,
                customer_id=str(store_id),
                actor=actor or f"{connection.store_platform} webhook",
            ),
            "dedupe_key": f"{JOB}:{connection.id}:customer:{store_id}",
        }
        for entity, store_id in deletes
        if entity == "customer" and store_id
    ]


def forget_job(
    session: Session,
    connection_id: int,
    customer_id: str,
    *,
    email: str | None = None,
    crm_action: str | None = None,
) -> int:
    """Queue an operator's erasure of one customer (``flask privacy forget``); ``crm_action``
    overrides the connection's ``on_customer_delete``. Returns the job id.

    The email, when given, is needed only for a person Tandem cannot find by id; it stays in the
    job's payload until the job has run, then is dropped from it.
    """
    if crm_action is not None and crm_action not in ON_CUSTOMER_DELETE:
        raise ConfigurationError(
            f"crm action {crm_action!r}; one of {', '.join(ON_CUSTOMER_DELETE)}"
        )
    extra: dict[str, Any] = {"customer_id": str(customer_id), "actor": "operator"}
    if email:
        extra["email"] = email
    if crm_action:
        extra["crm"] = crm_action
    job_id = jobs.add_job(session, **_spec(connection_id, FORGET, **extra))
    assert job_id is not None  # no dedupe key: always inserted
    return job_id


def uninstall_job(session: Session, connection: Connection, *, actor: str) -> int:
    """Queue the uninstall of ``connection`` from a cause other than a webhook (e.g. an install
    callback such as BigCommerce's ``/uninstall``). Returns the job id."""
    job_id = jobs.add_job(session, **_spec(connection.id, UNINSTALLED, actor=actor))
    assert job_id is not None
    return job_id


# ---------------------------------------------------------------------- the audit
def audit(
    session: Session,
    connection_id: int | None,
    action: str,
    subject: str,
    actor: str,
    details: Mapping[str, Any] | None = None,
) -> AuditEntry:
    """Record an action on a person's or a shop's data. ``details`` hold counts and outcomes,
    never the personal data itself."""
    entry = AuditEntry(
        connection_id=connection_id,
        action=action,
        subject=subject,
        actor=actor,
        details=dict(details or {}),
        created_at=utcnow(),
    )
    session.add(entry)
    return entry


# ---------------------------------------------------------------------- who the person is
@dataclass
class Person:
    """One person as one connection knows them, and what points at them."""

    customer_id: str | None
    email: str | None
    order_ids: set[str] = field(default_factory=set)
    crm_object: str | None = None
    crm_id: str | None = None
    profile_id: int | None = None
    # Other connections (stores of the same merchant) whose links reach the same CRM contact.
    shared_with: int = 0

    @property
    def subject(self) -> str:
        """How the audit names the person: the store id, else a hash of the email."""
        if self.customer_id:
            return f"customer:{self.customer_id}"
        digest = hashlib.sha256((self.email or "").encode()).hexdigest()[:16]
        return f"guest:sha256:{digest}"

    @property
    def member_ids(self) -> list[str]:
        """Store ids the person can have in ledger, conflicts and profile members."""
        ids = [self.customer_id] if self.customer_id else []
        if self.email:
            ids.append(f"guest:{self.email}")
        return ids


def _email_field(connection: Connection) -> str:
    try:
        return crm_schema(connection.crm_platform).email_field
    except FieldMapError:
        return "email"


def _email_of(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("v")
    return normalise_email(value) if isinstance(value, str) else None


def resolve(
    session: Session,
    connection: Connection,
    *,
    customer_id: Any = None,
    email: str | None = None,
    order_ids: Iterable[Any] = (),
) -> Person:
    """Find the person in ``connection``: their email (given, or from the link, the profile or
    the ledger), their CRM contact, their profile, their orders, and whether another
    connection of the same CRM account still links that contact."""
    cid = str(customer_id) if customer_id not in (None, "") else None
    address = normalise_email(email) if isinstance(email, str) else None
    link = None
    member = None
    if cid:
        link = session.scalar(
            select(Link).where(
                Link.connection_id == connection.id,
                Link.entity == "customer",
                Link.store_id == cid,
            )
        )
        member = session.scalar(
            select(ProfileMember).where(
                ProfileMember.connection_id == connection.id, ProfileMember.store_id == cid
            )
        )
    if address is None and link is not None:
        address = _email_of((link.last_written or {}).get(_email_field(connection)))
    if address is None and member is not None:
        profile = session.get(Profile, member.profile_id)
        address = profile.email if profile else None
    if address is None and cid:
        ledger = session.scalar(
            select(FieldState).where(
                FieldState.connection_id == connection.id,
                FieldState.entity == "customer",
                FieldState.store_id == cid,
                FieldState.field == "email",
            )
        )
        if ledger is not None:
            address = _email_of(ledger.store_value) or _email_of(ledger.agreed)
    if member is None and address:
        member = session.scalar(
            select(ProfileMember).where(
                ProfileMember.connection_id == connection.id,
                ProfileMember.store_id == f"guest:{address}",
            )
        )
    profile = session.get(Profile, member.profile_id) if member is not None else None
    if profile is None and address:
        profile = session.scalar(
            select(Profile).where(
                Profile.crm_platform == connection.crm_platform,
                Profile.crm_account == connection.crm_account,
                Profile.email == address,
            )
        )
    email_link = None
    if address:
        email_link = session.scalar(
            select(Link).where(
                Link.connection_id == connection.id,
                Link.entity == "email",
                Link.store_id == address,
            )
        )
    person = Person(customer_id=cid, email=address, order_ids={str(o) for o in order_ids})
    for candidate in (link, email_link):
        if candidate is not None and candidate.crm_id:
            person.crm_object, person.crm_id = candidate.crm_object, candidate.crm_id
            break
    if profile is not None:
        person.profile_id = profile.id
        if person.crm_id is None and profile.crm_id:
            person.crm_id = profile.crm_id
        person.order_ids.update(
            session.scalars(
                select(OrderFact.store_id).where(
                    OrderFact.connection_id == connection.id, OrderFact.profile_id == profile.id
                )
            )
        )
    person.shared_with = _sharing_connections(session, connection, person)
    return person


def _sharing_connections(session: Session, connection: Connection, person: Person) -> int:
    """How many other connections still reach the person's CRM contact: members of the same
    profile (the design's record of one person across stores), or, for contacts made before
    profiles, links of a connection to the same CRM account naming the same contact id. Only
    existence is read from those connections, nothing of their data."""
    others: set[int] = set()
    if person.profile_id is not None:
        others.update(
            session.scalars(
                select(ProfileMember.connection_id).where(
                    ProfileMember.profile_id == person.profile_id,
                    ProfileMember.connection_id != connection.id,
                )
            )
        )
    if person.crm_id:
        siblings = select(Connection.id).where(
            Connection.crm_platform == connection.crm_platform,
            Connection.crm_account == connection.crm_account,
            Connection.id != connection.id,
        )
        others.update(
            session.scalars(
                select(Link.connection_id).where(
                    Link.connection_id.in_(siblings),
                    Link.entity.in_(("customer", "email")),
                    Link.crm_id == person.crm_id,
                )
            )
        )
    return len(others)


# ---------------------------------------------------------------------- matching stored rows
def _walk(value: Any) -> Iterator[Any]:
    stack = [value]
    while stack:
        item = stack.pop()
        yield item
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _has_email(value: Any, email: str | None) -> bool:
    """True when some string in ``value`` is the address (whole value, case-insensitively): a
    substring would take joann@ for ann@."""
    if not email:
        return False
    return any(
        isinstance(item, str) and "@" in item and item.strip().lower() == email
        for item in _walk(value)
    )


def _names_record(value: Any, record_id: str | None) -> bool:
    """True when a dict in ``value`` carries ``record_id`` as its id (CRM deliveries: HubSpot
    ``objectId``, Zoho ``id``, Salesforce ``Id``)."""
    if not record_id:
        return False
    return any(
        isinstance(item, dict)
        and any(str(item.get(key)) == record_id for key in ("objectId", "id", "Id", "recordId"))
        for item in _walk(value)
    )


def _buyer_id(payload: Mapping[str, Any]) -> str | None:
    """The customer id of an order payload: Shopify's ``customer.id``, WooCommerce's
    ``customer_id`` (0 for a guest)."""
    customer = payload.get("customer")
    if isinstance(customer, dict) and customer.get("id") not in (None, "", 0):
        return str(customer["id"])
    value = payload.get("customer_id")
    if value not in (None, "", 0, "0"):
        return str(value)
    return None


def inbox_row_about(row: InboxEvent, connection: Connection, person: Person) -> bool:
    """Whether an inbox row carries the person; an order row that does adds its id to
    ``person.order_ids``."""
    payload = row.payload or {}
    if payload.get("redacted"):
        return False
    if row.platform != connection.store_platform:  # a CRM's delivery about the contact
        return _names_record(payload, person.crm_id) or _has_email(payload, person.email)
    meaning = TOPICS.get(row.platform, {}).get(row.topic)
    sid = source_id(payload)
    if meaning is not None and meaning.entity == "customer":
        return (sid is not None and sid == person.customer_id) or _has_email(payload, person.email)
    if meaning is not None and meaning.entity == "order":
        if sid is not None and sid in person.order_ids:
            return True
        buyer = _buyer_id(payload)
        if (buyer is not None and buyer == person.customer_id) or _has_email(payload, person.email):
            if sid is not None:
                person.order_ids.add(sid)
            return True
        return False
    if row.topic in PRIVACY_TOPICS.get(row.platform, {}):
        customer = payload.get("customer")
        if isinstance(customer, dict) and customer.get("id") is not None:
            return str(customer["id"]) == person.customer_id
    return _has_email(payload, person.email)


def dead_letter_about(letter: DeadLetter, person: Person) -> bool:
    """Whether a dead letter is the person's (their customer record or one of their orders)."""
    if letter.entity == "customer" and person.customer_id and letter.store_id == person.customer_id:
        return True
    if letter.entity == "order":
        if letter.store_id in person.order_ids:
            return True
        given = (letter.details or {}).get("buyer_email")
        buyer = normalise_email(given) if isinstance(given, str) else None
        if (buyer is not None and buyer == person.email) or (
            person.customer_id and _buyer_id(letter.record or {}) == person.customer_id
        ):
            person.order_ids.add(letter.store_id)
            return True
    return _has_email(letter.record, person.email)


# ---------------------------------------------------------------------- the CRM side
def contact_map(session: Session, connection: Connection, schema: CrmSchema) -> FieldMap:
    """The connection's contact field map (defaults with its overrides)."""
    overrides = {
        row.crm_property: row.source_path
        for row in session.scalars(
            select(FieldMapOverride).where(
                FieldMapOverride.connection_id == connection.id,
                FieldMapOverride.entity == "contact",
            )
        )
    }
    return schema.field_map("contact", overrides)


def anonymised_fields(
    schema: CrmSchema, fields: Mapping[str, str], *, key_field: str | None = None
) -> dict[str, Any]:
    """What overwrites a contact's mapped fields: the email (and a contact key holding it) a
    non-routable placeholder, fields the CRM requires ``[redacted]``, consent false, everything
    else empty (HubSpot's "" and JSON null both clear a field)."""
    placeholder = f"redacted-{secrets.token_hex(8)}@redacted.invalid"
    required = schema.required.get("contact", frozenset())
    props: dict[str, Any] = {}
    for prop, path in fields.items():
        if path == "email":
            props[prop] = schema.render(placeholder)
        elif path.startswith("consent."):
            props[prop] = schema.render(False)
        elif prop in required:
            props[prop] = schema.render(REDACTED_TEXT)
        else:
            props[prop] = schema.render(None)
    props[schema.email_field] = schema.render(placeholder)
    if key_field:
        props[key_field] = schema.render(placeholder)
    return props


def _first(results: Any) -> Any:
    """The one WriteResult of a one-id call (HubSpot's archive returns nothing: it raises)."""
    return results[0] if isinstance(results, list) and results else None


def apply_to_crm(
    crm: Any,
    schema: CrmSchema,
    fields: Mapping[str, str],
    mode: str,
    contact_id: str,
    *,
    key_field: str | None = None,
) -> dict[str, Any]:
    """Archive or anonymise one contact; returns what the CRM got, for the audit.

    Raises the connector's retriable errors (the job tries again); a record the CRM refuses is
    reported in the result, not raised.
    """
    if mode == ANONYMISE:
        props = anonymised_fields(schema, fields, key_field=key_field)
        result = _first(crm.update_objects(schema.contact_object, [(contact_id, props)]))
        if result is not None and result.ok:
            return {"result": "anonymised", "fields": sorted(props)}
        if result is not None and result.not_found:
            return {"result": "already gone"}
        # Refused (a validation rule, an email the CRM will not take): archive instead.
        archived = _archive(crm, schema, contact_id)
        archived["result"] = (
            "archived (anonymising refused)"
            if archived["result"] == "archived"
            else archived["result"]
        )
        return archived
    return _archive(crm, schema, contact_id)


def _archive(crm: Any, schema: CrmSchema, contact_id: str) -> dict[str, Any]:
    result = _first(crm.archive_objects(schema.contact_object, [contact_id]))
    if result is None or (result.ok and not result.not_found):
        return {"result": "archived"}
    if result.ok or result.not_found:
        return {"result": "already gone"}
    return {"result": "refused"}  # the platform's message may quote the person: not kept


def _key_field(connection: Connection) -> str | None:
    """Salesforce contacts carry Tandem's key (the email) in an external-id field of the org's
    naming, as ``sync.platforms`` builds the connector with."""
    if connection.crm_platform != "salesforce":
        return None
    return str((connection.settings or {}).get("contact_key_field") or CONTACT_KEY_FIELD)


# ---------------------------------------------------------------------- purging
def _chunks(values: list[str], size: int = CHUNK) -> Iterator[list[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def purge_person(session: Session, connection_id: int, person: Person) -> dict[str, int]:
    """Delete the person's links, ledger, conflicts, order facts, profile membership (and the
    profile, once no member is left) and exports in ``connection_id``. Inbox payloads and dead
    letters are scanned separately, in chunks. Returns rows removed per kind."""
    counts: dict[str, int] = {}
    link_match = []
    if person.customer_id:
        link_match.append(and_(Link.entity == "customer", Link.store_id == person.customer_id))
    if person.email:
        link_match.append(and_(Link.entity == "email", Link.store_id == person.email))
    counts["links"] = (
        session.execute(
            delete(Link).where(Link.connection_id == connection_id, or_(*link_match))
        ).rowcount
        if link_match
        else 0
    )
    ids = person.member_ids
    counts["ledger"] = session.execute(
        delete(FieldState).where(
            FieldState.connection_id == connection_id,
            FieldState.entity == "customer",
            FieldState.store_id.in_(ids),
        )
    ).rowcount
    counts["conflicts"] = session.execute(
        delete(ConflictRecord).where(
            ConflictRecord.connection_id == connection_id,
            ConflictRecord.entity == "customer",
            ConflictRecord.store_id.in_(ids),
        )
    ).rowcount
    facts = 0
    for chunk in _chunks(sorted(person.order_ids)):
        facts += session.execute(
            delete(OrderFact).where(
                OrderFact.connection_id == connection_id, OrderFact.store_id.in_(chunk)
            )
        ).rowcount
    if person.profile_id is not None:
        facts += session.execute(
            delete(OrderFact).where(
                OrderFact.connection_id == connection_id,
                OrderFact.profile_id == person.profile_id,
            )
        ).rowcount
    counts["order_facts"] = facts
    counts["profile_members"] = session.execute(
        delete(ProfileMember).where(
            ProfileMember.connection_id == connection_id, ProfileMember.store_id.in_(ids)
        )
    ).rowcount
    counts["profiles"] = 0
    if person.profile_id is not None:
        counts["profiles"] = _drop_empty_profiles(session, [person.profile_id])
    counts["exports"] = session.execute(
        delete(PrivacyExport).where(
            PrivacyExport.connection_id == connection_id,
            PrivacyExport.subject == person.subject,
        )
    ).rowcount
    return counts


def _drop_empty_profiles(session: Session, profile_ids: Iterable[int]) -> int:
    """Delete those of ``profile_ids`` that no member (of any connection) is left in."""
    ids = list(profile_ids)
    removed = 0
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        kept = select(ProfileMember.profile_id).where(ProfileMember.profile_id.in_(chunk))
        removed += session.execute(
            delete(Profile).where(Profile.id.in_(chunk), Profile.id.not_in(kept))
        ).rowcount
    return removed


def connection_tables() -> list:
    """Every table whose rows belong to a connection (a ``connection_id`` column), the audit
    log aside: its record of a purge is meant to outlive the connection."""
    return [
        table
        for table in reversed(Base.metadata.sorted_tables)
        if "connection_id" in table.c and table.name not in ("audit_log", Connection.__tablename__)
    ]


def purge_shop(
    session: Session, connection_id: int, *, keep_job: int | None = None
) -> dict[str, int]:
    """Delete everything of a connection, the connection row last, and check that no table
    with a ``connection_id`` still holds a row of it (the audit log aside). Also goes: the
    shop's deliveries that arrived before it was connected (unroutable), other privacy jobs
    naming it (but ``keep_job``), profiles left without members, and the rate budgets and
    access token of accounts no other connection uses. Returns rows removed per table.

    Raises RuntimeError (rolling the caller's transaction back) if a row survives.
    """
    connection = session.get(Connection, connection_id)
    if connection is None:
        return {}
    counts: dict[str, int] = {}
    profile_ids = list(
        session.scalars(
            select(ProfileMember.profile_id)
            .where(ProfileMember.connection_id == connection_id)
            .distinct()
        )
    )
    for table in connection_tables():
        removed = session.execute(
            delete(table).where(table.c.connection_id == connection_id)
        ).rowcount
        if removed:
            counts[table.name] = removed
    unroutable = session.execute(
        delete(InboxEvent).where(
            InboxEvent.connection_id.is_(None),
            InboxEvent.platform == connection.store_platform,
            InboxEvent.account == connection.store_account,
        )
    ).rowcount
    if unroutable:
        counts["inbox"] = counts.get("inbox", 0) + unroutable
    naming = [
        job.id
        for job in session.scalars(
            select(Job).where(Job.kind == JOB, Job.connection_id.is_(None), Job.id != keep_job)
        )
        if (job.payload or {}).get("connection_id") == connection_id
    ]
    for start in range(0, len(naming), CHUNK):
        session.execute(delete(Job).where(Job.id.in_(naming[start : start + CHUNK])))
    if naming:
        counts["jobs"] = counts.get("jobs", 0) + len(naming)
    counts["profiles"] = _drop_empty_profiles(session, profile_ids)
    others = session.scalar(
        select(func.count(Connection.id))
        .where(Connection.id != connection_id)
        .where(
            Connection.crm_platform == connection.crm_platform,
            Connection.crm_account == connection.crm_account,
        )
    )
    keys = [f"{connection.store_platform}:{connection.store_account}"]
    if not others:
        crm_key = f"{connection.crm_platform}:{connection.crm_account}"
        keys.append(crm_key)
        session.execute(delete(AccessTokenRow).where(AccessTokenRow.key == crm_key))
    session.execute(delete(RateBucket).where(RateBucket.key.in_(keys)))
    session.execute(delete(Connection).where(Connection.id == connection_id))
    session.flush()
    left = {
        table.name: n
        for table in connection_tables()
        if (
            n := session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.connection_id == connection_id)
            )
        )
    }
    if left or session.get(Connection, connection_id) is not None:
        raise RuntimeError(f"purge of connection {connection_id} left rows behind: {left}")
    return counts


# ---------------------------------------------------------------------- exporting
def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _columns(row: Any, *skip: str) -> dict[str, Any]:
    """A row as JSON, every column but ``skip`` (the ids that mean nothing outside Tandem):
    an export shows all Tandem holds, columns added later included."""
    out: dict[str, Any] = {}
    for column in row.__table__.columns:
        if column.key in ("id", "connection_id", *skip):
            continue
        value = getattr(row, column.key)
        out[column.key] = _when(value) if isinstance(value, datetime) else value
    return out


def export_person(session: Session, connection: Connection, person: Person) -> dict[str, Any]:
    """What ``connection`` holds about the person in its tables, but the inbox and dead
    letters (scanned in chunks by the job). Another connection's members of a shared profile
    belong to another store and are left out."""
    ids = person.member_ids
    links = []
    if person.customer_id:
        links += session.scalars(
            select(Link).where(
                Link.connection_id == connection.id,
                Link.entity == "customer",
                Link.store_id == person.customer_id,
            )
        )
    if person.email:
        links += session.scalars(
            select(Link).where(
                Link.connection_id == connection.id,
                Link.entity == "email",
                Link.store_id == person.email,
            )
        )
    orders = sorted(person.order_ids)
    for chunk in _chunks(orders):
        links += session.scalars(
            select(Link).where(
                Link.connection_id == connection.id,
                Link.entity == "order",
                Link.store_id.in_(chunk),
            )
        )
    ledger = session.scalars(
        select(FieldState)
        .where(
            FieldState.connection_id == connection.id,
            FieldState.entity == "customer",
            FieldState.store_id.in_(ids),
        )
        .order_by(FieldState.id)
    )
    conflicts = session.scalars(
        select(ConflictRecord)
        .where(
            ConflictRecord.connection_id == connection.id,
            ConflictRecord.entity == "customer",
            ConflictRecord.store_id.in_(ids),
        )
        .order_by(ConflictRecord.id)
    )
    profile = session.get(Profile, person.profile_id) if person.profile_id is not None else None
    members = (
        session.scalars(
            select(ProfileMember).where(
                ProfileMember.profile_id == profile.id,
                ProfileMember.connection_id == connection.id,
            )
        ).all()
        if profile is not None
        else []
    )
    facts_query = select(OrderFact).where(OrderFact.connection_id == connection.id)
    facts: dict[int, OrderFact] = {}
    for chunk in _chunks(orders):
        facts.update(
            (f.id, f) for f in session.scalars(facts_query.where(OrderFact.store_id.in_(chunk)))
        )
    if profile is not None:
        facts.update(
            (f.id, f)
            for f in session.scalars(facts_query.where(OrderFact.profile_id == profile.id))
        )
    return {
        "links": [_columns(link) for link in links],
        "ledger": [_columns(row) for row in ledger],
        "profile": None
        if profile is None
        else {
            **_columns(profile),
            "members": [_columns(m, "profile_id") for m in members],
        },
        "order_facts": [
            _columns(f, "profile_id") for f in sorted(facts.values(), key=lambda f: f.id)
        ],
        "conflicts": [_columns(c) for c in conflicts],
    }


def _inbox_view(row: InboxEvent) -> dict[str, Any]:
    return {"id": row.id, **_columns(row, "delivery_id", "account", "event_id")}


def _dead_letter_view(letter: DeadLetter) -> dict[str, Any]:
    return {"id": letter.id, **_columns(letter)}


# ---------------------------------------------------------------------- the job
def _redact_row(session: Session, row: InboxEvent) -> None:
    # The row stays (its delivery id still dedupes a redelivery); what it carried goes.
    row.payload = dict(REDACTED_PAYLOAD)


class _Busy(RateLimitedError):
    """Another job of the connection is running: wait, without counting an attempt."""

    def __init__(self, delay: float) -> None:
        super().__init__("another job of the connection is running", retry_after=delay)


@dataclass
class _Request:
    """What one job is about, read in its first transaction."""

    connection: Connection
    actor: str
    payload: dict[str, Any]
    inbox_id: int | None


class PrivacyJobs:
    """The handler of :data:`JOB` jobs (registered in ``Worker.handlers``)."""

    KIND = JOB

    def __init__(
        self,
        sessions: sessionmaker[Session],
        platforms: Platforms,
        *,
        busy_retry_seconds: float = 2.0,
    ) -> None:
        self.sessions = sessions
        self.platforms = platforms
        self.busy_retry_seconds = busy_retry_seconds

    def run(self, job: Job, _connection: Connection | None = None) -> list[int]:
        """Do one privacy job; returns follow-up job ids (queued by the caller after commit).

        Raises ConfigurationError for an unknown action or setting, and the CRM connector's
        retriable errors.
        """
        action = (job.payload or {}).get("action")
        handlers: dict[str, Callable[[Job, _Request], list[int]]] = {
            CUSTOMER_REDACT: self._forget,
            CUSTOMER_DELETED: self._forget,
            FORGET: self._forget,
            DATA_REQUEST: self._export,
            UNINSTALLED: self._uninstall,
            SHOP_REDACT: self._purge_shop,
            SHOP_PURGE: self._purge_shop,
        }
        handler = handlers.get(action)
        if handler is None:
            raise ConfigurationError(f"unknown privacy action {action!r}")
        with transaction(self.sessions) as session:
            request = self._request(session, job)
        if request is None:  # the connection is gone (purged): nothing of it is left to do
            return self._finish(job, lambda session: None)
        return handler(job, request)

    # -------------------------------------------------------------- steps shared by all
    def _request(self, session: Session, job: Job) -> _Request | None:
        payload = dict(job.payload or {})
        connection = session.get(Connection, payload.get("connection_id"))
        if connection is None:
            return None
        inbox_id = payload.get("inbox_id")
        if inbox_id is not None:
            row = session.get(InboxEvent, inbox_id)
            payload["delivery"] = dict(row.payload or {}) if row is not None else {}
        return _Request(connection, str(payload.get("actor") or "tandem"), payload, inbox_id)

    def _finish(
        self, job: Job, apply: Callable[[Session], list[dict[str, Any]] | None]
    ) -> list[int]:
        """The job's last transaction: its effects, follow-up jobs and "done", atomically."""
        with transaction(self.sessions) as session:
            specs = apply(session) or []
            ids = []
            for spec in specs:
                job_id = jobs.add_job(session, **spec)
                if job_id is not None:
                    ids.append(job_id)
            jobs.mark_enqueued(session, ids)
            jobs.finish(session, job.id)
            # An operator's email hint has done its work: do not keep it in the job row.
            if "email" in (job.payload or {}):
                row = session.get(Job, job.id)
                if row is not None:
                    row.payload = {k: v for k, v in row.payload.items() if k != "email"}
        return ids

    def _processed(self, session: Session, inbox_id: int | None, *, redact: bool) -> None:
        if inbox_id is None:
            return
        row = session.get(InboxEvent, inbox_id)
        if row is None:
            return
        row.status = InboxStatus.PROCESSED
        row.processed_at = utcnow()
        if redact:
            row.payload = dict(REDACTED_PAYLOAD)

    def _wait_if_busy(self, job: Job, connection_id: int) -> None:
        """The connection's own jobs are exclusive by their claim; privacy jobs (no
        ``connection_id``) look for a running one themselves, privacy jobs included."""
        now = utcnow()
        with transaction(self.sessions) as session:
            running = session.scalar(
                select(func.count(Job.id)).where(
                    Job.connection_id == connection_id,
                    Job.status == JobStatus.RUNNING,
                    Job.lease_until >= now,
                )
            )
            if not running:
                running = sum(
                    1
                    for other in session.scalars(
                        select(Job).where(
                            Job.kind == JOB,
                            Job.connection_id.is_(None),
                            Job.status == JobStatus.RUNNING,
                            Job.lease_until >= now,
                            Job.id != job.id,
                        )
                    )
                    if (other.payload or {}).get("connection_id") == connection_id
                    and other.id < job.id
                )
        if running:
            raise _Busy(self.busy_retry_seconds)

    def _who(self, session: Session, request: _Request) -> tuple[Person, list[str]]:
        """The person a customer job is about, and the orders the request named."""
        payload, delivery = request.payload, request.payload.get("delivery")
        if delivery is not None:  # a Shopify compliance delivery
            customer = (
                delivery.get("customer") if isinstance(delivery.get("customer"), dict) else {}
            )
            orders = delivery.get("orders_to_redact") or delivery.get("orders_requested") or []
            named = [str(o) for o in orders if o is not None]
            person = resolve(
                session,
                request.connection,
                customer_id=customer.get("id"),
                email=customer.get("email"),
                order_ids=named,
            )
            return person, named
        person = resolve(
            session,
            request.connection,
            customer_id=payload.get("customer_id"),
            email=payload.get("email"),
        )
        return person, []

    def _scan(
        self,
        model: type[InboxEvent] | type[DeadLetter],
        connection_id: int,
        matches: Callable[[Any], bool],
        act: Callable[[Session, Any], None],
        *,
        skip: int | None = None,
    ) -> int:
        """Visit a connection's inbox rows or dead letters CHUNK at a time (one transaction
        each), acting on those that ``matches``; returns how many matched."""
        last, hits = 0, 0
        while True:
            with transaction(self.sessions) as session:
                rows = session.scalars(
                    select(model)
                    .where(model.connection_id == connection_id, model.id > last)
                    .order_by(model.id)
                    .limit(CHUNK)
                ).all()
                for row in rows:
                    if row.id != skip and matches(row):
                        act(session, row)
                        hits += 1
            if len(rows) < CHUNK:
                return hits
            last = rows[-1].id

    # -------------------------------------------------------------- a person
    def _forget(self, job: Job, request: _Request) -> list[int]:
        connection, action = request.connection, request.payload["action"]
        delivery = request.payload.get("delivery")
        if delivery is not None and (not delivery or delivery.get("redacted")):
            # The request row is already redacted: an earlier run finished. Nothing to redo.
            return self._finish(job, lambda session: None)
        self._wait_if_busy(job, connection.id)
        mode, note = self._mode(request)
        crm_outcome: dict[str, Any] | None = None
        crm = schema = fields = None
        with transaction(self.sessions) as session:
            person, _ = self._who(session, request)
            if mode == KEEP:
                crm_outcome = {"action": KEEP, "result": "kept (setting)"}
            elif person.crm_id is None:
                crm_outcome = {"action": mode, "result": "no contact linked"}
            elif person.shared_with:
                crm_outcome = {
                    "action": mode,
                    "result": "kept",
                    "reason": f"still linked by {person.shared_with} other connection(s) of "
                    "this CRM account; only this connection's links were removed",
                }
            else:
                try:
                    schema = crm_schema(
                        connection.crm_platform, (connection.settings or {}).get("orders_as")
                    )
                    fields = contact_map(session, connection, schema)
                    crm = self.platforms.crm(session, connection, priority=jobs.PRIORITY_LIVE)
                except (ConfigurationError, SecretsError, FieldMapError) as exc:
                    crm_outcome = self._crm_failed(mode, person, exc)
        if crm_outcome is None and crm is not None and schema is not None and fields is not None:
            contact_id = person.crm_id or ""
            try:
                crm_outcome = {
                    "action": mode,
                    **apply_to_crm(
                        crm, schema, fields, mode, contact_id, key_field=_key_field(connection)
                    ),
                }
            except (PermanentError, ConfigurationError) as exc:
                crm_outcome = self._crm_failed(mode, person, exc)
            if crm_outcome.get("result") == "refused":
                crm_outcome["contact_id"] = contact_id
        crm_outcome = crm_outcome or {"action": mode, "result": "not reached"}
        if note:
            crm_outcome["note"] = note

        redacted = self._scan(
            InboxEvent,
            connection.id,
            lambda row: inbox_row_about(row, connection, person),
            _redact_row,
            skip=request.inbox_id,
        )
        dead = self._scan(
            DeadLetter,
            connection.id,
            lambda letter: dead_letter_about(letter, person),
            lambda session, letter: session.delete(letter),
        )

        def apply(session: Session) -> None:
            removed = purge_person(session, connection.id, person)
            removed["dead_letters"] = dead
            self._processed(session, request.inbox_id, redact=True)
            audit(
                session,
                connection.id,
                AUDIT_ACTIONS[action],
                person.subject,
                request.actor,
                {
                    "crm": crm_outcome,
                    "removed": removed,
                    "inbox_redacted": redacted + (1 if request.inbox_id is not None else 0),
                    "orders": len(person.order_ids),
                },
            )

        return self._finish(job, apply)

    @staticmethod
    def _mode(request: _Request) -> tuple[str, str | None]:
        """What the CRM gets: the job's override, else the connection's setting. A setting
        that is not one of the choices keeps the contact (the erasure of Tandem's copies must
        not wait on a typo) and says so in the audit."""
        override = request.payload.get("crm")
        if override in ON_CUSTOMER_DELETE:
            return override, None
        try:
            return customer_delete_setting(request.connection.settings), None
        except ConfigurationError as exc:
            return KEEP, f"{exc}; the contact was kept"

    @staticmethod
    def _crm_failed(mode: str, person: Person, exc: Exception) -> dict[str, Any]:
        # The person's copies in Tandem still go (the request must be honoured); the contact
        # id stays in the audit so that an operator can finish the CRM side by hand. The
        # platform's message is left out: it may quote the person's data.
        log.error("privacy: the CRM refused %s of %s: %s", mode, person.subject, type(exc).__name__)
        return {
            "action": mode,
            "result": "failed",
            "error": type(exc).__name__,
            "contact_id": person.crm_id,
        }

    def _export(self, job: Job, request: _Request) -> list[int]:
        connection = request.connection
        delivery = request.payload.get("delivery") or {}
        with transaction(self.sessions) as session:
            person, named = self._who(session, request)
        inbox_rows: list[dict[str, Any]] = []
        letters: list[dict[str, Any]] = []
        self._scan(
            InboxEvent,
            connection.id,
            lambda row: inbox_row_about(row, connection, person),
            lambda session, row: inbox_rows.append(_inbox_view(row)),
        )
        self._scan(
            DeadLetter,
            connection.id,
            lambda letter: dead_letter_about(letter, person),
            lambda session, letter: letters.append(_dead_letter_view(letter)),
        )
        request_id = str(
            (delivery.get("data_request") or {}).get("id") or f"inbox:{request.inbox_id}"
        )

        def apply(session: Session) -> None:
            held = export_person(session, connection, person)
            content = {
                "request": {
                    "id": request_id,
                    "customer_id": person.customer_id,
                    "orders_requested": named,
                    "received_at": utcnow().isoformat(),
                },
                "connection": {
                    "id": connection.id,
                    "store": f"{connection.store_platform}:{connection.store_account}",
                    "crm": f"{connection.crm_platform}:{connection.crm_account}",
                },
                "person": {"customer_id": person.customer_id, "email": person.email},
                **held,
                "dead_letters": letters,
                "inbox": inbox_rows,
            }
            row = session.scalar(
                select(PrivacyExport).where(
                    PrivacyExport.connection_id == connection.id,
                    PrivacyExport.request_id == request_id,
                )
            )
            if row is None:
                row = PrivacyExport(connection_id=connection.id, request_id=request_id)
                session.add(row)
            row.subject = person.subject
            row.content = content
            row.created_at = utcnow()
            session.flush()
            self._processed(session, request.inbox_id, redact=False)
            audit(
                session,
                connection.id,
                AUDIT_ACTIONS[DATA_REQUEST],
                person.subject,
                request.actor,
                {
                    "export_id": row.id,
                    "request_id": request_id,
                    "held": {
                        "links": len(held["links"]),
                        "ledger": len(held["ledger"]),
                        "profile": held["profile"] is not None,
                        "order_facts": len(held["order_facts"]),
                        "conflicts": len(held["conflicts"]),
                        "dead_letters": len(letters),
                        "inbox": len(inbox_rows),
                    },
                },
            )

        return self._finish(job, apply)

    # -------------------------------------------------------------- a shop
    def _uninstall(self, job: Job, request: _Request) -> list[int]:
        connection = request.connection
        platform = connection.store_platform

        def apply(session: Session) -> list[dict[str, Any]]:
            row = session.get(Connection, connection.id)
            if row is None:
                return []
            row.status = ConnectionStatus.DISCONNECTED
            now = utcnow()
            cancelled = session.execute(
                update(Job)
                .where(Job.connection_id == connection.id, Job.status == JobStatus.PENDING)
                .values(
                    status=JobStatus.FAILED,
                    dedupe_key=None,
                    finished_at=now,
                    last_error="cancelled: the app was uninstalled",
                )
            ).rowcount
            credentials = session.execute(
                delete(Credential).where(
                    Credential.connection_id == connection.id, Credential.side == "store"
                )
            ).rowcount
            follow: list[dict[str, Any]] = []
            details: dict[str, Any] = {
                "jobs_cancelled": cancelled,
                "store_credentials_deleted": credentials,
            }
            if platform in SENDS_SHOP_REDACT:
                details["purge"] = "on shop/redact, which Shopify sends 48 hours after uninstall"
            else:
                try:
                    hours = retention_hours(row.settings)
                except ConfigurationError as exc:
                    hours = DEFAULT_RETENTION_HOURS
                    details["note"] = f"{exc}; the default applies"
                due = now + timedelta(hours=hours)
                follow.append(
                    {
                        **_spec(connection.id, SHOP_PURGE, actor="tandem (retention)"),
                        "run_after": due,
                        "dedupe_key": f"{JOB}:{connection.id}:{SHOP_PURGE}",
                    }
                )
                details["purge"] = f"scheduled for {due.isoformat()} ({hours:g} h retention)"
            self._processed(session, request.inbox_id, redact=False)
            audit(
                session,
                connection.id,
                AUDIT_ACTIONS[UNINSTALLED],
                f"shop:{connection.store_account}",
                request.actor,
                details,
            )
            return follow

        return self._finish(job, apply)

    def _purge_shop(self, job: Job, request: _Request) -> list[int]:
        connection, action = request.connection, request.payload["action"]
        subject = f"shop:{connection.store_account}"
        self._wait_if_busy(job, connection.id)  # a job already running finishes first

        def apply(session: Session) -> None:
            row = session.get(Connection, connection.id)
            if row is None:
                return
            if action == SHOP_PURGE and row.status != ConnectionStatus.DISCONNECTED:
                # Reinstalled within the retention window: the shop's data is in use again.
                audit(
                    session,
                    connection.id,
                    AUDIT_ACTIONS[action],
                    subject,
                    request.actor,
                    {"skipped": f"the connection is {row.status} again"},
                )
                return
            removed = purge_shop(session, connection.id, keep_job=job.id)
            audit(
                session,
                connection.id,
                AUDIT_ACTIONS[action],
                subject,
                request.actor,
                {"cause": action, "removed": removed},
            )

        return self._finish(job, apply)
