"""Properties of the WooCommerce and BigCommerce parsers over generated payloads."""

from __future__ import annotations

import contextlib
import copy
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from mapping import MappingError, bigcommerce, woocommerce

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
WOO_ORDER = json.loads(
    (GOLDEN / "woocommerce" / "order_berlin_partially_refunded.input.json").read_text()
)
BC_ORDER = json.loads(
    (
        GOLDEN / "bigcommerce" / "order_multi_currency_guest_partially_refunded.input.json"
    ).read_text()
)

cents = st.integers(min_value=0, max_value=10**9)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 1, 1)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)


@given(st.timedeltas(min_value=timedelta(hours=-14), max_value=timedelta(hours=14)))
def test_woocommerce_site_local_dates_never_matter(shift: timedelta) -> None:
    """Only the _gmt twins are read: a store in any time zone gives the same record."""
    moved = copy.deepcopy(WOO_ORDER)
    for key in ("date_created", "date_modified", "date_paid", "date_completed"):
        local = datetime.fromisoformat(moved[key]) + shift
        moved[key] = local.strftime("%Y-%m-%dT%H:%M:%S")
    assert woocommerce.order_from_rest(moved) == woocommerce.order_from_rest(WOO_ORDER)


@given(cents, cents, moments)
def test_woocommerce_money_and_times_are_exact(total: int, refund: int, modified: datetime) -> None:
    order = copy.deepcopy(WOO_ORDER)
    order["total"] = f"{Decimal(total) / 100:.2f}"
    order["refunds"] = [{"id": 1, "reason": "", "total": f"-{Decimal(refund) / 100:.2f}"}]
    order["date_modified_gmt"] = modified.strftime("%Y-%m-%dT%H:%M:%S")
    parsed = woocommerce.order_from_rest(order)
    assert parsed.total.amount == Decimal(total) / 100
    assert parsed.refunded.amount == Decimal(refund) / 100
    assert parsed.updated_at == modified and parsed.updated_at.tzinfo is not None


@given(cents, st.sampled_from(["USD", "EUR", "JPY", "KWD"]), moments)
def test_bigcommerce_four_decimal_money_is_quantised_to_the_currency(
    hundredths: int, currency: str, modified: datetime
) -> None:
    order = copy.deepcopy(BC_ORDER)
    order["total_inc_tax"] = f"{Decimal(hundredths) / 100:.4f}"
    order["default_currency_code"] = order["currency_code"] = currency
    order["date_modified"] = format_datetime(modified)
    parsed = bigcommerce.order_from_v2(order)
    assert parsed.currency == currency
    assert parsed.total.amount == (Decimal(hundredths) / 100).quantize(parsed.total.amount)
    assert parsed.updated_at == modified


junk = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=8),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)  # fmt: skip


@settings(max_examples=300)
@given(st.sampled_from(sorted(WOO_ORDER)), st.sampled_from(sorted(BC_ORDER)), junk)
def test_a_malformed_value_is_a_mapping_error_or_harmless(woo_key: str, bc_key: str, value) -> None:
    """Whatever one field holds, the parsers either read the record or raise MappingError."""
    for parse, payload, key in (
        (woocommerce.order_from_rest, WOO_ORDER, woo_key),
        (bigcommerce.order_from_v2, BC_ORDER, bc_key),
    ):
        broken = {**payload, key: value}
        with contextlib.suppress(MappingError):
            parse(broken)
