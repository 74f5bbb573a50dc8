"""What the simulator tests share: a webhook receiver on 127.0.0.1 and a bounded wait."""

from __future__ import annotations

import threading
import time

import pytest
from flask import Flask, request

from sandbox.server import serve


@pytest.fixture
def receiver():
    """(url, deliveries as (headers, raw body), {"code": status to answer with})."""
    app = Flask("receiver")
    got, status = [], {"code": 200}
    lock = threading.Lock()

    @app.post("/hook")
    def hook():
        with lock:
            got.append((dict(request.headers), request.get_data()))
        return "", status["code"]

    server = serve(app)
    yield server.url + "/hook", got, status
    server.stop()


def wait_for(predicate, timeout=5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.02)
    return predicate()
