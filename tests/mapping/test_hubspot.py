"""Field maps, overrides, the stage map and canonical -> HubSpot properties."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapping import (
    CANCELLED,
    CUSTOM_PROPERTIES,
    DEFAULT_CONTACT_FIELDS,
    DEFAULT_DEAL_FIELDS,
    DEFAULT_LINE_ITEM_FIELDS,
    DEFAULT_STAGE_MAP,
    ConsentState,
    Customer,
    FieldMap,
    FieldMapError,
    FinancialStatus,
    FulfillmentStatus,
    Order,
    apply_overrides,
    apply_stage_overrides,
    contact_properties,
    customer_from_graphql,
    customer_from_rest,
    deal_properties,
    deal_stage,
    line_item_properties,
    order_from_graphql,
    order_from_rest,
    property_group_payload,
    render,
    source_paths,
    stage_key,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "shopify"
STORE = "shopify:acme.myshopify.com"


def load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.input.json").read_text(encoding="utf-8"))


def customer(name: str = "customer_graphql_full") -> Customer:
    parser = customer_from_graphql if "graphql" in name else customer_from_rest
    return parser(load(name))


def order(name: str = "order_graphql_full") -> Order:
    parser = order_from_graphql if "graphql" in name else order_from_rest
    return parser(load(name))


def deal(o: Order, **kwargs: Any) -> dict[str, str]:
    return deal_properties(o, store_key=STORE, store_name="Acme", **kwargs)


# ---------------------------------------------------------------------------------- contacts


def test_contact_properties_of_a_full_customer() -> None:
    assert contact_properties(customer()) == {
        "email": "bob.norman@mail.example.com",
        "firstname": "Bob",
        "lastname": "Norman",
        "phone": "+16135550142",
        "company": "Norman Hardware",
        "address": "123 Oak St, Suite 4",
        "city": "Ottawa",
        "state": "Ontario",
        "zip": "K1P 1J1",
        "country": "CA",
        "tandem_email_consent": "subscribed",
        "tandem_sms_consent": "not_subscribed",
        "tandem_customer_tags": "Léon, newsletter, VIP",
    }


def test_none_clears_the_property() -> None:
    props = contact_properties(customer("customer_graphql_no_email"))
    assert props["email"] == ""
    assert props["lastname"] == ""
    assert props["company"] == ""
    assert props["address"] == ""
    assert props["country"] == ""
    assert props["tandem_customer_tags"] == ""
    assert props["tandem_email_consent"] == "unknown"


def test_fields_a_webhook_did_not_carry_are_left_out_not_cleared() -> None:
    props = contact_properties(customer("customer_rest_webhook_2025"))
    assert "tandem_customer_tags" not in props
    assert "tandem_email_consent" not in props
    assert "tandem_sms_consent" not in props
    assert props["email"] == "bob.norman@mail.example.com"
    assert props["city"] == "Ottawa"
    polled = contact_properties(customer("customer_graphql_full"))
    assert props == {k: v for k, v in polled.items() if k in props}


def test_a_missing_default_address_drops_its_derived_street_address() -> None:
    c = customer("customer_rest_full").model_copy(update={"missing": ("default_address",)})
    props = contact_properties(c)
    assert "address" not in props
    assert "city" not in props
    assert "email" in props


# ---------------------------------------------------------------------------------- deals


def test_deal_properties_of_a_full_order() -> None:
    assert deal(order()) == {
        "dealname": "Order #1001 · Acme",
        "amount": "450.64",
        "deal_currency_code": "USD",
        "closedate": "2024-06-01T14:00:05Z",
        "dealstage": "closedwon",
        "pipeline": "default",
        "tandem_order_id": "shopify:acme.myshopify.com:order:450789469",
        "tandem_order_number": "#1001",
        "tandem_financial_status": "paid",
        "tandem_fulfillment_status": "partially_fulfilled",
        "tandem_refunded_amount": "0.00",
    }


def test_deal_amounts_keep_the_currency_precision() -> None:
    jpy = deal(order("order_graphql_jpy"))
    assert jpy["amount"] == "5750"
    assert jpy["tandem_refunded_amount"] == "0"
    kwd = deal(order("order_rest_kwd_refunded"))
    assert kwd["amount"] == "14.345"
    assert kwd["tandem_refunded_amount"] == "14.345"
    assert kwd["deal_currency_code"] == "KWD"


def test_close_date_falls_back_to_created_at() -> None:
    o = order().model_copy(update={"processed_at": None})
    assert deal(o)["closedate"] == "2024-06-01T14:00:00Z"


def test_deal_name_without_an_order_name_uses_the_id() -> None:
    o = order().model_copy(update={"name": None})
    assert deal(o)["dealname"] == "Order 450789469 · Acme"
    unnamed_store = deal_properties(order(), store_key=STORE, store_name="")
    assert unnamed_store["dealname"] == "Order #1001"


@pytest.mark.parametrize(
    ("status", "stage"),
    [
        (FinancialStatus.paid, "closedwon"),
        (FinancialStatus.partially_refunded, "closedwon"),
        (FinancialStatus.refunded, "closedlost"),
        (FinancialStatus.voided, "closedlost"),
        (FinancialStatus.expired, "closedlost"),
        (FinancialStatus.pending, "contractsent"),
        (FinancialStatus.authorized, "contractsent"),
        (FinancialStatus.partially_paid, "contractsent"),
        (FinancialStatus.unknown, "appointmentscheduled"),
    ],
)
def test_default_stage_map(status: FinancialStatus, stage: str) -> None:
    o = order().model_copy(update={"financial_status": status})
    assert deal_stage(o) == stage
    assert deal(o)["dealstage"] == stage


def test_a_cancelled_order_is_closed_lost_whatever_it_was_paid() -> None:
    o = order().model_copy(update={"cancelled_at": datetime(2024, 6, 3, tzinfo=UTC)})
    assert o.financial_status == FinancialStatus.paid
    assert deal(o)["dealstage"] == "closedlost"
    assert deal(order("order_rest_kwd_refunded"))["dealstage"] == "closedlost"


def test_stage_map_covers_every_status_and_cancelled() -> None:
    assert set(DEFAULT_STAGE_MAP) == {*FinancialStatus, CANCELLED}
    assert set(DEFAULT_STAGE_MAP.values()) <= {
        "appointmentscheduled",
        "qualifiedtobuy",
        "presentationscheduled",
        "decisionmakerboughtin",
        "contractsent",
        "closedwon",
        "closedlost",
    }


def test_custom_stage_map_and_pipeline() -> None:
    stages = apply_stage_overrides(DEFAULT_STAGE_MAP, {"paid": "won_online", "cancelled": "void"})
    props = deal(order(), stage_map=stages, pipeline="ecommerce")
    assert props["dealstage"] == "won_online"
    assert props["pipeline"] == "ecommerce"
    cancelled = order().model_copy(update={"cancelled_at": datetime(2024, 6, 3, tzinfo=UTC)})
    assert deal(cancelled, stage_map=stages)["dealstage"] == "void"
    assert stages[FinancialStatus.pending] == "contractsent"  # the rest keep their defaults


def test_stage_overrides_are_checked() -> None:
    assert stage_key("paid") == FinancialStatus.paid
    assert stage_key("cancelled") == CANCELLED
    with pytest.raises(FieldMapError, match=r"'shipped'.*valid keys: pending"):
        apply_stage_overrides(DEFAULT_STAGE_MAP, {"shipped": "x"})
    with pytest.raises(FieldMapError, match="stage id"):
        apply_stage_overrides(DEFAULT_STAGE_MAP, {"paid": " "})
    incomplete = {FinancialStatus.paid: "closedwon"}
    with pytest.raises(FieldMapError, match="no stage for 'refunded'"):
        deal(
            order().model_copy(update={"financial_status": FinancialStatus.refunded}),
            stage_map=incomplete,
        )


def test_an_empty_store_key_is_refused() -> None:
    with pytest.raises(ValueError, match="store_key"):
        deal_properties(order(), store_key="", store_name="Acme")
    with pytest.raises(ValueError, match="store_key"):
        line_item_properties(order().line_items[0], order(), store_key="")


# ---------------------------------------------------------------------------------- line items


def test_line_item_properties() -> None:
    o = order()
    assert line_item_properties(o.line_items[0], o, store_key=STORE) == {
        "name": "IPod Nano - 8gb - green",
        "quantity": "2",
        "price": "199.00",
        "discount": "5.00",
        "hs_sku": "IPOD2008GREEN",
        "hs_line_item_currency_code": "USD",
        "tandem_line_item_id": "shopify:acme.myshopify.com:line_item:466157049",
        "tandem_line_total": "388.00",
    }


def test_a_custom_line_item_without_product_or_sku() -> None:
    o = order("order_graphql_null_product")
    props = line_item_properties(o.line_items[0], o, store_key=STORE)
    assert props["name"] == "Engraving"
    assert props["hs_sku"] == ""
    assert props["discount"] == "0.00"


def test_unit_discount_rounds_a_discount_that_does_not_split_evenly() -> None:
    o = order()
    item = o.line_items[0].model_copy(
        update={
            "quantity": 3,
            "unit_price": o.line_items[0].unit_price.model_copy(
                update={"amount": Decimal("10.00")}
            ),
            "total": o.line_items[0].total.model_copy(update={"amount": Decimal("20.00")}),
        }
    )
    props = line_item_properties(item, o, store_key=STORE)
    assert props["discount"] == "3.33"
    assert props["tandem_line_total"] == "20.00"  # the exact figure is kept


def test_line_item_maps_can_reach_the_order() -> None:
    o = order()
    fields = apply_overrides(DEFAULT_LINE_ITEM_FIELDS, {"tandem_order_number": "order.name"})
    assert (
        line_item_properties(o.line_items[1], o, store_key=STORE, fields=fields)[
            "tandem_order_number"
        ]
        == "#1001"
    )


# ---------------------------------------------------------------------------------- all strings

ALL_CASES = sorted(p.name.removesuffix(".input.json") for p in GOLDEN.glob("*.input.json"))


@pytest.mark.parametrize("name", ALL_CASES)
def test_every_property_value_is_a_string(name: str) -> None:
    if name.startswith("customer_"):
        batches = [contact_properties(customer(name))]
    else:
        o = order(name)
        batches = [deal(o)] + [line_item_properties(li, o, store_key=STORE) for li in o.line_items]
    for props in batches:
        assert props
        for key, value in props.items():
            assert isinstance(key, str)
            assert isinstance(value, str), (key, value)


def test_every_source_path_renders_for_every_golden_record() -> None:
    for name in ALL_CASES:
        if name.startswith("customer_"):
            c = customer(name)
            everything = FieldMap(
                "contact", {f"p{i}": p for i, p in enumerate(sorted(source_paths("contact")))}
            )
            props = contact_properties(c.model_copy(update={"missing": ()}), everything)
            assert len(props) == len(everything)
        else:
            o = order(name)
            deals = FieldMap(
                "deal", {f"p{i}": p for i, p in enumerate(sorted(source_paths("deal")))}
            )
            assert len(deal(o, fields=deals)) == len(deals)
            items = FieldMap(
                "line_item", {f"p{i}": p for i, p in enumerate(sorted(source_paths("line_item")))}
            )
            for li in o.line_items:
                assert len(line_item_properties(li, o, store_key=STORE, fields=items)) == len(items)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (3, "3"),
        (Decimal("1500"), "1500"),
        (Decimal("1.5E+3"), "1500"),
        (Decimal("0.000001"), "0.000001"),
        (Decimal("-0.00"), "0.00"),
        (Decimal("12.345"), "12.345"),
        (datetime(2024, 3, 1, 10, 0, 5, 123456, tzinfo=UTC), "2024-03-01T10:00:05Z"),
        (ConsentState.subscribed, "subscribed"),
        (FulfillmentStatus.on_hold, "on_hold"),
        (("a", "b"), "a, b"),
        ((), ""),
    ],
)
def test_render(value: Any, text: str) -> None:
    assert render(value) == text


def test_render_refuses_what_is_not_a_value() -> None:
    with pytest.raises(TypeError):
        render(order())
    with pytest.raises(TypeError):
        render(1.5)
    with pytest.raises(ValueError, match="timezone"):
        render(datetime(2024, 3, 1))


@given(st.decimals(allow_nan=False, allow_infinity=False))
def test_rendered_decimals_have_no_exponent_and_read_back_exactly(value: Decimal) -> None:
    text = render(value)
    assert "E" not in text.upper()
    assert Decimal(text) == value


# ---------------------------------------------------------------------------------- field maps


def test_override_renames_a_mapping() -> None:
    fields = apply_overrides(DEFAULT_CONTACT_FIELDS, {"mobilephone": "phone", "phone": None})
    props = contact_properties(customer(), fields)
    assert props["mobilephone"] == "+16135550142"
    assert "phone" not in props
    assert DEFAULT_CONTACT_FIELDS["phone"] == "phone"  # the default is untouched


def test_override_adds_and_replaces_a_mapping() -> None:
    overrides = {"hs_language": "locale", "city": "default_address.province_code"}
    props = contact_properties(customer(), apply_overrides(DEFAULT_CONTACT_FIELDS, overrides))
    assert props["hs_language"] == "en"
    assert props["city"] == "ON"


def test_override_drops_a_default_mapping() -> None:
    fields = apply_overrides(DEFAULT_DEAL_FIELDS, {"tandem_refunded_amount": None, "nope": None})
    assert "tandem_refunded_amount" not in deal(order(), fields=fields)
    assert len(fields) == len(DEFAULT_DEAL_FIELDS) - 1


def test_an_unknown_source_path_names_itself_and_the_valid_ones() -> None:
    with pytest.raises(FieldMapError) as error:
        apply_overrides(DEFAULT_CONTACT_FIELDS, {"email_two": "emial"})
    message = str(error.value)
    assert "'emial'" in message
    assert "email_two" in message
    assert "default_address.city" in message
    assert "consent.email" in message
    with pytest.raises(FieldMapError, match="'line_items'"):
        apply_overrides(DEFAULT_DEAL_FIELDS, {"x": "line_items"})
    with pytest.raises(FieldMapError, match="'addresses'"):
        apply_overrides(DEFAULT_CONTACT_FIELDS, {"x": "addresses"})
    with pytest.raises(FieldMapError, match="'missing'"):
        apply_overrides(DEFAULT_CONTACT_FIELDS, {"x": "missing"})
    with pytest.raises(FieldMapError, match=r"derived\.deal_name"):
        apply_overrides(DEFAULT_CONTACT_FIELDS, {"x": "derived.deal_name"})


@pytest.mark.parametrize("name", ["", "has space", "1abc", "with-dash", None])
def test_an_invalid_property_name_is_refused(name: Any) -> None:
    with pytest.raises(FieldMapError, match="property name"):
        apply_overrides(DEFAULT_CONTACT_FIELDS, {name: "email"})


@pytest.mark.parametrize(
    ("base", "override", "message"),
    [
        (DEFAULT_CONTACT_FIELDS, {"email": None}, "upserts by"),
        (DEFAULT_CONTACT_FIELDS, {"email": "first_name"}, "upserts by"),
        (DEFAULT_DEAL_FIELDS, {"tandem_order_id": "name"}, "upserts by"),
        (DEFAULT_LINE_ITEM_FIELDS, {"tandem_line_item_id": None}, "upserts by"),
        (DEFAULT_DEAL_FIELDS, {"dealname": None}, "required"),
        (DEFAULT_DEAL_FIELDS, {"dealstage": None}, "required"),
        (DEFAULT_DEAL_FIELDS, {"pipeline": None}, "required"),
    ],
)
def test_keys_and_required_properties_are_protected(
    base: FieldMap, override: dict[str, str | None], message: str
) -> None:
    with pytest.raises(FieldMapError, match=message):
        apply_overrides(base, override)


def test_required_properties_may_be_remapped() -> None:
    fields = apply_overrides(DEFAULT_DEAL_FIELDS, {"dealname": "name", "email": None})
    assert deal(order(), fields=fields)["dealname"] == "#1001"
    assert apply_overrides(DEFAULT_CONTACT_FIELDS, {"email": "email"}) == DEFAULT_CONTACT_FIELDS


def test_field_maps_are_immutable_values() -> None:
    with pytest.raises(TypeError):
        DEFAULT_CONTACT_FIELDS["email"] = "first_name"  # type: ignore[index]
    same = FieldMap("contact", dict(DEFAULT_CONTACT_FIELDS))
    assert same == DEFAULT_CONTACT_FIELDS
    assert hash(same) == hash(DEFAULT_CONTACT_FIELDS)
    assert FieldMap("deal", {}) != FieldMap("contact", {})
    with pytest.raises(FieldMapError, match="entity"):
        FieldMap("ticket", {})


def test_a_field_map_for_another_entity_is_refused() -> None:
    with pytest.raises(FieldMapError, match="expected a contact field map"):
        contact_properties(customer(), DEFAULT_DEAL_FIELDS)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- schema


def test_every_tandem_property_in_the_defaults_has_a_definition() -> None:
    defined = {
        object_type: {p.name for p in props} for object_type, props in CUSTOM_PROPERTIES.items()
    }
    for object_type, fields in [
        ("contacts", DEFAULT_CONTACT_FIELDS),
        ("deals", DEFAULT_DEAL_FIELDS),
        ("line_items", DEFAULT_LINE_ITEM_FIELDS),
    ]:
        assert {p for p in fields if p.startswith("tandem_")} == defined[object_type]


def test_property_definitions_are_valid_create_bodies() -> None:
    type_to_fields = {
        "string": {"text", "textarea"},
        "number": {"number"},
        "enumeration": {"select", "radio", "checkbox"},
    }
    unique = set()
    for props in CUSTOM_PROPERTIES.values():
        for definition in props:
            body = definition.payload()
            json.dumps(body)  # plain JSON, ready to send
            assert dict(definition) == body  # also readable as the body itself
            assert definition["name"] == body["name"]
            assert body["groupName"] == "tandem"
            assert body["fieldType"] in type_to_fields[body["type"]]
            assert body["name"].startswith("tandem_")
            if body.get("hasUniqueValue"):
                unique.add(body["name"])
            if body["type"] == "enumeration":
                assert body["options"]
                assert all(isinstance(o["value"], str) for o in body["options"])
    assert unique == {"tandem_order_id", "tandem_line_item_id"}
    assert property_group_payload()["name"] == "tandem"


def test_enumeration_options_cover_every_value_rendered() -> None:
    by_name = {d.name: d for props in CUSTOM_PROPERTIES.values() for d in props}
    assert set(by_name["tandem_email_consent"].options) == {s.value for s in ConsentState}
    assert set(by_name["tandem_financial_status"].options) == {s.value for s in FinancialStatus}
    assert set(by_name["tandem_fulfillment_status"].options) == {s.value for s in FulfillmentStatus}
