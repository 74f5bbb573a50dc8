"""POST /webhooks/hubspot — HubSpot webhook deliveries (CRM object events).

Webhooks belong to the app, not to a connection: every account that installed the app sends
to one target URL [HS-WH], so the receiver is app-wide and each event names its account
(``portalId``). Facts (shared/reference/api-crms.md section 1.6, sources there):

- v3 signature [HS-VALIDATE, HS-SIGV3-CL]: ``X-HubSpot-Signature-v3`` is
  base64(HMAC-SHA256(key = the app's client secret, message = method + URI + raw body +
  ``X-HubSpot-Request-Timestamp``)), the URI being the one HubSpot called with the percent
  escapes of ``: / ? @ ! $ ' ( ) * , ;`` decoded
  (https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation).
  A timestamp older than 5 minutes is refused (the SDK's ``MAX_ALLOWED_TIMESTAMP`` is 300 s,
  HubSpot/hubspot-api-python hubspot/utils/signature.py); so is one that far in the future,
  which would otherwise stretch the replay window.
- Behind a proxy the URI Flask sees is not the one HubSpot called, so ``TANDEM_PUBLIC_URL``,
  when set, supplies scheme, host and any path prefix; the path and query are the request's.
- The body is a JSON array of events ``{eventId, subscriptionId, portalId, appId, occurredAt,
  subscriptionType, attemptNumber, objectId, propertyName, propertyValue, changeSource,
  sourceId, ...}`` [HS-WH]. The event id is the dedupe key: a retried batch repeats it (with a
  higher ``attemptNumber``), so a retry is a duplicate.
- Failed deliveries (timeouts over 5 s, any 4xx/5xx) are retried for 24 hours [HS-ERR], so a
  batch we cannot store is answered 500 and comes again; a batch we refuse (401/400/413) is
  retried too, harmlessly: it is refused again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from datetime import UTC, datetime
from typing import Any

from flask import current_app, jsonify, request

from sync import inbox
from sync.db import transaction
from webhooks.receiving import Rejected, raw_body

log = logging.getLogger("tandem.webhooks")

PLATFORM = "hubspot"
SIGNATURE_HEADER = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER = "X-HubSpot-Request-Timestamp"
MAX_AGE_MS = 5 * 60 * 1000
# HubSpot batches events into one request (100 per request is widely stated, UNCONFIRMED on a
# primary page); anything far beyond that is not HubSpot.
MAX_EVENTS = 1000
# The escapes HubSpot decodes in the URI before signing [HS-VALIDATE].
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def signing_uri(uri: str) -> str:
    """``uri`` as HubSpot signs it: the listed percent escapes decoded (any letter case)."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def v3_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The X-HubSpot-Signature-v3 value of a request (``uri`` as called, not yet decoded)."""
    message = method.encode() + signing_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _called_uri(public_url: str | None) -> str:
    """The full URI HubSpot called: the path and query exactly as sent (the server's raw
    request line; Flask's ``request.url`` decodes some escapes already), after
    TANDEM_PUBLIC_URL when one is configured (its scheme, host and any prefix a proxy adds),
    else after the request's own scheme and host."""
    environ = request.environ
    tail = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not tail or not tail.startswith("/"):
        tail = request.full_path if request.query_string else request.path
    if not public_url:
        return request.host_url.rstrip("/") + tail
    root = request.script_root
    if root and tail.startswith(root):
        tail = tail[len(root) :]
    return public_url.rstrip("/") + tail


def _verify(body: bytes, secret: str, public_url: str | None, now_ms: int) -> None:
    """Raises Rejected(401) unless the v3 signature is valid and its timestamp fresh."""
    received = request.headers.get(SIGNATURE_HEADER, "").strip()
    stamp = request.headers.get(TIMESTAMP_HEADER, "").strip()
    if not secret or not received or not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 16:
        raise Rejected(401, f"invalid or missing {SIGNATURE_HEADER} / {TIMESTAMP_HEADER}")
    if abs(now_ms - int(stamp)) > MAX_AGE_MS:
        raise Rejected(401, f"{TIMESTAMP_HEADER} is more than 5 minutes away from now")
    expected = v3_signature(secret, request.method, _called_uri(public_url), body, stamp)
    if not hmac.compare_digest(expected.encode(), received.encode()):
        raise Rejected(401, f"invalid {SIGNATURE_HEADER}")


def _events(body: bytes) -> list[dict[str, Any]]:
    """The batch's events. Raises Rejected(400) unless it is a JSON array of event objects
    with the identifying fields, Rejected(413) past MAX_EVENTS."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(value, list) or not value:
        raise Rejected(400, "body must be a non-empty JSON array of events")
    if len(value) > MAX_EVENTS:
        raise Rejected(413, f"{len(value)} events in one request; at most {MAX_EVENTS}")
    for index, event in enumerate(value):
        if not isinstance(event, dict):
            raise Rejected(400, f"event {index} is not an object")
        for key in ("eventId", "portalId", "objectId"):
            if not _is_id(event.get(key)):
                raise Rejected(400, f"event {index}: {key} is missing or not an id")
        kind = event.get("subscriptionType")
        if not isinstance(kind, str) or not kind or len(kind) > 100:
            raise Rejected(400, f"event {index}: subscriptionType is missing or malformed")
    return value


def _is_id(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return 0 <= value < 10**40
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 40


def _occurred_at(value: object) -> datetime | None:
    """``occurredAt`` (epoch milliseconds) as a UTC time; None if absent or absurd."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _change_source(event: dict[str, Any]) -> str | None:
    """``changeSource:sourceId`` ("INTEGRATION:123456" for an app's writes, "CRM_UI:userId:42"
    for a user's), or the source alone; a hint for echo suppression, not proof."""
    source = event.get("changeSource")
    if not isinstance(source, str) or not source:
        return None
    source_id = event.get("sourceId")
    text = f"{source}:{source_id}" if source_id not in (None, "") else source
    return text[:200]


def receive():
    tandem = current_app.extensions["tandem"]
    settings = tandem.settings
    try:
        body = raw_body()
        secret = settings.hubspot_client_secret
        # TANDEM_PUBLIC_URL counts only when configured: its default names the local server.
        public_url = settings.public_url if "public_url" in settings.model_fields_set else None
        _verify(
            body,
            secret.get_secret_value() if secret else "",
            public_url,
            int(time.time() * 1000),
        )
        events = _events(body)
    except Rejected as rejected:
        return rejected.response()

    jobs: list[int] = []
    unroutable = set()
    duplicates = 0
    with transaction(tandem.sessions) as session:
        for event in events:
            recorded = inbox.record_crm(
                session,
                platform=PLATFORM,
                delivery_id=str(event["eventId"]),
                account=str(event["portalId"]),
                topic=event["subscriptionType"],
                payload=event,
                event_id=str(event["eventId"]),
                triggered_at=_occurred_at(event.get("occurredAt")),
                change_source=_change_source(event),
            )
            for row in recorded:
                if row.job_id is not None:
                    jobs.append(row.job_id)
                if not row.routable:
                    unroutable.add(str(event["portalId"]))
                duplicates += row.duplicate
    for job_id in dict.fromkeys(jobs):
        tandem.queue.submit_quietly(job_id)
    for portal in sorted(unroutable):
        log.warning("hubspot events for portal %s have no connection; kept as unroutable", portal)
    return jsonify(received=len(events), duplicates=duplicates), 200
