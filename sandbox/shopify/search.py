"""Shopify's search syntax for the ``query`` argument of ``customers`` and ``orders``.

Grammar (https://shopify.dev/docs/api/usage/search-syntax): terms separated by whitespace,
AND implied between terms, OR between alternatives, ``-`` or NOT negates, a term is
``field:value`` or ``field:<comparator>value`` with comparators ``<`` ``<=`` ``>`` ``>=``, or a
bare value searched in the default fields. Values are names or quoted strings (single or double
quotes); "Date values must be a string surrounded by quotes". Parentheses are not modelled.

Quirk kept on purpose: an *unquoted* date-time is read as its date only, the time part
ignored (https://community.shopify.com/t/graphql-bug-inventoryitems-query-parameter-gives-wrong-result-when-quering-the-updated-at-field/208519,
https://community.shopify.com/t/searchapi-query-by-updated-at-not-working/106221), so
``updated_at:>2024-03-01T14:00:00Z`` also matches the morning of that day. Fields Shopify does
not know for the resource are ignored and reported as a warning in ``extensions.search``, the
way Shopify reports them ("Invalid search field for this query.", code ``invalid_field``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from sandbox.shopify.store import Customer, Order, Shop

_COMPARATORS = ("<=", ">=", "<", ">")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<paren>[()])
      | (?P<neg>-)?(?P<field>[A-Za-z_][\w.]*):\s*(?P<cmp><=|>=|<|>)?\s*
        (?P<value>'[^']*'|"[^"]*"|[^\s()]+)?
      | (?P<bare>'[^']*'|"[^"]*"|[^\s()]+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Term:
    field: str | None  # None: the default fields
    comparator: str  # ":" for equality, or one of _COMPARATORS
    value: str
    quoted: bool
    negated: bool = False


@dataclass
class Search:
    """A parsed query: OR of AND-groups of terms, plus what Shopify would warn about."""

    groups: list[list[Term]]
    warnings: list[dict[str, str]]
    text: str

    def report(self, path: list[str]) -> dict[str, Any]:
        """The ``extensions.search`` entry Shopify adds when a query has warnings."""
        terms = [t for g in self.groups for t in g]
        parsed: dict[str, Any] = (
            _parsed(terms[0]) if len(terms) == 1 else {"and": [_parsed(t) for t in terms]}
        )
        return {"path": path, "query": self.text, "parsed": parsed, "warnings": self.warnings}


def _parsed(term: Term) -> dict[str, Any]:
    names = {"<": "range_lt", "<=": "range_lte", ">": "range_gt", ">=": "range_gte"}
    key = names.get(term.comparator, "match_all")
    return {"field": term.field or "default", key: term.value}


def parse(text: str | None) -> Search:
    """Split ``text`` into terms. Never raises: Shopify ignores what it cannot read."""
    groups: list[list[Term]] = [[]]
    negate_next = False
    for match in _TOKEN.finditer(text or ""):
        if match.group("paren"):
            continue
        if match.group("field"):
            raw = match.group("value") or ""
            quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
            groups[-1].append(
                Term(
                    field=match.group("field").lower(),
                    comparator=match.group("cmp") or ":",
                    value=raw[1:-1] if quoted else raw,
                    quoted=quoted,
                    negated=bool(match.group("neg")) or negate_next,
                )
            )
            negate_next = False
            continue
        word = match.group("bare")
        if word is None:
            continue
        if word == "OR":
            groups.append([])
        elif word == "AND":
            pass
        elif word == "NOT":
            negate_next = True
        else:
            negated = word.startswith("-") and len(word) > 1
            raw = word[1:] if negated else word
            quoted = len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\""
            groups[-1].append(
                Term(None, ":", raw[1:-1] if quoted else raw, quoted, negated or negate_next)
            )
            negate_next = False
    return Search(groups=[g for g in groups if g] or [[]], warnings=[], text=text or "")


# --------------------------------------------------------------------------- values
def _moment(term: Term) -> tuple[datetime, bool] | None:
    """The instant a time term names, and whether it names a whole day."""
    value = term.value.strip()
    if not term.quoted and "T" in value:
        value = value.split("T", 1)[0]  # the documented quirk: unquoted times are dropped
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            return datetime.combine(day, time(0), tzinfo=UTC), True
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC), False


def _compare(actual: Any, comparator: str, expected: Any) -> bool:
    if comparator == "<":
        return actual < expected
    if comparator == "<=":
        return actual <= expected
    if comparator == ">":
        return actual > expected
    if comparator == ">=":
        return actual >= expected
    return actual == expected


def _time_matches(actual: datetime | None, term: Term) -> bool:
    if actual is None:
        return False
    parsed = _moment(term)
    if parsed is None:
        return False
    moment, whole_day = parsed
    if term.comparator == ":" and whole_day:
        return actual.date() == moment.date()
    return _compare(actual, term.comparator, moment)


def _int_matches(actual: int | None, term: Term) -> bool:
    try:
        expected = int(term.value)
    except ValueError:
        return False
    return actual is not None and _compare(actual, term.comparator, expected)


def _text_matches(actual: str | None, term: Term) -> bool:
    if term.value == "*":
        return bool(actual)
    return actual is not None and term.value.lower() in actual.lower()


def _tags_match(tags: list[str], term: Term) -> bool:
    wanted = {t.strip().lower() for t in term.value.split(",") if t.strip()}
    return bool(wanted & {t.lower() for t in tags})


# --------------------------------------------------------------------------- fields
Matcher = Callable[[Any, Term, Shop], bool]

CUSTOMER_FIELDS: dict[str, Matcher] = {
    "id": lambda c, t, s: _int_matches(c.id, t),
    "created_at": lambda c, t, s: _time_matches(c.created_at, t),
    "customer_date": lambda c, t, s: _time_matches(c.created_at, t),
    "updated_at": lambda c, t, s: _time_matches(c.updated_at, t),
    "email": lambda c, t, s: _text_matches(c.email, t),
    "phone": lambda c, t, s: _text_matches(c.phone, t),
    "first_name": lambda c, t, s: _text_matches(c.first_name, t),
    "last_name": lambda c, t, s: _text_matches(c.last_name, t),
    "state": lambda c, t, s: c.state.lower() == t.value.lower(),
    "tag": lambda c, t, s: _tags_match(c.tags, t),
    "tag_not": lambda c, t, s: not _tags_match(c.tags, t),
    "country": lambda c, t, s: any(
        t.value.lower() in {(a.country or "").lower(), (a.country_code or "").lower()}
        for a in c.addresses
    ),
    "orders_count": lambda c, t, s: _int_matches(len(s.orders_of(c.id)), t),
}

ORDER_FIELDS: dict[str, Matcher] = {
    "id": lambda o, t, s: _int_matches(o.id, t),
    "created_at": lambda o, t, s: _time_matches(o.created_at, t),
    "updated_at": lambda o, t, s: _time_matches(o.updated_at, t),
    "processed_at": lambda o, t, s: _time_matches(o.processed_at, t),
    "email": lambda o, t, s: _text_matches(o.email, t),
    "name": lambda o, t, s: t.value.lstrip("#") in o.name,
    "customer_id": lambda o, t, s: _int_matches(o.customer_id, t),
    "financial_status": lambda o, t, s: o.financial_status.lower() == t.value.lower(),
    "fulfillment_status": lambda o, t, s: o.fulfillment_status.lower() == t.value.lower(),
    "tag": lambda o, t, s: _tags_match(o.tags, t),
    "tag_not": lambda o, t, s: not _tags_match(o.tags, t),
    "test": lambda o, t, s: str(o.test).lower() == t.value.lower(),
    "status": lambda o, t, s: _order_status(o, t.value.lower()),
}


def _order_status(order: Order, wanted: str) -> bool:
    if wanted == "cancelled":
        return order.cancelled_at is not None
    if wanted == "closed":
        return order.closed_at is not None
    if wanted in ("open", "not_closed"):
        return order.closed_at is None and order.cancelled_at is None
    return True


def _default_customer(c: Customer, t: Term, s: Shop) -> bool:
    haystack = " ".join(filter(None, [c.first_name, c.last_name, c.email, c.phone, c.note]))
    return all(_text_matches(haystack, Term(None, ":", w, False)) for w in t.value.split())


def _default_order(o: Order, t: Term, s: Shop) -> bool:
    haystack = " ".join(filter(None, [o.name, o.email, o.phone, o.note, " ".join(o.tags)]))
    return _text_matches(haystack, t)


def matcher(
    search: Search, fields: dict[str, Matcher], default: Matcher
) -> Callable[[Any, Shop], bool]:
    """A predicate over records; records warnings for fields Shopify would not know."""
    for group in search.groups:
        for term in group:
            if term.field is not None and term.field not in fields:
                warning = {
                    "field": term.field,
                    "message": "Invalid search field for this query.",
                    "code": "invalid_field",
                }
                if warning not in search.warnings:
                    search.warnings.append(warning)

    def matches(record: Any, shop: Shop) -> bool:
        for group in search.groups:
            ok = True
            for term in group:
                if term.field is None:
                    hit = default(record, term, shop)
                elif term.field in fields:
                    hit = fields[term.field](record, term, shop)
                else:
                    continue  # unknown field: ignored, as Shopify does
                if hit == term.negated:
                    ok = False
                    break
            if ok:
                return True
        return False

    return matches


def customer_matcher(search: Search) -> Callable[[Customer, Shop], bool]:
    return matcher(search, CUSTOMER_FIELDS, _default_customer)


def order_matcher(search: Search) -> Callable[[Order, Shop], bool]:
    return matcher(search, ORDER_FIELDS, _default_order)
