"""Contact changes written back to a store's customer: the canonical patch vocabulary, its
validation, and which entries of a patch would change the customer as the store has it now.

A patch maps canonical attribute paths (the dotted paths of :class:`mapping.models.Customer`)
to canonical values; ``None`` clears the field. Each store connector declares the paths it can
write (``writable_fields``) and builds the platform payload with its own mapping module
(``mapping.shopify``, ``mapping.woocommerce``, ``mapping.bigcommerce``). Pure: no I/O, no
clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from mapping.models import ConsentState, Customer

Patch = Mapping[str, Any]

# Plain text: written as given (trimmed); blank is the same as None, as every parser reads it.
TEXT_PATHS = frozenset(
    {
        "first_name",
        "last_name",
        "note",
        "default_address.line1",
        "default_address.line2",
        "default_address.city",
        "default_address.postal_code",
    }
)
ADDRESS_PATHS = frozenset(
    {
        "default_address.line1",
        "default_address.line2",
        "default_address.city",
        "default_address.postal_code",
        "default_address.country_code",
    }
)
PATHS = TEXT_PATHS | ADDRESS_PATHS | {"phone", "tags", "consent.email"}
# The email consent states a CRM can ask for; redacted, invalid and unknown are facts a store
# records, never something written to it.
WRITABLE_CONSENT = frozenset(
    {
        ConsentState.subscribed,
        ConsentState.not_subscribed,
        ConsentState.unsubscribed,
        ConsentState.pending,
    }
)

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_ALPHA2 = re.compile(r"[A-Z]{2}")


def sorted_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags trimmed, without blanks or repeats, in the order ``mapping.shopify`` reads them."""
    unique = {tag.strip() for tag in tags if tag.strip()}
    return tuple(sorted(unique, key=lambda tag: (tag.casefold(), tag)))


def _text(value: Any, path: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{path} must be text or None, not {type(value).__name__}")
    return value.strip() or None


def _value(path: str, value: Any) -> Any:
    """``value`` in its canonical form for ``path``. Raises ValueError if it is not one."""
    if path in TEXT_PATHS:
        return _text(value, path)
    if value is None:
        return None
    if path == "phone":
        if not isinstance(value, str) or not _E164.fullmatch(value):
            raise ValueError(f"phone must be E.164 (normalise it first): {value!r}")
        return value
    if path == "default_address.country_code":
        if not isinstance(value, str) or not _ALPHA2.fullmatch(value):
            raise ValueError(f"country_code must be ISO 3166-1 alpha-2: {value!r}")
        return value
    if path == "tags":
        if isinstance(value, str) or not all(isinstance(t, str) for t in value):
            raise ValueError("tags must be a sequence of strings (the whole list)")
        return sorted_tags(value)
    if path == "consent.email":
        try:
            state = ConsentState(value)
        except ValueError:
            state = None
        if state not in WRITABLE_CONSENT:
            allowed = sorted(s.value for s in WRITABLE_CONSENT)
            raise ValueError(f"consent.email must be one of {allowed} or None: {value!r}")
        return state
    raise ValueError(f"{path!r} is not a path of the patch vocabulary")


def check_patch(patch: Patch, writable: frozenset[str]) -> dict[str, Any]:
    """``patch`` with its values in canonical form (text trimmed, blank as None, tags sorted
    and unique, consent as a ConsentState).

    Raises ValueError for a path outside ``writable`` (a programming error: the engine must
    only send what the store can write) or a value that is not canonical.
    """
    unknown = sorted(set(patch) - writable)
    if unknown:
        raise ValueError(f"not writable here: {', '.join(unknown)}; writable: {sorted(writable)}")
    return {path: _value(path, value) for path, value in patch.items()}


def current_value(customer: Customer, path: str) -> Any:
    """What ``customer`` holds at ``path`` (None for an address field without an address)."""
    if path.startswith("default_address."):
        address = customer.default_address
        return getattr(address, path.split(".", 1)[1]) if address is not None else None
    if path == "consent.email":
        return customer.consent.email
    return getattr(customer, path)


def _same(path: str, wanted: Any, current: Any) -> bool:
    if path == "tags":
        return sorted_tags(current or ()) == tuple(wanted or ())
    if path == "consent.email" and wanted is None:
        # Clearing consent means "not marketed to": a customer who never subscribed or has
        # opted out is already there.
        return current in (ConsentState.not_subscribed, ConsentState.unsubscribed)
    return wanted == current


def changes(customer: Customer, patch: Patch) -> dict[str, Any]:
    """The entries of ``patch`` (canonical, see :func:`check_patch`) that differ from what
    ``customer`` holds. A path the record did not carry (``Customer.missing``) counts as
    different: its current value is unknown."""
    return {
        path: value
        for path, value in patch.items()
        if path in customer.missing or not _same(path, value, current_value(customer, path))
    }
