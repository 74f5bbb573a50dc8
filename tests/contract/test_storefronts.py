"""One contract for every registered storefront connector, run against its simulator.

Parametrised over ``sync.platforms.STORES``: a new storefront adds a row to ``EDITS`` (how its
simulator's control API edits a record), not test code. The connector is built the production
way (``create_connection`` then ``Platforms.store``); the truth it is checked against is the
simulator's own summary, not Tandem's mapping.
"""

from __future__ import annotations

import json
import math
import threading
import time
from datetime import timedelta

import pytest
from flask import Flask, request

import demo
from app import create_app, tandem_of
from connectors.bigcommerce import WRITE_BATCH
from connectors.shopify import MAX_QUERY_COST, WRITE_OPERATION_COST
from connectors.woocommerce import BATCH_SIZE
from mapping import writeback
from mapping.models import ConsentState
from sandbox.server import serve
from sync import migrate
from sync.db import transaction
from sync.models import Connection
from sync.platforms import STORES
from sync.records import PARSERS


def _subscribe_in_sandbox(sandbox, connector, url: str) -> None:
    sandbox.subscribe(url)  # Shopify: subscriptions come from the app's configuration


def _subscribe_by_connector(sandbox, connector, url: str) -> None:
    connector.ensure_webhooks(url, "contract-secret")


# What each simulator's control API accepts as an edit of one customer and one order, and
# whether its orders can be removed (Shopify's control API deletes customers only). For writes:
# how a test receiver gets the store's webhooks, which delivery is "customer updated" (topic,
# customer id from headers and body), which call in the simulator's log is a customer write,
# how many customers one such call carries at most (a single-mutation patch for Shopify), and
# which canonical fields are one field on the platform ("coupled": that path follows the
# written one).
EDITS = {
    "shopify": {
        "order": {"note": "contract edit"},
        "orders_removable": False,
        "subscribe": _subscribe_in_sandbox,
        "updated": lambda headers, body: (headers.get("X-Shopify-Topic"), body.get("id")),
        "updated_topic": "customers/update",
        # A throttled attempt (no actual cost) did nothing.
        "write_call": lambda call: (
            call.get("operation") == "TandemCustomerWrite" and call["actual_cost"] is not None
        ),
        "write_batch": MAX_QUERY_COST // WRITE_OPERATION_COST,
    },
    "woocommerce": {
        "order": {"status": "completed"},
        "orders_removable": True,
        "subscribe": _subscribe_by_connector,
        "updated": lambda headers, body: (headers.get("X-Wc-Webhook-Topic"), body.get("id")),
        "updated_topic": "customer.updated",
        "write_call": lambda call: (
            call["method"] == "POST" and call["path"].endswith("/customers/batch")
        ),
        "write_batch": BATCH_SIZE,
        # The customer's phone is its billing address's phone [WC-DOCS billing.phone].
        "coupled": {"default_address.phone": "phone"},
    },
    "bigcommerce": {
        "order": {"status_id": 10},
        "orders_removable": True,
        "subscribe": _subscribe_by_connector,
        "updated": lambda headers, body: (body.get("scope"), (body.get("data") or {}).get("id")),
        "updated_topic": "store/customer/updated",
        "write_call": lambda call: call["method"] == "PUT",
        "write_batch": WRITE_BATCH,
    },
}
MAX_PAGES = 200  # far more than the seeded store needs: a scan that goes on is a loop
# One value per path of the write-back vocabulary; each store is sent the paths it declares
# writable. Consent is chosen against the customer's current state (see _patch_for).
WRITE_VALUES = {
    "first_name": "Contracta",
    "last_name": "Writeback",
    "phone": "+16135550123",
    "note": "written from the CRM",
    "tags": ("crm", "vip"),
    "default_address.line1": "1 Writeback Way",
    "default_address.line2": "Suite 9",
    "default_address.city": "Ottawa",
    "default_address.postal_code": "K1A 0B1",
    "default_address.country_code": "CA",
}
GHOST = "999999999"  # an id no seeded store uses


@pytest.fixture(params=sorted(STORES))
def store(request, tmp_path):
    platform = request.param
    assert platform in EDITS, f"add {platform}'s edits to EDITS"
    sandbox = demo.start_sandbox(platform=platform, customers=30, orders=70, seed=5)
    app = create_app(demo.sandbox_config(sandbox, tmp_path))
    t = tandem_of(app)
    migrate.upgrade(t.engine)
    receiver = serve(app)
    try:
        connection_id = demo.connect(t, sandbox, backfill=False, public_url=receiver.url)
        with transaction(t.sessions) as session:
            connector = t.platforms.store(session, session.get(Connection, connection_id))
        yield platform, sandbox, connector
    finally:
        receiver.stop()
        sandbox.stop()
        t.close()


def _scan(fetch, since=None):
    """Every page of one listing; returns (records in order, removed ids, pages read)."""
    records, removed, cursor = [], [], None
    for pages in range(1, MAX_PAGES + 1):
        page = fetch(updated_since=since, cursor=cursor)
        records.extend(page.records)
        removed.extend(page.removed)
        cursor = page.next_cursor
        if cursor is None:
            return records, removed, pages
    pytest.fail(f"pagination did not end within {MAX_PAGES} pages")


def _parse(platform, entity, raws):
    parsers = PARSERS[platform]["api"]
    parse = parsers.customer if entity == "customer" else parsers.order
    return [parse(raw, default_region="US") for raw in raws]


def test_a_full_read_is_complete_parses_and_never_repeats(store):
    platform, sandbox, connector = store
    truth = sandbox.summary()
    for entity, fetch, expected in (
        ("customer", connector.customers_page, {c["id"] for c in truth["customers"]}),
        (
            "order",
            connector.orders_page,
            {o["id"] for o in truth["orders"] if not o["removed"]},
        ),
    ):
        raws, _removed, pages = _scan(fetch)
        records = _parse(platform, entity, raws)  # every record parses (or this raises)
        ids = [r.source_id for r in records]
        assert len(ids) == len(set(ids)), f"{entity}: an id came twice"
        assert set(ids) == expected, f"{entity}: the read is not the store"
        incremental = entity == "order" or connector.customers_incremental
        if incremental:
            # Oldest change first, so a checkpoint taken after any page only moves forward.
            stamps = [r.updated_at for r in records]
            assert stamps == sorted(stamps)
        assert pages >= 1


def test_an_edit_after_a_sync_is_in_the_next_poll(store):
    platform, sandbox, connector = store
    customers = _parse(platform, "customer", _scan(connector.customers_page)[0])
    orders = _parse(platform, "order", _scan(connector.orders_page)[0])
    checkpoint = max(r.updated_at for r in customers + orders)
    customer, order = customers[0], orders[-1]

    sandbox.store_control(
        "PATCH", f"/customers/{customer.source_id}", json={"first_name": "Contractor"}
    )
    sandbox.store_control("PATCH", f"/orders/{order.source_id}", json=EDITS[platform]["order"])

    since = checkpoint - timedelta(seconds=1)
    polled_customers = _parse(platform, "customer", _scan(connector.customers_page, since)[0])
    edited = [c for c in polled_customers if c.source_id == customer.source_id]
    assert edited and edited[0].first_name == "Contractor"
    assert edited[0].updated_at >= customer.updated_at
    polled_orders = _parse(platform, "order", _scan(connector.orders_page, since)[0])
    again = [o for o in polled_orders if o.source_id == order.source_id]
    assert again and again[0].updated_at >= order.updated_at
    if connector.customers_incremental:
        # An incremental poll reads only what changed since the checkpoint.
        assert len(polled_customers) < len(customers)


def test_a_deletion_is_seen(store):
    platform, sandbox, connector = store
    customers = _parse(platform, "customer", _scan(connector.customers_page)[0])
    victim = customers[0].source_id
    assert connector.get_customers([victim]), "a live customer must be readable by id"
    sandbox.store_control("DELETE", f"/customers/{victim}")
    assert connector.get_customers([victim]) == []
    remaining = _parse(platform, "customer", _scan(connector.customers_page)[0])
    assert victim not in {c.source_id for c in remaining}

    if EDITS[platform]["orders_removable"]:
        orders = _parse(platform, "order", _scan(connector.orders_page)[0])
        gone = orders[0]
        sandbox.store_control("DELETE", f"/orders/{gone.source_id}")
        assert connector.get_orders([gone.source_id]) == []
        raws, removed, _ = _scan(connector.orders_page, gone.updated_at - timedelta(seconds=1))
        assert gone.source_id not in {o.source_id for o in _parse(platform, "order", raws)}
        # Where the platform lists removed records (BigCommerce's archived orders may be),
        # they come back as removed, never as live records.
        assert set(removed) <= {o.source_id for o in orders}


# ------------------------------------------------------------------ writing back


@pytest.fixture
def hooks():
    """(url, deliveries as (headers, body or None)) of a receiver that answers 200."""
    app = Flask("contract-receiver")
    got, lock = [], threading.Lock()

    @app.post("/hook")
    def hook():
        try:
            body = json.loads(request.get_data())
        except ValueError:
            body = None  # WooCommerce's creation ping is a form body
        with lock:
            got.append((dict(request.headers), body))
        return "", 200

    server = serve(app)
    yield server.url + "/hook", got
    server.stop()


def _patch_for(connector, customer):
    patch = {k: v for k, v in WRITE_VALUES.items() if k in connector.writable_fields}
    if "consent.email" in connector.writable_fields:
        subscribed = customer.consent.email == ConsentState.subscribed
        patch["consent.email"] = "unsubscribed" if subscribed else "subscribed"
    return patch


def _customer(platform, connector, store_id):
    found = connector.get_customers([store_id])
    assert len(found) == 1, f"customer {store_id} is not readable"
    return _parse(platform, "customer", found)[0]


def _updated_for(platform, got, store_id):
    topics = [EDITS[platform]["updated"](h, b) for h, b in list(got) if b is not None]
    return [t for t, i in topics if t == EDITS[platform]["updated_topic"] and str(i) == store_id]


def _calls(sandbox):
    return sandbox.store_control("GET", "/calls")["calls"]


def _wait(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not check():
        time.sleep(0.05)
    return check()


def test_write_customers_changes_exactly_the_patch_and_is_idempotent(store, hooks):
    platform, sandbox, connector = store
    url, got = hooks
    EDITS[platform]["subscribe"](sandbox, connector, url)
    customers = _parse(platform, "customer", _scan(connector.customers_page)[0])
    target = next(c for c in customers if c.email and c.default_address)
    other = next(c for c in customers if c.source_id != target.source_id)
    patch = _patch_for(connector, target)
    wanted = writeback.check_patch(patch, connector.writable_fields)
    with pytest.raises(ValueError, match="not writable"):
        connector.write_customers([(target.source_id, {"no.such.path": 1})])

    results = connector.write_customers(
        [(target.source_id, patch), (GHOST, {"first_name": "Ghost"}),
         (other.source_id, {"last_name": "Second"})]
    )  # fmt: skip
    assert [r.key for r in results] == [target.source_id, GHOST, other.source_id]
    first, ghost, second = results
    assert first.ok and first.id == target.source_id, first
    assert ghost.not_found and not ghost.ok
    assert second.ok, second

    after = _customer(platform, connector, target.source_id)
    for path, value in wanted.items():
        assert writeback.current_value(after, path) == value, path
    assert first.updated_at == after.updated_at and first.updated_at.tzinfo is not None
    assert after.updated_at >= target.updated_at
    # Everything else is left alone (a new country drops the old country's province).
    untouched = {"updated_at", "addresses", "missing", "default_address", "consent"}
    untouched |= {p for p in wanted if "." not in p}
    before_rest = target.model_dump(exclude=untouched)
    after_rest = after.model_dump(exclude=untouched)
    assert after_rest == before_rest
    coupled = {
        path: wanted[source]
        for path, source in EDITS[platform].get("coupled", {}).items()
        if source in wanted
    }
    for path, value in coupled.items():
        assert writeback.current_value(after, path) == value, path
    kept = (
        set(type(target.default_address).model_fields)
        - {p.split(".", 1)[1] for p in [*wanted, *coupled] if p.startswith("default_address.")}
        - {"province", "province_code"}
    )
    assert after.default_address.model_dump(include=kept) == target.default_address.model_dump(
        include=kept
    )
    assert _customer(platform, connector, other.source_id).last_name == "Second"

    # The platform announces the change as a customer-updated webhook.
    assert _wait(lambda: _updated_for(platform, got, target.source_id)), "no webhook"

    # The same write again changes nothing on the platform: no write call, no new updatedAt,
    # no webhook.
    writes_before = sum(EDITS[platform]["write_call"](c) for c in _calls(sandbox))
    time.sleep(0.5)  # let the first write's deliveries land
    delivered = len(_updated_for(platform, got, target.source_id))
    again = connector.write_customers([(target.source_id, patch)])
    assert again[0].ok and again[0].updated_at == first.updated_at
    assert sum(EDITS[platform]["write_call"](c) for c in _calls(sandbox)) == writes_before
    assert _customer(platform, connector, target.source_id).updated_at == after.updated_at
    time.sleep(0.5)
    assert len(_updated_for(platform, got, target.source_id)) == delivered


def test_write_customers_respects_the_batch_size(store):
    platform, sandbox, connector = store
    customers = _parse(platform, "customer", _scan(connector.customers_page)[0])
    sandbox.store_control("DELETE", "/calls")
    results = connector.write_customers(
        [(c.source_id, {"last_name": f"Batch{i}"}) for i, c in enumerate(customers)]
    )
    assert all(r.ok for r in results) and len(results) == len(customers)
    writes = [c for c in _calls(sandbox) if EDITS[platform]["write_call"](c)]
    assert len(writes) == math.ceil(len(customers) / EDITS[platform]["write_batch"])
    reread = _parse(platform, "customer", connector.get_customers([c.source_id for c in customers]))
    assert {c.source_id: c.last_name for c in reread} == {
        c.source_id: f"Batch{i}" for i, c in enumerate(customers)
    }
