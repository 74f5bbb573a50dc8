"""Shopify parsers: ids, edge cases and failures the golden files do not cover."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapping import (
    ConsentState,
    FinancialStatus,
    FulfillmentStatus,
    MappingError,
    customer_from_graphql,
    customer_from_rest,
    legacy_id,
    order_from_graphql,
    order_from_rest,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "shopify"


def load(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.input.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------- legacy_id


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gid://shopify/Customer/123", "123"),
        ("gid://shopify/Order/450789469", "450789469"),
        ("gid://shopify/ProductVariant/39072856", "39072856"),
        (123, "123"),
        ("123", "123"),
        (" 0123 ", "123"),
    ],
)
def test_legacy_id(value: str | int, expected: str) -> None:
    assert legacy_id(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "gid://shopify/Customer/",
        "gid://shopify/Customer/abc",
        "gid://other/Customer/123",
        "gid://shopify/MailingAddress/1?model_name=Address",
        "Customer/123",
        "",
        "-5",
        "١٢٣",  # Arabic-Indic digits are digits to str.isdigit, not to Shopify
        0,
        -1,
        True,
        None,
        1.0,
    ],
)
def test_legacy_id_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ValueError, match="id"):
        legacy_id(value)


@given(
    st.integers(min_value=1, max_value=2**63 - 1),
    st.sampled_from(["Customer", "Order", "LineItem", "Product", "ProductVariant"]),
)
def test_legacy_id_round_trips(number: int, resource: str) -> None:
    gid = f"gid://shopify/{resource}/{number}"
    assert legacy_id(gid) == str(number)
    assert legacy_id(number) == str(number)
    assert legacy_id(str(number)) == str(number)
    assert legacy_id(legacy_id(gid)) == legacy_id(gid)
    assert int(legacy_id(gid)) == number


# ---------------------------------------------------------------------------------- failures


@pytest.mark.parametrize(
    ("parser", "case", "change", "message"),
    [
        (order_from_rest, "order_rest_full", {"id": None, "admin_graphql_api_id": None}, "no id"),
        (
            order_from_rest,
            "order_rest_full",
            {"currency": None, "total_price_set": None},
            "no currency",
        ),
        (
            order_from_rest,
            "order_rest_full",
            {"total_price": None, "total_price_set": None},
            "no total",
        ),
        (order_from_rest, "order_rest_full", {"updated_at": None}, "no updated_at"),
        (
            order_from_rest,
            "order_rest_full",
            {"total_price": "lots", "total_price_set": None},
            "450789469",
        ),
        (
            order_from_rest,
            "order_rest_full",
            {"id": 1, "admin_graphql_api_id": "gid://shopify/Order/2"},
            "disagree",
        ),
        (order_from_graphql, "order_graphql_full", {"id": None, "legacyResourceId": None}, "no id"),
        (
            order_from_graphql,
            "order_graphql_full",
            {"currencyCode": None, "totalPriceSet": None},
            "no currency",
        ),
        (order_from_graphql, "order_graphql_full", {"totalPriceSet": None}, "no totalPriceSet"),
        (
            order_from_graphql,
            "order_graphql_full",
            {"createdAt": "2024-06-01T14:00:00"},
            "timezone",
        ),
        (
            customer_from_rest,
            "customer_rest_full",
            {"id": None, "admin_graphql_api_id": None},
            "no id",
        ),
        (customer_from_rest, "customer_rest_full", {"created_at": None}, "no created_at"),
        (customer_from_rest, "customer_rest_full", {"orders_count": "many"}, "whole number"),
        (customer_from_graphql, "customer_graphql_full", {"legacyResourceId": "x"}, "Shopify id"),
        (
            customer_from_graphql,
            "customer_graphql_full",
            {"amountSpent": {"amount": "1", "currencyCode": "ZZZ"}},
            "ZZZ",
        ),
        (customer_from_graphql, "customer_graphql_full", {"updatedAt": None}, "no updatedAt"),
    ],
)
def test_unusable_payloads_raise_mapping_error(
    parser: Any, case: str, change: dict[str, Any], message: str
) -> None:
    payload = {**load(case), **change}
    with pytest.raises(MappingError, match=message):
        parser(payload)


@pytest.mark.parametrize("parser", [order_from_rest, order_from_graphql, customer_from_rest])
def test_a_payload_that_is_not_an_object_is_a_mapping_error(parser: Any) -> None:
    with pytest.raises(MappingError, match="not an object"):
        parser(["not", "a", "dict"])


def test_customers_delete_body_is_not_a_customer() -> None:
    # customers/delete carries only the id; the sync deletes by id without mapping it.
    with pytest.raises(MappingError, match="no created_at"):
        customer_from_rest({"id": 207119551})


def test_a_line_item_without_id_or_price_is_a_mapping_error() -> None:
    payload = load("order_rest_full")
    del payload["line_items"][0]["id"]
    with pytest.raises(MappingError, match="line item has no id"):
        order_from_rest(payload)
    node = load("order_graphql_full")
    node["lineItems"]["nodes"][0]["originalUnitPriceSet"] = None
    with pytest.raises(MappingError, match="no quantity or unit price"):
        order_from_graphql(node)


# ---------------------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pending", FinancialStatus.pending),
        ("authorized", FinancialStatus.authorized),
        ("partially_paid", FinancialStatus.partially_paid),
        ("paid", FinancialStatus.paid),
        ("partially_refunded", FinancialStatus.partially_refunded),
        ("refunded", FinancialStatus.refunded),
        ("voided", FinancialStatus.voided),
        ("expired", FinancialStatus.expired),
        ("chargeback_pending", FinancialStatus.unknown),
        (None, FinancialStatus.unknown),
    ],
)
def test_rest_financial_status(value: str | None, expected: FinancialStatus) -> None:
    assert (
        order_from_rest({**load("order_rest_guest"), "financial_status": value}).financial_status
        == expected
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("PAID", FinancialStatus.paid),
        ("PARTIALLY_REFUNDED", FinancialStatus.partially_refunded),
        ("EXPIRED", FinancialStatus.expired),
        ("SOME_NEW_STATUS", FinancialStatus.unknown),
        (None, FinancialStatus.unknown),
    ],
)
def test_graphql_financial_status(value: str | None, expected: FinancialStatus) -> None:
    node = {**load("order_graphql_jpy"), "displayFinancialStatus": value}
    assert order_from_graphql(node).financial_status == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("FULFILLED", FulfillmentStatus.fulfilled),
        ("UNFULFILLED", FulfillmentStatus.unfulfilled),
        ("OPEN", FulfillmentStatus.unfulfilled),
        ("PARTIALLY_FULFILLED", FulfillmentStatus.partially_fulfilled),
        ("RESTOCKED", FulfillmentStatus.restocked),
        ("ON_HOLD", FulfillmentStatus.on_hold),
        ("SCHEDULED", FulfillmentStatus.scheduled),
        ("IN_PROGRESS", FulfillmentStatus.in_progress),
        ("PENDING_FULFILLMENT", FulfillmentStatus.in_progress),
        ("FULFILLMENT_NOT_REQUIRED", FulfillmentStatus.unknown),
        ("TELEPORTED", FulfillmentStatus.unknown),
    ],
)
def test_graphql_fulfillment_status(value: str, expected: FulfillmentStatus) -> None:
    node = {**load("order_graphql_jpy"), "displayFulfillmentStatus": value}
    assert order_from_graphql(node).fulfillment_status == expected


@pytest.mark.parametrize(
    ("payload_change", "expected"),
    [
        ({"fulfillment_status": None}, FulfillmentStatus.unfulfilled),
        ({"fulfillment_status": "partial"}, FulfillmentStatus.partially_fulfilled),
        ({"fulfillment_status": "fulfilled"}, FulfillmentStatus.fulfilled),
        ({"fulfillment_status": "restocked"}, FulfillmentStatus.restocked),
        ({"fulfillment_status": "beamed"}, FulfillmentStatus.unknown),
    ],
)
def test_rest_fulfillment_status(
    payload_change: dict[str, Any], expected: FulfillmentStatus
) -> None:
    assert (
        order_from_rest({**load("order_rest_guest"), **payload_change}).fulfillment_status
        == expected
    )


def test_rest_fulfillment_status_absent_is_unknown() -> None:
    payload = load("order_rest_guest")
    del payload["fulfillment_status"]
    assert order_from_rest(payload).fulfillment_status == FulfillmentStatus.unknown


def test_unknown_consent_state_is_unknown() -> None:
    node = load("customer_graphql_full")
    node["emailMarketingConsent"]["marketingState"] = "SOMETHING_NEW"
    assert customer_from_graphql(node).consent.email == ConsentState.unknown


# ---------------------------------------------------------------------------------- money


def test_rest_money_prefers_shop_money_over_presentment_and_plain() -> None:
    payload = load("order_rest_kwd_refunded")
    payload["total_price"] = "999.999"  # the *_set twin wins when present
    order = order_from_rest(payload)
    assert order.total.amount == Decimal("14.345")
    assert order.total.currency == "KWD"
    del payload["total_price_set"]
    assert order_from_rest(payload).total.amount == Decimal("999.999")


def _refund(kind: str, status: str, amount: str, currency: str | None = "EUR") -> dict[str, Any]:
    txn: dict[str, Any] = {"id": 1, "kind": kind, "status": status, "amount": amount}
    if currency is not None:
        txn["currency"] = currency
    return txn


@pytest.mark.parametrize(
    ("transactions", "expected"),
    [
        ([], "0.00"),
        ([_refund("refund", "success", "10.00")], "10.00"),
        ([_refund("refund", "success", "10.00"), _refund("refund", "success", "2.5")], "12.50"),
        ([_refund("refund", "failure", "10.00")], "0.00"),
        ([_refund("refund", "pending", "10.00")], "0.00"),
        ([_refund("sale", "success", "10.00")], "0.00"),
        ([_refund("refund", "success", "10.00", currency=None)], "10.00"),
        # A presentment-currency refund cannot be added to shop money.
        ([_refund("refund", "success", "10.00", currency="USD")], "0.00"),
    ],
)
def test_rest_refunded_sums_successful_refund_transactions(
    transactions: list[dict[str, Any]], expected: str
) -> None:
    payload = load("order_rest_partially_refunded")
    payload["refunds"] = [{"id": 1, "transactions": transactions}]
    assert str(order_from_rest(payload).refunded.amount) == expected


def test_rest_refunded_is_zero_without_refunds() -> None:
    payload = load("order_rest_partially_refunded")
    del payload["refunds"]
    assert order_from_rest(payload).refunded.amount == Decimal("0.00")


def test_rest_line_total_subtracts_only_the_lines_own_discounts() -> None:
    payload = load("order_rest_full")
    item = payload["line_items"][0]  # 2 x 199.00, allocations 10.00 (automatic) + 3.00 (code)
    assert order_from_rest(payload).line_items[0].total.amount == Decimal("388.00")
    payload["discount_applications"][1]["type"] = "manual"  # no longer a code...
    assert order_from_rest(payload).line_items[0].total.amount == Decimal("388.00")  # ...but "all"
    payload["discount_applications"][1]["target_selection"] = "explicit"
    assert order_from_rest(payload).line_items[0].total.amount == Decimal("385.00")
    item["discount_allocations"][1]["discount_application_index"] = 99  # unresolvable: counted
    payload["discount_applications"][1]["type"] = "discount_code"
    assert order_from_rest(payload).line_items[0].total.amount == Decimal("385.00")


def test_graphql_line_total_defaults_to_price_times_quantity() -> None:
    node = load("order_graphql_full")
    node["lineItems"]["nodes"][0]["discountedTotalSet"] = None
    assert order_from_graphql(node).line_items[0].total.amount == Decimal("398.00")


# ---------------------------------------------------------------------------------- shapes


def test_missing_optional_blocks_do_not_crash() -> None:
    node = load("order_graphql_full")
    for key in ("billingAddress", "shippingAddress", "customer", "lineItems", "tags", "note"):
        node[key] = None
    order = order_from_graphql(node)
    assert order.customer_source_id is None
    assert order.line_items == ()
    assert order.billing_address is None
    assert order.tags == ()
    minimal = {
        "id": 42,
        "currency": "USD",
        "total_price": "1.00",
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
    }
    order = order_from_rest(minimal)
    assert order.refunded.amount == Decimal("0.00")
    assert order.current_total is None
    assert order.financial_status == FinancialStatus.unknown


def test_tags_from_list_and_comma_string_agree() -> None:
    node = {**load("customer_graphql_full"), "tags": [" b ", "A", "", "a", "b"]}
    payload = {**load("customer_rest_full"), "tags": "b, A,, a ,b,"}
    assert customer_from_graphql(node).tags == ("A", "a", "b")
    assert customer_from_rest(payload).tags == ("A", "a", "b")


def test_phone_region_is_the_address_country_else_the_default_region() -> None:
    node = load("customer_graphql_no_email")
    node["defaultPhoneNumber"] = {"phoneNumber": "020 7946 0958"}  # a London number, no +44
    assert customer_from_graphql(node, default_region="GB").phone == "+442079460958"
    assert customer_from_graphql(node, default_region="US").phone is None
    assert customer_from_graphql(node).phone is None
    node["defaultAddress"] = {"countryCodeV2": "GB", "phone": "020 7946 0958"}
    customer = customer_from_graphql(node, default_region="US")
    assert customer.phone == "+442079460958"
    assert customer.default_address is not None
    assert customer.default_address.phone == "+442079460958"


def test_country_falls_back_to_the_country_name() -> None:
    payload = load("order_rest_partially_refunded")
    payload["billing_address"]["country_code"] = None
    order = order_from_rest(payload)
    assert order.billing_address is not None
    assert order.billing_address.country_code == "DE"


def test_webhook_without_tags_or_consent_lists_them_as_missing() -> None:
    customer = customer_from_rest(load("customer_rest_webhook_2025"))
    assert "tags" in customer.missing
    assert "consent.email" in customer.missing
    assert "consent.sms" in customer.missing
    assert "email" not in customer.missing


def test_rest_total_spent_without_currency_is_missing_not_guessed() -> None:
    payload = load("customer_rest_full")
    del payload["currency"]
    customer = customer_from_rest(payload)
    assert customer.total_spent is None
    assert "total_spent" in customer.missing


def test_graphql_legacy_scalars_email_and_phone_still_read() -> None:
    node = load("customer_graphql_full")
    del node["defaultEmailAddress"], node["defaultPhoneNumber"]
    node["email"], node["phone"] = "Old@Example.com", "+16135550142"
    customer = customer_from_graphql(node)
    assert customer.email == "old@example.com"
    assert customer.phone == "+16135550142"
    assert customer.missing == ()


def test_parsers_do_not_modify_their_input() -> None:
    for name, parser in [
        ("order_rest_full", order_from_rest),
        ("order_graphql_full", order_from_graphql),
        ("customer_rest_full", customer_from_rest),
        ("customer_graphql_full", customer_from_graphql),
    ]:
        payload = load(name)
        before = copy.deepcopy(payload)
        parser(payload)
        assert payload == before
