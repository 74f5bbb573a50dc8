"""Commerce facts of a CRM contact: what one person bought, across every store of theirs.

From one :class:`FactRow` per store order (built from a canonical Order by :func:`order_fact`),
:func:`contact_facts` computes the number of orders, the first and last order dates, and per
currency the orders, total spent, refunds and average order value. Amounts are never
converted: a buyer in USD and EUR has two sets of money fields, each summed in its own
currency. :func:`fact_properties` renders the facts as the fields of one CRM contact, named as
the CRM's schema declares (``CrmSchema.facts``, a :class:`FactsNaming`).

What counts: cancelled, voided and test orders are recorded but do not count (their currency
still gets fields, at zero, so a history of only cancelled orders reads 0, not a stale value).
Refunds count against the order they were taken from: ``total_spent = sum(total - refunded)``
and ``refunds = sum(refunded)``, both over counting orders, so ``total_spent + refunds`` is
exactly what those orders were placed for. Dates are UTC calendar days of the order's
``processed_at`` (or ``created_at``).

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from mapping.currency import exponent
from mapping.models import FinancialStatus, MappingError, Order
from mapping.normalise import quantise

if TYPE_CHECKING:
    from mapping.crm import CrmSchema


class Fact(StrEnum):
    """A fact of the contact as a whole (every currency, every store)."""

    order_count = "order_count"
    first_order_date = "first_order_date"
    last_order_date = "last_order_date"


class CurrencyFact(StrEnum):
    """A fact kept once per currency."""

    order_count = "order_count"
    total_spent = "total_spent"
    average_order_value = "average_order_value"
    refunds = "refunds"


# Labels and descriptions, for CRMs where Tandem creates the fields (HubSpot) and for the set-up
# lists of those where an admin does. "{currency}" is the ISO 4217 code.
FACT_TEXT: Mapping[Fact, tuple[str, str]] = {
    Fact.order_count: (
        "Orders (all stores)",
        "Orders placed in every store connected to this CRM, cancelled, voided and test orders "
        "left out (Tandem).",
    ),
    Fact.first_order_date: (
        "First order date",
        "UTC day of the first order placed in any connected store (Tandem).",
    ),
    Fact.last_order_date: (
        "Last order date",
        "UTC day of the latest order placed in any connected store (Tandem).",
    ),
}
CURRENCY_FACT_TEXT: Mapping[CurrencyFact, tuple[str, str]] = {
    CurrencyFact.order_count: (
        "Orders in {currency}",
        "Orders placed in {currency} in every connected store (Tandem).",
    ),
    CurrencyFact.total_spent: (
        "Total spent ({currency})",
        "Order totals less refunds, in {currency}, across every connected store; never "
        "converted from another currency (Tandem).",
    ),
    CurrencyFact.average_order_value: (
        "Average order value ({currency})",
        "Total spent in {currency} divided by the orders in {currency} (Tandem).",
    ),
    CurrencyFact.refunds: (
        "Refunds ({currency})",
        "Amounts refunded on orders in {currency} (Tandem).",
    ),
}

DATE_FACTS = frozenset({Fact.first_order_date, Fact.last_order_date})


# ---------------------------------------------------------------------------------- inputs


def _is_at_precision(amount: Decimal, code: str) -> bool:
    return quantise(amount, code) == amount


@dataclass(frozen=True)
class FactRow:
    """One store order as the contact's facts are computed from it (the state store keeps one
    ``OrderFact`` row per order). Amounts are in ``currency``, at its precision.

    Raises:
        ValueError: an unknown currency, an amount finer than the currency's minor unit (it
            could not be summed exactly), or a naive ``placed_at``.
        TypeError: amounts that are not Decimal.
    """

    currency: str
    total: Decimal
    refunded: Decimal
    placed_at: datetime
    counts: bool = True

    def __post_init__(self) -> None:
        exponent(self.currency)
        for name in ("total", "refunded"):
            amount = getattr(self, name)
            if not isinstance(amount, Decimal):
                raise TypeError(f"{name} must be a Decimal, not {type(amount).__name__}")
            if not amount.is_finite() or not _is_at_precision(amount, self.currency):
                raise ValueError(f"{name} {amount} is not an amount in {self.currency}")
        if self.placed_at.tzinfo is None:
            raise ValueError(f"refusing to guess the timezone of {self.placed_at!r}")


def counts(order: Order) -> bool:
    """Whether ``order`` counts as a purchase: not cancelled, not voided, not a test."""
    return (
        order.cancelled_at is None
        and order.financial_status != FinancialStatus.voided
        and not order.test
    )


def order_fact(order: Order) -> FactRow:
    """The facts row of ``order``: its total and refunded amount, when it was placed
    (``processed_at``, else ``created_at``) and whether it counts (see :func:`counts`).

    Raises:
        MappingError: the order's total or refunds are not in the order's currency (Tandem never
            converts between currencies).
    """
    for name in ("total", "refunded"):
        amount = getattr(order, name)
        if amount.currency != order.currency:
            raise MappingError(
                f"order {order.source_id}: {name} is in {amount.currency}, the order in "
                f"{order.currency}"
            )
    return FactRow(
        currency=order.currency,
        total=order.total.amount,
        refunded=order.refunded.amount,
        placed_at=order.processed_at or order.created_at,
        counts=counts(order),
    )


# ---------------------------------------------------------------------------------- facts


@dataclass(frozen=True)
class CurrencyFacts:
    """The money facts of one currency. Amounts are at the currency's precision."""

    currency: str
    order_count: int
    total_spent: Decimal
    refunds: Decimal
    average_order_value: Decimal

    @classmethod
    def zero(cls, currency: str) -> CurrencyFacts:
        """No counting orders in ``currency``. Raises ValueError for an unknown currency."""
        nothing = quantise(Decimal(0), currency)
        return cls(currency, 0, nothing, nothing, nothing)


@dataclass(frozen=True)
class ContactFacts:
    """The facts of one contact. ``currencies`` has an entry for every currency any of the
    contact's orders was in, counting or not, keyed and ordered by ISO code."""

    order_count: int = 0
    first_order_at: datetime | None = None
    last_order_at: datetime | None = None
    currencies: Mapping[str, CurrencyFacts] = field(default_factory=dict)

    def currency(self, code: str) -> CurrencyFacts:
        """The facts of ``code``, zeros if no order was in it."""
        found = self.currencies.get(code)
        return found if found is not None else CurrencyFacts.zero(code)


def contact_facts(rows: Iterable[FactRow]) -> ContactFacts:
    """The facts of a contact from the rows of all their orders, in any order."""
    rows = list(rows)
    counting = [row for row in rows if row.counts]
    per_currency: dict[str, CurrencyFacts] = {}
    for code in sorted({row.currency for row in rows}):
        mine = [row for row in counting if row.currency == code]
        if not mine:
            per_currency[code] = CurrencyFacts.zero(code)
            continue
        # Every amount is at the currency's precision, so these sums are exact.
        gross = sum((row.total for row in mine), Decimal(0))
        refunds = sum((row.refunded for row in mine), Decimal(0))
        spent = gross - refunds
        per_currency[code] = CurrencyFacts(
            currency=code,
            order_count=len(mine),
            total_spent=quantise(spent, code),
            refunds=quantise(refunds, code),
            # Half-to-even to the minor unit, as every Money in Tandem.
            average_order_value=quantise(spent / len(mine), code),
        )
    placed = [row.placed_at for row in counting]
    return ContactFacts(
        order_count=len(counting),
        first_order_at=min(placed) if placed else None,
        last_order_at=max(placed) if placed else None,
        currencies=per_currency,
    )


# ---------------------------------------------------------------------------------- CRM fields


@dataclass(frozen=True)
class FactsNaming:
    """How one CRM names the facts fields of its contacts (``CrmSchema.facts``).

    ``fields`` names the contact-wide facts; ``currency_fields`` holds templates in which
    ``{currency}`` is the ISO code as ``currency_case`` spells it. ``render_date`` renders a
    date field's value where the CRM's general rendering does not suit it (HubSpot date
    properties take midnight UTC in epoch milliseconds). ``definitions`` is set for a CRM
    that lets Tandem create the fields itself: it gives their create requests for a set of
    currencies; elsewhere an admin creates them, and Tandem checks they exist.
    """

    fields: Mapping[Fact, str]
    currency_fields: Mapping[CurrencyFact, str]
    currency_case: Callable[[str], str] = str.upper
    render_date: Callable[[date], Any] | None = None
    definitions: Callable[[Iterable[str]], tuple[Mapping[str, Any], ...]] | None = None

    def name(self, fact: Fact) -> str:
        return self.fields[fact]

    def currency_name(self, fact: CurrencyFact, currency: str) -> str:
        """Raises ValueError for an unknown currency."""
        exponent(currency)
        return self.currency_fields[fact].format(currency=self.currency_case(currency))

    def names(self, currencies: Iterable[str] = ()) -> list[str]:
        """Every field name: the contact-wide ones, then each currency's (codes sorted)."""
        out = [self.fields[fact] for fact in Fact]
        for code in sorted(set(currencies)):
            out.extend(self.currency_name(fact, code) for fact in CurrencyFact)
        return out

    def currency_names(self, currency: str) -> list[str]:
        return [self.currency_name(fact, currency) for fact in CurrencyFact]


def _day(moment: datetime | None) -> date | None:
    return moment.astimezone(UTC).date() if moment is not None else None


def fact_properties(
    schema: CrmSchema, facts: ContactFacts, currencies: Iterable[str] = ()
) -> dict[str, Any]:
    """The contact fields for ``facts``, rendered the CRM's way: every contact-wide field, and
    the fields of every currency in ``facts`` and in ``currencies`` (pass the currencies
    written before, so one that no order is in any more is set to zero, not left stale).

    A date with no counting order is rendered as None (HubSpot: "", which clears the value).

    Raises:
        MappingError: the schema declares no facts fields.
        ValueError: an unknown currency in ``currencies``.
    """
    naming = schema.facts
    if naming is None:
        raise MappingError(f"{schema.title} has no commerce facts fields")
    render = schema.render

    def render_day(moment: datetime | None) -> Any:
        day = _day(moment)
        if day is None or naming.render_date is None:
            return render(day)
        return naming.render_date(day)

    props: dict[str, Any] = {
        naming.name(Fact.order_count): render(facts.order_count),
        naming.name(Fact.first_order_date): render_day(facts.first_order_at),
        naming.name(Fact.last_order_date): render_day(facts.last_order_at),
    }
    for code in sorted(set(facts.currencies) | set(currencies)):
        money = facts.currency(code)
        props[naming.currency_name(CurrencyFact.order_count, code)] = render(money.order_count)
        props[naming.currency_name(CurrencyFact.total_spent, code)] = render(money.total_spent)
        props[naming.currency_name(CurrencyFact.average_order_value, code)] = render(
            money.average_order_value
        )
        props[naming.currency_name(CurrencyFact.refunds, code)] = render(money.refunds)
    return props


def midnight_utc_ms(day: date) -> str:
    """``day`` as HubSpot's date properties take it: midnight UTC in epoch milliseconds, as a
    string. "Date properties ... must be set to midnight UTC for the date you want ... If you
    try to set a value that is not midnight UTC, you will receive an error":
    https://developers.hubspot.com/docs/faq/how-should-timestamps-be-formatted-for-hubspots-apis
    """
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return str(int(moment.timestamp()) * 1000)
