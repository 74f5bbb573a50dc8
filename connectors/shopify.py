"""Shopify Admin GraphQL API (customers, orders, bulk export, customer write-back) over the
shared HttpClient.

What this module declares: the API version and endpoint, the node selections (the contract in
briefs/shopify_query.md), each query's page size derived from the 1000-point cost cap, and
the error policy. The only logic is for Shopify's quirks, each a small named function:
completing an order's line items past the first page, re-attaching bulk JSONL children to
their parents, and reading a bulk file in chunks that never split a parent from its children.

Facts are from shared/reference/api-storefronts.md section 1 (sources there), chiefly:
- https://shopify.dev/docs/api/admin-graphql/2026-01 (objects, queries, mutations)
- https://shopify.dev/docs/api/usage/pagination-graphql (cursors, at most 250 per page)
- https://shopify.dev/docs/api/usage/search-syntax (``updated_at:>='...'``, quoted dates)
- https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits (calculated query cost)
- https://shopify.dev/docs/api/usage/bulk-operations/queries (bulk export, JSONL)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import requests

from connectors.crm import WriteResult
from connectors.errors import ConfigurationError, PermanentError, RetriableError
from connectors.http import Action, HttpClient, Policy
from connectors.pagination import Page
from mapping import shopify as shopify_mapping
from mapping import writeback

PLATFORM = "shopify"

# --------------------------------------------------------------------------- declaration

# Versions are quarterly and supported for a year; pin one and move on purpose
# (https://shopify.dev/docs/api/usage/versioning).
DEFAULT_API_VERSION = "2026-01"
DEFAULT_BASE_URL = "https://{shop}"
GRAPHQL_PATH = "/admin/api/{version}/graphql.json"
DOCS = {
    "customers": "https://shopify.dev/docs/api/admin-graphql/2026-01/queries/customers",
    "orders": "https://shopify.dev/docs/api/admin-graphql/2026-01/queries/orders",
    "customerUpdate": "https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/customerUpdate",
    "customerEmailMarketingConsentUpdate": "https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/customerEmailMarketingConsentUpdate",
    "customerAddressUpdate": "https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/customerAddressUpdate",
    "customerAddressCreate": "https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/customerAddressCreate",
    "nodes": "https://shopify.dev/docs/api/admin-graphql/2026-01/queries/nodes",
    "bulkOperationRunQuery": "https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/bulkOperationRunQuery",
    "bulk": "https://shopify.dev/docs/api/usage/bulk-operations/queries",
}

ADDRESS_FIELDS = (
    "id firstName lastName company address1 address2 city province provinceCode country "
    "countryCodeV2 zip phone"
)
MONEY = "shopMoney { amount currencyCode }"
CUSTOMER_FIELDS = f"""
    id legacyResourceId firstName lastName
    defaultEmailAddress {{ emailAddress }}
    defaultPhoneNumber {{ phoneNumber }}
    locale note state tags taxExempt verifiedEmail createdAt updatedAt
    numberOfOrders
    amountSpent {{ amount currencyCode }}
    emailMarketingConsent {{ marketingState marketingOptInLevel consentUpdatedAt }}
    smsMarketingConsent {{
      marketingState marketingOptInLevel consentUpdatedAt consentCollectedFrom
    }}
    defaultAddress {{ {ADDRESS_FIELDS} }}
    addresses {{ {ADDRESS_FIELDS} }}
"""
LINE_ITEM_FIELDS = f"""
    id name title variantTitle sku quantity currentQuantity
    originalUnitPriceSet {{ {MONEY} }}
    discountedTotalSet {{ {MONEY} }}
    product {{ id }} variant {{ id }}
"""
ORDER_FIELDS = f"""
    id legacyResourceId name email phone
    createdAt updatedAt processedAt cancelledAt closedAt
    currencyCode presentmentCurrencyCode
    displayFinancialStatus displayFulfillmentStatus
    tags note test
    totalPriceSet {{ {MONEY} }}
    subtotalPriceSet {{ {MONEY} }}
    totalTaxSet {{ {MONEY} }}
    totalDiscountsSet {{ {MONEY} }}
    totalShippingPriceSet {{ {MONEY} }}
    totalRefundedSet {{ {MONEY} }}
    currentTotalPriceSet {{ {MONEY} }}
    customer {{ id }}
    billingAddress {{ {ADDRESS_FIELDS} }}
    shippingAddress {{ {ADDRESS_FIELDS} }}
"""

# --------------------------------------------------------------------------- page sizes
# A single query may request at most 1000 points. Requested cost, by the documented defaults
# (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits;
# https://shopify.engineering/rate-limiting-graphql-apis-calculating-query-complexity):
# scalars and enums 0, each object 1, a connection 2 + first x (1 + what each node selects),
# a mutation 10 + what its payload selects. Live Shopify prices some small objects lower, so
# these are upper bounds.
MAX_QUERY_COST = 1000
MAX_PAGE_SIZE = 250
CONNECTION_COST = 2
MUTATION_COST = 10

# Customer: itself 1 + defaultEmailAddress, defaultPhoneNumber, amountSpent,
# emailMarketingConsent, smsMarketingConsent, defaultAddress, addresses (1 each) = 8.
CUSTOMER_NODE_COST = 8
# LineItem: itself 1 + originalUnitPriceSet (MoneyBag 1 + shopMoney 1) + discountedTotalSet (2)
# + product 1 + variant 1 = 7.
LINE_ITEM_NODE_COST = 7
# Line items asked for with each order. Most orders have fewer; the rest are fetched per order.
ORDER_LINE_ITEMS = 5
# Order: itself 1 + seven money sets (2 each) = 14 + customer, billingAddress, shippingAddress
# (1 each) + lineItems connection (2 + 5 x 7 = 37) = 55.
ORDER_NODE_COST = 1 + 7 * 2 + 3 + CONNECTION_COST + ORDER_LINE_ITEMS * LINE_ITEM_NODE_COST


def _page_size(node_cost: int, overhead: int = 0) -> int:
    """The most nodes one connection can request inside the cap, at most 250."""
    return min(MAX_PAGE_SIZE, (MAX_QUERY_COST - overhead - CONNECTION_COST) // node_cost)


CUSTOMERS_PAGE_SIZE = _page_size(CUSTOMER_NODE_COST)  # (1000 - 2) // 8 = 124
ORDERS_PAGE_SIZE = _page_size(ORDER_NODE_COST)  # (1000 - 2) // 55 = 18
LINE_ITEMS_PAGE_SIZE = _page_size(LINE_ITEM_NODE_COST, overhead=1)  # order 1: (1000 - 3) // 7 = 142

CUSTOMERS_QUERY = f"""
query TandemCustomers($first: Int!, $after: String, $query: String) {{
  customers(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{ {CUSTOMER_FIELDS} }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
ORDERS_QUERY = f"""
query TandemOrders($first: Int!, $after: String, $query: String) {{
  orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT) {{
    nodes {{
      {ORDER_FIELDS}
      lineItems(first: {ORDER_LINE_ITEMS}) {{
        nodes {{ {LINE_ITEM_FIELDS} }}
        pageInfo {{ hasNextPage endCursor }}
      }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}"""
LINE_ITEMS_QUERY = f"""
query TandemOrderLineItems($id: ID!, $first: Int!, $after: String) {{
  order(id: $id) {{
    lineItems(first: $first, after: $after) {{
      nodes {{ {LINE_ITEM_FIELDS} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""
CUSTOMER_QUERY = f"""
query TandemCustomer($id: ID!) {{ customer(id: $id) {{ {CUSTOMER_FIELDS} }} }}"""
ORDER_QUERY = f"""
query TandemOrder($id: ID!) {{
  order(id: $id) {{
    {ORDER_FIELDS}
    lineItems(first: {ORDER_LINE_ITEMS}) {{
      nodes {{ {LINE_ITEM_FIELDS} }}
      pageInfo {{ hasNextPage endCursor }}
    }}
  }}
}}"""
CUSTOMER_UPDATE = f"""
mutation TandemCustomerUpdate($input: CustomerInput!) {{
  customerUpdate(input: $input) {{
    customer {{ {CUSTOMER_FIELDS} }}
    userErrors {{ field message }}
  }}
}}"""
# Bulk queries select connections through edges/node, take no `first`, and may nest one level
# (docs "bulk"). groupObjects: true keeps each order's line items right after it, which
# read_bulk relies on; since 2026-01 grouping is off unless asked for
# (https://shopify.dev/changelog/faster-bulk-operations).
BULK_QUERIES: Mapping[str, str] = {
    "customers": f"{{ customers {{ edges {{ node {{ {CUSTOMER_FIELDS} }} }} }} }}",
    "orders": (
        f"{{ orders {{ edges {{ node {{ {ORDER_FIELDS} "
        f"lineItems {{ edges {{ node {{ {LINE_ITEM_FIELDS} }} }} }} }} }} }} }}"
    ),
}
BULK_RUN = """
mutation TandemBulkRun($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: true) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}"""
BULK_STATUS = """
query TandemBulkStatus($id: ID!) {
  node(id: $id) { ... on BulkOperation { id status errorCode objectCount url } }
}"""

# --------------------------------------------------------------------------- write-back
# What a CRM change can write to a Shopify customer (the mapping.writeback vocabulary):
# names, phone, note and tags through customerUpdate (tags replace the list) [SH-CUSTUPD];
# email consent through customerEmailMarketingConsentUpdate (consent cannot be set by
# customerUpdate in current versions); the default address through customerAddressUpdate on
# the customer's defaultAddress, or customerAddressCreate with setAsDefault when it has none
# (both since 2025-04, https://shopify.dev/changelog/new-customer-address-capabilities-in-the-admin-api;
# this connector pins 2026-01, whose CustomerInput no longer documents ``addresses``).
WRITABLE_FIELDS = frozenset(
    {"first_name", "last_name", "phone", "note", "tags", "consent.email"} | writeback.ADDRESS_PATHS
)
# What a write compares the patch with, read by id first (nodes(ids:), not the search index,
# which may lag a fresh write): the patched fields and the default address's id.
WRITE_READ_FIELDS = f"""
    id legacyResourceId firstName lastName note tags createdAt updatedAt
    defaultEmailAddress {{ emailAddress }}
    defaultPhoneNumber {{ phoneNumber }}
    emailMarketingConsent {{ marketingState marketingOptInLevel consentUpdatedAt }}
    defaultAddress {{ {ADDRESS_FIELDS} }}
"""
# Customer 1 + defaultEmailAddress, defaultPhoneNumber, emailMarketingConsent, defaultAddress.
WRITE_READ_NODE_COST = 5
MAX_NODE_IDS = 250  # input arrays hold at most 250 items [SH-LIMITS]
WRITE_READ_BATCH = min(MAX_NODE_IDS, MAX_QUERY_COST // WRITE_READ_NODE_COST)  # 200
CUSTOMERS_FOR_WRITE = f"""
query TandemCustomersForWrite($ids: [ID!]!) {{
  nodes(ids: $ids) {{ ... on Customer {{ {WRITE_READ_FIELDS} }} }}
}}"""
CUSTOMERS_UPDATED_AT = """
query TandemCustomersUpdatedAt($ids: [ID!]!) {
  nodes(ids: $ids) { ... on Customer { id updatedAt } }
}"""
# One aliased mutation: 10, plus its payload's object (customer or address) and userErrors.
WRITE_OPERATION_COST = MUTATION_COST + 2
# Shopify's answer for an id that is no customer (live wording, see sandbox customerUpdate).
CUSTOMER_MISSING = "Customer does not exist"

# What each query asks of the shared rate budget: its requested cost.
COSTS: Mapping[str, int] = {
    "customers": CONNECTION_COST + CUSTOMERS_PAGE_SIZE * CUSTOMER_NODE_COST,
    "orders": CONNECTION_COST + ORDERS_PAGE_SIZE * ORDER_NODE_COST,
    "line_items": 1 + CONNECTION_COST + LINE_ITEMS_PAGE_SIZE * LINE_ITEM_NODE_COST,
    "customer": CUSTOMER_NODE_COST,
    "order": ORDER_NODE_COST,
    "customer_update": MUTATION_COST + CUSTOMER_NODE_COST + 1,
    "bulk_run": MUTATION_COST + 2,
    "bulk_status": 1,
    # per customer asked for; a write document costs WRITE_OPERATION_COST per mutation
    "customer_for_write": WRITE_READ_NODE_COST,
    "customer_updated_at": 1,
}
# Nested connection children in bulk JSONL, by the type in their GID: where they belong.
BULK_CHILDREN: Mapping[str, str] = {"LineItem": "lineItems"}

# The wording live Shopify uses when a bulk query is already running (a userError, HTTP 200).
BULK_IN_PROGRESS = "A bulk query operation for this app and shop is already in progress"

# --------------------------------------------------------------------------- shop domains

_SHOP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ADMIN_STORE = re.compile(r"^admin\.shopify\.com/store/([^/?#]+)")


def normalise_shop_domain(value: str) -> str:
    """``name.myshopify.com`` for the ways merchants write their shop.

    Accepts ``acme``, ``acme.myshopify.com``, ``https://acme.myshopify.com/`` and the admin URL
    ``admin.shopify.com/store/acme`` (as the official libraries do: ``Shopify/shopify-app-js``
    lib/utils/shop-validator.ts, ``Shopify/shopify_python_api`` shopify/utils/shop_url.py).
    Only ``*.myshopify.com`` is ever returned, so a connector never calls another host.

    Raises ConfigurationError for anything else.
    """
    text = (value or "").strip().lower()
    text = re.sub(r"^https?://", "", text)
    admin = _ADMIN_STORE.match(text)
    text = admin.group(1) if admin else text.split("/", 1)[0]
    name = text.removesuffix(".myshopify.com")
    if not _SHOP_NAME.match(name) or "." in name:
        raise ConfigurationError(f"not a Shopify shop domain: {value!r}", platform=PLATFORM)
    return f"{name}.myshopify.com"


# --------------------------------------------------------------------------- rate limits and errors


def _body(response: requests.Response) -> dict[str, Any]:
    """The JSON object of an API answer, or {}.

    Only ``application/json`` bodies are read: a streamed bulk file (JSONL) must not be pulled
    into memory by the policy hooks.
    """
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_codes(body: Mapping[str, Any]) -> set[str]:
    errors = body.get("errors")
    if not isinstance(errors, list):
        return set()
    return {
        str((e.get("extensions") or {}).get("code"))
        for e in errors
        if isinstance(e, dict) and isinstance(e.get("extensions"), dict)
    }


def throttle_status(response: requests.Response) -> dict[str, float] | None:
    """``extensions.cost.throttleStatus`` of a GraphQL answer, if it carries one."""
    cost = (_body(response).get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") if isinstance(cost, dict) else None
    if not isinstance(status, dict):
        return None
    try:
        return {
            k: float(status[k]) for k in ("maximumAvailable", "currentlyAvailable", "restoreRate")
        }
    except (KeyError, TypeError, ValueError):
        return None


def _classify(response: requests.Response) -> Action | None:
    """GraphQL reports most failures in the body, often with HTTP 200.

    THROTTLED comes back as 200 or as 429 (reported both ways; api-storefronts.md 1.6), so the
    body decides. Other ``errors`` on an otherwise successful status mean the request itself is
    wrong (validation, MAX_COST_EXCEEDED): retrying cannot help. INTERNAL_SERVER_ERROR is
    Shopify's 500 sent as 200 (https://shopify.dev/docs/api/admin-graphql#status_and_error_codes).
    """
    body = _body(response)
    codes = _error_codes(body)
    if "THROTTLED" in codes:
        return Action.RATE_LIMITED
    if "INTERNAL_SERVER_ERROR" in codes:
        return Action.RETRY
    if "ACCESS_DENIED" in codes:
        return Action.CONFIG  # a missing scope or protected-data approval: an operator's job
    if response.status_code == 200 and body.get("errors"):
        return Action.FAIL
    return None


def _retry_after(response: requests.Response) -> float | None:
    """Seconds until the bucket holds the refused query's requested cost."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            return float(header)
        except ValueError:
            pass
    cost = (_body(response).get("extensions") or {}).get("cost") or {}
    status = throttle_status(response)
    requested = cost.get("requestedQueryCost") if isinstance(cost, dict) else None
    if status is None or not isinstance(requested, int | float) or status["restoreRate"] <= 0:
        return 1.0  # Shopify's advice without figures: back off one second
    missing = float(requested) - status["currentlyAvailable"]
    return max(0.0, missing / status["restoreRate"])


def _error_message(response: requests.Response) -> str:
    body = _body(response)
    errors = body.get("errors")
    if isinstance(errors, str):
        return errors  # REST-style: {"errors": "[API] Invalid API key or access token ..."}
    if isinstance(errors, list):
        messages = [
            str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")
        ]
        if messages:
            return "; ".join(messages)
    if isinstance(errors, dict):
        return "; ".join(f"{k}: {v}" for k, v in errors.items())
    return f"HTTP {response.status_code}"


SHOPIFY_POLICY = Policy(
    platform=PLATFORM,
    statuses={
        401: Action.REFRESH_AUTH,  # unknown or revoked token (expiring offline tokens: refresh)
        402: Action.CONFIG,  # shop frozen for unpaid bills
        403: Action.CONFIG,  # missing scope or protected customer data approval
        404: Action.CONFIG,  # wrong shop domain or API version
        423: Action.CONFIG,  # shop locked
        429: Action.RATE_LIMITED,
    },
    classify=_classify,
    retry_after=_retry_after,
    error_message=_error_message,
)


class BulkOperationInProgress(RetriableError):
    """Another bulk query of this app is still running on the shop: start ours later."""


# --------------------------------------------------------------------------- results


@dataclass
class BulkStatus:
    id: str
    status: str  # CREATED RUNNING COMPLETED CANCELING CANCELED FAILED EXPIRED
    url: str | None
    object_count: int
    error_code: str | None


@dataclass
class BulkChunk:
    records: list[dict[str, Any]]
    next_offset: int | None


@dataclass(frozen=True)
class _Mutation:
    """One aliased mutation of a write document."""

    field: str
    arguments: tuple[tuple[str, str, Any], ...]  # (argument, GraphQL type, value)
    selection: str
    stamps: bool  # its payload carries the customer's updatedAt


@dataclass
class _Plan:
    """What one patch writes, in order, and what Shopify answered for it."""

    store_id: str
    mutations: list[_Mutation]
    errors: list[dict[str, Any]] = field(default_factory=list)
    updated_at: datetime | None = None
    not_found: bool = False


_CUSTOMER_PAYLOAD = "customer { id updatedAt } userErrors { field message }"
_CONSENT_PAYLOAD = "customer { id updatedAt } userErrors { field message code }"
_ADDRESS_PAYLOAD = "address { id } userErrors { field message }"
_VARIABLE = re.compile(r"\$c(\d+)_\d+_\w+")


def _write_document(plans: Sequence[_Plan]) -> tuple[str, dict[str, Any]]:
    """One mutation document for ``plans``: alias ``c{plan}_{step}`` per mutation, executed in
    that order (a document's mutations run one after the other, GraphQL spec 6.2.2), each
    argument a variable ``$c{plan}_{step}_{argument}``."""
    declarations, fields, variables = [], [], {}
    for k, plan in enumerate(plans):
        for j, mutation in enumerate(plan.mutations):
            alias = f"c{k}_{j}"
            arguments = []
            for name, type_, value in mutation.arguments:
                variable = f"{alias}_{name}"
                declarations.append(f"${variable}: {type_}")
                arguments.append(f"{name}: ${variable}")
                variables[variable] = value
            fields.append(
                f"  {alias}: {mutation.field}({', '.join(arguments)}) {{ {mutation.selection} }}"
            )
    query = f"mutation TandemCustomerWrite({', '.join(declarations)}) {{\n"
    return query + "\n".join(fields) + "\n}", variables


def _stamp(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def _gid(kind: str, legacy_id: str) -> str:
    return f"gid://shopify/{kind}/{legacy_id}"


def _kind(gid: str) -> str:
    parts = gid.split("/")
    return parts[3] if len(parts) > 4 and gid.startswith("gid://shopify/") else ""


def _since_filter(updated_since: datetime | None) -> str | None:
    """``updated_at:>='...'`` in UTC. Quoted: unquoted date-times lose their time part
    (https://shopify.dev/docs/api/usage/search-syntax, "Date values must be ... quotes")."""
    if updated_since is None:
        return None
    if updated_since.tzinfo is None:
        raise ValueError("updated_since must be timezone-aware")
    stamp = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"updated_at:>='{stamp}'"


# --------------------------------------------------------------------------- the connector


class ShopifyConnector:
    """One shop's Admin API. Every call goes through ``http`` (retries, budget, redaction)."""

    platform = PLATFORM
    # Full history comes from bulkOperationRunQuery [SH-BULK]; both lists filter on updated_at.
    bulk_backfill = True
    customers_incremental = True
    writable_fields = WRITABLE_FIELDS

    def __init__(
        self,
        *,
        shop: str,
        access_token: str,
        http: HttpClient,
        base_url_template: str = DEFAULT_BASE_URL,
        api_version: str = DEFAULT_API_VERSION,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.shop = normalise_shop_domain(shop)
        self.http = http
        self.api_version = api_version
        # When a consent change was decided (consentUpdatedAt); tests pass a fixed one.
        self._clock = clock or (lambda: datetime.now(UTC).replace(microsecond=0))
        # The bucket size Shopify last announced (throttleStatus.maximumAvailable).
        self._bucket_size: float | None = None
        self.endpoint = base_url_template.format(shop=self.shop).rstrip("/") + GRAPHQL_PATH.format(
            version=api_version
        )
        self._headers = {"X-Shopify-Access-Token": access_token, "Content-Type": "application/json"}
        http.add_secret(access_token)

    # ------------------------------------------------------------------ plumbing
    def _graphql(
        self,
        query: str,
        variables: Mapping[str, Any],
        cost: str | float,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """POST one operation; returns the whole body (data and extensions). ``cost`` is a
        COSTS key or the requested cost itself; ``idempotent=False`` for a document that would
        do its work twice if sent twice (see HttpClient.request).

        Raises the connectors.errors classes through the HttpClient and SHOPIFY_POLICY.
        """
        response = self.http.request(
            "POST",
            self.endpoint,
            json={"query": query, "variables": dict(variables)},
            headers=self._headers,
            cost=float(COSTS[cost] if isinstance(cost, str) else cost),
            idempotent=idempotent,
        )
        status = throttle_status(response)
        if status is not None:
            self._bucket_size = status["maximumAvailable"]
        body = _body(response)
        if not isinstance(body.get("data"), dict):
            raise PermanentError(
                f"Shopify answered without data: {_error_message(response)}",
                platform=PLATFORM,
                status=response.status_code,
                details=body.get("errors"),
            )
        return body

    @staticmethod
    def _page(body: Mapping[str, Any], root: str) -> tuple[dict[str, Any], Page]:
        connection = body["data"][root]
        info = connection.get("pageInfo") or {}
        cost = (body.get("extensions") or {}).get("cost") or {}
        page = Page(
            records=list(connection.get("nodes") or []),
            next_cursor=info.get("endCursor") if info.get("hasNextPage") else None,
            requested_cost=cost.get("requestedQueryCost"),
            throttle=cost.get("throttleStatus"),
        )
        return connection, page

    # ------------------------------------------------------------------ reading
    def customers_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Customers changed since ``updated_since`` (all if None), oldest change first.

        Raises connectors.errors.* (RateLimitedError when Shopify keeps throttling).
        """
        variables = {
            "first": CUSTOMERS_PAGE_SIZE,
            "after": cursor,
            "query": _since_filter(updated_since),
        }
        _, page = self._page(self._graphql(CUSTOMERS_QUERY, variables, "customers"), "customers")
        return page

    def orders_page(self, *, updated_since: datetime | None, cursor: str | None) -> Page:
        """Orders changed since ``updated_since``, oldest change first, line items complete.

        Raises connectors.errors.*.
        """
        variables = {
            "first": ORDERS_PAGE_SIZE,
            "after": cursor,
            "query": _since_filter(updated_since),
        }
        _, page = self._page(self._graphql(ORDERS_QUERY, variables, "orders"), "orders")
        for order in page.records:
            self._complete_line_items(order)
        return page

    def _complete_line_items(self, order: dict[str, Any]) -> None:
        """Fetch the line items past the first page, so mapping always sees them all."""
        items = order.get("lineItems") or {}
        nodes = list(items.get("nodes") or [])
        info = items.get("pageInfo") or {}
        after = info.get("endCursor")
        while info.get("hasNextPage"):
            variables = {"id": order["id"], "first": LINE_ITEMS_PAGE_SIZE, "after": after}
            body = self._graphql(LINE_ITEMS_QUERY, variables, "line_items")
            found = body["data"].get("order")
            if found is None:  # deleted meanwhile: keep what we have, the next poll decides
                break
            more = found["lineItems"]
            nodes.extend(more.get("nodes") or [])
            info = more.get("pageInfo") or {}
            after = info.get("endCursor") or after
        order["lineItems"] = {
            "nodes": nodes,
            "pageInfo": {"hasNextPage": False, "endCursor": after},
        }

    def get_customer(self, legacy_id: str) -> dict[str, Any] | None:
        """One customer by numeric id, or None if it does not exist. Raises connectors.errors.*."""
        body = self._graphql(CUSTOMER_QUERY, {"id": _gid("Customer", legacy_id)}, "customer")
        return body["data"].get("customer")

    def get_order(self, legacy_id: str) -> dict[str, Any] | None:
        """One order by numeric id with all its line items, or None. Raises connectors.errors.*."""
        body = self._graphql(ORDER_QUERY, {"id": _gid("Order", legacy_id)}, "order")
        order = body["data"].get("order")
        if order is not None:
            self._complete_line_items(order)
        return order

    def get_customers(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The customers of ``ids`` that still exist (the store-connector interface the worker
        uses for refetches). Raises connectors.errors.*."""
        return [c for c in (self.get_customer(i) for i in ids) if c is not None]

    def get_orders(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """The orders of ``ids`` that still exist, with all their line items. Raises
        connectors.errors.*."""
        return [o for o in (self.get_order(i) for i in ids) if o is not None]

    # ------------------------------------------------------------------ bulk export
    def start_bulk(self, entity: Literal["customers", "orders"]) -> str:
        """Start a bulk export of every customer or order; returns the operation GID.

        Raises BulkOperationInProgress while another bulk query runs, PermanentError
        (details = userErrors) if Shopify refuses the query, and connectors.errors.*.
        """
        body = self._graphql(BULK_RUN, {"query": BULK_QUERIES[entity]}, "bulk_run")
        payload = body["data"]["bulkOperationRunQuery"] or {}
        errors = payload.get("userErrors") or []
        if any(
            e.get("code") == "OPERATION_IN_PROGRESS"
            or str(e.get("message", "")).startswith(BULK_IN_PROGRESS)
            for e in errors
        ):
            raise BulkOperationInProgress(errors[0]["message"], platform=PLATFORM)
        if errors or not payload.get("bulkOperation"):
            raise PermanentError(
                "Shopify refused the bulk query", platform=PLATFORM, details=errors
            )
        return payload["bulkOperation"]["id"]

    def bulk_status(self, operation_id: str) -> BulkStatus:
        """Where a bulk operation stands. Raises PermanentError if Shopify does not know it.

        Polls with node(id:), which every API version answers (``bulkOperation(id:)`` is
        2026-01 and later, ``currentBulkOperation`` is deprecated there).
        """
        node = self._graphql(BULK_STATUS, {"id": operation_id}, "bulk_status")["data"].get("node")
        if not node:
            raise PermanentError(f"unknown bulk operation {operation_id}", platform=PLATFORM)
        return BulkStatus(
            id=node["id"],
            status=node["status"],
            url=node.get("url"),
            object_count=int(node.get("objectCount") or 0),
            error_code=node.get("errorCode"),
        )

    def read_bulk(self, url: str, *, offset: int = 0, max_roots: int = 250) -> BulkChunk:
        """Up to ``max_roots`` root records from the JSONL at ``url``, starting at byte
        ``offset``, children re-attached under their parent's connection (``lineItems.nodes``).

        Stops before the next root line, so a parent and its children (which follow it in
        grouped output) always land in the same chunk; ``next_offset`` is that line's byte
        offset, None at the end. The URL is a signed cloud-storage URL: no Shopify token is
        sent to it. Raises PermanentError for a child whose parent is not in the chunk (an
        ungrouped file), and connectors.errors.* for transport failures.
        """
        response = self.http.request(
            "GET", url, headers={"Range": f"bytes={offset}-"}, stream=True, ok=(416,), cost=0.0
        )
        try:
            if response.status_code == 416:  # the offset is the end of the file
                return BulkChunk(records=[], next_offset=None)
            # A server that ignores Range sends the whole file: skip to the offset ourselves.
            skip = offset if response.status_code == 200 else 0
            return self._chunk(response, offset, skip, max_roots)
        finally:
            response.close()

    def _chunk(
        self, response: requests.Response, offset: int, skip: int, max_roots: int
    ) -> BulkChunk:
        records: list[dict[str, Any]] = []
        parents: dict[str, dict[str, Any]] = {}
        position = offset
        buffer = b""
        for piece in response.iter_content(chunk_size=64 * 1024):
            if skip:
                dropped = min(skip, len(piece))
                piece, skip = piece[dropped:], skip - dropped
            buffer += piece
            while (end := buffer.find(b"\n")) >= 0:
                line, buffer = buffer[:end], buffer[end + 1 :]
                if self._take(line, records, parents, max_roots) is False:
                    return BulkChunk(records=records, next_offset=position)
                position += end + 1
        if buffer.strip() and self._take(buffer, records, parents, max_roots) is False:
            return BulkChunk(records=records, next_offset=position)
        return BulkChunk(records=records, next_offset=None)

    def _take(
        self,
        line: bytes,
        records: list[dict[str, Any]],
        parents: dict[str, dict[str, Any]],
        max_roots: int,
    ) -> bool | None:
        """Add one JSONL line; False when it is a root that belongs to the next chunk."""
        if not line.strip():
            return None
        node = json.loads(line)
        parent_id = node.pop("__parentId", None)
        if parent_id is None:
            if len(records) >= max_roots:
                return False
            if _kind(node.get("id", "")) == "Order":
                node.setdefault("lineItems", {"nodes": []})
            records.append(node)
            parents[node["id"]] = node
            return True
        parent = parents.get(parent_id)
        key = BULK_CHILDREN.get(_kind(node.get("id", "")))
        if parent is None or key is None:
            raise PermanentError(
                f"bulk line for {node.get('id')} does not follow its parent {parent_id}",
                platform=PLATFORM,
            )
        parent.setdefault(key, {"nodes": []})["nodes"].append(node)
        return True

    # ------------------------------------------------------------------ writing
    def update_customer(self, legacy_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """customerUpdate with CustomerInput ``fields`` (firstName, email, phone, note, tags ...).

        Returns the updated customer node. Raises PermanentError with details = userErrors when
        Shopify refuses the change (it answers those with HTTP 200), and connectors.errors.*.
        """
        variables = {"input": {**fields, "id": _gid("Customer", legacy_id)}}
        body = self._graphql(CUSTOMER_UPDATE, variables, "customer_update")
        payload = body["data"]["customerUpdate"] or {}
        errors = payload.get("userErrors") or []
        if errors or payload.get("customer") is None:
            messages = "; ".join(str(e.get("message")) for e in errors) or "no customer returned"
            raise PermanentError(
                f"Shopify refused the customer update: {messages}",
                platform=PLATFORM,
                status=200,
                details=errors,
            )
        return payload["customer"]

    def write_customers(
        self, patches: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Write canonical patches (mapping.writeback) to customers by numeric id: one result
        per patch, in order.

        Each customer is read first (nodes(ids:), WRITE_READ_BATCH per query) and only what
        differs is written, so a repeated write sends nothing and Shopify's updatedAt does not
        move. The mutations of many customers go in one document, aliased, as many as the
        requested cost allows (1000 per query, or the bucket size Shopify announces if
        smaller); a customer's mutations stay in one document, address first, then
        customerUpdate, then consent. userErrors (HTTP 200) become that customer's failure; a
        customer that does not exist is ``not_found``.

        Raises ValueError for a path outside WRITABLE_FIELDS, a non-canonical value or an id
        that is not a Shopify id; connectors.errors.* when a whole call fails.
        """
        checked = [
            (shopify_mapping.legacy_id(store_id), writeback.check_patch(patch, WRITABLE_FIELDS))
            for store_id, patch in patches
        ]
        nodes = self._customers_for_write([i for i, _ in checked])
        now = self._clock()
        results: list[WriteResult | None] = [None] * len(checked)
        plans: dict[int, _Plan] = {}
        for index, (store_id, patch) in enumerate(checked):
            node = nodes.get(store_id)
            if node is None:
                results[index] = WriteResult(
                    key=store_id, ok=False, id=store_id, error=CUSTOMER_MISSING, not_found=True
                )
                continue
            try:
                current = shopify_mapping.customer_from_graphql(node)
            except ValueError as exc:  # MappingError: a record we cannot compare with
                results[index] = WriteResult(key=store_id, ok=False, id=store_id, error=str(exc))
                continue
            mutations = self._mutations(node, current, writeback.changes(current, patch), now)
            if not mutations:
                results[index] = WriteResult(
                    key=store_id, ok=True, id=store_id, updated_at=current.updated_at
                )
                continue
            plans[index] = _Plan(store_id, mutations)
        pending = list(plans.values())
        while pending:
            cap = self._cost_cap()
            document: list[_Plan] = []
            cost = 0
            while pending:
                more = len(pending[0].mutations) * WRITE_OPERATION_COST
                if document and cost + more > cap:
                    break
                document.append(pending.pop(0))
                cost += more
            self._send_writes(document)
        self._stamp_unstamped([p for p in plans.values() if not p.errors and not p.updated_at])
        for index, plan in plans.items():
            results[index] = _plan_result(plan)
        return _in_order(results)

    def _cost_cap(self) -> float:
        """The most one query may request: 1000, or less when Shopify announces a smaller
        bucket (a query costing more than the bucket holds could never be served)."""
        return min(float(MAX_QUERY_COST), self._bucket_size or float(MAX_QUERY_COST))

    @staticmethod
    def _mutations(
        node: Mapping[str, Any], current: Any, wanted: Mapping[str, Any], now: datetime
    ) -> list[_Mutation]:
        """The mutations that make ``current`` what ``wanted`` (its changed paths) asks."""
        gid = node["id"]
        mutations = []
        if wanted.keys() & writeback.ADDRESS_PATHS:
            default = node.get("defaultAddress")
            address = shopify_mapping.mailing_address_input(wanted, default)
            if default:
                arguments: tuple[tuple[str, str, Any], ...] = (
                    ("customerId", "ID!", gid),
                    ("addressId", "ID!", default["id"]),
                    ("address", "MailingAddressInput!", address),
                )
                mutations.append(
                    _Mutation("customerAddressUpdate", arguments, _ADDRESS_PAYLOAD, False)
                )
            else:
                arguments = (
                    ("customerId", "ID!", gid),
                    ("address", "MailingAddressInput!", address),
                    ("setAsDefault", "Boolean", True),
                )
                mutations.append(
                    _Mutation("customerAddressCreate", arguments, _ADDRESS_PAYLOAD, False)
                )
        fields = shopify_mapping.customer_update_input(wanted)
        if fields:
            arguments = (("input", "CustomerInput!", {**fields, "id": gid}),)
            mutations.append(_Mutation("customerUpdate", arguments, _CUSTOMER_PAYLOAD, True))
        if "consent.email" in wanted:
            consent = shopify_mapping.email_marketing_consent_input(
                wanted["consent.email"], current=current.consent.email, consent_updated_at=now
            )
            if consent is not None:
                value = {"customerId": gid, "emailMarketingConsent": consent}
                arguments = (("input", "CustomerEmailMarketingConsentUpdateInput!", value),)
                mutations.append(
                    _Mutation(
                        "customerEmailMarketingConsentUpdate", arguments, _CONSENT_PAYLOAD, True
                    )
                )
        return mutations

    def _customers_for_write(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The customers of ``ids`` that exist, by numeric id, read by id. Raises
        connectors.errors.*."""
        wanted = list(dict.fromkeys(ids))
        found: dict[str, dict[str, Any]] = {}
        size = max(1, min(WRITE_READ_BATCH, int(self._cost_cap()) // WRITE_READ_NODE_COST))
        for start in range(0, len(wanted), size):
            chunk = wanted[start : start + size]
            body = self._graphql(
                CUSTOMERS_FOR_WRITE,
                {"ids": [_gid("Customer", i) for i in chunk]},
                COSTS["customer_for_write"] * len(chunk),
            )
            for node in body["data"].get("nodes") or []:
                if node and node.get("id"):
                    found[shopify_mapping.legacy_id(node["id"])] = node
        return found

    def _send_writes(self, plans: list[_Plan]) -> None:
        """Send one write document and record each plan's outcome.

        A variable Shopify refuses before running anything (INVALID_VARIABLE, e.g. a country
        its CountryCode enum lacks) fails only the customer it belongs to; the others are sent
        again without it. Raises connectors.errors.* for any other refusal of the document.
        """
        query, variables = _write_document(plans)
        cost = sum(len(p.mutations) for p in plans) * WRITE_OPERATION_COST
        # Every mutation here sets values, so sending the document twice is harmless, except
        # an address creation, which would make a second address: such a document is not sent
        # again after a timeout or 5xx (the next attempt reads first and finds the address).
        creates = any(m.field == "customerAddressCreate" for p in plans for m in p.mutations)
        try:
            body = self._graphql(query, variables, cost, idempotent=not creates)
        except PermanentError as exc:
            details = exc.details if isinstance(exc.details, dict) else {}
            if isinstance(details.get("data"), dict):
                body = details  # some mutations ran: their results are in the data
            else:
                refused = _refused_variables(details)
                if refused is None:
                    raise
                for k, errors in refused.items():
                    plans[k].errors.extend(errors)
                rest = [p for k, p in enumerate(plans) if k not in refused]
                if rest:
                    self._send_writes(rest)
                return
        data = body["data"]
        failures = {
            str(e["path"][0]): e
            for e in body.get("errors") or []
            if isinstance(e, dict) and e.get("path")
        }
        for k, plan in enumerate(plans):
            for j, mutation in enumerate(plan.mutations):
                alias = f"c{k}_{j}"
                payload = data.get(alias)
                if payload is None:
                    message = (failures.get(alias) or {}).get("message") or "no result"
                    plan.errors.append({"mutation": mutation.field, "message": message})
                    continue
                for error in payload.get("userErrors") or []:
                    plan.errors.append({"mutation": mutation.field, **error})
                    plan.not_found = plan.not_found or error.get("message") == CUSTOMER_MISSING
                customer = payload.get("customer") or {}
                if mutation.stamps and customer.get("updatedAt"):
                    plan.updated_at = _stamp(customer["updatedAt"])

    def _stamp_unstamped(self, plans: Sequence[_Plan]) -> None:
        """updatedAt for customers whose mutations returned none (an address change alone:
        its payload is the address). Raises connectors.errors.*."""
        by_id: dict[str, list[_Plan]] = {}
        for plan in plans:
            by_id.setdefault(plan.store_id, []).append(plan)
        ids = list(by_id)
        size = max(1, min(MAX_NODE_IDS, int(self._cost_cap()) // COSTS["customer_updated_at"]))
        for start in range(0, len(ids), size):
            chunk = ids[start : start + size]
            body = self._graphql(
                CUSTOMERS_UPDATED_AT,
                {"ids": [_gid("Customer", i) for i in chunk]},
                COSTS["customer_updated_at"] * len(chunk),
            )
            for node in body["data"].get("nodes") or []:
                if node and node.get("id"):
                    for plan in by_id.get(shopify_mapping.legacy_id(node["id"]), []):
                        plan.updated_at = _stamp(node.get("updatedAt"))


def _refused_variables(body: Mapping[str, Any]) -> dict[int, list[dict[str, Any]]] | None:
    """The plans whose variables Shopify refused (INVALID_VARIABLE), with the errors; None
    when anything else was refused too (then the document itself is at fault)."""
    refused: dict[int, list[dict[str, Any]]] = {}
    for error in body.get("errors") or []:
        code = ((error or {}).get("extensions") or {}).get("code")
        match = _VARIABLE.search(str((error or {}).get("message", "")))
        if code != "INVALID_VARIABLE" or match is None:
            return None
        refused.setdefault(int(match.group(1)), []).append(
            {"mutation": None, "message": error.get("message"), **(error.get("extensions") or {})}
        )
    return refused or None


def _in_order(results: Sequence[WriteResult | None]) -> list[WriteResult]:
    """The results, one per patch; a patch left without one is a bug here."""
    done = [r for r in results if r is not None]
    if len(done) != len(results):
        raise RuntimeError("write_customers left a patch without a result")
    return done


def _plan_result(plan: _Plan) -> WriteResult:
    if plan.errors:
        reason = "; ".join(
            f"{e['mutation']}: {e.get('message')}" if e.get("mutation") else str(e.get("message"))
            for e in plan.errors
        )
        return WriteResult(
            key=plan.store_id,
            ok=False,
            id=plan.store_id,
            error=reason,
            details=plan.errors,
            not_found=plan.not_found,
        )
    return WriteResult(key=plan.store_id, ok=True, id=plan.store_id, updated_at=plan.updated_at)
