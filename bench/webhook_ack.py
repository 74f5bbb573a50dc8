"""Webhook acknowledgement latency: signed Shopify deliveries into the receiver.

    python bench/webhook_ack.py [deliveries] [client_threads]

Serves Tandem's app on loopback (threaded werkzeug, SQLite WAL state store, SQLite queue),
posts signed deliveries from several threads, 10 % of them repeated, and prints latency
percentiles, throughput and the inbox count (which must equal the distinct deliveries).
Shopify allows 5 s per delivery; this measures how far under that we answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from cryptography.fernet import Fernet
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import create_app, tandem_of
from sandbox.server import serve
from sync import migrate
from sync.db import transaction
from sync.models import Connection, InboxEvent

SECRET = "bench-secret"
SHOP = "bench.myshopify.com"


def main(deliveries: int, threads: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            {
                "var_dir": Path(tmp),
                "encryption_keys": Fernet.generate_key().decode(),
                "shopify_client_secret": SECRET,
                "log_level": "WARNING",
            }
        )
        t = tandem_of(app)
        migrate.upgrade(t.engine)
        with transaction(t.sessions) as s:
            s.add(
                Connection(
                    name="Bench",
                    store_platform="shopify",
                    store_account=SHOP,
                    crm_platform="hubspot",
                    crm_account="1",
                )
            )
        server = serve(app)
        bodies = []
        for n in range(deliveries):
            body = json.dumps(
                {"id": n, "email": f"c{n}@example.com", "updated_at": "2026-01-01T00:00:00Z"}
            )
            bodies.append((f"wh-{n if n % 10 else n - 1}", body.encode()))  # every 10th repeats one
        latencies: list[float] = []
        lock = threading.Lock()

        def send(chunk):
            session = requests.Session()
            for webhook_id, body in chunk:
                signature = base64.b64encode(
                    hmac.new(SECRET.encode(), body, hashlib.sha256).digest()
                ).decode()
                started = time.perf_counter()
                response = session.post(
                    f"{server.url}/webhooks/shopify",
                    data=body,
                    timeout=10,
                    headers={
                        "X-Shopify-Topic": "customers/update",
                        "X-Shopify-Webhook-Id": webhook_id,
                        "X-Shopify-Shop-Domain": SHOP,
                        "X-Shopify-Hmac-Sha256": signature,
                    },
                )
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    raise SystemExit(f"delivery {webhook_id} answered {response.status_code}")
                with lock:
                    latencies.append(elapsed)

        workers = [
            threading.Thread(target=send, args=(bodies[i::threads],)) for i in range(threads)
        ]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - started
        with transaction(t.sessions) as s:
            stored = s.scalar(select(func.count(InboxEvent.id)))
        server.stop()
        t.close()
    q = statistics.quantiles(latencies, n=100)
    distinct = len({w for w, _ in bodies})
    print(
        f"{deliveries} deliveries from {threads} threads in {wall:.1f} s: {deliveries / wall:.0f} per second"
    )
    print(
        f"ack latency ms: p50 {q[49] * 1000:.1f}, p95 {q[94] * 1000:.1f}, p99 {q[98] * 1000:.1f}, "
        f"max {max(latencies) * 1000:.1f}"
    )
    print(f"inbox rows: {stored} for {distinct} distinct deliveries")


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:3]]
    main(*(args + [1000, 4][len(args) :]))
