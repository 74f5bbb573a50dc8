"""The slice of the Admin GraphQL schema (2026-01) that Tandem uses, executed for real.

Type and field names, nullability and enum values follow the published 2026-01 schema
(https://shopify.dev/docs/api/admin-graphql/2026-01); enums list only the values the simulator
produces or accepts. Connections paginate the Shopify way
(https://shopify.dev/docs/api/usage/pagination-graphql): ``first`` or ``last`` is required,
at most 250, cursors are opaque (base64 JSON ``{"last_id", "last_value"}``, the shape live
cursors decode to), ``query`` uses the search syntax of ``search``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from graphql import GraphQLError, GraphQLResolveInfo, GraphQLSchema, build_schema

from sandbox.shopify import render, search
from sandbox.shopify.store import Customer, Order, Shop

MAX_PAGE_SIZE = 250  # https://shopify.dev/docs/api/usage/pagination-graphql
ORDER_WINDOW = timedelta(days=60)
MAX_NODE_IDS = (
    250  # input arrays hold at most 250 items (https://shopify.dev/docs/api/usage/limits)
)
# Shopify's CountryCode enum names every ISO 3166-1 country and territory, plus ZZ (unknown
# region) (https://shopify.dev/docs/api/admin-graphql/2026-01/enums/CountryCode); the regions
# libphonenumber knows stand in for that list, so an address update accepts any real country.
COUNTRY_CODES = tuple(sorted(phonenumbers.SUPPORTED_REGIONS | {"ZZ"}))

SDL = """
schema { query: QueryRoot mutation: Mutation }

scalar DateTime
scalar Decimal
scalar UnsignedInt64
scalar URL

interface Node { id: ID! }

enum CurrencyCode { AUD BRL CAD CHF CNY DKK EUR GBP HKD INR JPY KRW MXN NOK NZD PLN SEK SGD USD }
enum CountryCode { __COUNTRY_CODES__ }
enum CustomerState { DECLINED DISABLED ENABLED INVITED }
enum CustomerEmailMarketingState { NOT_SUBSCRIBED PENDING SUBSCRIBED UNSUBSCRIBED REDACTED INVALID }
enum CustomerEmailAddressMarketingState { INVALID NOT_SUBSCRIBED PENDING SUBSCRIBED UNSUBSCRIBED }
enum CustomerSmsMarketingState { NOT_SUBSCRIBED PENDING SUBSCRIBED UNSUBSCRIBED REDACTED }
enum CustomerMarketingOptInLevel { SINGLE_OPT_IN CONFIRMED_OPT_IN UNKNOWN }
enum CustomerConsentCollectedFrom { SHOPIFY OTHER }
enum CustomerSortKeys { CREATED_AT ID LOCATION NAME RELEVANCE UPDATED_AT }
enum OrderSortKeys {
  CREATED_AT CURRENT_TOTAL_PRICE CUSTOMER_NAME DESTINATION FINANCIAL_STATUS FULFILLMENT_STATUS
  ID ORDER_NUMBER PO_NUMBER PROCESSED_AT RELEVANCE TOTAL_ITEMS_QUANTITY TOTAL_PRICE UPDATED_AT
}
enum OrderDisplayFinancialStatus {
  PENDING AUTHORIZED PARTIALLY_PAID PARTIALLY_REFUNDED VOIDED PAID REFUNDED EXPIRED
}
enum OrderDisplayFulfillmentStatus {
  UNFULFILLED PARTIALLY_FULFILLED FULFILLED RESTOCKED PENDING_FULFILLMENT OPEN IN_PROGRESS
  ON_HOLD SCHEDULED REQUEST_DECLINED
}
enum OrderCancelReason { CUSTOMER DECLINED FRAUD INVENTORY STAFF OTHER }
enum BulkOperationStatus { CANCELED CANCELING COMPLETED CREATED EXPIRED FAILED RUNNING }
enum BulkOperationErrorCode { ACCESS_DENIED INTERNAL_SERVER_ERROR TIMEOUT }
enum BulkOperationType { QUERY MUTATION }
enum BulkOperationUserErrorCode { OPERATION_IN_PROGRESS INVALID LIMIT_REACHED }
enum CustomerEmailMarketingConsentUpdateUserErrorCode {
  INCLUSION INTERNAL_ERROR INVALID MISSING_ARGUMENT
}

type PageInfo {
  endCursor: String
  hasNextPage: Boolean!
  hasPreviousPage: Boolean!
  startCursor: String
}

type MoneyV2 { amount: Decimal! currencyCode: CurrencyCode! }
type MoneyBag { presentmentMoney: MoneyV2! shopMoney: MoneyV2! }

type MailingAddress implements Node {
  address1: String
  address2: String
  city: String
  company: String
  country: String
  countryCodeV2: CountryCode
  firstName: String
  formattedArea: String
  id: ID!
  lastName: String
  name: String
  phone: String
  province: String
  provinceCode: String
  zip: String
}

type CustomerEmailAddress {
  emailAddress: String!
  marketingOptInLevel: CustomerMarketingOptInLevel
  marketingState: CustomerEmailAddressMarketingState!
  marketingUpdatedAt: DateTime
  validFormat: Boolean!
}

type CustomerPhoneNumber {
  marketingCollectedFrom: CustomerConsentCollectedFrom
  marketingOptInLevel: CustomerMarketingOptInLevel
  marketingState: CustomerSmsMarketingState!
  marketingUpdatedAt: DateTime
  phoneNumber: String!
}

type CustomerEmailMarketingConsentState {
  consentUpdatedAt: DateTime
  marketingOptInLevel: CustomerMarketingOptInLevel
  marketingState: CustomerEmailMarketingState!
}

type CustomerSmsMarketingConsentState {
  consentCollectedFrom: CustomerConsentCollectedFrom
  consentUpdatedAt: DateTime
  marketingOptInLevel: CustomerMarketingOptInLevel!
  marketingState: CustomerSmsMarketingState!
}

type Customer implements Node {
  addresses(first: Int): [MailingAddress!]!
  amountSpent: MoneyV2!
  createdAt: DateTime!
  defaultAddress: MailingAddress
  defaultEmailAddress: CustomerEmailAddress
  defaultPhoneNumber: CustomerPhoneNumber
  displayName: String!
  email: String @deprecated(reason: "Use `defaultEmailAddress.emailAddress` instead.")
  emailMarketingConsent: CustomerEmailMarketingConsentState
  firstName: String
  id: ID!
  lastName: String
  legacyResourceId: UnsignedInt64!
  locale: String!
  note: String
  numberOfOrders: UnsignedInt64!
  phone: String @deprecated(reason: "Use `defaultPhoneNumber.phoneNumber` instead.")
  smsMarketingConsent: CustomerSmsMarketingConsentState
  state: CustomerState!
  tags: [String!]!
  taxExempt: Boolean!
  updatedAt: DateTime!
  verifiedEmail: Boolean!
}

type CustomerEdge { cursor: String! node: Customer! }
type CustomerConnection { edges: [CustomerEdge!]! nodes: [Customer!]! pageInfo: PageInfo! }

type Product implements Node { id: ID! title: String! }
type ProductVariant implements Node { id: ID! sku: String title: String! }

type LineItem implements Node {
  currentQuantity: Int!
  discountedTotalSet: MoneyBag!
  id: ID!
  name: String!
  originalTotalSet: MoneyBag!
  originalUnitPriceSet: MoneyBag!
  product: Product
  quantity: Int!
  sku: String
  title: String!
  variant: ProductVariant
  variantTitle: String
  vendor: String
}

type LineItemEdge { cursor: String! node: LineItem! }
type LineItemConnection { edges: [LineItemEdge!]! nodes: [LineItem!]! pageInfo: PageInfo! }

type Order implements Node {
  billingAddress: MailingAddress
  cancelReason: OrderCancelReason
  cancelledAt: DateTime
  closed: Boolean!
  closedAt: DateTime
  createdAt: DateTime!
  currencyCode: CurrencyCode!
  currentTotalPriceSet: MoneyBag!
  customer: Customer
  displayFinancialStatus: OrderDisplayFinancialStatus
  displayFulfillmentStatus: OrderDisplayFulfillmentStatus!
  email: String
  id: ID!
  legacyResourceId: UnsignedInt64!
  lineItems(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false
  ): LineItemConnection!
  name: String!
  note: String
  phone: String
  presentmentCurrencyCode: CurrencyCode!
  processedAt: DateTime!
  shippingAddress: MailingAddress
  subtotalPriceSet: MoneyBag
  tags: [String!]!
  test: Boolean!
  totalDiscountsSet: MoneyBag
  totalPriceSet: MoneyBag!
  totalRefundedSet: MoneyBag!
  totalShippingPriceSet: MoneyBag!
  totalTaxSet: MoneyBag
  updatedAt: DateTime!
}

type OrderEdge { cursor: String! node: Order! }
type OrderConnection { edges: [OrderEdge!]! nodes: [Order!]! pageInfo: PageInfo! }

type BulkOperation implements Node {
  completedAt: DateTime
  createdAt: DateTime!
  errorCode: BulkOperationErrorCode
  fileSize: UnsignedInt64
  id: ID!
  objectCount: UnsignedInt64!
  partialDataUrl: URL
  query: String!
  rootObjectCount: UnsignedInt64!
  status: BulkOperationStatus!
  type: BulkOperationType!
  url: URL
}

type UserError { field: [String!] message: String! }
type BulkOperationUserError { code: BulkOperationUserErrorCode field: [String!] message: String! }

input CustomerInput {
  email: String
  firstName: String
  id: ID
  lastName: String
  locale: String
  note: String
  phone: String
  tags: [String!]
  taxExempt: Boolean
}

input MailingAddressInput {
  address1: String
  address2: String
  city: String
  company: String
  countryCode: CountryCode
  firstName: String
  lastName: String
  phone: String
  provinceCode: String
  zip: String
}

input CustomerEmailMarketingConsentInput {
  consentUpdatedAt: DateTime
  marketingOptInLevel: CustomerMarketingOptInLevel
  marketingState: CustomerEmailMarketingState!
}

input CustomerEmailMarketingConsentUpdateInput {
  customerId: ID!
  emailMarketingConsent: CustomerEmailMarketingConsentInput!
}

type CustomerEmailMarketingConsentUpdateUserError {
  code: CustomerEmailMarketingConsentUpdateUserErrorCode
  field: [String!]
  message: String!
}

type CustomerUpdatePayload { customer: Customer userErrors: [UserError!]! }
type CustomerEmailMarketingConsentUpdatePayload {
  customer: Customer
  userErrors: [CustomerEmailMarketingConsentUpdateUserError!]!
}
type CustomerAddressUpdatePayload { address: MailingAddress userErrors: [UserError!]! }
type CustomerAddressCreatePayload { address: MailingAddress userErrors: [UserError!]! }
type BulkOperationRunQueryPayload {
  bulkOperation: BulkOperation
  userErrors: [BulkOperationUserError!]!
}
type BulkOperationCancelPayload { bulkOperation: BulkOperation userErrors: [UserError!]! }

type QueryRoot {
  bulkOperation(id: ID!): BulkOperation
  currentBulkOperation(type: BulkOperationType = QUERY): BulkOperation
  customer(id: ID!): Customer
  customers(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
    sortKey: CustomerSortKeys = ID, query: String
  ): CustomerConnection!
  node(id: ID!): Node
  nodes(ids: [ID!]!): [Node]!
  order(id: ID!): Order
  orders(
    first: Int, after: String, last: Int, before: String, reverse: Boolean = false,
    sortKey: OrderSortKeys = PROCESSED_AT, query: String
  ): OrderConnection!
}

type Mutation {
  bulkOperationCancel(id: ID!): BulkOperationCancelPayload
  bulkOperationRunQuery(
    query: String!, groupObjects: Boolean! = false
  ): BulkOperationRunQueryPayload
  customerAddressCreate(
    customerId: ID!, address: MailingAddressInput!, setAsDefault: Boolean
  ): CustomerAddressCreatePayload
  customerAddressUpdate(
    customerId: ID!, addressId: ID!, address: MailingAddressInput!, setAsDefault: Boolean
  ): CustomerAddressUpdatePayload
  customerEmailMarketingConsentUpdate(
    input: CustomerEmailMarketingConsentUpdateInput!
  ): CustomerEmailMarketingConsentUpdatePayload
  customerUpdate(input: CustomerInput!): CustomerUpdatePayload
}
""".replace("__COUNTRY_CODES__", " ".join(COUNTRY_CODES))

GID = re.compile(r"^gid://shopify/(?P<kind>[A-Za-z]+)/(?P<id>\d+)(?:\?.*)?$")


@dataclass
class Context:
    """What resolvers need for one request."""

    shop: Shop
    api_version: str
    base_url: str  # where this simulator was reached, for bulk file URLs
    now: datetime
    bulk: bool = False  # executing a bulk query: connections return everything
    searches: list[dict[str, Any]] = field(default_factory=list)
    # Set by app.py: the mutations that need more than the store (bulk runner).
    run_bulk: Callable[[Context, str, bool], dict[str, Any]] | None = None
    cancel_bulk: Callable[[Context, str], dict[str, Any]] | None = None
    update_customer: Callable[[Context, dict[str, Any]], dict[str, Any]] | None = None
    # The other customer mutations, by GraphQL field name: (context, arguments) -> payload.
    customer_mutations: dict[str, Callable[[Context, dict[str, Any]], dict[str, Any]]] = field(
        default_factory=dict
    )


def parse_gid(value: str, kind: str | None = None) -> int | None:
    """The numeric id in ``value`` if it is a GID (of ``kind``, when given)."""
    match = GID.match(value or "")
    if not match or (kind and match.group("kind") != kind):
        return None
    return int(match.group("id"))


def bad_gid(value: str) -> GraphQLError:
    return GraphQLError(f"Invalid global id '{value}'", extensions={"code": "INVALID_VARIABLE"})


# --------------------------------------------------------------------------- pagination
def encode_cursor(last_id: int, last_value: Any) -> str:
    raw = json.dumps({"last_id": last_id, "last_value": last_value}, separators=(",", ":"))
    return base64.b64encode(raw.encode()).decode()


def decode_cursor(cursor: str) -> tuple[Any, int]:
    try:
        data = json.loads(base64.b64decode(cursor.encode(), validate=True))
        return data["last_value"], int(data["last_id"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise GraphQLError(
            f"Invalid cursor '{cursor}'", extensions={"code": "BAD_REQUEST"}
        ) from None


def check_page_arguments(first: int | None, last: int | None) -> None:
    """Shopify's argument rules for a connection page."""
    if first is None and last is None:
        # Wording as Shopify returns it (gnikyt/Basic-Shopify-API issue #22).
        raise GraphQLError(
            "you must provide one of first or last", extensions={"code": "BAD_REQUEST"}
        )
    for name, value in (("first", first), ("last", last)):
        if value is not None and value > MAX_PAGE_SIZE:
            # Limit from https://shopify.dev/docs/api/usage/pagination-graphql; the exact
            # message is UNCONFIRMED.
            raise GraphQLError(
                f"The {name} argument must be less than or equal to {MAX_PAGE_SIZE}.",
                extensions={"code": "BAD_REQUEST"},
            )
        if value is not None and value < 0:
            raise GraphQLError(
                f"The {name} argument must be greater than or equal to 0.",
                extensions={"code": "BAD_REQUEST"},
            )


def paginate(
    records: Sequence[Any],
    key: Callable[[Any], tuple[Any, int]],
    render_node: Callable[[Any], dict[str, Any]],
    *,
    first: int | None,
    after: str | None,
    last: int | None,
    before: str | None,
    reverse: bool,
    everything: bool = False,
) -> dict[str, Any]:
    """One page of ``records`` ordered by ``key`` = (sort value, id)."""
    ordered = sorted(records, key=key, reverse=reverse)
    if everything:
        page, start = ordered, 0
    else:
        check_page_arguments(first, last)
        window_start, window_end = 0, len(ordered)
        if after:
            mark = _cursor_key(after, ordered, key)
            window_start = next(
                (i for i, r in enumerate(ordered) if _comes_after(key(r), mark, reverse)),
                len(ordered),
            )
        if before:
            mark = _cursor_key(before, ordered, key)
            window_end = next(
                (i for i, r in enumerate(ordered) if not _comes_after(mark, key(r), reverse)),
                len(ordered),
            )
        window = ordered[window_start : max(window_start, window_end)]
        if first is not None:
            page, start = window[:first], window_start
        else:
            count = min(last or 0, len(window))
            page, start = window[len(window) - count :], window_start + len(window) - count
    nodes = [render_node(r) for r in page]
    cursors = [encode_cursor(key(r)[1], key(r)[0]) for r in page]
    return {
        "nodes": nodes,
        "edges": [{"cursor": c, "node": n} for c, n in zip(cursors, nodes, strict=True)],
        "pageInfo": {
            "hasNextPage": bool(page) and start + len(page) < len(ordered),
            "hasPreviousPage": start > 0,
            "startCursor": cursors[0] if cursors else None,
            "endCursor": cursors[-1] if cursors else None,
        },
    }


def _cursor_key(cursor: str, ordered: Sequence[Any], key: Callable[[Any], tuple[Any, int]]):
    value, last_id = decode_cursor(cursor)
    if ordered and not isinstance(value, type(key(ordered[0])[0])):
        # A cursor from another sort order: Shopify refuses it too.
        raise GraphQLError(f"Invalid cursor '{cursor}'", extensions={"code": "BAD_REQUEST"})
    return (value, last_id)


def _comes_after(mine: tuple[Any, int], mark: tuple[Any, int], reverse: bool) -> bool:
    return mine < mark if reverse else mine > mark


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def customer_key(sort_key: str) -> Callable[[Customer], tuple[Any, int]]:
    if sort_key == "UPDATED_AT":
        return lambda c: (_millis(c.updated_at), c.id)
    if sort_key == "CREATED_AT":
        return lambda c: (_millis(c.created_at), c.id)
    if sort_key == "NAME":
        return lambda c: (f"{c.first_name or ''} {c.last_name or ''}".strip().lower(), c.id)
    return lambda c: (str(c.id), c.id)  # ID and the keys we do not model


def order_key(sort_key: str) -> Callable[[Order], tuple[Any, int]]:
    if sort_key == "UPDATED_AT":
        return lambda o: (_millis(o.updated_at), o.id)
    if sort_key == "CREATED_AT":
        return lambda o: (_millis(o.created_at), o.id)
    if sort_key == "PROCESSED_AT":
        return lambda o: (_millis(o.processed_at), o.id)
    if sort_key == "ORDER_NUMBER":
        return lambda o: (o.number, o.id)
    return lambda o: (str(o.id), o.id)


# --------------------------------------------------------------------------- resolvers
def _ctx(info: GraphQLResolveInfo) -> Context:
    return info.context


def resolve_customers(_root: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    ctx = _ctx(info)
    parsed = search.parse(args.get("query"))
    wanted = search.customer_matcher(parsed)
    if parsed.warnings:
        ctx.searches.append(parsed.report([info.path.key]))
    records = [c for c in ctx.shop.customers.values() if wanted(c, ctx.shop)]
    return paginate(
        records,
        customer_key(args.get("sortKey") or "ID"),
        lambda c: render.gql_customer(ctx.shop, c),
        first=args.get("first"),
        after=args.get("after"),
        last=args.get("last"),
        before=args.get("before"),
        reverse=bool(args.get("reverse")),
        everything=ctx.bulk,
    )


def _visible(ctx: Context, order: Order) -> bool:
    """Without the read_all_orders scope an app sees the last 60 days of orders only
    (https://shopify.dev/docs/api/admin-graphql/latest/objects/Order)."""
    return ctx.shop.knobs.read_all_orders or order.created_at >= ctx.now - ORDER_WINDOW


def resolve_orders(_root: Any, info: GraphQLResolveInfo, **args: Any) -> dict[str, Any]:
    ctx = _ctx(info)
    parsed = search.parse(args.get("query"))
    wanted = search.order_matcher(parsed)
    if parsed.warnings:
        ctx.searches.append(parsed.report([info.path.key]))
    records = [o for o in ctx.shop.orders.values() if _visible(ctx, o) and wanted(o, ctx.shop)]
    return paginate(
        records,
        order_key(args.get("sortKey") or "PROCESSED_AT"),
        lambda o: render.gql_order(ctx.shop, o),
        first=args.get("first"),
        after=args.get("after"),
        last=args.get("last"),
        before=args.get("before"),
        reverse=bool(args.get("reverse")),
        everything=ctx.bulk,
    )


def resolve_line_items(
    order: dict[str, Any], info: GraphQLResolveInfo, **args: Any
) -> dict[str, Any]:
    items = order.get("_line_items") or []
    position = {item["id"]: i for i, item in enumerate(items)}
    return paginate(
        items,
        lambda item: (position[item["id"]], parse_gid(item["id"]) or 0),
        lambda item: item,
        first=args.get("first"),
        after=args.get("after"),
        last=args.get("last"),
        before=args.get("before"),
        reverse=bool(args.get("reverse")),
        everything=_ctx(info).bulk,
    )


def resolve_addresses(customer: dict[str, Any], _info: GraphQLResolveInfo, **args: Any) -> list:
    addresses = customer.get("addresses") or []
    first = args.get("first")
    return addresses[:first] if first is not None else addresses


def resolve_customer(_root: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    ctx = _ctx(info)
    number = parse_gid(id)
    if number is None:
        raise bad_gid(id)
    customer = ctx.shop.customers.get(number) if parse_gid(id, "Customer") else None
    return render.gql_customer(ctx.shop, customer) if customer else None


def resolve_order(_root: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    ctx = _ctx(info)
    number = parse_gid(id)
    if number is None:
        raise bad_gid(id)
    order = ctx.shop.orders.get(number) if parse_gid(id, "Order") else None
    return render.gql_order(ctx.shop, order) if order and _visible(ctx, order) else None


def resolve_node(root: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    match = GID.match(id or "")
    if not match:
        raise bad_gid(id)
    kind = match.group("kind")
    if kind == "Customer":
        return resolve_customer(root, info, id)
    if kind == "Order":
        return resolve_order(root, info, id)
    if kind == "BulkOperation":
        return resolve_bulk_operation(root, info, id)
    return None


def resolve_nodes(root: Any, info: GraphQLResolveInfo, ids: list[str]) -> list[Any]:
    """``nodes(ids:)``: one entry per id, in order, null where nothing has that id."""
    if len(ids) > MAX_NODE_IDS:
        # The limit is documented; the wording of the refusal is UNCONFIRMED.
        raise GraphQLError(
            f"The ids argument must have at most {MAX_NODE_IDS} items.",
            extensions={"code": "BAD_REQUEST"},
        )
    return [resolve_node(root, info, i) for i in ids]


def resolve_bulk_operation(_root: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any] | None:
    number = parse_gid(id, "BulkOperation")
    if number is None and parse_gid(id) is None:
        raise bad_gid(id)
    operation = _ctx(info).shop.bulk_operations.get(number) if number else None
    return operation.view() if operation else None


def resolve_current_bulk_operation(
    _root: Any,
    info: GraphQLResolveInfo,
    type: str = "QUERY",
) -> dict[str, Any] | None:
    operations = [op for op in _ctx(info).shop.bulk_operations.values() if op.type == type]
    latest = max(operations, key=lambda op: op.id, default=None)
    return latest.view() if latest else None


def resolve_customer_update(_root: Any, info: GraphQLResolveInfo, input: dict) -> dict[str, Any]:
    ctx = _ctx(info)
    assert ctx.update_customer is not None
    return ctx.update_customer(ctx, input)


def _customer_mutation(name: str) -> Callable[..., dict[str, Any]]:
    def resolve(_root: Any, info: GraphQLResolveInfo, **arguments: Any) -> dict[str, Any]:
        ctx = _ctx(info)
        return ctx.customer_mutations[name](ctx, arguments)

    return resolve


CUSTOMER_MUTATIONS = (
    "customerEmailMarketingConsentUpdate",
    "customerAddressUpdate",
    "customerAddressCreate",
)


def resolve_bulk_run_query(
    _root: Any,
    info: GraphQLResolveInfo,
    query: str,
    groupObjects: bool = False,
) -> dict[str, Any]:
    ctx = _ctx(info)
    assert ctx.run_bulk is not None
    return ctx.run_bulk(ctx, query, groupObjects)


def resolve_bulk_cancel(_root: Any, info: GraphQLResolveInfo, id: str) -> dict[str, Any]:
    ctx = _ctx(info)
    assert ctx.cancel_bulk is not None
    return ctx.cancel_bulk(ctx, id)


def build() -> GraphQLSchema:
    """The executable schema: SDL plus resolvers (everything else reads dict keys)."""
    schema = build_schema(SDL)
    query = schema.query_type
    mutation = schema.mutation_type
    assert query is not None
    assert mutation is not None
    query.fields["customers"].resolve = resolve_customers
    query.fields["orders"].resolve = resolve_orders
    query.fields["customer"].resolve = resolve_customer
    query.fields["order"].resolve = resolve_order
    query.fields["node"].resolve = resolve_node
    query.fields["bulkOperation"].resolve = resolve_bulk_operation
    query.fields["currentBulkOperation"].resolve = resolve_current_bulk_operation
    query.fields["nodes"].resolve = resolve_nodes
    mutation.fields["customerUpdate"].resolve = resolve_customer_update
    for name in CUSTOMER_MUTATIONS:
        mutation.fields[name].resolve = _customer_mutation(name)
    mutation.fields["bulkOperationRunQuery"].resolve = resolve_bulk_run_query
    mutation.fields["bulkOperationCancel"].resolve = resolve_bulk_cancel
    order_type = schema.get_type("Order")
    customer_type = schema.get_type("Customer")
    order_type.fields["lineItems"].resolve = resolve_line_items  # type: ignore[union-attr]
    customer_type.fields["addresses"].resolve = resolve_addresses  # type: ignore[union-attr]
    return schema
