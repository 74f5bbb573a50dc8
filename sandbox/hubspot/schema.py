"""What a fresh HubSpot account has before anyone customises it: object types, default
properties and groups, the default deal pipeline, lifecycle stages and the HUBSPOT_DEFINED
association types the simulator knows.

Sources (facts paraphrased from these pages):
- object type ids, required properties: https://developers.hubspot.com/docs/api-reference/latest/crm/using-object-apis
- default properties returned without ``properties=`` and the modified-date property per object:
  https://developers.hubspot.com/docs/api-reference/latest/crm/search-the-crm
- line item properties ("Net price" ``amount`` = quantity x unit price, price never negative,
  one parent object): https://developers.hubspot.com/docs/api/crm/line-items
- default pipeline id "default" and its stages: https://developers.hubspot.com/docs/methods/pipelines/pipelines_overview
- association type ids: https://developers.hubspot.com/docs/api-reference/latest/crm/associations/associate-records/guide
- property ``type``/``fieldType`` pairs: https://developers.hubspot.com/docs/api/crm/properties
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PropertySpec:
    """One property definition as the properties API describes it."""

    name: str
    label: str
    type: str  # string | number | date | datetime | enumeration | bool
    field_type: str  # text | textarea | number | date | select | radio | checkbox | ...
    group_name: str
    has_unique_value: bool = False
    read_only_value: bool = False
    calculated: bool = False
    hubspot_defined: bool = True
    options: tuple[tuple[str, str], ...] = ()  # (value, label)
    description: str = ""
    created_ms: int = 0


@dataclass(frozen=True)
class ObjectTypeSpec:
    name: str  # the plural path name: contacts, deals, line_items, products
    type_id: str  # "0-1" ...
    singular: str  # contact, deal, line_item, product
    modified_property: str
    default_group: str
    defaults_returned: tuple[str, ...]
    aliases: tuple[str, ...] = field(default_factory=tuple)


OBJECT_TYPES: dict[str, ObjectTypeSpec] = {
    "contacts": ObjectTypeSpec(
        name="contacts",
        type_id="0-1",
        singular="contact",
        modified_property="lastmodifieddate",
        default_group="contactinformation",
        defaults_returned=(
            "createdate",
            "email",
            "firstname",
            "hs_object_id",
            "lastmodifieddate",
            "lastname",
        ),
        aliases=("contact", "0-1"),
    ),
    "deals": ObjectTypeSpec(
        name="deals",
        type_id="0-3",
        singular="deal",
        modified_property="hs_lastmodifieddate",
        default_group="dealinformation",
        defaults_returned=(
            "amount",
            "closedate",
            "createdate",
            "dealname",
            "dealstage",
            "hs_lastmodifieddate",
            "hs_object_id",
            "pipeline",
        ),
        aliases=("deal", "0-3"),
    ),
    "line_items": ObjectTypeSpec(
        name="line_items",
        type_id="0-8",
        singular="line_item",
        modified_property="hs_lastmodifieddate",
        default_group="lineiteminformation",
        # Not listed on the search page; chosen to mirror the deal defaults.
        defaults_returned=(
            "amount",
            "createdate",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name",
            "price",
            "quantity",
        ),
        aliases=("line_item", "lineitem", "lineitems", "0-8"),
    ),
    "products": ObjectTypeSpec(
        name="products",
        type_id="0-7",
        singular="product",
        modified_property="hs_lastmodifieddate",
        default_group="productinformation",
        defaults_returned=(
            "createdate",
            "description",
            "hs_lastmodifieddate",
            "hs_object_id",
            "name",
            "price",
        ),
        aliases=("product", "0-7"),
    ),
}

_ALIASES: dict[str, str] = {
    alias: spec.name for spec in OBJECT_TYPES.values() for alias in (spec.name, *spec.aliases)
}


def resolve_object_type(name: str) -> ObjectTypeSpec | None:
    """The object type a path segment names (HubSpot accepts plural, singular and type id)."""
    canonical = _ALIASES.get(name.lower())
    return OBJECT_TYPES[canonical] if canonical else None


LIFECYCLE_STAGES = (
    ("subscriber", "Subscriber"),
    ("lead", "Lead"),
    ("marketingqualifiedlead", "Marketing Qualified Lead"),
    ("salesqualifiedlead", "Sales Qualified Lead"),
    ("opportunity", "Opportunity"),
    ("customer", "Customer"),
    ("evangelist", "Evangelist"),
    ("other", "Other"),
)

# The pipeline every account starts with, id "default", and its standard stage ids.
DEFAULT_PIPELINES: dict[str, tuple[str, ...]] = {
    "default": (
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    ),
}

# Currencies a simulated account has turned on (multi-currency). A real account starts with
# only its company currency; the demo stores sell in several, so the default is broader and a
# portal can narrow it when it is created.
DEFAULT_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF")

DEFAULT_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "contacts": (("contactinformation", "Contact information"),),
    "deals": (("dealinformation", "Deal information"),),
    "line_items": (("lineiteminformation", "Line item information"),),
    "products": (("productinformation", "Product information"),),
}


def _p(name: str, label: str, type_: str = "string", field_type: str = "text", **kw) -> tuple:
    return (name, label, type_, field_type, kw)


_COMMON = (
    _p("createdate", "Create date", "datetime", "date"),
    _p("hs_object_id", "Record ID", "number", "number", read_only_value=True),
)

_DEFAULT_PROPERTIES: dict[str, tuple[tuple, ...]] = {
    "contacts": (
        _p("email", "Email"),
        _p("firstname", "First name"),
        _p("lastname", "Last name"),
        _p("phone", "Phone number", field_type="phonenumber"),
        _p("mobilephone", "Mobile phone number", field_type="phonenumber"),
        _p("company", "Company name"),
        _p("jobtitle", "Job title"),
        _p("website", "Website URL"),
        _p("address", "Street address"),
        _p("city", "City"),
        _p("state", "State/Region"),
        _p("zip", "Postal code"),
        _p("country", "Country/Region"),
        _p("lifecyclestage", "Lifecycle stage", "enumeration", "radio", options=LIFECYCLE_STAGES),
        _p("lastmodifieddate", "Last modified date", "datetime", "date", read_only_value=True),
        *_COMMON,
    ),
    "deals": (
        _p("dealname", "Deal name"),
        _p("amount", "Amount", "number", "number"),
        _p("closedate", "Close date", "datetime", "date"),
        _p("dealstage", "Deal stage", "enumeration", "radio"),
        _p("pipeline", "Pipeline", "enumeration", "select"),
        _p("deal_currency_code", "Currency", "enumeration", "select"),
        _p(
            "dealtype",
            "Deal type",
            "enumeration",
            "radio",
            options=(("newbusiness", "New Business"), ("existingbusiness", "Existing Business")),
        ),
        _p("description", "Deal description", field_type="textarea"),
        _p("hs_lastmodifieddate", "Last modified date", "datetime", "date", read_only_value=True),
        *_COMMON,
    ),
    "line_items": (
        _p("name", "Name"),
        _p("description", "Description", field_type="textarea"),
        _p("hs_sku", "SKU"),
        _p("quantity", "Quantity", "number", "number"),
        _p("price", "Unit price", "number", "number"),
        # "Net price": HubSpot calculates it; see Portal._derive_line_item_amount.
        _p("amount", "Net price", "number", "number", calculated=True),
        _p("discount", "Unit discount", "number", "number"),
        _p("hs_discount_percentage", "Discount percentage", "number", "number"),
        _p("hs_product_id", "Product ID", "number", "number"),
        _p("hs_line_item_currency_code", "Currency", "enumeration", "select"),
        _p("hs_lastmodifieddate", "Last modified date", "datetime", "date", read_only_value=True),
        *_COMMON,
    ),
    "products": (
        _p("name", "Name"),
        _p("description", "Description", field_type="textarea"),
        _p("price", "Unit price", "number", "number"),
        _p("hs_sku", "SKU"),
        _p("hs_lastmodifieddate", "Last modified date", "datetime", "date", read_only_value=True),
        *_COMMON,
    ),
}


def default_properties(object_type: str) -> dict[str, PropertySpec]:
    """A fresh copy of the default property definitions of ``object_type``."""
    group = OBJECT_TYPES[object_type].default_group
    out: dict[str, PropertySpec] = {}
    for name, label, type_, field_type, kw in _DEFAULT_PROPERTIES[object_type]:
        out[name] = PropertySpec(
            name=name, label=label, type=type_, field_type=field_type, group_name=group, **kw
        )
    return out


PROPERTY_TYPES: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "textarea", "phonenumber", "html", "file"}),
    "number": frozenset({"number", "calculation_equation"}),
    "date": frozenset({"date"}),
    "datetime": frozenset({"date"}),
    "enumeration": frozenset({"select", "radio", "checkbox", "booleancheckbox"}),
    "bool": frozenset({"booleancheckbox"}),
}

# A contact (or any object) may have at most 10 unique-value properties:
# https://developers.hubspot.com/changelog/unique-properties-for-contacts
MAX_UNIQUE_PROPERTIES = 10

# HUBSPOT_DEFINED unlabeled association type ids, one per direction.
ASSOCIATION_TYPES: dict[tuple[str, str], int] = {
    ("contacts", "deals"): 4,
    ("deals", "contacts"): 3,
    ("deals", "line_items"): 19,
    ("line_items", "deals"): 20,
}

# Line items belong to one single parent object (https://developers.hubspot.com/docs/api/crm/line-items).
SINGLE_PARENT: dict[str, str] = {"line_items": "deals"}
