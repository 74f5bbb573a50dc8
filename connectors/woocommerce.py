"""WooCommerce REST API v3 (``{site}/wp-json/wc/v3``), through the shared HTTP client.

Facts: ``reference/api-storefronts.md`` §2 (sources WC-DOCS, WC-SRC, WCPY, WP-PAG).
- Auth: HTTP Basic with the consumer key and secret over HTTPS; over plain HTTP WooCommerce only
  accepts OAuth 1.0a "one-legged" signatures, with a nonce it refuses to see twice and a
  timestamp within 15 minutes [WC-DOCS _authentication.md]. The ``woocommerce`` package's
  signer does the signing; it runs per attempt (a ``requests`` auth hook the HttpClient hands
  to every attempt), so a retry carries a fresh nonce and timestamp.
- Orders: ``modified_after`` + ``dates_are_gmt=true`` (without it the filter compares against
  the site's local time), ``orderby=modified`` (in the source's enum though absent from the
  published docs [WC-SRC class-wc-rest-crud-controller.php]), ascending, 100 per page (the
  maximum). Only the ``*_gmt`` dates are read: the others are site-local without an offset.
- Customers have no modification filter: a full scan by id, 100 per page; the engine's content
  compare makes an unchanged customer cost no CRM call, and webhooks carry the real-time path.
- Lists answer ``X-WP-Total`` and ``X-WP-TotalPages`` [WP-PAG]; a page past the last is ``[]``
  or 400 ``rest_post_invalid_page_number`` (UNCONFIRMED which): both end a scan.
- No rate limit in WooCommerce core [WC-DOCS _introduction.md]; hosts and WAFs answer 429/503
  with Retry-After.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import requests.auth
from woocommerce.oauth import OAuth

from connectors.crm import WriteResult
from connectors.errors import ConfigurationError, PermanentError
from connectors.http import Action, HttpClient, Policy, retry_after_header
from connectors.pagination import (
    Fetched,
    Page,
    live_then_removed,
    modified_window,
    page_numbers,
)
from mapping import woocommerce as woocommerce_mapping
from mapping import writeback

PLATFORM = "woocommerce"
API_PATH = "/wp-json/wc/v3"
PAGE_SIZE = 100  # per_page maximum [WC-DOCS _orders.md, _customers.md]
# create + update + delete per /batch call; more is 413 [WC-SRC class-wc-rest-controller.php]
BATCH_SIZE = 100


@dataclass(frozen=True)
class Endpoint:
    path: str
    docs: str


_DOCS = "https://woocommerce.github.io/woocommerce-rest-api-docs/"
ENDPOINTS: Mapping[str, Endpoint] = {
    "orders": Endpoint("/orders", _DOCS + "#list-all-orders"),
    "order": Endpoint("/orders/{id}", _DOCS + "#retrieve-an-order"),
    "customers": Endpoint("/customers", _DOCS + "#list-all-customers"),
    "customer": Endpoint("/customers/{id}", _DOCS + "#retrieve-a-customer"),
    "customers_batch": Endpoint("/customers/batch", _DOCS + "#batch-update-customers"),
    "webhooks": Endpoint("/webhooks", _DOCS + "#list-all-webhooks"),
    "webhook": Endpoint("/webhooks/{id}", _DOCS + "#update-a-webhook"),
}
WEBHOOK_TOPICS = (
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "order.created",
    "order.updated",
    "order.deleted",  # fires on trashing [WC-SRC wc-webhook-functions.php]
    "order.restored",
)
# What a CRM change can write to a WooCommerce customer (the mapping.writeback vocabulary):
# names, the phone (billing.phone) and the default address (see mapping.woocommerce
# customer_update). WooCommerce customers have no tags, note or marketing consent of their
# own [WC-DOCS _customers.md]; plugins keep those in meta_data, which is not a contract.
WRITABLE_FIELDS = frozenset({"first_name", "last_name", "phone"} | writeback.ADDRESS_PATHS)
# The answer for an update of an id that is no customer [WC-SRC
# class-wc-rest-customers-controller.php update_item: 400 woocommerce_rest_invalid_id].
INVALID_ID = "woocommerce_rest_invalid_id"
# WordPress answers a page past the last with this error; some WooCommerce versions answer
# [] instead (UNCONFIRMED which) [WP-PAG]: both end a scan.
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


# --------------------------------------------------------------------------- errors


def _error(response: requests.Response) -> dict[str, Any]:
    """WooCommerce's error object ``{code, message, data: {status}}`` [WC-DOCS
    _introduction.md "Errors"], or {}."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _classify(response: requests.Response) -> Action | None:
    status, code = response.status_code, _error(response).get("code")
    if status == 400 and code == _PAST_THE_END:
        return Action.SUCCESS  # read as an empty last page
    # 401 is a configuration error, not an expired token: WooCommerce keys never expire, so
    # there is nothing to refresh. A 401 means the keys were revoked or mistyped, lack the
    # permission, or (OAuth) the server clock is more than 15 minutes off; an operator must act.
    if status == 401 or code == "woocommerce_rest_cannot_view":
        return Action.CONFIG
    # No REST route at all (a wrong site URL, WooCommerce deactivated, plain permalinks): a
    # setup problem, never "this record is absent".
    if status == 404 and code == "rest_no_route":
        return Action.CONFIG
    return None


def _message(response: requests.Response) -> str:
    body = _error(response)
    return (
        f"{response.status_code} {body.get('code', '')}: {body.get('message', response.text[:200])}"
    )


WOOCOMMERCE_POLICY = Policy(
    platform=PLATFORM,
    # 413: more than BATCH_SIZE items in one batch, a bug of ours (retrying cannot help).
    # 503: hosts answer overload with it and a Retry-After, like a 429.
    statuses={413: Action.FAIL, 503: Action.RATE_LIMITED},
    classify=_classify,
    retry_after=retry_after_header,
    error_message=_message,
)


# --------------------------------------------------------------------------- OAuth 1.0a


class _Signer(OAuth):
    """The ``woocommerce`` package's signer with a 128-bit random nonce.

    The package's own nonce is a hash of 8 random digits drawn from ``random`` (10^8
    possibilities): a busy key would soon repeat one within WooCommerce's 15-minute window and
    be refused; the docs recommend 32 characters [WC-DOCS _authentication.md].
    """

    @staticmethod
    def generate_nonce() -> str:
        return secrets.token_hex(16)


class _OAuth1(requests.auth.AuthBase):
    """OAuth 1.0a one-legged signing, applied by ``requests`` to each prepared attempt.

    It signs the final URL, query included (``requests`` has merged ``params`` into it before
    auth runs), and appends the ``oauth_*`` parameters to that query: WooCommerce reads the
    signature from the query string and verifies it over the request's own query parameters
    [WC-DOCS _authentication.md]. The body is not signed. Query keys must be unique (the
    signer keeps one value per key), which every request of this module respects.
    """

    def __init__(self, key: str, secret: str) -> None:
        self.key, self.secret = key, secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        signer = _Signer(str(request.url), self.key, self.secret, version="wc/v3",
                         method=request.method)  # fmt: skip
        request.url = signer.get_oauth_url()
        return request


# --------------------------------------------------------------------------- helpers


def _gmt(raw: Mapping[str, Any], key: str) -> datetime:
    """A ``*_gmt`` date (ISO-8601 without an offset, in UTC) as an aware datetime; the creation
    date stands in for a record never modified."""
    value = raw.get(key) or raw.get("date_created_gmt")
    if not value:
        raise PermanentError(f"record {raw.get('id')} has no {key}", platform=PLATFORM)
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC)


def _total_pages(response: requests.Response) -> int | None:
    try:
        return int(response.headers["X-WP-TotalPages"])
    except (KeyError, ValueError):
        return None


def _id(value: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PermanentError(f"{value!r} is not a WooCommerce id", platform=PLATFORM) from None


def _write_id(value: str) -> int:
    """A customer id for a write; a non-number is the caller's bug (ValueError)."""
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise ValueError(f"{value!r} is not a WooCommerce customer id")
    return int(value)


def _missing(store_id: str) -> WriteResult:
    return WriteResult(
        key=store_id, ok=False, id=store_id, error="Invalid resource ID.", not_found=True
    )


def _write_result(store_id: str, answer: Mapping[str, Any]) -> WriteResult:
    """One item of a batch answer: the customer as saved, or ``{id, error}``."""
    error = answer.get("error")
    if isinstance(error, Mapping):
        return WriteResult(
            key=store_id,
            ok=False,
            id=store_id,
            error=str(error.get("message") or error.get("code")),
            details=dict(error),
            not_found=error.get("code") == INVALID_ID,
        )
    return WriteResult(
        key=store_id, ok=True, id=store_id, updated_at=_gmt(answer, "date_modified_gmt")
    )


class WooCommerceConnector:
    """One WooCommerce site. Every call goes through ``http`` (retries, budget, SSRF guard)."""

    platform = PLATFORM
    bulk_backfill = False  # no bulk export: backfills page through the list endpoints
    customers_incremental = False  # no modification filter on /customers
    writable_fields = WRITABLE_FIELDS

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
            # The HttpClient refuses plain http except to the local sandbox.
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

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            # An HTML page where the REST API should answer: a caching or security plugin, or
            # a site URL that is not the WordPress root. Retrying cannot help.
            raise ConfigurationError(
                f"{response.url and urlsplit(response.url).path} did not answer JSON; is the "
                "site URL the WordPress address, with the REST API reachable?",
                platform=PLATFORM,
                status=response.status_code,
            ) from None

    def _list(self, path: str, params: Mapping[str, Any]) -> Fetched:
        response = self._call("GET", path, params=params)
        if response.status_code == 400:  # past the last page (see _classify)
            return Fetched([], last=True)
        body = self._json(response)
        if not isinstance(body, list):
            raise PermanentError(f"GET {path} did not answer a list", platform=PLATFORM)
        total = _total_pages(response)
        return Fetched(body, last=total is not None and int(params.get("page", 1)) >= total)

    def _get(self, path: str) -> dict[str, Any] | None:
        response = self._call("GET", path, ok=(404,))
        if response.status_code == 404:  # woocommerce_rest_*invalid_id: no such record
            return None
        body = self._json(response)
        return body if isinstance(body, dict) else None

    # ------------------------------------------------------------------ reading
    def orders_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Orders modified since ``updated_since`` (all if None; timezone-aware), oldest
        change first; then the orders trashed in that window, as ``Page.removed``.

        ``status=any`` leaves the trash out, and the order.deleted webhook that announces a
        trashing is never retried [WC-SRC class-wc-webhook.php], so polling reads the trash
        too: a lost webhook must not hide a deletion.

        Raises RetriableError / RateLimitedError (host errors, 429/503), ConfigurationError
        (401, no REST route, not JSON), PermanentError (other refusals, a pagination loop).
        """

        def read(trash: bool, window: str | None) -> tuple[list[dict[str, Any]], str | None]:
            def fetch(since: datetime | None, page: int) -> Fetched:
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
                return self._list(ENDPOINTS["orders"].path, params)

            return modified_window(
                fetch,
                cursor=window,
                updated_since=updated_since,
                page_size=PAGE_SIZE,
                stamp=lambda raw: _gmt(raw, "date_modified_gmt"),
                platform=PLATFORM,
            )

        live, trashed, following = live_then_removed(read, cursor=cursor, platform=PLATFORM)
        return Page(live, following, removed=tuple(str(r["id"]) for r in trashed))

    def customers_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Every customer of ``customer_role``, by id. ``updated_since`` is ignored: WooCommerce
        has no such filter for customers [WC-DOCS _customers.md].

        Raises as :meth:`orders_page`.
        """

        def fetch(page: int) -> Fetched:
            params = {
                "per_page": PAGE_SIZE,
                "page": page,
                "orderby": "id",
                "order": "asc",
                "role": self.customer_role,
            }
            return self._list(ENDPOINTS["customers"].path, params)

        records, following = page_numbers(
            fetch, cursor=cursor, page_size=PAGE_SIZE, platform=PLATFORM
        )
        return Page(records, following)

    def get_customers(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The customers of ``ids`` that exist (a 404 is absent), in the order asked.

        Raises PermanentError for an id that is not a number, else as :meth:`orders_page`.
        """
        found = (self._get(ENDPOINTS["customer"].path.format(id=_id(i))) for i in ids)
        return [c for c in found if c is not None]

    def get_orders(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The orders of ``ids`` that exist and are not in the trash, in the order asked.

        Raises PermanentError for an id that is not a number, else as :meth:`orders_page`.
        """
        found = (self._get(ENDPOINTS["order"].path.format(id=_id(i))) for i in ids)
        return [o for o in found if o is not None and o.get("status") != "trash"]

    # ------------------------------------------------------------------ writing
    def update_customer(self, store_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """PUT a partial customer; returns it as WooCommerce now has it.

        Raises PermanentError (WooCommerce's ``{code, message}`` in ``details``: an unknown id,
        an invalid field), else as :meth:`orders_page`.
        """
        path = ENDPOINTS["customer"].path.format(id=_id(store_id))
        return self._json(self._call("PUT", path, body=dict(fields)))

    def update_customers(
        self, changes: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        """Partial updates through ``/customers/batch``, BATCH_SIZE per call.

        One result per change, in order: the customer as WooCommerce now has it, or
        ``{"id": <id>, "error": {"code", "message", "data"}}`` for one WooCommerce refused
        (the batch answers per item [WC-SRC class-wc-rest-controller.php batch_items]).

        Raises PermanentError for a call refused as a whole (413 would be a bug here), else as
        :meth:`orders_page`.
        """
        results: list[dict[str, Any]] = []
        for start in range(0, len(changes), BATCH_SIZE):
            chunk = changes[start : start + BATCH_SIZE]
            body = {"update": [{**dict(fields), "id": _id(i)} for i, fields in chunk]}
            answer = self._json(self._call("POST", ENDPOINTS["customers_batch"].path, body=body))
            items = answer.get("update") if isinstance(answer, dict) else None
            if not isinstance(items, list) or len(items) != len(chunk):
                raise PermanentError(
                    "the customers batch did not answer one result per update",
                    platform=PLATFORM,
                    details=answer,
                )
            results.extend(items)
        return results

    def write_customers(
        self, patches: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Write canonical patches (mapping.writeback) to customers by id: one result per
        patch, in order.

        The customers are read first (``GET /customers?include=...``, PAGE_SIZE ids a call)
        and only what differs is sent, through ``/customers/batch`` (BATCH_SIZE a call). That
        read is what makes a repeated write a no-op: WooCommerce itself saves every update it
        is sent, moving ``date_modified`` and firing ``customer.updated`` even when nothing
        changed (the data store's update() always calls wp_update_user, whose profile_update
        hook stamps ``last_update`` [WC-SRC class-wc-customer-data-store.php,
        wc-user-functions.php wc_update_profile_last_update_time]). A per-item refusal is that
        customer's failure; an id that is no customer is ``not_found``.

        Raises ValueError for a path outside WRITABLE_FIELDS, a non-canonical value or an id
        that is not a number; else as :meth:`orders_page`.
        """
        checked = [
            (str(_write_id(store_id)), writeback.check_patch(patch, WRITABLE_FIELDS))
            for store_id, patch in patches
        ]
        current = self._customers_by_id([i for i, _ in checked])
        results: list[WriteResult | None] = [None] * len(checked)
        writes: list[tuple[int, str, dict[str, Any]]] = []
        for index, (store_id, patch) in enumerate(checked):
            raw = current.get(store_id)
            if raw is None:
                results[index] = _missing(store_id)
                continue
            try:
                customer = woocommerce_mapping.customer_from_rest(raw)
            except ValueError as exc:  # MappingError: a record we cannot compare with
                results[index] = WriteResult(key=store_id, ok=False, id=store_id, error=str(exc))
                continue
            wanted = writeback.changes(customer, patch)
            if not wanted:
                results[index] = WriteResult(
                    key=store_id, ok=True, id=store_id, updated_at=customer.updated_at
                )
                continue
            writes.append((index, store_id, woocommerce_mapping.customer_update(wanted, raw)))
        answers = self.update_customers([(store_id, body) for _, store_id, body in writes])
        for (index, store_id, _), answer in zip(writes, answers, strict=True):
            results[index] = _write_result(store_id, answer)
        done = [r for r in results if r is not None]
        if len(done) != len(results):  # one result per patch, in order: anything else is a bug
            raise RuntimeError("write_customers left a patch without a result")
        return done

    def _customers_by_id(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The customers of ``ids`` that exist, whatever their role, by id: PAGE_SIZE ids per
        list call (``include``, comma-separated: the OAuth signer keeps one value per key)."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), PAGE_SIZE):
            chunk = wanted[start : start + PAGE_SIZE]
            params = {
                "include": ",".join(chunk),
                "per_page": PAGE_SIZE,
                "role": "all",
                "orderby": "id",
                "order": "asc",
            }
            for raw in self._list(ENDPOINTS["customers"].path, params).records:
                if str(raw.get("id")) in chunk:  # only what was asked for
                    found[str(raw["id"])] = raw
        return found

    def ensure_webhooks(self, address: str, secret: str) -> list[dict[str, Any]]:
        """Make sure each of WEBHOOK_TOPICS has a webhook to ``address`` signed with
        ``secret``: creates the missing ones (active) and reactivates ours that WooCommerce
        disabled after repeated failed deliveries [WC-SRC class-wc-webhook.php]. A webhook the
        merchant paused stays paused (polling covers it). Idempotent: a second call changes
        nothing. Returns our webhook per topic.

        Raises as :meth:`update_customer`.
        """

        def fetch(page: int) -> Fetched:
            return self._list(ENDPOINTS["webhooks"].path, {"per_page": PAGE_SIZE, "page": page})

        existing: list[dict[str, Any]] = []
        cursor = None
        while True:  # a site has few webhooks: a page or two
            records, cursor = page_numbers(
                fetch, cursor=cursor, page_size=PAGE_SIZE, platform=PLATFORM
            )
            existing.extend(records)
            if cursor is None:
                break
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
                hook = self._json(self._call("POST", ENDPOINTS["webhooks"].path, body=body))
            elif hook.get("status") == "disabled":
                # The secret is set again too: WooCommerce does not show it back (it is in the
                # edit context only), so a reactivated hook must be told ours.
                path = ENDPOINTS["webhook"].path.format(id=hook["id"])
                hook = self._json(
                    self._call("PUT", path, body={"status": "active", "secret": secret})
                )
            made.append(hook)
        return made
