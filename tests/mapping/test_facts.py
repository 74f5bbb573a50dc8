"""Commerce facts: from orders to per-currency figures to each CRM's contact fields."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapping import FinancialStatus, MappingError, Order, hubspot, money, salesforce, zoho
from mapping.facts import (
    ContactFacts,
    CurrencyFact,
    CurrencyFacts,
    Fact,
    FactRow,
    contact_facts,
    fact_properties,
    midnight_utc_ms,
    order_fact,
)
from mapping.hubspot import PROPERTY_GROUP, fact_property_definitions

T0 = datetime(2024, 3, 1, 10, 30, tzinfo=UTC)


def make_order(
    total: str = "10.00", refunded: str = "0", currency: str = "USD", **extra: object
) -> Order:
    zero = money(0, currency)
    fields: dict[str, object] = {
        "source": "shopify",
        "source_id": "1",
        "currency": currency,
        "total": money(total, currency),
        "subtotal": zero,
        "tax": zero,
        "discounts": zero,
        "shipping": zero,
        "refunded": money(refunded, currency),
        "created_at": T0,
        "updated_at": T0,
        **extra,
    }
    return Order(**fields)  # type: ignore[arg-type]


def row(total: str, refunded: str = "0", currency: str = "USD", **extra: object) -> FactRow:
    fields: dict[str, object] = {"placed_at": T0, "counts": True, **extra}
    return FactRow(currency, Decimal(total), Decimal(refunded), **fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- order_fact


def test_order_fact_takes_total_refunds_and_processed_at() -> None:
    processed = T0 + timedelta(hours=2)
    fact = order_fact(make_order("25.50", "5.25", processed_at=processed))
    assert fact == FactRow("USD", Decimal("25.50"), Decimal("5.25"), processed, True)
    assert order_fact(make_order()).placed_at == T0  # no processed_at: created_at


@pytest.mark.parametrize(
    "extra",
    [
        {"cancelled_at": T0},
        {"financial_status": FinancialStatus.voided},
        {"test": True},
    ],
    ids=["cancelled", "voided", "test"],
)
def test_cancelled_voided_and_test_orders_do_not_count(extra: dict) -> None:
    assert order_fact(make_order(**extra)).counts is False


@pytest.mark.parametrize(
    "status", [FinancialStatus.paid, FinancialStatus.refunded, FinancialStatus.pending]
)
def test_other_orders_count(status: FinancialStatus) -> None:
    assert order_fact(make_order(financial_status=status)).counts is True


def test_an_order_with_amounts_in_another_currency_is_refused() -> None:
    order = make_order().model_copy(update={"refunded": money("1.00", "EUR")})
    with pytest.raises(MappingError, match="refunded is in EUR"):
        order_fact(order)


def test_fact_rows_refuse_what_cannot_be_summed_exactly() -> None:
    with pytest.raises(ValueError, match="not an amount in JPY"):
        FactRow("JPY", Decimal("10.5"), Decimal(0), T0)
    with pytest.raises(ValueError, match="timezone"):
        FactRow("USD", Decimal(1), Decimal(0), datetime(2024, 1, 1))
    with pytest.raises(TypeError):
        FactRow("USD", 1.5, Decimal(0), T0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="currency"):
        FactRow("XXX", Decimal(1), Decimal(0), T0)


# ---------------------------------------------------------------------------------- contact_facts


def test_contact_facts_per_currency() -> None:
    rows = [
        row("100.00", "20.00", placed_at=T0 + timedelta(days=3)),
        row("50.00", placed_at=T0),
        row("999.00", counts=False, placed_at=T0 - timedelta(days=30)),  # cancelled
        row("1500", "500", currency="JPY", placed_at=T0 + timedelta(days=10)),
    ]
    facts = contact_facts(rows)
    assert facts.order_count == 3
    assert facts.first_order_at == T0  # the cancelled order is older but does not count
    assert facts.last_order_at == T0 + timedelta(days=10)
    assert list(facts.currencies) == ["JPY", "USD"]
    assert facts.currencies["USD"] == CurrencyFacts(
        "USD", 2, Decimal("130.00"), Decimal("20.00"), Decimal("65.00")
    )
    assert facts.currencies["JPY"] == CurrencyFacts(
        "JPY", 1, Decimal("1000"), Decimal("500"), Decimal("1000")
    )


@pytest.mark.parametrize(
    ("currency", "totals", "average"),
    [
        ("USD", ["10.00", "10.00", "0.01"], "6.67"),  # 20.01 / 3 = 6.67
        ("USD", ["0.01", "0.02"], "0.02"),  # 0.015: half to even
        ("JPY", ["1000", "1000", "1001"], "1000"),
        ("KWD", ["1.000", "1.000", "1.001"], "1.000"),
    ],
)
def test_average_order_value_is_rounded_to_the_currency(
    currency: str, totals: list[str], average: str
) -> None:
    facts = contact_facts(row(t, currency=currency) for t in totals)
    assert facts.currencies[currency].average_order_value == Decimal(average)
    assert str(facts.currencies[currency].average_order_value) == average


def test_a_currency_with_only_cancelled_orders_reads_zero() -> None:
    facts = contact_facts([row("80.00", "80.00", currency="EUR", counts=False)])
    assert facts.order_count == 0
    assert (facts.first_order_at, facts.last_order_at) == (None, None)
    assert facts.currencies["EUR"] == CurrencyFacts.zero("EUR")
    assert str(facts.currencies["EUR"].total_spent) == "0.00"


def test_a_fully_refunded_order_counts_and_spends_nothing() -> None:
    facts = contact_facts([row("40.00", "40.00")])
    usd = facts.currencies["USD"]
    assert (usd.order_count, usd.total_spent, usd.refunds) == (1, Decimal(0), Decimal("40.00"))


def test_no_orders_no_facts() -> None:
    assert contact_facts([]) == ContactFacts()


# ---------------------------------------------------------------------------------- properties


def test_hubspot_properties_are_strings_with_midnight_utc_dates() -> None:
    facts = contact_facts(
        [
            row("100.00", "20.00", placed_at=datetime(2024, 3, 1, 23, 59, tzinfo=UTC)),
            row("1500", currency="JPY", placed_at=datetime(2024, 5, 2, 0, 1, tzinfo=UTC)),
        ]
    )
    props = fact_properties(hubspot.SCHEMA, facts)
    assert props == {
        "tandem_order_count": "2",
        "tandem_first_order_date": "1709251200000",  # 2024-03-01T00:00:00Z
        "tandem_last_order_date": "1714608000000",  # 2024-05-02T00:00:00Z
        "tandem_order_count_jpy": "1",
        "tandem_total_spent_jpy": "1500",
        "tandem_average_order_value_jpy": "1500",
        "tandem_refunds_jpy": "0",
        "tandem_order_count_usd": "1",
        "tandem_total_spent_usd": "80.00",
        "tandem_average_order_value_usd": "80.00",
        "tandem_refunds_usd": "20.00",
    }
    assert int(props["tandem_first_order_date"]) % 86_400_000 == 0


def test_zoho_and_salesforce_properties_are_typed_json() -> None:
    facts = contact_facts([row("12.50", "2.50", currency="EUR")])
    assert fact_properties(zoho.SCHEMA, facts) == {
        "Tandem_Order_Count": 1,
        "Tandem_First_Order_Date": "2024-03-01",
        "Tandem_Last_Order_Date": "2024-03-01",
        "Tandem_Order_Count_EUR": 1,
        "Tandem_Total_Spent_EUR": 10.0,
        "Tandem_Average_Order_Value_EUR": 10.0,
        "Tandem_Refunds_EUR": 2.5,
    }
    props = fact_properties(salesforce.SCHEMA, facts)
    assert props["Tandem_Total_Spent_EUR__c"] == 10.0
    assert props["Tandem_Last_Order_Date__c"] == "2024-03-01"
    assert set(props) == set(salesforce.FACTS.names(["EUR"]))


def test_currencies_written_before_are_set_to_zero_and_dates_cleared() -> None:
    props = fact_properties(hubspot.SCHEMA, ContactFacts(), currencies=["GBP"])
    assert props == {
        "tandem_order_count": "0",
        "tandem_first_order_date": "",
        "tandem_last_order_date": "",
        "tandem_order_count_gbp": "0",
        "tandem_total_spent_gbp": "0.00",
        "tandem_average_order_value_gbp": "0.00",
        "tandem_refunds_gbp": "0.00",
    }
    assert fact_properties(zoho.SCHEMA, ContactFacts())["Tandem_First_Order_Date"] is None


def test_unknown_currencies_are_refused() -> None:
    with pytest.raises(ValueError, match="currency"):
        fact_properties(hubspot.SCHEMA, ContactFacts(), currencies=["usd"])


def test_a_schema_without_facts_is_refused() -> None:
    from dataclasses import replace

    with pytest.raises(MappingError, match="no commerce facts"):
        fact_properties(replace(hubspot.SCHEMA, facts=None), ContactFacts())


def test_every_crm_names_every_fact() -> None:
    for schema in (hubspot.SCHEMA, zoho.SCHEMA, salesforce.SCHEMA):
        assert schema.facts is not None
        names = schema.facts.names(["USD", "EUR"])
        assert len(names) == len(set(names)) == len(Fact) + 2 * len(CurrencyFact)
    assert zoho.SALES_ORDER_SCHEMA.facts is zoho.FACTS
    assert salesforce.ORDER_SCHEMA.facts is salesforce.FACTS
    assert all(name.endswith("__c") for name in salesforce.FACTS.names(["USD"]))


def test_midnight_utc_ms() -> None:
    assert midnight_utc_ms(datetime(2015, 5, 1, tzinfo=UTC).date()) == "1430438400000"


def test_hubspot_definitions_for_a_set_of_currencies() -> None:
    definitions = {d.name: d.payload() for d in fact_property_definitions(["USD", "EUR"])}
    assert set(definitions) == set(hubspot.FACTS.names(["USD", "EUR"]))
    assert all(d["groupName"] == PROPERTY_GROUP for d in definitions.values())
    assert {(d["type"], d["fieldType"]) for d in definitions.values()} == {
        ("number", "number"),
        ("date", "date"),
    }
    assert definitions["tandem_first_order_date"]["type"] == "date"
    assert definitions["tandem_total_spent_eur"]["label"] == "Total spent (EUR)"
    assert [d.name for d in fact_property_definitions([])] == hubspot.FACTS.names()


# ---------------------------------------------------------------------------------- invariants

CODES = ("USD", "EUR", "JPY", "KWD")
EXPONENT = {"USD": 2, "EUR": 2, "JPY": 0, "KWD": 3}


@st.composite
def fact_rows(draw: st.DrawFn) -> FactRow:
    code = draw(st.sampled_from(CODES))
    total = draw(st.integers(min_value=0, max_value=10**9))
    refunded = draw(st.integers(min_value=0, max_value=total))
    step = Decimal(1).scaleb(-EXPONENT[code])
    return FactRow(
        currency=code,
        total=Decimal(total) * step,
        refunded=Decimal(refunded) * step,
        placed_at=T0 + timedelta(minutes=draw(st.integers(min_value=-(10**6), max_value=10**6))),
        counts=draw(st.booleans()),
    )


@given(st.lists(fact_rows(), max_size=40))
def test_totals_never_mix_currencies(rows: list[FactRow]) -> None:
    facts = contact_facts(rows)
    assert set(facts.currencies) == {r.currency for r in rows}
    for code, figures in facts.currencies.items():
        mine = [r for r in rows if r.counts and r.currency == code]
        assert figures.currency == code
        assert figures.total_spent == sum((r.total - r.refunded for r in mine), Decimal(0))
        assert figures.total_spent.as_tuple().exponent == -EXPONENT[code]


@given(st.lists(fact_rows(), max_size=40))
def test_per_currency_counts_add_up_to_the_order_count(rows: list[FactRow]) -> None:
    facts = contact_facts(rows)
    assert sum(f.order_count for f in facts.currencies.values()) == facts.order_count
    assert facts.order_count == sum(r.counts for r in rows)


@given(st.lists(fact_rows(), max_size=40))
def test_refunds_reduce_total_spent_exactly(rows: list[FactRow]) -> None:
    facts = contact_facts(rows)
    for code, figures in facts.currencies.items():
        gross = sum((r.total for r in rows if r.counts and r.currency == code), Decimal(0))
        assert figures.total_spent + figures.refunds == gross
        if figures.order_count:
            # The average is the exact one rounded to the minor unit: within half a unit.
            exact = figures.total_spent / figures.order_count
            half = Decimal(1).scaleb(-EXPONENT[code]) / 2
            assert abs(figures.average_order_value - exact) <= half
        else:
            assert figures == CurrencyFacts.zero(code)


@given(st.lists(fact_rows(), max_size=40), st.randoms(use_true_random=False))
def test_the_order_of_rows_does_not_matter(rows: list[FactRow], rng: random.Random) -> None:
    shuffled = list(rows)
    rng.shuffle(shuffled)
    assert contact_facts(shuffled) == contact_facts(rows)
    assert fact_properties(hubspot.SCHEMA, contact_facts(shuffled)) == fact_properties(
        hubspot.SCHEMA, contact_facts(rows)
    )
