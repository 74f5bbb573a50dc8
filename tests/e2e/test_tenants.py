"""Two merchants on one Tandem: each store's records reach its own HubSpot account only."""

from __future__ import annotations

import pytest

import demo
from app import create_connection
from tests.e2e.test_end_to_end import converge, start

pytestmark = pytest.mark.slow


def test_two_connections_never_see_each_others_records(tmp_path):
    run = start(tmp_path, customers=20, orders=40)
    first = run.sandbox
    try:
        # One app, so one client secret for every shop's webhooks; each shop its own token.
        second = first.add_store(
            "second-store.myshopify.com",
            crm_account="4343",
            currency="EUR",
            country="DE",
            timezone="Europe/Berlin",
        )
        second.store_control("POST", "/seed", json={"customers": 15, "orders": 30, "seed": 9})
        second.subscribe(f"{run.receiver.url}/webhooks/shopify")
        one = demo.connect(run.t, first)
        two = create_connection(
            run.t,
            name="Second",
            store_platform="shopify",
            store_account=second.account,
            store_credentials=second.credentials,
            crm_account=second.crm_account,
            crm_credentials=second.crm_credentials,
            default_region="DE",
        )
        for connection_id in (one, two):
            assert demo.wait_until(lambda c=connection_id: demo.backfill_done(run.t, c), 90)
        first.store_control(
            "POST", "/activity", json={"changed_customers": 5, "new_orders": 5, "seed": 2}
        )
        second.store_control(
            "POST", "/activity", json={"changed_customers": 5, "new_orders": 5, "seed": 3}
        )
        converge(first)
        converge(second)
        for sandbox, other in ((first, second), (second, first)):
            deals = sandbox.crm_dump()["objects"]["deals"]
            assert deals and all(
                d["properties"]["tandem_order_id"].startswith(f"shopify:{sandbox.account}:")
                for d in deals
            ), f"portal {sandbox.crm_account} holds another store's orders"
            other_emails = {(c["email"] or "").lower() for c in other.summary()["customers"]} - {""}
            own_emails = {(c["email"] or "").lower() for c in sandbox.summary()["customers"]}
            contacts = {
                c["properties"].get("email") for c in sandbox.crm_dump()["objects"]["contacts"]
            }
            assert not (contacts & (other_emails - own_emails))
    finally:
        run.stop()
