"""The state store's tables. Every row that belongs to a merchant carries ``connection_id``.

Tenancy rule: code reads and writes these tables through queries filtered by connection; no
query joins across connections except the operator-wide health views in ``sync.health``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which stores naive text) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the state store; use UTC-aware values")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Stable constraint names so Alembic batch migrations on SQLite can find them.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar = {datetime: UTCDateTime, dict[str, Any]: JSON}


class ConnectionStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"


class Connection(Base):
    """A store account tied to a CRM account, with its settings."""

    __tablename__ = "connections"
    __table_args__ = (UniqueConstraint("store_platform", "store_account"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    store_platform: Mapped[str] = mapped_column(String(32))
    store_account: Mapped[str] = mapped_column(String(255))
    crm_platform: Mapped[str] = mapped_column(String(32))
    crm_account: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default=ConnectionStatus.ACTIVE)
    # default_region, pipeline, stage_map, poll_interval_seconds, ... (see sync.settings_schema)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Credential(Base):
    """An encrypted secret of one side of a connection (MultiFernet token, never plaintext)."""

    __tablename__ = "credentials"
    __table_args__ = (UniqueConstraint("connection_id", "side", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    side: Mapped[str] = mapped_column(String(8))  # "store" | "crm"
    kind: Mapped[str] = mapped_column(String(32))  # "access_token", later "refresh_token", ...
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(default=None)


class FieldMapOverride(Base):
    """A per-connection change to the default field map (source_path None drops a mapping)."""

    __tablename__ = "field_map_overrides"
    __table_args__ = (UniqueConstraint("connection_id", "entity", "crm_property"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))  # "contact" | "deal" | "line_item"
    crm_property: Mapped[str] = mapped_column(String(200))
    source_path: Mapped[str | None] = mapped_column(String(200))


class Checkpoint(Base):
    """How far a stream of one connection has read: (updated_at, id) and stream-specific state."""

    __tablename__ = "checkpoints"
    __table_args__ = (UniqueConstraint("connection_id", "entity", "stream"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))  # "customers" | "orders"
    stream: Mapped[str] = mapped_column(String(16))  # "poll" | "backfill"
    position_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    position_id: Mapped[str | None] = mapped_column(String(64), default=None)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Link(Base):
    """A store record linked to the CRM record we keep in step with it.

    ``last_hash``/``last_written`` are what Tandem last wrote for it, so an unchanged record
    costs no API call; ``store_updated_at`` is the newest store version applied, so a late or
    replayed event never moves the CRM back to an older state.
    """

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("connection_id", "entity", "store_id"),
        Index("ix_links_crm", "connection_id", "crm_object", "crm_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    # "customer" | "order" | "line_item" | "email" | "product" | "price_entry"
    entity: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(320))
    crm_object: Mapped[str] = mapped_column(String(32))
    crm_id: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str | None] = mapped_column(String(64), default=None)
    last_written: Mapped[dict[str, Any]] = mapped_column(default=dict)
    store_updated_at: Mapped[datetime | None] = mapped_column(default=None)
    store_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InboxStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    UNROUTABLE = "unroutable"  # validly signed, but no connection for the account
    DEFERRED = "deferred"  # compliance and uninstall topics: a privacy job acts on them
    FAILED = "failed"


class InboxEvent(Base):
    """A webhook delivery, stored before we answer 2xx. Unique on the platform's delivery id."""

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("platform", "delivery_id"),
        Index("ix_inbox_pending", "connection_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(32))
    delivery_id: Mapped[str] = mapped_column(String(200))
    account: Mapped[str] = mapped_column(String(255))
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), default=None
    )
    topic: Mapped[str] = mapped_column(String(100))
    event_id: Mapped[str | None] = mapped_column(String(200), default=None)
    triggered_at: Mapped[datetime | None] = mapped_column(default=None)
    # Who made the change, where the platform says (HubSpot ``changeSource``/``sourceId``,
    # Salesforce ``LastModifiedById``, Zoho ``Modified_By``): a hint, checked against the ledger.
    change_source: Mapped[str | None] = mapped_column(String(200), default=None)
    payload: Mapped[dict[str, Any]] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(default=None)


class JobStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # gave up: attempts exhausted or a configuration error


class Job(Base):
    """The unit of work and the source of truth; Huey only executes it.

    ``dedupe_key`` holds while a job is pending (e.g. one pending inbox drain per connection)
    and is cleared when the job is claimed; NULLs never collide in a unique index.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_ready", "status", "priority", "run_after"),
        Index("ix_jobs_connection", "connection_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connection_id: Mapped[int | None] = mapped_column(
        ForeignKey("connections.id", ondelete="CASCADE"), default=None
    )
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    priority: Mapped[int] = mapped_column(default=0)  # 0 live, 1 poll, 2 backfill
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True, default=None)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=10)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(default=None)
    enqueued_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DeadLetterStatus(enum.StrEnum):
    OPEN = "open"
    REPLAYED = "replayed"
    RESOLVED = "resolved"


class DeadLetter(Base):
    """A record that could not be synced, with the platform's reason; editable and replayable."""

    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_open", "connection_id", "status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(320))
    platform: Mapped[str] = mapped_column(String(32))  # who refused it ("hubspot", "tandem")
    reason: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The store record as last received (the operator may edit it before replaying).
    record: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=DeadLetterStatus.OPEN)
    occurrences: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class RateBucket(Base):
    """A leaky bucket shared by every worker that calls one platform account."""

    __tablename__ = "rate_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    capacity: Mapped[float] = mapped_column()
    refill_per_second: Mapped[float] = mapped_column()
    level: Mapped[float] = mapped_column()  # tokens available at ``as_of``
    as_of: Mapped[float] = mapped_column()  # epoch seconds
    blocked_until: Mapped[float] = mapped_column(default=0.0)
    # A daily (or rolling 24-hour) allocation, where the platform reports one: Salesforce's
    # Sforce-Limit-Info api-usage, Zoho's X-API-CREDITS-REMAINING. None until it does.
    daily_remaining: Mapped[float | None] = mapped_column(default=None)
    daily_limit: Mapped[float | None] = mapped_column(default=None)
    daily_as_of: Mapped[float | None] = mapped_column(default=None)  # epoch seconds


class AccessTokenRow(Base):
    """The current OAuth access token of one CRM account, shared by every worker.

    ``lease_until`` is the refresh lock: a worker that finds the token stale takes the lease
    with a compare-and-set UPDATE, mints outside any transaction, writes the token and drops
    the lease; the others wait for that token instead of minting their own.
    """

    __tablename__ = "access_tokens"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)  # "zoho:<account>"
    ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    expires_at: Mapped[float] = mapped_column(default=0.0)  # epoch seconds
    instance_url: Mapped[str | None] = mapped_column(String(500), default=None)
    # The latest refresh token, when the platform rotates them (Salesforce may).
    refresh_ciphertext: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
    lease_until: Mapped[float] = mapped_column(default=0.0)
    minted: Mapped[int] = mapped_column(default=0)  # tokens minted so far (health, tests)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class FieldState(Base):
    """The ledger: one two-way field of one linked record, as each side last had it.

    Values are canonical and JSON (``{"v": value}``, so a stored null is a value). ``agreed`` is
    the value both sides last held; ``store_value``/``crm_value`` with their ``*_at`` are the
    newest observation of each side, by the platform's own modification time; ``written_*``
    is Tandem's last write of this field: which side, what value, when. An inbound value equal
    to what Tandem wrote to that side is an echo.
    """

    __tablename__ = "field_ledger"
    __table_args__ = (UniqueConstraint("connection_id", "entity", "store_id", "field"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))  # "customer"
    store_id: Mapped[str] = mapped_column(String(320))
    field: Mapped[str] = mapped_column(String(100))  # canonical path, e.g. "first_name"
    agreed: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    store_value: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    store_at: Mapped[datetime | None] = mapped_column(default=None)
    crm_value: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    crm_at: Mapped[datetime | None] = mapped_column(default=None)
    # Tandem's last write to each side (kept per side: an old write of ours that lands after a
    # newer one must still be recognised as ours, and put right).
    store_written: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    crm_written: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    written_at: Mapped[datetime | None] = mapped_column(default=None)
    origin: Mapped[str | None] = mapped_column(String(8), default=None)  # side ``agreed`` came from
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConflictRecord(Base):
    """An audit record of one decision where both sides had changed a field since they agreed."""

    __tablename__ = "conflicts"
    __table_args__ = (Index("ix_conflicts_connection", "connection_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    entity: Mapped[str] = mapped_column(String(32))
    store_id: Mapped[str] = mapped_column(String(320))
    crm_id: Mapped[str | None] = mapped_column(String(64), default=None)
    field: Mapped[str] = mapped_column(String(100))
    store_value: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    store_at: Mapped[datetime | None] = mapped_column(default=None)
    crm_value: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    crm_at: Mapped[datetime | None] = mapped_column(default=None)
    winner: Mapped[str] = mapped_column(String(8))  # "store" | "crm"
    policy: Mapped[str] = mapped_column(String(16))  # "store" | "crm" | "latest"
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Profile(Base):
    """One person in one CRM account: the CRM contact every connected store's customer with
    the same normalised email is linked to.

    Scoped by CRM account, not by connection: the connections of one merchant share their CRM
    account, and that is what makes a buyer of two stores one contact. A connection only ever
    reads the members of a profile that belong to it (``ProfileMember.connection_id``).
    """

    __tablename__ = "profiles"
    __table_args__ = (UniqueConstraint("crm_platform", "crm_account", "email"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    crm_platform: Mapped[str] = mapped_column(String(32))
    crm_account: Mapped[str] = mapped_column(String(255))
    email: Mapped[str] = mapped_column(String(320))
    crm_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ProfileMember(Base):
    """A store customer (or a guest's email) of one connection, joined to a profile.

    ``merged_reason`` is set when the member joined a profile that already had a member from
    another connection: that is a merge, and ``profiles merges`` lists them.
    """

    __tablename__ = "profile_members"
    __table_args__ = (
        UniqueConstraint("connection_id", "store_id"),
        Index("ix_profile_members_profile", "profile_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    profile_id: Mapped[int] = mapped_column(ForeignKey("profiles.id", ondelete="CASCADE"))
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    store_id: Mapped[str] = mapped_column(String(320))  # customer id, or "guest:<email>"
    merged_reason: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OrderFact(Base):
    """What the commerce facts of a contact are computed from: one row per store order."""

    __tablename__ = "order_facts"
    __table_args__ = (
        UniqueConstraint("connection_id", "store_id"),
        Index("ix_order_facts_profile", "profile_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    store_id: Mapped[str] = mapped_column(String(320))
    profile_id: Mapped[int | None] = mapped_column(
        ForeignKey("profiles.id", ondelete="SET NULL"), default=None
    )
    currency: Mapped[str] = mapped_column(String(3))
    # Decimal strings in the currency's units: exact, and the same on SQLite and PostgreSQL.
    total: Mapped[str] = mapped_column(String(40))
    refunded: Mapped[str] = mapped_column(String(40))
    placed_at: Mapped[datetime] = mapped_column()
    counts: Mapped[bool] = mapped_column(default=True)  # False: cancelled, voided or a test
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditEntry(Base):
    """An action taken on a person's or a shop's data (redaction, export, purge, uninstall).

    ``connection_id`` is kept as a plain column (no foreign key) so the record of a purge
    survives the connection it purged.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_connection", "connection_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    connection_id: Mapped[int | None] = mapped_column(default=None)
    action: Mapped[str] = mapped_column(String(64))  # e.g. "customer.redact", "shop.purge"
    subject: Mapped[str] = mapped_column(String(320))  # e.g. "customer:1234", "shop:acme"
    actor: Mapped[str] = mapped_column(String(64))  # e.g. "shopify webhook", "operator"
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PrivacyExport(Base):
    """What Tandem holds about one person, produced for a data request."""

    __tablename__ = "privacy_exports"
    __table_args__ = (UniqueConstraint("connection_id", "request_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    connection_id: Mapped[int] = mapped_column(ForeignKey("connections.id", ondelete="CASCADE"))
    request_id: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(320))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
