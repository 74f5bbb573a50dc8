"""Control endpoints (/_sandbox/stores/...): what a merchant, the platform and a test harness
do to a store. JSON in and out; 400 with {"error"} for a malformed request, 404 for an unknown
store or record. Every change goes through the state's write path, so it bumps
``date_modified`` and sends the store's webhooks as a change in the control panel would.
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import asdict, fields
from typing import Any

from flask import Blueprint, Response, current_app, jsonify

from sandbox.bigcommerce.api import customer_json, money, order_json, product_rows
from sandbox.bigcommerce.state import (
    PLAN_QUOTAS,
    STATUS_NAMES,
    Generator,
    Knobs,
    State,
    Store,
    seed,
)
from sandbox.controls import BadRequest, add_log_routes, answer, count, json_body

control = Blueprint("bigcommerce_control", __name__)
_HASH = re.compile(r"^[a-z0-9]{1,64}$")


control.register_error_handler(BadRequest, answer)


def _state() -> State:
    return current_app.extensions["bigcommerce_state"]


def _store(store_hash: str) -> Store:
    store = _state().stores.get(store_hash)
    if store is None:
        raise BadRequest(f"unknown store {store_hash}", 404)
    return store


def _view(store: Store) -> dict[str, Any]:
    return {
        "store_hash": store.store_hash,
        "store_id": store.store_id,
        "currency": store.currency,
        "quota": store.quota,
        "window_ms": store.window_ms,
        "customers": len(store.customers),
        "orders": len(store.orders),
        "knobs": asdict(store.knobs),
    }


@control.post("/stores")
def create_store() -> tuple[Response, int]:
    data = json_body()
    store_hash = str(data.get("store_hash", ""))
    if not _HASH.match(store_hash):
        raise BadRequest("store_hash must be lowercase letters and digits")
    for key in ("access_token", "client_secret"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise BadRequest(f"{key} is required")
    plan = data.get("plan", "standard")
    if plan not in PLAN_QUOTAS:
        raise BadRequest(f"plan must be one of {sorted(PLAN_QUOTAS)}")
    currency = str(data.get("currency", "USD"))
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise BadRequest("currency must be an ISO 4217 code")
    state = _state()
    with state.lock:
        if store_hash in state.stores:
            raise BadRequest(f"store {store_hash} exists", 409)
        store = Store(
            store_hash=store_hash,
            store_id=str(1_000_000 + len(state.stores)),
            access_token=data["access_token"],
            client_id=str(data.get("client_id") or secrets.token_hex(8)),
            client_secret=data["client_secret"],
            currency=currency,
            quota=count(data, "quota", PLAN_QUOTAS[plan]) or PLAN_QUOTAS[plan],
            window_ms=count(data, "window_ms", 30_000) or 30_000,
        )
        state.stores[store_hash] = store
        return jsonify(_view(store)), 201


@control.get("/stores")
def list_stores() -> Response:
    state = _state()
    with state.lock:
        return jsonify({"stores": [_view(s) for s in state.stores.values()]})


@control.post("/stores/<store_hash>/seed")
def seed_store(store_hash: str) -> Response:
    data = json_body()
    state = _state()
    with state.lock:
        store = _store(store_hash)
        return jsonify(
            seed(state, store, count(data, "customers"), count(data, "orders"), count(data, "seed"))
        )


@control.post("/stores/<store_hash>/activity")
def activity(store_hash: str) -> Response:
    data = json_body()
    counts = {k: count(data, k) for k in ("new_customers", "changed_customers", "new_orders",
                                          "changed_orders", "deleted_customers", "deleted_orders")}  # fmt: skip
    state = _state()
    with state.lock:
        store = _store(store_hash)
        rng = random.Random(count(data, "seed"))
        gen = Generator(store, rng)
        done: dict[str, list[int]] = {k: [] for k in counts}
        for _ in range(counts["new_customers"]):
            customer = gen.customer(state.now())
            state.save_customer(store, customer, created=True)
            done["new_customers"].append(customer.id)
        ids = sorted(store.customers)
        for cid in rng.sample(ids, min(counts["changed_customers"], len(ids))):
            customer = store.customers[cid]
            customer.last_name = rng.choice(["Nakamura", "Ó Briain", "Schmidt", "Garcia", "Lee"])
            state.save_customer(store, customer, created=False)
            done["changed_customers"].append(cid)
        for _ in range(counts["new_orders"]):
            buyer = (
                store.customers[rng.choice(sorted(store.customers))]
                if store.customers and rng.random() > 0.1
                else None
            )
            order = gen.order(state.now(), buyer)
            state.save_order(store, order, created=True)
            done["new_orders"].append(order.id)
        live = sorted(
            o
            for o, order in store.orders.items()
            if not order.is_deleted and o not in done["new_orders"]
        )
        changed = rng.sample(live, min(counts["changed_orders"], len(live)))
        for oid in changed:
            order = store.orders[oid]
            previous = order.status_id
            order.status_id = rng.choice([2, 9, 10, 11])
            state.save_order(store, order, created=False, previous_status=previous)
            done["changed_orders"].append(oid)
        rest = [o for o in live if o not in changed]
        for oid in rng.sample(rest, min(counts["deleted_orders"], len(rest))):
            state.archive_order(store, store.orders[oid])
            done["deleted_orders"].append(oid)
        untouched = [c for c in sorted(store.customers) if c not in done["changed_customers"]]
        for cid in rng.sample(untouched, min(counts["deleted_customers"], len(untouched))):
            state.delete_customer(store, cid)
            done["deleted_customers"].append(cid)
        return jsonify(done)


@control.patch("/stores/<store_hash>/customers/<int:customer_id>")
def change_customer(store_hash: str, customer_id: int) -> Response:
    data = json_body()
    allowed = {"email", "first_name", "last_name", "phone", "company", "notes"}
    unknown = set(data) - allowed
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}")
    state = _state()
    with state.lock:
        store = _store(store_hash)
        customer = store.customers.get(customer_id)
        if customer is None:
            raise BadRequest(f"unknown customer {customer_id}", 404)
        for key, value in data.items():
            if not isinstance(value, str):
                raise BadRequest(f"{key} must be a string")
            setattr(customer, key, value)
        state.save_customer(store, customer, created=False)
        return jsonify(customer_json(customer, addresses=True))


@control.delete("/stores/<store_hash>/customers/<int:customer_id>")
def remove_customer(store_hash: str, customer_id: int) -> Response:
    state = _state()
    with state.lock:
        store = _store(store_hash)
        if customer_id not in store.customers:
            raise BadRequest(f"unknown customer {customer_id}", 404)
        state.delete_customer(store, customer_id)
        return jsonify({"deleted": customer_id})


@control.post("/stores/<store_hash>/orders")
def create_order(store_hash: str) -> tuple[Response, int]:
    data = json_body()
    state = _state()
    with state.lock:
        store = _store(store_hash)
        buyer = None
        if data.get("customer_id") is not None:
            buyer = store.customers.get(count(data, "customer_id"))
            if buyer is None:
                raise BadRequest("customer_id must name an existing customer", 404)
        order = Generator(store, random.Random(count(data, "seed"))).order(state.now(), buyer)
        if buyer is None and isinstance(data.get("email"), str):
            order.billing["email"] = data["email"]
        state.save_order(store, order, created=True)
        return jsonify(order_json(store, order)), 201


@control.patch("/stores/<store_hash>/orders/<int:order_id>")
def change_order(store_hash: str, order_id: int) -> Response:
    data = json_body()
    unknown = set(data) - {"status_id", "customer_message"}
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}")
    state = _state()
    with state.lock:
        store = _store(store_hash)
        order = store.orders.get(order_id)
        if order is None or order.is_deleted:
            raise BadRequest(f"unknown order {order_id}", 404)
        previous = order.status_id
        if "status_id" in data:
            if data["status_id"] not in STATUS_NAMES:
                raise BadRequest(f"status_id must be one of {sorted(STATUS_NAMES)}")
            order.status_id = data["status_id"]
        if "customer_message" in data:
            order.customer_message = str(data["customer_message"])
        state.save_order(store, order, created=False, previous_status=previous)
        return jsonify(order_json(store, order))


@control.delete("/stores/<store_hash>/orders/<int:order_id>")
def archive(store_hash: str, order_id: int) -> Response:
    state = _state()
    with state.lock:
        store = _store(store_hash)
        order = store.orders.get(order_id)
        if order is None or order.is_deleted:
            raise BadRequest(f"unknown order {order_id}", 404)
        state.archive_order(store, order)
        return jsonify({"archived": order_id})


@control.get("/stores/<store_hash>/knobs")
def get_knobs(store_hash: str) -> Response:
    with _state().lock:
        store = _store(store_hash)
        return jsonify({**asdict(store.knobs), "quota": store.quota, "window_ms": store.window_ms})


@control.patch("/stores/<store_hash>/knobs")
def set_knobs(store_hash: str) -> Response:
    data = json_body()
    known = {f.name for f in fields(Knobs)} | {"quota", "window_ms"}
    unknown = set(data) - known
    if unknown:
        raise BadRequest(f"unknown knobs {sorted(unknown)}")
    for key in ("error_rate", "webhook_drop_rate", "webhook_duplicate_rate", "load_429_rate"):
        if key in data and not (isinstance(data[key], int | float) and 0 <= data[key] <= 1):
            raise BadRequest(f"{key} must be between 0 and 1")
    for key in ("latency_ms", "webhook_delay_ms", "webhook_timeout_s"):
        if key in data and not (isinstance(data[key], int | float) and data[key] >= 0):
            raise BadRequest(f"{key} must be a number >= 0")
    if "webhook_time_scale" in data and not (
        isinstance(data["webhook_time_scale"], int | float) and data["webhook_time_scale"] > 0
    ):
        raise BadRequest("webhook_time_scale must be a number > 0")
    if "error_status" in data and data["error_status"] not in (500, 502, 503, 504):
        raise BadRequest("error_status must be 500, 502, 503 or 504")
    if "empty_page_status" in data and data["empty_page_status"] not in (200, 204):
        raise BadRequest("empty_page_status must be 200 or 204")
    if "list_archived" in data and not isinstance(data["list_archived"], bool):
        raise BadRequest("list_archived must be true or false")
    for key in ("quota", "window_ms"):
        if key in data and not (isinstance(data[key], int) and data[key] >= 1):
            raise BadRequest(f"{key} must be an integer >= 1")
    with _state().lock:
        store = _store(store_hash)
        for key, value in data.items():
            setattr(store if key in ("quota", "window_ms") else store.knobs, key, value)
        return jsonify({**asdict(store.knobs), "quota": store.quota, "window_ms": store.window_ms})


@control.get("/stores/<store_hash>/hooks")
def hooks(store_hash: str) -> Response:
    with _state().lock:
        store = _store(store_hash)
        return jsonify({"hooks": [{"id": h.id, "scope": h.scope, "destination": h.destination,
                                   "is_active": h.is_active} for h in store.hooks.values()]})  # fmt: skip


@control.get("/stores/<store_hash>/dump")
def dump(store_hash: str) -> Response:
    with _state().lock:
        store = _store(store_hash)
        return jsonify(
            {
                "customers": [
                    customer_json(c, addresses=True) for _, c in sorted(store.customers.items())
                ],
                "orders": [
                    {**order_json(store, o), "line_items": product_rows(o)}
                    for _, o in sorted(store.orders.items())
                ],
            }
        )


@control.get("/stores/<store_hash>/summary")
def summary(store_hash: str) -> Response:
    """The platform-neutral truth every store simulator offers (see demo.compare)."""
    with _state().lock:
        store = _store(store_hash)
        return jsonify(
            {
                "customers": [
                    {
                        "id": str(c.id),
                        "email": c.email,
                        "first_name": c.first_name,
                        "last_name": c.last_name,
                    }
                    for _, c in sorted(store.customers.items())
                ],
                "orders": [
                    {
                        "id": str(o.id),
                        "name": f"#{o.id}",
                        "email": o.billing.get("email") or None,
                        "customer_id": str(o.customer_id) if o.customer_id else None,
                        "total": money(o.total_inc_tax),
                        "currency": o.currency,
                        "line_items": len(o.products),
                        "removed": o.is_deleted,
                    }
                    for _, o in sorted(store.orders.items())
                ],
            }
        )


add_log_routes(control, "/stores", _store, lambda: _state().lock)
