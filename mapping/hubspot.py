"""Canonical records -> HubSpot properties, and the HubSpot properties Tandem owns.

HubSpot reads and writes every property value as a string
(https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis), so every
value here is rendered to one:

- None -> "" (an empty value clears the HubSpot property),
- Decimal -> plain notation at the currency's precision ("1500", "12.345", never "1.5E+3"),
- datetime -> ISO-8601 UTC to the second, "2024-03-01T10:00:00Z",
- bool -> "true" / "false", enums -> their value, tags -> "a, b".

A Customer field the source payload did not carry (``Customer.missing``) is left out of the
properties altogether, so the write leaves HubSpot's value alone instead of clearing it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from mapping.fieldmap import (
    DEFAULT_CONTACT_FIELDS,
    DEFAULT_DEAL_FIELDS,
    DEFAULT_LINE_ITEM_FIELDS,
    FieldMap,
    FieldMapError,
)
from mapping.models import (
    ConsentState,
    Customer,
    FinancialStatus,
    FulfillmentStatus,
    LineItem,
    Order,
)
from mapping.normalise import money

# The stage key of an order that was cancelled, whatever its financial status.
CANCELLED = "cancelled"

DEFAULT_PIPELINE = "default"

# Stage ids of HubSpot's default sales pipeline ("default"):
# https://developers.hubspot.com/docs/api-reference/latest/crm/objects/deals/guide
DEFAULT_STAGE_MAP: Mapping[str, str] = types.MappingProxyType(
    {
        FinancialStatus.pending: "contractsent",
        FinancialStatus.authorized: "contractsent",
        FinancialStatus.partially_paid: "contractsent",
        FinancialStatus.paid: "closedwon",
        FinancialStatus.partially_refunded: "closedwon",
        FinancialStatus.refunded: "closedlost",
        FinancialStatus.voided: "closedlost",
        FinancialStatus.expired: "closedlost",
        FinancialStatus.unknown: "appointmentscheduled",
        CANCELLED: "closedlost",
    }
)


def stage_key(value: str) -> str:
    """The stage-map key for a configured name: a FinancialStatus value or ``"cancelled"``.

    Raises:
        FieldMapError: any other name (the message lists the valid ones).
    """
    if value == CANCELLED:
        return CANCELLED
    try:
        return FinancialStatus(value)
    except ValueError:
        valid = ", ".join([*FinancialStatus, CANCELLED])
        raise FieldMapError(f"unknown stage-map key {value!r}; valid keys: {valid}") from None


def apply_stage_overrides(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """``base`` with a connection's ``{key: stage_id}`` overrides applied (keys as stage_key).

    Raises:
        FieldMapError: an unknown key or an empty stage id.
    """
    stages = dict(base)
    for key, stage in overrides.items():
        if not isinstance(stage, str) or not stage.strip():
            raise FieldMapError(f"stage for {key!r} must be a HubSpot stage id, got {stage!r}")
        stages[stage_key(key)] = stage.strip()
    return stages


# ---------------------------------------------------------------------------------- rendering


def render(value: Any) -> str:
    """A canonical value as the string HubSpot stores (see the module docstring).

    Raises:
        TypeError: a value that is not a single canonical value (a model, a list of records).
        ValueError: a datetime without a timezone.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        # "f" never uses exponent notation; -0 would read oddly in a CRM.
        return format(value.copy_abs() if value.is_zero() else value, "f")
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"refusing to guess the timezone of {value!r}")
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    raise TypeError(f"cannot render {type(value).__name__} as a HubSpot property value")


def _resolve(root: Any, path: str) -> Any:
    value = root
    for part in path.split("."):
        if value is None:
            return None
        value = getattr(value, part)
    return value


def _is_missing(path: str, missing: tuple[str, ...], depends_on: Mapping[str, str]) -> bool:
    path = depends_on.get(path, path)
    return any(path == gap or path.startswith(f"{gap}.") for gap in missing)


def _properties(
    root: Any,
    fields: FieldMap,
    entity: str,
    derived: Mapping[str, Callable[[], Any]],
    skip: Callable[[str], bool] = lambda path: False,
) -> dict[str, str]:
    if fields.entity != entity:
        raise FieldMapError(f"expected a {entity} field map, got one for {fields.entity}")
    properties: dict[str, str] = {}
    for prop, path in fields.items():
        if skip(path):
            continue
        value = derived[path]() if path in derived else _resolve(root, path)
        properties[prop] = render(value)
    return properties


def _require_store_key(store_key: str) -> None:
    if not store_key:
        raise ValueError("store_key is required: it prefixes Tandem's external ids")


# ---------------------------------------------------------------------------------- contacts

_CONTACT_DEPENDS_ON = {"derived.street_address": "default_address"}


def _street_address(customer: Customer) -> str | None:
    address = customer.default_address
    if address is None:
        return None
    return ", ".join(line for line in (address.line1, address.line2) if line) or None


def contact_properties(
    customer: Customer, fields: FieldMap = DEFAULT_CONTACT_FIELDS
) -> dict[str, str]:
    """HubSpot contact properties for ``customer``; fields it did not carry are left out.

    Raises:
        FieldMapError: ``fields`` is not a contact field map.
    """
    return _properties(
        customer,
        fields,
        "contact",
        {"derived.street_address": lambda: _street_address(customer)},
        skip=lambda path: _is_missing(path, customer.missing, _CONTACT_DEPENDS_ON),
    )


# ---------------------------------------------------------------------------------- deals


def order_external_id(store_key: str, order: Order) -> str:
    """The deal's unique upsert key: ``"<store_key>:order:<source_id>"``."""
    _require_store_key(store_key)
    return f"{store_key}:order:{order.source_id}"


def deal_stage(order: Order, stage_map: Mapping[str, str] = DEFAULT_STAGE_MAP) -> str:
    """The HubSpot stage id for ``order``: a cancelled order is "cancelled", else by status.

    Raises:
        FieldMapError: the stage map has no stage for the order's key.
    """
    key = CANCELLED if order.cancelled_at is not None else order.financial_status
    try:
        return stage_map[key]
    except KeyError:
        raise FieldMapError(f"the stage map has no stage for {str(key)!r}") from None


def deal_properties(
    order: Order,
    *,
    store_key: str,
    store_name: str,
    stage_map: Mapping[str, str] = DEFAULT_STAGE_MAP,
    pipeline: str = DEFAULT_PIPELINE,
    fields: FieldMap = DEFAULT_DEAL_FIELDS,
) -> dict[str, str]:
    """HubSpot deal properties for ``order``.

    ``store_key`` (e.g. "shopify:acme.myshopify.com") prefixes the external id; ``store_name``
    ends the deal name.

    Raises:
        FieldMapError: ``fields`` is not a deal field map, or the stage map lacks the order's key.
        ValueError: empty ``store_key``.
    """
    _require_store_key(store_key)
    deal_name = f"Order {order.name or order.source_id}"
    if store_name:
        deal_name = f"{deal_name} · {store_name}"
    derived: dict[str, Callable[[], Any]] = {
        "derived.deal_name": lambda: deal_name,
        "derived.deal_stage": lambda: deal_stage(order, stage_map),
        "derived.pipeline": lambda: pipeline,
        "derived.external_id": lambda: order_external_id(store_key, order),
        "derived.close_date": lambda: order.processed_at or order.created_at,
    }
    return _properties(order, fields, "deal", derived)


# ---------------------------------------------------------------------------------- line items


def line_item_external_id(store_key: str, item: LineItem) -> str:
    """The line item's unique upsert key: ``"<store_key>:line_item:<source_id>"``."""
    _require_store_key(store_key)
    return f"{store_key}:line_item:{item.source_id}"


def _line_name(item: LineItem) -> str | None:
    parts = [part for part in (item.title, item.variant_title) if part]
    return " - ".join(parts) or None


def _unit_discount(item: LineItem) -> Decimal:
    """Per-unit discount, rounded half-to-even to the currency; never negative."""
    if item.quantity <= 0:
        return money(0, item.unit_price.currency).amount
    gross = item.unit_price.amount * item.quantity
    per_unit = max(gross - item.total.amount, Decimal(0)) / item.quantity
    return money(per_unit, item.unit_price.currency).amount


class _LineItemView:
    """What line-item paths resolve against: the item's attributes plus ``order``."""

    def __init__(self, item: LineItem, order: Order) -> None:
        self._item = item
        self.order = order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


def line_item_properties(
    item: LineItem, order: Order, *, store_key: str, fields: FieldMap = DEFAULT_LINE_ITEM_FIELDS
) -> dict[str, str]:
    """HubSpot line-item properties for ``item`` of ``order``.

    Raises:
        FieldMapError: ``fields`` is not a line-item field map.
        ValueError: empty ``store_key``.
    """
    _require_store_key(store_key)
    derived: dict[str, Callable[[], Any]] = {
        "derived.name": lambda: _line_name(item),
        "derived.external_id": lambda: line_item_external_id(store_key, item),
        "derived.unit_discount": lambda: _unit_discount(item),
    }
    return _properties(_LineItemView(item, order), fields, "line_item", derived)


# ---------------------------------------------------------------------------------- schema

PROPERTY_GROUP = "tandem"


@dataclass(frozen=True)
class PropertyDefinition(Mapping[str, Any]):
    """A HubSpot custom property Tandem creates at connect time, in the Properties API's terms:
    https://developers.hubspot.com/docs/api/crm/properties (type and fieldType must agree:
    string/text|textarea, number/number, enumeration/select).

    It reads as the create request body (``definition["name"]``, ``dict(definition)``), so a
    connector can send it as it is.
    """

    name: str
    label: str
    type: str
    field_type: str
    description: str
    has_unique_value: bool = False
    options: tuple[str, ...] = ()

    def payload(self) -> dict[str, Any]:
        """The request body for ``POST /crm/v3/properties/{objectType}`` (a fresh dict)."""
        body: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": PROPERTY_GROUP,
            "description": self.description,
        }
        if self.has_unique_value:
            body["hasUniqueValue"] = True
        if self.options:
            body["options"] = [
                {"label": value.replace("_", " ").capitalize(), "value": value, "displayOrder": i}
                for i, value in enumerate(self.options)
            ]
        return body

    def __getitem__(self, key: str) -> Any:
        return self.payload()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.payload())

    def __len__(self) -> int:
        return len(self.payload())


def property_group_payload() -> dict[str, Any]:
    """The request body for ``POST /crm/v3/properties/{objectType}/groups``."""
    return {"name": PROPERTY_GROUP, "label": "Tandem", "displayOrder": -1}


def _choice(name: str, label: str, description: str, values: tuple[str, ...]) -> PropertyDefinition:
    return PropertyDefinition(name, label, "enumeration", "select", description, options=values)


_CONSENT_VALUES = tuple(state.value for state in ConsentState)

# Keyed by HubSpot object type as it appears in API paths.
CUSTOM_PROPERTIES: Mapping[str, tuple[PropertyDefinition, ...]] = types.MappingProxyType(
    {
        "contacts": (
            _choice(
                "tandem_email_consent",
                "Email marketing consent (store)",
                "Email marketing consent as the store last reported it.",
                _CONSENT_VALUES,
            ),
            _choice(
                "tandem_sms_consent",
                "SMS marketing consent (store)",
                "SMS marketing consent as the store last reported it.",
                _CONSENT_VALUES,
            ),
            PropertyDefinition(
                "tandem_customer_tags",
                "Store customer tags",
                "string",
                "textarea",
                "The customer's tags in the store, comma-separated.",
            ),
        ),
        "deals": (
            PropertyDefinition(
                "tandem_order_id",
                "Store order id (Tandem)",
                "string",
                "text",
                "Tandem's unique key for the store order this deal mirrors.",
                has_unique_value=True,
            ),
            PropertyDefinition(
                "tandem_order_number",
                "Store order number",
                "string",
                "text",
                "The order's name in the store, e.g. #1001.",
            ),
            _choice(
                "tandem_financial_status",
                "Store financial status",
                "The order's payment status in the store.",
                tuple(status.value for status in FinancialStatus),
            ),
            _choice(
                "tandem_fulfillment_status",
                "Store fulfillment status",
                "The order's fulfillment status in the store.",
                tuple(status.value for status in FulfillmentStatus),
            ),
            PropertyDefinition(
                "tandem_refunded_amount",
                "Store refunded amount",
                "number",
                "number",
                "Total refunded on the order, in the deal's currency.",
            ),
        ),
        "line_items": (
            PropertyDefinition(
                "tandem_line_item_id",
                "Store line item id (Tandem)",
                "string",
                "text",
                "Tandem's unique key for the store order line this line item mirrors.",
                has_unique_value=True,
            ),
            PropertyDefinition(
                "tandem_line_total",
                "Store line total",
                "number",
                "number",
                "The line's total after its discounts, exactly as the store reports it.",
            ),
        ),
    }
)
