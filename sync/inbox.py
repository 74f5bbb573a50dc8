"""The webhook inbox: what ``webhooks/`` may touch of the engine.

``record`` stores one verified delivery and, when it is routable, the job that will process it,
in the caller's transaction. The platform's delivery id is unique, so a redelivery is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from sync import jobs, privacy
from sync.models import Connection, ConnectionStatus, InboxEvent, InboxStatus, utcnow
from sync.secrets import SecretsError, Vault

DRAIN = "inbox_drain"
# The CRM's deliveries drain in a job of their own: a CRM-side failure never holds up the
# store's changes, nor the other way round.
CRM_DRAIN = "crm_drain"
# The credential kind under which a connection's webhook secret is kept (store side).
WEBHOOK_SECRET_KIND = "webhook_secret"  # noqa: S105 - the name of a credential


@dataclass(frozen=True)
class Recorded:
    duplicate: bool
    routable: bool
    job_id: int | None


def record(
    session: Session,
    *,
    platform: str,
    delivery_id: str,
    account: str,
    topic: str,
    payload: dict[str, Any],
    deferred_topics: frozenset[str] = frozenset(),
    event_id: str | None = None,
    triggered_at: datetime | None = None,
) -> Recorded:
    """Store a store platform's delivery (idempotently) and queue its processing.

    Deliveries for an account with no connection are kept as ``unroutable`` for operators;
    topics in ``deferred_topics`` (compliance, uninstall) are kept as ``deferred``, which the
    drain leaves alone, and get a privacy job of their own (``sync.privacy``) in this
    transaction, whatever the connection's status.
    """
    connection = session.scalar(
        select(Connection).where(
            Connection.store_platform == platform, Connection.store_account == account
        )
    )
    status = InboxStatus.UNROUTABLE if connection is None else InboxStatus.PENDING
    if connection is not None and topic in deferred_topics:
        status = InboxStatus.DEFERRED
    inserted = _insert(
        session,
        platform=platform,
        delivery_id=delivery_id,
        account=account,
        connection=connection,
        topic=topic,
        payload=payload,
        status=status,
        event_id=event_id,
        triggered_at=triggered_at,
    )
    if not inserted:
        return Recorded(duplicate=True, routable=connection is not None, job_id=None)
    job_id = None
    if status == InboxStatus.PENDING and connection.status == ConnectionStatus.ACTIVE:
        job_id = drain_job(session, connection.id)
    elif status == InboxStatus.DEFERRED:
        # Even for a disconnected connection: Shopify's shop/redact comes 48 h after the
        # uninstall that disconnected it, and is what purges the shop.
        row_id = session.scalar(
            select(InboxEvent.id).where(
                InboxEvent.platform == platform, InboxEvent.delivery_id == delivery_id
            )
        )
        job_id = privacy.queue_delivery(session, connection, topic, row_id)
    return Recorded(duplicate=False, routable=connection is not None, job_id=job_id)


def record_crm(
    session: Session,
    *,
    platform: str,
    delivery_id: str,
    account: str,
    topic: str,
    payload: dict[str, Any],
    connection_id: int | None = None,
    event_id: str | None = None,
    triggered_at: datetime | None = None,
    change_source: str | None = None,
) -> list[Recorded]:
    """Store a CRM's delivery (idempotently) for every connection it concerns.

    A CRM account can serve several stores of one merchant (that is how one person is one
    contact), so a change in it is recorded once per connection whose CRM account it is, under
    ``<delivery_id>@<connection id>``: each connection writes its own store and its redelivery
    is still a no-op. ``connection_id`` narrows it to one connection, for channels registered
    per connection (Zoho watch channels, Salesforce outbound-message endpoints). An account
    with no connection is kept once, as ``unroutable``. Returns one Recorded per row.
    """
    query = select(Connection).where(
        Connection.crm_platform == platform, Connection.crm_account == account
    )
    if connection_id is not None:
        query = query.where(Connection.id == connection_id)
    connections = list(session.scalars(query.order_by(Connection.id)))
    out = []
    for connection in connections or [None]:
        inserted = _insert(
            session,
            platform=platform,
            # Unroutable, it is kept once under the platform's own id.
            delivery_id=f"{delivery_id}@{connection.id}" if connection else delivery_id,
            account=account,
            connection=connection,
            topic=topic,
            payload=payload,
            status=InboxStatus.PENDING if connection else InboxStatus.UNROUTABLE,
            event_id=event_id,
            triggered_at=triggered_at,
            change_source=change_source,
        )
        job_id = None
        if inserted and connection is not None and connection.status == ConnectionStatus.ACTIVE:
            job_id = drain_job(session, connection.id, CRM_DRAIN)
        out.append(Recorded(duplicate=not inserted, routable=connection is not None, job_id=job_id))
    return out


def _insert(
    session: Session,
    *,
    platform: str,
    delivery_id: str,
    account: str,
    connection: Connection | None,
    topic: str,
    payload: dict[str, Any],
    status: InboxStatus,
    event_id: str | None,
    triggered_at: datetime | None,
    change_source: str | None = None,
) -> bool:
    """Insert one inbox row unless (platform, delivery_id) is already there; True if inserted."""
    values = {
        "platform": platform,
        "delivery_id": delivery_id,
        "account": account,
        "connection_id": connection.id if connection else None,
        "topic": topic,
        "event_id": event_id,
        "triggered_at": triggered_at,
        "change_source": change_source,
        "payload": payload,
        "status": status,
        "received_at": utcnow(),
    }
    dialect = session.get_bind().dialect.name
    ins = (postgresql if dialect == "postgresql" else sqlite).insert(InboxEvent).values(**values)
    inserted = session.execute(
        ins.on_conflict_do_nothing(index_elements=["platform", "delivery_id"]).returning(
            InboxEvent.id
        )
    ).scalar_one_or_none()
    return inserted is not None


def drain_job(session: Session, connection_id: int, kind: str = DRAIN) -> int | None:
    """At most one pending drain (of each kind) per connection: a burst of deliveries is one
    job, and the job processes them in the platforms' batch sizes."""
    return jobs.add_job(
        session,
        kind=kind,
        connection_id=connection_id,
        priority=jobs.PRIORITY_LIVE,
        dedupe_key=f"{kind}:{connection_id}",
    )


def pending(session: Session, connection_id: int, limit: int, platform: str) -> list[InboxEvent]:
    """The oldest unprocessed deliveries of one platform (the store's or the CRM's)."""
    return list(
        session.scalars(
            select(InboxEvent)
            .where(
                InboxEvent.connection_id == connection_id,
                InboxEvent.platform == platform,
                InboxEvent.status == InboxStatus.PENDING,
            )
            .order_by(InboxEvent.id)
            .limit(limit)
        )
    )


def webhook_secret(
    session: Session,
    vault: Vault,
    platform: str,
    *,
    connection_id: int | None = None,
    account: str | None = None,
) -> tuple[Connection, str] | None:
    """The store connection a delivery claims to be for, and the webhook secret Tandem gave
    that store when it registered its webhooks; None if either is unknown.

    For platforms whose deliveries are authenticated per connection (WooCommerce signs with the
    webhook's secret, BigCommerce sends the header registered with the hook), unlike Shopify's
    app-wide client secret.
    """
    query = select(Connection).where(Connection.store_platform == platform)
    if connection_id is not None:
        query = query.where(Connection.id == connection_id)
    if account is not None:
        query = query.where(Connection.store_account == account)
    connection = session.scalar(query)
    if connection is None:
        return None
    try:
        return connection, vault.get(session, connection.id, "store", WEBHOOK_SECRET_KIND)
    except SecretsError:
        return None


# The credential kind under which a connection's CRM change-channel secret is kept (CRM side):
# the ``token`` of a Zoho watch channel, the ``?key=`` of a Salesforce outbound-message URL.
WEBHOOK_TOKEN_KIND = "webhook_token"  # noqa: S105 - the name of a credential


def crm_channel_token(
    session: Session, vault: Vault, platform: str, connection_id: int
) -> tuple[Connection, str] | None:
    """The CRM connection a change notification claims to be for, and the channel secret Tandem
    gave that CRM (credential side "crm", kind ``webhook_token``); None if either is unknown.

    For CRMs whose notifications are authenticated per connection: Zoho echoes the watch
    channel's ``token``, Salesforce outbound messages carry the ``?key=`` of the endpoint URL.
    """
    connection = session.scalar(
        select(Connection).where(
            Connection.id == connection_id, Connection.crm_platform == platform
        )
    )
    if connection is None:
        return None
    try:
        return connection, vault.get(session, connection.id, "crm", WEBHOOK_TOKEN_KIND)
    except SecretsError:
        return None
