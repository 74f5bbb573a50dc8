"""The WooCommerce simulator behaves as the reference says WooCommerce does (§2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import urlencode

import pytest
from woocommerce.oauth import OAuth

from sandbox.woocommerce import create_app
from tests.sandbox.conftest import wait_for

KEY, SECRET = "ck_test_0123456789", "cs_test_0123456789"
API = "/sites/berlin/wp-json/wc/v3"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim():
    clock = Clock()
    app = create_app(clock=clock)
    client = app.test_client()
    made = client.post(
        "/_sandbox/sites",
        json={"name": "berlin", "consumer_key": KEY, "consumer_secret": SECRET,
              "timezone": "Europe/Berlin", "currency": "EUR", "country": "DE"},
    )  # fmt: skip
    assert made.status_code == 201
    client.post("/_sandbox/sites/berlin/seed", json={"customers": 12, "orders": 30, "seed": 4})
    yield app, client, clock
    app.extensions["woocommerce_dispatcher"].stop()


def signed(path: str, params: dict | None = None, method: str = "GET", *, timestamp=None) -> str:
    url = f"http://localhost{API}{path}" + (f"?{urlencode(params)}" if params else "")
    oauth = OAuth(url, KEY, SECRET, version="wc/v3", method=method)
    if timestamp is not None:
        oauth.timestamp = timestamp
    return oauth.get_oauth_url().removeprefix("http://localhost")


def test_oauth_from_the_woocommerce_package_is_accepted(sim):
    _, client, _ = sim
    response = client.get(signed("/orders", {"per_page": 5}))
    assert response.status_code == 200 and len(response.get_json()) == 5


def test_forged_stale_and_replayed_signatures_are_refused(sim):
    _, client, clock = sim
    url = signed("/orders")
    assert client.get(url.replace("per_page", "x") + "&extra=1").status_code == 401  # tampered
    assert client.get(url).status_code == 200
    replay = client.get(url)  # the same nonce again
    assert replay.status_code == 401 and "nonce" in replay.get_json()["message"]
    stale = signed("/orders", timestamp=int(clock.now) - 16 * 60)
    assert client.get(stale).status_code == 401
    basic = client.get(
        f"{API}/orders",
        headers={"Authorization": "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()},
    )
    assert basic.status_code == 401  # Basic auth only over HTTPS


def test_pagination_headers_and_the_per_page_ceiling(sim):
    _, client, _ = sim
    response = client.get(signed("/orders", {"per_page": 7, "page": 2}))
    assert response.headers["X-WP-Total"] == "30" and response.headers["X-WP-TotalPages"] == "5"
    assert 'rel="next"' in response.headers["Link"] and 'rel="prev"' in response.headers["Link"]
    assert client.get(signed("/orders", {"per_page": 101})).status_code == 400


def test_modified_after_is_read_in_site_time_unless_dates_are_gmt(sim):
    _, client, _ = sim
    orders = client.get(
        signed("/orders", {"per_page": 100, "orderby": "modified", "order": "asc"})
    ).get_json()
    pivot = orders[len(orders) // 2]["date_modified_gmt"]
    gmt = client.get(
        signed("/orders", {"per_page": 100, "modified_after": pivot, "dates_are_gmt": "true"})
    ).get_json()
    local = client.get(signed("/orders", {"per_page": 100, "modified_after": pivot})).get_json()
    assert all(o["date_modified_gmt"] > pivot for o in gmt)
    # Berlin is ahead of UTC: the same wall-clock value read as local time is an earlier instant.
    assert len(local) > len(gmt)
    assert orders[0]["date_modified"] != orders[0]["date_modified_gmt"]


def test_batch_limit_trash_and_forced_deletes(sim):
    _, client, _ = sim
    too_many = {"update": [{"id": i} for i in range(101)]}
    response = client.post(signed("/customers/batch", method="POST"), json=too_many)
    assert response.status_code == 413
    assert response.get_json()["code"] == "woocommerce_rest_request_entity_too_large"
    order = client.get(signed("/orders", {"per_page": 1})).get_json()[0]
    assert client.delete(signed(f"/orders/{order['id']}", method="DELETE")).status_code == 200
    assert client.delete(signed(f"/orders/{order['id']}", method="DELETE")).status_code == 410
    listed = client.get(signed("/orders", {"per_page": 100})).get_json()
    assert order["id"] not in {o["id"] for o in listed}  # status=any leaves the trash out
    customer = client.get(signed("/customers", {"per_page": 1})).get_json()[0]
    refused = client.delete(signed(f"/customers/{customer['id']}", method="DELETE"))
    assert refused.status_code == 501


def test_webhooks_ping_sign_coalesce_and_disable(sim, receiver):
    _, client, _ = sim
    url, got, status = receiver
    made = client.post(signed("/webhooks", method="POST"),
                       json={"topic": "customer.updated", "delivery_url": url, "secret": "s3cret"})  # fmt: skip
    assert made.status_code == 201
    assert (
        wait_for(lambda: len(got) == 1)
        and got[0][1] == f"webhook_id={made.get_json()['id']}".encode()
    )
    client.patch("/_sandbox/sites/berlin/knobs", json={"webhook_delay_ms": 300})
    customer = client.get(signed("/customers", {"per_page": 1})).get_json()[0]
    for name in ("Erste", "Zweite"):  # two changes while one delivery is pending: one delivery
        client.patch(
            f"/_sandbox/sites/berlin/customers/{customer['id']}", json={"first_name": name}
        )
    assert wait_for(lambda: len(got) == 2)
    time.sleep(0.5)
    assert len(got) == 2
    headers, body = got[1]
    expected = base64.b64encode(hmac.new(b"s3cret", body, hashlib.sha256).digest()).decode()
    assert headers["X-Wc-Webhook-Signature"] == expected
    assert headers["X-Wc-Webhook-Topic"] == "customer.updated" and b'"Zweite"' in body

    status["code"] = 500
    client.patch("/_sandbox/sites/berlin/knobs", json={"webhook_delay_ms": 0})
    for n in range(7):
        client.patch(
            f"/_sandbox/sites/berlin/customers/{customer['id']}", json={"first_name": f"N{n}"}
        )
        wait_for(lambda n=n: len(got) >= 3 + n, 2)
    hooks = client.get("/_sandbox/sites/berlin/webhooks").get_json()["webhooks"]
    assert hooks[0]["status"] == "disabled"  # after more than five failures in a row


def test_summary_and_control_validation(sim):
    _, client, _ = sim
    summary = client.get("/_sandbox/sites/berlin/summary").get_json()
    assert len(summary["customers"]) == 12 and len(summary["orders"]) == 30
    assert any(o["customer_id"] is None and o["email"] for o in summary["orders"])  # guests
    assert client.patch("/_sandbox/sites/berlin/knobs", json={"error_rate": 2}).status_code == 400
    assert client.patch("/_sandbox/sites/berlin/knobs", json={"nope": 1}).status_code == 400
    assert client.post("/_sandbox/sites", json={"name": "Bad Name!"}).status_code == 400
    assert client.get("/_sandbox/sites/unknown/summary").status_code == 404
