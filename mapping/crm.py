"""Canonical records -> CRM fields, for any CRM: the derived values, and what differs per CRM.

Every CRM gets the same values from a Customer, an Order or a LineItem: the deal name, the stage
from the order's status, Tandem's external ids, the street address, the per-unit discount. What
differs is described by a :class:`CrmSchema` (one per CRM, in ``mapping/<crm>.py``): which
objects hold contacts and orders, the field names, the default field maps, the stage map, which
fields the CRM requires, and how a value is rendered (HubSpot stores every property as a string;
Zoho CRM and Salesforce take typed JSON).

A Customer field the source payload did not carry (``Customer.missing``) is left out of the
fields altogether, so the write leaves the CRM's value alone instead of clearing it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from typing import TYPE_CHECKING, Any

from mapping.fieldmap import FieldMap, FieldMapError, apply_overrides
from mapping.models import Customer, FinancialStatus, LineItem, Order
from mapping.normalise import money

if TYPE_CHECKING:
    from mapping.facts import FactsNaming

# The stage key of an order that was cancelled, whatever its financial status.
CANCELLED = "cancelled"

# Zoho CRM and Salesforce both refuse a contact without a last name (Zoho: Last_Name is
# mandatory, https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html; Salesforce:
# Contact.LastName is required, sforce_api_objects_contact.htm). Guest checkouts and shoppers
# who gave only a first name still need a contact; this is the placeholder Salesforce's own
# Web-to-Lead writes for a missing required name.
LAST_NAME_PLACEHOLDER = "[not provided]"


def stage_map(*, open_stage: str, won: str, lost: str, unknown: str) -> Mapping[Any, str]:
    """A default stage map: unpaid orders are open, paid ones won, refunded, voided, expired
    and cancelled ones lost; an order whose status is unknown gets ``unknown``."""
    return types.MappingProxyType(
        {
            FinancialStatus.pending: open_stage,
            FinancialStatus.authorized: open_stage,
            FinancialStatus.partially_paid: open_stage,
            FinancialStatus.paid: won,
            FinancialStatus.partially_refunded: won,
            FinancialStatus.refunded: lost,
            FinancialStatus.voided: lost,
            FinancialStatus.expired: lost,
            FinancialStatus.unknown: unknown,
            CANCELLED: lost,
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
    """``base`` with a connection's ``{key: stage}`` overrides applied (keys as stage_key).

    Raises:
        FieldMapError: an unknown key or an empty stage.
    """
    stages = dict(base)
    for key, stage in overrides.items():
        if not isinstance(stage, str) or not stage.strip():
            raise FieldMapError(f"stage for {key!r} must be a CRM stage id or name, got {stage!r}")
        stages[stage_key(key)] = stage.strip()
    return stages


# ---------------------------------------------------------------------------------- rendering


def render_json(value: Any) -> Any:
    """A canonical value as typed JSON, for CRMs whose APIs take numbers, booleans and dates
    (Zoho CRM, Salesforce).

    None stays None (JSON null clears the field); Decimal becomes a JSON number; datetime becomes
    ISO-8601 UTC with an explicit offset, "2024-03-01T10:00:00+00:00" (Zoho's datetime format,
    which Salesforce also reads); date becomes "2024-03-01"; enums their value; tags "a, b".

    A Decimal is sent as the float whose shortest repr is exactly its digits: ``json`` prints a
    float through ``repr``, so the number on the wire is the Decimal's text, digit for digit.
    One that a double cannot carry exactly (more than 15 significant digits) is refused rather
    than rounded.

    Raises:
        TypeError: a value that is not a single canonical value.
        ValueError: a datetime without a timezone, or a Decimal a JSON number cannot carry.
    """
    if value is None or isinstance(value, bool | str | int):
        return value
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        number = float(value)
        if Decimal(repr(number)) != value:
            raise ValueError(f"{value} cannot be sent as a JSON number without rounding")
        return number
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"refusing to guess the timezone of {value!r}")
        return value.astimezone(UTC).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, tuple) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    raise TypeError(f"cannot render {type(value).__name__} as a CRM field value")


# ---------------------------------------------------------------------------------- building

Render = Callable[[Any], Any]


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


def _fields(
    root: Any,
    fields: FieldMap,
    entity: str,
    derived: Mapping[str, Callable[[], Any]],
    render: Render,
    skip: Callable[[str], bool] = lambda path: False,
) -> dict[str, Any]:
    if fields.entity != entity:
        raise FieldMapError(f"expected a {entity} field map, got one for {fields.entity}")
    out: dict[str, Any] = {}
    for prop, path in fields.items():
        if skip(path):
            continue
        value = derived[path]() if path in derived else _resolve(root, path)
        out[prop] = render(value)
    return out


def _require_store_key(store_key: str) -> None:
    if not store_key:
        raise ValueError("store_key is required: it prefixes Tandem's external ids")


_CONTACT_DEPENDS_ON = {
    "derived.street_address": "default_address",
    "derived.last_name_required": "last_name",
}


def _street_address(customer: Customer) -> str | None:
    address = customer.default_address
    if address is None:
        return None
    return ", ".join(line for line in (address.line1, address.line2) if line) or None


def contact_fields(customer: Customer, fields: FieldMap, *, render: Render) -> dict[str, Any]:
    """The contact fields ``fields`` maps for ``customer``; fields it did not carry are left out.

    Raises:
        FieldMapError: ``fields`` is not a contact field map.
    """
    return _fields(
        customer,
        fields,
        "contact",
        {
            "derived.street_address": lambda: _street_address(customer),
            "derived.last_name_required": lambda: customer.last_name or LAST_NAME_PLACEHOLDER,
        },
        render,
        skip=lambda path: _is_missing(path, customer.missing, _CONTACT_DEPENDS_ON),
    )


def order_external_id(store_key: str, order: Order) -> str:
    """The order record's unique upsert key: ``"<store_key>:order:<source_id>"``."""
    _require_store_key(store_key)
    return f"{store_key}:order:{order.source_id}"


def deal_stage(order: Order, stage_map: Mapping[str, str]) -> str:
    """The CRM stage for ``order``: a cancelled order is "cancelled", else by status.

    Raises:
        FieldMapError: the stage map has no stage for the order's key.
    """
    key = CANCELLED if order.cancelled_at is not None else order.financial_status
    try:
        return stage_map[key]
    except KeyError:
        raise FieldMapError(f"the stage map has no stage for {str(key)!r}") from None


def order_fields(
    order: Order,
    fields: FieldMap,
    *,
    store_key: str,
    store_name: str,
    stage_map: Mapping[str, str],
    pipeline: str | None,
    render: Render,
) -> dict[str, Any]:
    """The deal (or opportunity) fields ``fields`` maps for ``order``.

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
    closed = order.processed_at or order.created_at
    derived: dict[str, Callable[[], Any]] = {
        "derived.deal_name": lambda: deal_name,
        "derived.deal_stage": lambda: deal_stage(order, stage_map),
        "derived.pipeline": lambda: pipeline,
        "derived.external_id": lambda: order_external_id(store_key, order),
        "derived.close_date": lambda: closed,
        "derived.close_day": lambda: closed.astimezone(UTC).date(),
        "derived.adjustment": lambda: _adjustment(order),
    }
    return _fields(order, fields, "deal", derived, render)


def _adjustment(order: Order) -> Decimal:
    """What the order total holds beyond its lines and tax (shipping, fees, order-level
    discounts), so a CRM that totals the lines itself (Zoho Sales_Orders) shows the order's
    grand total: lines + tax + adjustment = total."""
    lines = sum((item.total.amount for item in order.line_items), Decimal(0))
    return money(order.total.amount - lines - order.tax.amount, order.currency).amount


def product_key(store_key: str, item: LineItem) -> str:
    """The CRM product record's upsert key: ``"<store_key>:product:<id>"`` by the variant,
    else the product, else the SKU, else (a custom line) the title."""
    _require_store_key(store_key)
    if item.variant_id:
        return f"{store_key}:product:variant:{item.variant_id}"
    if item.product_id:
        return f"{store_key}:product:{item.product_id}"
    if item.sku:
        return f"{store_key}:product:sku:{item.sku}"
    # A custom line (a gift wrap, a fee typed in by the merchant): one product per title.
    return f"{store_key}:product:custom:{item.title or 'item'}"


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


def _line_discount(item: LineItem) -> Decimal:
    """The line's whole discount, never negative."""
    gross = item.unit_price.amount * item.quantity
    return money(max(gross - item.total.amount, Decimal(0)), item.unit_price.currency).amount


def _net_unit_price(item: LineItem) -> Decimal:
    """The line total per unit, rounded half-to-even to the currency (a discount that does not
    split evenly over the units is off by at most half a minor unit per unit)."""
    if item.quantity <= 0:
        return item.total.amount
    return money(item.total.amount / item.quantity, item.total.currency).amount


class _LineItemView:
    """What line-item paths resolve against: the item's attributes plus ``order``."""

    def __init__(self, item: LineItem, order: Order) -> None:
        self._item = item
        self.order = order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


def line_item_fields(
    item: LineItem, order: Order, fields: FieldMap, *, store_key: str, render: Render
) -> dict[str, Any]:
    """The line-item fields ``fields`` maps for ``item`` of ``order``.

    Raises:
        FieldMapError: ``fields`` is not a line-item field map.
        ValueError: empty ``store_key``.
    """
    _require_store_key(store_key)
    derived: dict[str, Callable[[], Any]] = {
        "derived.name": lambda: _line_name(item),
        "derived.external_id": lambda: line_item_external_id(store_key, item),
        "derived.unit_discount": lambda: _unit_discount(item),
        "derived.line_discount": lambda: _line_discount(item),
        "derived.product_key": lambda: product_key(store_key, item),
        "derived.net_unit_price": lambda: _net_unit_price(item),
        "derived.active": lambda: True,
    }
    return _fields(_LineItemView(item, order), fields, "line_item", derived, render)


# ---------------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class ProductSpec:
    """CRM product records that order lines point at (Zoho Products, Salesforce Product2),
    upserted by ``key`` (which holds ``derived.product_key``); ``fields`` is a line-item map:
    what a product record holds, taken from a line that sells it. ``price_book``: lines point
    at the product's entry in the standard price book (Salesforce PricebookEntry), not at the
    product itself."""

    object: str
    key: str
    fields: FieldMap
    price_book: bool = False


@dataclass(frozen=True)
class CrmSchema:
    """How one CRM names, types and links what Tandem writes.

    ``contact_object`` / ``order_object`` / ``line_item_object`` are the object types as the
    CRM's API names them (None: the CRM gets no separate line-item records). ``order_key`` and
    ``line_item_key`` are the unique fields Tandem upserts by. An order is linked to its buyer
    either by a lookup field on the order record (``order_contact_field``, whose value is
    ``contact_reference(contact_id)``) or, when that is None, by a separate link call the
    connector makes. ``required`` fields cannot be dropped by an override; ``fixed`` ones
    (the upsert keys) cannot be changed at all. ``custom_fields`` lists, per object, the fields
    the CRM org must have (or that Tandem creates, where it can) for the default maps to work.
    """

    platform: str
    title: str
    contact_object: str
    order_object: str
    line_item_object: str | None
    email_field: str
    first_name_field: str
    last_name_field: str
    order_key: str
    line_item_key: str | None
    contact_fields: FieldMap
    order_fields: FieldMap
    line_item_fields: FieldMap | None
    stage_map: Mapping[Any, str]
    pipeline: str | None
    render: Render
    required: Mapping[str, frozenset[str]]
    fixed: Mapping[str, Mapping[str, str]]
    custom_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    order_contact_field: str | None = None
    contact_reference: Callable[[str], Any] = str
    # Where the order's lines go, beyond separate records linked by a call (HubSpot):
    # rows of a subform field of the order record (Zoho Sales_Orders.Ordered_Items), or
    # records of their own naming their order in a lookup (Salesforce OrderItem.OrderId);
    # each line names its product in ``line_item_product_field``.
    line_items_field: str | None = None
    line_item_order_field: str | None = None
    line_item_product_field: str | None = None
    product: ProductSpec | None = None
    product_reference: Callable[[str], Any] = str
    # Salesforce orders name their price book, start as drafts, and belong to an Account the
    # connection names (``order_settings``: order field -> connection setting).
    order_price_book_field: str | None = None
    order_constants: Mapping[str, Any] = field(default_factory=dict)
    order_settings: Mapping[str, str] = field(default_factory=dict)
    # The commerce facts fields of contacts (order count, total spent, ...: mapping.facts).
    facts: FactsNaming | None = None

    def defaults(self, entity: str) -> FieldMap:
        """The default field map of ``entity`` ("contact", "deal", "line_item").

        Raises:
            FieldMapError: an unknown entity, or line items for a CRM that has none.
        """
        maps = {
            "contact": self.contact_fields,
            "deal": self.order_fields,
            "line_item": self.line_item_fields,
        }
        if entity not in maps:
            raise FieldMapError(f"unknown entity {entity!r}; expected one of {', '.join(maps)}")
        found = maps[entity]
        if found is None:
            raise FieldMapError(f"{self.title} orders carry no separate line items")
        return found

    def field_map(self, entity: str, overrides: Mapping[str, str | None]) -> FieldMap:
        """The default map of ``entity`` with a connection's overrides applied.

        Raises:
            FieldMapError: see :func:`mapping.fieldmap.apply_overrides`.
        """
        return apply_overrides(
            self.defaults(entity),
            overrides,
            required=self.required.get(entity, frozenset()),
            fixed=self.fixed.get(entity, {}),
            crm=self.title,
        )

    def contact(self, customer: Customer, fields: FieldMap) -> dict[str, Any]:
        return contact_fields(customer, fields, render=self.render)

    def guest_contact(self, email: str, first_name: str | None, last_name: str | None) -> dict:
        """The fields of a contact made for a buyer Tandem knows only from an order (a guest
        checkout, or an order that arrived before its customer): email and names only, so an
        existing contact's other fields are left alone."""
        fields: dict[str, Any] = {self.email_field: self.render(email)}
        if first_name:
            fields[self.first_name_field] = self.render(first_name)
        if last_name or self.last_name_field in self.required.get("contact", frozenset()):
            fields[self.last_name_field] = self.render(last_name or LAST_NAME_PLACEHOLDER)
        return fields

    def order(
        self,
        order: Order,
        fields: FieldMap,
        *,
        store_key: str,
        store_name: str,
        stage_map: Mapping[Any, str],
        pipeline: str | None,
    ) -> dict[str, Any]:
        return order_fields(
            order,
            fields,
            store_key=store_key,
            store_name=store_name,
            stage_map=stage_map,
            pipeline=pipeline,
            render=self.render,
        )

    def line_item(
        self, item: LineItem, order: Order, fields: FieldMap, *, store_key: str
    ) -> dict[str, Any]:
        return line_item_fields(item, order, fields, store_key=store_key, render=self.render)
