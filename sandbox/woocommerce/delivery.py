"""Webhook deliveries as WooCommerce makes them [WC-SRC class-wc-webhook.php,
wc-webhook-functions.php; WC-DOCS _webhooks.md]:

- queued at the end of the request and sent in the background (Action Scheduler); while one is
  pending for a webhook and resource no other is queued, and the body is built at send time,
  so quick successive changes collapse into one delivery carrying the latest state;
- POST of the resource's REST representation (``{"id": N}`` for a deletion), signed
  base64(HMAC-SHA256(body, secret)) in X-WC-Webhook-Signature, with the X-WC-Webhook-* headers;
- success is 2xx, 301 or 302; there are no retries; after more than five consecutive failures
  the webhook is set to ``disabled``;
- creating a webhook sends an unsigned ping with the form body ``webhook_id=<id>``.
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
from typing import Any

import requests

from sandbox.woocommerce.api import customer_json, order_json
from sandbox.woocommerce.state import Site, State, Webhook

USER_AGENT = "WooCommerce/9.4.0 Hookshot (WordPress/6.7)"


class Dispatcher:
    def __init__(self, state: State) -> None:
        self.state = state
        self.pending: dict[tuple[str, int, int], float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="woocommerce-webhooks", daemon=True)
        self._session = requests.Session()
        state.notify = self.notify
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._session.close()

    # ------------------------------------------------------------------ queueing
    def notify(self, site: Site, topic: str, resource_id: int) -> None:
        """Called under the state lock for every event."""
        delay = random.uniform(0, site.knobs.webhook_delay_ms / 1000)
        for hook in site.webhooks.values():
            if hook.status != "active" or hook.topic != topic:
                continue
            key = (site.name, hook.id, resource_id)
            self.pending.setdefault(key, time.monotonic() + delay)  # coalesced while pending

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            now = time.monotonic()
            with self.state.lock:
                due = [k for k, at in self.pending.items() if at <= now]
                jobs = []
                for key in due:
                    del self.pending[key]
                    site = self.state.sites.get(key[0])
                    hook = site.webhooks.get(key[1]) if site else None
                    if site is None or hook is None or hook.status != "active":
                        continue
                    body = self._body(site, hook, key[2])
                    if body is not None:
                        jobs.append((site, hook, body))
            for site, hook, body in jobs:
                self._deliver(site, hook, body)

    def _body(self, site: Site, hook: Webhook, resource_id: int) -> dict[str, Any] | None:
        resource, event = hook.topic.split(".")
        if event == "deleted":
            return {"id": resource_id}
        if resource == "customer":
            customer = site.customers.get(resource_id)
            return customer_json(site, customer) if customer else None
        order = site.orders.get(resource_id)
        return order_json(site, order) if order else None

    # ------------------------------------------------------------------ sending
    def _deliver(self, site: Site, hook: Webhook, body: dict[str, Any]) -> None:
        raw = json.dumps(body).encode()
        signature = base64.b64encode(hmac.new(hook.secret.encode(), raw, hashlib.sha256).digest())
        resource, event = hook.topic.split(".")
        delivery_id = hashlib.sha1(uuid.uuid4().bytes).hexdigest()  # noqa: S324 - an id, not security
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-WC-Webhook-Source": f"{site.url}/",
            "X-WC-Webhook-Topic": hook.topic,
            "X-WC-Webhook-Resource": resource,
            "X-WC-Webhook-Event": event,
            "X-WC-Webhook-Signature": signature.decode(),
            "X-WC-Webhook-ID": str(hook.id),
            "X-WC-Webhook-Delivery-ID": delivery_id,
        }
        knobs = site.knobs
        if random.random() < knobs.webhook_drop_rate:
            self._record(site, hook, delivery_id, None, "dropped (fault injection)")
            return
        times = 2 if random.random() < knobs.webhook_duplicate_rate else 1
        for _ in range(times):
            self._post(site, hook, delivery_id, raw, headers, knobs.webhook_timeout_s)

    def _post(self, site, hook, delivery_id, raw, headers, timeout) -> bool:
        try:
            response = self._session.post(
                hook.delivery_url, data=raw, headers=headers, timeout=timeout, allow_redirects=False
            )
            status, error = response.status_code, None
        except requests.RequestException as exc:
            status, error = None, type(exc).__name__
        ok = status is not None and (200 <= status < 300 or status in (301, 302))
        with self.state.lock:
            if ok:
                hook.failures = 0
            else:
                hook.failures += 1
                if hook.failures > site.webhook_failure_limit:
                    hook.status = "disabled"
            self._record(site, hook, delivery_id, status, error)
        return ok

    def _record(self, site, hook, delivery_id, status, error) -> None:
        site.deliveries.append(
            {
                "hook_id": hook.id,
                "topic": hook.topic,
                "url": hook.delivery_url,
                "delivery_id": delivery_id,
                "status": status,
                "error": error,
                "at": self.state.clock(),
            }
        )

    def ping(self, site: Site, hook: Webhook) -> None:
        """The unsigned creation ping. Whether a failing ping blocks the creation is not
        documented; the webhook is kept, the failure recorded."""
        try:
            response = self._session.post(
                hook.delivery_url,
                data=f"webhook_id={hook.id}",
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "User-Agent": USER_AGENT,
                },
                timeout=site.knobs.webhook_timeout_s,
                allow_redirects=False,
            )
            status, error = response.status_code, None
        except requests.RequestException as exc:
            status, error = None, type(exc).__name__
        with self.state.lock:
            self._record(site, hook, "ping", status, error)
