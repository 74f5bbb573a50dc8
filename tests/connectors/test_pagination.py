"""connectors.pagination: the keyset window over modification times, and page numbers.

The fake listing below behaves like WooCommerce's and BigCommerce's: filter by "modified at or
after" (or strictly after: both are tried), sort by modification then id, page numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.errors import PermanentError
from connectors.pagination import modified_window, page_numbers

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


class Listing:
    def __init__(self, stamps: dict[int, datetime], *, inclusive: bool) -> None:
        self.stamps = dict(stamps)
        self.inclusive = inclusive
        self.requests: list[tuple[datetime | None, int]] = []

    def fetch(self, page_size: int):
        def fetch(since: datetime | None, page: int) -> list[dict]:
            self.requests.append((since, page))
            rows = sorted(
                (
                    (stamp, rid)
                    for rid, stamp in self.stamps.items()
                    if since is None or (stamp >= since if self.inclusive else stamp > since)
                ),
            )
            chunk = rows[(page - 1) * page_size : page * page_size]
            return [{"id": rid, "at": stamp} for stamp, rid in chunk]

        return fetch


def scan(listing: Listing, page_size: int, since=None, between_pages=None, limit=100):
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
