"""Store -> CRM for one connection: compare with what we last wrote, batch-write the rest.

The engine receives canonical records (mapping has already run) and does, per page:
drop what is stale or unchanged (no API call), write the rest in the CRM's largest batches as
idempotent upserts, then record links and the written fingerprint once the CRM confirmed.
A record the CRM refuses becomes a dead letter with the CRM's reason; the others proceed.

The same steps serve every CRM. What differs is the connection's ``CrmSchema`` (objects, field
names, how an order names its buyer) and the connector behind the :class:`CrmWriter` methods:
HubSpot gets deals, line items and associations; Zoho CRM deals whose ``Contact_Name`` lookup
names the buyer; Salesforce opportunities linked by contact roles.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from connectors.crm import WriteResult
from connectors.errors import ConfigurationError
from mapping import CrmSchema, Customer, FieldMap, LineItem, Order
from mapping import hubspot as hubspot_mapping
from mapping.crm import product_key
from sync import facts, identity, links
from sync.db import transaction
from sync.ledger import Ledger
from sync.models import Connection
from sync.products import Products, ensure_products
from sync.twoway import FieldSync, StoreWriter, Tally, TwoWaySettings

log = logging.getLogger("tandem.sync")

Fields = Mapping[str, Any]


class CrmWriter(Protocol):
    """What the engine asks of a CRM connector. Every write returns one WriteResult per input,
    in input order. ``link_orders_to_contacts`` is called only for CRMs whose schema has no
    ``order_contact_field``, ``link_line_items_to_orders`` only for line items linked by a call
    (HubSpot); ``get_objects`` only for subform rows (Zoho Sales_Orders), and the product and
    price-book methods of ``sync.products`` only for order shapes with products. What
    ``archive_objects`` returns is not used: deleting what is already gone is not an error."""

    platform: str

    def upsert_contacts_by_email(
        self, inputs: Sequence[tuple[str, Fields]]
    ) -> list[WriteResult]: ...
    def update_objects(
        self, object_type: str, inputs: Sequence[tuple[str, Fields]]
    ) -> list[WriteResult]: ...
    def upsert_objects(
        self, object_type: str, id_property: str, inputs: Sequence[tuple[str, Fields]]
    ) -> list[WriteResult]: ...
    def link_orders_to_contacts(self, pairs: Sequence[tuple[str, str]]) -> list[WriteResult]: ...
    def link_line_items_to_orders(self, pairs: Sequence[tuple[str, str]]) -> list[WriteResult]: ...
    def archive_objects(self, object_type: str, ids: Sequence[str]) -> object: ...


@dataclass
class Outcome:
    """What one call of the engine did, for progress and reports."""

    written: int = 0
    unchanged: int = 0
    stale: int = 0
    dead: int = 0
    calls: int = 0
    # Emails whose contact was written: orders waiting on these buyers can be replayed.
    contacts_written: set[str] = field(default_factory=set)
    # What two-way fields did: echoes recognised, conflicts decided, values written back.
    two_way: Tally = field(default_factory=Tally)

    def add(self, other: Outcome) -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.stale += other.stale
        self.dead += other.dead
        self.calls += other.calls
        self.two_way.add(other.two_way)


@dataclass
class FieldMaps:
    contact: FieldMap
    deal: FieldMap
    line_item: FieldMap | None  # None: the CRM gets no separate line-item records


@dataclass
class ConnectionContext:
    """Everything about one connection the engine needs, resolved once per job."""

    connection_id: int
    store_platform: str
    store_key: str  # e.g. "shopify:acme.myshopify.com": prefixes our external ids
    store_name: str
    fields: FieldMaps
    schema: CrmSchema = hubspot_mapping.SCHEMA
    stage_map: Mapping[Any, str] = field(
        default_factory=lambda: dict(hubspot_mapping.DEFAULT_STAGE_MAP)
    )
    pipeline: str | None = hubspot_mapping.DEFAULT_PIPELINE
    # Fields every order record carries (Salesforce: a Draft Order under the chosen Account).
    order_constants: Mapping[str, Any] = field(default_factory=dict)
    two_way: TwoWaySettings = field(default_factory=TwoWaySettings)


def _newest(records: Iterable[Any]) -> list[Any]:
    """One record per store id: the newest version wins (duplicates within a page)."""
    best: dict[str, Any] = {}
    for record in records:
        current = best.get(record.source_id)
        if current is None or record.updated_at >= current.updated_at:
            best[record.source_id] = record
    return list(best.values())


def _already_written(props: Fields, written: Mapping[str, Any]) -> bool:
    """Every property we would write now holds the value we last wrote.

    Compared field by field rather than as one hash, because payloads of one record do not all
    carry the same fields (Shopify's customer webhooks omit tags and consent that the API
    returns): a partial payload that agrees with what we wrote is no change.
    """
    return all(written.get(name) == value for name, value in props.items())


class Engine:
    """Store -> CRM writes for one connection, to whichever CRM its schema describes."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        ctx: ConnectionContext,
        crm: CrmWriter,
        *,
        store: StoreWriter | None = None,
        on_progress: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.ctx = ctx
        self.crm = crm
        self.on_progress = on_progress
        self.fields = FieldSync(
            sessions,
            ctx.connection_id,
            ctx.schema,
            ctx.fields.contact,
            ctx.two_way,
            crm=crm,
            store=store,
        )

    # ------------------------------------------------------------------ customers
    def sync_customers(
        self, customers: Sequence[Customer], raw: Mapping[str, dict] | None = None
    ) -> Outcome:
        """Upsert contacts for ``customers``. Raises connector errors that should retry the page."""
        ctx, out = self.ctx, Outcome()
        raw = raw or {}
        records = _newest(customers)
        with transaction(self.sessions) as session:
            known = links.load(
                session, ctx.connection_id, "customer", (c.source_id for c in records)
            )
            by_email = links.load(
                session, ctx.connection_id, "email", (c.email for c in records if c.email)
            )
            ledger = Ledger(ctx.connection_id).load(session, (c.source_id for c in records))
            elsewhere = self._known_elsewhere(
                session, (c.email for c in records if c.email and c.source_id not in known)
            )
        previous = {sid: dict(link.last_written) for sid, link in known.items()}
        schema, two_way = ctx.schema, self.fields
        two_way_props = two_way.two_way_props()
        updates: list[tuple[Customer, str, dict[str, Any]]] = []
        upserts: list[tuple[Customer, dict[str, Any]]] = []
        no_email: list[Customer] = []
        judged: dict[str, Any] = {}  # store id -> the two-way writes it needs
        full: dict[str, dict[str, Any]] = {}  # every mapped property, for a contact recreated
        reverts = []
        for customer in records:
            link = known.get(customer.source_id)
            if link and link.store_updated_at and customer.updated_at < link.store_updated_at:
                out.stale += 1
                continue
            props = full[customer.source_id] = schema.contact(customer, ctx.fields.contact)
            pending = two_way.on_store(ledger, customer, props, link, out.two_way)
            judged[customer.source_id] = pending
            if link:
                # Two-way fields go as the ledger decided; the others when they differ from
                # what we last wrote.
                one_way = {p: v for p, v in props.items() if p not in two_way_props}
                props = {} if _already_written(one_way, link.last_written) else one_way
                props.update(two_way.crm_props(pending.to_crm))
                if pending.to_store:
                    reverts.append((link, pending.to_store))
            if link and not props:
                out.unchanged += 1
                continue
            crm_id = link.crm_id if link else None
            if crm_id is None and customer.email and customer.email in by_email:
                # A guest order already created this person's contact: adopt it.
                crm_id = by_email[customer.email].crm_id
            if crm_id is None and customer.email in elsewhere:
                # The person is already a customer of another of the merchant's stores: join
                # their contact without overwriting what it holds in the fields that sync
                # both ways (the CRM's values are then this store's to take, by the policy).
                crm_id = elsewhere[customer.email]
                props = {p: v for p, v in props.items() if p not in two_way_props}
                judged[customer.source_id] = replace(pending, to_crm={})
            if crm_id:
                updates.append((customer, crm_id, props))
            elif customer.email:
                upserts.append((customer, props))
            else:
                no_email.append(customer)

        confirmed: list[tuple[Customer, str, dict[str, Any]]] = []
        failed: list[tuple[Customer, WriteResult]] = []
        if updates:
            results = self.crm.update_objects(
                schema.contact_object, [(crm_id, p) for _, crm_id, p in updates]
            )
            out.calls += 1
            for (customer, _crm_id, props), result in zip(updates, results, strict=True):
                if result.ok and result.id:
                    confirmed.append((customer, result.id, props))
                elif result.not_found and customer.email:
                    # Deleted in the CRM since we linked it: recreate (or adopt) by email.
                    upserts.append((customer, full[customer.source_id]))
                else:
                    failed.append((customer, result))
        if upserts:
            results = self.crm.upsert_contacts_by_email([(c.email or "", p) for c, p in upserts])
            out.calls += 1
            for (customer, props), result in zip(upserts, results, strict=True):
                if result.ok and result.id:
                    confirmed.append((customer, result.id, props))
                else:
                    failed.append((customer, result))

        # The store takes back what the CRM won (fields the CRM owns, or newer CRM changes).
        # Restored on the side that changed: as of now (sync.ledger.confirm).
        refused = self.fields.write_store(ledger, reverts, out.two_way, {})
        with transaction(self.sessions) as session:
            # The ledger keeps what was written; a record whose write failed is judged again
            # next time (its dead letter says why).
            unwritten = {c.source_id for c, _ in failed} | {c.source_id for c in no_email}
            done = set(judged) - unwritten - refused
            for customer, _, _ in confirmed:
                self.fields.confirmed(
                    ledger,
                    customer.source_id,
                    "crm",
                    judged[customer.source_id].to_crm,
                    customer.updated_at,
                )
            for sid in done:
                session.add_all(judged[sid].conflicts)
            ledger.save(session, done)
            for customer, crm_id, props in confirmed:
                links.save(
                    session,
                    ctx.connection_id,
                    "customer",
                    customer.source_id,
                    crm_object=schema.contact_object,
                    crm_id=crm_id,
                    written={**previous.get(customer.source_id, {}), **props},
                    store_updated_at=customer.updated_at,
                )
                if customer.email:
                    links.save(
                        session,
                        ctx.connection_id,
                        "email",
                        customer.email,
                        crm_object=schema.contact_object,
                        crm_id=crm_id,
                    )
            self._join_profiles(
                session,
                [
                    identity.Person(customer.source_id, customer.email, crm_id)
                    for customer, crm_id, _ in confirmed
                    if customer.email
                ],
            )
            links.resolve_dead_letters(
                session, ctx.connection_id, "customer", (c.source_id for c, _, _ in confirmed)
            )
            for customer, result in failed:
                links.dead_letter(
                    session,
                    ctx.connection_id,
                    entity="customer",
                    store_id=customer.source_id,
                    platform=self.crm.platform,
                    reason=result.error or "rejected",
                    details=result.details,
                    record=raw.get(customer.source_id) or customer.model_dump(mode="json"),
                )
            for customer in no_email:
                links.dead_letter(
                    session,
                    ctx.connection_id,
                    entity="customer",
                    store_id=customer.source_id,
                    platform="tandem",
                    reason=(
                        f"customer has no email address; {schema.title} contacts are matched "
                        "by email"
                    ),
                    record=raw.get(customer.source_id) or customer.model_dump(mode="json"),
                )
        out.written += len(confirmed)
        out.contacts_written.update(c.email for c, _, _ in confirmed if c.email)
        out.dead += len(failed) + len(no_email)
        self._progress(out)
        return out

    # ------------------------------------------------------------------ orders
    def sync_orders(
        self, orders: Sequence[Order], raw: Mapping[str, dict] | None = None
    ) -> Outcome:
        """Upsert a deal per order, its line items, and their associations."""
        ctx, out = self.ctx, Outcome()
        raw = raw or {}
        records = _newest(orders)
        with transaction(self.sessions) as session:
            order_links = links.load(
                session, ctx.connection_id, "order", (o.source_id for o in records)
            )
            customer_links = links.load(
                session,
                ctx.connection_id,
                "customer",
                (o.customer_source_id for o in records if o.customer_source_id),
            )
            email_links = links.load(
                session, ctx.connection_id, "email", (o.email for o in records if o.email)
            )
            item_links = links.load(
                session,
                ctx.connection_id,
                "line_item",
                [
                    *(li.source_id for o in records for li in o.line_items),
                    # ...and those we wrote last time, to find any an edit removed.
                    *(
                        i
                        for link in order_links.values()
                        for i in link.last_written.get("items", {})
                    ),
                ],
            )

        schema = ctx.schema
        plans: list[_OrderPlan] = []
        for order in records:
            link = order_links.get(order.source_id)
            if link and link.store_updated_at and order.updated_at < link.store_updated_at:
                out.stale += 1
                continue
            contact_id = None
            if order.customer_source_id and order.customer_source_id in customer_links:
                contact_id = customer_links[order.customer_source_id].crm_id
            elif order.email and order.email in email_links:
                contact_id = email_links[order.email].crm_id
            item_fields = ctx.fields.line_item
            plan = _OrderPlan(
                order=order,
                schema=schema,
                deal={
                    **schema.order(
                        order,
                        ctx.fields.deal,
                        store_key=ctx.store_key,
                        store_name=ctx.store_name,
                        stage_map=ctx.stage_map,
                        pipeline=ctx.pipeline,
                    ),
                    **ctx.order_constants,
                },
                items=[
                    (
                        li.source_id,
                        schema.line_item(li, order, item_fields, store_key=ctx.store_key),
                    )
                    for li in order.line_items
                ]
                if item_fields is not None and (schema.line_item_object or schema.line_items_field)
                else [],
                link_written=dict(link.last_written) if link else None,
            )
            plan.set_contact(contact_id)
            if link and link.last_hash == links.digest(plan.fingerprint()):
                out.unchanged += 1
                continue
            plans.append(plan)
        if not plans:
            self._progress(out)
            return out

        self._ensure_contacts(plans, out)
        refs = self._products(plans, out)
        key = schema.order_key
        deal_results = self._upsert(
            schema.order_object,
            key,
            [(p.deal[key], self._outgoing_order(p, refs, item_links)) for p in plans],
            out,
        )
        for plan in plans:
            result = deal_results[plan.deal[key]]
            if result.ok and result.id:
                plan.deal_id = result.id
            elif plan.error is None:
                plan.fail(self.crm.platform, result.error or "order rejected", result.details)

        if schema.line_items_field:
            self._read_rows(plans, item_links, out)
        elif schema.line_item_object and schema.line_item_key:
            self._write_line_items(plans, schema.line_item_object, schema.line_item_key, refs, out)
        self._link(plans, item_links, out)
        removed = self._archive_removed_items(plans, item_links, out)

        with transaction(self.sessions) as session:
            synced = []
            for plan in plans:
                order = plan.order
                if plan.error is None and plan.deal_id:
                    links.save(
                        session,
                        ctx.connection_id,
                        "order",
                        order.source_id,
                        crm_object=schema.order_object,
                        crm_id=plan.deal_id,
                        written=plan.fingerprint(),
                        store_updated_at=order.updated_at,
                    )
                    for item_id, crm_id in plan.item_ids.items():
                        links.save(
                            session,
                            ctx.connection_id,
                            "line_item",
                            item_id,
                            crm_object=schema.line_item_object or "",
                            crm_id=crm_id,
                        )
                    synced.append(order.source_id)
                else:
                    platform, reason, details = plan.error or (
                        self.crm.platform,
                        "not written",
                        None,
                    )
                    links.dead_letter(
                        session,
                        ctx.connection_id,
                        entity="order",
                        store_id=order.source_id,
                        platform=platform,
                        reason=reason,
                        details=details,
                        record=raw.get(order.source_id) or order.model_dump(mode="json"),
                    )
                    out.dead += 1
            links.resolve_dead_letters(session, ctx.connection_id, "order", synced)
            # Guests join their person first, so even a guest's first order counts in facts.
            self._join_profiles(
                session,
                [
                    identity.Person(f"guest:{plan.order.email}", plan.order.email, plan.new_contact)
                    for plan in plans
                    if plan.new_contact and plan.order.email
                ],
            )
            written = [p.order for p in plans if p.order.source_id in set(synced)]
            members = identity.profiles_of(
                session,
                ctx.connection_id,
                [
                    key
                    for order in written
                    for key in (order.customer_source_id, order.email and f"guest:{order.email}")
                    if key
                ],
            )
            touched = facts.record_orders(
                session,
                ctx.connection_id,
                written,
                {
                    order.source_id: members.get(order.customer_source_id or "")
                    or members.get(f"guest:{order.email}")
                    for order in written
                },
            )
            links.forget(session, ctx.connection_id, "line_item", removed)
            for plan in plans:
                if plan.new_contact and plan.order.email:
                    links.save(
                        session,
                        ctx.connection_id,
                        "email",
                        plan.order.email,
                        crm_object=schema.contact_object,
                        crm_id=plan.new_contact,
                    )
        out.written += len(synced)
        self._write_facts(touched, out)
        self._progress(out)
        return out

    def _write_facts(self, profile_ids: set[int], out: Outcome) -> None:
        """Order count, totals per currency and order dates on the buyers' contacts, across
        every store of the CRM account. Fields a CRM lacks (Tandem can create them only in
        HubSpot) are named in a warning; the orders themselves are already synced."""
        if not profile_ids:
            return
        try:
            result = facts.write_facts(
                self.crm,
                self.ctx.schema,
                self.sessions,
                profile_ids,
                connection_id=self.ctx.connection_id,
            )
        except ConfigurationError as exc:
            log.warning(
                "commerce facts not written for connection %s: %s", self.ctx.connection_id, exc
            )
            return
        out.calls += result.calls

    def _ensure_contacts(self, plans: list[_OrderPlan], out: Outcome) -> None:
        """Orders whose buyer has no contact yet (guest checkouts, or an order that arrived
        before its customer) get one, upserted by email with the billing name."""
        schema = self.ctx.schema
        with transaction(self.sessions) as session:
            elsewhere = self._known_elsewhere(
                session, (p.order.email for p in plans if p.contact_id is None and p.order.email)
            )
        wanted: dict[str, dict[str, Any]] = {}
        for plan in plans:
            order = plan.order
            if plan.contact_id is None and order.email in elsewhere:
                # A guest of this store who is a customer of another: their contact, as it is.
                plan.set_contact(elsewhere[order.email])
                plan.new_contact = elsewhere[order.email]
            elif plan.contact_id is None and order.email:
                address = order.billing_address or order.shipping_address
                wanted.setdefault(
                    order.email,
                    schema.guest_contact(
                        order.email,
                        address.first_name if address else None,
                        address.last_name if address else None,
                    ),
                )
        if not wanted:
            return
        results = self.crm.upsert_contacts_by_email(list(wanted.items()))
        out.calls += 1
        by_email = dict(zip(wanted, results, strict=True))
        for plan in plans:
            email = plan.order.email
            if plan.contact_id is not None or email not in by_email:
                continue
            result = by_email[email]
            if result.ok and result.id:
                plan.set_contact(result.id)
                plan.new_contact = result.id
            else:
                # The order record is still written, but the order stays unsynced (a dead
                # letter naming its buyer) until the buyer's contact exists, so the link is
                # never silently lost. It is replayed as soon as that contact syncs.
                plan.fail(
                    self.crm.platform,
                    f"the buyer's contact ({email}) was refused: {result.error or 'rejected'}",
                    {"buyer_email": email, self.crm.platform: result.details},
                )

    def _upsert(
        self,
        object_type: str,
        id_property: str,
        inputs: list[tuple[str, dict[str, Any]]],
        out: Outcome,
    ) -> dict[str, WriteResult]:
        results = self.crm.upsert_objects(object_type, id_property, inputs)
        out.calls += 1
        return {key: result for (key, _), result in zip(inputs, results, strict=True)}

    def _products(self, plans: list[_OrderPlan], out: Outcome) -> Products | None:
        """The product records the lines point at, for order shapes that need them; a line
        whose product was refused fails its order (with the CRM's reason)."""
        if self.ctx.schema.product is None:
            return None
        found = ensure_products(
            self.sessions,
            self.ctx.connection_id,
            self.crm,
            self.ctx.schema,
            self.ctx.store_key,
            [p.order for p in plans],
        )
        out.calls += found.calls
        for plan in plans:
            for item in plan.order.line_items:
                refused = found.refused.get(product_key(self.ctx.store_key, item))
                if refused is not None:
                    plan.fail(
                        self.crm.platform,
                        f"product of line item {item.source_id}: {refused.error or 'rejected'}",
                        refused.details,
                    )
        return found

    def _product_ref(self, plan: _OrderPlan, item_id: str, refs: Products | None) -> Any:
        item = plan.line_items[item_id]
        ref = refs.ref(product_key(self.ctx.store_key, item), plan.order.currency) if refs else None
        return self.ctx.schema.product_reference(ref) if ref else None

    def _outgoing_order(
        self, plan: _OrderPlan, refs: Products | None, item_links: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The order record as sent: its fields, plus what only exists in the CRM (the price
        book, subform rows pointing at products). Those stay out of the fingerprint, which is
        what the store said, so an unchanged order stays unchanged."""
        schema = self.ctx.schema
        outgoing = dict(plan.deal)
        if schema.order_price_book_field and refs is not None:
            outgoing[schema.order_price_book_field] = self.crm.standard_price_book()
        if schema.line_items_field:
            rows: list[dict[str, Any]] = []
            for item_id, props in plan.items:
                row = {
                    **props,
                    schema.line_item_product_field: self._product_ref(plan, item_id, refs),
                }
                known = item_links.get(item_id)
                if known is not None:
                    row["id"] = known.crm_id  # updates the row; one without an id is appended
                rows.append(row)
            current = {item_id for item_id, _ in plan.items}
            for item_id in (plan.link_written or {}).get("items", {}):
                if item_id not in current and item_id in item_links:
                    # Zoho deletes a subform row sent with "_delete" (update-subforms.html).
                    rows.append({"id": item_links[item_id].crm_id, "_delete": None})
            outgoing[schema.line_items_field] = rows
        return outgoing

    def _read_rows(
        self, plans: list[_OrderPlan], item_links: Mapping[str, Any], out: Outcome
    ) -> None:
        """Subform rows get their ids from the CRM: read them back, and match them to the
        lines by position (rows kept by id stay where they were, new ones are appended in the
        order sent), checking each row's product."""
        schema = self.ctx.schema
        written = [p for p in plans if p.deal_id and not p.error]
        if not written:
            return
        field_name = schema.line_items_field
        assert field_name is not None
        records = self.crm.get_objects(
            schema.order_object, [p.deal_id for p in written], [field_name]
        )
        out.calls += 1
        by_id = {str(r.get("id")): r for r in records}
        for plan in written:
            rows = [r for r in (by_id.get(plan.deal_id) or {}).get(field_name) or [] if r]
            known = {item_links[i].crm_id: i for i, _ in plan.items if i in item_links}
            fresh = [i for i, _ in plan.items if i not in item_links]
            for row in rows:
                row_id = str(row.get("id"))
                if row_id in known:
                    plan.item_ids[known[row_id]] = row_id
                elif fresh:
                    plan.item_ids[fresh.pop(0)] = row_id
            if len(plan.item_ids) != len(plan.items):
                plan.fail(
                    self.crm.platform,
                    f"{schema.order_object} {plan.deal_id} holds {len(rows)} lines, "
                    f"the order {len(plan.items)}",
                    {"rows": rows},
                )

    def _write_line_items(
        self,
        plans: list[_OrderPlan],
        object_type: str,
        key: str,
        refs: Products | None,
        out: Outcome,
    ) -> None:
        schema = self.ctx.schema
        inputs = []
        for plan in plans:
            if not plan.deal_id or plan.error:
                continue
            for item_id, props in plan.items:
                extra: dict[str, Any] = {}
                if schema.line_item_order_field:
                    extra[schema.line_item_order_field] = plan.deal_id
                if schema.line_item_product_field:
                    extra[schema.line_item_product_field] = self._product_ref(plan, item_id, refs)
                inputs.append((props[key], {**props, **extra}))
        results = self._upsert(object_type, key, inputs, out) if inputs else {}
        for plan in plans:
            if not plan.deal_id or plan.error:
                continue
            for item_id, props in plan.items:
                result = results[props[key]]
                if result.ok and result.id:
                    plan.item_ids[item_id] = result.id
                else:
                    plan.fail(
                        self.crm.platform,
                        f"line item {item_id}: {result.error or 'rejected'}",
                        result.details,
                    )

    def _link(self, plans: list[_OrderPlan], item_links: Mapping[str, Any], out: Outcome) -> None:
        """Links made by separate calls (HubSpot associations, Salesforce contact roles) are
        created only when they are new: a fresh order record, a changed buyer, a new line item.
        Re-creating an existing link is a no-op on every CRM, so a retry after a crash is
        harmless. A CRM that names the buyer in a field of the order record needs no call."""
        schema = self.ctx.schema
        by_field = schema.order_contact_field is not None
        # Lines that are subform rows, or name their order in a lookup, need no link call.
        items_by_field = bool(schema.line_items_field or schema.line_item_order_field)
        order_contact: list[tuple[str, str]] = []
        item_order: list[tuple[str, str]] = []
        for plan in plans:
            if not plan.deal_id or plan.error:
                continue
            previous = (plan.link_written or {}).get("contact")
            if not by_field and plan.contact_id and previous != plan.contact_id:
                order_contact.append((plan.deal_id, plan.contact_id))
            for item_id, crm_id in plan.item_ids.items():
                known = item_links.get(item_id)
                new = known is None or known.crm_id != crm_id or plan.link_written is None
                if new and not items_by_field:
                    item_order.append((crm_id, plan.deal_id))
        for what, pairs, method in (
            ("order->contact", order_contact, "link_orders_to_contacts"),
            ("line item->order", item_order, "link_line_items_to_orders"),
        ):
            if not pairs:
                continue
            # Looked up only when needed: a CRM without such links has no such method.
            results = getattr(self.crm, method)(pairs)
            out.calls += 1
            by_pair = dict(zip(pairs, results, strict=True))
            for plan in plans:
                for pair, result in by_pair.items():
                    if not result.ok and pair[0] in (plan.deal_id, *plan.item_ids.values()):
                        plan.fail(self.crm.platform, f"link {what}: {result.error}", result.details)

    def _archive_removed_items(
        self, plans: list[_OrderPlan], item_links: Mapping[str, Any], out: Outcome
    ) -> list[str]:
        """Line items an order edit removed are deleted in the CRM (HubSpot: to its recycle
        bin), so the deal shows what the order holds now. Returns their store ids (their links
        are dropped)."""
        object_type = self.ctx.schema.line_item_object
        removed: list[str] = []
        for plan in plans:
            if plan.error or plan.link_written is None:
                continue
            current = {item_id for item_id, _ in plan.items}
            removed += [i for i in plan.link_written.get("items", {}) if i not in current]
        crm_ids = [item_links[i].crm_id for i in removed if i in item_links]
        if crm_ids and object_type:
            self.crm.archive_objects(object_type, crm_ids)
            out.calls += 1
        return removed

    def _known_elsewhere(self, session: Session, emails) -> dict[str, str]:
        connection = session.get(Connection, self.ctx.connection_id)
        return identity.known_elsewhere(
            session,
            connection_id=self.ctx.connection_id,
            crm_platform=connection.crm_platform,
            crm_account=connection.crm_account,
            emails=emails,
        )

    def _join_profiles(self, session: Session, people: list[identity.Person]) -> None:
        if people:
            connection = session.get(Connection, self.ctx.connection_id)
            identity.join(
                session,
                connection_id=self.ctx.connection_id,
                crm_platform=connection.crm_platform,
                crm_account=connection.crm_account,
                people=people,
            )

    def _progress(self, out: Outcome) -> None:
        if self.on_progress:
            self.on_progress(out)


@dataclass
class _OrderPlan:
    order: Order
    schema: CrmSchema
    deal: dict[str, Any]
    items: list[tuple[str, dict[str, Any]]]
    link_written: dict[str, Any] | None
    contact_id: str | None = None
    deal_id: str | None = None
    new_contact: str | None = None
    item_ids: dict[str, str] = field(default_factory=dict)
    error: tuple[str, str, Any] | None = None

    @cached_property
    def line_items(self) -> dict[str, LineItem]:
        """The order's lines by store id."""
        return {item.source_id: item for item in self.order.line_items}

    def set_contact(self, contact_id: str | None) -> None:
        """Name the buyer's contact; where the CRM links by a lookup on the order record, the
        lookup is part of what we write (and so of the fingerprint)."""
        self.contact_id = contact_id
        lookup = self.schema.order_contact_field
        if lookup and contact_id:
            self.deal[lookup] = self.schema.contact_reference(contact_id)

    def fingerprint(self) -> dict[str, Any]:
        """What we write for this order; equal fingerprints mean no API call."""
        return {
            "deal": self.deal,
            "items": dict(self.items),
            "contact": self.contact_id,
        }

    def fail(self, platform: str, reason: str, details: Any) -> None:
        if self.error is None:
            self.error = (platform, reason, details)
