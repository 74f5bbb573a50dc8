"""Control endpoints (/_sandbox/sites/...): what a merchant, the host and a test harness do to a
site. JSON in and out; 400 with {"error"} for a malformed request, 404 for an unknown site or
record. Every change goes through the state's write path, so it bumps modification times and
queues webhooks exactly as a change in the WooCommerce admin would.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, fields
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.controls import BadRequest, add_log_routes, answer, count, json_body
from sandbox.woocommerce.api import (
    WcError,
    apply_customer_changes,
    customer_json,
    money,
    order_json,
    webhook_json,
)
from sandbox.woocommerce.state import Generator, Knobs, Site, State, seed

control = Blueprint("woocommerce_control", __name__)
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
_STATUSES = {"pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed"}


control.register_error_handler(BadRequest, answer)


@control.errorhandler(WcError)
def _refused(error: WcError) -> tuple[Response, int]:
    return jsonify(error=error.message, code=error.code), 422


def _state() -> State:
    return current_app.extensions["woocommerce_state"]


def _site(name: str) -> Site:
    site = _state().sites.get(name)
    if site is None:
        raise BadRequest(f"unknown site {name}", 404)
    return site


def _view(site: Site) -> dict[str, Any]:
    return {
        "name": site.name,
        "url": site.url,
        "timezone": site.timezone,
        "currency": site.currency,
        "country": site.country,
        "customers": len(site.customers),
        "orders": len(site.orders),
        "knobs": asdict(site.knobs),
    }


@control.post("/sites")
def create_site() -> tuple[Response, int]:
    data = json_body()
    name = str(data.get("name", ""))
    if not _NAME.match(name):
        raise BadRequest("name must be lowercase letters, digits and dashes")
    for key in ("consumer_key", "consumer_secret"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise BadRequest(f"{key} is required")
    timezone = str(data.get("timezone", "America/Los_Angeles"))
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest("timezone must be an IANA time zone name") from None
    currency = str(data.get("currency", "USD"))
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise BadRequest("currency must be an ISO 4217 code")
    state = _state()
    with state.lock:
        if name in state.sites:
            raise BadRequest(f"site {name} exists", 409)
        site = Site(
            name=name,
            # The site URL as WordPress reports it; OAuth signatures are over this very URL.
            url=f"{request.host_url.rstrip('/')}/sites/{name}",
            consumer_key=data["consumer_key"],
            consumer_secret=data["consumer_secret"],
            timezone=timezone,
            currency=currency,
            country=str(data.get("country", "US")),
            webhook_failure_limit=count(data, "webhook_failure_limit", 5),
        )
        state.sites[name] = site
        return jsonify(_view(site)), 201


@control.get("/sites")
def list_sites() -> Response:
    state = _state()
    with state.lock:
        return jsonify({"sites": [_view(s) for s in state.sites.values()]})


@control.post("/sites/<name>/seed")
def seed_site(name: str) -> Response:
    data = json_body()
    state = _state()
    with state.lock:
        site = _site(name)
        return jsonify(
            seed(state, site, count(data, "customers"), count(data, "orders"), count(data, "seed"))
        )


@control.post("/sites/<name>/activity")
def activity(name: str) -> Response:
    data = json_body()
    counts = {k: count(data, k) for k in ("new_customers", "changed_customers", "new_orders",
                                          "changed_orders", "deleted_customers", "deleted_orders")}  # fmt: skip
    state = _state()
    with state.lock:
        site = _site(name)
        rng = random.Random(count(data, "seed"))
        gen = Generator(site, rng, state.now())
        done: dict[str, list[int]] = {k: [] for k in counts}
        for _ in range(counts["new_customers"]):
            customer = gen.customer(state.now())
            state.save_customer(site, customer, created=True)
            done["new_customers"].append(customer.id)
        customers = sorted(site.customers)
        for cid in rng.sample(customers, min(counts["changed_customers"], len(customers))):
            customer = site.customers[cid]
            customer.last_name = rng.choice(["Nowak", "Schäfer", "Moreau", "Costa", "Ivanova"])
            customer.billing["last_name"] = customer.last_name
            state.save_customer(site, customer, created=False)
            done["changed_customers"].append(cid)
        for _ in range(counts["new_orders"]):
            buyer = (
                site.customers[rng.choice(sorted(site.customers))]
                if site.customers and rng.random() > 0.15
                else None
            )
            order = gen.order(state.now(), buyer)
            state.save_order(site, order, created=True)
            done["new_orders"].append(order.id)
        live = sorted(
            o
            for o, order in site.orders.items()
            if order.status != "trash" and o not in done["new_orders"]
        )
        changed = rng.sample(live, min(counts["changed_orders"], len(live)))
        for oid in changed:
            order = site.orders[oid]
            order.status = rng.choice(["processing", "completed", "on-hold", "cancelled"])
            order.customer_note = rng.choice(["", "Bitte klingeln", "Geschenk"])
            state.save_order(site, order, created=False)
            done["changed_orders"].append(oid)
        rest = [o for o in live if o not in changed]
        for oid in rng.sample(rest, min(counts["deleted_orders"], len(rest))):
            state.trash_order(site, site.orders[oid])
            done["deleted_orders"].append(oid)
        untouched = [c for c in sorted(site.customers) if c not in done["changed_customers"]]
        for cid in rng.sample(untouched, min(counts["deleted_customers"], len(untouched))):
            state.delete_customer(site, cid)
            done["deleted_customers"].append(cid)
        return jsonify(done)


@control.patch("/sites/<name>/customers/<int:customer_id>")
def change_customer(name: str, customer_id: int) -> Response:
    data = json_body()
    unknown = set(data) - {"email", "first_name", "last_name", "billing", "shipping"}
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}")
    state = _state()
    with state.lock:
        site = _site(name)
        customer = site.customers.get(customer_id)
        if customer is None:
            raise BadRequest(f"unknown customer {customer_id}", 404)
        apply_customer_changes(site, customer, data)
        state.save_customer(site, customer, created=False)
        return jsonify(customer_json(site, customer))


@control.delete("/sites/<name>/customers/<int:customer_id>")
def remove_customer(name: str, customer_id: int) -> Response:
    state = _state()
    with state.lock:
        site = _site(name)
        if customer_id not in site.customers:
            raise BadRequest(f"unknown customer {customer_id}", 404)
        state.delete_customer(site, customer_id)
        return jsonify({"deleted": customer_id})


@control.post("/sites/<name>/orders")
def create_order(name: str) -> tuple[Response, int]:
    data = json_body()
    state = _state()
    with state.lock:
        site = _site(name)
        buyer = None
        if data.get("customer_id") is not None:
            buyer = site.customers.get(count(data, "customer_id"))
            if buyer is None:
                raise BadRequest("customer_id must name an existing customer", 404)
        gen = Generator(site, random.Random(count(data, "seed")), state.now())
        order = gen.order(state.now(), buyer)
        if buyer is None and isinstance(data.get("email"), str):
            order.billing["email"] = data["email"]
        state.save_order(site, order, created=True)
        return jsonify(order_json(site, order)), 201


@control.patch("/sites/<name>/orders/<int:order_id>")
def change_order(name: str, order_id: int) -> Response:
    data = json_body()
    unknown = set(data) - {"status", "customer_note", "refund"}
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}")
    state = _state()
    with state.lock:
        site = _site(name)
        order = site.orders.get(order_id)
        if order is None or order.status == "trash":
            raise BadRequest(f"unknown order {order_id}", 404)
        if "status" in data:
            if data["status"] not in _STATUSES:
                raise BadRequest(f"status must be one of {sorted(_STATUSES)}")
            order.status = data["status"]
        if "customer_note" in data:
            order.customer_note = str(data["customer_note"])
        if "refund" in data:
            amount = Decimal(str(data["refund"]))
            refunded = sum((a for _, _, a in order.refunds), Decimal(0))
            if amount <= 0 or amount > order.total - refunded:
                raise BadRequest("refund must be positive and at most what is left")
            order.refunds.append((site.next_id("refund"), str(data.get("reason", "")), amount))
            if amount == order.total - refunded:
                order.status = "refunded"
        state.save_order(site, order, created=False)
        return jsonify(order_json(site, order))


@control.delete("/sites/<name>/orders/<int:order_id>")
def trash_order(name: str, order_id: int) -> Response:
    state = _state()
    with state.lock:
        site = _site(name)
        order = site.orders.get(order_id)
        if order is None or order.status == "trash":
            raise BadRequest(f"unknown order {order_id}", 404)
        state.trash_order(site, order)
        return jsonify({"trashed": order_id})


@control.get("/sites/<name>/knobs")
def get_knobs(name: str) -> Response:
    with _state().lock:
        return jsonify(asdict(_site(name).knobs))


@control.patch("/sites/<name>/knobs")
def set_knobs(name: str) -> Response:
    data = json_body()
    known = {f.name for f in fields(Knobs)}
    unknown = set(data) - known
    if unknown:
        raise BadRequest(f"unknown knobs {sorted(unknown)}")
    for key in ("error_rate", "webhook_drop_rate", "webhook_duplicate_rate"):
        if key in data and not (isinstance(data[key], int | float) and 0 <= data[key] <= 1):
            raise BadRequest(f"{key} must be between 0 and 1")
    for key in ("latency_ms", "webhook_delay_ms", "webhook_timeout_s"):
        if key in data and not (isinstance(data[key], int | float) and data[key] >= 0):
            raise BadRequest(f"{key} must be a number >= 0")
    if "error_status" in data and data["error_status"] not in (500, 502, 503, 504):
        raise BadRequest("error_status must be 500, 502, 503 or 504")
    if "page_past_end" in data and data["page_past_end"] not in ("empty", "error"):
        raise BadRequest("page_past_end must be empty or error")
    limit = data.get("rate_limit_per_minute")
    if limit is not None and not (isinstance(limit, int) and limit >= 1):
        raise BadRequest("rate_limit_per_minute must be an integer >= 1 or null")
    with _state().lock:
        site = _site(name)
        for key, value in data.items():
            setattr(site.knobs, key, value)
        return jsonify(asdict(site.knobs))


@control.get("/sites/<name>/webhooks")
def webhooks(name: str) -> Response:
    with _state().lock:
        site = _site(name)
        return jsonify(
            {
                "webhooks": [
                    {**webhook_json(site, w), "failures": w.failures}
                    for w in site.webhooks.values()
                ]
            }
        )


@control.get("/sites/<name>/dump")
def dump(name: str) -> Response:
    with _state().lock:
        site = _site(name)
        return jsonify(
            {
                "customers": [customer_json(site, c) for _, c in sorted(site.customers.items())],
                "orders": [order_json(site, o) for _, o in sorted(site.orders.items())],
            }
        )


@control.get("/sites/<name>/summary")
def summary(name: str) -> Response:
    """The platform-neutral truth every store simulator offers (see demo.compare)."""
    with _state().lock:
        site = _site(name)
        return jsonify(
            {
                "customers": [
                    {
                        "id": str(c.id),
                        "email": c.email,
                        "first_name": c.first_name,
                        "last_name": c.last_name,
                    }
                    for _, c in sorted(site.customers.items())
                ],
                "orders": [
                    {
                        "id": str(o.id),
                        "name": f"#{o.number}",
                        "email": o.billing.get("email") or None,
                        "customer_id": str(o.customer_id) if o.customer_id else None,
                        "total": money(o.total),
                        "currency": o.currency,
                        "line_items": len(o.line_items),
                        "removed": o.status == "trash",
                    }
                    for _, o in sorted(site.orders.items())
                ],
            }
        )


add_log_routes(control, "/sites", _site, lambda: _state().lock)
