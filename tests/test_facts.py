"""Commerce facts on the CRM contact, against a real state store and a fake CRM that records
every call: recorded per order, computed across the stores of one CRM account, written once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from connectors.crm import WriteResult
from connectors.errors import ConfigurationError
from mapping import Order, hubspot, money, salesforce, zoho
from mapping.facts import CurrencyFacts
from sync import facts as facts_module
from sync.db import transaction
from sync.facts import (
    ENTITY,
    FactFields,
    link_key,
    profiles_facts,
    record_orders,
    required_fact_fields,
    write_facts,
)
from sync.models import Connection, Link, OrderFact, Profile, ProfileMember

T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)


def make_order(
    source_id: str,
    total: str,
    currency: str = "USD",
    refunded: str = "0",
    *,
    placed: datetime = T0,
    **extra: Any,
) -> Order:
    zero = money(0, currency)
    fields: dict[str, Any] = {
        "source": "shopify",
        "source_id": source_id,
        "email": "buyer@example.com",
        "currency": currency,
        "total": money(total, currency),
        "subtotal": zero,
        "tax": zero,
        "discounts": zero,
        "shipping": zero,
        "refunded": money(refunded, currency),
        "created_at": placed,
        "updated_at": placed,
        **extra,
    }
    return Order(**fields)


class FakeCrm:
    """Records calls; ``missing`` fields make ``prepare`` fail (Zoho CRM, Salesforce), and ids
    in ``gone`` are refused as deleted contacts."""

    def __init__(self, platform: str = "hubspot", batch_size: int = 100) -> None:
        self.platform = platform
        self.BATCH_SIZE = batch_size
        self.updates: list[tuple[str, list[tuple[str, dict]]]] = []
        self.ensured: list[dict[str, list[str]]] = []
        self.prepared: list[list[str]] = []
        self.missing: set[str] = set()
        self.gone: set[str] = set()

    def ensure_properties(self, definitions: Mapping[str, Sequence[Mapping]]) -> list[str]:
        self.ensured.append({k: [d["name"] for d in v] for k, v in definitions.items()})
        return []

    def prepare(self, required: Mapping[str, Sequence[str]], unique: Mapping[str, str]) -> None:
        names = [n for fields in required.values() for n in fields]
        self.prepared.append(names)
        absent = [n for n in names if n in self.missing]
        if absent:
            raise ConfigurationError(f"missing fields: {', '.join(absent)}", platform=self.platform)

    def update_objects(
        self, object_type: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        self.updates.append((object_type, [(i, dict(p)) for i, p in inputs]))
        return [
            WriteResult(key=i, ok=False, error="gone", not_found=True)
            if i in self.gone
            else WriteResult(key=i, ok=True, id=i)
            for i, _ in inputs
        ]

    @property
    def calls(self) -> int:
        return len(self.updates)


def connection(sessions, store: str, crm: str = "hubspot", account: str = "1") -> int:
    with transaction(sessions) as session:
        row = Connection(
            name=store,
            store_platform="shopify",
            store_account=store,
            crm_platform=crm,
            crm_account=account,
        )
        session.add(row)
        session.flush()
        return row.id


def profile(
    sessions,
    email: str,
    members: Sequence[tuple[int, str]],
    *,
    crm_id: str | None = "501",
    crm: str = "hubspot",
    account: str = "1",
) -> int:
    with transaction(sessions) as session:
        row = Profile(crm_platform=crm, crm_account=account, email=email, crm_id=crm_id)
        session.add(row)
        session.flush()
        for connection_id, store_id in members:
            session.add(
                ProfileMember(profile_id=row.id, connection_id=connection_id, store_id=store_id)
            )
        return row.id


def record(sessions, connection_id: int, orders: list[Order], profile_id: int | None) -> set[int]:
    with transaction(sessions) as session:
        return record_orders(
            session, connection_id, orders, {o.source_id: profile_id for o in orders}
        )


@pytest.fixture
def shop(sessions):
    """Two stores on one HubSpot account and one buyer of both."""
    a = connection(sessions, "a.myshopify.com")
    b = connection(sessions, "b.myshopify.com")
    buyer = profile(sessions, "buyer@example.com", [(a, "c1"), (b, "c9")])
    return a, b, buyer


# ---------------------------------------------------------------------------------- the flow


def test_two_stores_two_currencies_refunds_and_a_cancelled_order(sessions, shop):
    a, b, buyer = shop
    assert record(
        sessions,
        a,
        [
            make_order("1", "100.00", refunded="20.00", placed=T0),
            make_order("2", "30.00", placed=T0 + timedelta(days=5)),
            make_order("3", "500.00", placed=T0 - timedelta(days=9), cancelled_at=T0),
        ],
        buyer,
    ) == {buyer}
    assert record(
        sessions,
        b,
        [
            make_order("1", "45.50", "EUR", placed=T0 + timedelta(days=2)),  # same id, other store
            make_order("2", "10.00", "EUR", refunded="10.00", placed=T0 + timedelta(days=20)),
        ],
        buyer,
    ) == {buyer}

    with transaction(sessions) as session:
        facts = profiles_facts(session, [buyer])[buyer]
    assert facts.order_count == 4
    assert (facts.first_order_at, facts.last_order_at) == (T0, T0 + timedelta(days=20))
    assert facts.currencies == {
        "EUR": CurrencyFacts("EUR", 2, Decimal("45.50"), Decimal("10.00"), Decimal("22.75")),
        "USD": CurrencyFacts("USD", 2, Decimal("110.00"), Decimal("20.00"), Decimal("55.00")),
    }

    crm = FakeCrm()
    outcome = write_facts(
        crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=FactFields()
    )
    assert (outcome.written, outcome.calls, outcome.failed) == (1, 1, {})
    [(object_type, [(contact_id, props)])] = crm.updates
    assert (object_type, contact_id) == ("contacts", "501")
    assert props == {
        "tandem_order_count": "4",
        "tandem_first_order_date": "1709251200000",  # 2024-03-01
        "tandem_last_order_date": "1710979200000",  # 2024-03-21
        "tandem_order_count_eur": "2",
        "tandem_total_spent_eur": "45.50",
        "tandem_average_order_value_eur": "22.75",
        "tandem_refunds_eur": "10.00",
        "tandem_order_count_usd": "2",
        "tandem_total_spent_usd": "110.00",
        "tandem_average_order_value_usd": "55.00",
        "tandem_refunds_usd": "20.00",
    }
    # The properties were created first, for exactly the currencies written.
    assert crm.ensured == [{"contacts": hubspot.FACTS.names(["EUR", "USD"])}]


def test_an_unchanged_second_write_makes_no_call(sessions, shop):
    a, _, buyer = shop
    record(sessions, a, [make_order("1", "10.00")], buyer)
    fields = FactFields()
    crm = FakeCrm()
    write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)
    again = write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)
    assert (again.written, again.unchanged, again.calls) == (0, 1, 0)
    assert crm.calls == 1
    assert len(crm.ensured) == 1
    # Recording the same order again changes nothing either.
    assert record(sessions, a, [make_order("1", "10.00")], buyer) == set()
    # A fresh process (empty field cache) with nothing to write asks HubSpot nothing at all.
    fresh = FakeCrm()
    write_facts(fresh, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=FactFields())
    assert (fresh.calls, fresh.ensured) == (0, [])


def test_a_refund_and_a_cancellation_are_written_and_old_currencies_read_zero(sessions, shop):
    a, _, buyer = shop
    fields = FactFields()
    crm = FakeCrm()
    record(sessions, a, [make_order("1", "10.00"), make_order("2", "8.00", "GBP")], buyer)
    write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)

    assert record(
        sessions,
        a,
        [
            make_order("1", "10.00", refunded="4.00", updated_at=T0 + timedelta(hours=1)),
            make_order("2", "8.00", "GBP", cancelled_at=T0, updated_at=T0 + timedelta(hours=1)),
        ],
        buyer,
    ) == {buyer}
    write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)
    props = crm.updates[-1][1][0][1]
    assert props["tandem_total_spent_usd"] == "6.00"
    assert props["tandem_refunds_usd"] == "4.00"
    assert props["tandem_order_count"] == "1"
    assert (props["tandem_order_count_gbp"], props["tandem_total_spent_gbp"]) == ("0", "0.00")
    assert len(crm.ensured) == 1  # GBP and USD were created the first time


def test_an_order_that_moves_to_another_profile_zeroes_the_first(sessions, shop):
    a, _, buyer = shop
    other = profile(sessions, "new@example.com", [(a, "c2")], crm_id="777")
    fields = FactFields()
    crm = FakeCrm()
    record(sessions, a, [make_order("1", "10.00", "EUR")], buyer)
    write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)

    moved = make_order("1", "10.00", "EUR", updated_at=T0 + timedelta(hours=1))
    assert record(sessions, a, [moved], other) == {buyer, other}
    outcome = write_facts(
        crm, hubspot.SCHEMA, sessions, [buyer, other], connection_id=a, fields=fields
    )
    assert outcome.written == 2
    written = dict(crm.updates[-1][1])
    # The EUR fields of the first contact were written before: now zero, dates cleared.
    assert written["501"]["tandem_total_spent_eur"] == "0.00"
    assert written["501"]["tandem_order_count"] == "0"
    assert written["501"]["tandem_last_order_date"] == ""
    assert written["777"]["tandem_total_spent_eur"] == "10.00"


def test_writes_go_in_the_crms_batch_size(sessions):
    a = connection(sessions, "a.myshopify.com")
    ids = [profile(sessions, f"p{i}@example.com", [(a, f"c{i}")], crm_id=f"9{i}") for i in range(5)]
    for i, profile_id in enumerate(ids):
        record(sessions, a, [make_order(f"o{i}", "1.00")], profile_id)
    crm = FakeCrm(batch_size=2)
    outcome = write_facts(crm, hubspot.SCHEMA, sessions, ids, connection_id=a, fields=FactFields())
    assert outcome.written == 5
    assert [len(inputs) for _, inputs in crm.updates] == [2, 2, 1]


def test_profiles_without_a_contact_or_orders_are_skipped(sessions, shop):
    a, _, buyer = shop
    unlinked = profile(sessions, "later@example.com", [(a, "c3")], crm_id=None)
    no_orders = profile(sessions, "browser@example.com", [(a, "c4")], crm_id="888")
    record(sessions, a, [make_order("1", "5.00")], unlinked)
    crm = FakeCrm()
    outcome = write_facts(
        crm,
        hubspot.SCHEMA,
        sessions,
        [unlinked, no_orders, 123456],
        connection_id=a,
        fields=FactFields(),
    )
    assert (outcome.skipped, outcome.calls, crm.ensured) == (3, 0, [])
    assert buyer not in profiles_facts_of(sessions, [unlinked, no_orders])


def profiles_facts_of(sessions, ids):
    with transaction(sessions) as session:
        return profiles_facts(session, ids)


def test_facts_never_include_another_profiles_orders(sessions, shop):
    a, b, buyer = shop
    stranger = profile(sessions, "stranger@example.com", [(b, "c5")], crm_id="600")
    record(sessions, a, [make_order("1", "10.00")], buyer)
    record(sessions, b, [make_order("9", "99.00")], stranger)
    record(sessions, b, [make_order("10", "1.00")], None)  # a guest without email
    found = profiles_facts_of(sessions, [buyer])
    assert list(found) == [buyer]
    assert found[buyer].currencies["USD"].total_spent == Decimal("10.00")


def test_a_profile_of_another_crm_account_is_refused(sessions, shop):
    a, _, buyer = shop
    elsewhere = profile(sessions, "buyer@example.com", [], account="2")
    record(sessions, a, [make_order("1", "10.00")], buyer)
    crm = FakeCrm()
    with pytest.raises(ValueError, match="another CRM account"):
        write_facts(
            crm, hubspot.SCHEMA, sessions, [buyer, elsewhere], connection_id=a, fields=FactFields()
        )
    assert crm.calls == 0


def test_a_refused_write_is_reported_and_tried_again(sessions, shop):
    a, _, buyer = shop
    record(sessions, a, [make_order("1", "10.00")], buyer)
    fields = FactFields()
    crm = FakeCrm()
    crm.gone.add("501")
    outcome = write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)
    assert outcome.written == 0
    assert outcome.failed[buyer].not_found
    with transaction(sessions) as session:
        assert session.scalars(select(Link).where(Link.entity == ENTITY)).all() == []
    crm.gone.clear()
    again = write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)
    assert again.written == 1
    # After a refusal the fields are looked at again (an admin may have deleted one).
    assert len(crm.ensured) == 2
    with transaction(sessions) as session:
        link = session.scalars(select(Link).where(Link.entity == ENTITY)).one()
        assert (link.store_id, link.crm_id, link.connection_id) == (link_key(buyer), "501", a)
        assert link.last_written["currencies"] == ["USD"]


def test_fields_are_ensured_once_per_currency_per_account(sessions, shop):
    a, b, buyer = shop
    fields = FactFields()
    crm = FakeCrm()
    record(sessions, a, [make_order("1", "10.00")], buyer)
    write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=a, fields=fields)
    record(sessions, b, [make_order("1", "7.00")], buyer)
    write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=b, fields=fields)
    record(sessions, b, [make_order("2", "900", "JPY")], buyer)
    write_facts(crm, hubspot.SCHEMA, sessions, [buyer], connection_id=b, fields=fields)
    assert crm.calls == 3
    assert [e["contacts"][-4:] for e in crm.ensured] == [
        hubspot.FACTS.currency_names("USD"),
        hubspot.FACTS.currency_names("JPY"),
    ]


# ---------------------------------------------------------------------------------- Zoho, Salesforce


def test_missing_zoho_fields_are_named_and_block_only_the_profiles_needing_them(sessions):
    a = connection(sessions, "a.myshopify.com", crm="zoho", account="org1")
    usd = profile(sessions, "u@example.com", [(a, "c1")], crm_id="41", crm="zoho", account="org1")
    eur = profile(sessions, "e@example.com", [(a, "c2")], crm_id="42", crm="zoho", account="org1")
    record(sessions, a, [make_order("1", "12.50")], usd)
    record(sessions, a, [make_order("2", "9.00", "EUR")], eur)
    crm = FakeCrm("zoho")
    crm.missing = {"Tandem_Total_Spent_EUR", "Tandem_Refunds_EUR"}
    fields = FactFields()
    with pytest.raises(ConfigurationError) as caught:
        write_facts(crm, zoho.SCHEMA, sessions, [usd, eur], connection_id=a, fields=fields)
    message = str(caught.value)
    assert "Tandem_Total_Spent_EUR" in message and "Tandem_Refunds_EUR" in message
    assert "an admin must create" in message
    # The USD buyer was written, with typed JSON values.
    [(object_type, [(contact_id, props)])] = crm.updates
    assert (object_type, contact_id) == ("Contacts", "41")
    assert props["Tandem_Total_Spent_USD"] == 12.5
    assert props["Tandem_First_Order_Date"] == "2024-03-01"

    # Once the admin adds them, the EUR buyer goes through; USD is not checked again.
    crm.missing.clear()
    outcome = write_facts(crm, zoho.SCHEMA, sessions, [usd, eur], connection_id=a, fields=fields)
    assert (outcome.written, outcome.unchanged) == (1, 1)
    assert crm.prepared[-1] == zoho.FACTS.currency_names("EUR")
    assert sum(names == zoho.FACTS.currency_names("USD") for names in crm.prepared) == 1


def test_missing_contact_wide_fields_stop_every_write(sessions):
    a = connection(sessions, "a.myshopify.com", crm="salesforce", account="00D1")
    buyer = profile(sessions, "b@example.com", [(a, "c1")], crm="salesforce", account="00D1")
    record(sessions, a, [make_order("1", "1.00")], buyer)
    crm = FakeCrm("salesforce")
    crm.missing = {"Tandem_Order_Count__c"}
    with pytest.raises(ConfigurationError, match="Tandem_Order_Count__c"):
        write_facts(crm, salesforce.SCHEMA, sessions, [buyer], connection_id=a, fields=FactFields())
    assert crm.calls == 0


def test_required_fact_fields_for_the_connect_time_check():
    assert required_fact_fields(salesforce.SCHEMA, ["EUR", "USD"]) == {
        "Contact": [
            "Tandem_Order_Count__c",
            "Tandem_First_Order_Date__c",
            "Tandem_Last_Order_Date__c",
            "Tandem_Order_Count_EUR__c",
            "Tandem_Total_Spent_EUR__c",
            "Tandem_Average_Order_Value_EUR__c",
            "Tandem_Refunds_EUR__c",
            "Tandem_Order_Count_USD__c",
            "Tandem_Total_Spent_USD__c",
            "Tandem_Average_Order_Value_USD__c",
            "Tandem_Refunds_USD__c",
        ]
    }
    assert required_fact_fields(zoho.SALES_ORDER_SCHEMA, [])["Contacts"][0] == "Tandem_Order_Count"


def test_record_orders_needs_a_profile_for_every_order(sessions, shop):
    a, _, _ = shop
    with pytest.raises(KeyError, match="o7"), transaction(sessions) as session:
        record_orders(session, a, [make_order("o7", "1.00")], {})
    with transaction(sessions) as session:
        assert session.scalars(select(OrderFact)).all() == []


def test_the_newest_version_of_an_order_in_one_call_wins(sessions, shop):
    a, _, buyer = shop
    old = make_order("1", "10.00")
    new = make_order("1", "10.00", refunded="10.00", updated_at=T0 + timedelta(minutes=1))
    record(sessions, a, [new, old], buyer)
    with transaction(sessions) as session:
        [row] = session.scalars(select(OrderFact)).all()
        assert (row.total, row.refunded, row.counts, row.placed_at) == ("10.00", "10.00", True, T0)


def test_the_module_cache_is_shared_by_default():
    assert isinstance(facts_module.FACT_FIELDS, FactFields)
