"""WooCommerce REST API v3 (``{site}/wp-json/wc/v3``), through the shared HTTP client.

Facts: ``../shared/reference/api-storefronts.md`` §2 (sources WC-DOCS, WC-SRC, WCPY).
- Auth: HTTP Basic with the consumer key and secret over HTTPS; over plain HTTP WooCommerce only
  accepts OAuth 1.0a "one-legged" signatures, with a nonce it refuses to see twice
  [WC-DOCS _authentication.md]. The ``woocommerce`` package's signer does the signing; it runs
  per attempt (``requests`` auth hook), so a retry carries a fresh nonce and timestamp.
- Orders: ``modified_after`` + ``dates_are_gmt=true`` (without it the filter compares against
  the site's local time), ``orderby=modified``, ascending, 100 per page (the maximum).
- Customers have no modification filter: a full scan by id, 100 per page; the engine's content
  compare makes an unchanged customer cost no CRM call, and webhooks carry the real-time path.
- No rate limit in WooCommerce core; hosts and WAFs answer 429/503 with Retry-After.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
from woocommerce.oauth import OAuth

from connectors.errors import ConfigurationError, PermanentError
from connectors.http import Action, HttpClient, Policy, retry_after_header
from connectors.pagination import Page, live_then_removed, modified_window, page_numbers

PLATFORM = "woocommerce"
API_PATH = "/wp-json/wc/v3"
PAGE_SIZE = 100  # per_page maximum [WC-DOCS _orders.md]
BATCH_SIZE = 100  # create + update + delete per /batch call [WC-SRC class-wc-rest-controller.php]
DOCS = {
    "orders": "https://woocommerce.github.io/woocommerce-rest-api-docs/#list-all-orders",
    "customers": "https://woocommerce.github.io/woocommerce-rest-api-docs/#list-all-customers",
    "batch": "https://woocommerce.github.io/woocommerce-rest-api-docs/#batch-update-customers",
    "webhooks": "https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks",
}
WEBHOOK_TOPICS = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "order.created",
    "order.updated",
    "order.deleted",
    "order.restored",
)
# WordPress answers a page past the last with this error; some WooCommerce versions answer
# [] instead (UNCONFIRMED which): both end a scan.
_PAST_THE_END = "rest_post_invalid_page_number"


def normalise_site_url(value: str) -> str:
    """The site URL as the store reports it, without a trailing slash or the API path.

    Raises ConfigurationError for anything but an http(s) URL with a host.
    """
    text = (value or "").strip().rstrip("/")
    if text.endswith(API_PATH):
        text = text[: -len(API_PATH)]
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigurationError(
            f"{value!r} is not a WooCommerce site URL (https://shop.example.com)",
            platform=PLATFORM,
        )
    return f"{parts.scheme}://{parts.netloc.lower()}{parts.path}"


def _error(response: requests.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _classify(response: requests.Response) -> Action | None:
    code = _error(response).get("code")
    if response.status_code == 400 and code == _PAST_THE_END:
        return Action.SUCCESS  # the caller reads it as an empty page
    # Keys revoked or lacking permission: retrying cannot help, an operator must act.
    if response.status_code == 401 or code == "woocommerce_rest_cannot_view":
        return Action.CONFIG
    return None


def _message(response: requests.Response) -> str:
    body = _error(response)
    return (
        f"{response.status_code} {body.get('code', '')}: {body.get('message', response.text[:200])}"
    )


WOOCOMMERCE_POLICY = Policy(
    platform=PLATFORM,
    statuses={413: Action.FAIL, 503: Action.RATE_LIMITED},
    classify=_classify,
    retry_after=retry_after_header,
    error_message=_message,
)


class _OAuth1(requests.auth.AuthBase):
    """OAuth 1.0a one-legged signing of the final URL (query included), done per attempt."""

    def __init__(self, key: str, secret: str) -> None:
        self.key, self.secret = key, secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.url = OAuth(
            request.url, self.key, self.secret, version="wc/v3", method=request.method
        ).get_oauth_url()
        return request


def _gmt(raw: Mapping[str, Any], key: str) -> datetime:
    value = raw.get(key) or raw.get("date_created_gmt")
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


class WooCommerceConnector:
    """One WooCommerce site. Every call goes through ``http`` (retries, budget, SSRF guard)."""

    platform = PLATFORM
    bulk_backfill = False  # no bulk export: backfills page through the list endpoints
    customers_incremental = False

    def __init__(
        self,
        site_url: str,
        consumer_key: str,
        consumer_secret: str,
        http: HttpClient,
        *,
        customer_role: str = "customer",
    ) -> None:
        self.site_url = normalise_site_url(site_url)
        self.api = self.site_url + API_PATH
        self.http = http
        self.customer_role = customer_role
        http.add_secret(consumer_key)
        http.add_secret(consumer_secret)
        if self.site_url.startswith("https://"):
            self._auth: requests.auth.AuthBase = requests.auth.HTTPBasicAuth(
                consumer_key, consumer_secret
            )
        else:
            self._auth = _OAuth1(consumer_key, consumer_secret)

    # ------------------------------------------------------------------ plumbing
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
            method,
            self.api + path,
            params=params,
            json=body,
            headers={"Accept": "application/json"},
            auth=self._auth,
            ok=ok,
        )

    def _list(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        response = self._call("GET", path, params=params)
        if response.status_code == 400:  # past the last page (see _classify)
            return []
        body = response.json()
        if not isinstance(body, list):
            raise PermanentError(f"GET {path} did not answer a list", platform=PLATFORM)
        return body

    # ------------------------------------------------------------------ reading
    def orders_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Orders modified since ``updated_since`` (all if None), oldest change first; then
        the orders trashed in that window, as ``Page.removed``.

        ``status=any`` leaves the trash out, and the order.deleted webhook that announces a
        trashing is never retried [WC-SRC class-wc-webhook.php], so polling reads the trash
        too: a lost webhook must not hide a deletion. Raises connectors.errors.*.
        """

        def read(trash: bool, window: str | None) -> tuple[list[dict[str, Any]], str | None]:
            def fetch(since: datetime | None, page: int) -> list[dict[str, Any]]:
                params: dict[str, Any] = {
                    "per_page": PAGE_SIZE,
                    "page": page,
                    "orderby": "modified",
                    "order": "asc",
                    "status": "trash" if trash else "any",
                    "dates_are_gmt": "true",
                }
                if since is not None:
                    params["modified_after"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
                return self._list("/orders", params)

            return modified_window(
                fetch,
                cursor=window,
                updated_since=updated_since,
                page_size=PAGE_SIZE,
                stamp=lambda raw: _gmt(raw, "date_modified_gmt"),
                key=lambda raw: str(raw["id"]),
                platform=PLATFORM,
            )

        live, trashed, following = live_then_removed(read, cursor=cursor, platform=PLATFORM)
        return Page(live, following, removed=tuple(str(r["id"]) for r in trashed))

    def customers_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Every customer, by id (``updated_since`` cannot be honoured: no such filter).

        Raises connectors.errors.*.
        """

        def fetch(page: int) -> list[dict[str, Any]]:
            params = {
                "per_page": PAGE_SIZE,
                "page": page,
                "orderby": "id",
                "order": "asc",
                "role": self.customer_role,
            }
            return self._list("/customers", params)

        records, cursor = page_numbers(fetch, cursor=cursor, page_size=PAGE_SIZE, platform=PLATFORM)
        return Page(records, cursor)

    def _get(self, path: str) -> dict[str, Any] | None:
        response = self._call("GET", path, ok=(404,))
        if response.status_code == 404:
            return None
        return response.json()

    def get_customers(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The customers of ``ids`` that exist. Raises connectors.errors.*."""
        found = (self._get(f"/customers/{int(i)}") for i in ids)
        return [c for c in found if c is not None]

    def get_orders(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The orders of ``ids`` that exist and are not in the trash. Raises connectors.errors.*."""
        found = (self._get(f"/orders/{int(i)}") for i in ids)
        return [o for o in found if o is not None and o.get("status") != "trash"]

    # ------------------------------------------------------------------ writing
    def update_customer(self, store_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """PUT a partial customer. Raises connectors.errors.*."""
        return self._call("PUT", f"/customers/{int(store_id)}", body=dict(fields)).json()

    def update_customers(
        self, changes: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Batch updates, 100 per call; one result per change, in order: the customer, or
        ``{"id", "error": {code, message}}`` for one WooCommerce refused. Raises
        connectors.errors.* for a call that failed as a whole."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(changes), BATCH_SIZE):
            chunk = changes[start : start + BATCH_SIZE]
            body = {"update": [{**dict(f), "id": int(i)} for i, f in chunk]}
            answer = self._call("POST", "/customers/batch", body=body).json()
            results.extend(answer.get("update") or [])
        return results

    def ensure_webhooks(self, address: str, secret: str) -> list[dict[str, Any]]:
        """Make sure every topic Tandem needs has an active webhook to ``address`` signed with
        ``secret``; creates the missing ones and reactivates ours that WooCommerce disabled
        after repeated failures. Idempotent. Raises connectors.errors.*."""
        existing: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = self._list("/webhooks", {"per_page": PAGE_SIZE, "page": page})
            existing.extend(batch)
            if len(batch) < PAGE_SIZE:
                break
            page += 1
        ours = {w.get("topic"): w for w in existing if w.get("delivery_url") == address}
        made = []
        for topic in WEBHOOK_TOPICS:
            hook = ours.get(topic)
            if hook is None:
                body = {
                    "name": f"Tandem {topic}",
                    "topic": topic,
                    "delivery_url": address,
                    "secret": secret,
                    "status": "active",
                }
                hook = self._call("POST", "/webhooks", body=body).json()
            elif hook.get("status") != "active":
                # The secret is set again too: a reactivated hook must sign with ours.
                hook = self._call(
                    "PUT", f"/webhooks/{hook['id']}", body={"status": "active", "secret": secret}
                ).json()
            made.append(hook)
        return made
