"""The small SOQL subset the simulator understands: enough for what Tandem's connector sends.

    SELECT f1, f2 FROM S [WHERE expr] [ORDER BY f [ASC|DESC] [, ...]] [LIMIT n]
    expr := term (AND term)*  |  term (OR term)*
    term := cond  |  ( expr )
    cond := F (= | != | < | <= | > | >=) literal  |  F IN (literal, ...)

AND and OR may be mixed only with parentheses, as in SOQL ("Parentheses are required whenever
you mix the operators", SOQL reference sforce_api_calls_soql_select_logicaloperators.htm):
``a AND b OR c`` is MALFORMED_QUERY. The connector's keyset page is
``SystemModstamp > t OR (SystemModstamp = t AND Id > 'id')``. NOT, LIKE, functions and
relationship fields are outside the subset: MALFORMED_QUERY.

Literals: 'quoted strings' with SOQL's backslash escapes, unquoted datetimes
(``2026-01-01T00:00:00Z``), dates, numbers, true/false/null. Anything else is
``MALFORMED_QUERY``; an unknown field is ``INVALID_FIELD``, an unknown object ``INVALID_TYPE``.
A quoted datetime is refused as Salesforce refuses it ("must be of type dateTime and should not
be enclosed in quotes"). Text comparisons are case-insensitive, as SOQL's are for text fields
(https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_comparisonoperators.htm).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.salesforce.schema import NUMBER_TYPES, STRING_TYPES, FieldSpec, SObjectSpec, to_18

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>'(?:[^'\\]|\\.)*')
    | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:?\d{2}))
    | (?P<date>\d{4}-\d{2}-\d{2})
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op><=|>=|!=|<>|=|<|>)
    | (?P<punct>[(),])
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)
    )""",
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "N": "\n", "r": "\r", "R": "\r", "t": "\t", "T": "\t", "b": "\b",
            "B": "\b", "f": "\f", "F": "\f", '"': '"', "'": "'", "\\": "\\"}  # fmt: skip
_KEYWORDS = frozenset(
    {"select", "from", "where", "and", "or", "not", "order", "by", "limit", "in", "asc", "desc"}
)


class QueryError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Condition:
    field: FieldSpec
    op: str
    values: tuple[Any, ...]  # one for comparisons, several for IN


@dataclass(frozen=True)
class Junction:
    op: str  # "and" | "or"
    terms: tuple[Condition | Junction, ...]


@dataclass(frozen=True)
class Query:
    sobject: SObjectSpec
    fields: tuple[FieldSpec, ...]
    where: Condition | Junction | None
    order: tuple[tuple[FieldSpec, bool], ...]  # (field, descending)
    limit: int | None


def _tokens(text: str) -> list[Token]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise QueryError("MALFORMED_QUERY", f"unexpected token at: {text[pos : pos + 20]}")
        kind = match.lastgroup or ""
        out.append(Token(kind, match.group(kind)))
        pos = match.end()
    return out


def _unescape(literal: str) -> str:
    body, out, i = literal[1:-1], [], 0
    while i < len(body):
        char = body[i]
        if char == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _ESCAPES:
                raise QueryError("MALFORMED_QUERY", f"Invalid string literal {literal}: bad escape")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


class _Parser:
    def __init__(self, text: str, schema: dict[str, SObjectSpec]) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.schema = schema

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.peek()
        if token is None:
            raise QueryError("MALFORMED_QUERY", "unexpected end of query")
        self.pos += 1
        return token

    def keyword(self, word: str) -> bool:
        token = self.peek()
        if token and token.kind == "word" and token.text.lower() == word:
            self.pos += 1
            return True
        return False

    def expect(self, word: str) -> None:
        if not self.keyword(word):
            found = self.peek()
            raise QueryError(
                "MALFORMED_QUERY",
                f"expecting {word.upper()}, found {found.text if found else 'end'}",
            )

    def name(self) -> str:
        token = self.take()
        if token.kind != "word" or token.text.lower() in _KEYWORDS:
            raise QueryError("MALFORMED_QUERY", f"unexpected token: {token.text}")
        return token.text

    def parse(self) -> Query:
        self.expect("select")
        names = [self.name()]
        while self.peek() and self.peek().text == ",":
            self.take()
            names.append(self.name())
        self.expect("from")
        # The object may be named like a keyword: ``FROM Order`` is the Order object.
        token = self.take()
        if token.kind != "word":
            raise QueryError("MALFORMED_QUERY", f"unexpected token: {token.text}")
        object_name = token.text
        spec = next((s for n, s in self.schema.items() if n.lower() == object_name.lower()), None)
        if spec is None:
            raise QueryError("INVALID_TYPE", f"sObject type '{object_name}' is not supported.")
        fields = tuple(self.field(spec, n) for n in names)
        where = self.expression(spec) if self.keyword("where") else None
        order: list[tuple[FieldSpec, bool]] = []
        if self.keyword("order"):
            self.expect("by")
            while True:
                field = self.field(spec, self.name())
                descending = self.keyword("desc")
                if not descending:
                    self.keyword("asc")
                order.append((field, descending))
                if not (self.peek() and self.peek().text == ","):
                    break
                self.take()
        limit = None
        if self.keyword("limit"):
            token = self.take()
            if token.kind != "number" or not token.text.isdigit():
                raise QueryError("MALFORMED_QUERY", f"LIMIT must be a whole number: {token.text}")
            limit = int(token.text)
        if self.peek() is not None:
            raise QueryError("MALFORMED_QUERY", f"unexpected token: {self.peek().text}")
        return Query(spec, fields, where, tuple(order), limit)

    def field(self, spec: SObjectSpec, name: str) -> FieldSpec:
        field = spec.field(name)
        if field is None:
            raise QueryError(
                "INVALID_FIELD",
                f"No such column '{name}' on entity '{spec.name}'. If you are attempting to use a "
                "custom field, be sure to append the '__c' after the custom field name.",
            )
        return field

    def expression(self, spec: SObjectSpec) -> Condition | Junction:
        terms = [self.term(spec)]
        op = None
        while (
            (token := self.peek()) and token.kind == "word" and token.text.lower() in ("and", "or")
        ):
            word = token.text.lower()
            if op is not None and word != op:
                raise QueryError(
                    "MALFORMED_QUERY",
                    f"unexpected token: {token.text} (mix AND and OR only with parentheses)",
                )
            op = word
            self.take()
            terms.append(self.term(spec))
        return terms[0] if op is None else Junction(op, tuple(terms))

    def term(self, spec: SObjectSpec) -> Condition | Junction:
        token = self.peek()
        if token is not None and token.text == "(":
            self.take()
            inner = self.expression(spec)
            closing = self.take()
            if closing.text != ")":
                raise QueryError("MALFORMED_QUERY", f"expecting ')', found {closing.text}")
            return inner
        return self.condition(spec)

    def condition(self, spec: SObjectSpec) -> Condition:
        field = self.field(spec, self.name())
        if self.keyword("in"):
            if self.take().text != "(":
                raise QueryError("MALFORMED_QUERY", "IN needs a parenthesised list")
            values = [self.literal(field)]
            while (token := self.take()).text == ",":
                values.append(self.literal(field))
            if token.text != ")":
                raise QueryError("MALFORMED_QUERY", f"unexpected token: {token.text}")
            return Condition(field, "in", tuple(values))
        token = self.take()
        if token.kind != "op":
            raise QueryError("MALFORMED_QUERY", f"unexpected token: {token.text}")
        op = "!=" if token.text == "<>" else token.text
        return Condition(field, op, (self.literal(field),))

    def literal(self, field: FieldSpec) -> Any:
        token = self.take()
        if token.kind == "word" and token.text.lower() == "null":
            return None
        kind = field.type
        if kind == "datetime":
            if token.kind != "datetime":
                raise QueryError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{field.name}' must be of type dateTime "
                    "and should not be enclosed in quotes",
                )
            return _epoch(token.text)
        if kind == "date":
            if token.kind != "date":
                raise QueryError(
                    "INVALID_FIELD",
                    f"value of filter criterion for field '{field.name}' must be of type date "
                    "and should not be enclosed in quotes",
                )
            return token.text
        if kind == "boolean":
            if token.kind != "word" or token.text.lower() not in ("true", "false"):
                raise QueryError("INVALID_FIELD", f"'{field.name}' must be true or false")
            return token.text.lower() == "true"
        if kind in NUMBER_TYPES:
            if token.kind != "number":
                raise QueryError("INVALID_FIELD", f"'{field.name}' must be compared with a number")
            try:
                return Decimal(token.text)
            except InvalidOperation:
                raise QueryError("MALFORMED_QUERY", f"bad number {token.text}") from None
        if token.kind != "string":
            raise QueryError("MALFORMED_QUERY", f"unexpected token: {token.text}")
        return _unescape(token.text)


def _epoch(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def parse(text: str, schema: dict[str, SObjectSpec]) -> Query:
    """Raises QueryError (MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE)."""
    if not text or not text.strip():
        raise QueryError("MALFORMED_QUERY", "empty query")
    return _Parser(text, schema).parse()


def _comparable(field: FieldSpec, value: Any) -> Any:
    if value is None:
        return None
    if field.type in STRING_TYPES:
        return str(value).lower()
    if field.type in ("id", "reference"):
        return to_18(str(value)) or str(value)
    return value


def _matches(condition: Condition, value: Any) -> bool:
    field = condition.field
    have = _comparable(field, value)
    wanted = [_comparable(field, v) for v in condition.values]
    if condition.op == "in":
        return have is not None and have in wanted
    target = wanted[0]
    if condition.op == "=":
        return have == target
    if condition.op == "!=":
        return have != target
    if have is None or target is None:
        return False
    return {
        "<": have < target,
        "<=": have <= target,
        ">": have > target,
        ">=": have >= target,
    }[condition.op]


def run(query: Query, rows: Sequence[Any], value: Callable[[Any, str], Any]) -> list[Any]:
    """The rows that satisfy ``query`` in its order, cut at its LIMIT; ``rows`` come in Id
    order, so ties keep it. ``value(row, field_name)`` reads a row's stored value."""

    def holds(where: Condition | Junction | None, row: Any) -> bool:
        if where is None:
            return True
        if isinstance(where, Condition):
            return _matches(where, value(row, where.field.name))
        results = (holds(term, row) for term in where.terms)
        return all(results) if where.op == "and" else any(results)

    chosen = [row for row in rows if holds(query.where, row)]
    # Stable sorts from the last key to the first; nulls first ascending, as SOQL sorts them.
    for field, descending in reversed(query.order):
        chosen.sort(
            key=lambda row, f=field: _null_first(_comparable(f, value(row, f.name))),
            reverse=descending,
        )
    return chosen[: query.limit] if query.limit is not None else chosen


def _null_first(value: Any) -> tuple[bool, Any]:
    return (value is not None, value if value is not None else 0)
