"""The BigCommerce connector against a fake store at one seam: a transport adapter mounted on
the HttpClient's session, which answers like BigCommerce's documented v2/v3 REST API and
records every request (so a test fails if an expected request was never made). Nothing is
contacted.

The fake implements only what the connector relies on: v2 orders filtered by
``min_date_modified`` (RFC-2822; inclusive or strict, UNCONFIRMED which: both are tried),
sorted by ``date_modified:asc``, paged by ``page``/``limit`` with 204 (or ``[]``) past the end,
``is_deleted`` orders, line items in ``/products``; v3 customers with ``date_modified:min``,
``id:in``, ``meta.pagination``; batch PUTs of at most 10; hooks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from connectors.bigcommerce import (
    BIGCOMMERCE_POLICY,
    QUOTA_MARGIN,
    WEBHOOK_SCOPES,
    WEBHOOK_SECRET_HEADER,
    WRITE_BATCH,
    BigCommerceConnector,
    rate_limit_signal,
)
from connectors.errors import (
    ConfigurationError,
    PermanentError,
    RateLimitedError,
    RetriableError,
)
from connectors.http import HttpClient

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TOKEN = "bc_token_0123456789abcdef"
BASE = "/stores/abc123"


# --------------------------------------------------------------------------- the seam


@dataclass
class Sent:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


Answer = tuple[int, dict[str, str], Any]


class Transport(requests.adapters.BaseAdapter):
    """Answers every request from ``handler`` and keeps it in ``sent``."""

    def __init__(self, handler: Callable[[Sent], Answer]) -> None:
        super().__init__()
        self.handler = handler
        self.sent: list[Sent] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        parts = urlsplit(request.url)
        sent = Sent(
            method=request.method,
            path=parts.path.removeprefix(BASE),
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=dict(request.headers),
            body=json.loads(request.body) if request.body else None,
        )
        self.sent.append(sent)
        status, headers, body = self.handler(sent)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        response._content = b"" if body is None else json.dumps(body).encode()
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- the fake store


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def v3_error(status: int, title: str) -> Answer:
    return status, {}, {"status": status, "title": title, "type": "about:blank", "errors": {}}


@dataclass
class FakeStore:
    inclusive: bool = True
    empty: str = "204"  # or "list": an empty v2 page is 204 No Content or []
    archive_filter: bool = True  # whether ``is_deleted=true`` is honoured (UNCONFIRMED)
    orders: dict[int, dict] = field(default_factory=dict)
    lines: dict[int, int] = field(default_factory=dict)
    customers: dict[int, dict] = field(default_factory=dict)
    hooks: dict[int, dict] = field(default_factory=dict)
    scripted: list[Answer] = field(default_factory=list)  # answered first, in order

    def order(self, oid: int, modified: datetime, *, archived: bool = False, lines: int = 1):
        self.orders[oid] = {
            "id": oid,
            "date_created": rfc2822(T0 - timedelta(days=30)),
            "date_modified": rfc2822(modified),
            "is_deleted": archived,
            "total_inc_tax": "12.5000",
            "products": {"url": f"https://api.example/v2/orders/{oid}/products"},
        }
        self.lines[oid] = lines

    def customer(self, cid: int, modified: datetime) -> None:
        self.customers[cid] = {"id": cid, "email": f"c{cid}@example.com", "first_name": "C",
                               "date_modified": iso(modified), "addresses": []}  # fmt: skip

    def __call__(self, sent: Sent) -> Answer:
        if self.scripted:
            return self.scripted.pop(0)
        parts = sent.path.strip("/").split("/")
        if sent.method == "GET" and sent.path == "/v2/orders":
            return self._orders(sent.query)
        if sent.method == "GET" and parts[:2] == ["v2", "orders"] and len(parts) == 3:
            found = self.orders.get(int(parts[2]))
            return (200, {}, found) if found else (404, {}, [{"status": 404, "message": "none"}])
        if sent.method == "GET" and parts[:2] == ["v2", "orders"] and parts[3:] == ["products"]:
            oid, limit, page = int(parts[2]), int(sent.query["limit"]), int(sent.query["page"])
            rows = [{"id": oid * 1000 + n, "order_id": oid} for n in range(self.lines[oid])]
            return self._v2_page(rows[(page - 1) * limit : page * limit])
        if sent.path == "/v3/customers":
            return self._put_customers(sent.body) if sent.method == "PUT" else self._customers(sent)
        if sent.path == "/v3/hooks":
            if sent.method == "GET":
                return 200, {}, {"data": list(self.hooks.values()), "meta": {}}
            hook = {**sent.body, "id": len(self.hooks) + 1}
            self.hooks[hook["id"]] = hook
            return 200, {}, {"data": hook, "meta": {}}
        if sent.method == "PUT" and parts[:2] == ["v3", "hooks"]:
            hook = self.hooks[int(parts[2])]
            hook.update(sent.body)
            return 200, {}, {"data": hook, "meta": {}}
        return v3_error(404, "not found")

    def _v2_page(self, rows: list[dict]) -> Answer:
        if not rows:
            return (204, {}, None) if self.empty == "204" else (200, {}, [])
        return 200, {}, rows

    def _orders(self, query: dict[str, str]) -> Answer:
        assert query.get("sort") == "date_modified:asc"
        rows = list(self.orders.values())
        if self.archive_filter:
            archived = query.get("is_deleted") == "true"
            rows = [o for o in rows if o["is_deleted"] == archived]
        if "min_date_modified" in query:
            bound = parsedate_to_datetime(query["min_date_modified"])
            stamp = lambda o: parsedate_to_datetime(o["date_modified"])  # noqa: E731
            rows = [o for o in rows if stamp(o) >= bound if self.inclusive or stamp(o) > bound]
        rows.sort(key=lambda o: (parsedate_to_datetime(o["date_modified"]), o["id"]))
        limit, page = int(query.get("limit", 50)), int(query.get("page", 1))
        assert limit <= 250
        return self._v2_page(rows[(page - 1) * limit : page * limit])

    def _customers(self, sent: Sent) -> Answer:
        query = sent.query
        rows = sorted(self.customers.values(), key=lambda c: (c["date_modified"], c["id"]))
        if "id:in" in query:
            wanted = {int(i) for i in query["id:in"].split(",")}
            rows = [c for c in rows if c["id"] in wanted]
        if "date_modified:min" in query:
            bound = query["date_modified:min"]
            rows = [c for c in rows if (c["date_modified"] >= bound if self.inclusive
                                        else c["date_modified"] > bound)]  # fmt: skip
        limit, page = int(query.get("limit", 50)), int(query.get("page", 1))
        pages = -(-len(rows) // limit)
        meta = {"pagination": {"total": len(rows), "current_page": page, "total_pages": pages,
                               "per_page": limit}}  # fmt: skip
        return 200, {}, {"data": rows[(page - 1) * limit : page * limit], "meta": meta}

    def _put_customers(self, body: list[dict]) -> Answer:
        if len(body) > WRITE_BATCH:
            return v3_error(413, "At most 10 customers per request")
        for item in body:
            if item["id"] not in self.customers:
                return v3_error(422, f"Customer {item['id']} not found")
        updated = []
        for item in body:
            self.customers[item["id"]].update(item)
            updated.append(dict(self.customers[item["id"]]))
        return 200, {}, {"data": list(reversed(updated)), "meta": {}}  # any order


# --------------------------------------------------------------------------- fixtures


@dataclass
class Rig:
    store: FakeStore
    transport: Transport
    connector: BigCommerceConnector
    slept: list[float]

    def sent(self, method: str | None = None, path: str | None = None) -> list[Sent]:
        return [
            s
            for s in self.transport.sent
            if (method is None or s.method == method) and (path is None or s.path == path)
        ]


@contextmanager
def rig(store: FakeStore | None = None, **http_options) -> Iterator[Rig]:
    store = store or FakeStore()
    transport = Transport(store)
    session = requests.Session()
    session.mount("https://", transport)
    slept: list[float] = []
    options = {
        "session": session,
        "sleep": slept.append,
        "jitter": lambda lo, hi: hi,
        # Hosts are never resolved for real: the transport answers before any socket.
        "resolver": lambda host: ["93.184.216.34"],
        **http_options,
    }
    http = HttpClient(BIGCOMMERCE_POLICY, **options)
    try:
        yield Rig(store, transport, BigCommerceConnector("abc123", TOKEN, http), slept)
    finally:
        session.close()


@pytest.fixture
def bc():
    with rig() as r:
        yield r


def scan(fetch, since=None, limit=50) -> tuple[list[dict], list[str]]:
    records, removed, cursor = [], [], None
    for _ in range(limit):
        page = fetch(updated_since=since, cursor=cursor)
        records.extend(page.records)
        removed.extend(page.removed)
        cursor = page.next_cursor
        if cursor is None:
            return records, removed
    raise AssertionError("the scan did not end")


# --------------------------------------------------------------------------- requests


def test_every_call_carries_the_token_and_asks_for_json(bc):
    bc.connector.get_orders(["1"])
    (sent,) = bc.transport.sent
    assert sent.headers["X-Auth-Token"] == TOKEN
    assert sent.headers["Accept"] == "application/json"
    assert sent.path == "/v2/orders/1"


def test_orders_request_shape(bc):
    bc.connector.orders_page(updated_since=T0, cursor=None)
    (live,) = bc.sent("GET", "/v2/orders")
    assert live.query == {
        "sort": "date_modified:asc",
        "limit": "250",
        "page": "1",
        # RFC-2822 in UTC, one second early: the filter's inclusivity is UNCONFIRMED.
        "min_date_modified": "Sun, 01 Nov 2026 11:59:59 +0000",
    }


def test_customers_request_shape(bc):
    bc.connector.customers_page(updated_since=T0, cursor=None)
    (sent,) = bc.sent("GET", "/v3/customers")
    assert sent.query == {
        "sort": "date_modified:asc",
        "limit": "250",
        "page": "1",
        "include": "addresses",
        "date_modified:min": "2026-11-01T11:59:59Z",
    }


# --------------------------------------------------------------------------- orders


@pytest.mark.parametrize("inclusive", [True, False])
@pytest.mark.parametrize("empty", ["204", "list"])
def test_every_order_once_with_its_lines_and_the_archive_as_removed(inclusive, empty):
    with rig(FakeStore(inclusive=inclusive, empty=empty)) as r:
        for oid in range(1, 301):
            r.store.order(oid, T0 + timedelta(seconds=oid))
        r.store.order(900, T0 + timedelta(seconds=7), archived=True)
        records, removed = scan(r.connector.orders_page)
        assert [o["id"] for o in records] == list(range(1, 301))
        assert all(o["line_items"] == [{"id": o["id"] * 1000, "order_id": o["id"]}]
                   for o in records)  # fmt: skip
        assert removed == ["900"]
        archive = [s for s in r.sent("GET", "/v2/orders") if s.query.get("is_deleted") == "true"]
        assert archive, "the archive must be read: a lost archived webhook hides a removal"


def test_a_204_page_is_an_empty_one(bc):
    bc.store.scripted = [(204, {}, None), (204, {}, None)]
    page = bc.connector.orders_page(updated_since=None, cursor=None)
    assert page.records == [] and page.next_cursor is not None  # the archive is next
    last = bc.connector.orders_page(updated_since=None, cursor=page.next_cursor)
    assert last.records == [] and last.removed == () and last.next_cursor is None


def test_an_archived_order_in_the_live_listing_is_removed_not_returned():
    """If lists include archived orders (UNCONFIRMED), they never come back as records."""
    with rig(FakeStore(archive_filter=False)) as r:
        r.store.order(1, T0)
        r.store.order(2, T0 + timedelta(seconds=1), archived=True)
        records, removed = scan(r.connector.orders_page)
        assert [o["id"] for o in records] == [1]
        assert set(removed) == {"2"}
        assert r.sent("GET", "/v2/orders/2/products") == []  # no lines read for it


def test_an_order_modified_between_two_pages_is_neither_lost_nor_looped_on(bc):
    for oid in range(1, 401):
        bc.store.order(oid, T0 + timedelta(seconds=oid))
    first = bc.connector.orders_page(updated_since=None, cursor=None)
    bc.store.order(10, T0 + timedelta(hours=1))  # moves to the end: page 2 would skip 251
    ids, cursor = [o["id"] for o in first.records], first.next_cursor
    for _ in range(20):
        page = bc.connector.orders_page(updated_since=None, cursor=cursor)
        ids.extend(o["id"] for o in page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None
    assert set(ids) == set(range(1, 401)) and ids.count(251) == 1 and ids[-1] == 10


def test_a_page_of_one_second_steps_through_by_page_number(bc):
    for oid in range(1, 301):
        bc.store.order(oid, T0)  # 300 orders modified in one second (a bulk status change)
    records, _ = scan(bc.connector.orders_page)
    assert sorted(o["id"] for o in records) == list(range(1, 301)) and len(records) == 300


def test_line_items_are_read_across_pages(bc):
    bc.store.order(1, T0, lines=300)
    (order,) = bc.connector.get_orders(["1"])
    assert len(order["line_items"]) == 300
    pages = [s.query for s in bc.sent("GET", "/v2/orders/1/products")]
    assert [(q["page"], q["limit"]) for q in pages] == [("1", "250"), ("2", "250")]


def test_get_orders_leaves_out_the_archived_and_the_missing(bc):
    bc.store.order(1, T0)
    bc.store.order(2, T0, archived=True)
    assert [o["id"] for o in bc.connector.get_orders(["1", "2", "3"])] == [1]
    assert [s.path for s in bc.sent("GET")][:1] == ["/v2/orders/1"]
    assert {"/v2/orders/2", "/v2/orders/3"} <= {s.path for s in bc.sent("GET")}


# --------------------------------------------------------------------------- customers


@pytest.mark.parametrize("inclusive", [True, False])
def test_customers_since_a_time_oldest_change_first(inclusive):
    with rig(FakeStore(inclusive=inclusive)) as r:
        for cid in range(1, 301):
            r.store.customer(cid, T0 + timedelta(seconds=cid))
        records, _ = scan(r.connector.customers_page, since=T0 + timedelta(seconds=40))
        assert [c["id"] for c in records] == list(range(40, 301))


def test_meta_pagination_ends_the_scan_without_an_empty_page(bc):
    for cid in range(1, 251):
        bc.store.customer(cid, T0)
    records, _ = scan(bc.connector.customers_page)
    assert len(records) == 250 and len(bc.transport.sent) == 1


def test_get_customers_asks_fifty_ids_at_a_time_and_leaves_out_the_deleted(bc):
    for cid in range(1, 121):
        bc.store.customer(cid, T0)
    del bc.store.customers[60]
    found = bc.connector.get_customers([str(i) for i in range(1, 121)])
    assert sorted(c["id"] for c in found) == [i for i in range(1, 121) if i != 60]
    lookups = bc.sent("GET", "/v3/customers")
    assert [len(s.query["id:in"].split(",")) for s in lookups] == [50, 50, 20]
    assert all(s.query["include"] == "addresses" for s in lookups)


def test_writes_go_in_tens_with_per_item_results_in_order(bc):
    for cid in range(1, 26):
        bc.store.customer(cid, T0)
    changes = [(str(cid), {"notes": f"n{cid}"}) for cid in range(1, 26)]
    results = bc.connector.update_customers(changes)
    puts = bc.sent("PUT", "/v3/customers")
    assert [len(p.body) for p in puts] == [10, 10, 5]
    assert [r["id"] for r in results] == list(range(1, 26))
    assert all(r["notes"] == f"n{r['id']}" for r in results)


def test_a_batch_refused_for_one_item_fails_only_that_item(bc):
    for cid in range(1, 11):
        bc.store.customer(cid, T0)
    changes = [(str(cid), {"notes": "vip"}) for cid in range(1, 11)]
    changes[6] = ("777", {"notes": "ghost"})
    results = bc.connector.update_customers(changes)
    assert [r["id"] for r in results] == [1, 2, 3, 4, 5, 6, 777, 8, 9, 10]
    assert results[6]["error"]["code"] == "422" and "777" in results[6]["error"]["message"]
    assert all(r["notes"] == "vip" for i, r in enumerate(results) if i != 6)
    assert bc.store.customers[8]["notes"] == "vip"


def test_update_customer_raises_the_platforms_refusal(bc):
    with pytest.raises(PermanentError, match="not found") as caught:
        bc.connector.update_customer("5", {"notes": "x"})
    assert caught.value.status == 422


def test_an_oversized_batch_is_a_permanent_error(bc):
    bc.store.scripted = [v3_error(413, "At most 10 customers per request")]
    with pytest.raises(PermanentError) as caught:
        bc.connector.update_customers([("1", {"notes": "x"})])
    assert caught.value.status == 413 and len(bc.transport.sent) == 1


# --------------------------------------------------------------------------- limits, errors


QUOTA = {
    "X-Rate-Limit-Time-Window-Ms": "30000",
    "X-Rate-Limit-Requests-Quota": "150",
}


def test_a_429_waits_for_the_window_reset_in_milliseconds():
    with rig(max_inline_wait=1) as r:
        headers = {
            **QUOTA,
            "X-Rate-Limit-Requests-Left": "0",
            "X-Rate-Limit-Time-Reset-Ms": "15250",
        }
        r.store.scripted = [(429, headers, v3_error(429, "Too many requests")[2])]
        with pytest.raises(RateLimitedError) as caught:
            r.connector.get_orders(["1"])
        assert caught.value.retry_after == pytest.approx(15.25) and r.slept == []


def test_a_429_with_only_x_retry_after_waits_that_many_seconds():
    with rig(max_inline_wait=1) as r:
        r.store.scripted = [(429, {"X-Retry-After": "40"}, None)]
        with pytest.raises(RateLimitedError) as caught:
            r.connector.get_orders(["1"])
        assert caught.value.retry_after == 40


def test_a_short_429_is_waited_out_inline(bc):
    bc.store.scripted = [(429, {**QUOTA, "X-Rate-Limit-Time-Reset-Ms": "2000"}, None)]
    bc.store.order(1, T0)
    assert [o["id"] for o in bc.connector.get_orders(["1"])] == [1]
    assert bc.slept == [2.0]


def test_a_bare_429_backs_off_progressively():
    """Platform load, not our quota [BC-RL]: growing waits, then give up for now."""
    with rig(max_attempts=4, backoff_base=0.5) as r:
        r.store.scripted = [(429, {}, None)] * 4
        with pytest.raises(RetriableError):
            r.connector.get_orders(["1"])
        assert r.slept == [0.5, 1.0, 2.0]


def test_rate_limit_signal_keeps_a_margin_for_the_merchants_other_apps():
    response = requests.Response()
    response.headers = CaseInsensitiveDict(
        {**QUOTA, "X-Rate-Limit-Requests-Left": "100", "X-Rate-Limit-Time-Reset-Ms": "12000"}
    )
    signal = rate_limit_signal(response)
    reserve = 150 * QUOTA_MARGIN
    assert 0 < QUOTA_MARGIN < 1
    assert signal == {
        "remaining": pytest.approx(100 - reserve),
        "capacity": pytest.approx(150 - reserve),
        "refill_per_second": pytest.approx((150 - reserve) / 30),
        "reset_seconds": pytest.approx(12.0),
    }
    assert rate_limit_signal(requests.Response()) is None


def test_a_refused_token_is_a_configuration_error(bc):
    bc.store.scripted = [v3_error(401, "Unauthorized")]
    with pytest.raises(ConfigurationError):
        bc.connector.customers_page(updated_since=None, cursor=None)
    assert len(bc.transport.sent) == 1


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([{"status": 400, "message": "The field 'min_date_modified' is invalid."}], "is invalid"),
        ({"status": 400, "title": "Input is invalid", "errors": {"id": "bad"}}, "Input is invalid"),
    ],
)
def test_v2_and_v3_error_bodies_become_the_message(bc, body, expected):
    bc.store.scripted = [(400, {}, body)]
    with pytest.raises(PermanentError, match=expected) as caught:
        bc.connector.get_orders(["1"])
    assert caught.value.details == body
    assert TOKEN not in str(caught.value)


# --------------------------------------------------------------------------- webhooks


def test_hooks_are_created_once_then_left_alone(bc):
    address = "https://tandem.example/bc/3"
    bc.store.hooks[1] = {"id": 1, "scope": "store/order/created", "is_active": True,
                         "destination": "https://elsewhere.example/x", "headers": {}}  # fmt: skip
    made = bc.connector.ensure_webhooks(address, "s3cret")
    creates = bc.sent("POST", "/v3/hooks")
    assert sorted(c.body["scope"] for c in creates) == sorted(WEBHOOK_SCOPES)
    assert all(
        c.body
        == {
            "scope": c.body["scope"],
            "destination": address,
            "is_active": True,
            "headers": {WEBHOOK_SECRET_HEADER: "s3cret"},
        }
        for c in creates
    )
    before = len(bc.transport.sent)
    again = bc.connector.ensure_webhooks(address, "s3cret")
    assert [h["id"] for h in again] == [h["id"] for h in made]
    assert [s.method for s in bc.transport.sent[before:]] == ["GET"]
    assert bc.store.hooks[1]["destination"] == "https://elsewhere.example/x"


def test_an_inactive_or_rekeyed_hook_of_ours_is_updated(bc):
    address = "https://tandem.example/bc/3"
    bc.connector.ensure_webhooks(address, "s3cret")
    by_scope = {h["scope"]: h for h in bc.store.hooks.values()}
    by_scope["store/order/updated"]["is_active"] = False  # deactivated after 48 h of failures
    bc.transport.sent.clear()
    bc.connector.ensure_webhooks(address, "s3cret")
    (put,) = bc.sent("PUT")
    assert put.path == f"/v3/hooks/{by_scope['store/order/updated']['id']}"
    assert put.body == {"is_active": True, "headers": {WEBHOOK_SECRET_HEADER: "s3cret"}}
    bc.transport.sent.clear()
    bc.connector.ensure_webhooks(address, "n3w")
    assert len(bc.sent("PUT")) == len(WEBHOOK_SCOPES) and bc.sent("POST") == []
