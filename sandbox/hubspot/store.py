"""One simulated HubSpot account ("portal"): property definitions, records, unique indexes,
associations and write counters, plus the CRM rules the object APIs enforce.

Nothing here knows about HTTP; ``sandbox.hubspot.app`` turns :class:`ApiError` and
:class:`InputError` into HubSpot's JSON bodies. The simulator's lock guards every call.

Facts with sources:
- records are ``SimplePublicObject``s, every property value a string or null:
  https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis
- a contact's email is its unique key; a second create answers 409 "Contact already exists.
  Existing ID: <id>" (HubSpot/hubspot-api-python#51, HubSpot/hubspot-api-nodejs#545)
- search: filter groups OR-ed, filters AND-ed, one sort, limit 200, 10,000 results per query:
  https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
- properties API (type/fieldType, groups, 409 on an existing name):
  https://developers.hubspot.com/docs/api/crm/properties and
  https://legacydocs.hubspot.com/docs/methods/contacts/v2/create_contacts_property
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from sandbox.hubspot.schema import (
    ASSOCIATION_TYPES,
    DEFAULT_CURRENCIES,
    DEFAULT_GROUPS,
    DEFAULT_PIPELINES,
    MAX_UNIQUE_PROPERTIES,
    OBJECT_TYPES,
    PROPERTY_TYPES,
    SINGLE_PARENT,
    PropertySpec,
    default_properties,
)
from sandbox.hubspot.values import ValueProblem, as_text, ms_to_iso, normalise, sort_key

VALIDATION_ERROR = "VALIDATION_ERROR"
OBJECT_NOT_FOUND = "OBJECT_NOT_FOUND"
CONFLICT = "CONFLICT"

SEARCH_RESULT_CAP = 10_000
SEARCH_MAX_LIMIT = 200
LIST_MAX_LIMIT = 100
# Current limits on the search page; a 2024 changelog gave 5/10/25 (UNCONFIRMED which holds).
MAX_FILTER_GROUPS, MAX_FILTERS_PER_GROUP, MAX_FILTERS = 5, 6, 18
OPERATORS = frozenset(
    {
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "BETWEEN",
        "IN",
        "NOT_IN",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    }
)


class ApiError(Exception):
    """A whole request fails: ``status`` plus the fields of HubSpot's error body."""

    def __init__(
        self,
        status: int,
        category: str | None,
        message: str,
        *,
        errors: list[dict] | None = None,
        context: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.errors = errors
        self.context = context


@dataclass
class InputError:
    """One input of a batch (or the only input of a single write) is refused."""

    status: int
    category: str
    message: str
    errors: list[dict] | None = None
    context: dict | None = None

    def raise_(self) -> None:
        raise ApiError(self.status, self.category, self.message, errors=self.errors)


@dataclass
class Record:
    id: int
    object_type: str
    properties: dict[str, str | None]
    created_ms: int
    updated_ms: int
    archived: bool = False
    archived_ms: int | None = None


@dataclass
class WritePlan:
    """A checked write, applied only if the whole request may proceed."""

    record: Record | None  # None: create
    changes: dict[str, str | None]
    associations: list[tuple[str, int, int]] = field(
        default_factory=list
    )  # (to type, to id, type id)


@dataclass
class Applied:
    record: Record
    created: bool
    written: tuple[str, ...]


def validation_error(problems: Sequence[ValueProblem]) -> InputError:
    entries = [p.as_entry() for p in problems]
    return InputError(
        400,
        VALIDATION_ERROR,
        f"Property values were not valid: {json.dumps(entries, separators=(',', ':'))}",
        errors=[
            {"message": p.message, "code": p.error, "context": {"propertyName": [p.name]}}
            for p in problems
        ],
    )


class Portal:
    """A HubSpot account's CRM data. ``now_ms`` is passed in by the caller (injected clock)."""

    def __init__(
        self,
        portal_id: int,
        *,
        currencies: Sequence[str] = DEFAULT_CURRENCIES,
        pipelines: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.portal_id = portal_id
        self.currencies = tuple(currencies)
        self.pipelines: dict[str, tuple[str, ...]] = {
            k: tuple(v) for k, v in (pipelines or DEFAULT_PIPELINES).items()
        }
        self.properties: dict[str, dict[str, PropertySpec]] = {
            t: default_properties(t) for t in OBJECT_TYPES
        }
        self.groups: dict[str, dict[str, dict]] = {
            t: {
                name: {"name": name, "label": label, "displayOrder": -1, "archived": False}
                for name, label in DEFAULT_GROUPS[t]
            }
            for t in OBJECT_TYPES
        }
        self.records: dict[str, dict[int, Record]] = {t: {} for t in OBJECT_TYPES}
        # (object type, property) -> stored value -> record id, live records only.
        self._unique: dict[tuple[str, str], dict[str, int]] = {("contacts", "email"): {}}
        # (type, id) -> (type, id) -> association type ids, both directions stored.
        self._assoc: dict[tuple[str, int], dict[tuple[str, int], set[int]]] = {}
        self.counters: dict[str, dict[str, int]] = {
            t: {"creates": 0, "updates": 0, "unchanged": 0, "archives": 0} for t in OBJECT_TYPES
        }
        self.association_writes = 0
        self._next_id = 1001
        # Called with (object type, "creation" | "propertyChange" | "deletion", record, the
        # properties written (creation) or changed (propertyChange), by_api, now_ms) after
        # every change: the webhooks' feed (sandbox.hubspot.webhooks).
        self.on_change: (
            Callable[[str, str, Record, Mapping[str, str | None], bool, int], None] | None
        ) = None

    # ----------------------------------------------------------------- properties API

    def property_json(self, spec: PropertySpec) -> dict:
        options = spec.options
        if spec.name == "pipeline":
            options = tuple((p, p) for p in self.pipelines)
        elif spec.name == "dealstage":
            options = tuple((s, s) for stages in self.pipelines.values() for s in stages)
        elif spec.name in ("deal_currency_code", "hs_line_item_currency_code"):
            options = tuple((c, c) for c in self.currencies)
        stamp = ms_to_iso(spec.created_ms)
        return {
            "name": spec.name,
            "label": spec.label,
            "type": spec.type,
            "fieldType": spec.field_type,
            "description": spec.description,
            "groupName": spec.group_name,
            "options": [
                {"label": label, "value": value, "displayOrder": i, "hidden": False}
                for i, (value, label) in enumerate(options)
            ],
            "displayOrder": -1,
            "calculated": spec.calculated,
            "externalOptions": False,
            "hasUniqueValue": spec.has_unique_value,
            "hidden": False,
            "hubspotDefined": spec.hubspot_defined,
            "modificationMetadata": {
                "archivable": not spec.hubspot_defined,
                "readOnlyDefinition": spec.hubspot_defined,
                "readOnlyValue": spec.read_only_value or spec.calculated,
            },
            "formField": not spec.read_only_value,
            "createdAt": stamp,
            "updatedAt": stamp,
            "archived": False,
        }

    def create_property(self, object_type: str, body: Mapping, now_ms: int) -> dict:
        """Raises ApiError: 400 for a bad definition, 409 if the name exists."""
        missing = [
            k for k in ("name", "label", "type", "fieldType", "groupName") if not body.get(k)
        ]
        if missing:
            raise ApiError(400, VALIDATION_ERROR, f"Missing required fields: {', '.join(missing)}")
        name = str(body["name"])
        if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
            raise ApiError(
                400,
                VALIDATION_ERROR,
                f"Property name {name} must start with a lowercase letter and contain only "
                "lowercase letters, digits and underscores",
            )
        defs = self.properties[object_type]
        if name in defs:
            raise ApiError(409, CONFLICT, f"A property named '{name}' already exists.")
        type_, field_type = str(body["type"]), str(body["fieldType"])
        if field_type not in PROPERTY_TYPES.get(type_, frozenset()):
            raise ApiError(
                400, VALIDATION_ERROR, f"fieldType {field_type} is not valid for type {type_}"
            )
        if body["groupName"] not in self.groups[object_type]:
            raise ApiError(
                400, VALIDATION_ERROR, f"Property group {body['groupName']} does not exist"
            )
        unique = bool(body.get("hasUniqueValue", False))
        if unique and sum(p.has_unique_value for p in defs.values()) >= MAX_UNIQUE_PROPERTIES:
            raise ApiError(
                400,
                VALIDATION_ERROR,
                f"An object may have at most {MAX_UNIQUE_PROPERTIES} unique-value properties",
            )
        options = tuple(
            (str(o.get("value")), str(o.get("label", o.get("value"))))
            for o in body.get("options") or ()
            if isinstance(o, Mapping)
        )
        if type_ == "enumeration" and field_type != "booleancheckbox" and not options:
            raise ApiError(400, VALIDATION_ERROR, "Enumeration properties need options")
        if field_type == "booleancheckbox" and not options:
            options = (("true", "Yes"), ("false", "No"))
        spec = PropertySpec(
            name=name,
            label=str(body["label"]),
            type=type_,
            field_type=field_type,
            group_name=str(body["groupName"]),
            has_unique_value=unique,
            hubspot_defined=False,
            options=options,
            description=str(body.get("description") or ""),
            created_ms=now_ms,
        )
        defs[name] = spec
        if unique:
            self._unique[(object_type, name)] = {}
        return self.property_json(spec)

    def create_group(self, object_type: str, body: Mapping) -> dict:
        """Raises ApiError: 400 without name/label, 409 if the group exists."""
        if not body.get("name") or not body.get("label"):
            raise ApiError(400, VALIDATION_ERROR, "Property groups need a name and a label")
        name = str(body["name"])
        if name in self.groups[object_type]:
            raise ApiError(409, CONFLICT, f"A property group named '{name}' already exists.")
        group = {
            "name": name,
            "label": str(body["label"]),
            "displayOrder": int(body.get("displayOrder", -1)),
            "archived": False,
        }
        self.groups[object_type][name] = group
        return group

    def unique_properties(self, object_type: str) -> set[str]:
        """Properties usable as ``idProperty``: unique-value ones, and email for contacts."""
        names = {p.name for p in self.properties[object_type].values() if p.has_unique_value}
        if object_type == "contacts":
            names.add("email")
        return names

    # ----------------------------------------------------------------- records

    def public(
        self,
        record: Record,
        names: Iterable[str] | None = None,
        *,
        extra: Mapping[str, object] | None = None,
    ) -> dict:
        """``record`` as a SimplePublicObject with the requested (or default) properties.

        Requested properties that are not defined are left out; defined ones without a value
        are null (https://developers.hubspot.com/docs/api/crm/line-items, "properties").
        """
        spec = OBJECT_TYPES[record.object_type]
        defs = self.properties[record.object_type]
        wanted = spec.defaults_returned if names is None else names
        props = {n: record.properties.get(n) for n in sorted(set(wanted)) if n in defs}
        out: dict[str, object] = {
            "id": str(record.id),
            "properties": props,
            "createdAt": ms_to_iso(record.created_ms),
            "updatedAt": ms_to_iso(record.updated_ms),
            "archived": record.archived,
        }
        if record.archived_ms is not None:
            out["archivedAt"] = ms_to_iso(record.archived_ms)
        if extra:
            out.update(extra)
        return out

    def get(self, object_type: str, record_id: object) -> Record | None:
        try:
            rid = int(str(record_id))
        except ValueError:
            return None
        record = self.records[object_type].get(rid)
        return None if record is None or record.archived else record

    def find(self, object_type: str, value: object, id_property: str | None) -> Record | None:
        """The live record whose ``id_property`` (default: the record id) equals ``value``."""
        if not id_property or id_property == "hs_object_id":
            return self.get(object_type, value)
        index = self._unique.get((object_type, id_property))
        if index is None:
            return None
        text = as_text(value) or ""
        if id_property == "email":
            text = text.lower()
        rid = index.get(text)
        return self.records[object_type][rid] if rid is not None else None

    def _fault(self, spec: PropertySpec, value: str | None, faults: frozenset[str]) -> None:
        if value is not None and value.lower() in faults:
            if spec.name == "email":
                raise ValueProblem(spec.name, "INVALID_EMAIL", f"Email address {value} is invalid")
            # The "validation fault" knob stands for a property validation rule an admin set
            # (enforced on API writes since 2023, see values.py); the code is the simulator's.
            raise ValueProblem(
                spec.name, "INVALID_VALUE", f"{value} is not allowed by a validation rule"
            )

    def plan_write(
        self,
        object_type: str,
        record: Record | None,
        properties: object,
        *,
        faults: frozenset[str] = frozenset(),
        claims: dict[tuple[str, str], int | None] | None = None,
        associations: object = None,
    ) -> WritePlan | InputError:
        """Check a create (``record`` None) or an update of ``properties`` without writing.

        ``claims`` carries unique values claimed by earlier inputs of the same batch (record
        id, or None for a record still to be created).
        """
        if not isinstance(properties, Mapping):
            return InputError(400, VALIDATION_ERROR, "properties must be an object of strings")
        defs = self.properties[object_type]
        problems: list[ValueProblem] = []
        changes: dict[str, str | None] = {}
        for name, raw in properties.items():
            spec = defs.get(name)
            if spec is None:
                problems.append(
                    ValueProblem(name, "PROPERTY_DOESNT_EXIST", f'Property "{name}" does not exist')
                )
                continue
            if spec.read_only_value:
                problems.append(
                    ValueProblem(name, "READ_ONLY_VALUE", f'Property "{name}" is read-only')
                )
                continue
            try:
                value = normalise(spec, raw, options=self._options(spec))
                self._fault(spec, value, faults)
            except ValueProblem as problem:
                problems.append(problem)
                continue
            changes[name] = value
        problems.extend(self._object_rules(object_type, record, changes))
        if problems:
            return validation_error(problems)
        links = self._plan_create_associations(object_type, associations)
        if isinstance(links, InputError):
            return links
        conflict = self._unique_conflict(object_type, record, changes, claims)
        if conflict is not None:
            return conflict
        return WritePlan(record=record, changes=changes, associations=links)

    def _options(self, spec: PropertySpec) -> tuple[str, ...] | None:
        if spec.name == "pipeline":
            return tuple(self.pipelines)
        if spec.name == "dealstage":
            return tuple(s for stages in self.pipelines.values() for s in stages)
        if spec.name in ("deal_currency_code", "hs_line_item_currency_code"):
            return self.currencies
        return None

    def _object_rules(
        self, object_type: str, record: Record | None, changes: dict[str, str | None]
    ) -> list[ValueProblem]:
        """Rules beyond a single property's type: deal stage within its pipeline, required
        deal properties, line item price and calculated amount."""
        current = record.properties if record else {}
        problems: list[ValueProblem] = []
        if object_type == "deals":
            if record is None and "pipeline" not in changes:
                # Accounts' deals land in pipeline "default" unless told otherwise:
                # https://developers.hubspot.com/docs/methods/pipelines/pipelines_overview
                changes["pipeline"] = "default" if "default" in self.pipelines else None
            pipeline = changes.get("pipeline", current.get("pipeline"))
            stage = changes.get("dealstage", current.get("dealstage"))
            if (
                stage is not None
                and pipeline in self.pipelines
                and stage not in self.pipelines[pipeline]
            ):
                allowed = ", ".join(self.pipelines[pipeline])
                problems.append(
                    ValueProblem(
                        "dealstage",
                        "INVALID_OPTION",
                        f"{stage} was not one of the allowed options: [{allowed}]",
                    )
                )
            if record is None:
                # Required on create (HS-OBJ); the error code is the simulator's choice.
                for name in ("dealname", "dealstage", "pipeline"):
                    if not changes.get(name):
                        problems.append(ValueProblem(name, "REQUIRED", f"{name} is required"))
        if object_type == "line_items":
            price = changes.get("price", current.get("price"))
            if price is not None and Decimal(price) < 0:
                problems.append(ValueProblem("price", "INVALID_PRICE", "Price cannot be negative"))
            elif not problems:
                self._derive_line_item_amount(current, changes)
        return problems

    @staticmethod
    def _derive_line_item_amount(current: Mapping, changes: dict[str, str | None]) -> None:
        """``amount`` ("Net price") is calculated by HubSpot: quantity x (unit price - unit
        discount), less the discount percentage. The exact formula is UNCONFIRMED beyond the
        docs' "quantity times the unit price"; a written ``amount`` is overwritten."""

        def number(name: str) -> Decimal | None:
            value = changes.get(name, current.get(name))
            return Decimal(value) if value is not None else None

        quantity, price = number("quantity"), number("price")
        if quantity is None or price is None:
            changes.pop("amount", None)
            return
        unit = price - (number("discount") or Decimal(0))
        total = quantity * unit * (1 - (number("hs_discount_percentage") or Decimal(0)) / 100)
        changes["amount"] = format(total.normalize(), "f") if total else "0"

    def _unique_conflict(
        self,
        object_type: str,
        record: Record | None,
        changes: Mapping[str, str | None],
        claims: dict[tuple[str, str], int | None] | None,
    ) -> InputError | None:
        own = record.id if record else None
        for name, value in changes.items():
            index = self._unique.get((object_type, name))
            if index is None or value is None:
                continue
            owner = index.get(value)
            if owner is not None and owner != own:
                return self._duplicate(object_type, name, value, owner)
            if claims is not None:
                key = (name, value)
                # None marks a record still to be created by an earlier input.
                if key in claims and (claims[key] is None or claims[key] != own):
                    return self._duplicate(object_type, name, value, claims[key])
        if claims is not None:
            for name, value in changes.items():
                if (object_type, name) in self._unique and value is not None:
                    claims[(name, value)] = own
        return None

    @staticmethod
    def _duplicate(object_type: str, name: str, value: str, owner: int | None) -> InputError:
        if object_type == "contacts" and name == "email":
            if owner is None:
                return InputError(400, VALIDATION_ERROR, f"Duplicate email {value} in batch input")
            return InputError(409, CONFLICT, f"Contact already exists. Existing ID: {owner}")
        # Wording of HubSpot's unique-value violation is UNCONFIRMED; the code is ours.
        holder = f"record {owner}" if owner is not None else "another input of this batch"
        problem = ValueProblem(
            name, "DUPLICATE_VALUE", f"{value} already has that value ({holder})."
        )
        return validation_error([problem])

    def apply(
        self, object_type: str, plan: WritePlan, now_ms: int, *, by_api: bool = True
    ) -> Applied:
        """Write a checked plan. Creates stamp createdate/hs_object_id; updates that change
        nothing leave the modified date alone (no new property version). Only API writes
        (``by_api``) count in ``counters``; edits made "as a user" do not."""
        tally = (
            self.counters[object_type] if by_api else {"creates": 0, "updates": 0, "unchanged": 0}
        )
        spec = OBJECT_TYPES[object_type]
        stamp = ms_to_iso(now_ms)
        record = plan.record
        if record is None:
            record = Record(
                id=self._next_id,
                object_type=object_type,
                properties={},
                created_ms=now_ms,
                updated_ms=now_ms,
            )
            self._next_id += 1
            self.records[object_type][record.id] = record
            base = {
                "createdate": stamp,
                "hs_object_id": str(record.id),
                spec.modified_property: stamp,
            }
            self._set(record, {**base, **plan.changes})
            tally["creates"] += 1
            created = True
            self._changed(object_type, "creation", record, plan.changes, by_api, now_ms)
        else:
            changed = {k: v for k, v in plan.changes.items() if record.properties.get(k) != v}
            if changed:
                self._set(record, {**changed, spec.modified_property: stamp})
                record.updated_ms = now_ms
                tally["updates"] += 1
                self._changed(object_type, "propertyChange", record, changed, by_api, now_ms)
            else:
                tally["unchanged"] += 1
            created = False
        for to_type, to_id, type_id in plan.associations:
            self._link(object_type, record.id, to_type, to_id, type_id)
        return Applied(record=record, created=created, written=tuple(plan.changes))

    def _changed(
        self,
        object_type: str,
        kind: str,
        record: Record,
        properties: Mapping[str, str | None],
        by_api: bool,
        now_ms: int,
    ) -> None:
        if self.on_change is not None:
            self.on_change(object_type, kind, record, dict(properties), by_api, now_ms)

    def _set(self, record: Record, values: Mapping[str, str | None]) -> None:
        for name, value in values.items():
            index = self._unique.get((record.object_type, name))
            if index is not None:
                old = record.properties.get(name)
                if old is not None and index.get(old) == record.id:
                    del index[old]
                if value is not None:
                    index[value] = record.id
            record.properties[name] = value

    def archive(
        self, object_type: str, record_id: object, now_ms: int, *, by_api: bool = True
    ) -> bool:
        record = self.get(object_type, record_id)
        if record is None:
            return False
        for (type_, name), index in self._unique.items():
            value = record.properties.get(name)
            if type_ == object_type and value is not None and index.get(value) == record.id:
                del index[value]
        record.archived = True
        record.archived_ms = now_ms
        if by_api:
            self.counters[object_type]["archives"] += 1
        self._changed(object_type, "deletion", record, {}, by_api, now_ms)
        return True

    def list_page(
        self,
        object_type: str,
        *,
        limit: int,
        after: str | None,
        names: Sequence[str] | None,
        archived: bool,
        link: str,
    ) -> dict:
        """One page of the list endpoint, ordered by id; ``after`` is the next id to return.
        ``link`` is the endpoint's URL, for ``paging.next.link``."""
        start = 0
        if after:
            if not after.isdigit():
                raise ApiError(400, VALIDATION_ERROR, f"Invalid 'after' value: {after}")
            start = int(after)
        rows = [
            r
            for rid, r in sorted(self.records[object_type].items())
            if rid >= start and r.archived == archived
        ]
        page = rows[:limit]
        body: dict[str, object] = {"results": [self.public(r, names) for r in page]}
        if len(rows) > limit:
            nxt = str(rows[limit].id)
            body["paging"] = {"next": {"after": nxt, "link": f"{link}?after={nxt}&limit={limit}"}}
        return body

    # ----------------------------------------------------------------- search

    def search(self, object_type: str, body: Mapping) -> dict:
        """POST /crm/v3/objects/{type}/search. Raises ApiError 400 for a bad request or paging
        past 10,000 results."""
        defs = self.properties[object_type]
        groups = body.get("filterGroups") or []
        if not isinstance(groups, list) or len(groups) > MAX_FILTER_GROUPS:
            raise ApiError(
                400, VALIDATION_ERROR, f"At most {MAX_FILTER_GROUPS} filterGroups allowed"
            )
        total_filters = 0
        for group in groups:
            filters = group.get("filters") if isinstance(group, Mapping) else None
            if not isinstance(filters, list) or len(filters) > MAX_FILTERS_PER_GROUP:
                raise ApiError(
                    400,
                    VALIDATION_ERROR,
                    f"At most {MAX_FILTERS_PER_GROUP} filters per group allowed",
                )
            total_filters += len(filters)
            for f in filters:
                self._check_filter(defs, f)
        if total_filters > MAX_FILTERS:
            raise ApiError(400, VALIDATION_ERROR, f"At most {MAX_FILTERS} filters allowed")
        sorts = body.get("sorts") or []
        if not isinstance(sorts, list) or len(sorts) > 1:
            raise ApiError(400, VALIDATION_ERROR, "Only one sort is allowed")
        limit = body.get("limit", 10)
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 0 < limit <= SEARCH_MAX_LIMIT
        ):
            raise ApiError(400, VALIDATION_ERROR, f"limit must be between 1 and {SEARCH_MAX_LIMIT}")
        after = str(body.get("after") or "0")
        if not after.isdigit():
            raise ApiError(400, VALIDATION_ERROR, f"Invalid 'after' value: {after}")
        offset = int(after)
        if offset >= SEARCH_RESULT_CAP:
            raise ApiError(
                400,
                VALIDATION_ERROR,
                f"The search API returns at most {SEARCH_RESULT_CAP} results per query; "
                f"'after' {offset} is beyond it",
            )
        live = [r for r in self.records[object_type].values() if not r.archived]
        matches = [
            r
            for r in live
            if not groups
            or any(all(self._matches(defs, r, f) for f in g["filters"]) for g in groups)
        ]
        key, descending = self._sorter(defs, sorts)
        matches.sort(key=key, reverse=descending)
        end = min(offset + limit, len(matches), SEARCH_RESULT_CAP)
        names = body.get("properties") or None
        out: dict[str, object] = {
            "total": len(matches),
            "results": [self.public(r, names) for r in matches[offset:end]],
        }
        if end < len(matches):
            out["paging"] = {"next": {"after": str(end)}}
        return out

    @staticmethod
    def _check_filter(defs: Mapping[str, PropertySpec], f: object) -> None:
        if not isinstance(f, Mapping) or f.get("operator") not in OPERATORS:
            raise ApiError(400, VALIDATION_ERROR, f"Invalid filter: {f!r}")
        if f.get("propertyName") not in defs:
            raise ApiError(
                400, VALIDATION_ERROR, f"Property {f.get('propertyName')!r} does not exist"
            )
        op = f["operator"]
        if op in ("IN", "NOT_IN") and not isinstance(f.get("values"), list):
            raise ApiError(400, VALIDATION_ERROR, f"{op} filters need 'values'")
        if op == "BETWEEN" and ("value" not in f or "highValue" not in f):
            raise ApiError(400, VALIDATION_ERROR, "BETWEEN filters need 'value' and 'highValue'")
        single = ("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
        if op in single and "value" not in f:
            raise ApiError(400, VALIDATION_ERROR, f"{op} filters need a 'value'")

    @staticmethod
    def _matches(defs: Mapping[str, PropertySpec], record: Record, f: Mapping) -> bool:
        spec = defs[f["propertyName"]]
        value = record.properties.get(spec.name)
        op = f["operator"]
        if op == "HAS_PROPERTY":
            return value is not None
        if op == "NOT_HAS_PROPERTY":
            return value is None
        if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
            pattern = (as_text(f["value"]) or "").lower()
            tokens = re.split(r"[^\w@.*-]+", (value or "").lower())
            found = any(fnmatch.fnmatchcase(t, pattern) for t in tokens if t)
            return found if op == "CONTAINS_TOKEN" else not found
        mine = sort_key(spec, value)
        if op in ("IN", "NOT_IN"):
            keys = {sort_key(spec, as_text(v)) for v in f["values"]}
            return (value is not None and mine in keys) if op == "IN" else mine not in keys
        if op == "NEQ":
            return value is None or mine != sort_key(spec, as_text(f["value"]))
        if value is None:
            return False
        if op == "BETWEEN":
            low, high = sort_key(spec, as_text(f["value"])), sort_key(spec, as_text(f["highValue"]))
            return low <= mine <= high
        other = sort_key(spec, as_text(f["value"]))
        return {
            "EQ": mine == other,
            "LT": mine < other,
            "LTE": mine <= other,
            "GT": mine > other,
            "GTE": mine >= other,
        }[op]

    @staticmethod
    def _sorter(
        defs: Mapping[str, PropertySpec], sorts: list
    ) -> tuple[Callable[[Record], tuple], bool]:
        """Sort key and direction for search results; by default, by creation, oldest first.
        Records without a value come last in ascending order."""
        if not sorts:
            return (lambda r: (r.created_ms, r.id)), False
        rule = sorts[0]
        if isinstance(rule, str):
            name, descending = rule.lstrip("-"), rule.startswith("-")
        elif isinstance(rule, Mapping):
            name = str(rule.get("propertyName"))
            descending = str(rule.get("direction", "ASCENDING")).upper() == "DESCENDING"
        else:
            raise ApiError(400, VALIDATION_ERROR, f"Invalid sort: {rule!r}")
        if name not in defs:
            raise ApiError(400, VALIDATION_ERROR, f"Property {name!r} does not exist")
        spec = defs[name]
        return (lambda r: (*sort_key(spec, r.properties.get(name)), r.id)), descending

    # ----------------------------------------------------------------- associations

    def association_type(self, from_type: str, to_type: str) -> int | None:
        return ASSOCIATION_TYPES.get((from_type, to_type))

    def _plan_create_associations(
        self, object_type: str, associations: object
    ) -> list[tuple[str, int, int]] | InputError:
        """The ``associations`` of a create body: [{to:{id}, types:[{category, typeId}]}]."""
        if not associations:
            return []
        if not isinstance(associations, list):
            return InputError(400, VALIDATION_ERROR, "associations must be a list")
        planned: list[tuple[str, int, int]] = []
        for entry in associations:
            to = entry.get("to") if isinstance(entry, Mapping) else None
            types = entry.get("types") if isinstance(entry, Mapping) else None
            if not isinstance(to, Mapping) or not isinstance(types, list):
                return InputError(400, VALIDATION_ERROR, f"Invalid association: {entry!r}")
            for t in types:
                type_id = t.get("associationTypeId") if isinstance(t, Mapping) else None
                to_type = next(
                    (
                        b
                        for (a, b), tid in ASSOCIATION_TYPES.items()
                        if a == object_type and tid == type_id
                    ),
                    None,
                )
                if to_type is None:
                    return InputError(
                        400,
                        VALIDATION_ERROR,
                        f"association type id {type_id} does not exist from {object_type}",
                    )
                target = self.get(to_type, to.get("id"))
                if target is None:
                    return InputError(
                        404, OBJECT_NOT_FOUND, f"No {to_type} with id {to.get('id')} exists"
                    )
                planned.append((to_type, target.id, int(type_id)))
        return planned

    def check_association(
        self,
        from_type: str,
        from_id: object,
        to_type: str,
        to_id: object,
        type_id: int,
        category: str,
    ) -> tuple[int, int] | InputError:
        """Validate one association; returns the two record ids."""
        expected = self.association_type(from_type, to_type)
        if expected is None:
            return InputError(
                400,
                VALIDATION_ERROR,
                f"No association types are defined from {from_type} to {to_type}",
            )
        if category != "HUBSPOT_DEFINED" or type_id != expected:
            return InputError(
                400,
                VALIDATION_ERROR,
                f"association type id {type_id} ({category}) does not exist from "
                f"{from_type} to {to_type}",
            )
        source, target = self.get(from_type, from_id), self.get(to_type, to_id)
        if source is None:
            return _not_found(from_type, from_id)
        if target is None:
            return _not_found(to_type, to_id)
        for child_type, child, parent_type, parent in (
            (from_type, source, to_type, target),
            (to_type, target, from_type, source),
        ):
            if SINGLE_PARENT.get(child_type) == parent_type:
                parents = [
                    i for (t, i) in self._assoc.get((child_type, child.id), {}) if t == parent_type
                ]
                if parents and parents != [parent.id]:
                    return InputError(
                        400,
                        VALIDATION_ERROR,
                        f"Line item {child.id} already belongs to {parent_type[:-1]} {parents[0]}; "
                        "line items belong to one single parent object",
                    )
        return source.id, target.id

    def _link(self, from_type: str, from_id: int, to_type: str, to_id: int, type_id: int) -> None:
        """Store an association in both directions (HubSpot shows it from either side)."""
        reverse = self.association_type(to_type, from_type)
        self._assoc.setdefault((from_type, from_id), {}).setdefault((to_type, to_id), set()).add(
            type_id
        )
        if reverse is not None:
            self._assoc.setdefault((to_type, to_id), {}).setdefault(
                (from_type, from_id), set()
            ).add(reverse)
        self.association_writes += 1

    def associate(self, from_type: str, from_id: int, to_type: str, to_id: int) -> None:
        """Create the default association between two checked records."""
        type_id = self.association_type(from_type, to_type)
        assert type_id is not None
        self._link(from_type, from_id, to_type, to_id, type_id)

    def unlink(self, from_type: str, from_id: object, to_type: str, to_id: object) -> None:
        source, target = self.get(from_type, from_id), self.get(to_type, to_id)
        if source is None or target is None:
            return
        self._assoc.get((from_type, source.id), {}).pop((to_type, target.id), None)
        self._assoc.get((to_type, target.id), {}).pop((from_type, source.id), None)

    def associated(self, from_type: str, from_id: int, to_type: str) -> list[dict]:
        """``[{toObjectId, associationTypes}]`` of live records, by id."""
        out = []
        for (t, i), type_ids in sorted(self._assoc.get((from_type, from_id), {}).items()):
            if t != to_type or self.get(t, i) is None:
                continue
            out.append(
                {
                    "toObjectId": str(i),
                    "associationTypes": [
                        {"category": "HUBSPOT_DEFINED", "typeId": tid, "label": None}
                        for tid in sorted(type_ids)
                    ],
                }
            )
        return out

    # ----------------------------------------------------------------- sandbox views

    def dump(self) -> dict:
        """Every record (archived too, all properties) and every association, for tests."""
        objects = {
            t: [
                self.public(r, sorted(k for k, v in r.properties.items() if v is not None))
                for _, r in sorted(records.items())
            ]
            for t, records in self.records.items()
        }
        associations = [
            {
                "fromObjectType": ft,
                "fromObjectId": str(fi),
                "toObjectType": tt,
                "toObjectId": str(ti),
                "associationTypeIds": sorted(type_ids),
            }
            for (ft, fi), targets in sorted(self._assoc.items())
            for (tt, ti), type_ids in sorted(targets.items())
        ]
        custom = {
            t: sorted(n for n, p in defs.items() if not p.hubspot_defined)
            for t, defs in self.properties.items()
        }
        return {
            "portalId": self.portal_id,
            "objects": objects,
            "associations": associations,
            "customProperties": custom,
        }

    def summary(self) -> dict:
        """The portal in the CRM-neutral shape every CRM simulator's ``/summary`` shares (what
        the demo and the end-to-end tests compare with the store): live contacts, and live
        deals as orders with their contacts and their number of live line items."""

        def linked(deal: Record, to_type: str) -> list[str]:
            return [
                str(i)
                for (t, i) in sorted(self._assoc.get(("deals", deal.id), {}))
                if t == to_type and self.get(t, i) is not None
            ]

        return {
            "contacts": [
                {
                    "id": str(c.id),
                    "email": c.properties.get("email"),
                    "first_name": c.properties.get("firstname"),
                    "last_name": c.properties.get("lastname"),
                }
                for c in _live(self.records["contacts"])
            ],
            "orders": [
                {
                    "id": str(d.id),
                    "external_id": d.properties.get("tandem_order_id"),
                    "amount": d.properties.get("amount"),
                    "currency": d.properties.get("deal_currency_code"),
                    "contact_ids": linked(d, "contacts"),
                    "line_items": len(linked(d, "line_items")),
                }
                for d in _live(self.records["deals"])
            ],
        }


def _live(records: Mapping[int, Record]) -> list[Record]:
    return [r for _, r in sorted(records.items()) if not r.archived]


def _not_found(object_type: str, object_id: object) -> InputError:
    singular = OBJECT_TYPES[object_type].singular
    return InputError(
        404,
        OBJECT_NOT_FOUND,
        f"No {singular} with id {object_id} exists",
        context={"ids": [str(object_id)]},
    )


def with_context(error: InputError, context: Mapping[str, object]) -> InputError:
    """``error`` carrying the fields that identify its input in a 207 body."""
    return replace(error, context={**(error.context or {}), **context})
