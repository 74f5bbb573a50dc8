"""What the store simulators' control APIs (/_sandbox/...) share: request parsing, the 400
answer, and the call and delivery logs every simulator keeps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, jsonify, request


class BadRequest(Exception):
    """A control request refused with ``status`` and ``{"error": message}``; nothing changed."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def answer(error: BadRequest) -> tuple[Response, int]:
    return jsonify(error=str(error)), error.status


def json_body() -> dict[str, Any]:
    """The request's JSON object ({} when empty). Raises BadRequest for anything else."""
    data = request.get_json(silent=True)
    if data is None and not request.data:
        return {}
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


def count(data: dict[str, Any], key: str, default: int = 0) -> int:
    """A non-negative integer field. Raises BadRequest otherwise."""
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequest(f"{key} must be an integer >= 0")
    return value


def add_log_routes(
    bp: Blueprint, prefix: str, account: Callable[[str], Any], lock: Callable[[], Any]
) -> None:
    """GET and DELETE ``{prefix}/<key>/calls`` and ``.../deliveries`` for an account type
    whose objects keep ``calls`` and ``deliveries`` lists; ``account(key)`` finds one (or
    raises BadRequest 404) and ``lock()`` is the simulator's state lock."""
    for log in ("calls", "deliveries"):

        def read(key: str, log: str = log) -> Response:
            with lock():
                return jsonify({log: list(getattr(account(key), log))})

        def clear(key: str, log: str = log) -> Response:
            with lock():
                getattr(account(key), log).clear()
                return jsonify({log: []})

        bp.add_url_rule(f"{prefix}/<key>/{log}", f"read_{log}", read, methods=["GET"])
        bp.add_url_rule(f"{prefix}/<key>/{log}", f"clear_{log}", clear, methods=["DELETE"])
