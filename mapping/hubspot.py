"""Canonical records -> HubSpot properties, and the HubSpot properties Tandem owns.

HubSpot reads and writes every property value as a string
(https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis), so every
value here is rendered to one:

- None -> "" (an empty value clears the HubSpot property),
- Decimal -> plain notation at the currency's precision ("1500", "12.345", never "1.5E+3"),
- datetime -> ISO-8601 UTC to the second, "2024-03-01T10:00:00Z",
- bool -> "true" / "false", enums -> their value, tags -> "a, b".

- date -> "2024-03-01".

The values themselves (deal name, stage, external ids, ...) come from ``mapping.crm``, as for
every CRM; this module adds HubSpot's rendering, stage ids, custom properties and schema.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from mapping import crm
from mapping.crm import (
    CrmSchema,
    contact_fields,
    line_item_fields,
    order_fields,
    stage_map,
)
from mapping.facts import (
    CURRENCY_FACT_TEXT,
    DATE_FACTS,
    FACT_TEXT,
    CurrencyFact,
    Fact,
    FactsNaming,
    midnight_utc_ms,
)
from mapping.fieldmap import (
    DEFAULT_CONTACT_FIELDS,
    DEFAULT_DEAL_FIELDS,
    DEFAULT_LINE_ITEM_FIELDS,
    HUBSPOT_KEYS,
    HUBSPOT_REQUIRED,
    FieldMap,
)
from mapping.models import (
    ConsentState,
    Customer,
    FinancialStatus,
    FulfillmentStatus,
    LineItem,
    Order,
)

DEFAULT_PIPELINE = "default"

# Stage ids of HubSpot's default sales pipeline ("default"):
# https://developers.hubspot.com/docs/api-reference/latest/crm/objects/deals/guide
DEFAULT_STAGE_MAP = stage_map(
    open_stage="contractsent", won="closedwon", lost="closedlost", unknown="appointmentscheduled"
)


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
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    raise TypeError(f"cannot render {type(value).__name__} as a HubSpot property value")


def contact_properties(
    customer: Customer, fields: FieldMap = DEFAULT_CONTACT_FIELDS
) -> dict[str, str]:
    """HubSpot contact properties for ``customer``; fields it did not carry are left out.

    Raises:
        FieldMapError: ``fields`` is not a contact field map.
    """
    return contact_fields(customer, fields, render=render)


def deal_stage(order: Order, stage_map: Mapping[str, str] = DEFAULT_STAGE_MAP) -> str:
    """The HubSpot stage id for ``order`` (see :func:`mapping.crm.deal_stage`)."""
    return crm.deal_stage(order, stage_map)


def deal_properties(
    order: Order,
    *,
    store_key: str,
    store_name: str,
    stage_map: Mapping[str, str] = DEFAULT_STAGE_MAP,
    pipeline: str = DEFAULT_PIPELINE,
    fields: FieldMap = DEFAULT_DEAL_FIELDS,
) -> dict[str, str]:
    """HubSpot deal properties for ``order`` (see :func:`mapping.crm.order_fields`).

    Raises:
        FieldMapError: ``fields`` is not a deal field map, or the stage map lacks the order's key.
        ValueError: empty ``store_key``.
    """
    return order_fields(
        order,
        fields,
        store_key=store_key,
        store_name=store_name,
        stage_map=stage_map,
        pipeline=pipeline,
        render=render,
    )


def line_item_properties(
    item: LineItem, order: Order, *, store_key: str, fields: FieldMap = DEFAULT_LINE_ITEM_FIELDS
) -> dict[str, str]:
    """HubSpot line-item properties for ``item`` of ``order``.

    Raises:
        FieldMapError: ``fields`` is not a line-item field map.
        ValueError: empty ``store_key``.
    """
    return line_item_fields(item, order, fields, store_key=store_key, render=render)


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


# ---------------------------------------------------------------------------------- commerce facts
# Contact properties Tandem creates for the commerce facts (mapping.facts), one set of money
# properties per currency the contact bought in: plain "number" properties whose currency is in
# their name (no currency formatting, which would imply one currency for the account), dates as
# "date" properties, which take midnight UTC (mapping.facts.midnight_utc_ms).
# Type/fieldType pairs: https://developers.hubspot.com/docs/api/crm/properties


def fact_property_definitions(currencies: Iterable[str]) -> tuple[PropertyDefinition, ...]:
    """The contact properties of the commerce facts for ``currencies`` (the contact-wide
    ones always), as ``HubSpotConnector.ensure_properties`` takes them under "contacts".

    Raises:
        ValueError: an unknown currency code.
    """
    out: list[PropertyDefinition] = []
    for fact in Fact:
        label, description = FACT_TEXT[fact]
        kind = "date" if fact in DATE_FACTS else "number"
        out.append(PropertyDefinition(FACTS.name(fact), label, kind, kind, description))
    for code in sorted(set(currencies)):
        for currency_fact in CurrencyFact:
            label, description = CURRENCY_FACT_TEXT[currency_fact]
            out.append(
                PropertyDefinition(
                    FACTS.currency_name(currency_fact, code),
                    label.format(currency=code),
                    "number",
                    "number",
                    description.format(currency=code),
                )
            )
    return tuple(out)


FACTS = FactsNaming(
    fields=types.MappingProxyType(
        {
            Fact.order_count: "tandem_order_count",
            Fact.first_order_date: "tandem_first_order_date",
            Fact.last_order_date: "tandem_last_order_date",
        }
    ),
    currency_fields=types.MappingProxyType(
        {
            CurrencyFact.order_count: "tandem_order_count_{currency}",
            CurrencyFact.total_spent: "tandem_total_spent_{currency}",
            CurrencyFact.average_order_value: "tandem_average_order_value_{currency}",
            CurrencyFact.refunds: "tandem_refunds_{currency}",
        }
    ),
    # HubSpot property names are lower case.
    currency_case=str.lower,
    render_date=midnight_utc_ms,
    definitions=fact_property_definitions,
)


SCHEMA = CrmSchema(
    platform="hubspot",
    title="HubSpot",
    contact_object="contacts",
    order_object="deals",
    line_item_object="line_items",
    email_field="email",
    first_name_field="firstname",
    last_name_field="lastname",
    order_key="tandem_order_id",
    line_item_key="tandem_line_item_id",
    contact_fields=DEFAULT_CONTACT_FIELDS,
    order_fields=DEFAULT_DEAL_FIELDS,
    line_item_fields=DEFAULT_LINE_ITEM_FIELDS,
    stage_map=DEFAULT_STAGE_MAP,
    pipeline=DEFAULT_PIPELINE,
    render=render,
    required=HUBSPOT_REQUIRED,
    fixed=HUBSPOT_KEYS,
    custom_fields=types.MappingProxyType(
        {kind: tuple(d.name for d in defs) for kind, defs in CUSTOM_PROPERTIES.items()}
    ),
    facts=FACTS,
)
