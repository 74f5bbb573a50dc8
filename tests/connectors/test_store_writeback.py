"""write_customers of the three store connectors against their simulators: what the shared
contract test (tests/contract) does not cover — batching by cost and size, refusals that fail
one customer only, address creation, consent that cannot be written as such."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from flask import Flask, request

from connectors.bigcommerce import (
    ADDRESS_WRITE_BATCH,
    BIGCOMMERCE_POLICY,
    LOOKUP_BATCH,
    WRITE_BATCH,
    BigCommerceConnector,
)
from connectors.http import HttpClient
from connectors.shopify import (
    COSTS,
    MAX_QUERY_COST,
    WRITE_OPERATION_COST,
    WRITE_READ_NODE_COST,
)
from connectors.woocommerce import BATCH_SIZE, WOOCOMMERCE_POLICY, WooCommerceConnector
from mapping import shopify as shopify_mapping
from sandbox.bigcommerce import create_app as create_bigcommerce
from sandbox.server import serve
from sandbox.shopify import create_app as create_shopify
from sandbox.woocommerce import create_app as create_woocommerce
from tests.connectors.test_shopify_connector import SECRET, SHOP, TOKEN, Clock, Sim


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    """(url, deliveries as (headers, JSON body or None))."""
    app = Flask("receiver")
    got, lock = [], threading.Lock()

    @app.post("/hook")
    def hook():
        try:
            body = json.loads(request.get_data())
        except ValueError:
            body = None
        with lock:
            got.append((dict(request.headers), body))
        return "", 200

    server = serve(app)
    yield server.url + "/hook", got
    server.stop()


def _wait(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.02)
    return check()


# ====================================================================== Shopify


@pytest.fixture
def shop() -> Iterator[Sim]:
    clock = Clock()
    app = create_shopify(clock=clock)
    client = app.test_client()
    made = client.post(
        "/_sandbox/shops", json={"domain": SHOP, "access_token": TOKEN, "client_secret": SECRET}
    )
    assert made.status_code == 201
    server = serve(app)
    yield Sim(server.url, client, clock)
    server.stop()


def _writes(sim: Sim) -> list[dict]:
    """The write documents Shopify ran (a throttled attempt has no actual cost)."""
    return [
        c
        for c in sim.calls()
        if c["operation"] == "TandemCustomerWrite" and c["actual_cost"] is not None
    ]


def _ids(sim: Sim) -> list[str]:
    return [c["legacyResourceId"] for c in sim.dump()["customers"]]


def test_shopify_packs_mutations_by_cost_and_the_announced_bucket(shop):
    shop.post("/seed", {"customers": 150, "orders": 0, "seed": 4})
    connector = shop.connector()
    ids = _ids(shop)
    results = connector.write_customers([(i, {"last_name": f"Cost{n}"}) for n, i in enumerate(ids)])
    assert all(r.ok for r in results) and [r.key for r in results] == ids
    per_document = MAX_QUERY_COST // WRITE_OPERATION_COST  # 83 single-mutation customers
    writes = _writes(shop)
    assert len(writes) == math.ceil(150 / per_document)
    assert [w["requested_cost"] for w in writes] == [
        per_document * WRITE_OPERATION_COST,
        (150 - per_document) * WRITE_OPERATION_COST,
    ]
    reads = [
        c
        for c in shop.calls()
        if c["operation"] == "TandemCustomersForWrite" and c["actual_cost"] is not None
    ]
    assert len(reads) == 1 and reads[0]["requested_cost"] == 150 * WRITE_READ_NODE_COST
    # A smaller bucket (as Shopify announces it) makes smaller documents.
    shop.patch("/knobs", {"bucket_size": 240})
    shop.client.delete(f"/_sandbox/shops/{SHOP}/calls")
    connector.write_customers([(i, {"last_name": "Small"}) for i in ids[:30]])
    assert [w["requested_cost"] for w in _writes(shop)] == [240, 120]
    assert all(c["requested_cost"] <= 240 for c in shop.calls() if c["requested_cost"])


def test_shopify_refusals_fail_only_their_customer(shop):
    shop.post("/seed", {"customers": 4, "orders": 0, "seed": 5})
    no_email = shop.post("/customers", {"first_name": "Nomail", "phone": "+16135550111"})
    connector = shop.connector()
    a, b, c, d = _ids(shop)[:4]
    results = connector.write_customers(
        [
            (a, {"phone": "+15"}),  # E.164 in form, no real number: Shopify's userError
            (b, {"default_address.country_code": "XX"}),  # not in CountryCode: INVALID_VARIABLE
            (c, {"first_name": "Fine"}),
            (no_email["legacyResourceId"], {"consent.email": "subscribed"}),
            (d, {"note": "also fine", "tags": ("x",)}),
        ]
    )
    bad_phone, bad_country, fine, consent, also = results
    assert not bad_phone.ok and "Phone is invalid" in bad_phone.error
    assert bad_phone.details[0]["field"] == ["phone"] and not bad_phone.not_found
    assert not bad_country.ok and "invalid value" in bad_country.error
    assert not consent.ok and "email address" in consent.error
    assert consent.details[0]["mutation"] == "customerEmailMarketingConsentUpdate"
    assert fine.ok and also.ok
    dump = {n["legacyResourceId"]: n for n in shop.dump()["customers"]}
    assert dump[c]["firstName"] == "Fine" and dump[d]["tags"] == ["x"]
    assert dump[b]["defaultAddress"]["countryCodeV2"] != "XX"


def test_shopify_creates_a_default_address_and_stamps_an_address_only_write(shop):
    made = shop.post("/customers", {"first_name": "Ada", "email": "ada@example.com"})
    store_id = made["legacyResourceId"]
    connector = shop.connector()
    shop.clock.now += 1
    [result] = connector.write_customers(
        [(store_id, {"default_address.city": "Lyon", "default_address.country_code": "FR"})]
    )
    node = connector.get_customer(store_id)
    assert result.ok and node["defaultAddress"]["city"] == "Lyon"
    assert node["defaultAddress"]["countryCodeV2"] == "FR"
    # The address payload has no updatedAt: it is read afterwards.
    assert result.updated_at == shopify_mapping.customer_from_graphql(node).updated_at
    calls = shop.calls()
    assert [c["operation"] for c in calls[-3:-1]] == [
        "TandemCustomerWrite",
        "TandemCustomersUpdatedAt",
    ]
    assert calls[-2]["requested_cost"] == COSTS["customer_updated_at"]  # one id


def test_shopify_not_subscribed_unsubscribes_a_subscriber_once(shop):
    made = shop.post("/customers", {"first_name": "Cy", "email": "cy@example.com"})
    store_id = made["legacyResourceId"]
    shop.patch(f"/customers/{store_id}", {"email_marketing_state": "SUBSCRIBED"})
    connector = shop.connector()
    [first] = connector.write_customers([(store_id, {"consent.email": "not_subscribed"})])
    consent = connector.get_customer(store_id)["emailMarketingConsent"]
    assert first.ok and consent["marketingState"] == "UNSUBSCRIBED"
    writes = len(_writes(shop))
    [again] = connector.write_customers([(store_id, {"consent.email": "not_subscribed"})])
    assert again.ok and len(_writes(shop)) == writes  # already not marketed to: nothing sent


def test_shopify_api_writes_send_customers_update_and_a_no_op_sends_none(shop, receiver):
    url, got = receiver
    shop.post("/seed", {"customers": 2, "orders": 0, "seed": 6})
    shop.post("/webhooks", {"address": url, "topics": ["customers/update"]})
    connector = shop.connector()
    store_id = _ids(shop)[0]
    shop.clock.now += 1
    [result] = connector.write_customers([(store_id, {"first_name": "Hooked"})])
    assert _wait(lambda: len(got) == 1)
    headers, body = got[0]
    assert headers["X-Shopify-Topic"] == "customers/update" and body["first_name"] == "Hooked"
    assert shopify_mapping.customer_from_rest(body).updated_at == result.updated_at
    connector.write_customers([(store_id, {"first_name": "Hooked"})])
    time.sleep(0.3)
    assert len(got) == 1


def test_shopify_refuses_paths_it_cannot_write_and_ids_that_are_not_ids(shop):
    connector = shop.connector()
    with pytest.raises(ValueError, match="not writable"):
        connector.write_customers([("1", {"email": "x@example.com"})])
    with pytest.raises(ValueError, match="not a Shopify id"):
        connector.write_customers([("abc", {"first_name": "X"})])
    assert shop.calls() == []  # refused before anything was sent


# ====================================================================== WooCommerce


@pytest.fixture
def woo() -> Iterator[tuple[str, WooCommerceConnector]]:
    app = create_woocommerce()
    server = serve(app)
    requests.post(
        f"{server.url}/_sandbox/sites",
        json={"name": "s", "consumer_key": "ck_1", "consumer_secret": "cs_1"},
        timeout=5,
    ).raise_for_status()
    requests.post(
        f"{server.url}/_sandbox/sites/s/seed", json={"customers": 130, "orders": 0}, timeout=5
    )
    http = HttpClient(WOOCOMMERCE_POLICY, allow_loopback=True, sleep=lambda s: None)
    yield server.url, WooCommerceConnector(f"{server.url}/sites/s", "ck_1", "cs_1", http)
    http.session.close()
    server.stop()
    app.extensions["woocommerce_dispatcher"].stop()


def _woo_calls(url: str) -> list[dict]:
    return requests.get(f"{url}/_sandbox/sites/s/calls", timeout=5).json()["calls"]


def test_woocommerce_reads_and_batches_by_100(woo):
    url, connector = woo
    ids = [str(i) for i in range(3, 133)]
    results = connector.write_customers([(i, {"last_name": "Batch"}) for i in ids])
    assert all(r.ok and r.updated_at is not None for r in results)
    calls = _woo_calls(url)
    reads = [c for c in calls if c["method"] == "GET" and c["path"].endswith("/customers")]
    batches = [c for c in calls if c["path"].endswith("/customers/batch")]
    assert len(reads) == 2 and len(batches) == math.ceil(130 / BATCH_SIZE)
    assert (
        reads[0]["query"]["role"] == "all" and len(reads[0]["query"]["include"].split(",")) == 100
    )


def test_woocommerce_a_customer_deleted_meanwhile_is_not_found_the_rest_written(woo, monkeypatch):
    url, connector = woo
    stale = connector._customers_by_id(["3", "4"])
    requests.delete(f"{url}/_sandbox/sites/s/customers/3", timeout=5).raise_for_status()
    monkeypatch.setattr(connector, "_customers_by_id", lambda ids: stale)
    gone, kept = connector.write_customers([("3", {"first_name": "X"}), ("4", {"first_name": "Y"})])
    assert gone.not_found and not gone.ok and gone.details["code"] == "woocommerce_rest_invalid_id"
    assert kept.ok and connector.get_customers(["4"])[0]["first_name"] == "Y"


def test_woocommerce_api_writes_send_customer_updated(woo, receiver):
    _, connector = woo
    hook_url, got = receiver
    connector.ensure_webhooks(hook_url, "s3cret")
    [result] = connector.write_customers([("5", {"phone": "+4930123456"})])
    assert result.ok

    def updated():
        return [b for h, b in got if h.get("X-Wc-Webhook-Topic") == "customer.updated"]

    assert _wait(lambda: updated())
    assert updated()[0]["id"] == 5 and updated()[0]["billing"]["phone"] == "+4930123456"


# ====================================================================== BigCommerce


@pytest.fixture
def bc():
    app = create_bigcommerce()
    server = serve(app)
    requests.post(
        f"{server.url}/_sandbox/stores",
        json={"store_hash": "abc", "access_token": "tok", "client_secret": "cs", "quota": 1000},
        timeout=5,
    ).raise_for_status()
    requests.post(
        f"{server.url}/_sandbox/stores/abc/seed", json={"customers": 25, "orders": 0}, timeout=5
    )
    http = HttpClient(BIGCOMMERCE_POLICY, allow_loopback=True, max_inline_wait=0.0)
    connector = BigCommerceConnector(
        "abc", "tok", http, base_url_template=f"{server.url}/stores/{{store_hash}}"
    )
    yield server.url, app, connector
    http.session.close()
    server.stop()
    app.extensions["bigcommerce_dispatcher"].stop()


def _bc_calls(url: str) -> list[dict]:
    return requests.get(f"{url}/_sandbox/stores/abc/calls", timeout=5).json()["calls"]


def test_bigcommerce_writes_customers_and_addresses_in_tens(bc):
    url, _, connector = bc
    ids = [str(i) for i in range(1, 26)]
    patch = {"note": "vip", "default_address.city": "Boise"}
    results = connector.write_customers([(i, patch) for i in ids])
    assert all(r.ok and r.updated_at is not None for r in results)
    calls = _bc_calls(url)
    puts = [c["path"].rsplit("/v3", 1)[1] for c in calls if c["method"] == "PUT"]
    assert puts.count("/customers") == math.ceil(25 / WRITE_BATCH)
    assert puts.count("/customers/addresses") == math.ceil(25 / ADDRESS_WRITE_BATCH)
    reads = [c for c in calls if c["method"] == "GET"]
    assert len(reads) == 2 * math.ceil(25 / LOOKUP_BATCH)  # before, and after the addresses
    again = connector.get_customers(ids)
    assert {c["notes"] for c in again} == {"vip"}
    assert {c["addresses"][0]["city"] for c in again} == {"Boise"}


def test_bigcommerce_refusals_fail_only_their_customer(bc):
    _, app, connector = bc
    store = app.extensions["bigcommerce_state"].stores["abc"]
    twin = {**store.customers[3].addresses[0], "id": 9003, "city": "Elsewhere"}
    store.customers[3].addresses.append(twin)
    store.customers[4].addresses.clear()
    results = connector.write_customers(
        [
            ("1", {"first_name": None}),  # minLength 1: a 422 for the batch, split to this one
            ("2", {"first_name": "Fine"}),
            # Would make the first address identical to the second: left unchanged.
            ("3", {"default_address.city": "Elsewhere"}),
            ("4", {"default_address.city": "Nowhere"}),  # no address to update
        ]
    )
    cleared, fine, duplicate, no_address = results
    assert not cleared.ok and "first_name" in cleared.error and not cleared.not_found
    assert fine.ok
    assert not duplicate.ok and "duplicate" in duplicate.error and not duplicate.not_found
    assert not no_address.ok and "no address" in no_address.error
    assert store.customers[2].first_name == "Fine" and store.customers[1].first_name


def test_bigcommerce_a_customer_deleted_meanwhile_is_not_found(bc, monkeypatch):
    url, _, connector = bc
    stale = connector.get_customers(["6", "7"])
    requests.delete(f"{url}/_sandbox/stores/abc/customers/6", timeout=5).raise_for_status()
    real = connector.get_customers
    calls = iter([stale])
    monkeypatch.setattr(connector, "get_customers", lambda ids: next(calls, None) or real(ids))
    gone, kept = connector.write_customers([("6", {"note": "x"}), ("7", {"note": "y"})])
    assert not gone.ok and gone.not_found
    assert kept.ok


def test_bigcommerce_address_writes_fire_the_address_event_not_customer_updated(bc, receiver):
    url, _, connector = bc
    hook_url, got = receiver
    for scope in ("store/customer/updated", "store/customer/address/updated"):
        requests.post(
            f"{url}/stores/abc/v3/hooks",
            json={"scope": scope, "destination": hook_url, "is_active": True},
            headers={"X-Auth-Token": "tok"},
            timeout=5,
        ).raise_for_status()
    [result] = connector.write_customers([("8", {"default_address.line1": "9 Elm St"})])
    assert result.ok
    assert _wait(lambda: got)
    time.sleep(0.3)
    scopes = [b["scope"] for _, b in got]
    assert scopes == ["store/customer/address/updated"]
    assert got[0][1]["data"] == {"type": "customer", "id": 8, "address": {"customer_id": 8}}
