"""What a CRM's change notification means: which contacts changed, were deleted or merged.

The receivers in ``webhooks/`` store each delivery as the platform sent it (one inbox row per
HubSpot event, per Zoho callback, per Salesforce outbound-message notification); the worker
reads them through :func:`read`. A new CRM adds its reader here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

CREATED = "*created*"  # the hint's property for "this record was created" (no value)


@dataclass(frozen=True)
class Notice:
    """One CRM notification about contacts.

    ``action``: "changed" (re-read the records, or use ``record`` when the notification carries
    the whole current record: Salesforce outbound messages), "deleted", or "merged" (``ids``
    were merged into ``into``). ``hint``: for a single-property change, (property, value,
    change source) as the platform reported it, used to skip a re-read when the ledger agrees
    it is Tandem's own write.
    """

    action: str
    ids: tuple[str, ...]
    record: Mapping[str, Any] | None = None
    into: str | None = None
    hint: tuple[str, Any, str | None] | None = None


def _hubspot(topic: str, payload: Mapping[str, Any], change_source: str | None) -> list[Notice]:
    # https://developers.hubspot.com/docs/api/webhooks (api-crms.md 1.6): contact.* events
    # carry objectId; propertyChange also propertyName/propertyValue; merge adds
    # primaryObjectId and mergedObjectIds.
    kind = topic.removeprefix("contact.")
    if not topic.startswith("contact.") or payload.get("objectId") is None:
        return []
    object_id = str(payload["objectId"])
    if kind == "creation":
        # A creation carries no values: its hint says only who made it (CREATED).
        return [Notice("changed", (object_id,), hint=(CREATED, None, change_source))]
    if kind == "restore":
        return [Notice("changed", (object_id,))]
    if kind == "propertyChange":
        hint = (str(payload.get("propertyName")), payload.get("propertyValue"), change_source)
        return [Notice("changed", (object_id,), hint=hint)]
    if kind in ("deletion", "privacyDeletion"):
        return [Notice("deleted", (object_id,))]
    if kind == "merge":
        primary = str(payload.get("primaryObjectId") or object_id)
        merged = tuple(str(i) for i in payload.get("mergedObjectIds") or () if str(i) != primary)
        return [Notice("merged", merged, into=primary), Notice("changed", (primary,))]
    return []


def _zoho(topic: str, payload: Mapping[str, Any], change_source: str | None) -> list[Notice]:
    # Watch callbacks: {module, operation, ids, ...} (api-crms.md 3.6); ids only.
    module, _, operation = topic.partition(".")
    ids = tuple(str(i) for i in payload.get("ids") or ())
    if module != "Contacts" or not ids:
        return []
    return [Notice("deleted" if operation == "delete" else "changed", ids)]


def _salesforce(topic: str, payload: Mapping[str, Any], change_source: str | None) -> list[Notice]:
    # An outbound message notification carries the record's current selected fields
    # (api-crms.md 2.6), so it is used as read, without another call.
    sobject = payload.get("sobject") or {}
    if topic != "Contact.outbound" or not sobject.get("Id"):
        return []
    return [Notice("changed", (str(sobject["Id"]),), record=sobject)]


READERS: Mapping[str, Callable[[str, Mapping[str, Any], str | None], list[Notice]]] = {
    "hubspot": _hubspot,
    "zoho": _zoho,
    "salesforce": _salesforce,
}


def read(
    platform: str, topic: str, payload: Mapping[str, Any], change_source: str | None
) -> list[Notice]:
    """The notices in one stored CRM delivery; [] for a topic two-way sync does not use."""
    reader = READERS.get(platform)
    return reader(topic, payload, change_source) if reader else []
