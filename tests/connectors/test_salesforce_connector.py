"""The Salesforce connector against the Salesforce simulator, served in-process on 127.0.0.1.

The simulator's clock is the test's clock, and the HttpClient's sleep advances it, so sessions
expire and waits pass exactly as long as the connector waits. The simulator serves the login
server and the instance on one port; its call log tells which requests were made.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.crm import MemoryTokenCache
from connectors.errors import (
    AuthExpiredError,
    ConfigurationError,
    PermanentError,
    RateLimitedError,
    RetriableError,
)
from connectors.http import HttpClient
from connectors.salesforce import (
    REQUIRED_SETUP,
    SalesforceConnector,
    api_usage,
    salesforce_policy,
    soql_literal,
)
from sandbox.salesforce import create_app
from sandbox.server import serve
from tests.clock import Clock, Sleeps

ORG = "00D000000000042AAA"
CLIENT_ID = "3MVG9-consumer-key-0123"
SECRET = "client-secret-9f8e7d6c5b4a"
REFRESH = "5Aep861-refresh-token-abcdef"
USERNAME = "integration@example.com"
KEY = "Tandem_Contact_Key__c"
REQUIRED = {
    "Contact": ["LastName", "Email", KEY, "Tandem_Email_Consent__c"],
    "Opportunity": ["Name", "Amount", "Tandem_Order_Id__c", "Tandem_Refunded_Amount__c"],
    "OpportunityContactRole": ["OpportunityId", "ContactId", "IsPrimary"],
}
EXTERNAL_IDS = {"Contact": KEY, "Opportunity": "Tandem_Order_Id__c"}


@pytest.fixture(scope="module")
def keys() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


START = 1_780_000_000.0


@pytest.fixture(scope="module")
def served():
    """One simulator for the module (stopping a server takes half a second); every test
    resets it and its clock."""
    clock = Clock(START)
    app = create_app(clock=clock)
    server = serve(app)
    yield app, server, clock
    server.stop()


@pytest.fixture
def clock(served) -> Clock:
    clock = served[2]
    clock.now = START
    return clock


@pytest.fixture
def sleeps(clock) -> Sleeps:
    return Sleeps(clock)


class Sim:
    def __init__(self, app, server) -> None:
        self.server = server
        self.control = app.test_client()

    @property
    def url(self) -> str:
        return self.server.url

    def org(self, **options) -> dict:
        body = {
            "org_id": ORG,
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "refresh_token": REFRESH,
            "jwt_username": USERNAME,
            **options,
        }
        response = self.control.post("/_sandbox/orgs", json=body)
        assert response.status_code == 201, response.get_json()
        return response.get_json()

    def calls(self, path_contains: str = "") -> list[dict]:
        log = self.control.get(f"/_sandbox/calls?org_id={ORG}").get_json()["calls"]
        return [c for c in log if path_contains in c["path"]]

    def dump(self, sobject: str) -> list[dict]:
        return self.control.get(f"/_sandbox/orgs/{ORG}/dump").get_json()[sobject]

    def live(self, sobject: str) -> list[dict]:
        return [r for r in self.dump(sobject) if not r["IsDeleted"]]

    def patch_org(self, **values) -> None:
        assert self.control.patch(f"/_sandbox/orgs/{ORG}", json=values).status_code == 200

    def knobs(self, **values) -> None:
        assert self.control.post("/_sandbox/knobs", json=values).status_code == 200

    def rep_create(self, sobject: str, **fields) -> dict:
        response = self.control.post(f"/_sandbox/orgs/{ORG}/records/{sobject}", json=fields)
        assert response.status_code == 201, response.get_json()
        return response.get_json()


@pytest.fixture
def sim(served, clock):
    app, server, _ = served
    simulator = Sim(app, server)
    assert simulator.control.post("/_sandbox/reset").status_code == 200
    return simulator


@pytest.fixture
def org(sim, keys) -> dict:
    return sim.org(jwt_public_key_pem=keys[1])


def make(sim, sleeps, clock, *, tokens=None, jwt_key=None, **kw) -> SalesforceConnector:
    http = HttpClient(
        salesforce_policy(),
        allow_loopback=True,
        sleep=sleeps.sleep,
        max_inline_wait=30.0,
        backoff_base=0.01,
    )
    auth = (
        {"jwt_username": USERNAME, "jwt_private_key": jwt_key}
        if jwt_key
        else {"client_secret": SECRET, "refresh_token": REFRESH}
    )
    return SalesforceConnector(
        http=http,
        tokens=tokens if tokens is not None else MemoryTokenCache(clock),
        login_url=sim.url,
        client_id=CLIENT_ID,
        clock=clock,
        **auth,
        **kw,
    )


@pytest.fixture
def tokens(clock) -> MemoryTokenCache:
    return MemoryTokenCache(clock)


@pytest.fixture
def sf(sim, org, sleeps, clock, tokens) -> SalesforceConnector:
    return make(sim, sleeps, clock, tokens=tokens)


def person(i: int | str, **extra) -> tuple[str, dict]:
    return f"p{i}@example.com", {"LastName": f"Person {i}", "FirstName": "P", **extra}


def order(number: int, **extra) -> tuple[str, dict]:
    return f"shop:{number}", {
        "Name": f"Order #{number}",
        "StageName": "Closed Won",
        "CloseDate": "2026-05-20",
        "Amount": Decimal("19.99"),
        "CurrencyIsoCode": "EUR",
        **extra,
    }


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"client_secret": SECRET}, "refresh_token"),
        ({"refresh_token": REFRESH}, "client_secret"),
        ({"jwt_username": USERNAME}, "jwt_private_key"),
        ({}, "client_secret, refresh_token"),
        ({"client_secret": SECRET, "refresh_token": REFRESH, "jwt_username": USERNAME}, "not both"),
    ],
)
def test_exactly_one_complete_auth_mode_is_required(kwargs, named, clock):
    http = HttpClient(salesforce_policy(), allow_loopback=True)
    with pytest.raises(ConfigurationError, match=named) as caught:
        SalesforceConnector(http=http, tokens=MemoryTokenCache(clock), client_id="c", **kwargs)
    assert SECRET not in str(caught.value) and REFRESH not in str(caught.value)


def test_a_jwt_key_that_is_not_pem_is_a_configuration_error(clock):
    http = HttpClient(salesforce_policy(), allow_loopback=True)
    with pytest.raises(ConfigurationError, match="PEM"):
        SalesforceConnector(
            http=http,
            tokens=MemoryTokenCache(clock),
            client_id="c",
            jwt_username=USERNAME,
            jwt_private_key="-----BEGIN nonsense-----",
        )


# ------------------------------------------------------------------ auth


def test_refresh_token_session_is_minted_once_for_many_calls(sf, sim, tokens):
    sf.upsert_contacts_by_email([person(1), person(2)])
    sf.get_objects("Contact", [r["Id"] for r in sim.dump("Contact")], ["Email"])
    assert tokens.minted == 1
    assert len(sim.calls("/services/oauth2/token")) == 1
    api_calls = sim.calls("/services/data/")
    assert len(api_calls) >= 3
    assert all(c["status"] == 200 for c in api_calls)


def test_jwt_bearer_auth(sim, org, sleeps, clock, keys, tokens):
    sf = make(sim, sleeps, clock, tokens=tokens, jwt_key=keys[0])
    [result] = sf.upsert_contacts_by_email([person(1)])
    assert result.ok and result.created
    assert tokens.minted == 1


def test_jwt_signed_with_a_key_the_org_does_not_know_is_a_configuration_error(
    sim, org, sleeps, clock
):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    sf = make(sim, sleeps, clock, jwt_key=pem)
    with pytest.raises(ConfigurationError, match="invalid_grant"):
        sf.upsert_contacts_by_email([person(1)])


def test_expired_sessions_are_refreshed_exactly_once(sf, sim, tokens):
    sf.upsert_contacts_by_email([person(1)])
    assert sim.control.post(f"/_sandbox/orgs/{ORG}/expire-sessions").status_code == 200
    [again] = sf.upsert_contacts_by_email([person(1)])
    assert again.ok and again.created is False
    assert tokens.minted == 2
    assert [c["status"] for c in sim.calls("/services/data/") if c["status"] == 401] == [401]


def test_session_timeout_passing_mints_a_new_session(sf, sim, tokens, clock):
    sf.upsert_contacts_by_email([person(1)])
    clock.advance(7200)
    sf.upsert_contacts_by_email([person(2)])
    assert tokens.minted == 2
    assert all(c["status"] != 401 for c in sim.calls())  # the cache knew before Salesforce said


def test_a_second_401_is_auth_expired(sf, sim, tokens):
    sim.knobs(inject=[{"status": 401, "times": 2}])
    with pytest.raises(AuthExpiredError, match="freshly minted session") as caught:
        sf.upsert_contacts_by_email([person(1)])
    assert tokens.minted == 2
    assert SECRET not in str(caught.value) and REFRESH not in str(caught.value)


def test_invalid_grant_is_a_configuration_error_without_secrets(sf, sim):
    sim.patch_org(refresh_token="a-new-one")  # the merchant revoked our refresh token
    with pytest.raises(ConfigurationError, match="reconnect") as caught:
        sf.upsert_contacts_by_email([person(1)])
    assert "invalid_grant" in str(caught.value)
    for secret in (SECRET, REFRESH):
        assert secret not in str(caught.value)


@pytest.mark.parametrize(
    "instance_url",
    ["https://evil.example.com", "http://na1.salesforce.com", "https://salesforce.com.evil.io"],
)
def test_an_instance_url_outside_salesforce_is_refused(sim, sleeps, clock, instance_url):
    sim.org(instance_url=instance_url)
    sf = make(sim, sleeps, clock)
    with pytest.raises(ConfigurationError, match="not a Salesforce host"):
        sf.upsert_contacts_by_email([person(1)])
    assert sim.calls("/services/data/") == []


@pytest.mark.parametrize(
    "instance_url",
    [
        "https://acme.my.salesforce.com",
        "https://acme--dev.sandbox.my.salesforce.com",
        "https://na1.salesforce.com/",
        "https://acme.lightning.force.com",
        "https://acme.my.salesforce.mil",
        "https://acme.my.sfcrmproducts.cn",
    ],
)
def test_salesforce_instance_urls_are_accepted(sf, instance_url):
    assert sf.check_instance_url(instance_url) == instance_url.rstrip("/")


def test_secrets_never_appear_in_exception_text(sf, sim):
    sf.upsert_contacts_by_email([person(1)])
    token = next(iter(sim.control.application.extensions["salesforce_simulator"].sessions))
    sim.knobs(inject=[{"status": 400, "error_code": "MALFORMED_QUERY", "message": token}])
    with pytest.raises(PermanentError) as caught:
        list(sf.changed_since("Contact", datetime(2020, 1, 1, tzinfo=UTC), ["Email"]))
    assert token not in str(caught.value)
    assert "***" in str(caught.value)


# ------------------------------------------------------------------ limits


def test_daily_allocation_exhausted_is_rate_limited_with_the_probe_wait(sf, sim, sleeps):
    sf.upsert_contacts_by_email([person(1)])
    sim.patch_org(daily_limit=100, used=100)
    with pytest.raises(RateLimitedError) as caught:
        sf.upsert_contacts_by_email([person(2)])
    assert not isinstance(caught.value, PermanentError)
    assert caught.value.retry_after == 900
    assert caught.value.status == 403
    assert "REQUEST_LIMIT_EXCEEDED" in str(caught.value)
    assert sleeps == []  # not blocked: the job is rescheduled


def test_concurrent_long_request_limit_waits_briefly_and_retries(sf, sim, sleeps):
    message = "ConcurrentPerOrgLongTxn Limit exceeded."
    sim.knobs(inject=[{"status": 403, "error_code": "REQUEST_LIMIT_EXCEEDED", "message": message}])
    [result] = sf.upsert_contacts_by_email([person(1)])
    assert result.ok
    assert sleeps == [30.0]


def test_other_403s_are_configuration_errors(sf, sim):
    sim.knobs(inject=[{"status": 403, "error_code": "INSUFFICIENT_ACCESS", "message": "no"}])
    with pytest.raises(ConfigurationError, match="INSUFFICIENT_ACCESS"):
        sf.upsert_contacts_by_email([person(1)])


def _response(header: str | None) -> requests.Response:
    response = requests.Response()
    response.status_code = 200
    if header is not None:
        response.headers["Sforce-Limit-Info"] = header
    return response


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("api-usage=18/15000", (18, 15000)),
        ("per-app-api-usage=17/250(appName=x), api-usage=18/15000", (18, 15000)),
        ("api-usage=25/100000; api-bursts=3/50", (25, 100000)),
        ("per-app-api-usage=17/250(appName=x)", None),
        ("", None),
        (None, None),
    ],
)
def test_api_usage_parses_the_limit_header(header, expected):
    assert api_usage(_response(header)) == expected


def test_usage_is_reported_from_every_response(sim, org, sleeps, clock):
    seen: list[tuple[int, int]] = []
    http = HttpClient(
        salesforce_policy(on_usage=lambda u, m: seen.append((u, m))), allow_loopback=True
    )
    sf = SalesforceConnector(
        http=http,
        tokens=MemoryTokenCache(clock),
        login_url=sim.url,
        client_id=CLIENT_ID,
        client_secret=SECRET,
        refresh_token=REFRESH,
        clock=clock,
    )
    sf.upsert_contacts_by_email([person(1), person(2)])
    assert seen == [(1, 100000), (2, 100000)]  # the adoption query, then one collection


# ------------------------------------------------------------------ contacts


def test_upsert_is_idempotent(sf, sim):
    inputs = [person(i) for i in range(3)]
    first = sf.upsert_contacts_by_email(inputs)
    second = sf.upsert_contacts_by_email(inputs)
    assert [r.created for r in first] == [True] * 3
    assert [r.created for r in second] == [False] * 3
    assert [r.id for r in first] == [r.id for r in second]
    assert [r.key for r in second] == [e for e, _ in inputs]
    contacts = sim.live("Contact")
    assert len(contacts) == 3
    assert sorted(c[KEY] for c in contacts) == sorted(e for e, _ in inputs)


def test_upserts_go_out_in_collections_of_200(sf, sim):
    results = sf.upsert_contacts_by_email([person(i) for i in range(450)])
    assert all(r.ok for r in results)
    writes = sim.calls("/composite/sobjects/Contact/")
    assert [len(c["records"]) for c in writes] == [200, 200, 50]
    assert all(r[KEY] == r["Email"].lower() for c in writes for r in c["records"])


def test_a_contact_a_sales_rep_created_is_adopted_by_email(sf, sim):
    rep = sim.rep_create("Contact", LastName="Rep", Email="Ann.Lee@Example.com")
    [result] = sf.upsert_contacts_by_email([("ann.lee@example.com", {"FirstName": "Ann"})])
    assert (result.ok, result.id, result.created) == (True, rep["Id"], False)
    [stored] = sim.live("Contact")
    assert stored[KEY] == "ann.lee@example.com"
    assert stored["FirstName"] == "Ann"
    [again] = sf.upsert_contacts_by_email([("ann.lee@example.com", {"FirstName": "Ann"})])
    assert (again.id, again.created) == (rep["Id"], False)
    assert len(sim.live("Contact")) == 1


def test_emails_with_quotes_are_escaped_in_soql(sf, sim):
    email = "o'hara\\x@example.com"
    assert soql_literal(email) == "'o\\'hara\\\\x@example.com'"
    sim.rep_create("Contact", LastName="Rep", Email="o'hara@example.com")
    [result] = sf.upsert_contacts_by_email([("O'Hara@example.com", {"LastName": "O'Hara"})])
    assert result.ok and result.created is False


def test_same_email_twice_is_merged_and_blank_email_fails_alone(sf, sim):
    results = sf.upsert_contacts_by_email(
        [("a@example.com", {"LastName": "A"}), ("  ", {}), ("A@EXAMPLE.com", {"FirstName": "Z"})]
    )
    assert [r.ok for r in results] == [True, False, True]
    assert results[0].id == results[2].id
    assert results[1].key == "  "
    [stored] = sim.live("Contact")
    assert (stored["LastName"], stored["FirstName"]) == ("A", "Z")


def test_one_refused_record_fails_alone_with_salesforce_code(sf, sim):
    sim.knobs(fault_values=["doomed@example.com"])
    inputs = [person(1), ("doomed@example.com", {"LastName": "D"}), person(2)]
    results = sf.upsert_contacts_by_email(inputs)
    assert [r.ok for r in results] == [True, False, True]
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in results[1].error
    assert results[1].details[0]["statusCode"] == "FIELD_CUSTOM_VALIDATION_EXCEPTION"
    assert len(sim.calls("/composite/sobjects/Contact/")) == 1
    assert len(sim.live("Contact")) == 2


def test_per_item_errors_under_error_code_are_read_too(sf, sim):
    sim.knobs(collection_error_key="errorCode")
    results = sf.upsert_contacts_by_email([person(1), ("x@example.com", {"Shoe__c": 1})])
    assert results[0].ok
    assert results[1].error.startswith("INVALID_FIELD")


def test_a_value_salesforce_cannot_read_fails_only_its_record(sf, sim):
    inputs = [person(i) for i in range(4)]
    inputs[2] = person(2, FirstName={"a": 1})  # an object where text goes
    results = sf.upsert_contacts_by_email(inputs)
    assert [r.ok for r in results] == [True, True, False, True]
    assert "JSON_PARSER_ERROR" in results[2].error
    assert len(sim.live("Contact")) == 3


def test_update_of_a_deleted_or_unknown_record_is_not_found(sf, sim):
    [a, b] = sf.upsert_contacts_by_email([person(1), person(2)])
    sim.control.delete(f"/_sandbox/orgs/{ORG}/records/Contact/{b.id}")
    results = sf.update_objects(
        "Contact",
        [(a.id, {"FirstName": "A"}), (b.id, {"FirstName": "B"}), ("003000000000099AAA", {})],
    )
    assert [r.ok for r in results] == [True, False, False]
    assert [r.not_found for r in results] == [False, True, True]
    assert [r.key for r in results] == [a.id, b.id, "003000000000099AAA"]
    account_missing = sf.update_objects("Contact", [(a.id, {"AccountId": "001000000000099AAA"})])
    assert not account_missing[0].ok and not account_missing[0].not_found


def test_archive_is_harmless_to_repeat(sf, sim):
    results = sf.upsert_contacts_by_email([person(1), person(2)])
    ids = [r.id for r in results]
    first = sf.archive_objects("Contact", ids)
    again = sf.archive_objects("Contact", ids)
    assert all(r.ok for r in first + again)
    assert [r.not_found for r in again] == [True, True]
    assert sim.live("Contact") == []


# ------------------------------------------------------------------ orders


def test_upsert_objects_by_order_id_keeps_amounts_exact(sf, sim):
    first = sf.upsert_objects("Opportunity", "Tandem_Order_Id__c", [order(1), order(2)])
    again = sf.upsert_objects(
        "Opportunity", "Tandem_Order_Id__c", [order(1, Amount=Decimal("1234567.89"))]
    )
    assert [r.created for r in first] == [True, True]
    assert (again[0].created, again[0].id) == (False, first[0].id)
    summary = sim.control.get(f"/_sandbox/orgs/{ORG}/summary").get_json()["orders"]
    assert {o["external_id"]: o["amount"] for o in summary} == {
        "shop:1": "1234567.89",
        "shop:2": "19.99",
    }
    # One record goes through collections too: one call either way, and one code path.
    writes = sim.calls("/composite/sobjects/Opportunity/Tandem_Order_Id__c")
    assert [len(c["records"]) for c in writes] == [2, 1]
    assert sim.calls("/sobjects/Opportunity/Tandem_Order_Id__c/") == []


def test_several_records_with_one_key_fail_that_input_without_following(sim, sleeps, clock):
    sim.org(field_overrides={"Opportunity.Tandem_Order_Id__c": {"unique": False}})
    sf = make(sim, sleeps, clock)
    _, fields = order(7)
    for _ in range(2):
        sim.rep_create(
            "Opportunity",
            **{k: v for k, v in fields.items() if k != "Amount"},
            Tandem_Order_Id__c="shop:7",
        )
    [result] = sf.upsert_objects("Opportunity", "Tandem_Order_Id__c", [order(7)])
    assert not result.ok
    assert result.error.startswith("DUPLICATE_EXTERNAL_ID")
    assert len(sim.live("Opportunity")) == 2
    assert [c["status"] for c in sim.calls("/services/data/")] == [200]  # a per-item error


def test_linking_orders_to_contacts_is_idempotent(sf, sim):
    contacts = sf.upsert_contacts_by_email([person(1), person(2)])
    orders = sf.upsert_objects("Opportunity", "Tandem_Order_Id__c", [order(1), order(2)])
    pairs = [(orders[0].id, contacts[0].id), (orders[1].id, contacts[1].id)]
    first = sf.link_orders_to_contacts(pairs)
    second = sf.link_orders_to_contacts([*pairs, pairs[0]])
    assert [r.created for r in first] == [True, True]
    assert [r.created for r in second] == [False, False, False]
    assert [r.id for r in second[:2]] == [r.id for r in first]
    assert [r.key for r in first] == [f"{o}->{c}" for o, c in pairs]
    roles = sim.live("OpportunityContactRole")
    assert len(roles) == 2
    assert all(r["IsPrimary"] for r in roles)
    summary = sim.control.get(f"/_sandbox/orgs/{ORG}/summary").get_json()["orders"]
    assert [o["contact_ids"] for o in summary] == [[contacts[0].id], [contacts[1].id]]


def test_linking_to_a_missing_contact_fails_only_that_pair(sf, sim):
    [contact] = sf.upsert_contacts_by_email([person(1)])
    [opp] = sf.upsert_objects("Opportunity", "Tandem_Order_Id__c", [order(1)])
    results = sf.link_orders_to_contacts([(opp.id, contact.id), (opp.id, "003000000000099AAA")])
    assert [r.ok for r in results] == [True, False]
    assert "INVALID_CROSS_REFERENCE_KEY" in results[1].error
    assert not results[1].not_found  # the role's lookup is wrong, not the role itself


# ------------------------------------------------------------------ reads


def test_changed_since_reads_every_batch_exactly_once(sim, org, sleeps, clock):
    sf = make(sim, sleeps, clock, query_batch_size=200)
    old = sf.upsert_contacts_by_email([person(f"old{i}") for i in range(3)])
    clock.advance(3600)
    since = datetime.fromtimestamp(clock(), tz=UTC)
    made = sf.upsert_contacts_by_email([person(i) for i in range(450)])
    sim.control.patch(f"/_sandbox/orgs/{ORG}/records/Contact/{old[0].id}", json={"FirstName": "R"})
    sim.control.delete("/_sandbox/calls")
    seen = [r["Id"] for r in sf.changed_since("Contact", since, ["Email", "FirstName"])]
    assert len(seen) == len(set(seen)) == 451
    assert set(seen) == {r.id for r in made} | {old[0].id}
    queries = sim.calls("/query")
    assert len(queries) == 3  # pages of 200, 200, 51, each a fresh query
    assert [c["path"] for c in queries] == ["/services/data/v66.0/query"] * 3  # no cursor
    assert "SystemModstamp+%3E%3D+" in queries[0]["query"]
    assert all("ORDER+BY+SystemModstamp%2C+Id+LIMIT+200" in q["query"] for q in queries)
    assert "+OR+%28SystemModstamp+%3D+" in queries[1]["query"]


def test_a_repeated_next_records_url_is_a_loop(sf, sim, monkeypatch):
    pages = iter(
        [
            {"done": False, "nextRecordsUrl": "/services/data/v66.0/query/01gX-200", "records": []},
            {"done": False, "nextRecordsUrl": "/services/data/v66.0/query/01gX-200", "records": []},
        ]
    )
    monkeypatch.setattr(sf, "_send", lambda *args, **kwargs: None)
    monkeypatch.setattr("connectors.salesforce._json", lambda response: next(pages))
    with pytest.raises(PermanentError, match="repeated"):
        list(sf.query("SELECT Id FROM Contact"))


def test_get_objects_drops_deleted_and_unknown_ids(sf, sim):
    [a, b] = sf.upsert_contacts_by_email([person(1), person(2)])
    sim.control.delete(f"/_sandbox/orgs/{ORG}/records/Contact/{b.id}")
    records = sf.get_objects("Contact", [a.id, b.id, "003000000000099AAA"], ["Email", KEY])
    assert [(r["Id"], r["Email"], r[KEY]) for r in records] == [
        (a.id, "p1@example.com", "p1@example.com")
    ]


# ------------------------------------------------------------------ prepare


def test_prepare_passes_on_a_well_set_up_org(sf):
    sf.prepare(REQUIRED, EXTERNAL_IDS)


def test_prepare_names_every_problem_at_once(sim, sleeps, clock):
    sim.org(
        field_overrides={
            "Contact.Tandem_Email_Consent__c": {"updateable": False},
            "Opportunity.Tandem_Order_Id__c": {"externalId": False, "unique": False},
            "Opportunity.Tandem_Refunded_Amount__c": {"absent": True},
        }
    )
    sf = make(sim, sleeps, clock)
    with pytest.raises(ConfigurationError) as caught:
        sf.prepare(REQUIRED, EXTERNAL_IDS)
    message = str(caught.value)
    assert "Contact.Tandem_Email_Consent__c is not updateable" in message
    assert "Opportunity.Tandem_Order_Id__c must be marked External ID and Unique" in message
    assert "Opportunity.Tandem_Refunded_Amount__c is missing" in message
    assert "OpportunityId" not in message  # create-only by design, not a problem
    assert len(sim.calls("/describe")) == 3


def test_prepare_on_an_org_without_custom_fields(sim, sleeps, clock):
    sim.org(custom_fields=False)
    sf = make(sim, sleeps, clock)
    with pytest.raises(ConfigurationError) as caught:
        sf.prepare(REQUIRED, EXTERNAL_IDS)
    message = str(caught.value)
    assert (
        f"Contact.{KEY} is missing: create it (custom field, Text(255), External ID, Unique)"
        in message
    )
    assert "Opportunity.Tandem_Order_Id__c is missing" in message


def test_required_setup_lists_every_custom_field():
    text = "\n".join(REQUIRED_SETUP)
    assert f"Contact.{KEY}: custom field, Text(255), External ID, Unique" in text
    assert "Opportunity.Tandem_Order_Id__c" in text
    assert "API Enabled" in text


# ------------------------------------------------------------------ login URL and JWT audience


def _connector(clock, login_url: str, *, allow_loopback: bool = True, **kw) -> SalesforceConnector:
    http = HttpClient(salesforce_policy(), allow_loopback=allow_loopback)
    auth = kw.pop("auth", {"client_secret": SECRET, "refresh_token": REFRESH})
    return SalesforceConnector(
        http=http,
        tokens=MemoryTokenCache(clock),
        login_url=login_url,
        client_id=CLIENT_ID,
        **auth,
        **kw,
    )


@pytest.mark.parametrize(
    ("login_url", "allow_loopback"),
    [
        ("http://login.salesforce.com", True),  # the secret would travel in clear
        ("https://evil.example.com", True),
        ("https://login.salesforce.com.evil.io", True),
        ("https://user:pw@login.salesforce.com", True),
        ("https://login.salesforce.com?x=1", True),
        ("http://127.0.0.1:5000", False),  # the sandbox, but this client may not go there
        ("http://10.0.0.5", True),
        ("", True),
    ],
)
def test_a_login_url_outside_salesforce_is_refused_at_construction(
    clock, login_url, allow_loopback
):
    with pytest.raises(ConfigurationError, match="login_url") as caught:
        _connector(clock, login_url, allow_loopback=allow_loopback)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize(
    "login_url",
    [
        "https://login.salesforce.com",
        "https://test.salesforce.com/",
        "https://acme.my.salesforce.com",
        "https://acme--dev.sandbox.my.salesforce.com",
        "http://127.0.0.1:5000",
        "http://localhost:5000",
    ],
)
def test_salesforce_and_loopback_login_urls_are_accepted(clock, login_url):
    _connector(clock, login_url)


@pytest.mark.parametrize(
    ("login_url", "audience"),
    [
        ("https://login.salesforce.com", "https://login.salesforce.com"),
        ("https://acme.my.salesforce.com", "https://login.salesforce.com"),
        ("https://test.salesforce.com", "https://test.salesforce.com"),
        ("https://acme--dev.sandbox.my.salesforce.com", "https://test.salesforce.com"),
        ("http://127.0.0.1:5000", "https://login.salesforce.com"),
    ],
)
def test_the_jwt_audience_is_the_login_server_not_the_token_host(clock, keys, login_url, audience):
    auth = {"jwt_username": USERNAME, "jwt_private_key": keys[0]}
    assert _connector(clock, login_url, auth=auth).jwt_audience == audience
    community = "https://acme.my.site.com/customers"
    explicit = _connector(clock, login_url, auth=auth, jwt_audience=community)
    assert explicit.jwt_audience == community


def test_the_simulator_refuses_its_own_host_as_jwt_audience_unless_told(sim, sleeps, clock, keys):
    sim.org(jwt_public_key_pem=keys[1])
    own_host = make(sim, sleeps, clock, jwt_key=keys[0], jwt_audience=sim.url)
    with pytest.raises(ConfigurationError, match="audience is invalid"):
        own_host.upsert_contacts_by_email([person(1)])
    [ok] = make(sim, sleeps, clock, jwt_key=keys[0]).upsert_contacts_by_email([person(1)])
    assert ok.ok  # login.salesforce.com, what a production org takes


def test_a_sandbox_org_takes_test_salesforce_and_an_explicit_audience(sim, sleeps, clock, keys):
    sim.org(jwt_public_key_pem=keys[1], sandbox=True, jwt_audience=sim.url)
    with pytest.raises(ConfigurationError, match="audience is invalid"):
        make(sim, sleeps, clock, jwt_key=keys[0]).upsert_contacts_by_email([person(1)])
    for audience in ("https://test.salesforce.com", sim.url):
        sf = make(sim, sleeps, clock, jwt_key=keys[0], jwt_audience=audience)
        assert sf.upsert_contacts_by_email([person(1)])[0].ok


# ------------------------------------------------------------------ refresh token rotation


def test_rotated_refresh_tokens_carry_the_next_refresh(sim, sleeps, clock):
    sim.org(rotate_refresh_tokens=True)
    tokens = MemoryTokenCache(clock)
    sf = make(sim, sleeps, clock, tokens=tokens)
    for i in range(3):
        assert sf.upsert_contacts_by_email([person(i)])[0].ok
        assert sim.control.post(f"/_sandbox/orgs/{ORG}/expire-sessions").status_code == 200
    assert tokens.minted == 3
    assert [c["status"] for c in sim.calls("/services/oauth2/token")] == [200, 200, 200]


def test_reusing_a_spent_refresh_token_revokes_the_family(sim, sleeps, clock):
    sim.org(rotate_refresh_tokens=True)
    sf = make(sim, sleeps, clock)
    sf.upsert_contacts_by_email([person(1)])  # REFRESH is spent now
    stale = make(sim, sleeps, clock)  # a second worker whose cache never saw the rotation
    with pytest.raises(ConfigurationError, match="invalid_grant") as caught:
        stale.upsert_contacts_by_email([person(2)])
    assert REFRESH not in str(caught.value)
    # The family is gone: the session and the rotated refresh token stop working too.
    with pytest.raises(ConfigurationError, match="reconnect"):
        sf.upsert_contacts_by_email([person(3)])


# ------------------------------------------------------------------ creates are never resent


def _lose_the_answer(sim, method: str, path: str = "/composite/sobjects") -> None:
    """The next ``method`` call is carried out, then answered 500 (the answer is lost)."""
    sim.knobs(inject=[{"status": 500, "applied": True, "method": method, "path_contains": path}])


def test_a_contact_role_create_whose_answer_was_lost_is_not_sent_twice(sf, sim):
    [contact] = sf.upsert_contacts_by_email([person(1)])
    [opp] = sf.upsert_objects("Opportunity", "Tandem_Order_Id__c", [order(1)])
    _lose_the_answer(sim, "POST")
    with pytest.raises(RetriableError, match="may have been applied"):
        sf.link_orders_to_contacts([(opp.id, contact.id)])
    creates = [c for c in sim.calls("/composite/sobjects") if c["method"] == "POST"]
    assert [c["status"] for c in creates] == [500]  # not resent
    [role] = sim.live("OpportunityContactRole")
    # The engine's retry: the role is found, nothing is created.
    [again] = sf.link_orders_to_contacts([(opp.id, contact.id)])
    assert (again.ok, again.created, again.id) == (True, False, role["Id"])
    assert len(sim.live("OpportunityContactRole")) == 1


def test_a_delete_whose_answer_was_lost_is_resent_and_reports_not_found(sf, sim):
    [a] = sf.upsert_contacts_by_email([person(1)])
    _lose_the_answer(sim, "DELETE")
    [result] = sf.archive_objects("Contact", [a.id])
    assert (result.ok, result.not_found, result.id) == (True, True, a.id)
    deletes = [c for c in sim.calls("/composite/sobjects") if c["method"] == "DELETE"]
    assert [c["status"] for c in deletes] == [500, 200]  # a delete is safe to resend


# ------------------------------------------------------------------ keyset reads


def test_changed_since_survives_a_slow_reader(sim, org, sleeps, clock):
    sf = make(sim, sleeps, clock, query_batch_size=200)
    made = sf.upsert_contacts_by_email([person(i) for i in range(450)])
    sim.knobs(cursor_idle_seconds=900)  # locators as they were before API v56.0
    seen = []
    for record in sf.changed_since("Contact", datetime(2020, 1, 1, tzinfo=UTC), ["Email"]):
        seen.append(record["Id"])
        if len(seen) % 200 == 0:
            clock.advance(3 * 86_400)  # longer than any locator lives
    assert seen == [r.id for r in sorted(made, key=lambda r: r.id)]
    assert all(c["status"] == 200 for c in sim.calls("/query"))


def test_a_record_changed_mid_read_comes_again_later_and_none_is_lost(sim, org, sleeps, clock):
    sf = make(sim, sleeps, clock, query_batch_size=200)
    made = sf.upsert_contacts_by_email([person(i) for i in range(450)])
    first_page_id, last_page_id = made[0].id, made[-1].id
    seen = []
    for record in sf.changed_since("Contact", datetime(2020, 1, 1, tzinfo=UTC), ["FirstName"]):
        seen.append((record["Id"], record["FirstName"]))
        if len(seen) == 200:
            clock.advance(5)
            for record_id in (first_page_id, last_page_id):
                sim.control.patch(
                    f"/_sandbox/orgs/{ORG}/records/Contact/{record_id}", json={"FirstName": "R"}
                )
    ids = [i for i, _ in seen]
    assert set(ids) == {r.id for r in made}
    assert ids.count(first_page_id) == 2  # read, then its change
    assert seen.count((last_page_id, "R")) == 1 and ids.count(last_page_id) == 1


def test_a_keyset_page_that_does_not_advance_is_a_loop(sim, org, sleeps, clock, monkeypatch):
    sf = make(sim, sleeps, clock, query_batch_size=1)
    page = [{"Id": "003000000000001AAA", "SystemModstamp": "2026-05-20T20:49:32.000+0000"}]
    monkeypatch.setattr(sf, "query", lambda soql: iter(page))
    with pytest.raises(PermanentError, match="did not advance"):
        list(sf.changed_since("Contact", datetime(2026, 1, 1), ["Email"]))


# ------------------------------------------------------------------ price books and orders


def _product(sf, key: str, name: str) -> str:
    [product] = sf.upsert_objects(
        "Product2", "Tandem_Product_Key__c", [(key, {"Name": name, "IsActive": True})]
    )
    assert product.ok, product.error
    return product.id


def _creates(sim) -> list[dict]:
    return [c for c in sim.calls("/composite/sobjects") if c["method"] == "POST"]


def test_orders_as_order_and_order_items(sf, sim):
    book = sf.standard_price_book()
    assert book.startswith("01s") and sf.standard_price_book() == book
    assert len(sim.calls("/query")) == 1  # cached on the instance
    mug = _product(sf, "shop:variant:1", "Mug")
    [entry] = sf.price_book_entries(book, [(mug, "USD", Decimal("12.50"))]).values()
    assert (entry.ok, entry.created) == (True, True)
    sim.control.delete("/_sandbox/calls")
    [again] = sf.price_book_entries(book, [(mug, "USD", Decimal("12.50"))]).values()
    assert (again.ok, again.created, again.id) == (True, False, entry.id)
    assert _creates(sim) == []  # a second call creates nothing
    account = sim.rep_create("Account", Name="Online store customers")
    [buyer] = sf.upsert_contacts_by_email([person(1)])
    [placed] = sf.upsert_objects(
        "Order",
        "Tandem_Order_Id__c",
        [
            (
                "shop:1001",
                {
                    "AccountId": account["Id"],
                    "EffectiveDate": "2026-05-20",
                    "Status": "Draft",
                    "Pricebook2Id": book,
                    "BillToContactId": buyer.id,
                },
            )
        ],
    )
    assert placed.ok and placed.created, placed.error
    lines = sf.upsert_objects(
        "OrderItem",
        "Tandem_Line_Item_Id__c",
        [
            (f"shop:1001:{n}", {"OrderId": placed.id, "PricebookEntryId": entry.id,
                                "Quantity": quantity, "UnitPrice": Decimal("12.50")})
            for n, quantity in ((1, 2), (2, 1))
        ],
    )  # fmt: skip
    assert [r.created for r in lines] == [True, True], [r.error for r in lines]
    [deleted] = sf.archive_objects("OrderItem", [lines[1].id])
    assert deleted.ok and not deleted.not_found
    summary = sim.control.get(f"/_sandbox/orgs/{ORG}/summary?orders=Order").get_json()
    assert summary["orders"] == [
        {
            "id": placed.id,
            "external_id": "shop:1001",
            "amount": "25.00",  # no Tandem_Order_Total__c written: the TotalAmount
            "total_amount": "25.00",  # 2 x 12.50; the deleted line no longer counts
            "currency": "USD",
            "contact_ids": [buyer.id],
            "line_items": 1,
        }
    ]


def test_price_book_entries_per_currency_keyed_as_asked(sf, sim):
    book = sf.standard_price_book()
    mug, cup = _product(sf, "k:mug", "Mug"), _product(sf, "k:cup", "Cup")
    wanted = [(mug, "USD", 10), (mug, "eur", 9.5), (cup, "USD", Decimal("3")), (mug, "USD", 11)]
    results = sf.price_book_entries(book, wanted)
    assert list(results) == [(mug, "USD"), (mug, "eur"), (cup, "USD")]
    assert all(r.ok and r.created for r in results.values())
    entries = {(e["Product2Id"], e["CurrencyIsoCode"]): e for e in sim.live("PricebookEntry")}
    assert entries[(mug, "EUR")]["UnitPrice"] == 9.5 and entries[(mug, "USD")]["UnitPrice"] == 10
    assert all(e["IsActive"] for e in entries.values())
    again = sf.price_book_entries(book, [(mug[:15], "EUR", 1)])
    assert again[(mug[:15], "EUR")].id == results[(mug, "eur")].id  # a 15-character id too


def test_price_book_entries_in_a_single_currency_org(sim, sleeps, clock):
    sim.org(multi_currency=False)
    sf = make(sim, sleeps, clock)
    book = sf.standard_price_book()
    mug = _product(sf, "k:mug", "Mug")
    first = sf.price_book_entries(book, [(mug, "USD", 10)])
    second = sf.price_book_entries(book, [(mug, "USD", 10), (mug, "EUR", 9)])
    assert first[(mug, "USD")].created is True
    assert {r.id for r in second.values()} == {first[(mug, "USD")].id}
    assert [r.created for r in second.values()] == [False, False]
    assert len(sim.calls("/describe")) == 1  # asked once per connector
    assert all("CurrencyIsoCode" not in str(c["records"]) for c in _creates(sim))
    told = make(sim, sleeps, clock, multi_currency=False)
    told.price_book_entries(book, [(mug, "USD", 10)])
    assert len(sim.calls("/describe")) == 1  # told: no describe


def test_a_price_book_entry_created_meanwhile_is_found_again(sf, sim, monkeypatch):
    book = sf.standard_price_book()
    mug = _product(sf, "k:mug", "Mug")
    # Another worker creates the entry after our query and before our create.
    real = sf._entries
    calls = []

    def racing(pricebook_id, products, multi):
        calls.append(products)
        if len(calls) == 1:
            sim.rep_create("PricebookEntry", Pricebook2Id=book, Product2Id=mug, UnitPrice=10,
                           IsActive=True, CurrencyIsoCode="USD")  # fmt: skip
            return {}
        return real(pricebook_id, products, multi)

    monkeypatch.setattr(sf, "_entries", racing)
    [result] = sf.price_book_entries(book, [(mug, "USD", 10)]).values()
    [entry] = sim.live("PricebookEntry")
    assert (result.ok, result.created, result.id) == (True, False, entry["Id"])
    assert len(calls) == 2


def test_a_price_book_entry_create_whose_answer_was_lost_is_found_on_retry(sf, sim):
    book = sf.standard_price_book()
    mug = _product(sf, "k:mug", "Mug")
    _lose_the_answer(sim, "POST")
    with pytest.raises(RetriableError):
        sf.price_book_entries(book, [(mug, "USD", 10)])
    [result] = sf.price_book_entries(book, [(mug, "USD", 10)]).values()
    [entry] = sim.live("PricebookEntry")
    assert (result.created, result.id) == (False, entry["Id"])


def test_an_inactive_price_book_entry_is_reactivated(sf, sim):
    book = sf.standard_price_book()
    mug = _product(sf, "k:mug", "Mug")
    made = sim.rep_create("PricebookEntry", Pricebook2Id=book, Product2Id=mug, UnitPrice=10,
                          IsActive=False, CurrencyIsoCode="USD")  # fmt: skip
    [result] = sf.price_book_entries(book, [(mug, "USD", 12)]).values()
    [entry] = sim.live("PricebookEntry")
    assert (result.id, result.created, entry["IsActive"]) == (made["Id"], False, True)
    assert entry["UnitPrice"] == 10  # the list price is left alone
