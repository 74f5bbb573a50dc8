"""The Salesforce simulator's outbound messages against the reference (shared/reference/
api-crms.md 2.6, SF-OM): every save of the action's object, through the API or by a rep, is sent
as a SOAP notifications message with the record's current values, until the listener acks."""

from __future__ import annotations

import defusedxml.ElementTree
import pytest

from sandbox.salesforce import create_app
from tests.clock import Clock
from tests.sandbox.conftest import wait_for
from tests.sandbox.receivers import receiver_factory

ORG = "00D000000000001AAA"
CLIENT = {"client_id": "3MVG9-consumer-key", "client_secret": "s3cr3t", "refresh_token": "5Aep-rt"}
V = "/services/data/v66.0"
NS = {
    "soapenv": "http://schemas.xmlsoap.org/soap/envelope/",
    "om": "http://soap.sforce.com/2005/09/outbound",
    "sf": "urn:sobject.enterprise.soap.sforce.com",
}
XSI = "{http://www.w3.org/2001/XMLSchema-instance}"
ACK = (
    '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
    'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
    '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound"><Ack>true</Ack>'
    "</notificationsResponse></soapenv:Body></soapenv:Envelope>"
)
NACK = ACK.replace("true", "false")


@pytest.fixture
def receivers():
    yield from receiver_factory()


@pytest.fixture
def clock() -> Clock:
    return Clock(1_780_000_000.0)


@pytest.fixture
def client(clock):
    client = create_app(clock=clock).test_client()
    assert client.post("/_sandbox/orgs", json={**CLIENT, "org_id": ORG}).status_code == 201
    return client


def auth(client) -> dict:
    answer = client.post("/services/oauth2/token", data={"grant_type": "refresh_token", **CLIENT})
    return {"Authorization": f"Bearer {answer.get_json()['access_token']}"}


def action(
    client,
    url,
    fields=("Email", "FirstName", "Phone", "LastModifiedById", "LastModifiedDate"),
    obj="Contact",
):
    response = client.post(
        f"/_sandbox/orgs/{ORG}/outbound", json={"object": obj, "url": url, "fields": list(fields)}
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def users(client) -> tuple[str, str]:
    """The org's API (integration) user and its sales rep."""
    body = client.patch(f"/_sandbox/orgs/{ORG}", json={}).get_json()
    return body["integration_user_id"], body["rep_user_id"]


def deliveries(client):
    return client.get(f"/_sandbox/orgs/{ORG}/deliveries").get_json()


def idle(client):
    assert wait_for(lambda: deliveries(client)["pending"] == 0)
    return deliveries(client)["deliveries"]


def parse(body: bytes) -> dict:
    root = defusedxml.ElementTree.fromstring(body)
    message = root.find("soapenv:Body/om:notifications", NS)
    notes = []
    for note in message.findall("om:Notification", NS):
        sobject = note.find("om:sObject", NS)
        fields = {
            child.tag.split("}")[1]: None if child.get(f"{XSI}nil") == "true" else child.text
            for child in sobject
        }
        notes.append(
            {"id": note.find("om:Id", NS).text, "type": sobject.get(f"{XSI}type"), "fields": fields}
        )
    return {
        "org": message.find("om:OrganizationId", NS).text,
        "action": message.find("om:ActionId", NS).text,
        "session_nil": message.find("om:SessionId", NS).get(f"{XSI}nil"),
        "enterprise": message.find("om:EnterpriseUrl", NS).text,
        "partner": message.find("om:PartnerUrl", NS).text,
        "notifications": notes,
    }


def create_contact(client, **fields) -> str:
    response = client.post(
        f"{V}/sobjects/Contact", json={"LastName": "Z", **fields}, headers=auth(client)
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_an_api_save_is_sent_as_a_soap_notification(client, receivers):
    hook = receivers(default=(200, ACK))
    made = action(client, f"{hook.url}?key=k1")
    contact = create_contact(client, Email="zoe@example.com", FirstName="Zoë")
    assert [d["outcome"] for d in idle(client)] == ["delivered"]
    [(headers, body, url)] = hook.received
    assert headers["Content-Type"].startswith("text/xml") and headers["Soapaction"] == '""'
    assert url.endswith("?key=k1")
    message = parse(body)
    assert message["org"] == ORG and message["action"] == made["action_id"]
    assert message["action"].startswith("04k")
    assert message["session_nil"] == "true"
    assert message["enterprise"].endswith("/services/Soap/c/66.0/00D000000000001")
    assert message["partner"].endswith("/services/Soap/u/66.0/00D000000000001")
    [note] = message["notifications"]
    assert note["id"].startswith("04l") and note["type"] == "sf:Contact"
    integration, _ = users(client)
    assert note["fields"] == {
        "Id": contact,
        "Email": "zoe@example.com",
        "FirstName": "Zoë",
        "Phone": None,
        "LastModifiedById": integration,
        "LastModifiedDate": "2026-05-28T20:26:40.000Z",
    }


def test_a_rep_edit_names_the_rep_and_bumps_the_modified_date(client, receivers, clock):
    hook = receivers(default=(200, ACK))
    contact = create_contact(client, Email="zoe@example.com")
    action(client, hook.url)
    clock.advance(90)
    edited = client.patch(
        f"/_sandbox/orgs/{ORG}/records/Contact/{contact}", json={"Phone": "+33 6 12"}
    )
    assert edited.status_code == 200
    assert edited.get_json()["SystemModstamp"] == "2026-05-28T20:28:10.000+0000"
    idle(client)
    [note] = parse(hook.bodies()[0])["notifications"]
    _, rep = users(client)
    assert note["fields"]["LastModifiedById"] == rep
    assert note["fields"]["LastModifiedDate"] == "2026-05-28T20:28:10.000Z"
    assert note["fields"]["Phone"] == "+33 6 12"


def test_unacknowledged_messages_are_retried_with_current_values(client, receivers):
    hook = receivers(answers=[(200, NACK), (500, ""), (200, "<ok/>")], default=(200, ACK))
    client.post("/_sandbox/knobs", json={"outbound_time_scale": 0.01})
    action(client, hook.url)
    contact = create_contact(client, Email="first@example.com")
    assert wait_for(lambda: len(hook.received) >= 1)
    client.patch(
        f"{V}/sobjects/Contact/{contact}",
        json={"Email": "second@example.com"},
        headers=auth(client),
    )
    log = idle(client)
    assert [d["outcome"] for d in log][:3] == ["failed"] * 3
    sent = [n for body in hook.bodies() for n in parse(body)["notifications"]]
    first_id = sent[0]["id"]
    emails = [n["fields"]["Email"] for n in sent if n["id"] == first_id]
    # The same notification each time, with the data as of sending.
    assert emails[0] == "first@example.com"
    assert emails[-1] == "second@example.com"
    assert len(emails) >= 2


def test_retries_end_after_a_day_of_schedule(client, receivers):
    hook = receivers(default=(503, ""))
    client.post("/_sandbox/knobs", json={"outbound_time_scale": 0.000001})
    action(client, hook.url)
    create_contact(client)
    log = idle(client)
    assert log[-1]["outcome"] == "gave_up"
    assert 10 < len(hook.received) < 30  # growing intervals (at most 2 h) over 24 hours


def test_a_rolled_back_save_sends_nothing(client, receivers):
    hook = receivers(default=(200, ACK))
    action(client, hook.url)
    body = {
        "allOrNone": True,
        "records": [
            {"attributes": {"type": "Contact"}, "LastName": "Kept?"},
            {"attributes": {"type": "Contact"}},  # LastName missing: the whole call rolls back
        ],
    }
    response = client.post(f"{V}/composite/sobjects", json=body, headers=auth(client))
    assert [r["success"] for r in response.get_json()] == [False, False]
    assert idle(client) == [] and hook.received == []


def test_at_most_100_notifications_per_message(client, receivers):
    hook = receivers(default=(200, ACK))
    action(client, hook.url, fields=["Email"])
    records = [{"attributes": {"type": "Contact"}, "LastName": f"L{i}"} for i in range(150)]
    response = client.post(
        f"{V}/composite/sobjects", json={"records": records}, headers=auth(client)
    )
    assert all(r["success"] for r in response.get_json())
    idle(client)
    assert sorted(len(parse(b)["notifications"]) for b in hook.bodies()) == [50, 100]


def test_only_saves_of_the_actions_object_fire_and_deletes_do_not(client, receivers):
    hook = receivers(default=(200, ACK))
    action(client, hook.url, fields=["Name"], obj="Account")
    create_contact(client)
    account = client.post(
        f"{V}/sobjects/Account", json={"Name": "Acme"}, headers=auth(client)
    ).get_json()["id"]
    idle(client)
    assert client.delete(f"{V}/sobjects/Account/{account}", headers=auth(client)).status_code == 204
    idle(client)
    [body] = hook.bodies()
    [note] = parse(body)["notifications"]
    assert note["type"] == "sf:Account" and note["fields"] == {"Id": account, "Name": "Acme"}


@pytest.mark.parametrize(
    "change",
    [{"object": "Unicorn"}, {"url": "ftp://x/y"}, {"fields": ["Nope"]}, {"fields": "Email"}],
)
def test_bad_actions_are_400(client, change):
    body = {"object": "Contact", "url": "http://127.0.0.1:9/x", "fields": ["Email"], **change}
    assert client.post(f"/_sandbox/orgs/{ORG}/outbound", json=body).status_code == 400


def test_actions_are_listed_and_removed(client, receivers):
    hook = receivers(default=(200, ACK))
    made = action(client, hook.url)
    assert client.get(f"/_sandbox/orgs/{ORG}/outbound").get_json() == {"actions": [made]}
    assert client.delete(f"/_sandbox/orgs/{ORG}/outbound/{made['action_id']}").status_code == 204
    create_contact(client)
    assert idle(client) == [] and hook.received == []
