"""POST /webhooks/zoho/<connection_id> — Zoho CRM watch-channel callbacks.

Facts (shared/reference/api-crms.md section 3.6; https://www.zoho.com/crm/developer/docs/api/v8/
notifications/enable.html and .../overview.html):

- Zoho signs nothing. The ``token`` Tandem gave the channel (at most 50 characters) is echoed
  in every callback "to ensure that the notification is from Zoho CRM": it is the only
  authenticity check, compared in constant time with the connection's stored token
  (credential side "crm", kind ``webhook_token``; see sync.channels). The connection is in the
  URL because the token can only be checked against its own.
- The body is ``{server_time (epoch ms), query_params, module, resource_uri, ids[],
  affected_fields[], operation, channel_id, token}``: ids only, the worker reads the records.
- Zoho sends no delivery id, so the inbox key is the SHA-256 of the raw body: a redelivery of
  the same bytes is a duplicate; a later change of the same records differs in ``server_time``.
- Zoho's retry policy is UNCONFIRMED (reference 3.6), so a callback we cannot store answers 500
  in case Zoho retries, and the connection's polling catches what is lost either way.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from flask import current_app, jsonify

from sync import inbox
from sync.db import transaction
from webhooks.receiving import Rejected, parse_json, raw_body

PLATFORM = "zoho"
MAX_IDS = 1000  # a callback names the records of one action (Zoho writes take 100 at most)


def _text(body: dict[str, Any], key: str, limit: int = 100) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise Rejected(400, f"field {key!r} is missing or malformed")
    return value


def _server_time(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def receive(connection_id: int):
    tandem = current_app.extensions["tandem"]
    try:
        body = raw_body()
        payload = parse_json(body)
        received = payload.get("token")
        with transaction(tandem.sessions) as session:
            found = inbox.crm_channel_token(session, tandem.vault, PLATFORM, connection_id)
        # One answer for "no such connection" and "wrong token": a caller learns nothing.
        if (
            found is None
            or not isinstance(received, str)
            or not hmac.compare_digest(received.encode(), found[1].encode())
        ):
            raise Rejected(401, "invalid or missing token")
        connection = found[0]
        module = _text(payload, "module", 60)
        operation = _text(payload, "operation", 32)
        ids = payload.get("ids")
        if not isinstance(ids, list) or len(ids) > MAX_IDS:
            raise Rejected(400, "field 'ids' must be a list of record ids")
        if not all(isinstance(i, str | int) and not isinstance(i, bool) for i in ids):
            raise Rejected(400, "field 'ids' must be a list of record ids")
    except Rejected as rejected:
        return rejected.response()

    # The token is a credential: it is not kept in the inbox with the rest of the callback.
    stored = {k: v for k, v in payload.items() if k != "token"}
    with transaction(tandem.sessions) as session:
        recorded = inbox.record_crm(
            session,
            platform=PLATFORM,
            delivery_id=hashlib.sha256(body).hexdigest(),
            account=connection.crm_account,
            topic=f"{module}.{operation}",
            payload=stored,
            connection_id=connection.id,
            triggered_at=_server_time(payload.get("server_time")),
        )
    for row in recorded:
        if row.job_id is not None:
            tandem.queue.submit_quietly(row.job_id)
    return jsonify(received=True, duplicate=all(r.duplicate for r in recorded)), 200
