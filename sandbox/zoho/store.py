"""One simulated Zoho CRM org: its fields, records, unique indexes, and the rules the record
APIs enforce (types, mandatory and unique fields, upsert matching, paging).

Nothing here knows about HTTP; ``sandbox.zoho.app`` turns :class:`ApiError` into Zoho's
top-level error body and per-record result dicts into ``{"data": [...]}``. The simulator's lock
guards every call. Facts and sources (shared/reference/api-crms.md section 3):
- per-record results in input order, ``{code, details, message, status}``; success details
  ``{id, Created_Time, Modified_Time, Created_By, Modified_By}``; upsert adds ``action`` and
  ``duplicate_field``: https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html
- ``MANDATORY_NOT_FOUND`` with ``{api_name, json_path}``; ``INVALID_DATA``;
  https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html
- ``DUPLICATE_DATA`` with ``details.duplicate_record {id, Owner, module}``: zoho/crm-oas
  createRecords 400 duplicate-data example
- an id that does not exist: ``INVALID_DATA``, ``api_name: "id"``, "the id given seems to be
  invalid" (update-records.html examples)
- paging: ``per_page`` <= 200, ``page`` only within the first 2,000 records, then
  ``page_token`` (bound to the query, 24 h, up to 100,000 records); ``fields`` mandatory;
  ``If-Modified-Since``: https://www.zoho.com/crm/developer/docs/api/v8/get-records.html
- datetimes ISO 8601 with offset and no milliseconds; ids long numeric strings.
- subforms (the ``Ordered_Items`` line items of Sales_Orders) on update, v7 update-subforms.html
  (ZO-V7MIRROR ``SurajKumar2235/Crm_ChatBOT`` api_docs/Subform_Data_384.md; the v8 page,
  https://www.zoho.com/crm/developer/docs/api/v8/update-subforms.html, opens the same way): a row
  sent with the ``id`` of an existing row updates that row (fields not sent are kept); a row
  without ``id`` is appended ("the subform will now have two rows"); ``"_delete": null`` on a
  row with an ``id`` deletes it; an empty list deletes every row; rows not sent are kept. The v2
  page (https://www.zoho.com/crm/developer/docs/api/v2/update-subforms.html) said instead that
  rows not named by ``id`` are deleted; which one v8 line items follow is UNCONFIRMED, so the
  ``subform_update`` knob switches to that behaviour ("replace"). Clearing the mandatory line
  items (``[]``) is refused with MANDATORY_NOT_FOUND (UNCONFIRMED). An ``id`` that is not a row
  of the record: INVALID_DATA naming ``id`` at the row's json_path (UNCONFIRMED).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.zoho.schema import (
    DEFAULT_CURRENCIES,
    JSON_TYPES,
    MODULES,
    SUBFORMS,
    SYSTEM_DUPLICATE_CHECK,
    SYSTEM_FIELDS,
    FieldSpec,
    User,
    default_fields,
)

MAX_PER_PAGE = 200
DISCRETE_PAGE_LIMIT = 2_000  # records reachable with ``page`` alone
TOKEN_PAGE_LIMIT = 100_000  # records reachable with ``page_token``
PAGE_TOKEN_TTL = 24 * 3600
MAX_FIELDS = 50
MAX_IDS = 100

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
# The field that names a record when another record's lookup shows it as ``{name, id}``.
NAME_FIELDS = {
    "Deals": "Deal_Name",
    "Accounts": "Account_Name",
    "Products": "Product_Name",
    "Sales_Orders": "Subject",
}
# Values a new record gets when the write leaves them out.
INSERT_DEFAULTS: dict[str, dict[str, Any]] = {"Products": {"Product_Active": True}}
CENT = Decimal("0.01")


class ApiError(Exception):
    """The whole request fails: HTTP ``status`` and Zoho's ``{code, details, message}``."""

    def __init__(
        self, status: int, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = dict(details or {})

    def body(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "details": self.details,
            "message": self.message,
            "status": "error",
        }


def record_error(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": "error"}


class _Refused(Exception):
    """One record of a write is refused; carries its per-record result."""

    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["code"])
        self.result = result


@dataclass
class Record:
    id: str
    module: str
    values: dict[str, Any]  # lookups and owners stored as the id string
    created: int  # epoch seconds (Zoho shows no milliseconds)
    modified: int
    created_by: str
    modified_by: str
    deleted: bool = False


@dataclass
class PageToken:
    bound_to: tuple
    offset: int
    expires_at: float


@dataclass
class WriteOptions:
    """Per-call switches the simulator's knobs decide."""

    faults: frozenset[str] = frozenset()
    unknown_fields: str = "error"  # "error": INVALID_DATA; "ignore": dropped silently
    by: str = "integration"  # which user writes: "integration" (API) or "rep" (the UI)
    subform_update: str = "append"  # rows not sent on update: "append" keeps, "replace" drops


@dataclass
class RowEdit:
    """One row of a subform as a write sends it, checked but not yet applied."""

    row_id: str | None
    delete: bool
    values: dict[str, Any]
    path: str


@dataclass
class SubformEdit:
    """A subform's rows as a write sends them; resolved against the record's rows once the
    write knows which record it changes (an upsert learns that late)."""

    rows: list[RowEdit]


def iso(epoch: int, zone: ZoneInfo) -> str:
    """``2026-05-02T11:17:33+05:30``: the org's offset, no milliseconds."""
    return datetime.fromtimestamp(epoch, tz=zone).replace(microsecond=0).isoformat()


class Org:
    """A Zoho CRM org's data. ``now`` (epoch seconds) is passed in by the caller."""

    def __init__(
        self,
        org_id: str,
        *,
        id_prefix: int,
        custom_fields: bool = True,
        time_zone: str = "Asia/Kolkata",
        currencies: Sequence[str] = DEFAULT_CURRENCIES,
        extra_unique: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.org_id = org_id
        self.zone = ZoneInfo(time_zone)
        self.currencies = tuple(currencies)
        self.fields: dict[str, dict[str, FieldSpec]] = {
            m: default_fields(m, custom_fields=custom_fields) for m in MODULES
        }
        self.subform_fields: dict[str, dict[str, FieldSpec]] = {
            s: default_fields(s, custom_fields=custom_fields) for s in SUBFORMS
        }
        for module, names in (extra_unique or {}).items():
            for name in names:
                self.fields[module][name] = replace(self.field(module, name), unique=True)
        self.records: dict[str, dict[str, Record]] = {m: {} for m in MODULES}
        self._id_prefix = id_prefix  # 7 digits: ids are 19-digit numeric strings
        self._next = 1_000_001
        self.users = {
            "integration": User(
                self._new_id(), "Tandem Integration", f"integration@org{org_id}.example"
            ),
            "rep": User(self._new_id(), "Riya Sales", f"riya.sales@org{org_id}.example"),
        }
        self._users_by_id = {u.id: u for u in self.users.values()}
        # Called with (module, operation, record id, changed field names) after every change
        # of a record, operation "insert", "update" or "delete": the watch channels' feed
        # (sandbox.zoho.notifications). Writes by the API and by a rep alike.
        self.on_change: Callable[[str, str, str, list[str]], None] | None = None
        self.field_ids = {
            (m, name): self._new_id()
            for m, specs in (self.fields | self.subform_fields).items()
            for name in specs
        }
        self.writes = {m: {"inserts": 0, "updates": 0, "deletes": 0} for m in MODULES}

    # ----------------------------------------------------------------- metadata

    def module(self, name: str) -> str:
        if name not in self.fields:
            raise ApiError(
                400,
                "INVALID_MODULE",
                "the module name given seems to be invalid",
                {"resource_path_index": 0},
            )
        return name

    def field_specs(self, name: str) -> dict[str, FieldSpec]:
        """The fields of a module or of a subform's rows (for the fields metadata API)."""
        if name in self.subform_fields:
            return self.subform_fields[name]
        return self.fields[self.module(name)]

    def field(self, module: str, name: str) -> FieldSpec:
        spec = self.fields[self.module(module)].get(name)
        if spec is None:
            raise ValueError(f"{module} has no field {name}")
        return spec

    def field_json(self, module: str, spec: FieldSpec) -> dict[str, Any]:
        lookup: dict[str, Any] = {}
        if spec.lookup_module:
            lookup = {
                "module": {
                    "api_name": spec.lookup_module,
                    "id": self._module_id(spec.lookup_module),
                },
                "display_label": spec.lookup_module,
            }
        return {
            "api_name": spec.api_name,
            "field_label": spec.label,
            "display_label": spec.label,
            "id": self.field_ids[(module, spec.api_name)],
            "data_type": spec.data_type,
            "json_type": JSON_TYPES[spec.data_type],
            "custom_field": spec.custom,
            "system_mandatory": spec.mandatory,
            "read_only": spec.read_only,
            "field_read_only": spec.read_only,
            "length": spec.length,
            # crm-oas fields.json: ``unique`` is an object, ``{casesensitive}`` on unique fields
            # and ``{}`` on the others.
            "unique": {"casesensitive": str(spec.case_sensitive).lower()} if spec.unique else {},
            "lookup": lookup,
            "pick_list_values": [
                {"display_value": v, "actual_value": v, "sequence_number": i + 1}
                for i, v in enumerate(
                    self.currencies if spec.api_name == "Currency" else spec.picklist
                )
            ],
            "currency": {"rounding_option": "normal", "precision": 2}
            if spec.data_type == "currency" or spec.formula
            else {},
            "subform": {"module": spec.subform, "id": self._module_id(spec.subform)}
            if spec.subform
            else {},
            "formula": {"return_type": "currency", "expression": spec.formula}
            if spec.formula
            else {},
        }

    def _module_id(self, module: str) -> str:
        return f"{self._id_prefix}{(MODULES + SUBFORMS).index(module) + 1:012d}"

    def _new_id(self) -> str:
        self._next += 1
        return f"{self._id_prefix}{self._next:012d}"

    # ----------------------------------------------------------------- rendering

    def user(self, key_or_id: str) -> User:
        return self.users.get(key_or_id) or self._users_by_id[key_or_id]

    def render(self, record: Record, names: Iterable[str] | None = None) -> dict[str, Any]:
        """A record as GET returns it: ``id`` plus the requested fields (all when None)."""
        specs = self.fields[record.module]
        wanted = list(specs) if names is None else [n for n in names if n in specs]
        out: dict[str, Any] = {"id": record.id}
        for name in wanted:
            out[name] = self._value(record, specs[name])
        if names is None:
            out["$approved"] = True
            out["$editable"] = True
        return out

    def _value(self, record: Record, spec: FieldSpec) -> Any:
        name = spec.api_name
        if name == "Created_Time":
            return iso(record.created, self.zone)
        if name == "Modified_Time":
            return iso(record.modified, self.zone)
        if name == "Created_By":
            return self.user(record.created_by).lookup()
        if name == "Modified_By":
            return self.user(record.modified_by).lookup()
        if name == "Full_Name":
            parts = [record.values.get("First_Name"), record.values.get("Last_Name")]
            return " ".join(p for p in parts if p) or None
        raw = record.values.get(name)
        if raw is None:
            return None
        if spec.data_type == "ownerlookup":
            return self.user(raw).lookup()
        if spec.data_type == "lookup":
            target = self.records[spec.lookup_module or ""].get(raw)
            return {"name": self._display_name(target), "id": raw}
        if spec.data_type == "subform":
            return [self._render_row(record, spec.subform or "", row) for row in raw]
        return raw

    def _render_row(self, parent: Record, subform: str, row: Mapping[str, Any]) -> dict:
        out: dict[str, Any] = {"id": row["id"]}
        for name, spec in self.subform_fields[subform].items():
            raw = row.get(name)
            if name == "Parent_Id":
                out[name] = {"name": self._display_name(parent), "id": parent.id}
            elif raw is None:
                out[name] = None
            elif spec.data_type == "datetime":
                out[name] = iso(raw, self.zone)
            elif spec.data_type == "lookup":
                target = self.records[spec.lookup_module or ""].get(raw)
                out[name] = {"name": self._display_name(target), "id": raw}
            else:
                out[name] = raw
        return out

    def _display_name(self, record: Record | None) -> str | None:
        if record is None:
            return None
        if record.module == "Contacts":
            return self._value(record, self.fields["Contacts"]["Full_Name"])
        return record.values.get(NAME_FIELDS[record.module])

    def success_details(self, record: Record) -> dict[str, Any]:
        return {
            "Modified_Time": iso(record.modified, self.zone),
            "Modified_By": self.user(record.modified_by).lookup(email=False),
            "Created_Time": iso(record.created, self.zone),
            "id": record.id,
            "Created_By": self.user(record.created_by).lookup(email=False),
        }

    def live(self, module: str) -> list[Record]:
        return [r for r in self.records[module].values() if not r.deleted]

    def get(self, module: str, record_id: str) -> Record | None:
        record = self.records[module].get(str(record_id))
        return None if record is None or record.deleted else record

    # ----------------------------------------------------------------- values

    def _convert(self, module: str, spec: FieldSpec, raw: Any, path: str) -> Any:
        """JSON input to the stored value. Raises _Refused (INVALID_DATA)."""

        def invalid(expected: str, message: str = "invalid data", **extra: Any) -> _Refused:
            return _Refused(
                record_error(
                    "INVALID_DATA",
                    message,
                    expected_data_type=expected,
                    api_name=spec.api_name,
                    json_path=path,
                    **extra,
                )
            )

        if raw is None:
            return None
        kind = spec.data_type
        if kind in ("text", "textarea", "email", "phone", "picklist"):
            if not isinstance(raw, str):
                raise invalid(kind)
            if spec.length is not None and len(raw) > spec.length:
                raise invalid(kind, "invalid data", maximum_length=spec.length)
            if kind == "email" and raw and not _EMAIL.match(raw):
                raise invalid(kind)
            if spec.api_name == "Currency" and raw not in self.currencies:
                raise invalid(kind)
            return raw
        if kind == "boolean":
            if not isinstance(raw, bool):
                raise invalid(kind)
            return raw
        if kind in ("currency", "double", "integer"):
            # Numbers must be JSON numbers; request bodies are parsed with Decimal, so amounts
            # stay exact (a "12.50" string is refused, as Zoho refuses text in a number field).
            if isinstance(raw, bool) or not isinstance(raw, int | Decimal):
                raise invalid(kind)
            return raw
        if kind == "date":
            try:
                if not isinstance(raw, str):
                    raise ValueError
                date.fromisoformat(raw)
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
                    raise ValueError
            except ValueError:
                raise invalid(kind) from None
            return raw
        if kind == "lookup":
            target_id = raw.get("id") if isinstance(raw, Mapping) else None
            if self.get(spec.lookup_module or "", str(target_id or "")) is None:
                raise invalid("jsonobject")
            return str(target_id)
        if kind == "ownerlookup":
            owner_id = raw.get("id") if isinstance(raw, Mapping) else None
            if str(owner_id) not in self._users_by_id:
                raise invalid("jsonobject")
            return str(owner_id)
        raise invalid(kind)

    def _unique_key(self, spec: FieldSpec, value: Any) -> str:
        text = str(value)
        return text if spec.case_sensitive else text.lower()

    def find_by(self, module: str, name: str, value: Any) -> Record | None:
        """The live record whose ``name`` equals ``value`` (case-insensitive unless the field
        is a case-sensitive unique field); the oldest if several match."""
        spec = self.fields[module][name]
        key = self._unique_key(spec, value)
        for record in self.live(module):
            stored = record.values.get(name)
            if stored is not None and self._unique_key(spec, stored) == key:
                return record
        return None

    # ----------------------------------------------------------------- writes

    def write(
        self,
        module: str,
        operation: str,
        items: Sequence[Any],
        now: int,
        options: WriteOptions,
        duplicate_check_fields: Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Insert, update or upsert ``items``, each on its own; per-record results in order.

        Records are applied one after another, so a later item of the same call sees an
        earlier one (an upsert of the same email twice updates the record the first created).
        """
        checks: list[str] = []
        if operation == "upsert":
            checks = self.duplicate_checks(module, duplicate_check_fields)
        results = []
        for index, item in enumerate(items):
            try:
                results.append(
                    self._write_one(module, operation, index, item, now, options, checks)
                )
            except _Refused as refused:
                results.append(refused.result)
        return results

    def user_unique_fields(self, module: str) -> list[str]:
        """Fields an admin marked "Do not allow duplicate values": every unique field but the
        module's system-defined duplicate check (a standard field such as Phone counts too)."""
        system = SYSTEM_DUPLICATE_CHECK.get(module, ())
        return [
            s.api_name
            for s in self.fields[module].values()
            if s.unique and s.api_name not in system
        ]

    def duplicate_checks(self, module: str, given: Sequence[str] | None) -> list[str]:
        """The fields an upsert matches by, in order. upsert-records.html "How does the
        duplicate check work?" (v7 text, ZO-V7MIRROR ``SurajKumar2235/Crm_ChatBOT``
        api_docs/Upsert_Records_158.md; the review cites the same section of the v8
        page, https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html): the given
        fields come first, then *every other user-defined unique field* (``["Email"]`` checks
        Email, unique1, unique2); a system-defined field is checked only when given, or when
        nothing is given (then system fields, then user-defined unique ones). So a key of ours
        does not limit the match: another unique field can match another record."""
        users = self.user_unique_fields(module)
        if not given:
            system = list(SYSTEM_DUPLICATE_CHECK.get(module, ()))
            return system + [u for u in users if u not in system]
        return list(given) + [u for u in users if u not in given]

    def _write_one(
        self,
        module: str,
        operation: str,
        index: int,
        item: Any,
        now: int,
        options: WriteOptions,
        checks: Sequence[str],
    ) -> dict[str, Any]:
        base = f"$.data[{index}]"
        if not isinstance(item, Mapping):
            raise _Refused(record_error("INVALID_DATA", "invalid data", json_path=base))
        specs = self.fields[module]
        target: Record | None = None
        if operation == "update":
            if not item.get("id"):
                raise _Refused(
                    record_error(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name="id",
                        json_path=f"{base}.id",
                    )
                )
            target = self.get(module, str(item["id"]))
            if target is None:
                raise _Refused(
                    record_error(
                        "INVALID_DATA",
                        "the id given seems to be invalid",
                        api_name="id",
                        json_path=f"{base}.id",
                    )
                )
        changes: dict[str, Any] = {}
        for name, raw in item.items():
            if name in SYSTEM_FIELDS or name.startswith("$"):
                continue  # system fields are the CRM's; Zoho ignores them on write
            spec = specs.get(name)
            if spec is None:
                if options.unknown_fields == "ignore":
                    continue
                # UNCONFIRMED: whether Zoho refuses or silently drops an unknown api_name.
                raise _Refused(
                    record_error(
                        "INVALID_DATA", "invalid data", api_name=name, json_path=f"{base}.{name}"
                    )
                )
            if spec.read_only:
                continue
            if spec.data_type == "subform":
                changes[name] = self._subform_edit(spec, raw, f"{base}.{name}", options)
                continue
            value = self._convert(module, spec, raw, f"{base}.{name}")
            if isinstance(value, str) and value.strip().lower() in options.faults:
                raise _Refused(
                    record_error(
                        "INVALID_DATA",
                        "invalid data",
                        api_name=name,
                        json_path=f"{base}.{name}",
                    )
                )
            changes[name] = value
        if target is not None and target.id in options.faults:
            raise _Refused(
                record_error("INVALID_DATA", "invalid data", api_name="id", json_path=f"{base}.id")
            )
        duplicate_field: str | None = None
        if operation == "upsert":
            for name in checks:
                value = changes.get(name)
                if value is None or value == "":
                    continue
                found = self.find_by(module, name, value)
                if found is not None:
                    target, duplicate_field = found, name
                    break
        for name, value in list(changes.items()):
            if isinstance(value, SubformEdit):
                changes[name] = self._merge_rows(target, specs[name], value, options)
        # Mandatory fields: all of them on insert; on update only those being cleared.
        for spec in specs.values():
            if not spec.mandatory:
                continue
            if target is None:
                value = changes.get(spec.api_name)
            elif spec.api_name in changes:
                value = changes[spec.api_name]
            else:
                continue
            if value is None or value == "" or value == []:
                raise _Refused(
                    record_error(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name=spec.api_name,
                        json_path=f"{base}.{spec.api_name}",
                    )
                )
        for name, value in changes.items():
            spec = specs[name]
            if not spec.unique or value is None or value == "" or isinstance(value, list):
                continue
            holder = self.find_by(module, name, value)
            if holder is not None and (target is None or holder.id != target.id):
                raise _Refused(
                    record_error(
                        "DUPLICATE_DATA",
                        "duplicate data",
                        api_name=name,
                        json_path=f"{base}.{name}",
                        duplicate_record={
                            "id": holder.id,
                            "Owner": self.user(
                                holder.values.get("Owner") or holder.created_by
                            ).lookup(),
                            "module": {"api_name": module, "id": self._module_id(module)},
                        },
                        more_records=False,
                    )
                )
        record, created = self.apply(module, target, changes, now, options.by)
        result: dict[str, Any] = {
            "code": "SUCCESS",
            "details": self.success_details(record),
            "message": "record added" if created else "record updated",
            "status": "success",
        }
        if operation == "upsert":
            result["duplicate_field"] = duplicate_field
            result["action"] = "insert" if created else "update"
        return result

    def apply(
        self, module: str, target: Record | None, changes: Mapping[str, Any], now: int, by: str
    ) -> tuple[Record, bool]:
        """Write checked ``changes``; every write bumps Modified_Time, even if nothing changed
        (UNCONFIRMED whether Zoho skips no-op updates)."""
        user = self.users[by]
        if target is None:
            values = {**INSERT_DEFAULTS.get(module, {}), **changes}
            values.setdefault("Owner", user.id)
            record = Record(self._new_id(), module, values, now, now, user.id, user.id)
            self.records[module][record.id] = record
            self.writes[module]["inserts"] += 1
            self._compute(record, now)
            self._changed(module, "insert", record.id, [])
            return record, True
        changed = [k for k, v in changes.items() if target.values.get(k) != v]
        target.values.update(changes)
        target.modified = now
        target.modified_by = user.id
        self.writes[module]["updates"] += 1
        self._compute(target, now)
        self._changed(module, "update", target.id, changed)
        return target, False

    def _changed(self, module: str, operation: str, record_id: str, fields: list[str]) -> None:
        if self.on_change is not None:
            self.on_change(module, operation, record_id, fields)

    # ----------------------------------------------------------------- subforms

    def _subform_edit(
        self, spec: FieldSpec, raw: Any, path: str, options: WriteOptions
    ) -> SubformEdit:
        """Check the rows a write sends (types, lookups, unknown fields). Raises _Refused."""
        if raw is None:
            return SubformEdit([])
        if not isinstance(raw, list):
            raise _Refused(
                record_error(
                    "INVALID_DATA",
                    "invalid data",
                    expected_data_type="jsonarray",
                    api_name=spec.api_name,
                    json_path=path,
                )
            )
        row_specs = self.subform_fields[spec.subform or ""]
        rows = []
        for index, item in enumerate(raw):
            row_path = f"{path}[{index}]"
            if not isinstance(item, Mapping):
                raise _Refused(record_error("INVALID_DATA", "invalid data", json_path=row_path))
            row_id = item.get("id")
            values: dict[str, Any] = {}
            for name, value in item.items():
                if name in ("id", "_delete") or name.startswith("$"):
                    continue
                row_spec = row_specs.get(name)
                if row_spec is None:
                    if options.unknown_fields == "ignore":
                        continue
                    raise _Refused(
                        record_error(
                            "INVALID_DATA",
                            "invalid data",
                            api_name=name,
                            json_path=f"{row_path}.{name}",
                        )
                    )
                if row_spec.read_only:
                    continue  # Total, Net_Total, Sequence_Number...: Zoho's to compute
                values[name] = self._convert(
                    spec.subform or "", row_spec, value, f"{row_path}.{name}"
                )
            rows.append(
                RowEdit(str(row_id) if row_id else None, "_delete" in item, values, row_path)
            )
        return SubformEdit(rows)

    def _merge_rows(
        self, target: Record | None, spec: FieldSpec, edit: SubformEdit, options: WriteOptions
    ) -> list[dict[str, Any]]:
        """The record's rows after ``edit`` (copies: nothing is changed until ``apply``)."""
        existing = (
            [copy.copy(r) for r in (target.values.get(spec.api_name) or [])] if target else []
        )
        by_id = {row["id"]: row for row in existing}
        row_specs = self.subform_fields[spec.subform or ""]
        named: list[dict[str, Any]] = []
        deleted: set[str] = set()
        added: list[dict[str, Any]] = []
        if not edit.rows:
            return []  # an empty list deletes every row (update-subforms.html)
        for row in edit.rows:
            if row.row_id is not None:
                current = by_id.get(row.row_id)
                if current is None:
                    raise _Refused(
                        record_error(
                            "INVALID_DATA",
                            "the id given seems to be invalid",
                            api_name="id",
                            json_path=f"{row.path}.id",
                        )
                    )
                if row.delete:
                    deleted.add(row.row_id)
                    continue
                if row.values:
                    current.update(row.values, _touched=True)
                self._check_row(row_specs, current, row.values, row.path, new=False)
                named.append(current)
                continue
            if row.delete:
                raise _Refused(
                    record_error(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name="id",
                        json_path=f"{row.path}.id",
                    )
                )
            fresh = {"id": None, **row.values}
            self._check_row(row_specs, fresh, row.values, row.path, new=True)
            if fresh.get("List_Price") is None:
                product = self.get("Products", fresh["Product_Name"])
                fresh["List_Price"] = (product.values.get("Unit_Price") if product else None) or 0
            added.append(fresh)
        if options.subform_update == "replace":
            return named + added
        return [r for r in existing if r["id"] not in deleted] + added

    @staticmethod
    def _check_row(
        specs: Mapping[str, FieldSpec],
        row: Mapping[str, Any],
        sent: Mapping[str, Any],
        path: str,
        *,
        new: bool,
    ) -> None:
        """Mandatory row fields: all of them in a new row; in an updated row, those cleared."""
        for name, spec in specs.items():
            if not spec.mandatory or (not new and name not in sent):
                continue
            if row.get(name) in (None, ""):
                raise _Refused(
                    record_error(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name=name,
                        json_path=f"{path}.{name}",
                    )
                )

    def _compute(self, record: Record, now: int) -> None:
        """Row ids, sequence numbers, timestamps and formulas, then the record's totals."""
        specs = self.fields[record.module]
        for spec in specs.values():
            if spec.data_type != "subform":
                continue
            for sequence, row in enumerate(record.values.get(spec.api_name) or [], start=1):
                if row.get("id") is None:
                    row.update(id=self._new_id(), Created_Time=now, Modified_Time=now)
                if row.pop("_touched", False):
                    row["Modified_Time"] = now
                total = _money(Decimal(row["List_Price"]) * Decimal(row["Quantity"]))
                after_discount = total - _money(row.get("Discount") or 0)
                row.update(
                    Sequence_Number=sequence,
                    Total=total,
                    Total_After_Discount=after_discount,
                    Net_Total=after_discount + _money(row.get("Tax") or 0),
                )
        if "Grand_Total" in specs:
            rows = record.values.get("Ordered_Items") or []
            sub_total = sum((row["Net_Total"] for row in rows), Decimal("0.00"))
            values = record.values
            record.values.update(
                Sub_Total=sub_total,
                Grand_Total=sub_total
                - _money(values.get("Discount") or 0)
                + _money(values.get("Tax") or 0)
                + _money(values.get("Adjustment") or 0),
            )

    def check_create(self, module: str, item: Any, now: int, by: str) -> Record:
        """A UI create (control API): the same rules, all or nothing. Raises ValueError."""
        results = self.write(module, "insert", [item], now, WriteOptions(by=by))
        if results[0]["code"] != "SUCCESS":
            raise ValueError(f"{results[0]['code']}: {results[0]['details']}")
        return self.records[module][results[0]["details"]["id"]]

    def delete(self, module: str, ids: Sequence[str], options: WriteOptions) -> list[dict]:
        """Delete records (to the recycle bin). An id already deleted answers per record
        ``INVALID_DATA`` "record not deleted" with ``details {id}`` (delete-records.html:
        "The record you are trying to delete has already been deleted"; v7 text in ZO-V7MIRROR
        api_docs/Records_157.md; the message is in zoho/crm-oas v8.0/record.json's error enum).
        An id that never existed answers the same here (UNCONFIRMED). A fault value refuses a
        live record with ``RECORD_LOCKED`` (a documented delete error), so a refusal of a
        record that still exists can be tested."""
        results = []
        for record_id in ids:
            record = self.get(module, record_id)
            if record is None:
                results.append(record_error("INVALID_DATA", "record not deleted", id=record_id))
                continue
            if record_id in options.faults:
                results.append(
                    record_error(
                        "RECORD_LOCKED",
                        "You cannot perform this operation as the record is locked.",
                        id=record_id,
                    )
                )
                continue
            record.deleted = True
            self.writes[module]["deletes"] += 1
            self._changed(module, "delete", record.id, [])
            results.append(
                {
                    "code": "SUCCESS",
                    "details": {"id": record.id},
                    "message": "record deleted",
                    "status": "success",
                }
            )
        return results

    # ----------------------------------------------------------------- reads

    def select(
        self,
        module: str,
        *,
        ids: Sequence[str] | None,
        modified_after: int | None,
        sort_by: str,
        sort_order: str,
    ) -> list[Record]:
        records = self.live(module)
        if ids is not None:
            wanted = set(ids)
            records = [r for r in records if r.id in wanted]
        if modified_after is not None:
            records = [r for r in records if r.modified > modified_after]
        key = {
            "id": lambda r: (int(r.id),),
            "Created_Time": lambda r: (r.created, int(r.id)),
            "Modified_Time": lambda r: (r.modified, int(r.id)),
        }[sort_by]
        return sorted(records, key=key, reverse=sort_order == "desc")


def _money(value: Any) -> Decimal:
    """An amount to the currency's 2 places, rounded half up (``rounding_option`` "normal")."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass
class Paging:
    """Where one GET page starts and ends, after the page/page_token rules."""

    offset: int
    end: int
    page: int


def page_window(*, page: int, per_page: int, token: PageToken | None, total: int) -> Paging:
    """Raises ApiError for a page beyond 2,000 records without a token, or beyond 100,000."""
    if token is not None:
        offset = token.offset
        if offset >= TOKEN_PAGE_LIMIT:
            raise ApiError(
                400,
                "PAGINATION_LIMIT_EXCEEDED",
                f"you can fetch only up to {TOKEN_PAGE_LIMIT} records",
                {"limit": TOKEN_PAGE_LIMIT},
            )
        return Paging(offset, min(offset + per_page, TOKEN_PAGE_LIMIT), offset // per_page + 1)
    offset = (page - 1) * per_page
    if offset >= DISCRETE_PAGE_LIMIT:
        raise ApiError(
            400,
            "DISCRETE_PAGINATION_LIMIT_EXCEEDED",
            f"you can fetch only the first {DISCRETE_PAGE_LIMIT} records with page; "
            "use page_token for the next ones",
            {"limit": DISCRETE_PAGE_LIMIT},
        )
    return Paging(offset, min(offset + per_page, DISCRETE_PAGE_LIMIT), page)


def parse_if_modified_since(value: str) -> int:
    """ISO 8601 with offset (naive is UTC) to epoch seconds. Raises ApiError."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "INVALID_DATA", "invalid data", {"header": "If-Modified-Since"}
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Records carry whole seconds; "modified after 10:00:00.5" is "after 10:00:00".
    return int(moment.timestamp())


@dataclass
class Credits:
    """API credits over a rolling 24 h (api-limits.html); the lock guards it."""

    limit: int
    spent: list[tuple[float, int]] = field(default_factory=list)

    def used(self, now: float) -> int:
        self.spent = [(t, c) for t, c in self.spent if t > now - 86_400]
        return sum(c for _, c in self.spent)

    def spend(self, now: float, cost: int) -> bool:
        if self.used(now) + cost > self.limit:
            return False
        self.spent.append((now, cost))
        return True
