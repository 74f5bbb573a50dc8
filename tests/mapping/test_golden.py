"""Golden files: raw Shopify payload in, canonical record out.

Each case under tests/golden/shopify/ is ``<name>.input.json`` (a GraphQL node or a REST webhook
body, as Shopify sends it) and ``<name>.expected.json`` (the canonical ``model_dump(mode="json")``),
both written by hand. The name's prefix picks the parser: ``customer_graphql_``,
``customer_rest_``, ``order_graphql_``, ``order_rest_``. Expected files are never regenerated
by code: when a mapping changes on purpose, edit the expected file and check it by eye.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mapping import (
    Customer,
    Order,
    customer_from_graphql,
    customer_from_rest,
    order_from_graphql,
    order_from_rest,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "shopify"

# Every case reads phones without a country code as if the store were in the US.
DEFAULT_REGION = "US"

PARSERS: dict[str, Callable[..., Customer | Order]] = {
    "customer_graphql_": customer_from_graphql,
    "customer_rest_": customer_from_rest,
    "order_graphql_": order_from_graphql,
    "order_rest_": order_from_rest,
}

# (polled GraphQL node, webhook REST body) describing the same state of the same record.
TWINS = [
    ("customer_graphql_full", "customer_rest_full"),
    ("customer_graphql_full", "customer_rest_webhook_2025"),
    ("order_graphql_full", "order_rest_full"),
    ("order_graphql_partially_refunded", "order_rest_partially_refunded"),
]


def _cases() -> list[str]:
    return sorted(p.name.removesuffix(".input.json") for p in GOLDEN.glob("*.input.json"))


def _load(name: str, kind: str) -> Any:
    return json.loads((GOLDEN / f"{name}.{kind}.json").read_text(encoding="utf-8"))


def _parse(name: str) -> Customer | Order:
    parser = next(fn for prefix, fn in PARSERS.items() if name.startswith(prefix))
    return parser(_load(name, "input"), default_region=DEFAULT_REGION)


def test_every_case_has_both_files_and_a_parser() -> None:
    inputs = {p.name.removesuffix(".input.json") for p in GOLDEN.glob("*.input.json")}
    expected = {p.name.removesuffix(".expected.json") for p in GOLDEN.glob("*.expected.json")}
    assert inputs == expected
    assert len(inputs) >= 14
    for name in inputs:
        assert any(name.startswith(prefix) for prefix in PARSERS), name


@pytest.mark.parametrize("name", _cases())
def test_golden(name: str) -> None:
    assert _parse(name).model_dump(mode="json") == _load(name, "expected")


def _drop(dump: dict[str, Any], path: str) -> None:
    *parents, leaf = path.split(".")
    for part in parents:
        dump = dump[part]
    dump.pop(leaf)


@pytest.mark.parametrize(("polled", "webhook"), TWINS)
def test_webhook_and_poll_of_the_same_state_are_equal(polled: str, webhook: str) -> None:
    from_poll = _parse(polled)
    from_webhook = _parse(webhook)
    missing = getattr(from_webhook, "missing", ())
    if not missing:
        assert from_webhook == from_poll
        return
    # What the webhook does not carry it cannot agree on; everything else must be equal.
    assert isinstance(from_webhook, Customer)
    assert isinstance(from_poll, Customer)
    assert from_poll.missing == ()
    poll_dump, webhook_dump = from_poll.model_dump(), from_webhook.model_dump()
    for path in (*missing, "missing"):
        _drop(poll_dump, path)
        _drop(webhook_dump, path)
    assert webhook_dump == poll_dump
