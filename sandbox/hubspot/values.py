"""Property values as HubSpot stores them: every value is a string (or null), checked and
normalised according to its property's type.

Error codes and message shapes follow the ``Property values were not valid: [...]`` bodies that
HubSpot documents (https://developers.hubspot.com/changelog/upcoming-property-validations-rules-will-be-enforced-for-apis-and-integrations,
https://developers.hubspot.com/changelog/breaking-change-enhanced-validations-for-non-string-properties-in-hubspots-crmobject-apis)
and the INVALID_EMAIL example in https://community.hubspot.com/t5/APIs-Integrations/contacts-integration-invalid-e-mails/td-p/833439.
Where no primary text gives the exact code (numbers, dates) the simulator's choice is marked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation

from sandbox.hubspot.schema import PropertySpec


@dataclass(frozen=True)
class ValueProblem(Exception):
    """One entry of HubSpot's ``Property values were not valid`` list."""

    name: str
    error: str
    message: str

    def as_entry(self) -> dict[str, object]:
        return {
            "isValid": False,
            "message": self.message,
            "error": self.error,
            "name": self.name,
            "localizedErrorMessage": self.message,
        }


# HubSpot validates the format (RFC 2822, unquoted local part, domain ending in a real TLD):
# https://legacydocs.hubspot.com/docs/faq/how-does-hubspot-validate-email-addresses
# The simulator approximates "a real TLD" by "2-24 letters".
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,24}$")


def as_text(raw: object) -> str | None:
    """JSON input to HubSpot's string form: numbers and booleans are accepted and stringified."""
    if raw is None:
        return None
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, int | float | Decimal):
        return str(raw)
    if isinstance(raw, str):
        return raw
    raise TypeError(type(raw).__name__)


def is_valid_email(value: str) -> bool:
    return bool(_EMAIL.match(value)) and ".." not in value and not value.startswith(".")


def ms_to_iso(ms: int) -> str:
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_datetime_ms(value: str) -> int | None:
    """Epoch milliseconds from an epoch-ms string or an ISO-8601 date/datetime, else None."""
    text = value.strip()
    if re.fullmatch(r"-?\d{1,15}", text):
        return int(text)
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            moment = datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


def normalise(
    spec: PropertySpec, raw: object, *, options: tuple[str, ...] | None = None
) -> str | None:
    """The stored form of ``raw`` for property ``spec``. An empty string clears the value.

    ``options`` overrides the allowed enumeration values (pipelines, stages, currencies live
    in account settings, not in the property). Raises ValueProblem.
    """
    try:
        text = as_text(raw)
    except TypeError:
        raise ValueProblem(
            spec.name, "INVALID_TYPE", f"{raw!r} is not a valid property value"
        ) from None
    if text is None or text == "":
        return None
    if spec.type != "string" and text != text.strip():
        raise ValueProblem(
            spec.name,
            "LEADING_TRAILING_WHITESPACE",
            f'"{text}" includes leading or trailing whitespace.',
        )
    if spec.name == "email":
        if not is_valid_email(text):
            raise ValueProblem(spec.name, "INVALID_EMAIL", f"Email address {text} is invalid")
        # Contact emails are stored lower-cased; they are matched case-insensitively.
        return text.lower()
    if spec.type == "number":
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            # Simulator's choice of code: no primary text names it.
            raise ValueProblem(spec.name, "INVALID_INTEGER", f"{text} was not a valid number.")
        return text
    if spec.type == "datetime":
        ms = parse_datetime_ms(text)
        if ms is None:
            raise ValueProblem(spec.name, "INVALID_DATE", f"{text} was not a valid datetime.")
        return ms_to_iso(ms)
    if spec.type == "date":
        ms = parse_datetime_ms(text)
        if ms is None or ms % 86_400_000:
            raise ValueProblem(spec.name, "INVALID_DATE", f"{text} is not a date at midnight UTC.")
        return ms_to_iso(ms)[:10]
    if spec.type == "bool":
        if text.lower() not in ("true", "false"):
            raise ValueProblem(spec.name, "INVALID_BOOLEAN", f"{text} was not a valid boolean.")
        return text.lower()
    if spec.type == "enumeration":
        allowed = options if options is not None else tuple(v for v, _ in spec.options)
        chosen = text.split(";") if spec.field_type == "checkbox" else [text]
        for value in chosen:
            if value not in allowed:
                raise ValueProblem(
                    spec.name,
                    "INVALID_OPTION",
                    f"{value} was not one of the allowed options: [{', '.join(allowed)}]",
                )
        return text
    return text


def sort_key(spec: PropertySpec | None, value: str | None) -> tuple:
    """A key that orders stored values the way search compares them, by property type."""
    if value is None:
        return (1,)
    if spec is not None and spec.type == "number":
        try:
            return (0, Decimal(value), "")
        except InvalidOperation:
            return (0, Decimal(0), value)
    if spec is not None and spec.type in ("datetime", "date"):
        ms = parse_datetime_ms(value)
        return (0, Decimal(ms if ms is not None else 0), "")
    return (0, Decimal(0), value.lower())
