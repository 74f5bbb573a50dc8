"""Webhook deliveries as BigCommerce makes them [BC-WH]:

- a thin payload ``{scope, store_id, data, hash, created_at, producer}``; ``hash`` is the SHA-1
  of the data, the same on every retry of the event;
- the hook's custom headers on every delivery, plus Standard Webhooks headers (``webhook-id``,
  ``webhook-timestamp``, ``webhook-signature`` = ``v1,`` + base64 HMAC-SHA256 of
  ``"{id}.{timestamp}.{body}"`` keyed with the client secret) — BigCommerce's exact header
  names are UNCONFIRMED;
- any 2xx acknowledges; a failure is retried after 60, 180, 300, 600, 900, 1800, 3600, 7200,
  21600, 50400 and 86400 s, after which the hook is deactivated;
- a destination domain whose success ratio over a sliding 2-minute window falls below 90 %
  (once it has 100 requests in it) is blocklisted for 3 minutes; its events wait for retries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import requests

from sandbox.bigcommerce.state import Hook, State, Store

RETRY_SCHEDULE = (60, 180, 300, 600, 900, 1800, 3600, 7200, 21600, 50400, 86400)
WINDOW_S, BLOCK_S, MIN_REQUESTS, MIN_RATIO = 120.0, 180.0, 100, 0.9


@dataclass
class Pending:
    store: Store
    hook: Hook
    payload: dict[str, Any]
    due: float
    attempt: int = 0  # retries made so far


def _matches(hook_scope: str, scope: str) -> bool:
    if hook_scope.endswith("/*"):
        return scope.startswith(hook_scope[:-1])
    return hook_scope == scope


class Dispatcher:
    def __init__(self, state: State) -> None:
        self.state = state
        self.queue: list[Pending] = []
        self.outcomes: dict[str, list[tuple[float, bool]]] = {}
        self.blocked_until: dict[str, float] = {}
        self._stop = threading.Event()
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="bigcommerce-webhooks", daemon=True)
        state.notify = self.notify
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._session.close()

    def reset(self, hook: Hook) -> None:
        """A hook reactivated by its owner starts with a clean slate."""
        self.queue = [p for p in self.queue if p.hook is not hook]

    def notify(self, store: Store, scope: str, data: dict[str, Any]) -> None:
        """Called under the state lock for every event."""
        payload = {
            "scope": scope,
            "store_id": store.store_id,
            "data": data,
            "hash": hashlib.sha1(json.dumps(data, sort_keys=True).encode()).hexdigest(),  # noqa: S324
            "created_at": int(self.state.clock()),
            "producer": f"stores/{store.store_hash}",
        }
        delay = random.uniform(0, store.knobs.webhook_delay_ms / 1000)
        for hook in store.hooks.values():
            if hook.is_active and _matches(hook.scope, scope):
                self.queue.append(Pending(store, hook, payload, time.monotonic() + delay))

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            now = time.monotonic()
            with self.state.lock:
                due = [p for p in self.queue if p.due <= now]
                self.queue = [p for p in self.queue if p.due > now]
            for pending in due:
                self._deliver(pending)

    def _deliver(self, p: Pending) -> None:
        store, hook, knobs = p.store, p.hook, p.store.knobs
        domain = urlsplit(hook.destination).netloc
        if not hook.is_active:
            return
        if self.blocked_until.get(domain, 0) > time.monotonic():
            self._retry(p, "domain blocklisted")
            return
        if random.random() < knobs.webhook_drop_rate:
            self._record(store, hook, p.payload, None, "dropped (fault injection)")
            return
        body = json.dumps(p.payload).encode()
        message_id = f"msg_{uuid.uuid4().hex}"
        stamp = str(int(time.time()))
        signed = hmac.new(
            store.client_secret.encode(), f"{message_id}.{stamp}.".encode() + body, hashlib.sha256
        )
        headers = {
            "Content-Type": "application/json",
            **hook.headers,
            "webhook-id": message_id,
            "webhook-timestamp": stamp,
            "webhook-signature": "v1," + base64.b64encode(signed.digest()).decode(),
        }
        times = 2 if random.random() < knobs.webhook_duplicate_rate else 1
        ok = False
        for _ in range(times):
            try:
                response = self._session.post(
                    hook.destination, data=body, headers=headers, timeout=knobs.webhook_timeout_s,
                    allow_redirects=False,
                )  # fmt: skip
                status, error = response.status_code, None
            except requests.RequestException as exc:
                status, error = None, type(exc).__name__
            ok = status is not None and 200 <= status < 300
            self._outcome(domain, ok, knobs.webhook_time_scale)
            with self.state.lock:
                self._record(store, hook, p.payload, status, error)
        if not ok:
            self._retry(p, "failed")

    def _retry(self, p: Pending, why: str) -> None:
        with self.state.lock:
            if p.attempt >= len(RETRY_SCHEDULE):
                p.hook.is_active = False  # and an email to the app's owner [BC-WH]
                self._record(p.store, p.hook, p.payload, None, f"deactivated after retries ({why})")
                return
            delay = RETRY_SCHEDULE[p.attempt] / max(p.store.knobs.webhook_time_scale, 1e-9)
            self.queue.append(
                Pending(p.store, p.hook, p.payload, time.monotonic() + delay, p.attempt + 1)
            )

    def _outcome(self, domain: str, ok: bool, scale: float) -> None:
        now = time.monotonic()
        window = [(t, o) for t, o in self.outcomes.get(domain, []) if t > now - WINDOW_S / scale]
        window.append((now, ok))
        self.outcomes[domain] = window
        if len(window) >= MIN_REQUESTS and sum(o for _, o in window) / len(window) < MIN_RATIO:
            self.blocked_until[domain] = now + BLOCK_S / scale

    def _record(self, store: Store, hook: Hook, payload: dict[str, Any], status, error) -> None:
        store.deliveries.append(
            {
                "hook_id": hook.id,
                "scope": payload["scope"],
                "url": hook.destination,
                "hash": payload["hash"],
                "status": status,
                "error": error,
                "at": self.state.clock(),
            }
        )
