"""What a fresh Zoho CRM org has before anyone customises it: the modules the simulator serves
(Contacts, Accounts, Deals, Products, Sales_Orders), their standard fields, the line-item subform
of Sales_Orders (``Ordered_Items``), Tandem's custom fields, and the two users who write.

Sources (shared/reference/api-crms.md section 3, facts paraphrased):
- mandatory fields: Contacts ``Last_Name``; Deals ``Deal_Name`` and ``Stage``:
  https://www.zoho.com/crm/developer/docs/api/v8/insert-records.html
- system-defined duplicate-check fields used by upsert when ``duplicate_check_fields`` is
  omitted (Contacts ``Email``, Deals ``Deal_Name``):
  https://www.zoho.com/crm/developer/docs/api/v8/upsert-records.html
- field metadata keys (``api_name``, ``data_type``, ``json_type``, ``unique`` as an object with
  ``casesensitive``, ``{}`` on non-unique fields, ``lookup``, ``pick_list_values``,
  ``system_mandatory``, ``custom_field``): zoho/crm-oas v8.0/fields.json and its getFields
  200 example; https://www.zoho.com/crm/developer/docs/api/v8/field-meta.html
- record shape (``Owner {name,id,email}``, ``Full_Name``, lookups as ``{name,id}``):
  https://www.zoho.com/crm/developer/docs/api/v8/get-records.html
- mandatory fields of the inventory modules: Products ``Product_Name``; Sales_Orders ``Subject``
  and the line-item subform ``Ordered_Items`` ("This subform is mandatory while inserting a
  record in any of these inventory modules"): v7 insert-records.html (ZO-V7MIRROR
  ``SurajKumar2235/Crm_ChatBOT`` api_docs/Records_155.md, "Sample Input for the Inventory
  Modules"); the v8 page says the same (shared/reference/api-crms.md 3.3)
- the row fields of ``Ordered_Items`` and which are read-only formulas: a fields-metadata export
  (``GET /settings/fields?module=Ordered_Items``) of a real org in the code index: Product_Name
  (lookup Products), Quantity (double), List_Price, Discount, Tax (currency), Line_Tax (linetax),
  Description (textarea 2000), Price_Book_Name (lookup), Sequence_Number (bigint), Parent_Id
  (lookup, read-only), Total, Total_After_Discount, Net_Total (formula, currency, read-only).
  The simulator serves all but Line_Tax and Price_Book_Name (no tax or price-book modules).
- subform field metadata: ``data_type`` "subform" with ``subform {module, id}``; formula fields
  carry ``formula {return_type, expression}``: zoho/crm-oas v8.0/fields.json
Text lengths follow the crm-oas example (First_Name 40); others are the simulator's choice.
The Sales_Orders ``Status`` values are Zoho's defaults as seen in the UI (UNCONFIRMED).
"""

from __future__ import annotations

from dataclasses import dataclass

from mapping import zoho as zoho_mapping

MODULES = ("Contacts", "Deals", "Accounts", "Products", "Sales_Orders")
# Line-item subforms: the rows of a parent record, not a module of their own. Their fields are
# described by ``GET /settings/fields?module=<subform>`` (v2 subforms.html: "fields?module=
# {Sub_form_api_name}").
SUBFORMS = ("Ordered_Items",)

# Fields every record has and no write may set (written by the CRM itself).
SYSTEM_FIELDS = frozenset(
    {"id", "Created_Time", "Modified_Time", "Created_By", "Modified_By", "Full_Name"}
)

# ``data_type`` -> ``json_type`` as the fields metadata pairs them (crm-oas fields.json).
JSON_TYPES = {
    "text": "string",
    "textarea": "string",
    "email": "string",
    "phone": "string",
    "picklist": "string",
    "date": "string",
    "datetime": "string",
    "boolean": "boolean",
    "currency": "double",
    "double": "double",
    "integer": "integer",
    "lookup": "jsonobject",
    "ownerlookup": "jsonobject",
    "subform": "jsonarray",
    "formula": "double",  # the formula's return_type (currency) is a number
    "bigint": "integer",
}

DEAL_STAGES = (
    "Qualification",
    "Needs Analysis",
    "Value Proposition",
    "Identify Decision Makers",
    "Proposal/Price Quote",
    "Negotiation/Review",
    "Closed Won",
    "Closed Lost",
    "Closed Lost to Competition",
)

DEFAULT_CURRENCIES = ("USD", "EUR", "GBP", "INR", "AUD", "CAD", "JPY")

SALES_ORDER_STATUSES = ("Created", "Approved", "Delivered", "Cancelled")


@dataclass(frozen=True)
class FieldSpec:
    """One field of a module, as ``GET /settings/fields`` describes it."""

    api_name: str
    label: str
    data_type: str
    mandatory: bool = False
    unique: bool = False
    case_sensitive: bool = False  # for unique fields: do "A" and "a" clash?
    custom: bool = False
    read_only: bool = False
    length: int | None = None
    lookup_module: str | None = None
    picklist: tuple[str, ...] = ()
    subform: str | None = None  # for data_type "subform": the row module (Ordered_Items)
    formula: str | None = None  # for data_type "formula": how the value is computed


def _f(api_name: str, data_type: str, **kw: object) -> FieldSpec:
    label = str(kw.pop("label", api_name.replace("_", " ")))
    return FieldSpec(api_name, label, data_type, **kw)  # type: ignore[arg-type]


_AUDIT = (
    _f("Created_Time", "datetime", read_only=True),
    _f("Modified_Time", "datetime", read_only=True),
    _f("Created_By", "ownerlookup", read_only=True),
    _f("Modified_By", "ownerlookup", read_only=True),
)

_STANDARD: dict[str, tuple[FieldSpec, ...]] = {
    "Contacts": (
        _f("Owner", "ownerlookup", label="Contact Owner"),
        _f("First_Name", "text", length=40),
        _f("Last_Name", "text", length=80, mandatory=True),
        _f("Full_Name", "text", length=120, read_only=True),
        # Email is the system duplicate check for Contacts (upsert-records.html). Whether the
        # fields metadata marks it with a ``unique`` object is UNCONFIRMED; the simulator does.
        _f("Email", "email", length=100, unique=True),
        _f("Phone", "phone", length=30),
        _f("Mobile", "phone", length=30),
        _f("Mailing_Street", "text", length=250),
        _f("Mailing_City", "text", length=100),
        _f("Mailing_State", "text", length=100),
        _f("Mailing_Zip", "text", length=30),
        _f("Mailing_Country", "text", length=100),
        _f("Lead_Source", "picklist", picklist=("Advertisement", "Web Download", "Online Store")),
        _f("Description", "textarea", length=32000),
        _f("Created_Time", "datetime", read_only=True),
        _f("Modified_Time", "datetime", read_only=True),
        _f("Created_By", "ownerlookup", read_only=True),
        _f("Modified_By", "ownerlookup", read_only=True),
    ),
    "Deals": (
        _f("Owner", "ownerlookup", label="Deal Owner"),
        _f("Deal_Name", "text", length=120, mandatory=True),
        _f("Amount", "currency"),
        _f("Stage", "picklist", mandatory=True, picklist=DEAL_STAGES),
        _f("Closing_Date", "date"),
        _f("Contact_Name", "lookup", lookup_module="Contacts"),
        _f("Currency", "picklist", picklist=DEFAULT_CURRENCIES),
        _f("Description", "textarea", length=32000),
        _f("Created_Time", "datetime", read_only=True),
        _f("Modified_Time", "datetime", read_only=True),
        _f("Created_By", "ownerlookup", read_only=True),
        _f("Modified_By", "ownerlookup", read_only=True),
    ),
    "Accounts": (
        _f("Owner", "ownerlookup", label="Account Owner"),
        _f("Account_Name", "text", length=200, mandatory=True),
        _f("Phone", "phone", length=30),
        _f("Website", "text", length=255),
        _f("Description", "textarea", length=32000),
        *_AUDIT,
    ),
    "Products": (
        _f("Owner", "ownerlookup", label="Product Owner"),
        _f("Product_Name", "text", length=200, mandatory=True),
        _f("Product_Code", "text", length=100),
        _f("Unit_Price", "currency"),
        # A new product is active unless told otherwise (the UI's checkbox starts ticked;
        # UNCONFIRMED for the API, where the simulator defaults it to true as well).
        _f("Product_Active", "boolean"),
        _f("Description", "textarea", length=32000),
        *_AUDIT,
    ),
    "Sales_Orders": (
        _f("Owner", "ownerlookup", label="Sales Order Owner"),
        _f("Subject", "text", length=255, mandatory=True),
        _f("Contact_Name", "lookup", lookup_module="Contacts"),
        _f("Account_Name", "lookup", lookup_module="Accounts"),
        _f("Deal_Name", "lookup", lookup_module="Deals"),
        _f("Status", "picklist", picklist=SALES_ORDER_STATUSES),
        _f("Due_Date", "date"),
        _f("Currency", "picklist", picklist=DEFAULT_CURRENCIES),
        _f("Ordered_Items", "subform", mandatory=True, subform="Ordered_Items"),
        # Totals: Sub_Total and Grand_Total are computed by Zoho from the rows; Discount, Tax
        # and Adjustment are the record-level amounts (api-crms.md 3.7). UNCONFIRMED: whether
        # Sub_Total sums the rows' Net_Total (the simulator's choice) and whether the record's
        # Tax is computed from ``$line_tax`` percentages (here it is a plain amount).
        _f(
            "Sub_Total",
            "formula",
            read_only=True,
            formula="sum of Ordered_Items.Net_Total",
        ),
        _f("Discount", "currency"),
        _f("Tax", "currency"),
        _f("Adjustment", "currency"),
        _f(
            "Grand_Total",
            "formula",
            read_only=True,
            formula="Sub_Total - Discount + Tax + Adjustment",
        ),
        *(
            _f(f"{side}_{part}", "text", length=250)
            for side in ("Billing", "Shipping")
            for part in ("Street", "City", "State", "Code", "Country")
        ),
        _f("Description", "textarea", length=32000),
        *_AUDIT,
    ),
}

# The rows of ``Ordered_Items``. Row formulas (UNCONFIRMED beyond their names and their being
# read-only formulas): Total = List_Price x Quantity; Total_After_Discount = Total - Discount;
# Net_Total = Total_After_Discount + Tax; all rounded to the currency's 2 places, half up.
SUBFORM_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Ordered_Items": (
        _f("Product_Name", "lookup", mandatory=True, lookup_module="Products"),
        # Quantity is mandatory in a row here (every documented sample sends it; UNCONFIRMED
        # whether Zoho would default it to 1).
        _f("Quantity", "double", mandatory=True),
        # Omitted, the row takes the product's Unit_Price (Kaizen #9: the list price comes from
        # the product or the price book; UNCONFIRMED for the v8 API).
        _f("List_Price", "currency"),
        _f("Discount", "currency"),
        _f("Tax", "currency"),
        _f("Description", "textarea", length=2000),
        _f("Sequence_Number", "bigint", read_only=True),
        _f("Parent_Id", "lookup", read_only=True, lookup_module="Sales_Orders"),
        _f("Total", "formula", read_only=True, formula="List_Price * Quantity"),
        _f(
            "Total_After_Discount",
            "formula",
            read_only=True,
            formula="Total - Discount",
        ),
        _f("Net_Total", "formula", read_only=True, formula="Total_After_Discount + Tax"),
        _f("Created_Time", "datetime", read_only=True),
        _f("Modified_Time", "datetime", read_only=True),
    ),
}

CONSENT_STATES = (
    "subscribed",
    "not_subscribed",
    "pending",
    "unsubscribed",
    "redacted",
    "invalid",
    "unknown",
)

# The fields Tandem asks an admin to create (the connect-time check names any that are missing).
TANDEM_FIELDS: dict[str, tuple[FieldSpec, ...]] = {
    "Contacts": (
        # Picklists of Tandem's consent states (mapping.models.ConsentState): a checkbox
        # cannot tell "never asked" from "declined".
        _f("Tandem_Email_Consent", "picklist", custom=True, picklist=CONSENT_STATES),
        _f("Tandem_SMS_Consent", "picklist", custom=True, picklist=CONSENT_STATES),
        _f("Tandem_Customer_Tags", "textarea", custom=True, length=2000),
        # Commerce facts, in the org's currencies (numbers, not currency fields: README).
        *(
            _f(name, "date" if "_Date" in name else "double", custom=True)
            for name in zoho_mapping.FACTS.names(DEFAULT_CURRENCIES)
        ),
    ),
    "Deals": (
        _f("Tandem_Order_Id", "text", custom=True, unique=True, length=100),
        _f("Tandem_Order_Number", "text", custom=True, length=100),
        _f("Tandem_Financial_Status", "text", custom=True, length=100),
        _f("Tandem_Fulfillment_Status", "text", custom=True, length=100),
        _f("Tandem_Refunded_Amount", "currency", custom=True),
    ),
    "Accounts": (),
    "Products": (_f("Tandem_Product_Key", "text", custom=True, unique=True, length=255),),
}
# A sales order carries the same Tandem order fields as a deal.
TANDEM_FIELDS["Sales_Orders"] = TANDEM_FIELDS["Deals"]

# Upsert's default duplicate check when ``duplicate_check_fields`` is omitted: the system
# fields first, then user-defined unique fields (upsert-records.html).
SYSTEM_DUPLICATE_CHECK = {
    "Contacts": ("Email",),
    "Deals": ("Deal_Name",),
    "Accounts": ("Account_Name",),
    "Products": ("Product_Name",),
    "Sales_Orders": ("Subject",),
}


def default_fields(module: str, *, custom_fields: bool) -> dict[str, FieldSpec]:
    """The fields of a module, or of a subform's rows."""
    if module in SUBFORM_FIELDS:
        return {spec.api_name: spec for spec in SUBFORM_FIELDS[module]}
    specs = _STANDARD[module] + (TANDEM_FIELDS[module] if custom_fields else ())
    return {spec.api_name: spec for spec in specs}


@dataclass(frozen=True)
class User:
    id: str
    name: str
    email: str

    def lookup(self, *, email: bool = True) -> dict[str, str]:
        out = {"name": self.name, "id": self.id}
        if email:
            out["email"] = self.email
        return out
