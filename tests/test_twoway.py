"""CRM -> store through FieldSync, with the real state store and fake connectors that record
every call: what is written back, what is an echo, what becomes a dead letter."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from connectors.crm import WriteResult
from mapping import hubspot as hubspot_mapping
from mapping.twoway import read_contact, two_way_paths
from sync import identity, links
from sync.db import transaction
from sync.ledger import policies
from sync.models import ConflictRecord, Connection, DeadLetter
from sync.twoway import FieldSync, TwoWaySettings
from tests.conftest import add_connection

FIELDS = hubspot_mapping.SCHEMA.contact_fields
WRITABLE = frozenset(
    {"first_name", "last_name", "phone", "tags", "consent.email", "note"}
    | {f"default_address.{p}" for p in ("line1", "line2", "city", "postal_code", "country_code")}
)


class FakeStore:
    platform = "shopify"
    writable_fields = WRITABLE

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.calls: list[list[tuple[str, dict]]] = []
        self.refuse = refuse

    def write_customers(self, patches):
        self.calls.append([(sid, dict(p)) for sid, p in patches])
        return [
            WriteResult(
                key=sid,
                ok=sid not in self.refuse,
                id=sid,
                error="no" if sid in self.refuse else None,
            )
            for sid, _ in patches
        ]


class FakeCrm:
    platform = "hubspot"

    def __init__(self) -> None:
        self.calls: list[list[tuple[str, dict]]] = []

    def update_objects(self, object_type, inputs):
        self.calls.append([(i, dict(p)) for i, p in inputs])
        return [WriteResult(key=i, ok=True, id=i) for i, _ in inputs]


def at(minute: int) -> datetime:
    return datetime(2026, 3, 1, 12, minute, tzinfo=UTC)


def contact(crm_id: str, minute: int, **props) -> object:
    stamp = at(minute).isoformat().replace("+00:00", "Z")
    return read_contact(
        "hubspot", {"id": crm_id, "properties": {**props, "lastmodifieddate": stamp}}
    )


def link(sessions, cid, store_id, crm_id, **written):
    with transaction(sessions) as session:
        links.save(
            session,
            cid,
            "customer",
            store_id,
            crm_object="contacts",
            crm_id=crm_id,
            written={"firstname": "Ann", "lastname": "Lee", **written},
            store_updated_at=at(0),
        )


def field_sync(sessions, cid, store, crm, policy="latest"):
    paths = two_way_paths(FIELDS, WRITABLE, None)
    settings = TwoWaySettings(paths=paths, policies=policies({"default_policy": policy}, paths))
    return FieldSync(sessions, cid, hubspot_mapping.SCHEMA, FIELDS, settings, crm=crm, store=store)


@pytest.fixture
def cid(sessions):
    return add_connection(sessions)


def test_a_rep_edit_is_written_back_once_and_its_repeat_costs_nothing(sessions, cid):
    link(sessions, cid, "7", "70")
    store, crm = FakeStore(), FakeCrm()
    sync = field_sync(sessions, cid, store, crm)
    tally = sync.apply_crm([contact("70", 5, firstname="Bob", lastname="Lee")])
    assert store.calls == [[("7", {"first_name": "Bob"})]] and tally.store_writes == 1
    again = field_sync(sessions, cid, store, crm).apply_crm(
        [contact("70", 5, firstname="Bob", lastname="Lee")]
    )
    assert len(store.calls) == 1 and again.store_writes == 0
    older = field_sync(sessions, cid, store, crm).apply_crm(
        [contact("70", 2, firstname="Old", lastname="Lee")]
    )
    assert len(store.calls) == 1 and older.stale == 2  # both fields: older than what we have
    assert crm.calls == []


def test_a_value_the_store_cannot_take_is_that_records_dead_letter(sessions, cid):
    link(sessions, cid, "7", "70", tandem_email_consent="subscribed")
    link(sessions, cid, "8", "80")
    store = FakeStore()
    tally = field_sync(sessions, cid, store, FakeCrm()).apply_crm(
        [
            contact("70", 5, tandem_email_consent="redacted"),  # not a state a store takes
            contact("80", 5, firstname="Cy"),
        ]
    )
    assert store.calls == [[("8", {"first_name": "Cy"})]]
    assert tally.dead == 1
    with transaction(sessions) as session:
        (letter,) = session.scalars(select(DeadLetter)).all()
    assert letter.store_id == "7" and "consent" in letter.reason


def test_a_refused_write_back_is_tried_again_when_the_contact_is_seen_again(sessions, cid):
    link(sessions, cid, "7", "70")
    store = FakeStore(refuse={"7"})
    field_sync(sessions, cid, store, FakeCrm()).apply_crm([contact("70", 5, firstname="Bob")])
    store.refuse = set()
    field_sync(sessions, cid, store, FakeCrm()).apply_crm([contact("70", 5, firstname="Bob")])
    assert [c[0][0] for c in store.calls] == ["7", "7"]


def test_an_owner_policy_restores_its_value_and_keeps_the_decision(sessions, cid):
    link(sessions, cid, "7", "70")
    store, crm = FakeStore(), FakeCrm()
    field_sync(sessions, cid, store, crm, policy="store").apply_crm(
        [contact("70", 5, firstname="Bob", lastname="Lee")]
    )
    assert store.calls == [] and crm.calls == [[("70", {"firstname": "Ann"})]]
    with transaction(sessions) as session:
        (decision,) = session.scalars(select(ConflictRecord)).all()
    assert (decision.field, decision.winner, decision.policy) == ("first_name", "store", "store")


def test_a_contact_two_stores_share_is_never_restored_over(sessions, cid):
    other = add_connection(sessions, "b.myshopify.com")
    link(sessions, cid, "7", "70")
    with transaction(sessions) as session:
        for connection_id, store_id in ((cid, "7"), (other, "9")):
            connection = session.get(Connection, connection_id)
            identity.join(
                session,
                connection_id=connection_id,
                crm_platform=connection.crm_platform,
                crm_account=connection.crm_account,
                people=[identity.Person(store_id, "ann@example.com", "70")],
            )
    crm = FakeCrm()
    field_sync(sessions, cid, FakeStore(), crm, policy="store").apply_crm(
        [contact("70", 5, firstname="Robert", lastname="Lee")]  # the other store's write
    )
    assert crm.calls == []  # two "owners" taking turns would never stop
