"""The Zoho CRM simulator against the reference (shared/reference/api-crms.md section 3 and the
section 5 fidelity checklist).

Driven through Flask's test client with an injected clock, so token expiry, Modified_Time and
the rolling credit window are exact. Each test names the fact it checks.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sandbox.zoho import create_app
from tests.clock import Clock

ORG = "60000001"
CLIENT = {"client_id": "1000.CLIENTID", "client_secret": "s3cret", "refresh_token": "1000.rt.rt"}


@pytest.fixture
def clock() -> Clock:
    return Clock(1_780_000_000.0)


@pytest.fixture
def app(clock):
    return create_app(clock=clock)


@pytest.fixture
def client(app):
    client = app.test_client()
    created = client.post("/_sandbox/orgs", json={"org_id": ORG, **CLIENT})
    assert created.status_code == 201, created.get_json()
    return client


def mint(client, **overrides):
    form = {"grant_type": "refresh_token", **CLIENT, **overrides}
    return client.post("/oauth/v2/token", data=form)


@pytest.fixture
def auth(client):
    response = mint(client)
    assert response.status_code == 200
    return {"Authorization": f"Zoho-oauthtoken {response.get_json()['access_token']}"}


def upsert(client, auth, module, records, **body):
    payload = {"data": records, "trigger": [], **body}
    return client.post(f"/crm/v8/{module}/upsert", json=payload, headers=auth)


def get(client, auth, module, headers=None, **params):
    params.setdefault("fields", "Email,Last_Name,Modified_Time")
    return client.get(f"/crm/v8/{module}", query_string=params, headers={**auth, **(headers or {})})


def knobs(client, **values):
    response = client.post("/_sandbox/knobs", json=values)
    assert response.status_code == 200, response.get_json()


def seed(client, count, module="Contacts", **fields):
    records = [{"Last_Name": f"Seed{i}", **fields} for i in range(count)]
    response = client.post(f"/_sandbox/orgs/{ORG}/records/{module}", json={"records": records})
    assert response.status_code == 201, response.get_json()
    return [r["id"] for r in response.get_json()["data"]]


def calls(client, path=""):
    log = client.get(f"/_sandbox/calls?org_id={ORG}").get_json()["calls"]
    return [c for c in log if path in c["path"]]


# ------------------------------------------------------------------ auth (3.1)


def test_token_answer_names_the_simulator_as_api_domain(client):
    body = mint(client).get_json()
    assert body["api_domain"] == "http://localhost"
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["access_token"].startswith("1000.")


def test_api_takes_zoho_oauthtoken_not_bearer(client, auth):
    token = auth["Authorization"].split()[1]
    assert get(client, {"Authorization": f"Bearer {token}"}, "Contacts").status_code == 401
    assert get(client, auth, "Contacts").status_code == 204


def test_token_expires_after_the_org_ttl(client, auth, clock):
    assert get(client, auth, "Contacts").status_code == 204
    clock.advance(3600)
    response = get(client, auth, "Contacts")
    assert response.status_code == 401
    assert response.get_json() == {
        "code": "INVALID_TOKEN",
        "details": {},
        "message": "invalid oauth token",
        "status": "error",
    }


def test_refused_refresh_answers_invalid_code_with_the_status_knob(client):
    wrong = mint(client, refresh_token="1000.other")
    assert (wrong.status_code, wrong.get_json()) == (400, {"error": "invalid_code"})
    assert mint(client, client_secret="nope").get_json() == {"error": "invalid_client"}
    knobs(client, token_error_status=200)
    assert mint(client, refresh_token="x").status_code == 200
    assert "access_token" not in mint(client, refresh_token="x").get_json()


def test_at_most_ten_tokens_per_ten_minutes(client, clock):
    for _ in range(10):
        assert "access_token" in mint(client).get_json()
    assert mint(client).get_json()["error"] == "Access Denied"
    clock.advance(601)
    assert "access_token" in mint(client).get_json()


def test_expire_tokens_stops_every_token_issued(client, auth):
    response = client.post(f"/_sandbox/orgs/{ORG}/expire-tokens")
    assert response.get_json() == {"expired": 1}
    assert get(client, auth, "Contacts").get_json()["code"] == "INVALID_TOKEN"


def test_scope_mismatch_knob(client, auth):
    knobs(client, scope_mismatch=True)
    response = get(client, auth, "Contacts")
    assert (response.status_code, response.get_json()["code"]) == (401, "OAUTH_SCOPE_MISMATCH")


# ------------------------------------------------------------------ writes (3.3, 3.5)


def test_upsert_inserts_then_updates_by_email(client, auth):
    first = upsert(client, auth, "Contacts", [{"Email": "a@example.com", "Last_Name": "A"}])
    assert first.status_code == 200
    [created] = first.get_json()["data"]
    assert (created["code"], created["action"], created["duplicate_field"]) == (
        "SUCCESS",
        "insert",
        None,
    )
    record_id = created["details"]["id"]
    assert len(record_id) == 19
    assert record_id.isdigit()
    second = upsert(
        client,
        auth,
        "Contacts",
        [{"Email": "A@Example.com", "First_Name": "Ann"}],
        duplicate_check_fields=["Email"],
    )
    [updated] = second.get_json()["data"]
    assert (updated["action"], updated["duplicate_field"]) == ("update", "Email")
    assert updated["details"]["id"] == record_id
    assert updated["message"] == "record updated"
    dump = client.get(f"/_sandbox/orgs/{ORG}/dump").get_json()["Contacts"]
    assert [(r["Email"], r["First_Name"], r["Full_Name"]) for r in dump] == [
        ("A@Example.com", "Ann", "Ann A")  # the new spelling is written
    ]


def test_upsert_deals_by_unique_custom_field(client, auth):
    deal = {"Deal_Name": "Order #1", "Stage": "Closed Won", "Tandem_Order_Id": "shop:1"}
    [first] = upsert(
        client, auth, "Deals", [deal], duplicate_check_fields=["Tandem_Order_Id"]
    ).get_json()["data"]
    [again] = upsert(
        client,
        auth,
        "Deals",
        [{**deal, "Deal_Name": "Order #1 (edited)"}],
        duplicate_check_fields=["Tandem_Order_Id"],
    ).get_json()["data"]
    assert (first["action"], again["action"]) == ("insert", "update")
    assert again["duplicate_field"] == "Tandem_Order_Id"
    assert again["details"]["id"] == first["details"]["id"]


def test_mandatory_fields_are_per_record_errors(client, auth):
    response = client.post(
        "/crm/v8/Deals", json={"data": [{"Deal_Name": "No stage"}]}, headers=auth
    )
    assert response.status_code == 400
    assert response.get_json()["data"] == [
        {
            "code": "MANDATORY_NOT_FOUND",
            "details": {"api_name": "Stage", "json_path": "$.data[0].Stage"},
            "message": "required field not found",
            "status": "error",
        }
    ]


def test_insert_of_a_taken_email_is_duplicate_data_naming_the_record(client, auth):
    [existing] = seed(client, 1, Email="taken@example.com")
    response = client.post(
        "/crm/v8/Contacts",
        json={"data": [{"Email": "TAKEN@example.com", "Last_Name": "B"}]},
        headers=auth,
    )
    [item] = response.get_json()["data"]
    assert item["code"] == "DUPLICATE_DATA"
    assert item["details"]["api_name"] == "Email"
    assert item["details"]["duplicate_record"]["id"] == existing
    assert item["details"]["duplicate_record"]["module"]["api_name"] == "Contacts"


def test_mixed_batch_is_207_with_results_in_input_order(client, auth):
    records = [
        {"Email": "ok1@example.com", "Last_Name": "One"},
        {"Email": "missing-name@example.com"},
        {"Email": "ok2@example.com", "Last_Name": "Two", "Shoe_Size": "42"},
        {"Email": "ok3@example.com", "Last_Name": "Three"},
    ]
    response = upsert(client, auth, "Contacts", records)
    assert response.status_code == 207
    codes = [(r["code"], r["details"].get("api_name")) for r in response.get_json()["data"]]
    assert codes == [
        ("SUCCESS", None),
        ("MANDATORY_NOT_FOUND", "Last_Name"),
        ("INVALID_DATA", "Shoe_Size"),
        ("SUCCESS", None),
    ]
    knobs(client, unknown_fields="ignore")
    assert upsert(client, auth, "Contacts", records[2:3]).status_code == 200


def test_more_than_100_records_is_limit_exceeded(client, auth):
    records = [{"Email": f"c{i}@example.com", "Last_Name": "X"} for i in range(101)]
    response = upsert(client, auth, "Contacts", records)
    assert (response.status_code, response.get_json()["code"]) == (400, "LIMIT_EXCEEDED")
    assert client.get(f"/_sandbox/orgs/{ORG}/dump").get_json()["Contacts"] == []


def test_amounts_must_be_json_numbers_and_stay_exact(client, auth):
    deal = {"Deal_Name": "D", "Stage": "Closed Won", "Currency": "EUR"}
    text = client.post(
        "/crm/v8/Deals", json={"data": [{**deal, "Amount": "12.50"}]}, headers=auth
    ).get_json()["data"][0]
    assert (text["code"], text["details"]["api_name"]) == ("INVALID_DATA", "Amount")
    exact = client.post(
        "/crm/v8/Deals",
        data='{"data": [{"Deal_Name": "D", "Stage": "Closed Won", "Amount": 0.10}]}',
        content_type="application/json",
        headers=auth,
    )
    assert exact.status_code == 201
    raw = get(client, auth, "Deals", fields="Amount").get_data(as_text=True)
    assert json.loads(raw, parse_float=Decimal)["data"][0]["Amount"] == Decimal("0.10")


def test_update_of_an_unknown_id_says_the_id_is_invalid(client, auth):
    response = client.put(
        "/crm/v8/Contacts", json={"data": [{"id": "4150868000009999999"}]}, headers=auth
    )
    [item] = response.get_json()["data"]
    assert response.status_code == 400
    assert item["code"] == "INVALID_DATA"
    assert item["details"]["api_name"] == "id"
    assert item["message"] == "the id given seems to be invalid"


def test_fault_values_refuse_one_record(client, auth):
    knobs(client, fault_values=["doomed@example.com"])
    response = upsert(
        client,
        auth,
        "Contacts",
        [
            {"Email": "fine@example.com", "Last_Name": "F"},
            {"Email": "doomed@example.com", "Last_Name": "D"},
        ],
    )
    assert response.status_code == 207
    assert [r["code"] for r in response.get_json()["data"]] == ["SUCCESS", "INVALID_DATA"]


def test_lookups_take_an_id_and_read_back_as_name_and_id(client, auth):
    [contact] = seed(client, 1, First_Name="Ann", Email="ann@example.com")
    deal = {"Deal_Name": "D", "Stage": "Closed Won", "Contact_Name": {"id": contact}}
    assert client.post("/crm/v8/Deals", json={"data": [deal]}, headers=auth).status_code == 201
    [record] = get(client, auth, "Deals", fields="Contact_Name,Owner").get_json()["data"]
    assert record["Contact_Name"] == {"name": "Ann Seed0", "id": contact}
    assert set(record["Owner"]) == {"name", "id", "email"}
    bad = {**deal, "Contact_Name": {"id": "123"}}
    [item] = client.post("/crm/v8/Deals", json={"data": [bad]}, headers=auth).get_json()["data"]
    assert (item["code"], item["details"]["api_name"]) == ("INVALID_DATA", "Contact_Name")


def test_delete_and_delete_again(client, auth):
    # delete-records.html: an id already deleted is INVALID_DATA "record not deleted".
    [record_id] = seed(client, 1)
    first = client.delete(f"/crm/v8/Contacts?ids={record_id}&wf_trigger=false", headers=auth)
    assert first.get_json()["data"][0]["code"] == "SUCCESS"
    again = client.delete(f"/crm/v8/Contacts?ids={record_id}", headers=auth)
    assert again.status_code == 400
    assert again.get_json()["data"] == [
        {
            "code": "INVALID_DATA",
            "details": {"id": record_id},
            "message": "record not deleted",
            "status": "error",
        }
    ]
    assert client.get(f"/_sandbox/orgs/{ORG}/dump").get_json()["Contacts"] == []
    # wf_trigger defaults to true: Zoho runs workflows on delete unless told not to.
    assert [c["triggers"] for c in calls(client, "/Contacts")] == [[], ["workflow"]]


def test_a_refused_delete_of_a_live_record_is_record_locked_and_the_rest_go(client, auth):
    kept, gone = seed(client, 2)
    knobs(client, fault_values=[kept])
    response = client.delete(f"/crm/v8/Contacts?ids={kept},{gone}", headers=auth)
    assert response.status_code == 207
    refused, deleted = response.get_json()["data"]
    assert (refused["code"], refused["details"], deleted["code"]) == (
        "RECORD_LOCKED",
        {"id": kept},
        "SUCCESS",
    )
    assert [c["id"] for c in client.get(f"/_sandbox/orgs/{ORG}/dump").get_json()["Contacts"]] == [
        kept
    ]


def _org_with(client, org_id, **extra):
    """A second org (its own OAuth client) and the headers of a token for it."""
    made = {"org_id": org_id, "client_id": f"c{org_id}", "client_secret": "s", "refresh_token": "r"}
    assert client.post("/_sandbox/orgs", json={**made, **extra}).status_code == 201
    token = mint(client, client_id=f"c{org_id}", client_secret="s", refresh_token="r")
    return {"Authorization": f"Zoho-oauthtoken {token.get_json()['access_token']}"}


def test_upsert_falls_through_to_the_other_unique_fields(client, auth):
    # upsert-records.html "How does the duplicate check work?": ["Email"] checks Email, then
    # every user-defined unique field; so a new email with a taken unique phone updates the
    # record holding that phone, answered as a success naming duplicate_field "Phone".
    headers = _org_with(client, "60000009", unique_fields={"Contacts": ["Phone"]})
    old = {"Email": "old@example.com", "Last_Name": "Old", "Phone": "+15550100"}
    [made] = upsert(client, headers, "Contacts", [old]).get_json()["data"]
    new = {"Email": "new@example.com", "Last_Name": "New", "Phone": "+15550100"}
    [matched] = upsert(
        client, headers, "Contacts", [new], duplicate_check_fields=["Email"]
    ).get_json()["data"]
    assert (matched["status"], matched["action"], matched["duplicate_field"]) == (
        "success",
        "update",
        "Phone",
    )
    assert matched["details"]["id"] == made["details"]["id"]
    [stored] = client.get("/_sandbox/orgs/60000009/dump").get_json()["Contacts"]
    assert (stored["Email"], stored["Last_Name"]) == ("new@example.com", "New")


def test_upsert_matched_by_email_with_another_records_phone_is_duplicate_data(client, auth):
    headers = _org_with(client, "60000009", unique_fields={"Contacts": ["Phone"]})
    people = [
        {"Email": "a@example.com", "Last_Name": "A", "Phone": "+15550101"},
        {"Email": "b@example.com", "Last_Name": "B", "Phone": "+15550102"},
    ]
    made = upsert(client, headers, "Contacts", people).get_json()["data"]
    clash = {"Email": "a@example.com", "Last_Name": "A", "Phone": "+15550102"}
    response = upsert(client, headers, "Contacts", [clash], duplicate_check_fields=["Email"])
    [item] = response.get_json()["data"]
    assert (response.status_code, item["code"], item["details"]["api_name"]) == (
        400,
        "DUPLICATE_DATA",
        "Phone",
    )
    assert item["details"]["duplicate_record"]["id"] == made[1]["details"]["id"]


def test_system_duplicate_check_fields_count_only_when_named(client, auth):
    # "If you do not specify system-defined duplicate check fields in the array, the system
    # will ignore them": a deal keyed by Tandem_Order_Id with a taken Deal_Name is new.
    deal = {"Deal_Name": "Order #1", "Stage": "Closed Won", "Tandem_Order_Id": "shop:1"}
    checks = {"duplicate_check_fields": ["Tandem_Order_Id"]}
    [first] = upsert(client, auth, "Deals", [deal], **checks).get_json()["data"]
    [second] = upsert(
        client, auth, "Deals", [{**deal, "Tandem_Order_Id": "shop:2"}], **checks
    ).get_json()["data"]
    assert (first["action"], second["action"], second["duplicate_field"]) == (
        "insert",
        "insert",
        None,
    )


def test_trigger_is_recorded_in_the_call_log(client, auth):
    record = {"Email": "t@example.com", "Last_Name": "T"}
    client.post("/crm/v8/Contacts/upsert", json={"data": [record]}, headers=auth)
    upsert(client, auth, "Contacts", [record])
    assert [c["triggers"] for c in calls(client, "/upsert")] == [
        ["workflow", "approval", "blueprint"],
        [],
    ]


# ------------------------------------------------------------------ reads (3.2)


def test_fields_is_required(client, auth):
    response = client.get("/crm/v8/Contacts", headers=auth)
    assert response.status_code == 400
    assert response.get_json()["code"] == "REQUIRED_PARAM_MISSING"
    assert response.get_json()["details"] == {"param": "fields"}


def test_nothing_matching_is_204_with_an_empty_body(client, auth):
    response = get(client, auth, "Contacts")
    assert (response.status_code, response.get_data()) == (204, b"")


@pytest.mark.parametrize("status", [204, 304])
def test_nothing_modified_since_is_204_or_304_by_the_knob(client, auth, clock, status):
    # status-codes.html documents 304 for If-Modified-Since; which one comes is UNCONFIRMED.
    seed(client, 1)
    knobs(client, not_modified_status=status)
    since = {"If-Modified-Since": datetime.fromtimestamp(clock.now + 5, UTC).isoformat()}
    response = get(client, auth, "Contacts", headers=since)
    assert (response.status_code, response.get_data()) == (status, b"")
    assert get(client, auth, "Contacts").status_code == 200  # without the header: the record


def test_page_stops_at_2000_and_page_token_goes_on(client, auth):
    ids = seed(client, 2050)
    tenth = get(client, auth, "Contacts", per_page=200, page=10, sort_order="asc")
    assert tenth.status_code == 200
    info = tenth.get_json()["info"]
    assert (info["count"], info["more_records"]) == (200, True)
    assert info["next_page_token"]
    eleventh = get(client, auth, "Contacts", per_page=200, page=11, sort_order="asc")
    assert eleventh.status_code == 400
    assert eleventh.get_json()["code"] == "DISCRETE_PAGINATION_LIMIT_EXCEEDED"

    seen, params = [], {"per_page": 200, "sort_order": "asc"}
    while True:
        body = get(client, auth, "Contacts", **params).get_json()
        seen += [r["id"] for r in body["data"]]
        if not body["info"]["more_records"]:
            break
        params["page_token"] = body["info"]["next_page_token"]
    assert seen == ids


def test_page_token_is_bound_to_the_query(client, auth):
    seed(client, 3)
    body = get(client, auth, "Contacts", per_page=2).get_json()
    token = body["info"]["next_page_token"]
    other = get(client, auth, "Contacts", per_page=2, fields="Email", page_token=token)
    assert other.get_json()["code"] == "TOKEN_BOUND_DATA_MISMATCH"
    same = get(client, auth, "Contacts", per_page=2, page_token=token).get_json()["info"]
    assert (same["count"], same["more_records"], same["next_page_token"]) == (1, False, None)


def test_if_modified_since_returns_records_modified_strictly_after(client, auth, clock):
    seed(client, 2)
    edited = seed(client, 1)[0]
    clock.advance(60)
    mark = datetime.fromtimestamp(clock.now, UTC).isoformat()
    clock.advance(60)
    patched = client.patch(
        f"/_sandbox/orgs/{ORG}/records/Contacts/{edited}", json={"First_Name": "E"}
    )
    assert patched.get_json()["data"][0]["Modified_By"]["name"] == "Riya Sales"
    response = get(
        client,
        auth,
        "Contacts",
        headers={"If-Modified-Since": mark},
        sort_by="Modified_Time",
        sort_order="asc",
    )
    [record] = response.get_json()["data"]
    assert record["id"] == edited
    assert record["Modified_Time"].endswith("+05:30")  # the org's offset, no milliseconds
    edit_second = datetime.fromtimestamp(clock.now, UTC).isoformat()
    assert (
        get(client, auth, "Contacts", headers={"If-Modified-Since": edit_second}).status_code == 204
    )


def test_get_by_ids_leaves_unknown_ids_out(client, auth):
    a, b = seed(client, 2)
    response = get(client, auth, "Contacts", ids=f"{a},4150868000009999999,{b}")
    assert sorted(r["id"] for r in response.get_json()["data"]) == sorted([a, b])


def test_field_metadata_marks_unique_fields_and_orgs_can_lack_tandem_fields(client, auth):
    fields = client.get("/crm/v8/settings/fields?module=Deals", headers=auth).get_json()["fields"]
    by_name = {f["api_name"]: f for f in fields}
    assert by_name["Tandem_Order_Id"]["unique"] == {"casesensitive": "false"}
    assert by_name["Deal_Name"]["unique"] == {}
    assert by_name["Amount"]["data_type"] == "currency"
    bare = {"org_id": "60000002", "client_id": "c2", "client_secret": "s2", "refresh_token": "r2"}
    assert client.post("/_sandbox/orgs", json={**bare, "custom_fields": False}).status_code == 201
    token = mint(client, client_id="c2", client_secret="s2", refresh_token="r2").get_json()
    headers = {"Authorization": f"Zoho-oauthtoken {token['access_token']}"}
    fields = client.get("/crm/v8/settings/fields?module=Deals", headers=headers).get_json()
    assert "Tandem_Order_Id" not in {f["api_name"] for f in fields["fields"]}
    assert "Deal_Name" in {f["api_name"] for f in fields["fields"]}


# ------------------------------------------------------------------ limits (3.4)


def test_credits_header_after_half_and_429_when_spent(client, auth):
    client.post(
        "/_sandbox/orgs",
        json={
            "org_id": "7",
            "client_id": "c7",
            "client_secret": "s",
            "refresh_token": "r",
            "credits": 12,
        },
    )
    token = mint(client, client_id="c7", client_secret="s", refresh_token="r").get_json()
    headers = {"Authorization": f"Zoho-oauthtoken {token['access_token']}"}
    records = [{"Email": f"c{i}@example.com", "Last_Name": "X"} for i in range(100)]
    first = upsert(client, headers, "Contacts", records)  # 100 records: 10 credits
    assert first.headers["X-API-CREDITS-REMAINING"] == "2"
    log = client.get("/_sandbox/calls?org_id=7").get_json()["calls"]
    assert (log[-1]["records"], log[-1]["credits"]) == (100, 10)
    get(client, headers, "Contacts")
    get(client, headers, "Contacts")
    refused = get(client, headers, "Contacts")
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "TOO_MANY_REQUESTS"
    assert "Retry-After" not in refused.headers


def test_credit_window_rolls_over_24_hours(client, auth, clock):
    client.post(
        "/_sandbox/orgs",
        json={
            "org_id": "8",
            "client_id": "c8",
            "client_secret": "s",
            "refresh_token": "r",
            "credits": 1,
            "token_ttl_seconds": 200_000,
        },
    )
    token = mint(client, client_id="c8", client_secret="s", refresh_token="r").get_json()
    headers = {"Authorization": f"Zoho-oauthtoken {token['access_token']}"}
    assert get(client, headers, "Contacts").status_code == 204
    assert get(client, headers, "Contacts").status_code == 429
    clock.advance(86_400)
    assert get(client, headers, "Contacts").status_code == 204


def test_credits_header_below_half_only_with_the_knob(client, auth):
    assert "X-API-CREDITS-REMAINING" not in get(client, auth, "Contacts").headers
    knobs(client, always_send_credits_header=True)
    assert get(client, auth, "Contacts").headers["X-API-CREDITS-REMAINING"] == "49998"


def test_calls_beyond_the_concurrency_limit_are_429(app, client, auth):
    account = app.extensions["zoho_simulator"].accounts[ORG]
    account.inflight = account.concurrency  # ten calls in flight
    response = get(client, auth, "Contacts")
    assert (response.status_code, response.get_json()["code"]) == (429, "TOO_MANY_REQUESTS")
    account.inflight = 0
    assert get(client, auth, "Contacts").status_code == 204


def test_injected_answers_are_one_shot(client, auth):
    knobs(client, inject=[{"status": 500, "times": 2, "path_contains": "/Contacts"}])
    assert get(client, auth, "Contacts").status_code == 500
    assert get(client, auth, "Deals").status_code == 204
    assert get(client, auth, "Contacts").status_code == 500
    assert get(client, auth, "Contacts").status_code == 204


# ------------------------------------------------------------------ control API


def test_summary_is_crm_neutral(client, auth):
    [contact] = seed(client, 1, Email="ann@example.com", First_Name="Ann")
    deal = {
        "Deal_Name": "Order #1",
        "Stage": "Closed Won",
        "Amount": 19.9,
        "Currency": "EUR",
        "Contact_Name": {"id": contact},
        "Tandem_Order_Id": "shop:1",
    }
    client.post(
        f"/_sandbox/orgs/{ORG}/records/Deals",
        json=json.loads(json.dumps(deal, default=str)) | {"Amount": 19.9},
    )
    summary = client.get(f"/_sandbox/orgs/{ORG}/summary").get_json()
    [order] = summary["orders"]
    assert summary["contacts"] == [
        {"id": contact, "email": "ann@example.com", "first_name": "Ann", "last_name": "Seed0"}
    ]
    assert order == {
        "id": order["id"],
        "external_id": "shop:1",
        "amount": "19.9",
        "currency": "EUR",
        "contact_ids": [contact],
        "line_items": None,
    }


def test_control_input_is_checked(client):
    assert client.post("/_sandbox/orgs", json={"client_id": "x"}).status_code == 400
    assert client.post("/_sandbox/orgs", json={"org_id": ORG, **CLIENT}).status_code == 409
    assert client.post("/_sandbox/knobs", json={"nope": 1}).status_code == 400
    assert client.post("/_sandbox/knobs", json={"not_modified_status": 200}).status_code == 400
    bad = client.post(
        f"/_sandbox/orgs/{ORG}/records/Contacts", json={"records": [{"Last_Name": "A"}, {}]}
    )
    assert bad.status_code == 400
    assert "MANDATORY_NOT_FOUND" in bad.get_json()["error"]
    assert client.get(f"/_sandbox/orgs/{ORG}/dump").get_json()["Contacts"] == []  # all or nothing
    assert client.get("/_sandbox/orgs/404/dump").status_code == 404


def test_reset_forgets_everything(client, auth):
    seed(client, 1)
    assert client.post("/_sandbox/reset").status_code == 200
    assert client.get(f"/_sandbox/orgs/{ORG}/dump").status_code == 404
    assert client.get("/_sandbox/calls").get_json() == {"calls": []}
    assert get(client, auth, "Contacts").status_code == 401


# ------------------------------------------------------------------ Products and Sales_Orders


def insert(client, auth, module, records):
    return client.post(f"/crm/v8/{module}", json={"data": records, "trigger": []}, headers=auth)


def product(client, auth, name="Mug", **fields):
    response = insert(client, auth, "Products", [{"Product_Name": name, **fields}])
    assert response.status_code == 201, response.get_json()
    return response.get_json()["data"][0]["details"]["id"]


def sales_order(client, auth, rows, **fields):
    record = {"Subject": "Order #1001", "Ordered_Items": rows, **fields}
    return insert(client, auth, "Sales_Orders", [record])


def read(client, auth, module, record_id):
    raw = client.get(f"/crm/v8/{module}/{record_id}", headers=auth).get_data(as_text=True)
    return json.loads(raw, parse_float=Decimal)["data"][0]


def test_products_need_a_name_default_to_active_and_upsert_by_their_key(client, auth):
    [missing] = insert(client, auth, "Products", [{"Product_Code": "MUG"}]).get_json()["data"]
    assert (missing["code"], missing["details"]["api_name"]) == (
        "MANDATORY_NOT_FOUND",
        "Product_Name",
    )
    made = {"Product_Name": "Mug", "Unit_Price": 9.5, "Tandem_Product_Key": "shop:v1"}
    [first] = upsert(
        client, auth, "Products", [made], duplicate_check_fields=["Tandem_Product_Key"]
    ).get_json()["data"]
    [again] = upsert(
        client, auth, "Products", [{**made, "Product_Name": "Big mug"}],
        duplicate_check_fields=["Tandem_Product_Key"],
    ).get_json()["data"]  # fmt: skip
    assert (first["action"], again["action"]) == ("insert", "update")
    assert again["details"]["id"] == first["details"]["id"]
    stored = read(client, auth, "Products", first["details"]["id"])
    assert (stored["Product_Name"], stored["Unit_Price"], stored["Product_Active"]) == (
        "Big mug",
        Decimal("9.5"),
        True,
    )
    fields = client.get("/crm/v8/settings/fields?module=Products", headers=auth).get_json()
    key = next(f for f in fields["fields"] if f["api_name"] == "Tandem_Product_Key")
    assert key["unique"] == {"casesensitive": "false"}


def test_a_sales_order_needs_a_subject_and_line_items_each_naming_a_product(client, auth):
    mug = product(client, auth)
    no_rows = insert(client, auth, "Sales_Orders", [{"Subject": "S"}]).get_json()["data"][0]
    assert no_rows["details"] == {
        "api_name": "Ordered_Items",
        "json_path": "$.data[0].Ordered_Items",
    }
    empty = sales_order(client, auth, []).get_json()["data"][0]
    assert (empty["code"], empty["details"]["api_name"]) == ("MANDATORY_NOT_FOUND", "Ordered_Items")
    no_subject = insert(
        client,
        auth,
        "Sales_Orders",
        [{"Ordered_Items": [{"Product_Name": {"id": mug}, "Quantity": 1}]}],
    ).get_json()["data"][0]
    assert no_subject["details"]["api_name"] == "Subject"
    no_product = sales_order(client, auth, [{"Quantity": 1}]).get_json()["data"][0]
    assert no_product["code"] == "MANDATORY_NOT_FOUND"
    assert no_product["details"]["json_path"] == "$.data[0].Ordered_Items[0].Product_Name"
    unknown = sales_order(
        client, auth, [{"Product_Name": {"id": mug}, "Quantity": 1},
                       {"Product_Name": {"id": "4150868000009999999"}, "Quantity": 1}]
    )  # fmt: skip
    assert unknown.status_code == 400
    [item] = unknown.get_json()["data"]
    assert (item["code"], item["details"]["api_name"]) == ("INVALID_DATA", "Product_Name")
    assert item["details"]["json_path"] == "$.data[0].Ordered_Items[1].Product_Name"
    assert client.get(f"/_sandbox/orgs/{ORG}/dump").get_json()["Sales_Orders"] == []


def test_zoho_computes_row_and_order_totals_and_reads_rows_back(client, auth):
    [contact] = seed(client, 1, First_Name="Ann")
    mug = product(client, auth, "Mug", Unit_Price=12.5)
    cap = product(client, auth, "Cap")
    rows = [
        {"Product_Name": {"id": mug}, "Quantity": 2, "Discount": 1, "Tax": 2.3},  # price 12.5
        {"Product_Name": {"id": cap}, "Quantity": 3, "List_Price": 0.1, "Total": 999},
    ]
    made = sales_order(
        client, auth, rows, Contact_Name={"id": contact}, Tax=1, Adjustment=-0.5,
        Grand_Total=1, Currency="EUR", Tandem_Order_Id="shop:1001",
    )  # fmt: skip
    assert made.status_code == 201, made.get_json()
    order = read(client, auth, "Sales_Orders", made.get_json()["data"][0]["details"]["id"])
    first, second = order["Ordered_Items"]
    assert first["Product_Name"] == {"name": "Mug", "id": mug}
    assert (first["List_Price"], first["Total"], first["Total_After_Discount"]) == (
        Decimal("12.5"),
        Decimal("25.00"),
        Decimal("24.00"),
    )
    assert first["Net_Total"] == Decimal("26.30")
    assert (second["Total"], second["Net_Total"]) == (Decimal("0.30"), Decimal("0.30"))  # not 999
    assert [r["Sequence_Number"] for r in order["Ordered_Items"]] == [1, 2]
    assert first["Parent_Id"] == {"name": "Order #1001", "id": order["id"]}
    assert first["id"] != second["id"] and first["id"].isdigit()
    assert (order["Sub_Total"], order["Grand_Total"]) == (Decimal("26.60"), Decimal("27.10"))
    assert order["Contact_Name"] == {"name": "Ann Seed0", "id": contact}


def so_with_two_rows(client, auth):
    mug, cap = (
        product(client, auth, "Mug", Unit_Price=10),
        product(client, auth, "Cap", Unit_Price=5),
    )
    rows = [
        {"Product_Name": {"id": mug}, "Quantity": 1},
        {"Product_Name": {"id": cap}, "Quantity": 1},
    ]
    order_id = sales_order(client, auth, rows).get_json()["data"][0]["details"]["id"]
    return (
        order_id,
        [r["id"] for r in read(client, auth, "Sales_Orders", order_id)["Ordered_Items"]],
        mug,
    )


def update(client, auth, module, record):
    return client.put(f"/crm/v8/{module}", json={"data": [record], "trigger": []}, headers=auth)


def test_subform_update_changes_rows_by_id_appends_new_ones_and_deletes_with_delete_key(
    client, auth
):
    order_id, (mug_row, cap_row), mug = so_with_two_rows(client, auth)
    rows = [
        {"id": mug_row, "Quantity": 3},
        {"Product_Name": {"id": mug}, "Quantity": 1, "List_Price": 2},
    ]
    assert (
        update(client, auth, "Sales_Orders", {"id": order_id, "Ordered_Items": rows}).status_code
        == 200
    )
    order = read(client, auth, "Sales_Orders", order_id)
    assert [(r["id"], r["Quantity"]) for r in order["Ordered_Items"][:2]] == [
        (mug_row, 3),
        (cap_row, 1),
    ]
    assert len(order["Ordered_Items"]) == 3  # the unnamed row is kept, the new one appended
    assert order["Grand_Total"] == Decimal("37.00")
    gone = [{"id": cap_row, "_delete": None}]
    update(client, auth, "Sales_Orders", {"id": order_id, "Ordered_Items": gone})
    order = read(client, auth, "Sales_Orders", order_id)
    assert cap_row not in [r["id"] for r in order["Ordered_Items"]]
    assert order["Sub_Total"] == Decimal("32.00")


def test_subform_update_refuses_unknown_row_ids_and_clearing_the_line_items(client, auth):
    order_id, _, _ = so_with_two_rows(client, auth)
    wrong = update(
        client,
        auth,
        "Sales_Orders",
        {"id": order_id, "Ordered_Items": [{"id": "1", "Quantity": 2}]},
    )
    [item] = wrong.get_json()["data"]
    assert (item["code"], item["details"]["json_path"]) == (
        "INVALID_DATA",
        "$.data[0].Ordered_Items[0].id",
    )
    cleared = update(client, auth, "Sales_Orders", {"id": order_id, "Ordered_Items": []})
    assert cleared.get_json()["data"][0]["code"] == "MANDATORY_NOT_FOUND"
    assert len(read(client, auth, "Sales_Orders", order_id)["Ordered_Items"]) == 2


def test_replace_knob_drops_rows_an_update_does_not_name(client, auth):
    knobs(client, subform_update="replace")
    order_id, (mug_row, _), mug = so_with_two_rows(client, auth)
    rows = [{"id": mug_row}, {"Product_Name": {"id": mug}, "Quantity": 4}]
    update(client, auth, "Sales_Orders", {"id": order_id, "Ordered_Items": rows})
    order = read(client, auth, "Sales_Orders", order_id)
    assert [r["Quantity"] for r in order["Ordered_Items"]] == [1, 4]
    assert order["Ordered_Items"][0]["id"] == mug_row
    assert order["Grand_Total"] == Decimal("50.00")


def test_sales_orders_upsert_by_tandem_order_id_and_default_to_subject(client, auth):
    mug = product(client, auth, Unit_Price=3)
    record = {"Subject": "Order #1", "Tandem_Order_Id": "shop:1",
              "Ordered_Items": [{"Product_Name": {"id": mug}, "Quantity": 1}]}  # fmt: skip
    checks = {"duplicate_check_fields": ["Tandem_Order_Id"]}
    [first] = upsert(client, auth, "Sales_Orders", [record], **checks).get_json()["data"]
    [again] = upsert(
        client, auth, "Sales_Orders", [{**record, "Subject": "Order #1 (paid)"}], **checks
    ).get_json()["data"]
    assert (first["action"], again["action"], again["duplicate_field"]) == (
        "insert",
        "update",
        "Tandem_Order_Id",
    )
    order = read(client, auth, "Sales_Orders", first["details"]["id"])
    # Rows sent again without ids are appended: a resend must name the rows it keeps.
    assert len(order["Ordered_Items"]) == 2
    [by_subject] = upsert(
        client,
        auth,
        "Sales_Orders",
        [{**record, "Subject": "Order #1 (paid)", "Tandem_Order_Id": "x"}],
    ).get_json()["data"]
    assert (by_subject["action"], by_subject["duplicate_field"]) == ("update", "Subject")


def test_subform_field_metadata(client, auth):
    fields = client.get("/crm/v8/settings/fields?module=Sales_Orders", headers=auth).get_json()
    by_name = {f["api_name"]: f for f in fields["fields"]}
    items = by_name["Ordered_Items"]
    assert (items["data_type"], items["json_type"], items["system_mandatory"]) == (
        "subform",
        "jsonarray",
        True,
    )
    assert items["subform"]["module"] == "Ordered_Items"
    assert by_name["Grand_Total"]["read_only"] is True
    assert "Tandem_Order_Id" in by_name
    rows = client.get("/crm/v8/settings/fields?module=Ordered_Items", headers=auth).get_json()
    rows = {f["api_name"]: f for f in rows["fields"]}
    assert rows["Net_Total"]["formula"]["return_type"] == "currency"
    assert rows["Product_Name"]["lookup"]["module"]["api_name"] == "Products"
    assert client.get("/crm/v8/Ordered_Items?fields=Quantity", headers=auth).status_code == 400


def test_summary_reads_sales_orders_when_there_are_any(client, auth):
    [contact] = seed(client, 1, Email="ann@example.com")
    deal = {"Deal_Name": "D", "Stage": "Closed Won", "Amount": 5}
    assert insert(client, auth, "Deals", [deal]).status_code == 201
    mug = product(client, auth, Unit_Price=4)
    rows = [
        {"Product_Name": {"id": mug}, "Quantity": 2},
        {"Product_Name": {"id": mug}, "Quantity": 1},
    ]
    made = sales_order(
        client, auth, rows, Contact_Name={"id": contact}, Currency="EUR", Tandem_Order_Id="shop:9"
    )
    order_id = made.get_json()["data"][0]["details"]["id"]
    summary = client.get(f"/_sandbox/orgs/{ORG}/summary").get_json()
    assert summary["orders"] == [
        {
            "id": order_id,
            "external_id": "shop:9",
            "amount": "12.00",
            "currency": "EUR",
            "contact_ids": [contact],
            "line_items": 2,
        }
    ]
    deals = client.get(f"/_sandbox/orgs/{ORG}/summary?orders=Deals").get_json()["orders"]
    assert [(d["amount"], d["line_items"]) for d in deals] == [("5", None)]
    assert client.get(f"/_sandbox/orgs/{ORG}/summary?orders=Leads").status_code == 400
