"""The BigCommerce simulator behaves as the reference says BigCommerce does (§3)."""

from __future__ import annotations

import json

import pytest

from sandbox.bigcommerce import create_app
from tests.sandbox.conftest import wait_for

TOKEN = "bc-token-0123456789"
V2, V3 = "/stores/abc123/v2", "/stores/abc123/v3"
AUTH = {"X-Auth-Token": TOKEN}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim():
    clock = Clock()
    app = create_app(clock=clock)
    client = app.test_client()
    made = client.post(
        "/_sandbox/stores",
        json={"store_hash": "abc123", "access_token": TOKEN, "client_secret": "cs", "quota": 40},
    )
    assert made.status_code == 201
    client.post("/_sandbox/stores/abc123/seed", json={"customers": 12, "orders": 30, "seed": 2})
    yield app, client, clock
    app.extensions["bigcommerce_dispatcher"].stop()


def test_token_and_the_shared_quota(sim):
    _, client, clock = sim
    assert client.get(f"{V2}/orders").status_code == 401
    first = client.get(f"{V2}/orders", headers=AUTH)
    assert first.headers["X-Rate-Limit-Requests-Quota"] == "40"
    assert first.headers["X-Rate-Limit-Time-Window-Ms"] == "30000"
    left = int(first.headers["X-Rate-Limit-Requests-Left"])
    second = client.get(f"{V3}/customers", headers=AUTH)
    assert int(second.headers["X-Rate-Limit-Requests-Left"]) == left - 1
    for _ in range(left):
        client.get(f"{V2}/orders/count", headers=AUTH)
    limited = client.get(f"{V2}/orders", headers=AUTH)
    assert limited.status_code == 429
    assert 0 < int(limited.headers["X-Rate-Limit-Time-Reset-Ms"]) <= 30000
    clock.now += 30
    assert client.get(f"{V2}/orders", headers=AUTH).status_code == 200


def test_v2_orders_page_by_date_modified_to_a_204(sim):
    _, client, _ = sim
    orders = client.get(
        f"{V2}/orders", query_string={"sort": "date_modified:asc", "limit": 250}, headers=AUTH
    )
    rows = orders.get_json()
    assert len(rows) == 30 and rows[0]["date_modified"].endswith("+0000")
    assert all(len(r["total_inc_tax"].split(".")[1]) == 4 for r in rows)
    past = client.get(f"{V2}/orders", query_string={"page": 2, "limit": 250}, headers=AUTH)
    assert past.status_code == 204 and past.data == b""
    client.patch("/_sandbox/stores/abc123/knobs", json={"empty_page_status": 200})
    assert (
        client.get(f"{V2}/orders", query_string={"page": 2, "limit": 250}, headers=AUTH).get_json()
        == []
    )
    pivot = rows[15]["date_modified"]
    rfc = client.get(
        f"{V2}/orders", query_string={"min_date_modified": pivot, "limit": 250}, headers=AUTH
    )
    assert rfc.status_code == 200 and len(rfc.get_json()) >= 15
    products = client.get(f"{V2}/orders/{rows[0]['id']}/products", headers=AUTH).get_json()
    assert products and products[0]["order_id"] == rows[0]["id"]


def test_archived_orders_leave_lists_but_not_the_store(sim):
    _, client, _ = sim
    order = client.get(f"{V2}/orders", headers=AUTH).get_json()[0]
    assert client.delete(f"{V2}/orders/{order['id']}", headers=AUTH).status_code == 204
    listed = client.get(f"{V2}/orders", query_string={"limit": 250}, headers=AUTH).get_json()
    assert order["id"] not in {o["id"] for o in listed}
    again = client.get(f"{V2}/orders/{order['id']}", headers=AUTH).get_json()
    assert again["is_deleted"] is True


def test_v3_customers_pagination_filters_and_batch_limit(sim):
    _, client, _ = sim
    body = client.get(
        f"{V3}/customers", query_string={"limit": 5, "page": 2}, headers=AUTH
    ).get_json()
    pagination = body["meta"]["pagination"]
    assert pagination["total"] == 12 and pagination["total_pages"] == 3 and pagination["count"] == 5
    newest = max(
        c["date_modified"] for c in client.get(f"{V3}/customers", headers=AUTH).get_json()["data"]
    )
    since = client.get(f"{V3}/customers", query_string={"date_modified:min": newest}, headers=AUTH)
    assert [c["date_modified"] for c in since.get_json()["data"]] == [newest]
    too_many = [{"id": i, "first_name": "x"} for i in range(1, 12)]
    assert client.put(f"{V3}/customers", json=too_many, headers=AUTH).status_code == 413


def test_hooks_are_thin_retried_with_one_hash_then_deactivated(sim, receiver):
    _, client, _ = sim
    url, got, status = receiver
    hook = {"scope": "store/customer/updated", "destination": url, "headers": {"X-Secret": "s"}}
    made = client.post(f"{V3}/hooks", json=hook, headers=AUTH)
    assert made.status_code == 200 and made.get_json()["data"]["is_active"] is True
    assert client.post(f"{V3}/hooks", json=hook, headers=AUTH).status_code == 422  # duplicate
    client.patch(
        "/_sandbox/stores/abc123/knobs", json={"webhook_time_scale": 200_000, "webhook_delay_ms": 0}
    )
    status["code"] = 500
    client.patch("/_sandbox/stores/abc123/customers/3", json={"first_name": "Ana"})
    assert wait_for(lambda: len(got) == 12, 20)  # the first try and eleven retries
    payloads = [json.loads(body) for _, body in got]
    assert {p["hash"] for p in payloads} == {payloads[0]["hash"]}
    assert payloads[0]["data"] == {"type": "customer", "id": 3}
    assert payloads[0]["producer"] == "stores/abc123" and got[0][0]["X-Secret"] == "s"
    assert wait_for(
        lambda: not client.get(f"{V3}/hooks", headers=AUTH).get_json()["data"][0]["is_active"]
    )


def test_summary_and_control_validation(sim):
    _, client, _ = sim
    summary = client.get("/_sandbox/stores/abc123/summary").get_json()
    assert len(summary["customers"]) == 12 and len(summary["orders"]) == 30
    assert (
        client.patch("/_sandbox/stores/abc123/knobs", json={"empty_page_status": 201}).status_code
        == 400
    )
    assert client.patch("/_sandbox/stores/abc123/knobs", json={"nope": 1}).status_code == 400
    assert client.post("/_sandbox/stores", json={"store_hash": "Bad!"}).status_code == 400
    assert client.get("/_sandbox/stores/unknown/summary").status_code == 404
