"""Which mapping function reads which platform payload, and what each webhook topic means.

A new storefront adds its parsers and topics here; the worker stays the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mapping import Customer, Order
from mapping import bigcommerce as bigcommerce_mapping
from mapping import shopify as shopify_mapping
from mapping import woocommerce as woocommerce_mapping


@dataclass(frozen=True)
class Parsers:
    customer: Callable[..., Customer]
    order: Callable[..., Order]


# "api": what polling and backfills read; "webhook": what webhook deliveries carry.
PARSERS: dict[str, dict[str, Parsers]] = {
    "shopify": {
        "api": Parsers(shopify_mapping.customer_from_graphql, shopify_mapping.order_from_graphql),
        "webhook": Parsers(shopify_mapping.customer_from_rest, shopify_mapping.order_from_rest),
    },
    # WooCommerce webhook bodies are the REST resource itself [WC-DOCS _webhooks.md].
    "woocommerce": {
        shape: Parsers(woocommerce_mapping.customer_from_rest, woocommerce_mapping.order_from_rest)
        for shape in ("api", "webhook")
    },
    # BigCommerce webhooks carry ids only: the records are always read from the API.
    "bigcommerce": {
        "api": Parsers(bigcommerce_mapping.customer_from_v3, bigcommerce_mapping.order_from_v2),
    },
}


@dataclass(frozen=True)
class TopicMeaning:
    entity: str  # "customer" | "order"
    # "upsert": the payload is the record; "fetch": the payload names it, read it from the API
    # (absent there means gone); "delete": the record is gone.
    action: str


# https://shopify.dev/docs/api/webhooks (topics relevant to a CRM sync)
TOPICS: dict[str, dict[str, TopicMeaning]] = {
    "shopify": {
        "customers/create": TopicMeaning("customer", "upsert"),
        "customers/update": TopicMeaning("customer", "upsert"),
        "customers/enable": TopicMeaning("customer", "upsert"),
        "customers/disable": TopicMeaning("customer", "upsert"),
        "customers/delete": TopicMeaning("customer", "delete"),
        "orders/create": TopicMeaning("order", "upsert"),
        "orders/updated": TopicMeaning("order", "upsert"),
        "orders/paid": TopicMeaning("order", "upsert"),
        "orders/cancelled": TopicMeaning("order", "upsert"),
        "orders/fulfilled": TopicMeaning("order", "upsert"),
        "orders/partially_fulfilled": TopicMeaning("order", "upsert"),
        "orders/edited": TopicMeaning("order", "upsert"),
        "orders/delete": TopicMeaning("order", "delete"),
    },
    # https://woocommerce.github.io/woocommerce-rest-api-docs/#webhooks: order.deleted fires when
    # an order is trashed, and its body is only {"id"}; order.restored brings it back.
    "woocommerce": {
        "customer.created": TopicMeaning("customer", "upsert"),
        "customer.updated": TopicMeaning("customer", "upsert"),
        "customer.deleted": TopicMeaning("customer", "delete"),
        "order.created": TopicMeaning("order", "upsert"),
        "order.updated": TopicMeaning("order", "upsert"),
        "order.restored": TopicMeaning("order", "upsert"),
        "order.deleted": TopicMeaning("order", "delete"),
    },
    # https://developer.bigcommerce.com/docs/integrations/webhooks/events: thin payloads, so
    # every change is a fetch; orders are archived, never deleted, and an archived order is
    # removed for the CRM.
    "bigcommerce": {
        "store/customer/created": TopicMeaning("customer", "fetch"),
        "store/customer/updated": TopicMeaning("customer", "fetch"),
        "store/customer/deleted": TopicMeaning("customer", "delete"),
        "store/order/created": TopicMeaning("order", "fetch"),
        "store/order/updated": TopicMeaning("order", "fetch"),
        "store/order/statusUpdated": TopicMeaning("order", "fetch"),
        "store/order/refund/created": TopicMeaning("order", "fetch"),
        "store/order/archived": TopicMeaning("order", "delete"),
    },
}

# Topics the drain does not process: each delivery becomes a privacy job of its own (kind
# ``sync.privacy.JOB``), in the transaction that stores it; the value is the job's action.
# Shopify's mandatory compliance topics and app/uninstalled
# (https://shopify.dev/docs/apps/build/compliance/privacy-law-compliance); BigCommerce has no
# compliance hooks, only store/app/uninstalled [BC-WH]; WooCommerce has neither (its erasure is
# WordPress's privacy tools, which send customer.deleted at most).
PRIVACY_TOPICS: dict[str, dict[str, str]] = {
    "shopify": {
        "customers/data_request": "data_request",
        "customers/redact": "customer_redact",
        "shop/redact": "shop_redact",
        "app/uninstalled": "uninstalled",
    },
    "woocommerce": {},
    "bigcommerce": {"store/app/uninstalled": "uninstalled"},
}

# What the receivers hand ``inbox.record`` as ``deferred_topics``: kept ``deferred`` in the inbox
# (the drain leaves them alone) and acted on by their privacy job.
DEFERRED_TOPICS: dict[str, frozenset[str]] = {
    platform: frozenset(topics) for platform, topics in PRIVACY_TOPICS.items()
}


def source_id(payload: dict[str, Any]) -> str | None:
    """The store id a webhook payload is about, as a string (None if absent).

    Full payloads carry it at the top (Shopify, WooCommerce); BigCommerce's thin ones under
    ``data`` ({"scope", "data": {"type", "id"}, ...}).
    """
    value = payload.get("id")
    if value is None and isinstance(payload.get("data"), dict):
        value = payload["data"].get("id")
    return None if value is None else str(value)
