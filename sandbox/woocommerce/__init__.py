"""A local stand-in for the WooCommerce REST API v3, faithful to its documented behaviour and
quirks: several sites (each with its own time zone), OAuth 1.0a over plain HTTP, site-local and
GMT date pairs, page-number pagination with X-WP-* headers, batch limits, and webhooks that are
coalesced, never retried and disabled after repeated failures.

``create_app()`` returns the Flask app; serve it with ``sandbox.server.serve``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask

from sandbox.woocommerce.api import api
from sandbox.woocommerce.control import control
from sandbox.woocommerce.delivery import Dispatcher
from sandbox.woocommerce.state import State


def create_app(clock: Callable[[], float] = time.time) -> Flask:
    """The simulator. Its webhook dispatcher thread stops with ``app.extensions
    ["woocommerce_dispatcher"].stop()`` (a daemon thread otherwise)."""
    app = Flask("sandbox.woocommerce")
    state = State(clock)
    app.extensions["woocommerce_state"] = state
    app.extensions["woocommerce_dispatcher"] = Dispatcher(state)
    app.register_blueprint(api)
    app.register_blueprint(control, url_prefix="/_sandbox")
    return app


__all__ = ["create_app"]
