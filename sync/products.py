"""The CRM product records that order lines point at (Zoho Products, Salesforce Product2 and
their standard price-book entries), for order shapes whose lines need one.

One product record per store product (by variant, else product, else SKU: see
``mapping.crm.product_key``), upserted by Tandem's product key, so two orders of the same product
share it and a retry never makes a second. What was written is kept in a ``product`` link, so a
product that has not changed costs no call; Salesforce price-book entries are kept in
``price_entry`` links (one per product and currency) for the same reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from connectors.crm import WriteResult
from mapping import CrmSchema, LineItem, Order
from mapping.crm import line_item_fields, product_key
from sync import links
from sync.db import transaction


class ProductWriter(Protocol):
    def upsert_objects(
        self, object_type: str, id_property: str, inputs: Sequence[tuple[str, Mapping[str, Any]]]
    ) -> list[WriteResult]: ...
    def standard_price_book(self) -> str: ...
    def price_book_entries(
        self, pricebook_id: str, wanted: Sequence[tuple[str, str, Any]]
    ) -> dict[tuple[str, str], WriteResult]: ...


@dataclass
class Products:
    """What the product step found: the reference each line points at (a product id, or a
    price-book entry id), by product key and currency; refusals by product key."""

    refs: dict[tuple[str, str], str] = field(default_factory=dict)
    refused: dict[str, WriteResult] = field(default_factory=dict)
    calls: int = 0

    def ref(self, key: str, currency: str) -> str | None:
        return self.refs.get((key, currency))


def ensure_products(
    sessions: sessionmaker[Session],
    connection_id: int,
    crm: ProductWriter,
    schema: CrmSchema,
    store_key: str,
    orders: Sequence[Order],
) -> Products:
    """Upsert the products the lines of ``orders`` sell (and, for Salesforce, their price-book
    entries in each order's currency); unchanged ones cost nothing. Raises connector errors
    that should retry the page."""
    spec = schema.product
    assert spec is not None  # only called for schemas with products
    out = Products()
    wanted: dict[str, tuple[LineItem, Order]] = {}
    for order in orders:
        for item in order.line_items:
            wanted[product_key(store_key, item)] = (item, order)
    if not wanted:
        return out
    fields = {
        key: line_item_fields(item, order, spec.fields, store_key=store_key, render=schema.render)
        for key, (item, order) in wanted.items()
    }
    with transaction(sessions) as session:
        known = links.load(session, connection_id, "product", wanted)
    ids = {key: link.crm_id for key, link in known.items() if link.last_written == fields[key]}
    changed = [key for key in wanted if key not in ids]
    if changed:
        results = crm.upsert_objects(spec.object, spec.key, [(k, fields[k]) for k in changed])
        out.calls += 1
        with transaction(sessions) as session:
            for key, result in zip(changed, results, strict=True):
                if result.ok and result.id:
                    ids[key] = result.id
                    links.save(
                        session,
                        connection_id,
                        "product",
                        key,
                        crm_object=spec.object,
                        crm_id=result.id,
                        written=fields[key],
                    )
                else:
                    out.refused[key] = result
    # A product is sold in every currency of the orders that hold it.
    currencies = {
        (key, order.currency)
        for order in orders
        for key in (product_key(store_key, item) for item in order.line_items)
        if key in ids
    }
    if not spec.price_book:
        out.refs = {(key, currency): ids[key] for key, currency in currencies}
        return out
    _price_entries(sessions, connection_id, crm, ids, currencies, wanted, out)
    return out


def _price_entries(
    sessions: sessionmaker[Session],
    connection_id: int,
    crm: ProductWriter,
    ids: Mapping[str, str],
    currencies: set[tuple[str, str]],
    wanted: Mapping[str, tuple[LineItem, Order]],
    out: Products,
) -> None:
    """Salesforce order lines point at a product's entry in the standard price book, one per
    currency; entries are made once and remembered."""
    names = {pair: f"{pair[0]}|{pair[1]}" for pair in currencies}
    with transaction(sessions) as session:
        known = links.load(session, connection_id, "price_entry", names.values())
    missing = []
    for pair, name in names.items():
        link = known.get(name)
        if link is not None and link.last_written.get("product") == ids[pair[0]]:
            out.refs[pair] = link.crm_id
        else:
            missing.append(pair)
    if not missing:
        return
    book = crm.standard_price_book()
    requests = [(ids[key], currency, wanted[key][0].unit_price.amount) for key, currency in missing]
    found = crm.price_book_entries(book, requests)
    out.calls += 1
    with transaction(sessions) as session:
        for (key, currency), (product_id, _, _) in zip(missing, requests, strict=True):
            result = found[(product_id, currency)]
            if result.ok and result.id:
                out.refs[(key, currency)] = result.id
                links.save(
                    session,
                    connection_id,
                    "price_entry",
                    names[(key, currency)],
                    crm_object="PricebookEntry",
                    crm_id=result.id,
                    written={"product": product_id},
                )
            else:
                out.refused[key] = result
