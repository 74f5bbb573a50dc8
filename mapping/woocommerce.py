"""WooCommerce REST API v3 payloads -> canonical records.

The same JSON comes from ``GET /wp-json/wc/v3/{customers,orders}`` and in webhook bodies
[WC-DOCS _webhooks.md], so one parser serves both. Pure functions: no I/O, no clock.

Facts relied on (``../shared/reference/api-storefronts.md`` §2.3):
- every date has a site-local field and a ``_gmt`` twin, both ISO-8601 *without* an offset; only
  the ``_gmt`` ones are read, so a store whose clock is not UTC gives the same canonical times;
- money is a decimal string (2 dp by default), except a line item's ``price``, which the docs'
  examples show as a JSON number;
- guests have ``customer_id`` 0 and exist only as the order's billing data;
- there are no native tags or marketing-consent fields (plugins keep those in ``meta_data``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from mapping.models import (
    Address,
    Customer,
    FinancialStatus,
    FulfillmentStatus,
    LineItem,
    MappingError,
    Money,
    Order,
)
from mapping.normalise import money, normalise_country, normalise_phone
from mapping.payload import numeric_id, readable, text

SOURCE = "woocommerce"
Payload = Mapping[str, Any]

# WooCommerce has no tags or consent of its own: a CRM write must leave those fields alone.
_NOT_CARRIED = (
    "tags",
    "consent.email",
    "consent.email_opt_in_level",
    "consent.email_updated_at",
    "consent.sms",
    "consent.sms_updated_at",
    "state",
    "orders_count",
    "total_spent",
)

# status -> (financial, fulfilment) [WC-DOCS _orders.md "status"]. WooCommerce has no separate
# payment status: "processing" means paid and awaiting fulfilment, "completed" paid and
# fulfilled, "on-hold" awaiting a manual payment (bank transfer), "failed" a declined payment.
_STATUS: dict[str, tuple[FinancialStatus, FulfillmentStatus]] = {
    "pending": (FinancialStatus.pending, FulfillmentStatus.unfulfilled),
    "checkout-draft": (FinancialStatus.pending, FulfillmentStatus.unfulfilled),
    "on-hold": (FinancialStatus.pending, FulfillmentStatus.on_hold),
    "processing": (FinancialStatus.paid, FulfillmentStatus.unfulfilled),
    "completed": (FinancialStatus.paid, FulfillmentStatus.fulfilled),
    "cancelled": (FinancialStatus.voided, FulfillmentStatus.unfulfilled),
    "refunded": (FinancialStatus.refunded, FulfillmentStatus.unknown),
    "failed": (FinancialStatus.voided, FulfillmentStatus.unfulfilled),
}


def _gmt(payload: Payload, key: str) -> datetime | None:
    """A ``*_gmt`` field: ISO-8601 without an offset, in UTC [WC-DOCS _introduction.md]."""
    value = text(payload.get(key))
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _required_gmt(payload: Payload, key: str, what: str) -> datetime:
    value = _gmt(payload, key)
    if value is None:
        raise MappingError(f"WooCommerce {what} {payload.get('id', '?')} has no {key}")
    return value


def _amount(value: Any) -> Decimal:
    """A money value. Strings are the documented form; a JSON number (line item ``price``)
    goes through its shortest repr, which is exactly the decimal WooCommerce printed."""
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, bool):
        raise TypeError("a boolean is not an amount")
    if isinstance(value, float):
        value = repr(value)
    return Decimal(str(value).strip())


def _money(value: Any, currency: str) -> Money:
    return money(_amount(value), currency)


def _address(node: Any, default_region: str | None) -> Address | None:
    if not isinstance(node, Mapping) or not any(text(v) for v in node.values()):
        return None
    country = normalise_country(text(node.get("country")))
    state = text(node.get("state"))
    return Address(
        first_name=text(node.get("first_name")),
        last_name=text(node.get("last_name")),
        company=text(node.get("company")),
        line1=text(node.get("address_1")),
        line2=text(node.get("address_2")),
        city=text(node.get("city")),
        # WooCommerce stores the state as a code ("CA", "BY") [WC-DOCS _customers.md].
        province_code=state,
        postal_code=text(node.get("postcode")),
        country_code=country,
        phone=normalise_phone(text(node.get("phone")), country or default_region),
    )


def customer_from_rest(payload: Payload, *, default_region: str | None = None) -> Customer:
    """A WooCommerce customer (REST v3 / webhook body) as a canonical Customer.

    Raises MappingError when the payload has no id or no GMT dates, or a value is unreadable.
    """
    with readable("WooCommerce", "customer", payload):
        billing = _address(payload.get("billing"), default_region)
        shipping = _address(payload.get("shipping"), default_region)
        region = next(
            (a.country_code for a in (billing, shipping) if a and a.country_code), default_region
        )
        raw_billing = payload.get("billing") or {}
        return Customer(
            source=SOURCE,
            source_id=numeric_id(payload, "WooCommerce", "customer"),
            email=text(payload.get("email")) or text(raw_billing.get("email")),
            first_name=text(payload.get("first_name")) or (billing and billing.first_name),
            last_name=text(payload.get("last_name")) or (billing and billing.last_name),
            phone=normalise_phone(text(raw_billing.get("phone")), region),
            default_address=billing or shipping,
            addresses=tuple(a for a in (billing, shipping) if a is not None),
            created_at=_required_gmt(payload, "date_created_gmt", "customer"),
            # A customer never modified since creation has a null date_modified.
            updated_at=_gmt(payload, "date_modified_gmt")
            or _required_gmt(payload, "date_created_gmt", "customer"),
            missing=_NOT_CARRIED,
        )


def _line_item(item: Payload, currency: str) -> LineItem:
    quantity = int(item.get("quantity") or 0)
    total = _money(item.get("total"), currency)
    # ``price`` is the unit price after line discounts; fall back to total / quantity.
    if item.get("price") not in (None, ""):
        unit = _money(item.get("price"), currency)
    else:
        unit = money(total.amount / quantity if quantity else Decimal(0), currency)
    variation = item.get("variation_id")
    return LineItem(
        source_id=numeric_id(item, "WooCommerce", "line item"),
        title=text(item.get("name")),
        sku=text(item.get("sku")),
        quantity=quantity,
        unit_price=unit,
        total=total,
        product_id=text(item.get("product_id")) if item.get("product_id") else None,
        variant_id=str(variation) if variation else None,
    )


def order_from_rest(payload: Payload, *, default_region: str | None = None) -> Order:
    """A WooCommerce order (REST v3 / webhook body) as a canonical Order.

    Totals are in the order's ``currency``; refunds (negative ``total`` strings in
    ``refunds[]``) are summed into ``refunded``. Raises MappingError for a payload without an
    id, a currency or GMT dates, or with an unreadable value.
    """
    with readable("WooCommerce", "order", payload):
        currency = text(payload.get("currency"))
        if currency is None:
            raise MappingError(f"WooCommerce order {payload.get('id', '?')} has no currency")
        billing = _address(payload.get("billing"), default_region)
        shipping = _address(payload.get("shipping"), default_region)
        raw_billing = payload.get("billing") or {}
        status = text(payload.get("status")) or ""
        financial, fulfilment = _STATUS.get(
            status, (FinancialStatus.unknown, FulfillmentStatus.unknown)
        )
        lines = tuple(_line_item(i, currency) for i in payload.get("line_items") or ())
        subtotal = sum(
            (_amount(i.get("subtotal")) for i in payload.get("line_items") or ()), Decimal(0)
        )
        refunded = sum(
            (abs(_amount(r.get("total"))) for r in payload.get("refunds") or ()), Decimal(0)
        )
        total = _money(payload.get("total"), currency)
        if refunded and financial == FinancialStatus.paid:
            financial = FinancialStatus.partially_refunded
        customer_id = payload.get("customer_id")
        modified = _gmt(payload, "date_modified_gmt") or _required_gmt(
            payload, "date_created_gmt", "order"
        )
        region = next(
            (a.country_code for a in (billing, shipping) if a and a.country_code), default_region
        )
        return Order(
            source=SOURCE,
            source_id=numeric_id(payload, "WooCommerce", "order"),
            name=f"#{text(payload.get('number')) or payload.get('id')}",
            email=text(raw_billing.get("email")),
            phone=normalise_phone(text(raw_billing.get("phone")), region),
            # 0 is WooCommerce's guest [WC-DOCS _orders.md "customer_id"].
            customer_source_id=str(customer_id) if customer_id and int(customer_id) else None,
            financial_status=financial,
            fulfillment_status=fulfilment,
            currency=currency,
            total=total,
            subtotal=money(subtotal, currency),
            tax=_money(payload.get("total_tax"), currency),
            discounts=_money(payload.get("discount_total"), currency),
            shipping=_money(payload.get("shipping_total"), currency),
            refunded=money(refunded, currency),
            current_total=money(total.amount - refunded, currency),
            created_at=_required_gmt(payload, "date_created_gmt", "order"),
            updated_at=modified,
            processed_at=_gmt(payload, "date_paid_gmt"),
            # No cancellation timestamp exists; the last modification is when it happened.
            cancelled_at=modified if status == "cancelled" else None,
            closed_at=_gmt(payload, "date_completed_gmt"),
            billing_address=billing,
            shipping_address=shipping,
            line_items=lines,
            note=text(payload.get("customer_note")),
        )


# --------------------------------------------------------------------------- write-back
# Canonical patches (mapping.writeback) -> the body of a customer update (``PUT
# /customers/{id}`` or one item of ``POST /customers/batch`` ``update``) [WC-DOCS
# _customers.md "Customer properties"], for connectors.woocommerce.
#
# What a CRM change updates, following WooCommerce's own split between the account and its
# addresses (the "Account details" and "Addresses" screens of My Account edit them apart):
# - a name is the person's: the customer's top-level ``first_name``/``last_name``; the billing
#   and shipping names belong to those addresses and are left alone;
# - the phone is ``billing.phone``, the customer's only phone field [WC-DOCS billing
#   properties] and the one customer_from_rest reads;
# - the default address is the block customer_from_rest reads it from: billing, or shipping
#   when billing is blank. WooCommerce stores blanks as "", not null.

_ADDRESS_KEYS = {
    "default_address.line1": "address_1",
    "default_address.line2": "address_2",
    "default_address.city": "city",
    "default_address.postal_code": "postcode",
    "default_address.country_code": "country",
}


def address_block(current: Payload) -> str:
    """``"billing"`` or ``"shipping"``: where :func:`customer_from_rest` reads the customer's
    default address from (billing unless it is blank and shipping is not)."""
    billing = _address(current.get("billing"), None)
    shipping = _address(current.get("shipping"), None)
    return "shipping" if billing is None and shipping is not None else "billing"


def customer_update(patch: Payload, current: Payload) -> dict[str, Any]:
    """The update body (``id`` left to the caller) for a canonical patch of names, phone and
    default address; ``current`` is the customer as WooCommerce has it now (it decides which
    address block holds the default address). None clears (written as "")."""
    body: dict[str, Any] = {}
    for path in ("first_name", "last_name"):
        if path in patch:
            body[path] = patch[path] or ""
    blocks: dict[str, dict[str, str]] = {}
    if "phone" in patch:
        blocks.setdefault("billing", {})["phone"] = patch["phone"] or ""
    block = address_block(current)
    for path, key in _ADDRESS_KEYS.items():
        if path in patch:
            blocks.setdefault(block, {})[key] = patch[path] or ""
    body.update(blocks)
    return body
