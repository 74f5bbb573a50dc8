"""Orders kept the other way a CRM offers: Zoho Sales Orders (lines as Ordered_Items rows) and
Salesforce Orders (OrderItems in the standard price book), each line pointing at a product
record Tandem keeps. Same flow as every pair: backfill, lossy webhooks, converge, and a re-read
of everything writes nothing."""

from __future__ import annotations

import pytest

import demo
from tests.e2e.test_end_to_end import converge, reread_everything, start

pytestmark = pytest.mark.slow


def _order_account(sandbox) -> str:
    """A sales rep's Account for the store's orders (Salesforce orders need one)."""
    created = sandbox.crm_control("POST", "/records/Account", json={"Name": "Online store"})
    return str(created.get("Id") or created.get("id"))


@pytest.mark.parametrize(
    ("store", "crm", "orders_as"),
    [
        ("shopify", "zoho", "Sales_Orders"),
        ("woocommerce", "zoho", "Sales_Orders"),
        ("shopify", "salesforce", "Order"),
        ("bigcommerce", "salesforce", "Order"),
    ],
)
def test_orders_with_their_lines_and_products(tmp_path, store, crm, orders_as):
    run = start(tmp_path, platform=store, crm=crm, customers=15, orders=40)
    try:
        run.sandbox.crm_settings["orders_as"] = orders_as
        if crm == "salesforce":
            run.sandbox.crm_settings["order_account_id"] = _order_account(run.sandbox)
        connection_id = demo.connect(run.t, run.sandbox, public_url=run.receiver.url)
        assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 90)
        result = converge(run.sandbox)
        assert result.line_items > 0  # the summary counts the lines the CRM holds
        run.sandbox.store_control(
            "PATCH", "/knobs", json={"webhook_drop_rate": 0.2, "webhook_duplicate_rate": 0.2}
        )
        run.sandbox.store_control(
            "POST",
            "/activity",
            json={"new_orders": 6, "changed_orders": 8, "changed_customers": 3, "seed": 6},
        )
        converge(run.sandbox)
        dump = run.sandbox.crm_dump()
        products = dump.get("Products") or dump.get("Product2") or []
        keys = [p.get("Tandem_Product_Key") or p.get("Tandem_Product_Key__c") for p in products]
        assert keys and len(keys) == len(set(keys)), "a product was made twice"
        # Webhooks carry less than the API (Shopify's customer webhooks omit tags and
        # consent), so the first full read after the activity may still catch something up;
        # the second must find nothing to write.
        reread_everything(run.t, connection_id)
        writes = len(demo.crm_writes(run.sandbox))
        reread_everything(run.t, connection_id)
        extra = demo.crm_writes(run.sandbox)[writes:]
        assert not extra, f"re-reading unchanged records wrote: {extra}"
    finally:
        run.stop()
