"""POST /webhooks/salesforce/<connection_id>?key=... — Salesforce outbound messages.

Facts (shared/reference/api-crms.md section 2.6 [SF-OM]; the WSDL at
https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_wsdl.htm):

- A SOAP 1.1 ``notifications`` message (namespace http://soap.sforce.com/2005/09/outbound):
  ``OrganizationId``, ``ActionId``, ``SessionId`` (nillable), ``EnterpriseUrl``, ``PartnerUrl``
  and 1..100 ``Notification`` elements, each an ``Id`` (the notification's, the dedupe key:
  a message may come more than once) and an ``sObject`` of ``xsi:type`` ``sf:<Type>`` holding
  the fields the admin selected, with the record's data as of sending, not a diff.
- The listener answers ``notificationsResponse`` with ``<Ack>true</Ack>``; anything else makes
  Salesforce retry with growing intervals for 24 hours. So the ack is sent only after the
  transaction committed, and a failure to store answers 500: Salesforce sends it again.
- Outbound messages are not signed (Salesforce offers a client certificate for mutual TLS,
  which is the proxy's business, not this app's). Two checks stand in: the message's
  ``OrganizationId`` must be the connection's org (ids are 15 characters, case-sensitive; the
  18-character form appends a checksum, so the first 15 are compared), and the endpoint URL
  Tandem gives the admin carries a per-connection secret ``?key=`` (credential side "crm",
  kind ``webhook_token``; see sync.channels.salesforce_endpoint), compared in constant time.
- XML is parsed with defusedxml, DTDs refused: no entity expansion, no external fetches.
"""

from __future__ import annotations

import hmac
import logging
from datetime import UTC, datetime
from typing import Any
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree
from flask import Response, current_app, request

from sync import inbox
from sync.db import transaction
from webhooks.receiving import Rejected, raw_body

log = logging.getLogger("tandem.webhooks")

PLATFORM = "salesforce"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND = "http://soap.sforce.com/2005/09/outbound"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
MAX_NOTIFICATIONS = 100  # maxOccurs of Notification in the outbound-message WSDL

ACK = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
    f'<notificationsResponse xmlns="{OUTBOUND}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body></soapenv:Envelope>"
)


def _soap(body: str, status: int) -> Response:
    return Response(body, status=status, content_type="text/xml; charset=utf-8")


def fault(status: int, message: str) -> Response:
    """A SOAP 1.1 fault: ``Client`` for what the sender must change, ``Server`` for ours."""
    code = "soapenv:Server" if status >= 500 else "soapenv:Client"
    return _soap(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        status,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(parent: Element, name: str) -> Element | None:
    return parent.find(f"{{{OUTBOUND}}}{name}")


def _value(element: Element) -> Any:
    """A field's value: None when ``xsi:nil``, a dict for a nested element, else its text."""
    if element.get(f"{{{XSI}}}nil") == "true":
        return None
    children = list(element)
    if children:
        return {_local(c.tag): _value(c) for c in children}
    return element.text or ""


def parse(body: bytes) -> dict[str, Any]:
    """The message as ``{organization_id, action_id, notifications: [{id, type, fields}]}``.

    Raises Rejected(400) for XML that is malformed, carries a DTD, or is not an outbound
    ``notifications`` message.
    """
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True)
    except (ParseError, defusedxml.DefusedXmlException, ValueError) as exc:
        raise Rejected(400, f"not a well-formed XML document without a DTD: {exc}") from None
    body_element = (
        root.find(f"{{{SOAP_ENV}}}Body") if root.tag == f"{{{SOAP_ENV}}}Envelope" else None
    )
    message = (
        body_element.find(f"{{{OUTBOUND}}}notifications") if body_element is not None else None
    )
    if message is None:
        raise Rejected(400, "not a SOAP 1.1 envelope holding an outbound notifications message")
    organization = _child(message, "OrganizationId")
    action = _child(message, "ActionId")
    if organization is None or not (organization.text or "").strip():
        raise Rejected(400, "OrganizationId is missing")
    notifications = message.findall(f"{{{OUTBOUND}}}Notification")
    if not notifications:
        raise Rejected(400, "the message has no Notification")
    if len(notifications) > MAX_NOTIFICATIONS:
        raise Rejected(400, f"{len(notifications)} notifications; at most {MAX_NOTIFICATIONS}")
    out = []
    for index, notification in enumerate(notifications):
        notification_id = _child(notification, "Id")
        sobject = _child(notification, "sObject")
        text = (notification_id.text or "").strip() if notification_id is not None else ""
        if not text or len(text) > 40 or sobject is None:
            raise Rejected(400, f"Notification {index} needs an Id and an sObject")
        kind = _local(sobject.get(f"{{{XSI}}}type", "")).rsplit(":", 1)[-1]
        if not kind or len(kind) > 80:
            raise Rejected(400, f"Notification {index}: the sObject has no xsi:type")
        fields = {_local(f.tag): _value(f) for f in sobject}
        out.append({"id": text, "type": kind, "fields": fields})
    return {
        "organization_id": organization.text.strip(),
        "action_id": (action.text or "").strip() if action is not None else None,
        "notifications": out,
    }


def same_org(received: str, expected: str) -> bool:
    """Whether two Salesforce org ids name one org: the 15-character ids are case-sensitive
    and the 18-character form only adds a checksum, so the first 15 characters decide."""
    a, b = received.strip()[:15], expected.strip()[:15]
    return bool(a) and hmac.compare_digest(a.encode(), b.encode())


def _modified_at(fields: dict[str, Any]) -> datetime | None:
    """LastModifiedDate (or SystemModstamp) as UTC: SOAP dateTimes look like
    ``2026-05-20T20:49:32.000Z``."""
    for name in ("LastModifiedDate", "SystemModstamp"):
        value = fields.get(name)
        if isinstance(value, str) and value:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def receive(connection_id: int):
    tandem = current_app.extensions["tandem"]
    try:
        body = raw_body()
        key = request.args.get("key", "")
        with transaction(tandem.sessions) as session:
            found = inbox.crm_channel_token(session, tandem.vault, PLATFORM, connection_id)
        # One answer for "no such connection" and "wrong key": a caller learns nothing.
        if found is None or not key or not hmac.compare_digest(key.encode(), found[1].encode()):
            raise Rejected(401, "invalid or missing key")
        connection = found[0]
        message = parse(body)
        if not same_org(message["organization_id"], connection.crm_account):
            raise Rejected(401, "OrganizationId is not this connection's org")
    except Rejected as rejected:
        return fault(rejected.status, rejected.message)

    try:
        jobs: list[int] = []
        with transaction(tandem.sessions) as session:
            for notification in message["notifications"]:
                fields = notification["fields"]
                modified_by = fields.get("LastModifiedById")
                recorded = inbox.record_crm(
                    session,
                    platform=PLATFORM,
                    delivery_id=notification["id"],
                    account=connection.crm_account,
                    topic=f"{notification['type']}.outbound",
                    payload={
                        "sobject": fields,
                        "action_id": message["action_id"],
                        "organization_id": message["organization_id"],
                    },
                    connection_id=connection.id,
                    event_id=notification["id"],
                    triggered_at=_modified_at(fields),
                    change_source=modified_by if isinstance(modified_by, str) else None,
                )
                jobs.extend(r.job_id for r in recorded if r.job_id is not None)
    except Exception:
        # No ack: Salesforce keeps the message and sends it again (SF-OM).
        log.exception("salesforce outbound message for connection %s not stored", connection_id)
        return fault(500, "the message could not be stored; send it again")
    for job_id in dict.fromkeys(jobs):
        tandem.queue.submit_quietly(job_id)
    return _soap(ACK, 200)
