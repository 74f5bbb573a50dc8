"""POST /webhooks/shopify: verify on the raw bytes, store once, answer fast, refuse clearly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from app import create_app, tandem_of
from sync.db import transaction
from sync.models import Connection, InboxEvent, Job

SECRET = "shpss_test_client_secret"
SHOP = "acme.myshopify.com"


@pytest.fixture
def app(database_url, tmp_path):
    app = create_app(
        {
            "database_url": database_url,
            "var_dir": tmp_path,
            "encryption_keys": Fernet.generate_key().decode(),
            "shopify_client_secret": SECRET,
            "webhook_max_bytes": 4096,
        }
    )
    with transaction(tandem_of(app).sessions) as s:
        s.add(
            Connection(
                name="Acme",
                store_platform="shopify",
                store_account=SHOP,
                crm_platform="hubspot",
                crm_account="1",
            )
        )
    yield app
    tandem_of(app).close()


def sign(body: bytes, secret: str = SECRET) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def deliver(
    client,
    body: bytes,
    *,
    topic="customers/update",
    webhook_id="wh-1",
    shop=SHOP,
    signature: str | None = "auto",
    **extra,
):
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": shop,
        "Content-Type": "application/json",
        **extra,
    }
    if signature == "auto":
        headers["X-Shopify-Hmac-Sha256"] = sign(body)
    elif signature is not None:
        headers["X-Shopify-Hmac-Sha256"] = signature
    return client.post("/webhooks/shopify", data=body, headers=headers)


def rows(app):
    with transaction(tandem_of(app).sessions) as s:
        inbox = s.scalars(select(InboxEvent).order_by(InboxEvent.id)).all()
        job_count = s.scalar(select(func.count(Job.id)))
    return inbox, job_count


BODY = json.dumps(
    {"id": 7, "email": "zoë@example.com", "updated_at": "2024-03-01T05:00:00-05:00"},
    ensure_ascii=False,
).encode()


def test_signed_delivery_is_stored_with_one_job_and_answered_200(app):
    response = deliver(app.test_client(), BODY)
    assert response.status_code == 200
    inbox, job_count = rows(app)
    assert [(r.topic, r.delivery_id, r.status, r.payload["id"]) for r in inbox] == [
        ("customers/update", "wh-1", "pending", 7)
    ]
    assert job_count == 1


@pytest.mark.parametrize(
    ("case", "kwargs"),
    [
        ("missing", {"signature": None}),
        ("empty", {"signature": ""}),
        ("wrong secret", {"signature": sign(BODY, "another-secret")}),
        ("garbage", {"signature": "not base64 at all"}),
    ],
)
def test_bad_signature_is_401_and_stores_nothing(app, case, kwargs):
    response = deliver(app.test_client(), BODY, **kwargs)
    assert response.status_code == 401, case
    assert rows(app) == ([], 0)


def test_tampered_body_is_401(app):
    signature = sign(BODY)
    tampered = BODY.replace(b"7", b"8")
    response = deliver(app.test_client(), tampered, signature=signature)
    assert response.status_code == 401
    assert rows(app) == ([], 0)


def test_reserialised_json_breaks_the_signature(app):
    # The signature covers the exact bytes: the same JSON with other spacing must not verify.
    respaced = json.dumps(json.loads(BODY), indent=2).encode()
    response = deliver(app.test_client(), respaced, signature=sign(BODY))
    assert response.status_code == 401


def test_duplicate_delivery_is_acknowledged_and_stored_once(app):
    client = app.test_client()
    assert deliver(client, BODY).status_code == 200
    second = deliver(client, BODY)
    assert second.status_code == 200 and second.get_json()["duplicate"] is True
    inbox, job_count = rows(app)
    assert len(inbox) == 1 and job_count == 1


def test_many_deliveries_share_one_pending_drain_job(app):
    client = app.test_client()
    for n in range(5):
        assert deliver(client, BODY, webhook_id=f"wh-{n}").status_code == 200
    inbox, job_count = rows(app)
    assert len(inbox) == 5 and job_count == 1


def test_malformed_json_is_400_and_stores_nothing(app):
    body = b'{"id": 7,'
    response = deliver(app.test_client(), body)
    assert response.status_code == 400
    assert "JSON" in response.get_json()["error"]
    assert rows(app) == ([], 0)


def test_oversized_body_is_413_and_stores_nothing(app):
    body = json.dumps({"id": 1, "note": "x" * 5000}).encode()
    response = deliver(app.test_client(), body)
    assert response.status_code == 413
    assert rows(app) == ([], 0)


def test_missing_topic_header_is_400(app):
    client = app.test_client()
    response = client.post(
        "/webhooks/shopify",
        data=BODY,
        headers={
            "X-Shopify-Hmac-Sha256": sign(BODY),
            "X-Shopify-Webhook-Id": "wh-9",
            "X-Shopify-Shop-Domain": SHOP,
        },
    )
    assert response.status_code == 400
    assert "X-Shopify-Topic" in response.get_json()["error"]
    assert rows(app) == ([], 0)


def test_unknown_shop_is_kept_as_unroutable_not_dropped(app):
    response = deliver(app.test_client(), BODY, shop="stranger.myshopify.com")
    assert response.status_code == 200
    inbox, job_count = rows(app)
    assert [(r.account, r.status, r.connection_id) for r in inbox] == [
        ("stranger.myshopify.com", "unroutable", None)
    ]
    assert job_count == 0


def test_compliance_topic_is_verified_and_queues_its_privacy_job(app):
    body = json.dumps({"shop_id": 1, "shop_domain": SHOP, "customer": {"id": 7}}).encode()
    assert (
        deliver(app.test_client(), body, topic="customers/redact", signature=None).status_code
        == 401
    )
    assert deliver(app.test_client(), body, topic="customers/redact").status_code == 200
    inbox, job_count = rows(app)
    # Kept out of the sync drain; the privacy job (sync.privacy) acts on it.
    assert [(r.topic, r.status) for r in inbox] == [("customers/redact", "deferred")]
    assert job_count == 1


def test_bad_shop_header_is_400(app):
    response = deliver(app.test_client(), BODY, shop="evil.example.com")
    assert response.status_code == 400
    assert rows(app) == ([], 0)
