"""The BigCommerce simulator's state: stores with their customers, orders, hooks and request
quota, and the one write path every change takes (REST API or control endpoint), which bumps
``date_modified`` and queues the thin webhook events BigCommerce would send.

Facts: ``../shared/reference/api-storefronts.md`` §3 (BC-ORD, BC-CUST, BC-RL, BC-WH).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

# Requests per 30 s window by plan [BC-RL]; Enterprise is set per store.
PLAN_QUOTAS = {"standard": 150, "plus": 150, "pro": 450, "enterprise": 1500}
STATUS_NAMES = {
    0: "Incomplete", 1: "Pending", 2: "Shipped", 3: "Partially Shipped", 4: "Refunded",
    5: "Cancelled", 6: "Declined", 7: "Awaiting Payment", 8: "Awaiting Pickup",
    9: "Awaiting Shipment", 10: "Completed", 11: "Awaiting Fulfillment",
    12: "Manual Verification Required", 13: "Disputed", 14: "Partially Refunded",
}  # fmt: skip


@dataclass
class Knobs:
    error_rate: float = 0.0
    error_status: int = 503
    latency_ms: float = 0.0
    webhook_drop_rate: float = 0.0
    webhook_duplicate_rate: float = 0.0
    webhook_delay_ms: float = 50.0
    webhook_timeout_s: float = 5.0
    # Divides BigCommerce's retry delays (60 s ... 86,400 s) so tests see the whole schedule.
    webhook_time_scale: float = 1.0
    # 429s without quota headers (load on the store) at this rate [BC-RL].
    load_429_rate: float = 0.0
    # An empty v2 page: 204 with no body, or 200 with [] (UNCONFIRMED which BigCommerce sends).
    empty_page_status: int = 204
    # Whether v2 order lists include archived orders by default (UNCONFIRMED).
    list_archived: bool = False


@dataclass
class Customer:
    id: int
    created: datetime
    modified: datetime
    email: str
    first_name: str
    last_name: str
    phone: str = ""
    company: str = ""
    notes: str = ""
    addresses: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Product:
    id: int
    product_id: int
    name: str
    sku: str
    quantity: int
    price_ex_tax: Decimal


@dataclass
class Order:
    id: int
    created: datetime
    modified: datetime
    status_id: int
    customer_id: int
    billing: dict[str, Any]
    products: list[Product]
    currency: str  # transactional (default_currency_code)
    store_currency: str
    exchange_rate: Decimal = Decimal(1)
    shipping_ex_tax: Decimal = Decimal(0)
    tax_rate: Decimal = Decimal("0.08")
    refunded: Decimal = Decimal(0)
    is_deleted: bool = False
    is_email_opt_in: bool = False
    customer_message: str = ""

    @property
    def subtotal_ex_tax(self) -> Decimal:
        return sum((p.price_ex_tax * p.quantity for p in self.products), Decimal(0))

    def tax_of(self, amount: Decimal) -> Decimal:
        return (amount * self.tax_rate).quantize(Decimal("0.01"))

    @property
    def total_ex_tax(self) -> Decimal:
        return self.subtotal_ex_tax + self.shipping_ex_tax

    @property
    def total_tax(self) -> Decimal:
        return sum(
            (self.tax_of(p.price_ex_tax) * p.quantity for p in self.products), Decimal(0)
        ) + self.tax_of(self.shipping_ex_tax)

    @property
    def total_inc_tax(self) -> Decimal:
        return self.total_ex_tax + self.total_tax


@dataclass
class Hook:
    id: int
    client_id: str
    scope: str
    destination: str
    headers: dict[str, str]
    is_active: bool
    created: int
    updated: int


@dataclass
class Store:
    store_hash: str
    store_id: str
    access_token: str
    client_id: str
    client_secret: str
    currency: str
    quota: int
    window_ms: int = 30_000
    knobs: Knobs = field(default_factory=Knobs)
    customers: dict[int, Customer] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    hooks: dict[int, Hook] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    window_start: float = 0.0
    used: int = 0
    next_ids: dict[str, int] = field(default_factory=dict)

    def next_id(self, kind: str) -> int:
        start = {"customer": 0, "order": 100, "product": 0, "hook": 20_000_000}[kind]
        self.next_ids[kind] = self.next_ids.get(kind, start) + 1
        return self.next_ids[kind]


class State:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.lock = threading.RLock()
        self.stores: dict[str, Store] = {}
        self.notify: Callable[[Store, str, dict[str, Any]], None] = lambda store, scope, data: None

    def now(self) -> datetime:
        return datetime.fromtimestamp(int(self.clock()), UTC)

    # ---------------------------------------------------------------- the write path
    def save_customer(self, store: Store, customer: Customer, *, created: bool) -> None:
        customer.modified = self.now()
        if created:
            customer.created = customer.modified
        store.customers[customer.id] = customer
        scope = "store/customer/created" if created else "store/customer/updated"
        self.notify(store, scope, {"type": "customer", "id": customer.id})

    def save_address(self, store: Store, customer: Customer, address: dict[str, Any]) -> None:
        """An address changed: store/customer/address/updated (data: the address id, and its
        customer's under ``address``) [BC-WH events]. store/customer/updated does not fire for
        address changes, and the customer's date_modified is left as it was (UNCONFIRMED)."""
        self.notify(
            store,
            "store/customer/address/updated",
            {"type": "customer", "id": address["id"], "address": {"customer_id": customer.id}},
        )

    def delete_customer(self, store: Store, customer_id: int) -> None:
        store.customers.pop(customer_id)
        self.notify(store, "store/customer/deleted", {"type": "customer", "id": customer_id})

    def save_order(
        self, store: Store, order: Order, *, created: bool, previous_status: int | None = None
    ) -> None:
        order.modified = self.now()
        if created:
            order.created = order.modified
        store.orders[order.id] = order
        data = {"type": "order", "id": order.id}
        self.notify(store, "store/order/created" if created else "store/order/updated", data)
        if previous_status is not None and previous_status != order.status_id:
            self.notify(
                store,
                "store/order/statusUpdated",
                {
                    **data,
                    "status": {
                        "previous_status_id": previous_status,
                        "new_status_id": order.status_id,
                    },
                },
            )

    def archive_order(self, store: Store, order: Order) -> None:
        order.is_deleted = True
        order.modified = self.now()
        self.notify(store, "store/order/archived", {"type": "order", "id": order.id})


# ------------------------------------------------------------------------------ seeding
FIRST = ["Olivia", "Zoë", "Łucja", "José", "Amélie", "Søren", "Hana", "Liam", "Chidi", "Ava",
         "Mateo", "Ingrid", "Kenji", "Priya", "Noor", "Émile", "Jonas", "Lea"]  # fmt: skip
LAST = ["Johnson", "Łukasiewicz", "Núñez", "Bergström", "Williams", "Tanaka", "Okoye",
        "Dubois", "Patel", "Smith", "O'Brien", "Müller", "Kim", "Rossi"]  # fmt: skip
CITIES = [("Austin", "Texas", "78701", "US", "United States"),
          ("Portland", "Oregon", "97201", "US", "United States"),
          ("Toronto", "Ontario", "M5H 2N2", "CA", "Canada"),
          ("Dublin", "", "D02 X285", "IE", "Ireland")]  # fmt: skip
PRODUCTS = [("Trail Shoe", "TS-1", Decimal("119.0000")), ("Rain Jacket", "RJ-2", Decimal("189.9900")),
            ("Wool Socks", "WS-3", Decimal("18.5000")), ("Water Bottle", "WB-4", Decimal("24.0000")),
            ("Headlamp", "HL-5", Decimal("49.9500"))]  # fmt: skip
STATUSES = [11] * 4 + [10] * 6 + [2] * 3 + [1, 7, 5, 9, 3]


class Generator:
    def __init__(self, store: Store, rng: random.Random) -> None:
        self.store, self.rng = store, rng

    def customer(self, created: datetime) -> Customer:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        cid = self.store.next_id("customer")
        city, state, postal, code, country = self.rng.choice(CITIES)
        email = f"{first.lower()}.{last.lower()}.{cid}@example.com".encode(
            "ascii", "ignore"
        ).decode()
        email = email.replace("'", "")
        phone = self.rng.choice(["", f"+1 512 555 {self.rng.randint(1000, 9999)}"])
        return Customer(
            id=cid,
            created=created,
            modified=created,
            email=email,
            first_name=first,
            last_name=last,
            phone=phone,
            addresses=[
                {
                    "id": cid,
                    "customer_id": cid,
                    "first_name": first,
                    "last_name": last,
                    "company": "",
                    "address1": f"{self.rng.randint(1, 999)} Main St",
                    "address2": "",
                    "city": city,
                    "state_or_province": state,
                    "postal_code": postal,
                    "country_code": code,
                    "country": country,
                    "phone": phone,
                    "address_type": "residential",
                }
            ],
        )

    def order(self, created: datetime, customer: Customer | None) -> Order:
        oid = self.store.next_id("order")
        if customer is None:
            first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
            email = f"guest.{oid}@example.net"
        else:
            first, last, email = customer.first_name, customer.last_name, customer.email
        city, state, postal, code, country = self.rng.choice(CITIES)
        products = []
        for _ in range(self.rng.randint(1, 4)):
            name, sku, price = self.rng.choice(PRODUCTS)
            products.append(
                Product(
                    self.store.next_id("product"),
                    100 + [p[1] for p in PRODUCTS].index(sku),
                    name,
                    sku,
                    self.rng.randint(1, 3),
                    price,
                )
            )
        # A few orders paid in a second transactional currency at a fixed rate.
        foreign = self.rng.random() < 0.1
        order = Order(
            id=oid,
            created=created,
            modified=created,
            status_id=self.rng.choice(STATUSES),
            customer_id=customer.id if customer else 0,
            billing={
                "first_name": first,
                "last_name": last,
                "company": "",
                "street_1": f"{self.rng.randint(1, 999)} Oak Ave",
                "street_2": "",
                "city": city,
                "state": state,
                "zip": postal,
                "country": country,
                "country_iso2": code,
                "phone": "",
                "email": email,
                "form_fields": [],
            },
            products=products,
            currency="EUR" if foreign else self.store.currency,
            store_currency=self.store.currency,
            exchange_rate=Decimal("0.9200") if foreign else Decimal(1),
            shipping_ex_tax=self.rng.choice([Decimal("0.0000"), Decimal("9.9500")]),
            is_email_opt_in=self.rng.random() < 0.4,
        )
        if order.status_id == 10 and self.rng.random() < 0.12:
            full = self.rng.random() < 0.4
            order.refunded = (
                order.total_inc_tax if full else (order.total_inc_tax / 4).quantize(Decimal("0.01"))
            )
            order.status_id = 4 if full else 14
        return order


def seed(
    state: State, store: Store, customers: int, orders: int, seed_value: int
) -> dict[str, int]:
    rng = random.Random(seed_value)
    now = state.now()
    gen = Generator(store, rng)
    made = []
    for _ in range(customers):
        created = now - timedelta(seconds=rng.randint(3600, 730 * 86400))
        customer = gen.customer(created)
        customer.modified = min(now, created + timedelta(seconds=rng.randint(0, 60 * 86400)))
        store.customers[customer.id] = customer
        made.append(customer)
    for _ in range(orders):
        created = now - timedelta(seconds=rng.randint(60, 700 * 86400))
        order = gen.order(created, rng.choice(made) if made and rng.random() > 0.1 else None)
        order.modified = min(now, created + timedelta(seconds=rng.randint(0, 20 * 86400)))
        store.orders[order.id] = order
    return {"customers": customers, "orders": orders}
