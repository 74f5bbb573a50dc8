"""POST /webhooks/hubspot, /webhooks/zoho/<connection>, /webhooks/salesforce/<connection>:
authenticate, store once per connection, answer fast (Salesforce: ack only what is stored),
refuse clearly and store nothing. The last tests send from the simulators over real HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

import webhooks.hubspot as hubspot_receiver
from app import create_app, tandem_of
from sandbox.hubspot import create_app as hubspot_sim
from sandbox.salesforce import create_app as salesforce_sim
from sandbox.server import serve
from sandbox.zoho import create_app as zoho_sim
from sync import inbox as inbox_module
from sync.channels import salesforce_endpoint
from sync.db import transaction
from sync.inbox import WEBHOOK_TOKEN_KIND
from sync.models import Connection, InboxEvent, Job
from tests.sandbox.conftest import wait_for

HS_SECRET = "hubspot-client-secret-0123456789"
PORTAL = 123
ZOHO_ORG = "60000001"
ZOHO_TOKEN = "zoho-channel-token-0123456789"
SF_ORG = "00D000000000001AAA"
SF_KEY = "salesforce-endpoint-key-0123456789"


def make_app(database_url, tmp_path, **config):
    app = create_app(
        {
            "database_url": database_url,
            "var_dir": tmp_path,
            "encryption_keys": Fernet.generate_key().decode(),
            "hubspot_client_secret": HS_SECRET,
            "webhook_max_bytes": 16384,
            **config,
        }
    )
    t = tandem_of(app)
    with transaction(t.sessions) as s:
        for shop, crm, account in (
            ("a.myshopify.com", "hubspot", str(PORTAL)),
            ("b.myshopify.com", "hubspot", str(PORTAL)),  # one merchant, two stores
            ("c.myshopify.com", "hubspot", "777"),
            ("z.myshopify.com", "zoho", ZOHO_ORG),
            ("s.myshopify.com", "salesforce", SF_ORG),
        ):
            s.add(
                Connection(
                    name=shop,
                    store_platform="shopify",
                    store_account=shop,
                    crm_platform=crm,
                    crm_account=account,
                )
            )
        s.flush()
        t.vault.put(s, connection_id(s, "zoho"), "crm", WEBHOOK_TOKEN_KIND, ZOHO_TOKEN)
        t.vault.put(s, connection_id(s, "salesforce"), "crm", WEBHOOK_TOKEN_KIND, SF_KEY)
    return app


def connection_id(session, crm: str) -> int:
    return session.scalar(
        select(Connection.id).where(Connection.crm_platform == crm).order_by(Connection.id)
    )


@pytest.fixture
def app(database_url, tmp_path):
    app = make_app(database_url, tmp_path)
    yield app
    tandem_of(app).close()


def rows(app):
    with transaction(tandem_of(app).sessions) as s:
        found = s.scalars(select(InboxEvent).order_by(InboxEvent.id)).all()
        jobs = s.scalar(select(func.count(Job.id)))
    return found, jobs


def cid(app, crm: str) -> int:
    with transaction(tandem_of(app).sessions) as s:
        return connection_id(s, crm)


# ------------------------------------------------------------------ HubSpot
def hs_event(event_id=1, portal=PORTAL, **changes):
    event = {
        "eventId": event_id,
        "subscriptionId": 5,
        "portalId": portal,
        "appId": 99,
        "occurredAt": 1_780_000_000_123,
        "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0,
        "objectId": 1001,
        "propertyName": "firstname",
        "propertyValue": "Zoë",
        "changeSource": "CRM_UI",
        "sourceId": "userId:42",
    }
    event.update(changes)
    return event


def hs_sign(uri: str, body: bytes, stamp: str, secret: str = HS_SECRET) -> str:
    """The v3 signature computed the documented way, independently of the receiver's code."""
    for escaped, plain in (("%3A", ":"), ("%2F", "/"), ("%3F", "?"), ("%2C", ",")):
        uri = uri.replace(escaped, plain)
    message = f"POST{uri}".encode() + body + stamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hs_post(client, body: bytes, *, uri="http://localhost/webhooks/hubspot", path=None, **kw):
    stamp = str(kw.pop("stamp", int(time.time() * 1000)))
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-v3": kw.pop("signature", None) or hs_sign(uri, body, stamp, **kw),
    }
    return client.post(path or "/webhooks/hubspot", data=body, headers=headers)


def hs_body(*events) -> bytes:
    return json.dumps(list(events), ensure_ascii=False).encode()


def test_hubspot_batch_is_stored_once_per_connection_of_the_portal(app):
    body = hs_body(hs_event(1), hs_event(2, subscriptionType="contact.creation"))
    response = hs_post(app.test_client(), body)
    assert response.status_code == 200, response.get_json()
    found, jobs = rows(app)
    a, b = sorted({e.connection_id for e in found})
    assert sorted((e.delivery_id, e.topic, e.account) for e in found) == [
        (f"1@{a}", "contact.propertyChange", "123"),
        (f"1@{b}", "contact.propertyChange", "123"),
        (f"2@{a}", "contact.creation", "123"),
        (f"2@{b}", "contact.creation", "123"),
    ]
    first = found[0]
    assert first.event_id == "1"
    assert first.change_source == "CRM_UI:userId:42"
    assert first.triggered_at.timestamp() == pytest.approx(1_780_000_000.123)
    assert first.payload["propertyValue"] == "Zoë"
    assert jobs == 2  # one drain per connection


def test_hubspot_replay_and_retry_are_duplicates(app):
    client = app.test_client()
    assert hs_post(client, hs_body(hs_event(7))).status_code == 200
    again = hs_post(client, hs_body(hs_event(7)))
    retry = hs_post(client, hs_body(hs_event(7, attemptNumber=1)))  # same event, new attempt
    assert again.status_code == retry.status_code == 200
    assert retry.get_json()["duplicates"] == 2
    found, jobs = rows(app)
    assert len(found) == 2 and jobs == 2


def test_hubspot_integration_change_source_names_the_app(app):
    event = hs_event(3, changeSource="INTEGRATION", sourceId="123456")
    assert hs_post(app.test_client(), hs_body(event)).status_code == 200
    assert {e.change_source for e in rows(app)[0]} == {"INTEGRATION:123456"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"secret": "not-the-client-secret"},
        {"signature": "AAAA"},
        {"offset_ms": -6 * 60 * 1000},  # older than 5 minutes
        {"offset_ms": 6 * 60 * 1000},
        {"stamp": "yesterday"},
        {"uri": "http://localhost/webhooks/other"},
    ],
    ids=["wrong secret", "forged", "old", "future", "bad timestamp", "other uri"],
)
def test_hubspot_bad_or_old_signature_is_401_and_stores_nothing(app, kwargs):
    kwargs = dict(kwargs)
    if "offset_ms" in kwargs:  # from the time the test runs, not the time it was collected
        kwargs["stamp"] = int(time.time() * 1000) + kwargs.pop("offset_ms")
    response = hs_post(app.test_client(), hs_body(hs_event()), **kwargs)
    assert response.status_code == 401
    assert rows(app) == ([], 0)


def test_hubspot_missing_signature_or_secret_is_401(app, database_url, tmp_path):
    body = hs_body(hs_event())
    bare = app.test_client().post("/webhooks/hubspot", data=body)
    assert bare.status_code == 401
    unset = create_app(
        {
            "database_url": database_url,
            "var_dir": tmp_path / "unset",
            "encryption_keys": Fernet.generate_key().decode(),
        }
    )
    try:
        assert hs_post(unset.test_client(), body).status_code == 401
    finally:
        tandem_of(unset).close()
    assert rows(app) == ([], 0)


def test_hubspot_tampered_body_is_401(app):
    body = hs_body(hs_event())
    stamp = str(int(time.time() * 1000))
    signature = hs_sign("http://localhost/webhooks/hubspot", body, stamp)
    response = app.test_client().post(
        "/webhooks/hubspot",
        data=body.replace(b"1001", b"1002"),
        headers={"X-HubSpot-Request-Timestamp": stamp, "X-HubSpot-Signature-v3": signature},
    )
    assert response.status_code == 401
    assert rows(app) == ([], 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b'{"eventId": 1}',
        b"[]",
        b"[1, 2]",
        hs_body(hs_event(eventId=None)),
        hs_body(hs_event(portalId="x")),
        hs_body(hs_event(subscriptionType="")),
        hs_body(hs_event(1), {"eventId": 2}),  # one bad event refuses the batch
    ],
    ids=["text", "object", "empty", "numbers", "no id", "bad portal", "no type", "one bad"],
)
def test_hubspot_malformed_is_400_and_stores_nothing(app, body):
    response = hs_post(app.test_client(), body)
    assert response.status_code == 400
    assert rows(app) == ([], 0)


def test_hubspot_too_big_is_413(app, monkeypatch):
    client = app.test_client()
    big = hs_body(hs_event(propertyValue="x" * 20_000))
    assert hs_post(client, big).status_code == 413
    monkeypatch.setattr(hubspot_receiver, "MAX_EVENTS", 3)
    assert hs_post(client, hs_body(*(hs_event(i) for i in range(4)))).status_code == 413
    assert rows(app) == ([], 0)


def test_hubspot_unroutable_portal_is_kept_once(app):
    response = hs_post(app.test_client(), hs_body(hs_event(9, portal=4242)))
    assert response.status_code == 200
    found, jobs = rows(app)
    assert [(e.delivery_id, e.status, e.connection_id) for e in found] == [
        ("9", "unroutable", None)
    ]
    assert jobs == 0


def test_hubspot_signature_covers_the_public_url_and_decodes_its_escapes(database_url, tmp_path):
    app = make_app(database_url, tmp_path, public_url="https://hub.example.com/tandem")
    try:
        client = app.test_client()
        body = hs_body(hs_event(11))
        path = "/webhooks/hubspot?portal=123%2C456"
        local = hs_post(client, body, path=path, uri=f"http://localhost{path}")
        assert local.status_code == 401  # behind the proxy, the URI HubSpot called counts
        public = hs_post(client, body, path=path, uri=f"https://hub.example.com/tandem{path}")
        assert public.status_code == 200
        assert hubspot_receiver.signing_uri("https://h/x%3ay%20z") == "https://h/x:y%20z"
    finally:
        tandem_of(app).close()


# ------------------------------------------------------------------ Zoho
def zoho_callback(**changes) -> dict:
    body = {
        "server_time": 1_780_000_000_456,
        "query_params": {},
        "module": "Contacts",
        "resource_uri": "https://www.zohoapis.com/crm/v8/Contacts",
        "ids": ["4150868000001000109"],
        "affected_fields": [{"4150868000001000109": ["First_Name"]}],
        "operation": "update",
        "channel_id": "7300000000004",
        "token": ZOHO_TOKEN,
    }
    body.update(changes)
    return body


def zoho_post(client, app, body, connection=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    target = cid(app, "zoho") if connection is None else connection
    return client.post(f"/webhooks/zoho/{target}", data=raw, content_type="application/json")


def test_zoho_callback_is_stored_once_without_its_token(app):
    client = app.test_client()
    first = zoho_post(client, app, zoho_callback())
    again = zoho_post(client, app, zoho_callback())
    assert first.status_code == again.status_code == 200
    assert again.get_json()["duplicate"] is True
    found, jobs = rows(app)
    [event] = found
    raw = json.dumps(zoho_callback()).encode()
    assert event.delivery_id == f"{hashlib.sha256(raw).hexdigest()}@{cid(app, 'zoho')}"
    assert (event.platform, event.topic, event.account) == ("zoho", "Contacts.update", ZOHO_ORG)
    assert "token" not in event.payload and event.payload["ids"] == ["4150868000001000109"]
    assert event.triggered_at.timestamp() == pytest.approx(1_780_000_000.456)
    assert jobs == 1
    # A later change of the same record is a new callback (server_time differs).
    assert zoho_post(client, app, zoho_callback(server_time=1_780_000_009_000)).status_code == 200
    assert len(rows(app)[0]) == 2


@pytest.mark.parametrize(
    ("body", "connection"),
    [
        (zoho_callback(token="guessed"), None),
        ({k: v for k, v in zoho_callback().items() if k != "token"}, None),
        (zoho_callback(token=123), None),
        (zoho_callback(), 999),
        (zoho_callback(), "salesforce"),  # another CRM's connection and key
    ],
    ids=["wrong token", "no token", "number token", "unknown connection", "other platform"],
)
def test_zoho_wrong_token_is_401_and_stores_nothing(app, body, connection):
    if connection == "salesforce":
        connection = cid(app, "salesforce")
        body = zoho_callback(token=SF_KEY)
    assert zoho_post(app.test_client(), app, body, connection).status_code == 401
    assert rows(app) == ([], 0)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        zoho_callback(module=None),
        zoho_callback(operation=""),
        zoho_callback(ids="4150868000001000109"),
    ],
    ids=["text", "module", "operation", "ids"],
)
def test_zoho_malformed_is_400(app, body):
    assert zoho_post(app.test_client(), app, body).status_code == 400
    assert rows(app) == ([], 0)


def test_zoho_too_big_is_413(app):
    body = zoho_callback(ids=["4150868000001000109"] * 2000)
    assert zoho_post(app.test_client(), app, body).status_code == 413
    assert rows(app) == ([], 0)


# ------------------------------------------------------------------ Salesforce
def sf_message(org=SF_ORG, notifications=(("04l5g0000000001AAA", "0035g0000000002AAA"),)):
    items = "".join(
        f"<Notification><Id>{nid}</Id>"
        '<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"<sf:Id>{rid}</sf:Id><sf:Email>zoe@example.com</sf:Email>"
        '<sf:Phone xsi:nil="true"/>'
        "<sf:LastModifiedById>0055g0000000002AAA</sf:LastModifiedById>"
        "<sf:LastModifiedDate>2026-05-20T20:49:32.000Z</sf:LastModifiedDate>"
        "</sObject></Notification>"
        for nid, rid in notifications
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k5g0000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://x.my.salesforce.com/services/Soap/c/66.0/00D000000000001</EnterpriseUrl>"
        "<PartnerUrl>https://x.my.salesforce.com/services/Soap/u/66.0/00D000000000001</PartnerUrl>"
        f"{items}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def sf_post(client, app, body, *, key=SF_KEY, connection=None):
    target = cid(app, "salesforce") if connection is None else connection
    query = f"?key={key}" if key is not None else ""
    return client.post(
        f"/webhooks/salesforce/{target}{query}", data=body, content_type="text/xml; charset=utf-8"
    )


def acked(response) -> bool:
    return b"<Ack>true</Ack>" in response.data and b"notificationsResponse" in response.data


def test_salesforce_message_is_stored_and_acked(app):
    body = sf_message(
        notifications=[("04l5g0000000001AAA", "003A"), ("04l5g0000000002AAA", "003B")]
    )
    response = sf_post(app.test_client(), app, body)
    assert response.status_code == 200 and acked(response)
    assert response.content_type.startswith("text/xml")
    found, jobs = rows(app)
    assert [(e.delivery_id.split("@")[0], e.topic) for e in found] == [
        ("04l5g0000000001AAA", "Contact.outbound"),
        ("04l5g0000000002AAA", "Contact.outbound"),
    ]
    event = found[0]
    assert event.payload == {
        "sobject": {
            "Id": "003A",
            "Email": "zoe@example.com",
            "Phone": None,
            "LastModifiedById": "0055g0000000002AAA",
            "LastModifiedDate": "2026-05-20T20:49:32.000Z",
        },
        "action_id": "04k5g0000000001AAA",
        "organization_id": SF_ORG,
    }
    assert event.change_source == "0055g0000000002AAA"
    assert event.triggered_at.isoformat() == "2026-05-20T20:49:32+00:00"
    assert jobs == 1
    again = sf_post(app.test_client(), app, body)  # Salesforce may send a message twice
    assert again.status_code == 200 and acked(again)
    assert len(rows(app)[0]) == 2


def test_salesforce_15_character_org_id_is_the_same_org(app):
    response = sf_post(app.test_client(), app, sf_message(org=SF_ORG[:15]))
    assert response.status_code == 200 and acked(response)


@pytest.mark.parametrize(
    ("change", "body"),
    [
        ({"key": "guessed"}, sf_message()),
        ({"key": None}, sf_message()),
        ({}, sf_message(org="00D000000000002AAA")),
        ({}, sf_message(org="00d000000000001AAA")),  # ids are case-sensitive
        ({"connection": 999}, sf_message()),
        ({"connection": "zoho", "key": ZOHO_TOKEN}, sf_message()),
    ],
    ids=["wrong key", "no key", "other org", "case", "unknown connection", "other platform"],
)
def test_salesforce_wrong_key_or_org_is_401_without_ack(app, change, body):
    if change.get("connection") == "zoho":
        change = {**change, "connection": cid(app, "zoho")}
    response = sf_post(app.test_client(), app, body, **change)
    assert response.status_code == 401
    assert b"Fault" in response.data and not acked(response)
    assert rows(app) == ([], 0)


BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
    b"<soapenv:Body>&lol2;</soapenv:Body></soapenv:Envelope>"
)


@pytest.mark.parametrize(
    "body",
    [
        b"<not-xml",
        BOMB,
        b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'/>",
        sf_message(notifications=()),
        sf_message().replace(b"<Id>04l5g0000000001AAA</Id>", b""),
        sf_message().replace(b' xsi:type="sf:Contact"', b""),
    ],
    ids=["broken", "entity bomb", "no message", "no notification", "no id", "no type"],
)
def test_salesforce_malformed_is_400_with_a_soap_fault(app, body):
    response = sf_post(app.test_client(), app, body)
    assert response.status_code == 400
    assert b"<faultcode>soapenv:Client</faultcode>" in response.data
    assert rows(app) == ([], 0)


def test_salesforce_too_big_is_413_without_ack(app):
    many = [(f"04l5g{i:013d}", f"003{i:015d}") for i in range(120)]
    response = sf_post(app.test_client(), app, sf_message(notifications=many))
    assert response.status_code == 413 and not acked(response)
    assert rows(app) == ([], 0)


def test_salesforce_acks_only_what_was_stored(app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("database is gone")

    monkeypatch.setattr(inbox_module, "record_crm", broken)
    response = sf_post(app.test_client(), app, sf_message())
    assert response.status_code == 500
    assert b"<faultcode>soapenv:Server</faultcode>" in response.data and not acked(response)
    monkeypatch.undo()
    assert rows(app) == ([], 0)
    retried = sf_post(app.test_client(), app, sf_message())  # Salesforce sends it again
    assert retried.status_code == 200 and acked(retried)
    assert len(rows(app)[0]) == 1


# ------------------------------------------------------------------ from the simulators
@pytest.fixture
def served(app):
    server = serve(app)
    yield server
    server.stop()


def test_hubspot_simulator_deliveries_are_accepted(app, served):
    sim = hubspot_sim().test_client()
    assert (
        sim.post("/_sandbox/portals", json={"token": "pat", "portal_id": PORTAL}).status_code == 201
    )
    config = {
        "target_url": f"{served.url}/webhooks/hubspot",
        "client_secret": HS_SECRET,
        "app_id": 99,
        "subscriptions": ["contact.creation", "contact.propertyChange"],
    }
    assert sim.post(f"/_sandbox/portals/{PORTAL}/webhooks", json=config).status_code == 201
    created = sim.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "zoe@example.com"}},
        headers={"Authorization": "Bearer pat"},
    )
    contact = created.get_json()["id"]
    sim.patch(
        f"/_sandbox/portals/{PORTAL}/objects/contacts/{contact}",
        json={"properties": {"firstname": "Zoë"}},
    )
    assert wait_for(
        lambda: sim.get(f"/_sandbox/portals/{PORTAL}/deliveries").get_json()["pending"] == 0
    )
    outcomes = [
        d["outcome"]
        for d in sim.get(f"/_sandbox/portals/{PORTAL}/deliveries").get_json()["deliveries"]
    ]
    assert outcomes and set(outcomes) == {"delivered"}
    found = rows(app)[0]
    sources = {(e.topic, e.change_source) for e in found}
    assert sources == {
        ("contact.creation", "INTEGRATION:99"),
        ("contact.propertyChange", "INTEGRATION:99"),
        ("contact.propertyChange", "CRM_UI:userId:42"),
    }
    assert len(found) == 2 * 3  # creation, email, firstname; for both connections


def test_zoho_simulator_callbacks_are_accepted(app, served):
    sim = zoho_sim().test_client()
    org = {"org_id": ZOHO_ORG, "client_id": "1000.C", "client_secret": "cs", "refresh_token": "rt"}
    assert sim.post("/_sandbox/orgs", json=org).status_code == 201
    token = sim.post(
        "/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "1000.C",
            "client_secret": "cs",
            "refresh_token": "rt",
        },
    ).get_json()["access_token"]
    auth = {"Authorization": f"Zoho-oauthtoken {token}"}
    watch = {
        "channel_id": "7300000000004",
        "events": ["Contacts.all"],
        "notify_url": f"{served.url}/webhooks/zoho/{cid(app, 'zoho')}",
        "token": ZOHO_TOKEN,
    }
    assert (
        sim.post("/crm/v8/actions/watch", json={"watch": [watch]}, headers=auth).status_code == 201
    )
    created = sim.post(
        "/crm/v8/Contacts",
        json={"data": [{"Last_Name": "Z", "Email": "z@example.com"}]},
        headers=auth,
    )
    record = created.get_json()["data"][0]["details"]["id"]
    assert wait_for(
        lambda: sim.get(f"/_sandbox/orgs/{ZOHO_ORG}/deliveries").get_json()["deliveries"]
    )
    sim.patch(f"/_sandbox/orgs/{ZOHO_ORG}/records/Contacts/{record}", json={"First_Name": "Zoë"})
    assert wait_for(lambda: len(rows(app)[0]) == 2)
    assert [(e.topic, e.payload["ids"]) for e in rows(app)[0]] == [
        ("Contacts.insert", [record]),
        ("Contacts.update", [record]),
    ]


def test_salesforce_simulator_messages_are_acked(app, served):
    sim = salesforce_sim().test_client()
    client = {"client_id": "3MVG9", "client_secret": "s3cr3t", "refresh_token": "5Aep"}
    assert sim.post("/_sandbox/orgs", json={**client, "org_id": SF_ORG}).status_code == 201
    with transaction(tandem_of(app).sessions) as s:
        connection = s.get(Connection, connection_id(s, "salesforce"))
        url = salesforce_endpoint(s, tandem_of(app).vault, connection, served.url)
    assert url.endswith(f"?key={SF_KEY}")  # the key the fixture stored
    action = {"object": "Contact", "url": url, "fields": ["Email", "LastModifiedById"]}
    assert sim.post(f"/_sandbox/orgs/{SF_ORG}/outbound", json=action).status_code == 201
    sim.post(
        f"/_sandbox/orgs/{SF_ORG}/records/Contact", json={"LastName": "Z", "Email": "z@example.com"}
    )
    assert wait_for(lambda: sim.get(f"/_sandbox/orgs/{SF_ORG}/deliveries").get_json()["deliveries"])
    [delivery] = sim.get(f"/_sandbox/orgs/{SF_ORG}/deliveries").get_json()["deliveries"]
    assert delivery["outcome"] == "delivered"  # Tandem's ack was read as one
    [event] = rows(app)[0]
    assert event.topic == "Contact.outbound"
    assert event.payload["sobject"]["Email"] == "z@example.com"
    assert (
        event.change_source
        == sim.get(f"/_sandbox/orgs/{SF_ORG}/dump").get_json()["Contact"][0]["LastModifiedById"]
    )
