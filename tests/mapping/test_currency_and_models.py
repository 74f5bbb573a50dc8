"""ISO 4217 exponents and the invariants the canonical models enforce."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from mapping import (
    CURRENCIES,
    Address,
    Customer,
    LineItem,
    Money,
    Order,
    exponent,
    money,
)


@pytest.mark.parametrize(
    ("code", "places"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("VND", 0),
        ("CLP", 0),
        ("ISK", 0),
        ("UGX", 0),
        ("XOF", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("OMR", 3),
        ("JOD", 3),
        ("TND", 3),
        ("LYD", 3),
        ("IQD", 3),
        ("CLF", 4),
        ("UYW", 4),
    ],
)
def test_exponent(code: str, places: int) -> None:
    assert exponent(code) == places


@pytest.mark.parametrize("code", ["usd", "US", "USDX", "ABC", "", "XAU", "XXX", "XTS"])
def test_exponent_refuses_what_is_not_a_money_currency(code: str) -> None:
    with pytest.raises(ValueError, match="currency code"):
        exponent(code)


def test_currencies_table_is_consistent() -> None:
    assert "USD" in CURRENCIES
    assert "JPY" in CURRENCIES
    assert "XAU" not in CURRENCIES
    for code in CURRENCIES:
        assert exponent(code) in (0, 2, 3, 4)


# ---------------------------------------------------------------------------------- models

NOW = datetime(2024, 3, 1, 10, tzinfo=UTC)


def _customer(**changes: object) -> Customer:
    fields: dict[str, object] = {
        "source": "shopify",
        "source_id": "1",
        "created_at": NOW,
        "updated_at": NOW,
    }
    fields.update(changes)
    return Customer(**fields)  # type: ignore[arg-type]


def test_models_are_frozen_and_strict() -> None:
    customer = _customer()
    with pytest.raises(ValidationError):
        customer.email = "x@example.com"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="Extra inputs"):
        _customer(favourite_colour="blue")
    assert hash(customer) == hash(_customer())


def test_money_model_quantises_and_refuses_floats() -> None:
    assert Money(amount="1500.0", currency="JPY").amount == Decimal("1500")  # type: ignore[arg-type]
    assert str(Money(amount=Decimal("1.2345"), currency="KWD").amount) == "1.234"
    with pytest.raises(ValidationError, match="float"):
        Money(amount=1.5, currency="USD")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="currency code"):
        Money(amount=Decimal(1), currency="ZZZ")


def test_datetimes_become_utc_and_naive_ones_are_refused() -> None:
    plus_two = datetime(2024, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    customer = _customer(created_at=plus_two, updated_at="2024-03-01T05:00:00-05:00")
    assert customer.created_at == NOW
    assert customer.created_at.tzinfo is UTC
    assert customer.updated_at == NOW
    with pytest.raises(ValidationError, match="timezone"):
        _customer(created_at=datetime(2024, 3, 1, 10))


def test_customer_email_is_normalised_and_phone_must_be_e164() -> None:
    assert _customer(email=" Bob@Example.COM ").email == "bob@example.com"
    assert _customer(phone="+16135550123").phone == "+16135550123"
    with pytest.raises(ValidationError, match=r"E\.164"):
        _customer(phone="613-555-0123")


def test_address_country_must_be_alpha2() -> None:
    assert Address(country_code="JP").country_code == "JP"
    with pytest.raises(ValidationError, match="alpha-2"):
        Address(country_code="Japan")


def test_missing_is_sorted_and_unique() -> None:
    customer = _customer(missing=("tags", "consent.sms", "tags"))
    assert customer.missing == ("consent.sms", "tags")


def test_order_contact_email_is_the_order_email() -> None:
    usd = money(0, "USD")
    base = {
        "source": "shopify",
        "source_id": "1",
        "currency": "usd",
        "total": usd,
        "subtotal": usd,
        "tax": usd,
        "discounts": usd,
        "shipping": usd,
        "refunded": usd,
        "created_at": NOW,
        "updated_at": NOW,
    }
    order = Order(**base, email="Buyer@Example.com")  # type: ignore[arg-type]
    assert order.currency == "USD"
    assert order.contact_email == "buyer@example.com"
    assert Order(**base).contact_email is None  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="currency code"):
        Order(**{**base, "currency": "DOLLARS"})  # type: ignore[arg-type]


def test_line_item_requires_money() -> None:
    with pytest.raises(ValidationError):
        LineItem(source_id="1", quantity=1, unit_price=None, total=None)  # type: ignore[arg-type]
