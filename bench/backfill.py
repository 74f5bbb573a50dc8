"""Backfill throughput: a seeded simulated store into a simulated CRM, end to end.

    python bench/backfill.py [customers] [orders] [store] [crm]

``store`` is shopify (the default), woocommerce or bigcommerce; ``crm`` hubspot (the default),
zoho or salesforce.

Prints figures (records per second, API calls per platform, calls per record); asserts
nothing. Both simulators run in this process, so the figures are Tandem plus simulator cost
on one machine, not platform latency.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import demo
from app import create_app, tandem_of
from sync import migrate
from sync.worker import InProcessWorker


def main(customers: int, orders: int, store: str = "shopify", crm: str = "hubspot") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sandbox = demo.start_sandbox(
            platform=store,
            crm=crm,
            customers=customers,
            orders=orders,
            restore_rate=1000.0,
            hubspot_limit=10_000,
        )
        app = create_app(demo.sandbox_config(sandbox, Path(tmp)))
        t = tandem_of(app)
        migrate.upgrade(t.engine)
        worker = InProcessWorker(t.worker(), threads=2).start()
        try:
            started = time.perf_counter()
            connection_id = demo.connect(t, sandbox)
            if not demo.wait_until(
                lambda: demo.backfill_done(t, connection_id), 1800, interval=0.2
            ):
                raise SystemExit("backfill did not finish in 30 minutes")
            elapsed = time.perf_counter() - started
            counts = demo.linked_counts(t, connection_id)
            store_calls = sandbox.store_control("GET", "/calls")["calls"]
            crm_calls = sandbox.crm_calls()
        finally:
            worker.stop()
            sandbox.stop()
            t.close()
    records = counts.get("customer", 0) + counts.get("order", 0) + counts.get("line_item", 0)
    title = demo.CRM_SIMS[crm].title
    print(f"store ({store}): {customers} customers, {orders} orders; CRM {title}")
    print(
        f"linked: {counts.get('customer', 0)} contacts, {counts.get('order', 0)} orders, "
        f"{counts.get('line_item', 0)} line items; {counts.get('dead_customer', 0)} dead letters"
    )
    print(
        f"time: {elapsed:.1f} s  ->  {orders / elapsed:.0f} orders/s, {records / elapsed:.0f} records/s"
    )
    print(
        f"API calls: {store} {len(store_calls)}, {title} {len(crm_calls)} "
        f"({len(crm_calls) / max(records, 1) * 100:.2f} {title} calls per 100 records)"
    )


if __name__ == "__main__":
    counts = [int(a) for a in sys.argv[1:3]]
    main(*(counts + [500, 2000][len(counts) :]), *sys.argv[3:5])
