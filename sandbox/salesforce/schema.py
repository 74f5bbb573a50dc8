"""The simulated org's sObjects, their fields as ``describe`` reports them, record ids and
datetime rendering.

Facts (shared/reference/api-crms.md section 2, sources there):
- required fields: Contact ``LastName``; Account ``Name``; Opportunity ``Name``, ``StageName``,
  ``CloseDate`` (SF-OBJREF; the Opportunity set is UNCONFIRMED against the page text);
- ids are 15/18 characters with a key prefix (001 Account, 003 Contact, 006 Opportunity, 801
  Order, 802 OrderItem, 01t Product2, 01s Pricebook2, 01u PricebookEntry; 00K for
  OpportunityContactRole and 00D for the org, 005 for users are UNCONFIRMED beyond SF-REST
  examples); the 18-character form appends a 3-character case-safe checksum;
- Order (SF-OBJREF sforce_api_objects_order.htm): AccountId, EffectiveDate and Status required;
  Status is a picklist whose values each fall in a StatusCode category, Draft or Activated; an
  order is activated by updating Status to an Activated value, and "the Status field is the
  only field you can update when activating the order"; Pricebook2Id; BillToContactId,
  ShipToContactId, CustomerAuthorizedById (Contact lookups); TotalAmount read-only, the sum of
  the order products' TotalPrice; OrderNumber auto-numbered;
- OrderItem (sforce_api_objects_orderitem.htm): OrderId (create-only), PricebookEntryId,
  Quantity and UnitPrice required; TotalPrice read-only = Quantity x UnitPrice; ListPrice the
  entry's price; Product2Id the entry's product;
- Product2 Name required, IsActive defaults to false (sforce_api_objects_product2.htm);
  Pricebook2 IsStandard read-only: the org's one standard price book exists from the start and
  cannot be created (sforce_api_objects_pricebook2.htm); PricebookEntry Pricebook2Id, Product2Id
  (create-only), UnitPrice required, IsActive, UseStandardPrice, CurrencyIsoCode
  (sforce_api_objects_pricebookentry.htm).
- datetimes serialise as ``2026-05-20T20:49:32.000+0000`` (SF-REST examples). Salesforce stores
  them to the second as far as the API shows (always ``.000``: UNCONFIRMED), so the simulator
  truncates to the second too, which makes equal ``SystemModstamp`` values common, as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from mapping import salesforce as salesforce_mapping

# ----------------------------------------------------------------------------- fields

STRING_TYPES = frozenset({"string", "email", "phone", "textarea", "picklist", "url"})
NUMBER_TYPES = frozenset({"currency", "double", "percent", "int"})


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str  # describe's field type: id, string, email, boolean, currency, date, ...
    createable: bool = True
    updateable: bool = True
    nillable: bool = True
    external_id: bool = False
    unique: bool = False
    length: int = 0
    reference_to: tuple[str, ...] = ()
    custom: bool = False

    def describe(self) -> dict:
        return {
            "name": self.name,
            "label": self.name.removesuffix("__c").replace("_", " "),
            "type": self.type,
            "length": self.length,
            "externalId": self.external_id,
            "unique": self.unique,
            "createable": self.createable,
            "updateable": self.updateable,
            "nillable": self.nillable,
            "custom": self.custom,
            "idLookup": self.name == "Id" or self.external_id,
            "referenceTo": list(self.reference_to),
            "caseSensitive": False,
        }


def _system(name: str, type_: str, *, nillable: bool = False, ref: str = "") -> FieldSpec:
    return FieldSpec(
        name,
        type_,
        createable=False,
        updateable=False,
        nillable=nillable,
        reference_to=(ref,) if ref else (),
    )


SYSTEM_FIELDS: tuple[FieldSpec, ...] = (
    _system("Id", "id"),
    _system("IsDeleted", "boolean"),
    _system("CreatedDate", "datetime"),
    _system("CreatedById", "reference", ref="User"),
    _system("LastModifiedDate", "datetime"),
    _system("LastModifiedById", "reference", ref="User"),
    _system("SystemModstamp", "datetime"),
)
OWNER = FieldSpec("OwnerId", "reference", nillable=False, reference_to=("User",))


def _text(name: str, length: int = 255, **kw) -> FieldSpec:
    return FieldSpec(name, kw.pop("type", "string"), length=length, **kw)


def _custom(name: str, type_: str, length: int = 0, **kw) -> FieldSpec:
    return FieldSpec(name, type_, length=length, custom=True, **kw)


@dataclass(frozen=True)
class SObjectSpec:
    name: str
    key_prefix: str
    fields: tuple[FieldSpec, ...]
    required: tuple[str, ...]  # createable, not nillable, no default: REQUIRED_FIELD_MISSING

    def field(self, name: str) -> FieldSpec | None:
        """The field called ``name``; API names are case-insensitive."""
        lowered = name.lower()
        return next((f for f in self.fields if f.name.lower() == lowered), None)


CONTACT_CUSTOM = (
    _custom("Tandem_Contact_Key__c", "string", 255, external_id=True, unique=True),
    # Picklists of Tandem's consent states (mapping.models.ConsentState), not checkboxes: a
    # checkbox cannot tell "never asked" from "declined".
    _custom("Tandem_Email_Consent__c", "picklist", 40),
    _custom("Tandem_SMS_Consent__c", "picklist", 40),
    _custom("Tandem_Customer_Tags__c", "textarea", 32768),
)
OPPORTUNITY_CUSTOM = (
    _custom("Tandem_Order_Id__c", "string", 255, external_id=True, unique=True),
    _custom("Tandem_Order_Number__c", "string", 80),
    _custom("Tandem_Financial_Status__c", "string", 40),
    _custom("Tandem_Fulfillment_Status__c", "string", 40),
    _custom("Tandem_Refunded_Amount__c", "currency"),
)
# An Order carries the same Tandem order fields, and the store's total beside TotalAmount
# (the sum of the order products, which leaves out shipping and tax: mapping.salesforce).
ORDER_CUSTOM = (*OPPORTUNITY_CUSTOM, _custom("Tandem_Order_Total__c", "currency"))
ORDER_ITEM_CUSTOM = (
    _custom("Tandem_Line_Item_Id__c", "string", 255, external_id=True, unique=True),
)
PRODUCT_CUSTOM = (_custom("Tandem_Product_Key__c", "string", 255, external_id=True, unique=True),)
CURRENCY_FIELD = FieldSpec("CurrencyIsoCode", "picklist", nillable=False, length=3)

ACCOUNT = SObjectSpec(
    "Account",
    "001",
    (*SYSTEM_FIELDS, OWNER, _text("Name", nillable=False), _text("Phone", 40, type="phone")),
    ("Name",),
)
CONTACT_STANDARD = (
    *SYSTEM_FIELDS,
    OWNER,
    FieldSpec("AccountId", "reference", reference_to=("Account",)),
    _text("Email", 80, type="email"),
    _text("FirstName", 40),
    _text("LastName", 80, nillable=False),
    _text("Phone", 40, type="phone"),
    _text("MailingStreet", 255, type="textarea"),
    _text("MailingCity", 40),
    _text("MailingState", 80),
    _text("MailingPostalCode", 20),
    _text("MailingCountry", 80),
)
OPPORTUNITY_STANDARD = (
    *SYSTEM_FIELDS,
    OWNER,
    FieldSpec("AccountId", "reference", reference_to=("Account",)),
    _text("Name", 120, nillable=False),
    FieldSpec("Amount", "currency"),
    FieldSpec("CloseDate", "date", nillable=False),
    _text("StageName", 255, type="picklist", nillable=False),
)
OCR = SObjectSpec(
    "OpportunityContactRole",
    "00K",
    (
        *SYSTEM_FIELDS,
        # An OpportunityContactRole cannot be moved to another opportunity (SF-OBJREF
        # sforce_api_objects_opportunitycontactrole.htm: OpportunityId is create-only).
        FieldSpec(
            "OpportunityId",
            "reference",
            updateable=False,
            nillable=False,
            reference_to=("Opportunity",),
        ),
        FieldSpec("ContactId", "reference", nillable=False, reference_to=("Contact",)),
        FieldSpec("IsPrimary", "boolean", nillable=False),
        _text("Role", 40, type="picklist"),
    ),
    ("OpportunityId", "ContactId"),
)
# Order Status values and their StatusCode category (a new org's defaults; UNCONFIRMED whether
# an org may add more, e.g. "Ready for Review" in the Draft category).
ORDER_STATUSES = {"Draft": "Draft", "Activated": "Activated"}


def _ref(name: str, target: str, **kw) -> FieldSpec:
    return FieldSpec(name, "reference", reference_to=(target,), **kw)


def _read_only(name: str, type_: str, length: int = 0, **kw) -> FieldSpec:
    return FieldSpec(name, type_, createable=False, updateable=False, length=length, **kw)


PRODUCT2_STANDARD = (
    *SYSTEM_FIELDS,
    _text("Name", 255, nillable=False),
    _text("ProductCode", 255),
    FieldSpec("IsActive", "boolean", nillable=False),
    _text("Family", 40, type="picklist"),
    _text("Description", 4000, type="textarea"),
)
PRICEBOOK2 = SObjectSpec(
    "Pricebook2",
    "01s",
    (
        *SYSTEM_FIELDS,
        _text("Name", 255, nillable=False),
        FieldSpec("IsActive", "boolean", nillable=False),
        _read_only("IsStandard", "boolean", nillable=False),
        _text("Description", 255),
    ),
    ("Name",),
)
PRICEBOOK_ENTRY_STANDARD = (
    *SYSTEM_FIELDS,
    _ref("Pricebook2Id", "Pricebook2", updateable=False, nillable=False),
    _ref("Product2Id", "Product2", updateable=False, nillable=False),
    FieldSpec("UnitPrice", "currency", nillable=False),
    FieldSpec("IsActive", "boolean", nillable=False),
    FieldSpec("UseStandardPrice", "boolean", nillable=False),
    _read_only("Name", "string", 255),
    _read_only("ProductCode", "string", 255),
)
ORDER_STANDARD = (
    *SYSTEM_FIELDS,
    OWNER,
    _ref("AccountId", "Account", nillable=False),
    FieldSpec("EffectiveDate", "date", nillable=False),
    _text("Status", 40, type="picklist", nillable=False),
    _read_only("StatusCode", "picklist", 40),
    _ref("Pricebook2Id", "Pricebook2"),
    _ref("BillToContactId", "Contact"),
    _ref("ShipToContactId", "Contact"),
    _ref("CustomerAuthorizedById", "Contact"),
    _text("Description", 32000, type="textarea"),
    _read_only("OrderNumber", "string", 30),
    _read_only("TotalAmount", "currency"),
    _read_only("ActivatedDate", "datetime", nillable=True),
)
ORDER_ITEM_STANDARD = (
    *SYSTEM_FIELDS,
    _ref("OrderId", "Order", updateable=False, nillable=False),
    _ref("PricebookEntryId", "PricebookEntry", updateable=False, nillable=False),
    _ref("Product2Id", "Product2", updateable=False),
    FieldSpec("Quantity", "double", nillable=False),
    FieldSpec("UnitPrice", "currency", nillable=False),
    _read_only("ListPrice", "currency"),
    _read_only("TotalPrice", "currency"),
    _text("Description", 255),
    _read_only("OrderItemNumber", "string", 10),
)
# Currency is fixed when the record is created: an entry's by its price book entry row, an
# order's once it has products (checked in the save rules).
ENTRY_CURRENCY_FIELD = FieldSpec("CurrencyIsoCode", "picklist", nillable=False, length=3,
                                 updateable=False)  # fmt: skip
DEFAULT_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "CHF")
# Commerce facts on the contact, in the org's currencies (numbers, not currency fields: README).
CONTACT_FACTS = tuple(
    _custom(name, "date" if "_Date_" in name else "double")
    for name in salesforce_mapping.FACTS.names(DEFAULT_CURRENCIES)
)


def build_schema(
    *,
    custom_fields: bool,
    multi_currency: bool,
    overrides: Mapping[str, Mapping[str, object]] | None = None,
) -> dict[str, SObjectSpec]:
    """The org's sObjects. ``overrides`` maps ``"Contact.Field__c"`` to describe attributes to
    change (``createable``, ``updateable``, ``externalId``, ``unique``) or ``{"absent": true}``,
    so a test can build the org an admin set up wrongly."""
    contact = CONTACT_STANDARD + (CONTACT_CUSTOM + CONTACT_FACTS if custom_fields else ())
    opportunity = OPPORTUNITY_STANDARD + ((CURRENCY_FIELD,) if multi_currency else ())
    opportunity += OPPORTUNITY_CUSTOM if custom_fields else ()
    currency = (CURRENCY_FIELD,) if multi_currency else ()
    custom = custom_fields
    specs = {
        "Account": ACCOUNT,
        "Contact": SObjectSpec("Contact", "003", contact, ("LastName",)),
        "Opportunity": SObjectSpec(
            "Opportunity", "006", opportunity, ("Name", "StageName", "CloseDate")
        ),
        "OpportunityContactRole": OCR,
        "Product2": SObjectSpec(
            "Product2", "01t", PRODUCT2_STANDARD + (PRODUCT_CUSTOM if custom else ()), ("Name",)
        ),
        "Pricebook2": PRICEBOOK2,
        "PricebookEntry": SObjectSpec(
            "PricebookEntry",
            "01u",
            PRICEBOOK_ENTRY_STANDARD + ((ENTRY_CURRENCY_FIELD,) if multi_currency else ()),
            ("Pricebook2Id", "Product2Id", "UnitPrice"),
        ),
        "Order": SObjectSpec(
            "Order",
            "801",
            ORDER_STANDARD + currency + (ORDER_CUSTOM if custom else ()),
            ("AccountId", "EffectiveDate", "Status"),
        ),
        "OrderItem": SObjectSpec(
            "OrderItem",
            "802",
            ORDER_ITEM_STANDARD + (ORDER_ITEM_CUSTOM if custom else ()),
            ("OrderId", "PricebookEntryId", "Quantity", "UnitPrice"),
        ),
    }
    for target, change in (overrides or {}).items():
        sobject, _, name = str(target).partition(".")
        spec = specs.get(sobject)
        field = spec.field(name) if spec else None
        if spec is None or field is None:
            raise ValueError(f"no field {target} to override")
        if not isinstance(change, Mapping):
            raise ValueError(f"override for {target} must be an object")
        if change.get("absent"):
            kept = tuple(f for f in spec.fields if f is not field)
        else:
            names = {"externalId": "external_id"}
            allowed = {"createable", "updateable", "externalId", "unique", "nillable"}
            unknown = set(change) - allowed
            if unknown:
                raise ValueError(f"cannot override {', '.join(sorted(unknown))}")
            updated = replace(field, **{names.get(k, k): bool(v) for k, v in change.items()})
            kept = tuple(updated if f is field else f for f in spec.fields)
        specs[sobject] = replace(spec, fields=kept)
    return specs


# ----------------------------------------------------------------------------- ids

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CHECKSUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
ID_PATTERN = re.compile(r"^[a-zA-Z0-9]{15}(?:[A-Z0-5]{3})?$")


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitively unique: one
    character per 5-character chunk, whose bits say which characters are upper case."""
    out = ""
    for chunk in range(3):
        bits = 0
        for i, char in enumerate(id15[chunk * 5 : chunk * 5 + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << i
        out += _CHECKSUM[bits]
    return out


def make_id(prefix: str, number: int, pod: str = "5g0") -> str:
    """An 18-character id: key prefix, pod, a base-62 serial and the checksum."""
    digits = ""
    for _ in range(9):
        number, rest = divmod(number, 62)
        digits = _BASE62[rest] + digits
    id15 = prefix + pod + digits
    return id15 + checksum(id15)


def to_18(record_id: str) -> str | None:
    """The 18-character form of a 15- or 18-character id, or None if it is not an id."""
    if not isinstance(record_id, str) or not ID_PATTERN.match(record_id):
        return None
    if len(record_id) == 15:
        return record_id + checksum(record_id)
    return record_id[:15] + checksum(record_id[:15])


# ----------------------------------------------------------------------------- datetimes


def sf_datetime(epoch: float) -> str:
    """``2026-05-20T20:49:32.000+0000`` for an epoch second (truncated to the second)."""
    moment = datetime.fromtimestamp(int(epoch), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
