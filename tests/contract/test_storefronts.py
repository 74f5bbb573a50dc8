"""One contract for every registered storefront connector, run against its simulator.

Parametrised over ``sync.platforms.STORES``: a new storefront adds a row to ``EDITS`` (how its
simulator's control API edits a record), not test code. The connector is built the production
way (``create_connection`` then ``Platforms.store``); the truth it is checked against is the
simulator's own summary, not Tandem's mapping.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

import demo
from app import create_app, tandem_of
from sandbox.server import serve
from sync import migrate
from sync.db import transaction
from sync.models import Connection
from sync.platforms import STORES
from sync.records import PARSERS

# What each simulator's control API accepts as an edit of one customer and one order, and
# whether its orders can be removed (Shopify's control API deletes customers only).
EDITS = {
    "shopify": {"order": {"note": "contract edit"}, "orders_removable": False},
    "woocommerce": {"order": {"status": "completed"}, "orders_removable": True},
    "bigcommerce": {"order": {"status_id": 10}, "orders_removable": True},
}
MAX_PAGES = 200  # far more than the seeded store needs: a scan that goes on is a loop


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
