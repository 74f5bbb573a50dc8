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

# Every CRM Tandem writes to, by platform name.
CRM_SCHEMAS: dict[str, CrmSchema] = {
    "hubspot": hubspot.SCHEMA,
    "zoho": zoho.SCHEMA,
    "salesforce": salesforce.SCHEMA,
}

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
