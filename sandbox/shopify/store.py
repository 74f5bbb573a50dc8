"""The simulated shops' data: customers, orders, line items, and the knobs that make a shop
misbehave. Plain dataclasses in memory; the simulator holds one lock around all of it.

Values are kept the way Shopify keeps them: ids are integers (GIDs and REST ids are derived),
money is Decimal in the shop currency with a fixed presentment rate per order, timestamps are
UTC with whole seconds. Everything a client sees is rendered from here by ``render``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.shopify.cost import LeakyBucket

# Currencies without a minor unit (ISO 4217 list one); every other currency we seed has two.
_ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "CLP", "ISK", "BIF", "PYG", "UGX", "XAF", "XOF"})

# Where our numeric ids start, per kind: Shopify ids are large integers (13 digits today), and
# keeping kinds apart makes a mixed-up id in a test fail loudly instead of finding a record.
_ID_BASE = {
    "Customer": 7_100_000_000_000,
    "Order": 5_900_000_000_000,
    "LineItem": 15_200_000_000_000,
    "MailingAddress": 8_300_000_000_000,
    "Refund": 9_400_000_000_000,
    "BulkOperation": 3_200_000_000_000,
    "WebhookSubscription": 1_500_000_000_000,
    "DataRequest": 9_000_000,
}


def quantize(amount: Decimal, currency: str) -> Decimal:
    """``amount`` rounded half-up to the currency's minor unit."""
    exponent = Decimal(1) if currency in _ZERO_DECIMAL else Decimal("0.01")
    return amount.quantize(exponent, rounding=ROUND_HALF_UP)


def utc_now() -> datetime:
    """Now, in UTC, to the second (Shopify timestamps carry no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class Address:
    id: int
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    address1: str | None = None
    address2: str | None = None
    city: str | None = None
    province: str | None = None
    province_code: str | None = None
    country: str | None = None
    country_code: str | None = None
    zip: str | None = None
    phone: str | None = None


@dataclass
class Consent:
    """Email or SMS marketing consent; values are the GraphQL enum names."""

    state: str
    opt_in_level: str | None
    updated_at: datetime | None
    collected_from: str | None = None  # SMS only: SHOPIFY | OTHER


@dataclass
class Customer:
    id: int
    created_at: datetime
    updated_at: datetime
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None
    locale: str = "en"
    note: str | None = None
    state: str = "DISABLED"
    tags: list[str] = field(default_factory=list)
    tax_exempt: bool = False
    verified_email: bool = True
    email_consent: Consent | None = None
    sms_consent: Consent | None = None
    addresses: list[Address] = field(default_factory=list)
    default_address_id: int | None = None

    @property
    def default_address(self) -> Address | None:
        return next((a for a in self.addresses if a.id == self.default_address_id), None)


@dataclass
class LineItem:
    id: int
    title: str
    quantity: int
    unit_price: Decimal  # shop currency
    variant_title: str | None = None
    sku: str | None = None
    vendor: str | None = None
    product_id: int | None = None  # None: a custom line item, or the product was deleted
    variant_id: int | None = None
    discount: Decimal = Decimal(0)  # on the whole line, shop currency
    current_quantity: int | None = None  # after refunds/removals; None means == quantity
    grams: int = 0

    @property
    def name(self) -> str:
        return f"{self.title} - {self.variant_title}" if self.variant_title else self.title

    @property
    def remaining(self) -> int:
        return self.quantity if self.current_quantity is None else self.current_quantity


@dataclass
class Refund:
    id: int
    created_at: datetime
    amount: Decimal  # shop currency
    note: str | None = None


@dataclass
class Order:
    id: int
    number: int  # 1, 2, ...; the name is "#" + (1000 + number)
    created_at: datetime
    updated_at: datetime
    processed_at: datetime
    currency: str  # the shop currency
    presentment_currency: str
    exchange_rate: Decimal  # presentment units per shop unit
    line_items: list[LineItem] = field(default_factory=list)
    customer_id: int | None = None  # None: a guest checkout
    email: str | None = None
    phone: str | None = None
    financial_status: str = "PAID"  # OrderDisplayFinancialStatus
    fulfillment_status: str = "UNFULFILLED"  # OrderDisplayFulfillmentStatus
    shipping: Decimal = Decimal(0)
    tax_rate: Decimal = Decimal(0)
    billing_address: Address | None = None
    shipping_address: Address | None = None
    tags: list[str] = field(default_factory=list)
    note: str | None = None
    test: bool = False
    cancelled_at: datetime | None = None
    cancel_reason: str | None = None  # OrderCancelReason
    closed_at: datetime | None = None
    refunds: list[Refund] = field(default_factory=list)
    customer_locale: str | None = None
    buyer_accepts_marketing: bool = False
    source_name: str = "web"

    @property
    def name(self) -> str:
        return f"#{1000 + self.number}"

    @property
    def line_items_total(self) -> Decimal:
        return sum((li.unit_price * li.quantity for li in self.line_items), Decimal(0))

    @property
    def total_discounts(self) -> Decimal:
        return sum((li.discount for li in self.line_items), Decimal(0))

    @property
    def subtotal(self) -> Decimal:
        return self.line_items_total - self.total_discounts

    @property
    def total_tax(self) -> Decimal:
        return quantize(self.subtotal * self.tax_rate, self.currency)

    @property
    def total_price(self) -> Decimal:
        return self.subtotal + self.shipping + self.total_tax

    @property
    def total_refunded(self) -> Decimal:
        return sum((r.amount for r in self.refunds), Decimal(0))

    @property
    def current_total(self) -> Decimal:
        return self.total_price - self.total_refunded

    def presentment(self, amount: Decimal) -> Decimal:
        return quantize(amount * self.exchange_rate, self.presentment_currency)


@dataclass
class Knobs:
    """How a shop misbehaves. Changed through the control endpoints."""

    throttle_status: int = 200  # HTTP status of a THROTTLED answer: 200 or 429
    error_rate: float = 0.0  # fraction of API calls answered with error_status
    error_status: int = 503
    latency_ms: int = 0  # added to every API call
    webhook_drop_rate: float = 0.0  # fraction of deliveries never sent
    webhook_duplicate_rate: float = 0.0  # fraction of deliveries sent twice (same webhook id)
    webhook_max_delay_ms: int = 0  # random extra delay per delivery: reorders them
    webhook_time_scale: float = 1.0  # 1.0 = Shopify's real 4-hour retry schedule
    webhook_timeout_s: float = 5.0
    bulk_fail: bool = False  # the next bulk operations end FAILED
    bulk_delay_s: float = 0.0  # how long a bulk operation stays RUNNING
    bulk_max_concurrent: int | None = None  # None: by API version (1 before 2026-01, else 5)
    read_all_orders: bool = True  # the app holds read_all_orders; False: last 60 days only


@dataclass
class Subscription:
    id: int
    topic: str
    address: str
    api_version: str
    created_at: datetime


@dataclass
class Shop:
    domain: str
    access_token: str
    client_secret: str
    currency: str
    timezone: str
    country: str
    name: str
    shop_id: int
    api_version: str
    bucket: LeakyBucket
    knobs: Knobs = field(default_factory=Knobs)
    customers: dict[int, Customer] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    subscriptions: dict[int, Subscription] = field(default_factory=dict)
    bulk_operations: dict[int, Any] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    _counters: dict[str, int] = field(default_factory=dict)
    _order_numbers: int = 0
    _by_customer: dict[int | None, list[Order]] = field(default_factory=dict)
    _indexed: int = -1

    def next_id(self, kind: str) -> int:
        """A fresh id for ``kind``; per shop, so a seed gives the same ids in every run."""
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return _ID_BASE[kind] + self._counters[kind]

    def next_order_number(self) -> int:
        self._order_numbers += 1
        return self._order_numbers

    def orders_of(self, customer_id: int) -> list[Order]:
        """The customer's orders. Orders are never removed and never change customer, so the
        index only needs rebuilding when orders were added."""
        if self._indexed != len(self.orders):
            self._by_customer = {}
            for order in self.orders.values():
                self._by_customer.setdefault(order.customer_id, []).append(order)
            self._indexed = len(self.orders)
        return list(self._by_customer.get(customer_id, []))


# What a change to the store announces: (shop, topic, record) -> None. The webhook dispatcher
# turns it into deliveries; tests may swap in a recorder.
ChangeListener = Callable[[Shop, str, Any], None]


class Store:
    """All shops of one simulator, behind one lock.

    Every change goes through a method here so that it bumps ``updated_at`` and announces the
    matching webhook topic, whether it came from a mutation or a control endpoint.
    """

    def __init__(self, listener: ChangeListener | None = None) -> None:
        self.lock = threading.RLock()
        self.shops: dict[str, Shop] = {}
        self.listener = listener

    def announce(self, shop: Shop, topic: str, record: Any) -> None:
        if self.listener is not None:
            self.listener(shop, topic, record)

    # ---------------------------------------------------------------- customers
    def add_customer(self, shop: Shop, customer: Customer) -> Customer:
        shop.customers[customer.id] = customer
        self.announce(shop, "customers/create", customer)
        return customer

    def change_customer(
        self, shop: Shop, customer: Customer, changes: dict[str, Any], now: datetime
    ) -> Customer:
        """Apply ``changes`` (attribute name -> value) and bump ``updated_at``."""
        for key, value in changes.items():
            setattr(customer, key, value)
        customer.updated_at = max(now, customer.updated_at)
        self.announce(shop, "customers/update", customer)
        return customer

    def remove_customer(self, shop: Shop, customer: Customer) -> None:
        del shop.customers[customer.id]
        self.announce(shop, "customers/delete", customer)

    # ---------------------------------------------------------------- orders
    def add_order(self, shop: Shop, order: Order) -> Order:
        shop.orders[order.id] = order
        self.announce(shop, "orders/create", order)
        if order.customer_id in shop.customers:
            # A new order changes the customer's order count and amount spent, which Shopify
            # reports by bumping the customer's updatedAt.
            customer = shop.customers[order.customer_id]
            customer.updated_at = max(customer.updated_at, order.created_at)
        return order

    def change_order(
        self, shop: Shop, order: Order, changes: dict[str, Any], now: datetime
    ) -> Order:
        for key, value in changes.items():
            setattr(order, key, value)
        order.updated_at = max(now, order.updated_at)
        self.announce(shop, "orders/updated", order)
        return order
