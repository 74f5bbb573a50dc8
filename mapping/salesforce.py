"""Salesforce's schema: the sObjects, field API names and stages Tandem writes.

Contacts are upserted by ``Tandem_Contact_Key__c`` (an external-id field Tandem owns; its value
is the normalised email, so one person is one contact whichever store they bought in); orders
become Opportunities upserted by ``Tandem_Order_Id__c`` (external id, unique) and are linked to
their buyer by an OpportunityContactRole, which the connector writes. Values are typed JSON
(``mapping.crm.render_json``): Amount is a number, CloseDate a date.

Fields: https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_contact.htm
and .../sforce_api_objects_opportunity.htm (required: Contact LastName; Opportunity Name,
StageName, CloseDate).
"""

from __future__ import annotations

import types
from dataclasses import replace

from mapping.crm import CrmSchema, ProductSpec, render_json, stage_map
from mapping.facts import CurrencyFact, Fact, FactsNaming
from mapping.fieldmap import FieldMap

CONTACT_KEY_FIELD = "Tandem_Contact_Key__c"

CONTACT_FIELDS = FieldMap(
    "contact",
    {
        "Email": "email",
        "FirstName": "first_name",
        "LastName": "derived.last_name_required",
        "Phone": "phone",
        "MailingStreet": "derived.street_address",
        "MailingCity": "default_address.city",
        "MailingState": "default_address.province",
        "MailingPostalCode": "default_address.postal_code",
        "MailingCountry": "default_address.country_code",
        "Tandem_Email_Consent__c": "consent.email",
        "Tandem_SMS_Consent__c": "consent.sms",
        "Tandem_Customer_Tags__c": "tags",
    },
)

OPPORTUNITY_FIELDS = FieldMap(
    "deal",
    {
        "Name": "derived.deal_name",
        "Amount": "total.amount",
        # Exists only in orgs with multi-currency enabled; a single-currency org drops it with
        # `flask fieldmap set ID deal CurrencyIsoCode --drop`.
        "CurrencyIsoCode": "currency",
        "CloseDate": "derived.close_day",
        "StageName": "derived.deal_stage",
        "Tandem_Order_Id__c": "derived.external_id",
        "Tandem_Order_Number__c": "name",
        "Tandem_Financial_Status__c": "financial_status",
        "Tandem_Fulfillment_Status__c": "fulfillment_status",
        "Tandem_Refunded_Amount__c": "refunded.amount",
    },
)

# The default Opportunity StageName picklist of a new org.
STAGE_MAP = stage_map(
    open_stage="Negotiation/Review", won="Closed Won", lost="Closed Lost", unknown="Prospecting"
)

# Contact fields of the commerce facts (mapping.facts), which the org's admin creates: Number
# fields (scale 0 for counts, the currency's decimals for amounts), not Currency fields, which
# a multi-currency org reads in the record's own currency ("the record's currency Amount value",
# https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_sosl_querying_currency_fields.htm),
# while each of these holds the currency in its name; Date fields for the dates. One set of
# money fields per currency the merchant sells in; the connect-time check names any missing.
FACTS = FactsNaming(
    fields=types.MappingProxyType(
        {
            Fact.order_count: "Tandem_Order_Count__c",
            Fact.first_order_date: "Tandem_First_Order_Date__c",
            Fact.last_order_date: "Tandem_Last_Order_Date__c",
        }
    ),
    currency_fields=types.MappingProxyType(
        {
            CurrencyFact.order_count: "Tandem_Order_Count_{currency}__c",
            CurrencyFact.total_spent: "Tandem_Total_Spent_{currency}__c",
            CurrencyFact.average_order_value: "Tandem_Average_Order_Value_{currency}__c",
            CurrencyFact.refunds: "Tandem_Refunds_{currency}__c",
        }
    ),
)

SCHEMA = CrmSchema(
    platform="salesforce",
    title="Salesforce",
    contact_object="Contact",
    order_object="Opportunity",
    line_item_object=None,
    email_field="Email",
    first_name_field="FirstName",
    last_name_field="LastName",
    order_key="Tandem_Order_Id__c",
    line_item_key=None,
    contact_fields=CONTACT_FIELDS,
    order_fields=OPPORTUNITY_FIELDS,
    line_item_fields=None,
    stage_map=STAGE_MAP,
    pipeline=None,
    render=render_json,
    required=types.MappingProxyType(
        {
            "contact": frozenset({"LastName"}),
            "deal": frozenset({"Name", "StageName", "CloseDate"}),
        }
    ),
    fixed=types.MappingProxyType(
        {"contact": {"Email": "email"}, "deal": {"Tandem_Order_Id__c": "derived.external_id"}}
    ),
    custom_fields=types.MappingProxyType(
        {
            "Contact": (
                CONTACT_KEY_FIELD,
                "Tandem_Email_Consent__c",
                "Tandem_SMS_Consent__c",
                "Tandem_Customer_Tags__c",
            ),
            "Opportunity": (
                "Tandem_Order_Id__c",
                "Tandem_Order_Number__c",
                "Tandem_Financial_Status__c",
                "Tandem_Fulfillment_Status__c",
                "Tandem_Refunded_Amount__c",
            ),
        }
    ),
    facts=FACTS,
)

# ------------------------------------------------------------------ orders as Order + OrderItem
# A connection may keep orders as Salesforce Orders instead (setting ``orders_as``: Order):
# a Draft Order under the Account the connection names (``order_account_id``), in the standard
# price book, billed to the buyer's contact, with one OrderItem per line (upserted by
# Tandem_Line_Item_Id__c) pointing at the price-book entry of a Product2 Tandem upserts by
# Tandem_Product_Key__c (sforce_api_objects_order.htm, _orderitem.htm, _pricebookentry.htm).
# OrderItem has no discount: UnitPrice is the line's net unit price, and Order.TotalAmount (the
# sum of the items) leaves out shipping and tax, so the store's total is kept beside it in
# Tandem_Order_Total__c.

ORDER_FIELDS = FieldMap(
    "deal",
    {
        "Description": "derived.deal_name",
        "EffectiveDate": "derived.close_day",
        "CurrencyIsoCode": "currency",
        "Tandem_Order_Id__c": "derived.external_id",
        "Tandem_Order_Number__c": "name",
        "Tandem_Order_Total__c": "total.amount",
        "Tandem_Financial_Status__c": "financial_status",
        "Tandem_Fulfillment_Status__c": "fulfillment_status",
        "Tandem_Refunded_Amount__c": "refunded.amount",
    },
)

ORDER_ITEM_FIELDS = FieldMap(
    "line_item",
    {
        "Quantity": "quantity",
        "UnitPrice": "derived.net_unit_price",
        "Description": "derived.name",
        "Tandem_Line_Item_Id__c": "derived.external_id",
    },
)

PRODUCT_FIELDS = FieldMap(
    "line_item",
    {
        "Name": "derived.name",
        "ProductCode": "sku",
        "IsActive": "derived.active",
        "Tandem_Product_Key__c": "derived.product_key",
    },
)

ORDER_SCHEMA = replace(
    SCHEMA,
    order_object="Order",
    order_key="Tandem_Order_Id__c",
    order_fields=ORDER_FIELDS,
    line_item_object="OrderItem",
    line_item_key="Tandem_Line_Item_Id__c",
    line_item_fields=ORDER_ITEM_FIELDS,
    line_item_order_field="OrderId",
    line_item_product_field="PricebookEntryId",
    product=ProductSpec("Product2", "Tandem_Product_Key__c", PRODUCT_FIELDS, price_book=True),
    order_contact_field="BillToContactId",
    order_price_book_field="Pricebook2Id",
    order_constants=types.MappingProxyType({"Status": "Draft"}),
    order_settings=types.MappingProxyType({"AccountId": "order_account_id"}),
    required=types.MappingProxyType(
        {
            "contact": frozenset({"LastName"}),
            "deal": frozenset({"EffectiveDate"}),
            "line_item": frozenset({"Quantity", "UnitPrice"}),
        }
    ),
    fixed=types.MappingProxyType(
        {
            "contact": {"Email": "email"},
            "deal": {"Tandem_Order_Id__c": "derived.external_id"},
            "line_item": {"Tandem_Line_Item_Id__c": "derived.external_id"},
        }
    ),
    custom_fields=types.MappingProxyType(
        {
            "Contact": SCHEMA.custom_fields["Contact"],
            "Order": (*SCHEMA.custom_fields["Opportunity"], "Tandem_Order_Total__c"),
            "OrderItem": ("Tandem_Line_Item_Id__c",),
            "Product2": ("Tandem_Product_Key__c",),
        }
    ),
)

ORDER_SCHEMAS = {"Opportunity": SCHEMA, "Order": ORDER_SCHEMA}
