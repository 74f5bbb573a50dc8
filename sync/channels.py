"""The CRM -> Tandem push channels of a connection: set up, kept alive, and what they need.

- HubSpot: nothing per connection. Webhooks belong to the app (one target URL for every
  account that installed it, signed with the app's client secret) [HS-WH].
- Zoho CRM: a watch channel per connection (shared/reference/api-crms.md section 3.6). It
  expires (at most a week after it is enabled; a longer request gets one hour), so it is
  renewed before that; Zoho echoes its ``token`` in every callback, and that token is the only
  proof a callback is Zoho's, so it is a secret of the connection (credential side "crm",
  kind ``webhook_token``). The channel's state is a Checkpoint row (entity "crm_channel",
  stream "watch": ``{channel_id, expires_at, notify_url}``).
- Salesforce: an outbound message is configured by the org's admin (a workflow rule or flow
  action, SF-OM); Tandem can only hand them the endpoint URL, whose ``?key=`` secret stands in
  for the signature Salesforce does not make (see webhooks/salesforce.py).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from sync.db import transaction
from sync.inbox import WEBHOOK_TOKEN_KIND
from sync.models import Checkpoint, Connection, utcnow
from sync.secrets import SecretsError, Vault

CHANNEL_ENTITY = "crm_channel"
CHANNEL_STREAM = "watch"
ZOHO_EVENTS = ("Contacts.all",)
# Zoho's longest channel: a week (v4 and later; enable.html). A channel_expiry past it gets the
# default hour instead, so the request stays a little inside the week, clock skew included.
ZOHO_MAX_LIFETIME = timedelta(days=7)
ZOHO_LIFETIME_MARGIN = timedelta(minutes=10)
RENEW_BEFORE = timedelta(hours=1)
# Channel ids are longs chosen by the client and unique within the org: a fixed base plus the
# connection id keeps each connection's stable across restarts and renewals.
ZOHO_CHANNEL_BASE = 7_300_000_000_000
# 32 URL-safe characters: Zoho takes at most 50, and it goes in a Salesforce URL's query.
TOKEN_BYTES = 24


class Watcher(Protocol):
    """What ensure_channels needs of a Zoho connector (connectors.zoho.ZohoConnector)."""

    def watch(
        self, channel_id: int, events: list[str], notify_url: str, token: str, expiry: datetime
    ) -> datetime: ...


def channel_token(session: Session, vault: Vault, connection: Connection) -> str:
    """The connection's channel secret, made (and stored encrypted) the first time."""
    try:
        return vault.get(session, connection.id, "crm", WEBHOOK_TOKEN_KIND)
    except SecretsError:
        token = secrets.token_urlsafe(TOKEN_BYTES)
        vault.put(session, connection.id, "crm", WEBHOOK_TOKEN_KIND, token)
        session.flush()
        return token


def zoho_channel_id(connection_id: int) -> int:
    return ZOHO_CHANNEL_BASE + connection_id


def ensure_channels(
    sessions: sessionmaker[Session],
    vault: Vault,
    crm_connector: Any,
    connection_id: int,
    public_url: str,
    *,
    now: datetime | None = None,
) -> datetime | None:
    """Make sure the connection's CRM notifies Tandem of changes; returns when to call again
    (None: nothing to renew).

    Zoho: subscribes ``Contacts.all`` to ``{public_url}/webhooks/zoho/{id}`` when no channel
    is known, when it expires within the hour or when its URL changed, asking for the longest
    lifetime; otherwise calls nothing. Salesforce: makes the ``?key=`` secret the admin's
    endpoint URL needs (salesforce_endpoint). HubSpot: nothing (app-level webhooks).

    The call to Zoho is made between two short transactions, never inside one: the connector
    itself writes to the state store (its rate budget, its token), and a transaction held
    across a platform call would hold SQLite's write lock against it. Raises what the
    connector raises (ConfigurationError when the Zoho token lacks ZohoCRM.notifications.ALL,
    PermanentError, RetriableError, ...).
    """
    now = now or utcnow()
    with transaction(sessions) as session:
        connection = session.get(Connection, connection_id)
        if connection is None or connection.crm_platform not in ("zoho", "salesforce"):
            return None
        token = channel_token(session, vault, connection)
        if connection.crm_platform == "salesforce":
            return None
        channel_id = zoho_channel_id(connection_id)
        notify_url = f"{public_url.rstrip('/')}/webhooks/zoho/{connection_id}"
        state = dict(_checkpoint(session, connection_id).state or {})
    expires_at = _parse(state.get("expires_at"))
    if (
        expires_at is not None
        and expires_at - now > RENEW_BEFORE
        and state.get("channel_id") == channel_id
        and state.get("notify_url") == notify_url
    ):
        return _renew_at(expires_at, now)
    zoho: Watcher = crm_connector
    granted = zoho.watch(
        channel_id,
        list(ZOHO_EVENTS),
        notify_url,
        token,
        now + ZOHO_MAX_LIFETIME - ZOHO_LIFETIME_MARGIN,
    )
    renew_at = _renew_at(granted, now)
    with transaction(sessions) as session:
        checkpoint = _checkpoint(session, connection_id)
        # A new dict: the JSON column notices a replaced value, not one changed in place.
        checkpoint.state = {
            "channel_id": channel_id,
            "expires_at": granted.isoformat(),
            "notify_url": notify_url,
            "events": list(ZOHO_EVENTS),
        }
        checkpoint.position_updated_at = now
        checkpoint.next_run_at = renew_at
    return renew_at


def _checkpoint(session: Session, connection_id: int) -> Checkpoint:
    checkpoint = session.scalar(
        select(Checkpoint).where(
            Checkpoint.connection_id == connection_id,
            Checkpoint.entity == CHANNEL_ENTITY,
            Checkpoint.stream == CHANNEL_STREAM,
        )
    )
    if checkpoint is None:
        checkpoint = Checkpoint(
            connection_id=connection_id, entity=CHANNEL_ENTITY, stream=CHANNEL_STREAM, state={}
        )
        session.add(checkpoint)
        session.flush()
    return checkpoint


def _renew_at(expires_at: datetime, now: datetime) -> datetime:
    """An hour before expiry; halfway there when Zoho granted less than two hours (it gives one
    hour to a request it finds too long), so a short channel is renewed, not lost."""
    left = expires_at - now
    if left <= timedelta(0):
        return now
    return expires_at - min(RENEW_BEFORE, left / 2)


def _parse(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def salesforce_endpoint(
    session: Session, vault: Vault, connection: Connection, public_url: str
) -> str:
    """The URL to give the Salesforce admin as the outbound message's Endpoint URL, secret
    ``?key=`` included (made on first use). Treat it as a credential."""
    token = channel_token(session, vault, connection)
    return f"{public_url.rstrip('/')}/webhooks/salesforce/{connection.id}?key={token}"
