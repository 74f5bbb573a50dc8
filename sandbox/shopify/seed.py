"""A deterministic generator of realistic shop data: same seed, same shop.

What it varies, because real shops do and connectors break on it:
- names with non-ASCII letters and scripts (Zoë, Ångström, Müller, Łukasz, 山田, Ñúñez);
- eight countries with their address formats and phone numbering;
- customers without an email (Shopify needs a name, phone or email) or without a phone;
- phones that are valid E.164 on customers (Shopify validates those) and free-text, sometimes
  invalid, on addresses and orders ("+1 555 0100", "12345"), which Shopify does not validate;
- ~10% guest orders (no customer, email only), 1-5 line items, some custom line items without
  product/variant;
- every OrderDisplayFinancialStatus value, refunds, cancellations, closed orders;
- presentment currencies differing from the shop currency (USD, EUR, GBP, JPY, CAD, AUD, BRL):
  shopMoney is always the shop's one currency, presentmentMoney what the buyer paid in. For a
  demo across shop currencies, create several shops with different ``currency``;
- created/updated timestamps spread over the two years before the anchor.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sandbox.shopify.store import (
    Address,
    Consent,
    Customer,
    LineItem,
    Order,
    Refund,
    Shop,
    Store,
    quantize,
)

FIRST_NAMES = (
    "Zoë",
    "Łukasz",
    "José",
    "François",
    "Björn",
    "Søren",
    "Chloé",
    "Mia",
    "Noah",
    "Olivia",
    "Liam",
    "Emma",
    "Hiroshi",
    "Yuki",
    "João",
    "Ana",
    "Émile",
    "Jürgen",
    "Siobhán",
    "Renée",
    "Oliver",
    "Amelia",
    "Lucas",
    "Sofía",
    "Mateus",
    "Charlotte",
    "Jack",
    "Isla",
    "Thomas",
    "Lea",
)
LAST_NAMES = (
    "Ångström",
    "Müller",
    "Ñúñez",
    "O'Brien",
    "Dubois",
    "Silva",
    "Smith",
    "Nguyễn",
    "Kowalski",
    "García",
    "Schröder",
    "Tanaka",
    "Brown",
    "Martin",
    "Rossi",
    "Johnson",
    "Lefèvre",
    "Souza",
    "Williams",
    "Taylor",
    "Wilson",
    "Jones",
    "Fischer",
    "Costa",
    "Dupont",
    "Kim",
    "Lee",
)
JAPANESE = (("太郎", "山田"), ("花子", "佐藤"), ("健", "鈴木"), ("さくら", "高橋"))
DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
TAGS = ("VIP", "wholesale", "newsletter", "Léon", "Noël", "returning", "b2b", "influencer")
ORDER_TAGS = ("gift", "priority", "subscription", "pos", "marketplace", "Noël")
LOCALES = {
    "US": "en",
    "CA": "en-CA",
    "GB": "en-GB",
    "DE": "de",
    "FR": "fr",
    "JP": "ja",
    "BR": "pt-BR",
    "AU": "en-AU",
}


@dataclass(frozen=True)
class Country:
    code: str
    currency: str
    tax_rate: Decimal
    cities: tuple[tuple[str, str | None, str | None, str], ...]  # city, province, code, zip
    streets: tuple[str, ...]
    phone: str  # a pattern: each "#" becomes a digit


COUNTRIES = (
    Country(
        "US",
        "USD",
        Decimal("0.08"),
        (
            ("New York", "New York", "NY", "10001"),
            ("Louisville", "Kentucky", "KY", "40202"),
            ("San Francisco", "California", "CA", "94103"),
        ),
        ("Chestnut Street 92", "123 Oak St", "500 Market St"),
        "+1212555####",
    ),
    Country(
        "CA",
        "CAD",
        Decimal("0.13"),
        (("Ottawa", "Ontario", "ON", "K2P 2L8"), ("Montréal", "Quebec", "QC", "H2X 1Y4")),
        ("151 O'Connor St", "105 Victoria St"),
        "+1416555####",
    ),
    Country(
        "GB",
        "GBP",
        Decimal("0.20"),
        (("London", None, None, "SW1A 1AA"), ("Manchester", None, None, "M1 1AE")),
        ("10 Downing Street", "221B Baker Street"),
        "+44791112####",
    ),
    Country(
        "DE",
        "EUR",
        Decimal("0.19"),
        (("Berlin", "Berlin", "BE", "10115"), ("München", "Bayern", "BY", "80331")),
        ("Straße des 17. Juni 1", "Königsallee 12"),
        "+49151234#####",
    ),
    Country(
        "FR",
        "EUR",
        Decimal("0.20"),
        (("Paris", None, None, "75001"), ("Lyon", None, None, "69002")),
        ("12 rue de Rivoli", "3 place Bellecour"),
        "+336123#####",
    ),
    Country(
        "JP",
        "JPY",
        Decimal("0.10"),
        (("千代田区", "Tokyo", "JP-13", "100-0001"), ("大阪市", "Osaka", "JP-27", "530-0001")),
        ("丸の内1-1", "梅田2-4-9"),
        "+81901234####",
    ),
    Country(
        "BR",
        "BRL",
        Decimal("0.00"),
        (
            ("São Paulo", "São Paulo", "SP", "01310-100"),
            ("Rio de Janeiro", "Rio de Janeiro", "RJ", "20040-020"),
        ),
        ("Avenida Paulista 1578", "Rua da Assembleia 10"),
        "+55119123#####",
    ),
    Country(
        "AU",
        "AUD",
        Decimal("0.10"),
        (("Sydney", "New South Wales", "NSW", "2000"), ("Melbourne", "Victoria", "VIC", "3000")),
        ("1 Macquarie St", "200 Collins St"),
        "+61491570###",
    ),
)
BY_CODE = {c.code: c for c in COUNTRIES}

# Units of each presentment currency per US dollar; orders convert through it.
PER_USD = {
    "USD": Decimal("1"),
    "EUR": Decimal("0.92"),
    "GBP": Decimal("0.79"),
    "JPY": Decimal("151"),
    "CAD": Decimal("1.36"),
    "AUD": Decimal("1.52"),
    "BRL": Decimal("5.05"),
    "CHF": Decimal("0.90"),
    "SEK": Decimal("10.6"),
}

INVALID_PHONES = ("+1 555 0100", "12345", "555-CALL-NOW", "+44 (0)20")

# (product id, title, vendor, variants: (variant id, variant title, sku, price in USD, grams))
CATALOG = (
    (
        8_101_000_000_001,
        "Merino Wool Beanie",
        "Nordwolle",
        (
            (4_401_000_000_011, "Charcoal", "BEANIE-CHAR", "29.00", 90),
            (4_401_000_000_012, "Crème", "BEANIE-CREME", "29.00", 90),
        ),
    ),
    (
        8_101_000_000_002,
        "Ceramic Pour-Over Set",
        "Kiln & Co",
        ((4_401_000_000_021, None, "POUROVER-1", "64.50", 1200),),
    ),
    (
        8_101_000_000_003,
        "Linen Tea Towel",
        "Atelier Lin",
        (
            (4_401_000_000_031, "Sage", "TOWEL-SAGE", "14.99", 150),
            (4_401_000_000_032, "Terracotta", "TOWEL-TERRA", "14.99", 150),
        ),
    ),
    (
        8_101_000_000_004,
        "Trail Running Shoes",
        "Ridgeway",
        (
            (4_401_000_000_041, "42 / Blue", "TRAIL-42-BL", "139.95", 600),
            (4_401_000_000_042, "44 / Black", "TRAIL-44-BK", "139.95", 640),
        ),
    ),
    (
        8_101_000_000_005,
        "Matcha Whisk — 抹茶",
        "Kyoto Craft",
        ((4_401_000_000_051, None, "WHISK-100", "22.00", 60),),
    ),
    (
        8_101_000_000_006,
        "Recycled Notebook A5",
        "Papier",
        (
            (4_401_000_000_061, "Dotted", "NB-A5-DOT", "9.50", 250),
            (4_401_000_000_062, "Lined", "NB-A5-LIN", "9.50", 250),
        ),
    ),
)

FINANCIAL = (
    ("PAID", 60),
    ("PENDING", 6),
    ("AUTHORIZED", 6),
    ("PARTIALLY_PAID", 4),
    ("PARTIALLY_REFUNDED", 8),
    ("REFUNDED", 6),
    ("VOIDED", 5),
    ("EXPIRED", 5),
)


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum() or ch in ".-") or "buyer"


def _digits(rng: random.Random, pattern: str) -> str:
    return "".join(str(rng.randrange(10)) if ch == "#" else ch for ch in pattern)


class Generator:
    """Makes customers and orders for one shop from ``rng``."""

    def __init__(self, shop: Shop, rng: random.Random, anchor: datetime) -> None:
        self.shop = shop
        self.rng = rng
        self.anchor = anchor
        self.emails = {c.email.lower() for c in shop.customers.values() if c.email}
        self.phones = {c.phone for c in shop.customers.values() if c.phone}

    # ------------------------------------------------------------------ pieces
    def moment(self, earliest: datetime) -> datetime:
        span = max(1, int((self.anchor - earliest).total_seconds()))
        return earliest + timedelta(seconds=self.rng.randrange(span))

    def country(self) -> Country:
        home = BY_CODE.get(self.shop.country)
        if home and self.rng.random() < 0.5:
            return home
        return self.rng.choice(COUNTRIES)

    def name(self, country: Country) -> tuple[str, str]:
        if country.code == "JP" and self.rng.random() < 0.6:
            return self.rng.choice(JAPANESE)
        return self.rng.choice(FIRST_NAMES), self.rng.choice(LAST_NAMES)

    def email(self, first: str, last: str) -> str:
        local = f"{_ascii(first)}.{_ascii(last)}"
        candidate = f"{local}@{self.rng.choice(DOMAINS)}"
        n = 1
        while candidate.lower() in self.emails:
            n += 1
            candidate = f"{local}{n}@{self.rng.choice(DOMAINS)}"
        if self.rng.random() < 0.1:
            candidate = candidate[0].upper() + candidate[1:]  # real data has mixed case
        self.emails.add(candidate.lower())
        return candidate

    def unique_phone(self, country: Country) -> str:
        """A valid E.164 number no other customer has (Shopify enforces uniqueness)."""
        phone = _digits(self.rng, country.phone)
        while phone in self.phones:
            phone = _digits(self.rng, country.phone)
        self.phones.add(phone)
        return phone

    def address(self, country: Country, first: str | None, last: str | None) -> Address:
        city, province, code, zip_code = self.rng.choice(country.cities)
        roll = self.rng.random()
        phone = (
            self.rng.choice(INVALID_PHONES)
            if roll < 0.15
            else None
            if roll < 0.35
            else _digits(self.rng, country.phone)
        )
        return Address(
            id=self.shop.next_id("MailingAddress"),
            first_name=first,
            last_name=last,
            company="Ångström AB" if self.rng.random() < 0.08 else None,
            address1=self.rng.choice(country.streets),
            address2="Apt 4" if self.rng.random() < 0.2 else None,
            city=city,
            province=province,
            province_code=code,
            country_code=country.code,
            zip=zip_code,
            phone=phone,
        )

    # ------------------------------------------------------------------ records
    def customer(self, created: datetime | None = None) -> Customer:
        country = self.country()
        first, last = self.name(country)
        created = created or self.moment(self.anchor - timedelta(days=730))
        has_email = self.rng.random() > 0.08
        has_phone = self.rng.random() < 0.7 or not has_email
        email = self.email(first, last) if has_email else None
        phone = self.unique_phone(country) if has_phone else None
        addresses = [
            self.address(country, first, last) for _ in range(self.rng.choice((0, 1, 1, 1, 2)))
        ]
        email_consent = None
        if email:
            state = self.rng.choice(
                ("SUBSCRIBED", "NOT_SUBSCRIBED", "NOT_SUBSCRIBED", "UNSUBSCRIBED", "PENDING")
            )
            email_consent = Consent(
                state,
                self.rng.choice(("SINGLE_OPT_IN", "CONFIRMED_OPT_IN", "UNKNOWN")),
                self.moment(created) if state != "NOT_SUBSCRIBED" else None,
            )
        sms_consent = None
        if phone:
            state = self.rng.choice(("SUBSCRIBED", "NOT_SUBSCRIBED", "NOT_SUBSCRIBED"))
            sms_consent = Consent(
                state,
                "SINGLE_OPT_IN",
                self.moment(created) if state == "SUBSCRIBED" else None,
                "OTHER" if state == "SUBSCRIBED" else None,
            )
        return Customer(
            id=self.shop.next_id("Customer"),
            created_at=created,
            updated_at=self.moment(created),
            first_name=first if self.rng.random() > 0.03 else None,
            last_name=last,
            email=email,
            phone=phone,
            locale=LOCALES.get(country.code, "en"),
            note="Prefers delivery after 6pm — merci!" if self.rng.random() < 0.1 else None,
            state=self.rng.choice(
                ("DISABLED", "DISABLED", "DISABLED", "ENABLED", "INVITED", "DECLINED")
            ),
            tags=sorted(set(self.rng.sample(TAGS, self.rng.choice((0, 0, 1, 2))))),
            tax_exempt=self.rng.random() < 0.05,
            verified_email=has_email and self.rng.random() > 0.1,
            email_consent=email_consent,
            sms_consent=sms_consent,
            addresses=addresses,
            default_address_id=addresses[0].id if addresses else None,
        )

    def line_items(self, count: int) -> list[LineItem]:
        items = []
        rate = PER_USD.get(self.shop.currency, Decimal(1))
        for _ in range(count):
            if self.rng.random() < 0.08:
                price = quantize(
                    Decimal(self.rng.choice(("5.00", "12.00", "48.00"))) * rate, self.shop.currency
                )
                items.append(
                    LineItem(
                        id=self.shop.next_id("LineItem"),
                        title="Gift wrapping & note",
                        quantity=1,
                        unit_price=price,
                        grams=0,
                    )
                )
                continue
            product_id, title, vendor, variants = self.rng.choice(CATALOG)
            variant_id, variant_title, sku, usd, grams = self.rng.choice(variants)
            price = quantize(Decimal(usd) * rate, self.shop.currency)
            quantity = self.rng.choice((1, 1, 1, 2, 3))
            discount = (
                quantize(price * quantity * Decimal("0.1"), self.shop.currency)
                if self.rng.random() < 0.15
                else Decimal(0)
            )
            items.append(
                LineItem(
                    id=self.shop.next_id("LineItem"),
                    title=title,
                    quantity=quantity,
                    unit_price=price,
                    variant_title=variant_title,
                    sku=sku,
                    vendor=vendor,
                    product_id=product_id if self.rng.random() > 0.03 else None,  # product deleted
                    variant_id=variant_id,
                    discount=discount,
                    grams=grams,
                )
            )
        return items

    def order(self, customer: Customer | None, created: datetime | None = None) -> Order:
        earliest = customer.created_at if customer else self.anchor - timedelta(days=730)
        created = created or self.moment(earliest)
        address_owner = customer.default_address if customer else None
        country = BY_CODE.get(address_owner.country_code or "") if address_owner else None
        country = country or self.country()
        first, last = (customer.first_name, customer.last_name) if customer else self.name(country)
        shipping_address = address_owner or self.address(country, first, last)
        presentment = (
            country.currency if self.rng.random() < 0.7 else self.rng.choice(tuple(PER_USD))
        )
        rate = PER_USD.get(presentment, Decimal(1)) / PER_USD.get(self.shop.currency, Decimal(1))
        status = self.rng.choices([s for s, _ in FINANCIAL], [w for _, w in FINANCIAL])[0]
        email = customer.email if customer else self.email(first or "guest", last or "buyer")
        order = Order(
            id=self.shop.next_id("Order"),
            number=self.shop.next_order_number(),
            created_at=created,
            updated_at=created,
            processed_at=created,
            currency=self.shop.currency,
            presentment_currency=presentment,
            exchange_rate=rate.quantize(Decimal("0.000001")),
            line_items=self.line_items(self.rng.randint(1, 5)),
            customer_id=customer.id if customer else None,
            email=email,
            phone=(
                customer.phone
                if customer and self.rng.random() < 0.5
                else self.rng.choice(INVALID_PHONES)
                if self.rng.random() < 0.1
                else None
            ),
            financial_status=status,
            fulfillment_status="UNFULFILLED",
            shipping=quantize(
                Decimal(self.rng.choice(("0", "4.99", "9.99", "14.50")))
                * PER_USD.get(self.shop.currency, Decimal(1)),
                self.shop.currency,
            ),
            tax_rate=country.tax_rate,
            billing_address=self.address(country, first, last) if self.rng.random() < 0.9 else None,
            shipping_address=shipping_address,
            tags=sorted(set(self.rng.sample(ORDER_TAGS, self.rng.choice((0, 0, 0, 1, 2))))),
            note="Bitte nicht klingeln 🙏" if self.rng.random() < 0.05 else None,
            test=self.rng.random() < 0.02,
            customer_locale=customer.locale if customer else LOCALES.get(country.code),
            buyer_accepts_marketing=bool(
                customer and customer.email_consent and customer.email_consent.state == "SUBSCRIBED"
            ),
        )
        self._lifecycle(order)
        return order

    def _lifecycle(self, order: Order) -> None:
        """Fulfilment, refunds, cancellation and closing consistent with the status."""
        status = order.financial_status
        later = self.moment(order.created_at)
        if status in ("PAID", "PARTIALLY_REFUNDED", "REFUNDED"):
            order.fulfillment_status = self.rng.choice(
                ("FULFILLED", "FULFILLED", "PARTIALLY_FULFILLED", "UNFULFILLED")
            )
        if status == "PARTIALLY_REFUNDED":
            amount = quantize(
                order.total_price * Decimal(self.rng.choice(("0.1", "0.25", "0.5"))), order.currency
            )
            order.refunds.append(
                Refund(self.shop.next_id("Refund"), later, amount, "Damaged in transit")
            )
        if status == "REFUNDED":
            order.refunds.append(
                Refund(self.shop.next_id("Refund"), later, order.total_price, "Returned")
            )
            for item in order.line_items:
                item.current_quantity = 0
        if status in ("VOIDED", "EXPIRED") or (status == "REFUNDED" and self.rng.random() < 0.5):
            order.cancelled_at = later
            order.cancel_reason = self.rng.choice(
                ("CUSTOMER", "FRAUD", "INVENTORY", "DECLINED", "OTHER")
            )
            order.closed_at = later
        elif order.fulfillment_status == "FULFILLED" and self.rng.random() < 0.6:
            order.closed_at = later
        order.updated_at = max(
            order.updated_at, later if order.refunds or order.closed_at else order.created_at
        )


def seed(shop: Shop, *, customers: int, orders: int, seed: int, anchor: datetime) -> dict:
    """Add ``customers`` and ``orders`` to ``shop``. Call with the store lock held.

    Seeding announces nothing: webhooks are for changes, and a freshly seeded shop is the
    state before the app was installed.
    """
    rng = random.Random(seed)
    gen = Generator(shop, rng, anchor)
    made = [gen.customer() for _ in range(customers)]
    for customer in made:
        shop.customers[customer.id] = customer
    pool = list(shop.customers.values())
    for _ in range(orders):
        owner = rng.choice(pool) if pool and rng.random() > 0.1 else None
        order = gen.order(owner)
        shop.orders[order.id] = order
        if owner is not None:
            owner.updated_at = max(owner.updated_at, order.created_at)
    return {"customers": len(made), "orders": orders}


def activity(
    store: Store,
    shop: Shop,
    *,
    new_customers: int,
    changed_customers: int,
    new_orders: int,
    changed_orders: int,
    seed: int,
    now: datetime,
) -> dict[str, list[int]]:
    """Changes as a live shop sees them, each announced (webhooks). Store lock held."""
    rng = random.Random(seed)
    gen = Generator(shop, rng, now)
    done: dict[str, list[int]] = {
        "created_customers": [],
        "changed_customers": [],
        "created_orders": [],
        "changed_orders": [],
    }
    existing = sorted(shop.customers)
    for _ in range(new_customers):
        customer = gen.customer(created=now)
        customer.updated_at = now
        store.add_customer(shop, customer)
        done["created_customers"].append(customer.id)
    for customer_id in rng.sample(existing, min(changed_customers, len(existing))):
        customer = shop.customers[customer_id]
        store.change_customer(shop, customer, _customer_change(gen, customer), now)
        done["changed_customers"].append(customer_id)
    pool = sorted(shop.customers)
    for _ in range(new_orders):
        owner = shop.customers[rng.choice(pool)] if pool and rng.random() > 0.1 else None
        order = gen.order(owner, created=now)
        order.updated_at = now
        store.add_order(shop, order)
        done["created_orders"].append(order.id)
    orders = sorted(o for o in shop.orders if o not in done["created_orders"])
    for order_id in rng.sample(orders, min(changed_orders, len(orders))):
        order = shop.orders[order_id]
        store.change_order(shop, order, _order_change(gen, order, now), now)
        done["changed_orders"].append(order_id)
    return done


def _customer_change(gen: Generator, customer: Customer) -> dict:
    choice = gen.rng.choice(("note", "tags", "phone", "last_name", "email_consent"))
    if choice == "note":
        return {
            "note": gen.rng.choice(("Called about a missing parcel.", "Änderung der Adresse", None))
        }
    if choice == "tags":
        return {"tags": sorted(set(customer.tags) | {gen.rng.choice(TAGS)})}
    if choice == "phone":
        return {"phone": gen.unique_phone(gen.rng.choice(COUNTRIES))}
    if choice == "last_name":
        return {"last_name": gen.rng.choice(LAST_NAMES)}
    if customer.email is None:
        return {"note": "Asked to be contacted by phone only."}
    state = (
        "UNSUBSCRIBED"
        if customer.email_consent and customer.email_consent.state == "SUBSCRIBED"
        else "SUBSCRIBED"
    )
    return {"email_consent": Consent(state, "SINGLE_OPT_IN", gen.anchor)}


def _order_change(gen: Generator, order: Order, now: datetime) -> dict:
    if order.cancelled_at is None and order.financial_status in ("PAID", "PARTIALLY_REFUNDED"):
        choice = gen.rng.choice(("refund", "fulfil", "tags", "note"))
    else:
        choice = gen.rng.choice(("tags", "note"))
    if choice == "refund":
        amount = quantize(order.current_total * Decimal("0.2"), order.currency)
        return {
            "refunds": [
                *order.refunds,
                Refund(gen.shop.next_id("Refund"), now, amount, "Goodwill"),
            ],
            "financial_status": "PARTIALLY_REFUNDED",
        }
    if choice == "fulfil":
        return {"fulfillment_status": "FULFILLED"}
    if choice == "tags":
        return {"tags": sorted(set(order.tags) | {gen.rng.choice(ORDER_TAGS)})}
    return {"note": gen.rng.choice(("Customer asked for gift receipt.", "Livraison express 🚚"))}
