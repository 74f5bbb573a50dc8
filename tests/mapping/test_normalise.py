"""Normalisers: examples plus hypothesis properties (idempotence, output shape, exactness)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping import CURRENCIES, Money, exponent, money, render
from mapping.normalise import (
    normalise_country,
    normalise_email,
    normalise_phone,
    to_utc,
)

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
REGIONS = [None, "US", "CA", "GB", "DE", "FR", "JP", "KW", "IN", "BR", "AU", "us"]

# ---------------------------------------------------------------------------------- email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Bob.Norman@Mail.Example.COM ", "bob.norman@mail.example.com"),
        ("zoë@例え.jp", "zoë@例え.jp"),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalise_email(raw: str | None, expected: str | None) -> None:
    assert normalise_email(raw) == expected


@given(st.one_of(st.none(), st.text()))
def test_normalise_email_is_idempotent(value: str | None) -> None:
    once = normalise_email(value)
    assert normalise_email(once) == once
    assert once is None or (once == once.strip() and once != "")


# ---------------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(613) 555-0123", "CA", "+16135550123"),
        ("+1 613-555-0199", None, "+16135550199"),
        ("+1 613-555-0199", "JP", "+16135550199"),  # an explicit country code wins
        ("03-1234-5678", "JP", "+81312345678"),
        ("030 901820", "DE", "+4930901820"),
        ("2222 3333", "KW", "+96522223333"),
        ("2222 3333", "kw", "+96522223333"),
        ("613-555-0123", None, None),  # national format with no region to read it in
        ("12345", "US", None),  # not a valid number
        ("555-1212", "CA", None),  # too short
        ("+999 1234", None, None),  # no such country code
        ("call me maybe", "US", None),
        ("", "US", None),
        (None, "US", None),
        ("613-555-0123", "XX", None),  # unknown region: unparseable, not a crash
    ],
)
def test_normalise_phone(raw: str | None, region: str | None, expected: str | None) -> None:
    assert normalise_phone(raw, region) == expected


phone_like = st.one_of(
    st.text(alphabet="0123456789 +-().", max_size=25),
    st.from_regex(r"\+?[1-9][0-9 \-]{6,16}", fullmatch=True),
    st.sampled_from(["+16135550123", "03-1234-5678", "030 901820", "2222 3333", "07911 123456"]),
    st.text(max_size=20),
)


@settings(deadline=None, max_examples=300)
@given(phone_like, st.sampled_from(REGIONS))
def test_normalise_phone_is_e164_or_none_and_idempotent(value: str, region: str | None) -> None:
    once = normalise_phone(value, region)
    assert once is None or E164.match(once)
    assert normalise_phone(once, region) == once
    # E.164 carries its country, so reading it in any region gives the same number.
    assert once is None or normalise_phone(once, None) == once


# ---------------------------------------------------------------------------------- country


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("US", "US"),
        ("us", "US"),
        ("USA", "US"),
        ("jpn", "JP"),
        ("Japan", "JP"),
        ("United States", "US"),
        ("  united   kingdom ", "GB"),
        ("Germany", "DE"),
        ("Côte d\u2019Ivoire", "CI"),
        ("Russia", "RU"),
        ("Turkey", "TR"),
        ("Kosovo", "XK"),
        ("XK", "XK"),
        ("Atlantis", None),
        ("ZZ", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_country(raw: str | None, expected: str | None) -> None:
    assert normalise_country(raw) == expected


country_like = st.one_of(
    st.sampled_from([c.alpha_2 for c in pycountry.countries]),
    st.sampled_from([c.alpha_3.lower() for c in pycountry.countries]),
    st.sampled_from([c.name for c in pycountry.countries]),
    st.text(max_size=12),
)


@given(country_like)
def test_normalise_country_is_alpha2_or_none_and_idempotent(value: str) -> None:
    once = normalise_country(value)
    assert once is None or re.fullmatch(r"[A-Z]{2}", once)
    assert normalise_country(once) == once


# ---------------------------------------------------------------------------------- time


def test_to_utc_reads_z_and_offsets() -> None:
    assert to_utc("2024-03-01T10:00:00Z") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert to_utc("2024-03-01T05:00:00-05:00") == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert to_utc("2024-03-01T05:00:00-05:00").tzinfo is UTC
    assert to_utc(None) is None


@pytest.mark.parametrize("naive", ["2024-03-01T10:00:00", "2024-03-01", datetime(2024, 3, 1)])
def test_to_utc_refuses_to_guess_a_timezone(naive: str | datetime) -> None:
    with pytest.raises(ValueError, match="timezone"):
        to_utc(naive)


def test_to_utc_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="ISO-8601"):
        to_utc("yesterday")
    with pytest.raises(TypeError):
        to_utc(1709287200)  # type: ignore[arg-type]


# Whole minutes, as every real UTC offset is: sub-second offsets do not survive an ISO-8601
# round trip in Python's own parser, and no platform sends them.
offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
aware = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(2200, 12, 30), timezones=offsets
)


@given(aware)
def test_to_utc_always_gives_aware_utc(value: datetime) -> None:
    for given_value in (value, value.isoformat()):
        result = to_utc(given_value)
        assert result is not None
        assert result.tzinfo is UTC
        assert result == value
        assert to_utc(result) == result


# ---------------------------------------------------------------------------------- money


def test_money_quantises_to_the_currency_exponent() -> None:
    assert money("1500.0", "JPY").amount == Decimal("1500")
    assert str(money("1500.0", "JPY").amount) == "1500"
    assert str(money("12.3", "KWD").amount) == "12.300"
    assert str(money(7, "USD").amount) == "7.00"
    assert str(money("0.12345", "CLF").amount) == "0.1234"  # half-even: 4 is even
    assert str(money("0.125", "USD").amount) == "0.12"
    assert str(money("0.135", "USD").amount) == "0.14"
    assert money(Decimal("10"), "usd") == Money(amount=Decimal("10.00"), currency="USD")


@pytest.mark.parametrize("bad", [1.5, 0.1, True])
def test_money_rejects_floats_and_bools(bad: object) -> None:
    with pytest.raises(TypeError):
        money(bad, "USD")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", ""])
def test_money_rejects_non_numbers(bad: str) -> None:
    with pytest.raises(ValueError, match=r"decimal|finite"):
        money(bad, "USD")


@pytest.mark.parametrize("code", ["ABC", "US", "usdx", "XAU", "XXX"])
def test_money_rejects_unknown_currencies(code: str) -> None:
    with pytest.raises(ValueError, match="currency code"):
        money("1", code)


amounts = st.decimals(
    min_value=Decimal("-1000000000000"),
    max_value=Decimal("1000000000000"),
    allow_nan=False,
    allow_infinity=False,
    places=6,
)


@given(amounts, st.sampled_from(CURRENCIES))
def test_money_is_exact_and_survives_the_crm_string(amount: Decimal, code: str) -> None:
    value = money(amount, code)
    assert value.amount.as_tuple().exponent == -exponent(code)
    assert abs(value.amount - amount) <= Decimal(1).scaleb(-exponent(code)) / 2
    text = render(value.amount)
    assert re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", text)
    assert Decimal(text) == value.amount
    assert money(text, code) == value
    assert money(str(amount), code) == value
