"""The engine against the HubSpot simulator: no call for what is unchanged or stale, and the
deal follows the order through edits."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import requests

from connectors.http import HttpClient
from connectors.hubspot import HUBSPOT_POLICY, HubSpotConnector
from mapping import (
    CUSTOM_PROPERTIES,
    DEFAULT_CONTACT_FIELDS,
    DEFAULT_DEAL_FIELDS,
    DEFAULT_LINE_ITEM_FIELDS,
    order_from_graphql,
)
from sandbox.hubspot import create_app as create_hubspot
from sandbox.server import serve
from sync.db import transaction
from sync.engine import ConnectionContext, Engine, FieldMaps
from sync.models import Connection

GOLDEN = Path(__file__).parent / "golden" / "shopify" / "order_graphql_full.input.json"
TOKEN = "pat-na1-engine-test-0000"


@pytest.fixture
def hubspot():
    server = serve(create_hubspot())
    requests.post(
        f"{server.url}/_sandbox/portals", json={"token": TOKEN, "portal_id": 1}, timeout=10
    )
    connector = HubSpotConnector(
        access_token=TOKEN,
        http=HttpClient(HUBSPOT_POLICY, allow_loopback=True),
        base_url=server.url,
    )
    connector.ensure_properties(CUSTOM_PROPERTIES)
    yield server, connector
    server.stop()


@pytest.fixture
def engine(sessions, hubspot):
    with transaction(sessions) as s:
        connection = Connection(
            name="Acme",
            store_platform="shopify",
            store_account="acme.myshopify.com",
            crm_platform="hubspot",
            crm_account="1",
        )
        s.add(connection)
        s.flush()
        connection_id = connection.id
    ctx = ConnectionContext(
        connection_id=connection_id,
        store_platform="shopify",
        store_key="shopify:acme.myshopify.com",
        store_name="Acme",
        fields=FieldMaps(DEFAULT_CONTACT_FIELDS, DEFAULT_DEAL_FIELDS, DEFAULT_LINE_ITEM_FIELDS),
    )
    return Engine(sessions, ctx, hubspot[1])


def live(server, object_type):
    dump = requests.get(f"{server.url}/_sandbox/portals/1/dump", timeout=10).json()
    return [r for r in dump["objects"].get(object_type, []) if not r.get("archived")]


def test_unchanged_and_stale_orders_cost_no_call_and_edits_are_followed(engine, hubspot):
    server, _ = hubspot
    node = json.loads(GOLDEN.read_text())
    assert len(node["lineItems"]["nodes"]) == 2
    first = engine.sync_orders([order_from_graphql(node)])
    assert first.written == 1 and first.dead == 0
    assert len(live(server, "deals")) == 1 and len(live(server, "line_items")) == 2

    again = engine.sync_orders([order_from_graphql(node)])
    assert (again.calls, again.unchanged) == (0, 1)

    edited = copy.deepcopy(node)
    edited["lineItems"]["nodes"] = edited["lineItems"]["nodes"][:1]
    edited["updatedAt"] = "2030-01-01T00:00:00Z"
    outcome = engine.sync_orders([order_from_graphql(edited)])
    assert outcome.written == 1
    remaining = live(server, "line_items")
    assert [li["properties"]["tandem_line_item_id"] for li in remaining] == [
        f"shopify:acme.myshopify.com:line_item:{edited['lineItems']['nodes'][0]['id'].rsplit('/', 1)[1]}"
    ]

    late = engine.sync_orders([order_from_graphql(node)])  # the pre-edit version, delivered late
    assert (late.stale, late.calls) == (1, 0)
    assert len(live(server, "line_items")) == 1
