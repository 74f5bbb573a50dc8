"""The WooCommerce connector against a fake site at one seam: a transport adapter mounted on
the HttpClient's session, which answers like WooCommerce's documented REST API v3 and records
every request (so a test fails if an expected request was never made). Nothing is contacted.

The fake implements only what the connector relies on: ``modified_after`` with
``dates_are_gmt`` (inclusive or strict: the platform's choice is UNCONFIRMED, both are tried),
``orderby``, ``status``, ``role``, ``per_page``/``page`` with ``X-WP-Total(Pages)``, a page past
the end as ``[]`` or 400 ``rest_post_invalid_page_number``, the customers batch, webhooks.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from connectors.errors import ConfigurationError, PermanentError, RateLimitedError
from connectors.http import HttpClient
from connectors.woocommerce import (
    BATCH_SIZE,
    WEBHOOK_TOPICS,
    WOOCOMMERCE_POLICY,
    WooCommerceConnector,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
KEY, SECRET = "ck_0123456789abcdef", "cs_fedcba9876543210"
API = "/wp-json/wc/v3"


# --------------------------------------------------------------------------- the seam


@dataclass
class Sent:
    method: str
    url: str
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
            url=request.url,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=dict(request.headers),
            body=json.loads(request.body) if request.body else None,
        )
        self.sent.append(sent)
        status, headers, body = self.handler(sent)
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        if isinstance(body, bytes):
            response._content = body
        else:
            response._content = b"" if body is None else json.dumps(body).encode()
        response.url = request.url
        response.request = request
        response.encoding = "utf-8"
        return response

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- the fake site


def gmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def error(status: int, code: str, message: str = "refused") -> Answer:
    return status, {}, {"code": code, "message": message, "data": {"status": status}}


@dataclass
class FakeSite:
    inclusive: bool = True
    past_end: str = "empty"  # or "error": both are seen in the wild (UNCONFIRMED which)
    orders: dict[int, dict] = field(default_factory=dict)
    customers: dict[int, dict] = field(default_factory=dict)
    webhooks: dict[int, dict] = field(default_factory=dict)
    scripted: list[Answer] = field(default_factory=list)  # answered first, in order

    def order(self, oid: int, modified: datetime, status: str = "processing") -> None:
        self.orders[oid] = {
            "id": oid,
            "status": status,
            "date_created_gmt": gmt(T0 - timedelta(days=30)),
            "date_modified_gmt": gmt(modified),
            "date_modified": "2026-11-01T13:00:00",  # site-local: never to be read
        }

    def customer(self, cid: int, role: str = "customer") -> None:
        self.customers[cid] = {"id": cid, "role": role, "email": f"c{cid}@example.com"}

    def __call__(self, sent: Sent) -> Answer:
        if self.scripted:
            return self.scripted.pop(0)
        route = sent.path.removeprefix("/shop" + API)
        parts = route.strip("/").split("/")
        if sent.method == "GET" and route == "/orders":
            return self._list_orders(sent.query)
        if sent.method == "GET" and route == "/customers":
            role = sent.query.get("role", "customer")
            rows = sorted(
                (c for c in self.customers.values() if role == "all" or c["role"] == role),
                key=lambda c: c["id"],
            )
            return self._page(rows, sent.query)
        if sent.method == "GET" and len(parts) == 2 and parts[0] in ("orders", "customers"):
            found = (self.orders if parts[0] == "orders" else self.customers).get(int(parts[1]))
            return (200, {}, found) if found else error(404, "woocommerce_rest_invalid_id")
        if sent.method == "POST" and route == "/customers/batch":
            return self._batch(sent.body)
        if sent.method == "PUT" and parts[0] == "customers":
            customer = self.customers.get(int(parts[1]))
            if customer is None:
                return error(400, "woocommerce_rest_invalid_id", "Invalid resource ID.")
            customer.update(sent.body)
            return 200, {}, customer
        if route == "/webhooks":
            if sent.method == "GET":
                return self._page(sorted(self.webhooks.values(), key=lambda w: w["id"]), sent.query)
            hook = {**sent.body, "id": len(self.webhooks) + 1}
            hook.pop("secret")  # edit context only: never shown back
            self.webhooks[hook["id"]] = hook
            return 201, {}, hook
        if sent.method == "PUT" and parts[0] == "webhooks":
            hook = self.webhooks[int(parts[1])]
            hook.update({k: v for k, v in sent.body.items() if k != "secret"})
            return 200, {}, hook
        return error(404, "rest_no_route", "No route was found matching the URL")

    def _list_orders(self, query: dict[str, str]) -> Answer:
        status = query.get("status", "any")
        rows = [
            o
            for o in self.orders.values()
            if (o["status"] != "trash" if status == "any" else o["status"] == status)
        ]
        if "modified_after" in query:
            assert query.get("dates_are_gmt") == "true", "without it the bound is site-local"
            bound = query["modified_after"]
            rows = [
                o
                for o in rows
                if (o["date_modified_gmt"] >= bound if self.inclusive else o["date_modified_gmt"] > bound)
            ]  # fmt: skip
        assert query.get("orderby") == "modified" and query.get("order") == "asc"
        rows.sort(key=lambda o: (o["date_modified_gmt"], o["id"]))
        return self._page(rows, query)

    def _page(self, rows: list[dict], query: dict[str, str]) -> Answer:
        per_page, page = int(query.get("per_page", 10)), int(query.get("page", 1))
        assert per_page <= 100, "WooCommerce refuses per_page above 100"
        pages = -(-len(rows) // per_page)
        if page > max(pages, 1) and self.past_end == "error":
            return error(400, "rest_post_invalid_page_number", "The page number is too large")
        headers = {"X-WP-Total": str(len(rows)), "X-WP-TotalPages": str(pages)}
        return 200, headers, rows[(page - 1) * per_page : page * per_page]

    def _batch(self, body: dict) -> Answer:
        items = body.get("update", [])
        if len(items) > BATCH_SIZE:
            return error(413, "woocommerce_rest_request_entity_too_large", "Unable to accept")
        results = []
        for item in items:
            customer = self.customers.get(item["id"])
            if customer is None:
                results.append(
                    {
                        "id": item["id"],
                        "error": {
                            "code": "woocommerce_rest_invalid_id",
                            "message": "Invalid resource ID.",
                            "data": {"status": 400},
                        },
                    }
                )
            else:
                customer.update({k: v for k, v in item.items() if k != "id"})
                results.append(dict(customer))
        return 200, {}, {"update": results}


# --------------------------------------------------------------------------- fixtures


@dataclass
class Rig:
    site: FakeSite
    transport: Transport
    connector: WooCommerceConnector
    slept: list[float]

    def sent(self, method: str | None = None, path: str = "") -> list[Sent]:
        return [
            s
            for s in self.transport.sent
            if (method is None or s.method == method)
            and (s.path.split(API, 1)[-1] == path or (path == "" and API in s.path))
        ]


@contextmanager
def rig(site_url: str, site: FakeSite | None = None, **http_options) -> Iterator[Rig]:
    site = site or FakeSite()
    transport = Transport(site)
    session = requests.Session()
    session.mount("https://", transport)
    session.mount("http://", transport)
    slept: list[float] = []
    options = {
        "session": session,
        "sleep": slept.append,
        "jitter": lambda lo, hi: hi,
        # Hosts are never resolved for real: the transport answers before any socket.
        "resolver": lambda host: ["93.184.216.34"],
        "allow_loopback": True,
        **http_options,
    }
    http = HttpClient(WOOCOMMERCE_POLICY, **options)
    try:
        yield Rig(site, transport, WooCommerceConnector(site_url, KEY, SECRET, http), slept)
    finally:
        session.close()


@pytest.fixture
def https():
    with rig("https://shop.example/shop") as r:
        yield r


@pytest.fixture
def plain():
    # Plain http is refused by the SSRF guard except to loopback (the sandbox), hence 127.0.0.1.
    with rig("http://127.0.0.1:8081/shop") as r:
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


# --------------------------------------------------------------------------- auth


def test_https_uses_basic_auth_and_asks_for_json(https):
    https.site.customer(1)
    https.connector.get_customers(["1"])
    (sent,) = https.transport.sent
    expected = base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    assert sent.headers["Accept"] == "application/json"
    assert not any(k.startswith("oauth_") for k in sent.query)


def _rfc3986(value: str) -> str:
    return quote(value, safe="")


def verify_oauth1(sent: Sent, secret: str) -> bool:
    """RFC 5849 §3.4 as WooCommerce applies it [WC-DOCS _authentication.md]: base string
    METHOD & enc(base URL) & enc(sorted, encoded query params), key ``secret&``."""
    parts = urlsplit(sent.url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    signature = dict(params)["oauth_signature"]
    method = dict(params)["oauth_signature_method"]
    pairs = sorted((_rfc3986(k), _rfc3986(v)) for k, v in params if k != "oauth_signature")
    normalised = "&".join(f"{k}={v}" for k, v in pairs)
    base_url = f"{parts.scheme}://{parts.netloc}{parts.path}"
    base = "&".join((sent.method, _rfc3986(base_url), _rfc3986(normalised)))
    digest = {"HMAC-SHA256": hashlib.sha256, "HMAC-SHA1": hashlib.sha1}[method]
    mac = hmac.new(f"{_rfc3986(secret)}&".encode(), base.encode(), digest).digest()
    return hmac.compare_digest(base64.b64encode(mac).decode(), signature)


def test_plain_http_signs_the_query_it_sends_with_oauth1(plain):
    plain.connector.orders_page(updated_since=T0, cursor=None)
    sent = plain.sent("GET", "/orders")[0]
    assert "Authorization" not in sent.headers
    assert sent.query["oauth_consumer_key"] == KEY
    assert sent.query["oauth_signature_method"] == "HMAC-SHA256"
    assert "oauth_version" not in sent.query  # WooCommerce wants it omitted
    assert len(sent.query["oauth_nonce"]) >= 32
    # The listing's own parameters are in the signed query, unchanged.
    assert sent.query["modified_after"] == "2026-11-01T11:59:59"
    assert verify_oauth1(sent, SECRET)
    assert not verify_oauth1(sent, "another secret")


def test_a_retried_request_is_signed_afresh(plain):
    """WooCommerce refuses a nonce it has seen: the retry of a 503 must carry a new one."""
    plain.site.scripted = [error(503, "internal_server_error")]
    plain.site.customer(3)
    assert [c["id"] for c in plain.connector.get_customers(["3"])] == [3]
    first, retry = plain.transport.sent
    assert first.path == retry.path
    assert first.query["oauth_nonce"] != retry.query["oauth_nonce"]
    assert first.query["oauth_signature"] != retry.query["oauth_signature"]
    assert verify_oauth1(first, SECRET) and verify_oauth1(retry, SECRET)


def test_a_refused_key_is_a_configuration_error(https):
    https.site.scripted = [error(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list")]
    with pytest.raises(ConfigurationError):
        https.connector.customers_page(updated_since=None, cursor=None)
    assert len(https.transport.sent) == 1  # never retried


def test_a_missing_rest_route_is_a_configuration_error_not_an_absent_record(https):
    https.site.scripted = [error(404, "rest_no_route", "No route was found")]
    with pytest.raises(ConfigurationError):
        https.connector.get_orders(["5"])


def test_an_html_answer_is_a_configuration_error(https):
    https.site.scripted = [(200, {"Content-Type": "text/html"}, b"<html>Coming soon</html>")]
    with pytest.raises(ConfigurationError, match="site URL"):
        https.connector.get_customers(["1"])


# --------------------------------------------------------------------------- limits


def test_a_host_429_becomes_rate_limited_with_its_retry_after():
    with rig("https://shop.example/shop", max_inline_wait=5) as r:
        r.site.scripted = [(429, {"Retry-After": "120"}, {"code": "too_many_requests"})]
        with pytest.raises(RateLimitedError) as caught:
            r.connector.customers_page(updated_since=None, cursor=None)
        assert caught.value.retry_after == 120
        assert r.slept == []


def test_a_503_with_retry_after_is_waited_out_then_retried(https):
    https.site.scripted = [(503, {"Retry-After": "3"}, {"code": "unavailable"})]
    https.site.customer(1)
    page = https.connector.customers_page(updated_since=None, cursor=None)
    assert [c["id"] for c in page.records] == [1]
    assert https.slept == [3.0] and len(https.transport.sent) == 2


# --------------------------------------------------------------------------- orders


def test_orders_request_shape(https):
    https.connector.orders_page(updated_since=T0, cursor=None)
    (live,) = https.sent("GET", "/orders")
    assert live.query == {
        "per_page": "100",
        "page": "1",
        "orderby": "modified",
        "order": "asc",
        "status": "any",
        "dates_are_gmt": "true",
        "modified_after": "2026-11-01T11:59:59",  # one second early: inclusivity UNCONFIRMED
    }


def test_a_backfill_has_no_modified_after(https):
    https.connector.orders_page(updated_since=None, cursor=None)
    assert "modified_after" not in https.sent("GET", "/orders")[0].query


@pytest.mark.parametrize("inclusive", [True, False])
@pytest.mark.parametrize("past_end", ["empty", "error"])
def test_every_order_once_oldest_change_first_then_the_trash(inclusive, past_end):
    with rig("https://shop.example/shop", FakeSite(inclusive=inclusive, past_end=past_end)) as r:
        for oid in range(1, 251):
            r.site.order(oid, T0 + timedelta(seconds=oid))
        r.site.order(900, T0 + timedelta(seconds=5), status="trash")
        records, removed = scan(r.connector.orders_page)
        assert [o["id"] for o in records] == list(range(1, 251))
        assert removed == ["900"]
        statuses = [s.query["status"] for s in r.sent("GET", "/orders")]
        assert statuses[-1] == "trash" and set(statuses[:-1]) == {"any"}


def test_each_next_page_restarts_the_window_at_the_last_modification(https):
    for oid in range(1, 151):
        https.site.order(oid, T0 + timedelta(seconds=oid))
    first = https.connector.orders_page(updated_since=None, cursor=None)
    assert len(first.records) == 100
    https.connector.orders_page(updated_since=None, cursor=first.next_cursor)
    second = https.sent("GET", "/orders")[1].query
    # Order 100 was modified at T0+100 s: the next request starts a second before, page 1.
    assert second["modified_after"] == gmt(T0 + timedelta(seconds=99)) and second["page"] == "1"


def test_an_order_modified_between_two_pages_is_neither_lost_nor_looped_on(https):
    """Order 10 moves to the end after page one: page numbers would skip order 101."""
    for oid in range(1, 201):
        https.site.order(oid, T0 + timedelta(seconds=oid))
    first = https.connector.orders_page(updated_since=None, cursor=None)
    https.site.order(10, T0 + timedelta(seconds=500))
    cursor, ids = first.next_cursor, [o["id"] for o in first.records]
    for _ in range(20):
        page = https.connector.orders_page(updated_since=None, cursor=cursor)
        ids.extend(o["id"] for o in page.records)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert cursor is None
    assert set(ids) == set(range(1, 201)) and ids.count(101) == 1 and ids[-1] == 10


@pytest.mark.parametrize("past_end", ["empty", "error"])
def test_a_page_of_one_second_steps_through_by_page_number(past_end):
    with rig("https://shop.example/shop", FakeSite(past_end=past_end)) as r:
        for oid in range(1, 131):
            r.site.order(oid, T0)  # 130 orders saved in the same second (an import)
        records, _ = scan(r.connector.orders_page)
        assert sorted(o["id"] for o in records) == list(range(1, 131)) and len(records) == 130
        window = gmt(T0 - timedelta(seconds=1))
        pages = [s.query["page"] for s in r.sent("GET", "/orders")
                 if s.query["status"] == "any" and s.query.get("modified_after") == window]  # fmt: skip
        assert pages == ["1", "2"]


def test_x_wp_totalpages_ends_the_scan_without_an_empty_page(https):
    for oid in range(1, 101):
        https.site.order(oid, T0 + timedelta(seconds=oid % 3))  # a full page, three seconds
    scan(https.connector.orders_page)
    live = [s for s in https.sent("GET", "/orders") if s.query["status"] == "any"]
    # Page one is full, and the only one: no restart window, no empty page.
    assert len(live) == 1


def test_only_gmt_dates_are_read(https):
    https.site.order(1, T0 + timedelta(hours=5))
    https.site.orders[1]["date_modified"] = "1999-01-01T00:00:00"  # site-local nonsense
    records, _ = scan(https.connector.orders_page, since=T0 + timedelta(hours=4))
    assert [o["id"] for o in records] == [1]


def test_get_orders_leaves_out_the_trashed_and_the_missing(https):
    https.site.order(1, T0)
    https.site.order(2, T0, status="trash")
    assert [o["id"] for o in https.connector.get_orders(["1", "2", "3"])] == [1]
    assert [s.path for s in https.transport.sent] == [
        f"/shop{API}/orders/1",
        f"/shop{API}/orders/2",
        f"/shop{API}/orders/3",
    ]


def test_a_non_numeric_id_is_refused_before_any_call(https):
    with pytest.raises(PermanentError):
        https.connector.get_orders(["../customers"])
    assert https.transport.sent == []


# --------------------------------------------------------------------------- customers


def test_customers_are_a_full_scan_by_id_of_the_role():
    with rig("https://shop.example/shop") as r:
        r.connector.customer_role = "subscriber"
        for cid in range(1, 131):
            r.site.customer(cid, role="subscriber" if cid != 7 else "administrator")
        records, _ = scan(r.connector.customers_page, since=T0)
        assert [c["id"] for c in records] == [i for i in range(1, 131) if i != 7]
        queries = [s.query for s in r.sent("GET", "/customers")]
        assert queries[0] == {
            "per_page": "100",
            "page": "1",
            "orderby": "id",
            "order": "asc",
            "role": "subscriber",
        }  # updated_since cannot be honoured: there is no such filter
        assert [q["page"] for q in queries] == ["1", "2"]


def test_a_full_last_page_of_customers_needs_no_empty_page(https):
    for cid in range(1, 101):
        https.site.customer(cid)
    records, _ = scan(https.connector.customers_page)
    assert len(records) == 100 and len(https.transport.sent) == 1


def test_get_customers_leaves_out_the_missing(https):
    https.site.customer(4)
    assert [c["id"] for c in https.connector.get_customers(["4", "5"])] == [4]


def test_update_customer_puts_a_partial_record(https):
    https.site.customer(4)
    updated = https.connector.update_customer("4", {"first_name": "Zoë"})
    assert updated["first_name"] == "Zoë"
    (sent,) = https.sent("PUT", "/customers/4")
    assert sent.body == {"first_name": "Zoë"}


def test_batch_updates_go_in_hundreds_with_per_item_errors(https):
    for cid in range(1, 250):
        https.site.customer(cid)
    changes = [(str(cid), {"last_name": f"L{cid}"}) for cid in range(1, 250)]
    changes.insert(150, ("99999", {"last_name": "ghost"}))
    results = https.connector.update_customers(changes)
    batches = https.sent("POST", "/customers/batch")
    assert [len(b.body["update"]) for b in batches] == [100, 100, 50]
    assert len(results) == 250
    assert results[150]["error"]["code"] == "woocommerce_rest_invalid_id"
    assert results[151]["last_name"] == "L151" and results[0]["last_name"] == "L1"


def test_an_oversized_batch_is_a_permanent_error(https):
    https.site.scripted = [error(413, "woocommerce_rest_request_entity_too_large")]
    with pytest.raises(PermanentError) as caught:
        https.connector.update_customers([("1", {"first_name": "x"})])
    assert caught.value.status == 413 and len(https.transport.sent) == 1


# --------------------------------------------------------------------------- webhooks


def test_webhooks_are_created_once_then_left_alone(https):
    https.site.webhooks[1] = {"id": 1, "topic": "order.created", "status": "active",
                              "delivery_url": "https://elsewhere.example/hook"}  # fmt: skip
    made = https.connector.ensure_webhooks("https://tandem.example/wc/7", "s3cret")
    creates = https.sent("POST", "/webhooks")
    assert sorted(c.body["topic"] for c in creates) == sorted(WEBHOOK_TOPICS)
    assert all(
        c.body["delivery_url"] == "https://tandem.example/wc/7"
        and c.body["secret"] == "s3cret"
        and c.body["status"] == "active"
        for c in creates
    )
    assert len(made) == len(WEBHOOK_TOPICS)
    before = len(https.transport.sent)
    again = https.connector.ensure_webhooks("https://tandem.example/wc/7", "s3cret")
    assert [h["id"] for h in again] == [h["id"] for h in made]
    assert {s.method for s in https.transport.sent[before:]} == {"GET"}
    assert https.site.webhooks[1]["delivery_url"] == "https://elsewhere.example/hook"


def test_a_disabled_webhook_of_ours_is_reactivated_and_a_paused_one_left(https):
    address = "https://tandem.example/wc/7"
    https.connector.ensure_webhooks(address, "s3cret")
    by_topic = {h["topic"]: h for h in https.site.webhooks.values()}
    by_topic["order.updated"]["status"] = "disabled"  # after more than 5 failed deliveries
    by_topic["order.created"]["status"] = "paused"  # the merchant's choice
    https.transport.sent.clear()
    https.connector.ensure_webhooks(address, "s3cret")
    (put,) = https.sent("PUT")
    assert put.path.endswith(f"/webhooks/{by_topic['order.updated']['id']}")
    assert put.body == {"status": "active", "secret": "s3cret"}
    assert by_topic["order.updated"]["status"] == "active"
    assert by_topic["order.created"]["status"] == "paused"
    assert https.sent("POST") == []
