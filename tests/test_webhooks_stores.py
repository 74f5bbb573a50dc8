"""POST /webhooks/woocommerce/<connection> and /webhooks/bigcommerce: authenticate with the
connection's own secret, store once, answer fast, refuse clearly and store nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from app import create_app, tandem_of
from connectors.bigcommerce import WEBHOOK_SECRET_HEADER
from sync.db import transaction
from sync.inbox import WEBHOOK_SECRET_KIND
from sync.models import Connection, InboxEvent, Job

WOO_SECRET = "woo-webhook-secret-0123456789"
BC_SECRET = "bc-webhook-secret-0123456789"
SITE = "https://shop.example.com"
STORE_HASH = "abc123"


@pytest.fixture
def app(database_url, tmp_path):
    app = create_app(
        {
            "database_url": database_url,
            "var_dir": tmp_path,
            "encryption_keys": Fernet.generate_key().decode(),
            "webhook_max_bytes": 4096,
        }
    )
    t = tandem_of(app)
    with transaction(t.sessions) as s:
        for platform, account, secret in (
            ("woocommerce", SITE, WOO_SECRET),
            ("bigcommerce", STORE_HASH, BC_SECRET),
        ):
            connection = Connection(
                name=platform,
                store_platform=platform,
                store_account=account,
                crm_platform="hubspot",
                crm_account="1",
            )
            s.add(connection)
            s.flush()
            t.vault.put(s, connection.id, "store", WEBHOOK_SECRET_KIND, secret)
    yield app
    t.close()


def _connection_id(app, platform):
    with transaction(tandem_of(app).sessions) as s:
        return s.scalar(select(Connection.id).where(Connection.store_platform == platform))


def rows(app):
    with transaction(tandem_of(app).sessions) as s:
        inbox = s.scalars(select(InboxEvent).order_by(InboxEvent.id)).all()
        jobs = s.scalar(select(func.count(Job.id)))
    return inbox, jobs


# ------------------------------------------------------------------ WooCommerce
def woo(client, app, body: bytes, *, secret=WOO_SECRET, delivery="d-1", connection=None, **hdr):
    signature = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    headers = {
        "X-WC-Webhook-Topic": "order.updated",
        "X-WC-Webhook-Delivery-ID": delivery,
        "X-WC-Webhook-ID": "7",
        "X-WC-Webhook-Signature": signature.decode(),
        "Content-Type": "application/json",
        **hdr,
    }
    target = connection if connection is not None else _connection_id(app, "woocommerce")
    return client.post(f"/webhooks/woocommerce/{target}", data=body, headers=headers)


def test_woocommerce_delivery_is_stored_once_under_its_delivery_id(app):
    client = app.test_client()
    body = json.dumps({"id": 42, "status": "processing"}).encode()
    first = woo(client, app, body)
    again = woo(client, app, body)
    assert first.status_code == again.status_code == 200
    assert again.get_json()["duplicate"] is True
    inbox, jobs = rows(app)
    assert [(e.platform, e.delivery_id, e.topic, e.account) for e in inbox] == [
        ("woocommerce", "d-1", "order.updated", SITE)
    ]
    assert inbox[0].payload == {"id": 42, "status": "processing"}
    assert jobs == 1


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "not-the-secret"},
        {"X-WC-Webhook-Signature": "AAAA"},
        {"connection": 999},
    ],
    ids=["wrong secret", "forged signature", "unknown connection"],
)
def test_woocommerce_unauthenticated_delivery_is_401_and_stores_nothing(app, change):
    response = woo(app.test_client(), app, b'{"id": 1}', **change)
    assert response.status_code == 401
    assert rows(app) == ([], 0)


def test_woocommerce_signature_is_over_the_raw_bytes(app):
    body = b'{"id": 1,  "status": "completed"}'  # spacing a re-serialisation would lose
    signature = base64.b64encode(
        hmac.new(
            WOO_SECRET.encode(), json.dumps(json.loads(body)).encode(), hashlib.sha256
        ).digest()
    ).decode()
    response = woo(app.test_client(), app, body, **{"X-WC-Webhook-Signature": signature})
    assert response.status_code == 401


def test_woocommerce_creation_ping_is_answered_and_not_stored(app):
    response = app.test_client().post(
        f"/webhooks/woocommerce/{_connection_id(app, 'woocommerce')}",
        data="webhook_id=7",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200 and response.get_json()["ping"] is True
    assert rows(app) == ([], 0)


def test_woocommerce_malformed_and_oversized_are_refused(app):
    client = app.test_client()
    assert woo(client, app, b"[1, 2]").status_code == 400
    assert woo(client, app, b"not json").status_code == 400
    assert woo(client, app, b'{"id": 1}', **{"X-WC-Webhook-Topic": ""}).status_code == 400
    assert woo(client, app, b'{"a": "' + b"x" * 5000 + b'"}').status_code == 413
    assert rows(app) == ([], 0)


# ------------------------------------------------------------------ BigCommerce
def bc_payload(**changes):
    payload = {
        "scope": "store/order/updated",
        "store_id": "1001",
        "data": {"type": "order", "id": 250},
        "hash": "7d0ce1d12a4b6c0f4c0bfcb3d5a1d4e2f0a9b8c7",
        "created_at": 1_763_800_000,
        "producer": f"stores/{STORE_HASH}",
    }
    payload.update(changes)
    return payload


def bc(client, payload, *, secret=BC_SECRET):
    headers = {WEBHOOK_SECRET_HEADER: secret} if secret is not None else {}
    return client.post("/webhooks/bigcommerce", json=payload, headers=headers)


def test_bigcommerce_retry_is_a_duplicate_but_a_later_change_is_not(app):
    client = app.test_client()
    assert bc(client, bc_payload()).status_code == 200
    retry = bc(client, bc_payload())
    assert retry.status_code == 200 and retry.get_json()["duplicate"] is True
    # The same order changed again: same data, so the same hash, but a new event.
    later = bc(client, bc_payload(created_at=1_763_800_060))
    assert later.status_code == 200 and later.get_json()["duplicate"] is False
    inbox, jobs = rows(app)
    assert [(e.topic, e.account) for e in inbox] == [("store/order/updated", STORE_HASH)] * 2
    assert jobs == 1  # one drain job for the connection, however many deliveries


@pytest.mark.parametrize(
    ("payload", "secret"),
    [
        (bc_payload(), "wrong"),
        (bc_payload(), None),
        (bc_payload(producer="stores/otherstore"), BC_SECRET),
    ],
    ids=["wrong secret", "no secret header", "another store's producer"],
)
def test_bigcommerce_unauthenticated_delivery_is_401_and_stores_nothing(app, payload, secret):
    assert bc(app.test_client(), payload, secret=secret).status_code == 401
    assert rows(app) == ([], 0)


@pytest.mark.parametrize(
    "payload",
    [
        bc_payload(producer="nonsense"),
        bc_payload(hash=None),
        bc_payload(scope=""),
        bc_payload(data="250"),
    ],
    ids=["producer", "hash", "scope", "data"],
)
def test_bigcommerce_malformed_payload_is_400_and_stores_nothing(app, payload):
    assert bc(app.test_client(), payload).status_code == 400
    assert rows(app) == ([], 0)
