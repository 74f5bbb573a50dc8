"""Running jobs: claim, dispatch by kind, and turn connector errors into the right next step.

Every handler ends the same way: one transaction that records its progress (checkpoint, inbox
rows processed), writes the follow-up job (next page, next phase) and marks the job done. A
crash before that transaction repeats the step, which is idempotent; a crash after it loses
nothing, because the follow-up job is already a row.
"""

from __future__ import annotations

import itertools
import logging
import random
import signal
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from connectors.errors import (
    AuthExpiredError,
    ConfigurationError,
    PermanentError,
    RateLimitedError,
    RetriableError,
)
from mapping import (
    FieldMapError,
    MappingError,
    apply_stage_overrides,
    crm_schema,
)
from mapping import twoway as twoway_mapping
from sync import channels, identity, inbox, jobs, ledger, links, notifications
from sync.db import transaction
from sync.engine import ConnectionContext, Engine, FieldMaps, Outcome
from sync.models import (
    Checkpoint,
    Connection,
    ConnectionStatus,
    DeadLetter,
    DeadLetterStatus,
    FieldMapOverride,
    InboxEvent,
    InboxStatus,
    Job,
    JobStatus,
    Link,
    utcnow,
)
from sync.platforms import Platforms
from sync.privacy import PrivacyJobs, store_delete_jobs
from sync.queue import JobQueue
from sync.records import PARSERS, TOPICS, source_id
from sync.secrets import SecretsError
from sync.twoway import Tally, TwoWaySettings

log = logging.getLogger("tandem.worker")

POLL = "poll"
CRM_POLL = "crm_poll"
CRM_CHANNELS = "crm_channels"
BACKFILL = "backfill"
REFETCH = "refetch"
ENTITIES = ("customers", "orders")
CRM_CONTACTS = "crm_contacts"  # the checkpoint of a connection's CRM poll


@dataclass
class WorkerConfig:
    lease_seconds: float = 120.0
    poll_interval_seconds: float = 300.0
    # CRM changes are polled as a safety net behind the CRM's webhooks, in pages of this many.
    crm_poll_interval_seconds: float = 300.0
    crm_poll_page: int = 200
    # Where the CRMs' push channels reach Tandem (TANDEM_PUBLIC_URL); None: no channels.
    public_url: str | None = None
    poll_overlap_seconds: float = 300.0
    full_scan_interval_seconds: float = 3600.0
    drain_batch: int = 200
    # CRM notifications are small and mostly Tandem's own writes coming back (HubSpot sends
    # one event per changed property), judged without a call: taken more at a time.
    crm_drain_batch: int = 1000
    bulk_chunk_roots: int = 250
    bulk_wait_seconds: float = 1.0
    stale_enqueue_seconds: float = 60.0
    retry_base_seconds: float = 2.0
    retry_max_seconds: float = 600.0


@dataclass
class Step:
    """What a handler asks the final transaction to do."""

    follow_ups: list[dict[str, Any]] = field(default_factory=list)


class Worker:
    """Executes jobs by id (Huey calls :meth:`run`) and keeps the schedule (:meth:`reconcile`)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        platforms: Platforms,
        queue: JobQueue,
        config: WorkerConfig | None = None,
        *,
        on_outcome: Callable[[str, Outcome], None] | None = None,
    ) -> None:
        self.sessions = sessions
        self.platforms = platforms
        self.queue = queue
        self.config = config or WorkerConfig()
        self.on_outcome = on_outcome
        self.handlers: dict[str, Callable[[Job, Connection], list[int]]] = {
            inbox.DRAIN: self._drain,
            inbox.CRM_DRAIN: self._crm_drain,
            POLL: self._poll,
            BACKFILL: self._backfill,
            REFETCH: self._refetch,
            CRM_POLL: self._crm_poll,
            CRM_CHANNELS: self._crm_channels,
            PrivacyJobs.KIND: PrivacyJobs(sessions, platforms).run,
        }

    # ------------------------------------------------------------------ running one job
    def run(self, job_id: int) -> None:
        """Claim and execute one job. Never raises: every failure is recorded on the job."""
        with transaction(self.sessions) as session:
            job = jobs.claim(session, job_id, self.config.lease_seconds)
            if job is None:
                retry_in = self._not_claimed(session, job_id)
            else:
                connection = (
                    session.get(Connection, job.connection_id) if job.connection_id else None
                )
        if job is None:
            if retry_in is not None:
                self.queue.submit_quietly(job_id, delay=retry_in)
            return
        if connection is not None and connection.status != ConnectionStatus.ACTIVE:
            with transaction(self.sessions) as session:
                jobs.retry_later(
                    session, job.id, 60.0, f"connection is {connection.status}", count=False
                )
            return
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise ConfigurationError(f"unknown job kind {job.kind!r}")
            follow_ups = handler(job, connection)
        except RateLimitedError as exc:
            delay = exc.retry_after if exc.retry_after is not None else 10.0
            self._reschedule(job, delay, f"rate limited by {exc.platform}: {exc}", count=False)
        except (RetriableError, AuthExpiredError) as exc:
            self._reschedule(
                job, self._backoff(job.attempts), f"{type(exc).__name__}: {exc}", count=True
            )
        except (ConfigurationError, SecretsError, PermanentError, FieldMapError) as exc:
            log.error("job %s (%s) failed for good: %s", job.id, job.kind, exc)
            with transaction(self.sessions) as session:
                jobs.fail(session, job.id, f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug: keep the job, retry with backoff, tell the operator
            log.exception("job %s (%s) crashed", job.id, job.kind)
            self._reschedule(
                job, self._backoff(job.attempts), f"{type(exc).__name__}: {exc}", count=True
            )
        else:
            for follow_up in follow_ups:
                self.queue.submit_quietly(follow_up)

    def _not_claimed(self, session: Session, job_id: int) -> float | None:
        """A job that could not be claimed only because its connection is busy (or it is not
        yet due) is tried again shortly; anything else needs nothing."""
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.PENDING:
            return None
        wait = (job.run_after - utcnow()).total_seconds()
        return max(wait, 0.5)

    def _reschedule(self, job: Job, delay: float, error: str, *, count: bool) -> None:
        with transaction(self.sessions) as session:
            again = jobs.retry_later(session, job.id, delay, error, count=count)
        if again:
            log.info("job %s (%s) retries in %.1fs: %s", job.id, job.kind, delay, error)
            self.queue.submit_quietly(job.id, delay=delay, priority=job.priority)
        else:
            log.error(
                "job %s (%s) gave up after %s attempts: %s", job.id, job.kind, job.attempts, error
            )

    def _backoff(self, attempts: int) -> float:
        ceiling = min(
            self.config.retry_max_seconds,
            self.config.retry_base_seconds * 2 ** max(attempts - 1, 0),
        )
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not security

    def _finish(self, job: Job, apply: Callable[[Session, Step], None]) -> list[int]:
        """The handler's last transaction: progress, follow-up jobs and "done", atomically.
        Returns the follow-up job ids, which the caller hands to the queue after commit."""
        step = Step()
        with transaction(self.sessions) as session:
            apply(session, step)
            ids = []
            for spec in step.follow_ups:
                job_id = jobs.add_job(session, **spec)
                if job_id is not None:
                    ids.append(job_id)
            jobs.mark_enqueued(session, ids)
            jobs.finish(session, job.id)
        return ids

    # ------------------------------------------------------------------ context per connection
    def _context(
        self, connection: Connection, writable: frozenset[str] = frozenset()
    ) -> ConnectionContext:
        with transaction(self.sessions) as session:
            overrides = session.scalars(
                select(FieldMapOverride).where(FieldMapOverride.connection_id == connection.id)
            ).all()
        by_entity: dict[str, dict[str, str | None]] = {"contact": {}, "deal": {}, "line_item": {}}
        for row in overrides:
            by_entity.setdefault(row.entity, {})[row.crm_property] = row.source_path
        settings = connection.settings or {}
        schema = crm_schema(connection.crm_platform, settings.get("orders_as"))
        # A bad operator override (unknown path or stage key) raises FieldMapError, a
        # ValueError: the job fails with that message instead of writing with a wrong map.
        stage_map = apply_stage_overrides(schema.stage_map, settings.get("stage_map") or {})
        contact_fields = schema.field_map("contact", by_entity["contact"])
        paths = (
            twoway_mapping.two_way_paths(contact_fields, writable, settings.get("two_way_fields"))
            if settings.get("two_way", True)
            else ()
        )
        return ConnectionContext(
            connection_id=connection.id,
            store_platform=connection.store_platform,
            store_key=f"{connection.store_platform}:{connection.store_account}",
            store_name=connection.name,
            fields=FieldMaps(
                contact=contact_fields,
                deal=schema.field_map("deal", by_entity["deal"]),
                line_item=schema.field_map("line_item", by_entity["line_item"])
                if schema.line_item_fields is not None
                else None,
            ),
            schema=schema,
            stage_map=stage_map,
            pipeline=settings.get("pipeline", schema.pipeline),
            order_constants={
                **schema.order_constants,
                **{
                    name: settings[setting]
                    for name, setting in schema.order_settings.items()
                    if settings.get(setting)
                },
            },
            two_way=TwoWaySettings(
                paths=paths,
                policies=ledger.policies(settings, paths),
                default_region=settings.get("default_region"),
            ),
        )

    def _engine(self, job: Job, connection: Connection) -> Engine:
        with transaction(self.sessions) as session:
            crm = self.platforms.crm(session, connection, priority=job.priority)
            store = self.platforms.store(session, connection, priority=job.priority)
        context = self._context(connection, store.writable_fields)
        return Engine(self.sessions, context, crm, store=store)

    def _store(self, job: Job, connection: Connection):
        with transaction(self.sessions) as session:
            return self.platforms.store(session, connection, priority=job.priority)

    def _map(
        self, connection: Connection, shape: str, entity: str, raws: list[dict[str, Any]]
    ) -> tuple[list[Any], dict[str, dict], list[tuple[str, dict, str]]]:
        """Raw payloads -> canonical records; unreadable ones come back as (id, raw, reason)."""
        parsers = PARSERS[connection.store_platform][shape]
        parse = parsers.customer if entity == "customer" else parsers.order
        region = (connection.settings or {}).get("default_region")
        records, by_id, bad = [], {}, []
        for raw in raws:
            try:
                record = parse(raw, default_region=region)
            except (MappingError, ValueError) as exc:
                bad.append(
                    (str(raw.get("legacyResourceId") or raw.get("id") or "?"), raw, str(exc))
                )
                continue
            records.append(record)
            by_id[record.source_id] = raw
        return records, by_id, bad

    def _dead_unreadable(self, session: Session, connection: Connection, entity: str, bad) -> None:
        for store_id, raw, reason in bad:
            links.dead_letter(
                session,
                connection.id,
                entity=entity,
                store_id=store_id,
                platform="tandem",
                reason=f"unreadable {entity} payload: {reason}",
                record=raw,
            )

    def _sync(
        self, engine: Engine, entity: str, records: list[Any], raw: dict[str, dict]
    ) -> Outcome:
        if entity == "customer":
            outcome = engine.sync_customers(records, raw)
            if outcome.contacts_written:
                self._replay_waiting_orders(engine.ctx.connection_id, outcome.contacts_written)
        else:
            outcome = engine.sync_orders(records, raw)
        if self.on_outcome:
            self.on_outcome(entity, outcome)
        return outcome

    def _replay_waiting_orders(self, connection_id: int, emails: set[str]) -> None:
        """Orders dead-lettered because their buyer's contact was refused go again now."""
        with transaction(self.sessions) as session:
            waiting = [
                letter
                for letter in session.scalars(
                    select(DeadLetter).where(
                        DeadLetter.connection_id == connection_id,
                        DeadLetter.entity == "order",
                        DeadLetter.status == DeadLetterStatus.OPEN,
                    )
                )
                if (letter.details or {}).get("buyer_email") in emails
            ]
            ids = [queue_refetch(session, letter) for letter in waiting]
            jobs.mark_enqueued(session, ids)
        for job_id in ids:
            self.queue.submit_quietly(job_id)

    # ------------------------------------------------------------------ webhooks
    def _drain(self, job: Job, connection: Connection) -> list[int]:
        with transaction(self.sessions) as session:
            rows = inbox.pending(
                session, connection.id, self.config.drain_batch, connection.store_platform
            )
            events = [(row.id, row.topic, row.payload) for row in rows]
            row_ids = [row.id for row in rows]
        topics = TOPICS[connection.store_platform]
        upserts: dict[str, list[dict]] = {"customer": [], "order": []}
        fetches: dict[str, list[str]] = {"customer": [], "order": []}
        deletes: list[tuple[str, str]] = []
        for _row_id, topic, payload in events:
            meaning = topics.get(topic)
            sid = source_id(payload)
            if meaning is None or (meaning.action != "upsert" and sid is None):
                continue  # a topic we do not sync, or a payload naming nothing: nothing to do
            if meaning.action == "delete":
                deletes.append((meaning.entity, sid))
            elif meaning.action == "fetch":
                if sid not in fetches[meaning.entity]:
                    fetches[meaning.entity].append(sid)
            else:
                upserts[meaning.entity].append(payload)
        fetched: dict[str, list[dict]] = {"customer": [], "order": []}
        if any(fetches.values()):
            # Thin notifications (BigCommerce): read the records now, in the API's shape. One
            # that is no longer there was deleted (or archived) after the notification.
            store = self._store(job, connection)
            for entity, ids in fetches.items():
                if not ids:
                    continue
                get = store.get_customers if entity == "customer" else store.get_orders
                fetched[entity] = get(ids)
                found = {str(raw.get("id")) for raw in fetched[entity]}
                deletes.extend((entity, sid) for sid in ids if sid not in found)
        engine = (
            self._engine(job, connection)
            if any(upserts.values()) or any(fetched.values())
            else None
        )
        unreadable: dict[str, list] = {"customer": [], "order": []}
        for entity in ("customer", "order"):  # contacts first, so orders find their buyer
            for shape, payloads in (("webhook", upserts[entity]), ("api", fetched[entity])):
                if not payloads:
                    continue
                records, raw, bad = self._map(connection, shape, entity, payloads)
                unreadable[entity].extend(bad)
                self._sync(engine, entity, records, raw)

        def apply(session: Session, step: Step) -> None:
            for entity, bad in unreadable.items():
                self._dead_unreadable(session, connection, entity, bad)
            for entity, sid in deletes:
                mark_store_deleted(session, connection.id, entity, [sid])
            step.follow_ups.extend(store_delete_jobs(connection, deletes))
            self._processed(session, step, connection, row_ids, inbox.DRAIN)

        return self._finish(job, apply)

    def _processed(
        self, session: Session, step: Step, connection: Connection, row_ids: list[int], kind: str
    ) -> None:
        """Mark a drain's deliveries processed; a full batch means more may wait: drain on."""
        now = utcnow()
        if row_ids:
            for row in session.scalars(select(InboxEvent).where(InboxEvent.id.in_(row_ids))):
                row.status = InboxStatus.PROCESSED
                row.processed_at = now
        batch = self.config.crm_drain_batch if kind == inbox.CRM_DRAIN else self.config.drain_batch
        if len(row_ids) >= batch:
            step.follow_ups.append(
                {
                    "kind": kind,
                    "connection_id": connection.id,
                    "priority": jobs.PRIORITY_LIVE,
                    "dedupe_key": f"{kind}:{connection.id}",
                }
            )

    # ------------------------------------------------------------------ CRM -> store
    def _crm_drain(self, job: Job, connection: Connection) -> list[int]:
        """The CRM's stored notifications, oldest first, through :meth:`_crm_changes`."""
        with transaction(self.sessions) as session:
            rows = inbox.pending(
                session, connection.id, self.config.crm_drain_batch, connection.crm_platform
            )
            row_ids = [row.id for row in rows]
            notices = [
                notice
                for row in rows
                for notice in notifications.read(
                    row.platform, row.topic, row.payload, row.change_source
                )
            ]
        if notices:
            self._crm_changes(job, connection, notices)
        return self._finish(
            job,
            lambda session, step: self._processed(
                session, step, connection, row_ids, inbox.CRM_DRAIN
            ),
        )

    def _crm_engine(self, job: Job, connection: Connection):
        """The connection's engine and what to read of its CRM contacts; None when no field
        syncs back (two-way off, or nothing both mapped and writable)."""
        engine = self._engine(job, connection)
        if not engine.fields.enabled:
            return None, ()
        _, extra = twoway_mapping.CONTACT_READERS[connection.crm_platform]
        props = [engine.fields.prop_of(path) for path in engine.ctx.two_way.paths]
        return engine, tuple(dict.fromkeys([*props, *extra]))

    def _crm_changes(self, job: Job, connection: Connection, notices) -> None:
        """CRM notifications -> the contacts as they are now -> the stores' customers."""
        schema = crm_schema(connection.crm_platform, (connection.settings or {}).get("orders_as"))
        merges = [n for n in notices if n.action == "merged" and n.into]
        if merges:
            with transaction(self.sessions) as session:
                identity.follow_merges(
                    session, connection, schema.contact_object, [(n.ids, n.into) for n in merges]
                )
        engine, wanted = self._crm_engine(job, connection)
        if engine is None:
            return
        crm = engine.crm
        with transaction(self.sessions) as session:
            ids = {i for n in notices for i in n.ids}
            linked = links.load_by_crm(
                session, connection.id, "customer", schema.contact_object, ids
            )
            changed = [n for n in notices if n.action == "changed"]
            unread = engine.fields.unread(session, changed, linked)
        records: dict[str, dict] = {}
        fetch: list[str] = []
        for notice in changed:
            for object_id in notice.ids:
                if object_id not in linked or object_id in unread:
                    # No customer of this store is linked to it, or all that changed is our
                    # own write coming back (by the CRM's word and the ledger's) or fields
                    # that do not sync back: nothing to read.
                    continue
                if notice.record is not None and set(wanted) <= set(notice.record):
                    records[object_id] = dict(notice.record)
                elif object_id not in fetch:
                    fetch.append(object_id)
        if fetch:
            for record in crm.get_objects(schema.contact_object, fetch, list(wanted)):
                records[twoway_mapping.read_contact(connection.crm_platform, record).id] = record
        contacts = [
            twoway_mapping.read_contact(connection.crm_platform, r) for r in records.values()
        ]
        tally = engine.fields.apply_crm(contacts)
        tally.reads_saved += len(unread & set(linked))
        self._report("crm_contact", tally)

    def _report(self, entity: str, tally: Tally) -> None:
        if self.on_outcome:
            self.on_outcome(entity, Outcome(two_way=tally))

    def _crm_poll(self, job: Job, connection: Connection) -> list[int]:
        """Contacts changed in the CRM since the checkpoint (minus the overlap), a page at a
        time, through the same path as notifications: a missed webhook is caught, a repeated
        one costs nothing."""
        engine, wanted = self._crm_engine(job, connection)
        since = datetime.fromisoformat(job.payload["since"])
        newest, read, more = None, 0, False
        if engine is not None:
            records = engine.crm.changed_since(
                engine.ctx.schema.contact_object, since, list(wanted)
            )
            # Pages of crm_poll_page, up to ten in one job; a longer read goes on in a
            # follow-up job from the newest time read, and only if that time moved on, so a
            # full page at one instant (a CRM batch stamps 200 records with one second) never
            # stalls the chain. Records at that instant come again: that costs nothing.
            while True:
                page = [
                    twoway_mapping.read_contact(connection.crm_platform, record)
                    for record in itertools.islice(records, self.config.crm_poll_page)
                ]
                read += len(page)
                if page:
                    self._report("crm_contact", engine.fields.apply_crm(page))
                    newest = max(
                        [newest, *(c.poll_time for c in page if c.poll_time)], key=_time_key
                    )
                if len(page) < self.config.crm_poll_page:
                    break
                if read >= 10 * self.config.crm_poll_page and newest and newest > since:
                    more = True
                    break

        def apply(session: Session, step: Step) -> None:
            checkpoint = checkpoint_row(session, connection.id, CRM_CONTACTS, POLL)
            if newest and (
                checkpoint.position_updated_at is None or newest > checkpoint.position_updated_at
            ):
                checkpoint.position_updated_at = newest
            if more:
                step.follow_ups.append(
                    {
                        "kind": CRM_POLL,
                        "connection_id": connection.id,
                        "priority": jobs.PRIORITY_POLL,
                        "payload": {"since": newest.isoformat()},
                    }
                )
            else:
                checkpoint.next_run_at = utcnow() + timedelta(
                    seconds=self._setting(connection, "crm_poll_interval_seconds")
                )

        return self._finish(job, apply)

    # ------------------------------------------------------------------ retried polling
    def _poll(self, job: Job, connection: Connection) -> list[int]:
        entity_plural = job.payload["entity"]
        entity = entity_plural.removesuffix("s")
        cursor = job.payload.get("cursor")
        since = datetime.fromisoformat(job.payload["since"]) if job.payload.get("since") else None
        store = self._store(job, connection)
        fetch = store.customers_page if entity_plural == "customers" else store.orders_page
        page = fetch(updated_since=since, cursor=cursor)
        records, raw, bad = self._map(connection, "api", entity, page.records)
        if records:
            self._sync(self._engine(job, connection), entity, records, raw)

        def apply(session: Session, step: Step) -> None:
            self._dead_unreadable(session, connection, entity, bad)
            mark_store_deleted(session, connection.id, entity, page.removed)
            checkpoint = checkpoint_row(session, connection.id, entity_plural, POLL)
            newest = max(((r.updated_at, r.source_id) for r in records), default=None)
            if newest and (
                checkpoint.position_updated_at is None
                or newest > (checkpoint.position_updated_at, checkpoint.position_id or "")
            ):
                checkpoint.position_updated_at, checkpoint.position_id = newest
            if page.next_cursor:
                step.follow_ups.append(
                    {
                        "kind": POLL,
                        "connection_id": connection.id,
                        "priority": jobs.PRIORITY_POLL,
                        "payload": {
                            "entity": entity_plural,
                            "cursor": page.next_cursor,
                            "since": job.payload.get("since"),
                        },
                    }
                )
            else:
                # A store that cannot filter customers by modification time is read whole
                # each time (WooCommerce); that is worth doing far less often, webhooks being
                # the real-time path there.
                full_scan = entity == "customer" and not store.customers_incremental
                checkpoint.next_run_at = utcnow() + timedelta(
                    seconds=self._setting(connection, "full_scan_interval_seconds")
                    if full_scan
                    else self._setting(connection, "poll_interval_seconds")
                )

        return self._finish(job, apply)

    def _setting(self, connection: Connection, name: str) -> float:
        """A timing of the worker (poll interval, overlap, ...), as the connection overrides it."""
        return float((connection.settings or {}).get(name, getattr(self.config, name)))

    def schedule_polls(self, session: Session) -> list[int]:
        """Create the poll jobs that are due (one chain per connection and entity)."""
        created = []
        now = utcnow()
        for connection in session.scalars(
            select(Connection).where(Connection.status == ConnectionStatus.ACTIVE)
        ):
            backfill = session.scalar(
                select(Checkpoint).where(
                    Checkpoint.connection_id == connection.id,
                    Checkpoint.stream == BACKFILL,
                    Checkpoint.entity == "all",
                )
            )
            two_way = (connection.settings or {}).get("two_way", True)
            if two_way:  # a push channel must not lapse during a long backfill
                job_id = self._schedule_channels(session, connection, now)
                if job_id is not None:
                    created.append(job_id)
            if backfill is not None and backfill.state.get("phase") not in (None, "done"):
                continue  # the backfill reads everything anyway; poll once it is done
            for entity in ENTITIES:
                checkpoint = checkpoint_row(session, connection.id, entity, POLL)
                if checkpoint.next_run_at is not None and checkpoint.next_run_at > now:
                    continue
                since = None
                if checkpoint.position_updated_at is not None:
                    overlap = self._setting(connection, "poll_overlap_seconds")
                    since = (
                        checkpoint.position_updated_at - timedelta(seconds=overlap)
                    ).isoformat()
                job_id = jobs.add_job(
                    session,
                    kind=POLL,
                    connection_id=connection.id,
                    priority=jobs.PRIORITY_POLL,
                    payload={"entity": entity, "since": since},
                    dedupe_key=f"{POLL}:{connection.id}:{entity}",
                )
                # Not due again until this chain is done (the last page resets it).
                checkpoint.next_run_at = now + timedelta(
                    seconds=self._setting(connection, "poll_interval_seconds")
                )
                if job_id is not None:
                    created.append(job_id)
            if two_way:
                started = (backfill.state or {}).get("started_at") if backfill else None
                job_id = self._schedule_crm_poll(
                    session, connection, now, datetime.fromisoformat(started) if started else now
                )
                if job_id is not None:
                    created.append(job_id)
        return created

    def _schedule_channels(self, session: Session, connection: Connection, now) -> int | None:
        """Set up, or renew before it expires, the CRM's push channel (Zoho watch channels;
        Salesforce's endpoint secret)."""
        if _public_url(connection, self.config) is None or connection.crm_platform not in (
            "zoho",
            "salesforce",
        ):
            return None
        checkpoint = checkpoint_row(
            session, connection.id, channels.CHANNEL_ENTITY, channels.CHANNEL_STREAM
        )
        if checkpoint.next_run_at is not None and checkpoint.next_run_at > now:
            return None
        # Looked at again in an hour unless the job says when (a failed job retries sooner).
        checkpoint.next_run_at = now + timedelta(hours=1)
        return jobs.add_job(
            session,
            kind=CRM_CHANNELS,
            connection_id=connection.id,
            priority=jobs.PRIORITY_POLL,
            dedupe_key=f"{CRM_CHANNELS}:{connection.id}",
        )

    def _crm_channels(self, job: Job, connection: Connection) -> list[int]:
        public_url = _public_url(connection, self.config)
        assert public_url is not None
        with transaction(self.sessions) as session:
            crm = self.platforms.crm(session, connection, priority=job.priority)
        renew_at = channels.ensure_channels(
            self.sessions, self.platforms.vault, crm, connection.id, public_url
        )

        def apply(session: Session, step: Step) -> None:
            if renew_at is not None:
                checkpoint_row(
                    session, connection.id, channels.CHANNEL_ENTITY, channels.CHANNEL_STREAM
                ).next_run_at = renew_at

        return self._finish(job, apply)

    def _schedule_crm_poll(
        self, session: Session, connection: Connection, now, start: datetime
    ) -> int | None:
        """The CRM's changes since the last poll (minus the overlap). The first poll starts
        where the backfill did (``start``): a rep's edit made while it ran is read, and the
        CRM's older history, which the backfill overwrote with the store's, is not."""
        checkpoint = checkpoint_row(session, connection.id, CRM_CONTACTS, POLL)
        if checkpoint.position_updated_at is None:
            checkpoint.position_updated_at = start
        if checkpoint.next_run_at is not None and checkpoint.next_run_at > now:
            return None
        overlap = self._setting(connection, "poll_overlap_seconds")
        checkpoint.next_run_at = now + timedelta(
            seconds=self._setting(connection, "crm_poll_interval_seconds")
        )
        return jobs.add_job(
            session,
            kind=CRM_POLL,
            connection_id=connection.id,
            priority=jobs.PRIORITY_POLL,
            payload={
                "since": (checkpoint.position_updated_at - timedelta(seconds=overlap)).isoformat()
            },
            dedupe_key=f"{CRM_POLL}:{connection.id}",
        )

    # ------------------------------------------------------------------ backfill
    def _backfill(self, job: Job, connection: Connection) -> list[int]:
        """Customers, then orders, in full. Phases: ``start``; then either a bulk export
        (``wait`` until it is ready, ``read`` it in chunks: Shopify) or ``page`` through the
        list endpoints (stores without bulk exports)."""
        phase = job.payload.get("phase", "start")
        entity_plural = job.payload.get("entity", "customers")
        store = self._store(job, connection)
        base = {
            "kind": BACKFILL,
            "connection_id": connection.id,
            "priority": jobs.PRIORITY_BACKFILL,
        }

        if phase == "start":
            started_at = job.payload.get("started_at") or utcnow().isoformat()
            if store.bulk_backfill:
                operation_id = store.start_bulk(entity_plural)
                first = {"phase": "wait", "operation": operation_id}
            else:
                operation_id, first = None, {"phase": "page", "cursor": None}

            def apply(session: Session, step: Step) -> None:
                state = checkpoint_row(session, connection.id, "all", BACKFILL)
                state.state = {
                    "phase": "running",
                    "entity": entity_plural,
                    "operation": operation_id,
                    "started_at": started_at,
                    "offset": 0,
                }
                step.follow_ups.append(
                    {
                        **base,
                        "payload": {**first, "entity": entity_plural, "started_at": started_at},
                    }
                )

            return self._finish(job, apply)

        if phase == "wait":
            status = store.bulk_status(job.payload["operation"])
            if status.status in ("CREATED", "RUNNING"):
                raise _NotYet(self.config.bulk_wait_seconds)
            if status.status != "COMPLETED":
                raise PermanentError(
                    f"bulk operation {status.id} ended {status.status} ({status.error_code})",
                    platform=connection.store_platform,
                )

            def apply(session: Session, step: Step) -> None:
                step.follow_ups.append(
                    {
                        **base,
                        "payload": {**job.payload, "phase": "read", "url": status.url, "offset": 0},
                    }
                )

            return self._finish(job, apply)

        entity = entity_plural.removesuffix("s")
        records: list[Any] = []
        bad: list = []
        removed: tuple[str, ...] = ()
        if phase == "page":
            fetch = store.customers_page if entity_plural == "customers" else store.orders_page
            page = fetch(updated_since=None, cursor=job.payload.get("cursor"))
            raws, removed = page.records, page.removed
            more = {"cursor": page.next_cursor} if page.next_cursor else None
        else:  # phase == "read"
            url, offset = job.payload.get("url"), int(job.payload.get("offset") or 0)
            raws, more = [], None
            if url:  # no url: the operation found nothing
                chunk = store.read_bulk(url, offset=offset, max_roots=self.config.bulk_chunk_roots)
                raws = chunk.records
                more = {"offset": chunk.next_offset} if chunk.next_offset is not None else None
        if raws:
            records, raw, bad = self._map(connection, "api", entity, raws)
            if records:
                self._sync(self._engine(job, connection), entity, records, raw)

        def apply(session: Session, step: Step) -> None:
            self._dead_unreadable(session, connection, entity, bad)
            mark_store_deleted(session, connection.id, entity, removed)
            state = checkpoint_row(session, connection.id, "all", BACKFILL)
            if more is not None:
                state.state = {**state.state, **more}
                step.follow_ups.append({**base, "payload": {**job.payload, **more}})
                return
            poll = checkpoint_row(session, connection.id, entity_plural, POLL)
            started = datetime.fromisoformat(job.payload["started_at"])
            # Polling takes over from the moment the export began (minus its overlap window),
            # so a change made during the backfill is read again, never missed.
            if poll.position_updated_at is None or poll.position_updated_at < started:
                poll.position_updated_at, poll.position_id = started, ""
            poll.next_run_at = utcnow()
            following = ENTITIES.index(entity_plural) + 1
            if following < len(ENTITIES):
                state.state = {**state.state, "entity": ENTITIES[following], "offset": 0}
                step.follow_ups.append(
                    {
                        **base,
                        "payload": {
                            "phase": "start",
                            "entity": ENTITIES[following],
                            "started_at": job.payload["started_at"],
                        },
                    }
                )
            else:
                state.state = {**state.state, "phase": "done", "finished_at": utcnow().isoformat()}

        return self._finish(job, apply)

    # ------------------------------------------------------------------ one record, fresh
    def _refetch(self, job: Job, connection: Connection) -> list[int]:
        """Read one record from the store now and sync it (dead-letter replay)."""
        entity, store_id = job.payload["entity"], job.payload["store_id"]
        store = self._store(job, connection)
        get = store.get_customers if entity == "customer" else store.get_orders
        raw = next(iter(get([store_id])), None)
        bad: list = []
        if raw is not None:
            records, by_id, bad = self._map(connection, "api", entity, [raw])
            if records:
                self._sync(self._engine(job, connection), entity, records, by_id)

        def apply(session: Session, step: Step) -> None:
            self._dead_unreadable(session, connection, entity, bad)
            if raw is None:
                links.resolve_dead_letters(session, connection.id, entity, [store_id])

        return self._finish(job, apply)

    # ------------------------------------------------------------------ reconciler
    def reconcile(self) -> int:
        """Re-enqueue lost work and create due polls. Safe to run in every worker at once."""
        with transaction(self.sessions) as session:
            self.schedule_polls(session)
            todo = jobs.needing_enqueue(session, stale_after=self.config.stale_enqueue_seconds)
            ids = [(job.id, job.priority) for job in todo]
            jobs.mark_enqueued(session, [job_id for job_id, _ in ids])
        for job_id, priority in ids:
            self.queue.submit_quietly(job_id, priority=priority)
        return len(ids)


def _time_key(value: datetime | None) -> datetime:
    return value or datetime.min.replace(tzinfo=UTC)


def _public_url(connection: Connection, config: WorkerConfig) -> str | None:
    return (connection.settings or {}).get("public_url") or config.public_url


class _NotYet(RateLimitedError):
    """A step that must wait (a bulk export still running): not an error, not an attempt."""

    def __init__(self, delay: float) -> None:
        super().__init__("waiting", retry_after=delay)


def checkpoint_row(session: Session, connection_id: int, entity: str, stream: str) -> Checkpoint:
    row = session.scalar(
        select(Checkpoint).where(
            Checkpoint.connection_id == connection_id,
            Checkpoint.entity == entity,
            Checkpoint.stream == stream,
        )
    )
    if row is None:
        row = Checkpoint(connection_id=connection_id, entity=entity, stream=stream, state={})
        session.add(row)
        session.flush()
    return row


def mark_store_deleted(
    session: Session, connection_id: int, entity: str, store_ids: Iterable[str]
) -> None:
    """Remember that the store deleted (or archived) these records.

    Deleting or anonymising the CRM record is the connection's choice, built with the privacy
    feature; until then the link keeps the fact and the time.
    """
    ids = list(store_ids)
    if not ids:
        return
    now = utcnow()
    for link in session.scalars(
        select(Link).where(
            Link.connection_id == connection_id,
            Link.entity == entity,
            Link.store_id.in_(ids),
            Link.store_deleted_at.is_(None),
        )
    ):
        link.store_deleted_at = now


def start_backfill(session: Session, connection_id: int) -> int | None:
    """Queue a full-history backfill (customers, then orders) unless one is already waiting."""
    state = checkpoint_row(session, connection_id, "all", BACKFILL)
    state.state = {"phase": "queued"}
    return jobs.add_job(
        session,
        kind=BACKFILL,
        connection_id=connection_id,
        priority=jobs.PRIORITY_BACKFILL,
        payload={"phase": "start", "entity": "customers"},
        dedupe_key=f"{BACKFILL}:{connection_id}",
    )


def queue_refetch(session: Session, dead_letter: DeadLetter) -> int:
    """Replay a dead letter: mark it replayed and queue a fresh read of its record."""
    dead_letter.status = DeadLetterStatus.REPLAYED
    job_id = jobs.add_job(
        session,
        kind=REFETCH,
        connection_id=dead_letter.connection_id,
        priority=jobs.PRIORITY_LIVE,
        payload={"entity": dead_letter.entity, "store_id": dead_letter.store_id},
    )
    assert job_id is not None  # no dedupe key: always inserted
    return job_id


class Reconciler(threading.Thread):
    """Runs :meth:`Worker.reconcile` every ``interval`` seconds until stopped."""

    def __init__(self, worker: Worker, interval: float) -> None:
        super().__init__(name="tandem-reconciler", daemon=True)
        self.worker = worker
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.worker.reconcile()
            except Exception:
                log.exception("reconciler pass failed; trying again in %ss", self.interval)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


class InProcessWorker:
    """The same consumer and reconciler as ``flask worker``, on threads of this process.

    Used by the demo and the end-to-end tests. Huey's consumer installs signal handlers when it
    starts; a library running inside someone else's process must not keep them, so the
    previous handlers are put back.
    """

    def __init__(self, worker: Worker, threads: int = 2, reconcile_interval: float = 0.5) -> None:
        self.worker = worker
        worker.queue.bind(worker.run)
        self.consumer = worker.queue.huey.create_consumer(
            workers=threads,
            worker_type="thread",
            periodic=False,
            max_delay=0.5,
        )
        self.reconciler = Reconciler(worker, reconcile_interval)

    def start(self) -> InProcessWorker:
        saved = {
            sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }
        self.consumer.start()
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        self.reconciler.start()
        return self

    def stop(self) -> None:
        self.reconciler.stop()
        self.consumer.stop(graceful=True)
