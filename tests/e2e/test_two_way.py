"""Both directions through the simulators: a rep's CRM edit reaches the store, Tandem's own
writes coming back as CRM notifications cause no write-back, and a buyer of two stores is one
contact. Measured from the simulators' call logs, not from Tandem's bookkeeping.

One pairing per CRM (each storefront appears once), so every receiver and every write-back
runs: Shopify -> HubSpot (signed webhooks), WooCommerce -> Zoho CRM (watch channel),
BigCommerce -> Salesforce (outbound messages).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

import demo
from demo import crm_writes, settle, store_writes
from sync import identity
from sync.db import transaction
from sync.models import Link
from tests.e2e.test_end_to_end import converge, start

pytestmark = pytest.mark.slow

PAIRS = [("shopify", "hubspot"), ("woocommerce", "zoho"), ("bigcommerce", "salesforce")]


def linked_contacts(t, connection_id):
    with transaction(t.sessions) as session:
        return list(
            session.execute(
                select(Link.store_id, Link.crm_id).where(
                    Link.connection_id == connection_id, Link.entity == "customer"
                )
            )
        )


@pytest.mark.parametrize(("store", "crm"), PAIRS)
def test_crm_edits_reach_the_store_and_echoes_write_nothing(tmp_path, store, crm):
    running = start(
        tmp_path, platform=store, crm=crm, customers=120, orders=20, crm_poll_interval_seconds=3600
    )
    try:
        sandbox, t = running.sandbox, running.t
        connection_id = demo.connect(t, sandbox, public_url=running.receiver.url)
        sandbox.notify(t, connection_id, running.receiver.url)
        assert demo.wait_until(lambda: demo.backfill_done(t, connection_id), 120)
        converge(sandbox)
        settle(sandbox, t, [connection_id])

        # 1. A rep renames five contacts in the CRM: the store's customers follow.
        edited = dict(linked_contacts(t, connection_id)[:5])
        for n, crm_id in enumerate(edited.values()):
            sandbox.rep_edit_contact(crm_id, first_name=f"Edited{n}")
        wanted = {sid: f"Edited{n}" for n, sid in enumerate(edited)}

        def store_has_them():
            names = {c["id"]: c.get("first_name") for c in sandbox.summary()["customers"]}
            return all(names.get(sid) == name for sid, name in wanted.items())

        crm_before = len(crm_writes(sandbox))
        assert demo.wait_until(store_has_them, 60), "the CRM edit never reached the store"
        settle(sandbox, t, [connection_id])
        # The store's own webhooks for those writes came back: no write to the CRM followed.
        assert len(crm_writes(sandbox)) == crm_before
        converge(sandbox)

        # 2. A hundred changes in the store: Tandem writes them to the CRM, whose notifications
        # of those writes come back; none may cause a write to the store.
        store_before, crm_before = len(store_writes(sandbox)), len(crm_writes(sandbox))
        deliveries_before = len(sandbox.crm_control("GET", "/deliveries")["deliveries"])
        sandbox.store_control("POST", "/activity", json={"changed_customers": 100, "seed": 5})
        converge(sandbox)
        settle(sandbox, t, [connection_id])
        assert len(crm_writes(sandbox)) > crm_before  # the changes were written...
        notifications = len(sandbox.crm_control("GET", "/deliveries")["deliveries"])
        assert notifications > deliveries_before  # ...the CRM told Tandem about them...
        assert len(store_writes(sandbox)) == store_before  # ...and nothing was written back.
    finally:
        running.stop()


def test_a_buyer_of_two_stores_is_one_contact(tmp_path):
    running = start(tmp_path, customers=20, orders=10, crm_poll_interval_seconds=3600)
    try:
        sandbox, t = running.sandbox, running.t
        first = demo.connect(t, sandbox, public_url=running.receiver.url)
        assert demo.wait_until(lambda: demo.backfill_done(t, first), 60)
        converge(sandbox)
        buyer = next(c for c in sandbox.summary()["customers"] if c.get("email"))
        names = {(buyer.get("first_name"), buyer.get("last_name"))}

        # A second shop of the same merchant, connected to the same HubSpot portal, where the
        # same person checked out as a guest.
        second_shop = sandbox.second_store("tandem-outlet.myshopify.com")
        second_shop.store_control("POST", "/orders", json={"email": buyer["email"]})
        second = demo.connect(t, second_shop, public_url=running.receiver.url)
        assert demo.wait_until(lambda: demo.backfill_done(t, second), 60)

        def on_one_contact():
            contacts = [
                c
                for c in sandbox.crm_summary()["contacts"]
                if (c.get("email") or "").lower() == buyer["email"].lower()
            ]
            orders = [
                o
                for o in sandbox.crm_summary()["orders"]
                if o["external_id"].startswith(f"shopify:{second_shop.account}:")
            ]
            return len(contacts) == 1 and any(
                o["contact_ids"] == [contacts[0]["id"]] for o in orders
            )

        assert demo.wait_until(on_one_contact, 60), "the second store's order is not on the contact"
        # The guest checkout's billing name did not overwrite the person the first store knows.
        (known,) = [
            c
            for c in sandbox.crm_summary()["contacts"]
            if (c.get("email") or "").lower() == buyer["email"].lower()
        ]
        assert {(known.get("first_name"), known.get("last_name"))} == names
        with transaction(t.sessions) as session:
            merges = identity.merges(session, second)
        assert [m["email"] for m in merges] == [buyer["email"].lower()]
        assert "Tandem Demo" in merges[0]["reason"]
    finally:
        running.stop()
