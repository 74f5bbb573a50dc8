"""Privacy end to end: the Shopify simulator -> Tandem (receiver + in-process worker) -> the
HubSpot simulator. A data request produces an export; a signed customers/redact archives the
contact in the CRM (setting ``delete``) and leaves none of Tandem's rows about the person."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest
import requests
from sqlalchemy import select

import demo
from sync.db import transaction
from sync.models import (
    AuditEntry,
    FieldState,
    InboxEvent,
    Link,
    OrderFact,
    PrivacyExport,
    ProfileMember,
)
from tests.e2e.test_end_to_end import converge, start

pytestmark = pytest.mark.slow


def _sign(body: bytes, secret: str) -> str:
    # As Shopify signs, and as tests/test_webhooks_shopify.py does: base64 HMAC-SHA256 of the body.
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _contact(sandbox, contact_id: str) -> dict | None:
    contacts = sandbox.crm_dump()["objects"].get("contacts", [])
    return next((c for c in contacts if str(c["id"]) == contact_id), None)


def _rows_about(t, connection_id: int, customer_id: str, email: str, orders: list[str]) -> dict:
    with transaction(t.sessions) as s:
        return {
            "links": s.scalars(
                select(Link).where(
                    Link.connection_id == connection_id,
                    (Link.store_id == customer_id) | (Link.store_id == email),
                    Link.entity.in_(("customer", "email")),
                )
            ).all(),
            "ledger": s.scalars(
                select(FieldState).where(
                    FieldState.connection_id == connection_id, FieldState.store_id == customer_id
                )
            ).all(),
            "members": s.scalars(
                select(ProfileMember).where(
                    ProfileMember.connection_id == connection_id,
                    ProfileMember.store_id.in_((customer_id, f"guest:{email}")),
                )
            ).all(),
            "order_facts": s.scalars(
                select(OrderFact).where(
                    OrderFact.connection_id == connection_id, OrderFact.store_id.in_(orders)
                )
            ).all(),
            "exports": s.scalars(
                select(PrivacyExport).where(
                    PrivacyExport.connection_id == connection_id,
                    PrivacyExport.subject == f"customer:{customer_id}",
                )
            ).all(),
        }


def test_data_request_exports_and_a_signed_redact_archives_the_contact(tmp_path):
    # Polls an hour apart: the simulated store keeps the customer after the redact (a real shop
    # has erased them by then), and a poll re-reading them would make them anew.
    run = start(tmp_path, customers=8, orders=20, poll_interval_seconds=3600.0)
    try:
        connection_id = demo.connect(run.t, run.sandbox)
        assert demo.wait_until(lambda: demo.backfill_done(run.t, connection_id), 90)
        converge(run.sandbox)
        runner = run.app.test_cli_runner()
        configured = runner.invoke(
            args=[
                "privacy",
                "configure",
                "--connection",
                str(connection_id),
                "--on-customer-delete",
                "delete",
            ]
        )
        assert configured.exit_code == 0, configured.output

        store = run.sandbox.store_dump()
        customer = next(
            c for c in store["customers"] if c["numberOfOrders"] != "0" and c.get("email")
        )
        customer_id, email = customer["legacyResourceId"], customer["email"].lower()
        orders = [
            o["legacyResourceId"]
            for o in store["orders"]
            if (o.get("customer") or {}).get("legacyResourceId") == customer_id
        ]
        assert orders
        with transaction(run.t.sessions) as s:
            link = s.scalar(
                select(Link).where(
                    Link.connection_id == connection_id,
                    Link.entity == "customer",
                    Link.store_id == customer_id,
                )
            )
            contact_id = link.crm_id
        assert _contact(run.sandbox, contact_id)["archived"] is False

        # A live change, so the inbox holds a delivery about the person too.
        run.sandbox.store_control(
            "PATCH", f"/customers/{customer_id}", json={"first_name": "Rhiannon"}
        )

        def update_stored() -> bool:
            with transaction(run.t.sessions) as s:
                return any(
                    str(row.payload.get("id")) == customer_id
                    for row in s.scalars(
                        select(InboxEvent).where(
                            InboxEvent.connection_id == connection_id,
                            InboxEvent.topic == "customers/update",
                            InboxEvent.status == "processed",
                        )
                    )
                )

        assert demo.wait_until(update_stored, 30)

        # customers/data_request, as the simulator sends it (signed with the app's secret).
        fired = run.sandbox.store_control(
            "POST",
            "/compliance",
            json={"topic": "customers/data_request", "customer_id": int(customer_id)},
        )
        request_id = str(fired["payload"]["data_request"]["id"])

        def exported() -> PrivacyExport | None:
            with transaction(run.t.sessions) as s:
                return s.scalar(
                    select(PrivacyExport).where(
                        PrivacyExport.connection_id == connection_id,
                        PrivacyExport.request_id == request_id,
                    )
                )

        assert demo.wait_until(lambda: exported() is not None, 30)
        content = exported().content
        assert content["person"] == {"customer_id": customer_id, "email": email}
        held = {(link["entity"], link["store_id"]) for link in content["links"]}
        assert {("customer", customer_id), ("email", email)} <= held
        assert {("order", o) for o in orders} <= held
        assert "customers/update" in {row["topic"] for row in content["inbox"]}
        listed = runner.invoke(args=["privacy", "exports", "--connection", str(connection_id)])
        assert f"request {request_id}\tcustomer:{customer_id}" in listed.output

        # customers/redact, signed as the existing webhook tests sign deliveries.
        body = json.dumps(
            {
                "shop_id": fired["payload"]["shop_id"],
                "shop_domain": run.sandbox.account,
                "customer": {"id": int(customer_id), "email": email, "phone": None},
                "orders_to_redact": [int(o) for o in orders],
            }
        ).encode()
        response = requests.post(
            f"{run.receiver.url}/webhooks/shopify",
            data=body,
            headers={
                "X-Shopify-Topic": "customers/redact",
                "X-Shopify-Webhook-Id": "e2e-redact-1",
                "X-Shopify-Shop-Domain": run.sandbox.account,
                "X-Shopify-Hmac-Sha256": _sign(body, run.sandbox.client_secret),
                "Content-Type": "application/json",
            },
            timeout=10,
        )
        assert response.status_code == 200, response.text

        def audited() -> AuditEntry | None:
            with transaction(run.t.sessions) as s:
                return s.scalar(
                    select(AuditEntry).where(
                        AuditEntry.connection_id == connection_id,
                        AuditEntry.action == "customer.redact",
                    )
                )

        assert demo.wait_until(lambda: audited() is not None, 30)
        assert _contact(run.sandbox, contact_id)["archived"] is True
        entry = audited()
        assert entry.subject == f"customer:{customer_id}" and entry.actor == "shopify webhook"
        assert entry.details["crm"] == {"action": "delete", "result": "archived"}
        assert email not in json.dumps(entry.details)

        left = _rows_about(run.t, connection_id, customer_id, email, orders)
        assert left == {key: [] for key in left}
        with transaction(run.t.sessions) as s:
            about = [
                row
                for row in s.scalars(
                    select(InboxEvent).where(InboxEvent.connection_id == connection_id)
                )
                if email in json.dumps(row.payload).lower()
                or str((row.payload.get("customer") or {}).get("id")) == customer_id
                or str(row.payload.get("id")) == customer_id
            ]
            redacted = s.scalars(
                select(InboxEvent).where(
                    InboxEvent.connection_id == connection_id,
                    InboxEvent.topic.in_(("customers/redact", "customers/data_request")),
                )
            ).all()
        assert about == []
        assert [row.payload for row in redacted] == [{"redacted": True}] * 2
        log = runner.invoke(args=["audit", "list", "--connection", str(connection_id)])
        assert "customer.redact" in log.output and "customer.export" in log.output
        assert email not in log.output
    finally:
        run.stop()
