"""The REST API of each simulated store: ``/stores/<hash>/v2/...`` and ``/v3/...``.

Facts: ``../shared/reference/api-storefronts.md`` §3 (BC-ORD, BC-CUST, BC-RL, BC-WH, BC-ABOUT).
"""

from __future__ import annotations

import hmac
import math
import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from sandbox.bigcommerce.state import STATUS_NAMES, Customer, Hook, Order, State, Store

api = Blueprint("bigcommerce_api", __name__)
MAX_LIMIT = 250  # what happens above it is UNCONFIRMED: the simulator clamps
WRITE_LIMIT = 10  # v3 customers POST/PUT [BC-CUST]
HOOKS_PER_SCOPE = 10  # per store + client + scope [BC-WH]


class BcError(Exception):
    def __init__(self, status: int, message: str, *, v2: bool) -> None:
        super().__init__(message)
        self.status, self.message, self.v2 = status, message, v2


@api.errorhandler(BcError)
def _bc_error(error: BcError) -> tuple[Response, int]:
    if error.v2:  # v2 errors are arrays [BC-ORD]
        return jsonify([{"status": error.status, "message": error.message}]), error.status
    return jsonify(
        status=error.status, title=error.message, type="about:blank", errors={}
    ), error.status


def _state() -> State:
    return current_app.extensions["bigcommerce_state"]


def _v2() -> bool:
    return "/v2/" in request.path


def fmt2822(moment: datetime) -> str:
    return format_datetime(moment.astimezone(UTC))


def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.0001'))}"


# ------------------------------------------------------------------------------ gate
@api.before_request
def _gate() -> Response | None:
    state = _state()
    store_hash = (request.view_args or {}).get("store_hash", "")
    with state.lock:
        store = state.stores.get(store_hash)
        if store is None:
            raise BcError(404, "Store not found", v2=_v2())
        g.store = store
        now = state.clock()
        if now - store.window_start >= store.window_ms / 1000:
            store.window_start, store.used = now, 0
        store.calls.append(
            {"method": request.method, "path": request.path, "query": dict(request.args), "at": now}
        )
        token = request.headers.get("X-Auth-Token", "")
        if not hmac.compare_digest(token.encode(), store.access_token.encode()):
            raise BcError(401, "You are not authorized to make this request", v2=_v2())
        knobs = store.knobs
        if random.random() < knobs.load_429_rate:
            g.no_quota_headers = True
            raise BcError(429, "Too many requests", v2=_v2())
        # One quota per store, shared by every client [BC-RL].
        if store.used >= store.quota:
            raise BcError(429, "Too many requests", v2=_v2())
        store.used += 1
        error = random.random() < knobs.error_rate
        latency = knobs.latency_ms
    if latency:
        time.sleep(latency / 1000)
    if error:
        raise BcError(knobs.error_status, "Internal Server Error", v2=_v2())
    return None


@api.after_request
def _quota_headers(response: Response) -> Response:
    store: Store | None = g.get("store")
    if store is None:
        return response
    state = _state()
    with state.lock:
        if store.calls and store.calls[-1]["path"] == request.path:
            store.calls[-1].setdefault("status", response.status_code)
        if g.get("no_quota_headers"):
            return response
        reset_ms = max(0, int(store.window_start * 1000 + store.window_ms - state.clock() * 1000))
        response.headers["X-Rate-Limit-Time-Window-Ms"] = str(store.window_ms)
        response.headers["X-Rate-Limit-Time-Reset-Ms"] = str(reset_ms)
        response.headers["X-Rate-Limit-Requests-Quota"] = str(store.quota)
        response.headers["X-Rate-Limit-Requests-Left"] = str(max(0, store.quota - store.used))
        if response.status_code == 429:
            response.headers["X-Retry-After"] = str(math.ceil(reset_ms / 1000))
    return response


# ------------------------------------------------------------------------------ rendering
def order_json(store: Store, o: Order) -> dict[str, Any]:
    base = f"{request.host_url.rstrip('/')}/stores/{store.store_hash}/v2/orders/{o.id}"
    subtotal_tax = sum((o.tax_of(p.price_ex_tax) * p.quantity for p in o.products), Decimal(0))
    shipping_tax = o.tax_of(o.shipping_ex_tax)
    return {
        "id": o.id,
        "customer_id": o.customer_id,
        "date_created": fmt2822(o.created),
        "date_modified": fmt2822(o.modified),
        "date_shipped": "",
        "status_id": o.status_id,
        "status": STATUS_NAMES[o.status_id],
        "subtotal_ex_tax": money(o.subtotal_ex_tax),
        "subtotal_inc_tax": money(o.subtotal_ex_tax + subtotal_tax),
        "subtotal_tax": money(subtotal_tax),
        "base_shipping_cost": money(o.shipping_ex_tax),
        "shipping_cost_ex_tax": money(o.shipping_ex_tax),
        "shipping_cost_inc_tax": money(o.shipping_ex_tax + shipping_tax),
        "shipping_cost_tax": money(shipping_tax),
        "total_ex_tax": money(o.total_ex_tax),
        "total_inc_tax": money(o.total_inc_tax),
        "total_tax": money(o.total_tax),
        "items_total": sum(p.quantity for p in o.products),
        "items_shipped": 0,
        "payment_method": "Credit Card",
        "payment_status": "captured" if o.status_id in (2, 3, 9, 10, 11) else "",
        "refunded_amount": money(o.refunded),
        "discount_amount": "0.0000",
        "coupon_discount": "0.0000",
        "currency_id": 1,
        "currency_code": o.currency,
        "currency_exchange_rate": money(o.exchange_rate),
        "default_currency_id": 1,
        "default_currency_code": o.currency,
        "store_default_currency_code": o.store_currency,
        "is_tax_inclusive_pricing": False,
        "is_email_opt_in": o.is_email_opt_in,
        "is_deleted": o.is_deleted,
        "order_source": "www",
        "channel_id": 1,
        "customer_message": o.customer_message,
        "staff_notes": "",
        "billing_address": dict(o.billing),
        "products": {"url": f"{base}/products", "resource": f"/orders/{o.id}/products"},
        "shipping_addresses": {
            "url": f"{base}/shipping_addresses",
            "resource": f"/orders/{o.id}/shipping_addresses",
        },
        "coupons": {"url": f"{base}/coupons", "resource": f"/orders/{o.id}/coupons"},
    }


def product_rows(o: Order) -> list[dict[str, Any]]:
    rows = []
    for p in o.products:
        tax = o.tax_of(p.price_ex_tax)
        rows.append(
            {
                "id": p.id,
                "order_id": o.id,
                "product_id": p.product_id,
                "variant_id": p.product_id * 10,
                "name": p.name,
                "sku": p.sku,
                "type": "physical",
                "quantity": p.quantity,
                "base_price": money(p.price_ex_tax),
                "price_ex_tax": money(p.price_ex_tax),
                "price_inc_tax": money(p.price_ex_tax + tax),
                "price_tax": money(tax),
                "base_total": money(p.price_ex_tax * p.quantity),
                "total_ex_tax": money(p.price_ex_tax * p.quantity),
                "total_inc_tax": money((p.price_ex_tax + tax) * p.quantity),
                "total_tax": money(tax * p.quantity),
                "quantity_shipped": 0,
                "quantity_refunded": 0,
                "is_refunded": False,
                "refund_amount": "0.0000",
                "product_options": [],
                "applied_discounts": [],
                "order_address_id": o.id,
            }
        )
    return rows


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def customer_json(c: Customer, *, addresses: bool) -> dict[str, Any]:
    body = {
        "id": c.id,
        "email": c.email,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "company": c.company,
        "phone": c.phone,
        "notes": c.notes,
        "tax_exempt_category": "",
        "customer_group_id": 0,
        "date_created": iso(c.created),
        "date_modified": iso(c.modified),
        "registration_ip_address": "",
        "address_count": len(c.addresses),
        "attribute_count": 0,
        "authentication": {"force_password_reset": False},
        "accepts_product_review_abandoned_cart_emails": False,
        "origin_channel_id": 1,
        "channel_ids": [1],
    }
    if addresses:
        body["addresses"] = [dict(a) for a in c.addresses[:10]]
    return body


def hook_json(store: Store, h: Hook) -> dict[str, Any]:
    return {
        "id": h.id,
        "client_id": h.client_id,
        "store_hash": store.store_hash,
        "scope": h.scope,
        "destination": h.destination,
        "headers": dict(h.headers),
        "is_active": h.is_active,
        "created_at": h.created,
        "updated_at": h.updated,
    }


# ------------------------------------------------------------------------------ v2 orders
def _int_arg(name: str, default: int, *, v2: bool) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise BcError(400, f"The field '{name}' is invalid", v2=v2)
    return int(raw)


def _date_arg(name: str, *, v2: bool) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:  # RFC-2822 or ISO-8601 [BC-ORD min_date_modified]
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        try:
            parsed = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise BcError(400, f"The field '{name}' is invalid", v2=v2) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _sort(default: str, fields: dict[str, Any], *, v2: bool) -> tuple[Any, bool]:
    raw = request.args.get("sort", default)
    name, _, direction = raw.partition(":")
    if name not in fields or direction not in ("", "asc", "desc"):
        raise BcError(400, "The field 'sort' is invalid", v2=v2)
    return fields[name], direction == "desc"


def _empty() -> Response:
    store: Store = g.store
    if store.knobs.empty_page_status == 204:
        return Response(status=204)
    return jsonify([])


# query parameter, attribute, whether it is a lower bound (both inclusive: "min"/"max")
_V2_BOUNDS = (
    ("min_date_modified", "modified", True),
    ("max_date_modified", "modified", False),
    ("min_date_created", "created", True),
    ("max_date_created", "created", False),
)
_V3_BOUNDS = (
    ("date_modified:min", "modified", True),
    ("date_modified:max", "modified", False),
    ("date_created:min", "created", True),
    ("date_created:max", "created", False),
)


@api.get("/stores/<store_hash>/v2/orders")
def list_orders(store_hash: str) -> Response:
    store: Store = g.store
    with _state().lock:
        deleted = request.args.get("is_deleted")
        if deleted in ("true", "1"):
            items = [o for o in store.orders.values() if o.is_deleted]
        elif deleted in ("false", "0") or not store.knobs.list_archived:
            items = [o for o in store.orders.values() if not o.is_deleted]
        else:
            items = list(store.orders.values())
        for arg, attr, low in _V2_BOUNDS:
            bound = _date_arg(arg, v2=True)
            if bound is not None:
                items = [
                    o
                    for o in items
                    if (getattr(o, attr) >= bound if low else getattr(o, attr) <= bound)
                ]
        if request.args.get("customer_id"):
            items = [o for o in items if str(o.customer_id) == request.args["customer_id"]]
        if request.args.get("min_id"):
            items = [o for o in items if o.id >= _int_arg("min_id", 0, v2=True)]
        key, reverse = _sort(
            "id",
            {
                "id": lambda o: o.id,
                "date_created": lambda o: (o.created, o.id),
                "date_modified": lambda o: (o.modified, o.id),
                "status_id": lambda o: (o.status_id, o.id),
                "customer_id": lambda o: (o.customer_id, o.id),
            },
            v2=True,
        )
        items.sort(key=key, reverse=reverse)
        limit = min(max(_int_arg("limit", 50, v2=True), 1), MAX_LIMIT)
        page = max(_int_arg("page", 1, v2=True), 1)
        chunk = items[(page - 1) * limit : page * limit]
        if not chunk:
            return _empty()
        return jsonify([order_json(store, o) for o in chunk])


@api.get("/stores/<store_hash>/v2/orders/count")
def count_orders(store_hash: str) -> Response:
    store: Store = g.store
    with _state().lock:
        live = [o for o in store.orders.values() if not o.is_deleted]
        return jsonify({"count": len(live)})


def _order(store: Store, order_id: int) -> Order:
    order = store.orders.get(order_id)
    if order is None:
        raise BcError(404, "The requested resource was not found.", v2=True)
    return order


@api.get("/stores/<store_hash>/v2/orders/<int:order_id>")
def get_order(store_hash: str, order_id: int) -> Response:
    store: Store = g.store
    with _state().lock:
        return jsonify(order_json(store, _order(store, order_id)))


@api.get("/stores/<store_hash>/v2/orders/<int:order_id>/products")
def order_products(store_hash: str, order_id: int) -> Response:
    store: Store = g.store
    with _state().lock:
        rows = product_rows(_order(store, order_id))
        limit = min(max(_int_arg("limit", 50, v2=True), 1), MAX_LIMIT)
        page = max(_int_arg("page", 1, v2=True), 1)
        chunk = rows[(page - 1) * limit : page * limit]
        return jsonify(chunk) if chunk else _empty()


@api.get("/stores/<store_hash>/v2/orders/<int:order_id>/shipping_addresses")
def order_shipping(store_hash: str, order_id: int) -> Response:
    store: Store = g.store
    with _state().lock:
        order = _order(store, order_id)
        address = {k: v for k, v in order.billing.items() if k != "form_fields"}
        return jsonify([{"id": order.id, "order_id": order.id, **address, "items_total": 0}])


@api.delete("/stores/<store_hash>/v2/orders/<int:order_id>")
def archive_order(store_hash: str, order_id: int) -> Response:
    store: Store = g.store
    state = _state()
    with state.lock:
        order = _order(store, order_id)
        if not order.is_deleted:
            state.archive_order(store, order)
        return Response(status=204)


@api.put("/stores/<store_hash>/v2/orders/<int:order_id>")
def update_order(store_hash: str, order_id: int) -> Response:
    store: Store = g.store
    state = _state()
    data = request.get_json(silent=True) or {}
    with state.lock:
        order = _order(store, order_id)
        previous = order.status_id
        if "status_id" in data:
            if data["status_id"] not in STATUS_NAMES:
                raise BcError(400, "The field 'status_id' is invalid", v2=True)
            order.status_id = data["status_id"]
        if isinstance(data.get("customer_message"), str):
            order.customer_message = data["customer_message"]
        if data.get("is_deleted") is True:
            state.archive_order(store, order)
        else:
            state.save_order(store, order, created=False, previous_status=previous)
        return jsonify(order_json(store, order))


# ------------------------------------------------------------------------------ v3 customers
@api.get("/stores/<store_hash>/v3/customers")
def list_customers(store_hash: str) -> Response:
    store: Store = g.store
    with _state().lock:
        items = list(store.customers.values())
        if request.args.get("id:in"):
            wanted = {int(i) for i in request.args["id:in"].split(",") if i.strip().isdigit()}
            items = [c for c in items if c.id in wanted]
        if request.args.get("email:in"):
            emails = {e.strip().lower() for e in request.args["email:in"].split(",")}
            items = [c for c in items if c.email.lower() in emails]
        for arg, attr, low in _V3_BOUNDS:
            bound = _date_arg(arg, v2=False)
            if bound is not None:
                items = [
                    c
                    for c in items
                    if (getattr(c, attr) >= bound if low else getattr(c, attr) <= bound)
                ]
        key, reverse = _sort(
            "id",
            {
                "id": lambda c: c.id,
                "date_created": lambda c: (c.created, c.id),
                "date_modified": lambda c: (c.modified, c.id),
                "last_name": lambda c: (c.last_name, c.id),
            },
            v2=False,
        )
        items.sort(key=key, reverse=reverse)
        limit = min(max(_int_arg("limit", 50, v2=False), 1), MAX_LIMIT)
        page = max(_int_arg("page", 1, v2=False), 1)
        chunk = items[(page - 1) * limit : page * limit]
        pages = math.ceil(len(items) / limit) if items else 0
        addresses = "addresses" in request.args.get("include", "").split(",")
        base = request.base_url
        return jsonify(
            {
                "data": [customer_json(c, addresses=addresses) for c in chunk],
                "meta": {
                    "pagination": {
                        "total": len(items),
                        "count": len(chunk),
                        "per_page": limit,
                        "current_page": page,
                        "total_pages": pages,
                        "links": {
                            "previous": f"{base}?page={page - 1}&limit={limit}"
                            if page > 1
                            else None,
                            "current": f"{base}?page={page}&limit={limit}",
                            "next": f"{base}?page={page + 1}&limit={limit}"
                            if page < pages
                            else None,
                        },
                    }
                },
            }
        )


def _batch() -> list[dict[str, Any]]:
    data = request.get_json(silent=True)
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise BcError(422, "The request body must be an array of customers", v2=False)
    if len(data) > WRITE_LIMIT:
        raise BcError(413, f"At most {WRITE_LIMIT} customers per request", v2=False)
    return data


# Field lengths of customer_Put and address_Put [BC-CUST customers.v3.yml]: (min, max).
_CUSTOMER_LENGTHS = {"first_name": (1, 100), "last_name": (1, 100), "phone": (0, 50),
                     "company": (0, 255), "email": (3, 255)}  # fmt: skip
_ADDRESS_LENGTHS = {"first_name": (1, 255), "last_name": (1, 255), "company": (0, 255),
                    "city": (0, 100), "state_or_province": (0, 100), "postal_code": (0, 30),
                    "country_code": (2, 2), "phone": (0, 50)}  # fmt: skip
_ADDRESS_FIELDS = ("first_name", "last_name", "company", "address1", "address2", "city",
                   "state_or_province", "postal_code", "country_code", "phone",
                   "address_type")  # fmt: skip
# The identity of an address: a second address equal in these is a duplicate [BC-CUST
# "Update a Customer Address" notes].
_ADDRESS_IDENTITY = ("first_name", "last_name", "company", "phone", "address_type", "address1",
                     "address2", "city", "country_code", "state_or_province",
                     "postal_code")  # fmt: skip
_COUNTRY_NAMES = {"US": "United States", "CA": "Canada", "IE": "Ireland", "GB": "United Kingdom",
                  "DE": "Germany", "FR": "France", "AU": "Australia", "MX": "Mexico"}  # fmt: skip


def _check_lengths(index: int, item: dict[str, Any], lengths: dict[str, tuple[int, int]]) -> None:
    """422 for a field outside its schema length; the whole batch is refused (how BigCommerce
    words it is UNCONFIRMED)."""
    for key, (low, high) in lengths.items():
        if key not in item:
            continue
        value = item[key]
        if not isinstance(value, str) or not low <= len(value) <= high:
            raise BcError(
                422, f"[{index}].{key} must be a string of {low} to {high} characters", v2=False
            )


@api.put("/stores/<store_hash>/v3/customers")
def update_customers(store_hash: str) -> Response:
    store: Store = g.store
    state = _state()
    data = _batch()
    with state.lock:
        for index, item in enumerate(data):
            if int(item.get("id") or 0) not in store.customers:
                raise BcError(422, f"Customer {item.get('id')} not found", v2=False)
            _check_lengths(index, item, _CUSTOMER_LENGTHS)
            email = item.get("email")
            if email and any(
                c.email == email and c.id != item["id"] for c in store.customers.values()
            ):
                raise BcError(422, f"The email {email} is already in use", v2=False)
        updated = []
        for item in data:
            customer = store.customers[int(item["id"])]
            for key in ("email", "first_name", "last_name", "phone", "company", "notes"):
                if isinstance(item.get(key), str):
                    setattr(customer, key, item[key])
            state.save_customer(store, customer, created=False)
            updated.append(customer_json(customer, addresses=False))
        return jsonify({"data": updated, "meta": {}})


@api.put("/stores/<store_hash>/v3/customers/addresses")
def update_addresses(store_hash: str) -> Response:
    """Update addresses by id (the fields given; ``id`` required) [BC-CUST]. Refuses the
    whole batch (422) for an unknown id or a field outside its length. An address that would
    become identical to another of its customer's addresses is left unchanged and out of the
    answer. A change fires store/customer/address/updated with the address id and its
    customer's; store/customer/updated does not fire for address changes [BC-WH events], and
    the customer's date_modified stays (UNCONFIRMED whether BigCommerce moves it)."""
    store: Store = g.store
    state = _state()
    data = request.get_json(silent=True)
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise BcError(422, "The request body must be an array of addresses", v2=False)
    with state.lock:
        owners = {a["id"]: c for c in store.customers.values() for a in c.addresses}
        for index, item in enumerate(data):
            if not isinstance(item.get("id"), int) or item["id"] not in owners:
                raise BcError(422, f"Address {item.get('id')} not found", v2=False)
            _check_lengths(index, item, _ADDRESS_LENGTHS)
        saved = []
        for item in data:
            customer = owners[item["id"]]
            address = next(a for a in customer.addresses if a["id"] == item["id"])
            wanted = {**address, **{k: item[k] for k in _ADDRESS_FIELDS if k in item}}
            if "country_code" in item:
                code = item["country_code"]
                wanted["country"] = _COUNTRY_NAMES.get(code, code)
            identity = tuple(wanted.get(k) for k in _ADDRESS_IDENTITY)
            if any(
                a["id"] != address["id"] and tuple(a.get(k) for k in _ADDRESS_IDENTITY) == identity
                for a in customer.addresses
            ):
                continue  # a duplicate: unchanged, and absent from the answer
            if wanted != address:
                address.update(wanted)
                state.save_address(store, customer, address)
            saved.append(dict(address))
        return jsonify({"data": saved, "meta": {}})


@api.delete("/stores/<store_hash>/v3/customers")
def delete_customers(store_hash: str) -> Response:
    store: Store = g.store
    state = _state()
    with state.lock:
        raw = request.args.get("id:in")
        if raw:  # without the filter nothing happens [BC-CUST]
            for cid in (int(i) for i in raw.split(",") if i.strip().isdigit()):
                if cid in store.customers:
                    state.delete_customer(store, cid)
        return Response(status=204)


# ------------------------------------------------------------------------------ v3 hooks
_SCOPES = {
    "store/order/*", "store/order/created", "store/order/updated", "store/order/archived",
    "store/order/statusUpdated", "store/order/refund/created", "store/customer/*",
    "store/customer/created", "store/customer/updated", "store/customer/deleted",
    "store/customer/address/*", "store/customer/address/created",
    "store/customer/address/updated", "store/customer/address/deleted",
    "store/app/uninstalled",
}  # fmt: skip


def _client_id() -> str:
    # Hooks belong to the API account that made them [BC-WH]; the token stands for it here.
    return request.headers.get("X-Auth-Client") or g.store.client_id


@api.get("/stores/<store_hash>/v3/hooks")
def list_hooks(store_hash: str) -> Response:
    store: Store = g.store
    with _state().lock:
        mine = [h for h in store.hooks.values() if h.client_id == _client_id()]
        return jsonify({"data": [hook_json(store, h) for h in mine], "meta": {}})


@api.post("/stores/<store_hash>/v3/hooks")
def create_hook(store_hash: str) -> Response:
    store: Store = g.store
    state = _state()
    data = request.get_json(silent=True) or {}
    scope, destination = data.get("scope"), data.get("destination")
    if scope not in _SCOPES:
        raise BcError(422, "scope is invalid", v2=False)
    # The real platform requires https on port 443; the sandbox has no TLS, so loopback http
    # is accepted (and only that) [BC-WH].
    if not isinstance(destination, str) or not (
        destination.startswith("https://") or destination.startswith("http://127.0.0.1")
    ):
        raise BcError(422, "destination must be an https URL", v2=False)
    headers = data.get("headers") or {}
    if not isinstance(headers, dict):
        raise BcError(422, "headers must be an object", v2=False)
    with state.lock:
        client = _client_id()
        same = [h for h in store.hooks.values() if h.client_id == client and h.scope == scope]
        if any(h.destination == destination for h in same):
            raise BcError(422, "A hook with this scope and destination already exists", v2=False)
        if len(same) >= HOOKS_PER_SCOPE:
            raise BcError(422, f"At most {HOOKS_PER_SCOPE} hooks per scope", v2=False)
        now = int(state.clock())
        hook = Hook(store.next_id("hook"), client, scope, destination, {str(k): str(v) for k, v in headers.items()},
                    bool(data.get("is_active", True)), now, now)  # fmt: skip
        store.hooks[hook.id] = hook
        return jsonify({"data": hook_json(store, hook), "meta": {}})


@api.put("/stores/<store_hash>/v3/hooks/<int:hook_id>")
def update_hook(store_hash: str, hook_id: int) -> Response:
    store: Store = g.store
    state = _state()
    data = request.get_json(silent=True) or {}
    with state.lock:
        hook = store.hooks.get(hook_id)
        if hook is None or hook.client_id != _client_id():
            raise BcError(404, "Hook not found", v2=False)
        if "is_active" in data:
            hook.is_active = bool(data["is_active"])
            current_app.extensions["bigcommerce_dispatcher"].reset(hook)
        if isinstance(data.get("headers"), dict):
            hook.headers = {str(k): str(v) for k, v in data["headers"].items()}
        if isinstance(data.get("destination"), str):
            hook.destination = data["destination"]
        hook.updated = int(state.clock())
        return jsonify({"data": hook_json(store, hook), "meta": {}})


@api.delete("/stores/<store_hash>/v3/hooks/<int:hook_id>")
def delete_hook(store_hash: str, hook_id: int) -> Response:
    store: Store = g.store
    with _state().lock:
        hook = store.hooks.get(hook_id)
        if hook is None or hook.client_id != _client_id():
            raise BcError(404, "Hook not found", v2=False)
        del store.hooks[hook_id]
        return jsonify({"data": hook_json(store, hook), "meta": {}})
