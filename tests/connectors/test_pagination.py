"""connectors.pagination: the keyset window over modification times, and page numbers.

The fake listing below behaves like WooCommerce's and BigCommerce's: filter by "modified at or
after" (or strictly after: both are tried), sort by modification then id, page numbers, and
optionally the platform's word on the last page (X-WP-TotalPages, meta.pagination).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from connectors.errors import PermanentError
from connectors.pagination import Fetched, Page, live_then_removed, modified_window, page_numbers

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Listing:
    def __init__(
        self,
        stamps: dict[int, datetime],
        *,
        inclusive: bool,
        says_last: bool = False,
        ignores_page: bool = False,
    ) -> None:
        self.stamps = dict(stamps)
        self.inclusive = inclusive
        self.says_last = says_last
        self.ignores_page = ignores_page
        self.requests: list[tuple[datetime | None, int]] = []

    def fetch(self, page_size: int):
        def fetch(since: datetime | None, page: int) -> list[dict] | Fetched:
            self.requests.append((since, page))
            rows = sorted(
                (
                    (stamp, rid)
                    for rid, stamp in self.stamps.items()
                    if since is None or (stamp >= since if self.inclusive else stamp > since)
                ),
            )
            start = 0 if self.ignores_page else (page - 1) * page_size
            chunk = [{"id": rid, "at": stamp} for stamp, rid in rows[start : start + page_size]]
            if self.says_last:
                return Fetched(chunk, last=page * page_size >= len(rows))
            return chunk

        return fetch


def scan(listing: Listing, page_size: int, since=None, between_pages=None, limit=100):
    """Every page, as the worker reads them (one call per page, the cursor handed back)."""
    seen, cursor = [], None
    for n in range(limit):
        records, cursor = modified_window(
            listing.fetch(page_size),
            cursor=cursor,
            updated_since=since,
            page_size=page_size,
            stamp=lambda raw: raw["at"],
            key=lambda raw: str(raw["id"]),
            platform="test",
        )
        seen.extend(r["id"] for r in records)
        if cursor is None:
            return seen
        if between_pages:
            between_pages(n)
    raise AssertionError("the scan did not end")


@pytest.mark.parametrize("inclusive", [True, False])
def test_every_record_once_in_modification_order(inclusive):
    listing = Listing({i: T0 + timedelta(seconds=i) for i in range(1, 26)}, inclusive=inclusive)
    assert scan(listing, page_size=10) == list(range(1, 26))


@pytest.mark.parametrize("inclusive", [True, False])
def test_a_record_modified_mid_scan_loses_nobody_behind_it(inclusive):
    """Page numbers would skip record 11: record 3 moves to the end after page one."""
    listing = Listing({i: T0 + timedelta(seconds=i) for i in range(1, 26)}, inclusive=inclusive)

    def touch(n):
        if n == 0:
            listing.stamps[3] = T0 + timedelta(seconds=100)

    seen = scan(listing, page_size=10, between_pages=touch)
    assert set(range(1, 26)) <= set(seen)
    assert seen.count(11) == 1 and seen[-1] == 3  # 3 again, at its new place


@pytest.mark.parametrize("inclusive", [True, False])
def test_a_whole_page_sharing_one_second_is_stepped_through(inclusive):
    same = {i: T0 for i in range(1, 24)}  # 23 records in one second, pages of 10
    later = {i: T0 + timedelta(seconds=5) for i in range(24, 27)}
    listing = Listing({**same, **later}, inclusive=inclusive)
    seen = scan(listing, page_size=10)
    assert sorted(seen) == list(range(1, 27)) and len(seen) == 26


def test_the_window_starts_at_updated_since_minus_a_second():
    listing = Listing({i: T0 + timedelta(seconds=i) for i in range(1, 6)}, inclusive=True)
    seen = scan(listing, page_size=10, since=T0 + timedelta(seconds=3))
    assert seen == [3, 4, 5]
    assert listing.requests[0][0] == T0 + timedelta(seconds=2)


def test_a_cursor_that_cannot_be_read_is_a_permanent_error():
    with pytest.raises(PermanentError):
        modified_window(
            lambda since, page: [],
            cursor="not json",
            updated_since=None,
            page_size=10,
            stamp=lambda raw: raw["at"],
            key=lambda raw: str(raw["id"]),
            platform="test",
        )


def test_page_numbers_end_on_a_short_or_empty_page():
    pages = {1: [{"id": i} for i in range(10)], 2: [{"id": i} for i in range(10, 20)], 3: []}
    calls, cursor, seen = [], None, []
    while True:
        records, cursor = page_numbers(
            lambda page: calls.append(page) or pages[page],
            cursor=cursor,
            page_size=10,
            platform="t",
        )
        seen.extend(r["id"] for r in records)
        if cursor is None:
            break
    assert seen == list(range(20)) and calls == [1, 2, 3]


@pytest.mark.parametrize("inclusive", [True, False])
def test_a_record_modified_on_the_page_being_read_comes_again_without_looping(inclusive):
    """Record 15 (on page two) moves to the end while page one is read: it is read once at
    its old place or its new one, and the scan still ends."""
    listing = Listing({i: T0 + timedelta(seconds=i) for i in range(1, 26)}, inclusive=inclusive)

    def touch(n):
        listing.stamps[15] = T0 + timedelta(seconds=200 + n)

    seen = scan(listing, page_size=10, between_pages=touch)
    assert set(seen) == set(range(1, 26)) and seen[-1] == 15


@pytest.mark.parametrize(("says_last", "requests"), [(True, 1), (False, 2)])
def test_the_platforms_last_page_word_saves_the_empty_request(says_last, requests):
    """A full last page: without the platform's word only an empty next page ends the scan."""
    listing = Listing(
        {i: T0 + timedelta(seconds=i) for i in range(1, 11)}, inclusive=True, says_last=says_last
    )
    assert scan(listing, page_size=10) == list(range(1, 11))
    assert len(listing.requests) == requests


def test_a_window_restart_that_rereads_the_last_page_is_not_a_loop():
    """Ten records over two seconds, pages of ten: the restart at the last second (asking one
    second earlier) answers the same ten records again, which is progress, not a loop."""
    stamps = {i: T0 - timedelta(seconds=1) for i in range(1, 6)}
    stamps |= {i: T0 for i in range(6, 11)}
    listing = Listing(stamps, inclusive=True)
    assert scan(listing, page_size=10) == list(range(1, 11))


def test_a_platform_that_ignores_the_page_number_is_stopped():
    """A whole page in one second falls back to page numbers; a platform answering page 1
    again for page 2 would make the scan go on for ever."""
    listing = Listing({i: T0 for i in range(1, 31)}, inclusive=True, ignores_page=True)
    with pytest.raises(PermanentError, match="does not advance"):
        scan(listing, page_size=10)


def test_page_numbers_stop_a_platform_that_repeats_a_page():
    page = [{"id": i} for i in range(10)]
    _, cursor = page_numbers(lambda n: page, cursor=None, page_size=10, platform="t")
    with pytest.raises(PermanentError, match="does not advance"):
        page_numbers(lambda n: page, cursor=cursor, page_size=10, platform="t")


def test_page_numbers_take_the_platforms_last_page_word():
    calls = []
    records, cursor = page_numbers(
        lambda n: calls.append(n) or Fetched([{"id": i} for i in range(10)], last=True),
        cursor=None,
        page_size=10,
        platform="t",
    )
    assert len(records) == 10 and cursor is None and calls == [1]


def test_an_aware_updated_since_in_another_zone_is_read_as_utc():
    listing = Listing({i: T0 + timedelta(seconds=i) for i in range(1, 6)}, inclusive=True)
    paris = timezone(timedelta(hours=1))
    scan(listing, page_size=10, since=(T0 + timedelta(seconds=3)).astimezone(paris))
    assert listing.requests[0][0] == T0 + timedelta(seconds=2)
    assert listing.requests[0][0].utcoffset() == timedelta(0)


def test_cursors_are_compact_json():
    listing = Listing({i: T0 + timedelta(seconds=i) for i in range(1, 16)}, inclusive=True)
    _, cursor = modified_window(
        listing.fetch(10),
        cursor=None,
        updated_since=None,
        page_size=10,
        stamp=lambda raw: raw["at"],
        platform="test",
    )
    assert cursor is not None and " " not in cursor
    assert json.loads(cursor)["since"] == (T0 + timedelta(seconds=10)).isoformat()


def test_live_then_removed_reads_both_listings_under_one_cursor():
    pages = {
        (False, None): ([{"id": 1}], "live-2"),
        (False, "live-2"): ([{"id": 2}], None),
        (True, None): ([{"id": 9}], None),
    }
    seen, cursor = [], None
    while True:
        live, removed, cursor = live_then_removed(
            lambda removed, inner: pages[(removed, inner)], cursor=cursor, platform="t"
        )
        seen.append(([r["id"] for r in live], [r["id"] for r in removed]))
        if cursor is None:
            break
    assert seen == [([1], []), ([2], []), ([], [9])]


def test_a_page_has_no_removed_ids_or_costs_unless_given():
    page = Page([{"id": 1}], None)
    assert page.removed == () and page.requested_cost is None and page.throttle is None
