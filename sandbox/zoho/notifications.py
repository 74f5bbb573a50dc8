"""Zoho CRM watch channels ("Notification APIs") and their callbacks.

Facts (shared/reference/api-crms.md section 3.6; https://www.zoho.com/crm/developer/docs/api/v8/
notifications/enable.html, overview.html, update-info.html, update-details.html, disable.html,
get-details.html; zoho/crm-oas v8.0/notifications/operations/*):

- ``{api-domain}/crm/v8/actions/watch``: POST enables, PUT replaces a channel's details,
  PATCH updates the given ones, GET lists, DELETE ``?channel_ids=`` disables. Bodies
  ``{"watch": [...]}`` with at most 50 entries; each ``{channel_id (long), events
  ["Contacts.create"|"edit"|"delete"|"all", ...], notify_url (<= 255), token (<= 50 chars),
  channel_expiry (ISO), return_affected_field_values, notify_on_related_action (default true)}``.
- ``channel_expiry`` at most a week ahead; "if it is not specified or set for more than a week,
  the default expiry time is for one hour" (v8 enable.html).
- Answers ``{"watch": [{code: "SUCCESS", details: {events: [{channel_expiry, resource_uri,
  resource_id, resource_name, channel_id}]}, message: "Successfully subscribed for
  actions-watch of the given module", status: "success"}]}`` (201 on enable); a listing shows
  ``Contacts.all`` as its three operations (crm-oas getNotifications example); disable answers
  "Successfully un-subscribed from actions-watch" per module.
- Scopes ZohoCRM.notifications.ALL, or .CREATE (enable), .WRITE/.UPDATE (PUT, PATCH), .READ
  (GET), .DELETE (disable); without one, 401 OAUTH_SCOPE_MISMATCH (crm-oas createNotifications
  401 example: message "Unauthorized").
- The callback: ``POST notify_url`` with ``{server_time (epoch ms), query_params (the
  notify_url's query), module, resource_uri, ids, affected_fields, operation, channel_id,
  token}``; ``operation`` is ``insert`` (the only one in the docs' example), ``update`` or
  ``delete`` (UNCONFIRMED). The ``affected_fields`` shape for updates is UNCONFIRMED: here
  ``[{"<record id>": ["Field", ...]}]``, and with ``return_affected_field_values``
  ``[{"<record id>": {"Field": value}}]``. Changes of one action (one API call) to several
  records come as one callback with several ids; here changes queued within
  ``notification_delay_ms`` of each other are merged, at most 100 ids per callback.
- Zoho's retry policy is UNCONFIRMED (reference 3.6): ``notification_retries`` (default 2)
  retries of a non-2xx or failed callback, ``notification_retry_seconds`` apart (times the
  attempt number). Whether ``trigger: []`` on a write also silences notifications is
  UNCONFIRMED; here it does not (notifications are not workflow rules).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

import requests

from sandbox.zoho.schema import MODULES
from sandbox.zoho.store import ApiError, iso

if TYPE_CHECKING:
    from sandbox.zoho.app import Account

MAX_ENTRIES = 50  # watch objects per request (crm-oas createNotifications: maxItems 50)
MAX_EVENTS = 50
TOKEN_MAX = 50
URL_MAX = 255
DEFAULT_LIFETIME = 3600
MAX_LIFETIME = 7 * 24 * 3600
IDS_PER_CALLBACK = 100
MAX_QUEUED = 1000  # callbacks waiting per org; past it new ones are dropped (and logged)
OPERATIONS = {"create": "insert", "edit": "update", "delete": "delete"}
SUBSCRIBED = "Successfully subscribed for actions-watch of the given module"
UNSUBSCRIBED = "Successfully un-subscribed from actions-watch"
# Which scope each method needs besides ZohoCRM.notifications.ALL.
SCOPES = {
    "POST": ("ZohoCRM.notifications.CREATE",),
    "PUT": ("ZohoCRM.notifications.WRITE", "ZohoCRM.notifications.UPDATE"),
    "PATCH": ("ZohoCRM.notifications.WRITE", "ZohoCRM.notifications.UPDATE"),
    "GET": ("ZohoCRM.notifications.READ",),
    "DELETE": ("ZohoCRM.notifications.DELETE",),
}


@dataclass
class Channel:
    """One module of one watch channel (Zoho lists a channel once per module it watches)."""

    channel_id: str
    module: str
    operations: set[str]  # create / edit / delete
    notify_url: str
    token: str | None
    expires_at: float  # epoch seconds, the simulator's clock
    return_affected_field_values: bool
    notify_on_related_action: bool
    resource_uri: str
    resource_id: str = ""


def check_scope(scopes: tuple[str, ...], method: str) -> None:
    """Raises ApiError(401 OAUTH_SCOPE_MISMATCH) unless ``scopes`` allow ``method``."""
    allowed = {"ZohoCRM.notifications.ALL", *SCOPES.get(method, ())}
    if not allowed & set(scopes):
        raise ApiError(401, "OAUTH_SCOPE_MISMATCH", "Unauthorized", {})


def _refusal(code: str, message: str, **details: Any) -> dict[str, Any]:
    return {"code": code, "details": details, "message": message, "status": "error"}


def _events_json(channels: list[Channel], zone) -> dict[str, Any]:
    return {
        "events": [
            {
                "channel_expiry": iso(int(c.expires_at), zone),
                "resource_uri": c.resource_uri,
                "resource_id": c.resource_id,
                "resource_name": c.module,
                "channel_id": c.channel_id,
            }
            for c in channels
        ]
    }


class Watch:
    """The watch API of every org, and the background sender of its callbacks."""

    def __init__(self, sim: Any, dumps: Callable[[Any], str]) -> None:
        self.sim = sim
        self._dumps = dumps  # the simulator's JSON writer (amounts as exact numbers)
        self._queue: list[tuple[float, int, Callback]] = []
        self._open: dict[tuple, Callback] = {}
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    # ------------------------------------------------------------------ the API

    def parse_entry(
        self, account: Account, entry: Any, index: int, *, partial: bool
    ) -> dict[str, Any]:
        """One ``watch`` entry checked; raises _Refused with Zoho's per-entry error. With
        ``partial`` (PATCH) only ``channel_id`` is mandatory."""
        path = f"$.watch[{index}]"
        if not isinstance(entry, dict):
            raise _Refused(_refusal("INVALID_DATA", "invalid data", json_path=path))
        out: dict[str, Any] = {}
        raw_id = entry.get("channel_id")
        if raw_id is None:
            raise _Refused(
                _refusal(
                    "MANDATORY_NOT_FOUND",
                    "required field not found",
                    api_name="channel_id",
                    json_path=f"{path}.channel_id",
                )
            )
        text_id = str(raw_id)
        if isinstance(raw_id, bool) or not text_id.isdigit() or len(text_id) > 19:
            raise _Refused(
                _refusal(
                    "INVALID_DATA",
                    "invalid data",
                    api_name="channel_id",
                    expected_data_type="long",
                    json_path=f"{path}.channel_id",
                )
            )
        out["channel_id"] = text_id
        for key in ("events", "notify_url"):
            if key not in entry and not partial:
                raise _Refused(
                    _refusal(
                        "MANDATORY_NOT_FOUND",
                        "required field not found",
                        api_name=key,
                        json_path=f"{path}.{key}",
                    )
                )
        if "events" in entry:
            out["events"] = self._events(entry["events"], f"{path}.events")
        if "notify_url" in entry:
            url = entry["notify_url"]
            parts = urlsplit(url) if isinstance(url, str) else None
            if parts is None or parts.scheme not in ("http", "https") or len(url) > URL_MAX:
                raise _Refused(
                    _refusal(
                        "INVALID_DATA",
                        "invalid data",
                        api_name="notify_url",
                        json_path=f"{path}.notify_url",
                    )
                )
            out["notify_url"] = url
        if "token" in entry:
            token = entry["token"]
            if token is not None and (not isinstance(token, str) or len(token) > TOKEN_MAX):
                raise _Refused(
                    _refusal(
                        "INVALID_DATA",
                        "invalid data",
                        api_name="token",
                        maximum_length=TOKEN_MAX,
                        json_path=f"{path}.token",
                    )
                )
            out["token"] = token
        if "channel_expiry" in entry or not partial:
            out["expires_at"] = self._expiry(account, entry.get("channel_expiry"), path)
        for key, default in (
            ("return_affected_field_values", False),
            ("notify_on_related_action", True),
        ):
            if key in entry or not partial:
                value = entry.get(key, default)
                if not isinstance(value, bool):
                    raise _Refused(
                        _refusal(
                            "INVALID_DATA",
                            "invalid data",
                            api_name=key,
                            expected_data_type="boolean",
                            json_path=f"{path}.{key}",
                        )
                    )
                out[key] = value
        if entry.get("_delete") is True:
            out["_delete"] = True
        return out

    def _events(self, raw: Any, path: str) -> dict[str, set[str]]:
        if not isinstance(raw, list) or not raw or len(raw) > MAX_EVENTS:
            raise _Refused(
                _refusal("INVALID_DATA", "invalid data", api_name="events", json_path=path)
            )
        wanted: dict[str, set[str]] = {}
        for i, event in enumerate(raw):
            module, _, operation = str(event).rpartition(".")
            if module not in MODULES or operation not in (*OPERATIONS, "all"):
                raise _Refused(
                    _refusal(
                        "INVALID_DATA",
                        "invalid data",
                        api_name="events",
                        json_path=f"{path}[{i}]",
                    )
                )
            ops = set(OPERATIONS) if operation == "all" else {operation}
            wanted.setdefault(module, set()).update(ops)
        return wanted

    def _expiry(self, account: Account, raw: Any, path: str) -> float:
        now = self.sim.clock()
        if raw is None:
            return now + DEFAULT_LIFETIME
        try:
            moment = datetime.fromisoformat(str(raw))
        except ValueError:
            raise _Refused(
                _refusal(
                    "INVALID_DATA",
                    "invalid data",
                    api_name="channel_expiry",
                    expected_data_type="datetime",
                    json_path=f"{path}.channel_expiry",
                )
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=account.org.zone)
        at = moment.timestamp()
        if at <= now:
            raise _Refused(
                _refusal(
                    "INVALID_DATA",
                    "invalid data",
                    api_name="channel_expiry",
                    json_path=f"{path}.channel_expiry",
                )
            )
        # More than a week: the default hour, not the week (v8 enable.html).
        return now + DEFAULT_LIFETIME if at - now > MAX_LIFETIME else at

    def enable(self, account: Account, entries: list[Any], base_url: str) -> list[dict]:
        """POST: each entry subscribes its channel to its modules (replacing what that
        channel watched of those modules; UNCONFIRMED whether Zoho refuses a second enable
        of a channel id instead)."""
        results = []
        for index, entry in enumerate(entries):
            try:
                parsed = self.parse_entry(account, entry, index, partial=False)
            except _Refused as refused:
                results.append(refused.result)
                continue
            made = []
            for module, operations in parsed["events"].items():
                channel = Channel(
                    channel_id=parsed["channel_id"],
                    module=module,
                    operations=operations,
                    notify_url=parsed["notify_url"],
                    token=parsed.get("token"),
                    expires_at=parsed["expires_at"],
                    return_affected_field_values=parsed["return_affected_field_values"],
                    notify_on_related_action=parsed["notify_on_related_action"],
                    resource_uri=f"{base_url}/crm/v8/{module}",
                    resource_id=account.org._module_id(module),
                )
                account.channels[(channel.channel_id, module)] = channel
                made.append(channel)
            results.append(
                {
                    "code": "SUCCESS",
                    "details": _events_json(made, account.org.zone),
                    "message": SUBSCRIBED,
                    "status": "success",
                }
            )
        return results

    def update(
        self, account: Account, entries: list[Any], base_url: str, *, replace: bool
    ) -> list[dict]:
        """PUT (``replace``: the entry's details are the channel's whole new details) or
        PATCH (the given details change, the rest stay; ``_delete: true`` with ``events``
        stops watching those). A channel id that is not enabled is refused (UNCONFIRMED
        code)."""
        results = []
        for index, entry in enumerate(entries):
            try:
                parsed = self.parse_entry(account, entry, index, partial=not replace)
                existing = [
                    c for c in account.channels.values() if c.channel_id == parsed["channel_id"]
                ]
                if not existing:
                    raise _Refused(
                        _refusal(
                            "INVALID_DATA",
                            "the given channel_id is not enabled",
                            api_name="channel_id",
                            json_path=f"$.watch[{index}].channel_id",
                        )
                    )
            except _Refused as refused:
                results.append(refused.result)
                continue
            if replace:
                for channel in existing:
                    del account.channels[(channel.channel_id, channel.module)]
                results.extend(self.enable(account, [entry], base_url))
                continue
            template = existing[0]
            touched = []
            if parsed.get("_delete") and "events" in parsed:
                for module, operations in parsed["events"].items():
                    channel = account.channels.get((parsed["channel_id"], module))
                    if channel is None:
                        continue
                    channel.operations -= operations
                    if not channel.operations:
                        del account.channels[(channel.channel_id, module)]
                    touched.append(channel)
            else:
                for module, operations in (parsed.get("events") or {}).items():
                    key = (parsed["channel_id"], module)
                    if key not in account.channels:
                        channel = Channel(**{**template.__dict__, "module": module})
                        channel.operations = set()
                        channel.resource_uri = f"{base_url}/crm/v8/{module}"
                        channel.resource_id = account.org._module_id(module)
                        account.channels[key] = channel
                    account.channels[key].operations |= operations
                for channel in account.channels.values():
                    if channel.channel_id != parsed["channel_id"]:
                        continue
                    for key in (
                        "notify_url",
                        "token",
                        "return_affected_field_values",
                        "notify_on_related_action",
                        "expires_at",
                    ):
                        if key in parsed:
                            setattr(channel, key, parsed[key])
                    touched.append(channel)
            results.append(
                {
                    "code": "SUCCESS",
                    "details": _events_json(touched, account.org.zone),
                    "message": SUBSCRIBED,
                    "status": "success",
                }
            )
        return results

    def disable(self, account: Account, channel_ids: list[str]) -> list[dict]:
        results = []
        for channel_id in channel_ids:
            gone = [c for c in account.channels.values() if c.channel_id == channel_id]
            if not gone:
                results.append(
                    _refusal(
                        "INVALID_DATA",
                        "the given channel_id is not enabled",
                        api_name="channel_ids",
                        channel_id=channel_id,
                    )
                )
            for channel in gone:
                del account.channels[(channel.channel_id, channel.module)]
                results.append(
                    {
                        "code": "SUCCESS",
                        "details": {
                            "resource_uri": channel.resource_uri,
                            "resource_id": channel.resource_id,
                            "channel_id": channel.channel_id,
                        },
                        "message": UNSUBSCRIBED,
                        "status": "success",
                    }
                )
        return results

    def listing(self, account: Account, *, module: str | None, channel_id: str | None) -> list:
        now = self.sim.clock()
        rows = []
        for channel in sorted(account.channels.values(), key=lambda c: (c.channel_id, c.module)):
            if channel.expires_at <= now:
                continue  # an expired channel is no longer active
            if module and channel.module != module:
                continue
            if channel_id and channel.channel_id != channel_id:
                continue
            rows.append(
                {
                    "notify_on_related_action": channel.notify_on_related_action,
                    "channel_expiry": iso(int(channel.expires_at), account.org.zone),
                    "return_affected_field_values": channel.return_affected_field_values,
                    "resource_uri": channel.resource_uri,
                    "resource_id": channel.resource_id,
                    "notify_url": channel.notify_url,
                    "resource_name": channel.module,
                    "fields": None,
                    "notification_condition": None,
                    "channel_id": channel.channel_id,
                    "events": [
                        f"{channel.module}.{op}"
                        for op in ("edit", "create", "delete")
                        if op in channel.operations
                    ],
                    "token": channel.token,
                }
            )
        return rows

    # ------------------------------------------------------------------ changes

    def changed(
        self, account: Account, module: str, operation: str, record_id: str, fields: list[str]
    ) -> None:
        """A record changed (called under the simulator's lock by the org): queue a callback
        for every live channel watching it, merged with one not yet sent."""
        now = self.sim.clock()
        wanted = {v: k for k, v in OPERATIONS.items()}[operation]
        for channel in list(account.channels.values()):
            if channel.module != module or wanted not in channel.operations:
                continue
            if channel.expires_at <= now:
                continue  # expired channels notify nothing
            key = (account.org.org_id, channel.channel_id, module, operation)
            pending = self._open.get(key)
            stale = pending is not None and pending.account is not account  # before a reset
            if pending is None or stale or len(pending.ids) >= IDS_PER_CALLBACK:
                if account.queued >= MAX_QUEUED:
                    account.deliveries.append(
                        {
                            "channel_id": channel.channel_id,
                            "module": module,
                            "operation": operation,
                            "ids": [record_id],
                            "outcome": "dropped",
                            "error": "queue full",
                            "attempt": 0,
                            "status": None,
                            "at": now,
                        }
                    )
                    continue
                pending = Callback(account, channel, module, operation)
                self._open[key] = pending
                account.queued += 1
                delay = self.sim.knobs.notification_delay_ms / 1000
                self._schedule(pending, delay)
            if record_id not in pending.ids:
                pending.ids.append(record_id)
            pending.fields.setdefault(record_id, [])
            for name in fields:
                if name not in pending.fields[record_id]:
                    pending.fields[record_id].append(name)

    def pending(self, account: Account) -> int:
        return account.queued

    # ------------------------------------------------------------------ sending

    def _schedule(self, callback: Callback, delay: float) -> None:
        with self._wake:
            heapq.heappush(self._queue, (time.monotonic() + delay, next(self._seq), callback))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="zoho-watch", daemon=True)
                self._thread.start()
            self._wake.notify()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wake.wait(timeout=timeout)
                _, _, callback = heapq.heappop(self._queue)
            self._attempt(callback)

    def _attempt(self, callback: Callback) -> None:
        sim = self.sim
        with sim.lock:
            account = callback.account
            if sim.accounts.get(account.org.org_id) is not account:
                return  # the simulator was reset
            key = (
                account.org.org_id,
                callback.channel.channel_id,
                callback.module,
                callback.operation,
            )
            if self._open.get(key) is callback:
                del self._open[key]
            if callback.body is None:
                callback.body = self._body(callback)
            body = callback.body
            timeout = sim.knobs.notification_timeout_s
        if body is None:  # every record it named is gone (a rolled-back create)
            with sim.lock:
                account.queued -= 1
            return
        callback.attempts += 1
        status: int | None = None
        error: str | None = None
        try:
            response = self._session.post(
                callback.channel.notify_url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=timeout,
                allow_redirects=False,
            )
            status = response.status_code
            response.close()
        except requests.RequestException as exc:
            error = type(exc).__name__
        ok = status is not None and 200 <= status < 300
        with sim.lock:
            retries = sim.knobs.notification_retries
            outcome = "delivered" if ok else "failed" if callback.attempts <= retries else "gave_up"
            account.deliveries.append(
                {
                    "channel_id": callback.channel.channel_id,
                    "module": callback.module,
                    "operation": callback.operation,
                    "ids": list(callback.ids),
                    "url": callback.channel.notify_url,
                    "attempt": callback.attempts,
                    "outcome": outcome,
                    "status": status,
                    "error": error,
                    "at": sim.clock(),
                }
            )
            if outcome == "failed":
                delay = sim.knobs.notification_retry_seconds * callback.attempts
                self._schedule(callback, delay)
                return
            account.queued -= 1

    def _body(self, callback: Callback) -> bytes | None:
        """The callback JSON, built once: a retry sends the same bytes."""
        org = callback.account.org
        ids = callback.ids
        if callback.operation != "delete":
            ids = [i for i in ids if org.get(callback.module, i) is not None]
        if not ids:
            return None
        channel = callback.channel
        if channel.return_affected_field_values:
            affected = []
            for record_id in ids:
                record = org.get(callback.module, record_id)
                rendered = (
                    org.render(record, callback.fields.get(record_id) or []) if record else {}
                )
                rendered.pop("id", None)
                affected.append({record_id: rendered})
        elif callback.operation == "update":
            affected = [{i: list(callback.fields.get(i) or [])} for i in ids]
        else:
            affected = []
        payload: dict[str, Any] = {
            "server_time": int(self.sim.clock() * 1000),
            "query_params": dict(parse_qsl(urlsplit(channel.notify_url).query)),
            "module": callback.module,
            "resource_uri": channel.resource_uri,
            "ids": ids,
            "affected_fields": affected,
            "operation": callback.operation,
            "channel_id": channel.channel_id,
            "token": channel.token,
        }
        return self._dumps(payload).encode()


@dataclass
class Callback:
    account: Any
    channel: Channel
    module: str
    operation: str  # insert / update / delete
    ids: list[str] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)
    attempts: int = 0
    body: bytes | None = None


class _Refused(Exception):
    def __init__(self, result: dict[str, Any]) -> None:
        super().__init__(result["code"])
        self.result = result
