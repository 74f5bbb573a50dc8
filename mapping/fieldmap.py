"""Which canonical value goes into which CRM property: field maps, defaults and overrides.

A FieldMap is an immutable mapping ``{crm_property_name: source_path}`` for one entity:

- ``"contact"``: paths into a Customer,
- ``"deal"``: paths into an Order,
- ``"line_item"``: paths into a LineItem, plus ``order.<path>`` into the order it belongs to.

A source path is a dotted canonical attribute path ending at a single value, e.g. ``email``,
``default_address.city``, ``consent.email``, ``total.amount``, ``order.name``; lists of records
(``addresses``, ``line_items``) are not values. ``tags`` renders as one comma-separated string.
On top of these, ``derived.*`` values that no single attribute holds:

contact   derived.street_address  default address line1 and line2, joined by ", "
          derived.last_name_required  the last name, or "[not provided]" (CRMs that require one)
deal      derived.deal_name       "Order #1001 · <store name>"
          derived.deal_stage      CRM stage for the order (cancelled, else by financial status)
          derived.pipeline        the connection's pipeline id
          derived.external_id     "<store_key>:order:<id>", the deal's unique upsert key
          derived.close_date      processed_at, else created_at
          derived.close_day       the same as a calendar date in UTC (date-only CRM fields)
          derived.adjustment      total - line totals - tax: shipping, fees and order-level
                                  discounts, so line-based CRM totals add up to the order's
line_item derived.name            "<title> - <variant title>" (or just the title)
          derived.external_id     "<store_key>:line_item:<id>", the line item's upsert key
          derived.unit_discount   per-unit discount: (unit price x quantity - total) / quantity
          derived.line_discount   the line's whole discount: unit price x quantity - total
          derived.product_key     "<store_key>:product:<variant, else product, else SKU>"
          derived.net_unit_price  the line total / quantity, at the currency's precision
          derived.active          always true (a product a store sold is an active product)

``source_paths(entity)`` lists them all; an override naming any other path is refused.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterator, Mapping
from typing import Any, get_args, get_origin

from pydantic import BaseModel

from mapping.models import Customer, LineItem, Order


class FieldMapError(ValueError):
    """A field map or override an operator set is invalid; the message says what and why."""


ENTITIES = ("contact", "deal", "line_item")

DERIVED: Mapping[str, tuple[str, ...]] = types.MappingProxyType(
    {
        "contact": ("derived.street_address", "derived.last_name_required"),
        "deal": (
            "derived.deal_name",
            "derived.deal_stage",
            "derived.pipeline",
            "derived.external_id",
            "derived.close_date",
            "derived.close_day",
            "derived.adjustment",
        ),
        "line_item": (
            "derived.name",
            "derived.external_id",
            "derived.unit_discount",
            "derived.line_discount",
            "derived.product_key",
            "derived.net_unit_price",
            "derived.active",
        ),
    }
)

# Canonical fields that are bookkeeping, not customer data.
_NOT_VALUES = frozenset({"missing"})


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model class in ``X`` or ``X | None``; None for scalars and for tuples of models."""
    candidates = get_args(annotation) if get_origin(annotation) in (types.UnionType,) else ()
    for candidate in (annotation, *candidates):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_record_list(annotation: Any) -> bool:
    return get_origin(annotation) is tuple and any(
        isinstance(arg, type) and issubclass(arg, BaseModel) for arg in get_args(annotation)
    )


def _leaf_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for name, field in model.model_fields.items():
        if name in _NOT_VALUES or _is_record_list(field.annotation):
            continue
        nested = _model_of(field.annotation)
        if nested is not None:
            paths.extend(_leaf_paths(nested, f"{prefix}{name}."))
        else:
            paths.append(f"{prefix}{name}")
    return paths


_SOURCE_PATHS: Mapping[str, frozenset[str]] = types.MappingProxyType(
    {
        "contact": frozenset(_leaf_paths(Customer)) | frozenset(DERIVED["contact"]),
        "deal": frozenset(_leaf_paths(Order)) | frozenset(DERIVED["deal"]),
        "line_item": frozenset(_leaf_paths(LineItem))
        | frozenset(_leaf_paths(Order, "order."))
        | frozenset(DERIVED["line_item"]),
    }
)

# Internal field names: a letter, then letters, digits and underscores. HubSpot's property
# names (https://developers.hubspot.com/docs/api/crm/properties), Zoho's API names
# ("Tandem_Order_Id") and Salesforce's ("Tandem_Order_Id__c") all have this shape.
_PROPERTY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")

# HubSpot's rules, the defaults of apply_overrides (each CRM's schema passes its own).
# Properties an override may not drop: HubSpot requires them on create (deals need dealname,
# dealstage and pipeline: https://developers.hubspot.com/docs/api-reference/latest/crm/objects/deals/guide).
HUBSPOT_REQUIRED: Mapping[str, frozenset[str]] = types.MappingProxyType(
    {
        "contact": frozenset(),
        "deal": frozenset({"dealname", "dealstage", "pipeline"}),
        "line_item": frozenset(),
    }
)
# Properties an override may not touch at all: the keys writes are upserted by. Changing one
# would make the next write miss the record it wrote before and create a duplicate.
HUBSPOT_KEYS: Mapping[str, Mapping[str, str]] = types.MappingProxyType(
    {
        "contact": {"email": "email"},
        "deal": {"tandem_order_id": "derived.external_id"},
        "line_item": {"tandem_line_item_id": "derived.external_id"},
    }
)


def source_paths(entity: str) -> frozenset[str]:
    """Every source path a field map for ``entity`` may use.

    Raises:
        FieldMapError: unknown entity.
    """
    _check_entity(entity)
    return _SOURCE_PATHS[entity]


def _check_entity(entity: str) -> None:
    if entity not in ENTITIES:
        raise FieldMapError(f"unknown entity {entity!r}; expected one of {', '.join(ENTITIES)}")


def _check_property(entity: str, name: Any) -> None:
    if not isinstance(name, str) or not _PROPERTY_NAME.fullmatch(name):
        raise FieldMapError(
            f"invalid {entity} property name {name!r}: use a letter followed by letters, "
            "digits and underscores (the property's internal name, not its label)"
        )


def _check_path(entity: str, prop: str, path: Any) -> None:
    valid = _SOURCE_PATHS[entity]
    if path not in valid:
        raise FieldMapError(
            f"unknown source path {path!r} for {entity} property {prop!r}; "
            f"valid paths: {', '.join(sorted(valid))}"
        )


class FieldMap(Mapping[str, str]):
    """An immutable ``{crm_property: source_path}`` map for one entity, checked on creation.

    Raises (on construction):
        FieldMapError: unknown entity, an invalid property name or an unknown source path.
    """

    __slots__ = ("_entity", "_fields")

    def __init__(self, entity: str, fields: Mapping[str, str]) -> None:
        _check_entity(entity)
        for prop, path in fields.items():
            _check_property(entity, prop)
            _check_path(entity, prop, path)
        self._entity = entity
        self._fields = dict(fields)

    @property
    def entity(self) -> str:
        return self._entity

    def __getitem__(self, prop: str) -> str:
        return self._fields[prop]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldMap):
            return NotImplemented
        return self._entity == other._entity and self._fields == other._fields

    def __hash__(self) -> int:
        return hash((self._entity, frozenset(self._fields.items())))

    def __repr__(self) -> str:
        return f"FieldMap({self._entity!r}, {self._fields!r})"


def apply_overrides(
    base: FieldMap,
    overrides: Mapping[str, str | None],
    *,
    required: frozenset[str] | None = None,
    fixed: Mapping[str, str] | None = None,
    crm: str = "HubSpot",
) -> FieldMap:
    """A new FieldMap: ``base`` with per-connection overrides applied.

    ``{"property": "source.path"}`` maps a property (new, or replacing its default source);
    ``{"property": None}`` drops a default mapping (dropping an absent one is a no-op).
    ``required`` (properties the CRM needs on create) and ``fixed`` (the upsert keys and the
    paths they always hold) default to HubSpot's; ``crm`` names the CRM in messages.

    Raises:
        FieldMapError: an invalid property name, an unknown source path (the message lists the
            valid ones), dropping a property the CRM requires, or changing an upsert key.
    """
    entity = base.entity
    required = HUBSPOT_REQUIRED[entity] if required is None else required
    fixed_paths = HUBSPOT_KEYS[entity] if fixed is None else fixed
    fields = dict(base)
    for prop, path in overrides.items():
        _check_property(entity, prop)
        key_path = fixed_paths.get(prop)
        if key_path is not None and path != key_path:
            raise FieldMapError(
                f"{entity} property {prop!r} is the key Tandem upserts by and cannot be "
                f"overridden (it always holds {key_path!r})"
            )
        if path is None:
            if prop in required:
                raise FieldMapError(
                    f"{entity} property {prop!r} is required by {crm} and cannot be dropped"
                )
            fields.pop(prop, None)
            continue
        _check_path(entity, prop, path)
        fields[prop] = path
    return FieldMap(entity, fields)


DEFAULT_CONTACT_FIELDS = FieldMap(
    "contact",
    {
        "email": "email",
        "firstname": "first_name",
        "lastname": "last_name",
        "phone": "phone",
        "company": "default_address.company",
        "address": "derived.street_address",
        "city": "default_address.city",
        "state": "default_address.province",
        "zip": "default_address.postal_code",
        "country": "default_address.country_code",
        "tandem_email_consent": "consent.email",
        "tandem_sms_consent": "consent.sms",
        "tandem_customer_tags": "tags",
    },
)

DEFAULT_DEAL_FIELDS = FieldMap(
    "deal",
    {
        "dealname": "derived.deal_name",
        "amount": "total.amount",
        "deal_currency_code": "currency",
        "closedate": "derived.close_date",
        "dealstage": "derived.deal_stage",
        "pipeline": "derived.pipeline",
        "tandem_order_id": "derived.external_id",
        "tandem_order_number": "name",
        "tandem_financial_status": "financial_status",
        "tandem_fulfillment_status": "fulfillment_status",
        "tandem_refunded_amount": "refunded.amount",
    },
)

# HubSpot computes a line item's net `amount` from price, quantity and the per-unit `discount`
# (https://knowledge.hubspot.com/properties/hubspots-default-line-item-properties), so Tandem
# writes those three, and the store's exact line total into its own tandem_line_total: a
# discount that does not split evenly over the units cannot be a per-unit amount exactly.
DEFAULT_LINE_ITEM_FIELDS = FieldMap(
    "line_item",
    {
        "name": "derived.name",
        "quantity": "quantity",
        "price": "unit_price.amount",
        "discount": "derived.unit_discount",
        "hs_sku": "sku",
        "hs_line_item_currency_code": "unit_price.currency",
        "tandem_line_item_id": "derived.external_id",
        "tandem_line_total": "total.amount",
    },
)
