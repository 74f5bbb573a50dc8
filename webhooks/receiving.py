"""What every receiver does the same way: size limit, raw body, JSON, a clear error."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from flask import Response, current_app, jsonify, request


class Rejected(Exception):
    """A delivery we refuse: answered with ``status`` and nothing is stored."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self) -> tuple[Response, int]:
        return jsonify(error=self.message), self.status


def raw_body() -> bytes:
    """The exact bytes the platform sent (signatures are computed over them).

    Raises Rejected(413) when the body is over ``TANDEM_WEBHOOK_MAX_BYTES``.
    """
    limit = current_app.config["TANDEM_WEBHOOK_MAX_BYTES"]
    declared = request.content_length
    if declared is not None and declared > limit:
        raise Rejected(413, f"body of {declared} bytes is over the {limit}-byte limit")
    # Read at most limit+1 bytes so a body without (or with a lying) Content-Length cannot
    # make us buffer more than the limit.
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise Rejected(413, f"body is over the {limit}-byte limit")
    return body


def parse_json(body: bytes) -> dict[str, Any]:
    """Raises Rejected(400) unless the body is a JSON object in UTF-8."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise Rejected(400, "body must be a JSON object")
    return value


def header(name: str, *, max_length: int = 255) -> str:
    """A required header. Raises Rejected(400) if missing, empty or absurdly long."""
    value = request.headers.get(name, "").strip()
    if not value:
        raise Rejected(400, f"missing header {name}")
    if len(value) > max_length:
        raise Rejected(400, f"header {name} is too long")
    return value


def hmac_sha256_base64_valid(body: bytes, received: str | None, secret: str) -> bool:
    """True when ``received`` is base64(HMAC-SHA256(body, secret)), compared in constant time.

    Shopify (X-Shopify-Hmac-Sha256) and WooCommerce (X-WC-Webhook-Signature) both sign this way.
    """
    if not received or not secret:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, received.strip().encode())
