"""What a fresh Zoho CRM org has before anyone customises it: the modules the simulator serves
(Contacts, Deals), their standard fields, Tandem's custom fields, and the two users who write.

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
Text lengths follow the crm-oas example (First_Name 40); others are the simulator's choice.
"""

from __future__ import annotations

from dataclasses import dataclass

MODULES = ("Contacts", "Deals")

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


def _f(api_name: str, data_type: str, **kw: object) -> FieldSpec:
    label = str(kw.pop("label", api_name.replace("_", " ")))
    return FieldSpec(api_name, label, data_type, **kw)  # type: ignore[arg-type]


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
    ),
    "Deals": (
        _f("Tandem_Order_Id", "text", custom=True, unique=True, length=100),
        _f("Tandem_Order_Number", "text", custom=True, length=100),
        _f("Tandem_Financial_Status", "text", custom=True, length=100),
        _f("Tandem_Fulfillment_Status", "text", custom=True, length=100),
        _f("Tandem_Refunded_Amount", "currency", custom=True),
    ),
}

# Upsert's default duplicate check when ``duplicate_check_fields`` is omitted: the system
# fields first, then user-defined unique fields (upsert-records.html).
SYSTEM_DUPLICATE_CHECK = {"Contacts": ("Email",), "Deals": ("Deal_Name",)}


def default_fields(module: str, *, custom_fields: bool) -> dict[str, FieldSpec]:
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
