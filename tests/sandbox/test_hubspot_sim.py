"""The HubSpot simulator against the reference (shared/reference/api-crms.md, section 1).

Driven through Flask's test client with an injected clock, so rate windows and timestamps are
exact. Each test names the fact it checks.
"""

from __future__ import annotations

import json

import pytest

from sandbox.hubspot import create_app
from tests.clock import Clock

TOKEN = "pat-na1-test"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(clock):
    app = create_app(clock=clock)
    client = app.test_client()
    created = client.post("/_sandbox/portals", json={"token": TOKEN, "portal_id": 123})
    assert created.status_code == 201
    return client


def upsert_contacts(client, inputs, **kw):
    body = {
        "inputs": [
            {"id": email, "idProperty": "email", "properties": props} for email, props in inputs
        ]
    }
    return client.post("/crm/v3/objects/contacts/batch/upsert", json=body, headers=AUTH, **kw)


def set_knobs(client, **knobs):
    response = client.post("/_sandbox/knobs", json=knobs)
    assert response.status_code == 200, response.get_json()


def dump(client, portal_id=123):
    return client.get(f"/_sandbox/portals/{portal_id}/dump").get_json()


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer pat-unknown"}, {"Authorization": "Basic x"}]
)
def test_missing_or_unknown_token_is_401_with_hubspot_error_body(client, headers):
    response = client.get("/crm/v3/objects/contacts", headers=headers)
    assert response.status_code == 401
    body = response.get_json()
    assert body["status"] == "error"
    assert body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"]
    assert "X-HubSpot-RateLimit-Max" not in response.headers


def test_portals_are_isolated_by_token(client):
    client.post("/_sandbox/portals", json={"token": "pat-other", "portal_id": 456})
    upsert_contacts(client, [("a@example.com", {})])
    other = client.get("/crm/v3/objects/contacts", headers={"Authorization": "Bearer pat-other"})
    assert other.get_json()["results"] == []
    assert len(dump(client, 123)["objects"]["contacts"]) == 1


# ------------------------------------------------------------------ batches


def test_batch_of_101_inputs_is_refused_whole(client):
    inputs = [(f"c{i}@example.com", {}) for i in range(101)]
    response = upsert_contacts(client, inputs)
    assert response.status_code == 400
    assert response.get_json()["category"] == "VALIDATION_ERROR"
    assert dump(client)["objects"]["contacts"] == []
    assert upsert_contacts(client, inputs[:100]).status_code == 200


def test_upsert_by_email_creates_then_updates_with_new_flag(client, clock):
    first = upsert_contacts(client, [("Ann@Example.com", {"firstname": "Ann"})])
    assert first.status_code == 200
    [created] = first.get_json()["results"]
    assert created["new"] is True
    assert created["properties"]["email"] == "ann@example.com"
    assert created["properties"]["firstname"] == "Ann"

    clock.advance(5)
    # Matching is case-insensitive on the email.
    second = upsert_contacts(client, [("ANN@example.com", {"lastname": "Lee"})])
    [updated] = second.get_json()["results"]
    assert updated["new"] is False
    assert updated["id"] == created["id"]
    assert updated["updatedAt"] > created["updatedAt"]
    contacts = dump(client)["objects"]["contacts"]
    assert len(contacts) == 1
    assert contacts[0]["properties"]["lastname"] == "Lee"
    counters = client.get("/_sandbox/portals/123/counters").get_json()["objects"]["contacts"]
    assert (counters["creates"], counters["updates"]) == (1, 1)


def test_update_that_changes_nothing_keeps_the_modified_date(client, clock):
    [created] = upsert_contacts(client, [("a@example.com", {"firstname": "A"})]).get_json()[
        "results"
    ]
    clock.advance(60)
    [again] = upsert_contacts(client, [("a@example.com", {"firstname": "A"})]).get_json()["results"]
    assert again["properties"]["lastmodifieddate"] == created["properties"]["lastmodifieddate"]
    assert (
        client.get("/_sandbox/portals/123/counters").get_json()["objects"]["contacts"]["unchanged"]
        == 1
    )


def test_duplicate_ids_in_one_batch_are_refused(client):
    response = upsert_contacts(client, [("a@example.com", {}), ("A@example.com", {})])
    assert response.status_code == 400
    assert "Duplicate IDs" in response.get_json()["message"]


def test_unknown_property_is_400_property_doesnt_exist(client):
    response = client.post(
        "/crm/v3/objects/contacts",
        json={"properties": {"email": "a@example.com", "shoe_size": "42"}},
        headers=AUTH,
    )
    assert response.status_code == 400
    body = response.get_json()
    assert body["category"] == "VALIDATION_ERROR"
    assert body["message"].startswith("Property values were not valid: ")
    [entry] = json.loads(body["message"].split(": ", 1)[1])
    assert entry == {
        "isValid": False,
        "message": 'Property "shoe_size" does not exist',
        "error": "PROPERTY_DOESNT_EXIST",
        "name": "shoe_size",
        "localizedErrorMessage": 'Property "shoe_size" does not exist',
    }


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"email": "not-an-email"}, "INVALID_EMAIL"),
        ({"email": "a@example.com", "lifecyclestage": "king"}, "INVALID_OPTION"),
        ({"email": "a@example.com", "createdate": "yesterday"}, "INVALID_DATE"),
        ({"email": "a@example.com", "hs_object_id": "5"}, "READ_ONLY_VALUE"),
    ],
)
def test_property_values_are_validated_by_type(client, properties, code):
    response = client.post(
        "/crm/v3/objects/contacts", json={"properties": properties}, headers=AUTH
    )
    assert response.status_code == 400
    assert f'"error":"{code}"' in response.get_json()["message"]


def test_datetimes_accept_epoch_ms_or_iso_and_are_stored_normalised(client):
    for value in ("1700000000000", "2023-11-14T22:13:20Z", "2023-11-14T23:13:20+01:00"):
        response = client.post(
            "/crm/v3/objects/deals",
            json={
                "properties": {
                    "dealname": value,
                    "dealstage": "closedwon",
                    "closedate": value,
                }
            },
            headers=AUTH,
        )
        assert response.status_code == 201, response.get_json()
        assert response.get_json()["properties"]["closedate"] == "2023-11-14T22:13:20.000Z"


def test_deal_stage_must_belong_to_its_pipeline_and_numbers_must_parse(client):
    def create(**props):
        base = {"dealname": "Order 1", "dealstage": "closedwon"}
        return client.post(
            "/crm/v3/objects/deals", json={"properties": {**base, **props}}, headers=AUTH
        )

    created = create()
    assert created.status_code == 201
    assert created.get_json()["properties"]["pipeline"] == "default"
    assert "INVALID_OPTION" in create(dealstage="shipped").get_json()["message"]
    assert "INVALID_OPTION" in create(pipeline="nope").get_json()["message"]
    assert "INVALID_OPTION" in create(deal_currency_code="XXX").get_json()["message"]
    assert create(amount="12,50").status_code == 400
    assert create(deal_currency_code="EUR", amount="12.50").status_code == 201


def test_line_item_amount_is_calculated_and_price_cannot_be_negative(client):
    response = client.post(
        "/crm/v3/objects/line_items",
        json={"properties": {"name": "Mug", "quantity": "3", "price": "12.50", "discount": "2.50"}},
        headers=AUTH,
    )
    assert response.get_json()["properties"]["amount"] == "30"
    negative = client.post(
        "/crm/v3/objects/line_items", json={"properties": {"price": "-1"}}, headers=AUTH
    )
    assert negative.status_code == 400


def test_single_create_with_existing_email_is_409_with_existing_id(client):
    [contact] = upsert_contacts(client, [("a@example.com", {})]).get_json()["results"]
    response = client.post(
        "/crm/v3/objects/contacts", json={"properties": {"email": "A@EXAMPLE.COM"}}, headers=AUTH
    )
    assert response.status_code == 409
    body = response.get_json()
    assert body["category"] == "CONFLICT"
    assert body["message"] == f"Contact already exists. Existing ID: {contact['id']}"


def create_unique_property(client, name="tandem_order_id", object_type="deals"):
    group = client.post(
        f"/crm/v3/properties/{object_type}/groups",
        json={"name": "tandem", "label": "Tandem"},
        headers=AUTH,
    )
    assert group.status_code in (201, 409)
    return client.post(
        f"/crm/v3/properties/{object_type}",
        json={
            "name": name,
            "label": "Order id",
            "type": "string",
            "fieldType": "text",
            "groupName": "tandem",
            "hasUniqueValue": True,
        },
        headers=AUTH,
    )


def test_property_definitions_create_list_and_409_when_existing(client):
    created = create_unique_property(client)
    assert created.status_code == 201
    assert created.get_json()["hasUniqueValue"] is True
    assert create_unique_property(client).status_code == 409
    names = {
        p["name"]
        for p in client.get("/crm/v3/properties/deals", headers=AUTH).get_json()["results"]
    }
    assert {"tandem_order_id", "dealname", "deal_currency_code", "hs_lastmodifieddate"} <= names
    missing_group = client.post(
        "/crm/v3/properties/deals",
        json={
            "name": "x",
            "label": "X",
            "type": "string",
            "fieldType": "text",
            "groupName": "nope",
        },
        headers=AUTH,
    )
    assert missing_group.status_code == 400


def test_unique_value_property_upserts_and_is_enforced_on_every_write(client):
    create_unique_property(client)

    def upsert(key, **props):
        body = {
            "inputs": [
                {
                    "id": key,
                    "idProperty": "tandem_order_id",
                    "properties": {"dealname": key, "dealstage": "closedwon", **props},
                }
            ]
        }
        return client.post("/crm/v3/objects/deals/batch/upsert", json=body, headers=AUTH)

    [first] = upsert("shop:1").get_json()["results"]
    [again] = upsert("shop:1", amount="5").get_json()["results"]
    assert (first["new"], again["new"], again["id"]) == (True, False, first["id"])
    assert again["properties"]["tandem_order_id"] == "shop:1"
    [second] = upsert("shop:2").get_json()["results"]

    # Setting another record's unique value is refused, by update and by create.
    clash = client.patch(
        f"/crm/v3/objects/deals/{second['id']}",
        json={"properties": {"tandem_order_id": "shop:1"}},
        headers=AUTH,
    )
    assert clash.status_code == 400
    assert "DUPLICATE_VALUE" in clash.get_json()["message"]
    create = client.post(
        "/crm/v3/objects/deals",
        json={
            "properties": {"dealname": "x", "dealstage": "closedwon", "tandem_order_id": "shop:2"}
        },
        headers=AUTH,
    )
    assert create.status_code == 400
    # Upserting by a property that is not unique is refused.
    body = {"inputs": [{"id": "x", "idProperty": "dealname", "properties": {}}]}
    assert (
        client.post("/crm/v3/objects/deals/batch/upsert", json=body, headers=AUTH).status_code
        == 400
    )


# ------------------------------------------------------------------ partial failures


def test_partial_mode_207_writes_valid_inputs_and_reports_failed_ones(client):
    response = upsert_contacts(
        client,
        [("good@example.com", {}), ("bad-email", {}), ("other@example.com", {"shoe": "1"})],
    )
    assert response.status_code == 207
    body = response.get_json()
    assert body["status"] == "COMPLETE"
    assert body["numErrors"] == 2
    assert [r["properties"]["email"] for r in body["results"]] == ["good@example.com"]
    contexts = sorted(e["context"]["ids"][0] for e in body["errors"])
    assert contexts == ["bad-email", "other@example.com"]
    assert {e["status"] for e in body["errors"]} == {"error"}
    assert {e["category"] for e in body["errors"]} == {"VALIDATION_ERROR"}
    assert body["startedAt"]
    assert body["completedAt"]
    assert [c["properties"]["email"] for c in dump(client)["objects"]["contacts"]] == [
        "good@example.com"
    ]


def test_partial_mode_400_rejects_the_whole_batch_and_writes_nothing(client):
    set_knobs(client, partial_mode="400")
    response = upsert_contacts(client, [("good@example.com", {}), ("bad-email", {})])
    assert response.status_code == 400
    assert response.get_json()["category"] == "VALIDATION_ERROR"
    assert dump(client)["objects"]["contacts"] == []


def test_batch_create_is_207_only_with_object_write_trace_ids(client):
    def create(inputs):
        return client.post(
            "/crm/v3/objects/contacts/batch/create", json={"inputs": inputs}, headers=AUTH
        )

    plain = create([{"properties": {"email": "a@example.com"}}, {"properties": {"email": "x"}}])
    assert plain.status_code == 400
    traced = create(
        [
            {"properties": {"email": "a@example.com"}, "objectWriteTraceId": "t1"},
            {"properties": {"email": "x"}, "objectWriteTraceId": "t2"},
        ]
    )
    assert traced.status_code == 207
    assert traced.get_json()["errors"][0]["context"] == {"objectWriteTraceId": ["t2"]}


def test_fault_values_knob_makes_chosen_emails_invalid(client):
    set_knobs(client, fault_values=["Doomed@example.com"])
    response = upsert_contacts(client, [("doomed@example.com", {}), ("fine@example.com", {})])
    assert response.status_code == 207
    assert "INVALID_EMAIL" in response.get_json()["errors"][0]["message"]


def test_batch_update_of_a_missing_id_fails_that_input_as_object_not_found(client):
    [contact] = upsert_contacts(client, [("a@example.com", {})]).get_json()["results"]
    body = {
        "inputs": [
            {"id": contact["id"], "properties": {"firstname": "A"}},
            {"id": "999999", "properties": {"firstname": "B"}},
        ]
    }
    response = client.post("/crm/v3/objects/contacts/batch/update", json=body, headers=AUTH)
    assert response.status_code == 207
    [error] = response.get_json()["errors"]
    assert (error["category"], error["context"]) == ("OBJECT_NOT_FOUND", {"ids": ["999999"]})


# ------------------------------------------------------------------ reading


def test_list_paging_has_no_paging_key_on_the_last_page(client):
    upsert_contacts(client, [(f"c{i}@example.com", {}) for i in range(5)])
    first = client.get("/crm/v3/objects/contacts?limit=2&properties=email", headers=AUTH).get_json()
    assert [set(r["properties"]) for r in first["results"]] == [{"email"}, {"email"}]
    after = first["paging"]["next"]["after"]
    assert first["paging"]["next"]["link"].endswith(f"after={after}&limit=2")
    seen = [r["id"] for r in first["results"]]
    page = first
    while "paging" in page:
        page = client.get(
            f"/crm/v3/objects/contacts?limit=2&after={page['paging']['next']['after']}",
            headers=AUTH,
        ).get_json()
        seen += [r["id"] for r in page["results"]]
    assert len(seen) == len(set(seen)) == 5
    assert client.get("/crm/v3/objects/contacts?limit=101", headers=AUTH).status_code == 400


def test_get_by_id_property_and_archive(client):
    [contact] = upsert_contacts(client, [("a@example.com", {})]).get_json()["results"]
    by_email = client.get("/crm/v3/objects/contacts/A@example.com?idProperty=email", headers=AUTH)
    assert by_email.get_json()["id"] == contact["id"]
    assert (
        client.delete(f"/crm/v3/objects/contacts/{contact['id']}", headers=AUTH).status_code == 204
    )
    assert client.get(f"/crm/v3/objects/contacts/{contact['id']}", headers=AUTH).status_code == 404
    archived = client.get("/crm/v3/objects/contacts?archived=true", headers=AUTH).get_json()
    assert [r["archived"] for r in archived["results"]] == [True]


def search(client, body):
    return client.post("/crm/v3/objects/contacts/search", json=body, headers=AUTH)


def seed_contacts(client, records):
    response = client.post(
        "/_sandbox/portals/123/objects/contacts",
        json={"records": [{"properties": p} for p in records]},
    )
    assert response.status_code == 201, response.get_json()
    return response.get_json()["results"]


def test_search_operators(client):
    # Many searches in one simulated instant: lift the 5/s search limit for this test.
    client.patch("/_sandbox/portals/123", json={"limits": {"search_per_second": 100}})
    seed_contacts(
        client,
        [
            {"email": "a@example.com", "firstname": "Ann", "createdate": "1000"},
            {"email": "b@example.com", "firstname": "Bob", "createdate": "2000"},
            {"email": "c@example.com", "createdate": "3000"},
        ],
    )

    def emails(*filters, groups=None):
        body = {"filterGroups": groups or [{"filters": list(filters)}], "properties": ["email"]}
        response = search(client, body)
        assert response.status_code == 200, response.get_json()
        return sorted(r["properties"]["email"][0] for r in response.get_json()["results"])

    def f(op, **kw):
        return {"propertyName": kw.pop("prop", "createdate"), "operator": op, **kw}

    assert emails(f("EQ", prop="firstname", value="ann")) == ["a"]
    assert emails(f("NEQ", prop="firstname", value="Ann")) == ["b", "c"]
    assert emails(f("GT", value="1000")) == ["b", "c"]
    assert emails(f("GTE", value="1970-01-01T00:00:02Z")) == ["b", "c"]
    assert emails(f("LT", value="2000")) == ["a"]
    assert emails(f("LTE", value="2000")) == ["a", "b"]
    assert emails(f("BETWEEN", value="1500", highValue="3000")) == ["b", "c"]
    assert emails(f("IN", prop="firstname", values=["ann", "bob"])) == ["a", "b"]
    assert emails(f("HAS_PROPERTY", prop="firstname")) == ["a", "b"]
    assert emails(f("NOT_HAS_PROPERTY", prop="firstname")) == ["c"]
    # Filters in a group are AND-ed; groups are OR-ed.
    assert emails(f("GT", value="1000"), f("HAS_PROPERTY", prop="firstname")) == ["b"]
    groups = [{"filters": [f("EQ", value="1000")]}, {"filters": [f("EQ", value="3000")]}]
    assert emails(groups=groups) == ["a", "c"]


def test_search_sorts_by_one_property_and_refuses_two(client, clock):
    seed_contacts(
        client,
        [{"email": f"{n}@example.com", "firstname": n} for n in ("carl", "anna", "bert")],
    )
    body = {
        "sorts": [{"propertyName": "firstname", "direction": "DESCENDING"}],
        "properties": ["firstname"],
    }
    names = [r["properties"]["firstname"] for r in search(client, body).get_json()["results"]]
    assert names == ["carl", "bert", "anna"]
    body["sorts"].append({"propertyName": "email", "direction": "ASCENDING"})
    assert search(client, body).status_code == 400


def test_search_pages_by_numeric_offset_and_stops_at_10000(client, clock):
    seed_contacts(client, [{"firstname": f"p{i}"} for i in range(10_005)])
    page = search(client, {"limit": 200, "after": "9900"}).get_json()
    assert page["total"] == 10_005
    assert len(page["results"]) == 100
    assert page["paging"]["next"]["after"] == "10000"
    clock.advance(1)
    beyond = search(client, {"limit": 200, "after": "10000"})
    assert beyond.status_code == 400
    assert beyond.get_json()["category"] == "VALIDATION_ERROR"
    assert search(client, {"limit": 201}).status_code == 400


def test_search_has_no_rate_headers_and_its_own_5_per_second_limit(client, clock):
    responses = [search(client, {}) for _ in range(6)]
    assert [r.status_code for r in responses] == [200] * 5 + [429]
    assert all("X-HubSpot-RateLimit-Max" not in r.headers for r in responses)
    assert responses[-1].get_json()["policyName"] == "SECONDLY"
    clock.advance(1)
    assert search(client, {}).status_code == 200
    # Searches do not use up the 10-second burst window of the other endpoints.
    listed = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert listed.headers["X-HubSpot-RateLimit-Remaining"] == "99"


# ------------------------------------------------------------------ associations


def make_deal(client, name="Order 1"):
    response = client.post(
        "/crm/v3/objects/deals",
        json={"properties": {"dealname": name, "dealstage": "closedwon"}},
        headers=AUTH,
    )
    return response.get_json()["id"]


def associate(client, from_type, to_type, pairs, type_id):
    body = {
        "inputs": [
            {
                "from": {"id": a},
                "to": {"id": b},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
            }
            for a, b in pairs
        ]
    }
    return client.post(
        f"/crm/v4/associations/{from_type}/{to_type}/batch/create", json=body, headers=AUTH
    )


def test_associations_are_symmetric_with_documented_type_ids(client):
    [contact] = upsert_contacts(client, [("a@example.com", {})]).get_json()["results"]
    deal = make_deal(client)
    created = associate(client, "deals", "contacts", [(deal, contact["id"])], 3)
    assert created.status_code == 201
    [result] = created.get_json()["results"]
    assert (result["fromObjectTypeId"], result["toObjectTypeId"]) == ("0-3", "0-1")

    seen_from_contact = client.get(
        f"/crm/v4/objects/contacts/{contact['id']}/associations/deals", headers=AUTH
    ).get_json()["results"]
    assert seen_from_contact == [
        {
            "toObjectId": deal,
            "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 4, "label": None}],
        }
    ]
    read = client.post(
        "/crm/v4/associations/deals/contacts/batch/read",
        json={"inputs": [{"id": deal}]},
        headers=AUTH,
    ).get_json()
    assert read["results"][0]["to"][0]["toObjectId"] == contact["id"]
    # A type id of the other direction is refused (per input).
    wrong = associate(client, "deals", "contacts", [(deal, contact["id"])], 4)
    assert wrong.status_code == 207
    assert wrong.get_json()["errors"][0]["category"] == "VALIDATION_ERROR"


def test_default_association_put_and_batch_associate_default(client):
    [contact] = upsert_contacts(client, [("a@example.com", {})]).get_json()["results"]
    deal = make_deal(client)
    put = client.put(
        f"/crm/v4/objects/contacts/{contact['id']}/associations/default/deals/{deal}", headers=AUTH
    )
    assert put.status_code == 200
    assert put.get_json()["results"][0]["associationSpec"]["associationTypeId"] == 4
    second = make_deal(client, "Order 2")
    body = {"inputs": [{"from": {"id": second}, "to": {"id": contact["id"]}}]}
    response = client.post(
        "/crm/v4/associations/deals/contacts/batch/associate/default", json=body, headers=AUTH
    )
    assert response.status_code == 200
    rows = client.get(f"/crm/v4/objects/contacts/{contact['id']}/associations/deals", headers=AUTH)
    assert sorted(r["toObjectId"] for r in rows.get_json()["results"]) == sorted([deal, second])


def test_a_line_item_has_one_parent_deal(client):
    first, second = make_deal(client), make_deal(client, "Order 2")
    item = client.post(
        "/crm/v3/objects/line_items", json={"properties": {"name": "Mug"}}, headers=AUTH
    ).get_json()["id"]
    assert associate(client, "line_items", "deals", [(item, first)], 20).status_code == 201
    # Re-associating with the same deal is a no-op; another deal is refused.
    assert associate(client, "line_items", "deals", [(item, first)], 20).status_code == 201
    response = associate(client, "deals", "line_items", [(second, item)], 19)
    assert response.status_code == 207
    assert response.get_json()["errors"][0]["context"] == {
        "fromObjectId": [second],
        "toObjectId": [item],
    }


def test_association_to_a_missing_record_is_a_per_input_error(client):
    deal = make_deal(client)
    response = associate(client, "deals", "contacts", [(deal, "424242")], 3)
    assert response.status_code == 207
    assert response.get_json()["errors"][0]["category"] == "OBJECT_NOT_FOUND"


# ------------------------------------------------------------------ rate limits


def test_rate_limit_headers_and_ten_secondly_429(client, clock):
    client.patch("/_sandbox/portals/123", json={"limits": {"burst": 3}})
    ok = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert ok.headers["X-HubSpot-RateLimit-Max"] == "3"
    assert ok.headers["X-HubSpot-RateLimit-Remaining"] == "2"
    assert ok.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert ok.headers["X-HubSpot-RateLimit-Daily"] == "250000"
    assert ok.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "249999"
    clock.advance(4)
    client.get("/crm/v3/objects/contacts", headers=AUTH)
    client.get("/crm/v3/objects/contacts", headers=AUTH)
    limited = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert limited.status_code == 429
    body = limited.get_json()
    assert body["status"] == "error"
    assert body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert body["correlationId"]
    assert "Retry-After" not in limited.headers
    # Rolling window: the first call leaves it 10 s after it was made.
    clock.advance(6)
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200


def test_retry_after_knob_adds_the_header(client):
    client.patch("/_sandbox/portals/123", json={"limits": {"burst": 1}})
    set_knobs(client, retry_after_seconds=2)
    client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).headers["Retry-After"] == "2"


def test_daily_quota_runs_out_and_resets_at_midnight_in_the_portal_time_zone(client, clock):
    client.patch("/_sandbox/portals/123", json={"limits": {"daily": 2, "time_zone": "UTC"}})
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200
    clock.advance(20)
    last = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert last.headers["X-HubSpot-RateLimit-Daily-Remaining"] == "0"
    clock.advance(20)
    refused = client.get("/crm/v3/objects/contacts", headers=AUTH)
    assert refused.status_code == 429
    assert refused.get_json()["policyName"] == "DAILY"
    # 1_700_000_000 is 22:13:20 UTC; midnight is 6,400 s later.
    clock.advance(6_400)
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 200


def test_injected_responses_are_one_shot(client):
    set_knobs(
        client,
        inject=[
            {"status": 429, "policy_name": "DAILY", "path_contains": "/batch/"},
            {"status": 423},
        ],
    )
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 423
    limited = upsert_contacts(client, [("a@example.com", {})])
    assert limited.get_json()["policyName"] == "DAILY"
    assert upsert_contacts(client, [("a@example.com", {})]).status_code == 200


def test_shuffle_knob_reorders_batch_results_deterministically(client):
    set_knobs(client, shuffle_results=True, seed=1)
    emails = [f"c{i}@example.com" for i in range(20)]
    results = upsert_contacts(client, [(e, {}) for e in emails]).get_json()["results"]
    returned = [r["properties"]["email"] for r in results]
    assert sorted(returned) == sorted(emails)
    assert returned != emails


# ------------------------------------------------------------------ control


def test_call_log_records_method_path_status_and_input_count(client, clock):
    upsert_contacts(client, [("a@example.com", {}), ("b@example.com", {})])
    client.get("/crm/v3/objects/contacts?limit=5", headers=AUTH)
    calls = client.get("/_sandbox/calls?portal_id=123").get_json()["calls"]
    assert [(c["method"], c["path"], c["status"], c["inputs"]) for c in calls] == [
        ("POST", "/crm/v3/objects/contacts/batch/upsert", 200, 2),
        ("GET", "/crm/v3/objects/contacts", 200, None),
    ]
    assert calls[1]["query"] == "limit=5"
    assert calls[0]["time"] == clock.now
    assert TOKEN not in json.dumps(calls)


def test_user_edit_bumps_the_modified_date_without_counting_as_an_api_write(client, clock):
    [contact] = upsert_contacts(client, [("a@example.com", {"firstname": "A"})]).get_json()[
        "results"
    ]
    clock.advance(30)
    edited = client.patch(
        f"/_sandbox/portals/123/objects/contacts/{contact['id']}",
        json={"properties": {"firstname": "Alice"}},
    ).get_json()
    assert edited["properties"]["firstname"] == "Alice"
    assert edited["properties"]["lastmodifieddate"] > contact["properties"]["lastmodifieddate"]
    counters = client.get("/_sandbox/portals/123/counters").get_json()["objects"]["contacts"]
    assert counters["updates"] == 0


def test_reset_clears_one_portal_or_everything(client):
    upsert_contacts(client, [("a@example.com", {})])
    assert client.post("/_sandbox/reset", json={"portal_id": 123}).status_code == 200
    assert dump(client)["objects"]["contacts"] == []
    client.post("/_sandbox/reset", json={})
    assert client.get("/crm/v3/objects/contacts", headers=AUTH).status_code == 401
