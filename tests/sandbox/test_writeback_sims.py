"""What the store simulators do with customer writes made through their APIs, as the platforms
do: validation (Shopify's userErrors with HTTP 200, WooCommerce's per-item batch errors,
BigCommerce's 422), modification times, and the webhooks a write sends (or, when it changes
nothing on a platform that says so, does not)."""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest
from woocommerce.oauth import OAuth

from sandbox.bigcommerce import create_app as create_bigcommerce
from sandbox.shopify import create_app as create_shopify
from sandbox.woocommerce import create_app as create_woocommerce
from tests.sandbox.conftest import wait_for

# ====================================================================== Shopify
SHOP = "acme.myshopify.com"
API = f"/{SHOP}/admin/api/2026-01/graphql.json"
AUTH = {"X-Shopify-Access-Token": "shpat_t"}

CONSENT = """mutation($input: CustomerEmailMarketingConsentUpdateInput!) {
  customerEmailMarketingConsentUpdate(input: $input) {
    customer { id updatedAt emailMarketingConsent { marketingState marketingOptInLevel } }
    userErrors { field message code } } }"""
ADDRESS = """mutation($c: ID!, $a: ID!, $in: MailingAddressInput!, $d: Boolean) {
  customerAddressUpdate(customerId: $c, addressId: $a, address: $in, setAsDefault: $d) {
    address { id city countryCodeV2 provinceCode } userErrors { field message } } }"""
CREATE = """mutation($c: ID!, $in: MailingAddressInput!) {
  customerAddressCreate(customerId: $c, address: $in, setAsDefault: true) {
    address { id city } userErrors { field message } } }"""
NODES = """query($ids: [ID!]!) { nodes(ids: $ids) { ... on Customer { id updatedAt
  defaultAddress { id } } } }"""


@pytest.fixture
def shop():
    app = create_shopify()
    client = app.test_client()
    made = client.post(
        "/_sandbox/shops", json={"domain": SHOP, "access_token": "shpat_t", "client_secret": "s"}
    )
    assert made.status_code == 201
    client.post(f"/_sandbox/shops/{SHOP}/seed", json={"customers": 8, "orders": 0, "seed": 1})
    return client


def gql(client, query: str, variables: dict) -> dict:
    response = client.post(API, json={"query": query, "variables": variables}, headers=AUTH)
    assert response.status_code == 200  # userErrors and validation problems alike
    return response.get_json()


def customers(client) -> list[dict]:
    return client.get(f"/_sandbox/shops/{SHOP}/dump").get_json()["customers"]


def test_shopify_nodes_answers_per_id_and_is_priced_per_id(shop):
    ids = [c["id"] for c in customers(shop)] + ["gid://shopify/Customer/1"]
    body = gql(shop, NODES, {"ids": ids})
    nodes = body["data"]["nodes"]
    assert [n and n["id"] for n in nodes] == [*ids[:-1], None]
    # Each id: the Customer (1) and its defaultAddress (1).
    assert body["extensions"]["cost"]["requestedQueryCost"] == len(ids) * 2
    too_many = gql(shop, NODES, {"ids": ["gid://shopify/Customer/1"] * 251})
    assert too_many["data"] is None and too_many["errors"]


def test_shopify_consent_update_validates_and_a_repeat_changes_nothing(shop, receiver):
    url, got, _ = receiver
    shop.post(f"/_sandbox/shops/{SHOP}/webhooks", json={"address": url,
                                                        "topics": ["customers/update"]})  # fmt: skip
    first = next(c for c in customers(shop) if c["defaultEmailAddress"])
    consent = {"marketingState": "NOT_SUBSCRIBED", "marketingOptInLevel": "SINGLE_OPT_IN"}
    refused = gql(shop, CONSENT, {"input": {"customerId": first["id"],
                                            "emailMarketingConsent": consent}})  # fmt: skip
    payload = refused["data"]["customerEmailMarketingConsentUpdate"]
    assert payload["customer"] is None
    assert payload["userErrors"][0]["code"] == "INCLUSION"
    missing = gql(shop, CONSENT, {"input": {"customerId": "gid://shopify/Customer/1",
                                            "emailMarketingConsent": consent}})  # fmt: skip
    error = missing["data"]["customerEmailMarketingConsentUpdate"]["userErrors"][0]
    assert error["message"] == "Customer does not exist"

    wanted = {"marketingState": "PENDING", "marketingOptInLevel": "CONFIRMED_OPT_IN",
              "consentUpdatedAt": "2026-01-02T03:04:05Z"}  # fmt: skip
    time.sleep(1.01)  # timestamps are whole seconds
    done = gql(shop, CONSENT, {"input": {"customerId": first["id"],
                                         "emailMarketingConsent": wanted}})  # fmt: skip
    customer = done["data"]["customerEmailMarketingConsentUpdate"]["customer"]
    assert customer["emailMarketingConsent"]["marketingState"] == "PENDING"
    assert customer["updatedAt"] > first["updatedAt"]
    assert wait_for(lambda: len(got) == 1)
    assert json.loads(got[0][1])["id"] == int(first["legacyResourceId"])
    time.sleep(1.01)
    again = gql(shop, CONSENT, {"input": {"customerId": first["id"],
                                          "emailMarketingConsent": wanted}})  # fmt: skip
    same = again["data"]["customerEmailMarketingConsentUpdate"]["customer"]
    assert same["updatedAt"] == customer["updatedAt"]
    time.sleep(0.3)
    assert len(got) == 1

    nomail = shop.post(f"/_sandbox/shops/{SHOP}/customers", json={"first_name": "N",
                                                                  "phone": "+16135550111"})  # fmt: skip
    answer = gql(shop, CONSENT, {"input": {"customerId": nomail.get_json()["id"],
                                           "emailMarketingConsent": wanted}})  # fmt: skip
    error = answer["data"]["customerEmailMarketingConsentUpdate"]["userErrors"][0]
    assert "email address" in error["message"]


def test_shopify_address_update_and_create(shop, receiver):
    url, got, _ = receiver
    shop.post(f"/_sandbox/shops/{SHOP}/webhooks", json={"address": url,
                                                        "topics": ["customers/update"]})  # fmt: skip
    index, first = next((i, c) for i, c in enumerate(customers(shop)) if c["defaultAddress"])
    address_id = first["defaultAddress"]["id"]
    unknown = gql(shop, ADDRESS, {"c": first["id"], "a": "gid://shopify/MailingAddress/1",
                                  "in": {"city": "X"}})  # fmt: skip
    assert unknown["data"]["customerAddressUpdate"]["userErrors"][0]["field"] == ["addressId"]
    bad_phone = gql(shop, ADDRESS, {"c": first["id"], "a": address_id, "in": {"phone": "123"}})
    assert bad_phone["data"]["customerAddressUpdate"]["userErrors"] == [
        {"field": ["address", "phone"], "message": "Phone is invalid"}
    ]
    bad_country = gql(shop, ADDRESS, {"c": first["id"], "a": address_id,
                                      "in": {"countryCode": "XX"}})  # fmt: skip
    assert "data" not in bad_country  # refused before running: no data at all
    assert bad_country["errors"][0]["extensions"]["code"] == "INVALID_VARIABLE"

    time.sleep(1.01)
    moved = gql(shop, ADDRESS, {"c": first["id"], "a": address_id,
                                "in": {"city": "Lyon", "countryCode": "FR"}})  # fmt: skip
    address = moved["data"]["customerAddressUpdate"]["address"]
    assert address["city"] == "Lyon" and address["countryCodeV2"] == "FR"
    assert address["provinceCode"] == first["defaultAddress"]["provinceCode"]
    after = customers(shop)[index]
    assert after["updatedAt"] > first["updatedAt"]
    assert wait_for(lambda: len(got) == 1)
    time.sleep(1.01)
    gql(shop, ADDRESS, {"c": first["id"], "a": address_id,
                        "in": {"city": "Lyon", "countryCode": "FR"}})  # fmt: skip
    assert customers(shop)[index]["updatedAt"] == after["updatedAt"]
    time.sleep(0.3)
    assert len(got) == 1

    bare = shop.post(f"/_sandbox/shops/{SHOP}/customers", json={"first_name": "B",
                                                                "email": "b@example.com"})  # fmt: skip
    made = gql(shop, CREATE, {"c": bare.get_json()["id"], "in": {"city": "Oslo"}})
    new_id = made["data"]["customerAddressCreate"]["address"]["id"]
    node = gql(shop, NODES, {"ids": [bare.get_json()["id"]]})["data"]["nodes"][0]
    assert node["defaultAddress"]["id"] == new_id


# ====================================================================== WooCommerce
KEY, SECRET = "ck_w", "cs_w"
WC = "/sites/berlin/wp-json/wc/v3"


def signed(path: str, params: dict | None = None, method: str = "GET") -> str:
    url = f"http://localhost{WC}{path}" + (f"?{urlencode(params)}" if params else "")
    oauth = OAuth(url, KEY, SECRET, version="wc/v3", method=method)
    return oauth.get_oauth_url().removeprefix("http://localhost")


@pytest.fixture
def site():
    app = create_woocommerce()
    client = app.test_client()
    client.post("/_sandbox/sites", json={"name": "berlin", "consumer_key": KEY,
                                         "consumer_secret": SECRET})  # fmt: skip
    client.post("/_sandbox/sites/berlin/seed", json={"customers": 6, "orders": 0, "seed": 2})
    yield client
    app.extensions["woocommerce_dispatcher"].stop()


def test_woocommerce_lists_customers_by_include(site):
    listed = site.get(signed("/customers", {"include": "3,5,99", "role": "all"}))
    assert sorted(c["id"] for c in listed.get_json()) == [3, 5]
    bad = site.get(signed("/customers", {"include": "3,x"}))
    assert bad.status_code == 400 and bad.get_json()["code"] == "rest_invalid_param"


def test_woocommerce_batch_errors_per_item_and_saves_even_what_is_unchanged(site, receiver):
    url, got, _ = receiver
    hook = {"topic": "customer.updated", "delivery_url": url, "secret": "s"}
    assert site.post(signed("/webhooks", method="POST"), json=hook).status_code == 201
    before = site.get(signed("/customers/3")).get_json()
    time.sleep(1.01)
    answer = site.post(
        signed("/customers/batch", method="POST"),
        json={"update": [{"id": 99, "first_name": "X"},
                         {"id": 3, "first_name": before["first_name"]}]},
    ).get_json()  # fmt: skip
    missing, saved = answer["update"]
    assert missing == {
        "id": 99,
        "error": {
            "code": "woocommerce_rest_invalid_id",
            "message": "Invalid resource ID.",
            "data": {"status": 400},
        },
    }
    # WooCommerce saves every update it is sent: date_modified moves, the webhook fires.
    assert saved["date_modified_gmt"] > before["date_modified_gmt"]
    assert wait_for(lambda: any(b.startswith(b"{") for _, b in got))
    bodies = [json.loads(b) for _, b in got if b.startswith(b"{")]
    assert bodies[0]["id"] == 3


# ====================================================================== BigCommerce
BC = "/stores/abc/v3"
BC_AUTH = {"X-Auth-Token": "tok"}


@pytest.fixture
def bc_store():
    app = create_bigcommerce()
    client = app.test_client()
    client.post("/_sandbox/stores", json={"store_hash": "abc", "access_token": "tok",
                                          "client_secret": "cs", "quota": 500})  # fmt: skip
    client.post("/_sandbox/stores/abc/seed", json={"customers": 4, "orders": 0, "seed": 3})
    yield app, client
    app.extensions["bigcommerce_dispatcher"].stop()


def test_bigcommerce_customer_names_cannot_be_blank(bc_store):
    _, client = bc_store
    refused = client.put(f"{BC}/customers", json=[{"id": 1, "first_name": ""}], headers=BC_AUTH)
    assert refused.status_code == 422 and "first_name" in refused.get_json()["title"]


def test_bigcommerce_address_updates(bc_store, receiver):
    app, client = bc_store
    url, got, _ = receiver
    for scope in ("store/customer/updated", "store/customer/address/updated"):
        hook = {"scope": scope, "destination": url, "is_active": True}
        assert client.post(f"{BC}/hooks", json=hook, headers=BC_AUTH).status_code == 200
    store = app.extensions["bigcommerce_state"].stores["abc"]
    modified = store.customers[1].modified
    unknown = client.put(f"{BC}/customers/addresses", json=[{"id": 999, "city": "X"}],
                         headers=BC_AUTH)  # fmt: skip
    assert unknown.status_code == 422
    too_long = client.put(f"{BC}/customers/addresses", json=[{"id": 1, "postal_code": "9" * 31}],
                          headers=BC_AUTH)  # fmt: skip
    assert too_long.status_code == 422

    done = client.put(f"{BC}/customers/addresses", json=[{"id": 1, "city": "Boise",
                                                          "country_code": "CA"}],
                      headers=BC_AUTH).get_json()  # fmt: skip
    assert done["data"][0]["city"] == "Boise" and done["data"][0]["country"] == "Canada"
    assert store.customers[1].modified == modified  # UNCONFIRMED: left as it was
    assert wait_for(lambda: got)
    time.sleep(0.3)
    bodies = [json.loads(b) for _, b in got]
    assert [b["scope"] for b in bodies] == ["store/customer/address/updated"]
    assert bodies[0]["data"] == {"type": "customer", "id": 1, "address": {"customer_id": 1}}

    # Identical to another address of the same customer: unchanged, and not in the answer.
    twin = {**store.customers[2].addresses[0], "id": 77, "city": "Twin"}
    store.customers[2].addresses.append(twin)
    same = client.put(f"{BC}/customers/addresses", json=[{"id": 2, "city": "Twin"}],
                      headers=BC_AUTH).get_json()  # fmt: skip
    assert same["data"] == [] and store.customers[2].addresses[0]["city"] != "Twin"
