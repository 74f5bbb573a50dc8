"""Bulk query operations: validate, run in the background, publish a JSONL file.

Behaviour from https://shopify.dev/docs/api/usage/bulk-operations/queries and the
BulkOperation reference, plus the 2026-01 release notes (https://shopify.dev/changelog/faster-bulk-operations):

- a bulk query needs at least one connection, at most 5, nested at most 2 deep; connections
  select ``edges { node }`` (``nodes`` is refused) and take no ``first``; a node holding a
  nested connection must select ``id``. The userError wordings are those live Shopify
  returns (captured in ``airhorns/shopify-draft-proxy``
  tests/graphql_routes bulk_operation_run_query_validates_admin_query_branches);
- before 2026-01 one bulk query may run per shop, from 2026-01 five; another start gets the
  userError "A bulk query operation for this app and shop is already in progress: <gid>."
  (OPERATION_IN_PROGRESS);
- status goes CREATED -> RUNNING -> COMPLETED (or FAILED, CANCELING -> CANCELED);
- the result is JSONL, one object per node; nested connection nodes are lines of their own
  with ``__parentId``. With ``groupObjects: true`` children follow their parent; without it
  (the 2026-01 default) grouping is not promised, and this simulator writes all parents first;
- ``url`` is a signed cloud-storage URL (served here at /_bulk/<token>.jsonl, Range requests
  supported), null when the query matched nothing; ``objectCount``/``fileSize`` are
  UnsignedInt64 strings.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLSyntaxError,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    execute,
    parse,
    validate,
)

from sandbox.shopify import render
from sandbox.shopify.cost import is_connection
from sandbox.shopify.errors import shopify_syntax_message, shopify_validation_message
from sandbox.shopify.store import Shop, utc_now

MAX_CONNECTIONS = 5
MAX_DEPTH = 2
ACTIVE = ("CREATED", "RUNNING", "CANCELING")


@dataclass
class BulkOperation:
    id: int
    query: str
    created_at: datetime
    group_objects: bool
    status: str = "CREATED"
    type: str = "QUERY"
    error_code: str | None = None
    completed_at: datetime | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    url: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def view(self) -> dict[str, Any]:
        """The BulkOperation object as GraphQL returns it."""
        return {
            "__typename": "BulkOperation",
            "id": render.gid("BulkOperation", self.id),
            "status": self.status,
            "type": self.type,
            "errorCode": self.error_code,
            "createdAt": render.iso_z(self.created_at),
            "completedAt": render.iso_z(self.completed_at),
            "objectCount": str(self.object_count),
            "rootObjectCount": str(self.root_object_count),
            "fileSize": None if self.file_size is None else str(self.file_size),
            "url": self.url,
            "partialDataUrl": None,
            "query": self.query,
        }


def _user_error(message: str, code: str = "INVALID", field_: list[str] | None = None) -> dict:
    return {"field": ["query"] if field_ is None else field_, "message": message, "code": code}


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _within_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


@dataclass
class _Analysis:
    connections: int = 0
    too_deep: bool = False
    via_nodes: list[str] = field(default_factory=list)
    parents_without_id: list[str] = field(default_factory=list)
    in_list: bool = False


def _fields(selection_set: SelectionSetNode | None) -> list[FieldNode]:
    """Direct fields of an (already fragment-free) selection, one per response key."""
    seen: dict[str, FieldNode] = {}
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            key = selection.alias.value if selection.alias else selection.name.value
            seen.setdefault(key, selection)
    return list(seen.values())


def _expand(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode]
) -> SelectionSetNode | None:
    """``selection_set`` with fragment spreads and inline fragments replaced by their fields."""
    if selection_set is None:
        return None
    out: list[FieldNode] = []
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            out.append(
                FieldNode(
                    alias=selection.alias,
                    name=selection.name,
                    arguments=selection.arguments,
                    directives=selection.directives,
                    selection_set=_expand(selection.selection_set, fragments),
                )
            )
            continue
        if isinstance(selection, InlineFragmentNode):
            inner = selection.selection_set
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            inner = fragments[selection.name.value].selection_set
        else:
            continue
        expanded = _expand(inner, fragments)
        if expanded is not None:
            out.extend(s for s in expanded.selections if isinstance(s, FieldNode))
    return SelectionSetNode(selections=tuple(out))


def _operation(document: DocumentNode) -> OperationDefinitionNode:
    """The document's one operation, fragments inlined."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    operation = next(d for d in document.definitions if isinstance(d, OperationDefinitionNode))
    return OperationDefinitionNode(
        operation=operation.operation,
        name=operation.name,
        variable_definitions=operation.variable_definitions,
        directives=operation.directives,
        selection_set=_expand(operation.selection_set, fragments),
    )


def _analyse(
    selection_set: SelectionSetNode | None,
    parent: GraphQLObjectType,
    depth: int,
    found: _Analysis,
    under_list: bool = False,
) -> None:
    for node in _fields(selection_set):
        field_def = parent.fields.get(node.name.value)
        if field_def is None:
            continue
        named = _named(field_def.type)
        if not isinstance(named, GraphQLObjectType):
            continue
        if is_connection(field_def.type):
            if under_list:
                found.in_list = True
            found.connections += 1
            if depth + 1 > MAX_DEPTH:
                found.too_deep = True
            children = _fields(node.selection_set)
            if any(c.name.value == "nodes" for c in children):
                found.via_nodes.append(node.name.value)
            node_type = _named(named.fields["nodes"].type)
            for edges in (c for c in children if c.name.value == "edges"):
                for inner in (e for e in _fields(edges.selection_set) if e.name.value == "node"):
                    _analyse(inner.selection_set, node_type, depth + 1, found)
                    nested = _Analysis()
                    _analyse(inner.selection_set, node_type, 0, nested)
                    has_id = any(
                        f.name.value == "id" and f.alias is None
                        for f in _fields(inner.selection_set)
                    )
                    if nested.connections and not has_id:
                        found.parents_without_id.append(node.name.value)
        else:
            _analyse(
                node.selection_set, named, depth, found, under_list or _within_list(field_def.type)
            )


def validate_bulk_query(schema: GraphQLSchema, text: str) -> tuple[list[dict], Any]:
    """The userErrors Shopify would give ``text``, and the parsed document if none."""
    try:
        document = parse(text)
    except GraphQLSyntaxError as exc:
        return [_user_error(f"Invalid bulk query: {shopify_syntax_message(exc)}")], None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(operations) != 1 or operations[0].operation != OperationType.QUERY:
        return [_user_error("Invalid operation type. Only `query` operations are supported.")], None
    problems = validate(schema, document)
    if problems:
        return [
            _user_error(f"Invalid bulk query: {shopify_validation_message(p)}") for p in problems
        ], None
    operation = _operation(document)
    errors: list[dict] = []
    roots = _fields(operation.selection_set)
    if any(r.name.value == "node" for r in roots):
        errors.append(_user_error("Bulk queries cannot contain a top level `node` field."))
    found = _Analysis()
    assert schema.query_type is not None
    _analyse(operation.selection_set, schema.query_type, 0, found)
    if found.via_nodes:
        names = ", ".join(f"'{n}'" for n in found.via_nodes)
        errors.append(
            _user_error(
                "All connection fields in a bulk query must select their contents using "
                "'edges' > 'node', e.g: 'products { edges { node {'. Selecting via 'nodes' is "
                f"not supported. Invalid connection fields: {names}."
            )
        )
    if found.parents_without_id:
        errors.append(
            _user_error(
                "The parent 'node' field for a nested connection must select the 'id' field "
                "without an alias and must be of 'ID' return type. Connection fields without "
                f"'id': {', '.join(found.parents_without_id)}."
            )
        )
    if found.too_deep:
        errors.append(
            _user_error(
                "Bulk queries cannot contain connections with a nesting depth greater than 2."
            )
        )
    if found.connections > MAX_CONNECTIONS:
        errors.append(_user_error("Bulk queries cannot contain more than 5 connections."))
    if found.in_list:
        errors.append(
            _user_error(
                "Queries that contain a connection field within a list field are not currently "
                "supported."
            )
        )
    if found.connections == 0:
        errors.append(_user_error("Bulk queries must contain at least one connection."))
    return errors, (document if not errors else None)


# --------------------------------------------------------------------------- JSONL
class _Lines:
    """Turns an executed bulk query's data into JSONL objects."""

    def __init__(self, grouped: bool) -> None:
        self.grouped = grouped
        self.lines: list[dict[str, Any]] = []
        self.deferred: list[list[dict[str, Any]]] = []
        self.roots = 0

    def connection(
        self,
        node: FieldNode,
        type_: GraphQLObjectType,
        value: dict[str, Any] | None,
        parent_id: str | None,
        depth: int,
    ) -> list[dict[str, Any]]:
        """Lines for every node of one connection value (and their descendants)."""
        out: list[dict[str, Any]] = []
        if not value:
            return out
        node_type = _named(type_.fields["nodes"].type)
        for edges in (f for f in _fields(node.selection_set) if f.name.value == "edges"):
            edges_key = edges.alias.value if edges.alias else "edges"
            for inner in (e for e in _fields(edges.selection_set) if e.name.value == "node"):
                inner_key = inner.alias.value if inner.alias else "node"
                for edge in value.get(edges_key) or []:
                    out.extend(self.node(inner, node_type, edge.get(inner_key), parent_id, depth))
        return out

    def node(
        self,
        node: FieldNode,
        type_: GraphQLObjectType,
        value: dict[str, Any] | None,
        parent_id: str | None,
        depth: int,
    ) -> list[dict[str, Any]]:
        if value is None:
            return []
        children: list[dict[str, Any]] = []
        line = self._strip(node.selection_set, type_, value, children, value.get("id"), depth)
        if parent_id is not None:
            line["__parentId"] = parent_id
        else:
            self.roots += 1
        if self.grouped:
            return [line, *children]
        while len(self.deferred) <= depth:
            self.deferred.append([])
        self.deferred[depth].extend(children)
        return [line]

    def _strip(
        self,
        selection_set: SelectionSetNode | None,
        type_: GraphQLObjectType,
        value: dict[str, Any],
        children: list[dict[str, Any]],
        owner_id: str | None,
        depth: int,
    ) -> dict[str, Any]:
        line: dict[str, Any] = {}
        for node in _fields(selection_set):
            key = node.alias.value if node.alias else node.name.value
            field_def = type_.fields.get(node.name.value)
            item = value.get(key)
            if field_def is None:
                line[key] = item
                continue
            named = _named(field_def.type)
            if is_connection(field_def.type):
                children.extend(self.connection(node, named, item, owner_id, depth + 1))
            elif isinstance(named, GraphQLObjectType) and isinstance(item, dict):
                line[key] = self._strip(node.selection_set, named, item, children, owner_id, depth)
            else:
                line[key] = item
        return line

    def build(
        self, schema: GraphQLSchema, operation: OperationDefinitionNode, data: dict
    ) -> list[dict]:
        assert schema.query_type is not None
        for root in _fields(operation.selection_set):
            field_def = schema.query_type.fields[root.name.value]
            key = root.alias.value if root.alias else root.name.value
            if is_connection(field_def.type):
                self.lines.extend(
                    self.connection(root, _named(field_def.type), data.get(key), None, 0)
                )
        for level in self.deferred:
            self.lines.extend(level)
        return self.lines


def to_jsonl(
    schema: GraphQLSchema, document: Any, data: dict, *, grouped: bool
) -> tuple[bytes, int, int]:
    """The file bytes, object count and root object count for ``data``."""
    operation = _operation(document)
    builder = _Lines(grouped)
    lines = builder.build(schema, operation, data)
    body = "".join(
        json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n" for line in lines
    )
    return body.encode(), len(lines), builder.roots


# --------------------------------------------------------------------------- runner
class BulkRunner:
    """Starts, runs and cancels bulk operations; keeps their files."""

    def __init__(self, schema: GraphQLSchema, lock: threading.RLock) -> None:
        self.schema = schema
        self.lock = lock
        self.files: dict[str, tuple[str, bytes]] = {}  # token -> (shop domain, JSONL)

    def limit(self, shop: Shop, api_version: str) -> int:
        if shop.knobs.bulk_max_concurrent is not None:
            return shop.knobs.bulk_max_concurrent
        return 1 if api_version < "2026-01" else 5

    def start(
        self,
        shop: Shop,
        query: str,
        *,
        group_objects: bool,
        api_version: str,
        base_url: str,
        make_context: Callable[[bool], Any],
    ) -> dict[str, Any]:
        """The bulkOperationRunQuery payload. Call with the store lock held."""
        errors, document = validate_bulk_query(self.schema, query)
        if errors:
            return {"bulkOperation": None, "userErrors": errors}
        running = [
            op for op in shop.bulk_operations.values() if op.type == "QUERY" and op.status in ACTIVE
        ]
        if len(running) >= self.limit(shop, api_version):
            blocking = min(running, key=lambda op: op.id)
            message = (
                "A bulk query operation for this app and shop is already in progress: "
                f"{render.gid('BulkOperation', blocking.id)}."
            )
            return {
                "bulkOperation": None,
                "userErrors": [
                    {"field": None, "message": message, "code": "OPERATION_IN_PROGRESS"}
                ],
            }
        operation = BulkOperation(
            id=shop.next_id("BulkOperation"),
            query=query,
            created_at=utc_now(),
            group_objects=group_objects,
        )
        shop.bulk_operations[operation.id] = operation
        thread = threading.Thread(
            target=self._run,
            args=(shop, operation, document, base_url, make_context),
            name=f"shopify-bulk-{operation.id}",
            daemon=True,
        )
        thread.start()
        return {"bulkOperation": operation.view(), "userErrors": []}

    def cancel(self, shop: Shop, operation_id: int | None) -> dict[str, Any]:
        """The bulkOperationCancel payload. Call with the store lock held."""
        operation = shop.bulk_operations.get(operation_id) if operation_id else None
        if operation is None:
            return {
                "bulkOperation": None,
                "userErrors": [{"field": ["id"], "message": "Bulk operation does not exist"}],
            }
        if operation.status not in ("CREATED", "RUNNING"):
            return {
                "bulkOperation": operation.view(),
                "userErrors": [
                    {
                        "field": None,
                        "message": "A bulk operation cannot be canceled when it is "
                        f"{operation.status.lower()}",
                    }
                ],
            }
        operation.status = "CANCELING"
        operation.cancel.set()
        return {"bulkOperation": operation.view(), "userErrors": []}

    def _run(
        self,
        shop: Shop,
        operation: BulkOperation,
        document: Any,
        base_url: str,
        make_context: Callable[[bool], Any],
    ) -> None:
        with self.lock:
            if operation.status == "CREATED":
                operation.status = "RUNNING"
            delay = shop.knobs.bulk_delay_s
        # Waiting out the "slow" knob off the lock, so the shop keeps answering meanwhile.
        if operation.cancel.wait(timeout=delay) or operation.cancel.is_set():
            with self.lock:
                operation.status = "CANCELED"
                operation.completed_at = utc_now()
            return
        with self.lock:
            try:
                if shop.knobs.bulk_fail:
                    raise RuntimeError("bulk failure injected")
                result = execute(self.schema, document, context_value=make_context(True))
                if result.errors:
                    raise RuntimeError(result.errors[0].message)
                body, count, roots = to_jsonl(
                    self.schema, document, result.data or {}, grouped=operation.group_objects
                )
            except (RuntimeError, GraphQLError):
                operation.status = "FAILED"
                operation.error_code = "INTERNAL_SERVER_ERROR"
                operation.completed_at = utc_now()
                return
            operation.object_count, operation.root_object_count = count, roots
            operation.file_size = len(body)
            if count:
                token = secrets.token_hex(16)
                self.files[token] = (shop.domain, body)
                operation.url = _signed_url(base_url, token, operation.created_at)
            operation.status = "COMPLETED"
            operation.completed_at = utc_now()


def _signed_url(base_url: str, token: str, created: datetime) -> str:
    """A URL shaped like the Google Cloud Storage signed URLs Shopify hands out (query string
    included), valid for 7 days."""
    expires = int((created + timedelta(days=7)).timestamp())
    signature = hashlib.sha256(f"{token}:{expires}".encode()).hexdigest()[:32]
    return (
        f"{base_url.rstrip('/')}/_bulk/{token}.jsonl"
        f"?GoogleAccessId=sandbox-bulk&Expires={expires}&Signature={signature}"
    )
