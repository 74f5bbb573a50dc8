"""One contract for every registered CRM connector, run against its simulator.

Parametrised over ``sync.platforms.CRMS``: a new CRM adds a row to ``CRM_FACTS`` (how its
simulator's control API refuses a call, edits a record and expires tokens), not test code. The
connector is built the production way (``create_connection`` then ``Platforms.crm``: the shared
token cache, the shared budget); the fields written are the CRM schema's own, mapped from
canonical records; the truth is the simulator's own neutral summary and call log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

import demo
from app import create_app, tandem_of
from connectors.errors import RateLimitedError
from mapping import CRM_SCHEMAS, Customer, Money, Order
from sync import migrate
from sync.db import transaction
from sync.models import AccessTokenRow, Connection
from sync.platforms import CRMS


@dataclass(frozen=True)
class CrmFacts:
    """What the contract needs to know of one CRM simulator."""

    # One injected throttle answer (POST /_sandbox/knobs {"inject": [...]}), and whether the
    # platform means "retry shortly" (the call then succeeds) or "pause" (RateLimitedError,
    # the job is rescheduled without counting an attempt).
    throttle: dict[str, Any]
    throttle_means: str
    # A sales rep's edit of a contact's first name through the control API: (path, body).
    edit: Callable[[str, str], tuple[str, dict[str, Any]]]
    # The control path that expires every access token issued so far (None: static tokens)
    # and the path fragment of the platform's token endpoint (to count refreshes).
    expire: str | None = None
    token_path: str = ""


CRM_FACTS: dict[str, CrmFacts] = {
    "hubspot": CrmFacts(
        # TEN_SECONDLY_ROLLING with a Retry-After, so the retry need not wait a whole window.
        throttle={"status": 429, "policy_name": "TEN_SECONDLY_ROLLING", "retry_after": 0.2},
        throttle_means="retry",
        edit=lambda cid, name: (f"/objects/contacts/{cid}", {"properties": {"firstname": name}}),
    ),
    "zoho": CrmFacts(
        throttle={"status": 429, "code": "TOO_MANY_REQUESTS"},  # no Retry-After (ZO-DOCS)
        throttle_means="retry",
        edit=lambda cid, name: (f"/records/Contacts/{cid}", {"First_Name": name}),
        expire="/expire-tokens",
        token_path="/oauth/v2/token",
    ),
    "salesforce": CrmFacts(
        # The daily allocation is spent: a pause until it comes back, never a failure.
        throttle={
            "status": 403,
            "error_code": "REQUEST_LIMIT_EXCEEDED",
            "message": "TotalRequests Limit exceeded.",
        },
        throttle_means="pause",
        edit=lambda cid, name: (f"/records/Contact/{cid}", {"FirstName": name}),
        expire="/expire-sessions",
        token_path="/services/oauth2/token",
    ),
}

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@dataclass
class Crm:
    platform: str
    sandbox: demo.Sandbox
    connector: Any
    t: Any

    @property
    def schema(self):
        return CRM_SCHEMAS[self.platform]

    @property
    def facts(self) -> CrmFacts:
        return CRM_FACTS[self.platform]

    def knobs(self, **values: Any) -> None:
        self.sandbox.control(self.sandbox.crm, "POST", "/knobs", json=values)

    def contacts(self, n: int, *, start: int = 0, prefix: str = "person") -> list[tuple]:
        """``n`` contact inputs, mapped by the CRM's schema from canonical customers."""
        out = []
        for i in range(start, start + n):
            customer = Customer(
                source="shopify",
                source_id=str(1000 + i),
                email=f"{prefix}{i}@example.com",
                first_name="Ada",
                last_name=f"Lovelace {i}",
                created_at=NOW,
                updated_at=NOW,
            )
            fields = self.schema.contact(customer, self.schema.contact_fields)
            out.append((customer.email, fields))
        return out

    def orders(self, n: int) -> list[tuple]:
        out = []
        for i in range(n):
            amount = Money(amount=f"{10 + i}.50", currency="USD")
            zero = Money(amount="0", currency="USD")
            order = Order(
                source="shopify",
                source_id=str(5000 + i),
                name=f"#{5000 + i}",
                currency="USD",
                total=amount,
                subtotal=amount,
                tax=zero,
                discounts=zero,
                shipping=zero,
                refunded=zero,
                created_at=NOW,
                updated_at=NOW,
            )
            fields = self.schema.order(
                order,
                self.schema.order_fields,
                store_key="shopify:contract.myshopify.com",
                store_name="Contract",
                stage_map=self.schema.stage_map,
                pipeline=self.schema.pipeline,
            )
            out.append((fields[self.schema.order_key], fields))
        return out

    def summary(self) -> dict[str, Any]:
        return self.sandbox.crm_summary()

    def calls(self) -> list[dict[str, Any]]:
        return self.sandbox.crm_calls()


@pytest.fixture(params=sorted(CRMS))
def crm(request, tmp_path):
    platform = request.param
    assert platform in CRM_FACTS, f"add {platform}'s simulator facts to CRM_FACTS"
    sandbox = demo.start_sandbox(platform="shopify", crm=platform, customers=1, orders=0)
    app = create_app(demo.sandbox_config(sandbox, tmp_path))
    t = tandem_of(app)
    migrate.upgrade(t.engine)
    try:
        connection_id = demo.connect(t, sandbox, backfill=False)
        with transaction(t.sessions) as session:
            connector = t.platforms.crm(session, session.get(Connection, connection_id))
        yield Crm(platform, sandbox, connector, t)
    finally:
        sandbox.stop()
        t.close()


def test_a_batch_upsert_is_idempotent(crm):
    inputs = crm.contacts(7)
    first = crm.connector.upsert_contacts_by_email(inputs)
    assert all(r.ok and r.id for r in first), [r.error for r in first if not r.ok]
    second = crm.connector.upsert_contacts_by_email(inputs)
    assert [r.id for r in second] == [r.id for r in first]
    assert not any(r.created for r in second)  # updates, never a second record
    orders = crm.orders(5)
    placed = crm.connector.upsert_objects(crm.schema.order_object, crm.schema.order_key, orders)
    again = crm.connector.upsert_objects(crm.schema.order_object, crm.schema.order_key, orders)
    assert all(r.ok for r in placed) and [r.id for r in again] == [r.id for r in placed]
    summary = crm.summary()
    emails = sorted(c["email"].lower() for c in summary["contacts"])
    assert emails == sorted(email for email, _ in inputs)
    assert sorted(o["external_id"] for o in summary["orders"]) == sorted(k for k, _ in orders)


def test_a_partial_failure_affects_only_the_rejected_record(crm):
    inputs = crm.contacts(6)
    refused = inputs[3][0]
    crm.knobs(fault_values=[refused])
    results = crm.connector.upsert_contacts_by_email(inputs)
    assert [r.ok for r in results] == [True, True, True, False, True, True]
    assert results[3].error  # the CRM's own reason, for the dead letter
    assert results[3].details is not None
    written = {c["email"].lower() for c in crm.summary()["contacts"]}
    assert written == {email for email, _ in inputs} - {refused}


def test_a_throttle_signal_is_obeyed(crm):
    facts = crm.facts
    crm.knobs(inject=[{**facts.throttle, "times": 1}])
    inputs = crm.contacts(3)
    if facts.throttle_means == "retry":
        results = crm.connector.upsert_contacts_by_email(inputs)
        assert all(r.ok for r in results)
        statuses = [c["status"] for c in crm.calls()]
        assert facts.throttle["status"] in statuses  # it was refused once, then retried
        assert statuses[-1] < 300
    else:
        with pytest.raises(RateLimitedError) as raised:
            crm.connector.upsert_contacts_by_email(inputs)
        # A pause long enough to reschedule the job rather than block a worker on it.
        assert raised.value.retry_after and raised.value.retry_after > 60
        assert crm.summary()["contacts"] == []


def test_changes_since_a_checkpoint_are_read_completely(crm):
    schema = crm.schema
    before = crm.connector.upsert_contacts_by_email(crm.contacts(40))
    # CRM clocks keep whole seconds (Zoho, Salesforce): the checkpoint sits between seconds.
    time.sleep(1.1)
    checkpoint = datetime.now(UTC)
    time.sleep(1.1)
    after = crm.connector.upsert_contacts_by_email(crm.contacts(230, start=40))
    edited = before[7].id
    path, body = crm.facts.edit(edited, "Edited")
    crm.sandbox.crm_control("PATCH", path, json=body)
    read = list(
        crm.connector.changed_since(schema.contact_object, checkpoint, [schema.email_field])
    )
    ids = [str(r.get("id") or r.get("Id")) for r in read]
    assert len(ids) == len(set(ids)), "a record was read twice"
    assert set(ids) == {r.id for r in after} | {edited}
    assert not list(
        crm.connector.changed_since(
            schema.contact_object, datetime.now(UTC) + timedelta(hours=1), [schema.email_field]
        )
    )


def test_an_expired_token_is_refreshed_once(crm):
    facts = crm.facts
    if facts.expire is None:
        pytest.skip(f"{crm.platform} private-app tokens do not expire")
    crm.connector.upsert_contacts_by_email(crm.contacts(2))
    crm.sandbox.crm_control("POST", facts.expire)
    for start in (10, 20, 30):
        results = crm.connector.upsert_contacts_by_email(crm.contacts(2, start=start))
        assert all(r.ok for r in results)
    refreshes = [c for c in crm.calls() if facts.token_path in c["path"]]
    assert len(refreshes) == 2  # the first token, and one refresh after the expiry
    with transaction(crm.t.sessions) as session:
        minted = session.scalar(select(func.sum(AccessTokenRow.minted)))
    assert minted == 2
