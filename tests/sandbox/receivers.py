"""A scripted receiver on 127.0.0.1 for the CRM simulators' push channels: it records every
request (headers, raw body, full URL) and answers from a list of (status, body), then a
default."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from flask import Flask, request

from sandbox.server import serve


class Receiver:
    def __init__(self, answers=None, default=(200, "")) -> None:
        self.answers = list(answers or [])
        self.default = default
        self.received: list[tuple[dict[str, str], bytes, str]] = []
        self.lock = threading.Lock()
        app = Flask("crm-receiver")

        @app.post("/hooks/<path:rest>")
        @app.post("/hooks")
        def hook(rest: str = ""):
            with self.lock:
                self.received.append((dict(request.headers), request.get_data(), request.url))
                status, body = self.answers.pop(0) if self.answers else self.default
            return body, status, {"Content-Type": "text/xml; charset=utf-8"}

        self.server = serve(app)
        self.url = f"{self.server.url}/hooks"

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, body, _ in self.received]


def receiver_factory() -> Iterator:
    """For a fixture: ``yield from receiver_factory()`` gives ``make(answers, default)``; every
    receiver made is stopped afterwards."""
    made: list[Receiver] = []

    def make(answers=None, default=(200, "")) -> Receiver:
        made.append(Receiver(answers, default))
        return made[-1]

    yield make
    for r in made:
        r.server.stop()
