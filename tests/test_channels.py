"""sync.channels and the Zoho connector's watch calls, against the Zoho simulator on 127.0.0.1:
a channel is made once, kept while it lives, renewed before it expires, and its callbacks reach
Tandem's receiver with the token Tandem keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import select

from app import create_app, tandem_of
from connectors.crm import MemoryTokenCache
from connectors.errors import ConfigurationError, PermanentError
from connectors.http import HttpClient
from connectors.zoho import ZOHO_POLICY, ZohoConnector
from sandbox.server import serve
from sandbox.zoho import create_app as zoho_sim
from sync.channels import (
    CHANNEL_ENTITY,
    CHANNEL_STREAM,
    ensure_channels,
    salesforce_endpoint,
    zoho_channel_id,
)
from sync.db import transaction
from sync.inbox import WEBHOOK_TOKEN_KIND
from sync.models import Checkpoint, Connection, Credential, InboxEvent
from sync.secrets import Vault
from tests.clock import Clock, Sleeps
from tests.sandbox.conftest import wait_for

ORG = "60000001"
OAUTH = {
    "client_id": "1000.C",
    "client_secret": "cs-0123456789",
    "refresh_token": "1000.rt-0123456789",
}
START = 1_780_000_000.0
PUBLIC = "https://hub.example.com"


@pytest.fixture(scope="module")
def served():
    clock = Clock(START)
    server = serve(zoho_sim(clock=clock))
    yield clock, server
    server.stop()


@pytest.fixture
def clock(served) -> Clock:
    served[0].now = START
    return served[0]


@pytest.fixture
def sim(served, clock):
    base = served[1].url
    assert requests.post(f"{base}/_sandbox/reset", timeout=5).status_code == 200
    org = {"org_id": ORG, **OAUTH}
    assert requests.post(f"{base}/_sandbox/orgs", json=org, timeout=5).status_code == 201
    return base


def control(sim, method, path, **kw):
    return requests.request(method, f"{sim}/_sandbox{path}", timeout=5, **kw)


def connector(sim, clock, **oauth) -> ZohoConnector:
    http = HttpClient(ZOHO_POLICY, allow_loopback=True, sleep=Sleeps(clock).sleep)
    creds = {**OAUTH, **oauth}
    return ZohoConnector(
        http=http,
        tokens=MemoryTokenCache(clock),
        client_id=creds["client_id"],
        client_secret=creds["client_secret"],
        refresh_token=creds["refresh_token"],
        accounts_url=sim,
        clock=clock,
    )


@pytest.fixture
def vault() -> Vault:
    return Vault(MultiFernet([Fernet(Fernet.generate_key())]))


def add(sessions, crm: str, account: str = ORG, shop: str = "z.myshopify.com") -> int:
    with transaction(sessions) as s:
        connection = Connection(
            name=shop,
            store_platform="shopify",
            store_account=shop,
            crm_platform=crm,
            crm_account=account,
        )
        s.add(connection)
        s.flush()
        return connection.id


def ensure(sessions, vault, zoho, connection_id, clock, public=PUBLIC, offset=0.0):
    now = datetime.fromtimestamp(clock.now + offset, UTC)
    return ensure_channels(sessions, vault, zoho, connection_id, public, now=now)


def channels(sim, zoho) -> list[dict]:
    # Through the connector's own token, as an operator tool would.
    token = zoho._token()
    response = requests.get(
        f"{sim}/crm/v8/actions/watch",
        headers={"Authorization": f"Zoho-oauthtoken {token.value}"},
        timeout=5,
    )
    return [] if response.status_code == 204 else response.json()["watch"]


def watch_calls(sim) -> int:
    log = control(sim, "GET", "/calls").json()["calls"]
    return sum(1 for c in log if c["path"].endswith("/actions/watch") and c["method"] == "POST")


def state(sessions, connection_id) -> Checkpoint:
    with transaction(sessions) as s:
        row = s.scalar(
            select(Checkpoint).where(
                Checkpoint.connection_id == connection_id,
                Checkpoint.entity == CHANNEL_ENTITY,
                Checkpoint.stream == CHANNEL_STREAM,
            )
        )
        s.expunge(row)
        return row


def test_a_zoho_channel_is_made_for_a_week_with_a_secret_token(sessions, vault, sim, clock):
    connection_id = add(sessions, "zoho")
    zoho = connector(sim, clock)
    renew_at = ensure(sessions, vault, zoho, connection_id, clock)
    [channel] = channels(sim, zoho)
    assert channel["channel_id"] == str(zoho_channel_id(connection_id))
    assert channel["notify_url"] == f"{PUBLIC}/webhooks/zoho/{connection_id}"
    assert sorted(channel["events"]) == ["Contacts.create", "Contacts.delete", "Contacts.edit"]
    with transaction(sessions) as s:
        token = vault.get(s, connection_id, "crm", WEBHOOK_TOKEN_KIND)
    assert channel["token"] == token and 20 <= len(token) <= 50
    granted = datetime.fromisoformat(channel["channel_expiry"])
    started = datetime.fromtimestamp(START, UTC)
    assert timedelta(days=6, hours=23) < granted - started <= timedelta(days=7)
    assert renew_at == granted - timedelta(hours=1)
    row = state(sessions, connection_id)
    assert row.state["channel_id"] == zoho_channel_id(connection_id)
    assert datetime.fromisoformat(row.state["expires_at"]) == granted
    assert row.next_run_at == renew_at


def test_a_live_channel_is_left_alone_and_renewed_within_the_hour(sessions, vault, sim, clock):
    connection_id = add(sessions, "zoho")
    zoho = connector(sim, clock)
    renew_at = ensure(sessions, vault, zoho, connection_id, clock)
    assert watch_calls(sim) == 1
    assert ensure(sessions, vault, zoho, connection_id, clock, offset=3600) == renew_at
    assert watch_calls(sim) == 1  # nothing called
    clock.now = renew_at.timestamp() + 60  # within the last hour
    later = ensure(sessions, vault, zoho, connection_id, clock)
    assert watch_calls(sim) == 2
    assert later > renew_at + timedelta(days=6)
    with transaction(sessions) as s:  # the same token, still one credential
        kinds = s.scalars(select(Credential.kind).where(Credential.connection_id == connection_id))
        assert list(kinds) == [WEBHOOK_TOKEN_KIND]
    assert len(channels(sim, zoho)) == 1


def test_a_new_public_url_subscribes_again(sessions, vault, sim, clock):
    connection_id = add(sessions, "zoho")
    zoho = connector(sim, clock)
    ensure(sessions, vault, zoho, connection_id, clock)
    ensure(sessions, vault, zoho, connection_id, clock, public="https://new.example.com/")
    assert watch_calls(sim) == 2
    [channel] = channels(sim, zoho)
    assert channel["notify_url"] == f"https://new.example.com/webhooks/zoho/{connection_id}"


def test_an_expired_channel_is_made_again(sessions, vault, sim, clock):
    connection_id = add(sessions, "zoho")
    zoho = connector(sim, clock)
    ensure(sessions, vault, zoho, connection_id, clock)
    clock.advance(8 * 24 * 3600)
    assert channels(sim, zoho) == []
    ensure(sessions, vault, zoho, connection_id, clock)
    assert len(channels(sim, zoho)) == 1


def test_a_short_grant_is_renewed_halfway(sessions, vault, sim, clock):
    connection_id = add(sessions, "zoho")
    zoho = connector(sim, clock)
    # Tandem's clock an hour ahead of Zoho's: the week asked for is more than a week to Zoho,
    # which then grants its default hour (v8 enable.html).
    renew_at = ensure(sessions, vault, zoho, connection_id, clock, offset=3600)
    granted = datetime.fromisoformat(channels(sim, zoho)[0]["channel_expiry"])
    assert granted - datetime.fromtimestamp(START, UTC) == timedelta(hours=1)
    now = datetime.fromtimestamp(START + 3600, UTC)
    assert now <= renew_at <= granted


def test_without_the_notifications_scope_it_is_a_configuration_error(sessions, vault, sim, clock):
    org = {"org_id": "60000002", "client_id": "1000.D", "client_secret": "cs-d", "refresh_token": "rt-d",
           "scopes": ["ZohoCRM.modules.ALL"]}  # fmt: skip
    assert control(sim, "POST", "/orgs", json=org).status_code == 201
    connection_id = add(sessions, "zoho", account="60000002")
    zoho = connector(sim, clock, client_id="1000.D", client_secret="cs-d", refresh_token="rt-d")
    with pytest.raises(ConfigurationError):
        ensure(sessions, vault, zoho, connection_id, clock)


def test_salesforce_gets_an_endpoint_key_and_hubspot_nothing(sessions, vault, sim, clock):
    salesforce = add(sessions, "salesforce", account="00D000000000001AAA", shop="s.myshopify.com")
    hubspot = add(sessions, "hubspot", account="123", shop="h.myshopify.com")
    assert ensure(sessions, vault, None, salesforce, clock) is None
    assert ensure(sessions, vault, None, hubspot, clock) is None
    with transaction(sessions) as s:
        key = vault.get(s, salesforce, "crm", WEBHOOK_TOKEN_KIND)
        url = salesforce_endpoint(
            s, vault, s.get(Connection, salesforce), "https://hub.example.com/"
        )
        assert s.scalars(select(Credential).where(Credential.connection_id == hubspot)).all() == []
    assert url == f"https://hub.example.com/webhooks/salesforce/{salesforce}?key={key}"


def test_the_connector_refuses_long_tokens_and_reports_zohos_code(sim, clock):
    zoho = connector(sim, clock)
    expiry = datetime.fromtimestamp(START, UTC) + timedelta(days=1)
    with pytest.raises(ValueError, match="50"):
        zoho.watch(1, ["Contacts.all"], "https://hub.example.com/x", "x" * 51, expiry)
    with pytest.raises(PermanentError, match="INVALID_DATA"):
        zoho.watch(1, ["Unicorns.all"], "https://hub.example.com/x", "tok", expiry)


def test_unwatch_disables_and_an_unknown_channel_is_no_error(sim, clock):
    zoho = connector(sim, clock)
    expiry = datetime.fromtimestamp(START, UTC) + timedelta(days=1)
    granted = zoho.watch(5, ["Contacts.all"], "https://hub.example.com/x", "tok", expiry)
    assert granted == expiry
    zoho.unwatch([5])
    assert channels(sim, zoho) == []
    zoho.unwatch([5, 6])


def test_callbacks_of_the_channel_reach_tandems_inbox(database_url, tmp_path, sim, clock):
    app = create_app(
        {
            "database_url": database_url,
            "var_dir": tmp_path,
            "encryption_keys": Fernet.generate_key().decode(),
        }
    )
    t = tandem_of(app)
    receiver = serve(app)
    try:
        connection_id = add(t.sessions, "zoho")
        zoho = connector(sim, clock)
        ensure(t.sessions, t.vault, zoho, connection_id, clock, public=receiver.url)
        control(sim, "POST", f"/orgs/{ORG}/records/Contacts", json={"Last_Name": "Z"})

        def stored():
            with transaction(t.sessions) as s:
                return s.scalars(select(InboxEvent)).all()

        assert wait_for(lambda: len(stored()) == 1)
        [event] = stored()
        assert (event.connection_id, event.topic, event.status) == (
            connection_id,
            "Contacts.insert",
            "pending",
        )
    finally:
        receiver.stop()
        t.close()
