"""The page every store listing returns, and small pagination strategies with loop detection.

Cursors are compact JSON strings, opaque to callers (the worker stores them in job payloads and
hands them back unchanged). A strategy never loops by itself: it reads one page per call, so
the worker can checkpoint, rate-limit and reschedule between pages.

A strategy calls ``fetch`` for one page. ``fetch`` returns the page's records, or
:class:`Fetched` when the platform also said whether this is the last page (WordPress'
``X-WP-TotalPages``, BigCommerce's ``meta.pagination``), which saves the request for an empty
page after a full last one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from connectors.errors import PermanentError

Raw = dict[str, Any]


@dataclass
class Page:
    """One page of a listing, records as the platform's API JSON.

    ``removed``: ids the platform reports as gone (WooCommerce's trash, BigCommerce's archive)
    rather than as live records. ``requested_cost`` and ``throttle`` are Shopify's GraphQL
    cost figures for the query that read the page (None elsewhere).
    """

    records: list[Raw]
    next_cursor: str | None
    removed: tuple[str, ...] = ()
    requested_cost: float | None = None
    throttle: dict[str, float] | None = None


class Fetched(NamedTuple):
    """One page as fetched, with the platform's word on whether it is the last one."""

    records: list[Raw]
    last: bool = False


def _id_key(raw: Raw) -> str:
    return str(raw["id"])


def _unpack(got: list[Raw] | Fetched) -> tuple[list[Raw], bool]:
    if isinstance(got, Fetched):
        return list(got.records), bool(got.last)
    return list(got), False


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


def _fingerprint(keys: list[str]) -> str:
    """A short digest of a page's ids in order, to notice a platform repeating a page."""
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def _refuse_repeat(state: dict[str, Any], fingerprint: str, platform: str) -> None:
    # Two consecutive page numbers of one query answering the same records means the platform
    # ignores the page parameter (or a proxy caches it): reading on would never end.
    if state.get("prev") == fingerprint:
        raise PermanentError(
            f"pagination does not advance: page {state.get('page')} repeats the one before",
            platform=platform,
        )


def page_numbers(
    fetch: Callable[[int], list[Raw] | Fetched],
    *,
    cursor: str | None,
    page_size: int,
    platform: str,
    key: Callable[[Raw], str] = _id_key,
) -> tuple[list[Raw], str | None]:
    """Plain page numbers (1-based) until a short or empty page, or one the platform calls
    the last.

    For listings without a change filter, sorted by a stable key (WooCommerce customers by id):
    a record created during the scan lands at the end and is read; one deleted during it
    shifts the rest by one, which the next scan (and the webhooks) make good.

    Returns (records, next cursor or None). Raises PermanentError for a cursor that cannot be
    read or a page that repeats the one before.
    """
    state = _decode(cursor, platform) or {"page": 1}
    page = int(state["page"])
    records, last = _unpack(fetch(page))
    if not records:
        return [], None
    fingerprint = _fingerprint([key(r) for r in records])
    _refuse_repeat(state, fingerprint, platform)
    if last or len(records) < page_size:
        return records, None
    return records, _encode({"page": page + 1, "prev": fingerprint})


def modified_window(
    fetch: Callable[[datetime | None, int], list[Raw] | Fetched],
    *,
    cursor: str | None,
    updated_since: datetime | None,
    page_size: int,
    stamp: Callable[[Raw], datetime],
    key: Callable[[Raw], str] = _id_key,
    platform: str,
) -> tuple[list[Raw], str | None]:
    """Keyset pagination over a modification time, for listings filtered by "modified since"
    and sorted by modification, oldest first.

    Page numbers alone lose records: one modified mid-scan moves to the end, and everything
    behind it shifts forward a place, so the next page starts one record late. Instead each
    next request restarts the window at the last record's time. Platforms' times have second
    resolution and whether their filter is inclusive is not documented (UNCONFIRMED), so the
    request asks for one second earlier and drops what it has already returned at the boundary
    (by id). Only a whole page sharing one time falls back to page numbers inside that window.
    A record modified again during the scan is read again at its new place (a duplicate the
    engine's content compare makes free), never lost.

    ``fetch(since, page)`` returns one page of records modified at or after ``since`` (None:
    all). ``updated_since`` must be timezone-aware. Returns (records, next cursor or None).
    Raises PermanentError for a cursor that cannot be read or a window that does not advance.
    """
    state = _decode(cursor, platform)
    if state is None:
        start = updated_since.astimezone(UTC).replace(microsecond=0) if updated_since else None
        state = {"since": start.isoformat() if start else None, "page": 1, "seen": []}
    since = datetime.fromisoformat(state["since"]) if state["since"] else None
    seen = set(state["seen"])
    page = int(state["page"])
    raw_page, last_page = _unpack(fetch(since - timedelta(seconds=1) if since else None, page))
    records = [
        r
        for r in raw_page
        if since is None or stamp(r) > since or (stamp(r) == since and key(r) not in seen)
    ]
    if not raw_page:
        return records, None
    fingerprint = _fingerprint([key(r) for r in raw_page])
    if page > 1:
        _refuse_repeat(state, fingerprint, platform)
    if last_page or len(raw_page) < page_size:
        return records, None
    newest = stamp(raw_page[-1])
    if since is None or newest > since:
        following: dict[str, Any] = {
            "since": newest.isoformat(),
            "page": 1,
            "seen": sorted(key(r) for r in raw_page if stamp(r) == newest),
        }
    else:
        # The whole page is at the window's start (or in the second before it, which the
        # request includes): step through the window by page number. Ties in the platform's
        # sort may come in any order, so everything returned at ``since`` stays remembered.
        following = {
            "since": state["since"],
            "page": page + 1,
            "seen": sorted(seen | {key(r) for r in raw_page if stamp(r) == since}),
            "prev": fingerprint,
        }
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
    page and the inner cursor. Returns (live records, removed records, next cursor). Raises
    PermanentError for a cursor that cannot be read.
    """
    state = _decode(cursor, platform) or {"removed": False, "window": None}
    removed = bool(state.get("removed"))
    records, window = read(removed, state.get("window"))
    if window is not None:
        following: dict[str, Any] | None = {"removed": removed, "window": window}
    elif not removed:
        following = {"removed": True, "window": None}
    else:
        following = None
    nxt = _encode(following) if following else None
    return ([], records, nxt) if removed else (records, [], nxt)
