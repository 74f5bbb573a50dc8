"""Store simulator -> Tandem -> CRM simulator, the same code as production.

Checked against the simulators' own state (demo.compare), not Tandem's bookkeeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

import demo
from app import create_app, tandem_of
from sandbox.server import serve
from sync import migrate
from sync.db import transaction
from sync.models import InboxEvent, Link
from sync.worker import InProcessWorker

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class Running:
    def __init__(self, sandbox, app, receiver, worker):
        self.sandbox, self.app, self.receiver, self.worker = sandbox, app, receiver, worker
        self.t = tandem_of(app)

    def stop(self):
        if self.worker:
            self.worker.stop()
        self.receiver.stop()
        self.sandbox.stop()
        self.t.close()


def start(
    tmp_path,
    *,
    platform="shopify",
    crm="hubspot",
    database_url=None,
    queue_url=None,
    customers=40,
    orders=120,
    worker=True,
    **config,
):
    sandbox = demo.start_sandbox(
        platform=platform, crm=crm, customers=customers, orders=orders, seed=3
    )
    overrides = {
        k: v for k, v in {"database_url": database_url, "queue_url": queue_url}.items() if v
    }
    app = create_app(demo.sandbox_config(sandbox, tmp_path, **overrides, **config))
    t = tandem_of(app)
    migrate.upgrade(t.engine)
    receiver = serve(app)
    sandbox.subscribe(f"{receiver.url}/webhooks/shopify")
    running_worker = InProcessWorker(t.worker()).start() if worker else None
    return Running(sandbox, app, receiver, running_worker)


def converge(sandbox, timeout=90.0):
    result = demo.Comparison(problems=["never compared"])

    def check():
        nonlocal result
        result = demo.compare(sandbox)
        return result.in_step

    assert demo.wait_until(check, timeout, interval=1.0), result.problems[:10]
    return result


def _backends(request, tmp_path):
    if request.param == "sqlite":
        return None, None
    from tests.conftest import REDIS_URL, _postgres_database

    gen = _postgres_database()
    url = next(gen)
    request.addfinalizer(lambda: next(gen, None))
    if request.param == "postgres+redis":
        if not REDIS_URL:
            pytest.skip("Redis not configured: set TANDEM_TEST_REDIS_URL (CI does)")
        import redis

        redis.Redis.from_url(REDIS_URL).flushdb()
        return url, REDIS_URL
    return url, url  # PostgresHuey on the same server


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres+redis", marks=[pytest.mark.postgres, pytest.mark.redis]),
        pytest.param("postgres+postgres-queue", marks=pytest.mark.postgres),
    ]
)
def backends(request, tmp_path):
    return _backends(request, tmp_path)


def test_backfill_then_live_changes_converge_despite_lost_and_repeated_webhooks(tmp_path, backends):
    database_url, queue_url = backends
    run = start(tmp_path, database_url=database_url, queue_url=queue_url)
    try:
        connection_id = demo.connect(run.t, run.sandbox)
        assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 90)
        converge(run.sandbox)
        run.sandbox.store_control(
            "PATCH", "/knobs", json={"webhook_drop_rate": 0.2, "webhook_duplicate_rate": 0.2}
        )
        run.sandbox.store_control(
            "POST",
            "/activity",
            json={
                "new_customers": 5,
                "changed_customers": 10,
                "new_orders": 15,
                "changed_orders": 15,
                "seed": 5,
            },
        )
        result = converge(run.sandbox)
        store = run.sandbox.store_dump()
        emails = {
            (c.get("defaultEmailAddress") or {}).get("emailAddress", "").lower()
            for c in store["customers"]
        }
        guests = {
            o["email"].lower() for o in store["orders"] if not o.get("customer") and o.get("email")
        }
        assert result.deals == len(store["orders"])
        assert result.contacts == len((emails | guests) - {""})  # one contact per person, no more
        deliveries = run.sandbox.store_control("GET", "/deliveries")["deliveries"]
        assert deliveries, "the simulator sent no webhooks"
    finally:
        run.stop()


@pytest.mark.parametrize("platform", ["woocommerce", "bigcommerce"])
def test_every_storefront_backfills_then_follows_webhooks_and_polls(tmp_path, platform):
    """The same flow for the storefronts without bulk exports: paged backfill, webhooks
    registered by Tandem through the store's API, thin notifications fetched, trashed or
    archived orders and deleted customers recorded, polling catching what webhooks lost."""
    run = start(tmp_path, platform=platform, customers=30, orders=80)
    try:
        connection_id = demo.connect(run.t, run.sandbox, public_url=run.receiver.url)
        assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 90)
        converge(run.sandbox)
        removed_before = {o["id"] for o in run.sandbox.summary()["orders"] if o["removed"]}
        run.sandbox.store_control(
            "PATCH", "/knobs", json={"webhook_drop_rate": 0.2, "webhook_duplicate_rate": 0.2}
        )
        done = run.sandbox.store_control(
            "POST",
            "/activity",
            json={
                "new_customers": 4,
                "changed_customers": 8,
                "new_orders": 10,
                "changed_orders": 10,
                "deleted_orders": 2,
                "seed": 5,
            },
        )
        converge(run.sandbox)
        deliveries = run.sandbox.store_control("GET", "/deliveries")["deliveries"]
        assert deliveries, "the simulator sent no webhooks"
        with transaction(run.t.sessions) as session:
            stored = session.scalar(
                select(func.count(InboxEvent.id)).where(InboxEvent.connection_id == connection_id)
            )
        assert stored > 0, "no delivery reached the inbox"
        removed = {o["id"] for o in run.sandbox.summary()["orders"] if o["removed"]}
        removed -= removed_before
        assert removed, f"the activity removed no order: {done}"
        assert demo.wait_until(lambda: _removed_links(run.t, connection_id) >= removed, 30)
    finally:
        run.stop()


def _removed_links(t, connection_id):
    with transaction(t.sessions) as session:
        return set(
            session.scalars(
                select(Link.store_id).where(
                    Link.connection_id == connection_id,
                    Link.entity == "order",
                    Link.store_deleted_at.is_not(None),
                )
            )
        )


@pytest.mark.parametrize("platform", sorted(demo.STORE_SIMS))
def test_a_second_pass_over_unchanged_records_writes_nothing(tmp_path, platform):
    """Re-reading every record (WooCommerce customers are always read whole) costs store
    calls and no CRM write: the engine compares with what it last wrote."""
    run = start(tmp_path, platform=platform)
    try:
        connection_id = demo.connect(run.t, run.sandbox, public_url=run.receiver.url)
        assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 90)
        converge(run.sandbox)
        # Let the first polls settle, then re-read everything from the beginning of time.
        assert demo.wait_until(lambda: _idle(run.t, connection_id), 60)
        before = len(demo.crm_writes(run.sandbox))
        store_before = len(run.sandbox.store_control("GET", "/calls")["calls"])
        _rewind_polls(run.t, connection_id)
        assert demo.wait_until(lambda: _polled_since_rewind(run.t, connection_id), 60)
        assert demo.wait_until(lambda: _idle(run.t, connection_id), 60)
        assert (
            len(run.sandbox.store_control("GET", "/calls")["calls"]) > store_before
        )  # it did read
        assert len(demo.crm_writes(run.sandbox)) == before  # ...and wrote nothing
    finally:
        run.stop()


def reread_everything(t, connection_id):
    """Wait until the connection is idle, read every record again from the beginning of
    time, and wait until that pass is done."""
    assert demo.wait_until(lambda: _idle(t, connection_id), 60)
    _rewind_polls(t, connection_id)
    assert demo.wait_until(lambda: _polled_since_rewind(t, connection_id), 60)
    assert demo.wait_until(lambda: _idle(t, connection_id), 60)


def _idle(t, connection_id):
    from sync import jobs
    from sync.db import transaction

    with transaction(t.sessions) as session:
        return jobs.active(session, connection_id) == 0 or _only_future_polls(
            session, connection_id
        )


def _only_future_polls(session, connection_id):
    from sqlalchemy import select

    from sync.models import Job, JobStatus, utcnow

    rows = session.scalars(
        select(Job).where(
            Job.connection_id == connection_id,
            Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
        )
    ).all()
    return all(j.status == JobStatus.PENDING and j.run_after > utcnow() for j in rows)


def _rewind_polls(t, connection_id):
    from sqlalchemy import update

    from sync.db import transaction
    from sync.models import Checkpoint, utcnow

    with transaction(t.sessions) as session:
        session.execute(
            update(Checkpoint)
            .where(
                Checkpoint.connection_id == connection_id,
                Checkpoint.stream == "poll",
            )
            .values(
                position_updated_at=None,
                position_id=None,
                next_run_at=utcnow(),
                state={"rewound": True},
            )
        )


def _polled_since_rewind(t, connection_id):
    from sqlalchemy import select

    from sync.db import transaction
    from sync.models import Checkpoint

    with transaction(t.sessions) as session:
        rows = session.scalars(
            select(Checkpoint).where(
                Checkpoint.connection_id == connection_id, Checkpoint.stream == "poll"
            )
        ).all()
        return rows and all(r.position_updated_at is not None for r in rows)


def test_sigkill_mid_backfill_loses_nothing_and_duplicates_nothing(tmp_path, backends):
    """`flask worker` killed with SIGKILL in the middle of a backfill; after a restart every
    store record is in HubSpot exactly once."""
    database_url, queue_url = backends
    run = start(
        tmp_path,
        database_url=database_url,
        queue_url=queue_url,
        customers=120,
        orders=400,
        worker=False,
        bulk_chunk_roots=20,
        lease_seconds=3.0,
    )
    env = {
        **os.environ,
        "FLASK_APP": "app:create_app",
        **{
            f"TANDEM_{k.upper()}": str(v)
            for k, v in demo.sandbox_config(
                run.sandbox, tmp_path, bulk_chunk_roots=20, lease_seconds=3.0
            ).items()
        },
    }
    env["TANDEM_ENCRYPTION_KEYS"] = run.t.settings.encryption_keys.get_secret_value()
    for name, value in (("TANDEM_DATABASE_URL", database_url), ("TANDEM_QUEUE_URL", queue_url)):
        if value:
            env[name] = value
    try:
        connection_id = demo.connect(run.t, run.sandbox)
        worker = subprocess.Popen(
            [sys.executable, "-m", "flask", "worker", "--threads", "2"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert demo.wait_until(
                lambda: demo.linked_counts(run.t, connection_id).get("order", 0) >= 60, 60
            )
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        assert not demo.backfill_done(run.t, connection_id)  # it really died mid-way
        restarted = subprocess.Popen(
            [sys.executable, "-m", "flask", "worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 120)
            result = converge(run.sandbox)
        finally:
            restarted.send_signal(signal.SIGINT)
            try:
                restarted.wait(15)
            except subprocess.TimeoutExpired:
                restarted.kill()
        store = run.sandbox.store_dump()
        crm = run.sandbox.crm_dump()
        assert result.deals == len(store["orders"])
        keys = [d["properties"]["tandem_order_id"] for d in crm["objects"]["deals"]]
        assert len(keys) == len(set(keys))
        line_item_keys = [
            li["properties"]["tandem_line_item_id"] for li in crm["objects"]["line_items"]
        ]
        assert (
            len(line_item_keys)
            == len(set(line_item_keys))
            == sum(len(o["lineItems"]["nodes"]) for o in store["orders"])
        )
        counters = run.sandbox.crm_control("GET", "/counters")
        # Every deal was created once; the repeats after the crash were updates.
        assert counters["objects"]["deals"]["creates"] == len(store["orders"])
    finally:
        run.stop()
