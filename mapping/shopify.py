"""Shopify payloads -> canonical Customer and Order.

The same record reaches Tandem in two representations, and both must map to the same
canonical object so that a webhook and the poll that re-reads it never look like a change:

- GraphQL Admin nodes (polling, backfills, bulk exports): camelCase, GIDs, enums in upper case,
  money as ``{shopMoney {amount currencyCode}}``, tags as a list. Shapes: the shared contract in
  briefs/shopify_query.md.
- REST JSON (every webhook body): snake_case, numeric ids, money as decimal strings with
  ``*_set`` twins, tags as one comma-separated string, timestamps with offsets.
  https://shopify.dev/docs/api/admin-rest/latest/resources/order and .../customer

All amounts are shop money (the store's currency), never presentment money, so totals add up
across a store's orders whatever the buyer paid in.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from mapping.models import (
    Address,
    ConsentState,
    Customer,
    FinancialStatus,
    FulfillmentStatus,
    LineItem,
    MappingError,
    MarketingConsent,
    Money,
    Order,
)
from mapping.normalise import money, normalise_country, normalise_email, normalise_phone, to_utc

SOURCE = "shopify"

Payload = Mapping[str, Any]

_GID = re.compile(r"gid://shopify/[A-Za-z][A-Za-z0-9]*/([0-9]+)")
_DIGITS = re.compile(r"[0-9]+")


def legacy_id(gid_or_int: str | int) -> str:
    """The numeric Shopify id as a string: ``"gid://shopify/Customer/123"``, ``123``, ``"123"``
    all give ``"123"``.

    Raises:
        ValueError: anything else (another GID scheme, a non-positive number, a bool, text).
    """
    if isinstance(gid_or_int, bool):
        raise ValueError(f"not a Shopify id: {gid_or_int!r}")
    if isinstance(gid_or_int, int):
        number = gid_or_int
    elif isinstance(gid_or_int, str):
        text = gid_or_int.strip()
        gid = _GID.fullmatch(text)
        digits = gid.group(1) if gid else text
        if not _DIGITS.fullmatch(digits):
            raise ValueError(f"not a Shopify id or GID: {gid_or_int!r}")
        number = int(digits)
    else:
        raise ValueError(f"not a Shopify id: {gid_or_int!r}")
    if number < 1:
        raise ValueError(f"Shopify ids are positive: {gid_or_int!r}")
    return str(number)


# --------------------------------------------------------------------------- small readers


def _text(value: Any) -> str | None:
    """Trimmed text; empty or null is None (REST sends "" where GraphQL sends null)."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _count(value: Any, what: str) -> int | None:
    # GraphQL UnsignedInt64 arrives as a string ("3"), REST as an int.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MappingError(f"{what} is not a whole number: {value!r}")
    try:
        return int(value)
    except ValueError as exc:
        raise MappingError(f"{what} is not a whole number: {value!r}") from exc


def _tags(value: Any) -> tuple[str, ...]:
    """GraphQL gives a list, REST one comma-separated string. Sorted, so order never differs."""
    if value is None:
        return ()
    parts = value.split(",") if isinstance(value, str) else [str(v) for v in value]
    unique = {tag.strip() for tag in parts if tag.strip()}
    return tuple(sorted(unique, key=lambda tag: (tag.casefold(), tag)))


def _required_time(payload: Payload, key: str, what: str) -> datetime | None:
    value = payload.get(key)
    if value is None:
        raise MappingError(f"{what} has no {key}")
    return to_utc(value)


def _lower(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text else None


_Status = TypeVar("_Status", ConsentState, FinancialStatus)


def _member(enum: type[_Status], value: Any, unknown: _Status) -> _Status:
    """The enum member named by ``value`` (any case); a value Shopify adds later is unknown."""
    text = _lower(value)
    try:
        return enum(text) if text else unknown
    except ValueError:
        return unknown


# --------------------------------------------------------------------------- ids and money


def _record_id(payload: Payload, what: str, *, numeric_key: str, gid_key: str) -> str:
    numeric, gid = payload.get(numeric_key), payload.get(gid_key)
    if numeric is None and gid is None:
        raise MappingError(f"Shopify {what} payload has no id")
    ids = {legacy_id(v) for v in (numeric, gid) if v is not None}
    if len(ids) != 1:
        raise MappingError(f"Shopify {what} ids disagree: {numeric!r} vs {gid!r}")
    return ids.pop()


def _optional_id(value: Any) -> str | None:
    return None if value is None else legacy_id(value)


def _graphql_money(bag: Any, currency: str | None = None) -> Money | None:
    """``{shopMoney {amount currencyCode}}`` -> Money (None when absent)."""
    shop = bag.get("shopMoney") if bag else None
    return _money_v2(shop, currency)


def _money_v2(value: Any, currency: str | None = None) -> Money | None:
    """GraphQL MoneyV2 ``{amount currencyCode}`` -> Money; ``currency`` if the code is absent."""
    if not value or value.get("amount") is None:
        return None
    return money(value["amount"], value.get("currencyCode") or currency)


def _rest_money(payload: Payload, key: str, currency: str) -> Money | None:
    """A REST amount, from its ``<key>_set.shop_money`` twin when present, else ``<key>``."""
    money_set = payload.get(f"{key}_set")
    shop = money_set.get("shop_money") if money_set else None
    if shop and shop.get("amount") is not None:
        return money(shop["amount"], shop.get("currency_code") or currency)
    if payload.get(key) is not None:
        return money(payload[key], currency)
    return None


def _zero(currency: str) -> Money:
    return money(0, currency)


def _sum(amounts: Sequence[Money], currency: str) -> Money:
    return money(sum((m.amount for m in amounts), Decimal(0)), currency)


@contextlib.contextmanager
def _payload_errors(what: str, payload: Any) -> Iterator[None]:
    """Report any unreadable value as one MappingError that names the record."""
    if not isinstance(payload, Mapping):
        raise MappingError(f"Shopify {what} payload is not an object: {type(payload).__name__}")
    try:
        yield
    except MappingError:
        raise
    except (ValueError, TypeError, AttributeError, LookupError) as exc:
        ref = payload.get("legacyResourceId") or payload.get("id") or "?"
        raise MappingError(f"unreadable Shopify {what} {ref}: {exc}") from exc


# --------------------------------------------------------------------------- addresses

# canonical field -> GraphQL MailingAddress field / REST address key
_GRAPHQL_ADDRESS = {
    "first_name": "firstName",
    "last_name": "lastName",
    "company": "company",
    "line1": "address1",
    "line2": "address2",
    "city": "city",
    "province": "province",
    "province_code": "provinceCode",
    "postal_code": "zip",
}
_REST_ADDRESS = {
    "first_name": "first_name",
    "last_name": "last_name",
    "company": "company",
    "line1": "address1",
    "line2": "address2",
    "city": "city",
    "province": "province",
    "province_code": "province_code",
    "postal_code": "zip",
}


def _address(
    node: Any, keys: Mapping[str, str], code_key: str, default_region: str | None
) -> Address | None:
    if not node:
        return None
    country = normalise_country(_text(node.get(code_key))) or normalise_country(
        _text(node.get("country"))
    )
    return Address(
        **{field: _text(node.get(key)) for field, key in keys.items()},
        country_code=country,
        # A number on an address is read in that address's country.
        phone=normalise_phone(_text(node.get("phone")), country or default_region),
    )


def _graphql_address(node: Any, default_region: str | None) -> Address | None:
    return _address(node, _GRAPHQL_ADDRESS, "countryCodeV2", default_region)


def _rest_address(node: Any, default_region: str | None) -> Address | None:
    return _address(node, _REST_ADDRESS, "country_code", default_region)


def _region(addresses: Sequence[Address | None], default_region: str | None) -> str | None:
    for address in addresses:
        if address is not None and address.country_code:
            return address.country_code
    return default_region


# --------------------------------------------------------------------------- customers

# What a payload that lacks a key leaves unknown: canonical paths per source key.
_EMAIL_CONSENT = ("consent.email", "consent.email_opt_in_level", "consent.email_updated_at")
_SMS_CONSENT = ("consent.sms", "consent.sms_updated_at")

_GRAPHQL_CUSTOMER_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("defaultEmailAddress", "email"): ("email",),
    ("defaultPhoneNumber", "phone"): ("phone",),
    ("firstName",): ("first_name",),
    ("lastName",): ("last_name",),
    ("locale",): ("locale",),
    ("note",): ("note",),
    ("state",): ("state",),
    ("tags",): ("tags",),
    ("taxExempt",): ("tax_exempt",),
    ("verifiedEmail",): ("verified_email",),
    ("defaultAddress",): ("default_address",),
    ("addresses",): ("addresses",),
    ("emailMarketingConsent",): _EMAIL_CONSENT,
    ("smsMarketingConsent",): _SMS_CONSENT,
    ("numberOfOrders",): ("orders_count",),
    ("amountSpent",): ("total_spent",),
}
_REST_CUSTOMER_KEYS: dict[tuple[str, ...], tuple[str, ...]] = {
    ("email",): ("email",),
    ("phone",): ("phone",),
    ("first_name",): ("first_name",),
    ("last_name",): ("last_name",),
    # The REST Customer resource has no locale field at all, so a webhook never knows it.
    ("locale",): ("locale",),
    ("note",): ("note",),
    ("state",): ("state",),
    ("tags",): ("tags",),
    ("tax_exempt",): ("tax_exempt",),
    ("verified_email",): ("verified_email",),
    ("default_address",): ("default_address",),
    ("addresses",): ("addresses",),
    ("email_marketing_consent",): _EMAIL_CONSENT,
    ("sms_marketing_consent",): _SMS_CONSENT,
    ("orders_count",): ("orders_count",),
    # total_spent also needs the customer's currency (see customer_from_rest).
    ("total_spent",): ("total_spent",),
}


def _missing(payload: Payload, table: Mapping[tuple[str, ...], tuple[str, ...]]) -> list[str]:
    return [
        path
        for keys, paths in table.items()
        if not any(key in payload for key in keys)
        for path in paths
    ]


def _consent(
    email_block: Any, sms_block: Any, *, state_key: str, level_key: str, time_key: str
) -> MarketingConsent:
    email_block = email_block or {}
    sms_block = sms_block or {}
    return MarketingConsent(
        email=_member(ConsentState, email_block.get(state_key), ConsentState.unknown),
        email_opt_in_level=_lower(email_block.get(level_key)),
        email_updated_at=to_utc(email_block.get(time_key)),
        sms=_member(ConsentState, sms_block.get(state_key), ConsentState.unknown),
        sms_updated_at=to_utc(sms_block.get(time_key)),
    )


def customer_from_graphql(node: Payload, *, default_region: str | None = None) -> Customer:
    """A GraphQL Admin ``Customer`` node (CustomerFields in the shared contract) -> Customer.

    ``default_region`` (the store's country, alpha-2) reads phone numbers when the customer's
    default address has no country.

    Raises:
        MappingError: no id, no createdAt/updatedAt, or an unreadable value.
    """
    with _payload_errors("customer", node):
        what = "Shopify customer"
        source_id = _record_id(node, "customer", numeric_key="legacyResourceId", gid_key="id")
        default_address = _graphql_address(node.get("defaultAddress"), default_region)
        email = (node.get("defaultEmailAddress") or {}).get("emailAddress", node.get("email"))
        phone = (node.get("defaultPhoneNumber") or {}).get("phoneNumber", node.get("phone"))
        return Customer(
            source=SOURCE,
            source_id=source_id,
            email=normalise_email(_text(email)),
            first_name=_text(node.get("firstName")),
            last_name=_text(node.get("lastName")),
            phone=normalise_phone(_text(phone), _region([default_address], default_region)),
            locale=_text(node.get("locale")),
            note=_text(node.get("note")),
            state=_lower(node.get("state")),
            tags=_tags(node.get("tags")),
            tax_exempt=_bool(node.get("taxExempt")),
            verified_email=_bool(node.get("verifiedEmail")),
            default_address=default_address,
            addresses=tuple(
                a
                for a in (_graphql_address(n, default_region) for n in node.get("addresses") or [])
                if a is not None
            ),
            consent=_consent(
                node.get("emailMarketingConsent"),
                node.get("smsMarketingConsent"),
                state_key="marketingState",
                level_key="marketingOptInLevel",
                time_key="consentUpdatedAt",
            ),
            orders_count=_count(node.get("numberOfOrders"), f"{what} {source_id} numberOfOrders"),
            total_spent=_money_v2(node.get("amountSpent")),
            created_at=_required_time(node, "createdAt", f"{what} {source_id}"),
            updated_at=_required_time(node, "updatedAt", f"{what} {source_id}"),
            missing=tuple(_missing(node, _GRAPHQL_CUSTOMER_KEYS)),
        )


def customer_from_rest(payload: Payload, *, default_region: str | None = None) -> Customer:
    """A REST Customer (the ``customers/*`` webhook body) -> Customer.

    Keys the payload does not carry (newer webhook versions drop tags and marketing consent;
    REST has no locale) are listed in ``Customer.missing`` rather than read as empty.

    Raises:
        MappingError: no id, no created_at/updated_at, or an unreadable value.
    """
    with _payload_errors("customer", payload):
        what = "Shopify customer"
        source_id = _record_id(
            payload, "customer", numeric_key="id", gid_key="admin_graphql_api_id"
        )
        default_address = _rest_address(payload.get("default_address"), default_region)
        missing = _missing(payload, _REST_CUSTOMER_KEYS)
        total_spent = None
        if payload.get("total_spent") is not None:
            if payload.get("currency"):
                total_spent = money(payload["total_spent"], payload["currency"])
            else:
                missing.append("total_spent")  # an amount without its currency is unknown
        return Customer(
            source=SOURCE,
            source_id=source_id,
            email=normalise_email(_text(payload.get("email"))),
            first_name=_text(payload.get("first_name")),
            last_name=_text(payload.get("last_name")),
            phone=normalise_phone(
                _text(payload.get("phone")), _region([default_address], default_region)
            ),
            locale=_text(payload.get("locale")),
            note=_text(payload.get("note")),
            state=_lower(payload.get("state")),
            tags=_tags(payload.get("tags")),
            tax_exempt=_bool(payload.get("tax_exempt")),
            verified_email=_bool(payload.get("verified_email")),
            default_address=default_address,
            addresses=tuple(
                a
                for a in (_rest_address(n, default_region) for n in payload.get("addresses") or [])
                if a is not None
            ),
            consent=_consent(
                payload.get("email_marketing_consent"),
                payload.get("sms_marketing_consent"),
                state_key="state",
                level_key="opt_in_level",
                time_key="consent_updated_at",
            ),
            orders_count=_count(payload.get("orders_count"), f"{what} {source_id} orders_count"),
            total_spent=total_spent,
            created_at=_required_time(payload, "created_at", f"{what} {source_id}"),
            updated_at=_required_time(payload, "updated_at", f"{what} {source_id}"),
            missing=tuple(missing),
        )


# --------------------------------------------------------------------------- orders

# GraphQL OrderDisplayFulfillmentStatus, incl. values deprecated in favour of others:
# https://shopify.dev/docs/api/admin-graphql/latest/enums/OrderDisplayFulfillmentStatus
_GRAPHQL_FULFILLMENT = {
    "UNFULFILLED": FulfillmentStatus.unfulfilled,
    "OPEN": FulfillmentStatus.unfulfilled,  # replaced by UNFULFILLED
    "PARTIALLY_FULFILLED": FulfillmentStatus.partially_fulfilled,
    "FULFILLED": FulfillmentStatus.fulfilled,
    "RESTOCKED": FulfillmentStatus.restocked,
    "ON_HOLD": FulfillmentStatus.on_hold,
    "SCHEDULED": FulfillmentStatus.scheduled,
    "IN_PROGRESS": FulfillmentStatus.in_progress,
    "PENDING_FULFILLMENT": FulfillmentStatus.in_progress,  # replaced by IN_PROGRESS
}
# REST order fulfillment_status: null (nothing fulfilled), "partial", "fulfilled", "restocked".
_REST_FULFILLMENT = {
    "unfulfilled": FulfillmentStatus.unfulfilled,
    "partial": FulfillmentStatus.partially_fulfilled,
    "fulfilled": FulfillmentStatus.fulfilled,
    "restocked": FulfillmentStatus.restocked,
}


def _line_item_id(item: Payload) -> str:
    if item.get("id") is None:
        raise MappingError("Shopify line item has no id")
    return legacy_id(item["id"])


def _graphql_line_item(node: Payload, currency: str) -> LineItem:
    source_id = _line_item_id(node)
    quantity = _count(node.get("quantity"), f"Shopify line item {source_id} quantity")
    unit_price = _graphql_money(node.get("originalUnitPriceSet"), currency)
    if quantity is None or unit_price is None:
        raise MappingError(f"Shopify line item {source_id} has no quantity or unit price")
    # discountedTotalSet (without withCodeDiscounts) is after the line's own automatic and
    # manual discounts, excluding order-level and code discounts:
    # https://shopify.dev/docs/api/admin-graphql/latest/objects/LineItem#field-discountedTotalSet
    total = _graphql_money(node.get("discountedTotalSet"), currency) or money(
        unit_price.amount * quantity, unit_price.currency
    )
    return LineItem(
        source_id=source_id,
        title=_text(node.get("title")),
        variant_title=_text(node.get("variantTitle")),
        sku=_text(node.get("sku")),
        quantity=quantity,
        unit_price=unit_price,
        total=total,
        product_id=_optional_id((node.get("product") or {}).get("id")),
        variant_id=_optional_id((node.get("variant") or {}).get("id")),
    )


def order_from_graphql(node: Payload, *, default_region: str | None = None) -> Order:
    """A GraphQL Admin ``Order`` node (OrderFields, line items under ``lineItems.nodes``) -> Order.

    Raises:
        MappingError: no id, no currency, no total, no createdAt/updatedAt, or an unreadable
            value.
    """
    with _payload_errors("order", node):
        source_id = _record_id(node, "order", numeric_key="legacyResourceId", gid_key="id")
        what = f"Shopify order {source_id}"
        total_set = (node.get("totalPriceSet") or {}).get("shopMoney") or {}
        currency = _text(node.get("currencyCode")) or _text(total_set.get("currencyCode"))
        if currency is None:
            raise MappingError(f"{what} has no currency")
        total = _graphql_money(node.get("totalPriceSet"), currency)
        if total is None:
            raise MappingError(f"{what} has no totalPriceSet")
        billing = _graphql_address(node.get("billingAddress"), default_region)
        shipping = _graphql_address(node.get("shippingAddress"), default_region)

        def amount(key: str) -> Money:
            return _graphql_money(node.get(key), currency) or _zero(currency)

        items = (node.get("lineItems") or {}).get("nodes") or []
        return Order(
            source=SOURCE,
            source_id=source_id,
            name=_text(node.get("name")),
            email=normalise_email(_text(node.get("email"))),
            phone=normalise_phone(
                _text(node.get("phone")), _region([billing, shipping], default_region)
            ),
            customer_source_id=_optional_id((node.get("customer") or {}).get("id")),
            financial_status=_member(
                FinancialStatus, node.get("displayFinancialStatus"), FinancialStatus.unknown
            ),
            fulfillment_status=_GRAPHQL_FULFILLMENT.get(
                str(node.get("displayFulfillmentStatus")), FulfillmentStatus.unknown
            ),
            currency=currency,
            total=total,
            subtotal=amount("subtotalPriceSet"),
            tax=amount("totalTaxSet"),
            discounts=amount("totalDiscountsSet"),
            shipping=amount("totalShippingPriceSet"),
            refunded=amount("totalRefundedSet"),
            current_total=_graphql_money(node.get("currentTotalPriceSet")),
            created_at=_required_time(node, "createdAt", what),
            updated_at=_required_time(node, "updatedAt", what),
            processed_at=to_utc(node.get("processedAt")),
            cancelled_at=to_utc(node.get("cancelledAt")),
            closed_at=to_utc(node.get("closedAt")),
            billing_address=billing,
            shipping_address=shipping,
            line_items=tuple(_graphql_line_item(item, currency) for item in items),
            tags=_tags(node.get("tags")),
            note=_text(node.get("note")),
            test=bool(node.get("test")),
        )


def _rest_fulfillment(payload: Payload) -> FulfillmentStatus:
    if "fulfillment_status" not in payload:
        return FulfillmentStatus.unknown
    # null means nothing is fulfilled yet
    status = _lower(payload["fulfillment_status"]) or "unfulfilled"
    return _REST_FULFILLMENT.get(status, FulfillmentStatus.unknown)


def _line_level_allocation(allocation: Payload, applications: Sequence[Any]) -> bool:
    """Whether a REST discount allocation is one GraphQL's discountedTotalSet subtracts.

    That field leaves out code discounts and order-level discounts (those applied to "all"
    lines of the order), so the webhook's line total must leave them out too, or the same line
    would differ between a webhook and a poll. An allocation whose application cannot be found
    is counted, as the line's own discount.
    https://shopify.dev/docs/api/admin-rest/latest/resources/order (discount_applications)
    """
    index = allocation.get("discount_application_index")
    if not isinstance(index, int) or not 0 <= index < len(applications):
        return True
    application = applications[index] or {}
    return (
        application.get("type") != "discount_code" and application.get("target_selection") != "all"
    )


def _rest_line_item(item: Payload, currency: str, applications: Sequence[Any]) -> LineItem:
    source_id = _line_item_id(item)
    quantity = _count(item.get("quantity"), f"Shopify line item {source_id} quantity")
    unit_price = _rest_money(item, "price", currency)
    if quantity is None or unit_price is None:
        raise MappingError(f"Shopify line item {source_id} has no quantity or price")
    discounts = [
        _rest_money(allocation, "amount", unit_price.currency)
        for allocation in item.get("discount_allocations") or []
        if _line_level_allocation(allocation, applications)
    ]
    total = money(
        unit_price.amount * quantity - sum((d.amount for d in discounts if d), Decimal(0)),
        unit_price.currency,
    )
    return LineItem(
        source_id=source_id,
        title=_text(item.get("title")),
        variant_title=_text(item.get("variant_title")),
        sku=_text(item.get("sku")),
        quantity=quantity,
        unit_price=unit_price,
        total=total,
        product_id=_optional_id(item.get("product_id")),
        variant_id=_optional_id(item.get("variant_id")),
    )


def _rest_refunded(payload: Payload, currency: str) -> Money:
    """Sum of successful refund transactions; zero when the payload has no refunds.

    REST orders carry no refunded total (GraphQL's totalRefundedSet has no REST twin), so it is
    rebuilt from ``refunds[].transactions[]`` with kind "refund" and status "success". A
    transaction in another currency than the shop's (a presentment-currency refund) cannot be
    added to shop money and is left out.
    """
    refunds: list[Money] = []
    for refund in payload.get("refunds") or []:
        for txn in (refund or {}).get("transactions") or []:
            if txn.get("kind") != "refund" or txn.get("status") != "success":
                continue
            if txn.get("currency") not in (None, currency) and not txn.get("amount_set"):
                continue
            amount = _rest_money(txn, "amount", currency)
            if amount is not None:
                refunds.append(amount)
    return _sum(refunds, currency)


def order_from_rest(payload: Payload, *, default_region: str | None = None) -> Order:
    """A REST Order (the ``orders/*`` webhook body) -> Order.

    Raises:
        MappingError: no id, no currency, no total, no created_at/updated_at, or an unreadable
            value.
    """
    with _payload_errors("order", payload):
        source_id = _record_id(payload, "order", numeric_key="id", gid_key="admin_graphql_api_id")
        what = f"Shopify order {source_id}"
        shop_total = ((payload.get("total_price_set") or {}).get("shop_money") or {}).get(
            "currency_code"
        )
        currency = _text(payload.get("currency")) or _text(shop_total)
        if currency is None:
            raise MappingError(f"{what} has no currency")
        total = _rest_money(payload, "total_price", currency)
        if total is None:
            raise MappingError(f"{what} has no total_price")
        billing = _rest_address(payload.get("billing_address"), default_region)
        shipping = _rest_address(payload.get("shipping_address"), default_region)

        def amount(key: str) -> Money:
            return _rest_money(payload, key, currency) or _zero(currency)

        applications = payload.get("discount_applications") or []
        return Order(
            source=SOURCE,
            source_id=source_id,
            name=_text(payload.get("name")),
            email=normalise_email(_text(payload.get("email"))),
            phone=normalise_phone(
                _text(payload.get("phone")), _region([billing, shipping], default_region)
            ),
            customer_source_id=_optional_id((payload.get("customer") or {}).get("id")),
            financial_status=_member(
                FinancialStatus, payload.get("financial_status"), FinancialStatus.unknown
            ),
            fulfillment_status=_rest_fulfillment(payload),
            currency=currency,
            total=total,
            subtotal=amount("subtotal_price"),
            tax=amount("total_tax"),
            discounts=amount("total_discounts"),
            shipping=amount("total_shipping_price"),
            refunded=_rest_refunded(payload, currency),
            current_total=_rest_money(payload, "current_total_price", currency),
            created_at=_required_time(payload, "created_at", what),
            updated_at=_required_time(payload, "updated_at", what),
            processed_at=to_utc(payload.get("processed_at")),
            cancelled_at=to_utc(payload.get("cancelled_at")),
            closed_at=to_utc(payload.get("closed_at")),
            billing_address=billing,
            shipping_address=shipping,
            line_items=tuple(
                _rest_line_item(item, currency, applications)
                for item in payload.get("line_items") or []
            ),
            tags=_tags(payload.get("tags")),
            note=_text(payload.get("note")),
            test=bool(payload.get("test")),
        )


# --------------------------------------------------------------------------- write-back
# Canonical patches (mapping.writeback) -> Admin GraphQL inputs, for connectors.shopify.
# Mutations and inputs: https://shopify.dev/docs/api/admin-graphql/2026-01/mutations/customerUpdate
# (CustomerInput), .../customerEmailMarketingConsentUpdate, .../customerAddressUpdate and
# .../customerAddressCreate (both since 2025-04:
# https://shopify.dev/changelog/new-customer-address-capabilities-in-the-admin-api).

# canonical path -> CustomerInput field. ``tags`` replaces the whole list [SH-CUSTUPD].
_CUSTOMER_INPUT = {
    "first_name": "firstName",
    "last_name": "lastName",
    "phone": "phone",
    "note": "note",
    "tags": "tags",
}
# canonical path -> MailingAddressInput field
_ADDRESS_INPUT = {
    "default_address.line1": "address1",
    "default_address.line2": "address2",
    "default_address.city": "city",
    "default_address.postal_code": "zip",
    "default_address.country_code": "countryCode",
}
# MailingAddress node field -> MailingAddressInput field: what an address update carries over
# from the address as it is, so that whether Shopify replaces the address or merges into it,
# only the patched fields change.
_ADDRESS_KEPT = {
    "firstName": "firstName",
    "lastName": "lastName",
    "company": "company",
    "address1": "address1",
    "address2": "address2",
    "city": "city",
    "provinceCode": "provinceCode",
    "countryCodeV2": "countryCode",
    "zip": "zip",
    "phone": "phone",
}
# The three states customerEmailMarketingConsentUpdate accepts as input; NOT_SUBSCRIBED,
# REDACTED and INVALID are read-only
# (https://shopify.dev/docs/api/admin-graphql/2025-07/payloads/CustomerEmailMarketingConsentUpdatePayload).
_CONSENT_INPUT = {
    ConsentState.subscribed: "SUBSCRIBED",
    ConsentState.unsubscribed: "UNSUBSCRIBED",
    ConsentState.pending: "PENDING",
}
_MARKETED = (ConsentState.subscribed, ConsentState.pending)


def customer_update_input(patch: Payload) -> dict[str, Any]:
    """The CustomerInput fields (``id`` left to the caller) for the names, phone, note and tags
    of a canonical patch; other paths are ignored. None clears: null for a text field, ``[]``
    for tags (the list is replaced whole)."""
    fields: dict[str, Any] = {}
    for path, field in _CUSTOMER_INPUT.items():
        if path in patch:
            value = patch[path]
            fields[field] = list(value or ()) if path == "tags" else value
    return fields


def email_marketing_state(target: ConsentState | None, current: ConsentState) -> str | None:
    """The marketingState to write so the customer's email consent becomes ``target``, or None
    when no write is needed or possible.

    ``not_subscribed`` (and None) cannot be written: it means "not marketed to", so a customer
    who is subscribed or pending is unsubscribed, and one who never subscribed or opted out is
    left alone.
    """
    if target in _CONSENT_INPUT:
        return None if current == target else _CONSENT_INPUT[target]
    return "UNSUBSCRIBED" if current in _MARKETED else None


def email_marketing_consent_input(
    target: ConsentState | None, *, current: ConsentState, consent_updated_at: datetime
) -> dict[str, Any] | None:
    """``emailMarketingConsent`` (CustomerEmailMarketingConsentInput) for
    customerEmailMarketingConsentUpdate, or None when nothing is to be written (see
    :func:`email_marketing_state`). ``consent_updated_at`` (timezone-aware) is when the change
    was decided.

    Opt-in level: SINGLE_OPT_IN, except PENDING, which is the state of a confirmed (double)
    opt-in awaiting the customer's confirmation
    (https://shopify.dev/docs/api/admin-graphql/2026-01/enums/CustomerMarketingOptInLevel).

    Raises ValueError for a naive ``consent_updated_at``.
    """
    state = email_marketing_state(target, current)
    if state is None:
        return None
    if consent_updated_at.tzinfo is None:
        raise ValueError("consent_updated_at must be timezone-aware")
    moment = consent_updated_at.astimezone(UTC)
    return {
        "marketingState": state,
        "marketingOptInLevel": "CONFIRMED_OPT_IN" if state == "PENDING" else "SINGLE_OPT_IN",
        "consentUpdatedAt": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def mailing_address_input(patch: Payload, current: Payload | None) -> dict[str, Any]:
    """MailingAddressInput for the default address: ``current`` (the customer's
    ``defaultAddress`` node, None if it has none) with the patch's address paths applied.

    A changed country drops the province code, which belongs to the old country.
    """
    fields = {field: (current or {}).get(key) for key, field in _ADDRESS_KEPT.items()}
    for path, field in _ADDRESS_INPUT.items():
        if path in patch:
            fields[field] = patch[path]
    if fields["countryCode"] != (current or {}).get("countryCodeV2"):
        fields["provinceCode"] = None
    return fields
