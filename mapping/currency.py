"""ISO 4217 minor units: how many decimal places an amount in a currency has.

Hardcoding two decimals is a classic bug (a JPY order of 1500 becomes 15.00, a KWD order loses
a digit), so every Money is quantised to its currency's exponent from this table.
"""

from __future__ import annotations

import re

import pycountry

# Currencies whose minor unit is not 2, from ISO 4217 list one ("CcyMnrUnts"), published by the
# maintenance agency SIX:
# https://www.six-group.com/dam/download/financial-information/data-center/iso-currrency/lists/list-one.xml
# Every other ISO 4217 currency has 2.
_EXPONENTS: dict[str, int] = {
    # No minor unit.
    "BIF": 0,
    "CLP": 0,
    "DJF": 0,
    "GNF": 0,
    "ISK": 0,
    "JPY": 0,
    "KMF": 0,
    "KRW": 0,
    "PYG": 0,
    "RWF": 0,
    "UGX": 0,
    "UYI": 0,
    "VND": 0,
    "VUV": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    # Three decimals.
    "BHD": 3,
    "IQD": 3,
    "JOD": 3,
    "KWD": 3,
    "LYD": 3,
    "OMR": 3,
    "TND": 3,
    # Four decimals (Chilean and Uruguayan units of account).
    "CLF": 4,
    "UYW": 4,
}

# ISO 4217 lists these with minor unit "N.A.": precious metals, SDRs, bond-market units and the
# testing/no-currency codes. They are not shop currencies, so an amount in one is an error.
_NO_MINOR_UNIT = frozenset(
    {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}
)

_CODE = re.compile(r"[A-Z]{3}")

# The set of current ISO 4217 codes, from pycountry's copy of the standard.
_KNOWN = frozenset(c.alpha_3 for c in pycountry.currencies) | frozenset(_EXPONENTS)

# Every currency an amount can be expressed in (used by property tests and validation).
CURRENCIES: tuple[str, ...] = tuple(sorted(_KNOWN - _NO_MINOR_UNIT))


def exponent(code: str) -> int:
    """Number of decimal places of an amount in ``code`` (an ISO 4217 alphabetic code).

    Raises:
        ValueError: ``code`` is not three upper-case letters, is not an ISO 4217 currency, or
            is one without a minor unit (metals, funds, XXX/XTS).
    """
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        raise ValueError(f"invalid currency code {code!r}: expected three upper-case letters")
    if code not in _KNOWN:
        raise ValueError(f"unknown currency code {code!r}: not in ISO 4217")
    if code in _NO_MINOR_UNIT:
        raise ValueError(f"currency code {code!r} has no minor unit and cannot hold money")
    return _EXPONENTS.get(code, 2)
