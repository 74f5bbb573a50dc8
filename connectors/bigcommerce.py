"""BigCommerce REST API (v2 orders, v3 customers and hooks), through the shared HTTP client.

Facts: ``../shared/reference/api-storefronts.md`` §3 (sources BC-ORD, BC-CUST, BC-RL, BC-WH).
- ``X-Auth-Token`` on ``https://api.bigcommerce.com/stores/{store_hash}/v2|v3/...``.
- Orders (v2): ``min_date_modified`` (RFC-2822), ``sort=date_modified:asc``, 250 per page; a
  bare JSON array, and an empty page may be HTTP 204 with no body. Line items live in the
  ``/orders/{id}/products`` sub-resource. Orders are archived (``is_deleted``), never deleted.
- Customers (v3): ``date_modified:min``, ``sort=date_modified:asc``, ``{data, meta}``; writes
  take at most 10 records per call.
- One request quota per store, shared with every other app of the merchant, announced on every
  response by X-Rate-Limit-* headers; over it, 429 until X-Rate-Limit-Time-Reset-Ms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import requests

from connectors.errors import ConfigurationError, PermanentError
from connectors.http import Action, HttpClient, Policy
from connectors.pagination import Page, live_then_removed, modified_window

PLATFORM = "bigcommerce"
DEFAULT_BASE_URL = "https://api.bigcommerce.com/stores/{store_hash}"
PAGE_SIZE = 250  # v2 limit maximum [BC-ABOUT common-query-params]; v3 customers UNCONFIRMED
WRITE_BATCH = 10  # v3 customers POST/PUT [BC-CUST]
LOOKUP_BATCH = 50  # ids per id:in lookup, well inside URL length limits
# The quota is shared with the merchant's other apps [BC-RL]: the budget keeps this share of
# it free rather than riding the platform's 429s.
QUOTA_MARGIN = 0.2
WEBHOOK_SECRET_HEADER = "X-Tandem-Webhook-Secret"  # noqa: S105 - a header name
WEBHOOK_SCOPES = (
    "store/customer/created",
    "store/customer/updated",
    "store/customer/deleted",
    "store/order/created",
    "store/order/updated",
    "store/order/archived",
    "store/order/statusUpdated",
    "store/order/refund/created",
)
DOCS = {
    "orders": "https://developer.bigcommerce.com/docs/rest-management/orders#get-all-orders",
    "customers": "https://developer.bigcommerce.com/docs/rest-management/customers",
    "hooks": "https://developer.bigcommerce.com/docs/integrations/webhooks",
    "limits": "https://developer.bigcommerce.com/docs/start/best-practices/api-rate-limits",
}
_STORE_HASH = re.compile(r"^[a-z0-9]{1,64}$")


def normalise_store_hash(value: str) -> str:
    """The store hash from a bare hash or a ``stores/{hash}`` context.

    Raises ConfigurationError for anything else.
    """
    text = (value or "").strip().lower().removeprefix("stores/")
    if not _STORE_HASH.match(text):
        raise ConfigurationError(f"{value!r} is not a BigCommerce store hash", platform=PLATFORM)
    return text


def _header(response: requests.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def rate_limit_signal(response: requests.Response) -> dict[str, float] | None:
    """Remaining requests, quota and refill rate from the X-Rate-Limit-* headers (None if
    absent), with QUOTA_MARGIN of the quota held back for the merchant's other apps."""
    left = _header(response, "X-Rate-Limit-Requests-Left")
    quota = _header(response, "X-Rate-Limit-Requests-Quota")
    window_ms = _header(response, "X-Rate-Limit-Time-Window-Ms")
    if left is None or quota is None:
        return None
    reserve = quota * QUOTA_MARGIN
    return {
        "remaining": max(0.0, left - reserve),
        "capacity": quota - reserve,
        "refill_per_second": (quota - reserve) / (window_ms / 1000) if window_ms else None,
    }


def _retry_after(response: requests.Response) -> float | None:
    reset_ms = _header(response, "X-Rate-Limit-Time-Reset-Ms")
    if reset_ms is not None:
        return reset_ms / 1000
    # A 429 without the quota headers means load on the store: back off (the client's own
    # exponential backoff applies when this is None) [BC-RL].
    return _header(response, "X-Retry-After")


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code}: {response.text[:200]}"
    if isinstance(body, list) and body and isinstance(body[0], dict):  # v2: [{status, message}]
        return f"{response.status_code}: {body[0].get('message')}"
    if isinstance(body, dict):  # v3: {status, title, errors}
        return f"{response.status_code}: {body.get('title')} {body.get('errors') or ''}".strip()
    return str(response.status_code)


def _classify(response: requests.Response) -> Action | None:
    # A token without the scope or revoked: an operator must act.
    if response.status_code == 401:
        return Action.CONFIG
    return None


BIGCOMMERCE_POLICY = Policy(
    platform=PLATFORM,
    statuses={413: Action.FAIL, 422: Action.FAIL},
    classify=_classify,
    retry_after=_retry_after,
    error_message=_message,
)


def _v2_stamp(raw: Mapping[str, Any]) -> datetime:
    return parsedate_to_datetime(raw.get("date_modified") or raw["date_created"]).astimezone(UTC)


def _v3_stamp(raw: Mapping[str, Any]) -> datetime:
    value = str(raw.get("date_modified") or raw["date_created"]).replace("Z", "+00:00")
    return datetime.fromisoformat(value).astimezone(UTC)


class BigCommerceConnector:
    """One BigCommerce store. Every call goes through ``http`` (retries, budget, redaction)."""

    platform = PLATFORM
    bulk_backfill = False
    customers_incremental = True

    def __init__(
        self,
        store_hash: str,
        access_token: str,
        http: HttpClient,
        *,
        base_url_template: str = DEFAULT_BASE_URL,
    ) -> None:
        self.store_hash = normalise_store_hash(store_hash)
        self.base = base_url_template.format(store_hash=self.store_hash).rstrip("/")
        self.http = http
        self._headers = {
            "X-Auth-Token": access_token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }
        http.add_secret(access_token)

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ok: Sequence[int] = (),
    ) -> requests.Response:
        return self.http.request(
            method, self.base + path, params=params, json=body, headers=self._headers, ok=ok
        )

    @staticmethod
    def _json(response: requests.Response) -> Any:
        # 204 No Content is an empty page [BCPY base.py]; 200 with [] is one too.
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    # ------------------------------------------------------------------ reading
    def _products(self, order_id: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = (
                self._json(
                    self._call(
                        "GET",
                        f"/v2/orders/{order_id}/products",
                        params={"page": page, "limit": PAGE_SIZE},
                    )
                )
                or []
            )
            rows.extend(batch)
            if len(batch) < PAGE_SIZE:
                return rows
            page += 1

    def _with_lines(self, order: dict[str, Any]) -> dict[str, Any]:
        return {**order, "line_items": self._products(int(order["id"]))}

    def orders_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Orders modified since ``updated_since`` (all if None), oldest change first, each with
        its ``line_items``; then the orders archived in that window, as ``Page.removed``.

        Whether lists include archived orders is UNCONFIRMED, and a lost store/order/archived
        webhook must not hide one, so the archive is read too (``is_deleted=true``); an
        archived order met in the live listing is removed as well. Raises connectors.errors.*.
        """

        def read(archived: bool, window: str | None) -> tuple[list[dict[str, Any]], str | None]:
            def fetch(since: datetime | None, page: int) -> list[dict[str, Any]]:
                params: dict[str, Any] = {
                    "sort": "date_modified:asc",
                    "limit": PAGE_SIZE,
                    "page": page,
                }
                if archived:
                    params["is_deleted"] = "true"
                if since is not None:
                    params["min_date_modified"] = format_datetime(since.astimezone(UTC))
                return self._json(self._call("GET", "/v2/orders", params=params)) or []

            return modified_window(
                fetch,
                cursor=window,
                updated_since=updated_since,
                page_size=PAGE_SIZE,
                stamp=_v2_stamp,
                key=lambda raw: str(raw["id"]),
                platform=PLATFORM,
            )

        raws, archived, following = live_then_removed(read, cursor=cursor, platform=PLATFORM)
        removed = [r for r in raws + archived if r.get("is_deleted")]
        live = [self._with_lines(r) for r in raws if not r.get("is_deleted")]
        return Page(live, following, removed=tuple(str(r["id"]) for r in removed))

    def customers_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Customers modified since ``updated_since`` (all if None), oldest change first,
        with their addresses. Raises connectors.errors.*."""

        def fetch(since: datetime | None, page: int) -> list[dict[str, Any]]:
            params: dict[str, Any] = {
                "sort": "date_modified:asc",
                "limit": PAGE_SIZE,
                "page": page,
                "include": "addresses",
            }
            if since is not None:
                params["date_modified:min"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = self._json(self._call("GET", "/v3/customers", params=params)) or {}
            return list(body.get("data") or [])

        raws, following = modified_window(
            fetch,
            cursor=cursor,
            updated_since=updated_since,
            page_size=PAGE_SIZE,
            stamp=_v3_stamp,
            key=lambda raw: str(raw["id"]),
            platform=PLATFORM,
        )
        return Page(raws, following)

    def get_customers(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The customers of ``ids`` that exist, via ``id:in``. Raises connectors.errors.*."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), LOOKUP_BATCH):
            chunk = ",".join(str(int(i)) for i in ids[start : start + LOOKUP_BATCH])
            params = {"id:in": chunk, "include": "addresses", "limit": LOOKUP_BATCH}
            body = self._json(self._call("GET", "/v3/customers", params=params)) or {}
            found.extend(body.get("data") or [])
        return found

    def get_orders(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The orders of ``ids`` that exist and are not archived, with their line items.
        Raises connectors.errors.*."""
        found = []
        for order_id in ids:
            response = self._call("GET", f"/v2/orders/{int(order_id)}", ok=(404,))
            order = None if response.status_code == 404 else self._json(response)
            if order and not order.get("is_deleted"):
                found.append(self._with_lines(order))
        return found

    # ------------------------------------------------------------------ writing
    def update_customer(self, store_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Update one customer. Raises connectors.errors.*."""
        return self.update_customers([(store_id, fields)])[0]

    def update_customers(
        self, changes: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        """``PUT /v3/customers`` in batches of 10; the updated customers, in order. Raises
        connectors.errors.* (PermanentError with BigCommerce's errors for a refused batch)."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(changes), WRITE_BATCH):
            chunk = changes[start : start + WRITE_BATCH]
            body = [{**dict(f), "id": int(i)} for i, f in chunk]
            answer = self._json(self._call("PUT", "/v3/customers", body=body)) or {}
            results.extend(answer.get("data") or [])
        return results

    def ensure_webhooks(self, address: str, secret: str) -> list[dict[str, Any]]:
        """Make sure every scope Tandem needs has an active hook to ``address`` that sends
        ``secret`` in WEBHOOK_SECRET_HEADER; reactivates ours that BigCommerce deactivated.
        Idempotent. Raises connectors.errors.*."""
        body = self._json(self._call("GET", "/v3/hooks")) or {}
        ours = {
            h.get("scope"): h for h in body.get("data") or [] if h.get("destination") == address
        }
        made = []
        for scope in WEBHOOK_SCOPES:
            hook = ours.get(scope)
            wanted = {"is_active": True, "headers": {WEBHOOK_SECRET_HEADER: secret}}
            if hook is None:
                answer = self._call(
                    "POST", "/v3/hooks", body={"scope": scope, "destination": address, **wanted}
                )
            elif not hook.get("is_active"):
                answer = self._call("PUT", f"/v3/hooks/{hook['id']}", body=wanted)
            else:
                made.append(hook)
                continue
            data = (self._json(answer) or {}).get("data")
            if not isinstance(data, dict):
                raise PermanentError(f"hook for {scope} was not created", platform=PLATFORM)
            made.append(data)
        return made
