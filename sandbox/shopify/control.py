"""Control endpoints (/_sandbox/...): what a merchant, Shopify's operators and a test harness
would do to a shop. JSON in, JSON out; 400 with {"error"} on a malformed request, 404 for an
unknown shop or record, 422 with {"userErrors"} when Shopify would refuse the change.

Every change made here goes through the store, so it bumps ``updatedAt`` and sends the
matching webhooks exactly as a change made in the Shopify admin would.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Blueprint, Response, current_app, jsonify

from sandbox import controls
from sandbox.controls import json_body
from sandbox.shopify import render, seed
from sandbox.shopify.simulator import COMPLIANCE_TOPICS, TOPICS, Simulator, customer_changes
from sandbox.shopify.store import (
    Address,
    Consent,
    Customer,
    Knobs,
    Refund,
    Shop,
    Subscription,
    utc_now,
)

control = Blueprint("shopify_control", __name__)

_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
# The admin can set fewer fulfilment states than the enum names, and "REDACTED"/"INVALID"
# email states are Shopify's own doing, never a merchant's.
_FULFILLMENT = frozenset(["UNFULFILLED", "PARTIALLY_FULFILLED", "FULFILLED", "RESTOCKED"])
_EMAIL_STATES = frozenset(["NOT_SUBSCRIBED", "PENDING", "SUBSCRIBED", "UNSUBSCRIBED"])


def _enum(name: str) -> frozenset[str]:
    """The values of one of the schema's enums (currencies, countries, statuses)."""
    return frozenset(_sim().schema.get_type(name).values)  # type: ignore[union-attr]


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400, payload: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.payload = payload or {"error": message}


@control.errorhandler(BadRequest)
def _bad_request(error: BadRequest) -> Response:
    response = jsonify(error.payload)
    response.status_code = error.status
    return response


def _sim() -> Simulator:
    return current_app.extensions["shopify_simulator"]


# A body that is not a JSON object: the same 400 as every store simulator's control API.
_body = json_body
control.register_error_handler(controls.BadRequest, controls.answer)


def _shop(domain: str) -> Shop:
    shop = _sim().shop(domain)
    if shop is None:
        raise BadRequest(f"unknown shop {domain}", 404)
    return shop


def _int(data: dict[str, Any], key: str, default: int = 0, *, low: int = 0) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise BadRequest(f"{key} must be an integer >= {low}")
    return value


def _member(
    data: dict[str, Any], key: str, allowed: frozenset[str], default: str | None = None
) -> str:
    value = data.get(key, default)
    if value not in allowed:
        raise BadRequest(f"{key} must be one of {sorted(allowed)}")
    return value


def _when(data: dict[str, Any], key: str) -> datetime | None:
    if data.get(key) is None:
        return None
    try:
        moment = datetime.fromisoformat(str(data[key]).replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{key} must be an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise BadRequest(f"{key} needs a UTC offset")
    return moment.replace(microsecond=0)


# =========================================================================== shops
@control.post("/shops")
def create_shop() -> tuple[Response, int]:
    data = _body()
    domain = str(data.get("domain", ""))
    if not _DOMAIN.match(domain):
        raise BadRequest("domain must look like name.myshopify.com")
    for key in ("access_token", "client_secret"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise BadRequest(f"{key} is required")
    currency = _member(data, "currency", _enum("CurrencyCode"), "USD")
    country = _member(data, "country", _enum("CountryCode"), "US")
    timezone = data.get("timezone", "America/New_York")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest("timezone must be an IANA time zone name") from None
    try:
        shop = _sim().create_shop(
            domain=domain,
            access_token=data["access_token"],
            client_secret=data["client_secret"],
            currency=currency,
            timezone=timezone,
            country=country,
            name=data.get("name"),
            api_version=data.get("api_version", "2026-01"),
            seed=_int(data, "seed", 0),
        )
    except ValueError as exc:
        raise BadRequest(str(exc), 409) from None
    return jsonify(_shop_view(shop)), 201


@control.get("/shops")
def list_shops() -> Response:
    sim = _sim()
    with sim.store.lock:
        return jsonify({"shops": [_shop_view(s) for s in sim.store.shops.values()]})


@control.get("/shops/<domain>")
def get_shop(domain: str) -> Response:
    shop = _shop(domain)
    with _sim().store.lock:
        return jsonify(_shop_view(shop))


def _shop_view(shop: Shop) -> dict[str, Any]:
    return {
        "domain": shop.domain,
        "shop_id": shop.shop_id,
        "name": shop.name,
        "currency": shop.currency,
        "timezone": shop.timezone,
        "country": shop.country,
        "api_version": shop.api_version,
        "customers": len(shop.customers),
        "orders": len(shop.orders),
        "knobs": _knobs_view(shop),
    }


@control.post("/shops/<domain>/seed")
def seed_shop(domain: str) -> Response:
    shop = _shop(domain)
    data = _body()
    anchor = _when(data, "anchor") or utc_now()
    sim = _sim()
    with sim.store.lock:
        made = seed.seed(
            shop,
            customers=_int(data, "customers", 0),
            orders=_int(data, "orders", 0),
            seed=_int(data, "seed", 0),
            anchor=anchor,
        )
    return jsonify(made)


@control.post("/shops/<domain>/activity")
def activity(domain: str) -> Response:
    shop = _shop(domain)
    data = _body()
    sim = _sim()
    with sim.store.lock:
        done = seed.activity(
            sim.store,
            shop,
            new_customers=_int(data, "new_customers"),
            changed_customers=_int(data, "changed_customers"),
            new_orders=_int(data, "new_orders"),
            changed_orders=_int(data, "changed_orders"),
            seed=_int(data, "seed", 0),
            now=utc_now(),
        )
    return jsonify(done)


# =========================================================================== customers
_CUSTOMER_INPUT = {
    "first_name": "firstName",
    "last_name": "lastName",
    "email": "email",
    "phone": "phone",
    "note": "note",
    "tags": "tags",
    "locale": "locale",
    "tax_exempt": "taxExempt",
}


def _customer_extras(shop: Shop, data: dict[str, Any]) -> dict[str, Any]:
    """Attributes the admin can set that CustomerInput does not carry."""
    extras: dict[str, Any] = {}
    if "state" in data:
        extras["state"] = _member(data, "state", _enum("CustomerState"))
    if "email_marketing_state" in data:
        state = _member(data, "email_marketing_state", _EMAIL_STATES)
        extras["email_consent"] = Consent(state, "SINGLE_OPT_IN", utc_now())
    if "address" in data:
        raw = data["address"]
        if not isinstance(raw, dict):
            raise BadRequest("address must be an object")
        known = {f.name for f in fields(Address)} - {"id"}
        unknown = set(raw) - known
        if unknown:
            raise BadRequest(f"unknown address fields {sorted(unknown)}")
        extras["address"] = Address(id=shop.next_id("MailingAddress"), **raw)
    return extras


def _validated(shop: Shop, customer: Customer, data: dict[str, Any]) -> dict[str, Any]:
    unknown = set(data) - set(_CUSTOMER_INPUT) - {"state", "email_marketing_state", "address"}
    if unknown:
        raise BadRequest(f"unknown fields {sorted(unknown)}")
    as_input = {_CUSTOMER_INPUT[k]: v for k, v in data.items() if k in _CUSTOMER_INPUT}
    errors, changes = customer_changes(shop, customer, as_input)
    if errors:
        raise BadRequest("rejected", 422, {"userErrors": errors})
    changes.update(_customer_extras(shop, data))
    address = changes.pop("address", None)
    if address is not None:
        changes["addresses"] = [address, *customer.addresses]
        changes["default_address_id"] = address.id
    return changes


@control.post("/shops/<domain>/customers")
def create_customer(domain: str) -> tuple[Response, int]:
    shop = _shop(domain)
    data = _body()
    sim = _sim()
    with sim.store.lock:
        now = utc_now()
        customer = Customer(id=shop.next_id("Customer"), created_at=now, updated_at=now)
        for key, value in _validated(shop, customer, data).items():
            setattr(customer, key, value)
        sim.store.add_customer(shop, customer)
        return jsonify(render.gql_customer(shop, customer)), 201


@control.patch("/shops/<domain>/customers/<int:customer_id>")
def change_customer(domain: str, customer_id: int) -> Response:
    shop = _shop(domain)
    data = _body()
    sim = _sim()
    with sim.store.lock:
        customer = shop.customers.get(customer_id)
        if customer is None:
            raise BadRequest(f"unknown customer {customer_id}", 404)
        sim.store.change_customer(shop, customer, _validated(shop, customer, data), utc_now())
        return jsonify(render.gql_customer(shop, customer))


@control.delete("/shops/<domain>/customers/<int:customer_id>")
def delete_customer(domain: str, customer_id: int) -> Response:
    shop = _shop(domain)
    sim = _sim()
    with sim.store.lock:
        customer = shop.customers.get(customer_id)
        if customer is None:
            raise BadRequest(f"unknown customer {customer_id}", 404)
        sim.store.remove_customer(shop, customer)
    return jsonify({"deleted": customer_id})


# =========================================================================== orders
@control.post("/shops/<domain>/orders")
def create_order(domain: str) -> tuple[Response, int]:
    shop = _shop(domain)
    data = _body()
    sim = _sim()
    with sim.store.lock:
        customer = None
        if data.get("customer_id") is not None:
            customer = shop.customers.get(data["customer_id"])
            if customer is None:
                raise BadRequest(f"unknown customer {data['customer_id']}", 404)
        now = utc_now()
        gen = seed.Generator(shop, random.Random(_int(data, "seed", len(shop.orders))), now)
        order = gen.order(customer, created=now)
        order.updated_at = order.created_at
        if "line_items" in data:
            order.line_items = gen.line_items(_int(data, "line_items", 1, low=1))
        if "financial_status" in data:
            order.financial_status = _member(
                data, "financial_status", _enum("OrderDisplayFinancialStatus")
            )
            order.refunds, order.cancelled_at, order.closed_at = [], None, None
        if "presentment_currency" in data:
            order.presentment_currency = _member(
                data, "presentment_currency", _enum("CurrencyCode")
            )
            rate = seed.PER_USD.get(order.presentment_currency, Decimal(1)) / seed.PER_USD.get(
                shop.currency, Decimal(1)
            )
            order.exchange_rate = rate.quantize(Decimal("0.000001"))
        if "email" in data:
            order.email = data["email"]
        sim.store.add_order(shop, order)
        return jsonify(_order_view(shop, order)), 201


@control.patch("/shops/<domain>/orders/<int:order_id>")
def change_order(domain: str, order_id: int) -> Response:
    shop = _shop(domain)
    data = _body()
    sim = _sim()
    with sim.store.lock:
        order = shop.orders.get(order_id)
        if order is None:
            raise BadRequest(f"unknown order {order_id}", 404)
        now = utc_now()
        changes: dict[str, Any] = {}
        known = {
            "note",
            "tags",
            "email",
            "financial_status",
            "fulfillment_status",
            "cancel",
            "cancel_reason",
            "refund",
            "add_line_items",
        }
        unknown = set(data) - known
        if unknown:
            raise BadRequest(f"unknown fields {sorted(unknown)}")
        if "note" in data:
            changes["note"] = data["note"]
        if "email" in data:
            changes["email"] = data["email"]
        if "tags" in data:
            if not isinstance(data["tags"], list):
                raise BadRequest("tags must be a list")
            changes["tags"] = sorted({str(t).strip() for t in data["tags"] if str(t).strip()})
        if "financial_status" in data:
            changes["financial_status"] = _member(
                data, "financial_status", _enum("OrderDisplayFinancialStatus")
            )
        if "fulfillment_status" in data:
            changes["fulfillment_status"] = _member(data, "fulfillment_status", _FULFILLMENT)
        if data.get("cancel"):
            reason = _member(data, "cancel_reason", _enum("OrderCancelReason"), "CUSTOMER")
            changes.update(cancelled_at=now, cancel_reason=reason, closed_at=now)
        if "refund" in data:
            try:
                amount = Decimal(str(data["refund"]))
            except InvalidOperation:
                raise BadRequest("refund must be a decimal amount") from None
            if amount <= 0 or amount > order.current_total:
                raise BadRequest("refund must be positive and at most the current total")
            refund = Refund(shop.next_id("Refund"), now, amount, data.get("note"))
            changes["refunds"] = [*order.refunds, refund]
            full = amount == order.current_total
            changes["financial_status"] = "REFUNDED" if full else "PARTIALLY_REFUNDED"
        if "add_line_items" in data:
            gen = seed.Generator(shop, random.Random(order.id), now)
            extra = gen.line_items(_int(data, "add_line_items", 1, low=1))
            changes["line_items"] = [*order.line_items, *extra]
        sim.store.change_order(shop, order, changes, now)
        return jsonify(_order_view(shop, order))


def _order_view(shop: Shop, order: Any) -> dict[str, Any]:
    node = render.gql_order(shop, order)
    items = node.pop("_line_items")
    node["lineItems"] = {"nodes": items}
    return node


# =========================================================================== knobs
def _knobs_view(shop: Shop) -> dict[str, Any]:
    return {
        **asdict(shop.knobs),
        "restore_rate": shop.bucket.restore_rate,
        "bucket_size": shop.bucket.size,
    }


@control.get("/shops/<domain>/knobs")
def get_knobs(domain: str) -> Response:
    shop = _shop(domain)
    with _sim().store.lock:
        return jsonify(_knobs_view(shop))


@control.patch("/shops/<domain>/knobs")
def set_knobs(domain: str) -> Response:
    shop = _shop(domain)
    data = _body()
    types = {f.name: f.type for f in fields(Knobs)}
    unknown = set(data) - set(types) - {"restore_rate", "bucket_size"}
    if unknown:
        raise BadRequest(f"unknown knobs {sorted(unknown)}")
    for key in ("error_rate", "webhook_drop_rate", "webhook_duplicate_rate"):
        if key in data and not (isinstance(data[key], int | float) and 0 <= data[key] <= 1):
            raise BadRequest(f"{key} must be between 0 and 1")
    if "throttle_status" in data and data["throttle_status"] not in (200, 429):
        raise BadRequest("throttle_status must be 200 or 429")
    if "error_status" in data and data["error_status"] not in (500, 502, 503, 504):
        raise BadRequest("error_status must be 500, 502, 503 or 504")
    for key in (
        "restore_rate",
        "bucket_size",
        "latency_ms",
        "webhook_max_delay_ms",
        "webhook_time_scale",
        "webhook_timeout_s",
        "bulk_delay_s",
    ):
        if key in data and not (isinstance(data[key], int | float) and data[key] >= 0):
            raise BadRequest(f"{key} must be a number >= 0")
    for key in ("bulk_fail", "read_all_orders"):
        if key in data and not isinstance(data[key], bool):
            raise BadRequest(f"{key} must be true or false")
    if (
        "bulk_max_concurrent" in data
        and data["bulk_max_concurrent"] is not None
        and not (isinstance(data["bulk_max_concurrent"], int) and data["bulk_max_concurrent"] >= 1)
    ):
        raise BadRequest("bulk_max_concurrent must be an integer >= 1 or null")
    with _sim().store.lock:
        shop.bucket.reconfigure(size=data.get("bucket_size"), restore_rate=data.get("restore_rate"))
        for key, value in data.items():
            if key in types:
                setattr(shop.knobs, key, value)
        return jsonify(_knobs_view(shop))


# =========================================================================== webhooks
def _subscription_view(sub: Subscription) -> dict[str, Any]:
    return {
        "id": sub.id,
        "admin_graphql_api_id": render.gid("WebhookSubscription", sub.id),
        "topic": sub.topic,
        "address": sub.address,
        "api_version": sub.api_version,
        "created_at": render.iso_z(sub.created_at),
    }


@control.get("/shops/<domain>/webhooks")
def list_webhooks(domain: str) -> Response:
    shop = _shop(domain)
    with _sim().store.lock:
        return jsonify(
            {"subscriptions": [_subscription_view(s) for s in shop.subscriptions.values()]}
        )


@control.post("/shops/<domain>/webhooks")
def subscribe(domain: str) -> tuple[Response, int]:
    """One subscription per topic, as webhookSubscriptionCreate makes them."""
    shop = _shop(domain)
    data = _body()
    address = data.get("address")
    topics = data.get("topics")
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        raise BadRequest("address must be an http(s) URL")
    if not isinstance(topics, list) or not topics or not set(topics) <= TOPICS:
        raise BadRequest(f"topics must be a non-empty list drawn from {sorted(TOPICS)}")
    with _sim().store.lock:
        made = []
        for topic in topics:
            sub = Subscription(
                id=shop.next_id("WebhookSubscription"),
                topic=topic,
                address=address,
                api_version=data.get("api_version", shop.api_version),
                created_at=utc_now(),
            )
            shop.subscriptions[sub.id] = sub
            made.append(_subscription_view(sub))
        return jsonify({"subscriptions": made}), 201


@control.delete("/shops/<domain>/webhooks/<int:subscription_id>")
def unsubscribe(domain: str, subscription_id: int) -> Response:
    shop = _shop(domain)
    with _sim().store.lock:
        if shop.subscriptions.pop(subscription_id, None) is None:
            raise BadRequest(f"unknown subscription {subscription_id}", 404)
    return jsonify({"deleted": subscription_id})


@control.post("/shops/<domain>/compliance")
def fire_compliance(domain: str) -> Response:
    """Send customers/data_request, customers/redact, shop/redact or app/uninstalled.

    Payload fields as documented for the mandatory compliance webhooks
    (https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance); app/uninstalled
    carries the shop object.
    """
    shop = _shop(domain)
    data = _body()
    topic = data.get("topic")
    if topic not in COMPLIANCE_TOPICS | {"app/uninstalled"}:
        raise BadRequest(f"topic must be one of {sorted(COMPLIANCE_TOPICS | {'app/uninstalled'})}")
    sim = _sim()
    with sim.store.lock:
        payload: dict[str, Any] = {"shop_id": shop.shop_id, "shop_domain": shop.domain}
        if topic.startswith("customers/"):
            customer = shop.customers.get(data.get("customer_id") or 0)
            if customer is None:
                raise BadRequest("customer_id must name an existing customer", 404)
            orders = sorted(o.id for o in shop.orders_of(customer.id))
            payload["customer"] = {
                "id": customer.id,
                "email": customer.email,
                "phone": customer.phone,
            }
            if topic == "customers/data_request":
                payload["orders_requested"] = orders
                payload["data_request"] = {"id": shop.next_id("DataRequest")}
            else:
                payload["orders_to_redact"] = orders
        elif topic == "app/uninstalled":
            payload = render.rest_shop(shop)
        event_id = sim.fire(shop, topic, payload, data.get("address"))
    return jsonify({"event_id": event_id, "payload": payload})


# =========================================================================== logs and dump
@control.get("/shops/<domain>/calls")
def calls(domain: str) -> Response:
    shop = _shop(domain)
    with _sim().store.lock:
        return jsonify({"calls": list(shop.calls)})


@control.delete("/shops/<domain>/calls")
def clear_calls(domain: str) -> Response:
    shop = _shop(domain)
    with _sim().store.lock:
        shop.calls.clear()
    return jsonify({"calls": []})


@control.get("/shops/<domain>/deliveries")
def deliveries(domain: str) -> Response:
    shop = _shop(domain)
    sim = _sim()
    with sim.store.lock:
        return jsonify(
            {"pending": sim.dispatcher.pending(shop), "deliveries": list(shop.deliveries)}
        )


@control.delete("/shops/<domain>/deliveries")
def clear_deliveries(domain: str) -> Response:
    shop = _shop(domain)
    with _sim().store.lock:
        shop.deliveries.clear()
    return jsonify({"deliveries": []})


@control.get("/shops/<domain>/dump")
def dump(domain: str) -> Response:
    """Every customer and order in the GraphQL node shape (all line items inline)."""
    shop = _shop(domain)
    with _sim().store.lock:
        return jsonify(
            {
                "customers": [
                    render.gql_customer(shop, c)
                    for c in sorted(shop.customers.values(), key=lambda c: c.id)
                ],
                "orders": [
                    _order_view(shop, o) for o in sorted(shop.orders.values(), key=lambda o: o.id)
                ],
            }
        )


@control.get("/shops/<domain>/summary")
def summary(domain: str) -> Response:
    """The shop in the platform-neutral shape every store simulator offers (see demo.compare)."""
    shop = _shop(domain)
    with _sim().store.lock:
        orders = []
        for order in sorted(shop.orders.values(), key=lambda o: o.id):
            node = render.gql_order(shop, order)
            orders.append(
                {
                    "id": str(order.id),
                    "name": order.name,
                    "email": order.email,
                    "customer_id": str(order.customer_id) if order.customer_id else None,
                    "total": node["totalPriceSet"]["shopMoney"]["amount"],
                    "currency": order.currency,
                    "line_items": len(order.line_items),
                    # Shopify deletes orders outright: a deleted one is simply absent.
                    "removed": False,
                }
            )
        return jsonify(
            {
                "customers": [
                    {
                        "id": str(c.id),
                        "email": c.email,
                        "first_name": c.first_name,
                        "last_name": c.last_name,
                    }
                    for c in sorted(shop.customers.values(), key=lambda c: c.id)
                ],
                "orders": orders,
            }
        )
