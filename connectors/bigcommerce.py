"""BigCommerce REST API (v2 orders, v3 customers and hooks), through the shared HTTP client.

Facts: ``reference/api-storefronts.md`` §3 (sources BC-ORD, BC-CUST, BC-RL, BC-WH, BC-ABOUT,
BCPY).
- ``X-Auth-Token`` on ``https://api.bigcommerce.com/stores/{store_hash}/v2|v3/...``; tokens do
  not expire by time [BC-ACCT].
- Orders (v2): ``min_date_modified`` (RFC-2822), ``sort=date_modified:asc``, 250 per page; a
  bare JSON array with no pagination metadata, and an empty page may be HTTP 204 with no body
  [BCPY base.py]. Line items live in the ``/orders/{id}/products`` sub-resource. Orders are
  archived (``is_deleted``), never deleted.
- Customers (v3): ``date_modified:min``, ``sort=date_modified:asc``, ``{data, meta}`` with
  ``meta.pagination``; writes take at most 10 records per call (413 above).
- One request quota per store, shared with every other app of the merchant, announced on every
  response by X-Rate-Limit-* headers; over it, 429 until X-Rate-Limit-Time-Reset-Ms [BC-RL].
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import requests

from connectors.crm import WriteResult
from connectors.errors import ConfigurationError, PermanentError
from connectors.http import Action, HttpClient, Policy
from connectors.pagination import (
    Fetched,
    Page,
    live_then_removed,
    modified_window,
    page_numbers,
)
from mapping import bigcommerce as bigcommerce_mapping
from mapping import writeback

PLATFORM = "bigcommerce"
DEFAULT_BASE_URL = "https://api.bigcommerce.com/stores/{store_hash}"
ORDERS_PAGE_SIZE = 250  # v2 limit maximum [BC-ABOUT common-query-params; BCPY base.py]
CUSTOMERS_PAGE_SIZE = 250  # the general maximum; v3 customers' own is UNCONFIRMED [BC-CUST]
WRITE_BATCH = 10  # v3 customers POST/PUT; 413 above [BC-CUST]
# ``PUT /v3/customers/addresses`` documents no per-call limit, only 3 concurrent requests
# (UNCONFIRMED): the customers' limit of 10 is kept.
ADDRESS_WRITE_BATCH = 10
LOOKUP_BATCH = 50  # ids per ``id:in`` lookup, well inside URL length limits
# What a CRM change can write to a BigCommerce customer (the mapping.writeback vocabulary):
# names, phone and notes through ``PUT /v3/customers``, and the default address (the first,
# as the mapping reads it) through ``PUT /v3/customers/addresses`` [BC-CUST]. No tags (v3
# customers have none) and no email consent: ``accepts_product_review_abandoned_cart_emails``
# is, as its schema says, whether the customer gets product-review or abandoned-cart emails,
# not newsletter consent, which lives on /v3/customers/subscribers (consents[]) [BC-CUST
# customers.v3.yml, subscribers.v3.yml].
WRITABLE_FIELDS = frozenset({"first_name", "last_name", "phone", "note"} | writeback.ADDRESS_PATHS)
# The quota is shared with every other app the merchant runs on the store [BC-RL]: riding it
# to zero would starve them (and earn everyone 429s), so the budget plans with this share of
# the announced quota held back.
QUOTA_MARGIN = 0.2
# The header each hook sends back with our secret; webhooks/bigcommerce.py checks it.
WEBHOOK_SECRET_HEADER = "X-Tandem-Webhook-Secret"  # noqa: S105 - a header name
WEBHOOK_SCOPES = (
    "store/customer/created",
    "store/customer/updated",
    "store/customer/deleted",
    "store/order/created",
    "store/order/updated",
    "store/order/archived",  # there is no store/order/deleted [BC-WH]
    "store/order/statusUpdated",
    "store/order/refund/created",
)


@dataclass(frozen=True)
class Endpoint:
    path: str
    docs: str


_DOCS = "https://developer.bigcommerce.com/docs/rest-management"
ENDPOINTS: Mapping[str, Endpoint] = {
    "orders": Endpoint("/v2/orders", _DOCS + "/orders#get-all-orders"),
    "order": Endpoint("/v2/orders/{id}", _DOCS + "/orders#get-an-order"),
    "order_products": Endpoint(
        "/v2/orders/{id}/products", _DOCS + "/orders/order-products#list-order-products"
    ),
    "customers": Endpoint("/v3/customers", _DOCS + "/customers#get-all-customers"),
    "addresses": Endpoint(
        "/v3/customers/addresses", _DOCS + "/customers/addresses#update-a-customer-address"
    ),
    "hooks": Endpoint("/v3/hooks", "https://developer.bigcommerce.com/docs/integrations/webhooks"),
    "hook": Endpoint(
        "/v3/hooks/{id}", "https://developer.bigcommerce.com/docs/integrations/webhooks"
    ),
}
LIMITS_DOCS = "https://developer.bigcommerce.com/docs/start/best-practices/api-rate-limits"
_STORE_HASH = re.compile(r"^[a-z0-9]{1,64}$")


def normalise_store_hash(value: str) -> str:
    """The store hash from a bare hash or a ``stores/{hash}`` context.

    Raises ConfigurationError for anything else.
    """
    text = (value or "").strip().lower().removeprefix("stores/")
    if not _STORE_HASH.match(text):
        raise ConfigurationError(f"{value!r} is not a BigCommerce store hash", platform=PLATFORM)
    return text


# --------------------------------------------------------------------------- rate limits


def _header(response: requests.Response, name: str) -> float | None:
    try:
        return float(response.headers[name])
    except (KeyError, ValueError):
        return None


def rate_limit_signal(response: requests.Response) -> dict[str, float | None] | None:
    """The store quota as the four X-Rate-Limit-* headers announce it [BC-RL], for the shared
    budget; None when a response carries none of them.

    Returns ``remaining`` and ``capacity`` (requests, with QUOTA_MARGIN of the quota held back
    for the merchant's other apps), ``refill_per_second`` (the usable quota over the window)
    and ``reset_seconds`` (until the window refills). A figure a response lacks is None.
    """
    left = _header(response, "X-Rate-Limit-Requests-Left")
    quota = _header(response, "X-Rate-Limit-Requests-Quota")
    window_ms = _header(response, "X-Rate-Limit-Time-Window-Ms")
    reset_ms = _header(response, "X-Rate-Limit-Time-Reset-Ms")
    if left is None or quota is None:
        return None
    reserve = quota * QUOTA_MARGIN
    return {
        "remaining": max(0.0, left - reserve),
        "capacity": quota - reserve,
        "refill_per_second": (quota - reserve) / (window_ms / 1000) if window_ms else None,
        "reset_seconds": reset_ms / 1000 if reset_ms is not None else None,
    }


def _retry_after(response: requests.Response) -> float | None:
    """Seconds until the quota window resets, from a 429 [BC-RL]. A 429 with neither header
    means load on the store rather than our quota: None leaves the wait to the client's
    growing backoff."""
    reset_ms = _header(response, "X-Rate-Limit-Time-Reset-Ms")
    if reset_ms is not None:
        return max(0.0, reset_ms / 1000)
    retry = _header(response, "X-Retry-After")
    return max(0.0, retry) if retry is not None else None


# --------------------------------------------------------------------------- errors


def _error_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: requests.Response) -> str:
    body = _error_body(response)
    if isinstance(body, list) and body and isinstance(body[0], dict):  # v2: [{status, message}]
        return f"{response.status_code}: {body[0].get('message')}"
    if isinstance(body, dict):  # v3: {status, title, type, errors}
        return f"{response.status_code}: {body.get('title')} {body.get('errors') or ''}".strip()
    return f"{response.status_code}: {response.text[:200]}"


def _classify(response: requests.Response) -> Action | None:
    # 401 is a configuration error, not an expired token: BigCommerce tokens never expire by
    # time [BC-ACCT]; a 401 means the app was uninstalled or its scopes changed (the token
    # is void until the merchant re-authorises) [BC-AUTH]. Nothing to refresh.
    if response.status_code == 401:
        return Action.CONFIG
    return None


BIGCOMMERCE_POLICY = Policy(
    platform=PLATFORM,
    # 413: more than WRITE_BATCH items, a bug of ours. 422: validation, for good.
    statuses={413: Action.FAIL, 422: Action.FAIL},
    classify=_classify,
    retry_after=_retry_after,
    error_message=_message,
)


# --------------------------------------------------------------------------- helpers


def _v2_stamp(raw: Mapping[str, Any]) -> datetime:
    """``date_modified`` of a v2 order (RFC-2822, e.g. ``Wed, 10 Jan 2018 21:05:30 +0000``)."""
    return parsedate_to_datetime(raw.get("date_modified") or raw["date_created"]).astimezone(UTC)


def _v3_stamp(raw: Mapping[str, Any]) -> datetime:
    """``date_modified`` of a v3 customer (ISO-8601)."""
    value = str(raw.get("date_modified") or raw["date_created"]).replace("Z", "+00:00")
    parsed = datetime.fromisoformat(value)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)


def _id(value: str | int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise PermanentError(f"{value!r} is not a BigCommerce id", platform=PLATFORM) from None


def _v3_last_page(body: Mapping[str, Any], page: int) -> bool:
    """Whether ``meta.pagination`` puts page ``page`` last (False if it says nothing)."""
    pagination = (body.get("meta") or {}).get("pagination") or {}
    try:
        return page >= int(pagination["total_pages"])
    except (KeyError, TypeError, ValueError):
        return False


def _all_pages(
    fetch: Callable[[int], list[dict[str, Any]] | Fetched], size: int
) -> list[dict[str, Any]]:
    """Every page of a small sub-listing, read at once (page numbers, with loop detection).
    ``size`` is the page size asked for (0 if unknown: only an empty page or the platform's
    word then ends the listing)."""
    rows: list[dict[str, Any]] = []
    cursor = None
    while True:
        records, cursor = page_numbers(fetch, cursor=cursor, page_size=size, platform=PLATFORM)
        rows.extend(records)
        if cursor is None:
            return rows


def _write_id(value: str) -> int:
    """A customer id for a write; a non-number is the caller's bug (ValueError)."""
    if isinstance(value, bool) or not str(value).isdigit() or int(value) < 1:
        raise ValueError(f"{value!r} is not a BigCommerce customer id")
    return int(value)


def _missing(store_id: str) -> WriteResult:
    return WriteResult(
        key=store_id, ok=False, id=store_id, error="customer not found", not_found=True
    )


def _optional_stamp(raw: Mapping[str, Any]) -> datetime | None:
    return _v3_stamp(raw) if raw.get("date_modified") or raw.get("date_created") else None


# An address update that would make it identical to another of the customer's addresses
# changes nothing and leaves it out of the answer (HTTP 200) [BC-CUST "Update a Customer
# Address"].
_ADDRESS_UNCHANGED = {
    "code": "unchanged",
    "message": "BigCommerce left the address unchanged: it would duplicate another address "
    "of the customer",
}


def _refused(result: Mapping[str, Any]) -> bool:
    """Whether an update_customers result is a refusal rather than a customer."""
    return set(result) == {"id", "error"}


# Statuses with which BigCommerce refuses a whole customers batch for some of its items: the
# batch is split until only those fail.
_PER_ITEM_STATUSES = (400, 409, 422)


class BigCommerceConnector:
    """One BigCommerce store. Every call goes through ``http`` (retries, budget, redaction)."""

    platform = PLATFORM
    bulk_backfill = False  # no bulk export: backfills page through the list endpoints
    customers_incremental = True
    writable_fields = WRITABLE_FIELDS

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
        self._headers = {"X-Auth-Token": access_token, "Accept": "application/json"}
        http.add_secret(access_token)

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
            method, self.base + path, params=params, json=body, headers=self._headers, ok=ok
        )

    @staticmethod
    def _json(response: requests.Response) -> Any:
        """The answer's JSON; None for 204 No Content or an empty body (an empty v2 page
        [BCPY base.py])."""
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise PermanentError(
                f"BigCommerce answered {response.status_code} without JSON",
                platform=PLATFORM,
                status=response.status_code,
            ) from None

    # ------------------------------------------------------------------ reading
    def _products(self, order_id: int) -> list[dict[str, Any]]:
        """Every line item of an order (all pages; orders rarely have more than one)."""
        path = ENDPOINTS["order_products"].path.format(id=order_id)

        def fetch(page: int) -> list[dict[str, Any]]:
            params = {"page": page, "limit": ORDERS_PAGE_SIZE}
            return self._json(self._call("GET", path, params=params)) or []  # 204: no more

        return _all_pages(fetch, ORDERS_PAGE_SIZE)

    def _with_lines(self, order: dict[str, Any]) -> dict[str, Any]:
        return {**order, "line_items": self._products(int(order["id"]))}

    def orders_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Orders modified since ``updated_since`` (all if None; timezone-aware), oldest change
        first, each with its ``line_items`` (the rows of ``/v2/orders/{id}/products``); then
        the orders archived in that window, as ``Page.removed``.

        Whether lists include archived orders is UNCONFIRMED, and a lost store/order/archived
        webhook must not hide one, so the archive is read too (``is_deleted=true``, a filter
        missing from the current spec but in SDKs generated from older ones: a platform that
        ignores it answers live orders there, which are skipped); an archived order met in the
        live listing is removed as well, never returned as a record.

        Raises RateLimitedError (429; ``retry_after`` from X-Rate-Limit-Time-Reset-Ms),
        RetriableError (5xx, network), ConfigurationError (401, 403), PermanentError (other
        refusals, a pagination loop).
        """

        def read(archived: bool, window: str | None) -> tuple[list[dict[str, Any]], str | None]:
            def fetch(since: datetime | None, page: int) -> list[dict[str, Any]]:
                params: dict[str, Any] = {
                    "sort": "date_modified:asc",
                    "limit": ORDERS_PAGE_SIZE,
                    "page": page,
                }
                if archived:
                    params["is_deleted"] = "true"
                if since is not None:
                    params["min_date_modified"] = format_datetime(since.astimezone(UTC))
                response = self._call("GET", ENDPOINTS["orders"].path, params=params)
                return self._json(response) or []  # 204 or [] past the end

            return modified_window(
                fetch,
                cursor=window,
                updated_since=updated_since,
                page_size=ORDERS_PAGE_SIZE,
                stamp=_v2_stamp,
                platform=PLATFORM,
            )

        raws, archived, following = live_then_removed(read, cursor=cursor, platform=PLATFORM)
        removed = [r for r in raws + archived if r.get("is_deleted")]
        live = [self._with_lines(r) for r in raws if not r.get("is_deleted")]
        return Page(live, following, removed=tuple(dict.fromkeys(str(r["id"]) for r in removed)))

    def customers_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Customers modified since ``updated_since`` (all if None; timezone-aware), oldest
        change first, with their addresses.

        Raises as :meth:`orders_page`.
        """

        def fetch(since: datetime | None, page: int) -> Fetched:
            params: dict[str, Any] = {
                "sort": "date_modified:asc",
                "limit": CUSTOMERS_PAGE_SIZE,
                "page": page,
                "include": "addresses",
            }
            if since is not None:
                # The docs' examples carry no offset; an explicit Z leaves no doubt that the
                # bound is UTC (a store-local reading would silently skip records).
                params["date_modified:min"] = since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            response = self._call("GET", ENDPOINTS["customers"].path, params=params)
            body = self._json(response) or {}
            return Fetched(list(body.get("data") or []), last=_v3_last_page(body, page))

        raws, following = modified_window(
            fetch,
            cursor=cursor,
            updated_since=updated_since,
            page_size=CUSTOMERS_PAGE_SIZE,
            stamp=_v3_stamp,
            platform=PLATFORM,
        )
        return Page(raws, following)

    def get_customers(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The customers of ``ids`` that exist, with their addresses, through ``id:in``
        LOOKUP_BATCH at a time; a deleted one is absent.

        Raises PermanentError for an id that is not a number, else as :meth:`orders_page`.
        """
        wanted = list(dict.fromkeys(_id(i) for i in ids))
        found: list[dict[str, Any]] = []
        for start in range(0, len(wanted), LOOKUP_BATCH):
            chunk = wanted[start : start + LOOKUP_BATCH]
            params = {
                "id:in": ",".join(str(i) for i in chunk),
                "include": "addresses",
                "limit": LOOKUP_BATCH,
            }
            body = self._json(self._call("GET", ENDPOINTS["customers"].path, params=params)) or {}
            # Only what was asked for, should a filter ever be ignored.
            found.extend(c for c in body.get("data") or [] if c.get("id") in chunk)
        return found

    def get_orders(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The orders of ``ids`` that exist and are not archived, each with its
        ``line_items``; a 404 or an archived order is absent.

        Raises PermanentError for an id that is not a number, else as :meth:`orders_page`.
        """
        found = []
        for order_id in ids:
            path = ENDPOINTS["order"].path.format(id=_id(order_id))
            response = self._call("GET", path, ok=(404,))
            order = None if response.status_code == 404 else self._json(response)
            if isinstance(order, dict) and not order.get("is_deleted"):
                found.append(self._with_lines(order))
        return found

    # ------------------------------------------------------------------ writing
    def update_customer(self, store_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Update one customer; returns it as BigCommerce now has it.

        Raises PermanentError (BigCommerce's error in ``details``) if it is refused, else as
        :meth:`orders_page`.
        """
        result = self.update_customers([(store_id, fields)])[0]
        if _refused(result):
            error = result["error"]
            raise PermanentError(
                f"BigCommerce refused customer {store_id}: {error['message']}",
                platform=PLATFORM,
                status=int(error["code"]) if error["code"].isdigit() else None,
                details=error.get("details"),
            )
        return result

    def update_customers(
        self, changes: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[dict[str, Any]]:
        """``PUT /v3/customers`` in batches of WRITE_BATCH.

        One result per change, in order: the customer as BigCommerce now has it, or
        ``{"id": <id>, "error": {"code", "message", "details"}}`` for one it refused.
        BigCommerce refuses a whole batch for one bad item (400/409/422), so a refused batch
        is split in halves until only the bad items fail (PUT is idempotent: re-sending the
        good ones is harmless).

        Raises PermanentError for a refusal that is not about items (413 would be a bug here),
        else as :meth:`orders_page`.
        """
        items = [(_id(i), dict(fields)) for i, fields in changes]
        results: list[dict[str, Any]] = []
        for start in range(0, len(items), WRITE_BATCH):
            results.extend(self._put_customers(items[start : start + WRITE_BATCH]))
        return results

    def _put_customers(self, chunk: list[tuple[int, dict[str, Any]]]) -> list[dict[str, Any]]:
        missing = {"code": "missing", "message": "BigCommerce returned no result for it"}
        return self._put_items(ENDPOINTS["customers"].path, chunk, missing)

    def _put_items(
        self, path: str, chunk: list[tuple[int, dict[str, Any]]], missing: dict[str, str]
    ) -> list[dict[str, Any]]:
        """PUT a batch of ``(id, fields)``; one result per item (see :meth:`update_customers`),
        ``{"id", "error": missing}`` for an item the answer leaves out."""
        body = [{**fields, "id": item_id} for item_id, fields in chunk]
        response = self._call("PUT", path, body=body, ok=_PER_ITEM_STATUSES)
        if response.status_code in _PER_ITEM_STATUSES:
            if len(chunk) == 1:
                error = _error_body(response)
                return [
                    {
                        "id": chunk[0][0],
                        "error": {
                            "code": str(response.status_code),
                            "message": _message(response),
                            "details": error,
                        },
                    }
                ]
            middle = len(chunk) // 2
            return self._put_items(path, chunk[:middle], missing) + self._put_items(
                path, chunk[middle:], missing
            )
        answer = self._json(response) or {}
        by_id = {c.get("id"): c for c in answer.get("data") or [] if isinstance(c, dict)}
        return [by_id.get(item_id) or {"id": item_id, "error": missing} for item_id, _ in chunk]

    def write_customers(
        self, patches: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Write canonical patches (mapping.writeback) to customers by id: one result per
        patch, in order.

        The customers are read first (with their addresses, LOOKUP_BATCH per call) and only
        what differs is written: customer fields through ``PUT /v3/customers`` (WRITE_BATCH a
        call), the default address through ``PUT /v3/customers/addresses``
        (ADDRESS_WRITE_BATCH a call), each refused batch split until only the refused items
        fail. A customer whose address changed is read again for its ``date_modified``
        (whether an address change moves it is UNCONFIRMED; store/customer/updated does not
        fire for one [BC-WH]). A customer that does not exist (before the write, or after a
        refusal) is ``not_found``; one without an address cannot get an address written (a
        new one needs a state or province, which the vocabulary lacks).

        Raises ValueError for a path outside WRITABLE_FIELDS, a non-canonical value or an id
        that is not a number; else as :meth:`orders_page`.
        """
        checked = [
            (str(_write_id(store_id)), writeback.check_patch(patch, WRITABLE_FIELDS))
            for store_id, patch in patches
        ]
        current = {str(c["id"]): c for c in self.get_customers([i for i, _ in checked])}
        results: list[WriteResult | None] = [None] * len(checked)
        customer_writes: list[tuple[int, str, dict[str, Any]]] = []
        address_writes: list[tuple[int, str, int, dict[str, Any]]] = []
        for index, (store_id, patch) in enumerate(checked):
            raw = current.get(store_id)
            if raw is None:
                results[index] = _missing(store_id)
                continue
            try:
                customer = bigcommerce_mapping.customer_from_v3(raw)
            except ValueError as exc:  # MappingError: a record we cannot compare with
                results[index] = WriteResult(key=store_id, ok=False, id=store_id, error=str(exc))
                continue
            wanted = writeback.changes(customer, patch)
            fields = bigcommerce_mapping.customer_update(wanted)
            address = bigcommerce_mapping.address_update(wanted)
            addresses = raw.get("addresses") or []
            if address and not addresses:
                results[index] = WriteResult(
                    key=store_id,
                    ok=False,
                    id=store_id,
                    error="the customer has no address to update; a new one needs a state "
                    "or province, which Tandem does not write",
                )
                continue
            if not fields and not address:
                results[index] = WriteResult(
                    key=store_id, ok=True, id=store_id, updated_at=customer.updated_at
                )
                continue
            if fields:
                customer_writes.append((index, store_id, fields))
            if address:
                address_writes.append((index, store_id, int(addresses[0]["id"]), address))
        stamps, failures = self._write_fields(customer_writes)
        failures.update(self._write_addresses(address_writes))
        # Read back what the answers do not tell: date_modified after an address write (its
        # answer is the address), and whether a refused customer still exists.
        again = list(
            dict.fromkeys(
                [checked[i][0] for i, *_ in address_writes] + [checked[i][0] for i in failures]
            )
        )
        now = {str(c["id"]): c for c in self.get_customers(again)} if again else {}
        for index in {i for i, *_ in customer_writes} | {i for i, *_ in address_writes}:
            store_id = checked[index][0]
            error = failures.get(index)
            if error is not None:
                results[index] = WriteResult(
                    key=store_id,
                    ok=False,
                    id=store_id,
                    error=str(error.get("message")),
                    details=error.get("details", error),
                    not_found=store_id not in now,
                )
                continue
            stamp = _optional_stamp(now[store_id]) if store_id in now else stamps.get(index)
            results[index] = WriteResult(key=store_id, ok=True, id=store_id, updated_at=stamp)
        done = [r for r in results if r is not None]
        if len(done) != len(results):  # one result per patch, in order: anything else is a bug
            raise RuntimeError("write_customers left a patch without a result")
        return done

    def _write_fields(
        self, writes: Sequence[tuple[int, str, dict[str, Any]]]
    ) -> tuple[dict[int, datetime | None], dict[int, dict[str, Any]]]:
        """``PUT /v3/customers`` for ``(index, id, fields)``: the saved customers'
        ``date_modified`` and the refused, by index."""
        answers = self.update_customers([(store_id, body) for _, store_id, body in writes])
        stamps: dict[int, datetime | None] = {}
        refused: dict[int, dict[str, Any]] = {}
        for (index, _, _), answer in zip(writes, answers, strict=True):
            if _refused(answer):
                refused[index] = answer["error"]
            else:
                stamps[index] = _optional_stamp(answer)
        return stamps, refused

    def _write_addresses(
        self, writes: Sequence[tuple[int, str, int, dict[str, Any]]]
    ) -> dict[int, dict[str, Any]]:
        """``PUT /v3/customers/addresses`` for ``(index, customer id, address id, fields)``,
        ADDRESS_WRITE_BATCH a call; the refused, by index."""
        refused: dict[int, dict[str, Any]] = {}
        for start in range(0, len(writes), ADDRESS_WRITE_BATCH):
            chunk = list(writes[start : start + ADDRESS_WRITE_BATCH])
            answers = self._put_items(
                ENDPOINTS["addresses"].path,
                [(address_id, body) for _, _, address_id, body in chunk],
                _ADDRESS_UNCHANGED,
            )
            for (index, *_), answer in zip(chunk, answers, strict=True):
                if _refused(answer):
                    refused[index] = answer["error"]
        return refused

    def _hooks(self) -> list[dict[str, Any]]:
        """Every hook of our token (only those are listed [BC-WH]): a handful at most."""

        def fetch(page: int) -> Fetched:
            response = self._call("GET", ENDPOINTS["hooks"].path, params={"page": page})
            body = self._json(response) or {}
            hooks = [h for h in body.get("data") or [] if isinstance(h, dict)]
            # Without meta.pagination the answer is the whole list.
            paged = bool((body.get("meta") or {}).get("pagination"))
            return Fetched(hooks, last=not paged or _v3_last_page(body, page))

        return _all_pages(fetch, 0)

    def ensure_webhooks(self, address: str, secret: str) -> list[dict[str, Any]]:
        """Make sure each of WEBHOOK_SCOPES has an active hook to ``address`` that sends
        ``secret`` in WEBHOOK_SECRET_HEADER: creates the missing ones, and reactivates (or
        re-keys) ours that BigCommerce deactivated after failed deliveries or 90 idle days
        [BC-WH]. Idempotent: a second call changes nothing. Returns our hook per scope.

        Raises PermanentError if BigCommerce refuses a hook (e.g. a destination not on https
        port 443), else as :meth:`orders_page`.
        """
        ours = {h.get("scope"): h for h in self._hooks() if h.get("destination") == address}
        wanted = {"is_active": True, "headers": {WEBHOOK_SECRET_HEADER: secret}}
        made = []
        for scope in WEBHOOK_SCOPES:
            hook = ours.get(scope)
            if hook is None:
                response = self._call(
                    "POST",
                    ENDPOINTS["hooks"].path,
                    body={"scope": scope, "destination": address, **wanted},
                )
            elif (
                not hook.get("is_active")
                or (hook.get("headers") or {}).get(WEBHOOK_SECRET_HEADER) != secret
            ):
                path = ENDPOINTS["hook"].path.format(id=hook["id"])
                response = self._call("PUT", path, body=wanted)
            else:
                made.append(hook)
                continue
            data = (self._json(response) or {}).get("data")
            if not isinstance(data, dict):
                raise PermanentError(f"hook for {scope} was not saved", platform=PLATFORM)
            made.append(data)
        return made
