"""The demo, and the harness the end-to-end tests share with it.

``flask demo`` starts a storefront simulator (Shopify, WooCommerce or BigCommerce), a CRM's
(HubSpot, Zoho CRM or Salesforce), and Tandem itself (webhook receiver and workers) in this
process, on loopback ports, with a throwaway state store; seeds a store, connects it, backfills,
simulates live activity through signed webhooks (some dropped, some duplicated, so polling has
to catch up), waits until the CRM matches the store, and prints what happened. Same connectors,
same engine as production: only configuration points them at the simulators.
"""

from __future__ import annotations

import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from cryptography.fernet import Fernet
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import func, select

from mapping import CRM_SCHEMAS
from mapping.crm import LAST_NAME_PLACEHOLDER
from mapping.twoway import WRITE_BACK
from sandbox.bigcommerce import create_app as create_bigcommerce
from sandbox.hubspot import create_app as create_hubspot
from sandbox.salesforce import create_app as create_salesforce
from sandbox.server import RunningServer, serve
from sandbox.shopify import create_app as create_shopify
from sandbox.woocommerce import create_app as create_woocommerce
from sandbox.zoho import create_app as create_zoho
from sync import migrate
from sync.db import transaction
from sync.models import (
    DeadLetter,
    DeadLetterStatus,
    InboxEvent,
    InboxStatus,
    Job,
    JobStatus,
    Link,
    utcnow,
)
from sync.worker import InProcessWorker

SHOP = "tandem-demo.myshopify.com"
PORTAL_ID = 4242
HUBSPOT_APP_ID = 1_234_567  # the app whose webhooks the HubSpot simulator sends
# HubSpot subscribes property changes one property at a time [HS-WH]: the app asks for those
# that sync back (not the order facts Tandem writes), plus creations and deletions. (The
# simulator sends no contact.merge events; the worker reads them from real HubSpot.)
HUBSPOT_SUBSCRIPTIONS: list[Any] = [
    "contact.creation",
    "contact.deletion",
    *(
        {"eventType": "contact.propertyChange", "propertyName": prop}
        for prop, path in CRM_SCHEMAS["hubspot"].contact_fields.items()
        if path in WRITE_BACK
    ),
]
WEBHOOK_TOPICS = [
    "customers/create",
    "customers/update",
    "customers/delete",
    "orders/create",
    "orders/updated",
]


@dataclass(frozen=True)
class StoreSim:
    """How the harness drives one storefront's simulator: where its control API keeps stores,
    how a store is made there, and what Tandem calls the account and its credentials."""

    platform: str
    make_app: Callable[..., Any]
    collection: str  # the control API's /_sandbox/<collection>/<key>
    create: Callable[[Sandbox, str], dict[str, Any]]  # the body of POST /_sandbox/<collection>
    title: str
    # The Tandem setting that points the connector at the simulator, and its value from the
    # simulator's URL. None for WooCommerce, whose every store is its own site URL.
    setting: tuple[str, Callable[[str], str]] | None


def _create_shopify(sandbox: Sandbox, url: str) -> dict[str, Any]:
    sandbox.account = sandbox.key
    sandbox.credentials = {"access_token": f"shpat_{secrets.token_hex(16)}"}
    return {
        "domain": sandbox.key,
        "access_token": sandbox.credentials["access_token"],
        "client_secret": sandbox.client_secret,
        "currency": "USD",
        "country": "US",
        "timezone": "America/New_York",
        "name": "Tandem Demo",
    }


def _create_woocommerce(sandbox: Sandbox, url: str) -> dict[str, Any]:
    # The site's URL is the account; the simulator serves each site under /sites/<name>.
    sandbox.account = f"{url}/sites/{sandbox.key}"
    sandbox.credentials = {
        "consumer_key": f"ck_{secrets.token_hex(20)}",
        "consumer_secret": f"cs_{secrets.token_hex(20)}",
    }
    # A store whose clock is not UTC, so a connector that reads local dates would show it.
    return {
        "name": sandbox.key,
        **sandbox.credentials,
        "timezone": "Europe/Berlin",
        "currency": "EUR",
        "country": "DE",
    }


def _create_bigcommerce(sandbox: Sandbox, url: str) -> dict[str, Any]:
    sandbox.account = sandbox.key
    sandbox.credentials = {"access_token": secrets.token_hex(16)}
    return {
        "store_hash": sandbox.key,
        "access_token": sandbox.credentials["access_token"],
        "client_id": secrets.token_hex(8),
        "client_secret": sandbox.client_secret,
        "currency": "USD",
        # An Enterprise store's quota (set by plan [BC-RL]): the Standard plan's 150 requests
        # per 30 s make a demo of thousands of orders take many minutes.
        "plan": "enterprise",
        "quota": 3000,
    }


STORE_SIMS: dict[str, StoreSim] = {
    "shopify": StoreSim(
        "shopify",
        create_shopify,
        "shops",
        _create_shopify,
        "Shopify",
        ("shopify_base_url", lambda url: f"{url}/{{shop}}"),
    ),
    "woocommerce": StoreSim(
        "woocommerce",
        create_woocommerce,
        "sites",
        _create_woocommerce,
        "WooCommerce",
        None,
    ),
    "bigcommerce": StoreSim(
        "bigcommerce",
        create_bigcommerce,
        "stores",
        _create_bigcommerce,
        "BigCommerce",
        ("bigcommerce_base_url", lambda url: f"{url}/stores/{{store_hash}}"),
    ),
}
DEFAULT_KEYS = {"shopify": SHOP, "woocommerce": "tandem-demo", "bigcommerce": "tdemo42"}
# The merchant's second store (same platform, same CRM account) in the two-store part.
SECOND_KEYS = {
    "shopify": "tandem-outlet.myshopify.com",
    "woocommerce": "tandem-outlet",
    "bigcommerce": "toutlet7",
}


@dataclass(frozen=True)
class CrmSim:
    """How the harness drives one CRM's simulator: how an account is made there, where its
    control API keeps it, and which Tandem setting points the connector at the simulator."""

    platform: str
    title: str
    make_app: Callable[..., Any]
    create: Callable[[Sandbox, int], dict[str, Any]]  # the body of POST <collection>
    collection: str  # "/portals" or "/orgs"
    calls_param: str  # the /calls filter naming the account
    setting: str  # the Tandem setting that takes the simulator's URL


def _create_hubspot(sandbox: Sandbox, limit: int) -> dict[str, Any]:
    token = f"pat-na1-{secrets.token_hex(16)}"
    sandbox.crm_credentials = {"access_token": token}
    # Professional tier: 190 requests per 10 s (https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines)
    return {
        "token": token,
        "portal_id": int(sandbox.crm_account),
        "name": "Demo",
        "limits": {"burst": limit},
    }


def _oauth_app(sandbox: Sandbox) -> dict[str, str]:
    sandbox.crm_credentials = {
        "client_id": f"1000.{secrets.token_hex(12).upper()}",
        "client_secret": secrets.token_hex(20),
        "refresh_token": f"1000.{secrets.token_hex(32)}",
    }
    return dict(sandbox.crm_credentials)


def _create_oauth_org(sandbox: Sandbox, limit: int) -> dict[str, Any]:
    """A Zoho or Salesforce org: both simulators take the same body."""
    return {"org_id": sandbox.crm_account, "name": "Demo", **_oauth_app(sandbox)}


CRM_SIMS: dict[str, CrmSim] = {
    "hubspot": CrmSim(
        "hubspot",
        "HubSpot",
        create_hubspot,
        _create_hubspot,
        "/portals",
        "portal_id",
        "hubspot_base_url",
    ),
    "zoho": CrmSim(
        "zoho", "Zoho CRM", create_zoho, _create_oauth_org, "/orgs", "org_id", "zoho_accounts_url"
    ),
    "salesforce": CrmSim(
        "salesforce",
        "Salesforce",
        create_salesforce,
        _create_oauth_org,
        "/orgs",
        "org_id",
        "salesforce_login_url",
    ),
}
# The CRM account each simulator is seeded with: a HubSpot portal id, a Zoho org id (zgid),
# a Salesforce org id.
DEFAULT_CRM_ACCOUNTS = {
    "hubspot": str(PORTAL_ID),
    "zoho": "764523981",
    "salesforce": "00D5g000004TANDEM",
}


# How a rep's edit is made through each CRM simulator's control API.
_REP_EDITS: dict[str, tuple[str, Callable[[dict[str, Any]], dict[str, Any]]]] = {
    "hubspot": ("/objects/contacts/{id}", lambda props: {"properties": props}),
    "zoho": ("/records/Contacts/{id}", lambda props: props),
    "salesforce": ("/records/Contact/{id}", lambda props: props),
}


def is_customer_write(platform: str, call: dict[str, Any]) -> bool:
    """Whether a storefront simulator's logged call wrote customers (a write-back)."""
    if platform == "shopify":  # Tandem's customer mutations (connectors.shopify)
        return call.get("operation") in ("TandemCustomerWrite", "TandemCustomerUpdate")
    if platform == "woocommerce":
        return call["method"] in ("PUT", "POST") and "/customers" in call["path"]
    return call["method"] == "PUT" and "/v3/customers" in call["path"]


@dataclass
class Sandbox:
    """Running simulators (one storefront, one CRM) and the accounts made in them."""

    platform: str
    store: RunningServer
    crm: RunningServer
    key: str  # the store's name in the simulator's control API
    client_secret: str  # the app's secret (Shopify webhook HMAC, BigCommerce client secret)
    crm_platform: str = "hubspot"
    crm_account: str = str(PORTAL_ID)
    account: str = ""  # the store account as Tandem names it (domain, site URL, store hash)
    credentials: dict[str, str] = field(default_factory=dict)
    crm_credentials: dict[str, str] = field(default_factory=dict)
    crm_settings: dict[str, str] = field(default_factory=dict)  # e.g. {"orders_as": "Order"}
    # The HubSpot app's client secret: it signs the simulator's webhooks to Tandem.
    crm_app_secret: str = field(default_factory=lambda: secrets.token_hex(16))

    @property
    def sim(self) -> StoreSim:
        return STORE_SIMS[self.platform]

    @property
    def crm_sim(self) -> CrmSim:
        return CRM_SIMS[self.crm_platform]

    def control(self, server: RunningServer, method: str, path: str, **kwargs: Any) -> Any:
        response = requests.request(method, f"{server.url}/_sandbox{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def store_control(self, method: str, path: str = "", **kwargs: Any) -> Any:
        return self.control(
            self.store, method, f"/{self.sim.collection}/{self.key}{path}", **kwargs
        )

    def crm_control(self, method: str, path: str = "", **kwargs: Any) -> Any:
        """The CRM simulator's control API for this sandbox's account (``path`` below it)."""
        return self.control(
            self.crm, method, f"{self.crm_sim.collection}/{self.crm_account}{path}", **kwargs
        )

    def store_dump(self) -> dict[str, Any]:
        """Every record in the platform's own API shape."""
        return self.store_control("GET", "/dump")

    def summary(self) -> dict[str, Any]:
        """The store in the simulators' platform-neutral shape (what compare reads)."""
        return self.store_control("GET", "/summary")

    def crm_dump(self) -> dict[str, Any]:
        """Every CRM record in the CRM's own API shape."""
        return self.crm_control("GET", "/dump")

    def crm_summary(self) -> dict[str, Any]:
        """The CRM account in the CRM simulators' shared neutral shape (what compare reads)."""
        return self.crm_control("GET", "/summary")

    def crm_calls(self) -> list[dict[str, Any]]:
        """The CRM simulator's call log for this sandbox's account."""
        return self.control(
            self.crm, "GET", "/calls", params={self.crm_sim.calls_param: self.crm_account}
        )["calls"]

    def subscribe(self, webhook_url: str) -> None:
        """Shopify only: its webhooks are subscribed by the app's configuration, not by
        Tandem's connector; WooCommerce and BigCommerce hooks are registered on connect."""
        if self.platform == "shopify":
            self.store_control(
                "POST", "/webhooks", json={"address": webhook_url, "topics": WEBHOOK_TOPICS}
            )

    def notify(self, t: Any, connection_id: int, tandem_url: str) -> None:
        """Point the CRM simulator's push channel at Tandem, as the CRM's set-up would:
        HubSpot's app webhook settings, a Salesforce outbound message on Contact (its endpoint
        URL from ``sync.channels``). Zoho needs nothing here: Tandem subscribes its own watch
        channel (the worker's ``crm_channels`` job)."""
        from sync.channels import salesforce_endpoint
        from sync.models import Connection

        if self.crm_platform == "hubspot":
            self.crm_control(
                "POST",
                "/webhooks",
                json={
                    "target_url": f"{tandem_url}/webhooks/hubspot",
                    "client_secret": self.crm_app_secret,
                    "app_id": HUBSPOT_APP_ID,
                    "subscriptions": HUBSPOT_SUBSCRIPTIONS,
                },
            )
        elif self.crm_platform == "salesforce":
            with transaction(t.sessions) as session:
                url = salesforce_endpoint(
                    session, t.vault, session.get(Connection, connection_id), tandem_url
                )
            fields = [
                *CRM_SCHEMAS["salesforce"].contact_fields,
                "LastModifiedDate",
                "LastModifiedById",
            ]
            self.crm_control(
                "POST", "/outbound", json={"object": "Contact", "url": url, "fields": fields}
            )

    def rep_edit_contact(self, crm_id: str, **values: Any) -> None:
        """Edit a contact in the CRM simulator as a sales rep would in the CRM's UI; ``values``
        by canonical path (``first_name=...``), written to the fields Tandem maps them to."""
        fields = {
            path: prop for prop, path in CRM_SCHEMAS[self.crm_platform].contact_fields.items()
        }
        path, wrap = _REP_EDITS[self.crm_platform]
        body = wrap({fields[name]: value for name, value in values.items()})
        self.crm_control("PATCH", path.format(id=crm_id), json=body)

    def second_store(self, key: str) -> Sandbox:
        """Another store of the same merchant in the same simulator, syncing into the same
        CRM account (the same HubSpot portal or org): one person, two stores."""
        other = replace(self, key=key, account="", credentials={})
        body = self.sim.create(other, self.store.url)
        self.control(self.store, "POST", f"/{self.sim.collection}", json=body)
        return other

    def add_store(self, key: str, *, crm_account: str, **changes: Any) -> Sandbox:
        """A second store of the same platform in the same simulator (same app secret), with
        an account of its own in the same CRM simulator."""
        other = Sandbox(
            self.platform,
            self.store,
            self.crm,
            key,
            self.client_secret,
            crm_platform=self.crm_platform,
            crm_account=crm_account,
        )
        body = self.sim.create(other, self.store.url)
        self.control(self.store, "POST", f"/{self.sim.collection}", json={**body, **changes})
        other.create_crm_account()
        return other

    def create_crm_account(self, *, limit: int = 190) -> None:
        body = self.crm_sim.create(self, limit)
        self.control(self.crm, "POST", self.crm_sim.collection, json=body)

    def stop(self) -> None:
        self.store.stop()
        self.crm.stop()


def start_sandbox(
    *,
    platform: str = "shopify",
    crm: str = "hubspot",
    store_port: int = 0,
    crm_port: int = 0,
    customers: int = 500,
    orders: int = 2000,
    seed: int = 7,
    webhook_url: str | None = None,
    restore_rate: float = 1000.0,
    hubspot_limit: int = 190,
    client_secret: str | None = None,
) -> Sandbox:
    """Start a storefront simulator and a CRM's, create and seed the store and the account.

    A Shopify shop restores 1000 cost points a second, as a Shopify Plus store does
    (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits); at the Standard
    plan's 100 a second, polling a few hundred changed orders takes minutes, not seconds.
    """
    sim = STORE_SIMS[platform]
    store_app = sim.make_app(restore_rate=restore_rate) if platform == "shopify" else sim.make_app()
    store = serve(store_app, port=store_port)
    crm_server = serve(CRM_SIMS[crm].make_app(), port=crm_port)
    sandbox = Sandbox(
        platform=platform,
        store=store,
        crm=crm_server,
        key=DEFAULT_KEYS[platform],
        client_secret=client_secret or secrets.token_hex(16),
        crm_platform=crm,
        crm_account=DEFAULT_CRM_ACCOUNTS[crm],
    )
    sandbox.control(store, "POST", f"/{sim.collection}", json=sim.create(sandbox, store.url))
    sandbox.store_control(
        "POST", "/seed", json={"customers": customers, "orders": orders, "seed": seed}
    )
    sandbox.create_crm_account(limit=hubspot_limit)
    if webhook_url:
        sandbox.subscribe(webhook_url)
    return sandbox


def connect(t, sandbox: Sandbox, *, backfill: bool = True, public_url: str | None = None) -> int:
    """Register the sandbox store + CRM account as a Tandem connection (as `flask connections
    create`). ``public_url``: where the store's webhooks reach Tandem's receiver."""
    from app import create_connection

    return create_connection(
        t,
        name="Tandem Demo",
        store_platform=sandbox.platform,
        store_account=sandbox.account,
        store_credentials=sandbox.credentials,
        crm_platform=sandbox.crm_platform,
        crm_account=sandbox.crm_account,
        crm_credentials=sandbox.crm_credentials,
        crm_settings=sandbox.crm_settings,
        default_region="US",
        backfill=backfill,
        public_url=public_url,
    )


def sandbox_config(sandbox: Sandbox, var_dir: Path, **overrides: Any) -> dict[str, Any]:
    """Tandem settings that point every connector at the simulators."""
    pointing = {sandbox.crm_sim.setting: sandbox.crm.url}
    if sandbox.sim.setting is not None:
        name, value = sandbox.sim.setting
        pointing[name] = value(sandbox.store.url)
    return {
        "var_dir": var_dir,
        "encryption_keys": Fernet.generate_key().decode(),
        "shopify_client_secret": sandbox.client_secret,
        "hubspot_client_secret": sandbox.crm_app_secret,
        "hubspot_app_id": str(HUBSPOT_APP_ID),
        "allow_loopback": True,
        "poll_interval_seconds": 3.0,
        "poll_overlap_seconds": 60.0,
        "full_scan_interval_seconds": 10.0,
        "lease_seconds": 30.0,
        "reconcile_interval_seconds": 0.5,
        "log_level": "WARNING",
        **pointing,
        **overrides,
    }


# ---------------------------------------------------------------------------- comparing
@dataclass
class Comparison:
    """Where the CRM differs from the store (empty ``problems``: in step)."""

    problems: list[str] = field(default_factory=list)
    contacts: int = 0
    deals: int = 0
    line_items: int = 0
    associations: int = 0
    skipped_no_email: int = 0

    @property
    def in_step(self) -> bool:
        return not self.problems


def _name_matches(crm_value: str | None, store_value: str | None, *, required: bool) -> bool:
    expected = (store_value or "").strip()
    actual = crm_value or ""
    # Zoho and Salesforce need a last name: a store customer without one gets the placeholder.
    return actual == expected or (required and not expected and actual == LAST_NAME_PLACEHOLDER)


def compare(sandbox: Sandbox) -> Comparison:
    """Check the CRM against the store, independently of the engine's own bookkeeping.

    Reads both simulators' own neutral summaries (not Tandem's mapping): every customer with
    an email is one live contact with that email and name; every order still in the store
    (not trashed or archived) is one CRM order record (deal, opportunity), by Tandem's external
    id, with the order's total, linked to its buyer, with one line item per store line item
    where the CRM keeps line items. Customers without an email cannot be matched by email and
    are expected as dead letters, not contacts.
    """
    store, crm = sandbox.summary(), sandbox.crm_summary()
    result = Comparison()
    result.contacts, result.deals = len(crm["contacts"]), len(crm["orders"])
    result.line_items = sum(o["line_items"] or 0 for o in crm["orders"])
    result.associations = sum(len(o["contact_ids"]) for o in crm["orders"])
    schema = CRM_SCHEMAS[sandbox.crm_platform]
    last_name_required = schema.last_name_field in schema.required.get("contact", ())
    contacts_by_email: dict[str, list[dict]] = {}
    for contact in crm["contacts"]:
        email = (contact.get("email") or "").lower()
        contacts_by_email.setdefault(email, []).append(contact)
    for email, found in contacts_by_email.items():
        if email and len(found) > 1:
            result.problems.append(f"{len(found)} contacts for {email}")

    customer_email: dict[str, str] = {}
    for customer in store["customers"]:
        email = (customer.get("email") or "").strip().lower()
        if not email:
            result.skipped_no_email += 1
            continue
        customer_email[customer["id"]] = email
        found = contacts_by_email.get(email)
        if not found:
            result.problems.append(f"customer {customer['id']}: no contact {email}")
            continue
        contact = found[0]
        for name, required in (("first_name", False), ("last_name", last_name_required)):
            if not _name_matches(contact.get(name), customer.get(name), required=required):
                result.problems.append(
                    f"customer {customer['id']}: {name} {contact.get(name)!r} != "
                    f"{customer.get(name)!r}"
                )

    orders = {o["external_id"]: o for o in crm["orders"]}
    if len(orders) != len(crm["orders"]):
        result.problems.append("two CRM orders share an external id")
    for order in store["orders"]:
        if order["removed"]:
            continue
        key = f"{sandbox.platform}:{sandbox.account}:order:{order['id']}"
        found_order = orders.get(key)
        if found_order is None:
            result.problems.append(f"order {order['name']}: no {sandbox.crm_sim.title} order")
            continue
        amount = Decimal(order["total"])
        if Decimal(str(found_order.get("amount") or "NaN")) != amount:
            result.problems.append(
                f"order {order['name']}: amount {found_order.get('amount')} != {amount}"
            )
        items = found_order["line_items"]
        if items is not None and items != order["line_items"]:
            result.problems.append(
                f"order {order['name']}: {items} line items, store has {order['line_items']}"
            )
        buyer = (
            customer_email.get(order.get("customer_id") or "") or (order.get("email") or "").lower()
        )
        if buyer and buyer in contacts_by_email:
            contact_ids = {c["id"] for c in contacts_by_email[buyer]}
            if not set(found_order["contact_ids"]) & contact_ids:
                result.problems.append(f"order {order['name']}: not linked to {buyer}")
    return result


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def settle(sandbox: Sandbox, t, connection_ids, *, quiet: float = 3.0, timeout: float = 90.0):
    """Wait until, for ``quiet`` seconds on end, the CRM simulator has had nothing left to
    deliver and Tandem's inbox nothing left to process (polls go on: they write nothing).
    Raises TimeoutError if that never happens."""
    deadline = time.monotonic() + timeout
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        pending = sandbox.crm_control("GET", "/deliveries")["pending"]
        with transaction(t.sessions) as session:
            inbox = session.scalar(
                select(func.count(InboxEvent.id)).where(
                    InboxEvent.connection_id.in_(list(connection_ids)),
                    InboxEvent.status == InboxStatus.PENDING,
                )
            )
        if pending or inbox:
            since = time.monotonic()
        elif time.monotonic() - since >= quiet:
            return
    raise TimeoutError("the CRM's notifications never stopped")


def polled_since(t, connection_id: int, moment: datetime) -> bool:
    """Each store poll (customers, orders) of the connection ran a whole pass that began
    after ``moment``: a poll job created since then is done and none is waiting or running."""
    with transaction(t.sessions) as session:
        polls = session.scalars(
            select(Job).where(Job.connection_id == connection_id, Job.kind == "poll")
        ).all()
    for entity in ("customers", "orders"):
        mine = [j for j in polls if (j.payload or {}).get("entity") == entity]
        if any(j.status in (JobStatus.PENDING, JobStatus.RUNNING) for j in mine):
            return False
        if not any(j.status == JobStatus.DONE and j.created_at > moment for j in mine):
            return False
    return True


def store_writes(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Calls that wrote customers to the store (write-backs), from its simulator's log."""
    calls = sandbox.store_control("GET", "/calls")["calls"]
    return [c for c in calls if is_customer_write(sandbox.platform, c)]


def crm_writes(sandbox: Sandbox) -> list[dict[str, Any]]:
    """Calls that can change the CRM, from its simulator's log: not HubSpot's searches and
    batch reads (POSTs), not token calls."""
    return [
        c
        for c in sandbox.crm_calls()
        if c["method"] in ("POST", "PATCH", "PUT", "DELETE")
        and "/search" not in c["path"]
        and "/batch/read" not in c["path"]
        and "token" not in c["path"]
    ]


def crm_notifications(sandbox: Sandbox) -> int:
    """Notifications the CRM simulator sent Tandem (webhook batches, callbacks, messages)."""
    return len(sandbox.crm_control("GET", "/deliveries")["deliveries"])


def backfill_done(t, connection_id: int) -> bool:
    """The backfill finished and no job of the connection is pending or running."""
    from sync.models import Checkpoint

    with transaction(t.sessions) as session:
        state = session.scalar(
            select(Checkpoint).where(
                Checkpoint.connection_id == connection_id, Checkpoint.stream == "backfill"
            )
        )
        busy = session.scalar(
            select(func.count(Job.id)).where(
                Job.connection_id == connection_id,
                Job.kind == "backfill",
                Job.status.in_([JobStatus.PENDING, JobStatus.RUNNING]),
            )
        )
    return state is not None and state.state.get("phase") == "done" and not busy


def linked_counts(t, connection_id: int) -> dict[str, int]:
    with transaction(t.sessions) as session:
        rows = session.execute(
            select(Link.entity, func.count())
            .where(Link.connection_id == connection_id)
            .group_by(Link.entity)
        )
        counts = {entity: n for entity, n in rows}
        dead = session.execute(
            select(DeadLetter.entity, func.count())
            .where(
                DeadLetter.connection_id == connection_id,
                DeadLetter.status == DeadLetterStatus.OPEN,
            )
            .group_by(DeadLetter.entity)
        )
        counts.update({f"dead_{entity}": n for entity, n in dead})
    return counts


# ---------------------------------------------------------------------------- the demo
def run(
    *,
    store: str = "shopify",
    crm: str = "hubspot",
    customers: int = 500,
    orders: int = 2000,
    timeout: float = 240.0,
) -> int:
    """The whole demo; returns the process exit code (0: the CRM matched the store)."""
    from app import create_app, tandem_of

    console = Console()
    started = time.monotonic()
    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="tandem-demo-") as tmp:
        title, crm_title = STORE_SIMS[store].title, CRM_SIMS[crm].title
        console.print(
            f"[bold]Tandem demo[/]: a simulated {title} store syncing into a simulated "
            f"{crm_title}\n"
        )
        sandbox = start_sandbox(platform=store, crm=crm, customers=customers, orders=orders)
        app = create_app(sandbox_config(sandbox, Path(tmp)))
        t = tandem_of(app)
        migrate.upgrade(t.engine)
        receiver = serve(app)
        sandbox.subscribe(f"{receiver.url}/webhooks/shopify")
        worker = InProcessWorker(t.worker(), threads=2).start()
        phases["set-up"] = time.monotonic() - started
        try:
            seeded = sandbox.summary()
            n_customers, n_orders = len(seeded["customers"]), len(seeded["orders"])
            n_items = sum(o["line_items"] for o in seeded["orders"])
            console.print(
                f"Seeded [cyan]{sandbox.account}[/]: {n_customers} customers, {n_orders} orders, "
                f"{n_items} line items "
                f"(in {len({o['currency'] for o in seeded['orders']})} currencies, "
                f"{sum(1 for o in seeded['orders'] if not o['customer_id'])} guest orders)"
            )
            connection_id = connect(t, sandbox, public_url=receiver.url)
            sandbox.notify(t, connection_id, receiver.url)
            ok = _backfill_with_progress(console, t, connection_id, n_customers, n_orders, timeout)
            phases["backfill"] = time.monotonic() - started - sum(phases.values())
            if not ok:
                console.print("[red]backfill did not finish in time[/]")
                return 1
            settle(sandbox, t, [connection_id], timeout=timeout)
            echo = Echoes.before(sandbox)
            live = _live_activity(console, sandbox)
            converged, comparison = _converge(console, sandbox, timeout)
            # Webhooks the store dropped are caught by its next poll: let one pass, so what
            # is counted below is what echoes caused, not a late store change.
            sandbox.store_control("PATCH", "/knobs", json={"webhook_drop_rate": 0.0})
            for _ in range(2):  # the second pass began after the knob changed
                moment = utcnow()
                wait_until(lambda m=moment: polled_since(t, connection_id, m), timeout)
            settle(sandbox, t, [connection_id], timeout=timeout)
            echo.after_store_changes(sandbox)
            phases["live changes"] = time.monotonic() - started - sum(phases.values())
            both = _both_directions(console, t, sandbox, connection_id, receiver.url, timeout)
            echo.after_crm_edits(sandbox, both)
            phases["both directions"] = time.monotonic() - started - sum(phases.values())
            if converged:
                converged, comparison = _converge(console, sandbox, timeout)
            _summary(
                console,
                t,
                sandbox,
                connection_id,
                comparison,
                live,
                phases,
                time.monotonic() - started,
                both=both,
                echo=echo,
            )
            if not converged:
                console.print(f"[red]{crm_title} did not match the store:[/]")
                for problem in comparison.problems[:20]:
                    console.print(f"  - {problem}")
                return 1
            if not both.ok or echo.writes:
                console.print(
                    f"[red]both directions: {'; '.join(both.problems) or 'echo writes'}[/]"
                )
                return 1
            console.print(
                f"[green bold]{crm_title} matches the store, its edits reached the store, "
                "and no echo caused a write.[/]"
            )
            return 0
        finally:
            worker.stop()
            receiver.stop()
            sandbox.stop()
            t.close()


def _backfill_with_progress(console, t, connection_id, n_customers, n_orders, timeout) -> bool:
    columns = (
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        customers = progress.add_task("Backfill: customers", total=n_customers)
        orders = progress.add_task("Backfill: orders", total=n_orders)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            counts = linked_counts(t, connection_id)
            progress.update(
                customers, completed=counts.get("customer", 0) + counts.get("dead_customer", 0)
            )
            progress.update(orders, completed=counts.get("order", 0) + counts.get("dead_order", 0))
            if backfill_done(t, connection_id):
                progress.update(customers, completed=n_customers)
                return True
            time.sleep(0.3)
    return False


def _live_activity(console, sandbox: Sandbox) -> dict[str, Any]:
    # Real webhooks get lost and repeated: drop 5 % (polling must catch them) and repeat 5 %
    # (the inbox must absorb them).
    sandbox.store_control(
        "PATCH", "/knobs", json={"webhook_drop_rate": 0.05, "webhook_duplicate_rate": 0.05}
    )
    done = sandbox.store_control(
        "POST",
        "/activity",
        json={
            "new_customers": 25,
            "changed_customers": 40,
            "new_orders": 80,
            "changed_orders": 60,
            "seed": 11,
        },
    )
    console.print(
        "Live activity in the store: 25 new and 40 changed customers, 80 new and 60 changed orders "
        "(signed webhooks; 5 % dropped, 5 % delivered twice)"
    )
    return done or {}


@dataclass
class Echoes:
    """What came back after Tandem's own writes, and what it caused, from the simulators'
    logs: the store's changes written to the CRM return as its notifications (none may write
    to the store); the rep's edits written to the store return as the store's webhooks (none
    may write to the CRM)."""

    store_writes: int = 0
    crm_writes: int = 0
    notifications: int = 0
    crm_writes_for_store_changes: int = 0
    writes_back: int = 0  # store writes caused by notifications of Tandem's CRM writes
    writes_to_crm: int = 0  # CRM writes caused by the store's webhooks of Tandem's writes

    @classmethod
    def before(cls, sandbox: Sandbox) -> Echoes:
        return cls(
            store_writes=len(store_writes(sandbox)),
            crm_writes=len(crm_writes(sandbox)),
            notifications=crm_notifications(sandbox),
        )

    def after_store_changes(self, sandbox: Sandbox) -> None:
        self.crm_writes_for_store_changes = len(crm_writes(sandbox)) - self.crm_writes
        self.notifications = crm_notifications(sandbox) - self.notifications
        self.writes_back = len(store_writes(sandbox)) - self.store_writes

    def after_crm_edits(self, sandbox: Sandbox, both: BothWays) -> None:
        self.writes_to_crm = both.crm_writes_after

    @property
    def writes(self) -> int:
        return self.writes_back + self.writes_to_crm


@dataclass
class BothWays:
    """The CRM -> store part of the demo and the second store."""

    edits: int = 0
    seconds: float = 0.0
    store_write_calls: int = 0
    crm_writes_after: int = 0
    second_store: str = ""
    same_contact: bool = False
    merges: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def _both_directions(console, t, sandbox: Sandbox, connection_id: int, url: str, timeout: float):
    """A rep edits contacts in the CRM; the store follows. Then the merchant's second store,
    on the same CRM account, takes a guest order from a customer of the first."""
    from sync import identity

    both = BothWays()
    with transaction(t.sessions) as session:
        linked = list(
            session.execute(
                select(Link.store_id, Link.crm_id)
                .where(Link.connection_id == connection_id, Link.entity == "customer")
                .order_by(Link.id)
                .limit(5)
            )
        )
    wanted = {store_id: f"Renamed{n}" for n, (store_id, _) in enumerate(linked)}
    before_store, before_crm = len(store_writes(sandbox)), len(crm_writes(sandbox))
    started = time.monotonic()
    for store_id, crm_id in linked:
        sandbox.rep_edit_contact(crm_id, first_name=wanted[store_id])
    both.edits = len(linked)

    def store_follows() -> bool:
        names = {c["id"]: c.get("first_name") for c in sandbox.summary()["customers"]}
        return all(names.get(sid) == name for sid, name in wanted.items())

    with console.status(f"A rep renames {len(linked)} contacts in {sandbox.crm_sim.title}..."):
        if wait_until(store_follows, timeout):
            both.seconds = time.monotonic() - started
        else:
            both.problems.append("the CRM edits never reached the store")
        settle(sandbox, t, [connection_id], timeout=timeout)
    both.store_write_calls = len(store_writes(sandbox)) - before_store
    both.crm_writes_after = len(crm_writes(sandbox)) - before_crm
    console.print(
        f"A rep renamed {both.edits} contacts in {sandbox.crm_sim.title}: the store had them "
        f"after {both.seconds:.1f}s ({both.store_write_calls} write call(s))"
    )

    buyer = next(c for c in sandbox.summary()["customers"] if c.get("email"))
    second = sandbox.second_store(SECOND_KEYS[sandbox.platform])
    second.store_control("POST", "/orders", json={"email": buyer["email"]})
    second.subscribe(f"{url}/webhooks/shopify")
    second_id = connect(t, second, public_url=url)
    both.second_store = second.account

    def on_one_contact() -> bool:
        crm = sandbox.crm_summary()
        contacts = [
            c for c in crm["contacts"] if (c.get("email") or "").lower() == buyer["email"].lower()
        ]
        prefix = f"{second.platform}:{second.account}:order:"
        return len(contacts) == 1 and any(
            o["external_id"].startswith(prefix) and o["contact_ids"] == [contacts[0]["id"]]
            for o in crm["orders"]
        )

    with console.status(
        f"A second store, {second.account}, takes an order from {buyer['email']}..."
    ):
        both.same_contact = wait_until(
            lambda: backfill_done(t, second_id) and on_one_contact(), timeout
        )
    if not both.same_contact:
        both.problems.append("the second store's order is not on the same contact")
    with transaction(t.sessions) as session:
        both.merges = len(identity.merges(session, second_id))
    console.print(
        f"{second.account} took an order from {buyer['email']}: it is on the same "
        f"{sandbox.crm_sim.title} contact ({both.merges} merge recorded)"
        if both.same_contact
        else f"[red]{second.account}'s order did not reach the same contact[/]"
    )
    return both


def _converge(console, sandbox: Sandbox, timeout: float) -> tuple[bool, Comparison]:
    comparison = Comparison(problems=["not compared yet"])
    crm = sandbox.crm_sim.title
    with console.status(f"Waiting until {crm} matches the store...") as status:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            comparison = compare(sandbox)
            if comparison.in_step:
                return True, comparison
            status.update(
                f"Waiting until {crm} matches the store: {len(comparison.problems)} differences left"
            )
            time.sleep(1.0)
    return False, comparison


def _summary(
    console,
    t,
    sandbox: Sandbox,
    connection_id,
    comparison: Comparison,
    live,
    phases,
    elapsed,
    *,
    both: BothWays,
    echo: Echoes,
) -> None:
    store_calls = sandbox.store_control("GET", "/calls")["calls"]
    crm_calls = sandbox.crm_calls()
    crm = sandbox.crm_sim.title
    deliveries = sandbox.store_control("GET", "/deliveries")["deliveries"]
    with transaction(t.sessions) as session:
        inbox_rows = session.scalar(
            select(func.count(InboxEvent.id)).where(InboxEvent.connection_id == connection_id)
        )
        dead = Counter(
            f"{d.platform}: {d.reason}"[:90]
            for d in session.scalars(
                select(DeadLetter).where(
                    DeadLetter.connection_id == connection_id,
                    DeadLetter.status == DeadLetterStatus.OPEN,
                )
            )
        )
    counts = linked_counts(t, connection_id)
    table = Table(title="Summary", show_header=False)
    if sandbox.crm_sim.platform == "hubspot":
        table.add_row(
            "HubSpot contacts / deals / line items",
            f"{comparison.contacts} / {comparison.deals} / {comparison.line_items}",
        )
    else:
        table.add_row(
            f"{crm} contacts / {CRM_SCHEMAS[sandbox.crm_platform].order_object}",
            f"{comparison.contacts} / {comparison.deals}",
        )
    table.add_row(
        "records linked (customers / orders / line items)",
        f"{counts.get('customer', 0)} / {counts.get('order', 0)} / {counts.get('line_item', 0)}",
    )
    cost = sum(c.get("requested_cost") or 0 for c in store_calls)  # Shopify's GraphQL points
    table.add_row(
        f"API calls: {sandbox.sim.title}",
        f"{len(store_calls)}" + (f" (GraphQL cost {cost:.0f} points)" if cost else ""),
    )
    writes = Counter(c["method"] for c in crm_calls)
    table.add_row(
        f"API calls: {crm}",
        f"{len(crm_calls)} ({', '.join(f'{m} {n}' for m, n in sorted(writes.items()))})",
    )
    table.add_row(
        "webhooks sent / stored",
        f"{len(deliveries)} / {inbox_rows} (duplicates absorbed by the inbox)",
    )
    table.add_row(
        f"{crm} -> store",
        f"{both.edits} rep edits reached the store in {both.seconds:.1f}s "
        f"({both.store_write_calls} write call(s))",
    )
    table.add_row(
        "echoes",
        f"{echo.crm_writes_for_store_changes} CRM write calls for the store's changes came back "
        f"as {echo.notifications} {crm} notifications: {echo.writes_back} writes back to the "
        f"store; the rep edits' store webhooks: {echo.writes_to_crm} writes to {crm}",
    )
    table.add_row("echo writes", str(echo.writes))
    table.add_row(
        "second store",
        f"{both.second_store}: its order is on the same contact"
        if both.same_contact
        else f"{both.second_store}: NOT on the same contact",
    )
    table.add_row("dead letters", str(sum(dead.values())))
    for reason, n in dead.most_common(5):
        table.add_row("", f"{n} x {reason}")
    table.add_row(
        "time",
        ", ".join(f"{name} {secs:.1f}s" for name, secs in phases.items())
        + f"; total {elapsed:.1f}s",
    )
    console.print(table)
