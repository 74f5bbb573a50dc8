"""Building the connectors of a connection: credentials, HTTP client, shared rate budget.

This is the only place that knows which connector class serves which platform; a new
platform adds an entry to STORES or CRMS.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from sqlalchemy.orm import Session, sessionmaker

from connectors import bigcommerce as bigcommerce_connector
from connectors import hubspot as hubspot_connector
from connectors import salesforce as salesforce_connector
from connectors import shopify as shopify_connector
from connectors import woocommerce as woocommerce_connector
from connectors import zoho as zoho_connector
from connectors.crm import DAILY_PROBE_SECONDS
from connectors.errors import ConfigurationError
from connectors.http import HttpClient
from mapping import CUSTOM_PROPERTIES, CrmSchema
from mapping.salesforce import CONTACT_KEY_FIELD
from sync.budget import SharedBudget, Signal
from sync.models import Connection
from sync.secrets import Vault
from sync.tokens import SharedTokenCache


@dataclass(frozen=True)
class PlatformConfig:
    """Where the platforms are and how to reach them (from settings; only this differs
    between production, the demo and the tests)."""

    shopify_base_url: str = "https://{shop}"
    shopify_api_version: str = "2026-01"
    hubspot_base_url: str = "https://api.hubapi.com"
    # None: each Zoho connection's data centre decides (connectors.zoho.DATA_CENTRES); a URL
    # here (a staging host, the sandbox) serves every data centre.
    zoho_accounts_url: str | None = None
    salesforce_login_url: str = "https://login.salesforce.com"
    # Fraction of Salesforce's daily API allocation a backfill leaves untouched, and how
    # often work held back by a spent daily allocation looks again (sync.budget).
    salesforce_daily_reserve: float = 0.2
    daily_probe_seconds: float = DAILY_PROBE_SECONDS
    bigcommerce_base_url: str = "https://api.bigcommerce.com/stores/{store_hash}"
    allow_loopback: bool = False
    timeout: tuple[float, float] = (5.0, 30.0)
    max_inline_wait: float = 30.0
    # Budget defaults until the platform tells us better (see sync.budget).
    shopify_bucket: tuple[float, float] = (1000.0, 100.0)
    hubspot_bucket: tuple[float, float] = (100.0, 10.0)
    # 150 requests per 30 s, the Standard/Plus store quota [BC-RL]; the headers correct it.
    bigcommerce_bucket: tuple[float, float] = (150.0, 5.0)
    # WooCommerce core has no rate limit [WC-DOCS _introduction.md], but the merchant's host
    # serves its shoppers from the same PHP workers: a polite pace, not the fastest one.
    woocommerce_bucket: tuple[float, float] = (20.0, 5.0)
    # Zoho and Salesforce meter calls per day and by concurrency, not per second (reference
    # §3.4, §2.4); the bucket only keeps a steady pace, the daily allocation is the real limit.
    # Zoho's is counted in credits, as its connector charges them (a 100-record upsert is 10):
    # about five full batches a second, what ten concurrent calls of ~1 s would allow.
    zoho_bucket: tuple[float, float] = (100.0, 50.0)
    salesforce_bucket: tuple[float, float] = (50.0, 25.0)
    extra: dict[str, Any] = field(default_factory=dict)


def _shopify_signal(response: requests.Response) -> Signal | None:
    status = shopify_connector.throttle_status(response)
    if status is None:
        return None
    return Signal(
        remaining=status["currentlyAvailable"],
        capacity=status["maximumAvailable"],
        refill_per_second=status["restoreRate"],
    )


def _bigcommerce_signal(response: requests.Response) -> Signal | None:
    status = bigcommerce_connector.rate_limit_signal(response)
    if status is None:
        return None
    return Signal(
        remaining=status["remaining"],
        capacity=status["capacity"],
        refill_per_second=status["refill_per_second"],
    )


def _hubspot_signal(response: requests.Response) -> Signal | None:
    remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
    maximum = response.headers.get("X-HubSpot-RateLimit-Max")
    interval_ms = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
    if remaining is None or maximum is None:
        return None
    try:
        capacity = float(maximum)
        refill = capacity / (float(interval_ms) / 1000) if interval_ms else None
        return Signal(remaining=float(remaining), capacity=capacity, refill_per_second=refill)
    except ValueError:
        return None


class Platforms:
    """Makes connectors for a connection's store and CRM side."""

    def __init__(
        self, config: PlatformConfig, sessions: sessionmaker[Session], vault: Vault
    ) -> None:
        self.config = config
        self.sessions = sessions
        self.vault = vault

    def _client(self, policy, budget: SharedBudget, secret: str) -> HttpClient:
        client = HttpClient(
            policy,
            timeout=self.config.timeout,
            budget=budget,
            allow_loopback=self.config.allow_loopback,
            max_inline_wait=self.config.max_inline_wait,
        )
        client.add_secret(secret)
        return client

    def _budget(
        self,
        platform: str,
        account: str,
        priority: int,
        signal: Callable[[requests.Response], Signal | None] | None = None,
        **options: Any,
    ) -> SharedBudget:
        """The rate budget every worker shares for one platform account, starting from the
        platform's configured bucket until its own signals say better."""
        capacity, refill = getattr(self.config, f"{platform}_bucket")
        return SharedBudget(
            self.sessions,
            f"{platform}:{account}",
            capacity=capacity,
            refill_per_second=refill,
            priority=priority,
            signal=signal,
            daily_probe_seconds=self.config.daily_probe_seconds,
            **options,
        )

    def store(self, session: Session, connection: Connection, *, priority: int = 0):
        """The store connector of ``connection``. Raises SecretsError or ConfigurationError."""
        return STORES[connection.store_platform].build(self, session, connection, priority)

    def crm(self, session: Session, connection: Connection, *, priority: int = 0):
        """The CRM connector of ``connection``. Raises SecretsError or ConfigurationError."""
        return CRMS[connection.crm_platform].build(self, session, connection, priority)

    def tokens(self, platform: str, account: str) -> SharedTokenCache:
        """The shared access-token cache of one CRM account."""
        return SharedTokenCache(self.sessions, self.vault, f"{platform}:{account}")


def _shopify(platforms: Platforms, session: Session, connection: Connection, priority: int):
    token = platforms.vault.get(session, connection.id, "store", "access_token")
    budget = platforms._budget(
        "shopify", connection.store_account, priority, signal=_shopify_signal
    )
    return shopify_connector.ShopifyConnector(
        shop=connection.store_account,
        access_token=token,
        http=platforms._client(shopify_connector.SHOPIFY_POLICY, budget, token),
        base_url_template=platforms.config.shopify_base_url,
        api_version=platforms.config.shopify_api_version,
    )


def _woocommerce(platforms: Platforms, session: Session, connection: Connection, priority: int):
    key = platforms.vault.get(session, connection.id, "store", "consumer_key")
    secret = platforms.vault.get(session, connection.id, "store", "consumer_secret")
    budget = platforms._budget("woocommerce", connection.store_account, priority)
    http = platforms._client(woocommerce_connector.WOOCOMMERCE_POLICY, budget, secret)
    http.add_secret(key)
    return woocommerce_connector.WooCommerceConnector(
        connection.store_account,
        key,
        secret,
        http,
        customer_role=(connection.settings or {}).get("customer_role", "customer"),
    )


def _bigcommerce(platforms: Platforms, session: Session, connection: Connection, priority: int):
    token = platforms.vault.get(session, connection.id, "store", "access_token")
    budget = platforms._budget(
        "bigcommerce", connection.store_account, priority, signal=_bigcommerce_signal
    )
    return bigcommerce_connector.BigCommerceConnector(
        connection.store_account,
        token,
        platforms._client(bigcommerce_connector.BIGCOMMERCE_POLICY, budget, token),
        base_url_template=platforms.config.bigcommerce_base_url,
    )


def _hubspot(platforms: Platforms, session: Session, connection: Connection, priority: int):
    token = platforms.vault.get(session, connection.id, "crm", "access_token")
    budget = platforms._budget("hubspot", connection.crm_account, priority, signal=_hubspot_signal)
    return hubspot_connector.HubSpotConnector(
        access_token=token,
        http=platforms._client(hubspot_connector.HUBSPOT_POLICY, budget, token),
        base_url=platforms.config.hubspot_base_url,
    )


def _zoho(platforms: Platforms, session: Session, connection: Connection, priority: int):
    vault, settings = platforms.vault, connection.settings or {}
    secrets = {
        kind: vault.get(session, connection.id, "crm", kind)
        for kind in ("client_id", "client_secret", "refresh_token")
    }
    limit = settings.get("daily_credits")

    def signal(response: requests.Response) -> Signal | None:
        remaining = zoho_connector.credits_remaining(response)
        if remaining is None:
            return None
        return Signal(daily_remaining=remaining, daily_limit=limit)

    budget = platforms._budget("zoho", connection.crm_account, priority, signal=signal)
    http = platforms._client(zoho_connector.ZOHO_POLICY, budget, secrets["client_secret"])
    accounts_url = platforms.config.zoho_accounts_url or zoho_connector.accounts_url_for(
        settings.get("dc", "com")
    )
    return zoho_connector.ZohoConnector(
        http=http,
        tokens=platforms.tokens("zoho", connection.crm_account),
        accounts_url=accounts_url,
        **secrets,
    )


def _salesforce_signal(response: requests.Response) -> Signal | None:
    usage = salesforce_connector.api_usage(response)
    if usage is None:
        return None
    used, allocation = usage
    return Signal(daily_remaining=max(allocation - used, 0), daily_limit=allocation)


def _salesforce(platforms: Platforms, session: Session, connection: Connection, priority: int):
    vault, settings = platforms.vault, connection.settings or {}
    client_id = vault.get(session, connection.id, "crm", "client_id")
    auth: dict[str, str | None] = {}
    if settings.get("jwt_username"):
        auth["jwt_username"] = settings["jwt_username"]
        auth["jwt_private_key"] = vault.get(session, connection.id, "crm", "jwt_private_key")
    else:
        auth["client_secret"] = vault.get(session, connection.id, "crm", "client_secret")
        auth["refresh_token"] = vault.get(session, connection.id, "crm", "refresh_token")
    budget = platforms._budget(
        "salesforce",
        connection.crm_account,
        priority,
        signal=_salesforce_signal,
        daily_reserve=float(
            settings.get("daily_reserve", platforms.config.salesforce_daily_reserve)
        ),
    )
    policy = salesforce_connector.salesforce_policy(
        daily_probe_seconds=platforms.config.daily_probe_seconds
    )
    http = platforms._client(policy, budget, client_id)
    return salesforce_connector.SalesforceConnector(
        http=http,
        tokens=platforms.tokens("salesforce", connection.crm_account),
        login_url=settings.get("login_url") or platforms.config.salesforce_login_url,
        client_id=client_id,
        contact_key_field=_contact_key_field(settings),
        **auth,
    )


def written_fields(schema: CrmSchema) -> dict[str, list[str]]:
    """Per CRM object, every field the default maps write (what the org must have)."""
    order = [*schema.order_fields, *schema.order_constants, *schema.order_settings]
    for extra in (schema.order_contact_field, schema.order_price_book_field):
        if extra:
            order.append(extra)
    fields = {schema.contact_object: list(schema.contact_fields), schema.order_object: order}
    lines = [*(schema.line_item_fields or ())]
    if schema.line_item_product_field:
        lines.append(schema.line_item_product_field)
    if schema.line_items_field:
        order.append(schema.line_items_field)
        fields[schema.line_items_field] = lines  # Zoho describes a subform as a module
    elif schema.line_item_object and schema.line_item_order_field:
        fields[schema.line_item_object] = [*lines, schema.line_item_order_field]
    if schema.product:
        fields[schema.product.object] = list(schema.product.fields)
    return fields


def _contact_key_field(settings: Mapping[str, Any]) -> str:
    """The Salesforce external-id field Tandem upserts contacts by (its name is the org's
    choice; Tandem owns its values)."""
    return str(settings.get("contact_key_field") or CONTACT_KEY_FIELD)


def _prepare_hubspot(connector: Any, schema: CrmSchema, settings: Mapping[str, Any]) -> None:
    # HubSpot lets an app create its own properties, so Tandem does (idempotent).
    connector.ensure_properties(CUSTOM_PROPERTIES)


def _unique_keys(schema: CrmSchema) -> dict[str, str]:
    """The fields Tandem upserts by, per object, which the org must keep unique."""
    keys = {schema.order_object: schema.order_key}
    if schema.line_item_object and schema.line_item_key:
        keys[schema.line_item_object] = schema.line_item_key
    if schema.product:
        keys[schema.product.object] = schema.product.key
    return keys


def _prepare_zoho(connector: Any, schema: CrmSchema, settings: Mapping[str, Any]) -> None:
    # Zoho's custom fields are made by the org's admin (see README); check them now.
    connector.prepare(written_fields(schema), unique=_unique_keys(schema))


def _prepare_salesforce(connector: Any, schema: CrmSchema, settings: Mapping[str, Any]) -> None:
    missing = [setting for setting in schema.order_settings.values() if not settings.get(setting)]
    if missing:
        raise ConfigurationError(
            f"Salesforce orders as {schema.order_object} need {', '.join(missing)} (the Account "
            "the orders are placed under: --salesforce-order-account)",
            platform="salesforce",
        )
    required = written_fields(schema)
    required["OpportunityContactRole"] = ["OpportunityId", "ContactId", "IsPrimary"]
    if schema.product and schema.product.price_book:
        required["PricebookEntry"] = ["Pricebook2Id", "Product2Id", "UnitPrice", "IsActive"]
    connector.prepare(
        required,
        external_ids={schema.contact_object: _contact_key_field(settings), **_unique_keys(schema)},
    )


@dataclass(frozen=True)
class CrmPlatform:
    """What Tandem needs to know to connect an account of one CRM."""

    build: Callable
    # Checks (or creates, where the CRM lets an app) what the field maps write; raises
    # ConfigurationError naming whatever is missing.
    prepare: Callable[[Any, CrmSchema, Mapping[str, Any]], None]
    # Kept encrypted under the "crm" side; alternatives are separate tuples (any one will do).
    credentials: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class StorePlatform:
    """What Tandem needs to know to connect a store of one platform."""

    build: Callable
    # The account as the merchant gives it -> Tandem's canonical name for it (raises
    # ConfigurationError for something that cannot be one).
    normalise_account: Callable[[str], str]
    credentials: tuple[str, ...]  # kept encrypted under the "store" side
    # Where the store sends webhooks, below TANDEM_PUBLIC_URL, when Tandem registers them with
    # a secret of the connection's own; None where the app's configuration subscribes them
    # (Shopify: the app's webhook subscriptions, signed with the app's client secret).
    webhook_path: str | None = None


STORES: dict[str, StorePlatform] = {
    "shopify": StorePlatform(_shopify, shopify_connector.normalise_shop_domain, ("access_token",)),
    "woocommerce": StorePlatform(
        _woocommerce,
        woocommerce_connector.normalise_site_url,
        ("consumer_key", "consumer_secret"),
        "/webhooks/woocommerce/{connection_id}",
    ),
    "bigcommerce": StorePlatform(
        _bigcommerce,
        bigcommerce_connector.normalise_store_hash,
        ("access_token",),
        "/webhooks/bigcommerce",
    ),
}
CRMS: dict[str, CrmPlatform] = {
    "hubspot": CrmPlatform(_hubspot, _prepare_hubspot, (("access_token",),)),
    "zoho": CrmPlatform(_zoho, _prepare_zoho, (("client_id", "client_secret", "refresh_token"),)),
    "salesforce": CrmPlatform(
        _salesforce,
        _prepare_salesforce,
        (("client_id", "client_secret", "refresh_token"), ("client_id", "jwt_private_key")),
    ),
}
