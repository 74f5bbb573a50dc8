"""Normalisers: one canonical spelling for emails, phones, countries, times and money.

Each is pure and idempotent (``f(f(x)) == f(x)``), so a value can be normalised again on any path
without changing it, and the same person read twice always compares equal.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import TYPE_CHECKING

import phonenumbers
import pycountry

from mapping.currency import exponent as currency_exponent

if TYPE_CHECKING:
    from mapping.models import Money

# Common English names that pycountry does not list under any of its name attributes, as store
# admins and Shopify's own `country` field spell them. Keys are casefolded.
_COUNTRY_ALIASES: dict[str, str] = {
    "russia": "RU",
    "turkey": "TR",
    "uk": "GB",
    "great britain": "GB",
    "ivory coast": "CI",
    "macedonia": "MK",
    "south korea": "KR",
    "north korea": "KP",
    "kosovo": "XK",
}

# Kosovo is not in ISO 3166-1 but Shopify's CountryCode enum uses the user-assigned XK for it:
# https://shopify.dev/docs/api/admin-graphql/latest/enums/CountryCode
_EXTRA_ALPHA2 = frozenset({"XK"})

_ALPHA2 = re.compile(r"[A-Za-z]{2}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def normalise_email(value: str | None) -> str | None:
    """Strip and lower-case an email address; empty or None gives None.

    No deliverability or DNS check is made: stores accept what they accept, and the CRM is told
    the same address. Lower-casing the local part is lossy in theory (RFC 5321 lets it be
    case-sensitive) but no store or CRM treats it so, and it lets one person match everywhere.
    """
    if value is None:
        return None
    text = value.strip().lower()
    return text or None


def normalise_phone(value: str | None, default_region: str | None) -> str | None:
    """The number in E.164 (``+14155550123``), or None if it is empty, unparseable or invalid.

    ``default_region`` (ISO 3166-1 alpha-2, e.g. the address country or the store's country)
    is used to read numbers written without a country code. A number that is not both possible
    and valid for its region gives None: it must not be sent to a CRM, and must not crash.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    region = default_region.strip().upper() if default_region else None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not (phonenumbers.is_possible_number(number) and phonenumbers.is_valid_number(number)):
        return None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    # libphonenumber's metadata accepts some numbers longer than E.164's 15 digits (German
    # fixed lines, for one); a CRM that validates E.164 would refuse them.
    return formatted if _E164.fullmatch(formatted) else None


def normalise_country(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 (upper case) from an alpha-2 or alpha-3 code or an English name.

    Unknown or empty input gives None.
    """
    if value is None:
        return None
    # Shopify writes "Côte d\u2019Ivoire" with a typographic apostrophe, pycountry a plain one.
    text = " ".join(value.split()).replace("\u2019", "'")
    if not text:
        return None
    if _ALPHA2.fullmatch(text) and text.upper() in _EXTRA_ALPHA2:
        return text.upper()
    alias = _COUNTRY_ALIASES.get(text.casefold())
    if alias is not None:
        return alias
    try:
        country = pycountry.countries.lookup(text)
    except LookupError:
        return None
    return country.alpha_2


def to_utc(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from an ISO-8601 string (``Z`` or an offset) or an aware datetime.

    Raises:
        ValueError: the string is not ISO-8601, or the value carries no timezone (we never
            guess one).
        TypeError: the value is neither a string nor a datetime.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError as exc:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from exc
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise TypeError(f"expected an ISO-8601 string or datetime, got {type(value).__name__}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(f"timestamp without a timezone: {value!r}")
    return parsed.astimezone(UTC)


def to_decimal(amount: str | int | Decimal) -> Decimal:
    """A finite Decimal from a decimal string, an int or a Decimal.

    Raises:
        TypeError: ``amount`` is a float (binary floats cannot hold money exactly), a bool, or
            another type.
        ValueError: the string is not a decimal number, or the value is NaN or infinite.
    """
    if isinstance(amount, bool | float):
        raise TypeError(f"money must not be a {type(amount).__name__}: {amount!r}")
    if isinstance(amount, Decimal):
        result = amount
    elif isinstance(amount, int):
        result = Decimal(amount)
    elif isinstance(amount, str):
        try:
            result = Decimal(amount.strip())
        except InvalidOperation as exc:
            raise ValueError(f"not a decimal amount: {amount!r}") from exc
    else:
        raise TypeError(f"money must be a decimal string, int or Decimal, not {type(amount)}")
    if not result.is_finite():
        raise ValueError(f"amount must be finite: {amount!r}")
    return result


def quantise(amount: Decimal, code: str) -> Decimal:
    """``amount`` rounded half-to-even to the minor unit of currency ``code``.

    Raises:
        ValueError: unknown currency code, or an amount too large to quantise.
    """
    step = Decimal(1).scaleb(-currency_exponent(code))
    try:
        return amount.quantize(step, rounding=ROUND_HALF_EVEN)
    except InvalidOperation as exc:
        raise ValueError(f"amount {amount} is too large for {code}") from exc


def money(amount: str | int | Decimal, currency: str) -> Money:
    """A Money quantised (half-to-even) to the ISO 4217 exponent of ``currency``.

    Raises:
        TypeError: ``amount`` is a float or bool.
        ValueError: the amount is not a finite decimal, or the currency code is unknown.
    """
    # models imports this module for its validators, so the class is looked up at call time.
    from mapping.models import Money

    return Money(amount=to_decimal(amount), currency=currency)
