"""POST /webhooks/bigcommerce — BigCommerce webhook deliveries.

BigCommerce sends, on every delivery, the custom headers given when the hook was created
[BC-WH]; Tandem registers each connection's hooks with a secret of that connection's own in
connectors.bigcommerce.WEBHOOK_SECRET_HEADER, compared here in constant time. The store is
named by the payload's ``producer`` ("stores/{hash}"). Payloads are thin
(``{scope, store_id, data: {type, id}, hash, created_at, producer}``): the worker reads the
record afterwards. A retried event carries the same ``hash`` [BC-WH]; but the hash is computed
over ``data`` alone, which two successive updates of one order share, so the inbox key is the
hash together with the event's ``created_at``: a retry is a duplicate, a later change is not.
BigCommerce retries any non-2xx on its schedule and finally deactivates the hook, so a delivery
we can store is always answered 200.
"""

from __future__ import annotations

import hmac
import re
from datetime import UTC, datetime

from flask import current_app, jsonify, request

from connectors.bigcommerce import WEBHOOK_SECRET_HEADER
from sync import inbox
from sync.db import transaction
from sync.records import DEFERRED_TOPICS
from webhooks.receiving import Rejected, parse_json, raw_body

PLATFORM = "bigcommerce"
_PRODUCER = re.compile(r"stores/([a-z0-9]{1,64})")


def _text(payload: dict, key: str, limit: int = 200) -> str:
    value = payload.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise Rejected(400, f"payload field {key!r} is missing or malformed")
    return value


def receive():
    tandem = current_app.extensions["tandem"]
    try:
        body = raw_body()
        payload = parse_json(body)
        producer = _PRODUCER.fullmatch(_text(payload, "producer"))
        if producer is None:
            raise Rejected(400, "payload field 'producer' must be stores/<store hash>")
        store_hash = producer.group(1)
        with transaction(tandem.sessions) as session:
            found = inbox.webhook_secret(session, tandem.vault, PLATFORM, account=store_hash)
        received = request.headers.get(WEBHOOK_SECRET_HEADER, "")
        if found is None or not hmac.compare_digest(received.encode(), found[1].encode()):
            raise Rejected(401, f"invalid or missing {WEBHOOK_SECRET_HEADER}")
        scope = _text(payload, "scope", 100)
        delivery_id = f"{_text(payload, 'hash')}:{_text(payload, 'created_at', 20)}"
        if not isinstance(payload.get("data"), dict):
            raise Rejected(400, "payload field 'data' must be an object")
    except Rejected as rejected:
        return rejected.response()

    created = payload["created_at"]
    with transaction(tandem.sessions) as session:
        recorded = inbox.record(
            session,
            platform=PLATFORM,
            delivery_id=delivery_id,
            account=store_hash,
            topic=scope,
            payload=payload,
            deferred_topics=DEFERRED_TOPICS[PLATFORM],
            triggered_at=datetime.fromtimestamp(int(created), UTC)
            if str(created).isdigit()
            else None,
        )
    if recorded.job_id is not None:
        tandem.queue.submit_quietly(recorded.job_id)
    return jsonify(received=True, duplicate=recorded.duplicate), 200
