"""The simulator as a Flask app: the Admin API under /<shop>/admin/api/<version>/graphql.json,
bulk files under /_bulk/, and the control endpoints under /_sandbox/ (see ``control``).

Shops are told apart by the path prefix, so one simulator serves several shops: Tandem's base
URL template ``http://127.0.0.1:PORT/{shop}`` stands in for ``https://{shop}``.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from flask import Flask, Response, jsonify, request

from sandbox.shopify.control import control
from sandbox.shopify.simulator import Served, Simulator, served_version
from sandbox.shopify.store import Shop, utc_now
from sandbox.shopify.webhooks import Sender, http_sender

UNAUTHORIZED_MESSAGE = (
    "[API] Invalid API key or access token (unrecognized login or wrong password)"
)
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def create_app(
    *,
    restore_rate: float = 100.0,
    bucket_size: float = 1000.0,
    clock: Callable[[], float] = time.monotonic,
    sender: Sender = http_sender,
) -> Flask:
    """A standalone simulated Shopify. ``clock`` drives the cost buckets (tests pass a fake);
    ``sender`` posts webhooks (the default uses HTTP)."""
    app = Flask("sandbox.shopify")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep Shopify's key order
    simulator = Simulator(
        restore_rate=restore_rate, bucket_size=bucket_size, clock=clock, sender=sender
    )
    app.extensions["shopify_simulator"] = simulator
    app.register_blueprint(control, url_prefix="/_sandbox")

    @app.post("/<shop_domain>/admin/api/<version>/graphql.json")
    def graphql(shop_domain: str, version: str) -> Response:
        shop = simulator.shop(shop_domain)
        api_version = served_version(version)
        if shop is None or api_version is None:
            return _json({"errors": "Not Found"}, 404)
        token = request.headers.get("X-Shopify-Access-Token", "")
        if not hmac.compare_digest(token.encode(), shop.access_token.encode()):
            served = Served(401, {"errors": UNAUTHORIZED_MESSAGE})
        else:
            served = _serve(simulator, shop, api_version)
        _log(simulator, shop, served)
        response = _json(served.payload, served.status)
        response.headers["X-Shopify-API-Version"] = api_version
        return response

    @app.get("/_bulk/<token>.jsonl")
    def bulk_file(token: str) -> Response:
        with simulator.store.lock:
            found = simulator.bulk.files.get(token)
        if found is None:
            return Response(
                "<Error><Code>NoSuchKey</Code></Error>", 404, mimetype="application/xml"
            )
        domain, body = found
        response = _ranged(body)
        shop = simulator.shop(domain)
        if shop is not None:
            _log(simulator, shop, Served(response.status_code, {}))
        return response

    return app


def _serve(simulator: Simulator, shop: Shop, api_version: str) -> Served:
    with simulator.store.lock:
        knobs = shop.knobs
        latency = knobs.latency_ms / 1000.0
        fail = knobs.error_rate > 0 and shop.rng.random() < knobs.error_rate
        error_status = knobs.error_status
    if latency:
        time.sleep(latency)  # the one configured delay in request handling
    if fail:
        return Served(error_status, {"errors": HTTPStatus(error_status).phrase})
    body = request.get_json(silent=True)
    return simulator.graphql(shop, api_version, body, request.host_url)


def _log(simulator: Simulator, shop: Shop, served: Served) -> None:
    with simulator.store.lock:
        shop.calls.append(
            {
                "at": utc_now().isoformat(),
                "method": request.method,
                "path": request.path,
                "range": request.headers.get("Range"),
                "operation": served.operation,
                "requested_cost": served.requested,
                "actual_cost": served.actual,
                "status": served.status,
            }
        )


def _json(payload: Any, status: int) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


def _ranged(body: bytes) -> Response:
    """Serve ``body`` honouring a single ``Range: bytes=a-b`` request, as cloud storage does."""
    header = request.headers.get("Range")
    total = len(body)
    base = {"Accept-Ranges": "bytes", "Content-Type": "application/jsonl"}
    if not header:
        return Response(body, 200, headers=base)
    match = _RANGE.match(header.strip())
    if not match or (not match.group(1) and not match.group(2)):
        return Response(body, 200, headers=base)
    if match.group(1):
        start = int(match.group(1))
        end = int(match.group(2)) if match.group(2) else total - 1
    else:  # suffix range: the last N bytes
        start, end = max(0, total - int(match.group(2))), total - 1
    if start >= total or start > end:
        return Response(b"", 416, headers={**base, "Content-Range": f"bytes */{total}"})
    end = min(end, total - 1)
    headers = {**base, "Content-Range": f"bytes {start}-{end}/{total}"}
    return Response(body[start : end + 1], 206, headers=headers)
