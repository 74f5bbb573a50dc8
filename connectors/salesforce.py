"""Salesforce (REST API v66.0: sObjects, sObject Collections, SOQL query, describe) over the
shared HttpClient, authenticated by OAuth refresh token or JWT bearer.

What this module declares: the endpoints (with their docs), the collection and query batch
sizes, the custom fields and permissions an org needs (:data:`REQUIRED_SETUP`), and the error
table. The only logic is for Salesforce's quirks, each in a small named function: the
per-org ``instance_url`` (checked before any call goes there), the daily allocation answered
with 403 instead of 429, error arrays, per-item collection results, and adopting contacts a
sales rep created before Tandem was connected.

Facts are from shared/reference/api-crms.md section 2 (sources there), chiefly:
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_composite_sobjects_collections.htm
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_upsert.htm
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_query.htm
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm
- https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
- https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_jwt_flow.htm
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

import jwt
import requests

from connectors.crm import AccessToken, TokenCache, WriteResult
from connectors.errors import AuthExpiredError, ConfigurationError, PermanentError
from connectors.http import Action, HttpClient, Policy, retry_after_header

PLATFORM = "salesforce"
API_VERSION = "v66.0"  # Spring '26 (SF-REST resources_versions.htm)

# --------------------------------------------------------------------------- declaration

BATCH_SIZE = 200  # sObject Collections take at most 200 records per call (SF-REST collections)
QUERY_BATCH_SIZE = 2000  # the default; Sforce-Query-Options batchSize takes 200..2,000
# Values per IN (...) list: a query goes in the GET URL, which Salesforce caps at about 16 KB
# (UNCONFIRMED exact figure); 100 emails of up to 80 characters, escaped, stay well under it.
SOQL_IN_CHUNK = 100
DOCS = "https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/"


@dataclass(frozen=True)
class Endpoint:
    path: str
    docs: str


ENDPOINTS: Mapping[str, Endpoint] = {
    "token": Endpoint(
        "/services/oauth2/token",
        "https://help.salesforce.com/s/articleView?id=sf.remoteaccess_oauth_web_server_flow.htm",
    ),
    "describe": Endpoint(
        "/services/data/{version}/sobjects/{sobject}/describe",
        DOCS + "resources_sobject_describe.htm",
    ),
    "upsert": Endpoint(
        "/services/data/{version}/sobjects/{sobject}/{field}/{value}", DOCS + "dome_upsert.htm"
    ),
    "collections": Endpoint(
        "/services/data/{version}/composite/sobjects",
        DOCS + "resources_composite_sobjects_collections.htm",
    ),
    "collections_upsert": Endpoint(
        "/services/data/{version}/composite/sobjects/{sobject}/{field}",
        DOCS + "resources_composite_sobjects_collections.htm",
    ),
    "collections_retrieve": Endpoint(
        "/services/data/{version}/composite/sobjects/{sobject}",
        DOCS + "resources_composite_sobjects_collections.htm",
    ),
    "query": Endpoint("/services/data/{version}/query", DOCS + "resources_query.htm"),
}

# Hosts an instance_url may have. Salesforce's own CLI accepts *.salesforce.com, *.force.com
# and *.cloudforce.com (forcedotcom/sfdx-core src/util/sfdcUrl.ts isSalesforceDomain, after
# https://help.salesforce.com/articleView?id=000003652); My Domain hosts are
# <name>.my.salesforce.com (https://help.salesforce.com/s/articleView?id=sf.domain_name_overview.htm).
# Government Cloud Plus (*.salesforce.mil) and Salesforce on Alibaba Cloud (*.sfcrmproducts.cn)
# are from Salesforce Inspector Reloaded's domain list (tprouvot/Salesforce-Inspector-reloaded
# addon/background.js): UNCONFIRMED against a Salesforce page.
INSTANCE_DOMAINS = (
    ".salesforce.com",
    ".force.com",
    ".cloudforce.com",
    ".salesforce.mil",
    ".sfcrmproducts.cn",
)

# The session lasts the org's session timeout, 2 h by default, and the token response does not
# say (SF-OAUTH-WS): assume the default minus a margin, and let a 401 tell us otherwise.
DEFAULT_SESSION_SECONDS = 2 * 3600 - 300
JWT_LIFETIME = 180  # "exp ... within 3 minutes" (SF-OAUTH-JWT)

# The values Tandem writes to the consent picklists (mapping.models.ConsentState).
CONSENT_VALUES = "subscribed, not_subscribed, pending, unsubscribed, redacted, invalid, unknown"

# Tandem's custom fields: (sObject, field, type, external id and unique).
CUSTOM_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("Contact", "Tandem_Contact_Key__c", "Text(255)", True),
    ("Contact", "Tandem_Email_Consent__c", f"Picklist ({CONSENT_VALUES})", False),
    ("Contact", "Tandem_SMS_Consent__c", f"Picklist ({CONSENT_VALUES})", False),
    ("Contact", "Tandem_Customer_Tags__c", "Long Text Area(32768)", False),
    ("Opportunity", "Tandem_Order_Id__c", "Text(255)", True),
    ("Opportunity", "Tandem_Order_Number__c", "Text(80)", False),
    ("Opportunity", "Tandem_Financial_Status__c", "Text(40)", False),
    ("Opportunity", "Tandem_Fulfillment_Status__c", "Text(40)", False),
    ("Opportunity", "Tandem_Refunded_Amount__c", "Currency(16, 2)", False),
)

REQUIRED_SETUP: tuple[str, ...] = (
    *(
        f"{sobject}.{name}: custom field, {kind}"
        + (", External ID, Unique (case-insensitive)" if external else "")
        for sobject, name, kind, external in CUSTOM_FIELDS
    ),
    "A connected app with OAuth scopes 'api' and 'refresh_token, offline_access' (refresh-token "
    "flow), or with a certificate uploaded and the integration user pre-authorized (JWT flow).",
    "The integration user: 'API Enabled'; Read, Create and Edit on Contact and Opportunity; "
    "Read, Create, Edit and Delete on OpportunityContactRole.",
    "Field-level security: Edit on every Tandem_* field above and on the standard fields Tandem "
    "writes (Contact name, email, phone, mailing address; Opportunity name, amount, stage, close "
    "date, currency) for the integration user's profile or permission set.",
)

# Fields Tandem only ever sets when it creates the record: Salesforce reports them as not
# updateable, and that is no problem (OpportunityContactRole.OpportunityId is create-only,
# SF-OBJREF sforce_api_objects_opportunitycontactrole.htm).
CREATE_ONLY_FIELDS: Mapping[str, frozenset[str]] = {
    "OpportunityContactRole": frozenset({"OpportunityId"}),
}

# Per-item codes meaning "the record addressed by id is gone" (SF-REST errorcodes.htm).
_GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})
# A whole collection refused for one record's value it cannot deserialize: split it.
_SPLIT_CODES = frozenset({"JSON_PARSER_ERROR"})

# --------------------------------------------------------------------------- rate limits and errors

# Over the daily allocation Salesforce answers 403 REQUEST_LIMIT_EXCEEDED with no Retry-After;
# the window is a rolling 24 h (SF-LIMITS), so nobody can say when a call will pass again: probe
# every 15 minutes, which reschedules the job instead of blocking a worker.
DAILY_PROBE_SECONDS = 15 * 60.0
# The same code when the org already runs its 25 concurrent long (>= 20 s) requests (SF-LIMITS):
# those finish within seconds to minutes.
CONCURRENT_WAIT_SECONDS = 30.0


def _json(response: requests.Response) -> Any:
    """The response body, with JSON numbers as Decimal so amounts stay exact; None if empty
    or not JSON."""
    try:
        return json.loads(response.text, parse_float=Decimal) if response.text else None
    except ValueError:
        return None


def _error_entries(body: Any) -> list[dict]:
    if isinstance(body, list):
        return [e for e in body if isinstance(e, dict)]
    if isinstance(body, dict):
        return [body]
    return []


def _code(error: Mapping) -> str:
    # Collections' per-item errors say statusCode, top-level errors say errorCode (which one
    # is UNCONFIRMED, reference 2.3): accept both.
    return str(error.get("errorCode") or error.get("statusCode") or error.get("error") or "")


def describe_errors(body: Any) -> str:
    """Salesforce's ``[{message, errorCode, fields}]`` (or OAuth's ``{error,
    error_description}``) as one line."""
    parts = []
    for error in _error_entries(body):
        code = _code(error)
        message = str(error.get("message") or error.get("error_description") or "")
        text = f"{code}: {message}" if code and message else code or message
        fields = error.get("fields") or []
        if fields:
            text += f" (fields: {', '.join(str(f) for f in fields)})"
        parts.append(text)
    return "; ".join(p for p in parts if p)


def _error_message(response: requests.Response) -> str:
    return describe_errors(_json(response)) or response.reason or f"HTTP {response.status_code}"


def _limit_error(response: requests.Response) -> Mapping | None:
    if response.status_code != 403:
        return None
    return next(
        (e for e in _error_entries(_json(response)) if _code(e) == "REQUEST_LIMIT_EXCEEDED"), None
    )


_API_USAGE = re.compile(r"(?<![\w-])api-usage=(\d+)/(\d+)")


def api_usage(response: requests.Response) -> tuple[int, int] | None:
    """(used, allocation) from ``Sforce-Limit-Info: api-usage=18/15000`` (SF-REST
    headers_api_usage.htm); the header may also carry ``per-app-api-usage=...`` and an
    ``api-bursts`` part, which are not the org's daily count. None without the header."""
    match = _API_USAGE.search(response.headers.get("Sforce-Limit-Info", ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


def salesforce_policy(
    *,
    daily_probe_seconds: float = DAILY_PROBE_SECONDS,
    concurrent_wait_seconds: float = CONCURRENT_WAIT_SECONDS,
    on_usage: Callable[[int, int], None] | None = None,
) -> Policy:
    """Salesforce's error table for the HttpClient. ``on_usage(used, allocation)`` receives
    every ``Sforce-Limit-Info`` count (for the shared budget)."""

    def classify(response: requests.Response) -> Action | None:
        if _limit_error(response) is not None:
            return Action.RATE_LIMITED  # a quota, not a refusal (SF-REST errorcodes.htm)
        return None

    def retry_after(response: requests.Response) -> float | None:
        error = _limit_error(response)
        if error is None:
            return retry_after_header(response)
        if "concurrent" in str(error.get("message", "")).lower():
            return concurrent_wait_seconds  # "ConcurrentPerOrgLongTxn Limit exceeded"
        return daily_probe_seconds  # "TotalRequests Limit exceeded."

    def observe(response: requests.Response) -> None:
        usage = api_usage(response)
        if usage is not None and on_usage is not None:
            on_usage(*usage)

    return Policy(
        platform=PLATFORM,
        statuses={403: Action.CONFIG},  # INSUFFICIENT_ACCESS and the like: an admin must act
        classify=classify,
        retry_after=retry_after,
        observe=observe,
        error_message=_error_message,
    )


SALESFORCE_POLICY = salesforce_policy()

# --------------------------------------------------------------------------- small helpers


def soql_literal(value: str) -> str:
    """``value`` as a quoted SOQL string literal (backslash escapes, SOQL reference
    sforce_api_calls_soql_select_quotedstringescapes.htm)."""
    escaped = (
        value.replace("\\", "\\\\")
        .replace("'", "\\'")
        .replace('"', '\\"')
        .replace("\n", "\\n")
        .replace("\r", "\\r")
        .replace("\t", "\\t")
        .replace("\b", "\\b")
        .replace("\f", "\\f")
    )
    return f"'{escaped}'"


_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def soql_name(name: str) -> str:
    """An object or field API name to put in SOQL; raises ConfigurationError for anything
    else, so names can never carry SOQL of their own."""
    if not _IDENTIFIER.match(name):
        raise ConfigurationError(f"not a Salesforce API name: {name!r}", platform=PLATFORM)
    return name


def soql_datetime(moment: datetime) -> str:
    """An unquoted SOQL datetime literal in UTC, to the second (naive means UTC). Truncating
    keeps a ``>=`` filter inclusive."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _encode(value: Any) -> Any:
    # Decimals go out as JSON numbers: float's shortest repr gives back the same digits for
    # any amount under 15 significant digits.
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _failure(key: str, errors: Any, *, not_found: bool = False) -> WriteResult:
    entries = _error_entries(errors)
    return WriteResult(
        key=key,
        ok=False,
        error=describe_errors(entries) or "refused by Salesforce",
        details=entries,
        not_found=not_found,
    )


def _gone(errors: Any) -> bool:
    """The record addressed by id is deleted or never existed: not a lookup field pointing
    nowhere (that error names the lookup field)."""
    return any(
        _code(e) in _GONE_CODES and set(e.get("fields") or []) <= {"Id", "id"}
        for e in _error_entries(errors)
    )


def _rekey(result: WriteResult, key: str, **changes: Any) -> WriteResult:
    return WriteResult(
        **{
            "key": key,
            "ok": result.ok,
            "id": result.id,
            "created": result.created,
            "error": result.error,
            "details": result.details,
            "not_found": result.not_found,
            **changes,
        }
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --------------------------------------------------------------------------- the connector


class SalesforceConnector:
    """Reads and writes one Salesforce org. Write methods return one WriteResult per input, in
    input order; a record Salesforce refuses never blocks the others.

    Every method raises the connectors.errors classes: RetriableError and RateLimitedError
    (retry the whole call later; writes are idempotent upserts), AuthExpiredError (a fresh
    session was refused too), ConfigurationError (reconnect or fix the org's setup),
    PermanentError (a request refused for good).
    """

    platform = PLATFORM
    BATCH_SIZE = BATCH_SIZE

    def __init__(
        self,
        *,
        http: HttpClient,
        tokens: TokenCache,
        login_url: str = "https://login.salesforce.com",
        client_id: str,
        client_secret: str | None = None,
        refresh_token: str | None = None,
        jwt_username: str | None = None,
        jwt_private_key: str | None = None,
        api_version: str = API_VERSION,
        contact_key_field: str = "Tandem_Contact_Key__c",
        session_seconds: float = DEFAULT_SESSION_SECONDS,
        query_batch_size: int = QUERY_BATCH_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises ConfigurationError unless exactly one auth mode is complete: refresh token
        (client_id, client_secret, refresh_token) or JWT bearer (client_id, jwt_username,
        jwt_private_key as PEM)."""
        if not client_id:
            raise ConfigurationError(
                "Salesforce needs the connected app's client_id", platform=PLATFORM
            )
        refresh = {"client_secret": client_secret, "refresh_token": refresh_token}
        bearer = {"jwt_username": jwt_username, "jwt_private_key": jwt_private_key}
        refresh_given = [k for k, v in refresh.items() if v]
        bearer_given = [k for k, v in bearer.items() if v]
        if refresh_given and bearer_given:
            raise ConfigurationError(
                "Salesforce: give either the refresh-token credentials (client_secret, "
                "refresh_token) or the JWT ones (jwt_username, jwt_private_key), not both",
                platform=PLATFORM,
            )
        chosen = refresh if refresh_given or not bearer_given else bearer
        missing = [k for k, v in chosen.items() if not v]
        if missing:
            mode = "refresh-token" if chosen is refresh else "JWT bearer"
            raise ConfigurationError(
                f"Salesforce {mode} auth is missing: {', '.join(missing)}", platform=PLATFORM
            )
        self._jwt = chosen is bearer
        for secret in (client_secret, refresh_token, jwt_private_key):
            if secret:
                http.add_secret(secret)
        if self._jwt:
            try:
                # Sign once now so a bad key is a configuration error at connect time.
                jwt.encode({"probe": 1}, jwt_private_key, algorithm="RS256")
            except (ValueError, TypeError, jwt.PyJWTError):
                raise ConfigurationError(
                    "Salesforce jwt_private_key is not a PEM RSA private key", platform=PLATFORM
                ) from None
        self._http = http
        self._tokens = tokens
        self._login_url = login_url.rstrip("/")
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._jwt_username = jwt_username
        self._jwt_private_key = jwt_private_key
        self._version = api_version
        self._key_field = contact_key_field
        self._session_seconds = session_seconds
        self._query_batch_size = query_batch_size
        self._clock = clock

    # ----------------------------------------------------------------- auth

    def _mint(self, rotated: str | None = None) -> AccessToken:
        """A new session from the token endpoint, with ``rotated`` (the latest refresh token
        the token cache holds) in place of the connection's own when Salesforce rotated it.
        A rotated refresh token in the answer goes back in the AccessToken for the cache to
        keep: the one we sent is dead from now on.

        Raises ConfigurationError when Salesforce refuses the grant (revoked refresh token,
        unapproved user, bad key: the merchant must reconnect) or names an instance_url we
        will not call."""
        if self._jwt:
            now = int(self._clock())
            claims = {
                "iss": self._client_id,
                "sub": self._jwt_username,
                "aud": self._login_url,
                "exp": now + JWT_LIFETIME,
            }
            assertion = jwt.encode(claims, self._jwt_private_key, algorithm="RS256")
            form = {
                "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "assertion": assertion,
            }
        else:
            form = {
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "refresh_token": rotated or self._refresh_token,
            }
        response = self._http.request(
            "POST", self._login_url + ENDPOINTS["token"].path, data=form, ok=(400, 401)
        )
        body = _json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error") if isinstance(body, dict) else None
            description = body.get("error_description") if isinstance(body, dict) else None
            raise ConfigurationError(
                f"Salesforce refused the {'JWT bearer' if self._jwt else 'refresh token'} grant "
                f"({error or response.status_code}: {description or 'no description'}); the "
                "merchant must reconnect Salesforce",
                platform=PLATFORM,
                status=response.status_code,
            )
        value = str(body.get("access_token") or "")
        if not value:
            raise ConfigurationError(
                "Salesforce token response has no access_token", platform=PLATFORM
            )
        self._http.add_token(value)
        instance = self.check_instance_url(str(body.get("instance_url") or ""))
        new_refresh = body.get("refresh_token")
        if isinstance(new_refresh, str) and new_refresh:
            self._http.add_secret(new_refresh)
        else:
            new_refresh = None
        return AccessToken(
            value=value,
            expires_at=self._clock() + self._session_seconds,
            instance_url=instance,
            refresh_token=new_refresh,
        )

    def check_instance_url(self, instance_url: str) -> str:
        """``instance_url`` without a trailing slash if it is a Salesforce host (https, a
        domain in INSTANCE_DOMAINS) or the login host itself (the sandbox serves both).
        Raises ConfigurationError otherwise: the token endpoint's answer decides where our
        bearer token goes, so it must never point anywhere else."""
        parts, login = urlsplit(instance_url), urlsplit(self._login_url)
        host = (parts.hostname or "").lower().rstrip(".")
        same_as_login = (
            parts.scheme == login.scheme and parts.netloc.lower() == login.netloc.lower()
        )
        salesforce_host = parts.scheme == "https" and host.endswith(INSTANCE_DOMAINS)
        clean = not (parts.username or parts.password or parts.query or parts.fragment)
        if not host or not clean or not (same_as_login or salesforce_host):
            raise ConfigurationError(
                f"Salesforce sent an instance_url that is not a Salesforce host: {instance_url!r}",
                platform=PLATFORM,
            )
        return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        ok: Sequence[int] = (),
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One REST call to ``path`` on the instance. A 401 mints a new session once and
        retries once (SF-REST errorcodes.htm INVALID_SESSION_ID); a second 401 raises
        AuthExpiredError."""
        token = self._tokens.get(self._mint)
        data = json.dumps(body, default=_encode) if body is not None else None
        for attempt in (1, 2):
            # Another worker may have minted it: this client must mask it too.
            self._http.add_token(token.value)
            sent = {"Authorization": f"Bearer {token.value}", **(headers or {})}
            if data is not None:
                sent["Content-Type"] = "application/json"
            try:
                return self._http.request(
                    method,
                    f"{token.instance_url}{path}",
                    params=params,
                    data=data,
                    headers=sent,
                    ok=tuple(ok),
                )
            except AuthExpiredError as exc:
                if attempt == 2:
                    raise AuthExpiredError(
                        "Salesforce refused a freshly minted session too (401); check the "
                        f"integration user and the connected app: {exc}",
                        platform=PLATFORM,
                        status=exc.status,
                    ) from None
                token = self._tokens.get(self._mint, rejected=token.value)
        raise AssertionError("unreachable")  # pragma: no cover

    def _path(self, endpoint: str, **parts: str) -> str:
        return ENDPOINTS[endpoint].path.format(version=self._version, **parts)

    # ----------------------------------------------------------------- reads

    def query(self, soql: str) -> Iterator[dict]:
        """Every record ``soql`` selects, following ``nextRecordsUrl`` until ``done``.
        Raises PermanentError if Salesforce hands back the same nextRecordsUrl twice."""
        headers = {}
        if self._query_batch_size != QUERY_BATCH_SIZE:
            headers["Sforce-Query-Options"] = f"batchSize={self._query_batch_size}"
        page = _json(self._send("GET", self._path("query"), params={"q": soql}, headers=headers))
        seen: set[str] = set()
        while True:
            if not isinstance(page, dict):
                raise PermanentError("Salesforce query answered no JSON object", platform=PLATFORM)
            yield from (r for r in page.get("records") or [] if isinstance(r, dict))
            next_url = page.get("nextRecordsUrl")
            if page.get("done", True) or not next_url:
                return
            next_url = str(next_url)
            # A relative URL on the instance; anything else is not a query cursor.
            if not next_url.startswith("/services/data/") or next_url in seen:
                raise PermanentError(
                    f"Salesforce returned a repeated or foreign nextRecordsUrl {next_url!r}",
                    platform=PLATFORM,
                )
            seen.add(next_url)
            page = _json(self._send("GET", next_url, headers=headers))

    def changed_since(self, sobject: str, since: datetime, fields: Sequence[str]) -> Iterator[dict]:
        """Records whose SystemModstamp is at or after ``since`` (naive means UTC), oldest
        change first, ties by Id. SystemModstamp also moves on system changes, which is what
        a poll must not miss (SF-REST resources_getupdated.htm)."""
        wanted = ["Id", "SystemModstamp"]
        wanted += [soql_name(f) for f in dict.fromkeys(fields) if f not in wanted]
        # Names are checked by soql_name, values are literals we format: no injection.
        soql = (
            f"SELECT {', '.join(wanted)} FROM {soql_name(sobject)} "  # noqa: S608
            f"WHERE SystemModstamp >= {soql_datetime(since)} ORDER BY SystemModstamp, Id"
        )
        return self.query(soql)

    def get_objects(self, sobject: str, ids: Sequence[str], fields: Sequence[str]) -> list[dict]:
        """The live records among ``ids`` (deleted or unknown ones come back null: dropped)."""
        out: list[dict] = []
        for chunk in _chunks(list(dict.fromkeys(ids)), BATCH_SIZE):
            response = self._send(
                "GET",
                self._path("collections_retrieve", sobject=sobject),
                params={"ids": ",".join(chunk), "fields": ",".join(fields)},
            )
            out.extend(r for r in _json(response) or [] if isinstance(r, dict))
        return out

    # ----------------------------------------------------------------- connect-time check

    def prepare(
        self, required: Mapping[str, Sequence[str]], external_ids: Mapping[str, str]
    ) -> None:
        """Check, with one describe per sObject, that every ``required`` field exists and this
        user may create and update it, and that every ``external_ids`` field is an External
        ID and Unique. Raises ConfigurationError naming every problem in one message, with
        what the admin must do."""
        problems: list[str] = []
        for sobject in dict.fromkeys([*required, *external_ids]):
            response = self._send("GET", self._path("describe", sobject=sobject), ok=(404,))
            if response.status_code == 404:
                problems.append(f"{sobject} is not available to the integration user (grant Read)")
                continue
            described = {
                str(f.get("name")): f
                for f in (_json(response) or {}).get("fields") or []
                if isinstance(f, dict)
            }
            names = list(
                dict.fromkeys(
                    [
                        *required.get(sobject, ()),
                        *([external_ids[sobject]] if sobject in external_ids else []),
                    ]
                )
            )
            for name in names:
                info = described.get(name)
                if info is None:
                    problems.append(
                        f"{sobject}.{name} is missing: create it ({_setup_hint(sobject, name)})"
                    )
                    continue
                denied = [
                    right
                    for right in ("createable", "updateable")
                    if not info.get(right)
                    and not (right == "updateable" and name in CREATE_ONLY_FIELDS.get(sobject, ()))
                ]
                if denied:
                    problems.append(
                        f"{sobject}.{name} is not {'/'.join(denied)} for the integration user: "
                        "give its profile or permission set Edit access in field-level security"
                    )
            key = external_ids.get(sobject)
            info = described.get(key) if key else None
            if info is not None and not (info.get("externalId") and info.get("unique")):
                problems.append(
                    f"{sobject}.{key} must be marked External ID and Unique: edit the field "
                    "in Setup > Object Manager and tick both"
                )
        if problems:
            raise ConfigurationError(
                "Salesforce org is not set up for Tandem: " + "; ".join(problems),
                platform=PLATFORM,
            )

    # ----------------------------------------------------------------- writes

    def upsert_contacts_by_email(
        self, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Create or update contacts keyed by email (compared case-insensitively). A contact
        a sales rep created with that email and no Tandem key is adopted: updated by id and
        given the key, so no duplicate appears next to it."""
        merged: dict[str, dict[str, Any]] = {}
        for email, fields in inputs:
            normal = str(email).strip().lower()
            if normal:
                entry = merged.setdefault(normal, {"Email": str(email).strip()})
                entry.update(fields)
        adopt = self._adoptable(list(merged))
        results: dict[str, WriteResult] = {}
        by_id = [(adopt[e], {**merged[e], self._key_field: e}) for e in merged if e in adopt]
        for (record_id, _), result in zip(
            by_id, self.update_objects("Contact", by_id), strict=True
        ):
            email = next(e for e in merged if adopt.get(e) == record_id)
            if result.not_found:
                continue  # deleted since the query: fall through to the upsert
            results[email] = _rekey(result, email, created=False if result.ok else None)
        rest = [(e, merged[e]) for e in merged if e not in results]
        for (email, _), result in zip(
            rest, self.upsert_objects("Contact", self._key_field, rest), strict=True
        ):
            results[email] = result
        out = []
        for email, _ in inputs:
            normal = str(email).strip().lower()
            if not normal:
                out.append(
                    _failure(
                        str(email),
                        [{"errorCode": "REQUIRED_FIELD_MISSING", "message": "email is empty"}],
                    )
                )
            else:
                out.append(_rekey(results[normal], str(email)))
        return out

    def _adoptable(self, emails: Sequence[str]) -> dict[str, str]:
        """email -> id of the oldest live contact with that email and no Tandem key, for the
        emails no contact carries as its key yet."""
        keyed: set[str] = set()
        found: dict[str, str] = {}
        for chunk in _chunks(list(emails), SOQL_IN_CHUNK):
            soql = (
                f"SELECT Id, Email, {soql_name(self._key_field)} FROM Contact WHERE Email IN "  # noqa: S608
                f"({', '.join(soql_literal(e) for e in chunk)}) ORDER BY CreatedDate, Id"
            )
            for record in self.query(soql):
                email = str(record.get("Email") or "").lower()
                key = record.get(self._key_field)
                if key:
                    keyed.add(str(key).lower())
                elif email not in found:
                    found[email] = str(record["Id"])
        return {e: i for e, i in found.items() if e not in keyed}

    def upsert_objects(
        self,
        sobject: str,
        external_id_field: str,
        inputs: Sequence[tuple[str, Mapping[str, Any]]],
    ) -> list[WriteResult]:
        """Create or update ``sobject`` records keyed by an External ID field; inputs with the
        same key are merged (later values win), a blank key fails only its input."""
        merged: dict[str, dict[str, Any]] = {}
        for key, fields in inputs:
            value = str(key).strip()
            if value:
                merged.setdefault(value, {}).update(fields)
        results: dict[str, WriteResult] = {}
        items = list(merged.items())
        for chunk in _chunks(items, BATCH_SIZE):
            if len(chunk) == 1:
                key, fields = chunk[0]
                results[key] = self._upsert_one(sobject, external_id_field, key, fields)
                continue
            records = [
                {"attributes": {"type": sobject}, **fields, external_id_field: key}
                for key, fields in chunk
            ]
            path = self._path("collections_upsert", sobject=sobject, field=external_id_field)
            for (key, _), item in zip(chunk, self._collection("PATCH", path, records), strict=True):
                results[key] = self._item_result(key, item)
        out = []
        for key, _ in inputs:
            value = str(key).strip()
            if not value:
                error = {
                    "errorCode": "MISSING_ARGUMENT",
                    "message": f"{external_id_field} is empty",
                }
                out.append(_failure(str(key), [error]))
            else:
                out.append(_rekey(results[value], str(key)))
        return out

    def _upsert_one(
        self, sobject: str, field: str, key: str, fields: Mapping[str, Any]
    ) -> WriteResult:
        """One record through ``PATCH /sobjects/{S}/{field}/{value}``. 300 (several records
        carry the key) is this record's failure: the listed records are never followed."""
        body = {k: v for k, v in fields.items() if k != field}  # the key is in the URL
        path = self._path("upsert", sobject=sobject, field=field, value=quote(key, safe=""))
        response = self._send("PATCH", path, body=body, ok=(300, 400, 404))
        payload = _json(response)
        if response.status_code == 300:
            urls = [str(u) for u in payload or [] if isinstance(u, str)]
            error = {
                "errorCode": "MULTIPLE_CHOICES",
                "message": f"{len(urls)} records have {field} = {key}: " + ", ".join(urls),
            }
            return _failure(key, [error])
        if response.status_code in (400, 404):
            return _failure(key, payload)
        if not isinstance(payload, dict):
            return _failure(key, [{"message": "Salesforce answered the upsert with no result"}])
        return self._item_result(key, payload)

    def update_objects(
        self, sobject: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Update records by Salesforce id. A deleted or unknown id fails with
        ``not_found=True`` so the engine can recreate the record."""
        merged: dict[str, dict[str, Any]] = {}
        for record_id, fields in inputs:
            merged.setdefault(str(record_id), {}).update(fields)
        results: dict[str, WriteResult] = {}
        for chunk in _chunks(list(merged.items()), BATCH_SIZE):
            records = [
                {"attributes": {"type": sobject}, **fields, "id": record_id}
                for record_id, fields in chunk
            ]
            path = self._path("collections")
            for (record_id, _), item in zip(
                chunk, self._collection("PATCH", path, records), strict=True
            ):
                results[record_id] = self._item_result(record_id, item)
        return [_rekey(results[str(i)], str(i)) for i, _ in inputs]

    def archive_objects(self, sobject: str, ids: Sequence[str]) -> list[WriteResult]:
        """Delete records (to the recycle bin). An id already deleted, or unknown, is not an
        error: it is reported ok with ``not_found=True``, so a retry is harmless."""
        results: dict[str, WriteResult] = {}
        distinct = list(dict.fromkeys(str(i) for i in ids))
        for chunk in _chunks(distinct, BATCH_SIZE):
            response = self._send(
                "DELETE",
                self._path("collections"),
                params={"ids": ",".join(chunk), "allOrNone": "false"},
            )
            for record_id, item in zip(chunk, _json(response) or [], strict=False):
                result = self._item_result(record_id, item)
                if result.not_found:
                    result = WriteResult(key=record_id, ok=True, id=record_id, not_found=True)
                results[record_id] = result
        return [
            results.get(str(i)) or _failure(str(i), [{"message": "no result for this id"}])
            for i in ids
        ]

    def link_orders_to_contacts(self, pairs: Sequence[tuple[str, str]]) -> list[WriteResult]:
        """Make each contact a primary OpportunityContactRole of its opportunity. Pairs that
        already have a role are left alone, so a retry creates nothing twice. Results are
        keyed ``"<opportunity id>-><contact id>"``."""
        distinct = list(dict.fromkeys((str(o), str(c)) for o, c in pairs))
        existing: dict[tuple[str, str], str] = {}
        opportunities = list(dict.fromkeys(o for o, _ in distinct))
        for chunk in _chunks(opportunities, SOQL_IN_CHUNK):
            soql = (
                "SELECT Id, OpportunityId, ContactId FROM OpportunityContactRole WHERE "  # noqa: S608
                f"OpportunityId IN ({', '.join(soql_literal(o) for o in chunk)})"
            )
            for role in self.query(soql):
                pair = (_id15(role.get("OpportunityId")), _id15(role.get("ContactId")))
                existing.setdefault(pair, str(role.get("Id")))
        results: dict[tuple[str, str], WriteResult] = {}
        missing = []
        for opp, contact in distinct:
            role_id = existing.get((_id15(opp), _id15(contact)))
            if role_id:
                results[(opp, contact)] = WriteResult(
                    key=_pair_key(opp, contact), ok=True, id=role_id, created=False
                )
            else:
                missing.append((opp, contact))
        for chunk in _chunks(missing, BATCH_SIZE):
            records = [
                {
                    "attributes": {"type": "OpportunityContactRole"},
                    "OpportunityId": opp,
                    "ContactId": contact,
                    "IsPrimary": True,
                }
                for opp, contact in chunk
            ]
            items = self._collection("POST", self._path("collections"), records)
            for pair, item in zip(chunk, items, strict=True):
                result = self._item_result(_pair_key(*pair), item)
                results[pair] = _rekey(result, result.key, created=True if result.ok else None)
        return [results[(str(o), str(c))] for o, c in pairs]

    # ----------------------------------------------------------------- collection machinery

    def _collection(self, method: str, path: str, records: list[dict]) -> list[dict]:
        """One sObject Collections call with ``allOrNone: false``; its per-item results, one
        per record in order. A whole call refused for a value Salesforce cannot deserialize is
        split in halves until only the bad records fail."""
        response = self._send(
            method, path, body={"allOrNone": False, "records": records}, ok=(400,)
        )
        payload = _json(response)
        if response.status_code == 400:
            codes = {_code(e) for e in _error_entries(payload)}
            if not codes & _SPLIT_CODES:
                raise PermanentError(
                    f"Salesforce refused the whole collection: {describe_errors(payload)}",
                    platform=PLATFORM,
                    status=400,
                    details=payload,
                )
            if len(records) == 1:
                return [{"success": False, "errors": _error_entries(payload)}]
            middle = len(records) // 2
            return self._collection(method, path, records[:middle]) + self._collection(
                method, path, records[middle:]
            )
        items = [i if isinstance(i, dict) else {} for i in payload or []]
        if len(items) != len(records):
            raise PermanentError(
                f"Salesforce answered {len(items)} results for {len(records)} records",
                platform=PLATFORM,
                details=payload,
            )
        return items

    @staticmethod
    def _item_result(key: str, item: Mapping) -> WriteResult:
        if item.get("success"):
            created = item.get("created")
            return WriteResult(
                key=key,
                ok=True,
                id=str(item.get("id") or "") or None,
                created=created if isinstance(created, bool) else None,
            )
        errors = item.get("errors") or []
        return _failure(key, errors, not_found=_gone(errors))


def _pair_key(opportunity_id: str, contact_id: str) -> str:
    return f"{opportunity_id}->{contact_id}"


def _id15(record_id: object) -> str:
    # 18-character ids end in a case-safe checksum of the first 15 (SF-OBJREF); compare those.
    return str(record_id or "")[:15]


def _setup_hint(sobject: str, name: str) -> str:
    for owner, field, kind, external in CUSTOM_FIELDS:
        if (owner, field) == (sobject, name):
            return f"custom field, {kind}" + (", External ID, Unique" if external else "")
    return "a standard field: check the integration user's field-level security"
