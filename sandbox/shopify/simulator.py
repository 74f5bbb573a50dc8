"""The simulator's engine: shops, the GraphQL request cycle (auth aside), change announcements.

One request, as Shopify serves it (https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits):
parse and validate (problems answer 200 with ``errors`` and no cost), coerce variables, price
the query (over 1000 -> MAX_COST_EXCEEDED), take the requested cost from the bucket (short ->
THROTTLED, no data, ``actualQueryCost`` null), execute, refund requested minus actual. Every
executed answer carries ``extensions.cost``.
"""

from __future__ import annotations

import dataclasses
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from graphql import (
    FragmentDefinitionNode,
    GraphQLError,
    GraphQLSyntaxError,
    OperationDefinitionNode,
    execute,
    get_operation_ast,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values
from graphql.utilities import type_from_ast

from sandbox.shopify import render, seed
from sandbox.shopify.bulk import BulkRunner
from sandbox.shopify.cost import MAX_QUERY_COST, LeakyBucket, actual_cost, requested_cost
from sandbox.shopify.errors import syntax_error, validation_error, variable_error
from sandbox.shopify.schema import Context, build, parse_gid
from sandbox.shopify.store import (
    Address,
    Consent,
    Customer,
    Knobs,
    Order,
    Shop,
    Store,
    utc_now,
)
from sandbox.shopify.webhooks import Dispatcher, Sender, http_sender

RATE_LIMITS_DOC = "https://shopify.dev/api/usage/rate-limits"
# Versions are quarterly (YYYY-01/04/07/10) plus "unstable" (https://shopify.dev/docs/api/usage/versioning).
VERSION = re.compile(r"^(?:\d{4}-(?:01|04|07|10)|unstable)$")
DEFAULT_API_VERSION = "2026-01"
TOPICS = frozenset(
    {
        "customers/create",
        "customers/update",
        "customers/delete",
        "orders/create",
        "orders/updated",
        "app/uninstalled",
    }
)
COMPLIANCE_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_LOCALE = re.compile(r"^[a-z]{2,3}(?:-[A-Za-z]{2,4})?$")


@dataclass
class Served:
    """One API answer and what the call log keeps of it."""

    status: int
    payload: dict[str, Any]
    operation: str | None = None
    requested: int | None = None
    actual: int | None = None


class Simulator:
    """Everything one simulated Shopify holds, for any number of shops."""

    def __init__(
        self,
        *,
        restore_rate: float = 100.0,
        bucket_size: float = 1000.0,
        clock: Callable[[], float] = time.monotonic,
        sender: Sender = http_sender,
    ) -> None:
        self.schema = build()
        self.restore_rate = restore_rate
        self.bucket_size = bucket_size
        self.clock = clock
        self.store = Store(listener=self._announce)
        self.dispatcher = Dispatcher(self.store.lock, sender)
        self.bulk = BulkRunner(self.schema, self.store.lock)

    # ------------------------------------------------------------------ shops
    def create_shop(
        self,
        *,
        domain: str,
        access_token: str,
        client_secret: str,
        currency: str = "USD",
        timezone: str = "America/New_York",
        country: str = "US",
        name: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
        seed: int = 0,
    ) -> Shop:
        """Add a shop. Raises ValueError if the domain is taken."""
        with self.store.lock:
            if domain in self.store.shops:
                raise ValueError(f"shop {domain} exists")
            shop = Shop(
                domain=domain,
                access_token=access_token,
                client_secret=client_secret,
                currency=currency,
                timezone=timezone,
                country=country,
                name=name or domain.split(".")[0].replace("-", " ").title(),
                shop_id=60_000_000_000 + len(self.store.shops) + 1,
                api_version=api_version,
                bucket=LeakyBucket(self.bucket_size, self.restore_rate, self.clock),
                knobs=Knobs(),
                rng=random.Random(seed),
            )
            self.store.shops[domain] = shop
            return shop

    def shop(self, domain: str) -> Shop | None:
        return self.store.shops.get(domain)

    # ------------------------------------------------------------------ webhooks
    def _announce(self, shop: Shop, topic: str, record: Any) -> None:
        """Store listener: turn a change into webhook deliveries. Lock held."""
        targets = [
            (s.address, s.api_version, s.id)
            for s in shop.subscriptions.values()
            if s.topic == topic
        ]
        if not targets:
            return
        if topic.startswith("customers/delete"):
            payload: dict[str, Any] = {
                # Shopify sends the id with the other fields emptied (UNCONFIRMED beyond "id").
                "id": record.id,
                "phone": None,
                "addresses": [],
                "tax_exemptions": [],
                "email_marketing_consent": None,
                "sms_marketing_consent": None,
                "admin_graphql_api_id": render.gid("Customer", record.id),
            }
        elif isinstance(record, Customer):
            payload = render.rest_customer(shop, record)
        elif isinstance(record, Order):
            payload = render.rest_order(shop, record)
        else:
            payload = record
        self.dispatcher.emit(shop, topic, payload, targets)

    def fire(self, shop: Shop, topic: str, payload: dict[str, Any], address: str | None) -> str:
        """Send an app-level topic (compliance, app/uninstalled) to ``address``, or to every
        subscribed address when none is given. Lock held. Returns the event id."""
        addresses = (
            [address] if address else sorted({s.address for s in shop.subscriptions.values()})
        )
        return self.dispatcher.emit(
            shop, topic, payload, [(a, shop.api_version, None) for a in addresses]
        )

    # ------------------------------------------------------------------ GraphQL
    def graphql(self, shop: Shop, api_version: str, body: Any, base_url: str) -> Served:
        """Serve one Admin GraphQL request for an authenticated ``shop``."""
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return Served(400, {"errors": {"query": "Required parameter missing or invalid"}})
        text: str = body["query"]
        raw_variables = body.get("variables") or {}
        operation_name = body.get("operationName")
        try:
            document = parse(text)
        except GraphQLSyntaxError as exc:
            return Served(200, {"errors": [syntax_error(exc)]})
        problems = validate(self.schema, document)
        if problems:
            return Served(200, {"errors": [validation_error(p) for p in problems]})
        operation = get_operation_ast(document, operation_name)
        if operation is None:
            message = (
                "An operation name is required"
                if operation_name is None
                else (f'No operation named "{operation_name}"')
            )
            return Served(200, {"errors": [{"message": message}]})
        name = operation.name.value if operation.name else operation_name
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        variable_errors, variables = self._variables(operation, raw_variables)
        if variable_errors:
            return Served(200, {"errors": variable_errors}, name)

        with self.store.lock:
            requested = requested_cost(self.schema, operation, fragments, variables)
            if requested > MAX_QUERY_COST:
                return Served(200, self._too_costly(shop, requested), name, requested)
            if not shop.bucket.take(requested):
                return Served(
                    shop.knobs.throttle_status, self._throttled(shop, requested), name, requested
                )
            context = self._context(shop, api_version, base_url)
            result = execute(
                self.schema,
                document,
                operation_name=operation_name,
                variable_values=raw_variables,
                context_value=context,
            )
            actual = actual_cost(self.schema, operation, fragments, variables, result.data)
            shop.bucket.refund(requested - actual)
            payload: dict[str, Any] = {}
            if result.errors:
                payload["errors"] = [e.formatted for e in result.errors]
            payload["data"] = result.data
            payload["extensions"] = {"cost": self._cost(shop, requested, actual)}
            if context.searches:
                payload["extensions"]["search"] = context.searches
            return Served(200, payload, name, requested, actual)

    def _variables(
        self, operation: OperationDefinitionNode, raw: Any
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        definitions = operation.variable_definitions or []
        result = get_variable_values(self.schema, definitions, raw if isinstance(raw, dict) else {})
        if isinstance(result, list):
            errors = []
            for error in result:
                definition = next(
                    (d for d in definitions if f"${d.variable.name.value}" in error.message),
                    None,
                )
                if definition is None:
                    errors.append(error.formatted)
                    continue
                var = definition.variable.name.value
                type_name = str(type_from_ast(self.schema, definition.type))
                errors.append(variable_error(error, var, type_name, (raw or {}).get(var)))
            return errors, {}
        # graphql-core 3.3 wraps the values (VariableValues.coerced); 3.2 returns the dict.
        coerced: dict[str, Any] = getattr(result, "coerced", result)
        errors = []
        # Shopify's ID scalar only accepts global ids.
        for definition in definitions:
            var = definition.variable.name.value
            named = str(type_from_ast(self.schema, definition.type)).strip("[]!")
            value = coerced.get(var)
            if named == "ID" and isinstance(value, str) and parse_gid(value) is None:
                type_name = str(type_from_ast(self.schema, definition.type))
                error = GraphQLError(f"Invalid global id '{value}'", definition)
                errors.append(variable_error(error, var, type_name, value))
        return errors, coerced

    def _context(self, shop: Shop, api_version: str, base_url: str, bulk: bool = False) -> Context:
        return Context(
            shop=shop,
            api_version=api_version,
            base_url=base_url,
            now=utc_now(),
            bulk=bulk,
            run_bulk=self._run_bulk,
            cancel_bulk=self._cancel_bulk,
            update_customer=self._update_customer,
            customer_mutations={
                "customerEmailMarketingConsentUpdate": self._update_email_consent,
                "customerAddressUpdate": self._update_address,
                "customerAddressCreate": self._create_address,
            },
        )

    def _cost(self, shop: Shop, requested: int, actual: int | None) -> dict[str, Any]:
        return {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": shop.bucket.status(),
        }

    def _throttled(self, shop: Shop, requested: int) -> dict[str, Any]:
        # https://community.shopify.com/t/throttled/254776: no data, actualQueryCost null.
        return {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": RATE_LIMITS_DOC},
                }
            ],
            "extensions": {"cost": self._cost(shop, requested, None)},
        }

    def _too_costly(self, shop: Shop, requested: int) -> dict[str, Any]:
        message = (
            f"Query cost is {requested}, which exceeds the single query max cost limit "
            f"({MAX_QUERY_COST}).\n\nSee https://shopify.dev/concepts/about-apis/rate-limits for "
            "more information on how the\ncost of a query is calculated.\n\nTo query larger "
            "amounts of data with fewer limits, bulk operations should be used instead.\nSee "
            "https://shopify.dev/tutorials/perform-bulk-operations-with-admin-api for usage "
            "details.\n"
        )
        return {
            "errors": [
                {
                    "message": message,
                    "extensions": {
                        "code": "MAX_COST_EXCEEDED",
                        "cost": requested,
                        "maxCost": MAX_QUERY_COST,
                        "documentation": RATE_LIMITS_DOC,
                    },
                }
            ],
            "extensions": {"cost": self._cost(shop, requested, None)},
        }

    # ------------------------------------------------------------------ mutations
    def _run_bulk(self, ctx: Context, query: str, group_objects: bool) -> dict[str, Any]:
        return self.bulk.start(
            ctx.shop,
            query,
            group_objects=group_objects,
            api_version=ctx.api_version,
            base_url=ctx.base_url,
            make_context=lambda bulk: self._context(ctx.shop, ctx.api_version, ctx.base_url, bulk),
        )

    def _cancel_bulk(self, ctx: Context, operation_id: str) -> dict[str, Any]:
        return self.bulk.cancel(ctx.shop, parse_gid(operation_id, "BulkOperation"))

    def _update_customer(self, ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
        """customerUpdate: validate like Shopify, answer userErrors with HTTP 200.

        Messages as live Shopify words them (``airhorns/shopify-draft-proxy``
        fixtures/conformance/.../customers/customer-input-validation-parity.json and
        customer-update-requires-identity.json).
        """
        shop = ctx.shop
        customer_id = parse_gid(data.get("id") or "", "Customer")
        customer = shop.customers.get(customer_id) if customer_id else None
        if customer is None:
            return {
                "customer": None,
                "userErrors": [{"field": ["id"], "message": "Customer does not exist"}],
            }
        errors, changes = customer_changes(shop, customer, data)
        if errors:
            return {"customer": None, "userErrors": errors}
        if any(getattr(customer, k) != v for k, v in changes.items()):
            self.store.change_customer(shop, customer, changes, ctx.now)
        return {"customer": render.gql_customer(shop, customer), "userErrors": []}

    def _update_email_consent(self, ctx: Context, arguments: dict[str, Any]) -> dict[str, Any]:
        """customerEmailMarketingConsentUpdate. Only SUBSCRIBED, UNSUBSCRIBED and PENDING can be
        set, and only for a customer with an email address
        (https://shopify.dev/docs/api/admin-graphql/2025-07/payloads/CustomerEmailMarketingConsentUpdatePayload);
        the wording of these userErrors is UNCONFIRMED. Asking for the state and opt-in level
        the customer already has changes nothing (no new updatedAt, no webhook)."""
        shop = ctx.shop
        data = arguments["input"]
        customer = shop.customers.get(parse_gid(data.get("customerId") or "", "Customer") or 0)

        def refused(field: list[str], message: str, code: str) -> dict[str, Any]:
            error = {"field": ["input", *field], "message": message, "code": code}
            return {"customer": None, "userErrors": [error]}

        if customer is None:
            return refused(["customerId"], "Customer does not exist", "INVALID")
        consent = data["emailMarketingConsent"]
        state = consent["marketingState"]
        if state not in _SETTABLE_EMAIL_STATES:
            return refused(
                ["emailMarketingConsent", "marketingState"],
                f"Marketing state {state} can't be set. Use SUBSCRIBED, UNSUBSCRIBED or PENDING.",
                "INCLUSION",
            )
        if not customer.email:
            return refused(
                ["customerId"], "Customer must have an email address to set consent", "INVALID"
            )
        level = consent.get("marketingOptInLevel") or "SINGLE_OPT_IN"
        stamp = consent.get("consentUpdatedAt")
        try:
            when = _timestamp(stamp) if stamp else ctx.now
        except ValueError:
            return refused(
                ["emailMarketingConsent", "consentUpdatedAt"], "Consent updated at is invalid",
                "INVALID",
            )  # fmt: skip
        current = customer.email_consent
        if current is None or (current.state, current.opt_in_level) != (state, level):
            changes = {"email_consent": Consent(state, level, when)}
            self.store.change_customer(shop, customer, changes, ctx.now)
        return {"customer": render.gql_customer(shop, customer), "userErrors": []}

    def _update_address(self, ctx: Context, arguments: dict[str, Any]) -> dict[str, Any]:
        """customerAddressUpdate (2025-04 on): the fields given replace the address's, and
        ``setAsDefault`` makes it the default. An update that changes nothing changes nothing
        (no new updatedAt, no webhook). userError wording beyond "Customer does not exist" is
        UNCONFIRMED."""
        shop = ctx.shop
        customer = shop.customers.get(parse_gid(arguments["customerId"], "Customer") or 0)
        if customer is None:
            return _address_refused(["customerId"], "Customer does not exist")
        address_id = parse_gid(arguments["addressId"], "MailingAddress")
        target = next((a for a in customer.addresses if a.id == address_id), None)
        if target is None:
            return _address_refused(["addressId"], "Address does not exist")
        errors, changes = address_changes(shop, target, arguments["address"])
        if errors:
            return {"address": None, "userErrors": errors}
        updated = dataclasses.replace(target, **changes)
        default_id = target.id if arguments.get("setAsDefault") else customer.default_address_id
        if updated != target or default_id != customer.default_address_id:
            addresses = [updated if a.id == target.id else a for a in customer.addresses]
            self.store.change_customer(
                shop, customer, {"addresses": addresses, "default_address_id": default_id}, ctx.now
            )
        return {"address": render.gql_address(updated), "userErrors": []}

    def _create_address(self, ctx: Context, arguments: dict[str, Any]) -> dict[str, Any]:
        """customerAddressCreate (2025-04 on), the default address when ``setAsDefault``."""
        shop = ctx.shop
        customer = shop.customers.get(parse_gid(arguments["customerId"], "Customer") or 0)
        if customer is None:
            return _address_refused(["customerId"], "Customer does not exist")
        blank = Address(id=shop.next_id("MailingAddress"))
        errors, changes = address_changes(shop, blank, arguments["address"])
        if errors:
            return {"address": None, "userErrors": errors}
        made = dataclasses.replace(blank, **changes)
        default_id = made.id if arguments.get("setAsDefault") else customer.default_address_id
        changes = {"addresses": [*customer.addresses, made], "default_address_id": default_id}
        self.store.change_customer(shop, customer, changes, ctx.now)
        return {"address": render.gql_address(made), "userErrors": []}


_SETTABLE_EMAIL_STATES = frozenset({"SUBSCRIBED", "UNSUBSCRIBED", "PENDING"})
# MailingAddressInput field -> Address attribute
_ADDRESS_INPUT = {
    "address1": "address1",
    "address2": "address2",
    "city": "city",
    "company": "company",
    "countryCode": "country_code",
    "firstName": "first_name",
    "lastName": "last_name",
    "phone": "phone",
    "provinceCode": "province_code",
    "zip": "zip",
}
_ADDRESS_LABELS = {
    "address1": "Address1",
    "address2": "Address2",
    "city": "City",
    "company": "Company",
    "firstName": "First name",
    "lastName": "Last name",
    "provinceCode": "Province code",
    "zip": "Zip",
}


def _address_refused(field: list[str], message: str) -> dict[str, Any]:
    return {"address": None, "userErrors": [{"field": field, "message": message}]}


def _timestamp(value: str) -> datetime:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("a DateTime needs a zone")
    return moment.astimezone(UTC).replace(microsecond=0)


def _province_name(country: str | None, code: str | None) -> str | None:
    """The province's name from the seed's tables (the code itself when unknown)."""
    for known in seed.COUNTRIES:
        if known.code == country:
            for _city, name, province_code, _zip in known.cities:
                if province_code == code and name:
                    return name
    return code


def address_changes(
    shop: Shop, address: Address, data: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The userErrors for a MailingAddressInput, or the Address attribute changes it asks for
    (fields absent from the input are kept; null clears). Field lengths as Shopify's
    validation messages word them for customers (255 characters)."""
    errors: list[dict[str, Any]] = []
    changes: dict[str, Any] = {}
    for key, attribute in _ADDRESS_INPUT.items():
        if key not in data:
            continue
        value = data[key]
        value = value.strip() or None if isinstance(value, str) else value
        if isinstance(value, str) and len(value) > 255 and key in _ADDRESS_LABELS:
            message = f"{_ADDRESS_LABELS[key]} is too long (maximum is 255 characters)"
            errors.append({"field": ["address", key], "message": message})
            continue
        changes[attribute] = value
    country = changes.get("country_code", address.country_code)
    if changes.get("phone"):
        phone = normalise_phone(changes["phone"], country or shop.country)
        if phone is None:
            errors.append({"field": ["address", "phone"], "message": "Phone is invalid"})
        changes["phone"] = phone
    if "province_code" in changes or "country_code" in changes:
        code = changes.get("province_code", address.province_code)
        changes["province_code"] = code
        changes["province"] = _province_name(country, code) if code else None
    return errors, changes


def customer_changes(
    shop: Shop, customer: Customer, data: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The userErrors for a CustomerInput, or the attribute changes it asks for."""
    errors: list[dict[str, Any]] = []
    changes: dict[str, Any] = {}
    others = [c for c in shop.customers.values() if c.id != customer.id]
    if "email" in data:
        email = (data["email"] or "").strip() or None
        if email and not _EMAIL.match(email):
            errors.append({"field": ["email"], "message": "Email is invalid"})
        elif email and any((c.email or "").lower() == email.lower() for c in others):
            errors.append({"field": ["email"], "message": "Email has already been taken"})
        else:
            changes["email"] = email
    if "phone" in data:
        raw = (data["phone"] or "").strip()
        phone = normalise_phone(raw, shop.country) if raw else None
        if raw and phone is None:
            errors.append({"field": ["phone"], "message": "Phone is invalid"})
        elif phone and any(c.phone == phone for c in others):
            errors.append({"field": ["phone"], "message": "Phone has already been taken"})
        else:
            changes["phone"] = phone
    for key, attribute, label in (
        ("firstName", "first_name", "First name"),
        ("lastName", "last_name", "Last name"),
    ):
        if key in data:
            value = (data[key] or "").strip() or None
            if value and len(value) > 255:
                errors.append(
                    {"field": [key], "message": f"{label} is too long (maximum is 255 characters)"}
                )
            else:
                changes[attribute] = value
    if "note" in data:
        note = data["note"] or None
        if note and len(note) > 5000:
            errors.append(
                {"field": ["note"], "message": "Note is too long (maximum is 5000 characters)"}
            )
        else:
            changes["note"] = note
    if "tags" in data:
        tags = sorted({t.strip() for t in data["tags"] or [] if t.strip()})
        if any(len(t) > 255 for t in tags):
            errors.append(
                {"field": ["tags"], "message": "Tags is too long (maximum is 255 characters)"}
            )
        else:
            changes["tags"] = tags
    if "locale" in data and data["locale"] is not None:
        if not _LOCALE.match(data["locale"]):
            errors.append({"field": ["locale"], "message": "Locale is invalid"})
        else:
            changes["locale"] = data["locale"]
    if data.get("taxExempt") is not None:
        changes["tax_exempt"] = bool(data["taxExempt"])
    if not errors:
        after = {
            k: changes.get(k, getattr(customer, k))
            for k in ("first_name", "last_name", "email", "phone")
        }
        if not any(after.values()):
            errors.append(
                {"field": None, "message": "A name, phone number, or email address must be present"}
            )
    return errors, changes


def normalise_phone(raw: str, country: str) -> str | None:
    """E.164 if ``raw`` is a valid number (national numbers read in the shop's country)."""
    try:
        number = phonenumbers.parse(raw, None if raw.startswith("+") else country)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def served_version(requested: str) -> str | None:
    """The version Shopify serves for ``requested``, or None (404) if it is not a version."""
    return requested if VERSION.match(requested) else None
