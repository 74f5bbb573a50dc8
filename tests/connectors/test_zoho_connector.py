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

from connectors.crm import MemoryTokenCache, WriteResult
from connectors.errors import (
    AuthExpiredError,
    ConfigurationError,
    PermanentError,
    RateLimitedError,
)
from connectors.http import HttpClient
from connectors.zoho import (
    API_HOSTS,
    CONCURRENCY_WAIT_SECONDS,
    DAILY_PROBE_SECONDS,
    DATA_CENTRES,
    ZOHO_POLICY,
    ZohoConnector,
    accounts_url_for,
    credits_remaining,
    zoho_policy,
)
from sandbox.server import serve
from sandbox.zoho import create_app
from tests.clock import Clock, Sleeps

ORG = "60000001"
CLIENT_ID = "1000.CLIENTID"
CLIENT_SECRET = "client-secret-9f8e7d6c5b4a"
REFRESH_TOKEN = "1000.refresh-0123456789abcdef"


START = 1_780_000_000.0


@pytest.fixture(scope="module")
def served():
    """One simulator server for the module (stopping one takes half a second); every test
    resets it and its clock."""
    clock = Clock(1_780_000_000.0)
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


class Budget:
    """A RateBudget that never waits and records every "hold the account back" it is told."""

    def __init__(self) -> None:
        self.blocked: list[float] = []

    def reserve(self, cost: float = 1.0) -> float:
        return 0.0

    def observe(self, response) -> None:
        pass

    def block_for(self, seconds: float) -> None:
        self.blocked.append(seconds)


def make_connector(
    sim,
    clock,
    sleeps,
    *,
    refresh_token=REFRESH_TOKEN,
    tokens=None,
    policy=ZOHO_POLICY,
    budget=None,
    client_id=CLIENT_ID,
    client_secret=CLIENT_SECRET,
):
    server, _ = sim
    http = HttpClient(
        policy,
        allow_loopback=True,
        sleep=sleeps.sleep,
        backoff_base=0.5,
        jitter=lambda low, high: high,  # deterministic backoff: the ceiling
        budget=budget,
    )
    return ZohoConnector(
        http=http,
        tokens=tokens or MemoryTokenCache(clock),
        client_id=client_id,
        client_secret=client_secret,
        refresh_token=refresh_token,
        accounts_url=server.url,
        clock=clock,
    )


def other_org(sim, clock, sleeps, org_id, *, budget=None, **settings):
    """Another org of the simulator (its own OAuth client) and a connector for it."""
    org = {
        "org_id": org_id,
        "client_id": f"client-{org_id}",
        "client_secret": f"secret-{org_id}",
        "refresh_token": f"rt-{org_id}",
        **settings,
    }
    assert control(sim).post("/_sandbox/orgs", json=org).status_code == 201
    return make_connector(
        sim,
        clock,
        sleeps,
        refresh_token=org["refresh_token"],
        client_id=org["client_id"],
        client_secret=org["client_secret"],
        budget=budget,
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


def test_an_upsert_zoho_matched_by_another_unique_field_fails_and_is_not_ours(zoho, sim):
    # Phone is unique in this org: Zoho checks Email, then Phone (upsert-records.html), so a
    # new customer sharing a phone lands on the old customer's record. That is not ours.
    [existing] = seed(sim, [contact("Old", Email="old@example.com", Phone="+15550100")])
    [result] = zoho.upsert_contacts_by_email(
        [("new@example.com", contact("New", Phone="+15550100"))]
    )
    assert (result.ok, result.id, result.created) == (False, None, None)
    assert result.error.startswith("MATCHED_OTHER_FIELD")
    assert f"record {existing} by its Phone field, not by Email" in result.error
    assert result.details["duplicate_field"] == "Phone"  # Zoho's answer, kept verbatim
    assert [c["method"] for c in calls(sim, "/crm/")] == ["POST"]


def test_duplicate_data_on_another_field_is_not_written_to_the_record_it_names(zoho, sim):
    ann, bob = seed(
        sim,
        [
            contact("Ann", Email="ann@example.com", Phone="+15550101"),
            contact("Bob", Email="bob@example.com", Phone="+15550102"),
        ],
    )
    # Ann now gives Bob's phone: Zoho matches Ann by Email, then refuses the taken phone.
    [result] = zoho.upsert_contacts_by_email(
        [("ann@example.com", contact("Ann", Phone="+15550102"))]
    )
    assert (result.ok, result.id) == (False, None)
    assert result.error.startswith("DUPLICATE_DATA: duplicate data (Phone)")
    assert bob in result.error
    assert [c["method"] for c in calls(sim, "/crm/")] == ["POST"]  # nothing sent to Bob
    stored = {r["id"]: r for r in dump(sim)}
    assert (stored[ann]["Phone"], stored[bob]["Last_Name"]) == ("+15550101", "Bob")


def test_duplicate_data_on_the_key_itself_is_written_to_the_record_holding_it(
    zoho, sim, monkeypatch
):
    # The one redirect kept: the record DUPLICATE_DATA names holds our own key value.
    [existing] = seed(sim, [contact("Old", Email="old@example.com")])
    answer = {
        "code": "DUPLICATE_DATA",
        "details": {"api_name": "Email", "duplicate_record": {"id": existing}},
        "message": "duplicate data",
        "status": "error",
    }
    real = zoho._write_all

    def first_refused(endpoint, module, items, **kw):
        if endpoint == "upsert":
            return {key: WriteResult(key=key, ok=False, details=answer) for key, _ in items}
        return real(endpoint, module, items, **kw)

    monkeypatch.setattr(zoho, "_write_all", first_refused)
    [result] = zoho.upsert_contacts_by_email([("OLD@example.com", contact("Renamed"))])
    assert (result.ok, result.id, result.created) == (True, existing, False)
    [stored] = dump(sim)
    assert (stored["Email"], stored["Last_Name"]) == ("OLD@example.com", "Renamed")


def test_update_of_a_deleted_record_is_not_found(zoho, sim):
    [a] = zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    [b] = zoho.upsert_contacts_by_email([("b@example.com", contact("B"))])
    zoho.archive_objects("Contacts", [b.id])
    results = zoho.update_objects("Contacts", [(a.id, {"First_Name": "Ann"}), (b.id, {})])
    assert (results[0].ok, results[0].created) == (True, False)
    assert (results[1].ok, results[1].not_found) == (False, True)
    [again] = zoho.archive_objects("Contacts", [b.id])  # already deleted: not an error
    assert (again.ok, again.not_found, again.id) == (True, True, b.id)


def test_archive_answers_per_id_in_order_and_a_refusal_stops_nothing(zoho, sim):
    ids = seed(sim, [contact(f"C{i}") for i in range(150)])
    zoho.archive_objects("Contacts", [ids[7]])
    locked = ids[3]
    knobs(sim, fault_values=[locked])  # Zoho refuses to delete this live record
    wanted = [ids[7], *ids, ids[0]]
    results = zoho.archive_objects("Contacts", wanted)
    assert [r.key for r in results] == wanted
    assert (results[0].ok, results[0].not_found) == (True, True)  # deleted before: done
    refused = results[1 + 3]
    assert (refused.ok, refused.not_found) == (False, False)
    assert refused.error.startswith("RECORD_LOCKED")
    assert all(r.ok for i, r in enumerate(results) if i != 4)
    assert [r["id"] for r in dump(sim)] == [locked]  # the second chunk went on
    deletes = [c for c in calls(sim, "/crm/v8/Contacts") if c["method"] == "DELETE"]
    assert [c["records"] for c in deletes] == [1, 100, 50]
    assert all("wf_trigger=false" in c["query"] for c in deletes)
    assert {tuple(c["triggers"]) for c in deletes} == {()}  # no workflow ran on delete


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


def test_sales_order_with_line_items_is_upserted_read_back_and_edited_by_row_id(zoho, sim):
    # What Tandem does next with orders: Products by Tandem_Product_Key, then a Sales_Order by
    # Tandem_Order_Id with Ordered_Items rows; rows are updated by their id and deleted with
    # "_delete": null (update-subforms.html), not resent (a row without id is appended).
    [mug, cap] = zoho.upsert_objects(
        "Products",
        "Tandem_Product_Key",
        [
            ("shop:mug", {"Product_Name": "Mug", "Unit_Price": Decimal("9.50")}),
            ("shop:cap", {"Product_Name": "Cap", "Unit_Price": Decimal("12.00")}),
        ],
    )
    assert (mug.ok, mug.created, cap.ok) == (True, True, True)
    [again] = zoho.upsert_objects(
        "Products", "Tandem_Product_Key", [("shop:mug", {"Product_Name": "Mug"})]
    )
    assert (again.id, again.created) == (mug.id, False)
    rows = [
        {
            "Product_Name": {"id": mug.id},
            "Quantity": 2,
            "List_Price": Decimal("9.5"),
            "Discount": 0,
        },
        {"Product_Name": {"id": cap.id}, "Quantity": 1, "List_Price": Decimal("12"), "Discount": 0},
    ]
    order = {"Subject": "Order #1001", "Ordered_Items": rows}
    [made] = zoho.upsert_objects("Sales_Orders", "Tandem_Order_Id", [("shop:1001", order)])
    assert (made.ok, made.created) == (True, True)
    [read] = zoho.get_objects("Sales_Orders", [made.id], ["Ordered_Items", "Tandem_Order_Id"])
    assert read["Tandem_Order_Id"] == "shop:1001"
    mug_row, cap_row = (row["id"] for row in read["Ordered_Items"])
    assert [row["Product_Name"]["id"] for row in read["Ordered_Items"]] == [mug.id, cap.id]
    edit = {
        "Subject": "Order #1001",
        "Ordered_Items": [{"id": mug_row, "Quantity": 3}, {"id": cap_row, "_delete": None}],
    }
    [updated] = zoho.upsert_objects("Sales_Orders", "Tandem_Order_Id", [("shop:1001", edit)])
    assert (updated.ok, updated.id, updated.created) == (True, made.id, False)
    [after] = zoho.get_objects("Sales_Orders", [made.id], ["Ordered_Items", "Grand_Total"])
    [row] = after["Ordered_Items"]
    assert (row["id"], row["Quantity"], row["Product_Name"]["id"]) == (mug_row, 3, mug.id)
    assert after["Grand_Total"] == Decimal("28.50")
    summary = control(sim).get(f"/_sandbox/orgs/{ORG}/summary?orders=Sales_Orders").get_json()
    assert [(o["external_id"], o["line_items"]) for o in summary["orders"]] == [("shop:1001", 1)]


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


def test_sandbox_and_developer_hosts_of_every_data_centre_are_accepted(zoho):
    for host in ("sandbox.zohoapis.com", "sandbox.zohoapis.eu", "developer.zohoapis.in"):
        assert host in API_HOSTS
        assert zoho._checked_api_domain(f"https://{host}") == f"https://{host}"
    with pytest.raises(ConfigurationError):
        zoho._checked_api_domain("https://sandbox.zohoapis.com.evil.example")


def test_token_throttling_names_zohos_limit_and_waits(sim, clock, sleeps):
    for _ in range(10):  # ten fresh workers, each minting its own token
        make_connector(sim, clock, sleeps).get_objects("Contacts", ["1"], ["Email"])
    with pytest.raises(RateLimitedError) as raised:
        make_connector(sim, clock, sleeps).get_objects("Contacts", ["1"], ["Email"])
    assert "at most 10 access tokens per refresh token every 10 minutes" in str(raised.value)
    assert raised.value.retry_after == 600


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


def test_a_429_with_credits_left_is_a_short_wait_for_the_whole_account(sim, clock, sleeps):
    budget = Budget()
    zoho = make_connector(sim, clock, sleeps, budget=budget)
    zoho.get_objects("Contacts", ["1"], ["Email"])  # mint first
    knobs(sim, inject=[{"status": 429, "code": "TOO_MANY_REQUESTS", "times": 2}])
    [result] = zoho.upsert_contacts_by_email([("a@example.com", contact("A"))])
    assert result.ok
    # Concurrency: no Retry-After from Zoho, a few seconds, held for every worker.
    assert sleeps == [CONCURRENCY_WAIT_SECONDS] * 2
    assert budget.blocked == [CONCURRENCY_WAIT_SECONDS] * 2
    assert [c["status"] for c in calls(sim, "/upsert")] == [429, 429, 200]


def test_a_429_after_the_credits_ran_out_reschedules_for_a_probe_wait(sim, clock, sleeps):
    budget = Budget()
    spent = other_org(
        sim, clock, sleeps, "60000003", credits=3, budget=budget
    )  # 3 credits a day, the header on every answer (the knob below)
    knobs(sim, always_send_credits_header=True)
    for _ in range(3):
        spent.get_objects("Contacts", ["1"], ["Email"])
    assert spent.credits.remaining == 0
    with pytest.raises(RateLimitedError) as raised:
        spent.get_objects("Contacts", ["1"], ["Email"])
    assert raised.value.retry_after == DAILY_PROBE_SECONDS
    assert budget.blocked == [DAILY_PROBE_SECONDS]  # every worker of the account holds off
    assert sleeps == []  # the job is rescheduled, no worker blocks on it
    # Another account's connector knows nothing of this one's credits: its 429 is short.
    fresh = make_connector(sim, clock, sleeps)
    fresh.get_objects("Contacts", ["1"], ["Email"])
    knobs(sim, inject=[{"status": 429, "code": "TOO_MANY_REQUESTS"}])
    fresh.get_objects("Contacts", ["1"], ["Email"])
    assert sleeps == [CONCURRENCY_WAIT_SECONDS]


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


@pytest.mark.parametrize("status", [204, 304])
def test_nothing_changed_is_nothing_whether_zoho_says_204_or_304(zoho, sim, clock, status):
    seed(sim, [contact("Old")])
    knobs(sim, not_modified_status=status)
    clock.advance(10)
    since = datetime.fromtimestamp(clock.now, UTC)
    assert list(zoho.changed_since("Contacts", since, ["Last_Name"])) == []
    [read] = [c for c in calls(sim, "/crm/v8/Contacts") if c["method"] == "GET"]
    assert read["status"] == status


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


def test_prepare_passes_and_checks_uniqueness(sim, clock, sleeps):
    zoho = other_org(sim, clock, sleeps, "60000004")  # no extra unique fields
    zoho.prepare({"Contacts": ["Email", "Tandem_SMS_Consent"]}, unique={"Deals": "Tandem_Order_Id"})
    with pytest.raises(ConfigurationError, match=r"unique\): Deals.Deal_Name"):
        zoho.prepare({}, unique={"Deals": "Deal_Name"})


def test_prepare_names_other_unique_fields_upserts_would_match_by(zoho, sim, clock, sleeps):
    # The fixture's org made Contacts.Phone unique: an upsert by Email could match by Phone.
    with pytest.raises(ConfigurationError) as caught:
        zoho.prepare({"Contacts": ["Email"]}, unique={"Deals": "Tandem_Order_Id"})
    message = str(caught.value)
    assert "Contacts.Phone (Tandem upserts Contacts by Email)" in message
    assert "turn off 'Do not allow duplicate values'" in message
    assert "Contacts.Email" not in message  # the key, and Zoho's system duplicate check
    orders = other_org(
        sim, clock, sleeps, "60000005", unique_fields={"Sales_Orders": ["Tandem_Order_Number"]}
    )
    with pytest.raises(ConfigurationError, match=r"Sales_Orders\.Tandem_Order_Number \(Tandem"):
        orders.prepare({"Contacts": ["Email"]}, unique={"Sales_Orders": "Tandem_Order_Id"})
