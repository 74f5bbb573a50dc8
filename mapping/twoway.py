"""Contact fields that sync both ways: how each side's value is compared, and what a CRM value
becomes when it is written back to a store.

Values are compared as the CRM holds them: the store side is rendered with the connection's own
contact field map (exactly what Tandem would write), the CRM side is read from the record, and
both are passed through :func:`comparable`, which removes differences no person made (an empty
string for a cleared field, surrounding blanks, the order of tags). Comparing rendered values
rather than parsing CRM strings back first means a value Tandem wrote always compares equal
when it comes back: the basis of echo suppression.

A ledger field is a field map's *source path* (``first_name``, ``derived.street_address``,
``consent.email`` ...). :data:`WRITE_BACK` says which of them a store can take back and which
store attributes each one sets; :func:`store_patch` turns CRM values into those attributes.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mapping.crm import LAST_NAME_PLACEHOLDER, CrmSchema
from mapping.fieldmap import FieldMap
from mapping.normalise import normalise_country, normalise_phone, to_utc

# Source path -> the store attributes writing it back sets (the vocabulary of
# ``write_customers`` patches). Derived paths stand for the attributes they are made of: the
# CRM's one street line becomes line1 (and clears line2, which it already contains); a
# required last name that is Tandem's placeholder clears the store's last name.
WRITE_BACK: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "first_name": ("first_name",),
        "last_name": ("last_name",),
        "derived.last_name_required": ("last_name",),
        "phone": ("phone",),
        "note": ("note",),
        "tags": ("tags",),
        "consent.email": ("consent.email",),
        "derived.street_address": ("default_address.line1", "default_address.line2"),
        "default_address.line1": ("default_address.line1",),
        "default_address.city": ("default_address.city",),
        "default_address.postal_code": ("default_address.postal_code",),
        "default_address.country_code": ("default_address.country_code",),
    }
)

POLICIES = ("store", "crm", "latest")
DEFAULT_POLICY = "latest"


class WriteBackError(ValueError):
    """A CRM value the store cannot take (a phone number that is not one, an unknown country)."""


def comparable(path: str, value: Any) -> Any:
    """``value`` (as a CRM holds it) in the form both sides are compared in: JSON, no blanks,
    tags sorted. Empty means None: CRMs answer a cleared field with "" or null alike."""
    if value is None:
        return None
    if isinstance(value, bool | int | float):
        value = str(value).lower() if isinstance(value, bool) else str(value)
    if not isinstance(value, str):
        value = str(value)
    text = value.strip()
    if not text:
        return None
    if path == "tags":
        tags = sorted({tag.strip() for tag in text.split(",") if tag.strip()})
        return ", ".join(tags) or None
    if path == "default_address.country_code":
        # As the store will hold it: "United States" and "us" are "US" (mapping.normalise).
        return normalise_country(text) or text.upper()
    if path == "phone":
        # E.164 where the text says which country ("+1 415 555 0123"); a national number
        # stays as typed (the store gets it in E.164 with the connection's default region).
        return normalise_phone(text, None) or text
    if path == "consent.email":
        return text.lower()
    return text


def two_way_paths(
    fields: FieldMap, writable: Iterable[str], wanted: Iterable[str] | None
) -> tuple[str, ...]:
    """The source paths of ``fields`` that sync both ways for a connection: in its contact
    field map, writable back by its store (every attribute they set is in ``writable``), and
    in ``wanted`` (the connection's ``two_way_fields``; None means all that qualify)."""
    can = set(writable)
    chosen = None if wanted is None else set(wanted)
    out = []
    for path in dict.fromkeys(fields.values()):
        if path not in WRITE_BACK or not set(WRITE_BACK[path]) <= can:
            continue
        if chosen is not None and path not in chosen:
            continue
        out.append(path)
    return tuple(out)


def crm_values(fields: FieldMap, props: Mapping[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    """The comparable values of ``paths`` in CRM-named properties: a CRM record's, or what
    Tandem renders for a store customer (``CrmSchema.contact``). A property not there is
    absent, not None: a payload that did not carry a field says nothing about it."""
    wanted = set(paths)
    return {
        path: comparable(path, props[prop])
        for prop, path in fields.items()
        if path in wanted and prop in props
    }


def held(values: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The comparable values the store holds once ``patch`` (made by :func:`store_patch`
    from ``values``) is written: its echo compares equal to these."""
    out: dict[str, Any] = {}
    for path, value in values.items():
        if path == "derived.street_address":
            out[path] = comparable(path, patch["default_address.line1"])
        elif path == "derived.last_name_required":
            out[path] = comparable(path, patch["last_name"] or LAST_NAME_PLACEHOLDER)
        elif path == "tags":
            out[path] = comparable(path, ", ".join(patch["tags"]))
        elif path in ("phone", "default_address.country_code"):
            (attribute,) = WRITE_BACK[path]
            out[path] = comparable(path, patch[attribute])
        else:
            out[path] = value
    return out


def crm_props(fields: FieldMap, schema: CrmSchema, values: Mapping[str, Any]) -> dict[str, Any]:
    """CRM properties carrying ``values`` (comparable values by source path), rendered for the
    CRM: what Tandem writes when the store's value wins."""
    out: dict[str, Any] = {}
    for prop, path in fields.items():
        if path in values:
            out[prop] = schema.render(values[path])
    return out


def store_patch(values: Mapping[str, Any], *, default_region: str | None = None) -> dict[str, Any]:
    """Store attributes (the ``write_customers`` vocabulary) for CRM ``values`` by source path.

    Raises:
        WriteBackError: a value the store cannot take; the message names the field.
    """
    patch: dict[str, Any] = {}
    for path, value in values.items():
        if path not in WRITE_BACK:
            raise WriteBackError(f"{path} is not a field Tandem writes back to a store")
        if path == "derived.street_address":
            patch["default_address.line1"] = value
            patch["default_address.line2"] = None
        elif path == "derived.last_name_required":
            patch["last_name"] = None if value == LAST_NAME_PLACEHOLDER else value
        elif path == "tags":
            patch["tags"] = tuple(t.strip() for t in (value or "").split(",") if t.strip())
        elif path == "phone":
            phone = normalise_phone(value, default_region) if value else None
            if value and phone is None:
                raise WriteBackError(f"phone {value!r} is not a phone number the store accepts")
            patch["phone"] = phone
        elif path == "default_address.country_code":
            country = normalise_country(value) if value else None
            if value and country is None:
                raise WriteBackError(f"country {value!r} is not a known country")
            patch["default_address.country_code"] = country
        elif path == "consent.email":
            patch["consent.email"] = value  # checked by the store's vocabulary (writeback)
        else:
            (attribute,) = WRITE_BACK[path]
            patch[attribute] = value
    return patch


# ---------------------------------------------------------------------------------- CRM records


@dataclass(frozen=True)
class CrmContact:
    """A CRM contact as read back: its properties by CRM name, when and by whom it last changed."""

    id: str
    modified_at: datetime | None
    modified_by: str | None
    props: Mapping[str, Any]
    # The time polling filters on, when it is not ``modified_at`` (Salesforce's SystemModstamp
    # also moves on system changes, and changed_since pages by it).
    polled_at: datetime | None = None

    @property
    def poll_time(self) -> datetime | None:
        return self.polled_at or self.modified_at


def _hubspot_time(value: Any) -> datetime | None:
    # Date properties come as ISO strings or as epoch-ms strings (api-crms.md 1.7).
    if isinstance(value, str) and value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    return to_utc(value) if value else None


def _hubspot(record: Mapping[str, Any]) -> CrmContact:
    # SimplePublicObject: {id, properties{...}, updatedAt} (api-crms.md 1.7); lastmodifieddate
    # is the contact's own modification time and is what polling filters on.
    props = dict(record.get("properties") or {})
    return CrmContact(
        id=str(record.get("id")),
        modified_at=_hubspot_time(props.get("lastmodifieddate") or record.get("updatedAt")),
        modified_by=None,
        props=props,
    )


def _zoho(record: Mapping[str, Any]) -> CrmContact:
    modifier = record.get("Modified_By")
    return CrmContact(
        id=str(record.get("id")),
        modified_at=to_utc(record.get("Modified_Time")),
        modified_by=str(modifier.get("id")) if isinstance(modifier, Mapping) else None,
        props=dict(record),
    )


def _salesforce(record: Mapping[str, Any]) -> CrmContact:
    stamp = record.get("LastModifiedDate") or record.get("SystemModstamp")
    system = record.get("SystemModstamp")
    return CrmContact(
        id=str(record.get("Id")),
        modified_at=to_utc(stamp) if stamp else None,
        modified_by=record.get("LastModifiedById"),
        props=dict(record),
        polled_at=to_utc(system) if system else None,
    )


# How each CRM's contact records read back, and the fields to ask for besides the mapped ones.
CONTACT_READERS: Mapping[str, tuple[Callable[[Mapping[str, Any]], CrmContact], tuple[str, ...]]] = (
    types.MappingProxyType(
        {
            "hubspot": (_hubspot, ("lastmodifieddate",)),
            "zoho": (_zoho, ("Modified_Time", "Modified_By")),
            "salesforce": (_salesforce, ("LastModifiedDate", "LastModifiedById")),
        }
    )
)


def read_contact(platform: str, record: Mapping[str, Any]) -> CrmContact:
    """One CRM contact record (as the connector returns it) as a :class:`CrmContact`."""
    reader, _ = CONTACT_READERS[platform]
    return reader(record)
