"""The Zoho simulator's watch channels against the reference (shared/reference/api-crms.md 3.6):
the actions/watch API, a callback for every change of a watched module (the API's and a
rep's), the echoed token, expiry on the simulator's clock, retries."""

from __future__ import annotations

import json

import pytest

from sandbox.zoho import create_app
from tests.clock import Clock
from tests.sandbox.conftest import wait_for
from tests.sandbox.receivers import receiver_factory

ORG = "60000001"
OAUTH = {"client_id": "1000.C", "client_secret": "cs-0123", "refresh_token": "1000.rt-0123"}
WATCH = "/crm/v8/actions/watch"
START = 1_780_000_000.0  # 2026-05-28T20:26:40Z


@pytest.fixture
def receivers():
    yield from receiver_factory()


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def client(clock):
    client = create_app(clock=clock).test_client()
    assert client.post("/_sandbox/orgs", json={"org_id": ORG, **OAUTH}).status_code == 201
    return client


def auth(client) -> dict:
    answer = client.post("/oauth/v2/token", data={"grant_type": "refresh_token", **OAUTH})
    return {"Authorization": f"Zoho-oauthtoken {answer.get_json()['access_token']}"}


def enable(client, url, **entry):
    body = {
        "watch": [
            {
                "channel_id": 1000068001,
                "events": ["Contacts.all"],
                "notify_url": url,
                "token": "tok-1",
                **entry,
            }
        ]
    }
    return client.post(WATCH, json=body, headers=auth(client))


def deliveries(client):
    return client.get(f"/_sandbox/orgs/{ORG}/deliveries").get_json()


def idle(client):
    assert wait_for(lambda: deliveries(client)["pending"] == 0)
    return deliveries(client)["deliveries"]


def insert(client, *records):
    response = client.post("/crm/v8/Contacts", json={"data": list(records)}, headers=auth(client))
    assert response.status_code == 201, response.get_json()
    return [r["details"]["id"] for r in response.get_json()["data"]]


def callbacks(receiver) -> list[dict]:
    return [json.loads(b) for b in receiver.bodies()]


def test_enable_answers_as_documented_and_the_channel_is_listed(client, receivers):
    hook = receivers()
    response = enable(client, hook.url, events=["Contacts.all", "Deals.edit"])
    assert response.status_code == 201
    [result] = response.get_json()["watch"]
    assert result["code"] == "SUCCESS" and result["status"] == "success"
    assert result["message"] == "Successfully subscribed for actions-watch of the given module"
    events = result["details"]["events"]
    assert [e["resource_name"] for e in events] == ["Contacts", "Deals"]
    assert {e["channel_id"] for e in events} == {"1000068001"}
    assert events[0]["resource_uri"].endswith("/crm/v8/Contacts")
    assert events[0]["channel_expiry"] == "2026-05-29T02:56:40+05:30"  # the default hour
    listed = client.get(WATCH, headers=auth(client)).get_json()["watch"]
    contacts = next(w for w in listed if w["resource_name"] == "Contacts")
    assert sorted(contacts["events"]) == ["Contacts.create", "Contacts.delete", "Contacts.edit"]
    assert contacts["token"] == "tok-1" and contacts["notify_url"] == hook.url


def test_an_api_insert_and_a_rep_edit_are_each_notified(client, receivers, clock):
    hook = receivers()
    assert enable(client, f"{hook.url}?key=v").status_code == 201
    [record] = insert(client, {"Last_Name": "Z", "Email": "z@example.com"})
    idle(client)
    clock.advance(60)
    edited = client.patch(
        f"/_sandbox/orgs/{ORG}/records/Contacts/{record}", json={"First_Name": "Zoë"}
    )
    [rendered] = edited.get_json()["data"]
    assert rendered["Modified_By"]["name"] == "Riya Sales"  # a rep, not the API user
    assert rendered["Modified_Time"] == "2026-05-29T01:57:40+05:30"
    idle(client)
    first, second = callbacks(hook)
    assert first == {
        "server_time": int(START * 1000),
        "query_params": {"key": "v"},
        "module": "Contacts",
        "resource_uri": first["resource_uri"],
        "ids": [record],
        "affected_fields": [],
        "operation": "insert",
        "channel_id": "1000068001",
        "token": "tok-1",
    }
    assert second["operation"] == "update"
    assert second["ids"] == [record]
    assert second["affected_fields"] == [{record: ["First_Name"]}]
    assert second["server_time"] == int((START + 60) * 1000)


def test_the_records_of_one_call_come_in_one_callback(client, receivers):
    hook = receivers()
    enable(client, hook.url)
    ids = insert(client, *({"Last_Name": f"L{i}", "Email": f"c{i}@example.com"} for i in range(3)))
    idle(client)
    [callback] = callbacks(hook)
    assert callback["ids"] == ids and callback["operation"] == "insert"


def test_deletes_and_only_the_watched_operations(client, receivers):
    hook = receivers()
    enable(client, hook.url, events=["Contacts.delete"])
    [record] = insert(client, {"Last_Name": "Z"})
    deleted = client.delete(f"/crm/v8/Contacts?ids={record}", headers=auth(client))
    assert deleted.status_code == 200
    idle(client)
    assert [(c["operation"], c["ids"]) for c in callbacks(hook)] == [("delete", [record])]


def test_return_affected_field_values(client, receivers):
    hook = receivers()
    enable(client, hook.url, events=["Contacts.edit"], return_affected_field_values=True)
    [record] = insert(client, {"Last_Name": "Z"})
    client.put(
        "/crm/v8/Contacts",
        json={"data": [{"id": record, "Phone": "+33 6 12"}]},
        headers=auth(client),
    )
    idle(client)
    [callback] = callbacks(hook)
    assert callback["affected_fields"] == [{record: {"Phone": "+33 6 12"}}]


def test_expiry_is_at_most_a_week_and_expired_channels_notify_nothing(client, receivers, clock):
    hook = receivers()
    week = "2026-06-04T20:26:40+00:00"  # exactly a week from START
    response = enable(client, hook.url, channel_expiry=week)
    assert (
        response.get_json()["watch"][0]["details"]["events"][0]["channel_expiry"]
        == "2026-06-05T01:56:40+05:30"
    )
    longer = enable(client, hook.url, channel_expiry="2026-06-05T20:26:41+00:00")
    # Past a week Zoho grants its default hour (v8 enable.html).
    assert (
        longer.get_json()["watch"][0]["details"]["events"][0]["channel_expiry"]
        == "2026-05-29T02:56:40+05:30"
    )
    clock.advance(3601)
    insert(client, {"Last_Name": "Z"})
    assert idle(client) == []
    assert hook.received == []
    assert client.get(WATCH, headers=auth(client)).status_code == 204  # no active channel


def test_a_renewed_channel_notifies_again(client, receivers, clock):
    hook = receivers()
    enable(client, hook.url)
    clock.advance(3601)
    renewed = client.patch(
        WATCH,
        json={
            "watch": [{"channel_id": "1000068001", "channel_expiry": "2026-06-01T00:00:00+00:00"}]
        },
        headers=auth(client),
    )
    assert renewed.status_code == 200, renewed.get_json()
    insert(client, {"Last_Name": "Z"})
    idle(client)
    assert len(hook.received) == 1


@pytest.mark.parametrize(
    ("entry", "code", "api_name"),
    [
        ({"token": "x" * 51}, "INVALID_DATA", "token"),
        ({"notify_url": None}, "INVALID_DATA", "notify_url"),
        ({"events": ["Contacts.nope"]}, "INVALID_DATA", "events"),
        ({"events": ["Unicorns.all"]}, "INVALID_DATA", "events"),
        ({"channel_id": "abc"}, "INVALID_DATA", "channel_id"),
        ({"channel_expiry": "2020-01-01T00:00:00+00:00"}, "INVALID_DATA", "channel_expiry"),
    ],
)
def test_invalid_entries_are_refused_per_entry(client, entry, code, api_name):
    response = enable(client, "http://127.0.0.1:9/x", **entry)
    assert response.status_code == 400
    [result] = response.get_json()["watch"]
    assert (result["code"], result["details"]["api_name"], result["status"]) == (
        code,
        api_name,
        "error",
    )


def test_missing_fields_and_mixed_results(client):
    body = {
        "watch": [
            {"channel_id": 1, "events": ["Contacts.all"]},
            {"channel_id": 2, "events": ["Contacts.all"], "notify_url": "http://127.0.0.1:9/x"},
        ]
    }
    response = client.post(WATCH, json=body, headers=auth(client))
    assert response.status_code == 207
    first, second = response.get_json()["watch"]
    assert first["code"] == "MANDATORY_NOT_FOUND" and first["details"]["api_name"] == "notify_url"
    assert second["code"] == "SUCCESS"
    assert client.post(WATCH, json={"watch": []}, headers=auth(client)).status_code == 400


def test_without_the_notifications_scope_the_watch_api_is_401(client):
    org = {
        "org_id": "60000002",
        "client_id": "1000.D",
        "client_secret": "s",
        "refresh_token": "r",
        "scopes": ["ZohoCRM.modules.ALL"],
    }
    assert client.post("/_sandbox/orgs", json=org).status_code == 201
    token = client.post(
        "/oauth/v2/token",
        data={
            "grant_type": "refresh_token",
            "client_id": "1000.D",
            "client_secret": "s",
            "refresh_token": "r",
        },
    ).get_json()
    assert token["scope"] == "ZohoCRM.modules.ALL"
    headers = {"Authorization": f"Zoho-oauthtoken {token['access_token']}"}
    body = {
        "watch": [
            {"channel_id": 1, "events": ["Contacts.all"], "notify_url": "http://127.0.0.1:9/x"}
        ]
    }
    response = client.post(WATCH, json=body, headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == "OAUTH_SCOPE_MISMATCH"
    assert client.get(WATCH, headers=auth(client)).status_code == 204  # the other org may


def test_disable_stops_the_callbacks(client, receivers):
    hook = receivers()
    enable(client, hook.url, events=["Contacts.all", "Deals.all"])
    response = client.delete(f"{WATCH}?channel_ids=1000068001", headers=auth(client))
    assert response.status_code == 200
    results = response.get_json()["watch"]
    assert [r["message"] for r in results] == ["Successfully un-subscribed from actions-watch"] * 2
    insert(client, {"Last_Name": "Z"})
    assert idle(client) == [] and hook.received == []


def test_a_failed_callback_is_retried_with_the_same_bytes(client, receivers):
    hook = receivers(answers=[(500, "")])
    client.post("/_sandbox/knobs", json={"notification_retry_seconds": 0.01})
    enable(client, hook.url)
    insert(client, {"Last_Name": "Z"})
    log = idle(client)
    assert [d["outcome"] for d in log] == ["failed", "delivered"]
    first, second = hook.bodies()
    assert first == second  # the receiver's dedupe key is the body's hash


def test_retries_are_bounded(client, receivers):
    hook = receivers(default=(503, ""))
    client.post(
        "/_sandbox/knobs", json={"notification_retry_seconds": 0.01, "notification_retries": 2}
    )
    enable(client, hook.url)
    insert(client, {"Last_Name": "Z"})
    log = idle(client)
    assert [d["outcome"] for d in log] == ["failed", "failed", "gave_up"]
    assert len(hook.received) == 3


def test_put_replaces_a_channels_details_and_patch_can_stop_some_events(client, receivers):
    hook = receivers()
    enable(client, hook.url, events=["Contacts.all", "Deals.all"])
    body = {
        "watch": [
            {
                "channel_id": "1000068001",
                "events": ["Deals.create"],
                "notify_url": hook.url,
                "token": "tok-2",
            }
        ]
    }
    assert client.put(WATCH, json=body, headers=auth(client)).status_code == 200
    listed = client.get(WATCH, headers=auth(client)).get_json()["watch"]
    assert [(w["resource_name"], w["events"], w["token"]) for w in listed] == [
        ("Deals", ["Deals.create"], "tok-2")
    ]
    stop = {"watch": [{"channel_id": "1000068001", "events": ["Deals.create"], "_delete": True}]}
    assert client.patch(WATCH, json=stop, headers=auth(client)).status_code == 200
    assert client.get(WATCH, headers=auth(client)).status_code == 204
    unknown = {"watch": [{"channel_id": "42", "events": ["Deals.create"], "notify_url": hook.url}]}
    assert client.put(WATCH, json=unknown, headers=auth(client)).status_code == 400
