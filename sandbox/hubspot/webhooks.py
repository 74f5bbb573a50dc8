"""Webhook deliveries the way HubSpot sends CRM object events, retries included.

Facts (shared/reference/api-crms.md section 1.6, sources there):
- An app has one target URL and subscriptions (``contact.creation``, ``contact.propertyChange``
  per property name, ``contact.deletion``, ... the same families for the other objects) [HS-WH,
  HS-WH-CFG]. Here a portal's settings stand for the app's, set with ``POST
  /_sandbox/portals/<id>/webhooks``; a ``propertyChange`` subscription without a property name
  is the simulator's shorthand for one per property.
- A POST carries a JSON array of events ``{eventId, subscriptionId, portalId, appId,
  occurredAt (epoch ms), subscriptionType, attemptNumber, objectId, propertyName,
  propertyValue, changeSource, sourceId, changeFlag}`` [HS-WH; HS-VALIDATE v1 example], up to
  ``max_batch`` (default 100, a figure UNCONFIRMED on a primary page) per request. One
  ``propertyChange`` event per changed property, the value as a string ("" when cleared,
  UNCONFIRMED). A creation also sends ``propertyChange`` events for the properties it set,
  for the subscriptions that want them (UNCONFIRMED; knob ``webhook_property_changes_on_create``).
- Who changed it: ``changeSource`` ``INTEGRATION`` with ``sourceId`` the app id for writes
  through the API with the app's token, ``CRM_UI`` with ``sourceId`` ``userId:<n>`` for a user's
  edit (the control API); ``changeFlag`` ``NEW`` on creations (HS-VALIDATE v1 example),
  ``DELETED`` on deletions (UNCONFIRMED).
- Signed as HubSpot signs for a legacy public app [HS-VALIDATE, HS-SIGV3-CL]:
  ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, "POST" + URI + body +
  timestamp)) with ``X-HubSpot-Request-Timestamp`` (epoch ms, this machine's wall clock: the
  receiver checks it against its own), the URI being the target URL with the escapes of
  ``: / ? @ ! $ ' ( ) * , ;`` decoded; and the v1 ``X-HubSpot-Signature`` (hex SHA-256 of
  secret + body) with ``X-HubSpot-Signature-Version: v1``.
- A delivery fails on a connection error, a timeout (5 s) or any 4xx/5xx, and is retried up to
  10 times over 24 hours with randomized delays [HS-ERR], ``attemptNumber`` counting the
  retries (0 first), re-signed each time. ``webhook_time_scale`` compresses the schedule.
- Bounded: at most MAX_QUEUED events wait per portal (more are dropped and logged), and only
  the configured target URL is ever called.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from sandbox.hubspot.schema import OBJECT_TYPES
from sandbox.hubspot.store import Record

RETRIES = 10
RETRY_WINDOW_S = 24 * 3600
# Growing delays whose ten steps add up to the 24-hour window (about 84 s, 169 s, ... 12 h).
RETRY_DELAYS_S = tuple(RETRY_WINDOW_S * 2**k / (2**RETRIES - 1) for k in range(RETRIES))
CONNECT_TIMEOUT_S = 2.0
MAX_QUEUED = 10_000
MAX_BATCH = 100
DEFAULT_USER_ID = 42
EVENT_KINDS = ("creation", "propertyChange", "deletion")
# The escapes HubSpot decodes in the URI before signing [HS-VALIDATE].
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def signing_uri(uri: str) -> str:
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def sign_v3(secret: str, uri: str, body: bytes, timestamp: str, method: str = "POST") -> str:
    message = method.encode() + signing_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


@dataclass
class Subscription:
    id: int
    event_type: str  # "contact.propertyChange"
    property_name: str | None = None  # None: every property (the simulator's shorthand)


@dataclass
class WebhookSettings:
    target_url: str
    client_secret: str
    app_id: int
    subscriptions: list[Subscription]
    max_batch: int = MAX_BATCH
    user_id: int = DEFAULT_USER_ID  # the user a control-API edit is made by

    def as_json(self) -> dict[str, Any]:
        return {
            "target_url": self.target_url,
            "app_id": self.app_id,
            "max_batch": self.max_batch,
            "user_id": self.user_id,
            "subscriptions": [
                {"id": s.id, "eventType": s.event_type, "propertyName": s.property_name}
                for s in self.subscriptions
            ],
        }


def parse_settings(body: Mapping[str, Any], next_id: itertools.count) -> WebhookSettings:
    """The control body ``{target_url, client_secret, app_id, subscriptions, max_batch?,
    user_id?}``; ``subscriptions`` are event types ("contact.creation") or objects
    ``{eventType, propertyName?}``. Raises ValueError."""
    url = body.get("target_url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("target_url must be an http(s) URL")
    secret = body.get("client_secret")
    if not isinstance(secret, str) or not secret:
        raise ValueError("client_secret is required")
    app_id = body.get("app_id")
    if isinstance(app_id, bool) or not str(app_id or "").isdigit():
        raise ValueError("app_id must be a number")
    max_batch = body.get("max_batch", MAX_BATCH)
    if isinstance(max_batch, bool) or not isinstance(max_batch, int) or not 1 <= max_batch <= 1000:
        raise ValueError("max_batch must be an integer from 1 to 1000")
    user_id = body.get("user_id", DEFAULT_USER_ID)
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        raise ValueError("user_id must be an integer")
    raw = body.get("subscriptions")
    if not isinstance(raw, list) or not raw:
        raise ValueError("subscriptions must be a non-empty list")
    singulars = {spec.singular for spec in OBJECT_TYPES.values()}
    subscriptions = []
    for item in raw:
        name = None
        if isinstance(item, Mapping):
            kind = item.get("eventType") or item.get("subscriptionType")
            name = item.get("propertyName")
        else:
            kind = item
        family, _, event = str(kind).partition(".")
        if family not in singulars or event not in EVENT_KINDS:
            raise ValueError(f"unknown subscription {kind!r} (e.g. contact.propertyChange)")
        if name is not None and (event != "propertyChange" or not isinstance(name, str)):
            raise ValueError("propertyName goes with propertyChange subscriptions only")
        subscriptions.append(Subscription(next(next_id), str(kind), name))
    return WebhookSettings(
        target_url=url,
        client_secret=secret,
        app_id=int(app_id),
        subscriptions=subscriptions,
        max_batch=max_batch,
        user_id=user_id,
    )


@dataclass
class Batch:
    account: Any
    settings: WebhookSettings
    events: list[dict[str, Any]]
    attempts: int = 0


@dataclass(order=True)
class _Due:
    at: float
    seq: int
    batch: Batch | None = field(compare=False)  # None: flush the account's outbox
    account: Any = field(compare=False, default=None)


class Dispatcher:
    """One background thread sending every portal's events, in batches, on schedule."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim  # its lock guards the accounts, their outboxes and delivery logs
        self._queue: list[_Due] = []
        self._seq = itertools.count()
        self._event_ids = itertools.count(1_000_001)
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    # ------------------------------------------------------------------ producing

    def changed(
        self,
        account: Any,
        object_type: str,
        kind: str,
        record: Record,
        properties: Mapping[str, str | None],
        by_api: bool,
        now_ms: int,
    ) -> None:
        """A record changed (called by the portal, under the simulator's lock)."""
        settings: WebhookSettings | None = account.webhooks
        if settings is None:
            return
        family = OBJECT_TYPES[object_type].singular
        source, source_id = (
            ("INTEGRATION", str(settings.app_id))
            if by_api
            else ("CRM_UI", f"userId:{settings.user_id}")
        )
        base = {
            "portalId": account.portal.portal_id,
            "appId": settings.app_id,
            "occurredAt": now_ms,
            "objectId": record.id,
            "changeSource": source,
            "sourceId": source_id,
        }
        events = []
        for sub in settings.subscriptions:
            event_family, _, event_kind = sub.event_type.partition(".")
            if event_family != family:
                continue
            if event_kind == kind and kind != "propertyChange":
                flag = {"creation": "NEW", "deletion": "DELETED"}[kind]
                events.append(
                    {
                        **base,
                        "subscriptionId": sub.id,
                        "subscriptionType": sub.event_type,
                        "changeFlag": flag,
                    }
                )
            wants_values = event_kind == "propertyChange" and (
                kind == "propertyChange"
                or (kind == "creation" and self.sim.knobs.webhook_property_changes_on_create)
            )
            if wants_values:
                for name, value in properties.items():
                    if sub.property_name in (None, name):
                        events.append(
                            {
                                **base,
                                "subscriptionId": sub.id,
                                "subscriptionType": sub.event_type,
                                "propertyName": name,
                                "propertyValue": "" if value is None else str(value),
                            }
                        )
        for event in events:
            if len(account.outbox) >= MAX_QUEUED:
                self._log(account, [event], outcome="dropped", status=None, error="queue full")
                continue
            account.outbox.append({"eventId": next(self._event_ids), **event})
        if account.outbox and not account.flush_scheduled:
            account.flush_scheduled = True
            self._push(
                _Due(
                    time.monotonic() + self.sim.knobs.webhook_delay_ms / 1000,
                    next(self._seq),
                    None,
                    account,
                )
            )

    def pending(self, account: Any) -> int:
        """Events of ``account`` not yet delivered or given up. Call under the lock."""
        return len(account.outbox) + account.in_flight

    # ------------------------------------------------------------------ delivering

    def _push(self, due: _Due) -> None:
        with self._wake:
            heapq.heappush(self._queue, due)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="hubspot-webhooks", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue or self._queue[0].at > time.monotonic():
                    timeout = self._queue[0].at - time.monotonic() if self._queue else None
                    self._wake.wait(timeout=timeout)
                due = heapq.heappop(self._queue)
            if due.batch is None:
                self._flush(due.account)
            else:
                self._attempt(due.batch)

    def _flush(self, account: Any) -> None:
        """Cut the account's waiting events into batches and send each."""
        with self.sim.lock:
            account.flush_scheduled = False
            settings = account.webhooks
            if settings is None or self.sim.by_id.get(account.portal.portal_id) is not account:
                account.outbox.clear()
                return
            batches = []
            while account.outbox:
                events = account.outbox[: settings.max_batch]
                del account.outbox[: settings.max_batch]
                batches.append(Batch(account, settings, events))
                account.in_flight += len(events)
        for batch in batches:
            self._attempt(batch)

    def _attempt(self, batch: Batch) -> None:
        sim = self.sim
        account = batch.account
        with sim.lock:
            alive = (
                account.webhooks is batch.settings
                and sim.by_id.get(account.portal.portal_id) is account
            )
            if not alive:
                account.in_flight -= len(batch.events)
                self._log(
                    account,
                    batch.events,
                    outcome="abandoned",
                    status=None,
                    error="webhook settings changed",
                )
                return
            timeout = sim.knobs.webhook_timeout_s
            skew = sim.knobs.webhook_timestamp_skew_ms
        events = [{**e, "attemptNumber": batch.attempts} for e in batch.events]
        body = json.dumps(events, separators=(",", ":")).encode()
        stamp = str(int(time.time() * 1000) - skew)
        secret = batch.settings.client_secret
        url = batch.settings.target_url
        headers = {
            "Content-Type": "application/json",
            "X-HubSpot-Signature-v3": sign_v3(secret, url, body, stamp),
            "X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature": hashlib.sha256(secret.encode() + body).hexdigest(),
            "X-HubSpot-Signature-Version": "v1",
        }
        status: int | None = None
        error: str | None = None
        try:
            response = self._session.post(
                url,
                data=body,
                headers=headers,
                timeout=(CONNECT_TIMEOUT_S, timeout),
                allow_redirects=False,
            )
            status = response.status_code
            response.close()
        except (requests.RequestException, OSError) as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        with sim.lock:
            batch.attempts += 1
            if ok:
                self._log(account, events, outcome="delivered", status=status, error=None)
                account.in_flight -= len(batch.events)
                return
            if batch.attempts <= RETRIES:
                self._log(account, events, outcome="failed", status=status, error=error)
                delay = RETRY_DELAYS_S[batch.attempts - 1] * sim.rng.uniform(0.75, 1.25)
                self._push(
                    _Due(
                        time.monotonic() + delay * sim.knobs.webhook_time_scale,
                        next(self._seq),
                        batch,
                    )
                )
                return
            self._log(account, events, outcome="gave_up", status=status, error=error)
            account.in_flight -= len(batch.events)

    def _log(
        self,
        account: Any,
        events: list[dict],
        *,
        outcome: str,
        status: int | None,
        error: str | None,
    ) -> None:
        account.deliveries.append(
            {
                "event_ids": [e.get("eventId") for e in events],
                "subscription_types": sorted({e["subscriptionType"] for e in events}),
                "attempt": events[0].get("attemptNumber", 0) if events else 0,
                "outcome": outcome,
                "status": status,
                "error": error,
                "at": time.time(),
            }
        )
