"""Webhook delivery the way Shopify does it, faults included.

- A POST of the REST JSON of the resource, built when the change happened; retries carry that
  original body (https://shopify.dev/changelog/updates-to-webhook-retry-mechanism).
- Headers X-Shopify-Topic, -Hmac-Sha256 (base64 HMAC-SHA256 of the exact body bytes, keyed
  with the app's client secret), -Shop-Domain, -API-Version, -Webhook-Id (one per delivery,
  kept by its retries), -Triggered-At, -Event-Id (shared by the deliveries of one change)
  (https://shopify.dev/docs/apps/build/webhooks/delivery-structure,
  https://shopify.dev/docs/apps/build/webhooks/verify-deliveries).
- Anything but a 2xx within the time limit (5 s) fails; redirects are not followed
  (https://shopify.dev/docs/apps/build/webhooks/subscribe/https).
- 8 retries over 4 hours with exponential backoff, then a subscription created through the
  API is deleted (SH-WH-RETRY-CL; https://hookrescue.com/shopify-webhook-subscription-auto-deleted).
  ``webhook_time_scale`` compresses the schedule so tests take seconds.
- Delivery is at least once and unordered: knobs drop deliveries outright (never sent, so only
  polling can find the change), duplicate them (same webhook id) and delay them at random
  (which reorders them).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import requests

from sandbox.shopify.store import Shop

RETRIES = 8
RETRY_WINDOW_S = 4 * 3600
# Exponential backoff whose 8 steps add up to the 4-hour window: 56 s, 113 s, ... 2 h.
RETRY_DELAYS_S = tuple(RETRY_WINDOW_S * 2**k / (2**RETRIES - 1) for k in range(RETRIES))
CONNECT_TIMEOUT_S = 1.0  # the connection must be accepted within 1 s (SH-2ND)


def sign(body: bytes, secret: str) -> str:
    """The X-Shopify-Hmac-Sha256 value for ``body``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def encode(payload: dict[str, Any]) -> bytes:
    # UTF-8 as sent by Shopify; non-ASCII stays raw so receivers must verify the exact bytes.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(order=True)
class _Pending:
    due: float
    seq: int
    delivery: Delivery = field(compare=False)


@dataclass
class Delivery:
    shop: Shop
    topic: str
    address: str
    body: bytes
    headers: dict[str, str]
    subscription_id: int | None  # None: app-level topics (compliance, app/uninstalled)
    attempts: int = 0
    copy: bool = False  # a duplicate injected by the knob

    @property
    def webhook_id(self) -> str:
        return self.headers["X-Shopify-Webhook-Id"]


Sender = Callable[[str, bytes, dict[str, str], float], int]


def http_sender(address: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST and return the status; raises requests exceptions on transport failures."""
    response = requests.post(
        address,
        data=body,
        headers=headers,
        timeout=(CONNECT_TIMEOUT_S, timeout),
        allow_redirects=False,
    )
    response.close()
    return response.status_code


class Dispatcher:
    """One background thread delivering every shop's webhooks on schedule."""

    def __init__(
        self,
        lock: threading.RLock,
        sender: Sender = http_sender,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lock = lock  # the store lock: guards shop state and the delivery logs
        self.sender = sender
        self.clock = clock
        self._queue: list[_Pending] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._in_flight: dict[str, int] = {}

    # ------------------------------------------------------------------ producing
    def emit(
        self,
        shop: Shop,
        topic: str,
        payload: dict[str, Any],
        targets: list[tuple[str, str, int | None]],
    ) -> str:
        """Queue one event for ``targets`` = [(address, api_version, subscription id)].

        Call with the store lock held. Returns the event id.
        """
        event_id = str(uuid.UUID(int=shop.rng.getrandbits(128), version=4))
        triggered = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = encode(payload)
        for address, api_version, subscription_id in targets:
            headers = {
                "Content-Type": "application/json",
                "User-Agent": "Shopify-Captain-Hook",
                "X-Shopify-Topic": topic,
                "X-Shopify-Hmac-Sha256": sign(body, shop.client_secret),
                "X-Shopify-Shop-Domain": shop.domain,
                "X-Shopify-API-Version": api_version,
                "X-Shopify-Webhook-Id": str(uuid.UUID(int=shop.rng.getrandbits(128), version=4)),
                "X-Shopify-Triggered-At": triggered,
                "X-Shopify-Event-Id": event_id,
            }
            delivery = Delivery(shop, topic, address, body, headers, subscription_id)
            knobs = shop.knobs
            if shop.rng.random() < knobs.webhook_drop_rate:
                self._log(delivery, outcome="dropped", status=None, error=None)
                continue
            self._schedule(delivery, self._jitter(shop))
            if shop.rng.random() < knobs.webhook_duplicate_rate:
                twin = Delivery(
                    shop, topic, address, body, dict(headers), subscription_id, copy=True
                )
                self._schedule(twin, self._jitter(shop))
        return event_id

    def _jitter(self, shop: Shop) -> float:
        return shop.rng.uniform(0, shop.knobs.webhook_max_delay_ms / 1000.0)

    def _schedule(self, delivery: Delivery, delay: float) -> None:
        domain = delivery.shop.domain
        self._in_flight[domain] = self._in_flight.get(domain, 0) + 1
        with self._wake:
            heapq.heappush(self._queue, _Pending(self.clock() + delay, next(self._seq), delivery))
            self._ensure_thread()
            self._wake.notify()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="shopify-webhooks", daemon=True)
            self._thread.start()

    def pending(self, shop: Shop) -> int:
        """Deliveries of ``shop`` queued or being sent. Call with the store lock held."""
        return self._in_flight.get(shop.domain, 0)

    # ------------------------------------------------------------------ delivering
    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue or self._queue[0].due > self.clock():
                    timeout = self._queue[0].due - self.clock() if self._queue else None
                    self._wake.wait(timeout=timeout)
                item = heapq.heappop(self._queue)
            self._attempt(item.delivery)

    def _attempt(self, delivery: Delivery) -> None:
        shop = delivery.shop
        with self.lock:
            timeout = shop.knobs.webhook_timeout_s
            scale = shop.knobs.webhook_time_scale
            alive = (
                delivery.subscription_id is None or delivery.subscription_id in shop.subscriptions
            )
        if not alive:
            with self.lock:
                self._log(delivery, outcome="abandoned", status=None, error="subscription deleted")
                self._done(delivery)
            return
        delivery.attempts += 1
        status: int | None = None
        error: str | None = None
        try:
            status = self.sender(delivery.address, delivery.body, delivery.headers, timeout)
        except (requests.RequestException, OSError) as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        with self.lock:
            if ok:
                self._log(delivery, outcome="delivered", status=status, error=None)
                self._done(delivery)
                return
            if delivery.attempts <= RETRIES:
                self._log(delivery, outcome="failed", status=status, error=error)
                delay = RETRY_DELAYS_S[delivery.attempts - 1] * scale
                with self._wake:
                    heapq.heappush(
                        self._queue, _Pending(self.clock() + delay, next(self._seq), delivery)
                    )
                    self._wake.notify()
                return
            self._log(delivery, outcome="gave_up", status=status, error=error)
            if delivery.subscription_id is not None:
                removed = shop.subscriptions.pop(delivery.subscription_id, None)
                if removed is not None:
                    self._log(delivery, outcome="subscription_deleted", status=None, error=None)
            self._done(delivery)

    def _done(self, delivery: Delivery) -> None:
        domain = delivery.shop.domain
        self._in_flight[domain] = max(0, self._in_flight.get(domain, 0) - 1)

    def _log(
        self, delivery: Delivery, *, outcome: str, status: int | None, error: str | None
    ) -> None:
        delivery.shop.deliveries.append(
            {
                "webhook_id": delivery.webhook_id,
                "event_id": delivery.headers["X-Shopify-Event-Id"],
                "topic": delivery.topic,
                "address": delivery.address,
                "subscription_id": delivery.subscription_id,
                "attempt": delivery.attempts,
                "duplicate": delivery.copy,
                "outcome": outcome,
                "status": status,
                "error": error,
                "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
