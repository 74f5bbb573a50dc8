"""Pagination strategies for list endpoints, with loop detection.

Cursors are compact JSON strings, opaque to callers (the worker stores them in job payloads).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.errors import PermanentError

Raw = dict[str, Any]


@dataclass
class Page:
    """One page of a listing. ``removed``: ids the platform reports as gone (trashed or
    archived) rather than as live records."""

    records: list[Raw]
    next_cursor: str | None
    removed: tuple[str, ...] = field(default=())


def _decode(cursor: str | None, platform: str) -> dict[str, Any] | None:
    if cursor is None:
        return None
    try:
        state = json.loads(cursor)
    except json.JSONDecodeError:
        raise PermanentError(f"unreadable cursor {cursor!r}", platform=platform) from None
    if not isinstance(state, dict):
        raise PermanentError(f"unreadable cursor {cursor!r}", platform=platform)
    return state


def _encode(state: dict[str, Any]) -> str:
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def page_numbers(
    fetch: Callable[[int], list[Raw]], *, cursor: str | None, page_size: int, platform: str
) -> tuple[list[Raw], str | None]:
    """Plain page numbers (1-based) until a short or empty page.

    For listings without a change filter, sorted by a stable key (WooCommerce customers by id):
    a record created during the scan lands at the end and is read; one deleted during it
    shifts the rest by one, which the next scan (and the webhooks) make good.
    """
    state = _decode(cursor, platform) or {"page": 1}
    page = int(state["page"])
    records = fetch(page)
    if len(records) < page_size:
        return records, None
    return records, _encode({"page": page + 1})


def modified_window(
    fetch: Callable[[datetime | None, int], list[Raw]],
    *,
    cursor: str | None,
    updated_since: datetime | None,
    page_size: int,
    stamp: Callable[[Raw], datetime],
    key: Callable[[Raw], str],
    platform: str,
) -> tuple[list[Raw], str | None]:
    """Keyset pagination over a modification time, for listings filtered by "modified since"
    and sorted by modification, oldest first.

    Page numbers alone lose records: one modified mid-scan moves to the end, and everything
    behind it shifts forward a place, so the next page starts one record late. Instead each
    next request restarts the window at the last record's time. Platforms' times have second
    resolution and whether their filter is inclusive is not documented, so the request asks
    for one second earlier and drops what it has already returned at the boundary (by id).
    Only a whole page sharing one time falls back to page numbers inside that window.

    ``fetch(since, page)`` returns one page. Raises PermanentError on a cursor that does not
    advance.
    """
    state = _decode(cursor, platform)
    if state is None:
        since = updated_since.astimezone(UTC).replace(microsecond=0) if updated_since else None
        state = {"since": since.isoformat() if since else None, "page": 1, "seen": []}
    since = datetime.fromisoformat(state["since"]) if state["since"] else None
    seen = set(state["seen"])
    raw_page = fetch(since - timedelta(seconds=1) if since else None, int(state["page"]))
    records = [
        r
        for r in raw_page
        if since is None or stamp(r) > since or (stamp(r) == since and key(r) not in seen)
    ]
    if len(raw_page) < page_size:
        return records, None
    last = stamp(raw_page[-1])
    if since is None or last > since:
        following = {
            "since": last.isoformat(),
            "page": 1,
            "seen": sorted(key(r) for r in raw_page if stamp(r) == last),
        }
    else:
        # The whole page is at the window's start (or before it): step through that second.
        following = {
            "since": state["since"],
            "page": int(state["page"]) + 1,
            "seen": sorted(seen | {key(r) for r in raw_page if stamp(r) == since}),
        }
    if following == state:
        raise PermanentError("pagination does not advance", platform=platform)
    return records, _encode(following)


def live_then_removed(
    read: Callable[[bool, str | None], tuple[list[Raw], str | None]],
    *,
    cursor: str | None,
    platform: str,
) -> tuple[list[Raw], list[Raw], str | None]:
    """Two listings read one after the other under one cursor: the live records, then the
    removed ones (WooCommerce's trash, BigCommerce's archive) over the same window.

    Platforms whose lists leave removed records out, and whose removal webhook may be lost,
    can only show a removal to polling this way. ``read(removed, inner_cursor)`` returns a
    page and the inner cursor. Returns (live records, removed records, next cursor).
    """
    state = _decode(cursor, platform) or {"removed": False, "window": None}
    removed = bool(state["removed"])
    records, window = read(removed, state["window"])
    if window is not None:
        following: dict[str, Any] | None = {"removed": removed, "window": window}
    elif not removed:
        following = {"removed": True, "window": None}
    else:
        following = None
    nxt = _encode(following) if following else None
    return ([], records, nxt) if removed else (records, [], nxt)
