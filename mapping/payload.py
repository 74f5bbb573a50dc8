"""Reading raw store payloads: what every platform's parser does the same way."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from mapping.models import MappingError


@contextmanager
def readable(platform: str, what: str, payload: Any) -> Iterator[None]:
    """Turn any unreadable value inside the block into one MappingError naming the record.

    Raises MappingError at once when ``payload`` is not an object.
    """
    if not isinstance(payload, Mapping):
        raise MappingError(f"{platform} {what} payload is not an object")
    try:
        yield
    except MappingError:
        raise
    except (ValueError, TypeError, AttributeError, LookupError, ArithmeticError) as exc:
        raise MappingError(f"unreadable {platform} {what} {payload.get('id', '?')}: {exc}") from exc


def text(value: Any) -> str | None:
    """A stripped string, or None for a missing or blank value (platforms send "" for unset)."""
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def numeric_id(payload: Mapping[str, Any], platform: str, what: str) -> str:
    """The record's numeric ``id`` as a string. Raises MappingError when there is none."""
    value = payload.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise MappingError(f"{platform} {what} without a numeric id: {value!r}")
    return str(int(value))
