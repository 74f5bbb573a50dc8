"""A local stand-in for the BigCommerce REST API (v2 orders, v3 customers and hooks), faithful
to its documented behaviour and quirks: several stores, one request quota per store shared by
every client with the X-Rate-Limit-* headers, RFC-2822 dates and 4-decimal money on v2, 204 on
an empty page, archived (never deleted) orders, and thin webhooks retried on BigCommerce's
schedule until the hook is deactivated.

``create_app()`` returns the Flask app; serve it with ``sandbox.server.serve``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Flask

from sandbox.bigcommerce.api import api
from sandbox.bigcommerce.control import control
from sandbox.bigcommerce.delivery import Dispatcher
from sandbox.bigcommerce.state import State


def create_app(clock: Callable[[], float] = time.time) -> Flask:
    """The simulator; its webhook thread stops with ``app.extensions
    ["bigcommerce_dispatcher"].stop()`` (a daemon thread otherwise)."""
    app = Flask("sandbox.bigcommerce")
    state = State(clock)
    app.extensions["bigcommerce_state"] = state
    app.extensions["bigcommerce_dispatcher"] = Dispatcher(state)
    app.register_blueprint(api)
    app.register_blueprint(control, url_prefix="/_sandbox")
    return app


__all__ = ["create_app"]
