"""The Shopify connector against the Shopify simulator, served in-process on 127.0.0.1.

The simulator's cost bucket and the HttpClient's sleeps share one fake clock, so throttling
waits are exact and take no real time. Each test names the behaviour it checks.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pytest
import requests

from connectors.errors import (
    ConfigurationError,
    PermanentError,
    RetriableError,
)
from connectors.http import Action, HttpClient
from connectors.shopify import (
    COSTS,
    CUSTOMERS_PAGE_SIZE,
    MAX_QUERY_COST,
    ORDER_LINE_ITEMS,
    ORDERS_PAGE_SIZE,
    SHOPIFY_POLICY,
    BulkOperationInProgress,
    ShopifyConnector,
    normalise_shop_domain,
    throttle_status,
)
from sandbox.server import serve
from sandbox.shopify import create_app

SHOP = "acme.myshopify.com"
TOKEN = "shpat_0123456789abcdef0123456789abcdef"
SECRET = "shpss_secret"


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


class RecordingSession(requests.Session):
    """Keeps the URL, headers and body of every request sent (to prove what goes where)."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.bodies: list[bytes] = []

    def send(self, request, **kwargs):  # type: ignore[override]
        self.sent.append((request.url, dict(request.headers)))
        self.bodies.append(request.body or b"")
        return super().send(request, **kwargs)


@dataclass
class Sim:
    url: str
    client: object
    clock: Clock
    sleeps: list[float] = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.clock.now += seconds

    def post(self, path: str, body: dict) -> dict:
        response = self.client.post(f"/_sandbox/shops/{SHOP}{path}", json=body)
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()

    def patch(self, path: str, body: dict) -> dict:
        response = self.client.patch(f"/_sandbox/shops/{SHOP}{path}", json=body)
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    def dump(self) -> dict:
        return self.client.get(f"/_sandbox/shops/{SHOP}/dump").get_json()

    def calls(self) -> list[dict]:
        return self.client.get(f"/_sandbox/shops/{SHOP}/calls").get_json()["calls"]

    def connector(
        self,
        *,
        token: str = TOKEN,
        api_version: str = "2026-01",
        session: requests.Session | None = None,
    ) -> ShopifyConnector:
        http = HttpClient(SHOPIFY_POLICY, allow_loopback=True, sleep=self.sleep, session=session)
        return ShopifyConnector(
            shop="acme",
            access_token=token,
            http=http,
            base_url_template=f"{self.url}/{{shop}}",
            api_version=api_version,
        )


@pytest.fixture
def sim() -> Iterator[Sim]:
    clock = Clock()
    app = create_app(clock=clock)
    client = app.test_client()
    created = client.post(
        "/_sandbox/shops", json={"domain": SHOP, "access_token": TOKEN, "client_secret": SECRET}
    )
    assert created.status_code == 201
    server = serve(app)
    yield Sim(server.url, client, clock)
    server.stop()


def wait_for(predicate: Callable[[], object], timeout: float = 10.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail("condition not reached in time")
        time.sleep(0.02)
    return value


def parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


# ------------------------------------------------------------------ cost cap


def test_every_declared_query_stays_within_the_cost_cap(sim):
    sim.post("/seed", {"customers": 150, "orders": 40, "seed": 3})
    order = sim.post("/orders", {"line_items": 9})
    connector = sim.connector()
    customer_id = sim.dump()["customers"][0]["legacyResourceId"]
    connector.customers_page(updated_since=None, cursor=None)
    connector.orders_page(updated_since=None, cursor=None)
    connector.get_customer(customer_id)
    connector.get_order(order["legacyResourceId"])
    connector.update_customer(customer_id, {"note": "cost check"})
    operation = connector.start_bulk("customers")
    connector.bulk_status(operation)
    names = {
        "TandemCustomers": "customers",
        "TandemOrders": "orders",
        "TandemOrderLineItems": "line_items",
        "TandemCustomer": "customer",
        "TandemOrder": "order",
        "TandemCustomerUpdate": "customer_update",
        "TandemBulkRun": "bulk_run",
        "TandemBulkStatus": "bulk_status",
    }
    seen = {}
    for call in sim.calls():
        if call["operation"] in names:
            seen[names[call["operation"]]] = call["requested_cost"]
    assert set(seen) == set(names.values())  # every declared query was exercised
    for name, requested in seen.items():
        assert requested <= MAX_QUERY_COST, name
        assert requested == COSTS[name], name  # the declared arithmetic is the server's
    assert CUSTOMERS_PAGE_SIZE <= 250
    assert ORDERS_PAGE_SIZE <= 250


# ------------------------------------------------------------------ incremental reads


def test_incremental_pages_cover_everything_then_only_what_changed(sim):
    sim.post("/seed", {"customers": 300, "orders": 0, "seed": 1})
    session = RecordingSession()
    connector = sim.connector(session=session)
    seen, cursor, pages = [], None, 0
    while True:
        page = connector.customers_page(updated_since=None, cursor=cursor)
        pages += 1
        seen += [c["id"] for c in page.records]
        assert page.requested_cost == COSTS["customers"]
        assert page.throttle["maximumAvailable"] == 1000.0
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == math.ceil(300 / CUSTOMERS_PAGE_SIZE)
    assert len(seen) == len(set(seen)) == 300
    checkpoint = max(parse(c["updatedAt"]) for c in sim.dump()["customers"])
    changed = [c["legacyResourceId"] for c in sim.dump()["customers"][:2]]
    for customer_id in changed:
        sim.patch(f"/customers/{customer_id}", {"note": "changed after the checkpoint"})
    page = connector.customers_page(updated_since=checkpoint, cursor=None)
    found = {c["legacyResourceId"] for c in page.records}
    assert set(changed) <= found
    assert all(parse(c["updatedAt"]) >= checkpoint for c in page.records)
    assert len(found) < 10
    assert page.next_cursor is None
    # The filter went out quoted, in UTC: unquoted date-times lose their time part.
    sent = json.loads(session.bodies[-1])["variables"]["query"]
    assert sent == f"updated_at:>='{checkpoint.strftime('%Y-%m-%dT%H:%M:%SZ')}'"


def test_orders_pages_end_and_complete_long_orders(sim):
    sim.post("/seed", {"customers": 10, "orders": 40, "seed": 2})
    long_order = sim.post("/orders", {"line_items": ORDER_LINE_ITEMS * 2 + 3})
    connector = sim.connector()
    orders, cursor = {}, None
    while True:
        page = connector.orders_page(updated_since=None, cursor=cursor)
        orders.update({o["id"]: o for o in page.records})
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    truth = {o["id"]: [li["id"] for li in o["lineItems"]["nodes"]] for o in sim.dump()["orders"]}
    assert set(orders) == set(truth)
    for order_id, order in orders.items():
        assert [li["id"] for li in order["lineItems"]["nodes"]] == truth[order_id]
        assert order["lineItems"]["pageInfo"]["hasNextPage"] is False
    assert len(orders[long_order["id"]]["lineItems"]["nodes"]) == ORDER_LINE_ITEMS * 2 + 3
    single = connector.get_order(long_order["legacyResourceId"])
    assert [li["id"] for li in single["lineItems"]["nodes"]] == truth[long_order["id"]]
    assert connector.get_order("1") is None
    assert connector.get_customer("1") is None


# ------------------------------------------------------------------ throttling


@pytest.mark.parametrize("status", [200, 429])
def test_throttled_answers_are_waited_out_and_retried(sim, status):
    sim.post("/seed", {"customers": 400, "orders": 0, "seed": 5})
    sim.patch("/knobs", {"restore_rate": 50, "throttle_status": status})
    connector = sim.connector()
    first = connector.customers_page(updated_since=None, cursor=None)
    available = first.throttle["currentlyAvailable"]
    second = connector.customers_page(updated_since=None, cursor=first.next_cursor)
    assert len(second.records) == CUSTOMERS_PAGE_SIZE
    # The wait was what the bucket needed: (requested - available) / restoreRate.
    assert sim.sleeps
    assert sum(sim.sleeps) >= (COSTS["customers"] - available) / 50 - 1e-6
    statuses = [c["status"] for c in sim.calls() if c["operation"] == "TandemCustomers"]
    assert statuses == [200, status, 200]


# ------------------------------------------------------------------ bulk export


def test_bulk_export_reads_in_chunks_without_loss_or_duplicates(sim):
    sim.post("/seed", {"customers": 20, "orders": 75, "seed": 9})
    session = RecordingSession()
    connector = sim.connector(session=session)
    operation = connector.start_bulk("orders")
    status = wait_for(lambda: (s := connector.bulk_status(operation)).status == "COMPLETED" and s)
    assert status.object_count > 75
    truth = {o["id"]: [li["id"] for li in o["lineItems"]["nodes"]] for o in sim.dump()["orders"]}
    offset, chunks, seen = 0, 0, []
    while offset is not None:
        chunk = connector.read_bulk(status.url, offset=offset, max_roots=17)
        chunks += 1
        assert len(chunk.records) <= 17
        for order in chunk.records:
            seen.append(order["id"])
            assert [li["id"] for li in order["lineItems"]["nodes"]] == truth[order["id"]]
            assert "__parentId" not in str(order)
        offset = chunk.next_offset
    assert sorted(seen) == sorted(truth)
    assert len(seen) == len(set(seen))
    assert chunks == math.ceil(75 / 17)
    ranges = [c["range"] for c in sim.calls() if c["path"].startswith("/_bulk/")]
    assert ranges[0] == "bytes=0-"
    assert all(r.startswith("bytes=") for r in ranges)
    bulk_requests = [headers for url, headers in session.sent if "/_bulk/" in url]
    assert bulk_requests
    assert all("X-Shopify-Access-Token" not in h for h in bulk_requests)  # storage, not Shopify


def test_bulk_customers_and_an_empty_export(sim):
    connector = sim.connector()
    empty = connector.start_bulk("customers")
    done = wait_for(lambda: (s := connector.bulk_status(empty)).status == "COMPLETED" and s)
    assert done.url is None
    assert done.object_count == 0
    sim.post("/seed", {"customers": 12, "orders": 0, "seed": 4})
    operation = connector.start_bulk("customers")
    status = wait_for(lambda: (s := connector.bulk_status(operation)).status == "COMPLETED" and s)
    chunk = connector.read_bulk(status.url, offset=0, max_roots=250)
    assert chunk.next_offset is None
    assert sorted(c["id"] for c in chunk.records) == sorted(
        c["id"] for c in sim.dump()["customers"]
    )


def test_a_running_bulk_query_blocks_the_next_one(sim):
    sim.post("/seed", {"customers": 3, "orders": 3, "seed": 4})
    sim.patch("/knobs", {"bulk_max_concurrent": 1, "bulk_delay_s": 30})
    connector = sim.connector()
    running = connector.start_bulk("customers")
    with pytest.raises(BulkOperationInProgress) as caught:
        connector.start_bulk("orders")
    assert isinstance(caught.value, RetriableError)
    assert running in str(caught.value)
    cancel = """mutation($id: ID!) { bulkOperationCancel(id: $id) { userErrors { message } } }"""
    sim.client.post(
        f"/{SHOP}/admin/api/2026-01/graphql.json",
        json={"query": cancel, "variables": {"id": running}},
        headers={"X-Shopify-Access-Token": TOKEN},
    )
    assert wait_for(lambda: connector.bulk_status(running).status == "CANCELED")


def test_a_failed_bulk_operation_reports_its_error_code(sim):
    sim.patch("/knobs", {"bulk_fail": True})
    connector = sim.connector()
    operation = connector.start_bulk("orders")
    status = wait_for(lambda: (s := connector.bulk_status(operation)).status == "FAILED" and s)
    assert status.error_code == "INTERNAL_SERVER_ERROR"
    assert status.url is None


# ------------------------------------------------------------------ writing back


def test_update_customer_returns_the_node_and_raises_user_errors(sim):
    sim.post("/seed", {"customers": 2, "orders": 0, "seed": 6})
    connector = sim.connector()
    customer_id = sim.dump()["customers"][0]["legacyResourceId"]
    updated = connector.update_customer(customer_id, {"firstName": "Zoë", "tags": ["VIP", "Noël"]})
    assert updated["firstName"] == "Zoë"
    assert updated["tags"] == ["Noël", "VIP"]
    with pytest.raises(PermanentError) as bad_email:
        connector.update_customer(customer_id, {"email": "not-an-email"})
    assert bad_email.value.details == [{"field": ["email"], "message": "Email is invalid"}]
    with pytest.raises(PermanentError) as unknown:
        connector.update_customer("42", {"firstName": "Nobody"})
    assert unknown.value.details == [{"field": ["id"], "message": "Customer does not exist"}]


# ------------------------------------------------------------------ configuration and secrets


@pytest.mark.parametrize(
    "value",
    [
        "acme",
        "ACME",
        "acme.myshopify.com",
        "https://acme.myshopify.com/",
        "http://acme.myshopify.com/admin",
        "admin.shopify.com/store/acme",
        "https://admin.shopify.com/store/acme/orders",
        "  acme.myshopify.com  ",
    ],
)
def test_shop_domains_are_normalised(value):
    assert normalise_shop_domain(value) == "acme.myshopify.com"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "acme.com",
        "acme.myshopify.com.evil.com",
        "https://evil.com/acme.myshopify.com",
        "evil.com/store/acme",
        "-acme",
        "ac me",
        "a.b.myshopify.com",
        "acme.myshopify.io",
    ],
)
def test_anything_else_is_a_configuration_error(value):
    with pytest.raises(ConfigurationError):
        normalise_shop_domain(value)


def test_a_wrong_version_or_token_is_refused_and_the_token_never_logged(sim, caplog):
    caplog.set_level(logging.DEBUG)
    sim.post("/seed", {"customers": 2, "orders": 0, "seed": 1})
    sim.connector().customers_page(updated_since=None, cursor=None)
    with pytest.raises(ConfigurationError):
        sim.connector(api_version="2026-13").customers_page(updated_since=None, cursor=None)
    wrong = "shpat_ffffffffffffffffffffffffffffffff"
    with pytest.raises(Exception) as refused:  # noqa: PT011 - AuthExpiredError or what refresh gives up with
        sim.connector(token=wrong).customers_page(updated_since=None, cursor=None)
    assert "Invalid API key or access token" in str(refused.value)
    for secret in (TOKEN, wrong):
        assert secret not in caplog.text
        assert secret not in str(refused.value)


# ------------------------------------------------------------------ policy details


def _response(status: int, body: dict, headers: dict | None = None) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers.update({"Content-Type": "application/json; charset=utf-8", **(headers or {})})
    return response


THROTTLED = {
    "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
    "extensions": {
        "cost": {
            "requestedQueryCost": 500,
            "actualQueryCost": None,
            "throttleStatus": {
                "maximumAvailable": 1000.0,
                "currentlyAvailable": 100.0,
                "restoreRate": 50.0,
            },
        }
    },
}


@pytest.mark.parametrize("status", [200, 429])
def test_policy_reads_throttling_from_the_body_whatever_the_status(status):
    response = _response(status, THROTTLED)
    assert SHOPIFY_POLICY.classify(response) is Action.RATE_LIMITED
    assert SHOPIFY_POLICY.retry_after(response) == pytest.approx((500 - 100) / 50)
    assert throttle_status(response) == {
        "maximumAvailable": 1000.0,
        "currentlyAvailable": 100.0,
        "restoreRate": 50.0,
    }


def test_policy_fails_other_graphql_errors_with_their_messages():
    response = _response(
        200,
        {
            "errors": [
                {
                    "message": "Query cost is 2302, which exceeds the single query max cost "
                    "limit (1000).",
                    "extensions": {"code": "MAX_COST_EXCEEDED"},
                }
            ]
        },
    )
    assert SHOPIFY_POLICY.classify(response) is Action.FAIL
    assert "exceeds the single query max cost" in SHOPIFY_POLICY.error_message(response)
    unauthorised = _response(
        401,
        {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"},
    )
    assert SHOPIFY_POLICY.statuses[401] is Action.REFRESH_AUTH
    assert SHOPIFY_POLICY.error_message(unauthorised).startswith("[API] Invalid API key")
    assert SHOPIFY_POLICY.classify(_response(200, {"data": {"shop": {"id": "1"}}})) is None


def test_policy_never_reads_a_streamed_bulk_file():
    class Unreadable(io.RawIOBase):
        def readinto(self, buffer):
            raise AssertionError("the policy read the bulk file")

    response = requests.Response()
    response.status_code = 206
    response.headers["Content-Type"] = "application/jsonl"
    response.raw = Unreadable()
    assert SHOPIFY_POLICY.classify(response) is None
    assert throttle_status(response) is None
