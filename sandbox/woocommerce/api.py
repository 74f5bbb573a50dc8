"""The REST API v3 of each simulated site: ``/sites/<name>/wp-json/wc/v3/...``.

Facts: ``../shared/reference/api-storefronts.md`` §2 (WC-DOCS, WC-SRC, WP-PAG).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, current_app, jsonify, request

from sandbox.woocommerce.state import Customer, Order, Site, State, Webhook, gmt

api = Blueprint("woocommerce_api", __name__)
MAX_PER_PAGE = 100
BATCH_LIMIT = (
    100  # woocommerce_rest_batch_items_limit default [WC-SRC class-wc-rest-controller.php]
)
OAUTH_WINDOW = 15 * 60  # seconds a timestamp stays valid [WC-DOCS _authentication.md]
TOPICS = {
    "customer.created", "customer.updated", "customer.deleted",
    "order.created", "order.updated", "order.deleted", "order.restored",
}  # fmt: skip


class WcError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@api.errorhandler(WcError)
def _wc_error(error: WcError) -> tuple[Response, int]:
    # {code, message, data: {status}} [WC-DOCS _introduction.md "Errors"]
    return jsonify(
        code=error.code, message=error.message, data={"status": error.status}
    ), error.status


def _state() -> State:
    return current_app.extensions["woocommerce_state"]


# ------------------------------------------------------------------------------ rendering
def money(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def customer_json(site: Site, c: Customer) -> dict[str, Any]:
    return {
        "id": c.id,
        "date_created": site.local(c.created),
        "date_created_gmt": gmt(c.created),
        "date_modified": site.local(c.modified),
        "date_modified_gmt": gmt(c.modified),
        "email": c.email,
        "first_name": c.first_name,
        "last_name": c.last_name,
        "role": c.role,
        "username": c.username,
        "billing": dict(c.billing),
        "shipping": dict(c.shipping),
        "is_paying_customer": any(o.customer_id == c.id for o in site.orders.values()),
        "avatar_url": "https://secure.gravatar.com/avatar/?s=96&d=mm&r=g",
        "meta_data": list(c.meta_data),
    }


def order_json(site: Site, o: Order) -> dict[str, Any]:
    lines = []
    for li in o.line_items:
        subtotal = li.price * li.quantity
        lines.append(
            {
                "id": li.id,
                "name": li.name,
                "product_id": li.product_id,
                "variation_id": li.variation_id,
                "quantity": li.quantity,
                "tax_class": "",
                "subtotal": money(subtotal),
                "subtotal_tax": money(subtotal * o.tax_rate),
                "total": money(subtotal),
                "total_tax": money(subtotal * o.tax_rate),
                "taxes": [],
                "meta_data": [],
                "sku": li.sku,
                # A JSON number here, as in the docs' examples, unlike every other amount.
                "price": float(li.price),
            }
        )
    return {
        "id": o.id,
        "parent_id": 0,
        "number": str(o.number),
        "order_key": f"wc_order_{o.id:08d}",
        "created_via": "checkout",
        "version": "9.4.0",
        "status": o.status,
        "currency": o.currency,
        "date_created": site.local(o.created),
        "date_created_gmt": gmt(o.created),
        "date_modified": site.local(o.modified),
        "date_modified_gmt": gmt(o.modified),
        "discount_total": money(o.discount_total),
        "discount_tax": "0.00",
        "shipping_total": money(o.shipping_total),
        "shipping_tax": "0.00",
        "cart_tax": money(o.total_tax),
        "total": money(o.total),
        "total_tax": money(o.total_tax),
        "prices_include_tax": False,
        "customer_id": o.customer_id,
        "customer_ip_address": "",
        "customer_user_agent": "",
        "customer_note": o.customer_note,
        "billing": dict(o.billing),
        "shipping": dict(o.shipping),
        "payment_method": "bacs",
        "payment_method_title": "Direct bank transfer",
        "transaction_id": "",
        "date_paid": site.local(o.paid),
        "date_paid_gmt": gmt(o.paid),
        "date_completed": site.local(o.completed),
        "date_completed_gmt": gmt(o.completed),
        "cart_hash": "",
        "meta_data": [],
        "line_items": lines,
        "tax_lines": [],
        "shipping_lines": [],
        "fee_lines": [],
        "coupon_lines": [],
        # Refund totals are negative in order bodies [WC-DOCS _orders.md "refunds"].
        "refunds": [
            {"id": rid, "reason": why, "total": f"-{money(amount)}"}
            for rid, why, amount in o.refunds
        ],
        "_links": {"self": [{"href": f"{site.url}/wp-json/wc/v3/orders/{o.id}"}]},
    }


def webhook_json(site: Site, w: Webhook) -> dict[str, Any]:
    return {
        "id": w.id,
        "name": w.name,
        "status": w.status,
        "topic": w.topic,
        "resource": w.topic.split(".")[0],
        "event": w.topic.split(".")[1],
        "hooks": [],
        "delivery_url": w.delivery_url,
        "date_created": site.local(w.created),
        "date_created_gmt": gmt(w.created),
        "date_modified": site.local(w.modified),
        "date_modified_gmt": gmt(w.modified),
    }


# ------------------------------------------------------------------------------ authentication
def _enc(value: str) -> str:
    """RFC 3986 percent-encoding, as OAuth 1.0a section 3.6 requires."""
    return quote(value, safe="~")


def oauth_signature(method: str, base_url: str, params: list[tuple[str, str]], secret: str,
                    algorithm: str) -> str:  # fmt: skip
    """OAuth 1.0a (RFC 5849 section 3.4) as WooCommerce checks it: the base string is the
    method, the URL as the site reports it and the sorted, encoded parameters (query string
    only: the body is not signed); the key is the consumer secret followed by "&"."""
    normalized = sorted((_enc(k), _enc(v)) for k, v in params)
    joined = "&".join(f"{k}={v}" for k, v in normalized)
    base = "&".join([method.upper(), _enc(base_url), _enc(joined)])
    digest = hashlib.sha256 if algorithm == "HMAC-SHA256" else hashlib.sha1
    return base64.b64encode(
        hmac.new(f"{secret}&".encode(), base.encode(), digest).digest()
    ).decode()


def _authenticate(site: Site, state: State) -> None:
    if request.scheme == "https":
        auth = request.authorization
        if auth and auth.username == site.consumer_key and auth.password == site.consumer_secret:
            return
    args = request.args
    if "oauth_signature" not in args:
        # Basic auth and query-string keys are only honoured over HTTPS [WC-DOCS
        # _authentication.md]; over HTTP there is nothing else to accept.
        raise WcError(401, "woocommerce_rest_cannot_view", "Sorry, you cannot list resources.")
    if args.get("oauth_consumer_key") != site.consumer_key:
        raise WcError(401, "woocommerce_rest_authentication_error", "Consumer key is invalid.")
    algorithm = args.get("oauth_signature_method", "")
    if algorithm not in ("HMAC-SHA1", "HMAC-SHA256"):
        raise WcError(401, "woocommerce_rest_authentication_error", "Invalid signature method.")
    try:
        stamp = int(args.get("oauth_timestamp", ""))
    except ValueError:
        raise WcError(401, "woocommerce_rest_authentication_error", "Invalid timestamp.") from None
    now = state.clock()
    if abs(now - stamp) > OAUTH_WINDOW:
        raise WcError(401, "woocommerce_rest_authentication_error", "Invalid timestamp.")
    params = [(k, v) for k, v in args.items(multi=True) if k != "oauth_signature"]
    expected = oauth_signature(request.method, request.base_url, params, site.consumer_secret,
                               algorithm)  # fmt: skip
    if not hmac.compare_digest(expected, args["oauth_signature"]):
        raise WcError(
            401,
            "woocommerce_rest_authentication_error",
            "Invalid signature - provided signature does not match.",
        )
    nonce = args.get("oauth_nonce", "")
    site.nonces = {n: t for n, t in site.nonces.items() if t > now - OAUTH_WINDOW}
    if not nonce or nonce in site.nonces:
        raise WcError(
            401,
            "woocommerce_rest_authentication_error",
            "Invalid nonce - nonce has already been used.",
        )
    site.nonces[nonce] = now


def _site(name: str) -> Site:
    site = _state().sites.get(name)
    if site is None:
        raise WcError(
            404, "rest_no_route", "No route was found matching the URL and request method."
        )
    return site


@api.before_request
def _gate() -> None:
    state = _state()
    name = (request.view_args or {}).get("name", "")
    with state.lock:
        site = _site(name)
        knobs = site.knobs
        site.calls.append(
            {
                "method": request.method,
                "path": request.path,
                "query": {k: v for k, v in request.args.items() if not k.startswith("oauth_")},
                "at": state.clock(),
            }
        )
        if knobs.rate_limit_per_minute is not None:
            now = state.clock()
            site.recent_calls = [t for t in site.recent_calls if t > now - 60]
            if len(site.recent_calls) >= knobs.rate_limit_per_minute:
                retry = max(1, math.ceil(site.recent_calls[0] + 60 - now))
                response = jsonify(
                    code="too_many_requests", message="Too many requests", data={"status": 429}
                )
                response.status_code = 429
                response.headers["Retry-After"] = str(retry)
                return response  # type: ignore[return-value]
            site.recent_calls.append(now)
        _authenticate(site, state)
        error = random.random() < knobs.error_rate
        latency = knobs.latency_ms
    if latency:
        time.sleep(latency / 1000)
    if error:
        raise WcError(
            knobs.error_status,
            "internal_server_error",
            "There has been a critical error on this website.",
        )
    return None


@api.after_request
def _record_status(response: Response) -> Response:
    state = _state()
    site = state.sites.get((request.view_args or {}).get("name", ""))
    if site is not None and site.calls and site.calls[-1]["path"] == request.path:
        site.calls[-1].setdefault("status", response.status_code)
    return response


# ------------------------------------------------------------------------------ listing
def _int_arg(name: str, default: int, low: int = 1, high: int | None = None) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise WcError(400, "rest_invalid_param", f"Invalid parameter(s): {name}") from None
    if value < low or (high is not None and value > high):
        raise WcError(400, "rest_invalid_param", f"Invalid parameter(s): {name}")
    return value


def _date_arg(site: Site, name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise WcError(400, "rest_invalid_param", f"Invalid parameter(s): {name}") from None
    if parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    # Without dates_are_gmt the value is read in the site's own time zone [WC-SRC
    # class-wc-rest-crud-controller.php "dates_are_gmt"].
    if request.args.get("dates_are_gmt") in ("true", "1"):
        return parsed.replace(tzinfo=UTC)
    from zoneinfo import ZoneInfo

    return parsed.replace(tzinfo=ZoneInfo(site.timezone)).astimezone(UTC)


def _paginate(site: Site, items: list[Any], render) -> Response:
    per_page = _int_arg("per_page", 10, 1, MAX_PER_PAGE)
    page = _int_arg("page", 1)
    offset = request.args.get("offset")
    start = int(offset) if offset and offset.isdigit() else (page - 1) * per_page
    total = len(items)
    pages = math.ceil(total / per_page) if total else 0
    if page > max(pages, 1) and site.knobs.page_past_end == "error":
        raise WcError(
            400,
            "rest_post_invalid_page_number",
            "The page number requested is larger than the number of pages available.",
        )
    chunk = items[start : start + per_page]
    response = jsonify([render(site, item) for item in chunk])
    response.headers["X-WP-Total"] = str(total)
    response.headers["X-WP-TotalPages"] = str(pages)
    links = []
    base = {k: v for k, v in request.args.items() if not k.startswith("oauth_")}
    if page > 1:
        links.append(f'<{request.base_url}?{urlencode({**base, "page": page - 1})}>; rel="prev"')
    if page < pages:
        links.append(f'<{request.base_url}?{urlencode({**base, "page": page + 1})}>; rel="next"')
    if links:
        response.headers["Link"] = ", ".join(links)
    return response


def _ordered(
    items: list[Any], keys: dict[str, Any], default_orderby: str, default_order: str
) -> list[Any]:
    orderby = request.args.get("orderby", default_orderby)
    if orderby not in keys:
        raise WcError(400, "rest_invalid_param", "Invalid parameter(s): orderby")
    order = request.args.get("order", default_order)
    if order not in ("asc", "desc"):
        raise WcError(400, "rest_invalid_param", "Invalid parameter(s): order")
    return sorted(items, key=keys[orderby], reverse=order == "desc")


@api.get("/sites/<name>/wp-json/wc/v3/orders")
def list_orders(name: str) -> Response:
    state = _state()
    with state.lock:
        site = _site(name)
        status = request.args.get("status", "any")
        items = [
            o
            for o in site.orders.values()
            if (o.status != "trash" if status == "any" else o.status in status.split(","))
        ]
        if request.args.get("customer"):
            items = [o for o in items if str(o.customer_id) == request.args["customer"]]
        for arg, attr, after in (("modified_after", "modified", True), ("modified_before", "modified", False),
                                 ("after", "created", True), ("before", "created", False)):  # fmt: skip
            bound = _date_arg(site, arg)
            if bound is not None:
                items = [
                    o
                    for o in items
                    if (getattr(o, attr) > bound if after else getattr(o, attr) < bound)
                ]
        keys = {"date": lambda o: (o.created, o.id), "id": lambda o: o.id, "include": lambda o: o.id,
                "title": lambda o: o.id, "slug": lambda o: o.id, "modified": lambda o: (o.modified, o.id)}  # fmt: skip
        return _paginate(site, _ordered(items, keys, "date", "desc"), order_json)


@api.get("/sites/<name>/wp-json/wc/v3/customers")
def list_customers(name: str) -> Response:
    state = _state()
    with state.lock:
        site = _site(name)
        role = request.args.get("role", "customer")
        items = [c for c in site.customers.values() if role == "all" or c.role == role]
        if request.args.get("email"):
            items = [c for c in items if c.email == request.args["email"]]
        if request.args.get("include"):
            # An array argument, as a comma-separated list or repeated include[] keys, which
            # WordPress parses alike (wp_parse_id_list) [WC-DOCS _customers.md "include"].
            raw = ",".join(request.args.getlist("include") + request.args.getlist("include[]"))
            try:
                wanted = {int(i) for i in raw.split(",") if i.strip()}
            except ValueError:
                raise WcError(400, "rest_invalid_param", "Invalid parameter(s): include") from None
            items = [c for c in items if c.id in wanted]
        keys = {"id": lambda c: c.id, "include": lambda c: c.id,
                "name": lambda c: (c.first_name, c.last_name, c.id),
                "registered_date": lambda c: (c.created, c.id)}  # fmt: skip
        return _paginate(site, _ordered(items, keys, "name", "asc"), customer_json)


def _order(site: Site, order_id: int) -> Order:
    order = site.orders.get(order_id)
    if order is None:
        raise WcError(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID.")
    return order


def _customer(site: Site, customer_id: int) -> Customer:
    customer = site.customers.get(customer_id)
    if customer is None:
        raise WcError(404, "woocommerce_rest_invalid_id", "Invalid resource ID.")
    return customer


@api.get("/sites/<name>/wp-json/wc/v3/orders/<int:order_id>")
def get_order(name: str, order_id: int) -> Response:
    with _state().lock:
        site = _site(name)
        return jsonify(order_json(site, _order(site, order_id)))


@api.delete("/sites/<name>/wp-json/wc/v3/orders/<int:order_id>")
def delete_order(name: str, order_id: int) -> Response:
    state = _state()
    with state.lock:
        site = _site(name)
        order = _order(site, order_id)
        body = order_json(site, order)
        if request.args.get("force") in ("true", "1"):
            site.orders.pop(order_id)
            return jsonify(body)
        if order.status == "trash":
            # [WC-SRC class-wc-rest-crud-controller.php delete_item]
            raise WcError(
                410, "woocommerce_rest_already_trashed", "The order has already been deleted."
            )
        state.trash_order(site, order)
        return jsonify(order_json(site, order))


@api.get("/sites/<name>/wp-json/wc/v3/customers/<int:customer_id>")
def get_customer(name: str, customer_id: int) -> Response:
    with _state().lock:
        site = _site(name)
        return jsonify(customer_json(site, _customer(site, customer_id)))


_WRITABLE = {"email", "first_name", "last_name", "billing", "shipping", "meta_data"}


def apply_customer_changes(site: Site, customer: Customer, data: dict[str, Any]) -> None:
    """Raises WcError(400) for a change WooCommerce refuses (email taken, bad type)."""
    for key, value in data.items():
        if key not in _WRITABLE or key == "id":
            continue
        if key in ("billing", "shipping"):
            if not isinstance(value, dict):
                raise WcError(400, "rest_invalid_param", f"Invalid parameter(s): {key}")
            getattr(customer, key).update({k: str(v) for k, v in value.items()})
        elif key == "meta_data":
            for entry in value if isinstance(value, list) else []:
                kept = [m for m in customer.meta_data if m.get("key") != entry.get("key")]
                customer.meta_data = [*kept, {"id": len(kept) + 1, **entry}]
        else:
            if not isinstance(value, str):
                raise WcError(400, "rest_invalid_param", f"Invalid parameter(s): {key}")
            if key == "email" and any(
                c.email == value and c.id != customer.id for c in site.customers.values()
            ):
                raise WcError(
                    400,
                    "registration-error-email-exists",
                    "An account is already registered with your email address.",
                )
            setattr(customer, key, value)


@api.put("/sites/<name>/wp-json/wc/v3/customers/<int:customer_id>")
def update_customer(name: str, customer_id: int) -> Response:
    state = _state()
    with state.lock:
        site = _site(name)
        customer = _customer(site, customer_id)
        apply_customer_changes(site, customer, request.get_json(silent=True) or {})
        state.save_customer(site, customer, created=False)
        return jsonify(customer_json(site, customer))


@api.delete("/sites/<name>/wp-json/wc/v3/customers/<int:customer_id>")
def delete_customer(name: str, customer_id: int) -> Response:
    state = _state()
    with state.lock:
        site = _site(name)
        customer = _customer(site, customer_id)
        if request.args.get("force") not in ("true", "1"):
            # Customers have no trash [WC-DOCS _customers.md "Delete a customer"].
            raise WcError(
                501, "woocommerce_rest_trash_not_supported", "Customers do not support trashing."
            )
        body = customer_json(site, customer)
        state.delete_customer(site, customer_id)
        return jsonify(body)


@api.post("/sites/<name>/wp-json/wc/v3/customers/batch")
def batch_customers(name: str) -> Response:
    state = _state()
    data = request.get_json(silent=True) or {}
    with state.lock:
        site = _site(name)
        count = sum(len(data.get(k) or []) for k in ("create", "update", "delete"))
        if count > BATCH_LIMIT:
            raise WcError(413, "woocommerce_rest_request_entity_too_large",
                          f"Unable to accept more than {BATCH_LIMIT} items for this request.")  # fmt: skip
        updated = []
        # Each item is its own update_item: a refusal is answered inline as {id, error {code,
        # message, data}} and the others go on [WC-SRC class-wc-rest-controller.php
        # batch_items]; every saved item is saved in full (date_modified moves and
        # customer.updated fires even when nothing changed: the data store's update() always
        # runs wp_update_user [WC-SRC class-wc-customer-data-store.php]).
        for item in data.get("update") or []:
            customer = site.customers.get(int(item.get("id") or 0))
            if customer is None:
                # update_item's answer for an unknown id [WC-SRC
                # class-wc-rest-customers-controller.php]: 400 woocommerce_rest_invalid_id.
                updated.append(
                    {
                        "id": item.get("id"),
                        "error": {
                            "code": "woocommerce_rest_invalid_id",
                            "message": "Invalid resource ID.",
                            "data": {"status": 400},
                        },
                    }
                )
                continue
            try:
                apply_customer_changes(site, customer, item)
            except WcError as exc:
                updated.append(
                    {
                        "id": customer.id,
                        "error": {
                            "code": exc.code,
                            "message": exc.message,
                            "data": {"status": exc.status},
                        },
                    }
                )
                continue
            state.save_customer(site, customer, created=False)
            updated.append(customer_json(site, customer))
        return jsonify({"create": [], "update": updated, "delete": []})


# ------------------------------------------------------------------------------ webhooks
@api.get("/sites/<name>/wp-json/wc/v3/webhooks")
def list_webhooks(name: str) -> Response:
    with _state().lock:
        site = _site(name)
        return _paginate(site, sorted(site.webhooks.values(), key=lambda w: w.id), webhook_json)


@api.post("/sites/<name>/wp-json/wc/v3/webhooks")
def create_webhook(name: str) -> tuple[Response, int]:
    state = _state()
    data = request.get_json(silent=True) or {}
    if data.get("topic") not in TOPICS:
        raise WcError(400, "rest_invalid_param", "Invalid parameter(s): topic")
    url = data.get("delivery_url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise WcError(400, "rest_invalid_param", "Invalid parameter(s): delivery_url")
    with state.lock:
        site = _site(name)
        now = state.now()
        hook = Webhook(site.next_id("webhook"), str(data.get("name") or data["topic"]), data["topic"], url,
                       str(data.get("secret") or ""), str(data.get("status") or "active"), now, now)  # fmt: skip
        site.webhooks[hook.id] = hook
        body = webhook_json(site, hook)
    current_app.extensions["woocommerce_dispatcher"].ping(site, hook)
    return jsonify(body), 201


@api.put("/sites/<name>/wp-json/wc/v3/webhooks/<int:hook_id>")
def update_webhook(name: str, hook_id: int) -> Response:
    state = _state()
    data = request.get_json(silent=True) or {}
    with state.lock:
        site = _site(name)
        hook = site.webhooks.get(hook_id)
        if hook is None:
            raise WcError(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
        if data.get("status") in ("active", "paused", "disabled"):
            hook.status = data["status"]
            if hook.status == "active":
                hook.failures = 0
        if isinstance(data.get("secret"), str):
            hook.secret = data["secret"]
        if isinstance(data.get("delivery_url"), str):
            hook.delivery_url = data["delivery_url"]
        hook.modified = state.now()
        return jsonify(webhook_json(site, hook))


@api.delete("/sites/<name>/wp-json/wc/v3/webhooks/<int:hook_id>")
def delete_webhook(name: str, hook_id: int) -> Response:
    with _state().lock:
        site = _site(name)
        hook = site.webhooks.pop(hook_id, None)
        if hook is None:
            raise WcError(404, "woocommerce_rest_webhook_invalid_id", "Invalid ID.")
        return jsonify(webhook_json(site, hook))
