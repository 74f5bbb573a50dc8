"""How the store looks from outside: GraphQL Admin API objects and REST webhook payloads.

GraphQL conventions (seen in live Admin API answers, e.g. the captured responses in
``airhorns/shopify-draft-proxy`` fixtures/conformance): ids are GIDs, ``legacyResourceId`` and
other ``UnsignedInt64`` values are strings, money ``amount`` is a ``Decimal`` string without
trailing zeros beyond one decimal ("11884.9", "0.0"), timestamps are UTC with ``Z``, tags are a
list.

REST conventions (api-storefronts.md 1.9, from ``Shopify/shopify-app-js``
rest/admin/__tests__/2026-01/{order,customer}.test.ts fixtures): numeric ids, snake_case,
money as two-decimal strings with ``*_set`` twins, enums lower-case, ``tags`` a ", "-joined
string, timestamps with the shop's UTC offset ("2008-01-10T11:00:00-05:00").
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sandbox.shopify.store import Address, Consent, Customer, LineItem, Order, Shop

_COUNTRY_NAMES = {
    "US": "United States",
    "CA": "Canada",
    "GB": "United Kingdom",
    "DE": "Germany",
    "FR": "France",
    "JP": "Japan",
    "BR": "Brazil",
    "AU": "Australia",
    "ES": "Spain",
    "MX": "Mexico",
}


def gid(kind: str, number: int) -> str:
    return f"gid://shopify/{kind}/{number}"


def iso_z(moment: datetime | None) -> str | None:
    """GraphQL DateTime: UTC, whole seconds, ``Z``."""
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_local(moment: datetime | None, timezone: str) -> str | None:
    """REST timestamp in the shop's time zone, with its offset."""
    if moment is None:
        return None
    return moment.astimezone(ZoneInfo(timezone)).isoformat(timespec="seconds")


def gql_decimal(amount: Decimal) -> str:
    """Shopify's Decimal scalar: at least one decimal place, no padding zeros."""
    text = format(amount.normalize(), "f")
    return text if "." in text else f"{text}.0"


def rest_money(amount: Decimal) -> str:
    """REST money: a decimal string with two places ("597.00"), whatever the currency."""
    return f"{amount:.2f}"


def country_name(code: str | None) -> str | None:
    return _COUNTRY_NAMES.get(code or "", code)


# =========================================================================== GraphQL
def gql_address(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    name = " ".join(filter(None, [address.first_name, address.last_name])) or None
    area = ", ".join(
        filter(None, [address.city, address.province_code, country_name(address.country_code)])
    )
    return {
        "__typename": "MailingAddress",
        "id": f"{gid('MailingAddress', address.id)}?model_name=CustomerAddress",
        "firstName": address.first_name,
        "lastName": address.last_name,
        "name": name,
        "company": address.company,
        "address1": address.address1,
        "address2": address.address2,
        "city": address.city,
        "province": address.province,
        "provinceCode": address.province_code,
        "country": country_name(address.country_code),
        "countryCodeV2": address.country_code,
        "zip": address.zip,
        "phone": address.phone,
        "formattedArea": area or None,
    }


def _gql_money(amount: Decimal, currency: str) -> dict[str, Any]:
    return {"amount": gql_decimal(amount), "currencyCode": currency}


def gql_money_bag(order: Order, amount: Decimal) -> dict[str, Any]:
    return {
        "shopMoney": _gql_money(amount, order.currency),
        "presentmentMoney": _gql_money(order.presentment(amount), order.presentment_currency),
    }


def _gql_consent(consent: Consent | None, *, sms: bool) -> dict[str, Any] | None:
    if consent is None:
        return None
    out = {
        "marketingState": consent.state,
        "marketingOptInLevel": consent.opt_in_level,
        "consentUpdatedAt": iso_z(consent.updated_at),
    }
    if sms:
        out["consentCollectedFrom"] = consent.collected_from
    return out


def gql_customer(shop: Shop, customer: Customer) -> dict[str, Any]:
    orders = [o for o in shop.orders_of(customer.id) if o.cancelled_at is None]
    spent = sum((o.current_total for o in orders), Decimal(0))
    email_state = customer.email_consent.state if customer.email_consent else "NOT_SUBSCRIBED"
    sms = customer.sms_consent
    display = " ".join(filter(None, [customer.first_name, customer.last_name]))
    return {
        "__typename": "Customer",
        "id": gid("Customer", customer.id),
        "legacyResourceId": str(customer.id),
        "firstName": customer.first_name,
        "lastName": customer.last_name,
        "displayName": display or customer.email or customer.phone or "",
        "email": customer.email,
        "phone": customer.phone,
        "defaultEmailAddress": None
        if customer.email is None
        else {
            "emailAddress": customer.email,
            # CustomerEmailAddressMarketingState has no REDACTED value.
            "marketingState": email_state if email_state != "REDACTED" else "NOT_SUBSCRIBED",
            "marketingOptInLevel": customer.email_consent.opt_in_level
            if customer.email_consent
            else None,
            "marketingUpdatedAt": iso_z(customer.email_consent.updated_at)
            if customer.email_consent
            else None,
            "validFormat": "@" in customer.email,
        },
        "defaultPhoneNumber": None
        if customer.phone is None
        else {
            "phoneNumber": customer.phone,
            "marketingState": sms.state if sms else "NOT_SUBSCRIBED",
            "marketingOptInLevel": sms.opt_in_level if sms else None,
            "marketingUpdatedAt": iso_z(sms.updated_at) if sms else None,
            "marketingCollectedFrom": sms.collected_from if sms else None,
        },
        "locale": customer.locale,
        "note": customer.note,
        "state": customer.state,
        "tags": list(customer.tags),
        "taxExempt": customer.tax_exempt,
        "verifiedEmail": customer.verified_email,
        "createdAt": iso_z(customer.created_at),
        "updatedAt": iso_z(customer.updated_at),
        "numberOfOrders": str(len(orders)),
        "amountSpent": _gql_money(spent, shop.currency),
        "emailMarketingConsent": _gql_consent(customer.email_consent, sms=False),
        "smsMarketingConsent": _gql_consent(customer.sms_consent, sms=True),
        "defaultAddress": gql_address(customer.default_address),
        "addresses": [gql_address(a) for a in customer.addresses],
    }


def gql_line_item(order: Order, item: LineItem) -> dict[str, Any]:
    return {
        "__typename": "LineItem",
        "id": gid("LineItem", item.id),
        "name": item.name,
        "title": item.title,
        "variantTitle": item.variant_title,
        "sku": item.sku,
        "vendor": item.vendor,
        "quantity": item.quantity,
        "currentQuantity": item.remaining,
        "originalUnitPriceSet": gql_money_bag(order, item.unit_price),
        "originalTotalSet": gql_money_bag(order, item.unit_price * item.quantity),
        "discountedTotalSet": gql_money_bag(order, item.unit_price * item.quantity - item.discount),
        "product": None
        if item.product_id is None
        else {"__typename": "Product", "id": gid("Product", item.product_id), "title": item.title},
        "variant": None
        if item.variant_id is None
        else {
            "__typename": "ProductVariant",
            "id": gid("ProductVariant", item.variant_id),
            "title": item.variant_title or "Default Title",
            "sku": item.sku,
        },
    }


def gql_order(shop: Shop, order: Order) -> dict[str, Any]:
    """The Order object; ``lineItems`` is resolved (and paginated) by the schema from
    ``_line_items``."""
    return {
        "__typename": "Order",
        "id": gid("Order", order.id),
        "legacyResourceId": str(order.id),
        "name": order.name,
        "email": order.email,
        "phone": order.phone,
        "createdAt": iso_z(order.created_at),
        "updatedAt": iso_z(order.updated_at),
        "processedAt": iso_z(order.processed_at),
        "cancelledAt": iso_z(order.cancelled_at),
        "cancelReason": order.cancel_reason,
        "closedAt": iso_z(order.closed_at),
        "closed": order.closed_at is not None,
        "currencyCode": order.currency,
        "presentmentCurrencyCode": order.presentment_currency,
        "displayFinancialStatus": order.financial_status,
        "displayFulfillmentStatus": order.fulfillment_status,
        "tags": list(order.tags),
        "note": order.note,
        "test": order.test,
        "totalPriceSet": gql_money_bag(order, order.total_price),
        "subtotalPriceSet": gql_money_bag(order, order.subtotal),
        "totalTaxSet": gql_money_bag(order, order.total_tax),
        "totalDiscountsSet": gql_money_bag(order, order.total_discounts),
        "totalShippingPriceSet": gql_money_bag(order, order.shipping),
        "totalRefundedSet": gql_money_bag(order, order.total_refunded),
        "currentTotalPriceSet": gql_money_bag(order, order.current_total),
        "customer": None
        if order.customer_id is None or order.customer_id not in shop.customers
        else gql_customer(shop, shop.customers[order.customer_id]),
        "billingAddress": gql_address(order.billing_address),
        "shippingAddress": gql_address(order.shipping_address),
        "_line_items": [gql_line_item(order, li) for li in order.line_items],
    }


# =========================================================================== REST
def _rest_money_set(order: Order, amount: Decimal) -> dict[str, Any]:
    return {
        "shop_money": {
            "amount": rest_money(amount),
            "currency_code": order.currency,
        },
        "presentment_money": {
            "amount": rest_money(order.presentment(amount)),
            "currency_code": order.presentment_currency,
        },
    }


def _rest_consent(consent: Consent | None, timezone: str, *, sms: bool) -> dict[str, Any] | None:
    if consent is None:
        return None
    out = {
        "state": consent.state.lower(),
        "opt_in_level": consent.opt_in_level.lower() if consent.opt_in_level else None,
        "consent_updated_at": iso_local(consent.updated_at, timezone),
    }
    if sms:
        out["consent_collected_from"] = consent.collected_from
    return out


def rest_address(
    address: Address | None, *, customer_id: int | None = None, default: bool | None = None
) -> dict[str, Any] | None:
    if address is None:
        return None
    out: dict[str, Any] = {
        "first_name": address.first_name,
        "last_name": address.last_name,
        "company": address.company,
        "address1": address.address1,
        "address2": address.address2,
        "city": address.city,
        "province": address.province,
        "country": country_name(address.country_code),
        "zip": address.zip,
        "phone": address.phone,
        "name": " ".join(filter(None, [address.first_name, address.last_name])),
        "province_code": address.province_code,
        "country_code": address.country_code,
    }
    if customer_id is not None:
        out = {"id": address.id, "customer_id": customer_id, **out}
        out["country_name"] = country_name(address.country_code)
        out["default"] = bool(default)
    return out


def rest_customer(shop: Shop, customer: Customer, *, nested: bool = False) -> dict[str, Any]:
    """A customer as ``customers/*`` webhooks (and ``order.customer``) carry it."""
    tz = shop.timezone
    orders = sorted(shop.orders_of(customer.id), key=lambda o: o.created_at)
    live = [o for o in orders if o.cancelled_at is None]
    default = customer.default_address
    out: dict[str, Any] = {
        "id": customer.id,
        "email": customer.email,
        "created_at": iso_local(customer.created_at, tz),
        "updated_at": iso_local(customer.updated_at, tz),
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "state": customer.state.lower(),
        "note": customer.note,
        "verified_email": customer.verified_email,
        "multipass_identifier": None,
        "tax_exempt": customer.tax_exempt,
        "phone": customer.phone,
        "email_marketing_consent": _rest_consent(customer.email_consent, tz, sms=False),
        "sms_marketing_consent": _rest_consent(customer.sms_consent, tz, sms=True),
        "tags": ", ".join(customer.tags),
        "currency": shop.currency,
        "tax_exemptions": [],
        "admin_graphql_api_id": gid("Customer", customer.id),
        "default_address": rest_address(default, customer_id=customer.id, default=True),
    }
    if not nested and shop.api_version >= "2025-01":  # "unstable" sorts after every release
        # From 2025-01 customer webhooks no longer carry tags or marketing consent (they have
        # topics of their own): https://shopify.dev/changelog/new-customer-s-webhook-and-changes-to-existing-customer-s-webhooks-payload
        for removed in ("tags", "email_marketing_consent", "sms_marketing_consent"):
            del out[removed]
    if not nested:
        out["orders_count"] = len(live)
        out["total_spent"] = rest_money(sum((o.current_total for o in live), Decimal(0)))
        out["last_order_id"] = orders[-1].id if orders else None
        out["last_order_name"] = orders[-1].name if orders else None
        out["addresses"] = [
            rest_address(a, customer_id=customer.id, default=a.id == customer.default_address_id)
            for a in customer.addresses
        ]
    return out


def rest_line_item(
    order: Order, item: LineItem, application_index: int | None = None
) -> dict[str, Any]:
    """A REST line item. Its own discount appears, as in current versions, only as a
    discount allocation pointing at ``application_index`` (``total_discount`` stays 0)."""
    allocations = []
    if application_index is not None:
        allocations.append(
            {
                "amount": rest_money(item.discount),
                "amount_set": _rest_money_set(order, item.discount),
                "discount_application_index": application_index,
            }
        )
    return {
        "id": item.id,
        "admin_graphql_api_id": gid("LineItem", item.id),
        "current_quantity": item.remaining,
        "fulfillable_quantity": item.remaining if order.fulfillment_status != "FULFILLED" else 0,
        "fulfillment_status": "fulfilled" if order.fulfillment_status == "FULFILLED" else None,
        "gift_card": False,
        "grams": item.grams,
        "name": item.name,
        "price": rest_money(item.unit_price),
        "price_set": _rest_money_set(order, item.unit_price),
        "product_exists": item.product_id is not None,
        "product_id": item.product_id,
        "properties": [],
        "quantity": item.quantity,
        "requires_shipping": True,
        "sku": item.sku,
        "taxable": True,
        "title": item.title,
        "total_discount": rest_money(Decimal(0)),
        "total_discount_set": _rest_money_set(order, Decimal(0)),
        "variant_id": item.variant_id,
        "variant_title": item.variant_title,
        "vendor": item.vendor,
        "tax_lines": [],
        "duties": [],
        "discount_allocations": allocations,
    }


def _rest_discounts(order: Order) -> tuple[list[dict[str, Any]], list[int | None]]:
    """One manual line-level discount application per discounted line, and each line's index
    into them (https://shopify.dev/docs/api/admin-rest/latest/resources/order,
    discount_applications)."""
    applications: list[dict[str, Any]] = []
    indexes: list[int | None] = []
    for item in order.line_items:
        if not item.discount:
            indexes.append(None)
            continue
        indexes.append(len(applications))
        applications.append(
            {
                "target_type": "line_item",
                "type": "manual",
                "value": rest_money(item.discount),
                "value_type": "fixed_amount",
                "allocation_method": "one",
                "target_selection": "explicit",
                "title": "Loyalty discount",
                "description": "Loyalty discount",
            }
        )
    return applications, indexes


def rest_order(shop: Shop, order: Order) -> dict[str, Any]:
    """An order as ``orders/*`` webhooks carry it."""
    tz = shop.timezone
    applications, indexes = _rest_discounts(order)
    customer = shop.customers.get(order.customer_id) if order.customer_id else None
    money = {
        "current_subtotal_price": order.subtotal,
        "current_total_discounts": order.total_discounts,
        "current_total_price": order.current_total,
        "current_total_tax": order.total_tax,
        "subtotal_price": order.subtotal,
        "total_discounts": order.total_discounts,
        "total_line_items_price": order.line_items_total,
        "total_price": order.total_price,
        "total_tax": order.total_tax,
    }
    out: dict[str, Any] = {
        "id": order.id,
        "admin_graphql_api_id": gid("Order", order.id),
        "buyer_accepts_marketing": order.buyer_accepts_marketing,
        "cancel_reason": order.cancel_reason.lower() if order.cancel_reason else None,
        "cancelled_at": iso_local(order.cancelled_at, tz),
        "closed_at": iso_local(order.closed_at, tz),
        "confirmation_number": None,
        "confirmed": True,
        "contact_email": order.email,
        "created_at": iso_local(order.created_at, tz),
        "currency": order.currency,
        "customer_locale": order.customer_locale,
        "email": order.email,
        "financial_status": order.financial_status.lower(),
        "fulfillment_status": _rest_fulfillment(order.fulfillment_status),
        "name": order.name,
        "note": order.note,
        "note_attributes": [],
        "number": order.number,
        "order_number": 1000 + order.number,
        "phone": order.phone,
        "presentment_currency": order.presentment_currency,
        "processed_at": iso_local(order.processed_at, tz),
        "source_name": order.source_name,
        "tags": ", ".join(order.tags),
        "taxes_included": False,
        "test": order.test,
        "total_outstanding": rest_money(
            order.total_price if order.financial_status in ("PENDING", "AUTHORIZED") else Decimal(0)
        ),
        "total_shipping_price_set": _rest_money_set(order, order.shipping),
        "total_tip_received": "0.00",
        "total_weight": sum(li.grams * li.quantity for li in order.line_items),
        "updated_at": iso_local(order.updated_at, tz),
        "billing_address": rest_address(order.billing_address),
        "shipping_address": rest_address(order.shipping_address),
        "customer": rest_customer(shop, customer, nested=True) if customer else None,
        "discount_codes": [],
        "discount_applications": applications,
        "line_items": [
            rest_line_item(order, li, index)
            for li, index in zip(order.line_items, indexes, strict=True)
        ],
        "refunds": [
            {
                "id": r.id,
                "admin_graphql_api_id": gid("Refund", r.id),
                "created_at": iso_local(r.created_at, tz),
                "note": r.note,
                "order_id": order.id,
                "processed_at": iso_local(r.created_at, tz),
                "transactions": [
                    {
                        "amount": rest_money(r.amount),
                        "currency": order.currency,
                        "kind": "refund",
                        "status": "success",
                    }
                ],
                "refund_line_items": [],
            }
            for r in order.refunds
        ],
        "shipping_lines": [],
        "tax_lines": [],
        "fulfillments": [],
        "payment_gateway_names": ["shopify_payments"],
    }
    for key, amount in money.items():
        out[key] = rest_money(amount)
        out[f"{key}_set"] = _rest_money_set(order, amount)
    return dict(sorted(out.items()))


def _rest_fulfillment(status: str) -> str | None:
    return {
        "FULFILLED": "fulfilled",
        "PARTIALLY_FULFILLED": "partial",
        "RESTOCKED": "restocked",
    }.get(status)


def rest_shop(shop: Shop) -> dict[str, Any]:
    """The shop object ``app/uninstalled`` carries (REST Shop resource, abridged)."""
    return {
        "id": shop.shop_id,
        "name": shop.name,
        "email": f"owner@{shop.domain}",
        "domain": shop.domain,
        "myshopify_domain": shop.domain,
        "country_code": shop.country,
        "currency": shop.currency,
        "iana_timezone": shop.timezone,
        "plan_name": "basic",
    }
