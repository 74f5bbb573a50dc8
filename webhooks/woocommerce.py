"""POST /webhooks/woocommerce/<connection_id> — WooCommerce webhook deliveries.

Each webhook Tandem registers carries a secret of that connection's own, and WooCommerce signs
every delivery with it: X-WC-Webhook-Signature is base64(HMAC-SHA256(raw body, secret))
[WC-SRC class-wc-webhook.php generate_signature; WC-DOCS _webhooks.md]. The connection is in the
URL because the signature can only be checked with its secret. X-WC-Webhook-Delivery-ID
identifies a delivery and is the inbox's dedupe key. WooCommerce does not retry a failed
delivery and disables the webhook after more than five failures in a row, so a delivery we can
store is always answered 200. When a webhook is created WooCommerce pings its URL with the form
body ``webhook_id=<id>`` and no signature, and expects a 200.
"""

from __future__ import annotations

import logging
import re

from flask import current_app, jsonify, request

from sync import inbox
from sync.db import transaction
from sync.records import DEFERRED_TOPICS
from webhooks.receiving import Rejected, header, hmac_sha256_base64_valid, parse_json, raw_body

log = logging.getLogger("tandem.webhooks")

PLATFORM = "woocommerce"
_PING = re.compile(rb"webhook_id=\d+")


def receive(connection_id: int):
    tandem = current_app.extensions["tandem"]
    try:
        body = raw_body()
        if "X-WC-Webhook-Topic" not in request.headers and _PING.fullmatch(body.strip()):
            # The creation ping stores nothing, so it needs no signature (it has none).
            return jsonify(received=True, ping=True), 200
        with transaction(tandem.sessions) as session:
            found = inbox.webhook_secret(
                session, tandem.vault, PLATFORM, connection_id=connection_id
            )
        # One answer for "no such connection" and "wrong signature": a caller learns nothing.
        if found is None or not hmac_sha256_base64_valid(
            body, request.headers.get("X-WC-Webhook-Signature"), found[1]
        ):
            raise Rejected(401, "invalid or missing X-WC-Webhook-Signature")
        connection = found[0]
        payload = parse_json(body)
        topic = header("X-WC-Webhook-Topic", max_length=100)
        delivery_id = header("X-WC-Webhook-Delivery-ID", max_length=200)
    except Rejected as rejected:
        return rejected.response()

    with transaction(tandem.sessions) as session:
        recorded = inbox.record(
            session,
            platform=PLATFORM,
            delivery_id=delivery_id,
            account=connection.store_account,
            topic=topic,
            payload=payload,
            deferred_topics=DEFERRED_TOPICS[PLATFORM],
            event_id=request.headers.get("X-WC-Webhook-ID"),
        )
    if recorded.job_id is not None:
        tandem.queue.submit_quietly(recorded.job_id)
    return jsonify(received=True, duplicate=recorded.duplicate), 200
