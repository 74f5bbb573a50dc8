"""Zoho CRM's schema: the modules, field API names and stages Tandem writes.

Contacts are upserted by ``Email`` (a system unique field on Contacts); orders become Deals
upserted by ``Tandem_Order_Id``, a custom field the org must have with "do not allow duplicate
values" set, and linked to their buyer by the ``Contact_Name`` lookup on the deal itself.
Values are typed JSON (``mapping.crm.render_json``): Zoho's currency and number fields take
numbers, date fields "YYYY-MM-DD", lookups ``{"id": ...}``.

Field API names and mandatory fields: https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html
and the modules' field metadata (https://www.zoho.com/crm/developer/docs/api/v8/field-meta.html).
"""

from __future__ import annotations

import types
from dataclasses import replace

from mapping.crm import CrmSchema, ProductSpec, render_json, stage_map
from mapping.facts import CurrencyFact, Fact, FactsNaming
from mapping.fieldmap import FieldMap

CONTACT_FIELDS = FieldMap(
    "contact",
    {
        "Email": "email",
        "First_Name": "first_name",
        "Last_Name": "derived.last_name_required",
        "Phone": "phone",
        "Mailing_Street": "derived.street_address",
        "Mailing_City": "default_address.city",
        "Mailing_State": "default_address.province",
        "Mailing_Zip": "default_address.postal_code",
        "Mailing_Country": "default_address.country_code",
        "Tandem_Email_Consent": "consent.email",
        "Tandem_SMS_Consent": "consent.sms",
        "Tandem_Customer_Tags": "tags",
    },
)

DEAL_FIELDS = FieldMap(
    "deal",
    {
        "Deal_Name": "derived.deal_name",
        "Amount": "total.amount",
        # Only orgs with multi-currency enabled have it; a single-currency org drops it with
        # `flask fieldmap set ID deal Currency --drop` (amounts are then in the org's currency).
        "Currency": "currency",
        "Closing_Date": "derived.close_day",
        "Stage": "derived.deal_stage",
        "Tandem_Order_Id": "derived.external_id",
        "Tandem_Order_Number": "name",
        "Tandem_Financial_Status": "financial_status",
        "Tandem_Fulfillment_Status": "fulfillment_status",
        "Tandem_Refunded_Amount": "refunded.amount",
    },
)

# Zoho's default Deals stages (a standard org's "Stage" picklist).
STAGE_MAP = stage_map(
    open_stage="Negotiation/Review", won="Closed Won", lost="Closed Lost", unknown="Qualification"
)

# Contact fields of the commerce facts (mapping.facts), which the org's admin creates, as for
# Tandem's other Zoho fields: Number fields for the counts, Decimal fields for the amounts (not
# Currency fields, which a multi-currency org presumably shows in the record's own currency:
# UNCONFIRMED; each of these holds the currency in its name), Date fields for the dates. One set
# of money fields per currency the merchant sells in; the connect-time check names any missing.
FACTS = FactsNaming(
    fields=types.MappingProxyType(
        {
            Fact.order_count: "Tandem_Order_Count",
            Fact.first_order_date: "Tandem_First_Order_Date",
            Fact.last_order_date: "Tandem_Last_Order_Date",
        }
    ),
    currency_fields=types.MappingProxyType(
        {
            CurrencyFact.order_count: "Tandem_Order_Count_{currency}",
            CurrencyFact.total_spent: "Tandem_Total_Spent_{currency}",
            CurrencyFact.average_order_value: "Tandem_Average_Order_Value_{currency}",
            CurrencyFact.refunds: "Tandem_Refunds_{currency}",
        }
    ),
)

SCHEMA = CrmSchema(
    platform="zoho",
    title="Zoho CRM",
    contact_object="Contacts",
    order_object="Deals",
    line_item_object=None,
    email_field="Email",
    first_name_field="First_Name",
    last_name_field="Last_Name",
    order_key="Tandem_Order_Id",
    line_item_key=None,
    contact_fields=CONTACT_FIELDS,
    order_fields=DEAL_FIELDS,
    line_item_fields=None,
    stage_map=STAGE_MAP,
    pipeline=None,
    render=render_json,
    required=types.MappingProxyType(
        {"contact": frozenset({"Last_Name"}), "deal": frozenset({"Deal_Name", "Stage"})}
    ),
    fixed=types.MappingProxyType(
        {"contact": {"Email": "email"}, "deal": {"Tandem_Order_Id": "derived.external_id"}}
    ),
    custom_fields=types.MappingProxyType(
        {
            "Contacts": ("Tandem_Email_Consent", "Tandem_SMS_Consent", "Tandem_Customer_Tags"),
            "Deals": (
                "Tandem_Order_Id",
                "Tandem_Order_Number",
                "Tandem_Financial_Status",
                "Tandem_Fulfillment_Status",
                "Tandem_Refunded_Amount",
            ),
        }
    ),
    order_contact_field="Contact_Name",
    contact_reference=lambda contact_id: {"id": contact_id},
    facts=FACTS,
)

# ------------------------------------------------------------------ orders as Sales_Orders
# A connection may keep orders as Sales Orders instead (setting ``orders_as``: Sales_Orders):
# each line a row of the Ordered_Items subform, pointing at a Products record Tandem upserts by
# Tandem_Product_Key. Zoho totals the rows itself (Sub_Total), then adds Tax and Adjustment to
# make Grand_Total, so the adjustment carries shipping, fees and order-level discounts and the
# Grand_Total is the store's total (https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html,
# Sales_Orders; subform rows: .../update-subforms.html).

SALES_ORDER_FIELDS = FieldMap(
    "deal",
    {
        "Subject": "derived.deal_name",
        "Currency": "currency",
        "Tax": "tax.amount",
        "Adjustment": "derived.adjustment",
        "Tandem_Order_Id": "derived.external_id",
        "Tandem_Order_Number": "name",
        "Tandem_Financial_Status": "financial_status",
        "Tandem_Fulfillment_Status": "fulfillment_status",
        "Tandem_Refunded_Amount": "refunded.amount",
    },
)

# One Ordered_Items row. Zoho computes the row's Total (List_Price x Quantity) and
# Net_Total (after Discount, an amount for the whole row).
ORDERED_ITEM_FIELDS = FieldMap(
    "line_item",
    {
        "Quantity": "quantity",
        "List_Price": "unit_price.amount",
        "Discount": "derived.line_discount",
        "Description": "derived.name",
    },
)

PRODUCT_FIELDS = FieldMap(
    "line_item",
    {
        "Product_Name": "derived.name",
        "Product_Code": "sku",
        "Unit_Price": "unit_price.amount",
        "Tandem_Product_Key": "derived.product_key",
    },
)

SALES_ORDER_SCHEMA = replace(
    SCHEMA,
    order_object="Sales_Orders",
    order_fields=SALES_ORDER_FIELDS,
    line_item_fields=ORDERED_ITEM_FIELDS,
    line_items_field="Ordered_Items",
    line_item_product_field="Product_Name",
    product=ProductSpec("Products", "Tandem_Product_Key", PRODUCT_FIELDS),
    product_reference=lambda product_id: {"id": product_id},
    required=types.MappingProxyType(
        {
            "contact": frozenset({"Last_Name"}),
            "deal": frozenset({"Subject"}),
            "line_item": frozenset({"Quantity"}),
        }
    ),
    fixed=types.MappingProxyType(
        {"contact": {"Email": "email"}, "deal": {"Tandem_Order_Id": "derived.external_id"}}
    ),
    custom_fields=types.MappingProxyType(
        {
            "Contacts": SCHEMA.custom_fields["Contacts"],
            "Sales_Orders": SCHEMA.custom_fields["Deals"],
            "Products": ("Tandem_Product_Key",),
        }
    ),
)

ORDER_SCHEMAS = {"Deals": SCHEMA, "Sales_Orders": SALES_ORDER_SCHEMA}
