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
- https://developer.salesforce.com/docs/platform/api-rest/guide/resources-composite-sobjects-collections-upsert.html
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
from ipaddress import ip_address
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests

from connectors.crm import DAILY_PROBE_SECONDS, AccessToken, TokenCache, WriteResult
from connectors.errors import AuthExpiredError, ConfigurationError, PermanentError
from connectors.http import Action, HttpClient, Policy, retry_after_header
from mapping.salesforce import CONTACT_KEY_FIELD

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

# The JWT's ``aud`` names the authorization server, not the host the assertion is posted to:
# https://login.salesforce.com for production orgs, https://test.salesforce.com for sandboxes,
# or an Experience Cloud (community) site URL (SF-OAUTH-JWT). It stays so when the token
# endpoint is the org's My Domain: restforce/restforce#886 ("use aud as login.salesforce.com
# else ... invalid_grant: user hasn't approved this consumer"), simple-salesforce#711 and #672
# (GovCloud and My Domain: post to the My Domain host, aud login/test). Sandboxes are told by
# their login host the way Salesforce's CLI does it (forcedotcom/sfdx-core
# src/util/sfdcUrl.ts isSandboxUrl: test.salesforce.com, or "sandbox.my.salesforce.com" for
# enhanced domains). Orgs whose External Client App wants the My Domain URL as audience
# (n8n-io/n8n#29016, after Spring '26; UNCONFIRMED against a Salesforce page) or a community
# set ``jwt_audience`` explicitly.
PRODUCTION_AUDIENCE = "https://login.salesforce.com"
SANDBOX_AUDIENCE = "https://test.salesforce.com"

# The values Tandem writes to the consent picklists (mapping.models.ConsentState).
CONSENT_VALUES = "subscribed, not_subscribed, pending, unsubscribed, redacted, invalid, unknown"

# The fields an order record carries, whether an Opportunity or an Order:
# (field, type, external id and unique).
_ORDER_RECORD_FIELDS: tuple[tuple[str, str, bool], ...] = (
    ("Tandem_Order_Id__c", "Text(255)", True),
    ("Tandem_Order_Number__c", "Text(80)", False),
    ("Tandem_Financial_Status__c", "Text(40)", False),
    ("Tandem_Fulfillment_Status__c", "Text(40)", False),
    ("Tandem_Refunded_Amount__c", "Currency(16, 2)", False),
)
# Tandem's custom fields: (sObject, field, type, external id and unique).
CUSTOM_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("Contact", CONTACT_KEY_FIELD, "Text(255)", True),
    ("Contact", "Tandem_Email_Consent__c", f"Picklist ({CONSENT_VALUES})", False),
    ("Contact", "Tandem_SMS_Consent__c", f"Picklist ({CONSENT_VALUES})", False),
    ("Contact", "Tandem_Customer_Tags__c", "Long Text Area(32768)", False),
    *(("Opportunity", *field) for field in _ORDER_RECORD_FIELDS),
)
# Only for connections that keep orders as Order + OrderItem (mapping.salesforce ORDER_SCHEMA).
ORDER_CUSTOM_FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("Product2", "Tandem_Product_Key__c", "Text(255)", True),
    *(("Order", *field) for field in _ORDER_RECORD_FIELDS),
    ("Order", "Tandem_Order_Total__c", "Currency(16, 2)", False),
    ("OrderItem", "Tandem_Line_Item_Id__c", "Text(255)", True),
)

REQUIRED_SETUP: tuple[str, ...] = (
    *(
        f"{sobject}.{name}: custom field, {kind}"
        + (", External ID, Unique (case-insensitive)" if external else "")
        for sobject, name, kind, external in CUSTOM_FIELDS
    ),
    *(
        f"{sobject}.{name}: custom field, {kind}"
        + (", External ID, Unique (case-insensitive)" if external else "")
        + " (only when orders are kept as Orders)"
        for sobject, name, kind, external in ORDER_CUSTOM_FIELDS
    ),
    "A connected app with OAuth scopes 'api' and 'refresh_token, offline_access' (refresh-token "
    "flow), or with a certificate uploaded and the integration user pre-authorized (JWT flow).",
    "The integration user: 'API Enabled'; Read, Create and Edit on Contact and Opportunity; "
    "Read, Create, Edit and Delete on OpportunityContactRole. Orders kept as Orders also need "
    "Read on Account and Price Books, Read, Create and Edit on Products, Price Book Entries "
    "and Orders, and Read, Create, Edit and Delete on Order Products.",
    "Field-level security: Edit on every Tandem_* field above and on the standard fields Tandem "
    "writes (Contact name, email, phone, mailing address; Opportunity name, amount, stage, close "
    "date, currency) for the integration user's profile or permission set.",
)

# Fields Tandem only ever sets when it creates the record: Salesforce reports them as not
# updateable, and that is no problem (OpportunityContactRole.OpportunityId is create-only,
# SF-OBJREF sforce_api_objects_opportunitycontactrole.htm).
CREATE_ONLY_FIELDS: Mapping[str, frozenset[str]] = {
    "OpportunityContactRole": frozenset({"OpportunityId"}),
    # An order product stays on its order and entry (sforce_api_objects_orderitem.htm: OrderId
    # "Create" without "Update"; PricebookEntryId the same, UNCONFIRMED against the page), an
    # entry in its price book and on its product (sforce_api_objects_pricebookentry.htm:
    # Pricebook2Id and Product2Id "can't be changed in an update").
    "OrderItem": frozenset({"OrderId", "PricebookEntryId"}),
    "PricebookEntry": frozenset({"Pricebook2Id", "Product2Id"}),
}

# Per-item codes meaning "the record addressed by id is gone" (SF-REST errorcodes.htm).
_GONE_CODES = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})
# A whole collection refused for one record's value it cannot deserialize: split it.
_SPLIT_CODES = frozenset({"JSON_PARSER_ERROR"})

# --------------------------------------------------------------------------- rate limits and errors

# Over the daily allocation Salesforce answers 403 REQUEST_LIMIT_EXCEEDED with no Retry-After;
# the window is a rolling 24 h (SF-LIMITS): probe every DAILY_PROBE_SECONDS (connectors.crm).
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


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_login_url(login_url: str, *, allow_loopback: bool) -> str:
    """``login_url`` without a trailing slash if the refresh token and client secret may go
    there: https to a host in INSTANCE_DOMAINS (login.salesforce.com, test.salesforce.com,
    a My Domain), or a loopback host (the sandbox) when the HttpClient allows loopback.
    Raises ConfigurationError otherwise (the message names the host only, never the URL,
    which could carry credentials)."""
    parts = urlsplit(str(login_url or "").strip())
    host = (parts.hostname or "").lower().rstrip(".")
    clean = bool(host) and not (parts.username or parts.password or parts.query or parts.fragment)
    salesforce = parts.scheme == "https" and host.endswith(INSTANCE_DOMAINS)
    sandbox = allow_loopback and parts.scheme in ("http", "https") and _loopback(host)
    if not clean or not (salesforce or sandbox):
        raise ConfigurationError(
            f"Salesforce login_url must be https on a Salesforce domain ({', '.join(INSTANCE_DOMAINS)}); "
            f"refusing {parts.scheme or 'no scheme'}://{host or 'no host'}",
            platform=PLATFORM,
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def default_jwt_audience(login_url: str) -> str:
    """The ``aud`` for a JWT posted to ``login_url``: test.salesforce.com for a sandbox login
    host, else login.salesforce.com (see PRODUCTION_AUDIENCE)."""
    host = (urlsplit(login_url).hostname or "").lower()
    if host == "test.salesforce.com" or ".sandbox.my.salesforce.com" in f".{host}":
        return SANDBOX_AUDIENCE
    return PRODUCTION_AUDIENCE


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


def _parse_sf_datetime(value: object) -> datetime:
    """``2026-05-20T20:49:32.000+0000`` (how the REST API writes datetimes) as a datetime.
    Raises PermanentError for anything else."""
    text = str(value or "")
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(text.replace("Z", "+0000"), pattern)
        except ValueError:
            continue
    raise PermanentError(f"Salesforce sent a datetime we cannot read: {text!r}", platform=PLATFORM)


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
        jwt_audience: str | None = None,
        api_version: str = API_VERSION,
        contact_key_field: str = CONTACT_KEY_FIELD,
        session_seconds: float = DEFAULT_SESSION_SECONDS,
        query_batch_size: int = QUERY_BATCH_SIZE,
        multi_currency: bool | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Raises ConfigurationError unless exactly one auth mode is complete: refresh token
        (client_id, client_secret, refresh_token) or JWT bearer (client_id, jwt_username,
        jwt_private_key as PEM), and ``login_url`` is one credentials may be sent to (see
        check_login_url).

        ``jwt_audience`` overrides the JWT ``aud`` (default: default_jwt_audience(login_url)).
        ``multi_currency`` says whether the org has CurrencyIsoCode fields; None finds out
        with one describe of PricebookEntry the first time price_book_entries needs it."""
        login = check_login_url(login_url, allow_loopback=http.allow_loopback)
        if jwt_audience is not None and urlsplit(jwt_audience).scheme not in ("https", "http"):
            raise ConfigurationError(
                "Salesforce jwt_audience must be a URL such as https://login.salesforce.com",
                platform=PLATFORM,
            )
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
        self._login_url = login
        self._jwt_audience = (jwt_audience or "").rstrip("/") or default_jwt_audience(login)
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._jwt_username = jwt_username
        self._jwt_private_key = jwt_private_key
        self._version = api_version
        self._key_field = contact_key_field
        self._session_seconds = session_seconds
        self._query_batch_size = query_batch_size
        self._multi_currency = multi_currency
        self._standard_price_book: str | None = None
        self._clock = clock

    @property
    def jwt_audience(self) -> str:
        """The ``aud`` claim of the JWTs this connector signs."""
        return self._jwt_audience

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
                "aud": self._jwt_audience,
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
        # Left idempotent on purpose. Without rotation a refresh can be resent at will. With
        # rotation a refresh whose answer was lost has already spent the token we hold, and any
        # resend (inline or by the job's retry) revokes the family; but a 5xx before Salesforce
        # applied it is safe to resend at once, so inline retries only help.
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
        idempotent: bool = True,
    ) -> requests.Response:
        """One REST call to ``path`` on the instance. A 401 mints a new session once and
        retries once (SF-REST errorcodes.htm INVALID_SESSION_ID); a second 401 raises
        AuthExpiredError. ``idempotent=False`` (plain creates) is passed to the HttpClient:
        a timeout or 5xx then raises RetriableError instead of being resent, since Salesforce
        may have applied it (a 401 is resent: Salesforce refused it before doing anything)."""
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
                    idempotent=idempotent,
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
        a poll must not miss (SF-REST resources_getupdated.htm).

        Paged by keyset on (SystemModstamp, Id), each page a fresh query of at most
        ``query_batch_size`` rows, so no server-side cursor outlives a page: a consumer may
        take as long as it likes between pages, or stop and start again from the last record
        it kept, without a lost or repeated record. Query locators expire (today 2 days after
        the query, before API v56.0 after 15 minutes idle: SF-LIMITS
        salesforce_app_limits_platform_apicursors.htm, help article 000384958). A record
        changed during the read gets a later SystemModstamp and comes again, later: that is a
        new change, not a repeat. Raises PermanentError if a page does not move past the last.
        """
        wanted = ["Id", "SystemModstamp"]
        wanted += [soql_name(f) for f in dict.fromkeys(fields) if f not in wanted]
        limit = max(1, int(self._query_batch_size))
        # Names are checked by soql_name, values are literals we format: no injection.
        select = f"SELECT {', '.join(wanted)} FROM {soql_name(sobject)} WHERE "  # noqa: S608
        order = f" ORDER BY SystemModstamp, Id LIMIT {limit}"
        where = f"SystemModstamp >= {soql_datetime(since)}"
        last: tuple[str, str] | None = None
        while True:
            page = list(self.query(select + where + order))
            yield from page
            if len(page) < limit:
                return
            stamp = soql_datetime(_parse_sf_datetime(page[-1].get("SystemModstamp")))
            key = (stamp, str(page[-1].get("Id") or ""))
            if not key[1] or key == last:
                raise PermanentError(
                    f"Salesforce {sobject} keyset read did not advance past {key}",
                    platform=PLATFORM,
                )
            last = key
            # "Parentheses are required whenever you mix the operators" (SOQL reference
            # sforce_api_calls_soql_select_logicaloperators.htm). Salesforce ignores
            # milliseconds when it compares datetimes (salesforce.stackexchange.com q. 234824),
            # so a literal to the second is exact.
            where = (
                f"SystemModstamp > {stamp} OR "
                f"(SystemModstamp = {stamp} AND Id > {soql_literal(key[1])})"
            )

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
        same key are merged (later values win), a blank key fails only its input.

        Always through sObject Collections upsert, even for one record: one call either way
        (SF-LIMITS: every REST request counts once), and one code path. A key that several
        records carry (an External ID that is not Unique) fails that input alone; the single
        record upsert says so with a 300 and the matches' URLs (dome_upsert.htm), collections
        with a per-item error, DUPLICATE_EXTERNAL_ID in SOAP API's StatusCode list (the code
        inside a collections answer is UNCONFIRMED: the collections page documents per-item
        errors but shows no multiple-match example); the records are never followed."""
        merged: dict[str, dict[str, Any]] = {}
        for key, fields in inputs:
            value = str(key).strip()
            if value:
                merged.setdefault(value, {}).update(fields)
        results: dict[str, WriteResult] = {}
        items = list(merged.items())
        for chunk in _chunks(items, BATCH_SIZE):
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
        keyed ``"<opportunity id>-><contact id>"``.

        Contact roles have no external id to upsert by, so they are plain creates, never
        resent by the HttpClient: a timeout or 5xx raises RetriableError (the roles may exist
        now), and the job's retry calls this again, which finds them first."""
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
            items = self._collection("POST", self._path("collections"), records, idempotent=False)
            for pair, item in zip(chunk, items, strict=True):
                result = self._item_result(_pair_key(*pair), item)
                results[pair] = _rekey(result, result.key, created=True if result.ok else None)
        return [results[(str(o), str(c))] for o, c in pairs]

    # ----------------------------------------------------------------- price books

    def standard_price_book(self) -> str:
        """The Id of the org's standard price book (every org has exactly one, and the API
        cannot create it: SF-OBJREF sforce_api_objects_pricebook2.htm), read once per
        connector. Raises ConfigurationError when the integration user cannot see it."""
        if self._standard_price_book is None:
            soql = "SELECT Id FROM Pricebook2 WHERE IsStandard = true"
            found = [str(r["Id"]) for r in self.query(soql) if r.get("Id")]
            if not found:
                raise ConfigurationError(
                    "Salesforce: the integration user cannot read the standard price book; "
                    "grant Read on Price Books (Pricebook2)",
                    platform=PLATFORM,
                )
            self._standard_price_book = found[0]
        return self._standard_price_book

    def multi_currency(self) -> bool:
        """Whether the org has multiple currencies turned on. CurrencyIsoCode exists on
        PricebookEntry (and every currency-bearing object) only then (SF-OBJREF
        sforce_api_objects_pricebookentry.htm: "Available only for organizations with the
        multicurrency feature enabled"), so one describe of PricebookEntry tells, unless the
        constructor was told already."""
        if self._multi_currency is None:
            response = self._send("GET", self._path("describe", sobject="PricebookEntry"))
            names = {
                str(f.get("name"))
                for f in (_json(response) or {}).get("fields") or []
                if isinstance(f, dict)
            }
            self._multi_currency = "CurrencyIsoCode" in names
        return self._multi_currency

    def price_book_entries(
        self,
        pricebook_id: str,
        wanted: Sequence[tuple[str, str, Decimal | float]],
    ) -> dict[tuple[str, str], WriteResult]:
        """For each ``(Product2 id, currency, unit price)`` the PricebookEntry of that product
        and currency in ``pricebook_id``, keyed ``(product id, currency)`` as given: found
        (``created=False``), or created active with that UnitPrice (``created=True``).

        Idempotent: existing entries are queried first, only the missing ones are created
        (plain creates, never resent: a lost answer raises RetriableError and the retry finds
        what was made), and a DUPLICATE_VALUE answer (someone created it meanwhile: one entry
        per product, price book and currency) is answered by querying again. An entry found
        inactive is reactivated (an order product needs an active entry); an existing
        entry's UnitPrice is left alone (order products carry their own). In a single-currency
        org the currency is not a field: every product has one entry per price book, in the
        org's currency, and the ``currency`` given only names the result. A custom price book
        needs the product's standard price first (STANDARD_PRICE_NOT_DEFINED, failed per
        item). Raises what the other calls raise."""
        multi = self.multi_currency()

        def slot(product: str, currency: str) -> tuple[str, str]:
            return (_id15(product), str(currency).upper() if multi else "")

        requested: dict[tuple[str, str], tuple[str, str, Decimal]] = {}
        for product, currency, price in wanted:
            amount = price if isinstance(price, Decimal) else Decimal(str(price))
            requested.setdefault(slot(product, currency), (str(product), str(currency), amount))
        found = self._entries(pricebook_id, [p for p, _, _ in requested.values()], multi)
        inactive = [
            (entry_id, {"IsActive": True}) for entry_id, active in found.values() if not active
        ]
        reactivated = {r.key: r for r in self.update_objects("PricebookEntry", inactive)}
        results: dict[tuple[str, str], WriteResult] = {}
        missing: list[tuple[str, str]] = []
        for key, (product, currency, _) in requested.items():
            if key in found:
                entry_id = found[key][0]
                result = reactivated.get(entry_id)
                results[key] = (
                    _rekey(result, _entry_key(product, currency), created=False)
                    if result is not None and not result.ok
                    else WriteResult(
                        key=_entry_key(product, currency), ok=True, id=entry_id, created=False
                    )
                )
            else:
                missing.append(key)
        raced: list[tuple[str, str]] = []
        for chunk in _chunks(missing, BATCH_SIZE):
            records = []
            for key in chunk:
                product, currency, price = requested[key]
                record: dict[str, Any] = {
                    "attributes": {"type": "PricebookEntry"},
                    "Pricebook2Id": pricebook_id,
                    "Product2Id": product,
                    "UnitPrice": price,
                    "IsActive": True,
                }
                if multi:
                    record["CurrencyIsoCode"] = currency.upper()
                records.append(record)
            items = self._collection("POST", self._path("collections"), records, idempotent=False)
            for key, item in zip(chunk, items, strict=True):
                product, currency, _ = requested[key]
                result = self._item_result(_entry_key(product, currency), item)
                codes = {_code(e) for e in _error_entries(item.get("errors"))}
                if not result.ok and "DUPLICATE_VALUE" in codes:
                    raced.append(key)
                    continue
                results[key] = _rekey(result, result.key, created=True if result.ok else None)
        if raced:
            again = self._entries(pricebook_id, [requested[k][0] for k in raced], multi)
            for key in raced:
                product, currency, _ = requested[key]
                if key in again:
                    results[key] = WriteResult(
                        key=_entry_key(product, currency), ok=True, id=again[key][0], created=False
                    )
                else:
                    error = {
                        "errorCode": "DUPLICATE_VALUE",
                        "message": "entry exists but cannot be read",
                    }
                    results[key] = _failure(_entry_key(product, currency), [error])
        return {
            (str(product), str(currency)): results[slot(product, currency)]
            for product, currency, _ in wanted
        }

    def _entries(
        self, pricebook_id: str, products: Sequence[str], multi: bool
    ) -> dict[tuple[str, str], tuple[str, bool]]:
        """(product id 15, currency or "") -> (entry id, active) of ``pricebook_id``."""
        fields = "Id, Product2Id, IsActive" + (", CurrencyIsoCode" if multi else "")
        out: dict[tuple[str, str], tuple[str, bool]] = {}
        for chunk in _chunks(list(dict.fromkeys(products)), SOQL_IN_CHUNK):
            soql = (
                f"SELECT {fields} FROM PricebookEntry WHERE Pricebook2Id = "  # noqa: S608
                f"{soql_literal(pricebook_id)} AND Product2Id IN "
                f"({', '.join(soql_literal(p) for p in chunk)})"
            )
            for entry in self.query(soql):
                currency = str(entry.get("CurrencyIsoCode") or "").upper() if multi else ""
                key = (_id15(entry.get("Product2Id")), currency)
                out.setdefault(key, (str(entry.get("Id")), bool(entry.get("IsActive"))))
        return out

    # ----------------------------------------------------------------- collection machinery

    def _collection(
        self, method: str, path: str, records: list[dict], *, idempotent: bool = True
    ) -> list[dict]:
        """One sObject Collections call with ``allOrNone: false``; its per-item results, one
        per record in order. A whole call refused for a value Salesforce cannot deserialize is
        split in halves until only the bad records fail (a 400 applied nothing, so the halves
        may be sent even for creates). ``idempotent=False`` for plain creates (see _send)."""
        response = self._send(
            method,
            path,
            body={"allOrNone": False, "records": records},
            ok=(400,),
            idempotent=idempotent,
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
            return self._collection(
                method, path, records[:middle], idempotent=idempotent
            ) + self._collection(method, path, records[middle:], idempotent=idempotent)
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


def _entry_key(product_id: str, currency: str) -> str:
    return f"{product_id}/{currency}"


def _pair_key(opportunity_id: str, contact_id: str) -> str:
    return f"{opportunity_id}->{contact_id}"


def _id15(record_id: object) -> str:
    # 18-character ids end in a case-safe checksum of the first 15 (SF-OBJREF); compare those.
    return str(record_id or "")[:15]


def _setup_hint(sobject: str, name: str) -> str:
    for owner, field, kind, external in (*CUSTOM_FIELDS, *ORDER_CUSTOM_FIELDS):
        if (owner, field) == (sobject, name):
            return f"custom field, {kind}" + (", External ID, Unique" if external else "")
    return "a standard field: check the integration user's field-level security"
