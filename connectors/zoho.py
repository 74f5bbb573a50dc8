"""Zoho CRM (API v8) over the shared HttpClient: OAuth refresh, record upserts, updates and
deletes, change reads with If-Modified-Since, and the connect-time field check.

What this module declares: the data centres, the endpoints (with their docs), batch and page
sizes, and the error policy. The logic is for Zoho's quirks, each in a small named function:
reading per-record results out of 200/201/207/400 answers, refusing an upsert that matched a
record by a field other than our key, switching from ``page`` to ``page_token`` paging, telling
a 429 for spent daily credits from one for concurrency, and taking a token refused with 401 back
to the cache once.

Facts are from shared/reference/api-crms.md section 3 (sources there), chiefly:
- https://www.zoho.com/crm/developer/docs/api/v8/refresh.html (token refresh, ``api_domain``)
- https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html (data centres)
- https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html (upsert, per-record results)
- https://www.zoho.com/crm/developer/docs/api/v8/get-records.html (paging, If-Modified-Since)
- https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html (credits, concurrency, 429)
- https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html (error codes, 304, 429)
- https://www.zoho.com/crm/developer/docs/api/v8/delete-records.html (deletes, ``wf_trigger``)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors.crm import DAILY_PROBE_SECONDS, AccessToken, TokenCache, WriteResult
from connectors.errors import (
    AuthExpiredError,
    ConfigurationError,
    PermanentError,
    RateLimitedError,
)
from connectors.http import Action, HttpClient, Policy, retry_after_header

PLATFORM = "zoho"

# --------------------------------------------------------------------------- declaration

BATCH_SIZE = 100  # insert/update/upsert/delete take at most 100 records per call
PAGE_SIZE = 200  # get records: per_page maximum
IDS_PER_READ = 100  # get records by ids
CREDITS_PER_RECORDS = 10  # insert/update/upsert cost 1 credit per 10 records (api-limits.html)
NOTHING_CHANGED = (204, 304)  # a delta read with nothing to give (see changed_since)

# dc code -> (accounts URL, API host). multi-dc.html; the CRM API host of SA is UNCONFIRMED.
DATA_CENTRES: Mapping[str, tuple[str, str]] = {
    "us": ("https://accounts.zoho.com", "www.zohoapis.com"),
    "com": ("https://accounts.zoho.com", "www.zohoapis.com"),
    "eu": ("https://accounts.zoho.eu", "www.zohoapis.eu"),
    "in": ("https://accounts.zoho.in", "www.zohoapis.in"),
    "com.au": ("https://accounts.zoho.com.au", "www.zohoapis.com.au"),
    "au": ("https://accounts.zoho.com.au", "www.zohoapis.com.au"),
    "jp": ("https://accounts.zoho.jp", "www.zohoapis.jp"),
    "ca": ("https://accounts.zohocloud.ca", "www.zohoapis.ca"),
    "com.cn": ("https://accounts.zoho.com.cn", "www.zohoapis.com.cn"),
    "cn": ("https://accounts.zoho.com.cn", "www.zohoapis.com.cn"),
    "sa": ("https://accounts.zoho.sa", "www.zohoapis.sa"),
}
# Sandbox orgs answer on ``sandbox.zohoapis.<dc>`` (and developer editions on
# ``developer.zohoapis.<dc>``), named by the token answer's ``api_domain``: Zoho's own SDKs list
# them per data centre (zoho/zohocrm-python-sdk-8.0 versions/1.0.0/zohocrmsdk/src/com/zoho/crm/
# api/dc/ca_data_center.py; the v8 Ruby SDK's ZOHOCRMSDK::Constants *_DATACENTER lists). The same
# SDK constants spell Saudi Arabia ``www.zohoapis.com.sa`` (accounts ``accounts.zoho.com.sa``),
# where the reference has ``.sa``: which one is right is UNCONFIRMED, so both API hosts are
# accepted.
_SA_SDK_HOST = "www.zohoapis.com.sa"
API_HOSTS = frozenset(
    host.replace("www.", prefix, 1)
    for host in {*(h for _, h in DATA_CENTRES.values()), _SA_SDK_HOST}
    for prefix in ("www.", "sandbox.", "developer.")
)


def accounts_url_for(dc: str) -> str:
    """The accounts server of a data centre code (the ``location`` of the OAuth redirect).

    Raises ConfigurationError for an unknown code.
    """
    try:
        return DATA_CENTRES[dc.strip().lower()][0]
    except KeyError:
        raise ConfigurationError(
            f"unknown Zoho data centre {dc!r}; valid ones are {', '.join(sorted(DATA_CENTRES))}",
            platform=PLATFORM,
        ) from None


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    docs: str


_DOCS = "https://www.zoho.com/crm/developer/docs/api/v8/"

ENDPOINTS: Mapping[str, Endpoint] = {
    "token": Endpoint("POST", "/oauth/v2/token", _DOCS + "refresh.html"),
    "get_records": Endpoint("GET", "/crm/{version}/{module}", _DOCS + "get-records.html"),
    "update": Endpoint("PUT", "/crm/{version}/{module}", _DOCS + "update-records.html"),
    "upsert": Endpoint("POST", "/crm/{version}/{module}/upsert", _DOCS + "upsert-records.html"),
    "delete": Endpoint("DELETE", "/crm/{version}/{module}", _DOCS + "delete-records.html"),
    "fields": Endpoint("GET", "/crm/{version}/settings/fields", _DOCS + "field-meta.html"),
    # Watch channels (change notifications): scope ZohoCRM.notifications.ALL (or .CREATE to
    # enable, .DELETE to disable), notifications/overview.html and zoho/crm-oas v8.0/
    # notifications/operations/*/operation.md.
    "watch": Endpoint("POST", "/crm/{version}/actions/watch", _DOCS + "notifications/enable.html"),
    "unwatch": Endpoint(
        "DELETE", "/crm/{version}/actions/watch", _DOCS + "notifications/disable.html"
    ),
}
# The OAuth scope the watch endpoints need, beside the modules' and fields' scopes (README).
NOTIFICATIONS_SCOPE = "ZohoCRM.notifications.ALL"
# A channel's ``token`` is echoed in every callback; at most 50 characters (enable.html; the
# crm-oas schema says 256, the docs' 50 is the stricter).
WATCH_TOKEN_MAX = 50
# ``channel_expiry`` may be at most a week ahead; a later one (or none) gets the default of
# one hour (enable.html "If it is not specified or set for more than a week, the default
# expiry time is for one hour").
WATCH_MAX_LIFETIME_SECONDS = 7 * 24 * 3600

# Answers of the token endpoint that mean the refresh token or the client is no longer valid.
# Zoho sometimes answers these with HTTP 200 (ZO-ACCOUNTS; the status is UNCONFIRMED).
CREDENTIAL_ERRORS = frozenset(
    {"invalid_grant", "invalid_code", "invalid_client", "invalid_client_secret"}
)
# "You have made too many requests continuously": more than 10 access tokens per refresh token
# in 10 minutes (ZO-ACCOUNTS, https://www.zoho.com/accounts/protocol/oauth/limits.html). The
# window is not stated per answer; wait it out.
MINT_THROTTLED = "access denied"  # the error text, not a secret
MINT_THROTTLE_WAIT = 600.0
MINT_LIMIT_TEXT = "Zoho allows at most 10 access tokens per refresh token every 10 minutes"

AUTH_REFRESH_CODES = frozenset({"INVALID_TOKEN", "AUTHENTICATION_FAILURE"})
SCOPE_CODES = frozenset({"OAUTH_SCOPE_MISMATCH", "NO_PERMISSION"})
# An update of an id that does not exist (update-records.html); crm-oas v8.0/record.json's
# error enum spells it with a final period, the docs' examples without: both are accepted.
NOT_FOUND_MESSAGE = "the id given seems to be invalid"
# Tandem's own keys of the modules it upserts without one of its fields: contacts by email.
CONTACTS_KEY = ("Contacts", "Email")
# Upsert's system-defined duplicate-check fields (upsert-records.html "System-defined Duplicate
# Check Fields"). They are checked only when named in ``duplicate_check_fields`` (or when none
# is given), unlike user-defined unique fields, which are always checked after the named ones.
SYSTEM_DUPLICATE_CHECK: Mapping[str, str] = {
    "Leads": "Email",
    "Contacts": "Email",
    "Accounts": "Account_Name",
    "Deals": "Deal_Name",
    "Campaigns": "Campaign_Name",
    "Cases": "Subject",
    "Solutions": "Solution_Title",
    "Products": "Product_Name",
    "Vendors": "Vendor_Name",
    "Price_Books": "Price_Book_Name",
    "Quotes": "Subject",
    "Sales_Orders": "Subject",
    "Purchase_Orders": "Subject",
    "Invoices": "Subject",
}

# --------------------------------------------------------------------------- errors and limits


def _body(response: requests.Response) -> dict[str, Any]:
    """The JSON object of a Zoho answer (numbers with decimals as Decimal), or {}."""
    if not response.content:
        return {}
    try:
        body = json.loads(response.content, parse_float=Decimal)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error_message(response: requests.Response) -> str:
    """Zoho's ``{code, message, details}`` (or the accounts server's ``{error}``) as one line."""
    body = _body(response)
    if "error" in body and "code" not in body:
        text = str(body["error"])
        if body.get("error_description"):
            text += f": {body['error_description']}"
        return text
    code = body.get("code") or f"HTTP {response.status_code}"
    text = f"{code}: {body.get('message') or response.reason or ''}".rstrip(": ")
    if body.get("details"):
        text += " " + json.dumps(body["details"], sort_keys=True, default=str)
    return text


def _classify(response: requests.Response) -> Action | None:
    """Zoho's codes where the status alone does not say what to do."""
    status = response.status_code
    if status == 400 and isinstance(_body(response).get("data"), list):
        # All records of a write refused: the answer is per record, in input order, not a
        # failed call (insert-records.html: 200/201 all ok, 207 mixed, 400 all failed).
        return Action.SUCCESS
    if status == 401 and _body(response).get("code") in SCOPE_CODES:
        return Action.CONFIG  # OAUTH_SCOPE_MISMATCH: an operator must grant the scopes
    return None  # other 401s (INVALID_TOKEN, AUTHENTICATION_FAILURE): refresh, by the table


# 429 TOO_MANY_REQUESTS means either "Number of API requests for the 24 hour period is
# exceeded or the concurrency limit of the user for the app is exceeded" (status-codes.html),
# with no Retry-After (api-limits.html, AE-ZOHO). The body does not say which (UNCONFIRMED), so
# the last X-API-CREDITS-REMAINING seen decides:
# - at or near 0 (less than one 100-record write, 10 credits), the daily credits are spent: a
#   long probe wait, so the job is rescheduled (and every worker of the account held back by
#   the shared budget) instead of blocking; credits come back over a rolling 24 h;
# - otherwise too many calls are in flight: a short wait shared by every worker of the account
#   (HttpClient hands a named wait to ``budget.block_for``), as in-flight calls end in seconds.
CONCURRENCY_WAIT_SECONDS = 2.0
CREDITS_NEARLY_SPENT = 10


def _retry_after(response: requests.Response) -> float | None:
    """The stateless answer (a client not watched by a connector): a Retry-After, should one
    ever come, is obeyed; otherwise the short shared wait."""
    return retry_after_header(response) or CONCURRENCY_WAIT_SECONDS


def credits_remaining(response: requests.Response) -> int | None:
    """The ``X-API-CREDITS-REMAINING`` header (sent once usage passes ~50 %), for the shared
    budget; None when absent or not a number."""
    try:
        return int(response.headers["X-API-CREDITS-REMAINING"])
    except (KeyError, ValueError):
        return None


class CreditWatch:
    """The last ``X-API-CREDITS-REMAINING`` one account's client saw, and the wait a 429 calls
    for. One per connector instance (never shared across accounts)."""

    def __init__(self) -> None:
        self.remaining: int | None = None

    def observe(self, response: requests.Response) -> None:
        remaining = credits_remaining(response)
        if remaining is not None:
            self.remaining = remaining

    def daily_spent(self) -> bool:
        return self.remaining is not None and self.remaining <= CREDITS_NEARLY_SPENT

    def retry_after(self, response: requests.Response) -> float | None:
        named = retry_after_header(response)
        if named:
            return named
        if response.status_code == 429 and self.daily_spent():
            return DAILY_PROBE_SECONDS
        return CONCURRENCY_WAIT_SECONDS


def _chain(
    first: Callable[[requests.Response], None], then: Callable[[requests.Response], None] | None
) -> Callable[[requests.Response], None]:
    if then is None:
        return first

    def both(response: requests.Response) -> None:
        first(response)
        then(response)

    return both


def zoho_policy(observe: Callable[[requests.Response], None] | None = None) -> Policy:
    """Zoho's error table for the HttpClient; ``observe`` sees every response (the lead wires
    the credits header into the shared budget with it)."""
    return Policy(
        platform=PLATFORM,
        statuses={
            429: Action.RATE_LIMITED,  # TOO_MANY_REQUESTS: credits or concurrency
            403: Action.CONFIG,  # NO_PERMISSION: an operator must grant it
        },
        classify=_classify,
        retry_after=_retry_after,
        observe=observe,
        error_message=_error_message,
    )


ZOHO_POLICY = zoho_policy()

# --------------------------------------------------------------------------- JSON bodies


def _dumps(value: Any) -> str:
    """JSON text with Decimals as exact numbers (Zoho's number fields take JSON numbers)."""
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_dumps(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_dumps(v) for v in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a number Zoho accepts")
        return format(value, "f")
    return json.dumps(value, allow_nan=False)


def _item_details(item: Mapping[str, Any]) -> Mapping[str, Any]:
    details = item.get("details")
    return details if isinstance(details, Mapping) else {}


def _duplicate_of(item: Mapping[str, Any]) -> str | None:
    """The id of the record a ``DUPLICATE_DATA`` answer names (another record, not ours)."""
    if item.get("code") != "DUPLICATE_DATA":
        return None
    record = _item_details(item).get("duplicate_record")
    found = record.get("id") if isinstance(record, Mapping) else None
    return str(found) if found else None


def _failure(key: str, item: Mapping[str, Any]) -> WriteResult:
    """A refused record: ``"<CODE>: <message> (<api_name>)"``, the item kept verbatim. The id
    of a record a DUPLICATE_DATA answer names goes in the message, never in ``id``: it is the
    record holding that value, not necessarily ours."""
    details = _item_details(item)
    code = item.get("code") or "UNKNOWN"
    error = f"{code}: {item.get('message') or 'refused by Zoho CRM'}"
    if details.get("api_name"):
        error += f" ({details['api_name']})"
    duplicate = _duplicate_of(item)
    if duplicate:
        error += f"; record {duplicate} already has this value"
    not_found = (
        code == "INVALID_DATA"
        and details.get("api_name") == "id"
        and str(item.get("message", "")).strip().rstrip(".").lower() == NOT_FOUND_MESSAGE
    )
    return WriteResult(key=key, ok=False, error=error, details=dict(item), not_found=not_found)


def _matched_elsewhere(
    module: str, id_field: str, key: str, item: Mapping[str, Any]
) -> WriteResult | None:
    """A failure if an upsert success matched by a field other than ``id_field``.

    Zoho's duplicate check does not stop at the fields we name: after them it tries every other
    user-defined unique field (upsert-records.html, "How does the duplicate check work?":
    ``["Email"]`` checks Email, unique1, unique2). A new email whose phone is unique and taken
    therefore *updates another person*, answered as a success with ``duplicate_field: "Phone"``.
    That record is not ours and must not be linked: the input fails, naming what happened, so
    an operator can look at the record Zoho overwrote. An insert carries ``duplicate_field:
    null``; an update must name our key.
    """
    field = item.get("duplicate_field")
    action = item.get("action")
    if field == id_field or (field is None and action != "update"):
        return None
    record = str(_item_details(item).get("id") or "?")
    how = f"by its {field} field" if field else "without naming the field it matched by"
    return WriteResult(
        key=key,
        ok=False,
        error=(
            f"MATCHED_OTHER_FIELD: Zoho CRM matched this input to the existing {module} record "
            f"{record} {how}, not by {id_field}, and updated that record with it; Tandem did "
            f"not link it. Check record {record}, and turn off 'Do not allow duplicate values' "
            f"on {module}.{field or '?'} (Zoho's upsert also matches by every unique field)"
        ),
        details=dict(item),
    )


def _success(key: str, item: Mapping[str, Any], *, created: bool | None) -> WriteResult:
    details = item.get("details") or {}
    if item.get("action") in ("insert", "update"):
        created = item["action"] == "insert"
    return WriteResult(key=key, ok=True, id=str(details.get("id") or "") or None, created=created)


def _blank(key: str, field: str) -> WriteResult:
    item = {
        "code": "MANDATORY_NOT_FOUND",
        "details": {"api_name": field},
        "message": f"{field} is empty",
        "status": "error",
    }
    return WriteResult(
        key=key, ok=False, error=f"MANDATORY_NOT_FOUND: {field} is empty ({field})", details=item
    )


def _rekey(result: WriteResult, key: str, **changes: Any) -> WriteResult:
    return WriteResult(
        key=key,
        ok=changes.get("ok", result.ok),
        id=changes.get("id", result.id),
        created=changes.get("created", result.created),
        error=result.error,
        details=result.details,
        not_found=result.not_found,
    )


def _iso(moment: datetime) -> str:
    """ISO 8601 with offset and whole seconds (naive means UTC), for If-Modified-Since.
    Dropping the fraction moves the mark earlier: a change is read again, never missed."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


# --------------------------------------------------------------------------- the connector


class ZohoConnector:
    """Reads and writes one Zoho CRM org. Write methods return one WriteResult per input, in
    input order; a record Zoho refuses never blocks the others.

    Every method raises the connectors.errors classes the HttpClient raises: RetriableError
    and RateLimitedError (the engine retries the whole call; writes are idempotent upserts),
    AuthExpiredError (a fresh token was refused too), ConfigurationError (refused refresh
    token, missing scope, unsafe ``api_domain``), PermanentError (a request refused for good).
    """

    platform = PLATFORM
    BATCH_SIZE = BATCH_SIZE

    def __init__(
        self,
        *,
        http: HttpClient,
        tokens: TokenCache,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        accounts_url: str,
        api_version: str = "v8",
        clock: Callable[[], float] = time.time,
    ) -> None:
        http.add_secret(client_secret)
        http.add_secret(refresh_token)
        # This account's credit watch: every response it sees (the policy's observe hook) and
        # the wait a 429 calls for. Installed on this connector's own client, so two accounts
        # never share it, even when both clients were built from the module's ZOHO_POLICY.
        self.credits = CreditWatch()
        http.policy = replace(
            http.policy,
            observe=_chain(self.credits.observe, http.policy.observe),
            retry_after=self.credits.retry_after,
        )
        self._http = http
        self._tokens = tokens
        self._client_id = client_id
        self._client_secret = client_secret
        self._refresh_token = refresh_token
        self._accounts_url = accounts_url.rstrip("/")
        self._version = api_version
        self._clock = clock

    # ----------------------------------------------------------------- auth

    def _mint(self, rotated: str | None = None) -> AccessToken:
        """A new access token from the refresh token (``rotated``: a newer one the token cache
        holds; Zoho does not rotate refresh tokens today, but the cache's word wins).

        Raises ConfigurationError (refresh token or client refused: the merchant must
        reconnect; or an ``api_domain`` that is not Zoho's), RateLimitedError (too many
        tokens minted lately), PermanentError (any other refusal).
        """
        response = self._http.request(
            ENDPOINTS["token"].method,
            self._accounts_url + ENDPOINTS["token"].path,
            data={
                "grant_type": "refresh_token",
                "client_id": self._client_id,
                "client_secret": self._client_secret,
                "refresh_token": rotated or self._refresh_token,
            },
            ok=(400, 401),
        )
        body = _body(response)
        error = str(body.get("error") or "")
        if error.lower() in CREDENTIAL_ERRORS:
            raise ConfigurationError(
                f"Zoho CRM refused the refresh token or the client ({error}); the merchant must "
                "reconnect Zoho CRM",
                platform=PLATFORM,
                status=response.status_code,
            )
        if error.lower() == MINT_THROTTLED:
            raise RateLimitedError(
                f"Zoho accounts throttled token refreshes ({MINT_LIMIT_TEXT}); waiting "
                f"{MINT_THROTTLE_WAIT:.0f}s. Zoho said: {_error_message(response)}",
                platform=PLATFORM,
                status=response.status_code,
                retry_after=MINT_THROTTLE_WAIT,
            )
        value = body.get("access_token")
        if error or response.status_code >= 400 or not isinstance(value, str) or not value:
            raise PermanentError(
                f"Zoho accounts refused the token refresh: {_error_message(response)}",
                platform=PLATFORM,
                status=response.status_code,
                details={k: v for k, v in body.items() if k != "access_token"},
            )
        self._http.add_token(value)
        api_domain = self._checked_api_domain(str(body.get("api_domain") or ""))
        # ``expires_in`` is seconds in current answers; older ones sent ``expires_in_sec``
        # beside a millisecond ``expires_in`` (UNCONFIRMED which versions), so prefer that.
        lifetime = float(body.get("expires_in_sec") or body.get("expires_in") or 3600)
        return AccessToken(value, expires_at=self._clock() + lifetime, instance_url=api_domain)

    def _checked_api_domain(self, api_domain: str) -> str:
        """The API base URL the token answer names, if it is one of Zoho's API hosts (or the
        accounts host itself, as in the sandbox). The domain comes from a network answer, so a
        forged one must not make us send the token elsewhere (SSRF).

        Raises ConfigurationError.
        """
        parts = urlsplit(api_domain)
        host = (parts.hostname or "").lower().rstrip(".")
        accounts = urlsplit(self._accounts_url)
        clean = (
            parts.scheme in ("http", "https")
            and parts.username is None
            and parts.password is None
            and parts.path in ("", "/")
            and not parts.query
            and not parts.fragment
        )
        try:
            port = parts.port
        except ValueError:
            clean = False
            port = None
        zoho_host = host in API_HOSTS and parts.scheme == "https" and port in (None, 443)
        same_as_accounts = (
            host == (accounts.hostname or "").lower()
            and parts.scheme == accounts.scheme
            and port == accounts.port
        )
        if not clean or not (zoho_host or same_as_accounts):
            raise ConfigurationError(
                f"Zoho answered with API domain {host or api_domain!r}, which is not a Zoho CRM "
                f"API host ({', '.join(sorted(API_HOSTS))}); refusing to send the token there",
                platform=PLATFORM,
            )
        return f"{parts.scheme}://{parts.netloc}"

    def _token(self, rejected: str | None = None) -> AccessToken:
        token = self._tokens.get(self._mint, rejected=rejected)
        # Another worker may have minted it: this client must mask it too.
        self._http.add_token(token.value)
        return token

    # ----------------------------------------------------------------- one call

    def _call(
        self,
        endpoint: str,
        *,
        module: str = "",
        params: Mapping[str, object] | None = None,
        body: object = None,
        headers: Mapping[str, str] | None = None,
        cost: float = 1.0,
        ok: Sequence[int] = (),
    ) -> requests.Response:
        """One API call (``ok``: statuses that are answers, not failures); a token refused
        with 401 goes back to the cache once and the call is sent again with the new one
        (tokens last an hour, but another worker or Zoho may have revoked ours: only 30 may be
        active per refresh token, ZO-ACCOUNTS).

        Raises AuthExpiredError if the fresh token is refused too.
        """
        token = self._token()
        try:
            return self._send(token, endpoint, module, params, body, headers, cost, ok)
        except AuthExpiredError:
            pass
        fresh = self._token(rejected=token.value)
        try:
            return self._send(fresh, endpoint, module, params, body, headers, cost, ok)
        except AuthExpiredError as exc:
            raise AuthExpiredError(
                "Zoho CRM refused a freshly minted access token (401); the connection needs "
                f"the merchant to reconnect Zoho CRM. Last answer: {exc}",
                platform=PLATFORM,
                status=401,
            ) from None

    def _send(
        self,
        token: AccessToken,
        endpoint: str,
        module: str,
        params: Mapping[str, object] | None,
        body: object,
        headers: Mapping[str, str] | None,
        cost: float,
        ok: Sequence[int] = (),
    ) -> requests.Response:
        spec = ENDPOINTS[endpoint]
        base = self._checked_api_domain(token.instance_url or "")
        url = base + spec.path.format(version=self._version, module=module)
        sent = {"Authorization": f"Zoho-oauthtoken {token.value}", **(headers or {})}
        data = None
        if body is not None:
            data = _dumps(body).encode()
            sent["Content-Type"] = "application/json"
        return self._http.request(
            spec.method, url, params=params, data=data, headers=sent, cost=cost, ok=ok
        )

    # ----------------------------------------------------------------- connect-time check

    def prepare(
        self,
        required: Mapping[str, Sequence[str]],
        unique: Mapping[str, str] | None = None,
    ) -> None:
        """Check that every ``{module: [field api names]}`` exists, that each ``{module:
        field}`` in ``unique`` (the upsert keys) is a unique field, and that no *other*
        user-defined unique field sits on a module Tandem upserts: the ``unique`` modules by
        their key, and Contacts (when ``required`` names it) by Email.

        Why the last check: Zoho's upsert matches by the fields we name and then by every other
        user-defined unique field (upsert-records.html, "How does the duplicate check work?"),
        so with Contacts.Phone unique a new customer's upsert can overwrite another customer who
        shares the phone. The upsert results are checked too (a match by another field fails
        that input), but by then Zoho has already written; this check keeps it from happening.
        System-defined duplicate-check fields (Contacts Email, Deals Deal_Name, ...) are not
        counted: Zoho checks them only when named (same section).

        A safer Zoho mechanism was looked for and not found: external-id fields (``X-EXTERNAL``
        in zoho/crm-oas v8.0/record.json) key reads, updates and deletes by value, but an upsert
        "need not provide the X-EXTERNAL header" and still falls back to the system duplicate
        check (v7 upsert-records-ext.html, ZO-V7MIRROR api_docs/Upsert_Records_Using_External_
        ID_370.md: a new external value whose Email exists updates that contact).

        Zoho's field metadata marks a unique field with a ``unique`` object carrying
        ``casesensitive`` (zoho/crm-oas v8.0/fields.json; ``{}`` on the others); a boolean
        ``true`` is accepted too, in case another version sends one.

        Raises ConfigurationError naming every missing, non-unique or extra unique
        ``Module.Field`` in one message.
        """
        unique = dict(unique or {})
        upserted = dict(unique)
        if CONTACTS_KEY[0] in required:
            upserted.setdefault(*CONTACTS_KEY)
        modules = list(dict.fromkeys([*required, *unique]))
        missing: list[str] = []
        not_unique: list[str] = []
        extra_unique: list[tuple[str, str]] = []
        for module in modules:
            try:
                response = self._call("fields", params={"module": module})
            except PermanentError as exc:
                if exc.status == 400:  # INVALID_MODULE: the module itself is missing
                    missing.append(f"{module} (module)")
                    continue
                raise
            listed = {
                f.get("api_name"): f
                for f in _body(response).get("fields") or []
                if isinstance(f, Mapping)
            }
            wanted = list(
                dict.fromkeys(
                    [*required.get(module, ()), *([unique[module]] if module in unique else [])]
                )
            )
            for name in wanted:
                if name not in listed:
                    missing.append(f"{module}.{name}")
                elif unique.get(module) == name and not _is_unique(listed[name]):
                    not_unique.append(f"{module}.{name}")
            if module in upserted:
                ignored = {upserted[module], SYSTEM_DUPLICATE_CHECK.get(module)}
                extra_unique.extend(
                    (module, str(name))
                    for name, meta in listed.items()
                    if name and name not in ignored and _is_unique(meta)
                )
        if not missing and not not_unique and not extra_unique:
            return
        parts = []
        if missing:
            needing = [f"{m}.{f}" for m, f in unique.items() if f"{m}.{f}" in missing]
            text = "Zoho CRM is missing fields Tandem needs: " + ", ".join(missing)
            if needing:
                text += f" (create {', '.join(needing)} with 'Do not allow duplicate values')"
            parts.append(text)
        if not_unique:
            parts.append(
                "these fields must not allow duplicate values (unique): " + ", ".join(not_unique)
            )
        if extra_unique:
            named = ", ".join(
                f"{m}.{f} (Tandem upserts {m} by {upserted[m]})" for m, f in extra_unique
            )
            parts.append(
                "Zoho CRM upserts also match records by every other unique field, so Tandem "
                "could update the wrong record (another customer or order sharing that value); "
                "turn off 'Do not allow duplicate values' on " + named
            )
        raise ConfigurationError(
            "; ".join(parts) + ". Change them in Zoho CRM Setup > Modules and Fields, then "
            "reconnect.",
            platform=PLATFORM,
        )

    # ----------------------------------------------------------------- writes

    def upsert_contacts_by_email(
        self, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Create or update contacts keyed by email (matched case-insensitively).

        An input Zoho matched by another unique field (a success naming another
        ``duplicate_field``) or refused with ``DUPLICATE_DATA`` on another field fails: that
        record belongs to someone else (see :meth:`prepare`).
        """
        return self._upsert("Contacts", "Email", inputs, normalise=lambda e: e.strip().lower())

    def upsert_objects(
        self, module: str, id_field: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Create or update ``module`` records keyed by ``id_field``, a unique field such as
        Deals or Sales_Orders ``Tandem_Order_Id`` (the key is written into that field).
        Subform rows (Sales_Orders ``Ordered_Items``) go as Zoho takes them: a row with the
        ``id`` of an existing row updates it, ``{"id": ..., "_delete": None}`` deletes it, a row
        without ``id`` is added (update-subforms.html)."""
        return self._upsert(module, id_field, inputs, normalise=lambda v: v.strip())

    def update_objects(
        self, module: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Update records by Zoho id. A record that no longer exists fails with
        ``not_found=True`` (Zoho: INVALID_DATA on ``id``, "the id given seems to be invalid")."""
        distinct: dict[str, dict[str, Any]] = {}
        for record_id, fields in inputs:
            entry = distinct.setdefault(str(record_id), {})
            entry.update(fields)
        items = [(key, {**fields, "id": key}) for key, fields in distinct.items()]
        by_key = self._write_all("update", module, items, extra={})
        return [_rekey(by_key[str(record_id)], str(record_id)) for record_id, _ in inputs]

    def archive_objects(self, module: str, ids: Sequence[str]) -> list[WriteResult]:
        """Delete records (to Zoho's recycle bin), 100 per call, without running Zoho's
        workflows: ``wf_trigger`` defaults to true on deletes (delete-records.html), as
        ``trigger: []`` keeps them off our writes. One WriteResult per id, in input order.

        A per-record refusal of an id that no longer exists is done, not an error, so a retry
        is harmless: ok with ``not_found=True``. Zoho answers an already deleted id with
        INVALID_DATA "record not deleted" (delete-records.html); rather than trust one wording,
        every refused id is looked up once, and only ids still there fail. One refused id never
        stops the ids after it.
        """
        unique_ids = list(dict.fromkeys(str(i) for i in ids))
        results: dict[str, WriteResult] = {}
        for start in range(0, len(unique_ids), BATCH_SIZE):
            chunk = unique_ids[start : start + BATCH_SIZE]
            response = self._call(
                "delete", module=module, params={"ids": ",".join(chunk), "wf_trigger": "false"}
            )
            data = _body(response).get("data")
            items = data if isinstance(data, list) else []
            # Results come in input order and name their id (``details.id``): by id where
            # they do, by position where they do not.
            by_id = {
                str(_item_details(i)["id"]): i
                for i in items
                if isinstance(i, Mapping) and _item_details(i).get("id")
            }
            refused: dict[str, Mapping[str, Any]] = {}
            for index, record_id in enumerate(chunk):
                positional = items[index] if index < len(items) else None
                item = by_id.get(record_id) or (
                    positional
                    if isinstance(positional, Mapping)
                    else {"code": "UNKNOWN", "message": "Zoho CRM gave no result for this id"}
                )
                if item.get("status") == "success":
                    results[record_id] = WriteResult(key=record_id, ok=True, id=record_id)
                else:
                    refused[record_id] = item
            if refused:
                still_there = {str(r.get("id")) for r in self._existing(module, list(refused))}
                for record_id, item in refused.items():
                    if record_id in still_there:
                        results[record_id] = _failure(record_id, item)
                    else:
                        results[record_id] = WriteResult(
                            key=record_id, ok=True, id=record_id, not_found=True
                        )
        return [_rekey(results[str(i)], str(i)) for i in ids]

    def _existing(self, module: str, ids: Sequence[str]) -> list[dict[str, Any]]:
        return self.get_objects(module, ids, ["Modified_Time"])

    def _upsert(
        self,
        module: str,
        id_field: str,
        inputs: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        normalise: Callable[[str], str],
    ) -> list[WriteResult]:
        """Upsert by ``id_field``; inputs with the same key are merged (later values win) and
        share one result, so one call never carries the same record twice.

        A ``DUPLICATE_DATA`` answer on ``id_field`` itself names the record that holds our
        key: the input is written to it by id. On any other field it names someone else's
        record and the input fails (writing there would merge two people or orders).
        """
        distinct: dict[str, dict[str, Any]] = {}
        for value, fields in inputs:
            text = str(value).strip()
            if not text:
                continue
            entry = distinct.setdefault(normalise(text), {id_field: text})
            key_value = entry[id_field]  # the first spelling of the key is the one sent
            entry.update(fields)
            entry[id_field] = key_value
        items = list(distinct.items())
        by_key = self._write_all(
            "upsert",
            module,
            items,
            extra={"duplicate_check_fields": [id_field]},
            match_field=id_field,
        )
        redirect = [
            (key, duplicate, record)
            for key, record in items
            if not by_key[key].ok
            and isinstance(by_key[key].details, Mapping)
            and _item_details(by_key[key].details).get("api_name") == id_field
            and (duplicate := _duplicate_of(by_key[key].details))
        ]
        if redirect:
            updated = self.update_objects(module, [(rid, record) for _, rid, record in redirect])
            for (key, _, _), result in zip(redirect, updated, strict=True):
                by_key[key] = _rekey(result, key, created=False if result.ok else None)
        out = []
        for value, _ in inputs:
            if not str(value).strip():
                out.append(_blank(str(value), id_field))
            else:
                out.append(_rekey(by_key[normalise(str(value))], str(value)))
        return out

    def _write_all(
        self,
        endpoint: str,
        module: str,
        items: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        extra: Mapping[str, Any],
        match_field: str | None = None,
    ) -> dict[str, WriteResult]:
        """Send ``(key, record)`` items 100 per call; match results to them by position (Zoho
        answers in input order). ``trigger: []``: Zoho's own workflows must not fire on our
        writes, or they could write back and echo (insert-records.html). ``match_field``: an
        upsert success must have matched by it (:func:`_matched_elsewhere`)."""
        out: dict[str, WriteResult] = {}
        for start in range(0, len(items), BATCH_SIZE):
            chunk = items[start : start + BATCH_SIZE]
            body = {"data": [record for _, record in chunk], **extra, "trigger": []}
            response = self._call(
                endpoint,
                module=module,
                body=body,
                cost=max(1, math.ceil(len(chunk) / CREDITS_PER_RECORDS)),
            )
            data = _body(response).get("data")
            if not isinstance(data, list) or len(data) != len(chunk):
                raise PermanentError(
                    f"Zoho CRM answered {len(data) if isinstance(data, list) else 'no'} results "
                    f"for {len(chunk)} records",
                    platform=PLATFORM,
                    status=response.status_code,
                    details=_body(response),
                )
            for (key, _), item in zip(chunk, data, strict=True):
                if isinstance(item, Mapping) and item.get("status") == "success":
                    wrong = (
                        _matched_elsewhere(module, match_field, key, item) if match_field else None
                    )
                    out[key] = wrong or _success(
                        key, item, created=False if endpoint == "update" else None
                    )
                else:
                    out[key] = _failure(key, item if isinstance(item, Mapping) else {})
        return out

    # ----------------------------------------------------------------- reads

    def changed_since(
        self, module: str, since: datetime, fields: Sequence[str]
    ) -> Iterator[dict[str, Any]]:
        """Records modified after ``since`` (naive means UTC), oldest change first.

        ``page`` reaches only the first 2,000 records (DISCRETE_PAGINATION_LIMIT_EXCEEDED
        beyond), so as soon as Zoho offers ``next_page_token`` the read goes on with it.
        Raises PermanentError if Zoho hands back the same page token twice.
        """
        names = list(dict.fromkeys([*fields, "Modified_Time"]))
        params: dict[str, object] = {
            "fields": ",".join(names),
            "per_page": PAGE_SIZE,
            "sort_by": "Modified_Time",
            "sort_order": "asc",
            "page": 1,
        }
        headers = {"If-Modified-Since": _iso(since)}
        seen: set[str] = set()
        while True:
            # Nothing changed: 304 Not Modified per the v8 status-codes page ("has not been
            # modified after the time mentioned in the If-Modified-Since header"), or 204 as
            # for any empty read (get-records.html); which one comes is UNCONFIRMED, so both.
            response = self._call(
                "get_records", module=module, params=params, headers=headers, ok=NOTHING_CHANGED
            )
            if response.status_code in NOTHING_CHANGED:
                return  # nothing (more) matches
            page = _body(response)
            records = [r for r in page.get("data") or [] if isinstance(r, dict)]
            yield from records
            info = page.get("info") or {}
            if not info.get("more_records") or not records:
                return
            token = info.get("next_page_token")
            if token:
                if token in seen:
                    raise PermanentError(
                        f"Zoho CRM repeated the page token {token!r}", platform=PLATFORM
                    )
                seen.add(str(token))
                params.pop("page", None)
                params["page_token"] = str(token)
            elif "page_token" in params:
                raise PermanentError(
                    "Zoho CRM said more records follow but offered no page token",
                    platform=PLATFORM,
                )
            else:
                params["page"] = int(params["page"]) + 1  # type: ignore[call-overload]

    def get_objects(
        self, module: str, ids: Sequence[str], fields: Sequence[str]
    ) -> list[dict[str, Any]]:
        """Records by id (for notifications that carry ids only), 100 ids per call; ids that
        do not exist (or were deleted) are simply absent."""
        unique_ids = list(dict.fromkeys(str(i) for i in ids))
        names = ",".join(dict.fromkeys([*fields, "Modified_Time"]))
        out: list[dict[str, Any]] = []
        for start in range(0, len(unique_ids), IDS_PER_READ):
            chunk = unique_ids[start : start + IDS_PER_READ]
            response = self._call(
                "get_records",
                module=module,
                params={"ids": ",".join(chunk), "fields": names, "per_page": PAGE_SIZE},
            )
            if response.status_code == 204:
                continue
            out.extend(r for r in _body(response).get("data") or [] if isinstance(r, dict))
        return out

    # ----------------------------------------------------------------- change notifications

    def watch(
        self,
        channel_id: int,
        events: Sequence[str],
        notify_url: str,
        token: str,
        expiry: datetime,
    ) -> datetime:
        """Enable (or renew) watch channel ``channel_id`` for ``events`` ("Contacts.all",
        "Deals.edit", ...): Zoho POSTs ``{ids, module, operation, channel_id, token, ...}`` to
        ``notify_url`` on every such change until the channel expires. ``expiry`` (naive means
        UTC) should be at most a week ahead: past that Zoho grants one hour.

        Returns the expiry Zoho granted (UTC; the earliest, if several modules). Raises
        ValueError for a token longer than 50 characters, ConfigurationError when the token
        lacks the ZohoCRM.notifications scope (OAUTH_SCOPE_MISMATCH), PermanentError with
        Zoho's code when the channel is refused, and the HttpClient's errors.
        """
        if not token or len(token) > WATCH_TOKEN_MAX:
            raise ValueError(f"a watch token has 1 to {WATCH_TOKEN_MAX} characters")
        body = {
            "watch": [
                {
                    "channel_id": str(channel_id),
                    "events": list(events),
                    "channel_expiry": _iso(expiry),
                    "token": token,
                    "notify_url": notify_url,
                    # Ids are enough: the worker reads the records (and field values in a
                    # callback would be one more copy of personal data in the inbox).
                    "return_affected_field_values": False,
                    "notify_on_related_action": False,
                }
            ]
        }
        response = self._call("watch", body=body, ok=(400,))
        items = _body(response).get("watch")
        item = items[0] if isinstance(items, list) and items else None
        if response.status_code >= 300 or not isinstance(item, Mapping):
            raise _watch_failure([str(channel_id)], response)
        if item.get("status") != "success":
            raise _watch_failure([str(channel_id)], response)
        granted = []
        for event in _item_details(item).get("events") or []:
            try:
                moment = datetime.fromisoformat(str(event.get("channel_expiry")))
            except (AttributeError, ValueError):
                continue
            granted.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
        if not granted:
            raise PermanentError(
                f"Zoho CRM enabled watch channel {channel_id} but named no channel_expiry",
                platform=PLATFORM,
                status=response.status_code,
                details=_body(response),
            )
        return min(granted).astimezone(UTC)

    def unwatch(self, channel_ids: Sequence[int]) -> None:
        """Disable watch channels (every module each one watches). A channel Zoho no longer
        knows is already what we want: not an error.

        Raises ConfigurationError (missing scope) and the HttpClient's errors.
        """
        ids = [str(i) for i in dict.fromkeys(channel_ids)]
        if not ids:
            return
        # Per-channel results come in a 200 or 207 (crm-oas v8.0 disableNotifications
        # examples); what a channel Zoho no longer knows gets is UNCONFIRMED, so per-channel
        # refusals (a 400 with a ``watch`` list) are not errors; any other 400 is.
        response = self._call("unwatch", params={"channel_ids": ",".join(ids)}, ok=(400,))
        if response.status_code == 400 and not isinstance(_body(response).get("watch"), list):
            raise _watch_failure(ids, response)


def _watch_failure(channel_ids: Sequence[str], response: requests.Response) -> PermanentError:
    """A watch request refused: Zoho's per-channel ``{code, details, message}`` (or the top
    level one) in the message."""
    body = _body(response)
    items = body.get("watch")
    refused = [i for i in (items if isinstance(items, list) else [body]) if isinstance(i, Mapping)]
    refused = [i for i in refused if i.get("status") != "success"] or refused
    reasons = "; ".join(
        f"{i.get('code') or 'UNKNOWN'}: {i.get('message') or ''}".rstrip(": ")
        + (f" {json.dumps(i['details'], sort_keys=True, default=str)}" if i.get("details") else "")
        for i in refused
    )
    return PermanentError(
        f"Zoho CRM refused watch channel {', '.join(channel_ids)}: {reasons or 'no reason given'}",
        platform=PLATFORM,
        status=response.status_code,
        details=body,
    )


def _is_unique(meta: Mapping[str, Any]) -> bool:
    flag = meta.get("unique")
    if isinstance(flag, Mapping):
        return bool(flag)  # {"casesensitive": ...} on unique fields, {} on the others
    return flag is True
