"""Deletes and privacy against the state store, with a fake CRM connector: what the CRM gets,
which of Tandem's rows go, what an export holds, and that every action is audited without the
person's data in the audit."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy import func, select

from connectors.crm import WriteResult
from connectors.errors import ConfigurationError, PermanentError, RateLimitedError
from sync import inbox, jobs, privacy
from sync.db import transaction
from sync.models import (
    AuditEntry,
    Checkpoint,
    ConflictRecord,
    Connection,
    ConnectionStatus,
    Credential,
    DeadLetter,
    FieldState,
    InboxEvent,
    InboxStatus,
    Job,
    JobStatus,
    Link,
    OrderFact,
    PrivacyExport,
    Profile,
    ProfileMember,
    utcnow,
)
from sync.records import DEFERRED_TOPICS
from sync.secrets import Vault
from sync.worker import Worker

SHOP = "acme.myshopify.com"
ANN = "ann@example.com"
BOB = "bob@example.com"


# ---------------------------------------------------------------------- fakes and fixtures
class FakeCrm:
    """Records what the privacy job asks of the CRM; refuses updates when told to."""

    platform = "hubspot"

    def __init__(self, *, refuse_updates: bool = False, archive_fails: bool = False) -> None:
        self.archived: list[tuple[str, list[str]]] = []
        self.updated: list[tuple[str, list]] = []
        self.refuse_updates = refuse_updates
        self.archive_fails = archive_fails

    def archive_objects(self, object_type, ids):
        if self.archive_fails:
            raise PermanentError("no such object type", platform=self.platform, status=400)
        self.archived.append((object_type, list(ids)))

    def update_objects(self, object_type, inputs):
        self.updated.append((object_type, list(inputs)))
        return [
            WriteResult(key=str(i), ok=not self.refuse_updates, id=str(i), error="INVALID_EMAIL")
            for i, _ in inputs
        ]


class FakePlatforms:
    def __init__(self, crm: FakeCrm) -> None:
        self.connector = crm

    def crm(self, session, connection, *, priority=0):
        return self.connector


class FakeQueue:
    def __init__(self) -> None:
        self.submitted: list = []

    def submit_quietly(self, job_id, **kwargs) -> None:
        self.submitted.append(job_id)


@pytest.fixture
def crm():
    return FakeCrm()


@pytest.fixture
def handler(sessions, crm):
    return privacy.PrivacyJobs(sessions, FakePlatforms(crm))


def make_connection(
    sessions,
    account: str = SHOP,
    *,
    platform: str = "shopify",
    crm_platform: str = "hubspot",
    crm_account: str = "1",
    **settings,
) -> int:
    with transaction(sessions) as session:
        connection = Connection(
            name=account,
            store_platform=platform,
            store_account=account,
            crm_platform=crm_platform,
            crm_account=crm_account,
            settings=settings,
        )
        session.add(connection)
        session.flush()
        return connection.id


_deliveries = itertools.count(1)


def deliver(sessions, topic: str, payload: dict, *, account=SHOP, platform="shopify"):
    n = next(_deliveries)
    with transaction(sessions) as session:
        return inbox.record(
            session,
            platform=platform,
            delivery_id=f"d-{n}",
            account=account,
            topic=topic,
            payload=payload,
            deferred_topics=DEFERRED_TOPICS[platform],
        )


def seed_person(
    sessions,
    connection_id: int,
    *,
    customer_id: str = "7",
    email: str = ANN,
    crm_id: str = "101",
    orders=("1001", "1002"),
    profile_email: str | None = None,
) -> int:
    """Everything Tandem can hold about one person in one connection; returns the profile id."""
    now = utcnow()
    with transaction(sessions) as s:
        s.add_all(
            [
                Link(
                    connection_id=connection_id,
                    entity="customer",
                    store_id=customer_id,
                    crm_object="contacts",
                    crm_id=crm_id,
                    last_written={"email": email, "firstname": "Ann"},
                ),
                Link(
                    connection_id=connection_id,
                    entity="email",
                    store_id=email,
                    crm_object="contacts",
                    crm_id=crm_id,
                ),
                *(
                    Link(
                        connection_id=connection_id,
                        entity="order",
                        store_id=o,
                        crm_object="deals",
                        crm_id=f"d{o}",
                    )
                    for o in orders
                ),
                FieldState(
                    connection_id=connection_id,
                    entity="customer",
                    store_id=customer_id,
                    field="first_name",
                    agreed={"v": "Ann"},
                    store_value={"v": "Ann"},
                ),
                FieldState(
                    connection_id=connection_id,
                    entity="customer",
                    store_id=customer_id,
                    field="email",
                    store_value={"v": email},
                ),
                ConflictRecord(
                    connection_id=connection_id,
                    entity="customer",
                    store_id=customer_id,
                    crm_id=crm_id,
                    field="first_name",
                    store_value={"v": "Ann"},
                    crm_value={"v": "Anne"},
                    winner="store",
                    policy="store",
                    reason="store wins",
                ),
                DeadLetter(
                    connection_id=connection_id,
                    entity="customer",
                    store_id=customer_id,
                    platform="hubspot",
                    reason="refused",
                    record={"id": int(customer_id), "email": email},
                ),
                DeadLetter(
                    connection_id=connection_id,
                    entity="order",
                    store_id=str(int(orders[0]) + 2),  # found by its buyer, not by the request
                    platform="hubspot",
                    reason="buyer refused",
                    details={"buyer_email": email},
                    record={"id": int(orders[0]) + 2, "email": email},
                ),
                PrivacyExport(
                    connection_id=connection_id,
                    request_id=f"old-{customer_id}",
                    subject=f"customer:{customer_id}",
                    content={"email": email},
                ),
            ]
        )
        profile = s.scalar(
            select(Profile).where(Profile.email == (profile_email or email))
        ) or Profile(crm_platform="hubspot", crm_account="1", email=profile_email or email)
        profile.crm_id = crm_id
        s.add(profile)
        s.flush()
        s.add(
            ProfileMember(profile_id=profile.id, connection_id=connection_id, store_id=customer_id)
        )
        for o in orders:
            s.add(
                OrderFact(
                    connection_id=connection_id,
                    store_id=o,
                    profile_id=profile.id,
                    currency="EUR",
                    total="10.00",
                    refunded="0",
                    placed_at=now,
                )
            )
        return profile.id


def seed_inbox(
    sessions, connection_id: int, *, customer_id="7", email=ANN, order="1001", crm_id=101
):
    """A customer update, an order of theirs, and a CRM delivery about their contact."""
    with transaction(sessions) as s:
        for topic, payload, platform in (
            ("customers/update", {"id": int(customer_id), "email": email}, "shopify"),
            (
                "orders/create",
                {"id": int(order), "email": email, "customer": {"id": int(customer_id)}},
                "shopify",
            ),
            (
                "contact.propertyChange",
                {"objectId": crm_id, "propertyName": "firstname"},
                "hubspot",
            ),
        ):
            s.add(
                InboxEvent(
                    platform=platform,
                    delivery_id=f"{platform}-{topic}-{customer_id}-{connection_id}",
                    account=SHOP,
                    connection_id=connection_id,
                    topic=topic,
                    payload=payload,
                    status=InboxStatus.PROCESSED,
                )
            )


def run_privacy_jobs(sessions, handler) -> int:
    """Claim and run every due privacy job, as the worker would; returns how many ran."""
    ran = 0
    while True:
        with transaction(sessions) as s:
            job = s.scalar(
                select(Job)
                .where(
                    Job.kind == privacy.JOB,
                    Job.status == JobStatus.PENDING,
                    Job.run_after <= utcnow(),
                )
                .order_by(Job.id)
            )
            if job is None:
                return ran
            claimed = jobs.claim(s, job.id, 60)
        assert claimed is not None
        handler.run(claimed, None)
        ran += 1


def count(sessions, model, *where) -> int:
    with transaction(sessions) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def audits(sessions, connection_id=None) -> list[AuditEntry]:
    with transaction(sessions) as s:
        stmt = select(AuditEntry).order_by(AuditEntry.id)
        if connection_id is not None:
            stmt = stmt.where(AuditEntry.connection_id == connection_id)
        return list(s.scalars(stmt))


def payloads(sessions, connection_id) -> dict[str, dict]:
    with transaction(sessions) as s:
        return {
            r.delivery_id: r.payload
            for r in s.scalars(select(InboxEvent).where(InboxEvent.connection_id == connection_id))
        }


def person_rows(sessions, connection_id, customer_id="7", email=ANN) -> dict[str, int]:
    c = connection_id
    return {
        "links": count(
            sessions,
            Link,
            Link.connection_id == c,
            Link.entity.in_(("customer", "email")),
            Link.store_id.in_((customer_id, email)),
        ),
        "ledger": count(sessions, FieldState, FieldState.connection_id == c),
        "conflicts": count(sessions, ConflictRecord, ConflictRecord.connection_id == c),
        "dead_letters": count(sessions, DeadLetter, DeadLetter.connection_id == c),
        "members": count(sessions, ProfileMember, ProfileMember.connection_id == c),
        "order_facts": count(sessions, OrderFact, OrderFact.connection_id == c),
        "exports": count(sessions, PrivacyExport, PrivacyExport.connection_id == c),
    }


def redact_payload(customer_id=7, email=ANN, orders=(1001,)):
    return {
        "shop_id": 1,
        "shop_domain": SHOP,
        "customer": {"id": customer_id, "email": email, "phone": "+15550100"},
        "orders_to_redact": list(orders),
    }


# ---------------------------------------------------------------------- the inbox
def test_compliance_deliveries_get_their_privacy_job_in_the_same_transaction(sessions):
    cid = make_connection(sessions)
    recorded = deliver(sessions, "customers/redact", redact_payload())
    assert recorded.job_id is not None and not recorded.duplicate
    with transaction(sessions) as s:
        row = s.scalar(select(InboxEvent))
        job = s.get(Job, recorded.job_id)
        assert row.status == InboxStatus.DEFERRED  # the drain leaves it alone
        assert job.kind == privacy.JOB and job.connection_id is None
        assert job.payload == {
            "action": "customer_redact",
            "connection_id": cid,
            "inbox_id": row.id,
            "actor": "shopify webhook",
        }
        assert ANN not in json.dumps(job.payload)
    with transaction(sessions) as s:  # a redelivery is a no-op: no second job
        again = inbox.record(
            session=s,
            platform="shopify",
            delivery_id=row.delivery_id,
            account=SHOP,
            topic="customers/redact",
            payload=redact_payload(),
            deferred_topics=DEFERRED_TOPICS["shopify"],
        )
    assert again.duplicate and again.job_id is None
    stranger = deliver(sessions, "shop/redact", {"shop_domain": "x"}, account="x.myshopify.com")
    assert not stranger.routable and stranger.job_id is None
    with transaction(sessions) as s:
        s.get(Connection, cid).status = ConnectionStatus.DISCONNECTED
    # shop/redact comes 48 h after the uninstall that disconnected the connection
    assert deliver(sessions, "shop/redact", {"shop_domain": SHOP}).job_id is not None
    assert count(sessions, Job, Job.kind == privacy.JOB) == 2
    assert count(sessions, Job, Job.kind == inbox.DRAIN) == 0


# ---------------------------------------------------------------------- erasure
def test_customer_redact_with_delete_archives_the_contact_and_purges_the_person(
    sessions, handler, crm
):
    cid = make_connection(sessions, on_customer_delete="delete")
    seed_person(sessions, cid)
    seed_inbox(sessions, cid)
    seed_person(sessions, cid, customer_id="8", email=BOB, crm_id="202", orders=("2001",))
    seed_inbox(sessions, cid, customer_id="8", email=BOB, order="2001", crm_id=202)
    before_bob = person_rows(sessions, cid, "8", BOB)
    deliver(sessions, "customers/redact", redact_payload())

    assert run_privacy_jobs(sessions, handler) == 1

    assert crm.archived == [("contacts", ["101"])]
    with transaction(sessions) as s:
        assert not s.scalars(
            select(Link).where(Link.store_id.in_(("7", ANN)), Link.entity != "order")
        ).all()
        assert not s.scalars(select(FieldState).where(FieldState.store_id == "7")).all()
        assert not s.scalars(select(ConflictRecord).where(ConflictRecord.store_id == "7")).all()
        assert not s.scalars(select(ProfileMember).where(ProfileMember.store_id == "7")).all()
        assert s.scalar(select(Profile).where(Profile.email == ANN)) is None
        assert {f.store_id for f in s.scalars(select(OrderFact))} == {"2001"}
        letters = {(d.entity, d.store_id) for d in s.scalars(select(DeadLetter))}
        assert letters == {("customer", "8"), ("order", "2003")}  # Bob's
        assert not s.scalars(
            select(PrivacyExport).where(PrivacyExport.subject == "customer:7")
        ).all()
        request = s.scalar(select(InboxEvent).where(InboxEvent.topic == "customers/redact"))
        assert request.payload == {"redacted": True}
        assert request.status == InboxStatus.PROCESSED
    stored = payloads(sessions, cid)
    for key in ("customers/update-7", "orders/create-7"):
        assert stored[f"shopify-{key}-{cid}"] == {"redacted": True}
    assert stored[f"hubspot-contact.propertyChange-7-{cid}"] == {"redacted": True}
    assert stored[f"shopify-customers/update-8-{cid}"]["email"] == BOB  # another person: kept
    bob_after = person_rows(sessions, cid, "8", BOB)
    assert bob_after["links"] == before_bob["links"]
    assert bob_after["members"] == 1 and bob_after["order_facts"] == 1

    (entry,) = audits(sessions, cid)
    assert (entry.action, entry.subject, entry.actor) == (
        "customer.redact",
        "customer:7",
        "shopify webhook",
    )
    assert entry.details["crm"] == {"action": "delete", "result": "archived"}
    assert entry.details["removed"] == {
        "links": 2,
        "ledger": 2,
        "conflicts": 1,
        "order_facts": 2,
        "profile_members": 1,
        "profiles": 1,
        "exports": 1,
        "dead_letters": 2,
    }
    assert entry.details["inbox_redacted"] == 4  # update, order, CRM delivery, the request
    text = json.dumps(entry.details)
    assert ANN not in text and "Ann" not in text and "+1555" not in text


def test_keep_still_purges_tandems_copies_and_leaves_the_crm_alone(sessions, handler, crm):
    cid = make_connection(sessions)  # on_customer_delete defaults to keep
    seed_person(sessions, cid)
    seed_inbox(sessions, cid)
    deliver(sessions, "customers/redact", redact_payload())
    run_privacy_jobs(sessions, handler)
    assert crm.archived == [] and crm.updated == []
    rows = person_rows(sessions, cid)
    assert rows == dict.fromkeys(rows, 0)
    (entry,) = audits(sessions, cid)
    assert entry.details["crm"] == {"action": "keep", "result": "kept (setting)"}


def test_anonymise_overwrites_the_mapped_personal_fields(sessions, handler, crm):
    cid = make_connection(sessions, on_customer_delete="anonymise")
    seed_person(sessions, cid)
    deliver(sessions, "customers/redact", redact_payload())
    run_privacy_jobs(sessions, handler)
    assert crm.archived == []
    ((object_type, [(contact_id, props)]),) = crm.updated
    assert (object_type, contact_id) == ("contacts", "101")
    assert props["email"].startswith("redacted-") and props["email"].endswith("@redacted.invalid")
    assert ANN not in props["email"]
    assert props["firstname"] == props["lastname"] == props["phone"] == props["city"] == ""
    assert props["tandem_customer_tags"] == ""
    assert props["tandem_email_consent"] == "false"
    (entry,) = audits(sessions, cid)
    assert entry.details["crm"]["result"] == "anonymised"
    assert "email" in entry.details["crm"]["fields"]  # names of fields, not values


def test_anonymise_refused_by_the_crm_archives_instead(sessions, crm):
    refusing = FakeCrm(refuse_updates=True)
    handler = privacy.PrivacyJobs(sessions, FakePlatforms(refusing))
    cid = make_connection(sessions, on_customer_delete="anonymise")
    seed_person(sessions, cid)
    deliver(sessions, "customers/redact", redact_payload())
    run_privacy_jobs(sessions, handler)
    assert refusing.archived == [("contacts", ["101"])]
    (entry,) = audits(sessions, cid)
    assert entry.details["crm"]["result"] == "archived (anonymising refused)"


def test_anonymised_fields_per_crm_replace_the_email_and_the_contact_key():
    from mapping import crm_schema

    for platform, email_field, required, key in (
        ("zoho", "Email", "Last_Name", None),
        ("salesforce", "Email", "LastName", "Tandem_Contact_Key__c"),
    ):
        schema = crm_schema(platform)
        props = privacy.anonymised_fields(schema, schema.contact_fields, key_field=key)
        assert props[email_field].endswith("@redacted.invalid")
        assert props[required] == "[redacted]"  # the CRM refuses a contact without it
        assert props["Phone"] is None  # JSON null clears the field
        if key:
            assert props[key] == props[email_field]


def test_a_contact_another_store_still_links_is_kept(sessions, handler, crm):
    cid = make_connection(sessions, on_customer_delete="delete")
    other = make_connection(sessions, "other.myshopify.com")
    profile_id = seed_person(sessions, cid)
    with transaction(sessions) as s:
        s.add(ProfileMember(profile_id=profile_id, connection_id=other, store_id="55"))
    deliver(sessions, "customers/redact", redact_payload())
    run_privacy_jobs(sessions, handler)
    assert crm.archived == [] and crm.updated == []
    with transaction(sessions) as s:
        assert s.get(Profile, profile_id) is not None
        members = s.scalars(select(ProfileMember)).all()
        assert [(m.connection_id, m.store_id) for m in members] == [(other, "55")]
    (entry,) = audits(sessions, cid)
    assert entry.details["crm"]["result"] == "kept"
    assert "1 other connection" in entry.details["crm"]["reason"]
    assert entry.details["removed"]["links"] == 2  # this connection's links did go


def test_a_contact_shared_through_links_of_another_connection_is_kept(sessions, handler, crm):
    cid = make_connection(sessions, on_customer_delete="anonymise")
    other = make_connection(sessions, "other.myshopify.com")
    seed_person(sessions, cid)
    with transaction(sessions) as s:
        s.add(
            Link(
                connection_id=other,
                entity="customer",
                store_id="55",
                crm_object="contacts",
                crm_id="101",
            )
        )
    deliver(sessions, "customers/redact", redact_payload())
    run_privacy_jobs(sessions, handler)
    assert crm.updated == []
    assert count(sessions, Link, Link.connection_id == other) == 1


def test_a_crm_that_refuses_is_audited_and_the_copies_still_go(sessions):
    broken = FakeCrm(archive_fails=True)
    handler = privacy.PrivacyJobs(sessions, FakePlatforms(broken))
    cid = make_connection(sessions, on_customer_delete="delete")
    seed_person(sessions, cid)
    deliver(sessions, "customers/redact", redact_payload())
    run_privacy_jobs(sessions, handler)
    (entry,) = audits(sessions, cid)
    assert entry.details["crm"] == {
        "action": "delete",
        "result": "failed",
        "error": "PermanentError",
        "contact_id": "101",  # for the operator to finish by hand
    }
    assert person_rows(sessions, cid)["links"] == 0


def test_store_customer_delete_goes_through_the_drain(sessions, crm):
    cid = make_connection(sessions, on_customer_delete="delete")
    seed_person(sessions, cid)
    queue = FakeQueue()
    worker = Worker(sessions, FakePlatforms(crm), queue)
    recorded = deliver(sessions, "customers/delete", {"id": 7})
    worker.run(recorded.job_id)  # the drain: queues the privacy job as its follow-up
    with transaction(sessions) as s:
        job = s.scalar(select(Job).where(Job.kind == privacy.JOB))
        assert job.payload == {
            "action": "customer_deleted",
            "connection_id": cid,
            "customer_id": "7",
            "actor": "shopify webhook",
        }
    assert queue.submitted == [job.id]
    worker.run(job.id)
    assert crm.archived == [("contacts", ["101"])]  # the email came from the link
    assert person_rows(sessions, cid)["links"] == 0
    with transaction(sessions) as s:
        assert s.get(Job, job.id).status == JobStatus.DONE
    (entry,) = audits(sessions, cid)
    assert entry.action == "customer.delete"


def test_a_customer_job_waits_while_the_connection_is_busy(sessions, handler):
    cid = make_connection(sessions)
    with transaction(sessions) as s:
        busy = jobs.add_job(s, kind="inbox_drain", connection_id=cid)
        jobs.claim(s, busy, 60)
        job_id = privacy.forget_job(s, cid, "7")
        job = jobs.claim(s, job_id, 60)
    with pytest.raises(RateLimitedError):
        handler.run(job, None)


def test_scans_read_the_inbox_in_chunks(sessions, handler, monkeypatch):
    monkeypatch.setattr(privacy, "CHUNK", 3)
    cid = make_connection(sessions)
    with transaction(sessions) as s:
        for i in range(10):
            s.add(
                InboxEvent(
                    platform="shopify",
                    delivery_id=f"x{i}",
                    account=SHOP,
                    connection_id=cid,
                    topic="orders/updated",
                    payload={"id": 5000 + i, "email": ANN if i % 2 else BOB},
                    status=InboxStatus.PROCESSED,
                )
            )
        privacy.forget_job(s, cid, "7", email=ANN)
    run_privacy_jobs(sessions, handler)
    stored = payloads(sessions, cid)
    assert sum(p == {"redacted": True} for p in stored.values()) == 5
    assert all(p.get("email") == BOB for p in stored.values() if p != {"redacted": True})
    with transaction(sessions) as s:  # the operator's email hint does not stay in the job
        assert "email" not in s.scalar(select(Job).where(Job.kind == privacy.JOB)).payload
    (entry,) = audits(sessions, cid)
    assert (entry.action, entry.actor, entry.details["orders"]) == (
        "customer.forget",
        "operator",
        5,
    )


# ---------------------------------------------------------------------- exports
def test_data_request_exports_what_tandem_holds(sessions, handler):
    cid = make_connection(sessions)
    other = make_connection(sessions, "other.myshopify.com")
    profile_id = seed_person(sessions, cid)
    seed_inbox(sessions, cid)
    with transaction(sessions) as s:  # another store's member of the same person: not exported
        s.add(ProfileMember(profile_id=profile_id, connection_id=other, store_id="55"))
    body = {
        "shop_id": 1,
        "shop_domain": SHOP,
        "customer": {"id": 7, "email": ANN, "phone": None},
        "orders_requested": [1001, 1002],
        "data_request": {"id": 9999},
    }
    deliver(sessions, "customers/data_request", body)
    run_privacy_jobs(sessions, handler)

    with transaction(sessions) as s:
        (export,) = s.scalars(select(PrivacyExport).where(PrivacyExport.request_id == "9999"))
        content = export.content
    assert export.subject == "customer:7"
    assert content["person"] == {"customer_id": "7", "email": ANN}
    assert {(link["entity"], link["store_id"]) for link in content["links"]} == {
        ("customer", "7"),
        ("email", ANN),
        ("order", "1001"),
        ("order", "1002"),
    }
    assert {row["field"] for row in content["ledger"]} == {"first_name", "email"}
    assert content["profile"]["email"] == ANN
    assert [m["store_id"] for m in content["profile"]["members"]] == ["7"]
    assert {f["store_id"] for f in content["order_facts"]} == {"1001", "1002"}
    assert len(content["conflicts"]) == 1
    assert {(d["entity"], d["store_id"]) for d in content["dead_letters"]} == {
        ("customer", "7"),
        ("order", "1003"),
    }
    topics = sorted(row["topic"] for row in content["inbox"])
    assert topics == [
        "contact.propertyChange",
        "customers/data_request",
        "customers/update",
        "orders/create",
    ]
    (entry,) = audits(sessions, cid)
    assert entry.action == "customer.export" and entry.details["export_id"] == export.id
    assert ANN not in json.dumps(entry.details)
    # The request stays in the inbox (it is the record of the request), processed.
    with transaction(sessions) as s:
        row = s.scalar(select(InboxEvent).where(InboxEvent.topic == "customers/data_request"))
        assert row.status == InboxStatus.PROCESSED and row.payload == body


# ---------------------------------------------------------------------- uninstall and purge
def _vault() -> Vault:
    return Vault(MultiFernet([Fernet(Fernet.generate_key())]))


def _with_credentials(sessions, cid):
    vault = _vault()
    with transaction(sessions) as s:
        vault.put(s, cid, "store", "access_token", "shpat_secret_000000")
        vault.put(s, cid, "store", "webhook_secret", "hook-secret-000000")
        vault.put(s, cid, "crm", "access_token", "pat-na1-000000")


def test_shopify_uninstall_disconnects_cancels_and_forgets_the_store_token(sessions, handler):
    cid = make_connection(sessions)
    _with_credentials(sessions, cid)
    with transaction(sessions) as s:
        waiting = jobs.add_job(s, kind="poll", connection_id=cid, dedupe_key=f"poll:{cid}")
    deliver(sessions, "app/uninstalled", {"id": 1, "myshopify_domain": SHOP})
    run_privacy_jobs(sessions, handler)
    with transaction(sessions) as s:
        assert s.get(Connection, cid).status == ConnectionStatus.DISCONNECTED
        cancelled = s.get(Job, waiting)
        assert cancelled.status == JobStatus.FAILED and "uninstalled" in cancelled.last_error
        assert cancelled.dedupe_key is None
        sides = {(c.side, c.kind) for c in s.scalars(select(Credential))}
        assert sides == {("crm", "access_token")}
        # Shopify sends shop/redact itself: no purge of ours is scheduled.
        assert s.scalar(select(Job).where(Job.kind == privacy.JOB, Job.status == "pending")) is None
    (entry,) = audits(sessions, cid)
    assert (entry.action, entry.subject) == ("app.uninstall", f"shop:{SHOP}")
    assert entry.details["jobs_cancelled"] == 1
    assert entry.details["store_credentials_deleted"] == 2
    assert "shop/redact" in entry.details["purge"]


def test_bigcommerce_uninstall_schedules_the_purge_after_the_retention_window(sessions, handler):
    cid = make_connection(
        sessions, "abc123", platform="bigcommerce", purge_after_uninstall_hours=12
    )
    seed_person(sessions, cid)
    _with_credentials(sessions, cid)
    deliver(
        sessions,
        "store/app/uninstalled",
        {"scope": "store/app/uninstalled", "data": {}, "producer": "stores/abc123"},
        account="abc123",
        platform="bigcommerce",
    )
    assert run_privacy_jobs(sessions, handler) == 1
    with transaction(sessions) as s:
        purge = s.scalar(select(Job).where(Job.kind == privacy.JOB, Job.status == "pending"))
        assert purge.payload["action"] == "shop_purge"
        due = purge.run_after - utcnow()
        assert timedelta(hours=11, minutes=59) < due <= timedelta(hours=12)
    assert run_privacy_jobs(sessions, handler) == 0  # not yet due
    with transaction(sessions) as s:
        s.get(Job, purge.id).run_after = utcnow()  # what the clock would do in 12 hours
    assert run_privacy_jobs(sessions, handler) == 1
    with transaction(sessions) as s:
        assert s.get(Connection, cid) is None
    for table in privacy.connection_tables():
        with transaction(sessions) as s:
            left = s.scalar(
                select(func.count()).select_from(table).where(table.c.connection_id == cid)
            )
        assert left == 0, table.name
    assert [a.action for a in audits(sessions, cid)] == ["app.uninstall", "shop.purge"]


def test_a_scheduled_purge_of_a_reconnected_store_is_skipped(sessions, handler):
    cid = make_connection(sessions, "abc123", platform="bigcommerce")
    with transaction(sessions) as s:
        s.add(
            Job(
                kind=privacy.JOB,
                payload={"action": "shop_purge", "connection_id": cid, "actor": "tandem"},
                run_after=utcnow(),
            )
        )
    run_privacy_jobs(sessions, handler)
    with transaction(sessions) as s:
        assert s.get(Connection, cid) is not None
    (entry,) = audits(sessions, cid)
    assert entry.details == {"skipped": "the connection is active again"}


def test_shop_redact_deletes_every_row_of_the_shop_and_nothing_of_another(sessions, handler):
    cid = make_connection(sessions)
    other = make_connection(sessions, "other.myshopify.com")
    for connection_id in (cid, other):
        seed_person(sessions, connection_id, profile_email=f"{connection_id}@example.com")
        seed_inbox(sessions, connection_id)
        _with_credentials(sessions, connection_id)
        with transaction(sessions) as s:
            s.add(Checkpoint(connection_id=connection_id, entity="customers", stream="poll"))
            jobs.add_job(s, kind="poll", connection_id=connection_id)
    with transaction(sessions) as s:  # a delivery from before the shop was connected
        s.add(
            InboxEvent(
                platform="shopify",
                delivery_id="early",
                account=SHOP,
                topic="customers/create",
                payload={"id": 1, "email": ANN},
                status=InboxStatus.UNROUTABLE,
            )
        )
    deliver(sessions, "app/uninstalled", {"id": 1})
    deliver(sessions, "shop/redact", {"shop_id": 1, "shop_domain": SHOP})
    assert run_privacy_jobs(sessions, handler) == 2

    tables = privacy.connection_tables()
    seeded = {
        "credentials",
        "checkpoints",
        "links",
        "inbox",
        "jobs",
        "dead_letters",
        "field_ledger",
        "conflicts",
        "profile_members",
        "order_facts",
        "privacy_exports",
    }
    assert {t.name for t in tables} >= {*seeded, "field_map_overrides"}
    with transaction(sessions) as s:
        assert s.get(Connection, cid) is None
        for table in tables:
            mine = select(func.count()).select_from(table).where(table.c.connection_id == cid)
            theirs = select(func.count()).select_from(table).where(table.c.connection_id == other)
            assert s.scalar(mine) == 0, table.name
            if table.name in seeded:
                assert s.scalar(theirs) > 0, table.name
        assert s.scalar(select(InboxEvent).where(InboxEvent.delivery_id == "early")) is None
        assert s.scalar(select(Profile).where(Profile.email == f"{cid}@example.com")) is None
        assert s.scalar(select(Profile).where(Profile.email == f"{other}@example.com"))
    entries = audits(sessions, cid)  # the audit outlives the connection
    assert [e.action for e in entries] == ["app.uninstall", "shop.purge"]
    assert entries[1].details["removed"]["links"] == 4
    assert ANN not in json.dumps(entries[1].details)


def test_a_job_of_a_purged_connection_finishes_quietly(sessions, handler):
    with transaction(sessions) as s:
        job_id = jobs.add_job(
            s,
            kind=privacy.JOB,
            connection_id=None,
            payload={"action": "forget", "connection_id": 999},
        )
        job = jobs.claim(s, job_id, 60)
    assert handler.run(job, None) == []
    with transaction(sessions) as s:
        assert s.get(Job, job_id).status == JobStatus.DONE


# ---------------------------------------------------------------------- the CLI
@pytest.fixture
def app(tmp_path):
    from app import create_app, tandem_of

    app = create_app(
        {
            "database_url": f"sqlite:///{tmp_path / 't.db'}",
            "var_dir": tmp_path,
            "encryption_keys": Fernet.generate_key().decode(),
        }
    )
    assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    yield app
    tandem_of(app).close()


def test_cli_configures_forgets_exports_and_lists_the_audit(app):
    from app import tandem_of

    sessions = tandem_of(app).sessions
    runner = app.test_cli_runner()
    cid = make_connection(sessions)
    seed_person(sessions, cid)

    shown = runner.invoke(args=["privacy", "configure", "--connection", str(cid)])
    assert shown.exit_code == 0, shown.output
    assert "on_customer_delete=keep" in shown.output and "hours=48" in shown.output
    bad = runner.invoke(
        args=["privacy", "configure", "--connection", str(cid), "--on-customer-delete", "burn"]
    )
    assert bad.exit_code != 0
    ok = runner.invoke(
        args=["privacy", "configure", "--connection", str(cid), "--on-customer-delete", "delete"]
    )
    assert ok.exit_code == 0 and "on_customer_delete=delete" in ok.output
    missing = runner.invoke(args=["privacy", "forget", "--connection", "99", "--customer", "7"])
    assert missing.exit_code != 0 and "no connection" in missing.output

    deliver(
        sessions,
        "customers/data_request",
        {"customer": {"id": 7, "email": ANN}, "orders_requested": [], "data_request": {"id": 5}},
    )
    crm = FakeCrm()
    handler = privacy.PrivacyJobs(sessions, FakePlatforms(crm))
    run_privacy_jobs(sessions, handler)
    listed = runner.invoke(args=["privacy", "exports", "--connection", str(cid)])
    assert listed.exit_code == 0 and "request 5\tcustomer:7" in listed.output
    (line,) = [line for line in listed.output.splitlines() if "request 5\t" in line]
    export_id = line.split("\t", 1)[0]
    detail = runner.invoke(args=["privacy", "export-show", export_id])
    assert detail.exit_code == 0 and json.loads(detail.output)["person"]["email"] == ANN
    assert runner.invoke(args=["privacy", "export-show", "999"]).exit_code != 0

    forget = runner.invoke(
        args=["privacy", "forget", "--connection", str(cid), "--customer", "7", "--crm", "keep"]
    )
    assert forget.exit_code == 0 and "queued (job" in forget.output, forget.output
    run_privacy_jobs(sessions, handler)
    assert crm.archived == []  # --crm keep overrides the connection's "delete"
    assert count(sessions, PrivacyExport) == 0  # the person's export went with them

    log = runner.invoke(args=["audit", "list", "--connection", str(cid)])
    assert log.exit_code == 0
    actions = [line.split("\t")[3] for line in log.output.strip().splitlines()]
    assert actions == ["customer.forget", "customer.export", "privacy.settings"]
    assert ANN not in log.output
    assert len(runner.invoke(args=["audit", "list", "--limit", "1"]).output.splitlines()) == 1


def test_settings_are_checked():
    assert privacy.customer_delete_setting({}) == "keep"
    assert privacy.retention_hours({}) == 48
    with pytest.raises(ConfigurationError):
        privacy.customer_delete_setting({"on_customer_delete": "burn"})
    with pytest.raises(ConfigurationError):
        privacy.retention_hours({"purge_after_uninstall_hours": 0})


def test_every_privacy_topic_names_an_action_the_job_knows():
    from sync.records import PRIVACY_TOPICS

    actions = {action for topics in PRIVACY_TOPICS.values() for action in topics.values()}
    assert actions <= set(privacy.AUDIT_ACTIONS)
    assert {t for topics in PRIVACY_TOPICS.values() for t in topics} == {
        t for topics in DEFERRED_TOPICS.values() for t in topics
    }
