"""Tandem's Flask application: settings, the webhook blueprint, and the operator CLI.

``create_app()`` does all the wiring; importing this module does nothing. Settings come from
``TANDEM_*`` environment variables (read once, validated), or from the ``config`` mapping a
test or the demo passes in.
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from flask import Flask, jsonify
from flask.cli import AppGroup
from huey import Huey
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Engine, func, inspect, select
from sqlalchemy.orm import Session, sessionmaker

from sync import health, jobs, migrate
from sync.db import make_engine, make_session_factory, transaction
from sync.models import (
    Connection,
    ConnectionStatus,
    DeadLetter,
    DeadLetterStatus,
    FieldMapOverride,
    InboxEvent,
)
from sync.platforms import CRMS, STORES, PlatformConfig, Platforms
from sync.queue import JobQueue, make_huey
from sync.secrets import Vault, load_keys
from sync.worker import Reconciler, Worker, WorkerConfig, start_backfill


class Settings(BaseSettings):
    """Every setting, with the default that runs the embedded mode under ``var/``."""

    model_config = SettingsConfigDict(env_prefix="TANDEM_", extra="forbid")

    var_dir: Path = Path("var")
    database_url: str | None = Field(
        None, description="sqlite:///... (default var/tandem.db) or postgresql://..."
    )
    queue_url: str | None = Field(
        None, description="default var/queue.db; or postgresql://... or redis://..."
    )
    encryption_keys: SecretStr | None = Field(
        None, description="comma-separated Fernet keys, newest first"
    )
    shopify_client_secret: SecretStr | None = Field(
        None, description="the app's client secret (webhook HMAC)"
    )
    shopify_api_version: str = "2026-01"
    shopify_base_url: str = Field(
        "https://{shop}", description="{shop} is replaced by the shop's domain"
    )
    hubspot_base_url: str = "https://api.hubapi.com"
    hubspot_client_secret: SecretStr | None = Field(
        None, description="the HubSpot app's client secret (webhook v3 signatures)"
    )
    hubspot_app_id: str | None = Field(
        None, description="the HubSpot app's id (changeSource INTEGRATION events name it)"
    )
    zoho_accounts_url: str | None = Field(
        None,
        description="Zoho accounts server for every data centre (default: each connection's)",
    )
    salesforce_login_url: str = Field(
        "https://login.salesforce.com",
        description="default login host (a connection may name test.salesforce.com or its "
        "My Domain)",
    )
    salesforce_daily_reserve: float = Field(
        0.2, ge=0, lt=1, description="share of the daily API allocation a backfill leaves"
    )
    daily_probe_seconds: float = Field(
        900.0, gt=0, description="how often work held back by a spent daily allocation looks again"
    )
    bigcommerce_base_url: str = Field(
        "https://api.bigcommerce.com/stores/{store_hash}",
        description="{store_hash} is replaced by the store's hash",
    )
    allow_loopback: bool = Field(False, description="let connectors call 127.0.0.1 (sandbox only)")
    webhook_max_bytes: int = Field(2 * 1024 * 1024, gt=0)
    poll_interval_seconds: float = Field(300.0, gt=0)
    poll_overlap_seconds: float = Field(300.0, ge=0)
    full_scan_interval_seconds: float = Field(
        3600.0, gt=0, description="how often stores without a change filter are read whole"
    )
    crm_poll_interval_seconds: float = Field(
        300.0, gt=0, description="how often CRM contact changes are polled behind the webhooks"
    )
    lease_seconds: float = Field(120.0, gt=0)
    reconcile_interval_seconds: float = Field(5.0, gt=0)
    worker_threads: int = Field(2, ge=1, le=64)
    bulk_chunk_roots: int = Field(250, ge=1, le=10_000, description="records per backfill job")
    public_url: str = Field(
        "http://127.0.0.1:5000", description="where platforms reach our webhooks"
    )
    sandbox_shopify_port: int = 8101
    sandbox_hubspot_port: int = 8102
    sandbox_woocommerce_port: int = 8103
    sandbox_bigcommerce_port: int = 8104
    sandbox_zoho_port: int = 8105
    sandbox_salesforce_port: int = 8106
    log_level: str = "INFO"

    @field_validator("shopify_api_version")
    @classmethod
    def _known_shopify_version(cls, value: str) -> str:
        # The ShopifyAPI package knows the version grammar (quarterly "YYYY-MM" releases and
        # "unstable"); a typo here would otherwise surface as 404s from every call.
        import shopify

        try:
            shopify.ApiVersion.coerce_to_version(value)
        except (shopify.VersionNotFoundError, shopify.api_version.InvalidVersionError):
            raise ValueError(f"{value!r} is not a Shopify API version (e.g. 2026-01)") from None
        return value

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.var_dir / 'tandem.db').resolve()}"


@dataclass
class Tandem:
    """What a request, a CLI command or a worker needs; lives in ``app.extensions["tandem"]``."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    vault: Vault
    huey: Huey
    queue: JobQueue
    platforms: Platforms

    def worker(self) -> Worker:
        return Worker(
            self.sessions,
            self.platforms,
            self.queue,
            WorkerConfig(
                lease_seconds=self.settings.lease_seconds,
                poll_interval_seconds=self.settings.poll_interval_seconds,
                poll_overlap_seconds=self.settings.poll_overlap_seconds,
                full_scan_interval_seconds=self.settings.full_scan_interval_seconds,
                crm_poll_interval_seconds=self.settings.crm_poll_interval_seconds,
                bulk_chunk_roots=self.settings.bulk_chunk_roots,
                public_url=self.settings.public_url,
            ),
        )

    def close(self) -> None:
        """Release the database pool and this process's queue connection.

        PostgresHuey keeps one connection per process for enqueueing (plus one per consumer
        thread, closed by the consumer's shutdown hook); left to the garbage collector it is
        dropped without a goodbye to the server.
        """
        self.huey.storage.close()
        self.engine.dispose()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` keys are Settings field names (they win over the environment).

    Raises pydantic.ValidationError for invalid settings.
    """
    settings = Settings(**(config or {}))
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(settings.log_level)
    # Huey logs every task at INFO: the queue's business, not the operator's.
    logging.getLogger("huey").setLevel(max(logging.WARNING, logging.getLogger().level))
    app = Flask("tandem")
    app.config["TANDEM_WEBHOOK_MAX_BYTES"] = settings.webhook_max_bytes
    engine = make_engine(settings.resolved_database_url())
    sessions = make_session_factory(engine)
    vault = Vault(
        load_keys(
            settings.encryption_keys.get_secret_value() if settings.encryption_keys else None,
            settings.var_dir,
        )
    )
    huey = make_huey(settings.queue_url, settings.var_dir)
    platforms = Platforms(
        PlatformConfig(
            shopify_base_url=settings.shopify_base_url,
            shopify_api_version=settings.shopify_api_version,
            hubspot_base_url=settings.hubspot_base_url,
            zoho_accounts_url=settings.zoho_accounts_url,
            salesforce_login_url=settings.salesforce_login_url,
            salesforce_daily_reserve=settings.salesforce_daily_reserve,
            daily_probe_seconds=settings.daily_probe_seconds,
            bigcommerce_base_url=settings.bigcommerce_base_url,
            allow_loopback=settings.allow_loopback,
        ),
        sessions,
        vault,
    )
    app.extensions["tandem"] = Tandem(
        settings, engine, sessions, vault, huey, JobQueue(huey), platforms
    )

    from webhooks import bp as webhooks_bp

    app.register_blueprint(webhooks_bp)

    @app.get("/health")
    def health_view():
        with transaction(sessions) as session:
            return jsonify(health.snapshot(session))

    _register_cli(app)
    _register_privacy_cli(app)
    _register_two_way_cli(app)
    return app


def tandem_of(app: Flask) -> Tandem:
    return app.extensions["tandem"]


def _current() -> Tandem:
    from flask import current_app

    return tandem_of(current_app)


def _require_schema(t: Tandem) -> None:
    if not inspect(t.engine).has_table("jobs"):
        raise click.ClickException("the database has no tables yet: run `flask db upgrade` first")


def _get_connection(session: Session, connection_id: int) -> Connection:
    connection = session.get(Connection, connection_id)
    if connection is None:
        raise click.ClickException(
            f"no connection with id {connection_id} (see `flask connections list`)"
        )
    return connection


def _get_dead_letter(session: Session, dead_letter_id: int) -> DeadLetter:
    row = session.get(DeadLetter, dead_letter_id)
    if row is None:
        raise click.ClickException(
            f"no dead letter {dead_letter_id} (see `flask deadletters list`)"
        )
    return row


def create_connection(
    t: Tandem,
    *,
    name: str,
    store_platform: str,
    store_account: str,
    store_credentials: Mapping[str, str],
    crm_account: str,
    crm_credentials: Mapping[str, str],
    crm_platform: str = "hubspot",
    crm_settings: Mapping[str, Any] | None = None,
    default_region: str | None = None,
    backfill: bool = True,
    public_url: str | None = None,
) -> int:
    """Register a store + CRM account pair, check both sides, register the store's webhooks
    where Tandem does that itself, queue the backfill.

    ``crm_credentials`` are the CRM's secrets (HubSpot: access_token; Zoho: client_id,
    client_secret, refresh_token; Salesforce: the same, or client_id and jwt_private_key with
    ``crm_settings["jwt_username"]``); ``crm_settings`` its options (Zoho ``dc``, Salesforce
    ``login_url``). ``public_url`` (default TANDEM_PUBLIC_URL) is where the store and the
    CRM's push channels reach Tandem's webhooks.

    Raises ConfigurationError (an account that cannot be one, a CRM org missing fields Tandem
    writes, a platform refusing the properties or the webhooks) and click.ClickException
    (unknown platform, missing credential, a store that is already connected). A refusal
    leaves no half-made connection.
    """
    from mapping import FieldMapError, crm_schema
    from sync.inbox import WEBHOOK_SECRET_KIND

    spec = STORES.get(store_platform)
    if spec is None:
        raise click.ClickException(
            f"unknown store platform {store_platform!r}: one of {', '.join(sorted(STORES))}"
        )
    crm_spec = CRMS.get(crm_platform)
    if crm_spec is None:
        raise click.ClickException(
            f"unknown CRM {crm_platform!r}: one of {', '.join(sorted(CRMS))}"
        )
    missing = [k for k in spec.credentials if not store_credentials.get(k)]
    if missing:
        raise click.ClickException(f"{store_platform} needs {', '.join(missing)}")
    if not any(all(crm_credentials.get(k) for k in kinds) for kinds in crm_spec.credentials):
        raise click.ClickException(
            f"{crm_platform} needs "
            + " or ".join(", ".join(kinds) for kinds in crm_spec.credentials)
        )
    if not crm_account.strip():
        raise click.ClickException(f"{crm_platform} needs the CRM account (portal or org id)")
    try:
        crm_schema(crm_platform, (crm_settings or {}).get("orders_as"))
    except FieldMapError as exc:
        raise click.ClickException(str(exc)) from None
    account = spec.normalise_account(store_account)
    with transaction(t.sessions) as session:
        existing = session.scalar(
            select(Connection).where(
                Connection.store_platform == store_platform, Connection.store_account == account
            )
        )
        if existing is not None:
            raise click.ClickException(f"{account} is already connection {existing.id}")
        settings: dict[str, Any] = {k: v for k, v in (crm_settings or {}).items() if v}
        if default_region:
            settings["default_region"] = default_region
        if public_url:
            # Where this connection's platforms reach Tandem (store webhooks, CRM channels).
            settings["public_url"] = public_url
        connection = Connection(
            name=name,
            store_platform=store_platform,
            store_account=account,
            crm_platform=crm_platform,
            crm_account=crm_account.strip(),
            status=ConnectionStatus.PAUSED,
            settings=settings,
        )
        session.add(connection)
        session.flush()
        for kind in spec.credentials:
            t.vault.put(session, connection.id, "store", kind, store_credentials[kind])
        for kind, value in crm_credentials.items():
            if value:
                t.vault.put(session, connection.id, "crm", kind, value)
        webhook_secret = None
        if spec.webhook_path is not None:
            webhook_secret = secrets.token_urlsafe(32)
            t.vault.put(session, connection.id, "store", WEBHOOK_SECRET_KIND, webhook_secret)
        connection_id = connection.id
    # Outside any transaction: a platform call must never hold the state store's write lock.
    # What Tandem writes (external ids, consent, statuses) must exist in the CRM before the
    # first write; creating or checking it (and the store's webhooks) is idempotent.
    try:
        with transaction(t.sessions) as session:
            connection = session.get(Connection, connection_id)
            crm = t.platforms.crm(session, connection)
            store = t.platforms.store(session, connection) if webhook_secret else None
        schema = crm_schema(crm_platform, settings.get("orders_as"))
        crm_spec.prepare(crm, schema, settings)
        _check_fact_fields(crm, schema, crm_account)
        if store is not None:
            path = spec.webhook_path.format(connection_id=connection_id)
            store.ensure_webhooks(
                f"{(public_url or t.settings.public_url).rstrip('/')}{path}", webhook_secret
            )
    except Exception:
        with transaction(t.sessions) as session:
            session.delete(session.get(Connection, connection_id))
        raise
    with transaction(t.sessions) as session:
        session.get(Connection, connection_id).status = ConnectionStatus.ACTIVE
        job_id = start_backfill(session, connection_id) if backfill else None
    if job_id is not None:
        t.queue.submit_quietly(job_id, priority=jobs.PRIORITY_BACKFILL)
    return connection_id


def _check_fact_fields(crm: Any, schema: Any, crm_account: str) -> None:
    """Create (HubSpot) or look for (Zoho CRM, Salesforce) the contact fields of the commerce
    facts. Missing ones are named, not refused: the sync works without them, and a currency's
    own fields are checked when its first order comes."""
    from connectors.errors import ConfigurationError
    from sync import facts

    try:
        facts.FACT_FIELDS.ensure(crm, schema, crm_account.strip(), [])
    except ConfigurationError as exc:
        logging.getLogger("tandem").warning("commerce facts will not be written: %s", exc)


def _register_two_way_cli(app: Flask) -> None:
    """``flask connections set`` and ``channels`` (two-way settings, push channels),
    ``flask conflicts list``, ``flask profiles merges``; the work is in ``sync``."""
    from sync import channels, identity
    from sync.models import Checkpoint, ConflictRecord
    from sync.twoway import SETTINGS, check_setting

    connections = app.cli.commands["connections"]

    @connections.command("set")
    @click.argument("connection_id", type=int)
    @click.argument("key", type=click.Choice(SETTINGS))
    @click.argument("value")
    def connections_set(connection_id: int, key: str, value: str) -> None:
        """Set a two-way setting; VALUE is JSON (true, ["phone"], {"phone": "crm"}, "latest")."""
        t = _current()
        _require_schema(t)
        try:
            parsed = check_setting(key, json.loads(value))
        except json.JSONDecodeError:
            raise click.ClickException(f"{key}: {value!r} is not JSON") from None
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        with transaction(t.sessions) as session:
            connection = _get_connection(session, connection_id)
            connection.settings = {**(connection.settings or {}), key: parsed}
        click.echo(f"connection {connection_id}: {key} = {json.dumps(parsed)}")

    @connections.command("channels")
    @click.argument("connection_id", type=int)
    def connections_channels(connection_id: int) -> None:
        """How the connection's CRM tells Tandem of changes, and what to configure there."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            connection = _get_connection(session, connection_id)
            public = (connection.settings or {}).get("public_url") or t.settings.public_url
            if connection.crm_platform == "hubspot":
                click.echo(
                    f"HubSpot app webhooks: target URL {public.rstrip('/')}/webhooks/hubspot, "
                    "signed with TANDEM_HUBSPOT_CLIENT_SECRET"
                )
            elif connection.crm_platform == "salesforce":
                click.echo(
                    "Salesforce Outbound Message on Contact, endpoint URL (a secret: keep it "
                    f"safe): {channels.salesforce_endpoint(session, t.vault, connection, public)}"
                )
            else:
                state = session.scalar(
                    select(Checkpoint).where(
                        Checkpoint.connection_id == connection_id,
                        Checkpoint.entity == channels.CHANNEL_ENTITY,
                    )
                )
                info = (state.state or {}) if state else {}
                click.echo(
                    f"Zoho watch channel {info.get('channel_id', '(not yet subscribed)')} to "
                    f"{info.get('notify_url', '-')}, expires {info.get('expires_at', '-')}"
                )

    @app.cli.group("conflicts")
    def conflicts() -> None:
        """Field-level conflict decisions."""

    @conflicts.command("list")
    @click.option("--connection", "connection_id", type=int, required=True)
    @click.option("--limit", type=click.IntRange(1, 10_000), default=50)
    def conflicts_list(connection_id: int, limit: int) -> None:
        """Newest first: field, both sides' values, who won and why."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            _get_connection(session, connection_id)
            rows = session.scalars(
                select(ConflictRecord)
                .where(ConflictRecord.connection_id == connection_id)
                .order_by(ConflictRecord.id.desc())
                .limit(limit)
            ).all()
            for r in rows:
                store = (r.store_value or {}).get("v")
                crm = (r.crm_value or {}).get("v")
                click.echo(
                    f"{r.created_at.isoformat()}\tcustomer {r.store_id}\t{r.field}\t"
                    f"store={store!r}\tcrm={crm!r}\twinner={r.winner}\t{r.reason}"
                )

    @app.cli.group("profiles")
    def profiles() -> None:
        """One person across stores."""

    @profiles.command("merges")
    @click.option("--connection", "connection_id", type=int, default=None)
    @click.option("--limit", type=click.IntRange(1, 10_000), default=50)
    def profiles_merges(connection_id: int | None, limit: int) -> None:
        """Customers who joined a person already known from another store (newest first)."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            if connection_id is not None:
                _get_connection(session, connection_id)
            for m in identity.merges(session, connection_id, limit):
                click.echo(
                    f"{m['at']}\tprofile {m['profile']}\t{m['crm']} {m['crm_id']}\t"
                    f"connection {m['connection']} {m['store_id']}\t{m['reason']}"
                )


def _register_privacy_cli(app: Flask) -> None:
    """``flask privacy ...`` (data requests, erasure, the connection's privacy settings) and
    ``flask audit list``; the work itself is in ``sync.privacy``."""
    from sync import privacy
    from sync.models import AuditEntry, PrivacyExport

    group = AppGroup("privacy", help="Data requests, erasure and privacy settings.")

    @group.command("exports")
    @click.option("--connection", "connection_id", type=int, default=None)
    def privacy_exports(connection_id: int | None) -> None:
        """List the exports made for data requests."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            stmt = select(PrivacyExport).order_by(PrivacyExport.id)
            if connection_id is not None:
                stmt = stmt.where(PrivacyExport.connection_id == connection_id)
            for e in session.scalars(stmt):
                click.echo(
                    f"{e.id}\t{e.created_at:%Y-%m-%d %H:%M:%S}\tconnection {e.connection_id}\t"
                    f"request {e.request_id}\t{e.subject}"
                )

    @group.command("export-show")
    @click.argument("export_id", type=int)
    def privacy_export_show(export_id: int) -> None:
        """Everything the export holds, as JSON (what is handed to the merchant)."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            row = session.get(PrivacyExport, export_id)
            if row is None:
                raise click.ClickException(f"no export {export_id} (see `flask privacy exports`)")
            click.echo(json.dumps(row.content, indent=2, ensure_ascii=False, default=str))

    @group.command("forget")
    @click.option("--connection", "connection_id", type=int, required=True)
    @click.option("--customer", "customer_id", required=True, help="the store's customer id")
    @click.option("--email", default=None, help="only if Tandem may not know it from the id")
    @click.option(
        "--crm",
        "crm_action",
        type=click.Choice(privacy.ON_CUSTOMER_DELETE),
        default=None,
        help="what the CRM contact gets (default: the connection's on_customer_delete)",
    )
    def privacy_forget(
        connection_id: int, customer_id: str, email: str | None, crm_action: str | None
    ) -> None:
        """Erase a customer from Tandem (and the CRM, as set); the worker does it, audited."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            _get_connection(session, connection_id)
            job_id = privacy.forget_job(
                session, connection_id, customer_id, email=email, crm_action=crm_action
            )
        t.queue.submit_quietly(job_id)
        click.echo(f"erasure of customer {customer_id} queued (job {job_id})")

    @group.command("configure")
    @click.option("--connection", "connection_id", type=int, required=True)
    @click.option("--on-customer-delete", type=click.Choice(privacy.ON_CUSTOMER_DELETE))
    @click.option(
        "--purge-after-hours",
        type=click.FloatRange(min=0, min_open=True),
        help="retention after an uninstall that no shop/redact follows (BigCommerce)",
    )
    def privacy_configure(
        connection_id: int, on_customer_delete: str | None, purge_after_hours: float | None
    ) -> None:
        """Set (or, with no option, show) a connection's privacy settings."""
        t = _current()
        _require_schema(t)
        changes: dict[str, Any] = {}
        if on_customer_delete is not None:
            changes["on_customer_delete"] = on_customer_delete
        if purge_after_hours is not None:
            changes["purge_after_uninstall_hours"] = purge_after_hours
        with transaction(t.sessions) as session:
            connection = _get_connection(session, connection_id)
            if changes:
                connection.settings = {**(connection.settings or {}), **changes}
                privacy.audit(
                    session,
                    connection_id,
                    "privacy.settings",
                    f"connection:{connection_id}",
                    "operator",
                    changes,
                )
            settings = connection.settings or {}
            click.echo(
                f"connection {connection_id}: on_customer_delete="
                f"{privacy.customer_delete_setting(settings)}, purge_after_uninstall_hours="
                f"{privacy.retention_hours(settings):g}"
            )

    app.cli.add_command(group)

    audit = AppGroup("audit", help="What was done to people's and shops' data.")

    @audit.command("list")
    @click.option("--connection", "connection_id", type=int, default=None)
    @click.option("--limit", default=50, show_default=True)
    def audit_list(connection_id: int | None, limit: int) -> None:
        """Newest first; connections already purged are still listed by their id."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            stmt = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
            if connection_id is not None:
                stmt = stmt.where(AuditEntry.connection_id == connection_id)
            for a in session.scalars(stmt):
                click.echo(
                    f"{a.id}\t{a.created_at:%Y-%m-%d %H:%M:%S}\tconnection {a.connection_id}\t"
                    f"{a.action}\t{a.subject}\t{a.actor}\t{json.dumps(a.details, sort_keys=True)}"
                )

    app.cli.add_command(audit)


def _register_cli(app: Flask) -> None:
    db = AppGroup("db", help="The state store's schema.")

    @db.command("upgrade")
    def db_upgrade() -> None:
        """Create or migrate the state store's tables (idempotent)."""
        migrate.upgrade(_current().engine)
        click.echo("database is up to date")

    app.cli.add_command(db)

    secrets = AppGroup("secrets", help="Credentials at rest.")

    @secrets.command("rotate")
    def secrets_rotate() -> None:
        """Re-encrypt every credential under the first key of TANDEM_ENCRYPTION_KEYS.

        Restartable: each batch commits on its own, and a row is readable with either key
        until the old key is removed from the setting.
        """
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            count = t.vault.rotate(session)
        click.echo(f"re-encrypted {count} credentials; the old key can now be removed")

    app.cli.add_command(secrets)

    @app.cli.command("worker")
    @click.option(
        "--threads", type=int, default=None, help="worker threads (default TANDEM_WORKER_THREADS)"
    )
    def worker_command(threads: int | None) -> None:
        """Run jobs: the Huey consumer plus the reconciler (lost work, due polls)."""
        t = _current()
        _require_schema(t)
        worker = t.worker()
        t.queue.bind(worker.run)
        reconciler = Reconciler(worker, t.settings.reconcile_interval_seconds)
        reconciler.start()
        consumer = t.huey.create_consumer(
            workers=threads or t.settings.worker_threads,
            worker_type="thread",
            periodic=False,
            check_worker_health=True,
            # Idle workers poll the SQLite queue with backoff; cap it so a webhook waits at
            # most a second for a worker (PostgresHuey is woken by LISTEN/NOTIFY anyway).
            max_delay=1.0,
        )
        click.echo(f"worker: {threads or t.settings.worker_threads} threads; Ctrl-C stops")
        try:
            consumer.run()
        finally:
            reconciler.stop()

    connections = AppGroup("connections", help="Store <-> CRM connections.")

    @connections.command("create")
    @click.option("--name", required=True)
    @click.option(
        "--store",
        "store_platform",
        type=click.Choice(sorted(STORES)),
        default="shopify",
        show_default=True,
    )
    @click.option(
        "--account",
        "store_account",
        required=True,
        help="Shopify: acme or acme.myshopify.com; WooCommerce: the site URL; "
        "BigCommerce: the store hash",
    )
    @click.option(
        "--store-token",
        envvar="TANDEM_NEW_STORE_TOKEN",
        help="Shopify or BigCommerce access token",
    )
    @click.option("--consumer-key", envvar="TANDEM_NEW_CONSUMER_KEY", help="WooCommerce ck_...")
    @click.option(
        "--consumer-secret", envvar="TANDEM_NEW_CONSUMER_SECRET", help="WooCommerce cs_..."
    )
    @click.option(
        "--crm",
        "crm_platform",
        type=click.Choice(sorted(CRMS)),
        default="hubspot",
        show_default=True,
    )
    @click.option(
        "--crm-account",
        "--hubspot-account",
        "crm_account",
        required=True,
        help="HubSpot portal id, Zoho org id or Salesforce org id",
    )
    @click.option(
        "--crm-token", "--hubspot-token", envvar="TANDEM_NEW_CRM_TOKEN", help="HubSpot token"
    )
    @click.option("--crm-client-id", envvar="TANDEM_NEW_CRM_CLIENT_ID", help="Zoho/Salesforce")
    @click.option(
        "--crm-client-secret", envvar="TANDEM_NEW_CRM_CLIENT_SECRET", help="Zoho/Salesforce"
    )
    @click.option(
        "--crm-refresh-token", envvar="TANDEM_NEW_CRM_REFRESH_TOKEN", help="Zoho/Salesforce"
    )
    @click.option(
        "--zoho-dc",
        default=None,
        help="Zoho data centre: com, eu, in, com.au, jp, ca, com.cn, sa (default com)",
    )
    @click.option(
        "--salesforce-login-url",
        default=None,
        help="https://test.salesforce.com for a sandbox org, or the org's My Domain",
    )
    @click.option("--salesforce-username", default=None, help="JWT bearer flow: the user")
    @click.option(
        "--orders-as",
        default=None,
        help="Zoho: Deals (default) or Sales_Orders; Salesforce: Opportunity (default) or Order",
    )
    @click.option(
        "--salesforce-order-account",
        default=None,
        help="with --orders-as Order: the Account id the orders are placed under",
    )
    @click.option(
        "--salesforce-contact-key",
        default=None,
        help="the Contact external-id field Tandem upserts by (default Tandem_Contact_Key__c)",
    )
    @click.option(
        "--salesforce-private-key",
        type=click.File("r"),
        default=None,
        help="JWT bearer flow: PEM file of the connected app's key",
    )
    @click.option(
        "--default-region", default=None, help="ISO country for phone numbers without one"
    )
    @click.option("--backfill/--no-backfill", default=True)
    def connections_create(
        store_token: str | None,
        consumer_key: str | None,
        consumer_secret: str | None,
        crm_token: str | None,
        crm_client_id: str | None,
        crm_client_secret: str | None,
        crm_refresh_token: str | None,
        zoho_dc: str | None,
        salesforce_login_url: str | None,
        salesforce_username: str | None,
        salesforce_contact_key: str | None,
        orders_as: str | None,
        salesforce_order_account: str | None,
        salesforce_private_key: Any,
        **options: Any,
    ) -> None:
        """Connect a store to a CRM account (credentials may come from the environment)."""
        from connectors.errors import ConnectorError

        t = _current()
        _require_schema(t)
        credentials = {
            "access_token": store_token or "",
            "consumer_key": consumer_key or "",
            "consumer_secret": consumer_secret or "",
        }
        crm_credentials = {
            "access_token": crm_token or "",
            "client_id": crm_client_id or "",
            "client_secret": crm_client_secret or "",
            "refresh_token": crm_refresh_token or "",
            "jwt_private_key": salesforce_private_key.read() if salesforce_private_key else "",
        }
        crm_settings = {
            "dc": zoho_dc,
            "login_url": salesforce_login_url,
            "jwt_username": salesforce_username,
            "contact_key_field": salesforce_contact_key,
            "orders_as": orders_as,
            "order_account_id": salesforce_order_account,
        }
        try:
            connection_id = create_connection(
                t,
                store_credentials=credentials,
                crm_credentials=crm_credentials,
                crm_settings=crm_settings,
                **options,
            )
        except ConnectorError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(
            f"connection {connection_id} created"
            + (", backfill queued" if options["backfill"] else "")
        )

    @connections.command("list")
    def connections_list() -> None:
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            for c in session.scalars(select(Connection).order_by(Connection.id)):
                click.echo(
                    f"{c.id}\t{c.status}\t{c.store_platform}:{c.store_account}\t{c.crm_platform}:{c.crm_account}\t{c.name}"
                )

    def _set_status(connection_id: int, status: ConnectionStatus) -> None:
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            _get_connection(session, connection_id).status = status
            if status == ConnectionStatus.ACTIVE:
                from sync import inbox

                inbox.drain_job(session, connection_id)
                inbox.drain_job(session, connection_id, inbox.CRM_DRAIN)
        click.echo(f"connection {connection_id} is {status}")

    @connections.command("pause")
    @click.argument("connection_id", type=int)
    def connections_pause(connection_id: int) -> None:
        """Stop syncing (webhooks are still stored and processed on resume)."""
        _set_status(connection_id, ConnectionStatus.PAUSED)

    @connections.command("resume")
    @click.argument("connection_id", type=int)
    def connections_resume(connection_id: int) -> None:
        _set_status(connection_id, ConnectionStatus.ACTIVE)

    app.cli.add_command(connections)

    @app.cli.command("backfill")
    @click.argument("connection_id", type=int)
    def backfill_command(connection_id: int) -> None:
        """Queue a full-history backfill of a connection."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            _get_connection(session, connection_id)
            job_id = start_backfill(session, connection_id)
        if job_id is None:
            click.echo("a backfill is already queued for this connection")
            return
        t.queue.submit_quietly(job_id, priority=jobs.PRIORITY_BACKFILL)
        click.echo(f"backfill queued (job {job_id})")

    @app.cli.command("status")
    @click.option("--json", "as_json", is_flag=True)
    def status_command(as_json: bool) -> None:
        """Health: connections, jobs, inbox, dead letters, checkpoints."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            snap = health.snapshot(session)
        if as_json:
            click.echo(json.dumps(snap, indent=2, default=str))
        else:
            click.echo(health.render(snap))

    deadletters = AppGroup("deadletters", help="Records a platform refused.")

    @deadletters.command("list")
    @click.option("--connection", "connection_id", type=int, default=None)
    @click.option("--all", "show_all", is_flag=True, help="include resolved ones")
    def deadletters_list(connection_id: int | None, show_all: bool) -> None:
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            stmt = select(DeadLetter).order_by(DeadLetter.id)
            if connection_id is not None:
                stmt = stmt.where(DeadLetter.connection_id == connection_id)
            if not show_all:
                stmt = stmt.where(DeadLetter.status == DeadLetterStatus.OPEN)
            for d in session.scalars(stmt):
                click.echo(
                    f"{d.id}\t{d.status}\tconnection {d.connection_id}\t{d.entity} {d.store_id}\t"
                    f"{d.platform}: {d.reason}"
                )

    @deadletters.command("show")
    @click.argument("dead_letter_id", type=int)
    def deadletters_show(dead_letter_id: int) -> None:
        """The platform's reason, its details, and the record as last received."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            row = _get_dead_letter(session, dead_letter_id)
            click.echo(
                json.dumps(
                    {
                        "id": row.id,
                        "connection": row.connection_id,
                        "entity": row.entity,
                        "store_id": row.store_id,
                        "status": row.status,
                        "platform": row.platform,
                        "reason": row.reason,
                        "occurrences": row.occurrences,
                        "details": row.details,
                        "record": row.record,
                        "updated_at": row.updated_at.isoformat(),
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )

    @deadletters.command("resolve")
    @click.argument("dead_letter_id", type=int)
    def deadletters_resolve(dead_letter_id: int) -> None:
        """Close a dead letter without replaying it (the operator handled it another way)."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            row = _get_dead_letter(session, dead_letter_id)
            row.status = DeadLetterStatus.RESOLVED
        click.echo(f"dead letter {dead_letter_id} resolved")

    @deadletters.command("replay")
    @click.argument("dead_letter_id", type=int)
    def deadletters_replay(dead_letter_id: int) -> None:
        """Fetch the record afresh from the store and sync it again."""
        from sync.worker import queue_refetch

        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            row = _get_dead_letter(session, dead_letter_id)
            job_id = queue_refetch(session, row)
        t.queue.submit_quietly(job_id)
        click.echo(f"replay queued (job {job_id})")

    app.cli.add_command(deadletters)

    @app.cli.command("inbox")
    @click.option("--status", default="unroutable", show_default=True)
    @click.option("--limit", default=50, show_default=True)
    def inbox_command(status: str, limit: int) -> None:
        """List webhook deliveries by status (e.g. unroutable: signed, but no connection)."""
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            total = session.scalar(
                select(func.count(InboxEvent.id)).where(InboxEvent.status == status)
            )
            click.echo(f"{total} deliveries {status}")
            for e in session.scalars(
                select(InboxEvent)
                .where(InboxEvent.status == status)
                .order_by(InboxEvent.id.desc())
                .limit(limit)
            ):
                click.echo(
                    f"{e.id}\t{e.received_at:%Y-%m-%d %H:%M:%S}\t{e.platform}\t{e.account}\t{e.topic}\t{e.delivery_id}"
                )

    @app.cli.command("sandbox")
    @click.option(
        "--store",
        type=click.Choice(sorted(STORES)),
        default="shopify",
        show_default=True,
    )
    @click.option("--crm", type=click.Choice(sorted(CRMS)), default="hubspot", show_default=True)
    @click.option("--customers", default=500, show_default=True)
    @click.option("--orders", default=2000, show_default=True)
    @click.option("--connect/--no-connect", default=True, help="also register the connection here")
    def sandbox_command(store: str, crm: str, customers: int, orders: int, connect: bool) -> None:
        """Serve a storefront simulator and a CRM's on loopback, seeded, until Ctrl-C.

        The simulated store sends its signed webhooks to TANDEM_PUBLIC_URL, so `flask run` and
        `flask worker` (configured by the same environment) keep the CRM in step with it.
        """
        import demo

        t = _current()
        s = t.settings
        port = getattr(s, f"sandbox_{store}_port")
        crm_port = getattr(s, f"sandbox_{crm}_port")
        crm_sim = demo.CRM_SIMS[crm]
        secret = s.shopify_client_secret.get_secret_value() if s.shopify_client_secret else None
        expected = {
            f"TANDEM_{crm_sim.setting.upper()}": f"http://127.0.0.1:{crm_port}",
            "TANDEM_ALLOW_LOOPBACK": "1",
        }
        pointing = demo.STORE_SIMS[store].setting
        if pointing is not None:
            name, value = pointing
            expected[f"TANDEM_{name.upper()}"] = value(f"http://127.0.0.1:{port}")
        if store == "shopify":
            expected["TANDEM_SHOPIFY_CLIENT_SECRET"] = secret or "<any string>"
        actual = {
            "TANDEM_HUBSPOT_BASE_URL": s.hubspot_base_url,
            "TANDEM_ZOHO_ACCOUNTS_URL": s.zoho_accounts_url or "",
            "TANDEM_SALESFORCE_LOGIN_URL": s.salesforce_login_url,
            "TANDEM_ALLOW_LOOPBACK": "1" if s.allow_loopback else "",
            "TANDEM_SHOPIFY_BASE_URL": s.shopify_base_url,
            "TANDEM_BIGCOMMERCE_BASE_URL": s.bigcommerce_base_url,
            "TANDEM_SHOPIFY_CLIENT_SECRET": secret or "",
        }
        if connect and any(actual[k] != v for k, v in expected.items()):
            raise click.ClickException(
                "point Tandem at the simulators first (the same variables for `flask run` and "
                "`flask worker`):\n  export " + " ".join(f"{k}='{v}'" for k, v in expected.items())
            )
        if connect:
            _require_schema(t)
        env = demo.start_sandbox(
            platform=store,
            crm=crm,
            store_port=port,
            crm_port=crm_port,
            customers=customers,
            orders=orders,
            client_secret=secret,
            webhook_url=f"{s.public_url.rstrip('/')}/webhooks/shopify",
        )
        click.echo(
            f"{demo.STORE_SIMS[store].title} simulator: {env.store.url}  "
            f"(store {env.account}; webhooks to {s.public_url})"
        )
        click.echo(f"{crm_sim.title} simulator: {env.crm.url}  (account {env.crm_account})")
        if connect:
            connection_id = demo.connect(t, env)
            click.echo(f"connection {connection_id} created; backfill queued (run `flask worker`)")
        click.echo("Ctrl-C stops the simulators")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            env.stop()

    fieldmap = AppGroup("fieldmap", help="Per-connection changes to the default field map.")

    @fieldmap.command("set")
    @click.argument("connection_id", type=int)
    @click.argument("entity", type=click.Choice(["contact", "deal", "line_item"]))
    @click.argument("crm_property")
    @click.argument("source_path", required=False)
    @click.option("--drop", is_flag=True, help="stop writing this property")
    def fieldmap_set(
        connection_id: int, entity: str, crm_property: str, source_path: str | None, drop: bool
    ) -> None:
        """Map CRM_PROPERTY from SOURCE_PATH (e.g. default_address.city), or --drop it."""
        from mapping import FieldMapError, crm_schema

        if drop == (source_path is not None):
            raise click.UsageError("give either SOURCE_PATH or --drop")
        t = _current()
        _require_schema(t)
        with transaction(t.sessions) as session:
            connection = _get_connection(session, connection_id)
            schema = crm_schema(connection.crm_platform, connection.settings.get("orders_as"))
            existing = {
                row.crm_property: row.source_path
                for row in session.scalars(
                    select(FieldMapOverride).where(
                        FieldMapOverride.connection_id == connection_id,
                        FieldMapOverride.entity == entity,
                    )
                )
            }
            try:
                schema.field_map(entity, {**existing, crm_property: source_path})
            except FieldMapError as exc:
                raise click.ClickException(str(exc)) from None
            row = session.scalar(
                select(FieldMapOverride).where(
                    FieldMapOverride.connection_id == connection_id,
                    FieldMapOverride.entity == entity,
                    FieldMapOverride.crm_property == crm_property,
                )
            )
            if row is None:
                row = FieldMapOverride(
                    connection_id=connection_id, entity=entity, crm_property=crm_property
                )
                session.add(row)
            row.source_path = source_path
        click.echo(
            f"{entity}.{crm_property} <- {source_path or '(dropped)'} for connection {connection_id}"
        )

    app.cli.add_command(fieldmap)

    @app.cli.command("demo")
    @click.option("--customers", default=500, show_default=True)
    @click.option("--orders", default=2000, show_default=True)
    @click.option(
        "--store",
        type=click.Choice(sorted(STORES)),
        default="shopify",
        show_default=True,
    )
    @click.option("--crm", type=click.Choice(sorted(CRMS)), default="hubspot", show_default=True)
    def demo_command(customers: int, orders: int, store: str, crm: str) -> None:
        """Seed a simulated store, sync it into a simulated CRM, keep it in step, report."""
        import demo

        sys.exit(demo.run(store=store, crm=crm, customers=customers, orders=orders))
