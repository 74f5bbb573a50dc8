"""WooCommerce and BigCommerce connectors against their simulators: what the shared contract
test (tests/contract) does not cover — auth per attempt, limits, batches, webhook set-up."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from connectors.bigcommerce import BIGCOMMERCE_POLICY, BigCommerceConnector, rate_limit_signal
from connectors.errors import RateLimitedError
from connectors.http import HttpClient
from connectors.woocommerce import WOOCOMMERCE_POLICY, WooCommerceConnector, _OAuth1
from sandbox.bigcommerce import create_app as create_bigcommerce
from sandbox.server import serve
from sandbox.woocommerce import create_app as create_woocommerce


@pytest.fixture
def woo():
    app = create_woocommerce()
    server = serve(app)
    requests.post(
        f"{server.url}/_sandbox/sites",
        json={"name": "s", "consumer_key": "ck_1", "consumer_secret": "cs_1"},
        timeout=5,
    ).raise_for_status()
    requests.post(
        f"{server.url}/_sandbox/sites/s/seed", json={"customers": 130, "orders": 5}, timeout=5
    )
    http = HttpClient(
        WOOCOMMERCE_POLICY, allow_loopback=True, sleep=lambda s: None, max_attempts=10
    )
    yield server, WooCommerceConnector(f"{server.url}/sites/s", "ck_1", "cs_1", http)
    http.session.close()
    server.stop()
    app.extensions["woocommerce_dispatcher"].stop()


def test_each_attempt_is_signed_afresh():
    prepared = requests.Request("GET", "http://shop.test/wp-json/wc/v3/orders?page=2").prepare()
    auth = _OAuth1("ck", "cs")
    first = parse_qs(urlsplit(auth(prepared.copy()).url).query)
    second = parse_qs(urlsplit(auth(prepared.copy()).url).query)
    assert first["page"] == ["2"] and first["oauth_signature_method"] == ["HMAC-SHA256"]
    assert first["oauth_nonce"] != second["oauth_nonce"]


def test_woocommerce_retries_a_host_error_with_a_new_nonce(woo):
    server, connector = woo
    requests.patch(f"{server.url}/_sandbox/sites/s/knobs", json={"error_rate": 0.3}, timeout=5)
    # With a third of the calls failing, a retried request reusing its nonce would be refused (401,
    # a configuration error); fresh signatures make every read succeed.
    for _ in range(5):
        assert len(connector.get_customers(["3"])) == 1
    calls = requests.get(f"{server.url}/_sandbox/sites/s/calls", timeout=5).json()["calls"]
    assert 401 not in {c.get("status") for c in calls}


def test_woocommerce_full_scan_pages_by_100_and_batches_by_100(woo):
    server, connector = woo
    first = connector.customers_page(updated_since=None, cursor=None)
    second = connector.customers_page(updated_since=None, cursor=first.next_cursor)
    assert len(first.records) == 100 and len(second.records) == 30 and second.next_cursor is None
    ids = [str(c["id"]) for c in first.records + second.records]
    results = connector.update_customers(
        [(i, {"last_name": "Batch"}) for i in ids] + [("999999", {})]
    )
    assert len(results) == 131 and results[-1]["error"]["code"] == "woocommerce_rest_invalid_id"
    batches = [
        c for c in requests.get(f"{server.url}/_sandbox/sites/s/calls", timeout=5).json()["calls"]
        if c["path"].endswith("/customers/batch")
    ]  # fmt: skip
    assert len(batches) == 2


def test_woocommerce_webhook_registration_is_idempotent(woo):
    _, connector = woo
    made = connector.ensure_webhooks("http://127.0.0.1:9/hook", "s3cret")
    again = connector.ensure_webhooks("http://127.0.0.1:9/hook", "s3cret")
    assert len(made) == 7 and [h["id"] for h in made] == [h["id"] for h in again]


@pytest.fixture
def bc():
    app = create_bigcommerce()
    server = serve(app)
    requests.post(
        f"{server.url}/_sandbox/stores",
        json={"store_hash": "abc", "access_token": "tok", "client_secret": "cs", "quota": 6},
        timeout=5,
    ).raise_for_status()
    requests.post(
        f"{server.url}/_sandbox/stores/abc/seed", json={"customers": 25, "orders": 3}, timeout=5
    )
    http = HttpClient(BIGCOMMERCE_POLICY, allow_loopback=True, max_inline_wait=0.0)
    connector = BigCommerceConnector(
        "abc", "tok", http, base_url_template=f"{server.url}/stores/{{store_hash}}"
    )
    yield server, connector
    http.session.close()
    server.stop()
    app.extensions["bigcommerce_dispatcher"].stop()


def test_bigcommerce_429_waits_for_the_window_reset(bc):
    _, connector = bc
    for _ in range(3):  # two calls each, the order and its products: the quota of 6 is spent
        connector.get_orders(["101"])
    with pytest.raises(RateLimitedError) as caught:
        connector.get_orders(["101"])
    assert 0 < caught.value.retry_after <= 30


def test_bigcommerce_quota_signal_keeps_a_margin(bc):
    server, _ = bc
    response = requests.get(
        f"{server.url}/stores/abc/v2/orders/count", headers={"X-Auth-Token": "tok"}, timeout=5
    )
    signal = rate_limit_signal(response)
    assert signal is not None and signal["capacity"] < 6 and signal["remaining"] < 6
    assert signal["refill_per_second"] == pytest.approx(signal["capacity"] / 30)


def test_bigcommerce_writes_go_in_tens(bc):
    server, connector = bc
    requests.patch(f"{server.url}/_sandbox/stores/abc/knobs", json={"quota": 1000}, timeout=5)
    customers = connector.customers_page(updated_since=None, cursor=None).records
    done = connector.update_customers([(str(c["id"]), {"notes": "vip"}) for c in customers])
    assert len(done) == 25 and all(c["notes"] == "vip" for c in done)
    calls = requests.get(f"{server.url}/_sandbox/stores/abc/calls", timeout=5).json()["calls"]
    assert [c["method"] for c in calls].count("PUT") == 3
