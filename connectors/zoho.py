"""Zoho CRM (API v8) over the shared HttpClient: OAuth refresh, record upserts, updates and
deletes, change reads with If-Modified-Since, and the connect-time field check.

What this module declares: the data centres, the endpoints (with their docs), batch and page
sizes, and the error policy. The logic is for Zoho's quirks, each in a small named function:
reading per-record results out of 200/201/207/400 answers, writing to the record a
``DUPLICATE_DATA`` answer names, switching from ``page`` to ``page_token`` paging, and taking a
token refused with 401 back to the cache once.

Facts are from shared/reference/api-crms.md section 3 (sources there), chiefly:
- https://www.zoho.com/crm/developer/docs/api/v8/refresh.html (token refresh, ``api_domain``)
- https://www.zoho.com/crm/developer/docs/api/v8/multi-dc.html (data centres)
- https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html (upsert, per-record results)
- https://www.zoho.com/crm/developer/docs/api/v8/get-records.html (paging, If-Modified-Since)
- https://www.zoho.com/crm/developer/docs/api/v8/api-limits.html (credits, concurrency, 429)
- https://www.zoho.com/crm/developer/docs/api/v8/status-codes.html (error codes)
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import requests

from connectors.crm import AccessToken, TokenCache, WriteResult
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
API_HOSTS = frozenset(host for _, host in DATA_CENTRES.values())


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
}

# Answers of the token endpoint that mean the refresh token or the client is no longer valid.
# Zoho sometimes answers these with HTTP 200 (ZO-ACCOUNTS; the status is UNCONFIRMED).
CREDENTIAL_ERRORS = frozenset(
    {"invalid_grant", "invalid_code", "invalid_client", "invalid_client_secret"}
)
# "You have made too many requests continuously": more than 10 tokens per 10 minutes
# (ZO-ACCOUNTS). The window is not stated per answer; wait it out.
MINT_THROTTLED = "access denied"  # the error text, not a secret
MINT_THROTTLE_WAIT = 600.0

AUTH_REFRESH_CODES = frozenset({"INVALID_TOKEN", "AUTHENTICATION_FAILURE"})
SCOPE_CODES = frozenset({"OAUTH_SCOPE_MISMATCH", "NO_PERMISSION"})
NOT_FOUND_MESSAGE = "the id given seems to be invalid"

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


def _retry_after(response: requests.Response) -> float | None:
    """Zoho sends no Retry-After on 429 (api-limits.html, AE-ZOHO): None lets the client back
    off exponentially with jitter. A Retry-After, should one ever come, is obeyed."""
    return retry_after_header(response)


def credits_remaining(response: requests.Response) -> int | None:
    """The ``X-API-CREDITS-REMAINING`` header (sent once usage passes ~50 %), for the shared
    budget; None when absent or not a number."""
    try:
        return int(response.headers["X-API-CREDITS-REMAINING"])
    except (KeyError, ValueError):
        return None


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


def _failure(key: str, item: Mapping[str, Any]) -> WriteResult:
    """A refused record: ``"<CODE>: <message> (<api_name>)"``, the item kept verbatim."""
    details = item.get("details") if isinstance(item.get("details"), Mapping) else {}
    code = item.get("code") or "UNKNOWN"
    error = f"{code}: {item.get('message') or 'refused by Zoho CRM'}"
    if details.get("api_name"):
        error += f" ({details['api_name']})"
    not_found = (
        code == "INVALID_DATA"
        and details.get("api_name") == "id"
        and str(item.get("message", "")).lower() == NOT_FOUND_MESSAGE
    )
    duplicate = (
        (details.get("duplicate_record") or {}).get("id") if code == "DUPLICATE_DATA" else None
    )
    return WriteResult(
        key=key,
        ok=False,
        id=str(duplicate) if duplicate else None,
        error=error,
        details=dict(item),
        not_found=not_found,
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
                f"Zoho accounts: {_error_message(response)}",
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
    ) -> requests.Response:
        """One API call; a token refused with 401 goes back to the cache once and the call is
        sent again with the new one (tokens last an hour, but another worker or Zoho may have
        revoked ours: only 30 may be active per refresh token, ZO-ACCOUNTS).

        Raises AuthExpiredError if the fresh token is refused too.
        """
        token = self._token()
        try:
            return self._send(token, endpoint, module, params, body, headers, cost)
        except AuthExpiredError:
            pass
        fresh = self._token(rejected=token.value)
        try:
            return self._send(fresh, endpoint, module, params, body, headers, cost)
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
            spec.method, url, params=params, data=data, headers=sent, cost=cost
        )

    # ----------------------------------------------------------------- connect-time check

    def prepare(
        self,
        required: Mapping[str, Sequence[str]],
        unique: Mapping[str, str] | None = None,
    ) -> None:
        """Check that every ``{module: [field api names]}`` exists and that each
        ``{module: field}`` in ``unique`` (the upsert keys) is a unique field.

        Zoho's field metadata marks a unique field with a ``unique`` object carrying
        ``casesensitive`` (zoho/crm-oas v8.0/fields.json; ``{}`` on the others); a boolean
        ``true`` is accepted too, in case another version sends one.

        Raises ConfigurationError naming every missing ``Module.Field`` in one message.
        """
        unique = dict(unique or {})
        modules = list(dict.fromkeys([*required, *unique]))
        missing: list[str] = []
        not_unique: list[str] = []
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
        if not missing and not not_unique:
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
        raise ConfigurationError(
            "; ".join(parts) + ". Add them in Zoho CRM Setup > Modules and Fields, then reconnect.",
            platform=PLATFORM,
        )

    # ----------------------------------------------------------------- writes

    def upsert_contacts_by_email(
        self, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Create or update contacts keyed by email (matched case-insensitively).

        A ``DUPLICATE_DATA`` answer (the email is new, but another unique field of the contact
        matches an existing one) is written to that contact by id instead.
        """
        results = self._upsert("Contacts", "Email", inputs, normalise=lambda e: e.strip().lower())
        redirect = [
            (i, r.id, inputs[i][1], inputs[i][0])
            for i, r in enumerate(results)
            if not r.ok and r.id and (r.details or {}).get("code") == "DUPLICATE_DATA"
        ]
        if redirect:
            updates = [
                (rid, {**fields, "Email": str(email).strip()}) for _, rid, fields, email in redirect
            ]
            updated = self.update_objects("Contacts", updates)
            for (i, _, _, _), result in zip(redirect, updated, strict=True):
                results[i] = _rekey(result, results[i].key, created=False if result.ok else None)
        return results

    def upsert_objects(
        self, module: str, id_field: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]:
        """Create or update ``module`` records keyed by ``id_field``, a unique field such as
        Deals ``Tandem_Order_Id`` (the key is written into that field)."""
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

    def archive_objects(self, module: str, ids: Sequence[str]) -> None:
        """Delete records (to Zoho's recycle bin), 100 per call. An id already deleted is not
        an error, so a retry is harmless.

        Raises PermanentError for any other refusal of an id.
        """
        unique_ids = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(unique_ids), BATCH_SIZE):
            chunk = unique_ids[start : start + BATCH_SIZE]
            response = self._call("delete", module=module, params={"ids": ",".join(chunk)})
            for item in _body(response).get("data") or []:
                if not isinstance(item, Mapping) or item.get("status") == "success":
                    continue
                if _failure("", item).not_found:
                    continue  # already gone
                raise PermanentError(
                    f"Zoho CRM refused to delete a {module} record: {_failure('', item).error}",
                    platform=PLATFORM,
                    status=response.status_code,
                    details=dict(item),
                )

    def _upsert(
        self,
        module: str,
        id_field: str,
        inputs: Sequence[tuple[str, Mapping[str, Any]]],
        *,
        normalise: Callable[[str], str],
    ) -> list[WriteResult]:
        """Upsert by ``id_field``; inputs with the same key are merged (later values win) and
        share one result, so one call never carries the same record twice."""
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
            "upsert", module, items, extra={"duplicate_check_fields": [id_field]}
        )
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
    ) -> dict[str, WriteResult]:
        """Send ``(key, record)`` items 100 per call; match results to them by position (Zoho
        answers in input order). ``trigger: []``: Zoho's own workflows must not fire on our
        writes, or they could write back and echo (insert-records.html)."""
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
                    out[key] = _success(key, item, created=False if endpoint == "update" else None)
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
            response = self._call("get_records", module=module, params=params, headers=headers)
            if response.status_code == 204:
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


def _is_unique(meta: Mapping[str, Any]) -> bool:
    flag = meta.get("unique")
    if isinstance(flag, Mapping):
        return bool(flag)  # {"casesensitive": ...} on unique fields, {} on the others
    return flag is True
