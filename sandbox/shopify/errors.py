"""graphql-core's errors, reworded the way Shopify's Admin API words them.

Shopify answers document problems with HTTP 200 and ``errors`` carrying its own messages and
``extensions.code`` values; shapes from live captures (``airhorns/shopify-draft-proxy``
fixtures/conformance/.../admin-platform/graphql-base-validation-unhappy-paths.json):

- ``syntax error, unexpected end of file at [3, 5]`` with code PARSE_ERROR;
- ``Field 'x' doesn't exist on type 'Order'`` with code undefinedField, typeName, fieldName;
- ``Field must have selections (field 'shop' returns Shop but has no selections. Did you mean
  'shop { ... }'?)`` with code selectionMismatch;
- ``Variable $v of type T! was provided invalid value`` with code INVALID_VARIABLE and
  ``problems[{path, explanation}]``.
Anything else keeps graphql-core's message.
"""

from __future__ import annotations

import re
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError

_UNKNOWN_FIELD = re.compile(r"Cannot query field '(?P<field>\w+)' on type '(?P<type>\w+)'")
_NO_SELECTION = re.compile(
    r"Field '(?P<field>\w+)' of type '(?P<type>[^']+)' must have a selection"
)
_UNKNOWN_ARGUMENT = re.compile(r"Unknown argument '(?P<arg>\w+)' on field '\w+\.(?P<field>\w+)'")
_MISSING_ARGUMENT = re.compile(
    r"Field '(?P<field>\w+)' argument '(?P<arg>\w+)' of type '[^']+' is required"
)


def _locations(error: GraphQLError) -> list[dict[str, int]]:
    return [{"line": loc.line, "column": loc.column} for loc in error.locations or []]


def shopify_syntax_message(error: GraphQLSyntaxError) -> str:
    """``syntax error, unexpected ...`` (without the location suffix)."""
    found = re.search(r"found (.+?)\.?$", error.message) or re.search(
        r"Unexpected (.+?)\.?$", error.message
    )
    token = found.group(1) if found else "input"
    if "<EOF>" in token:
        return "syntax error, unexpected end of file"
    return f"syntax error, unexpected {token.strip()}"


def syntax_error(error: GraphQLSyntaxError) -> dict[str, Any]:
    locations = _locations(error)
    where = f" at [{locations[0]['line']}, {locations[0]['column']}]" if locations else ""
    return {
        "message": shopify_syntax_message(error) + where,
        "locations": locations,
        "extensions": {"code": "PARSE_ERROR"},
    }


def shopify_validation_message(error: GraphQLError) -> str:
    return validation_error(error)["message"]


def validation_error(error: GraphQLError) -> dict[str, Any]:
    """One validation problem as Shopify reports it."""
    message = error.message
    out: dict[str, Any] = {"message": message, "locations": _locations(error)}
    if match := _UNKNOWN_FIELD.search(message):
        out["message"] = f"Field '{match['field']}' doesn't exist on type '{match['type']}'"
        out["extensions"] = {
            "code": "undefinedField",
            "typeName": match["type"],
            "fieldName": match["field"],
        }
    elif match := _NO_SELECTION.search(message):
        named = match["type"].strip("[]!")
        out["message"] = (
            f"Field must have selections (field '{match['field']}' returns {named} but has no "
            f"selections. Did you mean '{match['field']} {{ ... }}'?)"
        )
        out["extensions"] = {
            "code": "selectionMismatch",
            "nodeName": f"field '{match['field']}'",
            "typeName": named,
        }
    elif match := _UNKNOWN_ARGUMENT.search(message):
        out["message"] = f"Field '{match['field']}' doesn't accept argument '{match['arg']}'"
        out["extensions"] = {
            "code": "argumentNotAccepted",
            "name": match["field"],
            "typeName": "Field",
            "argumentName": match["arg"],
        }
    elif match := _MISSING_ARGUMENT.search(message):
        out["message"] = f"Field '{match['field']}' is missing required arguments: {match['arg']}"
        out["extensions"] = {
            "code": "missingRequiredArguments",
            "className": "Field",
            "name": match["field"],
            "arguments": match["arg"],
        }
    else:
        out["extensions"] = {"code": "GRAPHQL_VALIDATION_FAILED"}
    return out


def variable_error(error: GraphQLError, name: str, type_name: str, value: Any) -> dict[str, Any]:
    """A variable that could not be coerced to its declared type."""
    explanation = error.message
    if "was not provided" in explanation or "must not be null" in explanation:
        explanation = "Expected value to not be null"
    return {
        "message": f"Variable ${name} of type {type_name} was provided invalid value",
        "locations": _locations(error),
        "extensions": {
            "code": "INVALID_VARIABLE",
            "value": value,
            "problems": [{"path": [], "explanation": explanation}],
        },
    }
