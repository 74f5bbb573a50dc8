"""The Zoho CRM simulator: a Flask app serving both an accounts server (``/oauth/v2/token``)
and the CRM API (``/crm/v8/...``) for any number of orgs, plus control endpoints under
``/_sandbox/``. One port plays both hosts; the token answer's ``api_domain`` is the
simulator's own base URL.

HTTP facts with sources (shared/reference/api-crms.md section 3; the record rules are in
``store.py``):
- token: ``POST {accounts}/oauth/v2/token`` with ``grant_type=refresh_token``, ``client_id``,
  ``client_secret``, ``refresh_token`` -> ``{access_token, api_domain, token_type, expires_in}``;
  access tokens live 1 h; at most 30 active access tokens per refresh token and 10 minted per
  10 minutes: https://www.zoho.com/crm/developer/docs/api/v8/refresh.html and
  https://www.zoho.com/accounts/protocol/oauth.html. A refused refresh answers
  ``{"error": "invalid_code"}``; its HTTP status (200 or 400) is UNCONFIRMED, hence the
  ``token_error_status`` knob.
- API auth header ``Authorization: Zoho-oauthtoken <token>``; 401 ``INVALID_TOKEN`` ("invalid
  oauth token"), ``AUTHENTICATION_FAILURE``, ``OAUTH_SCOPE_MISMATCH``; errors are
  ``{code, details, message, status:"error"}``:
  https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html
- credits per rolling 24 h; 1 per call, insert/update/upsert 1 per 10 records; concurrency per
  org (Standard edition 10); over either: 429 ``TOO_MANY_REQUESTS`` without Retry-After;
  ``X-API-CREDITS-REMAINING`` once usage passes 50 %:
  https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html
- ``trigger``: an empty list runs no automation, omitting it runs the default ones:
  https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html
"""

from __future__ import annotations

import functools
import json
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from sandbox.controls import BadRequest
from sandbox.zoho.notifications import Channel, Watch, check_scope
from sandbox.zoho.schema import MODULES
from sandbox.zoho.store import (
    MAX_FIELDS,
    MAX_IDS,
    MAX_PER_PAGE,
    PAGE_TOKEN_TTL,
    ApiError,
    Credits,
    Org,
    PageToken,
    WriteOptions,
    iso,
    page_window,
    parse_if_modified_since,
)

API_VERSION = "v8"
WRITE_LIMIT = 100  # records per insert/update/upsert/delete call
TOKEN_MINTS_PER_WINDOW = 10
TOKEN_MINT_WINDOW = 600.0
MAX_ACTIVE_TOKENS = 30
# What an omitted ``trigger`` runs (insert-records.html lists workflow, approval, blueprint,
# pathfinder, orchestration; which of them are "the default" is UNCONFIRMED).
DEFAULT_TRIGGERS = ("workflow", "approval", "blueprint")
KNOWN_TRIGGERS = frozenset({"workflow", "approval", "blueprint", "pathfinder", "orchestration"})
CREDITS_HEADER = "X-API-CREDITS-REMAINING"
# What a Self Client's token carries unless the org is made with other ``scopes``.
DEFAULT_SCOPES = (
    "ZohoCRM.modules.ALL",
    "ZohoCRM.settings.fields.READ",
    "ZohoCRM.notifications.ALL",
)


def dumps(value: Any) -> str:
    """JSON text with Decimals written as exact JSON numbers (Zoho sends amounts as numbers;
    the stdlib would need floats, which cannot hold 0.1 exactly)."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value)


def _json(body: Any, status: int = 200) -> Response:
    return Response(dumps(body), status=status, mimetype="application/json")


def _error(status: int, code: str, message: str, details: Mapping | None = None) -> Response:
    return _json(ApiError(status, code, message, details).body(), status)


@dataclass
class Knobs:
    """Fault and behaviour switches, set through ``POST /_sandbox/knobs``."""

    # One-shot answers for the next matching API calls: {"status", "code"?, "message"?,
    # "path_contains"?, "method"?, "times"? (default 1)}.
    inject: list[dict] = field(default_factory=list)
    error_5xx_rate: float = 0.0
    error_5xx_status: int = 500
    latency_ms: int = 0
    fault_values: list[str] = field(default_factory=list)  # emails/ids/values refused
    always_send_credits_header: bool = False
    unknown_fields: str = "error"  # "error" (INVALID_DATA) or "ignore"
    token_error_status: int = 400  # HTTP status of a refused token request (200 or 400)
    scope_mismatch: bool = False  # every API call answers 401 OAUTH_SCOPE_MISMATCH
    api_domain: str | None = None  # a forged ``api_domain`` in token answers (SSRF tests)
    # Rows of a subform (Sales_Orders.Ordered_Items) that an update does not name by ``id``:
    # "append" keeps them (v7/v8 update-subforms.html), "replace" deletes them (the v2 page).
    subform_update: str = "append"
    # What a GET with If-Modified-Since answers when nothing changed since then: the v8
    # status-codes page documents 304 Not Modified ("has not been modified after the time
    # mentioned in the If-Modified-Since header in a GET API"); get-records.html says 204 for
    # "no records". Which one a delta read gets is UNCONFIRMED (reference 3.2): 204 or 304.
    not_modified_status: int = 204
    # Watch-channel callbacks (sandbox.zoho.notifications): changes queued this close together
    # go in one callback; a failed callback is retried this many times, this far apart (times
    # the attempt number); Zoho's own retry policy is UNCONFIRMED.
    notification_delay_ms: int = 50
    notification_retries: int = 2
    notification_retry_seconds: float = 60.0
    notification_timeout_s: float = 10.0


@dataclass
class Account:
    """An org plus its OAuth client and limits."""

    org: Org
    name: str
    client_id: str
    client_secret: str
    refresh_token: str
    token_ttl: int
    credits: Credits
    concurrency: int
    custom_fields: bool
    scopes: tuple[str, ...] = ()
    inflight: int = 0
    mints: list[float] = field(default_factory=list)
    # Watch channels by (channel id, module), their callbacks' log, callbacks not yet done.
    channels: dict[tuple[str, str], Channel] = field(default_factory=dict)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    queued: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "org_id": self.org.org_id,
            "name": self.name,
            "client_id": self.client_id,
            "token_ttl_seconds": self.token_ttl,
            "credits": self.credits.limit,
            "concurrency": self.concurrency,
            "custom_fields": self.custom_fields,
            "scopes": list(self.scopes),
            "time_zone": self.org.zone.key,
            "users": {k: u.lookup() for k, u in self.org.users.items()},
        }


@dataclass
class IssuedToken:
    org_id: str
    expires_at: float
    revoked: bool = False


class Simulator:
    """All simulated orgs, the knobs, tokens and the call log, behind one lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.watch = Watch(self, dumps)
        self.reset()

    def reset(self, seed: int = 0) -> None:
        self.knobs = Knobs()
        self.rng = random.Random(seed)
        self.accounts: dict[str, Account] = {}
        self.tokens: dict[str, IssuedToken] = {}
        self.page_tokens: dict[str, PageToken] = {}
        self.calls: list[dict[str, Any]] = []
        self.next_org = 60_012_345

    def account(self, org_id: str) -> Account:
        account = self.accounts.get(str(org_id))
        if account is None:
            raise BadRequest(f"no org {org_id}", 404)
        return account

    def faults(self) -> frozenset[str]:
        return frozenset(str(v).strip().lower() for v in self.knobs.fault_values)

    def hex(self, n: int) -> str:
        return f"{self.rng.getrandbits(4 * n):0{n}x}"

    def log(self, org_id: str | None, status: int, *, credits: int = 0) -> None:
        self.calls.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "status": status,
                "org_id": org_id,
                "records": g.get("zoho_records"),
                "credits": credits,
                "triggers": g.get("zoho_triggers"),
                "time": self.clock(),
            }
        )

    # ----------------------------------------------------------------- accounts server

    def mint(self) -> Response:
        form = request.values
        with self.lock:
            now = self.clock()
            account = next(
                (a for a in self.accounts.values() if a.client_id == form.get("client_id")),
                None,
            )
            org_id = account.org.org_id if account else None
            error = None
            if form.get("grant_type") != "refresh_token":
                error = {"error": "unsupported_grant_type"}
            elif account is None or form.get("client_secret") != account.client_secret:
                error = {"error": "invalid_client"}
            elif form.get("refresh_token") != account.refresh_token:
                error = {"error": "invalid_code"}
            else:
                account.mints = [t for t in account.mints if t > now - TOKEN_MINT_WINDOW]
                if len(account.mints) >= TOKEN_MINTS_PER_WINDOW:
                    error = {
                        "error": "Access Denied",
                        "error_description": "You have made too many requests continuously. "
                        "Please try again after some time.",
                    }
            if error is not None:
                status = self.knobs.token_error_status
                self.log(org_id, status)
                return _json(error, status)
            account.mints.append(now)
            self._retire_tokens(account.org.org_id, now)
            token = f"1000.{self.hex(32)}.{self.hex(32)}"
            self.tokens[token] = IssuedToken(account.org.org_id, now + account.token_ttl)
            self.log(org_id, 200)
            return _json(
                {
                    "access_token": token,
                    "scope": " ".join(account.scopes),
                    "api_domain": self.knobs.api_domain or request.host_url.rstrip("/"),
                    "token_type": "Bearer",
                    "expires_in": account.token_ttl,
                }
            )

    def _retire_tokens(self, org_id: str, now: float) -> None:
        """Keep at most 30 live access tokens per refresh token: the oldest goes."""
        live = [
            t
            for t, issued in self.tokens.items()
            if issued.org_id == org_id and not issued.revoked and issued.expires_at > now
        ]
        for token in live[: max(0, len(live) - MAX_ACTIVE_TOKENS + 1)]:
            self.tokens[token].revoked = True

    # ----------------------------------------------------------------- API pipeline

    def serve(self, view: Callable[..., Response], kwargs: dict[str, Any]) -> Response:
        with self.lock:
            now = self.clock()
            account, refusal, cost = self._admit(now)
            if refusal is not None:
                self.log(account.org.org_id if account else None, refusal.status_code)
                return refusal
            assert account is not None
            account.inflight += 1
        try:
            if self.knobs.latency_ms:
                # Outside the lock, so concurrent calls really overlap (concurrency limit).
                time.sleep(self.knobs.latency_ms / 1000)
            with self.lock:
                try:
                    response = view(account, **kwargs)
                except ApiError as exc:
                    response = _json(exc.body(), exc.status)
                except BadRequest as exc:
                    response = _error(exc.status, "INVALID_DATA", str(exc))
                used = account.credits.used(self.clock())
                if self.knobs.always_send_credits_header or used > account.credits.limit / 2:
                    response.headers[CREDITS_HEADER] = str(max(0, account.credits.limit - used))
                self.log(account.org.org_id, response.status_code, credits=cost)
                return response
        finally:
            with self.lock:
                account.inflight -= 1

    def _admit(self, now: float) -> tuple[Account | None, Response | None, int]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Zoho-oauthtoken" or not token.strip():
            return None, _error(401, "AUTHENTICATION_FAILURE", "Authentication failed"), 0
        issued = self.tokens.get(token.strip())
        account = self.accounts.get(issued.org_id) if issued else None
        if issued is None or account is None or issued.revoked or issued.expires_at <= now:
            return account, _error(401, "INVALID_TOKEN", "invalid oauth token"), 0
        _parse_body()
        if self.knobs.scope_mismatch:
            return account, _error(401, "OAUTH_SCOPE_MISMATCH", "invalid oauth scope"), 0
        injected = self._injected()
        if injected is not None:
            return account, injected, 0
        if account.inflight >= account.concurrency:
            return account, _too_many("concurrency limit exceeded"), 0
        cost = _cost()
        if not account.credits.spend(now, cost):
            return account, _too_many("API credits for the last 24 hours are used up"), 0
        return account, None, cost

    def _injected(self) -> Response | None:
        for entry in self.knobs.inject:
            if entry.get("path_contains", "") not in request.path:
                continue
            if entry.get("method") and str(entry["method"]).upper() != request.method:
                continue
            entry["times"] = int(entry.get("times", 1)) - 1
            if entry["times"] <= 0:
                self.knobs.inject.remove(entry)
            status = int(entry.get("status", 500))
            code = str(entry.get("code") or _DEFAULT_CODES.get(status, "INTERNAL_ERROR"))
            message = str(entry.get("message") or _DEFAULT_MESSAGES.get(code, code.lower()))
            return _error(status, code, message)
        if self.knobs.error_5xx_rate and self.rng.random() < self.knobs.error_5xx_rate:
            status = self.knobs.error_5xx_status
            return _error(status, "INTERNAL_ERROR", _DEFAULT_MESSAGES["INTERNAL_ERROR"])
        return None


_DEFAULT_CODES = {
    401: "INVALID_TOKEN",
    403: "NO_PERMISSION",
    429: "TOO_MANY_REQUESTS",
    500: "INTERNAL_ERROR",
}
_DEFAULT_MESSAGES = {
    "INVALID_TOKEN": "invalid oauth token",
    "OAUTH_SCOPE_MISMATCH": "invalid oauth scope",
    "NO_PERMISSION": "permission denied",
    "TOO_MANY_REQUESTS": "too many requests",
    "INTERNAL_ERROR": "Internal Server Error occurred while processing this request.",
}


def _too_many(message: str) -> Response:
    # No Retry-After: Zoho documents none (AE-ZOHO, api-limits.html).
    return _error(429, "TOO_MANY_REQUESTS", message)


_UNPARSED = object()


def _parse_body() -> None:
    """Parse the JSON body once (numbers as Decimal, so amounts stay exact) into ``g``, and
    note how many records a write carries and which automations it would run."""
    raw = request.get_data()
    body: Any = None
    if raw:
        try:
            body = json.loads(raw, parse_float=Decimal)
        except ValueError:
            body = _UNPARSED
    g.zoho_body = body
    if request.method in ("POST", "PUT") and request.path.count("/") <= 4:
        data = body.get("data") if isinstance(body, dict) else None
        g.zoho_records = len(data) if isinstance(data, list) else None
        trigger = body.get("trigger", DEFAULT_TRIGGERS) if isinstance(body, dict) else None
        g.zoho_triggers = list(trigger) if isinstance(trigger, list | tuple) else None
    elif request.method == "DELETE":
        ids = [i for i in request.args.get("ids", "").split(",") if i]
        g.zoho_records = len(ids)
        wf = request.args.get("wf_trigger", "true").lower() != "false"
        g.zoho_triggers = ["workflow"] if wf else []


def _cost() -> int:
    """1 credit per call; insert/update/upsert 1 per 10 records (api-limits.html)."""
    records = g.get("zoho_records")
    if request.method in ("POST", "PUT") and records:
        return max(1, math.ceil(records / 10))
    return 1


def _body() -> dict[str, Any]:
    body = g.get("zoho_body")
    if body is _UNPARSED or not isinstance(body, dict):
        raise ApiError(400, "INVALID_DATA", "the body is not a JSON object", {})
    return body


def _csv(name: str) -> list[str]:
    return [v.strip() for v in request.args.get(name, "").split(",") if v.strip()]


def _int_arg(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        # UNCONFIRMED: whether Zoho refuses or clamps an out-of-range per_page/page.
        raise ApiError(400, "INVALID_DATA", "invalid data", {"param": name})
    return value


def create_app(*, clock: Callable[[], float] = time.time) -> Flask:
    """The simulator as a Flask app; ``clock`` (epoch seconds) drives timestamps, token
    expiry, page-token expiry and the rolling credit window."""
    sim = Simulator(clock)
    app = Flask("sandbox.zoho")
    app.extensions["zoho_simulator"] = sim
    app.register_blueprint(_accounts(sim))
    app.register_blueprint(_api(sim))
    app.register_blueprint(_control(sim))

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        return _error(
            404, "INVALID_URL_PATTERN", "Please check if the URL trying to access is a correct one"
        )

    @app.errorhandler(405)
    def not_allowed(_exc: Exception) -> Response:
        return _error(
            405, "INVALID_REQUEST_METHOD", "The http request method type is not a valid one"
        )

    return app


def _accounts(sim: Simulator) -> Blueprint:
    bp = Blueprint("zoho_accounts", __name__)
    bp.add_url_rule("/oauth/v2/token", "token", sim.mint, methods=["POST"])
    return bp


def _api(sim: Simulator) -> Blueprint:
    bp = Blueprint("zoho_api", __name__, url_prefix=f"/crm/{API_VERSION}")

    def route(rule: str, *, methods: list[str]):
        def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
            @functools.wraps(view)
            def wrapper(**kwargs: Any) -> Response:
                return sim.serve(view, kwargs)

            bp.add_url_rule(rule, view.__name__, wrapper, methods=methods)
            return view

        return decorate

    def options() -> WriteOptions:
        return WriteOptions(
            faults=sim.faults(),
            unknown_fields=sim.knobs.unknown_fields,
            subform_update=sim.knobs.subform_update,
        )

    def write(account: Account, module: str, operation: str) -> Response:
        org = account.org
        module = org.module(module)
        body = _body()
        data = body.get("data")
        if data is None or data == []:
            raise ApiError(
                400, "REQUIRED_PARAM_MISSING", "required param not found", {"param": "data"}
            )
        if not isinstance(data, list):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"param": "data"})
        if len(data) > WRITE_LIMIT:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"the number of records exceeds the limit of {WRITE_LIMIT}",
                {"limit": WRITE_LIMIT},
            )
        trigger = body.get("trigger")
        if trigger is not None and (
            not isinstance(trigger, list) or not set(map(str, trigger)) <= KNOWN_TRIGGERS
        ):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"param": "trigger"})
        checks = body.get("duplicate_check_fields") if operation == "upsert" else None
        valid = isinstance(checks, list) and all(
            isinstance(c, str) and c in org.fields[module] for c in checks
        )
        if checks is not None and not valid:
            raise ApiError(400, "INVALID_DATA", "invalid data", {"param": "duplicate_check_fields"})
        results = org.write(module, operation, data, int(sim.clock()), options(), checks)
        ok = sum(r["status"] == "success" for r in results)
        all_ok_status = 201 if operation == "insert" else 200
        status = all_ok_status if ok == len(results) else 207 if ok else 400
        return _json({"data": results}, status)

    @route("/<module>", methods=["POST"])
    def insert_records(account: Account, module: str) -> Response:
        return write(account, module, "insert")

    @route("/<module>", methods=["PUT"])
    def update_records(account: Account, module: str) -> Response:
        return write(account, module, "update")

    @route("/<module>/upsert", methods=["POST"])
    def upsert_records(account: Account, module: str) -> Response:
        return write(account, module, "upsert")

    @route("/<module>", methods=["DELETE"])
    def delete_records(account: Account, module: str) -> Response:
        org = account.org
        module = org.module(module)
        ids = _csv("ids")
        if not ids:
            raise ApiError(
                400, "REQUIRED_PARAM_MISSING", "required param not found", {"param": "ids"}
            )
        if len(ids) > WRITE_LIMIT:
            raise ApiError(
                400,
                "LIMIT_EXCEEDED",
                f"the number of records exceeds the limit of {WRITE_LIMIT}",
                {"limit": WRITE_LIMIT},
            )
        results = org.delete(module, ids, options())
        ok = sum(r["status"] == "success" for r in results)
        status = 200 if ok == len(results) else 207 if ok else 400
        return _json({"data": results}, status)

    @route("/<module>", methods=["GET"])
    def get_records(account: Account, module: str) -> Response:
        org = account.org
        module = org.module(module)
        names = _csv("fields")
        if not names:
            # v8: ``fields`` is mandatory (get-records.html).
            raise ApiError(
                400, "REQUIRED_PARAM_MISSING", "required param not found", {"param": "fields"}
            )
        if len(names) > MAX_FIELDS:
            raise ApiError(
                400, "LIMIT_EXCEEDED", "limit exceeded", {"param": "fields", "limit": MAX_FIELDS}
            )
        ids = _csv("ids") or None
        if ids is not None and len(ids) > MAX_IDS:
            raise ApiError(
                400, "LIMIT_EXCEEDED", "limit exceeded", {"param": "ids", "limit": MAX_IDS}
            )
        per_page = _int_arg("per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
        page = _int_arg("page", 1, 1, 10**9)
        sort_by = request.args.get("sort_by", "id")
        sort_order = request.args.get("sort_order", "desc")
        if sort_by not in ("id", "Created_Time", "Modified_Time"):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"param": "sort_by"})
        if sort_order not in ("asc", "desc"):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"param": "sort_order"})
        since_header = request.headers.get("If-Modified-Since")
        since = parse_if_modified_since(since_header) if since_header else None
        bound_to = (
            org.org_id,
            module,
            tuple(sorted(names)),
            per_page,
            sort_by,
            sort_order,
            since,
            tuple(ids or ()),
        )
        token = None
        raw_token = request.args.get("page_token")
        if raw_token:
            token = sim.page_tokens.get(raw_token)
            if token is None or token.bound_to[0] != org.org_id:
                raise ApiError(400, "INVALID_DATA", "invalid data", {"param": "page_token"})
            if token.expires_at <= sim.clock():
                raise ApiError(
                    400, "EXPIRED_VALUE", "the page token has expired", {"param": "page_token"}
                )
            if token.bound_to != bound_to:
                raise ApiError(
                    400,
                    "TOKEN_BOUND_DATA_MISMATCH",
                    "the page token was issued for other parameters",
                    {"param": "page_token"},
                )
        records = org.select(
            module, ids=ids, modified_after=since, sort_by=sort_by, sort_order=sort_order
        )
        window = page_window(page=page, per_page=per_page, token=token, total=len(records))
        chunk = records[window.offset : window.end]
        if not chunk:
            if since is not None and not records and sim.knobs.not_modified_status == 304:
                return Response(status=304)  # nothing modified since (status-codes.html)
            return Response(status=204)  # no records: 204 with an empty body (get-records.html)
        more = window.end < len(records)
        next_token, expiry = None, None
        if more:
            # Offered on every page with more records; bound to the same query (get-records.html).
            next_token = sim.hex(40)
            expires_at = sim.clock() + PAGE_TOKEN_TTL
            sim.page_tokens[next_token] = PageToken(bound_to, window.end, expires_at)
            expiry = iso(int(expires_at), org.zone)
        info = {
            "per_page": per_page,
            "count": len(chunk),
            "page": window.page,
            "sort_by": sort_by,
            "sort_order": sort_order,
            "more_records": more,
            "next_page_token": next_token,
            "previous_page_token": None,
            "page_token_expiry": expiry,
        }
        return _json({"data": [org.render(r, names) for r in chunk], "info": info})

    @route("/<module>/<record_id>", methods=["GET"])
    def get_record(account: Account, module: str, record_id: str) -> Response:
        org = account.org
        module = org.module(module)
        record = org.get(module, record_id)
        if record is None:
            return Response(status=204)  # UNCONFIRMED: 204 vs 400 INVALID_DATA
        return _json({"data": [org.render(record, _csv("fields") or None)]})

    # ------------------------------------------------------------- watch channels

    def watch_entries(limit: int = 50) -> list[Any]:
        body = _body()
        entries = body.get("watch")
        if entries is None or entries == []:
            raise ApiError(
                400, "MANDATORY_NOT_FOUND", "required field not found", {"api_name": "watch"}
            )
        if not isinstance(entries, list):
            raise ApiError(400, "INVALID_DATA", "invalid data", {"api_name": "watch"})
        if len(entries) > limit:
            raise ApiError(400, "LIMIT_EXCEEDED", "limit exceeded", {"limit": limit})
        return entries

    def watch_answer(results: list[dict], all_ok: int) -> Response:
        ok = sum(r["status"] == "success" for r in results)
        status = all_ok if ok == len(results) else 207 if ok else 400
        return _json({"watch": results}, status)

    def api_domain() -> str:
        return sim.knobs.api_domain or request.host_url.rstrip("/")

    @route("/actions/watch", methods=["POST"])
    def enable_watch(account: Account) -> Response:
        check_scope(account.scopes, "POST")
        results = sim.watch.enable(account, watch_entries(), api_domain())
        return watch_answer(results, 201)

    @route("/actions/watch", methods=["PUT", "PATCH"])
    def update_watch(account: Account) -> Response:
        check_scope(account.scopes, request.method)
        results = sim.watch.update(
            account, watch_entries(), api_domain(), replace=request.method == "PUT"
        )
        return watch_answer(results, 200)

    @route("/actions/watch", methods=["GET"])
    def list_watch(account: Account) -> Response:
        check_scope(account.scopes, "GET")
        rows = sim.watch.listing(
            account, module=request.args.get("module"), channel_id=request.args.get("channel_id")
        )
        if not rows:
            return Response(status=204)
        info = {"per_page": 200, "count": len(rows), "page": 1, "more_records": False}
        return _json({"watch": rows, "info": info})

    @route("/actions/watch", methods=["DELETE"])
    def disable_watch(account: Account) -> Response:
        check_scope(account.scopes, "DELETE")
        ids = _csv("channel_ids")
        if not ids:
            raise ApiError(
                400, "REQUIRED_PARAM_MISSING", "required param not found", {"param": "channel_ids"}
            )
        return watch_answer(sim.watch.disable(account, ids), 200)

    @route("/settings/fields", methods=["GET"])
    def field_meta(account: Account) -> Response:
        org = account.org
        name = request.args.get("module")
        if not name:
            raise ApiError(
                400, "REQUIRED_PARAM_MISSING", "required param not found", {"param": "module"}
            )
        specs = org.field_specs(name)  # a module, or a subform's rows (fields?module=Ordered_Items)
        return _json({"fields": [org.field_json(name, s) for s in specs.values()]})

    return bp


def _control(sim: Simulator) -> Blueprint:
    """``/_sandbox/``: set up orgs and knobs, and look inside, for tests and the demo. No auth,
    no limits, not in the call log."""
    bp = Blueprint("zoho_control", __name__, url_prefix="/_sandbox")

    @bp.errorhandler(BadRequest)
    def refused(exc: BadRequest) -> Response:
        return _json({"error": str(exc)}, exc.status)

    def body() -> dict[str, Any]:
        raw = request.get_data()
        if not raw:
            return {}
        try:
            data = json.loads(raw, parse_float=Decimal)
        except ValueError:
            raise BadRequest("the body must be JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object")
        return data

    def positive(data: Mapping, key: str, default: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise BadRequest(f"{key} must be an integer >= 1")
        return value

    def module_of(account: Account, name: str) -> str:
        if name not in MODULES:
            raise BadRequest(f"no module {name}; the simulator has {', '.join(MODULES)}", 404)
        return name

    @bp.post("/orgs")
    def create_org() -> Response:
        data = body()
        for key in ("client_id", "client_secret", "refresh_token"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise BadRequest(f"{key} is required (a non-empty string)")
        with sim.lock:
            org_id = str(data.get("org_id") or sim.next_org)
            if org_id in sim.accounts:
                raise BadRequest(f"org {org_id} exists", 409)
            if any(a.client_id == data["client_id"] for a in sim.accounts.values()):
                raise BadRequest("an org with this client_id exists", 409)
            custom = data.get("custom_fields", True)
            if not isinstance(custom, bool):
                raise BadRequest("custom_fields must be a boolean")
            scopes = data.get("scopes", list(DEFAULT_SCOPES))
            if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
                raise BadRequest("scopes must be a list of Zoho OAuth scopes")
            extra_unique = data.get("unique_fields") or {}
            if not isinstance(extra_unique, dict):
                raise BadRequest("unique_fields must be {module: [field, ...]}")
            try:
                org = Org(
                    org_id,
                    id_prefix=4_150_868 + len(sim.accounts),
                    custom_fields=custom,
                    time_zone=str(data.get("time_zone", "Asia/Kolkata")),
                    extra_unique=extra_unique,
                )
            except (ValueError, KeyError, ApiError) as exc:
                raise BadRequest(str(exc)) from None
            sim.next_org = max(sim.next_org, int(org_id) + 1 if org_id.isdigit() else 0)
            account = Account(
                org=org,
                name=str(data.get("name") or f"Org {org_id}"),
                client_id=data["client_id"],
                client_secret=data["client_secret"],
                refresh_token=data["refresh_token"],
                token_ttl=positive(data, "token_ttl_seconds", 3600),
                # Enterprise with 10 users would be 60,000; the default is any plausible figure.
                credits=Credits(positive(data, "credits", 50_000)),
                concurrency=positive(data, "concurrency", 10),  # Standard edition
                custom_fields=custom,
                scopes=tuple(scopes),
            )
            org.on_change = functools.partial(sim.watch.changed, account)
            sim.accounts[org_id] = account
            return _json(account.as_json(), 201)

    @bp.get("/orgs/<org_id>")
    def get_org(org_id: str) -> Response:
        with sim.lock:
            return _json(sim.account(org_id).as_json())

    @bp.get("/orgs/<org_id>/dump")
    def dump(org_id: str) -> Response:
        with sim.lock:
            org = sim.account(org_id).org
            return _json({m: [org.render(r) for r in org.live(m)] for m in MODULES})

    @bp.get("/orgs/<org_id>/summary")
    def summary(org_id: str) -> Response:
        """CRM-neutral contacts and orders. Orders are the Sales_Orders when the org has any
        (``line_items`` the number of rows, ``amount`` the Grand_Total), else the Deals
        (``line_items`` null, ``amount`` the Amount); ``?orders=Sales_Orders`` or
        ``?orders=Deals`` picks one. ``contact_ids`` is the Contact_Name lookup."""
        wanted = request.args.get("orders")
        if wanted not in (None, "Sales_Orders", "Deals"):
            raise BadRequest("orders must be Sales_Orders or Deals")
        with sim.lock:
            org = sim.account(org_id).org
            contacts = [
                {
                    "id": r.id,
                    "email": r.values.get("Email"),
                    "first_name": r.values.get("First_Name"),
                    "last_name": r.values.get("Last_Name"),
                }
                for r in org.live("Contacts")
            ]
            module = wanted or ("Sales_Orders" if org.live("Sales_Orders") else "Deals")
            amount_field = "Grand_Total" if module == "Sales_Orders" else "Amount"
            orders = [
                {
                    "id": r.id,
                    "external_id": r.values.get("Tandem_Order_Id"),
                    "amount": None
                    if r.values.get(amount_field) is None
                    else str(r.values[amount_field]),
                    "currency": r.values.get("Currency"),
                    "contact_ids": [r.values["Contact_Name"]]
                    if r.values.get("Contact_Name")
                    else [],
                    "line_items": len(r.values.get("Ordered_Items") or [])
                    if module == "Sales_Orders"
                    else None,
                }
                for r in org.live(module)
            ]
            return _json({"contacts": contacts, "orders": orders})

    @bp.get("/orgs/<org_id>/counters")
    def counters(org_id: str) -> Response:
        with sim.lock:
            return _json(sim.account(org_id).org.writes)

    @bp.post("/orgs/<org_id>/expire-tokens")
    def expire_tokens(org_id: str) -> Response:
        with sim.lock:
            sim.account(org_id)
            expired = 0
            for issued in sim.tokens.values():
                if issued.org_id == str(org_id) and not issued.revoked:
                    issued.revoked = True
                    expired += 1
            return _json({"expired": expired})

    @bp.post("/orgs/<org_id>/records/<module>")
    def rep_create(org_id: str, module: str) -> Response:
        """Records a sales rep creates in the CRM UI: one record's fields, or
        ``{"records": [...]}``. All or nothing; not charged, not in the call log."""
        data = body()
        with sim.lock:
            account = sim.account(org_id)
            module = module_of(account, module)
            items = data.get("records", [data])
            if not isinstance(items, list):
                raise BadRequest("records must be a list")
            org, now = account.org, int(sim.clock())
            created = []
            try:
                for item in items:
                    created.append(org.check_create(module, item, now, "rep"))
            except ValueError as exc:
                for record in created:  # all or nothing
                    del org.records[module][record.id]
                raise BadRequest(str(exc)) from None
            return _json({"data": [org.render(r) for r in created]}, 201)

    @bp.patch("/orgs/<org_id>/records/<module>/<record_id>")
    def rep_edit(org_id: str, module: str, record_id: str) -> Response:
        """A sales rep's edit in the UI: bumps Modified_Time; Modified_By is the rep."""
        data = body()
        with sim.lock:
            account = sim.account(org_id)
            module = module_of(account, module)
            org = account.org
            if org.get(module, record_id) is None:
                raise BadRequest(f"no {module} record {record_id}", 404)
            [result] = org.write(
                module,
                "update",
                [{**data, "id": record_id}],
                int(sim.clock()),
                WriteOptions(by="rep"),
            )
            if result["status"] != "success":
                raise BadRequest(f"{result['code']}: {result['details']}")
            return _json({"data": [org.render(org.records[module][record_id])]})

    @bp.get("/orgs/<org_id>/deliveries")
    def deliveries(org_id: str) -> Response:
        """The watch callbacks sent (one row per attempt) and how many are still to go."""
        with sim.lock:
            account = sim.account(org_id)
            return _json({"deliveries": list(account.deliveries), "pending": account.queued})

    @bp.delete("/orgs/<org_id>/deliveries")
    def clear_deliveries(org_id: str) -> Response:
        with sim.lock:
            sim.account(org_id).deliveries.clear()
        return Response(status=204)

    @bp.get("/calls")
    def calls() -> Response:
        org_id = request.args.get("org_id")
        with sim.lock:
            rows = [c for c in sim.calls if org_id is None or c["org_id"] == org_id]
            return _json({"calls": rows})

    @bp.delete("/calls")
    def clear_calls() -> Response:
        with sim.lock:
            sim.calls.clear()
        return Response(status=204)

    @bp.get("/knobs")
    def get_knobs() -> Response:
        with sim.lock:
            return _json(asdict(sim.knobs))

    @bp.post("/knobs")
    def set_knobs() -> Response:
        data = body()
        known = {f.name: f for f in fields(Knobs)}
        unknown = sorted(set(data) - set(known) - {"seed"})
        if unknown:
            raise BadRequest(f"unknown knobs: {', '.join(unknown)}")
        if "unknown_fields" in data and data["unknown_fields"] not in ("error", "ignore"):
            raise BadRequest("unknown_fields must be 'error' or 'ignore'")
        if "subform_update" in data and data["subform_update"] not in ("append", "replace"):
            raise BadRequest("subform_update must be 'append' or 'replace'")
        if "not_modified_status" in data and data["not_modified_status"] not in (204, 304):
            raise BadRequest("not_modified_status must be 204 or 304")
        if "token_error_status" in data and data["token_error_status"] not in (200, 400, 401):
            raise BadRequest("token_error_status must be 200, 400 or 401")
        for name in ("inject", "fault_values"):
            if name in data and not isinstance(data[name], list):
                raise BadRequest(f"{name} must be a list")
        for name in (
            "notification_delay_ms",
            "notification_retries",
            "notification_retry_seconds",
            "notification_timeout_s",
        ):
            value = data.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int | Decimal) or value < 0:
                raise BadRequest(f"{name} must be a number >= 0")
        if any(not isinstance(e, dict) or "status" not in e for e in data.get("inject", [])):
            raise BadRequest("each inject entry must be an object with a status")
        with sim.lock:
            for name, value in data.items():
                if name == "seed":
                    sim.rng = random.Random(int(value))
                elif isinstance(value, Decimal):
                    setattr(sim.knobs, name, float(value))
                else:
                    setattr(sim.knobs, name, value)
            return _json(asdict(sim.knobs))

    @bp.post("/reset")
    def reset() -> Response:
        data = body()
        with sim.lock:
            sim.reset(int(data.get("seed", 0)))
        return _json({"reset": "all"})

    return bp
