"""The Salesforce simulator: a Flask app that is both the login server
(``/services/oauth2/token``) and every org's instance (``/services/data/vXX.X/...``), plus
control endpoints under ``/_sandbox/``.

HTTP facts (shared/reference/api-crms.md section 2, sources there):
- token endpoint, form-encoded, ``grant_type=refresh_token`` (client_id, client_secret,
  refresh_token) or ``urn:ietf:params:oauth:grant-type:jwt-bearer`` (``assertion``: RS256 JWT,
  iss = consumer key, sub = username, aud = https://login.salesforce.com for a production org,
  https://test.salesforce.com for a sandbox (org option ``sandbox``), or the org's
  ``jwt_audience`` (a community URL), never merely the host posted to; exp within a few
  minutes); answer ``{access_token, instance_url, id, token_type, issued_at, signature,
  scope}``, no expires_in, no refresh token for JWT (SF-OAUTH-WS, SF-OAUTH-JWT). With the org
  option ``rotate_refresh_tokens`` a refresh also answers a new ``refresh_token`` and the one
  sent stops working; sending a spent one again revokes the family (its current refresh token
  and every session): help article 005316711. Errors are ``{error,
  error_description}`` with status 400; the descriptions are Salesforce's usual ones
  ("expired access/refresh token", "invalid client credentials"), UNCONFIRMED word for word.
  Salesforce wants ``exp`` no more than about three minutes out; the simulator allows five.
- a session lasts the org's session timeout (default 2 h) from when it was issued; whether use
  extends it is UNCONFIRMED, so ``session_sliding`` (org option, default false) makes it an
  inactivity timeout. Then 401 ``[{"message": "Session expired or invalid", "errorCode":
  "INVALID_SESSION_ID"}]`` (SF-REST errorcodes.htm).
- every REST response except the versions list carries ``Sforce-Limit-Info:
  api-usage=<used>/<max>``; the allocation is a rolling 24 h count; a collections call counts
  once; past it, 403 ``REQUEST_LIMIT_EXCEEDED`` "TotalRequests Limit exceeded." (message text
  UNCONFIRMED) (SF-REST headers_api_usage.htm, SF-LIMITS). Refused calls are not counted here
  (UNCONFIRMED).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from flask import Blueprint, Flask, Response, request

from sandbox.salesforce.org import ApiError, Org, Session
from sandbox.salesforce.outbound import Action, Outbound
from sandbox.salesforce.rest import Rest
from sandbox.salesforce.schema import DEFAULT_CURRENCIES, build_schema, make_id

MIN_VERSION, MAX_VERSION = 46.0, 66.0
_VERSION = re.compile(r"^v(\d{2,3})\.(\d)$")
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
JWT_MAX_LIFETIME = 300.0
STANDARD_AUDIENCES = ("https://login.salesforce.com", "https://test.salesforce.com")
SESSION_EXPIRED = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
LIMIT_EXCEEDED = [
    {"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}
]


def dumps(value: Any) -> str:
    """JSON with Decimals written as exact JSON numbers (the json module cannot)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps(v) for v in value) + "]"
    raise TypeError(f"cannot serialise {type(value).__name__}")


def sf_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    if status == 204 or body is None:
        response = Response(status=status)
    else:
        response = Response(dumps(body), status=status, mimetype="application/json")
        response.headers["Content-Type"] = "application/json;charset=UTF-8"
    response.headers.update(dict(headers or {}))
    return response


@dataclass
class Knobs:
    """Fault and behaviour switches, set through ``POST /_sandbox/knobs``."""

    # One-shot answers for the next matching REST calls: {"status", "error_code"?, "message"?,
    # "path_contains"?, "method"?, "times"? (default 1), "applied"? (default false)}. With
    # "applied": true the call is carried out first and its answer replaced by the error: a
    # response lost after Salesforce did the work, as a timeout or a 5xx from a proxy is.
    inject: list[dict] = field(default_factory=list)
    error_5xx_rate: float = 0.0
    error_5xx_status: int = 503
    latency_ms: int = 0
    fault_values: list[str] = field(default_factory=list)  # values refused by a validation rule
    collection_error_key: str = "statusCode"  # or "errorCode" (UNCONFIRMED which one)
    per_app_usage: bool = False  # add "per-app-api-usage=..." to Sforce-Limit-Info
    # Expire query locators idle this long (900 = before API v56.0); None: 2 days after the
    # query only (org.CURSOR_LIFETIME_SECONDS).
    cursor_idle_seconds: float | None = None
    # Outbound messages (sandbox.salesforce.outbound): saves this close together go in one
    # message; retry delays times this (0.0001 for tests); the listener's time limit.
    outbound_delay_ms: int = 50
    outbound_time_scale: float = 1.0
    outbound_timeout_s: float = 10.0


class Simulator:
    """All orgs, sessions, knobs and the call log, behind one lock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.outbound = Outbound(self)
        self.reset()

    def reset(self, seed: int = 0) -> None:
        self.knobs = Knobs()
        self.rng = random.Random(seed)
        self.orgs: dict[str, Org] = {}
        self.by_client: dict[str, Org] = {}
        self.sessions: dict[str, Session] = {}
        self.calls: list[dict] = []
        self.org_serial = 0
        self.cursor_serial = 0

    def faults(self) -> frozenset[str]:
        return frozenset(str(v).strip().lower() for v in self.knobs.fault_values)

    def body(self) -> Any:
        """The request's JSON, numbers as Decimal (amounts stay exact). Raises ApiError."""
        raw = request.get_data(cache=True)
        if not raw:
            return {}
        try:
            return json.loads(raw, parse_float=Decimal)
        except ValueError as exc:
            raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None

    def log(self, org_id: str | None, status: int) -> None:
        records = None
        if request.method in ("POST", "PATCH") and request.path.startswith("/services/data/"):
            try:
                body = json.loads(request.get_data(cache=True) or b"null", parse_float=Decimal)
            except ValueError:
                body = None
            if isinstance(body, dict):
                records = body["records"] if isinstance(body.get("records"), list) else [body]
            records = json.loads(dumps(records)) if records is not None else None
        self.calls.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "status": status,
                "org_id": org_id,
                "records": records,
                "time": self.clock(),
            }
        )

    # ------------------------------------------------------------------ REST pipeline

    def serve(self, view: Callable[..., tuple[Any, int]], version: str, kwargs: dict) -> Response:
        if self.knobs.latency_ms:
            time.sleep(self.knobs.latency_ms / 1000)
        with self.lock:
            now = self.clock()
            org, valid = self._authenticate(now)
            if org is None or not valid:
                response = sf_response(SESSION_EXPIRED, 401)
                self.log(org.org_id if org else None, 401)
                return response
            response = self._answer(org, view, version, kwargs, now)
            self.log(org.org_id, response.status_code)
            self.outbound.collect(org)
            return response

    def _authenticate(self, now: float) -> tuple[Org | None, bool]:
        """The org the bearer token names (None if it names none), and whether its session
        is still valid."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "oauth") or not token:
            return None, False
        session = self.sessions.get(token.strip())
        org = self.orgs.get(session.org_id) if session else None
        if session is None or org is None:
            return None, False
        start = session.last_used if org.session_sliding else session.issued
        if session.generation < org.generation or now >= start + org.session_seconds:
            return org, False
        session.last_used = now
        return org, True

    def limit_header(self, org: Org, now: float) -> dict[str, str]:
        value = f"api-usage={org.used(now)}/{org.daily_limit}"
        if self.knobs.per_app_usage:
            value += f",per-app-api-usage={org.used(now)}/{org.daily_limit}(appName=Tandem)"
        return {"Sforce-Limit-Info": value}

    def _answer(
        self, org: Org, view: Callable[..., tuple[Any, int]], version: str, kwargs: dict, now: float
    ) -> Response:
        match = _VERSION.match(version)
        if match is None or not MIN_VERSION <= float(version[1:]) <= MAX_VERSION:
            body = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
            return sf_response(body, 404, self.limit_header(org, now))
        injected = self._injected()
        if injected is not None and not injected[2]:
            status, body, _ = injected
            return sf_response(body, status, self.limit_header(org, now))
        if org.used(now) >= org.daily_limit:
            return sf_response(LIMIT_EXCEEDED, 403, self.limit_header(org, now))
        org.count_call(now)
        try:
            body, status = view(org, version, **kwargs)
        except ApiError as exc:
            body, status = exc.errors, exc.status
        if injected is not None:  # applied, then the answer is lost
            status, body, _ = injected
        return sf_response(body, status, self.limit_header(org, now))

    def _injected(self) -> tuple[int, list, bool] | None:
        for entry in list(self.knobs.inject):
            if entry.get("path_contains", "") not in request.path:
                continue
            if entry.get("method") and str(entry["method"]).upper() != request.method:
                continue
            entry["times"] = int(entry.get("times", 1)) - 1
            if entry["times"] <= 0:
                self.knobs.inject.remove(entry)
            status = int(entry.get("status", 500))
            code = entry.get("error_code") or {
                401: "INVALID_SESSION_ID",
                403: "REQUEST_LIMIT_EXCEEDED",
            }.get(status, "UNKNOWN_EXCEPTION")
            message = entry.get("message") or {
                "INVALID_SESSION_ID": "Session expired or invalid",
                "REQUEST_LIMIT_EXCEEDED": "TotalRequests Limit exceeded.",
            }.get(code, "An unexpected error occurred.")
            return status, [{"message": message, "errorCode": code}], bool(entry.get("applied"))
        if self.knobs.error_5xx_rate and self.rng.random() < self.knobs.error_5xx_rate:
            return (
                self.knobs.error_5xx_status,
                [{"message": "An unexpected error occurred.", "errorCode": "UNKNOWN_EXCEPTION"}],
                False,
            )
        return None

    # ------------------------------------------------------------------ OAuth

    def token(self) -> Response:
        with self.lock:
            org, response = self._grant()
            self.log(org.org_id if org else None, response.status_code)
            return response

    def _grant(self) -> tuple[Org | None, Response]:
        form = request.form
        grant = form.get("grant_type", "")
        if grant == "refresh_token":
            org = self.by_client.get(form.get("client_id", ""))
            if org is None:
                return None, _oauth_error("invalid_client_id", "client identifier invalid")
            if not hmac.compare_digest(form.get("client_secret", ""), org.client_secret):
                return org, _oauth_error("invalid_client", "invalid client credentials")
            presented = form.get("refresh_token", "")
            if presented in org.spent_refresh_tokens:
                # A spent token came back: someone holds a copy. Revoke the family.
                org.refresh_revoked = True
                org.generation += 1
                return org, _oauth_error("invalid_grant", "expired access/refresh token")
            if org.refresh_revoked or not hmac.compare_digest(presented, org.refresh_token):
                return org, _oauth_error("invalid_grant", "expired access/refresh token")
            rotated = None
            if org.rotate_refresh_tokens:
                org.spent_refresh_tokens.add(org.refresh_token)
                rotated = org.refresh_token = self._token_text(org, "5Aep")
            return org, self._issue(org, scope="api refresh_token", refresh_token=rotated)
        if grant == JWT_GRANT:
            return self._jwt_grant(form.get("assertion", ""))
        return None, _oauth_error("unsupported_grant_type", "grant type not supported")

    def _jwt_grant(self, assertion: str) -> tuple[Org | None, Response]:
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None, _oauth_error("invalid_grant", "invalid assertion")
        org = self.by_client.get(str(claims.get("iss", "")))
        if org is None:
            return None, _oauth_error("invalid_client_id", "client identifier invalid")
        if not org.jwt_public_key_pem:
            return org, _oauth_error("invalid_grant", "invalid assertion")
        # The org's own login server (production or sandbox), or the audience it was set up
        # with; never the host the assertion was posted to (SF-OAUTH-JWT; restforce#886).
        standard = STANDARD_AUDIENCES[1] if org.sandbox else STANDARD_AUDIENCES[0]
        audiences = [standard, *([org.jwt_audience] if org.jwt_audience else [])]
        try:
            verified = jwt.decode(
                assertion,
                key=_public_key(org.jwt_public_key_pem),
                algorithms=["RS256"],
                audience=audiences,
                # exp is checked against the simulator's clock below, not the machine's.
                options={"verify_exp": False, "require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.InvalidAudienceError:
            return org, _oauth_error("invalid_grant", "audience is invalid")
        except jwt.PyJWTError:
            return org, _oauth_error("invalid_grant", "invalid assertion")
        now = self.clock()
        exp = verified.get("exp")
        if not isinstance(exp, int | float) or exp <= now or exp > now + JWT_MAX_LIFETIME:
            return org, _oauth_error("invalid_grant", "expired authorization code")
        if verified.get("sub") != org.jwt_username:
            return org, _oauth_error("invalid_grant", "user hasn't approved this consumer")
        return org, self._issue(org, scope="api")

    def _token_text(self, org: Org, prefix: str) -> str:
        return f"{prefix}{org.org_id[:15]}!AQ" + "".join(
            self.rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._")
            for _ in range(96)
        )

    def _issue(self, org: Org, *, scope: str, refresh_token: str | None = None) -> Response:
        now = self.clock()
        token = self._token_text(org, "")
        self.sessions[token] = Session(org.org_id, now, now, org.generation)
        base = request.host_url.rstrip("/")
        identity = f"{base}/id/{org.org_id}/{org.integration_user}"
        issued_at = str(int(now * 1000))
        # signature = base64(HMAC-SHA256(id + issued_at, client secret)) (SF-OAUTH-WS).
        digest = hmac.new(
            org.client_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        body = {
            "access_token": token,
            "instance_url": org.instance_url or base,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(digest).decode(),
            "scope": scope,
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token  # rotation: the one just sent is spent
        return sf_response(body, 200)


def _oauth_error(error: str, description: str) -> Response:
    return sf_response({"error": error, "error_description": description}, 400)


def _public_key(pem: str):
    data = pem.encode()
    if b"CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


# ---------------------------------------------------------------------------- the app


def create_app(*, clock: Callable[[], float] = time.time) -> Flask:
    """The simulator as a Flask app; ``clock`` (epoch seconds) drives timestamps, sessions,
    JWT expiry and the rolling API allocation."""
    sim = Simulator(clock)
    app = Flask("sandbox.salesforce")
    app.extensions["salesforce_simulator"] = sim
    app.register_blueprint(_api(sim))
    app.register_blueprint(_control(sim))

    @app.errorhandler(404)
    def not_found(_exc: Exception) -> Response:
        body = [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}]
        return sf_response(body, 404)

    @app.errorhandler(405)
    def not_allowed(_exc: Exception) -> Response:
        message = (
            f"HTTP Method '{request.method}' not allowed. Allowed are GET,HEAD,PATCH,POST,DELETE"
        )
        return sf_response([{"message": message, "errorCode": "METHOD_NOT_ALLOWED"}], 405)

    return app


def _api(sim: Simulator) -> Blueprint:
    bp = Blueprint("salesforce_api", __name__)
    rest = Rest(sim)
    base = "/services/data/<version>"

    def route(rule: str, view: Callable[..., tuple[Any, int]], methods: list[str], **defaults):
        @functools.wraps(view)
        def wrapper(version: str, **kwargs: Any) -> Response:
            return sim.serve(view, version, {**kwargs, **defaults})

        name = re.sub(r"\W+", "_", f"{'_'.join(methods)}{rule}").strip("_").lower()
        bp.add_url_rule(base + rule, name, wrapper, methods=methods)

    route("/sobjects/<sobject>/describe", rest.describe, ["GET"])
    route("/sobjects/<sobject>", rest.create, ["POST"])
    route("/sobjects/<sobject>/<record_id>", rest.one, ["GET", "PATCH", "DELETE"])
    route("/sobjects/<sobject>/<field>/<path:value>", rest.upsert, ["PATCH"])
    route("/composite/sobjects", rest.collection_create, ["POST"])
    route("/composite/sobjects", rest.collection_update, ["PATCH"])
    route("/composite/sobjects", rest.collection_delete, ["DELETE"])
    route("/composite/sobjects/<sobject>", rest.collection_retrieve, ["GET"])
    route("/composite/sobjects/<sobject>/<field>", rest.collection_upsert, ["PATCH"])
    route("/query", rest.query, ["GET"])
    route("/query/<locator>", rest.query_more, ["GET"])
    route("/queryAll", rest.query, ["GET"], include_deleted=True)
    route("/queryAll/<locator>", rest.query_more, ["GET"])
    route("/limits", rest.limits, ["GET"])

    @bp.get("/services/data/")
    @bp.get("/services/data")
    def versions() -> Response:
        # The versions list needs no session and carries no Sforce-Limit-Info (SF-REST
        # resources_versions.htm, headers_api_usage.htm).
        host = "/services/data"
        listed = [
            {"label": f"v{v}.0", "url": f"{host}/v{v}.0", "version": f"{v}.0"}
            for v in range(int(MIN_VERSION), int(MAX_VERSION) + 1)
        ]
        return sf_response(listed)

    @bp.post("/services/oauth2/token")
    def token() -> Response:
        return sim.token()

    return bp


# ---------------------------------------------------------------------------- control API


class _Bad(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _control(sim: Simulator) -> Blueprint:
    """``/_sandbox/``: set up orgs and knobs, and look inside, for tests and the demo. No
    auth, no limits, not in the call log."""
    bp = Blueprint("salesforce_control", __name__, url_prefix="/_sandbox")

    @bp.errorhandler(_Bad)
    def bad(error: _Bad) -> Response:
        return sf_response({"error": str(error)}, error.status)

    def body() -> dict:
        data = request.get_json(silent=True)
        if data is None and not request.data:
            return {}
        if not isinstance(data, dict):
            raise _Bad("the body must be a JSON object")
        return data

    def org_of(org_id: str) -> Org:
        org = sim.orgs.get(org_id)
        if org is None:
            raise _Bad(f"no org {org_id}", 404)
        return org

    def text(data: dict, key: str, *, required: bool = False) -> str | None:
        value = data.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise _Bad(f"{key} must be a non-empty string")
        return value

    def number(data: dict, key: str, default: float) -> float:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise _Bad(f"{key} must be a number >= 0")
        return value

    def flag(data: dict, key: str, default: bool) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise _Bad(f"{key} must be true or false")
        return value

    def org_json(org: Org) -> dict:
        return {
            "org_id": org.org_id,
            "name": org.name,
            "client_id": org.client_id,
            "jwt_username": org.jwt_username,
            "session_seconds": org.session_seconds,
            "session_sliding": org.session_sliding,
            "daily_limit": org.daily_limit,
            "multi_currency": org.multi_currency,
            "currencies": list(org.currencies),
            "sandbox": org.sandbox,
            "jwt_audience": org.jwt_audience,
            "rotate_refresh_tokens": org.rotate_refresh_tokens,
            "integration_user_id": org.integration_user,
            "rep_user_id": org.rep_user,
        }

    @bp.post("/orgs")
    def create_org() -> Response:
        data = body()
        with sim.lock:
            client_id = text(data, "client_id", required=True)
            if client_id in sim.by_client:
                raise _Bad(f"an org with client_id {client_id} exists", 409)
            sim.org_serial += 1
            org_id = text(data, "org_id") or make_id("00D", sim.org_serial)
            if org_id in sim.orgs:
                raise _Bad(f"org {org_id} exists", 409)
            currencies = data.get("currencies", list(DEFAULT_CURRENCIES))
            if (
                not isinstance(currencies, list)
                or not currencies
                or not all(isinstance(c, str) and len(c) == 3 for c in currencies)
            ):
                raise _Bad("currencies must be a list of ISO 4217 codes")
            pem = text(data, "jwt_public_key_pem")
            if pem is not None:
                try:
                    _public_key(pem)
                except ValueError as exc:
                    raise _Bad(
                        f"jwt_public_key_pem is not a PEM public key or certificate: {exc}"
                    ) from None
            multi_currency = flag(data, "multi_currency", True)
            try:
                schema = build_schema(
                    custom_fields=flag(data, "custom_fields", True),
                    multi_currency=multi_currency,
                    overrides=data.get("field_overrides"),
                )
            except ValueError as exc:
                raise _Bad(str(exc)) from None
            org = Org(
                org_id=org_id,
                name=text(data, "name") or org_id,
                client_id=client_id,
                client_secret=text(data, "client_secret", required=True) or "",
                refresh_token=text(data, "refresh_token", required=True) or "",
                schema=schema,
                jwt_username=text(data, "jwt_username"),
                jwt_public_key_pem=pem,
                session_seconds=number(data, "session_seconds", 7200),
                session_sliding=flag(data, "session_sliding", False),
                daily_limit=int(number(data, "daily_limit", 100_000)),
                multi_currency=multi_currency,
                currencies=tuple(currencies),
                instance_url=text(data, "instance_url"),
                sandbox=flag(data, "sandbox", False),
                jwt_audience=text(data, "jwt_audience"),
                rotate_refresh_tokens=flag(data, "rotate_refresh_tokens", False),
                created_at=sim.clock(),
            )
            sim.orgs[org_id] = org
            sim.by_client[client_id] = org
            return sf_response(org_json(org), 201)

    @bp.patch("/orgs/<org_id>")
    def update_org(org_id: str) -> Response:
        data = body()
        allowed = {"daily_limit", "used", "session_seconds", "refresh_token", "client_secret",
                   "instance_url", "rotate_refresh_tokens"}  # fmt: skip
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise _Bad(f"cannot change {', '.join(unknown)}")
        with sim.lock:
            org = org_of(org_id)
            if "daily_limit" in data:
                org.daily_limit = int(number(data, "daily_limit", org.daily_limit))
            if "used" in data:
                org.set_used(int(number(data, "used", 0)), sim.clock())
            if "session_seconds" in data:
                org.session_seconds = number(data, "session_seconds", org.session_seconds)
            for key in ("refresh_token", "client_secret", "instance_url"):
                if key in data:
                    setattr(org, key, text(data, key, required=True))
            if "refresh_token" in data:  # the merchant reconnected: a new family
                org.refresh_revoked = False
                org.spent_refresh_tokens.clear()
            if "rotate_refresh_tokens" in data:
                org.rotate_refresh_tokens = flag(data, "rotate_refresh_tokens", False)
            return sf_response(org_json(org))

    @bp.get("/orgs/<org_id>/usage")
    def usage(org_id: str) -> Response:
        with sim.lock:
            org = org_of(org_id)
            return sf_response({"used": org.used(sim.clock()), "max": org.daily_limit})

    @bp.post("/orgs/<org_id>/expire-sessions")
    def expire_sessions(org_id: str) -> Response:
        with sim.lock:
            org = org_of(org_id)
            org.generation += 1
            return sf_response({"expired": True})

    @bp.get("/orgs/<org_id>/dump")
    def dump(org_id: str) -> Response:
        with sim.lock:
            org = org_of(org_id)
            return sf_response(
                {
                    name: [org.render(r, "v66.0") for r in records.values()]
                    for name, records in org.records.items()
                }
            )

    @bp.get("/orgs/<org_id>/summary")
    def summary(org_id: str) -> Response:
        """CRM-neutral contacts and orders. Orders are the Order records when the org has any
        (``amount`` the store's total Tandem keeps in Tandem_Order_Total__c, or the TotalAmount
        when that is empty; ``total_amount`` the TotalAmount, Salesforce's sum of the order
        products, which leaves out shipping and tax; ``line_items`` the number of live OrderItems,
        ``contact_ids`` the order's BillToContactId, ShipToContactId and
        CustomerAuthorizedById, in that order, without repeats), else the Opportunities
        (``amount`` the Amount, ``line_items`` null, ``contact_ids`` the contact roles');
        ``?orders=Order`` or ``?orders=Opportunity`` picks one."""
        wanted = request.args.get("orders")
        if wanted not in (None, "Order", "Opportunity"):
            raise _Bad("orders must be Order or Opportunity")
        with sim.lock:
            org = org_of(org_id)
            contacts = [
                {
                    "id": r.id,
                    "email": r.values.get("Email"),
                    "first_name": r.values.get("FirstName"),
                    "last_name": r.values.get("LastName"),
                }
                for r in org.live("Contact")
            ]
            if wanted == "Order" or (wanted is None and org.live("Order")):
                return sf_response({"contacts": contacts, "orders": order_rows(org)})
            roles = org.live("OpportunityContactRole")
            orders = []
            for r in org.live("Opportunity"):
                amount = r.values.get("Amount")
                orders.append(
                    {
                        "id": r.id,
                        "external_id": r.values.get("Tandem_Order_Id__c"),
                        "amount": None if amount is None else format(amount, "f"),
                        "currency": r.values.get("CurrencyIsoCode") or org.currencies[0],
                        "contact_ids": [
                            role.values["ContactId"]
                            for role in roles
                            if role.values["OpportunityId"] == r.id
                        ],
                        "line_items": None,
                    }
                )
            return sf_response({"contacts": contacts, "orders": orders})

    def order_rows(org: Org) -> list[dict]:
        rows = []
        for r in org.live("Order"):
            contacts = ("BillToContactId", "ShipToContactId", "CustomerAuthorizedById")
            ids = [r.values[name] for name in contacts if r.values.get(name)]
            store_total = r.values.get("Tandem_Order_Total__c")
            rows.append(
                {
                    "id": r.id,
                    "external_id": r.values.get("Tandem_Order_Id__c"),
                    "amount": format(
                        r.values["TotalAmount"] if store_total is None else store_total, "f"
                    ),
                    "total_amount": format(r.values["TotalAmount"], "f"),
                    "currency": r.values.get("CurrencyIsoCode") or org.currencies[0],
                    "contact_ids": list(dict.fromkeys(ids)),
                    "line_items": len(org.order_items(r.id)),
                }
            )
        return rows

    def rep_write(org: Org, sobject: str, record_id: str | None) -> Response:
        data = body()
        spec = org.spec(sobject)
        existing = None
        if record_id is not None:
            existing = org.find(record_id)
            if existing is None or existing.deleted or existing.sobject != spec.name:
                raise _Bad(f"no live {spec.name} {record_id}", 404)
        try:
            checked = org.check(spec, data, existing=existing, faults=frozenset())
        except ApiError as exc:
            raise _Bad(exc.errors[0]["message"]) from None
        if isinstance(checked, list):
            raise _Bad("; ".join(f"{e.code}: {e.message}" for e in checked))
        now = sim.clock()
        if existing is None:
            existing = org.create(spec, checked, now, org.rep_user)
            status = 201
        else:
            org.update(existing, checked, now, org.rep_user)
            status = 200
        sim.outbound.collect(org)
        return sf_response(org.render(existing, "v66.0"), status)

    @bp.post("/orgs/<org_id>/records/<sobject>")
    def rep_create(org_id: str, sobject: str) -> Response:
        """A sales rep creates a record in the UI (LastModifiedById is the rep)."""
        with sim.lock:
            try:
                return rep_write(org_of(org_id), sobject, None)
            except ApiError as exc:
                raise _Bad(exc.errors[0]["message"], exc.status) from None

    @bp.patch("/orgs/<org_id>/records/<sobject>/<record_id>")
    def rep_edit(org_id: str, sobject: str, record_id: str) -> Response:
        """A sales rep edits a record in the UI (bumps LastModifiedDate and SystemModstamp)."""
        with sim.lock:
            try:
                return rep_write(org_of(org_id), sobject, record_id)
            except ApiError as exc:
                raise _Bad(exc.errors[0]["message"], exc.status) from None

    @bp.delete("/orgs/<org_id>/records/<sobject>/<record_id>")
    def rep_delete(org_id: str, sobject: str, record_id: str) -> Response:
        with sim.lock:
            org = org_of(org_id)
            record = org.find(record_id)
            if record is None or record.deleted or record.sobject.lower() != sobject.lower():
                raise _Bad(f"no live {sobject} {record_id}", 404)
            org.delete(record, sim.clock(), org.rep_user)
            return sf_response(None, 204)

    @bp.post("/orgs/<org_id>/outbound")
    def create_outbound(org_id: str) -> Response:
        """An outbound-message action (a workflow rule on create and every edit, with its
        "send outbound message" action): ``{object: "Contact", url, fields: [...], name?}``.
        Sends on every later save of such a record, by the API or a rep."""
        data = body()
        with sim.lock:
            org = org_of(org_id)
            try:
                spec = org.spec(text(data, "object", required=True) or "")
            except ApiError:
                raise _Bad(f"no object {data.get('object')}") from None
            url = text(data, "url", required=True) or ""
            if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
                raise _Bad("url must be an http(s) URL")
            names = data.get("fields", [])
            known = {f.name for f in spec.fields}
            if not isinstance(names, list) or not all(n in known for n in names):
                raise _Bad(f"fields must be a list of {spec.name} fields")
            org.action_serial += 1
            action = Action(
                id=make_id("04k", org.action_serial),
                object=spec.name,
                url=url,
                fields=list(dict.fromkeys(["Id", *names])),
                name=text(data, "name") or f"Tandem {spec.name}",
                base_url=request.host_url.rstrip("/"),
            )
            org.outbound_actions[action.id] = action
            return sf_response(action.as_json(), 201)

    @bp.get("/orgs/<org_id>/outbound")
    def list_outbound(org_id: str) -> Response:
        with sim.lock:
            org = org_of(org_id)
            return sf_response({"actions": [a.as_json() for a in org.outbound_actions.values()]})

    @bp.delete("/orgs/<org_id>/outbound/<action_id>")
    def delete_outbound(org_id: str, action_id: str) -> Response:
        with sim.lock:
            org = org_of(org_id)
            if org.outbound_actions.pop(action_id, None) is None:
                raise _Bad(f"no outbound action {action_id}", 404)
            return sf_response(None, 204)

    @bp.get("/orgs/<org_id>/deliveries")
    def deliveries(org_id: str) -> Response:
        """One row per outbound-message attempt, and how many notifications are still to go."""
        with sim.lock:
            org = org_of(org_id)
            return sf_response(
                {
                    "deliveries": list(org.outbound_deliveries),
                    "pending": sim.outbound.pending(org),
                }
            )

    @bp.get("/calls")
    def calls() -> Response:
        org_id = request.args.get("org_id")
        with sim.lock:
            rows = [c for c in sim.calls if org_id is None or c["org_id"] == org_id]
            return sf_response({"calls": rows})

    @bp.delete("/calls")
    def clear_calls() -> Response:
        with sim.lock:
            sim.calls.clear()
        return sf_response(None, 204)

    @bp.get("/knobs")
    def get_knobs() -> Response:
        with sim.lock:
            return sf_response(asdict(sim.knobs))

    @bp.post("/knobs")
    def set_knobs() -> Response:
        data = body()
        known = {f.name for f in fields(Knobs)}
        unknown = sorted(set(data) - known - {"seed"})
        if unknown:
            raise _Bad(f"unknown knobs: {', '.join(unknown)}")
        if data.get("collection_error_key", "statusCode") not in ("statusCode", "errorCode"):
            raise _Bad("collection_error_key must be statusCode or errorCode")
        inject = data.get("inject", [])
        if not isinstance(inject, list) or not all(
            isinstance(e, dict) and isinstance(e.get("status", 500), int) for e in inject
        ):
            raise _Bad("inject must be a list of objects with an integer status")
        if not isinstance(data.get("fault_values", []), list):
            raise _Bad("fault_values must be a list")
        idle = data.get("cursor_idle_seconds")
        if idle is not None and (isinstance(idle, bool) or not isinstance(idle, int | float)):
            raise _Bad("cursor_idle_seconds must be a number or null")
        with sim.lock:
            for name, value in data.items():
                if name == "seed":
                    sim.rng = random.Random(int(value))
                else:
                    setattr(sim.knobs, name, value)
            return sf_response(asdict(sim.knobs))

    @bp.post("/reset")
    def reset() -> Response:
        data = body()
        with sim.lock:
            sim.reset(int(data.get("seed", 0)))
        return sf_response({"reset": "all"})

    return bp
