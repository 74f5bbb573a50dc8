"""One simulated Salesforce org: its records, users, sessions, API usage and query cursors, and
the save rules the REST API enforces. Nothing here knows about HTTP; the simulator's lock
guards every call.

Facts (shared/reference/api-crms.md section 2, sources there; the error codes are from
SF-REST errorcodes.htm, the message texts are Salesforce's as commonly seen, UNCONFIRMED word
for word):
- REQUIRED_FIELD_MISSING "Required fields are missing: [LastName]" with ``fields``;
- INVALID_FIELD for a field the object does not have; INVALID_FIELD_FOR_INSERT_UPDATE for one
  field-level security makes read-only;
- DUPLICATE_VALUE "duplicate value found: <field> duplicates value on record with id: <id>";
- ENTITY_IS_DELETED for a deleted record, INVALID_CROSS_REFERENCE_KEY for an id that names
  nothing, MALFORMED_ID for text that is not an id;
- a value of the wrong JSON type fails the whole request with JSON_PARSER_ERROR ("Cannot
  deserialize instance of ..."), as Salesforce's deserializer does (UNCONFIRMED for every type).

Price books and orders (SF-OBJREF pages named in ``schema.py``; the messages are the ones
Salesforce users commonly quote, UNCONFIRMED word for word):
- PricebookEntry: one per product, price book and currency, else DUPLICATE_VALUE "This price
  definition already exists in this price book"; an entry in a custom price book needs the
  product's standard price (an entry in the standard book, same currency) first, else
  STANDARD_PRICE_NOT_DEFINED "No standard price defined for this product";
- OrderItem: its entry must be in the order's price book (and the order must have one) and in
  the order's currency, and be active, else FIELD_INTEGRITY_EXCEPTION "field integrity
  exception: PricebookEntryId (...)" naming PricebookEntryId;
- Order: Status is a restricted picklist (INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST, UNCONFIRMED
  that it is restricted); a new order must be Draft, activation needs at least one product and
  may change nothing but Status, the price book and currency cannot change once the order has
  products, and an activated order's products cannot be added, changed or deleted: all
  FIELD_INTEGRITY_EXCEPTION here (the error code and texts of these four are UNCONFIRMED);
- a create-only field (OrderItem.OrderId, PricebookEntryId, PricebookEntry.Product2Id...) sent
  on an update with the value it already has is accepted and changes nothing, so an upsert can
  send the whole record; a different value is INVALID_FIELD_FOR_INSERT_UPDATE (UNCONFIRMED);
- TotalPrice = Quantity x UnitPrice and Order.TotalAmount (the sum of its live products'
  TotalPrice) are rounded to 2 places half up (UNCONFIRMED); a change to an order's products
  bumps the order's SystemModstamp, as a roll-up summary does (UNCONFIRMED).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.salesforce.schema import (
    DEFAULT_CURRENCIES,
    NUMBER_TYPES,
    ORDER_STATUSES,
    STRING_TYPES,
    FieldSpec,
    SObjectSpec,
    make_id,
    sf_datetime,
    to_18,
)

DAY_SECONDS = 86_400
# Query locators and their results "are available for 2 days" after the query, with no limit
# on how many are open; before API v56.0 a user had 10 and one expired after 15 minutes idle,
# and the change applies to every API version (SF-LIMITS
# salesforce_app_limits_platform_apicursors.htm; help article 000384958). The old idle expiry
# stays as a knob (``cursor_idle_seconds``: 900) for tests of slow readers.
CURSOR_LIFETIME_SECONDS = 2 * 86_400
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SYSTEM_NAMES = frozenset(
    {"Id", "IsDeleted", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById",
     "SystemModstamp"}
)  # fmt: skip


class ApiError(Exception):
    """The whole request fails with ``status`` and Salesforce's error array."""

    def __init__(self, status: int, code: str, message: str, fields: list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.errors = [{"message": message, "errorCode": code, "fields": fields or []}]


@dataclass(frozen=True)
class RecordError:
    """One record of a write is refused."""

    code: str
    message: str
    fields: tuple[str, ...] = ()


@dataclass
class Record:
    sobject: str
    id: str
    values: dict[str, Any]

    @property
    def deleted(self) -> bool:
        return bool(self.values.get("IsDeleted"))


@dataclass
class Session:
    org_id: str
    issued: float
    last_used: float
    generation: int


@dataclass
class Cursor:
    """A query's rows as of the query (a snapshot), handed out ``batch`` at a time."""

    rows: list[dict]
    last_used: float
    batch: int
    created: float = 0.0


@dataclass
class Org:
    org_id: str
    name: str
    client_id: str
    client_secret: str
    refresh_token: str
    schema: dict[str, SObjectSpec]
    jwt_username: str | None = None
    jwt_public_key_pem: str | None = None
    session_seconds: float = 7200.0
    session_sliding: bool = False
    daily_limit: int = 100_000
    multi_currency: bool = True
    currencies: tuple[str, ...] = DEFAULT_CURRENCIES
    instance_url: str | None = None  # override the token response's instance_url
    # A sandbox org accepts JWTs for https://test.salesforce.com, a production org for
    # https://login.salesforce.com; ``jwt_audience`` adds one more (a community URL, or the
    # simulator's own URL for a test that wants it) (SF-OAUTH-JWT).
    sandbox: bool = False
    jwt_audience: str | None = None
    # Refresh token rotation: each refresh answers a new refresh token and spends the old;
    # reusing a spent one revokes the current refresh token and every access token of the
    # family (help article 005316711 "Force one-time-use Refresh Tokens"; SF-OAUTH-WS).
    rotate_refresh_tokens: bool = False
    spent_refresh_tokens: set = field(default_factory=set)
    refresh_revoked: bool = False
    records: dict[str, dict[str, Record]] = field(default_factory=dict)
    serial: int = 0
    generation: int = 0
    usage: deque = field(default_factory=deque)  # (epoch second, count) buckets
    cursors: dict[str, Cursor] = field(default_factory=dict)
    created_at: float = 0.0  # when the org (and its standard price book) came to be
    # Saves (sobject, record id) not yet turned into outbound messages, the outbound-message
    # actions and their delivery log (sandbox.salesforce.outbound).
    outbox: list = field(default_factory=list)
    outbound_actions: dict = field(default_factory=dict)
    outbound_deliveries: list = field(default_factory=list)
    notification_serial: int = 0
    action_serial: int = 0

    def __post_init__(self) -> None:
        for name in self.schema:
            self.records.setdefault(name, {})
        self.integration_user = make_id("005", 1)
        self.rep_user = make_id("005", 2)
        if "Pricebook2" in self.schema and not self.records["Pricebook2"]:
            # Every org has exactly one standard price book; the API cannot create one.
            standard = {"Name": "Standard Price Book", "IsActive": True, "IsStandard": True}
            self.create(self.schema["Pricebook2"], standard, self.created_at, self.rep_user)

    def standard_pricebook(self) -> Record:
        return next(r for r in self.records["Pricebook2"].values() if r.values["IsStandard"])

    # ------------------------------------------------------------------ usage

    def used(self, now: float) -> int:
        while self.usage and self.usage[0][0] <= now - DAY_SECONDS:
            self.usage.popleft()
        return sum(n for _, n in self.usage)

    def count_call(self, now: float) -> None:
        if self.usage and self.usage[-1][0] == int(now):
            self.usage[-1] = (int(now), self.usage[-1][1] + 1)
        else:
            self.usage.append((int(now), 1))

    def set_used(self, used: int, now: float) -> None:
        """Pretend ``used`` calls were made just now (they leave the window in 24 h)."""
        self.usage = deque([(int(now), used)] if used else [])

    # ------------------------------------------------------------------ lookups

    def spec(self, name: str) -> SObjectSpec:
        spec = next((s for n, s in self.schema.items() if n.lower() == name.lower()), None)
        if spec is None:
            raise ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        return spec

    def find(self, record_id: object) -> Record | None:
        full = to_18(str(record_id)) if isinstance(record_id, str) else None
        if full is None:
            return None
        for spec in self.schema.values():
            if full.startswith(spec.key_prefix):
                return self.records[spec.name].get(full)
        return None

    def live(self, sobject: str) -> list[Record]:
        return [r for r in self.records[sobject].values() if not r.deleted]

    def by_value(self, sobject: str, field_name: str, value: object) -> list[Record]:
        wanted = str(value).lower()
        return [
            r
            for r in self.live(sobject)
            if r.values.get(field_name) is not None and str(r.values[field_name]).lower() == wanted
        ]

    def snapshot(self) -> tuple[dict, int, int]:
        # Each record's values are plain scalars, so a copy of the values dicts is a full copy
        # of the state; a deep copy made every collection call cost seconds on a large org.
        copied = {
            sobject: {rid: Record(r.sobject, r.id, dict(r.values)) for rid, r in records.items()}
            for sobject, records in self.records.items()
        }
        return copied, self.serial, len(self.outbox)

    def restore(self, state: tuple[dict, int, int]) -> None:
        """Back to a snapshot; saves rolled back send no outbound message."""
        self.records, self.serial, saves = state
        del self.outbox[saves:]

    # ------------------------------------------------------------------ saving

    def check(
        self,
        spec: SObjectSpec,
        body: Mapping[str, Any],
        *,
        existing: Record | None,
        faults: frozenset[str],
    ) -> dict[str, Any] | list[RecordError]:
        """The field changes ``body`` makes, or why the record is refused. Raises ApiError for
        a value Salesforce could not even deserialize."""
        errors: list[RecordError] = []
        changes: dict[str, Any] = {}
        for key, value in body.items():
            if key == "attributes" or (key.lower() == "id" and existing is not None):
                continue
            spec_field = spec.field(key)
            if spec_field is None:
                errors.append(
                    RecordError(
                        "INVALID_FIELD",
                        f"No such column '{key}' on sobject of type {spec.name}",
                        (key,),
                    )
                )
                continue
            allowed = spec_field.updateable if existing is not None else spec_field.createable
            create_only = existing is not None and spec_field.createable
            if not allowed and create_only and _same(spec_field, value, existing.values):
                continue  # a create-only field resent unchanged (an upsert's whole record)
            if not allowed:
                errors.append(
                    RecordError(
                        "INVALID_FIELD_FOR_INSERT_UPDATE",
                        f"Unable to create/update fields: {spec_field.name}. Please check the "
                        "security settings of this field and verify that it is read/write for "
                        "your profile or permission set.",
                        (spec_field.name,),
                    )
                )
                continue
            problem = self._value_problem(spec_field, value)
            if problem is not None:
                errors.append(problem)
                continue
            if isinstance(value, str) and value.strip().lower() in faults:
                errors.append(
                    RecordError(
                        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "Sandbox validation rule: this value is refused",
                    )
                )
                continue
            changes[spec_field.name] = _stored(spec_field, value)
        if errors:
            return errors
        merged = {**(existing.values if existing else {}), **changes}
        missing = [name for name in spec.required if merged.get(name) in (None, "")]
        if missing:
            return [
                RecordError(
                    "REQUIRED_FIELD_MISSING",
                    f"Required fields are missing: [{', '.join(missing)}]",
                    tuple(missing),
                )
            ]
        for spec_field in spec.fields:
            if not spec_field.unique or changes.get(spec_field.name) in (None, ""):
                continue
            clash = [
                r
                for r in self.by_value(spec.name, spec_field.name, changes[spec_field.name])
                if existing is None or r.id != existing.id
            ]
            if clash:
                return [
                    RecordError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {spec_field.name} duplicates value on record "
                        f"with id: {clash[0].id}",
                    )
                ]
        problem = self._object_rule(spec.name, existing, changes, merged)
        return [problem] if problem is not None else changes

    def _object_rule(
        self,
        sobject: str,
        existing: Record | None,
        changes: Mapping[str, Any],
        merged: Mapping[str, Any],
    ) -> RecordError | None:
        """The save rules of price books and orders (see the module docstring)."""
        if sobject == "PricebookEntry" and existing is None:
            return self._entry_rule(merged)
        if sobject == "Order":
            return self._order_rule(existing, changes, merged)
        if sobject == "OrderItem":
            return self._order_item_rule(existing, merged)
        return None

    def _entry_rule(self, merged: Mapping[str, Any]) -> RecordError | None:
        book = self.records["Pricebook2"][merged["Pricebook2Id"]]
        currency = merged.get("CurrencyIsoCode") or self.currencies[0]

        def entries(pricebook_id: str) -> list[Record]:
            return [
                e
                for e in self.live("PricebookEntry")
                if e.values["Pricebook2Id"] == pricebook_id
                and e.values["Product2Id"] == merged["Product2Id"]
                and (e.values.get("CurrencyIsoCode") or self.currencies[0]) == currency
            ]

        if entries(book.id):
            return RecordError(
                "DUPLICATE_VALUE", "This price definition already exists in this price book"
            )
        if not book.values["IsStandard"] and not entries(self.standard_pricebook().id):
            return RecordError(
                "STANDARD_PRICE_NOT_DEFINED", "No standard price defined for this product"
            )
        return None

    def _order_rule(
        self, existing: Record | None, changes: Mapping[str, Any], merged: Mapping[str, Any]
    ) -> RecordError | None:
        status = merged["Status"]
        if status not in ORDER_STATUSES:
            return RecordError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"Status: bad value for restricted picklist field: {status}",
                ("Status",),
            )
        activating = ORDER_STATUSES[status] == "Activated"
        if existing is None:
            if activating:
                return _integrity(
                    "You can't create an activated order: create it as Draft, add order "
                    "products, then activate it",
                    "Status",
                )
            return None
        changed = [n for n, v in changes.items() if existing.values.get(n) != v]
        items = self.order_items(existing.id)
        if activating and existing.values["StatusCode"] != "Activated":
            if set(changed) - {"Status"}:
                return _integrity(
                    "Status is the only field you can update when activating an order", "Status"
                )
            if not items:
                return _integrity("You can't activate an order that has no products", "Status")
        for name in ("Pricebook2Id", "CurrencyIsoCode"):
            if name in changed and items:
                return _integrity(f"Cannot change {name} on an order with products", name)
        return None

    def _order_item_rule(
        self, existing: Record | None, merged: Mapping[str, Any]
    ) -> RecordError | None:
        order = self.records["Order"][merged["OrderId"]]
        if order.values["StatusCode"] == "Activated":
            return _integrity(
                "You can't add, change or delete products of an activated order", "OrderId"
            )
        if existing is not None:
            return None
        entry = self.records["PricebookEntry"][merged["PricebookEntryId"]]
        if not order.values["Pricebook2Id"] or (
            entry.values["Pricebook2Id"] != order.values["Pricebook2Id"]
        ):
            return _integrity(
                "field integrity exception: PricebookEntryId (pricebook entry is in a different "
                "pricebook than the one assigned to the Order, or Order has no pricebook "
                "assigned)",
                "PricebookEntryId",
            )
        if entry.values.get("CurrencyIsoCode") != order.values.get("CurrencyIsoCode"):
            return _integrity(
                "field integrity exception: PricebookEntryId (pricebook entry currency code "
                "does not match order currency code)",
                "PricebookEntryId",
            )
        if not entry.values["IsActive"]:
            return _integrity(
                "field integrity exception: PricebookEntryId (pricebook entry is inactive)",
                "PricebookEntryId",
            )
        product = merged.get("Product2Id")
        if product and product != entry.values["Product2Id"]:
            return _integrity(
                "field integrity exception: Product2Id (product does not match the pricebook "
                "entry's product)",
                "Product2Id",
            )
        return None

    def order_items(self, order_id: str) -> list[Record]:
        return [r for r in self.live("OrderItem") if r.values["OrderId"] == order_id]

    def delete_problem(self, record: Record) -> RecordError | None:
        """Why ``record`` cannot be deleted, if it cannot."""
        if record.sobject == "OrderItem":
            return self._order_item_rule(record, record.values)
        return None

    def _value_problem(self, spec_field: FieldSpec, value: Any) -> RecordError | None:
        name, kind = spec_field.name, spec_field.type
        if value is None:
            if not spec_field.nillable:
                return RecordError(
                    "REQUIRED_FIELD_MISSING", f"Required fields are missing: [{name}]", (name,)
                )
            return None
        if kind in STRING_TYPES or kind in ("id", "reference"):
            if not isinstance(value, str):
                _undeserializable(kind, value)
            if spec_field.length and len(value) > spec_field.length:
                return RecordError(
                    "STRING_TOO_LONG",
                    f"{name}: data value too large: {value[:40]} (max length={spec_field.length})",
                    (name,),
                )
            if kind == "email" and value and not _EMAIL.match(value):
                return RecordError(
                    "INVALID_EMAIL_ADDRESS", f"{name}: invalid email address: {value}", (name,)
                )
            if name == "CurrencyIsoCode" and value not in self.currencies:
                return RecordError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    f"Currency ISO Code: invalid currency code: {value}",
                    (name,),
                )
            if kind == "reference" and spec_field.reference_to not in ((), ("User",)):
                return self._reference_problem(spec_field, value)
            return None
        if kind == "boolean":
            if not isinstance(value, bool):
                _undeserializable(kind, value)
            return None
        if kind in NUMBER_TYPES:
            if isinstance(value, bool) or not isinstance(value, int | Decimal):
                _undeserializable(kind, value)
            return None
        if kind == "date":
            if not isinstance(value, str):
                _undeserializable(kind, value)
            try:
                date.fromisoformat(value)
            except ValueError:
                _undeserializable(kind, value)
            if len(value) != 10:
                _undeserializable(kind, value)
            return None
        return None

    def _reference_problem(self, spec_field: FieldSpec, value: str) -> RecordError | None:
        if to_18(value) is None:
            return RecordError(
                "MALFORMED_ID",
                f"{spec_field.name}: id value of incorrect type: {value}",
                (spec_field.name,),
            )
        target = self.find(value)
        if target is None or target.deleted or target.sobject not in spec_field.reference_to:
            return RecordError(
                "INVALID_CROSS_REFERENCE_KEY",
                "invalid cross reference id",
                (spec_field.name,),
            )
        return None

    def create(self, spec: SObjectSpec, changes: dict[str, Any], now: float, user: str) -> Record:
        self.serial += 1
        record_id = make_id(spec.key_prefix, self.serial)
        values: dict[str, Any] = {f.name: None for f in spec.fields}
        for spec_field in spec.fields:
            if spec_field.type == "boolean" and not spec_field.nillable:
                values[spec_field.name] = False
        if "CurrencyIsoCode" in values:
            values["CurrencyIsoCode"] = self.currencies[0]
        if "OwnerId" in values:
            values["OwnerId"] = user
        stamp = int(now)
        values.update(
            Id=record_id,
            IsDeleted=False,
            CreatedDate=stamp,
            CreatedById=user,
            LastModifiedDate=stamp,
            LastModifiedById=user,
            SystemModstamp=stamp,
        )
        values.update(changes)
        if spec.name == "Order":
            values["OrderNumber"] = f"{self.serial:08d}"
        if spec.name == "OrderItem":
            values["OrderItemNumber"] = f"{self.serial:010d}"
        record = Record(spec.name, record_id, values)
        self.records[spec.name][record_id] = record
        self._after_save(record, changes, now, user)
        self.outbox.append((spec.name, record_id))
        return record

    def update(self, record: Record, changes: dict[str, Any], now: float, user: str) -> None:
        # Every save bumps the audit fields, even one that changes nothing (SF-OBJREF).
        record.values.update(changes)
        record.values.update(
            LastModifiedDate=int(now), LastModifiedById=user, SystemModstamp=int(now)
        )
        self._after_save(record, changes, now, user)
        self.outbox.append((record.sobject, record.id))

    def _after_save(self, record: Record, changes: dict[str, Any], now: float, user: str) -> None:
        self._derive(record, now)
        # One primary contact role per opportunity: a new primary demotes the others.
        if record.sobject == "OpportunityContactRole" and changes.get("IsPrimary") is True:
            for other in self.live("OpportunityContactRole"):
                if (
                    other.id != record.id
                    and other.values["OpportunityId"] == record.values["OpportunityId"]
                    and other.values["IsPrimary"]
                ):
                    other.values.update(IsPrimary=False, SystemModstamp=int(now))

    def _derive(self, record: Record, now: float) -> None:
        """The fields Salesforce computes: an entry's product name and code, an order product's
        product, list price and total, an order's status category and total."""
        values = record.values
        if record.sobject == "PricebookEntry":
            product = self.records["Product2"][values["Product2Id"]]
            values.update(Name=product.values["Name"], ProductCode=product.values["ProductCode"])
        elif record.sobject == "OrderItem":
            entry = self.records["PricebookEntry"][values["PricebookEntryId"]]
            values.update(
                Product2Id=entry.values["Product2Id"],
                ListPrice=entry.values["UnitPrice"],
                TotalPrice=_money(values["Quantity"] * values["UnitPrice"]),
            )
            self._roll_up(values["OrderId"], now)
        elif record.sobject == "Order":
            code = ORDER_STATUSES.get(values["Status"])
            if code == "Activated" and values.get("StatusCode") != "Activated":
                values["ActivatedDate"] = int(now)
            values["StatusCode"] = code
            self._roll_up(record.id, now, bump=False)

    def _roll_up(self, order_id: str, now: float, *, bump: bool = True) -> None:
        order = self.records["Order"][order_id]
        total = sum((i.values["TotalPrice"] for i in self.order_items(order_id)), Decimal(0))
        order.values["TotalAmount"] = _money(total)
        if bump:
            order.values["SystemModstamp"] = int(now)

    def delete(self, record: Record, now: float, user: str) -> None:
        """Move to the recycle bin; contact roles go with their contact or opportunity, order
        products with their order."""
        record.values.update(IsDeleted=True, SystemModstamp=int(now), LastModifiedById=user)
        if record.sobject == "Order":
            for item in self.order_items(record.id):
                item.values.update(IsDeleted=True, SystemModstamp=int(now))
        if record.sobject == "OrderItem":
            self._roll_up(record.values["OrderId"], now)
        if record.sobject in ("Contact", "Opportunity"):
            link = "ContactId" if record.sobject == "Contact" else "OpportunityId"
            for role in self.live("OpportunityContactRole"):
                if role.values[link] == record.id:
                    role.values.update(IsDeleted=True, SystemModstamp=int(now))

    # ------------------------------------------------------------------ reading

    def render(self, record: Record, version: str, names: list[str] | None = None) -> dict:
        spec = self.schema[record.sobject]
        wanted = [f for f in spec.fields if names is None or f.name in names]
        if names is not None:
            wanted.sort(key=lambda f: names.index(f.name))
        out: dict[str, Any] = {
            "attributes": {
                "type": record.sobject,
                "url": f"/services/data/{version}/sobjects/{record.sobject}/{record.id}",
            }
        }
        for spec_field in wanted:
            value = record.values.get(spec_field.name)
            if spec_field.type == "datetime" and value is not None:
                value = sf_datetime(value)
            out[spec_field.name] = value
        return out


def _stored(spec_field: FieldSpec, value: Any) -> Any:
    if spec_field.type in NUMBER_TYPES and isinstance(value, int):
        return Decimal(value)
    if spec_field.type in ("reference", "id") and isinstance(value, str):
        return to_18(value) or value
    return value


def _same(spec_field: FieldSpec, value: Any, stored: Mapping[str, Any]) -> bool:
    return (
        isinstance(value, str | int | Decimal)
        and not isinstance(value, bool)
        and (_stored(spec_field, value) == stored.get(spec_field.name))
    )


def _integrity(message: str, field_name: str) -> RecordError:
    return RecordError("FIELD_INTEGRITY_EXCEPTION", message, (field_name,))


def _money(value: Decimal) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _undeserializable(kind: str, value: Any) -> None:
    raise ApiError(
        400,
        "JSON_PARSER_ERROR",
        f"Cannot deserialize instance of {kind} from {type(value).__name__} value {value!r} "
        "or request may be missing a required field",
    )
