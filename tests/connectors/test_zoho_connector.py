"""The Zoho CRM connector against the Zoho simulator, served in-process on 127.0.0.1.

One port plays both Zoho hosts: the accounts server (token refresh) and the ``api_domain`` the
token answer names. The simulator's clock is the test's clock and the HttpClient's sleep
advances it; the simulator's call log tells which requests were made.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from connectors.crm import MemoryTokenCache
from connectors.errors import AuthExpiredError, ConfigurationError, PermanentError
from connectors.http import HttpClient
from connectors.zoho import (
    DATA_CENTRES,
    ZOHO_POLICY,
    ZohoConnector,
    accounts_url_for,
    credits_remaining,
    zoho_policy,
)
from sandbox.server import serve
from sandbox.zoho import create_app

ORG = "60000001"
CLIENT_ID = "1000.CLIENTID"
CLIENT_SECRET = "client-secret-9f8e7d6c5b4a"
REFRESH_TOKEN = "1000.refresh-0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Sleeps(list):
    """Records every wait the client asks for and moves the simulator's clock instead."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def sleep(self, seconds: float) -> None:
        self.append(seconds)
        self.clock.advance(seconds)


START = 1_780_000_000.0


@pytest.fixture(scope="module")
def served():
    """One simulator server for the module (stopping one takes half a second); every test
    resets it and its clock."""
    clock = Clock()
    app = create_app(clock=clock)
    server = serve(app)
    yield clock, server, app.test_client()
    server.stop()


@pytest.fixture
def clock(served) -> Clock:
    served[0].now = START
    return served[0]


@pytest.fixture
def sleeps(clock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def sim(served, clock):
    _, server, control = served
    assert control.post("/_sandbox/reset").status_code == 200
    org = {
        "org_id": ORG,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": REFRESH_TOKEN,
        # Phone made unique so that DUPLICATE_DATA (a match on another unique field) can occur.
        "unique_fields": {"Contacts": ["Phone"]},
    }
    assert control.post("/_sandbox/orgs", json=org).status_code == 201
    return server, control


def make_connector(
    sim, clock, sleeps, *, refresh_token=REFRESH_TOKEN, tokens=None, policy=ZOHO_POLICY
):
    server, _ = sim
    http = HttpClient(
        policy,
        allow_loopback=True,
        sleep=sleeps.sleep,
        backoff_base=0.5,
        jitter=lambda low, high: high,  # deterministic backoff: the ceiling
    )
    return ZohoConnector(
        http=http,
        tokens=tokens or MemoryTokenCache(clock),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        refresh_token=refresh_token,
        accounts_url=server.url,
        clock=clock,
    )


@pytest.fixture
def tokens(clock) -> MemoryTokenCache:
    return MemoryTokenCache(clock)


@pytest.fixture
def zoho(sim, clock, sleeps, tokens) -> ZohoConnector:
    return make_connector(sim, clock, sleeps, tokens=tokens)


def control(sim):
    return sim[1]


def knobs(sim, **values):
    assert control(sim).post("/_sandbox/knobs", json=values).status_code == 200


def calls(sim, path=""):
    log = control(sim).get(f"/_sandbox/calls?org_id={ORG}").get_json()["calls"]
    return [c for c in log if path in c["path"]]


def dump(sim, module="Contacts"):
    return control(sim).get(f"/_sandbox/orgs/{ORG}/dump").get_json()[module]


def seed(sim, records, module="Contacts"):
    response = control(sim).post(
        f"/_sandbox/orgs/{ORG}/records/{module}", json={"records": records}
    )
    assert response.status_code == 201, response.get_json()
    return [r["id"] for r in response.get_json()["data"]]


def contact(last: str, **fields):
    return {"Last_Name": last, **fields}


# ------------------------------------------------------------------ writes


def test_upsert_is_idempotent(zoho, sim):
    inputs = [(f"c{i}@example.com", contact(f"C{i}")) for i in range(150)]
    first = zoho.upsert_contacts_by_email(inputs)
    assert all(r.ok and r.created for r in first)
    assert [r.key for r in first] == [e for e, _ in inputs]
    second = zoho.upsert_contacts_by_email(inputs)
    assert [r.id for r in second] == [r.id for r in first]
    assert [r.created for r in second] == [False] * 150
    assert len(dump(sim)) == 150
    upserts = calls(sim, "/Contacts/upsert")
    assert [c["records"] for c in upserts] == [100, 50, 100, 50]
    assert {tuple(c["triggers"]) for c in upserts} == {()}  # Zoho's workflows never fire
    assert [c["credits"] for c in upserts] == [10, 5, 10, 5]


def test_same_email_in_one_call_is_merged(zoho, sim):
    results = zoho.upsert_contacts_by_email(
        [("a@example.com", contact("A")), ("A@EXAMPLE.com", {"First_Name": "Ann"}), ("  ", {})]
    )
    assert results[0].id == results[1].id
    assert [r.key for r in results] == ["a@example.com", "A@EXAMPLE.com", "  "]
    assert not results[2].ok
    assert "Email" in results[2].error
    [stored] = dump(sim)
    assert (stored["Email"], stored["First_Name"], stored["Last_Name"]) == (
        "a@example.com",
        "Ann",
        "A",
    )
    assert calls(sim, "/upsert")[0]["records"] == 1


def test_a_refused_record_fails_alone_with_zohos_code(zoho, sim):
    knobs(sim, fault_values=["doomed@example.com"])
    inputs = [(f"ok{i}@example.com", contact("X")) for i in range(5)]
    inputs[2] = ("doomed@example.com", contact("D"))
    inputs.append(("nameless@example.com", {}))
    results = zoho.upsert_contacts_by_email(inputs)
    failed = {r.key: r for r in results if not r.ok}
    assert set(failed) == {"doomed@example.com", "nameless@example.com"}
    assert failed["doomed@example.com"].error == "INVALID_DATA: invalid data (Email)"
    assert failed["nameless@example.com"].error.startswith("MANDATORY_NOT_FOUND")
    assert failed["nameless@example.com"].details["details"]["api_name"] == "Last_Name"
    assert len(dump(sim)) == 4
    assert [c["status"] for c in calls(sim, "/upsert")] == [207]


def test_all_records_refused_is_read_per_record_not_raised(zoho, sim):
    results = zoho.upsert_contacts_by_email([("a@example.com", {}), ("b@example.com", {})])
    assert [r.ok for r in results] == [False, False]
    assert calls(sim, "/upsert")[0]["status"] == 400


def test_duplicate_data_is_written_to_the_record_it_names(zoho, sim):
    [existing] = seed(sim, [contact("Old", Email="old@example.com", Phone="+15550100")])
    [result] = zoho.upsert_contacts_by_email(
        [("new@example.com", contact("New", Phone="+15550100"))]
    )
    assert (result.ok, result.id, result.created) == (True, existing, False)
    [stored] = dump(sim)
    assert (stored["Email"], stored["Last_Name"]) == ("new@example.com", "New")
    assert [c["method"] for c in calls(sim, "/crm/")] == ["POST", "PUT"]


def test_update_of_a_deleted_record_is_not_found(zoho, sim):
    [a] = zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    [b] = zoho.upsert_contacts_by_email([("b@example.com", contact("B"))])
    zoho.archive_objects("Contacts", [b.id])
    results = zoho.update_objects("Contacts", [(a.id, {"First_Name": "Ann"}), (b.id, {})])
    assert (results[0].ok, results[0].created) == (True, False)
    assert (results[1].ok, results[1].not_found) == (False, True)
    zoho.archive_objects("Contacts", [b.id])  # already deleted: not an error


def test_upsert_deals_by_order_id_keeps_amounts_exact(zoho, sim):
    [person] = zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    deal = {
        "Deal_Name": "Order #1001",
        "Stage": "Closed Won",
        "Amount": Decimal("19.90"),
        "Currency": "EUR",
        "Closing_Date": "2026-05-02",
        "Contact_Name": {"id": person.id},
    }
    [first] = zoho.upsert_objects("Deals", "Tandem_Order_Id", [("shop:1001", deal)])
    [again] = zoho.upsert_objects(
        "Deals", "Tandem_Order_Id", [("shop:1001", {**deal, "Amount": Decimal("0.10")})]
    )
    assert (first.created, again.created, again.id) == (True, False, first.id)
    summary = control(sim).get(f"/_sandbox/orgs/{ORG}/summary").get_json()
    assert summary["orders"] == [
        {
            "id": first.id,
            "external_id": "shop:1001",
            "amount": "0.10",
            "currency": "EUR",
            "contact_ids": [person.id],
            "line_items": None,
        }
    ]
    [read] = zoho.get_objects("Deals", [first.id, "4150868000009999999"], ["Amount"])
    assert read["Amount"] == Decimal("0.10")


# ------------------------------------------------------------------ auth


def test_token_is_minted_once_and_refreshed_once_after_expiry(zoho, sim, tokens):
    for i in range(3):
        zoho.upsert_contacts_by_email([(f"c{i}@example.com", contact("C"))])
    assert tokens.minted == 1
    assert len(calls(sim, "/oauth/v2/token")) == 1
    control(sim).post(f"/_sandbox/orgs/{ORG}/expire-tokens")
    [result] = zoho.upsert_contacts_by_email([("late@example.com", contact("L"))])
    assert result.ok
    assert tokens.minted == 2
    assert [c["status"] for c in calls(sim, "/upsert")] == [200, 200, 200, 401, 200]


def test_a_token_refused_twice_is_auth_expired(zoho, sim):
    knobs(sim, inject=[{"status": 401, "code": "INVALID_TOKEN", "times": 2}])
    with pytest.raises(AuthExpiredError, match="freshly minted"):
        zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    assert len(calls(sim, "/oauth/v2/token")) == 2


def test_scope_mismatch_is_configuration(zoho, sim):
    knobs(sim, scope_mismatch=True)
    with pytest.raises(ConfigurationError, match="OAUTH_SCOPE_MISMATCH"):
        zoho.get_objects("Contacts", ["1"], ["Email"])


@pytest.mark.parametrize("status", [400, 200])
def test_refused_refresh_token_is_configuration(sim, clock, sleeps, status):
    knobs(sim, token_error_status=status)
    zoho = make_connector(sim, clock, sleeps, refresh_token="1000.revoked")
    with pytest.raises(ConfigurationError, match="reconnect") as caught:
        zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    assert "invalid_code" in str(caught.value)
    assert "1000.revoked" not in str(caught.value)


def test_an_api_domain_that_is_not_zohos_is_refused(zoho, sim):
    knobs(sim, api_domain="http://169.254.169.254")
    with pytest.raises(ConfigurationError, match="not a Zoho CRM API host"):
        zoho.get_objects("Contacts", ["1"], ["Email"])
    assert calls(sim, "/crm/") == []


def test_known_api_hosts_are_accepted_and_others_refused(zoho):
    assert zoho._checked_api_domain("https://www.zohoapis.eu") == "https://www.zohoapis.eu"
    for forged in (
        "https://www.zohoapis.eu.evil.example",
        "http://www.zohoapis.com",
        "https://user@www.zohoapis.com",
        "https://www.zohoapis.com/../x",
    ):
        with pytest.raises(ConfigurationError):
            zoho._checked_api_domain(forged)


def test_data_centres():
    assert accounts_url_for("eu") == "https://accounts.zoho.eu"
    assert DATA_CENTRES["ca"] == ("https://accounts.zohocloud.ca", "www.zohoapis.ca")
    with pytest.raises(ConfigurationError, match=r"com\.au, com\.cn"):
        accounts_url_for("mars")


def test_secrets_never_reach_exceptions_or_logs(zoho, sim, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    access = tokens.get(lambda: pytest.fail("the cached token is fresh")).value
    knobs(sim, inject=[{"status": 401, "times": 2}])
    with pytest.raises(AuthExpiredError) as expired:
        zoho.update_objects("Contacts", [("1", {})])
    knobs(sim, inject=[{"status": 400, "code": "INVALID_DATA"}])
    with pytest.raises(PermanentError) as refused:
        zoho.update_objects("Contacts", [("1", {})])
    texts = [str(expired.value), str(refused.value), str(refused.value.details), caplog.text]
    assert caplog.records
    for secret in (CLIENT_SECRET, REFRESH_TOKEN, access):
        assert all(secret not in text for text in texts)


# ------------------------------------------------------------------ limits


def test_429_is_backed_off_and_retried(zoho, sim, sleeps):
    zoho.get_objects("Contacts", ["1"], ["Email"])  # mint first
    knobs(sim, inject=[{"status": 429, "code": "TOO_MANY_REQUESTS", "times": 2}])
    [result] = zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    assert result.ok
    assert sleeps == [0.5, 1.0]  # no Retry-After from Zoho: exponential backoff
    assert [c["status"] for c in calls(sim, "/upsert")] == [429, 429, 200]


def test_credits_remaining_reads_the_header(sim, clock, sleeps):
    knobs(sim, always_send_credits_header=True)
    seen = []
    zoho = make_connector(sim, clock, sleeps, policy=zoho_policy(observe=seen.append))
    zoho.get_objects("Contacts", ["1"], ["Email"])
    assert [credits_remaining(r) for r in seen] == [None, 49_999]  # token answer, then API


# ------------------------------------------------------------------ reads


def test_changed_since_reads_past_2000_exactly_once(zoho, sim, clock):
    ids = seed(sim, [contact(f"S{i}") for i in range(2050)])
    clock.advance(5)
    [late] = zoho.upsert_contacts_by_email([("late@example.com", contact("Late"))])
    seen = [r["id"] for r in zoho.changed_since("Contacts", datetime(2020, 1, 1), ["Last_Name"])]
    assert seen == [*ids, late.id]  # oldest change first, each once
    reads = calls(sim, "/crm/v8/Contacts")
    gets = [c for c in reads if c["method"] == "GET"]
    assert len(gets) == 11
    assert "page=1" in gets[0]["query"]
    assert all("page_token=" in c["query"] for c in gets[1:])
    assert not any(re.search(r"(^|&)page=", c["query"]) for c in gets[1:])


def test_changed_since_filters_by_if_modified_since(zoho, sim, clock):
    old = seed(sim, [contact("Old")])
    clock.advance(60)
    since = datetime.fromtimestamp(clock.now, UTC)
    clock.advance(1)
    control(sim).patch(f"/_sandbox/orgs/{ORG}/records/Contacts/{old[0]}", json={"First_Name": "E"})
    [record] = zoho.changed_since("Contacts", since, ["First_Name"])
    assert (record["id"], record["First_Name"]) == (old[0], "E")
    assert "Modified_Time" in record
    clock.advance(10)
    assert list(zoho.changed_since("Contacts", datetime.fromtimestamp(clock.now, UTC), [])) == []


def test_changed_since_stops_on_a_repeated_page_token(zoho, sim, monkeypatch):
    seed(sim, [contact(f"S{i}") for i in range(3)])
    pages = iter(
        [
            {"data": [{"id": "1"}], "info": {"more_records": True, "next_page_token": "t"}},
            {"data": [{"id": "2"}], "info": {"more_records": True, "next_page_token": "t"}},
        ]
    )

    class Page:
        status_code = 200

        def __init__(self, body):
            import json

            self.content = json.dumps(body).encode()

    monkeypatch.setattr(zoho, "_call", lambda *a, **k: Page(next(pages)))
    with pytest.raises(PermanentError, match="repeated the page token"):
        list(zoho.changed_since("Contacts", datetime(2020, 1, 1), []))


# ------------------------------------------------------------------ connect-time check


def test_prepare_names_every_missing_field(sim, clock, sleeps):
    bare = {
        "org_id": "60000002",
        "client_id": "bare",
        "client_secret": "bare-secret",
        "refresh_token": "bare-rt",
        "custom_fields": False,
    }
    assert control(sim).post("/_sandbox/orgs", json=bare).status_code == 201
    server, _ = sim
    zoho = ZohoConnector(
        http=HttpClient(ZOHO_POLICY, allow_loopback=True, sleep=sleeps.sleep),
        tokens=MemoryTokenCache(clock),
        client_id="bare",
        client_secret="bare-secret",
        refresh_token="bare-rt",
        accounts_url=server.url,
        clock=clock,
    )
    required = {
        "Contacts": ["Email", "Tandem_Email_Consent"],
        "Deals": ["Deal_Name", "Tandem_Order_Number"],
    }
    with pytest.raises(ConfigurationError) as caught:
        zoho.prepare(required, unique={"Deals": "Tandem_Order_Id"})
    message = str(caught.value)
    for name in (
        "Contacts.Tandem_Email_Consent",
        "Deals.Tandem_Order_Number",
        "Deals.Tandem_Order_Id",
    ):
        assert name in message
    assert "Contacts.Email" not in message
    assert "Deals.Tandem_Order_Id with 'Do not allow duplicate values'" in message


def test_prepare_passes_and_checks_uniqueness(zoho):
    zoho.prepare({"Contacts": ["Email", "Tandem_SMS_Consent"]}, unique={"Deals": "Tandem_Order_Id"})
    with pytest.raises(ConfigurationError, match=r"unique\): Deals.Deal_Name"):
        zoho.prepare({}, unique={"Deals": "Deal_Name"})
