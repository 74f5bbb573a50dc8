"""Operator commands: clear messages and exit codes, nothing changed on bad input."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from app import create_app, tandem_of
from sync.db import transaction
from sync.models import Connection, FieldMapOverride
from tests.conftest import add_connection


@pytest.fixture
def app(tmp_path):
    app = create_app(
        {
            "database_url": f"sqlite:///{tmp_path / 't.db'}",
            "var_dir": tmp_path,
            "encryption_keys": Fernet.generate_key().decode(),
        }
    )
    yield app
    tandem_of(app).close()


def test_commands_ask_for_the_schema_first(app):
    result = app.test_cli_runner().invoke(args=["status"])
    assert result.exit_code != 0
    assert "flask db upgrade" in result.output


def test_db_upgrade_is_idempotent_and_status_reports(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    status = runner.invoke(args=["status"])
    assert status.exit_code == 0 and "unroutable deliveries: 0" in status.output


def _with_connection(app) -> int:
    app.test_cli_runner().invoke(args=["db", "upgrade"])
    return add_connection(tandem_of(app).sessions)


def test_fieldmap_override_is_validated_and_stored(app):
    cid = _with_connection(app)
    runner = app.test_cli_runner()
    ok = runner.invoke(
        args=["fieldmap", "set", str(cid), "contact", "city", "default_address.city"]
    )
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(
        args=["fieldmap", "set", str(cid), "contact", "city", "default_address.galaxy"]
    )
    assert bad.exit_code != 0 and "galaxy" in bad.output
    key = runner.invoke(args=["fieldmap", "set", str(cid), "deal", "tandem_order_id", "name"])
    assert key.exit_code != 0 and "upsert" in key.output
    with transaction(tandem_of(app).sessions) as s:
        rows = s.scalars(select(FieldMapOverride)).all()
    assert [(r.entity, r.crm_property, r.source_path) for r in rows] == [
        ("contact", "city", "default_address.city")
    ]


def test_unknown_connection_is_a_clear_error(app):
    _with_connection(app)
    result = app.test_cli_runner().invoke(args=["backfill", "999"])
    assert result.exit_code != 0 and "no connection with id 999" in result.output


def test_bad_shop_domain_creates_nothing(app):
    app.test_cli_runner().invoke(args=["db", "upgrade"])
    result = app.test_cli_runner().invoke(
        args=[
            "connections",
            "create",
            "--name",
            "X",
            "--account",
            "evil.example.com",
            "--hubspot-account",
            "1",
            "--store-token",
            "t",
            "--hubspot-token",
            "h",
        ]
    )
    assert result.exit_code != 0
    with transaction(tandem_of(app).sessions) as s:
        assert s.scalars(select(Connection)).all() == []


def test_sandbox_refuses_to_connect_when_tandem_points_elsewhere(app):
    app.test_cli_runner().invoke(args=["db", "upgrade"])
    result = app.test_cli_runner().invoke(args=["sandbox"])
    assert result.exit_code != 0 and "TANDEM_SHOPIFY_BASE_URL" in result.output


def test_invalid_settings_fail_at_start_with_the_setting_named(tmp_path):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="shopify_api_version"):
        create_app({"var_dir": tmp_path, "shopify_api_version": "2026-1"})
    with pytest.raises(ValidationError, match="webhook_max_bytes"):
        create_app({"var_dir": tmp_path, "webhook_max_bytes": 0})


def test_dead_letters_can_be_shown_and_resolved(app):
    from sync import links
    from sync.models import DeadLetter

    cid = _with_connection(app)
    with transaction(tandem_of(app).sessions) as s:
        letter = links.dead_letter(
            s,
            cid,
            entity="customer",
            store_id="7",
            platform="hubspot",
            reason="Property values were not valid",
            details={"category": "VALIDATION_ERROR"},
            record={"id": 7, "email": "zoë@example.com"},
        )
        s.flush()
        letter_id = letter.id
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["deadletters", "show", str(letter_id)])
    assert shown.exit_code == 0 and "VALIDATION_ERROR" in shown.output and "zoë" in shown.output
    assert runner.invoke(args=["deadletters", "show", "999"]).exit_code != 0
    assert runner.invoke(args=["deadletters", "resolve", str(letter_id)]).exit_code == 0
    with transaction(tandem_of(app).sessions) as s:
        assert s.get(DeadLetter, letter_id).status == "resolved"
    listed = runner.invoke(args=["deadletters", "list"])
    assert listed.exit_code == 0 and listed.output.strip() == ""  # only open ones are listed


def _create(app, *args: str):
    base = ["connections", "create", "--name", "X", "--account", "acme", "--store-token", "t"]
    return app.test_cli_runner().invoke(args=[*base, *args])


def test_a_crm_order_shape_it_does_not_have_is_refused_and_creates_nothing(app):
    app.test_cli_runner().invoke(args=["db", "upgrade"])
    oauth = [
        "--crm-client-id",
        "1000.CLIENTID",
        "--crm-client-secret",
        "client-secret-0123456789",
        "--crm-refresh-token",
        "1000.refresh-0123456789",
    ]
    result = _create(app, "--crm", "zoho", "--crm-account", "1", *oauth, "--orders-as", "Invoices")
    assert result.exit_code != 0
    assert "Deals, Sales_Orders" in result.output and "'Invoices'" in result.output
    # Salesforce orders need the Account they are placed under: named before any call is made.
    result = _create(
        app, "--crm", "salesforce", "--crm-account", "00D1", *oauth, "--orders-as", "Order"
    )
    assert result.exit_code != 0 and "--salesforce-order-account" in result.output
    missing = _create(
        app, "--crm", "zoho", "--crm-account", "1", "--crm-client-id", "1000.CLIENTID"
    )
    assert missing.exit_code != 0 and "client_secret, refresh_token" in missing.output
    with transaction(tandem_of(app).sessions) as s:
        assert s.scalars(select(Connection)).all() == []


def test_two_way_settings_are_checked_and_stored(app):
    cid = _with_connection(app)
    runner = app.test_cli_runner()
    ok = runner.invoke(args=["connections", "set", str(cid), "field_policies", '{"phone": "crm"}'])
    assert ok.exit_code == 0, ok.output
    for value, says in (
        ('{"phone": "sometimes"}', "sometimes"),
        ('{"email": "crm"}', "does not sync back"),
        ("{not json", "not JSON"),
    ):
        bad = runner.invoke(args=["connections", "set", str(cid), "field_policies", value])
        assert bad.exit_code != 0 and says in bad.output
    unknown = runner.invoke(args=["connections", "set", str(cid), "colour", "1"])
    assert unknown.exit_code != 0
    with transaction(tandem_of(app).sessions) as s:
        assert s.get(Connection, cid).settings["field_policies"] == {"phone": "crm"}


def test_conflicts_and_merges_are_listed(app):
    from sync import identity
    from sync.ledger import Seen, State, conflict_record, observe

    cid = _with_connection(app)
    state = observe(State(store=Seen("a", None), crm=Seen("a", None)), "crm", "b", None, "store")
    with transaction(tandem_of(app).sessions) as s:
        s.add(
            conflict_record(
                cid, store_id="7", crm_id="70", field="phone", state=state.state,
                decision=state, policy="store",
            )
        )  # fmt: skip
        connection = s.get(Connection, cid)
        identity.join(
            s,
            connection_id=cid,
            crm_platform=connection.crm_platform,
            crm_account=connection.crm_account,
            people=[identity.Person("7", "ann@example.com", "70")],
        )
    runner = app.test_cli_runner()
    listed = runner.invoke(args=["conflicts", "list", "--connection", str(cid)])
    assert listed.exit_code == 0 and "phone" in listed.output and "winner=store" in listed.output
    merges = runner.invoke(args=["profiles", "merges"])
    assert merges.exit_code == 0 and merges.output == ""  # one store: nothing merged
    missing = runner.invoke(args=["conflicts", "list", "--connection", "999"])
    assert missing.exit_code != 0 and "no connection" in missing.output
