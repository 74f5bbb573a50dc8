"""The HubSpot connector against the HubSpot simulator, served in-process on 127.0.0.1.

The simulator's clock is the test's clock, and the HttpClient's sleep advances it, so rate
windows pass exactly as long as the connector waits. The simulator's call log tells which
requests were made.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

from connectors.errors import PermanentError, RateLimitedError
from connectors.http import HttpClient
from connectors.hubspot import HubSpotConnector, existing_id, hubspot_policy
from mapping import hubspot as hubspot_mapping
from mapping.facts import FactRow, contact_facts, fact_properties
from mapping.hubspot import fact_property_definitions
from sandbox.hubspot import create_app
from sandbox.server import serve
from tests.clock import Clock, Sleeps

TOKEN = "pat-na1-secret-0123456789"
PORTAL = 77


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock):
    app = create_app(clock=clock)
    server = serve(app)
    control = app.test_client()
    assert (
        control.post("/_sandbox/portals", json={"token": TOKEN, "portal_id": PORTAL}).status_code
        == 201
    )
    yield server, control
    server.stop()


@pytest.fixture
def sleeps(clock) -> Sleeps:
    return Sleeps(clock)


def make_connector(sim, sleeps, *, now=None) -> HubSpotConnector:
    server, _ = sim
    policy = (
        hubspot_policy(now) if now else hubspot_policy(lambda: datetime(2024, 1, 1, 12, tzinfo=UTC))
    )
    http = HttpClient(
        policy, allow_loopback=True, sleep=sleeps.sleep, max_inline_wait=30.0, backoff_base=0.01
    )
    return HubSpotConnector(access_token=TOKEN, http=http, base_url=server.url)


@pytest.fixture
def hubspot(sim, sleeps) -> HubSpotConnector:
    return make_connector(sim, sleeps)


def control(sim):
    return sim[1]


def knobs(sim, **values):
    assert control(sim).post("/_sandbox/knobs", json=values).status_code == 200


def limits(sim, **values):
    assert (
        control(sim).patch(f"/_sandbox/portals/{PORTAL}", json={"limits": values}).status_code
        == 200
    )


def calls(sim, path_contains=""):
    log = control(sim).get(f"/_sandbox/calls?portal_id={PORTAL}").get_json()["calls"]
    return [c for c in log if path_contains in c["path"]]


def contacts_by_email(sim) -> dict[str, dict]:
    dump = control(sim).get(f"/_sandbox/portals/{PORTAL}/dump").get_json()
    return {c["properties"]["email"]: c for c in dump["objects"]["contacts"]}


UNIQUE = {
    "deals": [
        {
            "name": "tandem_order_id",
            "label": "Tandem order id",
            "type": "string",
            "fieldType": "text",
            "hasUniqueValue": True,
        }
    ],
    "line_items": [
        {
            "name": "tandem_line_item_id",
            "label": "Tandem line item id",
            "type": "string",
            "fieldType": "text",
            "hasUniqueValue": True,
        }
    ],
}


# ------------------------------------------------------------------ batching and matching


def test_batches_split_at_100(hubspot, sim):
    inputs = [(f"c{i}@example.com", {"firstname": f"C{i}"}) for i in range(250)]
    results = hubspot.upsert_contacts_by_email(inputs)
    assert [r.key for r in results] == [email for email, _ in inputs]
    assert all(r.ok and r.created for r in results)
    assert [c["inputs"] for c in calls(sim, "/batch/upsert")] == [100, 100, 50]
    assert len(contacts_by_email(sim)) == 250


def test_results_are_matched_by_key_when_hubspot_shuffles_them(hubspot, sim):
    knobs(sim, shuffle_results=True, seed=3)
    inputs = [(f"Person{i}@Example.com", {"firstname": f"P{i}"}) for i in range(40)]
    results = hubspot.upsert_contacts_by_email(inputs)
    stored = contacts_by_email(sim)
    for (email, props), result in zip(inputs, results, strict=True):
        assert result.ok
        assert result.key == email
        assert stored[email.lower()]["id"] == result.id
        assert stored[email.lower()]["properties"]["firstname"] == props["firstname"]

    updates = [(result.id, {"lastname": f"L{i}"}) for i, result in enumerate(results)]
    updated = hubspot.update_objects("contacts", updates)
    assert [r.id for r in updated] == [r.id for r in results]
    stored = contacts_by_email(sim)
    assert [stored[e.lower()]["properties"]["lastname"] for e, _ in inputs] == [
        f"L{i}" for i in range(40)
    ]


@pytest.mark.parametrize("mode", ["207", "400"])
def test_partial_failures_fail_only_the_bad_inputs(hubspot, sim, mode):
    knobs(sim, partial_mode=mode, fault_values=["doomed@example.com"])
    inputs = [(f"ok{i}@example.com", {}) for i in range(10)]
    inputs[3] = ("not-an-email", {})
    inputs[7] = ("doomed@example.com", {})
    inputs.append(("ok10@example.com", {"shoe_size": "42"}))
    results = hubspot.upsert_contacts_by_email(inputs)

    failed = {r.key: r for r in results if not r.ok}
    assert set(failed) == {"not-an-email", "doomed@example.com", "ok10@example.com"}
    assert "INVALID_EMAIL" in failed["not-an-email"].error
    assert "Email address not-an-email is invalid" in failed["not-an-email"].error
    assert "PROPERTY_DOESNT_EXIST" in failed["ok10@example.com"].error
    assert all(r.details["category"] == "VALIDATION_ERROR" for r in failed.values())
    written = contacts_by_email(sim)
    assert set(written) == {f"ok{i}@example.com" for i in range(10) if i not in (3, 7)}
    assert all(r.id == written[r.key]["id"] for r in results if r.ok)
    batches = calls(sim, "/batch/upsert")
    if mode == "207":
        assert len(batches) == 1
    else:
        # Bisected: the first whole-batch 400, then halves down to the bad inputs.
        assert batches[0]["status"] == 400
        assert len(batches) > 3
        assert {c["inputs"] for c in batches if c["status"] == 400 and c["inputs"] == 1}


def test_same_upsert_twice_writes_one_record(hubspot, sim):
    inputs = [("a@example.com", {"firstname": "A"}), ("b@example.com", {"firstname": "B"})]
    first = hubspot.upsert_contacts_by_email(inputs)
    second = hubspot.upsert_contacts_by_email(inputs)
    assert [r.created for r in first] == [True, True]
    assert [r.created for r in second] == [False, False]
    assert [r.id for r in first] == [r.id for r in second]
    counters = control(sim).get(f"/_sandbox/portals/{PORTAL}/counters").get_json()["objects"]
    assert counters["contacts"]["creates"] == 2
    assert counters["contacts"]["updates"] == 0


def test_duplicate_keys_in_one_call_are_merged_into_one_input(hubspot, sim):
    results = hubspot.upsert_contacts_by_email(
        [("a@example.com", {"firstname": "A"}), ("A@EXAMPLE.com", {"lastname": "Z"})]
    )
    assert results[0].id == results[1].id
    assert [r.key for r in results] == ["a@example.com", "A@EXAMPLE.com"]
    stored = contacts_by_email(sim)["a@example.com"]["properties"]
    assert (stored["firstname"], stored["lastname"]) == ("A", "Z")
    assert calls(sim, "/batch/upsert")[0]["inputs"] == 1


def test_blank_email_fails_without_a_call(hubspot, sim):
    [result] = hubspot.upsert_contacts_by_email([("  ", {})])
    assert not result.ok
    assert calls(sim) == []


def test_update_of_a_deleted_record_reports_object_not_found(hubspot, sim):
    [contact] = hubspot.upsert_contacts_by_email([("a@example.com", {})])
    results = hubspot.update_objects("contacts", [(contact.id, {"firstname": "A"}), ("999999", {})])
    assert results[0].ok
    assert not results[1].ok
    assert results[1].details["category"] == "OBJECT_NOT_FOUND"


def test_upsert_objects_by_unique_property(hubspot, sim):
    hubspot.ensure_properties(UNIQUE)
    deal = {"dealname": "Order #1", "dealstage": "closedwon", "amount": "10.00"}
    [first] = hubspot.upsert_objects("deals", "tandem_order_id", [("shop:1", deal)])
    [again] = hubspot.upsert_objects(
        "deals", "tandem_order_id", [("shop:1", {**deal, "amount": "12"})]
    )
    assert (first.created, again.created, again.id) == (True, False, first.id)
    [bad] = hubspot.upsert_objects(
        "deals", "tandem_order_id", [("shop:2", {**deal, "dealstage": "shipped"})]
    )
    assert not bad.ok
    assert "INVALID_OPTION" in bad.error


def test_existing_id_is_parsed_from_the_409_message():
    assert existing_id("Contact already exists. Existing ID: 2926551") == "2926551"
    assert existing_id("Something else") is None


# ------------------------------------------------------------------ properties


def test_ensure_properties_is_idempotent(hubspot, sim):
    assert sorted(hubspot.ensure_properties(UNIQUE)) == ["tandem_line_item_id", "tandem_order_id"]
    assert hubspot.ensure_properties(UNIQUE) == []
    groups = control(sim).get(f"/_sandbox/portals/{PORTAL}/dump").get_json()["customProperties"]
    assert groups["deals"] == ["tandem_order_id"]
    # Second run only listed the properties: no creates, no 409s.
    assert [c["status"] for c in calls(sim, "/crm/v3/properties/deals")] == [200, 201, 201, 200]


# ------------------------------------------------------------------ associations


def test_associations(hubspot, sim):
    hubspot.ensure_properties(UNIQUE)
    [contact] = hubspot.upsert_contacts_by_email([("a@example.com", {})])
    deals = hubspot.upsert_objects(
        "deals",
        "tandem_order_id",
        [(f"shop:{n}", {"dealname": f"#{n}", "dealstage": "closedwon"}) for n in (1, 2)],
    )
    [item] = hubspot.upsert_objects(
        "line_items",
        "tandem_line_item_id",
        [("shop:1:1", {"name": "Mug", "quantity": "1", "price": "9"})],
    )
    linked = hubspot.associate(
        "deals", "contacts", [(deals[0].id, contact.id), (deals[1].id, contact.id)], 3
    )
    assert all(r.ok for r in linked)
    [parent] = hubspot.associate("line_items", "deals", [(item.id, deals[0].id)], 20)
    assert parent.ok
    # A line item has one parent deal; the refusal names the pair, the others still go through.
    refused = hubspot.associate(
        "line_items", "deals", [(item.id, deals[1].id), (item.id, deals[0].id)], 20
    )
    assert [r.ok for r in refused] == [False, True]
    assert "one single parent" in refused[0].error
    dump = control(sim).get(f"/_sandbox/portals/{PORTAL}/dump").get_json()["associations"]
    seen = {
        (a["fromObjectType"], a["fromObjectId"], a["toObjectType"], a["toObjectId"]) for a in dump
    }
    assert ("contacts", contact.id, "deals", deals[0].id) in seen  # symmetric
    assert ("deals", deals[0].id, "line_items", item.id) in seen


# ------------------------------------------------------------------ reading


def test_list_objects_pages_through_everything(hubspot, sim):
    hubspot.upsert_contacts_by_email([(f"c{i}@example.com", {}) for i in range(230)])
    records = list(hubspot.list_objects("contacts", ["email"]))
    assert len({r["id"] for r in records}) == 230
    assert [
        c["query"].count("after=")
        for c in calls(sim, "/crm/v3/objects/contacts")
        if "batch" not in c["path"]
    ] == [0, 1, 1]


def test_changed_since_yields_each_change_once_in_order(hubspot, sim, clock):
    start = datetime.fromtimestamp(clock.now, tz=UTC)
    hubspot.upsert_contacts_by_email([(f"early{i}@example.com", {}) for i in range(3)])
    clock.advance(1)
    # More records share one instant than fit on a search page: the instant is walked by id.
    hubspot.upsert_contacts_by_email([(f"tie{i}@example.com", {}) for i in range(100)])
    hubspot.upsert_contacts_by_email([(f"tie{i}@example.com", {}) for i in range(100, 250)])
    clock.advance(1)
    hubspot.upsert_contacts_by_email([(f"late{i}@example.com", {}) for i in range(5)])
    records = list(hubspot.changed_since("contacts", start, ["email"]))
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == 258
    stamps = [r["properties"]["lastmodifieddate"] for r in records]
    assert stamps == sorted(stamps)
    later = datetime.fromtimestamp(clock.now, tz=UTC)
    assert len(list(hubspot.changed_since("contacts", later, ["email"]))) == 5


# ------------------------------------------------------------------ rate limits and errors


def test_ten_secondly_429_is_waited_out(hubspot, sim, sleeps):
    limits(sim, burst=2)
    hubspot.upsert_contacts_by_email([("a@example.com", {})])
    hubspot.upsert_contacts_by_email([("b@example.com", {})])
    [third] = hubspot.upsert_contacts_by_email([("c@example.com", {})])
    assert third.ok
    assert 10.0 in sleeps
    assert [c["status"] for c in calls(sim, "/batch/upsert")] == [200, 200, 429, 200]


def test_daily_429_raises_rate_limited_until_midnight(sim, sleeps):
    limits(sim, daily=1)
    now = datetime(2024, 1, 1, 23, 50, tzinfo=UTC)
    hubspot = make_connector(sim, sleeps, now=lambda: now)
    hubspot.upsert_contacts_by_email([("a@example.com", {})])
    with pytest.raises(RateLimitedError) as caught:
        hubspot.upsert_contacts_by_email([("b@example.com", {})])
    assert caught.value.retry_after == pytest.approx(600)
    assert sleeps == []


def test_locked_and_server_errors_are_retried(hubspot, sim, sleeps):
    knobs(sim, inject=[{"status": 423}, {"status": 502}])
    [result] = hubspot.upsert_contacts_by_email([("a@example.com", {})])
    assert result.ok
    assert sleeps[0] >= 2.0
    assert [c["status"] for c in calls(sim, "/batch/upsert")] == [423, 502, 200]


def test_token_is_never_logged(hubspot, sim, caplog):
    caplog.set_level(logging.DEBUG)
    limits(sim, burst=1)
    knobs(sim, partial_mode="400")
    hubspot.upsert_contacts_by_email([("a@example.com", {}), ("bad", {})])
    hubspot.ensure_properties(UNIQUE)
    assert caplog.records  # the client did log something
    assert TOKEN not in caplog.text


# ------------------------------------------------------------------ batch read


def test_get_objects_reads_100_ids_per_call_and_leaves_out_unknown_ones(hubspot, sim):
    made = hubspot.upsert_contacts_by_email(
        [(f"r{i}@example.com", {"firstname": f"R{i}"}) for i in range(150)]
    )
    ids = [r.id for r in made]
    # Unknown and repeated ids: the unknown are absent, the repeated read once.
    records = hubspot.get_objects("contacts", [*ids, "999999", ids[0], "888888"], ["firstname"])
    assert sorted(r["id"] for r in records) == sorted(ids)
    by_id = {r["id"]: r for r in records}
    assert by_id[ids[7]]["properties"]["firstname"] == "R7"
    reads = calls(sim, "/batch/read")
    assert [c["inputs"] for c in reads] == [100, 52]
    assert [c["status"] for c in reads] == [200, 207]  # 207: some ids were not found
    assert hubspot.get_objects("contacts", [], ["firstname"]) == []


def test_get_objects_of_only_unknown_ids_is_empty_whether_207_or_404(sim, sleeps):
    hubspot = make_connector(sim, sleeps)
    assert hubspot.get_objects("contacts", ["999999"], ["email"]) == []

    # HubSpot may answer a batch of only unknown ids 404 instead (UNCONFIRMED): the same.
    rewrote = []

    def as_404(response, *args, **kwargs):
        if response.request.url.endswith("/batch/read") and not response.json()["results"]:
            rewrote.append(response.status_code)
            response.status_code = 404
            response._content = (
                b'{"status":"error","category":"OBJECT_NOT_FOUND","message":"not found"}'
            )
        return response

    session = requests.Session()
    session.hooks["response"].append(as_404)
    http = HttpClient(hubspot_policy(), allow_loopback=True, sleep=sleeps.sleep, session=session)
    rewritten = HubSpotConnector(access_token=TOKEN, http=http, base_url=sim[0].url)
    assert rewritten.get_objects("contacts", ["999999"], ["email"]) == []
    assert rewrote == [207]


def test_get_objects_raises_on_other_refusals(hubspot, sim):
    knobs(sim, inject=[{"status": 404, "path_contains": "/batch/read", "message": "No route"}])
    with pytest.raises(PermanentError, match="No route"):
        hubspot.get_objects("contacts", ["1"], ["email"])


def test_fact_properties_are_created_written_and_read_back(hubspot, sim):
    facts = contact_facts(
        [
            FactRow(
                "USD", Decimal("100.00"), Decimal("20.00"), datetime(2024, 3, 1, 22, tzinfo=UTC)
            ),
            FactRow("EUR", Decimal("9.99"), Decimal(0), datetime(2024, 4, 2, 1, tzinfo=UTC)),
        ]
    )
    definitions = {"contacts": fact_property_definitions(facts.currencies)}
    assert len(hubspot.ensure_properties(definitions)) == 11
    assert hubspot.ensure_properties(definitions) == []
    [contact] = hubspot.upsert_contacts_by_email([("facts@example.com", {})])
    props = fact_properties(hubspot_mapping.SCHEMA, facts)
    [written] = hubspot.update_objects("contacts", [(contact.id, props)])
    assert written.ok, written.error
    [record] = hubspot.get_objects("contacts", [contact.id], list(props))
    stored = record["properties"]
    assert stored["tandem_total_spent_usd"] == "80.00"
    assert stored["tandem_average_order_value_eur"] == "9.99"
    assert stored["tandem_order_count"] == "2"
    # Date properties take midnight UTC in epoch ms and read back as the day.
    assert (stored["tandem_first_order_date"], stored["tandem_last_order_date"]) == (
        "2024-03-01",
        "2024-04-02",
    )
