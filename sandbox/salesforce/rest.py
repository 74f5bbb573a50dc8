"""The REST resources under ``/services/data/vXX.X/``: describe, sObject rows, upsert by
external id, sObject Collections, query and limits.

Facts (shared/reference/api-crms.md section 2.2-2.5, sources there):
- upsert ``PATCH /sobjects/{S}/{extField}/{value}``: 201 created / 200 updated (v46+) with
  ``{id, success, errors, created}``; 300 with the matching records' URLs when several match;
  ``?updateOnly=true`` answers 404 instead of creating (SF-REST dome_upsert.htm);
- collections: at most 200 records, per-item ``{id, success, errors[], created?}`` in input
  order, HTTP 200 even when items fail; ``allOrNone`` rolls back the whole call
  (SF-REST resources_composite_sobjects_collections.htm). A rolled-back item reports
  ALL_OR_NONE_OPERATION_ROLLED_BACK (message text UNCONFIRMED). Whether per-item errors carry
  ``statusCode`` or ``errorCode`` is UNCONFIRMED: ``statusCode`` by default, the
  ``collection_error_key`` knob switches it;
- query: ``{totalSize, done, nextRecordsUrl?, records}``, batches of 2,000 by default,
  ``Sforce-Query-Options: batchSize=N`` (200..2,000; out-of-range values are clamped here,
  UNCONFIRMED), ``nextRecordsUrl`` ``/services/data/vXX.X/query/01g...-2000`` (a locator lives 2 days
  after the query, see org.CURSOR_LIFETIME_SECONDS, then INVALID_QUERY_LOCATOR); ``query`` leaves
  deleted rows out, ``queryAll`` keeps them (SF-REST resources_query.htm, resources_queryall.htm).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from flask import request

from sandbox.salesforce import soql
from sandbox.salesforce.org import (
    CURSOR_LIFETIME_SECONDS,
    ApiError,
    Cursor,
    Org,
    Record,
    RecordError,
)
from sandbox.salesforce.schema import SObjectSpec, make_id, to_18

if TYPE_CHECKING:
    from sandbox.salesforce.app import Simulator

COLLECTION_LIMIT = 200
RETRIEVE_LIMIT = 2000  # collections retrieve takes up to 2,000 ids (UNCONFIRMED for GET)
DEFAULT_BATCH, MIN_BATCH, MAX_BATCH = 2000, 200, 2000
ROLLED_BACK = RecordError(
    "ALL_OR_NONE_OPERATION_ROLLED_BACK",
    "Record rolled back because not all records were valid and the request was using AllOrNone "
    "header",
)


def _error_list(errors: list[RecordError]) -> list[dict]:
    return [{"message": e.message, "errorCode": e.code, "fields": list(e.fields)} for e in errors]


class Rest:
    """The views; each takes the org and API version and returns (body, status)."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    # ------------------------------------------------------------------ helpers

    def item_errors(self, errors: list[RecordError]) -> list[dict]:
        key = self.sim.knobs.collection_error_key
        return [{key: e.code, "message": e.message, "fields": list(e.fields)} for e in errors]

    def failure(self, errors: list[RecordError], record_id: str | None = None) -> dict:
        item: dict[str, Any] = {"success": False, "errors": self.item_errors(errors)}
        if record_id is not None:
            item = {"id": record_id, **item}
        return item

    @staticmethod
    def success(record_id: str, created: bool | None = None) -> dict:
        item: dict[str, Any] = {"id": record_id, "success": True, "errors": []}
        if created is not None:
            item["created"] = created
        return item

    def now(self) -> float:
        return self.sim.clock()

    def collection_records(self, body: Any) -> tuple[bool, list]:
        if not isinstance(body, Mapping) or not isinstance(body.get("records"), list):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must have a records list")
        records = body["records"]
        if len(records) > COLLECTION_LIMIT:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into "
                "this call",
            )
        all_or_none = body.get("allOrNone", False)
        if not isinstance(all_or_none, bool):
            raise ApiError(400, "JSON_PARSER_ERROR", "allOrNone must be true or false")
        for record in records:
            if not isinstance(record, Mapping):
                raise ApiError(400, "JSON_PARSER_ERROR", "every record must be an object")
        return all_or_none, records

    def record_spec(self, org: Org, record: Mapping) -> SObjectSpec:
        attributes = record.get("attributes")
        kind = attributes.get("type") if isinstance(attributes, Mapping) else None
        if not isinstance(kind, str) or not kind:
            raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
        try:
            return org.spec(kind)
        except ApiError:
            raise ApiError(
                400, "INVALID_TYPE", f"sObject type '{kind}' is not supported."
            ) from None

    def run_collection(
        self, org: Org, all_or_none: bool, operations: list[Callable[[], dict]]
    ) -> list[dict]:
        """Run each item's save; with allOrNone, one failure rolls every save back. A request
        Salesforce cannot deserialize saves nothing either way."""
        state = org.snapshot()
        try:
            results = [operation() for operation in operations]
        except ApiError:
            org.restore(state)
            raise
        if all_or_none and any(not r["success"] for r in results):
            org.restore(state)
            results = [r if not r["success"] else self.failure([ROLLED_BACK]) for r in results]
        return results

    def save_new(self, org: Org, spec: SObjectSpec, body: Mapping) -> dict:
        checked = org.check(spec, body, existing=None, faults=self.sim.faults())
        if isinstance(checked, list):
            return self.failure(checked)
        return self.success(org.create(spec, checked, self.now(), org.integration_user).id)

    def save_existing(self, org: Org, spec: SObjectSpec, record: Record, body: Mapping) -> dict:
        checked = org.check(spec, body, existing=record, faults=self.sim.faults())
        if isinstance(checked, list):
            return self.failure(checked, record.id)
        org.update(record, checked, self.now(), org.integration_user)
        return self.success(record.id)

    @staticmethod
    def locate(
        org: Org, record_id: object, spec: SObjectSpec | None = None
    ) -> Record | RecordError:
        if not isinstance(record_id, str) or to_18(record_id) is None:
            return RecordError("MALFORMED_ID", f"malformed id {record_id}", ("Id",))
        if spec is not None and not record_id.startswith(spec.key_prefix):
            return RecordError(
                "MALFORMED_ID", f"{spec.name} ID: id value of incorrect type", ("Id",)
            )
        record = org.find(record_id)
        if record is None:
            return RecordError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", ("Id",))
        if record.deleted:
            return RecordError("ENTITY_IS_DELETED", "entity is deleted", ())
        return record

    # ------------------------------------------------------------------ describe and limits

    def describe(self, org: Org, version: str, sobject: str) -> tuple[Any, int]:
        spec = org.spec(sobject)
        return {
            "name": spec.name,
            "label": spec.name,
            "keyPrefix": spec.key_prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "fields": [f.describe() for f in spec.fields],
            "urls": {"sobject": f"/services/data/{version}/sobjects/{spec.name}"},
        }, 200

    def limits(self, org: Org, version: str) -> tuple[Any, int]:
        used = org.used(self.now())
        return {
            "DailyApiRequests": {
                "Max": org.daily_limit,
                "Remaining": max(0, org.daily_limit - used),
            }
        }, 200

    # ------------------------------------------------------------------ single records

    def create(self, org: Org, version: str, sobject: str) -> tuple[Any, int]:
        spec = org.spec(sobject)
        body = self.sim.body()
        if not isinstance(body, Mapping):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        checked = org.check(spec, body, existing=None, faults=self.sim.faults())
        if isinstance(checked, list):
            return _error_list(checked), 400
        record = org.create(spec, checked, self.now(), org.integration_user)
        return {"id": record.id, "success": True, "errors": []}, 201

    def one(self, org: Org, version: str, sobject: str, record_id: str) -> tuple[Any, int]:
        spec = org.spec(sobject)
        found = self.locate(org, record_id, spec)
        if isinstance(found, RecordError):
            if found.code == "ENTITY_IS_DELETED":
                return _error_list([found]), 404
            missing = RecordError("NOT_FOUND", "The requested resource does not exist")
            return _error_list([missing]), 404
        if request.method == "GET":
            names = self.field_names(spec, request.args.get("fields"))
            return org.render(found, version, names), 200
        if request.method == "DELETE":
            problem = org.delete_problem(found)
            if problem is not None:
                return _error_list([problem]), 400
            org.delete(found, self.now(), org.integration_user)
            return None, 204
        body = self.sim.body()
        if not isinstance(body, Mapping):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        checked = org.check(spec, body, existing=found, faults=self.sim.faults())
        if isinstance(checked, list):
            return _error_list(checked), 400
        org.update(found, checked, self.now(), org.integration_user)
        return None, 204

    def upsert(
        self, org: Org, version: str, sobject: str, field: str, value: str
    ) -> tuple[Any, int]:
        spec = org.spec(sobject)
        ext = spec.field(field)
        if ext is None or not ext.external_id:
            raise ApiError(
                404,
                "NOT_FOUND",
                f"Provided external ID field does not exist or is not accessible: {field}",
            )
        body = self.sim.body()
        if not isinstance(body, Mapping):
            raise ApiError(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        body = dict(body)
        for key in list(body):
            if key.lower() == ext.name.lower() and str(body.pop(key)).lower() != value.lower():
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"The external ID field {ext.name} in the body does not match the URL",
                    [ext.name],
                )
        matches = org.by_value(spec.name, ext.name, value)
        if len(matches) > 1:
            return [f"/services/data/{version}/sobjects/{spec.name}/{r.id}" for r in matches], 300
        faults = self.sim.faults()
        if value.strip().lower() in faults:
            return _error_list(
                [
                    RecordError(
                        "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                        "Sandbox validation rule: this value is refused",
                    )
                ]
            ), 400
        if matches:
            checked = org.check(spec, body, existing=matches[0], faults=faults)
            if isinstance(checked, list):
                return _error_list(checked), 400
            org.update(matches[0], checked, self.now(), org.integration_user)
            return {"id": matches[0].id, "success": True, "errors": [], "created": False}, 200
        if request.args.get("updateOnly", "").lower() == "true":
            return [
                {
                    "message": "The requested resource does not exist",
                    "errorCode": "NOT_FOUND",
                    "fields": [],
                }
            ], 404
        checked = org.check(spec, {**body, ext.name: value}, existing=None, faults=faults)
        if isinstance(checked, list):
            return _error_list(checked), 400
        record = org.create(spec, checked, self.now(), org.integration_user)
        return {"id": record.id, "success": True, "errors": [], "created": True}, 201

    # ------------------------------------------------------------------ collections

    def collection_create(self, org: Org, version: str) -> tuple[Any, int]:
        all_or_none, records = self.collection_records(self.sim.body())
        operations = []
        for record in records:
            spec = self.record_spec(org, record)
            if any(k.lower() == "id" for k in record):
                error = RecordError("INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))
                operations.append(lambda e=error: self.failure([e]))
                continue
            operations.append(lambda s=spec, r=record: self.save_new(org, s, r))
        return self.run_collection(org, all_or_none, operations), 200

    def collection_update(self, org: Org, version: str) -> tuple[Any, int]:
        all_or_none, records = self.collection_records(self.sim.body())
        operations = []
        for record in records:
            spec = self.record_spec(org, record)
            record_id = next((v for k, v in record.items() if k.lower() == "id"), None)

            def operation(s=spec, r=record, rid=record_id) -> dict:
                if rid is None:
                    return self.failure(
                        [RecordError("MISSING_ARGUMENT", "Id not specified in an update call")]
                    )
                found = self.locate(org, rid, s)
                if isinstance(found, RecordError):
                    return self.failure([found], str(rid))
                return self.save_existing(org, s, found, r)

            operations.append(operation)
        return self.run_collection(org, all_or_none, operations), 200

    def collection_upsert(
        self, org: Org, version: str, sobject: str, field: str
    ) -> tuple[Any, int]:
        spec = org.spec(sobject)
        ext = spec.field(field)
        if ext is None or not ext.external_id:
            raise ApiError(
                400,
                "INVALID_FIELD",
                f"Field name provided, {field} is not an External ID or indexed field for "
                f"{spec.name}",
            )
        all_or_none, records = self.collection_records(self.sim.body())
        keys: list[str | None] = []
        for record in records:
            if self.record_spec(org, record).name != spec.name:
                raise ApiError(
                    400, "INVALID_TYPE", f"Every record must be of type {spec.name} in an upsert"
                )
            value = next((v for k, v in record.items() if k.lower() == ext.name.lower()), None)
            keys.append(str(value) if isinstance(value, str | int) and str(value).strip() else None)
        counts: dict[str, int] = {}
        for key in keys:
            if key is not None:
                counts[key.lower()] = counts.get(key.lower(), 0) + 1
        operations = []
        for record, key in zip(records, keys, strict=True):

            def operation(r=record, k=key) -> dict:
                if k is None:
                    return self.failure(
                        [RecordError("MISSING_ARGUMENT", f"{ext.name} not specified", (ext.name,))]
                    )
                if counts[k.lower()] > 1:
                    return self.failure(
                        [
                            RecordError(
                                "DUPLICATE_EXTERNAL_ID",
                                f"Duplicate external id specified: {k}",
                                (ext.name,),
                            )
                        ]
                    )
                matches = org.by_value(spec.name, ext.name, k)
                if len(matches) > 1:
                    ids = ", ".join(m.id for m in matches)
                    return self.failure(
                        [
                            RecordError(
                                "DUPLICATE_EXTERNAL_ID",
                                f"{ext.name}: more than one record found for external id field: [{ids}]",
                                (ext.name,),
                            )
                        ]
                    )
                if matches:
                    rest = {n: v for n, v in r.items() if n.lower() != ext.name.lower()}
                    if k.strip().lower() in self.sim.faults():
                        rest[ext.name] = k  # let the fault rule see the key
                    item = self.save_existing(org, spec, matches[0], rest)
                    return {**item, "created": False} if item["success"] else item
                item = self.save_new(org, spec, r)
                return {**item, "created": True} if item["success"] else item

            operations.append(operation)
        return self.run_collection(org, all_or_none, operations), 200

    def collection_delete(self, org: Org, version: str) -> tuple[Any, int]:
        raw = request.args.get("ids", "")
        ids = [i for i in raw.split(",") if i]
        if not ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids not specified")
        if len(ids) > COLLECTION_LIMIT:
            raise ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into "
                "this call",
            )
        all_or_none = request.args.get("allOrNone", "false").lower() == "true"
        operations = []
        for record_id in ids:

            def operation(rid=record_id) -> dict:
                found = self.locate(org, rid)
                if isinstance(found, RecordError):
                    return self.failure([found], rid)
                problem = org.delete_problem(found)
                if problem is not None:
                    return self.failure([problem], found.id)
                org.delete(found, self.now(), org.integration_user)
                return self.success(found.id)

            operations.append(operation)
        return self.run_collection(org, all_or_none, operations), 200

    def collection_retrieve(self, org: Org, version: str, sobject: str) -> tuple[Any, int]:
        spec = org.spec(sobject)
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        if not ids:
            raise ApiError(400, "MISSING_ARGUMENT", "ids not specified")
        if len(ids) > RETRIEVE_LIMIT:
            raise ApiError(400, "EXCEEDED_ID_LIMIT", f"more than {RETRIEVE_LIMIT} ids")
        if not request.args.get("fields"):
            raise ApiError(400, "MISSING_ARGUMENT", "fields not specified")
        names = self.field_names(spec, request.args.get("fields"))
        out = []
        for record_id in ids:
            found = self.locate(org, record_id, spec)
            out.append(
                None if isinstance(found, RecordError) else org.render(found, version, names)
            )
        return out, 200

    @staticmethod
    def field_names(spec: SObjectSpec, raw: str | None) -> list[str] | None:
        if not raw:
            return None
        names = ["Id"]
        for name in raw.split(","):
            spec_field = spec.field(name.strip())
            if spec_field is None:
                raise ApiError(
                    400,
                    "INVALID_FIELD",
                    f"No such column '{name.strip()}' on entity '{spec.name}'",
                )
            if spec_field.name not in names:
                names.append(spec_field.name)
        return names

    # ------------------------------------------------------------------ query

    def query(self, org: Org, version: str, *, include_deleted: bool = False) -> tuple[Any, int]:
        text = request.args.get("q", "")
        try:
            parsed = soql.parse(text, org.schema)
        except soql.QueryError as exc:
            raise ApiError(400, exc.code, exc.message) from None
        rows = list(org.records[parsed.sobject.name].values())
        if not include_deleted:
            rows = [r for r in rows if not r.deleted]
        chosen = soql.run(parsed, rows, lambda r, name: r.values.get(name))
        names = [f.name for f in parsed.fields]
        rendered = [org.render(r, version, names) for r in chosen]
        batch = self.batch_size()
        if len(rendered) <= batch:
            return {"totalSize": len(rendered), "done": True, "records": rendered}, 200
        self.sim.cursor_serial += 1
        locator = make_id("01g", self.sim.cursor_serial)[:15] + "AAA"
        now = self.now()
        org.cursors[locator] = Cursor(rows=rendered, last_used=now, batch=batch, created=now)
        return self.page(version, locator, org.cursors[locator], 0), 200

    def query_more(self, org: Org, version: str, locator: str) -> tuple[Any, int]:
        cursor_id, _, offset_text = locator.rpartition("-")
        cursor = org.cursors.get(cursor_id)
        now = self.now()
        idle = self.sim.knobs.cursor_idle_seconds
        if cursor is not None and (
            now - cursor.created > CURSOR_LIFETIME_SECONDS
            or (idle is not None and now - cursor.last_used > idle)
        ):
            del org.cursors[cursor_id]
            cursor = None
        if cursor is None or not offset_text.isdigit():
            raise ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        cursor.last_used = now
        return self.page(version, cursor_id, cursor, int(offset_text)), 200

    @staticmethod
    def page(version: str, locator: str, cursor: Cursor, offset: int) -> dict:
        end = offset + cursor.batch
        body: dict[str, Any] = {"totalSize": len(cursor.rows), "done": end >= len(cursor.rows)}
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/{version}/query/{locator}-{end}"
        body["records"] = cursor.rows[offset:end]
        return body

    @staticmethod
    def batch_size() -> int:
        header = request.headers.get("Sforce-Query-Options", "")
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == "batchsize" and value.strip().isdigit():
                return max(MIN_BATCH, min(MAX_BATCH, int(value.strip())))
        return DEFAULT_BATCH
