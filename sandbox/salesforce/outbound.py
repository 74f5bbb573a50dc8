"""Outbound messages: a workflow rule's "send a SOAP message" action, the way Salesforce sends it.

Facts (shared/reference/api-crms.md section 2.6 [SF-OM]; the outbound-messaging WSDL,
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm):

- An action names an object, an endpoint URL and the fields to send (``Id`` always). Here one
  is made with ``POST /_sandbox/orgs/<org>/outbound`` and fires on every save of a record of its
  object, through the API or by a rep (a rule "created, and every time it's edited"; a save
  that changes nothing still bumps LastModifiedDate, so it fires too). Deletions do not fire.
- The message: SOAP 1.1, ``notifications`` in namespace http://soap.sforce.com/2005/09/outbound
  with ``OrganizationId``, ``ActionId``, ``SessionId`` (nil: "Send Session ID" off),
  ``EnterpriseUrl``, ``PartnerUrl`` and 1..100 ``Notification`` {``Id``, ``sObject
  xsi:type="sf:<Object>"`` with the selected fields in namespace
  urn:sobject.enterprise.soap.sforce.com}. A field without a value is sent ``xsi:nil="true"``
  (UNCONFIRMED whether Salesforce leaves it out instead).
- The data is the record's as of sending, not as of the change: "the endpoint will only
  receive the latest data, not any intermediate changes"; a retry therefore renders afresh,
  keeping the notification ids. A record deleted before its message goes is left out
  (UNCONFIRMED).
- Delivered means the listener answered ``notificationsResponse`` with ``Ack`` true; otherwise
  Salesforce retries "with growing intervals (up to 2 h between tries) for up to 24 hours",
  then drops the message. ``outbound_time_scale`` compresses that schedule for tests.
- Bounded: at most MAX_QUEUED notifications wait per action (more are dropped and logged);
  only the action's URL is called.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import ParseError
from xml.sax.saxutils import escape, quoteattr

import defusedxml
import defusedxml.ElementTree
import requests

from sandbox.salesforce.org import Org
from sandbox.salesforce.schema import make_id

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
SOBJECT = "urn:sobject.enterprise.soap.sforce.com"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_VERSION = "66.0"
PER_MESSAGE = 100
MAX_QUEUED = 10_000
RETRY_WINDOW_S = 24 * 3600
FIRST_RETRY_S = 15.0
MAX_RETRY_S = 2 * 3600
CONNECT_TIMEOUT_S = 2.0


@dataclass
class Action:
    """One outbound-message action: what it watches, where it sends, which fields."""

    id: str
    object: str
    url: str
    fields: list[str]
    name: str
    base_url: str  # the instance, for EnterpriseUrl / PartnerUrl
    queue: list[tuple[str, str]] = field(default_factory=list)  # (notification id, record id)
    flush_scheduled: bool = False
    in_flight: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "action_id": self.id,
            "object": self.object,
            "url": self.url,
            "fields": list(self.fields),
            "name": self.name,
        }


@dataclass
class Message:
    org: Org
    action: Action
    notifications: list[tuple[str, str]]
    attempts: int = 0
    waited: float = 0.0  # seconds of retry schedule used (unscaled)


def soap_datetime(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _text(kind: str, value: Any) -> str:
    if kind == "datetime" and isinstance(value, int | float):
        return soap_datetime(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def is_ack(body: bytes) -> bool:
    """Whether ``body`` is a SOAP ``notificationsResponse`` whose ``Ack`` is true."""
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except (ParseError, defusedxml.DefusedXmlException, ValueError):
        return False
    ack = root.find(f"{{{SOAP_ENV}}}Body/{{{OUTBOUND}}}notificationsResponse/{{{OUTBOUND}}}Ack")
    return ack is not None and (ack.text or "").strip().lower() in ("true", "1")


class Outbound:
    """Every org's actions' messages, sent by one background thread."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim  # its lock guards orgs, actions and logs
        self._queue: list[tuple[float, int, Any]] = []
        self._seq = itertools.count()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._session = requests.Session()

    # ------------------------------------------------------------------ producing

    def collect(self, org: Org) -> None:
        """Turn the org's saves since the last call into notifications of the actions that
        watch them. Call under the simulator's lock, after a request's changes are final (an
        allOrNone rollback has already taken its saves back out of ``org.outbox``)."""
        saves, org.outbox = org.outbox, []
        for sobject, record_id in saves:
            for action in org.outbound_actions.values():
                if action.object != sobject:
                    continue
                if len(action.queue) + action.in_flight >= MAX_QUEUED:
                    self._log(
                        org, action, [record_id], outcome="dropped", status=None, error="queue full"
                    )
                    continue
                org.notification_serial += 1
                action.queue.append((make_id("04l", org.notification_serial), record_id))
                if not action.flush_scheduled:
                    action.flush_scheduled = True
                    delay = self.sim.knobs.outbound_delay_ms / 1000
                    self._push(time.monotonic() + delay, (org, action))

    def pending(self, org: Org) -> int:
        return sum(len(a.queue) + a.in_flight for a in org.outbound_actions.values())

    # ------------------------------------------------------------------ sending

    def _push(self, at: float, item: Any) -> None:
        with self._wake:
            heapq.heappush(self._queue, (at, next(self._seq), item))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._loop, name="salesforce-outbound", daemon=True
                )
                self._thread.start()
            self._wake.notify()

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue or self._queue[0][0] > time.monotonic():
                    timeout = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._wake.wait(timeout=timeout)
                _, _, item = heapq.heappop(self._queue)
            if isinstance(item, Message):
                self._attempt(item)
            else:
                self._flush(*item)

    def _live(self, org: Org, action: Action) -> bool:
        return (
            self.sim.orgs.get(org.org_id) is org and org.outbound_actions.get(action.id) is action
        )

    def _flush(self, org: Org, action: Action) -> None:
        with self.sim.lock:
            action.flush_scheduled = False
            if not self._live(org, action):
                return
            messages = []
            while action.queue:
                chunk = action.queue[:PER_MESSAGE]
                del action.queue[:PER_MESSAGE]
                action.in_flight += len(chunk)
                messages.append(Message(org, action, chunk))
        for message in messages:
            self._attempt(message)

    def _attempt(self, message: Message) -> None:
        sim, org, action = self.sim, message.org, message.action
        with sim.lock:
            if not self._live(org, action):
                action.in_flight -= len(message.notifications)
                return
            body = self._render(message)
            timeout = sim.knobs.outbound_timeout_s
        if body is None:  # every record it named was deleted meanwhile
            with sim.lock:
                action.in_flight -= len(message.notifications)
            return
        status: int | None = None
        error: str | None = None
        acked = False
        try:
            response = self._session.post(
                action.url,
                data=body,
                headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
                timeout=(CONNECT_TIMEOUT_S, timeout),
                allow_redirects=False,
            )
            status = response.status_code
            acked = status == 200 and is_ack(response.content)
            response.close()
        except (requests.RequestException, OSError) as exc:
            error = type(exc).__name__
        ids = [record_id for _, record_id in message.notifications]
        with sim.lock:
            message.attempts += 1
            scale = sim.knobs.outbound_time_scale
            if acked:
                self._log(
                    org,
                    action,
                    ids,
                    outcome="delivered",
                    status=status,
                    error=None,
                    attempt=message.attempts,
                )
                action.in_flight -= len(message.notifications)
                return
            delay = min(FIRST_RETRY_S * 2 ** (message.attempts - 1), MAX_RETRY_S)
            if message.waited + delay > RETRY_WINDOW_S:
                self._log(
                    org,
                    action,
                    ids,
                    outcome="gave_up",
                    status=status,
                    error=error or "no ack",
                    attempt=message.attempts,
                )
                action.in_flight -= len(message.notifications)
                return
            self._log(
                org,
                action,
                ids,
                outcome="failed",
                status=status,
                error=error or "no ack",
                attempt=message.attempts,
            )
            message.waited += delay
        self._push(time.monotonic() + delay * scale, message)

    def _render(self, message: Message) -> bytes | None:
        """The SOAP message with each record's current values (under the lock)."""
        org, action = message.org, message.action
        spec = org.schema[action.object]
        kinds = {f.name: f.type for f in spec.fields}
        parts = []
        for notification_id, record_id in message.notifications:
            record = org.records[action.object].get(record_id)
            if record is None or record.deleted:
                continue
            cells = []
            for name in ["Id", *(f for f in action.fields if f != "Id")]:
                value = record.values.get(name)
                if value is None:
                    cells.append(f'<sf:{name} xsi:nil="true"/>')
                else:
                    cells.append(
                        f"<sf:{name}>{escape(_text(kinds.get(name, 'string'), value))}</sf:{name}>"
                    )
            parts.append(
                f"<Notification><Id>{notification_id}</Id>"
                f'<sObject xsi:type={quoteattr("sf:" + action.object)} xmlns:sf="{SOBJECT}">'
                + "".join(cells)
                + "</sObject></Notification>"
            )
        if not parts:
            return None
        org15 = org.org_id[:15]
        base = (org.instance_url or action.base_url).rstrip("/")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" '
            f'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="{XSI}">'
            f'<soapenv:Body><notifications xmlns="{OUTBOUND}">'
            f"<OrganizationId>{escape(org.org_id)}</OrganizationId>"
            f"<ActionId>{action.id}</ActionId>"
            '<SessionId xsi:nil="true"/>'
            f"<EnterpriseUrl>{escape(base)}/services/Soap/c/{SOAP_VERSION}/{escape(org15)}</EnterpriseUrl>"
            f"<PartnerUrl>{escape(base)}/services/Soap/u/{SOAP_VERSION}/{escape(org15)}</PartnerUrl>"
            + "".join(parts)
            + "</notifications></soapenv:Body></soapenv:Envelope>"
        ).encode()

    def _log(
        self,
        org: Org,
        action: Action,
        record_ids: list[str],
        *,
        outcome: str,
        status: int | None,
        error: str | None,
        attempt: int = 0,
    ) -> None:
        org.outbound_deliveries.append(
            {
                "action_id": action.id,
                "record_ids": record_ids,
                "attempt": attempt,
                "outcome": outcome,
                "status": status,
                "error": error,
                "at": time.time(),
            }
        )
