"""Canonical models and pure mapping functions: store payloads in, CRM properties out.

No I/O, no clock, no configuration; nothing else of Tandem's is imported here.
"""

from __future__ import annotations

from mapping import hubspot, salesforce, shopify, zoho
from mapping.crm import (
    CANCELLED,
    CrmSchema,
    apply_stage_overrides,
    line_item_external_id,
    order_external_id,
    render_json,
    stage_key,
)
from mapping.currency import CURRENCIES, exponent
from mapping.fieldmap import (
    DEFAULT_CONTACT_FIELDS,
    DEFAULT_DEAL_FIELDS,
    DEFAULT_LINE_ITEM_FIELDS,
    ENTITIES,
    FieldMap,
    FieldMapError,
    apply_overrides,
    source_paths,
)
from mapping.hubspot import (
    CUSTOM_PROPERTIES,
    DEFAULT_PIPELINE,
    DEFAULT_STAGE_MAP,
    PROPERTY_GROUP,
    PropertyDefinition,
    contact_properties,
    deal_properties,
    deal_stage,
    line_item_properties,
    property_group_payload,
    render,
)
from mapping.models import (
    Address,
    ConsentState,
    Customer,
    FinancialStatus,
    FulfillmentStatus,
    LineItem,
    MappingError,
    MarketingConsent,
    Money,
    Order,
)
from mapping.normalise import (
    money,
    normalise_country,
    normalise_email,
    normalise_phone,
    to_utc,
)
from mapping.shopify import (
    customer_from_graphql,
    customer_from_rest,
    legacy_id,
    order_from_graphql,
    order_from_rest,
)

# Every CRM Tandem writes to, by platform name (each with its default order shape).
CRM_SCHEMAS: dict[str, CrmSchema] = {
    "hubspot": hubspot.SCHEMA,
    "zoho": zoho.SCHEMA,
    "salesforce": salesforce.SCHEMA,
}
# The order shapes a connection may choose instead (setting ``orders_as``).
ORDER_SHAPES: dict[str, dict[str, CrmSchema]] = {
    "hubspot": {"deals": hubspot.SCHEMA},
    "zoho": zoho.ORDER_SCHEMAS,
    "salesforce": salesforce.ORDER_SCHEMAS,
}


def crm_schema(platform: str, orders_as: str | None = None) -> CrmSchema:
    """The schema of ``platform`` with orders kept as ``orders_as`` (None: the default).

    Raises:
        FieldMapError: an unknown CRM or order shape (the message lists the valid ones).
    """
    shapes = ORDER_SHAPES.get(platform)
    if shapes is None:
        raise FieldMapError(f"unknown CRM {platform!r}; one of {', '.join(ORDER_SHAPES)}")
    if orders_as is None:
        return CRM_SCHEMAS[platform]
    if orders_as not in shapes:
        raise FieldMapError(
            f"{CRM_SCHEMAS[platform].title} keeps orders as one of {', '.join(shapes)}, "
            f"not {orders_as!r}"
        )
    return shapes[orders_as]


__all__ = [
    "CANCELLED",
    "CRM_SCHEMAS",
    "CURRENCIES",
    "CUSTOM_PROPERTIES",
    "DEFAULT_CONTACT_FIELDS",
    "DEFAULT_DEAL_FIELDS",
    "DEFAULT_LINE_ITEM_FIELDS",
    "DEFAULT_PIPELINE",
    "DEFAULT_STAGE_MAP",
    "ENTITIES",
    "ORDER_SHAPES",
    "PROPERTY_GROUP",
    "Address",
    "ConsentState",
    "CrmSchema",
    "Customer",
    "FieldMap",
    "FieldMapError",
    "FinancialStatus",
    "FulfillmentStatus",
    "LineItem",
    "MappingError",
    "MarketingConsent",
    "Money",
    "Order",
    "PropertyDefinition",
    "apply_overrides",
    "apply_stage_overrides",
    "contact_properties",
    "crm_schema",
    "customer_from_graphql",
    "customer_from_rest",
    "deal_properties",
    "deal_stage",
    "exponent",
    "hubspot",
    "legacy_id",
    "line_item_external_id",
    "line_item_properties",
    "money",
    "normalise_country",
    "normalise_email",
    "normalise_phone",
    "order_external_id",
    "order_from_graphql",
    "order_from_rest",
    "property_group_payload",
    "render",
    "render_json",
    "salesforce",
    "shopify",
    "source_paths",
    "stage_key",
    "to_utc",
    "zoho",
]
