"""The HubSpot simulator's webhooks against the reference (shared/reference/api-crms.md 1.6):
every change of a contact, through the API or by a user, is POSTed as a signed JSON array of
events, batched, and retried with a growing attemptNumber."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest

from sandbox.hubspot import create_app
from tests.clock import Clock
from tests.sandbox.conftest import wait_for
from tests.sandbox.receivers import receiver_factory

TOKEN = "pat-na1-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
PORTAL = 123
SECRET = "app-client-secret-0123"
APP_ID = 99


@pytest.fixture
def receivers():
    yield from receiver_factory()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock):
    client = create_app(clock=clock).test_client()
    assert (
        client.post("/_sandbox/portals", json={"token": TOKEN, "portal_id": PORTAL}).status_code
        == 201
    )
    return client


def subscribe(
    client,
    url,
    subscriptions=("contact.creation", "contact.propertyChange", "contact.deletion"),
    **extra,
):
    body = {
        "target_url": url,
        "client_secret": SECRET,
        "app_id": APP_ID,
        "subscriptions": list(subscriptions),
        **extra,
    }
    response = client.post(f"/_sandbox/portals/{PORTAL}/webhooks", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def knobs(client, **values):
    assert client.post("/_sandbox/knobs", json=values).status_code == 200


def deliveries(client):
    return client.get(f"/_sandbox/portals/{PORTAL}/deliveries").get_json()


def idle(client):
    assert wait_for(lambda: deliveries(client)["pending"] == 0)
    return deliveries(client)["deliveries"]


def create_contact(client, **properties):
    response = client.post(
        "/crm/v3/objects/contacts", json={"properties": properties}, headers=AUTH
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def events(receiver) -> list[dict]:
    return [e for body in receiver.bodies() for e in json.loads(body)]


def expected_v3(url: str, body: bytes, stamp: str) -> str:
    message = b"POST" + url.encode() + body + stamp.encode()
    return base64.b64encode(hmac.new(SECRET.encode(), message, hashlib.sha256).digest()).decode()


def test_an_api_write_is_sent_as_signed_integration_events(client, receivers, clock):
    hook = receivers()
    subscribe(client, hook.url)
    contact = create_contact(client, email="zoe@example.com", firstname="Zoë")
    idle(client)
    [(headers, body, url)] = hook.received
    assert headers["Content-Type"] == "application/json"
    stamp = headers["X-Hubspot-Request-Timestamp"]
    assert abs(int(stamp) - time.time() * 1000) < 60_000  # the wall clock: receivers check it
    assert hmac.compare_digest(headers["X-Hubspot-Signature-V3"], expected_v3(url, body, stamp))
    assert headers["X-Hubspot-Signature-Version"] == "v1"
    assert headers["X-Hubspot-Signature"] == hashlib.sha256(SECRET.encode() + body).hexdigest()
    batch = json.loads(body)
    assert isinstance(batch, list)
    kinds = sorted((e["subscriptionType"], e.get("propertyName")) for e in batch)
    assert kinds == [
        ("contact.creation", None),
        ("contact.propertyChange", "email"),
        ("contact.propertyChange", "firstname"),
    ]
    for event in batch:
        assert event["portalId"] == PORTAL and event["appId"] == APP_ID
        assert event["objectId"] == int(contact)
        assert event["changeSource"] == "INTEGRATION" and event["sourceId"] == str(APP_ID)
        assert event["occurredAt"] == int(clock.now * 1000)
        assert event["attemptNumber"] == 0
        assert isinstance(event["subscriptionId"], int)
    assert len({e["eventId"] for e in batch}) == 3
    creation = next(e for e in batch if e["subscriptionType"] == "contact.creation")
    assert creation["changeFlag"] == "NEW"
    value = next(e for e in batch if e.get("propertyName") == "firstname")["propertyValue"]
    assert value == "Zoë"


def test_a_user_edit_is_one_crm_ui_event_per_changed_property(client, receivers, clock):
    hook = receivers()
    contact = create_contact(client, email="zoe@example.com", firstname="Zoë", lastname="Old")
    subscribe(client, hook.url, user_id=7)
    clock.advance(60)
    edited = client.patch(
        f"/_sandbox/portals/{PORTAL}/objects/contacts/{contact}",
        json={"properties": {"firstname": "Zoë", "lastname": "New", "phone": "+33 6 12 34 56 78"}},
    )
    assert edited.status_code == 200
    # A real edit: the modified date moves with it.
    assert edited.get_json()["updatedAt"] == "2023-11-14T22:14:20.000Z"
    assert edited.get_json()["properties"]["lastmodifieddate"] == "2023-11-14T22:14:20.000Z"
    idle(client)
    batch = events(hook)
    assert sorted(e["propertyName"] for e in batch) == ["lastname", "phone"]  # firstname unchanged
    for event in batch:
        assert event["changeSource"] == "CRM_UI" and event["sourceId"] == "userId:7"
        assert isinstance(event["propertyValue"], str)
        assert event["occurredAt"] == int(clock.now * 1000)


def test_deletions_by_the_api_and_by_a_user(client, receivers):
    hook = receivers()
    first = create_contact(client, email="a@example.com")
    second = create_contact(client, email="b@example.com")
    subscribe(client, hook.url, ["contact.deletion"])
    assert client.delete(f"/crm/v3/objects/contacts/{first}", headers=AUTH).status_code == 204
    assert client.delete(f"/_sandbox/portals/{PORTAL}/objects/contacts/{second}").status_code == 204
    idle(client)
    got = sorted((e["objectId"], e["changeSource"], e["changeFlag"]) for e in events(hook))
    assert got == [(int(first), "INTEGRATION", "DELETED"), (int(second), "CRM_UI", "DELETED")]


def test_only_subscribed_events_are_sent(client, receivers):
    hook = receivers()
    subscribe(client, hook.url, [{"eventType": "contact.propertyChange", "propertyName": "email"}])
    contact = create_contact(client, email="a@example.com", firstname="A")
    client.patch(
        f"/_sandbox/portals/{PORTAL}/objects/contacts/{contact}",
        json={"properties": {"firstname": "B"}},
    )
    client.post("/crm/v3/objects/deals", json={"properties": {"dealname": "D"}}, headers=AUTH)
    idle(client)
    assert [(e["subscriptionType"], e["propertyName"]) for e in events(hook)] == [
        ("contact.propertyChange", "email")
    ]


def test_no_settings_no_deliveries(client, receivers):
    create_contact(client, email="a@example.com")
    time.sleep(0.1)
    assert deliveries(client) == {"deliveries": [], "pending": 0}


def test_events_are_batched_up_to_max_batch(client, receivers):
    hook = receivers()
    subscribe(client, hook.url, ["contact.creation"], max_batch=2)
    inputs = [{"properties": {"email": f"c{i}@example.com"}} for i in range(5)]
    assert (
        client.post(
            "/crm/v3/objects/contacts/batch/create", json={"inputs": inputs}, headers=AUTH
        ).status_code
        == 201
    )
    idle(client)
    assert [len(json.loads(b)) for b in hook.bodies()] == [2, 2, 1]
    assert len({e["eventId"] for e in events(hook)}) == 5


def test_failed_deliveries_are_retried_with_attempt_numbers_and_fresh_signatures(client, receivers):
    hook = receivers(answers=[(500, ""), (503, "")])
    knobs(client, webhook_time_scale=0.0001)
    subscribe(client, hook.url, ["contact.creation"])
    create_contact(client, email="a@example.com")
    log = idle(client)
    assert [d["outcome"] for d in log] == ["failed", "failed", "delivered"]
    attempts = [json.loads(b)[0] for b in hook.bodies()]
    assert [e["attemptNumber"] for e in attempts] == [0, 1, 2]
    assert len({e["eventId"] for e in attempts}) == 1  # the same event each time
    for headers, body, url in hook.received:
        stamp = headers["X-Hubspot-Request-Timestamp"]
        assert headers["X-Hubspot-Signature-V3"] == expected_v3(url, body, stamp)


def test_retries_end_after_ten(client, receivers):
    hook = receivers(default=(500, ""))
    knobs(client, webhook_time_scale=0.00001)
    subscribe(client, hook.url, ["contact.creation"])
    create_contact(client, email="a@example.com")
    log = idle(client)
    assert len(hook.received) == 11  # the first attempt and 10 retries
    assert log[-1]["outcome"] == "gave_up"


def test_a_stale_timestamp_knob_signs_an_old_request(client, receivers):
    hook = receivers()
    knobs(client, webhook_timestamp_skew_ms=10 * 60 * 1000)
    subscribe(client, hook.url, ["contact.creation"])
    create_contact(client, email="a@example.com")
    idle(client)
    [(headers, body, url)] = hook.received
    stamp = headers["X-Hubspot-Request-Timestamp"]
    assert time.time() * 1000 - int(stamp) > 9 * 60 * 1000
    assert headers["X-Hubspot-Signature-V3"] == expected_v3(url, body, stamp)


def test_the_signed_uri_has_the_listed_escapes_decoded(client, receivers):
    hook = receivers()
    subscribe(client, f"{hook.url}/x%3Ay?k=a%2Cb%20c", ["contact.creation"])
    create_contact(client, email="a@example.com")
    idle(client)
    [(headers, body, _)] = hook.received
    decoded = f"{hook.url}/x:y?k=a,b%20c"
    stamp = headers["X-Hubspot-Request-Timestamp"]
    assert headers["X-Hubspot-Signature-V3"] == expected_v3(decoded, body, stamp)


@pytest.mark.parametrize(
    "change",
    [
        {"target_url": "ftp://example.com/x"},
        {"client_secret": ""},
        {"app_id": "abc"},
        {"subscriptions": ["contact.nonsense"]},
        {"subscriptions": []},
        {"max_batch": 0},
    ],
)
def test_bad_settings_are_400(client, change):
    body = {
        "target_url": "http://127.0.0.1:9/x",
        "client_secret": "s",
        "app_id": 1,
        "subscriptions": ["contact.creation"],
        **change,
    }
    assert client.post(f"/_sandbox/portals/{PORTAL}/webhooks", json=body).status_code == 400


def test_settings_can_be_read_and_removed(client, receivers):
    hook = receivers()
    made = subscribe(client, hook.url, ["contact.creation"])
    assert "client_secret" not in made
    assert client.get(f"/_sandbox/portals/{PORTAL}/webhooks").get_json() == made
    assert client.delete(f"/_sandbox/portals/{PORTAL}/webhooks").status_code == 204
    create_contact(client, email="a@example.com")
    time.sleep(0.1)
    assert hook.received == []
