"""The HubSpot CRM API simulator: a Flask app serving the v3 object, search and properties
endpoints and the v4 association endpoints for any number of accounts ("portals"), each
reached with its own private-app token, plus control endpoints under ``/_sandbox/``.

HTTP facts with sources (the domain rules are in ``store.py``):
- auth: ``Authorization: Bearer <private app token>``; a missing or unknown token answers 401
  with category INVALID_AUTHENTICATION: https://developers.hubspot.com/docs/api-reference/error-handling
- batch endpoints take at most 100 inputs; batch upsert results carry ``new``:
  https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts
- 207 Multi-Status ``{status, results, numErrors, errors[{status, category, message, context}]}``
  is documented for batch create with ``objectWriteTraceId``:
  https://developers.hubspot.com/docs/api-reference/error-handling. Whether a bad input fails
  a whole batch update/upsert instead is UNCONFIRMED, hence the ``partial_mode`` knob.
- rate limits and their headers/429 body: see ``limits.py``; 429 bodies carry ``policyName``
  (HubSpot/hubspot-api-nodejs#416); REST 429s carry no Retry-After unless the knob adds one.
- associations v4 (batch create/read/associate default, PUT default, GET list):
  https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/batch/create-associations-labeled
"""

from __future__ import annotations

import functools
import itertools
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields

from flask import Blueprint, Flask, Response, jsonify, request

from sandbox.hubspot.limits import Limits, RateLimiter
from sandbox.hubspot.schema import DEFAULT_CURRENCIES, ObjectTypeSpec, resolve_object_type
from sandbox.hubspot.store import (
    OBJECT_NOT_FOUND,
    VALIDATION_ERROR,
    ApiError,
    InputError,
    Portal,
    WritePlan,
    validation_error,
    with_context,
)
from sandbox.hubspot.values import ValueProblem, as_text, ms_to_iso
from sandbox.hubspot.webhooks import Dispatcher, WebhookSettings, parse_settings

BATCH_LIMIT = 100
# v4 association batches: read up to 1,000 inputs, create up to 2,000 (HS-ASSOC).
ASSOCIATION_BATCH_LIMITS = {
    "create": 2000,
    "associate/default": 2000,
    "read": 1000,
    "archive": 2000,
}
SEARCH_BODY_MAX = 3000
PARTIAL_MODES = ("207", "400")
AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you "
    "can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
RATE_LIMIT_MESSAGES = {
    "TEN_SECONDLY_ROLLING": "You have reached your ten_secondly_rolling limit.",
    "SECONDLY": "You have reached your secondly limit.",
    "DAILY": "You have reached your daily limit.",
}


@dataclass
class Knobs:
    """Fault and behaviour switches, set through ``POST /_sandbox/knobs``."""

    partial_mode: str = "207"  # "207": write the valid inputs; "400": reject the whole batch
    shuffle_results: bool = False  # batch results in a random order (HubSpot promises none)
    random_429_rate: float = 0.0
    error_5xx_rate: float = 0.0
    error_5xx_status: int = 502
    latency_ms: int = 0
    retry_after_seconds: float | None = None  # add Retry-After to 429s
    fault_values: list[str] = field(default_factory=list)  # emails/ids/values made invalid
    # One-shot responses for the next matching calls:
    # {"status": 429|423|477|5xx, "policy_name"?, "retry_after"?, "path_contains"?, "message"?}
    inject: list[dict] = field(default_factory=list)
    # Webhooks (sandbox.hubspot.webhooks): retry delays times this (0.0001 for tests), the
    # delivery timeout, how long changes gather into one batch, a skew of the signature
    # timestamp (a stale-signature test), and propertyChange events for a creation's values.
    webhook_time_scale: float = 1.0
    webhook_timeout_s: float = 5.0
    webhook_delay_ms: int = 50
    webhook_timestamp_skew_ms: int = 0
    webhook_property_changes_on_create: bool = True


@dataclass
class Account:
    token: str
    name: str
    portal: Portal
    limiter: RateLimiter
    webhooks: WebhookSettings | None = None
    outbox: list[dict] = field(default_factory=list)  # events waiting for their batch
    deliveries: list[dict] = field(default_factory=list)
    in_flight: int = 0  # events in batches being sent or waiting for a retry
    flush_scheduled: bool = False


class Simulator:
    """All simulated accounts, the knobs and the call log, behind one lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.webhooks = Dispatcher(self)
        self.subscription_ids = itertools.count(1)
        self.reset()

    def attach(self, account: Account) -> None:
        """Feed the portal's changes to the webhooks."""
        account.portal.on_change = functools.partial(self.webhooks.changed, account)

    def reset(self, seed: int = 0) -> None:
        self.knobs = Knobs()
        self.rng = random.Random(seed)
        self.by_token: dict[str, Account] = {}
        self.by_id: dict[int, Account] = {}
        self.calls: list[dict] = []
        self.next_portal_id = 4_000_001

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def correlation_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def faults(self) -> frozenset[str]:
        return frozenset(v.lower() for v in self.knobs.fault_values)

    # ----------------------------------------------------------------- responses

    def error(
        self,
        status: int,
        category: str | None,
        message: str,
        *,
        errors: list[dict] | None = None,
        context: dict | None = None,
    ) -> Response:
        body: dict[str, object] = {
            "status": "error",
            "message": message,
            "correlationId": self.correlation_id(),
        }
        if category:
            body["category"] = category
        if errors:
            body["errors"] = errors
        if context:
            body["context"] = context
        response = jsonify(body)
        response.status_code = status
        return response

    def rate_limited(self, policy: str, headers: Mapping[str, str] | None) -> Response:
        correlation = self.correlation_id()
        response = jsonify(
            {
                "status": "error",
                "message": RATE_LIMIT_MESSAGES.get(policy, "You have reached your limit."),
                "errorType": "RATE_LIMIT",
                "correlationId": correlation,
                "policyName": policy,
                "requestId": correlation.replace("-", "")[:32],
            }
        )
        response.status_code = 429
        response.headers.update(dict(headers or {}))
        if self.knobs.retry_after_seconds is not None:
            response.headers["Retry-After"] = f"{self.knobs.retry_after_seconds:g}"
        return response

    # ----------------------------------------------------------------- request pipeline

    def serve(self, view: Callable, kwargs: dict, *, search: bool) -> Response:
        if self.knobs.latency_ms:
            time.sleep(self.knobs.latency_ms / 1000)
        with self.lock:
            now = self.now_ms()
            account = self._authenticate()
            response = self._answer(view, kwargs, account, now, search=search)
            self.calls.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "query": request.query_string.decode(),
                    "status": response.status_code,
                    "inputs": _count_inputs(),
                    "time": now / 1000,
                    "portal_id": account.portal.portal_id if account else None,
                }
            )
            return response

    def _authenticate(self) -> Account | None:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        return self.by_token.get(token.strip())

    def _answer(
        self, view: Callable, kwargs: dict, account: Account | None, now: int, *, search: bool
    ) -> Response:
        if account is None:
            return self.error(401, "INVALID_AUTHENTICATION", AUTH_MESSAGE)
        injected = self._injected(account, now, search=search)
        if injected is not None:
            return injected
        verdict = account.limiter.admit(now, search=search)
        if not verdict.allowed:
            return self.rate_limited(verdict.policy or "TEN_SECONDLY_ROLLING", verdict.headers)
        try:
            response = view(account, **kwargs)
        except ApiError as exc:
            response = self.error(
                exc.status, exc.category, exc.message, errors=exc.errors, context=exc.context
            )
        if not search:
            # Search responses carry no rate-limit headers (HS-SEARCH).
            response.headers.update(account.limiter.headers(now))
        return response

    def _injected(self, account: Account, now: int, *, search: bool) -> Response | None:
        """A one-shot injected response, or a random 429/5xx, if the knobs say so."""
        for i, entry in enumerate(self.knobs.inject):
            if entry.get("path_contains", "") in request.path:
                del self.knobs.inject[i]
                return self._fake(entry, account, now, search=search)
        if self.knobs.random_429_rate and self.rng.random() < self.knobs.random_429_rate:
            policy = "SECONDLY" if search else "TEN_SECONDLY_ROLLING"
            return self._fake({"status": 429, "policy_name": policy}, account, now, search=search)
        if self.knobs.error_5xx_rate and self.rng.random() < self.knobs.error_5xx_rate:
            return self._fake({"status": self.knobs.error_5xx_status}, account, now, search=search)
        return None

    def _fake(self, entry: Mapping, account: Account, now: int, *, search: bool) -> Response:
        status = int(entry.get("status", 500))
        if status == 429:
            policy = str(entry.get("policy_name", "TEN_SECONDLY_ROLLING"))
            response = self.rate_limited(policy, None if search else account.limiter.headers(now))
        else:
            # 423 Locked and 477 Migration in Progress per HS-ERR; 5xx as an edge would send.
            defaults = {423: "Locked", 477: "Migration in progress", 502: "Bad Gateway"}
            response = self.error(
                status, None, str(entry.get("message", defaults.get(status, "Internal error")))
            )
        if entry.get("retry_after") is not None:
            response.headers["Retry-After"] = f"{float(entry['retry_after']):g}"
        return response


def _count_inputs() -> int | None:
    body = request.get_json(silent=True) if request.is_json else None
    if isinstance(body, dict) and isinstance(body.get("inputs"), list):
        return len(body["inputs"])
    return None


def _spec(name: str) -> ObjectTypeSpec:
    spec = resolve_object_type(name)
    if spec is None:
        raise ApiError(400, VALIDATION_ERROR, f"Unable to infer object type from: {name}")
    return spec


def _body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, VALIDATION_ERROR, "Invalid input JSON: expected an object")
    return body


def _inputs(body: Mapping, limit: int = BATCH_LIMIT) -> list:
    inputs = body.get("inputs")
    if not isinstance(inputs, list):
        raise ApiError(400, VALIDATION_ERROR, "inputs must be a list")
    if len(inputs) > limit:
        raise ApiError(
            400,
            VALIDATION_ERROR,
            f"Batch input size {len(inputs)} exceeds the limit of {limit} inputs",
        )
    return inputs


def _requested_properties() -> list[str] | None:
    names = [n for raw in request.args.getlist("properties") for n in raw.split(",") if n]
    return names or None


def _json(body: object, status: int = 200) -> Response:
    response = jsonify(body)
    response.status_code = status
    return response


def _no_content() -> Response:
    return Response(status=204)


def _batch_error(error: InputError) -> dict:
    entry: dict[str, object] = {
        "status": "error",
        "category": error.category,
        "message": error.message,
        "context": error.context or {},
    }
    if error.errors:
        entry["errors"] = error.errors
    return entry


def create_app(*, clock: Callable[[], float] = time.time) -> Flask:
    """The simulator as a Flask app; ``clock`` (seconds) drives timestamps and rate limits."""
    sim = Simulator(clock)
    app = Flask("sandbox.hubspot")
    app.extensions["hubspot_simulator"] = sim
    app.register_blueprint(_api(sim))
    app.register_blueprint(_control(sim))

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        return sim.error(404, OBJECT_NOT_FOUND, "resource not found")

    @app.errorhandler(405)
    def not_allowed(_exc: Exception) -> Response:
        return sim.error(405, None, f"{request.method} is not supported on {request.path}")

    return app


def _api(sim: Simulator) -> Blueprint:
    bp = Blueprint("hubspot_api", __name__)

    def route(rule: str, *, methods: list[str], search: bool = False):
        def decorate(view: Callable) -> Callable:
            @functools.wraps(view)
            def wrapper(**kwargs: object) -> Response:
                return sim.serve(view, kwargs, search=search)

            bp.add_url_rule(rule, view.__name__, wrapper, methods=methods)
            return view

        return decorate

    def batch_results(results: list) -> list:
        if sim.knobs.shuffle_results:
            sim.rng.shuffle(results)
        return results

    def finish(results: list, errors: list[InputError], ok_status: int, started: int) -> Response:
        body: dict[str, object] = {
            "status": "COMPLETE",
            "results": batch_results(results),
            "startedAt": ms_to_iso(started),
            "completedAt": ms_to_iso(sim.now_ms()),
        }
        if errors:
            body["numErrors"] = len(errors)
            body["errors"] = [_batch_error(e) for e in errors]
            return _json(body, 207)
        return _json(body, ok_status)

    def reject_if_not_partial(errors: list[InputError], partial_allowed: bool) -> None:
        if errors and not (partial_allowed and sim.knobs.partial_mode == "207"):
            first = errors[0]
            raise ApiError(first.status, first.category, first.message, errors=first.errors)

    # ------------------------------------------------------------- objects (v3)

    @route("/crm/v3/objects/<object_type>", methods=["GET"])
    def list_objects(account: Account, object_type: str) -> Response:
        spec = _spec(object_type)
        try:
            limit = int(request.args.get("limit", "10"))
        except ValueError:
            raise ApiError(400, VALIDATION_ERROR, "limit must be a number") from None
        if not 0 < limit <= 100:
            raise ApiError(400, VALIDATION_ERROR, "limit must be between 1 and 100")
        return _json(
            account.portal.list_page(
                spec.name,
                limit=limit,
                after=request.args.get("after"),
                names=_requested_properties(),
                archived=request.args.get("archived", "false").lower() == "true",
                link=request.base_url,
            )
        )

    @route("/crm/v3/objects/<object_type>", methods=["POST"])
    def create_object(account: Account, object_type: str) -> Response:
        spec = _spec(object_type)
        body = _body()
        portal = account.portal
        plan = portal.plan_write(
            spec.name,
            None,
            body.get("properties", {}),
            faults=sim.faults(),
            associations=body.get("associations"),
        )
        if isinstance(plan, InputError):
            plan.raise_()
        assert isinstance(plan, WritePlan)
        applied = portal.apply(spec.name, plan, sim.now_ms())
        names = set(spec.defaults_returned) | set(applied.written)
        return _json(portal.public(applied.record, names), 201)

    def lookup(account: Account, spec: ObjectTypeSpec, object_id: str):
        id_property = request.args.get("idProperty")
        if id_property and id_property not in account.portal.unique_properties(spec.name):
            raise ApiError(400, VALIDATION_ERROR, f"{id_property} is not a unique property")
        record = account.portal.find(spec.name, object_id, id_property)
        if record is None:
            raise ApiError(404, OBJECT_NOT_FOUND, "resource not found", context={"id": [object_id]})
        return record

    @route("/crm/v3/objects/<object_type>/<object_id>", methods=["GET"])
    def get_object(account: Account, object_type: str, object_id: str) -> Response:
        spec = _spec(object_type)
        if request.args.get("archived", "false").lower() == "true":
            record = (
                account.portal.records[spec.name].get(int(object_id))
                if object_id.isdigit()
                else None
            )
            if record is None or not record.archived:
                raise ApiError(404, OBJECT_NOT_FOUND, "resource not found")
        else:
            record = lookup(account, spec, object_id)
        return _json(account.portal.public(record, _requested_properties()))

    @route("/crm/v3/objects/<object_type>/<object_id>", methods=["PATCH"])
    def update_object(account: Account, object_type: str, object_id: str) -> Response:
        spec = _spec(object_type)
        record = lookup(account, spec, object_id)
        portal = account.portal
        plan = portal.plan_write(
            spec.name, record, _body().get("properties", {}), faults=sim.faults()
        )
        if isinstance(plan, InputError):
            plan.raise_()
        assert isinstance(plan, WritePlan)
        applied = portal.apply(spec.name, plan, sim.now_ms())
        names = set(spec.defaults_returned) | set(applied.written)
        return _json(portal.public(applied.record, names))

    @route("/crm/v3/objects/<object_type>/<object_id>", methods=["DELETE"])
    def archive_object(account: Account, object_type: str, object_id: str) -> Response:
        spec = _spec(object_type)
        account.portal.archive(spec.name, object_id, sim.now_ms())
        return _no_content()

    def plan_batch(portal: Portal, spec: ObjectTypeSpec, op: str, inputs: list) -> list:
        """One WritePlan or InputError per input, nothing written yet."""
        default_id_property = request.args.get("idProperty")
        unique = portal.unique_properties(spec.name)
        faults = sim.faults()
        if op in ("update", "upsert"):
            seen: set[str] = set()
            duplicates: list[str] = []
            for item in inputs:
                if isinstance(item, Mapping):
                    key = as_text(item.get("id")) or ""
                    if (item.get("idProperty") or default_id_property) == "email":
                        key = key.lower()
                    if key in seen:
                        duplicates.append(key)
                    seen.add(key)
            if duplicates:
                raise ApiError(
                    400,
                    VALIDATION_ERROR,
                    f"Duplicate IDs found in batch input: [{', '.join(duplicates)}]. "
                    "IDs must be unique",
                )
        claims: dict = {}
        plans: list[WritePlan | InputError] = []
        for item in inputs:
            if not isinstance(item, Mapping):
                plans.append(InputError(400, VALIDATION_ERROR, f"Invalid input: {item!r}"))
                continue
            context: dict[str, object] = {}
            if item.get("objectWriteTraceId"):
                context["objectWriteTraceId"] = [str(item["objectWriteTraceId"])]
            if op == "create":
                plan = portal.plan_write(
                    spec.name,
                    None,
                    item.get("properties", {}),
                    faults=faults,
                    claims=claims,
                    associations=item.get("associations"),
                )
            else:
                plan = plan_keyed(portal, spec, op, item, default_id_property, unique, claims)
                context["ids"] = [as_text(item.get("id")) or ""]
            if isinstance(plan, InputError):
                plan = with_context(plan, context)
            plans.append(plan)
        return plans

    def plan_keyed(
        portal: Portal,
        spec: ObjectTypeSpec,
        op: str,
        item: Mapping,
        default_id_property: str | None,
        unique: set[str],
        claims: dict,
    ) -> WritePlan | InputError:
        id_value = as_text(item.get("id")) or ""
        id_property = item.get("idProperty") or default_id_property
        if op == "upsert" and id_property not in unique:
            raise ApiError(
                400,
                VALIDATION_ERROR,
                f"idProperty {id_property!r} is not a unique property of {spec.name}; "
                "upserts need one",
            )
        if op == "update" and id_property and id_property not in unique | {"hs_object_id"}:
            raise ApiError(400, VALIDATION_ERROR, f"{id_property} is not a unique property")
        if not id_value:
            return InputError(400, VALIDATION_ERROR, "Every input needs an id")
        if id_value.lower() in sim.faults():
            name = id_property or "hs_object_id"
            code, message = (
                ("INVALID_EMAIL", f"Email address {id_value} is invalid")
                if name == "email"
                else ("INVALID_VALUE", f"{id_value} is not allowed by a validation rule")
            )
            return validation_error([ValueProblem(name, code, message)])
        record = portal.find(spec.name, id_value, id_property)
        properties = item.get("properties", {})
        if op == "update":
            if record is None:
                return InputError(
                    404,
                    OBJECT_NOT_FOUND,
                    f"Object not found: no {spec.singular} with {id_property or 'id'} "
                    f"{id_value} exists",
                )
            return portal.plan_write(
                spec.name, record, properties, faults=sim.faults(), claims=claims
            )
        if isinstance(properties, Mapping):
            # The id value is the record's key: a created record gets it as its property.
            properties = {**properties, id_property: id_value}
        return portal.plan_write(spec.name, record, properties, faults=sim.faults(), claims=claims)

    @route("/crm/v3/objects/<object_type>/batch/<op>", methods=["POST"])
    def batch(account: Account, object_type: str, op: str) -> Response:
        spec = _spec(object_type)
        portal = account.portal
        body = _body()
        inputs = _inputs(body)
        started = sim.now_ms()
        if op == "read":
            return batch_read(portal, spec, body, inputs, started)
        if op == "archive":
            for item in inputs:
                if isinstance(item, Mapping):
                    portal.archive(spec.name, item.get("id"), started)
            return _no_content()
        if op not in ("create", "update", "upsert"):
            raise ApiError(404, None, f"Unknown batch operation {op}")
        plans = plan_batch(portal, spec, op, inputs)
        errors = [p for p in plans if isinstance(p, InputError)]
        # 207 for batch create is documented only when inputs carry objectWriteTraceId.
        partial_allowed = op != "create" or all(
            isinstance(i, Mapping) and i.get("objectWriteTraceId") for i in inputs
        )
        reject_if_not_partial(errors, partial_allowed)
        id_property = request.args.get("idProperty")
        results = []
        for item, plan in zip(inputs, plans, strict=True):
            if not isinstance(plan, WritePlan):
                continue
            applied = portal.apply(spec.name, plan, started)
            names = set(spec.defaults_returned) | set(applied.written)
            key_property = item.get("idProperty") or id_property
            if key_property:
                names.add(key_property)
            extra: dict[str, object] = {}
            if op == "upsert":
                extra["new"] = applied.created
            if item.get("objectWriteTraceId"):
                extra["objectWriteTraceId"] = item["objectWriteTraceId"]
            results.append(portal.public(applied.record, names, extra=extra))
        return finish(results, errors, 201 if op == "create" else 200, started)

    def batch_read(
        portal: Portal, spec: ObjectTypeSpec, body: Mapping, inputs: list, started: int
    ) -> Response:
        id_property = body.get("idProperty")
        if id_property and id_property not in portal.unique_properties(spec.name):
            raise ApiError(400, VALIDATION_ERROR, f"{id_property} is not a unique property")
        names = body.get("properties") or None
        results, missing = [], []
        for item in inputs:
            value = item.get("id") if isinstance(item, Mapping) else None
            record = portal.find(spec.name, value, id_property)
            if record is None:
                missing.append(as_text(value) or "")
            else:
                results.append(portal.public(record, names))
        errors = []
        if missing:
            errors.append(
                InputError(
                    404,
                    OBJECT_NOT_FOUND,
                    f"Could not get some {spec.singular.upper()} objects, they may be deleted "
                    "or not exist. Check that ids are valid.",
                    context={"ids": missing},
                )
            )
        return finish(results, errors, 200, started)

    @route("/crm/v3/objects/<object_type>/search", methods=["POST"], search=True)
    def search(account: Account, object_type: str) -> Response:
        spec = _spec(object_type)
        if len(request.get_data()) > SEARCH_BODY_MAX:
            raise ApiError(
                400,
                VALIDATION_ERROR,
                f"Search request bodies are limited to {SEARCH_BODY_MAX} characters",
            )
        return _json(account.portal.search(spec.name, _body()))

    # ------------------------------------------------------------- properties (v3)

    @route("/crm/v3/properties/<object_type>", methods=["GET"])
    def list_properties(account: Account, object_type: str) -> Response:
        spec = _spec(object_type)
        portal = account.portal
        defs = portal.properties[spec.name]
        return _json({"results": [portal.property_json(d) for _, d in sorted(defs.items())]})

    @route("/crm/v3/properties/<object_type>", methods=["POST"])
    def create_property(account: Account, object_type: str) -> Response:
        spec = _spec(object_type)
        return _json(account.portal.create_property(spec.name, _body(), sim.now_ms()), 201)

    @route("/crm/v3/properties/<object_type>/<name>", methods=["GET"])
    def get_property(account: Account, object_type: str, name: str) -> Response:
        spec = _spec(object_type)
        definition = account.portal.properties[spec.name].get(name)
        if definition is None:
            raise ApiError(404, OBJECT_NOT_FOUND, f"Unable to find property {name}")
        return _json(account.portal.property_json(definition))

    @route("/crm/v3/properties/<object_type>/groups", methods=["GET"])
    def list_groups(account: Account, object_type: str) -> Response:
        spec = _spec(object_type)
        return _json({"results": list(account.portal.groups[spec.name].values())})

    @route("/crm/v3/properties/<object_type>/groups", methods=["POST"])
    def create_group(account: Account, object_type: str) -> Response:
        spec = _spec(object_type)
        return _json(account.portal.create_group(spec.name, _body()), 201)

    # ------------------------------------------------------------- associations (v4)

    def spec_pair(from_type: str, to_type: str) -> tuple[ObjectTypeSpec, ObjectTypeSpec]:
        return _spec(from_type), _spec(to_type)

    @route(
        "/crm/v4/objects/<from_type>/<from_id>/associations/default/<to_type>/<to_id>",
        methods=["PUT"],
    )
    def associate_default(
        account: Account, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> Response:
        source, target = spec_pair(from_type, to_type)
        portal = account.portal
        started = sim.now_ms()
        type_id = portal.association_type(source.name, target.name) or -1
        checked = portal.check_association(
            source.name, from_id, target.name, to_id, type_id, "HUBSPOT_DEFINED"
        )
        if isinstance(checked, InputError):
            checked.raise_()
        assert isinstance(checked, tuple)
        portal.associate(source.name, checked[0], target.name, checked[1])
        result = {
            "from": {"id": str(checked[0])},
            "to": {"id": str(checked[1])},
            "associationSpec": {
                "associationCategory": "HUBSPOT_DEFINED",
                "associationTypeId": type_id,
            },
        }
        return finish([result], [], 200, started)

    @route("/crm/v4/objects/<from_type>/<from_id>/associations/<to_type>/<to_id>", methods=["PUT"])
    def associate_labelled(
        account: Account, from_type: str, from_id: str, to_type: str, to_id: str
    ) -> Response:
        source, target = spec_pair(from_type, to_type)
        portal = account.portal
        types = request.get_json(silent=True)
        if not isinstance(types, list) or not types:
            raise ApiError(400, VALIDATION_ERROR, "Body must be a list of association types")
        checked: tuple[int, int] | None = None
        for t in types:
            result = portal.check_association(
                source.name,
                from_id,
                target.name,
                to_id,
                t.get("associationTypeId") if isinstance(t, Mapping) else None,
                t.get("associationCategory", "") if isinstance(t, Mapping) else "",
            )
            if isinstance(result, InputError):
                result.raise_()
            assert isinstance(result, tuple)
            checked = result
        assert checked is not None
        portal.associate(source.name, checked[0], target.name, checked[1])
        return _json(
            {
                "fromObjectTypeId": source.type_id,
                "fromObjectId": str(checked[0]),
                "toObjectTypeId": target.type_id,
                "toObjectId": str(checked[1]),
                "labels": [],
            },
            201,
        )

    @route("/crm/v4/objects/<from_type>/<from_id>/associations/<to_type>", methods=["GET"])
    def list_associations(account: Account, from_type: str, from_id: str, to_type: str) -> Response:
        source, target = spec_pair(from_type, to_type)
        record = account.portal.get(source.name, from_id)
        rows = account.portal.associated(source.name, record.id, target.name) if record else []
        limit = min(int(request.args.get("limit", "500")), 500)
        start = int(request.args.get("after", "0") or 0)
        body: dict[str, object] = {"results": rows[start : start + limit]}
        if start + limit < len(rows):
            body["paging"] = {"next": {"after": str(start + limit)}}
        return _json(body)

    @route("/crm/v4/associations/<from_type>/<to_type>/batch/create", methods=["POST"])
    def batch_associate(account: Account, from_type: str, to_type: str) -> Response:
        source, target = spec_pair(from_type, to_type)
        portal = account.portal
        inputs = _inputs(_body(), ASSOCIATION_BATCH_LIMITS["create"])
        started = sim.now_ms()
        planned: list[tuple[int, int] | InputError] = []
        for item in inputs:
            planned.append(check_association_input(portal, source, target, item))
        errors = [p for p in planned if isinstance(p, InputError)]
        reject_if_not_partial(errors, True)
        results = []
        for pair in planned:
            if isinstance(pair, tuple):
                portal.associate(source.name, pair[0], target.name, pair[1])
                results.append(
                    {
                        "fromObjectTypeId": source.type_id,
                        "fromObjectId": str(pair[0]),
                        "toObjectTypeId": target.type_id,
                        "toObjectId": str(pair[1]),
                        "labels": [],
                    }
                )
        return finish(results, errors, 201, started)

    def check_association_input(
        portal: Portal, source: ObjectTypeSpec, target: ObjectTypeSpec, item: object
    ) -> tuple[int, int] | InputError:
        if not isinstance(item, Mapping):
            return InputError(400, VALIDATION_ERROR, f"Invalid input: {item!r}")
        from_id = as_text((item.get("from") or {}).get("id")) or ""
        to_id = as_text((item.get("to") or {}).get("id")) or ""
        context = {"fromObjectId": [from_id], "toObjectId": [to_id]}
        types = item.get("types")
        if not isinstance(types, list) or not types:
            return InputError(400, VALIDATION_ERROR, "Every input needs types", context=context)
        result: tuple[int, int] | InputError = InputError(400, VALIDATION_ERROR, "no types")
        for t in types:
            result = portal.check_association(
                source.name,
                from_id,
                target.name,
                to_id,
                t.get("associationTypeId") if isinstance(t, Mapping) else None,
                t.get("associationCategory", "") if isinstance(t, Mapping) else "",
            )
            if isinstance(result, InputError):
                return with_context(result, context)
        return result

    @route("/crm/v4/associations/<from_type>/<to_type>/batch/associate/default", methods=["POST"])
    def batch_associate_default(account: Account, from_type: str, to_type: str) -> Response:
        source, target = spec_pair(from_type, to_type)
        portal = account.portal
        inputs = _inputs(_body(), ASSOCIATION_BATCH_LIMITS["associate/default"])
        started = sim.now_ms()
        type_id = portal.association_type(source.name, target.name) or -1
        planned = []
        for item in inputs:
            typed = dict(item) if isinstance(item, Mapping) else item
            if isinstance(typed, dict):
                typed["types"] = [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
                ]
            planned.append(check_association_input(portal, source, target, typed))
        errors = [p for p in planned if isinstance(p, InputError)]
        reject_if_not_partial(errors, True)
        results = []
        for pair in planned:
            if isinstance(pair, tuple):
                portal.associate(source.name, pair[0], target.name, pair[1])
                results.append(
                    {
                        "from": {"id": str(pair[0])},
                        "to": {"id": str(pair[1])},
                        "associationSpec": {
                            "associationCategory": "HUBSPOT_DEFINED",
                            "associationTypeId": type_id,
                        },
                    }
                )
        return finish(results, errors, 200, started)

    @route("/crm/v4/associations/<from_type>/<to_type>/batch/read", methods=["POST"])
    def batch_read_associations(account: Account, from_type: str, to_type: str) -> Response:
        source, target = spec_pair(from_type, to_type)
        portal = account.portal
        inputs = _inputs(_body(), ASSOCIATION_BATCH_LIMITS["read"])
        started = sim.now_ms()
        results, errors = [], []
        for item in inputs:
            from_id = as_text(item.get("id")) if isinstance(item, Mapping) else None
            record = portal.get(source.name, from_id)
            rows = portal.associated(source.name, record.id, target.name) if record else []
            if rows:
                results.append({"from": {"id": from_id}, "to": rows})
            else:
                errors.append(
                    InputError(
                        404,
                        OBJECT_NOT_FOUND,
                        f"No {target.singular} is associated with {source.singular} {from_id}.",
                        context={"fromObjectId": [from_id or ""]},
                    )
                )
        return finish(results, errors, 200, started)

    @route("/crm/v4/associations/<from_type>/<to_type>/batch/archive", methods=["POST"])
    def batch_archive_associations(account: Account, from_type: str, to_type: str) -> Response:
        source, target = spec_pair(from_type, to_type)
        inputs = _inputs(_body(), ASSOCIATION_BATCH_LIMITS["archive"])
        for item in inputs:
            if not isinstance(item, Mapping):
                continue
            from_id = (item.get("from") or {}).get("id")
            for to in item.get("to") or []:
                if isinstance(to, Mapping):
                    account.portal.unlink(source.name, from_id, target.name, to.get("id"))
        return _no_content()

    return bp


def _control(sim: Simulator) -> Blueprint:
    """``/_sandbox/``: set up accounts and knobs, and look inside, for tests and the demo.
    No auth, no rate limits, not in the call log."""
    bp = Blueprint("hubspot_control", __name__, url_prefix="/_sandbox")

    def fail(status: int, message: str) -> Response:
        return _json({"error": message}, status)

    def account_json(account: Account) -> dict:
        limits = account.limiter.limits
        return {
            "portal_id": account.portal.portal_id,
            "name": account.name,
            "limits": {
                "burst": limits.burst,
                "daily": limits.daily,
                "search_per_second": limits.search_per_second,
                "time_zone": limits.time_zone,
            },
            "currencies": list(account.portal.currencies),
            "pipelines": {k: list(v) for k, v in account.portal.pipelines.items()},
        }

    def parse_limits(raw: object, base: Limits) -> Limits:
        if raw is None:
            return base
        if not isinstance(raw, Mapping):
            raise ValueError("limits must be an object")
        return Limits(
            burst=int(raw.get("burst", base.burst)),
            daily=int(raw.get("daily", base.daily)),
            search_per_second=int(raw.get("search_per_second", base.search_per_second)),
            time_zone=str(raw.get("time_zone", base.time_zone)),
        )

    def account_or_none(portal_id: int) -> Account | None:
        return sim.by_id.get(portal_id)

    @bp.post("/portals")
    def create_portal() -> Response:
        body = request.get_json(silent=True) or {}
        token = body.get("token")
        if not isinstance(token, str) or not token:
            return fail(400, "token is required")
        with sim.lock:
            if token in sim.by_token:
                return fail(409, "a portal with this token exists")
            portal_id = int(body.get("portal_id") or sim.next_portal_id)
            if portal_id in sim.by_id:
                return fail(409, f"portal {portal_id} exists")
            sim.next_portal_id = max(sim.next_portal_id, portal_id + 1)
            try:
                limits = parse_limits(body.get("limits"), Limits())
                limiter = RateLimiter(limits)
                portal = Portal(
                    portal_id,
                    currencies=body.get("currencies") or DEFAULT_CURRENCIES,
                    pipelines=body.get("pipelines"),
                )
            except (ValueError, TypeError, KeyError) as exc:
                return fail(400, str(exc))
            account = Account(
                token=token, name=str(body.get("name") or portal_id), portal=portal, limiter=limiter
            )
            sim.by_token[token] = account
            sim.by_id[portal_id] = account
            sim.attach(account)
            return _json(account_json(account), 201)

    @bp.get("/portals")
    def list_portals() -> Response:
        with sim.lock:
            return _json({"portals": [account_json(a) for _, a in sorted(sim.by_id.items())]})

    @bp.patch("/portals/<int:portal_id>")
    def update_portal(portal_id: int) -> Response:
        body = request.get_json(silent=True) or {}
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            try:
                account.limiter.reconfigure(
                    parse_limits(body.get("limits"), account.limiter.limits)
                )
            except (ValueError, TypeError, KeyError) as exc:
                return fail(400, str(exc))
            return _json(account_json(account))

    @bp.post("/reset")
    def reset() -> Response:
        body = request.get_json(silent=True) or {}
        with sim.lock:
            portal_id = body.get("portal_id")
            if portal_id is None:
                sim.reset(int(body.get("seed", 0)))
                return _json({"reset": "all"})
            account = account_or_none(int(portal_id))
            if account is None:
                return fail(404, f"no portal {portal_id}")
            old = account.portal
            account.portal = Portal(
                old.portal_id, currencies=old.currencies, pipelines=old.pipelines
            )
            account.limiter = RateLimiter(account.limiter.limits)
            sim.attach(account)
            return _json({"reset": old.portal_id})

    @bp.get("/knobs")
    def get_knobs() -> Response:
        with sim.lock:
            return _json(asdict(sim.knobs))

    @bp.post("/knobs")
    def set_knobs() -> Response:
        body = request.get_json(silent=True) or {}
        known = {f.name for f in fields(Knobs)}
        unknown = sorted(set(body) - known - {"seed"})
        if unknown:
            return fail(400, f"unknown knobs: {', '.join(unknown)}")
        if "partial_mode" in body and str(body["partial_mode"]) not in PARTIAL_MODES:
            return fail(400, f"partial_mode must be one of {PARTIAL_MODES}")
        with sim.lock:
            for name, value in body.items():
                if name == "seed":
                    sim.rng = random.Random(int(value))
                elif name == "partial_mode":
                    sim.knobs.partial_mode = str(value)
                else:
                    setattr(sim.knobs, name, value)
            return _json(asdict(sim.knobs))

    @bp.get("/calls")
    def calls() -> Response:
        portal_id = request.args.get("portal_id", type=int)
        since = request.args.get("since", type=float)
        with sim.lock:
            rows = [
                c
                for c in sim.calls
                if (portal_id is None or c["portal_id"] == portal_id)
                and (since is None or c["time"] >= since)
            ]
            return _json({"calls": rows})

    @bp.delete("/calls")
    def clear_calls() -> Response:
        with sim.lock:
            sim.calls.clear()
        return _no_content()

    @bp.post("/portals/<int:portal_id>/webhooks")
    def set_webhooks(portal_id: int) -> Response:
        """The app's webhook settings for this portal: ``{target_url, client_secret, app_id,
        subscriptions: ["contact.creation", "contact.propertyChange", {"eventType":
        "contact.propertyChange", "propertyName": "email"}, ...], max_batch?, user_id?}``.
        Replaces earlier settings (batches not yet delivered are abandoned)."""
        body = request.get_json(silent=True) or {}
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            try:
                account.webhooks = parse_settings(body, sim.subscription_ids)
            except ValueError as exc:
                return fail(400, str(exc))
            return _json(account.webhooks.as_json(), 201)

    @bp.get("/portals/<int:portal_id>/webhooks")
    def get_webhooks(portal_id: int) -> Response:
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None or account.webhooks is None:
                return fail(404, f"no webhooks for portal {portal_id}")
            return _json(account.webhooks.as_json())

    @bp.delete("/portals/<int:portal_id>/webhooks")
    def delete_webhooks(portal_id: int) -> Response:
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            account.webhooks = None
            account.outbox.clear()
            return _no_content()

    @bp.get("/portals/<int:portal_id>/deliveries")
    def deliveries(portal_id: int) -> Response:
        """One row per delivery attempt, and how many events are still to be delivered."""
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            return _json(
                {
                    "deliveries": list(account.deliveries),
                    "pending": sim.webhooks.pending(account),
                }
            )

    @bp.delete("/portals/<int:portal_id>/deliveries")
    def clear_deliveries(portal_id: int) -> Response:
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            account.deliveries.clear()
            return _no_content()

    @bp.get("/portals/<int:portal_id>/dump")
    def dump(portal_id: int) -> Response:
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            return _json(account.portal.dump())

    @bp.get("/portals/<int:portal_id>/summary")
    def summary(portal_id: int) -> Response:
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            return _json(account.portal.summary())

    @bp.get("/portals/<int:portal_id>/counters")
    def counters(portal_id: int) -> Response:
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None:
                return fail(404, f"no portal {portal_id}")
            return _json(
                {
                    "objects": account.portal.counters,
                    "association_writes": account.portal.association_writes,
                }
            )

    @bp.post("/portals/<int:portal_id>/objects/<object_type>")
    def user_create(portal_id: int, object_type: str) -> Response:
        """Create records as a user in HubSpot's UI would: ``{"properties": {...}}`` or
        ``{"records": [{"properties": {...}}, ...]}``. All-or-nothing."""
        body = request.get_json(silent=True) or {}
        spec = resolve_object_type(object_type)
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None or spec is None:
                return fail(404, f"no portal {portal_id} or object type {object_type}")
            items = body.get("records") if "records" in body else [body]
            if not isinstance(items, list):
                return fail(400, "records must be a list")
            portal, claims = account.portal, {}
            plans = []
            for item in items:
                props = item.get("properties", {}) if isinstance(item, Mapping) else None
                plan = portal.plan_write(spec.name, None, props, claims=claims)
                if isinstance(plan, InputError):
                    return fail(plan.status, plan.message)
                plans.append(plan)
            now = sim.now_ms()
            created = [portal.apply(spec.name, p, now, by_api=False).record for p in plans]
            names = [sorted(k for k, v in r.properties.items() if v is not None) for r in created]
            return _json(
                {"results": [portal.public(r, n) for r, n in zip(created, names, strict=True)]}, 201
            )

    @bp.patch("/portals/<int:portal_id>/objects/<object_type>/<object_id>")
    def user_edit(portal_id: int, object_type: str, object_id: str) -> Response:
        """Edit a record as a user would (bumps its modified date, as any change does)."""
        body = request.get_json(silent=True) or {}
        spec = resolve_object_type(object_type)
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None or spec is None:
                return fail(404, f"no portal {portal_id} or object type {object_type}")
            record = account.portal.get(spec.name, object_id)
            if record is None:
                return fail(404, f"no {spec.singular} {object_id}")
            plan = account.portal.plan_write(spec.name, record, body.get("properties", {}))
            if isinstance(plan, InputError):
                return fail(plan.status, plan.message)
            applied = account.portal.apply(spec.name, plan, sim.now_ms(), by_api=False)
            names = sorted(k for k, v in applied.record.properties.items() if v is not None)
            return _json(account.portal.public(applied.record, names))

    @bp.delete("/portals/<int:portal_id>/objects/<object_type>/<object_id>")
    def user_archive(portal_id: int, object_type: str, object_id: str) -> Response:
        """Delete (archive) a record as a user would."""
        spec = resolve_object_type(object_type)
        with sim.lock:
            account = account_or_none(portal_id)
            if account is None or spec is None:
                return fail(404, f"no portal {portal_id} or object type {object_type}")
            if not account.portal.archive(spec.name, object_id, sim.now_ms(), by_api=False):
                return fail(404, f"no {spec.singular} {object_id}")
            return _no_content()

    return bp
