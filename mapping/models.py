"""Canonical records: what a customer or an order *is*, whichever store or API it came from.

Every model is frozen (hashable, safe to share between threads and to compare) and rejects
unknown fields. Validators keep the invariants the rest of Tandem relies on: money is a Decimal
quantised to its currency, times are aware UTC, emails are normalised, phones are E.164.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator, model_validator

from mapping.currency import exponent as currency_exponent
from mapping.normalise import normalise_email, quantise, to_decimal, to_utc


class MappingError(ValueError):
    """A store payload lacks something a canonical record cannot do without (id, currency...)."""


_FROZEN = ConfigDict(frozen=True, extra="forbid")

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_ALPHA2 = re.compile(r"[A-Z]{2}")


def _utc(value: datetime) -> datetime:
    result = to_utc(value)
    if result is None:
        raise ValueError("a timestamp is required")
    return result


def _utc_or_none(value: datetime | None) -> datetime | None:
    return to_utc(value)


def _e164(value: str | None) -> str | None:
    if value is not None and not _E164.fullmatch(value):
        raise ValueError(f"phone must be E.164 (normalise it first): {value!r}")
    return value


def _currency_code(value: str) -> str:
    code = value.strip().upper()
    currency_exponent(code)  # raises ValueError for an unknown code
    return code


def _alpha2(value: str | None) -> str | None:
    if value is not None and not _ALPHA2.fullmatch(value):
        raise ValueError(f"country must be ISO 3166-1 alpha-2 (normalise it first): {value!r}")
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_utc)]
OptionalUtcDatetime = Annotated[datetime | None, AfterValidator(_utc_or_none)]
Email = Annotated[str | None, AfterValidator(normalise_email)]
E164Phone = Annotated[str | None, AfterValidator(_e164)]
CountryCode = Annotated[str | None, AfterValidator(_alpha2)]
CurrencyCode = Annotated[str, AfterValidator(_currency_code)]


class Money(BaseModel):
    """An exact amount in one currency, quantised to the currency's ISO 4217 minor unit."""

    model_config = _FROZEN

    amount: Decimal
    currency: str

    @model_validator(mode="before")
    @classmethod
    def _quantise(cls, data: Any) -> Any:
        # Quantising needs both fields at once, before the frozen instance exists.
        if not isinstance(data, dict) or "amount" not in data or "currency" not in data:
            return data
        code = data["currency"]
        if not isinstance(code, str):
            raise ValueError(f"currency must be a string, got {type(code).__name__}")
        code = code.strip().upper()
        try:
            amount = to_decimal(data["amount"])
        except TypeError as exc:
            # pydantic reports ValueErrors as validation errors; a float is one here.
            raise ValueError(str(exc)) from exc
        return {**data, "amount": quantise(amount, code), "currency": code}


class Address(BaseModel):
    """A postal address. ``country_code`` is alpha-2, ``phone`` E.164 (or None if invalid)."""

    model_config = _FROZEN

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    postal_code: str | None = None
    country_code: CountryCode = None
    phone: E164Phone = None


class ConsentState(StrEnum):
    """Marketing consent for one channel (Shopify's states; ``unknown`` when not given)."""

    subscribed = "subscribed"
    not_subscribed = "not_subscribed"
    pending = "pending"
    unsubscribed = "unsubscribed"
    redacted = "redacted"
    invalid = "invalid"
    unknown = "unknown"


class MarketingConsent(BaseModel):
    model_config = _FROZEN

    email: ConsentState = ConsentState.unknown
    email_opt_in_level: str | None = None
    email_updated_at: OptionalUtcDatetime = None
    sms: ConsentState = ConsentState.unknown
    sms_updated_at: OptionalUtcDatetime = None


class Customer(BaseModel):
    """A store customer.

    ``source_id`` is the store's numeric id as a string, the same whether it was read from a
    GraphQL GID or a REST id. ``missing`` lists the canonical fields (dotted paths such as
    ``"tags"`` or ``"consent.email"``) that the source payload did not carry at all, as opposed
    to carrying them empty: Shopify webhooks from API 2025-01 on omit tags and marketing consent
    (https://shopify.dev/changelog/new-customer-s-webhook-and-changes-to-existing-customer-s-webhooks-payload),
    and a CRM write must leave such fields alone instead of clearing them.
    """

    model_config = _FROZEN

    source: str
    source_id: str
    email: Email = None
    first_name: str | None = None
    last_name: str | None = None
    phone: E164Phone = None
    locale: str | None = None
    note: str | None = None
    state: str | None = None
    tags: tuple[str, ...] = ()
    tax_exempt: bool | None = None
    verified_email: bool | None = None
    default_address: Address | None = None
    addresses: tuple[Address, ...] = ()
    consent: MarketingConsent = MarketingConsent()
    orders_count: int | None = None
    total_spent: Money | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    missing: tuple[str, ...] = ()

    @field_validator("missing")
    @classmethod
    def _sorted_missing(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # Sorted and unique, so equal records dump to identical JSON.
        return tuple(sorted(set(value)))


class FinancialStatus(StrEnum):
    pending = "pending"
    authorized = "authorized"
    partially_paid = "partially_paid"
    paid = "paid"
    partially_refunded = "partially_refunded"
    refunded = "refunded"
    voided = "voided"
    expired = "expired"
    unknown = "unknown"


class FulfillmentStatus(StrEnum):
    unfulfilled = "unfulfilled"
    partially_fulfilled = "partially_fulfilled"
    fulfilled = "fulfilled"
    restocked = "restocked"
    on_hold = "on_hold"
    scheduled = "scheduled"
    in_progress = "in_progress"
    unknown = "unknown"


class LineItem(BaseModel):
    """One order line. ``total`` is after the line's own discounts (see mapping.shopify)."""

    model_config = _FROZEN

    source_id: str
    title: str | None = None
    variant_title: str | None = None
    sku: str | None = None
    quantity: int
    unit_price: Money
    total: Money
    product_id: str | None = None
    variant_id: str | None = None


class Order(BaseModel):
    """A store order, in the shop's currency. ``customer_source_id`` is None for guests."""

    model_config = _FROZEN

    source: str
    source_id: str
    name: str | None = None
    email: Email = None
    phone: E164Phone = None
    customer_source_id: str | None = None
    financial_status: FinancialStatus = FinancialStatus.unknown
    fulfillment_status: FulfillmentStatus = FulfillmentStatus.unknown
    currency: CurrencyCode
    total: Money
    subtotal: Money
    tax: Money
    discounts: Money
    shipping: Money
    refunded: Money
    current_total: Money | None = None
    created_at: UtcDatetime
    updated_at: UtcDatetime
    processed_at: OptionalUtcDatetime = None
    cancelled_at: OptionalUtcDatetime = None
    closed_at: OptionalUtcDatetime = None
    billing_address: Address | None = None
    shipping_address: Address | None = None
    line_items: tuple[LineItem, ...] = ()
    tags: tuple[str, ...] = ()
    note: str | None = None
    test: bool = False

    @property
    def contact_email(self) -> str | None:
        """The address to find or create the buyer's CRM contact by: the order's email.

        Shopify addresses carry no email, so there is nothing to fall back on; a guest order
        without an email has no contact and this is None.
        """
        return self.email
