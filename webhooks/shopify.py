"""POST /webhooks/shopify — Shopify webhook deliveries.

Shopify signs each delivery with the app's client secret: base64(HMAC-SHA256(raw body)) in
X-Shopify-Hmac-Sha256, to be compared in constant time before the body is parsed
(https://shopify.dev/docs/apps/build/webhooks/verify-deliveries). Deliveries are at least once
and may repeat; X-Shopify-Webhook-Id identifies a delivery, so it is the inbox's dedupe key
(https://shopify.dev/apps/build/webhooks/ignore-duplicates). Compliance topics must answer 401
to a bad signature (https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance).
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app, jsonify

from connectors.errors import ConfigurationError
from connectors.shopify import normalise_shop_domain
from sync import inbox
from sync.db import transaction
from sync.records import DEFERRED_TOPICS
from webhooks.receiving import Rejected, header, hmac_sha256_base64_valid, parse_json, raw_body

log = logging.getLogger("tandem.webhooks")


def _triggered_at(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def receive():
    from flask import request

    tandem = current_app.extensions["tandem"]
    try:
        body = raw_body()
        secret = tandem.settings.shopify_client_secret
        if not hmac_sha256_base64_valid(
            body,
            request.headers.get("X-Shopify-Hmac-Sha256"),
            secret.get_secret_value() if secret else "",
        ):
            raise Rejected(401, "invalid or missing X-Shopify-Hmac-Sha256")
        payload = parse_json(body)
        topic = header("X-Shopify-Topic", max_length=100)
        delivery_id = header("X-Shopify-Webhook-Id", max_length=200)
        try:
            shop = normalise_shop_domain(header("X-Shopify-Shop-Domain"))
        except ConfigurationError as exc:
            raise Rejected(400, f"X-Shopify-Shop-Domain: {exc}") from None
    except Rejected as rejected:
        return rejected.response()

    with transaction(tandem.sessions) as session:
        recorded = inbox.record(
            session,
            platform="shopify",
            delivery_id=delivery_id,
            account=shop,
            topic=topic,
            payload=payload,
            deferred_topics=DEFERRED_TOPICS["shopify"],
            event_id=request.headers.get("X-Shopify-Event-Id"),
            triggered_at=_triggered_at(request.headers.get("X-Shopify-Triggered-At")),
        )
    if recorded.job_id is not None:
        tandem.queue.submit_quietly(recorded.job_id)
    if not recorded.routable:
        log.warning(
            "shopify delivery %s for %s has no connection; kept as unroutable", delivery_id, shop
        )
    return jsonify(received=True, duplicate=recorded.duplicate), 200
