"""HubSpot CRM (v3 objects, search and properties; v4 associations) over the shared HttpClient.

What this module declares: the endpoints (with their docs), batch and page sizes, the modified
date property per object type, and the rate-limit policy. The only logic is for HubSpot's
quirks, each in a small named function: matching batch results to inputs, splitting a refused
batch until only the bad inputs fail, and restarting a search that reaches the 10,000-result cap.

Facts are from shared/reference/api-crms.md section 1 (sources there), chiefly:
- https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis
- https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
- https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
- https://developers.hubspot.com/docs/api-reference/error-handling
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import requests

from connectors.crm import WriteResult
from connectors.errors import PermanentError
from connectors.http import Action, HttpClient, Policy

PLATFORM = "hubspot"

# --------------------------------------------------------------------------- declaration

BATCH_SIZE = 100  # every /batch/* object endpoint takes at most 100 inputs (HS-OBJ)
# v4 batch create takes up to 2,000 inputs; a smaller real limit would only cost a split.
# https://developers.hubspot.com/docs/api-reference/latest/crm/associations/associate-records/guide
ASSOCIATION_BATCH_SIZE = 2000
LIST_PAGE_SIZE = 100  # list endpoint maximum (HS-OBJ)
SEARCH_PAGE_SIZE = 200  # search maximum (HS-SEARCH)

# Contacts keep their modified date in ``lastmodifieddate``, other objects in
# ``hs_lastmodifieddate`` (HS-SEARCH, default properties table).
MODIFIED_PROPERTY: Mapping[str, str] = {"contacts": "lastmodifieddate"}
DEFAULT_MODIFIED_PROPERTY = "hs_lastmodifieddate"

# Tandem's own properties live in one group, so a HubSpot admin can tell where they came from
# (https://developers.hubspot.com/docs/api/crm/properties, "Property groups").
PROPERTY_GROUP = {"name": "tandem", "label": "Tandem"}

# Association type ids (HUBSPOT_DEFINED), from
# https://developers.hubspot.com/docs/api-reference/latest/crm/associations/associate-records/guide
DEAL_TO_CONTACT = 3
LINE_ITEM_TO_DEAL = 20


@dataclass(frozen=True)
class Endpoint:
    path: str
    docs: str


ENDPOINTS: Mapping[str, Endpoint] = {
    "list": Endpoint(
        "/crm/v3/objects/{object_type}",
        "https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis",
    ),
    "search": Endpoint(
        "/crm/v3/objects/{object_type}/search",
        "https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm",
    ),
    "batch_update": Endpoint(
        "/crm/v3/objects/{object_type}/batch/update",
        "https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/update-contacts",
    ),
    "batch_upsert": Endpoint(
        "/crm/v3/objects/{object_type}/batch/upsert",
        "https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts",
    ),
    "batch_read": Endpoint(
        "/crm/v3/objects/{object_type}/batch/read",
        "https://developers.hubspot.com/docs/api-reference/latest/crm/objects/objects/batch/get-objects",
    ),
    "batch_archive": Endpoint(
        "/crm/v3/objects/{object_type}/batch/archive",
        "https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis",
    ),
    "properties": Endpoint(
        "/crm/v3/properties/{object_type}",
        "https://developers.hubspot.com/docs/api/crm/properties",
    ),
    "property_groups": Endpoint(
        "/crm/v3/properties/{object_type}/groups",
        "https://developers.hubspot.com/docs/api/crm/properties",
    ),
    "associate": Endpoint(
        "/crm/v4/associations/{from_type}/{to_type}/batch/create",
        "https://developers.hubspot.com/docs/api-reference/legacy/crm/associations/associate-records/batch/create-associations-labeled",
    ),
}

# --------------------------------------------------------------------------- rate limits and errors

# A daily limit resets at midnight in the account's time zone (HS-LIMITS), which a 429 does not
# state. We wait until the next UTC midnight but never more than an hour: in a zone behind UTC,
# UTC midnight comes before the account's and a single wait would otherwise stretch to a day;
# an hourly probe costs one refused call.
DAILY_PROBE_SECONDS = 3600.0
LOCKED_MIN_WAIT = 2.0  # 423 Locked: "wait at least 2 seconds" (HS-ERR)
DEFAULT_WINDOW_SECONDS = 10.0


def _body(response: requests.Response) -> dict:
    """The JSON object of a HubSpot answer, or {} (every field is optional, HS-ERR)."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _header_seconds(response: requests.Response, name: str, scale: float = 1.0) -> float | None:
    try:
        return float(response.headers[name]) * scale
    except (KeyError, ValueError):
        return None


def _seconds_to_daily_reset(now: datetime) -> float:
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return min((tomorrow - now).total_seconds(), DAILY_PROBE_SECONDS)


def _retry_after(response: requests.Response, *, now: Callable[[], datetime]) -> float | None:
    """How long HubSpot wants us to wait, by status and 429 ``policyName`` (HS-LIMITS)."""
    explicit = _header_seconds(response, "Retry-After")
    if response.status_code == 423:
        return max(LOCKED_MIN_WAIT, explicit or 0.0)
    if response.status_code == 477:
        # Migration in progress: honour Retry-After, which may be up to a day (HS-ERR).
        return explicit
    if response.status_code != 429:
        return explicit
    policy = str(_body(response).get("policyName", "")).upper()
    if policy == "DAILY":
        return _seconds_to_daily_reset(now())
    if explicit is not None:
        return explicit
    if policy == "SECONDLY":
        return 1.0
    # TEN_SECONDLY_ROLLING (and unknown policies): the next window; REST 429s carry no
    # Retry-After, but the interval header says how long a window is.
    interval = _header_seconds(response, "X-HubSpot-RateLimit-Interval-Milliseconds", 0.001)
    return interval or DEFAULT_WINDOW_SECONDS


def _error_message(response: requests.Response) -> str:
    """HubSpot's ``{message, category, errors[]}`` as one line."""
    body = _body(response)
    message = str(body.get("message") or response.reason or f"HTTP {response.status_code}")
    category = body.get("category") or body.get("policyName")
    details = [
        str(e.get("message"))
        for e in body.get("errors") or []
        if isinstance(e, dict) and e.get("message")
    ]
    text = f"{category}: {message}" if category else message
    if details and details != [message]:
        text += " (" + "; ".join(details) + ")"
    return text


def hubspot_policy(now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> Policy:
    """HubSpot's error table for the HttpClient; ``now`` is injectable for tests."""
    return Policy(
        platform=PLATFORM,
        statuses={
            423: Action.RATE_LIMITED,  # Locked: wait >= 2 s, then retry
            429: Action.RATE_LIMITED,
            477: Action.RATE_LIMITED,  # Migration in progress: wait Retry-After
            403: Action.CONFIG,  # MISSING_SCOPES: an operator must grant them
        },
        retry_after=lambda response: _retry_after(response, now=now),
        error_message=_error_message,
    )


HUBSPOT_POLICY = hubspot_policy()

# --------------------------------------------------------------------------- results


_EXISTING_ID = re.compile(r"Existing ID:\s*(\d+)")


def existing_id(message: str | None) -> str | None:
    """The id in HubSpot's 409 "Contact already exists. Existing ID: <id>" message
    (HubSpot/hubspot-api-python#51, HubSpot/hubspot-api-nodejs#545)."""
    match = _EXISTING_ID.search(message or "")
    return match.group(1) if match else None


def _failure(key: str, error: Mapping) -> WriteResult:
    message = str(error.get("message") or error.get("category") or "rejected by HubSpot")
    conflict_id = existing_id(message) if error.get("category") == "CONFLICT" else None
    return WriteResult(
        key=key,
        ok=False,
        id=conflict_id,
        error=message,
        details=dict(error),
        not_found=error.get("category") == "OBJECT_NOT_FOUND",
    )


@dataclass
class _Input:
    """One distinct input of a batch: ``key`` matches it to HubSpot's answer."""

    key: str
    body: dict


# Statuses with which HubSpot may refuse a whole batch because of some of its inputs: split it.
_PER_INPUT_STATUSES = (400, 404, 409)
_PER_INPUT_CATEGORIES = frozenset({"VALIDATION_ERROR", "OBJECT_NOT_FOUND", "CONFLICT", None})


class HubSpotConnector:
    """Reads and writes one HubSpot account. Write methods return one WriteResult per input,
    in input order; a record HubSpot refuses never blocks the others.

    Every method raises the connectors.errors classes the HttpClient raises: RetriableError
    and RateLimitedError (the engine retries the whole call; writes are idempotent upserts),
    AuthExpiredError, ConfigurationError, PermanentError (a request refused for good).
    """

    platform = PLATFORM
    BATCH_SIZE = BATCH_SIZE

    def __init__(
        self, *, access_token: str, http: HttpClient, base_url: str = "https://api.hubapi.com"
    ) -> None:
        http.add_secret(access_token)
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"}

    def _request(
        self,
        method: str,
        endpoint: str,
        path: Mapping[str, str],
        *,
        ok: Sequence[int] = (),
        params: Mapping[str, object] | None = None,
        json: object = None,
    ) -> requests.Response:
        url = self._base_url + ENDPOINTS[endpoint].path.format(**path)
        return self._http.request(
            method, url, params=params, json=json, headers=self._headers, ok=tuple(ok)
        )

    # ----------------------------------------------------------------- properties

    def ensure_properties(self, definitions: Mapping[str, Sequence[Mapping]]) -> list[str]:
        """Create the "tandem" property group and every missing property; existing ones are
        left alone (a 409 means another worker was faster). Returns the names created."""
        created: list[str] = []
        for object_type, wanted in definitions.items():
            path = {"object_type": object_type}
            listed = _body(self._request("GET", "properties", path))
            existing = {p.get("name") for p in listed.get("results", []) if isinstance(p, dict)}
            missing = [d for d in wanted if d["name"] not in existing]
            if not missing:
                continue
            self._request("POST", "property_groups", path, json=PROPERTY_GROUP, ok=(409,))
            for definition in missing:
                body = {"groupName": PROPERTY_GROUP["name"], **definition}
                response = self._request("POST", "properties", path, json=body, ok=(409,))
                if response.status_code != 409:
                    created.append(str(definition["name"]))
        return created

    # ----------------------------------------------------------------- writes

    def upsert_contacts_by_email(
        self, inputs: Sequence[tuple[str, Mapping[str, str]]]
    ) -> list[WriteResult]:
        """Create or update contacts keyed by email (matched case-insensitively)."""
        results = self._upsert("contacts", "email", inputs, normalise=lambda e: e.strip().lower())
        # A contact created between our match and our write (another worker, a form) makes
        # HubSpot answer 409 with its id: write to it by id instead.
        retry = [
            (i, r.id, inputs[i][1]) for i, r in enumerate(results) if not r.ok and r.id is not None
        ]
        if retry:
            updated = self.update_objects("contacts", [(rid, props) for _, rid, props in retry])
            for (i, _, _), result in zip(retry, updated, strict=True):
                results[i] = WriteResult(
                    key=results[i].key,
                    ok=result.ok,
                    id=result.id,
                    created=False if result.ok else None,
                    error=result.error,
                    details=result.details,
                )
        return results

    def upsert_objects(
        self, object_type: str, id_property: str, inputs: Sequence[tuple[str, Mapping[str, str]]]
    ) -> list[WriteResult]:
        """Create or update ``object_type`` records keyed by a unique-value property."""
        return self._upsert(object_type, id_property, inputs, normalise=str)

    def archive_objects(self, object_type: str, ids: Sequence[str]) -> None:
        """Move records to HubSpot's recycle bin (restorable for 90 days; HS-OBJ). Archiving an
        already archived or missing record is not an error, so a retry is harmless."""
        for start in range(0, len(ids), BATCH_SIZE):
            chunk = [{"id": str(i)} for i in ids[start : start + BATCH_SIZE]]
            self._request(
                "POST",
                "batch_archive",
                {"object_type": object_type},
                ok=(204,),
                json={"inputs": chunk},
            )

    def update_objects(
        self, object_type: str, inputs: Sequence[tuple[str, Mapping[str, str]]]
    ) -> list[WriteResult]:
        """Update records by HubSpot id. A deleted record fails with category OBJECT_NOT_FOUND."""
        distinct: dict[str, _Input] = {}
        for record_id, properties in inputs:
            key = str(record_id)
            entry = distinct.setdefault(key, _Input(key, {"id": key, "properties": {}}))
            entry.body["properties"].update(properties)
        by_key = self._write_all(
            "batch_update",
            {"object_type": object_type},
            list(distinct.values()),
            str,
            BATCH_SIZE,
            result_key=lambda r: str(r.get("id")),
        )
        return [by_key[str(record_id)] for record_id, _ in inputs]

    def _upsert(
        self,
        object_type: str,
        id_property: str,
        inputs: Sequence[tuple[str, Mapping[str, str]]],
        *,
        normalise: Callable[[str], str],
    ) -> list[WriteResult]:
        """Batch upsert by ``id_property``; inputs with the same key are merged (later values
        win) because HubSpot refuses duplicate ids in one batch."""
        distinct: dict[str, _Input] = {}
        blank: set[int] = set()
        for i, (value, properties) in enumerate(inputs):
            if not str(value).strip():
                blank.add(i)
                continue
            key = normalise(str(value))
            entry = distinct.setdefault(
                key,
                _Input(
                    key, {"id": str(value).strip(), "idProperty": id_property, "properties": {}}
                ),
            )
            entry.body["properties"].update(properties)
            # Sent as a property too, so that HubSpot's result echoes the key we match on.
            entry.body["properties"][id_property] = entry.body["id"]
        by_key = self._write_all(
            "batch_upsert",
            {"object_type": object_type},
            list(distinct.values()),
            normalise,
            BATCH_SIZE,
            result_key=lambda r: normalise(str((r.get("properties") or {}).get(id_property) or "")),
        )
        out: list[WriteResult] = []
        for i, (value, _) in enumerate(inputs):
            if i in blank:
                error = {"category": "VALIDATION_ERROR", "message": f"{id_property} is empty"}
                out.append(_failure(str(value), error))
                continue
            found = by_key[normalise(str(value))]
            out.append(_rekey(found, str(value)))
        return out

    def associate(
        self, from_type: str, to_type: str, pairs: Sequence[tuple[str, str]], type_id: int
    ) -> list[WriteResult]:
        """Associate each (from id, to id) pair with the HUBSPOT_DEFINED ``type_id``
        (e.g. deal->contact 3, line item->deal 20). Existing associations are a no-op."""
        distinct: dict[str, _Input] = {}
        for from_id, to_id in pairs:
            key = _pair_key(from_id, to_id)
            distinct.setdefault(
                key,
                _Input(
                    key,
                    {
                        "from": {"id": str(from_id)},
                        "to": {"id": str(to_id)},
                        "types": [
                            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
                        ],
                    },
                ),
            )
        by_key = self._write_all(
            "associate",
            {"from_type": from_type, "to_type": to_type},
            list(distinct.values()),
            str,
            ASSOCIATION_BATCH_SIZE,
            result_key=lambda r: _pair_key(r.get("fromObjectId"), r.get("toObjectId")),
            error_keys=_association_error_keys,
        )
        return [by_key[_pair_key(a, b)] for a, b in pairs]

    def link_orders_to_contacts(self, pairs: Sequence[tuple[str, str]]) -> list[WriteResult]:
        """Associate each (deal id, contact id) pair: deal->contact, type 3 (HS-ASSOC)."""
        return self.associate("deals", "contacts", pairs, DEAL_TO_CONTACT)

    def link_line_items_to_orders(self, pairs: Sequence[tuple[str, str]]) -> list[WriteResult]:
        """Associate each (line item id, deal id) pair: line item->deal, type 20 (HS-ASSOC)."""
        return self.associate("line_items", "deals", pairs, LINE_ITEM_TO_DEAL)

    # ----------------------------------------------------------------- batch machinery

    def _write_all(
        self,
        endpoint: str,
        path: Mapping[str, str],
        items: list[_Input],
        normalise: Callable[[str], str],
        size: int,
        *,
        result_key: Callable[[dict], str],
        error_keys: Callable[[Mapping], list[str]] | None = None,
    ) -> dict[str, WriteResult]:
        keys_of = error_keys or (
            lambda error: [normalise(str(v)) for v in (error.get("context") or {}).get("ids") or []]
        )
        out: dict[str, WriteResult] = {}
        for start in range(0, len(items), size):
            chunk = items[start : start + size]
            out.update(self._write_chunk(endpoint, path, chunk, result_key, keys_of))
        return out

    def _write_chunk(
        self,
        endpoint: str,
        path: Mapping[str, str],
        chunk: list[_Input],
        result_key: Callable[[dict], str],
        error_keys: Callable[[Mapping], list[str]],
    ) -> dict[str, WriteResult]:
        """Send one batch; match its answer to inputs by key, never by position.

        A whole batch refused for some of its inputs (400/404/409, for when HubSpot does not
        answer 207 Multi-Status: UNCONFIRMED which it does, HS-ERR) is split in halves down to
        single inputs, so only the inputs HubSpot really refuses fail.
        """
        response = self._request(
            "POST", endpoint, path, json={"inputs": [i.body for i in chunk]}, ok=_PER_INPUT_STATUSES
        )
        body = _body(response)
        if response.status_code in _PER_INPUT_STATUSES:
            if body.get("category") not in _PER_INPUT_CATEGORIES:
                raise PermanentError(
                    _error_message(response),
                    platform=PLATFORM,
                    status=response.status_code,
                    details=body,
                )
            if len(chunk) == 1:
                return {chunk[0].key: _failure(chunk[0].key, body)}
            middle = len(chunk) // 2
            return {
                **self._write_chunk(endpoint, path, chunk[:middle], result_key, error_keys),
                **self._write_chunk(endpoint, path, chunk[middle:], result_key, error_keys),
            }
        wanted = {item.key for item in chunk}
        records = [r for r in body.get("results") or [] if isinstance(r, dict)]
        out: dict[str, WriteResult] = {}
        for record in records:
            key = result_key(record)
            if len(chunk) == 1 and len(records) == 1 and not body.get("errors"):
                key = chunk[0].key  # one input, one result: nothing to match
            if key in wanted:
                out[key] = WriteResult(
                    key=key,
                    ok=True,
                    id=str(record.get("id") or record.get("fromObjectId") or "") or None,
                    created=record.get("new") if isinstance(record.get("new"), bool) else None,
                )
        unmatched_errors: list[dict] = []
        for error in body.get("errors") or []:
            if not isinstance(error, dict):
                continue
            keys = [k for k in error_keys(error) if k in wanted and k not in out]
            if not keys:
                unmatched_errors.append(error)
            for key in keys:
                out[key] = _failure(key, error)
        return {
            **out,
            **self._settle_unaccounted(
                endpoint, path, chunk, out, unmatched_errors, result_key, error_keys
            ),
        }

    def _settle_unaccounted(
        self,
        endpoint: str,
        path: Mapping[str, str],
        chunk: list[_Input],
        answered: Mapping[str, WriteResult],
        unmatched_errors: list[dict],
        result_key: Callable[[dict], str],
        error_keys: Callable[[Mapping], list[str]],
    ) -> dict[str, WriteResult]:
        """Inputs HubSpot's answer does not name (an error without context): a lone one takes
        the lone error; otherwise they are sent again in smaller batches (idempotent writes)."""
        rest = [item for item in chunk if item.key not in answered]
        if not rest:
            return {}
        if len(rest) == 1:
            error = (
                unmatched_errors[0]
                if unmatched_errors
                else {"category": None, "message": "HubSpot returned no result for this input"}
            )
            return {rest[0].key: _failure(rest[0].key, error)}
        if len(rest) == len(chunk):
            middle = len(rest) // 2
            return {
                **self._write_chunk(endpoint, path, rest[:middle], result_key, error_keys),
                **self._write_chunk(endpoint, path, rest[middle:], result_key, error_keys),
            }
        return self._write_chunk(endpoint, path, rest, result_key, error_keys)

    # ----------------------------------------------------------------- reads

    def get_objects(
        self, object_type: str, ids: Sequence[str], properties: Sequence[str]
    ) -> list[dict]:
        """The live records among ``ids`` (SimplePublicObject dicts with ``properties``), 100
        ids per call; ids that do not exist (or were archived) are simply absent.

        HubSpot answers a batch read with some unknown ids 207 Multi-Status: the records found
        in ``results``, the others in an OBJECT_NOT_FOUND error naming them in ``context.ids``
        (HubSpot/hubspot-api-php#619; HS-ERR). Whether a batch of only unknown ids is a 207 too
        or a 404 is UNCONFIRMED: a 404 OBJECT_NOT_FOUND is read as "none of them".

        Raises PermanentError for any other per-input error (nothing is silently dropped).
        """
        unique_ids = list(dict.fromkeys(str(i) for i in ids))
        out: list[dict] = []
        for start in range(0, len(unique_ids), BATCH_SIZE):
            chunk = unique_ids[start : start + BATCH_SIZE]
            response = self._request(
                "POST",
                "batch_read",
                {"object_type": object_type},
                ok=(404,),
                json={"properties": list(properties), "inputs": [{"id": i} for i in chunk]},
            )
            body = _body(response)
            errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
            if response.status_code == 404:
                errors = [body]
            refused = [e for e in errors if e.get("category") != "OBJECT_NOT_FOUND"]
            if refused:
                reasons = "; ".join(str(e.get("message") or e.get("category")) for e in refused)
                raise PermanentError(
                    f"HubSpot refused a batch read of {object_type}: {reasons}",
                    platform=PLATFORM,
                    status=response.status_code,
                    details=refused,
                )
            wanted = set(chunk)
            out.extend(
                r
                for r in body.get("results") or []
                if isinstance(r, dict) and str(r.get("id")) in wanted
            )
        return out

    def list_objects(self, object_type: str, properties: Sequence[str]) -> Iterator[dict]:
        """Every live record of ``object_type`` (SimplePublicObject dicts), paging with
        ``after``; raises PermanentError if HubSpot hands back the same cursor twice."""
        params: dict[str, object] = {"limit": LIST_PAGE_SIZE, "properties": ",".join(properties)}
        previous: str | None = None
        while True:
            page = _body(self._request("GET", "list", {"object_type": object_type}, params=params))
            yield from page.get("results") or []
            after = ((page.get("paging") or {}).get("next") or {}).get("after")
            if not after:
                return
            if after == previous:
                raise PermanentError(
                    f"HubSpot repeated the paging cursor {after!r}", platform=PLATFORM
                )
            previous = params["after"] = str(after)

    def changed_since(
        self, object_type: str, since: datetime, properties: Sequence[str]
    ) -> Iterator[dict]:
        """Records modified at or after ``since`` (naive means UTC), oldest change first.

        Every page is a fresh query from the last modified date seen, skipping the records
        already yielded at that instant (ties, by id). So paging never nears search's
        10,000-results-per-query cap (HS-SEARCH), and a record modified while we page (which
        moves to the end of the order) cannot shift another one out of an offset page. If a
        whole page shares one instant, that instant is walked by record id.
        """
        modified = MODIFIED_PROPERTY.get(object_type, DEFAULT_MODIFIED_PROPERTY)
        wanted = sorted({*properties, modified})
        mark, seen_at_mark = _epoch_ms(since), set[str]()
        while True:
            results, more = self._search_page(
                object_type, [_filter(modified, "GTE", mark)], modified, wanted
            )
            start = mark
            for record in results:
                ms, record_id = _record_ms(record, modified), str(record.get("id"))
                if ms == start and record_id in seen_at_mark:
                    continue
                if ms != mark:
                    mark, seen_at_mark = ms, set()
                seen_at_mark.add(record_id)
                yield record
            if not more:
                return
            if mark == start:
                # A full page at one instant: walk it by id, then go on after it.
                yield from self._walk_instant(object_type, modified, mark, wanted, seen_at_mark)
                mark, seen_at_mark = mark + 1, set()

    def _walk_instant(
        self, object_type: str, modified: str, ms: int, wanted: list[str], seen: set[str]
    ) -> Iterator[dict]:
        last_id = 0
        while True:
            results, more = self._search_page(
                object_type,
                [_filter(modified, "EQ", ms), _filter("hs_object_id", "GT", last_id)],
                "hs_object_id",
                wanted,
            )
            for record in results:
                last_id = max(last_id, int(record["id"]))
                if record["id"] not in seen:
                    seen.add(record["id"])
                    yield record
            if not more or not results:
                return

    def _search_page(
        self, object_type: str, filters: list[dict], sort_by: str, wanted: list[str]
    ) -> tuple[list[dict], bool]:
        """The first page of a search ascending by ``sort_by``, and whether more match."""
        body = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": sort_by, "direction": "ASCENDING"}],
            "properties": wanted,
            "limit": SEARCH_PAGE_SIZE,
        }
        page = _body(self._request("POST", "search", {"object_type": object_type}, json=body))
        results = [r for r in page.get("results") or [] if isinstance(r, dict)]
        more = "paging" in page or int(page.get("total") or 0) > len(results)
        return results, more and bool(results)


def _rekey(result: WriteResult, key: str) -> WriteResult:
    return WriteResult(
        key=key,
        ok=result.ok,
        id=result.id,
        created=result.created,
        error=result.error,
        details=result.details,
        not_found=result.not_found,
    )


def _pair_key(from_id: object, to_id: object) -> str:
    return f"{from_id}->{to_id}"


def _association_error_keys(error: Mapping) -> list[str]:
    context = error.get("context") or {}
    froms, tos = context.get("fromObjectId") or [], context.get("toObjectId") or []
    return [_pair_key(a, b) for a, b in zip(froms, tos, strict=False)]


def _filter(name: str, operator: str, value: object) -> dict:
    return {"propertyName": name, "operator": operator, "value": str(value)}


def _epoch_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _record_ms(record: Mapping, modified: str) -> int:
    """The record's modified date in epoch ms (HubSpot sends ISO strings or epoch ms)."""
    raw = (record.get("properties") or {}).get(modified) or record.get("updatedAt") or "0"
    text = str(raw)
    if text.lstrip("-").isdigit():
        return int(text)
    return _epoch_ms(datetime.fromisoformat(text.replace("Z", "+00:00")))
