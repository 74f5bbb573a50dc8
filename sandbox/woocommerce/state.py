"""The WooCommerce simulator's state: sites, their customers, orders and webhooks, and the one
write path every change takes (REST API or control endpoint alike), which bumps modification
times and queues the webhooks WooCommerce would send.

Facts: ``../shared/reference/api-storefronts.md`` §2 (WC-DOCS, WC-SRC).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo


@dataclass
class Knobs:
    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_ms: float = 50.0
    webhook_timeout_s: float = 5.0
    # WooCommerce core has no rate limit; a host or WAF may have one [WC-DOCS _introduction.md].
    rate_limit_per_minute: int | None = None
    # What a page past the last is: WordPress core's 400, or [] (UNCONFIRMED for WooCommerce).
    page_past_end: str = "empty"


@dataclass
class Customer:
    id: int
    created: datetime
    modified: datetime
    email: str
    first_name: str
    last_name: str
    username: str
    role: str = "customer"
    billing: dict[str, str] = field(default_factory=dict)
    shipping: dict[str, str] = field(default_factory=dict)
    meta_data: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LineItem:
    id: int
    product_id: int
    variation_id: int
    name: str
    sku: str
    quantity: int
    price: Decimal  # unit price


@dataclass
class Order:
    id: int
    number: int
    created: datetime
    modified: datetime
    status: str
    currency: str
    customer_id: int  # 0: a guest
    billing: dict[str, str]
    shipping: dict[str, str]
    line_items: list[LineItem]
    shipping_total: Decimal = Decimal(0)
    tax_rate: Decimal = Decimal(0)
    discount_total: Decimal = Decimal(0)
    refunds: list[tuple[int, str, Decimal]] = field(default_factory=list)  # id, reason, amount
    paid: datetime | None = None
    completed: datetime | None = None
    customer_note: str = ""

    @property
    def subtotal(self) -> Decimal:
        return sum((li.price * li.quantity for li in self.line_items), Decimal(0))

    @property
    def total_tax(self) -> Decimal:
        return ((self.subtotal - self.discount_total) * self.tax_rate).quantize(Decimal("0.01"))

    @property
    def total(self) -> Decimal:
        return self.subtotal - self.discount_total + self.shipping_total + self.total_tax


@dataclass
class Webhook:
    id: int
    name: str
    topic: str  # resource.event
    delivery_url: str
    secret: str
    status: str = "active"
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))
    failures: int = 0


@dataclass
class Site:
    name: str
    url: str
    consumer_key: str
    consumer_secret: str
    timezone: str
    currency: str
    country: str
    webhook_failure_limit: int = 5
    knobs: Knobs = field(default_factory=Knobs)
    customers: dict[int, Customer] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    webhooks: dict[int, Webhook] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    nonces: dict[str, float] = field(default_factory=dict)
    recent_calls: list[float] = field(default_factory=list)
    next_ids: dict[str, int] = field(default_factory=dict)

    def next_id(self, kind: str) -> int:
        # WordPress shares one posts table between orders and other objects: ids are sparse.
        start = {"customer": 2, "order": 100, "line": 1, "webhook": 1, "refund": 5000}[kind]
        self.next_ids[kind] = self.next_ids.get(kind, start) + 1
        return self.next_ids[kind]

    def local(self, moment: datetime | None) -> str | None:
        """The site-local twin of a UTC time: ISO-8601 without an offset."""
        if moment is None:
            return None
        return moment.astimezone(ZoneInfo(self.timezone)).strftime("%Y-%m-%dT%H:%M:%S")


def gmt(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S") if moment else None


class State:
    """Every site, behind one lock; ``notify(site, topic, resource_id)`` is called for each
    event a webhook may be subscribed to (the dispatcher coalesces them)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.sites: dict[str, Site] = {}
        self.notify: Callable[[Site, str, int], None] = lambda site, topic, rid: None

    def now(self) -> datetime:
        return datetime.fromtimestamp(int(self.clock()), UTC)

    # ---------------------------------------------------------------- the write path
    def save_customer(self, site: Site, customer: Customer, *, created: bool) -> None:
        now = self.now()
        if created:
            customer.created = now
        customer.modified = now
        site.customers[customer.id] = customer
        self.notify(site, "customer.created" if created else "customer.updated", customer.id)

    def delete_customer(self, site: Site, customer_id: int) -> None:
        site.customers.pop(customer_id)
        self.notify(site, "customer.deleted", customer_id)

    def save_order(self, site: Site, order: Order, *, created: bool) -> None:
        now = self.now()
        if created:
            order.created = now
        order.modified = now
        if order.status in ("processing", "completed") and order.paid is None:
            order.paid = now
        if order.status == "completed" and order.completed is None:
            order.completed = now
        site.orders[order.id] = order
        self.notify(site, "order.created" if created else "order.updated", order.id)

    def trash_order(self, site: Site, order: Order) -> None:
        # order.deleted fires on trash [WC-SRC wc-webhook-functions.php]
        order.status = "trash"
        order.modified = self.now()
        self.notify(site, "order.deleted", order.id)


# ------------------------------------------------------------------------------ seeding
FIRST = [
    "Anna",
    "Zoë",
    "Łukasz",
    "María",
    "Sébastien",
    "Chloé",
    "Jürgen",
    "Aiko",
    "Omar",
    "Ines",
    "Noah",
    "Mia",
    "Björn",
    "Fatima",
    "Hélène",
    "Kai",
    "Sofía",
    "Matteo",
    "Yuki",
    "Leo",
]
LAST = [
    "Müller",
    "Łukasiewicz",
    "García",
    "Dubois",
    "Rossi",
    "Nakamura",
    "Okafor",
    "Smith",
    "Öztürk",
    "Novák",
    "Fernández",
    "Larsen",
    "Kowalski",
    "Brown",
    "Ångström",
    "Silva",
]
CITIES = [
    ("Berlin", "BE", "10115", "DE"),
    ("München", "BY", "80331", "DE"),
    ("Paris", "", "75001", "FR"),
    ("Kraków", "", "30-001", "PL"),
    ("Madrid", "M", "28001", "ES"),
    ("Wien", "", "1010", "AT"),
]
PRODUCTS = [
    ("Tasse", "MUG-1", Decimal("12.50")),
    ("Kaffee 1 kg", "COF-1", Decimal("24.90")),
    ("Mühle", "GRN-2", Decimal("89.00")),
    ("Filter", "FLT-3", Decimal("4.99")),
    ("Kanne", "POT-1", Decimal("39.95")),
    ("Bohnen Probe", "SMP-9", Decimal("7.00")),
]
STREETS = ["Hauptstraße", "Rue de la Paix", "Calle Mayor", "ul. Floriańska"]
STATUSES = ["processing"] * 5 + ["completed"] * 8 + ["on-hold", "pending", "cancelled", "failed"]


class Generator:
    def __init__(self, site: Site, rng: random.Random, now: datetime) -> None:
        self.site, self.rng, self.now = site, rng, now

    def address(self, first: str, last: str, email: str | None) -> dict[str, str]:
        city, state, postcode, country = self.rng.choice(CITIES)
        address = {
            "first_name": first,
            "last_name": last,
            "company": "",
            "address_1": f"{self.rng.choice(STREETS)} {self.rng.randint(1, 200)}",
            "address_2": "",
            "city": city,
            "state": state,
            "postcode": postcode,
            "country": country,
            "phone": self.rng.choice(["", f"+49 30 {self.rng.randint(1000000, 9999999)}"]),
        }
        if email is not None:
            address["email"] = email
        return address

    def customer(self, created: datetime) -> Customer:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        cid = self.site.next_id("customer")
        email = f"{first.lower()}.{cid}@example.org".encode("ascii", "ignore").decode()
        return Customer(
            id=cid,
            created=created,
            modified=created,
            email=email,
            first_name=first,
            last_name=last,
            username=email.split("@")[0],
            billing=self.address(first, last, email),
            shipping=self.address(first, last, None),
        )

    def order(self, created: datetime, customer: Customer | None) -> Order:
        oid = self.site.next_id("order")
        if customer is None:
            first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
            email = f"guest.{oid}@example.net"
        else:
            first, last, email = customer.first_name, customer.last_name, customer.email
        lines = []
        for _ in range(self.rng.randint(1, 4)):
            name, sku, price = self.rng.choice(PRODUCTS)
            lines.append(
                LineItem(
                    self.site.next_id("line"),
                    10 + PRODUCTS.index((name, sku, price)),
                    0,
                    name,
                    sku,
                    self.rng.randint(1, 3),
                    price,
                )
            )
        status = self.rng.choice(STATUSES)
        order = Order(
            id=oid,
            number=oid,
            created=created,
            modified=created,
            status=status,
            currency=self.site.currency,
            customer_id=customer.id if customer else 0,
            billing=self.address(first, last, email),
            shipping=self.address(first, last, None),
            line_items=lines,
            shipping_total=self.rng.choice([Decimal("0.00"), Decimal("4.90"), Decimal("9.90")]),
            tax_rate=Decimal("0.19"),
            paid=created if status in ("processing", "completed") else None,
            completed=created + timedelta(days=2) if status == "completed" else None,
        )
        if status == "completed" and self.rng.random() < 0.1:
            full = self.rng.random() < 0.4
            amount = order.total if full else (order.total / 3).quantize(Decimal("0.01"))
            order.refunds.append((self.site.next_id("refund"), "Kundenwunsch", amount))
            if full:
                order.status = "refunded"
        return order


def seed(state: State, site: Site, customers: int, orders: int, seed_value: int) -> dict[str, int]:
    """Deterministic history over the last two years (modification after creation)."""
    rng = random.Random(seed_value)
    now = state.now()
    gen = Generator(site, rng, now)
    made_customers = []
    for _ in range(customers):
        created = now - timedelta(seconds=rng.randint(3600, 730 * 86400))
        customer = gen.customer(created)
        customer.modified = min(now, created + timedelta(seconds=rng.randint(0, 90 * 86400)))
        site.customers[customer.id] = customer
        made_customers.append(customer)
    for _ in range(orders):
        created = now - timedelta(seconds=rng.randint(60, 700 * 86400))
        buyer = rng.choice(made_customers) if made_customers and rng.random() > 0.12 else None
        order = gen.order(created, buyer)
        order.modified = min(now, created + timedelta(seconds=rng.randint(0, 30 * 86400)))
        site.orders[order.id] = order
    return {"customers": customers, "orders": orders}
