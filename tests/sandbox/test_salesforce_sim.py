"""The Salesforce simulator against the reference (shared/reference/api-crms.md, section 2 and
the fidelity checklist in section 5 item 2).

Driven through Flask's test client with an injected clock, so sessions, JWT expiry and the
rolling API allocation are exact. Each test names the fact it checks.
"""

from __future__ import annotations

import json
import re

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sandbox.salesforce import create_app
from tests.clock import Clock

V = "/services/data/v66.0"
CLIENT = {"client_id": "3MVG9-consumer-key", "client_secret": "s3cr3t", "refresh_token": "5Aep-rt"}
USERNAME = "integration@example.com"


def _keypair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    return _keypair()


@pytest.fixture
def clock() -> Clock:
    return Clock(1_780_000_000.0)


@pytest.fixture
def client(clock, keys):
    client = create_app(clock=clock).test_client()
    created = client.post(
        "/_sandbox/orgs",
        json={**CLIENT, "org_id": "00D000000000001AAA", "jwt_username": USERNAME,
              "jwt_public_key_pem": keys[1]},
    )  # fmt: skip
    assert created.status_code == 201, created.get_json()
    return client


ORG = "00D000000000001AAA"


def refresh(client, **overrides):
    form = {"grant_type": "refresh_token", **CLIENT, **overrides}
    return client.post("/services/oauth2/token", data=form)


def auth(client) -> dict:
    response = refresh(client)
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.get_json()['access_token']}"}


@pytest.fixture
def headers(client) -> dict:
    return auth(client)


def contact(email: str, **fields) -> dict:
    return {"attributes": {"type": "Contact"}, "LastName": "Doe", "Email": email, **fields}


def create(client, headers, records, all_or_none=False):
    body = {"allOrNone": all_or_none, "records": records}
    return client.post(f"{V}/composite/sobjects", json=body, headers=headers)


def query(client, headers, soql, **kw):
    return client.get(f"{V}/query", query_string={"q": soql}, headers=headers, **kw)


def dump(client, sobject):
    return client.get(f"/_sandbox/orgs/{ORG}/dump").get_json()[sobject]


# ------------------------------------------------------------------ OAuth


def test_refresh_token_grant_answers_a_session_without_expires_in(client):
    response = refresh(client)
    body = response.get_json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer"
    assert body["instance_url"] == "http://localhost"  # the simulator's own base URL
    assert body["id"].endswith(f"/id/{ORG}/{body['id'].rsplit('/', 1)[1]}")
    assert body["issued_at"].isdigit()
    assert "expires_in" not in body and "refresh_token" not in body
    assert "Sforce-Limit-Info" not in response.headers


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"client_id": "unknown"}, "invalid_client_id"),
        ({"client_secret": "wrong"}, "invalid_client"),
        ({"refresh_token": "revoked"}, "invalid_grant"),
        ({"grant_type": "password"}, "unsupported_grant_type"),
    ],
)
def test_refused_grants_are_400_with_an_oauth_error(client, overrides, error):
    response = refresh(client, **overrides)
    assert response.status_code == 400
    assert response.get_json()["error"] == error
    assert response.get_json()["error_description"]


def assertion(private: str, clock: Clock, **claims) -> str:
    payload = {
        "iss": CLIENT["client_id"],
        "sub": USERNAME,
        "aud": "https://login.salesforce.com",  # a production org's (SF-OAUTH-JWT)
        "exp": int(clock()) + 180,
        **claims,
    }
    return jwt.encode(payload, private, algorithm="RS256")


def jwt_grant(client, token: str):
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": token}
    return client.post("/services/oauth2/token", data=form)


def test_jwt_bearer_grant_verifies_the_signature_and_returns_no_refresh_token(client, keys, clock):
    response = jwt_grant(client, assertion(keys[0], clock))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert "refresh_token" not in body
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    assert client.get(f"{V}/limits", headers=headers).status_code == 200


def test_jwt_with_another_key_a_wrong_audience_or_a_past_exp_is_invalid_grant(client, keys, clock):
    other_private, _ = _keypair()
    bad = [
        assertion(other_private, clock),
        assertion(keys[0], clock, aud="https://evil.example.com"),
        assertion(keys[0], clock, aud="http://localhost"),  # the host posted to is not it
        assertion(keys[0], clock, aud="https://test.salesforce.com"),  # a sandbox's
        assertion(keys[0], clock, exp=int(clock()) - 1),
        assertion(keys[0], clock, exp=int(clock()) + 3600),
        assertion(keys[0], clock, sub="someone@example.com"),
        "not-a-jwt",
    ]
    for token in bad:
        response = jwt_grant(client, token)
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_grant", response.get_json()


def test_a_sandbox_takes_test_salesforce_and_an_org_its_explicit_audience(keys, clock):
    client = create_app(clock=clock).test_client()
    body = {**CLIENT, "org_id": ORG, "jwt_username": USERNAME, "jwt_public_key_pem": keys[1],
            "sandbox": True, "jwt_audience": "https://acme.my.site.com/customers"}  # fmt: skip
    created = client.post("/_sandbox/orgs", json=body).get_json()
    assert (created["sandbox"], created["jwt_audience"]) == (True, body["jwt_audience"])
    for audience, status in [
        ("https://test.salesforce.com", 200),
        ("https://acme.my.site.com/customers", 200),
        ("https://login.salesforce.com", 400),
        ("http://localhost", 400),
    ]:
        response = jwt_grant(client, assertion(keys[0], clock, aud=audience))
        assert response.status_code == status, audience
        if status == 400:
            assert response.get_json() == {
                "error": "invalid_grant",
                "error_description": "audience is invalid",
            }


# ------------------------------------------------------------------ refresh token rotation


def rotating(clock):
    client = create_app(clock=clock).test_client()
    made = client.post(
        "/_sandbox/orgs", json={**CLIENT, "org_id": ORG, "rotate_refresh_tokens": True}
    )
    assert made.get_json()["rotate_refresh_tokens"] is True
    return client


def test_rotation_answers_a_new_refresh_token_and_spends_the_old(clock):
    client = rotating(clock)
    first = refresh(client).get_json()
    assert first["refresh_token"] and first["refresh_token"] != CLIENT["refresh_token"]
    second = refresh(client, refresh_token=first["refresh_token"]).get_json()
    assert second["refresh_token"] not in (first["refresh_token"], CLIENT["refresh_token"])
    headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert client.get(f"{V}/limits", headers=headers).status_code == 200


def test_reusing_a_spent_refresh_token_revokes_the_family(clock):
    client = rotating(clock)
    first = refresh(client).get_json()
    headers = {"Authorization": f"Bearer {first['access_token']}"}
    replay = refresh(client)  # the original token again: spent
    assert (replay.status_code, replay.get_json()["error"]) == (400, "invalid_grant")
    # Its current refresh token and every access token of the family are revoked.
    assert refresh(client, refresh_token=first["refresh_token"]).status_code == 400
    assert client.get(f"{V}/limits", headers=headers).status_code == 401
    # The merchant reconnects: a new refresh token works again.
    client.patch(f"/_sandbox/orgs/{ORG}", json={"refresh_token": "5Aep-new"})
    assert refresh(client, refresh_token="5Aep-new").status_code == 200


def test_without_rotation_the_refresh_token_is_reusable(client):
    for _ in range(2):
        response = refresh(client)
        assert response.status_code == 200 and "refresh_token" not in response.get_json()


# ------------------------------------------------------------------ sessions


def test_session_expires_after_the_org_session_timeout(client, clock, headers):
    assert client.get(f"{V}/limits", headers=headers).status_code == 200
    clock.advance(7199)
    assert client.get(f"{V}/limits", headers=headers).status_code == 200
    clock.advance(1)
    response = client.get(f"{V}/limits", headers=headers)
    assert response.status_code == 401
    assert response.get_json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_expire_sessions_revokes_every_session_issued_so_far(client, headers):
    assert client.post(f"/_sandbox/orgs/{ORG}/expire-sessions").status_code == 200
    assert client.get(f"{V}/limits", headers=headers).status_code == 401
    assert client.get(f"{V}/limits", headers=auth(client)).status_code == 200


def test_unknown_token_and_missing_header_are_401(client):
    assert client.get(f"{V}/limits").status_code == 401
    assert client.get(f"{V}/limits", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_api_versions_below_46_are_not_served(client, headers):
    assert client.get("/services/data/v45.0/limits", headers=headers).status_code == 404
    assert client.get("/services/data/v46.0/limits", headers=headers).status_code == 200
    listed = client.get("/services/data/").get_json()
    assert {"label": "v66.0", "url": "/services/data/v66.0", "version": "66.0"} in listed


# ------------------------------------------------------------------ upsert by external id


def test_upsert_by_external_id_201_then_200_then_300(clock, keys):
    client = create_app(clock=clock).test_client()
    override = {"Contact.Tandem_Contact_Key__c": {"unique": False}}
    client.post("/_sandbox/orgs", json={**CLIENT, "org_id": ORG, "field_overrides": override})
    headers = auth(client)
    url = f"{V}/sobjects/Contact/Tandem_Contact_Key__c/a@example.com"
    first = client.patch(url, json={"LastName": "A"}, headers=headers)
    assert first.status_code == 201
    assert first.get_json() == {
        "id": first.get_json()["id"],
        "success": True,
        "errors": [],
        "created": True,
    }
    assert first.get_json()["id"].startswith("003") and len(first.get_json()["id"]) == 18
    second = client.patch(url, json={"LastName": "B"}, headers=headers)
    assert second.status_code == 200
    assert second.get_json()["created"] is False
    assert second.get_json()["id"] == first.get_json()["id"]
    rep = client.post(
        f"/_sandbox/orgs/{ORG}/records/Contact",
        json={"LastName": "Dup", "Tandem_Contact_Key__c": "A@example.com"},
    )
    assert rep.status_code == 201
    third = client.patch(url, json={"LastName": "C"}, headers=headers)
    assert third.status_code == 300
    assert sorted(third.get_json()) == sorted(
        f"/services/data/v66.0/sobjects/Contact/{i}"
        for i in (first.get_json()["id"], rep.get_json()["Id"])
    )


def test_upsert_update_only_answers_404_instead_of_creating(client, headers):
    url = f"{V}/sobjects/Contact/Tandem_Contact_Key__c/new@example.com?updateOnly=true"
    response = client.patch(url, json={"LastName": "A"}, headers=headers)
    assert response.status_code == 404
    assert dump(client, "Contact") == []


def test_upsert_on_a_field_that_is_not_an_external_id_is_refused(client, headers):
    response = client.patch(f"{V}/sobjects/Contact/Email/a@example.com", json={}, headers=headers)
    assert response.status_code == 404
    assert response.get_json()[0]["errorCode"] == "NOT_FOUND"


def test_a_unique_external_id_refuses_a_second_record_with_the_same_value(client, headers):
    records = [contact("a@example.com", Tandem_Contact_Key__c="k1")]
    assert create(client, headers, records).get_json()[0]["success"]
    [item] = create(
        client, headers, [contact("b@example.com", Tandem_Contact_Key__c="K1")]
    ).get_json()
    assert not item["success"]
    assert item["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert "duplicates value on record with id: 003" in item["errors"][0]["message"]


# ------------------------------------------------------------------ collections


def test_collections_report_per_item_results_in_input_order(client, headers):
    records = [contact("a@example.com"), {"attributes": {"type": "Contact"}}, contact("c@x.com")]
    response = create(client, headers, records)
    assert response.status_code == 200
    items = response.get_json()
    assert [i["success"] for i in items] == [True, False, True]
    assert items[1]["errors"] == [
        {
            "statusCode": "REQUIRED_FIELD_MISSING",
            "message": "Required fields are missing: [LastName]",
            "fields": ["LastName"],
        }
    ]
    assert len(dump(client, "Contact")) == 2


def test_all_or_none_rolls_back_the_whole_call(client, headers):
    records = [contact("a@example.com"), contact("b@example.com", Shoe_Size__c=42)]
    items = create(client, headers, records, all_or_none=True).get_json()
    assert [i["success"] for i in items] == [False, False]
    assert items[0]["errors"][0]["statusCode"] == "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    assert items[1]["errors"][0]["statusCode"] == "INVALID_FIELD"
    assert dump(client, "Contact") == []


def test_more_than_200_records_is_a_400_error_array(client, headers):
    response = create(client, headers, [contact(f"c{i}@example.com") for i in range(201)])
    assert response.status_code == 400
    assert response.get_json()[0]["errorCode"] == "EXCEEDED_ID_LIMIT"
    assert dump(client, "Contact") == []


def test_collection_upsert_creates_updates_and_flags_duplicate_keys(client, headers):
    url = f"{V}/composite/sobjects/Opportunity/Tandem_Order_Id__c"
    opp = {"attributes": {"type": "Opportunity"}, "Name": "#1", "StageName": "Closed Won",
           "CloseDate": "2026-05-20", "Amount": 19.99}  # fmt: skip
    body = {"allOrNone": False, "records": [{**opp, "Tandem_Order_Id__c": "shop:1"}]}
    [first] = client.patch(url, json=body, headers=headers).get_json()
    assert first["created"] is True
    body["records"] = [
        {**opp, "Tandem_Order_Id__c": "shop:1", "Amount": 21},
        {**opp, "Tandem_Order_Id__c": "shop:2"},
        {**opp, "Tandem_Order_Id__c": "shop:2"},
    ]
    items = client.patch(url, json=body, headers=headers).get_json()
    assert items[0] == {"id": first["id"], "success": True, "errors": [], "created": False}
    assert [i["errors"][0]["statusCode"] for i in items[1:]] == ["DUPLICATE_EXTERNAL_ID"] * 2
    assert [o["Amount"] for o in dump(client, "Opportunity")] == [21]


def test_update_and_delete_by_id_report_missing_and_deleted_records(client, headers):
    [made] = create(client, headers, [contact("a@example.com")]).get_json()
    gone = client.delete(
        f"{V}/composite/sobjects", query_string={"ids": made["id"]}, headers=headers
    ).get_json()
    assert gone == [{"id": made["id"], "success": True, "errors": []}]
    unknown = "003000000000009AAA"
    body = {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": made["id"], "LastName": "X"},
            {"attributes": {"type": "Contact"}, "id": unknown, "LastName": "X"},
        ],
    }
    items = client.patch(f"{V}/composite/sobjects", json=body, headers=headers).get_json()
    assert [i["errors"][0]["statusCode"] for i in items] == [
        "ENTITY_IS_DELETED",
        "INVALID_CROSS_REFERENCE_KEY",
    ]
    again = client.delete(
        f"{V}/composite/sobjects", query_string={"ids": made["id"]}, headers=headers
    ).get_json()
    assert again[0]["errors"][0]["statusCode"] == "ENTITY_IS_DELETED"


def test_retrieve_returns_null_for_missing_ids(client, headers):
    [made] = create(client, headers, [contact("a@example.com", FirstName="Ann")]).get_json()
    response = client.get(
        f"{V}/composite/sobjects/Contact",
        query_string={"ids": f"{made['id']},003000000000009AAA", "fields": "Email,FirstName"},
        headers=headers,
    )
    first, missing = response.get_json()
    assert missing is None
    assert first["attributes"] == {
        "type": "Contact",
        "url": f"/services/data/v66.0/sobjects/Contact/{made['id']}",
    }
    assert (first["Id"], first["Email"], first["FirstName"]) == (made["id"], "a@example.com", "Ann")


def test_error_key_knob_switches_statusCode_to_errorCode(client, headers):
    client.post("/_sandbox/knobs", json={"collection_error_key": "errorCode"})
    [item] = create(client, headers, [{"attributes": {"type": "Contact"}}]).get_json()
    assert item["errors"][0]["errorCode"] == "REQUIRED_FIELD_MISSING"


def test_fault_values_fail_only_their_record(client, headers):
    client.post("/_sandbox/knobs", json={"fault_values": ["doomed@example.com"]})
    items = create(
        client, headers, [contact("ok@example.com"), contact("Doomed@Example.com")]
    ).get_json()
    assert items[0]["success"]
    assert items[1]["errors"][0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"


# ------------------------------------------------------------------ field rules


def test_required_and_unknown_fields_and_opportunity_requirements(client, headers):
    response = client.post(f"{V}/sobjects/Opportunity", json={"Name": "x"}, headers=headers)
    assert response.status_code == 400
    [error] = response.get_json()
    assert error["errorCode"] == "REQUIRED_FIELD_MISSING"
    assert error["fields"] == ["StageName", "CloseDate"]
    response = client.post(
        f"{V}/sobjects/Contact", json={"LastName": "x", "Nope__c": 1}, headers=headers
    )
    assert response.status_code == 400
    assert response.get_json()[0]["errorCode"] == "INVALID_FIELD"


def test_amounts_must_be_json_numbers_and_stay_exact(client, headers):
    base = {"Name": "x", "StageName": "Closed Won", "CloseDate": "2026-05-20"}
    as_text = client.post(
        f"{V}/sobjects/Opportunity", json={**base, "Amount": "10"}, headers=headers
    )
    assert as_text.status_code == 400
    assert as_text.get_json()[0]["errorCode"] == "JSON_PARSER_ERROR"
    raw = (
        '{"Name":"x","StageName":"Closed Won","CloseDate":"2026-05-20","Amount":12345678901234.57}'
    )
    made = client.post(
        f"{V}/sobjects/Opportunity",
        data=raw,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert made.status_code == 201
    text = query(client, headers, "SELECT Amount FROM Opportunity").get_data(as_text=True)
    assert '"Amount":12345678901234.57' in text
    summary = client.get(f"/_sandbox/orgs/{ORG}/summary").get_json()
    assert summary["orders"][0]["amount"] == "12345678901234.57"


def test_bad_dates_are_refused(client, headers):
    body = {"Name": "x", "StageName": "Closed Won", "CloseDate": "20/05/2026"}
    response = client.post(f"{V}/sobjects/Opportunity", json=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()[0]["errorCode"] == "JSON_PARSER_ERROR"


def test_read_only_fields_and_orgs_without_custom_fields(clock):
    client = create_app(clock=clock).test_client()
    overrides = {"Contact.Tandem_Email_Consent__c": {"updateable": False, "createable": False}}
    client.post("/_sandbox/orgs", json={**CLIENT, "org_id": ORG, "field_overrides": overrides})
    client.post(
        "/_sandbox/orgs",
        json={"client_id": "bare", "client_secret": "s", "refresh_token": "r",
              "custom_fields": False, "multi_currency": False},
    )  # fmt: skip
    headers = auth(client)
    [item] = create(
        client, headers, [contact("a@x.com", Tandem_Email_Consent__c="subscribed")]
    ).get_json()
    assert item["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    described = client.get(f"{V}/sobjects/Contact/describe", headers=headers).get_json()
    consent = next(f for f in described["fields"] if f["name"] == "Tandem_Email_Consent__c")
    assert (consent["createable"], consent["updateable"]) == (False, False)
    key = next(f for f in described["fields"] if f["name"] == "Tandem_Contact_Key__c")
    assert (key["externalId"], key["unique"], key["type"]) == (True, True, "string")

    bare = client.post(
        "/services/oauth2/token",
        data={"grant_type": "refresh_token", "client_id": "bare", "client_secret": "s",
              "refresh_token": "r"},
    ).get_json()  # fmt: skip
    bare_headers = {"Authorization": f"Bearer {bare['access_token']}"}
    names = {
        f["name"]
        for f in client.get(f"{V}/sobjects/Opportunity/describe", headers=bare_headers).get_json()[
            "fields"
        ]
    }
    assert "Amount" in names
    assert not {"Tandem_Order_Id__c", "CurrencyIsoCode"} & names


def test_contact_roles_need_live_opportunity_and_contact_and_one_primary(client, headers):
    opp = {"attributes": {"type": "Opportunity"}, "Name": "#1", "StageName": "Closed Won",
           "CloseDate": "2026-05-20"}  # fmt: skip
    o, a, b = create(client, headers, [opp, contact("a@x.com"), contact("b@x.com")]).get_json()
    role = {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": o["id"],
            "IsPrimary": True}  # fmt: skip
    items = create(
        client,
        headers,
        [
            {**role, "ContactId": a["id"]},
            {**role, "ContactId": b["id"]},
            {**role, "ContactId": "003000000000009AAA"},
        ],
    ).get_json()
    assert [i["success"] for i in items] == [True, True, False]
    assert items[2]["errors"][0]["statusCode"] == "INVALID_CROSS_REFERENCE_KEY"
    roles = dump(client, "OpportunityContactRole")
    assert [r["IsPrimary"] for r in roles] == [False, True]
    summary = client.get(f"/_sandbox/orgs/{ORG}/summary").get_json()
    assert summary["orders"][0]["contact_ids"] == [a["id"], b["id"]]


# ------------------------------------------------------------------ SOQL


def seed_contacts(client, headers, count: int) -> list[str]:
    ids = []
    for start in range(0, count, 200):
        records = [contact(f"c{i}@example.com") for i in range(start, min(count, start + 200))]
        ids += [i["id"] for i in create(client, headers, records).get_json()]
    return ids


def test_query_pages_with_next_records_url_at_the_batch_size(client, headers):
    ids = seed_contacts(client, headers, 450)
    options = {"Sforce-Query-Options": "batchSize=200"}
    soql = "SELECT Id, Email FROM Contact WHERE SystemModstamp >= 2020-01-01T00:00:00Z ORDER BY SystemModstamp, Id"
    page = query(client, {**headers, **options}, soql).get_json()
    seen, pages = [], 0
    while True:
        pages += 1
        assert page["totalSize"] == 450
        seen += [r["Id"] for r in page["records"]]
        if page["done"]:
            assert "nextRecordsUrl" not in page
            break
        assert re.fullmatch(r"/services/data/v66\.0/query/01g\w{15}-\d+", page["nextRecordsUrl"])
        page = client.get(page["nextRecordsUrl"], headers=headers).get_json()
    assert pages == 3
    assert seen == ids


def test_default_batch_is_2000(client, headers):
    seed_contacts(client, headers, 450)
    page = query(client, headers, "SELECT Id FROM Contact").get_json()
    assert page["done"] is True and len(page["records"]) == 450


def test_where_email_in_is_case_insensitive_and_skips_deleted_rows(client, headers):
    a, b, c = create(
        client,
        headers,
        [contact("Ann@Example.com"), contact("bob@example.com"), contact("o'hara@x.com")],
    ).get_json()
    client.delete(f"/_sandbox/orgs/{ORG}/records/Contact/{b['id']}")
    soql = "SELECT Id, Email FROM Contact WHERE Email IN ('ann@example.com', 'BOB@example.com', 'o\\'hara@x.com')"
    records = query(client, headers, soql).get_json()["records"]
    assert [r["Id"] for r in records] == [a["id"], c["id"]]
    assert records[0] == {
        "attributes": {
            "type": "Contact",
            "url": f"/services/data/v66.0/sobjects/Contact/{a['id']}",
        },
        "Id": a["id"],
        "Email": "Ann@Example.com",
    }
    everything = client.get(
        f"{V}/queryAll", query_string={"q": "SELECT Id, IsDeleted FROM Contact"}, headers=headers
    ).get_json()["records"]
    assert [r["IsDeleted"] for r in everything] == [False, True, False]


def test_datetime_filters_compare_system_modstamp(client, headers, clock):
    [old] = create(client, headers, [contact("old@x.com")]).get_json()
    clock.advance(60)
    [new] = create(client, headers, [contact("new@x.com")]).get_json()
    stamp = query(client, headers, f"SELECT SystemModstamp FROM Contact WHERE Id = '{new['id']}'")  # noqa: S608
    text = stamp.get_json()["records"][0]["SystemModstamp"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000", text)
    iso = text.replace(".000+0000", "Z")
    ge = query(client, headers, f"SELECT Id FROM Contact WHERE SystemModstamp >= {iso}")  # noqa: S608
    gt = query(client, headers, f"SELECT Id FROM Contact WHERE SystemModstamp > {iso}")  # noqa: S608
    assert [r["Id"] for r in ge.get_json()["records"]] == [new["id"]]
    assert gt.get_json()["records"] == []
    assert old["id"] != new["id"]


@pytest.mark.parametrize(
    ("soql", "code"),
    [
        ("SELECT Id FROM Contact WHERE Email LIKE 'a%'", "MALFORMED_QUERY"),
        # SOQL wants parentheses wherever AND and OR meet; NOT is outside the subset.
        ("SELECT Id FROM Contact WHERE Email = 'a' OR Email = 'b' AND Id = 'c'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE (Email = 'a' OR Email = 'b'", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE NOT Email = 'a'", "MALFORMED_QUERY"),
        ("SELECT COUNT() FROM Contact", "MALFORMED_QUERY"),
        ("SELECT Id FROM Contact WHERE SystemModstamp >= '2026-01-01T00:00:00Z'", "INVALID_FIELD"),
        ("SELECT Nope__c FROM Contact", "INVALID_FIELD"),
        ("SELECT Id FROM Nope", "INVALID_TYPE"),
        ("DELETE FROM Contact", "MALFORMED_QUERY"),
    ],
)
def test_queries_outside_the_subset_are_refused(client, headers, soql, code):
    response = query(client, headers, soql)
    assert response.status_code == 400
    assert response.get_json()[0]["errorCode"] == code


def test_order_by_desc_and_limit(client, headers):
    ids = seed_contacts(client, headers, 5)
    records = query(client, headers, "SELECT Id FROM Contact ORDER BY Email DESC LIMIT 2")
    assert [r["Id"] for r in records.get_json()["records"]] == [ids[4], ids[3]]


def test_or_with_a_parenthesised_and_pages_by_keyset(client, headers, clock):
    ids = seed_contacts(client, headers, 3)  # one second: equal SystemModstamps
    clock.advance(1)
    later = seed_contacts(client, headers, 2)
    soql = f"SELECT SystemModstamp FROM Contact WHERE Id = '{ids[0]}'"  # noqa: S608
    [first] = query(client, headers, soql).get_json()["records"]
    stamp = first["SystemModstamp"].replace(".000+0000", "Z")
    soql = (
        f"SELECT Id FROM Contact WHERE SystemModstamp > {stamp} OR "  # noqa: S608
        f"(SystemModstamp = {stamp} AND Id > '{ids[1]}') ORDER BY SystemModstamp, Id LIMIT 2"
    )
    page = query(client, headers, soql).get_json()
    assert [r["Id"] for r in page["records"]] == [ids[2], later[0]]
    assert (page["totalSize"], page["done"]) == (2, True)
    nested = (
        "SELECT Id FROM Contact WHERE (Email = 'c2@example.com' OR Email = 'c1@example.com') "  # noqa: S608
        f"AND Id != '{ids[1]}'"
    )
    found = query(client, headers, nested).get_json()["records"]
    assert [r["Id"] for r in found] == [ids[2], later[1]]


def test_a_query_locator_lives_two_days_and_the_legacy_idle_knob_expires_it(client, headers, clock):
    seed_contacts(client, headers, 450)
    options = {"Sforce-Query-Options": "batchSize=200"}
    page = query(client, {**headers, **options}, "SELECT Id FROM Contact").get_json()
    clock.advance(3600)  # idle an hour: still there (it was 15 minutes before API v56.0)
    fresh = auth(client)  # the session (2 h) is a separate matter
    second = client.get(page["nextRecordsUrl"], headers=fresh)
    assert second.status_code == 200
    clock.advance(2 * 86_400)
    gone = client.get(second.get_json()["nextRecordsUrl"], headers=auth(client))
    assert gone.get_json()[0]["errorCode"] == "INVALID_QUERY_LOCATOR"
    client.post("/_sandbox/knobs", json={"cursor_idle_seconds": 900})
    page = query(client, {**auth(client), **options}, "SELECT Id FROM Contact").get_json()
    clock.advance(901)
    idle = client.get(page["nextRecordsUrl"], headers=auth(client))
    assert (idle.status_code, idle.get_json()[0]["errorCode"]) == (400, "INVALID_QUERY_LOCATOR")


# ------------------------------------------------------------------ limits


def usage_of(response) -> tuple[int, int]:
    used, allocation = response.headers["Sforce-Limit-Info"].removeprefix("api-usage=").split("/")
    return int(used), int(allocation)


def test_every_rest_call_counts_once_in_sforce_limit_info(client, headers):
    first = client.get(f"{V}/limits", headers=headers)
    assert usage_of(first) == (1, 100000)
    collection = create(client, headers, [contact(f"c{i}@x.com") for i in range(50)])
    assert usage_of(collection) == (2, 100000)  # a collections call counts as one
    error = query(client, headers, "SELECT broken")
    assert error.status_code == 400 and usage_of(error) == (3, 100000)
    assert client.get(f"/_sandbox/orgs/{ORG}/usage").get_json() == {"used": 3, "max": 100000}


def test_over_the_allocation_is_403_request_limit_exceeded_until_the_window_rolls(
    client, headers, clock
):
    assert (
        client.patch(f"/_sandbox/orgs/{ORG}", json={"daily_limit": 10, "used": 9}).status_code
        == 200
    )
    assert client.get(f"{V}/limits", headers=headers).status_code == 200
    refused = client.get(f"{V}/limits", headers=headers)
    assert refused.status_code == 403
    assert refused.get_json() == [
        {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
    ]
    assert usage_of(refused) == (10, 10)
    clock.advance(86_400)  # the session is gone too by now: the token endpoint does not count
    assert client.get(f"{V}/limits", headers=auth(client)).status_code == 200


def test_injected_answers_are_one_shot(client, headers):
    knobs = {"inject": [{"status": 503, "path_contains": "/limits", "times": 2}]}
    assert client.post("/_sandbox/knobs", json=knobs).status_code == 200
    statuses = [client.get(f"{V}/limits", headers=headers).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


def test_an_applied_injection_does_the_work_then_loses_the_answer(client, headers):
    knobs = {"inject": [{"status": 500, "applied": True, "method": "POST"}]}
    assert client.post("/_sandbox/knobs", json=knobs).status_code == 200
    response = create(client, headers, [contact("a@example.com")])
    assert response.status_code == 500
    assert response.get_json()[0]["errorCode"] == "UNKNOWN_EXCEPTION"
    assert [c["Email"] for c in dump(client, "Contact")] == ["a@example.com"]  # it was done
    again = create(client, headers, [contact("a@example.com")])  # a blind resend duplicates
    assert again.status_code == 200 and len(dump(client, "Contact")) == 2


# ------------------------------------------------------------------ control API


def test_rep_edits_are_by_another_user_and_bump_the_modstamp(client, headers, clock):
    [made] = create(client, headers, [contact("a@x.com")]).get_json()
    api_user = dump(client, "Contact")[0]["LastModifiedById"]
    clock.advance(30)
    edited = client.patch(
        f"/_sandbox/orgs/{ORG}/records/Contact/{made['id']}", json={"FirstName": "Rep"}
    )
    assert edited.status_code == 200
    record = edited.get_json()
    assert record["LastModifiedById"] != api_user
    assert record["SystemModstamp"] > record["CreatedDate"]
    assert record["LastModifiedDate"] == record["SystemModstamp"]


def test_summary_has_the_crm_neutral_shape(client, headers):
    opp = {"attributes": {"type": "Opportunity"}, "Name": "#1", "StageName": "Closed Won",
           "CloseDate": "2026-05-20", "Amount": 19.9, "CurrencyIsoCode": "EUR",
           "Tandem_Order_Id__c": "shop:1"}  # fmt: skip
    o, a = create(client, headers, [opp, contact("a@x.com", FirstName="Ann")]).get_json()
    role = {"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": o["id"],
            "ContactId": a["id"], "IsPrimary": True}  # fmt: skip
    create(client, headers, [role])
    assert client.get(f"/_sandbox/orgs/{ORG}/summary").get_json() == {
        "contacts": [{"id": a["id"], "email": "a@x.com", "first_name": "Ann", "last_name": "Doe"}],
        "orders": [
            {
                "id": o["id"],
                "external_id": "shop:1",
                "amount": "19.9",
                "currency": "EUR",
                "contact_ids": [a["id"]],
                "line_items": None,
            }
        ],
    }


def test_call_log_names_org_and_records(client, headers):
    client.delete("/_sandbox/calls")
    create(client, headers, [contact("a@x.com")])
    [call] = client.get(f"/_sandbox/calls?org_id={ORG}").get_json()["calls"]
    assert (call["method"], call["path"], call["status"]) == (
        "POST",
        f"{V}/composite/sobjects",
        200,
    )
    assert call["records"] == [contact("a@x.com")]
    assert client.get("/_sandbox/calls?org_id=other").get_json()["calls"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("post", "/_sandbox/orgs", {"client_secret": "x"}),
        ("post", "/_sandbox/orgs", {**CLIENT, "client_id": "other", "daily_limit": -1}),
        ("post", "/_sandbox/orgs", {**CLIENT, "client_id": "o2", "jwt_public_key_pem": "nope"}),
        ("patch", f"/_sandbox/orgs/{ORG}", {"shoe_size": 1}),
        ("post", "/_sandbox/knobs", {"nope": 1}),
        ("post", f"/_sandbox/orgs/{ORG}/records/Contact", {"FirstName": "no last name"}),
    ],
)
def test_bad_control_input_is_400_with_a_message(client, method, path, body):
    response = getattr(client, method)(path, json=body)
    assert response.status_code == 400
    assert response.get_json()["error"]


def test_reset_forgets_every_org(client, headers):
    assert client.post("/_sandbox/reset").status_code == 200
    assert client.get(f"{V}/limits", headers=headers).status_code == 401
    assert client.get(f"/_sandbox/orgs/{ORG}/usage").status_code == 404


def test_apps_share_no_state(clock):
    one, two = create_app(clock=clock).test_client(), create_app(clock=clock).test_client()
    one.post("/_sandbox/orgs", json={**CLIENT, "org_id": ORG})
    assert two.get(f"/_sandbox/orgs/{ORG}/usage").status_code == 404
    assert json.loads(refresh(two).get_data())["error"] == "invalid_client_id"


def test_single_record_create_read_update_delete(client, headers):
    made = client.post(f"{V}/sobjects/Contact", json={"LastName": "A"}, headers=headers)
    assert made.status_code == 201
    record_id = made.get_json()["id"]
    url = f"{V}/sobjects/Contact/{record_id}"
    assert client.patch(url, json={"FirstName": "Ann"}, headers=headers).status_code == 204
    read = client.get(url, headers=headers).get_json()
    assert (read["FirstName"], read["LastName"], read["IsDeleted"]) == ("Ann", "A", False)
    assert read["CreatedDate"].endswith(".000+0000")
    assert client.get(f"{url}?fields=FirstName", headers=headers).get_json() == {
        "attributes": {
            "type": "Contact",
            "url": f"/services/data/v66.0/sobjects/Contact/{record_id}",
        },
        "Id": record_id,
        "FirstName": "Ann",
    }
    assert client.get(url[:-3], headers=headers).status_code == 200  # the 15-character id
    assert client.delete(url, headers=headers).status_code == 204
    gone = client.get(url, headers=headers)
    assert gone.status_code == 404
    assert gone.get_json()[0]["errorCode"] == "ENTITY_IS_DELETED"
    missing = client.get(f"{V}/sobjects/Contact/003000000000099AAA", headers=headers)
    assert missing.get_json()[0]["errorCode"] == "NOT_FOUND"


def test_a_body_that_is_not_json_is_json_parser_error(client, headers):
    response = client.post(
        f"{V}/sobjects/Contact",
        data="{not json",
        headers={**headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.get_json()[0]["errorCode"] == "JSON_PARSER_ERROR"


# ------------------------------------------------------------------ products, price books, orders


def sobject(kind: str, **fields) -> dict:
    return {"attributes": {"type": kind}, **fields}


def ok(items: list[dict]) -> list[str]:
    assert all(i["success"] for i in items), items
    return [i["id"] for i in items]


def standard_book(client, headers) -> str:
    soql = "SELECT Id, Name FROM Pricebook2 WHERE IsStandard = true"
    [book] = query(client, headers, soql).get_json()["records"]
    assert book["Name"] == "Standard Price Book"
    return book["Id"]


def catalogue(client, headers, price=10, currency="USD"):
    """(standard book, product, its standard entry)."""
    book = standard_book(client, headers)
    [product] = ok(
        create(client, headers, [sobject("Product2", Name="Mug", IsActive=True)]).get_json()
    )
    entry = sobject("PricebookEntry", Pricebook2Id=book, Product2Id=product, UnitPrice=price,
                    IsActive=True, CurrencyIsoCode=currency)  # fmt: skip
    [entry_id] = ok(create(client, headers, [entry]).get_json())
    return book, product, entry_id


def draft_order(client, headers, book, **fields) -> str:
    [account] = ok(
        create(client, headers, [sobject("Account", Name="Online store customers")]).get_json()
    )
    order = sobject("Order", AccountId=account, EffectiveDate="2026-05-20", Status="Draft",
                    Pricebook2Id=book, CurrencyIsoCode="USD", **fields)  # fmt: skip
    [order_id] = ok(create(client, headers, [order]).get_json())
    return order_id


def item(order_id, entry_id, quantity=1, price=10, **fields) -> dict:
    return sobject("OrderItem", OrderId=order_id, PricebookEntryId=entry_id, Quantity=quantity,
                   UnitPrice=price, **fields)  # fmt: skip


def test_every_org_has_one_standard_price_book_the_api_cannot_create(client, headers):
    book = standard_book(client, headers)
    assert book.startswith("01s")
    made = create(
        client, headers, [sobject("Pricebook2", Name="Another", IsStandard=True)]
    ).get_json()
    assert made[0]["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    [custom] = ok(
        create(client, headers, [sobject("Pricebook2", Name="Wholesale", IsActive=True)]).get_json()
    )
    assert query(client, headers, "SELECT Id FROM Pricebook2 WHERE IsStandard = false").get_json()[
        "records"
    ] == [
        {
            "attributes": {"type": "Pricebook2", "url": f"{V}/sobjects/Pricebook2/{custom}"},
            "Id": custom,
        }
    ]


def test_products_need_a_name_are_inactive_by_default_and_upsert_by_their_key(client, headers):
    [missing] = create(client, headers, [sobject("Product2", ProductCode="MUG")]).get_json()
    assert missing["errors"][0]["statusCode"] == "REQUIRED_FIELD_MISSING"
    body = {"Name": "Mug", "ProductCode": "MUG"}
    path = f"{V}/sobjects/Product2/Tandem_Product_Key__c/shop:v1"
    first = client.patch(path, json=body, headers=headers)
    again = client.patch(path, json={**body, "Name": "Big mug"}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.get_json()["id"].startswith("01t")
    [stored] = dump(client, "Product2")
    assert (stored["Name"], stored["IsActive"]) == ("Big mug", False)


def test_price_book_entries_are_unique_and_custom_books_need_a_standard_price(client, headers):
    book, product, _ = catalogue(client, headers)
    again = sobject("PricebookEntry", Pricebook2Id=book, Product2Id=product, UnitPrice=12,
                    CurrencyIsoCode="USD")  # fmt: skip
    [duplicate] = create(client, headers, [again]).get_json()
    assert duplicate["errors"][0]["statusCode"] == "DUPLICATE_VALUE"
    assert ok(
        create(client, headers, [{**again, "CurrencyIsoCode": "EUR"}]).get_json()
    )  # per currency
    [custom] = ok(
        create(client, headers, [sobject("Pricebook2", Name="Wholesale", IsActive=True)]).get_json()
    )
    in_custom = {**again, "Pricebook2Id": custom}
    assert ok(create(client, headers, [in_custom]).get_json())
    [no_standard] = create(client, headers, [{**in_custom, "CurrencyIsoCode": "GBP"}]).get_json()
    assert no_standard["errors"][0]["statusCode"] == "STANDARD_PRICE_NOT_DEFINED"
    soql = f"SELECT Id, Name, UnitPrice FROM PricebookEntry WHERE Product2Id IN ('{product}') AND IsActive = true"  # noqa: S608
    [active] = query(client, headers, soql).get_json()["records"]
    assert (active["Name"], active["UnitPrice"]) == ("Mug", 10)


def test_an_order_needs_account_date_and_draft_status(client, headers):
    book = standard_book(client, headers)
    [missing] = create(client, headers, [sobject("Order", Status="Draft")]).get_json()
    assert missing["errors"][0]["fields"] == ["AccountId", "EffectiveDate"]
    [account] = ok(create(client, headers, [sobject("Account", Name="Buyers")]).get_json())
    base = sobject("Order", AccountId=account, EffectiveDate="2026-05-20", Pricebook2Id=book)
    [active] = create(client, headers, [{**base, "Status": "Activated"}]).get_json()
    assert active["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    [bad] = create(client, headers, [{**base, "Status": "Shipped"}]).get_json()
    assert bad["errors"][0]["statusCode"] == "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST"
    [order_id] = ok(create(client, headers, [{**base, "Status": "Draft"}]).get_json())
    [order] = dump(client, "Order")
    assert (order_id[:3], order["StatusCode"], order["TotalAmount"]) == ("801", "Draft", 0)


def test_order_items_total_up_into_the_order(client, headers):
    book, product, entry = catalogue(client, headers, price=10)
    order_id = draft_order(client, headers, book)
    items = [item(order_id, entry, 2, 19.9), item(order_id, entry, 1, 0.1, TotalPrice=5)]
    [refused] = create(client, headers, items[1:]).get_json()  # TotalPrice is read-only
    assert refused["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    without_total = {k: v for k, v in items[1].items() if k != "TotalPrice"}
    first, second = ok(create(client, headers, [items[0], without_total]).get_json())
    soql = (
        f"SELECT Id, Product2Id, ListPrice, TotalPrice FROM OrderItem WHERE OrderId = '{order_id}'"  # noqa: S608
    )
    text = query(client, headers, soql).get_data(as_text=True)
    assert '"TotalPrice":39.80' in text and '"TotalPrice":0.10' in text
    assert f'"Product2Id":"{product}"' in text and '"ListPrice":10' in text
    order_text = query(client, headers, "SELECT TotalAmount FROM Order").get_data(as_text=True)
    assert '"TotalAmount":39.90' in order_text
    client.delete(f"{V}/composite/sobjects?ids={first}", headers=headers)
    assert '"TotalAmount":0.10' in query(client, headers, "SELECT TotalAmount FROM Order").get_data(
        as_text=True
    )
    assert second.startswith("802")


def test_order_items_must_use_the_orders_price_book_and_currency(client, headers):
    book, product, entry = catalogue(client, headers)
    [eur_entry] = ok(create(client, headers, [sobject("PricebookEntry", Pricebook2Id=book,
        Product2Id=product, UnitPrice=9, IsActive=True, CurrencyIsoCode="EUR")]).get_json())  # fmt: skip
    [custom] = ok(
        create(client, headers, [sobject("Pricebook2", Name="Wholesale", IsActive=True)]).get_json()
    )
    [other_entry] = ok(create(client, headers, [sobject("PricebookEntry", Pricebook2Id=custom,
        Product2Id=product, UnitPrice=8, IsActive=True, CurrencyIsoCode="USD")]).get_json())  # fmt: skip
    order_id = draft_order(client, headers, book)
    no_book = draft_order(client, headers, None)
    results = create(client, headers, [item(order_id, eur_entry), item(order_id, other_entry),
                                       item(no_book, entry)]).get_json()  # fmt: skip
    assert [r["errors"][0]["statusCode"] for r in results] == ["FIELD_INTEGRITY_EXCEPTION"] * 3
    assert "currency" in results[0]["errors"][0]["message"]
    assert results[1]["errors"][0]["fields"] == ["PricebookEntryId"]
    assert dump(client, "OrderItem") == []


def test_activation_needs_products_and_locks_them(client, headers):
    book, _, entry = catalogue(client, headers)
    order_id = draft_order(client, headers, book)
    url = f"{V}/sobjects/Order/{order_id}"
    empty = client.patch(url, json={"Status": "Activated"}, headers=headers)
    assert empty.get_json()[0]["errorCode"] == "FIELD_INTEGRITY_EXCEPTION"
    [line] = ok(create(client, headers, [item(order_id, entry)]).get_json())
    both = client.patch(url, json={"Status": "Activated", "Description": "x"}, headers=headers)
    assert both.status_code == 400  # Status is the only field an activation may change
    assert client.patch(url, json={"Status": "Activated"}, headers=headers).status_code == 204
    [order] = dump(client, "Order")
    assert (order["StatusCode"], order["ActivatedDate"] is not None) == ("Activated", True)
    [added] = create(client, headers, [item(order_id, entry)]).get_json()
    assert added["errors"][0]["statusCode"] == "FIELD_INTEGRITY_EXCEPTION"
    [deleted] = client.delete(f"{V}/composite/sobjects?ids={line}", headers=headers).get_json()
    assert not deleted["success"]
    assert client.patch(url, json={"Pricebook2Id": None}, headers=headers).status_code == 400
    assert client.patch(url, json={"Status": "Draft"}, headers=headers).status_code == 204


def test_orders_and_items_upsert_by_tandem_ids_resending_create_only_fields(client, headers):
    book, _, entry = catalogue(client, headers)
    [account] = ok(create(client, headers, [sobject("Account", Name="Buyers")]).get_json())
    order = {"AccountId": account, "EffectiveDate": "2026-05-20", "Status": "Draft",
             "Pricebook2Id": book, "CurrencyIsoCode": "USD"}  # fmt: skip
    path = f"{V}/sobjects/Order/Tandem_Order_Id__c/shop:1"
    order_id = client.patch(path, json=order, headers=headers).get_json()["id"]
    again = client.patch(path, json={**order, "Description": "paid"}, headers=headers)
    assert (again.status_code, again.get_json()["created"]) == (200, False)
    lines = {"allOrNone": True, "records": [
        {**item(order_id, entry, 2, 5), "Tandem_Line_Item_Id__c": "shop:1:1"},
        {**item(order_id, entry, 1, 7), "Tandem_Line_Item_Id__c": "shop:1:2"}]}  # fmt: skip
    url = f"{V}/composite/sobjects/OrderItem/Tandem_Line_Item_Id__c"
    first = client.patch(url, json=lines, headers=headers).get_json()
    lines["records"][0]["Quantity"] = 3
    second = client.patch(url, json=lines, headers=headers).get_json()
    assert [i["created"] for i in first + second] == [True, True, False, False]
    assert len(dump(client, "OrderItem")) == 2
    other = draft_order(client, headers, book)
    lines["records"][0]["OrderId"] = other  # OrderId is create-only
    [moved, _] = client.patch(url, json=lines, headers=headers).get_json()
    assert moved["errors"][0]["statusCode"] == "INVALID_FIELD_FOR_INSERT_UPDATE"
    assert '"TotalAmount":22.00' in query(
        client,
        headers,
        f"SELECT TotalAmount FROM Order WHERE Id = '{order_id}'",  # noqa: S608
    ).get_data(as_text=True)


def test_deleting_an_order_takes_its_items_along(client, headers):
    book, _, entry = catalogue(client, headers)
    order_id = draft_order(client, headers, book)
    ok(create(client, headers, [item(order_id, entry)]).get_json())
    assert client.delete(f"{V}/sobjects/Order/{order_id}", headers=headers).status_code == 204
    assert query(client, headers, "SELECT Id FROM OrderItem").get_json()["totalSize"] == 0


def test_summary_reads_orders_when_there_are_any(client, headers):
    book, _, entry = catalogue(client, headers)
    [a, b] = ok(create(client, headers, [contact("a@x.com"), contact("b@x.com")]).get_json())
    opp = sobject(
        "Opportunity", Name="#1", StageName="Closed Won", CloseDate="2026-05-20", Amount=3
    )
    ok(create(client, headers, [opp]).get_json())
    order_id = draft_order(client, headers, book, BillToContactId=a, ShipToContactId=b,
                           CustomerAuthorizedById=a, Tandem_Order_Id__c="shop:7")  # fmt: skip
    ok(create(client, headers, [item(order_id, entry, 2, 19.95), item(order_id, entry)]).get_json())
    summary = client.get(f"/_sandbox/orgs/{ORG}/summary").get_json()
    assert summary["orders"] == [
        {
            "id": order_id,
            "external_id": "shop:7",
            "amount": "49.90",
            "total_amount": "49.90",
            "currency": "USD",
            "contact_ids": [a, b],
            "line_items": 2,
        }
    ]
    # The store's total (with shipping and tax), once Tandem keeps it, is the neutral amount.
    edit = client.patch(
        f"/_sandbox/orgs/{ORG}/records/Order/{order_id}", json={"Tandem_Order_Total__c": 55}
    )
    assert edit.status_code == 200, edit.get_json()
    [row] = client.get(f"/_sandbox/orgs/{ORG}/summary").get_json()["orders"]
    assert (row["amount"], row["total_amount"]) == ("55", "49.90")
    opps = client.get(f"/_sandbox/orgs/{ORG}/summary?orders=Opportunity").get_json()["orders"]
    assert [(o["amount"], o["line_items"]) for o in opps] == [("3", None)]
