"""BigCommerce payloads -> canonical records: v3 customers, v2 orders (with the rows of their
``/products`` sub-resource under ``line_items``, added by the connector).

Facts (``../shared/reference/api-storefronts.md`` §3.3-3.4, sources BC-ORD, BC-CUST):
- v2 dates are RFC-2822 strings (``Wed, 10 Jan 2018 21:05:30 +0000``), v3 ones ISO-8601;
- money is a string with four decimals ("361.9500"), quantised here to the currency;
- an order states its amounts in its *transactional* currency, ``default_currency_code`` in
  the v2 order schema (``currency_code`` is the display currency, ``store_default_currency_code``
  the store's); where a store has one currency the three agree. Which field the amounts follow
  is UNCONFIRMED beyond the reference's reading of the schema; the transactional one is used
  and the others are only fallbacks;
- guests have ``customer_id`` 0; there are no tags and no marketing consent on customers
  (``is_email_opt_in`` is a fact of one order, not the person's consent).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
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
from mapping.normalise import money, normalise_country, normalise_phone, to_utc
from mapping.payload import numeric_id, readable, text

SOURCE = "bigcommerce"
Payload = Mapping[str, Any]

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

# status_id -> (financial, fulfilment) [BC-ORD "Order status ids"].
_STATUS: dict[int, tuple[FinancialStatus, FulfillmentStatus]] = {
    0: (FinancialStatus.pending, FulfillmentStatus.unfulfilled),  # Incomplete
    1: (FinancialStatus.pending, FulfillmentStatus.unfulfilled),  # Pending
    2: (FinancialStatus.paid, FulfillmentStatus.fulfilled),  # Shipped
    3: (FinancialStatus.paid, FulfillmentStatus.partially_fulfilled),  # Partially Shipped
    4: (FinancialStatus.refunded, FulfillmentStatus.unknown),  # Refunded
    5: (FinancialStatus.voided, FulfillmentStatus.unfulfilled),  # Cancelled
    6: (FinancialStatus.voided, FulfillmentStatus.unfulfilled),  # Declined
    7: (FinancialStatus.pending, FulfillmentStatus.unfulfilled),  # Awaiting Payment
    8: (FinancialStatus.paid, FulfillmentStatus.unfulfilled),  # Awaiting Pickup
    9: (FinancialStatus.paid, FulfillmentStatus.unfulfilled),  # Awaiting Shipment
    10: (FinancialStatus.paid, FulfillmentStatus.fulfilled),  # Completed
    11: (FinancialStatus.paid, FulfillmentStatus.unfulfilled),  # Awaiting Fulfillment
    12: (FinancialStatus.pending, FulfillmentStatus.on_hold),  # Manual Verification Required
    13: (FinancialStatus.paid, FulfillmentStatus.on_hold),  # Disputed
    14: (FinancialStatus.partially_refunded, FulfillmentStatus.unknown),  # Partially Refunded
}


def _rfc2822(value: Any) -> datetime | None:
    stamp = text(value)
    if stamp is None:
        return None
    parsed = parsedate_to_datetime(stamp)
    if parsed.tzinfo is None:
        raise ValueError(f"date without a zone: {stamp!r}")
    return parsed.astimezone(UTC)


def _amount(value: Any) -> Decimal:
    if value is None or value == "":
        return Decimal(0)
    if isinstance(value, bool | float):
        raise TypeError(f"amounts are decimal strings, not {type(value).__name__}")
    return Decimal(str(value).strip())


def _money(value: Any, currency: str) -> Money:
    return money(_amount(value), currency)


def _address(node: Any, default_region: str | None, keys: Mapping[str, str]) -> Address | None:
    if not isinstance(node, Mapping) or not any(text(node.get(k)) for k in keys.values()):
        return None
    country = normalise_country(text(node.get(keys["country_code"]))) or normalise_country(
        text(node.get("country"))
    )
    return Address(
        first_name=text(node.get("first_name")),
        last_name=text(node.get("last_name")),
        company=text(node.get("company")),
        line1=text(node.get(keys["line1"])),
        line2=text(node.get(keys["line2"])),
        city=text(node.get("city")),
        province=text(node.get(keys["province"])),
        postal_code=text(node.get(keys["postal_code"])),
        country_code=country,
        phone=normalise_phone(text(node.get("phone")), country or default_region),
    )


# v3 customer address / v2 order billing_address field names [BC-CUST; BC-ORD]
_V3_ADDRESS = {
    "line1": "address1",
    "line2": "address2",
    "province": "state_or_province",
    "postal_code": "postal_code",
    "country_code": "country_code",
}
_V2_ADDRESS = {
    "line1": "street_1",
    "line2": "street_2",
    "province": "state",
    "postal_code": "zip",
    "country_code": "country_iso2",
}


def customer_from_v3(payload: Payload, *, default_region: str | None = None) -> Customer:
    """A v3 customer (``include=addresses``) as a canonical Customer.

    Raises MappingError for a payload without an id or dates, or with an unreadable value.
    """
    with readable("BigCommerce", "customer", payload):
        addresses = tuple(
            a
            for a in (
                _address(n, default_region, _V3_ADDRESS) for n in payload.get("addresses") or ()
            )
            if a is not None
        )
        region = next((a.country_code for a in addresses if a.country_code), default_region)
        created = to_utc(text(payload.get("date_created")))
        if created is None:
            raise MappingError(f"BigCommerce customer {payload.get('id', '?')} has no date_created")
        return Customer(
            source=SOURCE,
            source_id=numeric_id(payload, "BigCommerce", "customer"),
            email=text(payload.get("email")),
            first_name=text(payload.get("first_name")),
            last_name=text(payload.get("last_name")),
            phone=normalise_phone(text(payload.get("phone")), region),
            note=text(payload.get("notes")),
            default_address=addresses[0] if addresses else None,
            addresses=addresses,
            created_at=created,
            updated_at=to_utc(text(payload.get("date_modified"))) or created,
            missing=_NOT_CARRIED,
        )


def _line_item(row: Payload, currency: str) -> LineItem:
    quantity = int(row.get("quantity") or 0)
    return LineItem(
        source_id=numeric_id(row, "BigCommerce", "line item"),
        title=text(row.get("name")),
        sku=text(row.get("sku")),
        quantity=quantity,
        # Tax-inclusive, as the order's total_inc_tax is the order's total.
        unit_price=_money(row.get("price_inc_tax"), currency),
        total=_money(row.get("total_inc_tax"), currency),
        product_id=text(row.get("product_id")) if row.get("product_id") else None,
        variant_id=text(row.get("variant_id")) if row.get("variant_id") else None,
    )


def order_from_v2(payload: Payload, *, default_region: str | None = None) -> Order:
    """A v2 order with its ``line_items`` (the products sub-resource) as a canonical Order.

    Raises MappingError when the line items were not fetched (an order never silently loses
    its lines), or for a payload without an id, a currency or dates.
    """
    with readable("BigCommerce", "order", payload):
        if not isinstance(payload.get("line_items"), list):
            raise MappingError(
                f"BigCommerce order {payload.get('id', '?')} came without its line items"
            )
        currency = (
            text(payload.get("default_currency_code"))
            or text(payload.get("currency_code"))
            or text(payload.get("store_default_currency_code"))
        )
        if currency is None:
            raise MappingError(f"BigCommerce order {payload.get('id', '?')} has no currency")
        raw_billing = payload.get("billing_address") or {}
        billing = _address(raw_billing, default_region, _V2_ADDRESS)
        created = _rfc2822(payload.get("date_created"))
        if created is None:
            raise MappingError(f"BigCommerce order {payload.get('id', '?')} has no date_created")
        status_id = int(payload.get("status_id") or 0)
        financial, fulfilment = _STATUS.get(
            status_id, (FinancialStatus.unknown, FulfillmentStatus.unknown)
        )
        total = _money(payload.get("total_inc_tax"), currency)
        refunded = _money(payload.get("refunded_amount"), currency)
        customer_id = payload.get("customer_id")
        region = billing.country_code if billing and billing.country_code else default_region
        return Order(
            source=SOURCE,
            source_id=numeric_id(payload, "BigCommerce", "order"),
            name=f"#{payload.get('id')}",
            email=text(raw_billing.get("email")),
            phone=normalise_phone(text(raw_billing.get("phone")), region),
            customer_source_id=str(customer_id) if customer_id and int(customer_id) else None,
            financial_status=financial,
            fulfillment_status=fulfilment,
            currency=currency,
            total=total,
            subtotal=_money(payload.get("subtotal_ex_tax"), currency),
            tax=_money(payload.get("total_tax"), currency),
            discounts=_money(payload.get("discount_amount"), currency),
            shipping=_money(payload.get("shipping_cost_inc_tax"), currency),
            refunded=refunded,
            current_total=money(total.amount - refunded.amount, currency),
            created_at=created,
            updated_at=_rfc2822(payload.get("date_modified")) or created,
            cancelled_at=_rfc2822(payload.get("date_modified")) if status_id == 5 else None,
            billing_address=billing,
            line_items=tuple(_line_item(r, currency) for r in payload["line_items"]),
            note=text(payload.get("customer_message")),
        )


# --------------------------------------------------------------------------- write-back
# Canonical patches (mapping.writeback) -> v3 write bodies, for connectors.bigcommerce: one
# item of ``PUT /v3/customers`` and one of ``PUT /v3/customers/addresses`` (both partial: only
# ``id`` is required) [BC-CUST customer_Put, address_Put]. None clears (written as "", which
# BigCommerce refuses for names: their minLength is 1).

_CUSTOMER_KEYS = {"first_name": "first_name", "last_name": "last_name", "phone": "phone",
                  "note": "notes"}  # fmt: skip
_ADDRESS_KEYS = {
    "default_address.line1": "address1",
    "default_address.line2": "address2",
    "default_address.city": "city",
    "default_address.postal_code": "postal_code",
    "default_address.country_code": "country_code",
}


def customer_update(patch: Payload) -> dict[str, Any]:
    """The customer fields (``id`` left to the caller) for the names, phone and note of a
    canonical patch; other paths are ignored."""
    return {key: patch[path] or "" for path, key in _CUSTOMER_KEYS.items() if path in patch}


def address_update(patch: Payload) -> dict[str, Any]:
    """The address fields (``id`` left to the caller) for the default-address paths of a
    canonical patch. The default address is the customer's first one, as
    :func:`customer_from_v3` reads it."""
    return {key: patch[path] or "" for path, key in _ADDRESS_KEYS.items() if path in patch}
