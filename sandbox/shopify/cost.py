"""Calculated query cost and the leaky bucket that spends it.

Shopify prices a query before running it by static analysis, and again after from what came
back; the bucket must hold the *requested* cost up front and is refunded the difference
(https://shopify.dev/docs/apps/build/apis/graphql-admin/rate-limits and the older edition
https://help.shopify.com/en/api/graphql-admin-api/graphql-admin-api-rate-limits). The field
costs are the documented defaults, as Shopify's engineering write-up spells them out
(https://shopify.engineering/rate-limiting-graphql-apis-calculating-query-complexity):

- scalars and enums cost 0, an object costs 1;
- a connection costs 2 plus, per requested node (``first``/``last``), the node's own cost
  (1, it is an object) and the cost of what is selected inside it; ``edges``, ``cursor`` and
  ``pageInfo`` ride on the 2. When both ``nodes`` and ``edges { node }`` are selected, the
  dearer of the two selections counts ("the maximum of possible fields selected");
- an interface or union costs the maximum over its possible types;
- a mutation field costs 10, and what its payload selects is added on top;
- a plain list of objects (``addresses``, ``userErrors``) is priced as one object: the docs
  give no rule for it; except a list fetched by ``ids`` (``nodes(ids:)``), priced like a
  connection's nodes: per id asked for, each its own cost (an upper bound; Shopify's own
  pricing of ``nodes`` is UNCONFIRMED).

Live Shopify answers are often cheaper than these rules (it prices some small objects, such
as money and email-address objects, at 0), so a query that fits here also fits there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)

MAX_QUERY_COST = 1000  # a single query may not request more (SH-GQL-RL-OLD)
MUTATION_COST = 10
CONNECTION_COST = 2
OBJECT_COST = 1


def _named(type_: Any) -> Any:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_


def _is_list(type_: Any) -> bool:
    while isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def is_connection(type_: Any) -> bool:
    named = _named(type_)
    return isinstance(named, GraphQLObjectType) and named.name.endswith("Connection")


class _Walker:
    """Prices one operation, either from its selections alone or from its result data."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, Any],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    # ------------------------------------------------------------------ selections
    def fields(self, selection_set: SelectionSetNode | None, type_name: str) -> list[FieldNode]:
        """The fields selected on ``type_name``, fragments flattened."""
        out: list[FieldNode] = []
        if selection_set is None:
            return out
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                out.append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, type_name):
                    out.extend(self.fields(selection.selection_set, type_name))
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment and self._applies(fragment.type_condition.name.value, type_name):
                    out.extend(self.fields(fragment.selection_set, type_name))
        return out

    def _applies(self, condition: str, type_name: str) -> bool:
        if condition == type_name:
            return True
        abstract = self.schema.get_type(condition)
        concrete = self.schema.get_type(type_name)
        if isinstance(abstract, GraphQLInterfaceType | GraphQLUnionType) and isinstance(
            concrete, GraphQLObjectType
        ):
            return self.schema.is_sub_type(abstract, concrete)
        return False

    def _possible(self, named: Any) -> list[GraphQLObjectType]:
        if isinstance(named, GraphQLInterfaceType | GraphQLUnionType):
            return list(self.schema.get_possible_types(named))
        return [named]

    def _field_def(self, parent: GraphQLObjectType, node: FieldNode) -> GraphQLField | None:
        return parent.fields.get(node.name.value)

    def argument(self, node: FieldNode, name: str) -> Any:
        """An argument's value: literal, or the coerced variable it names."""
        for argument in node.arguments or ():
            if argument.name.value != name:
                continue
            value = argument.value
            if isinstance(value, VariableNode):
                return self.variables.get(value.name.value)
            if isinstance(value, IntValueNode):
                return int(value.value)
            if isinstance(value, ListValueNode):
                return list(value.values)
        return None

    def page_size(self, node: FieldNode) -> int:
        size = self.argument(node, "first")
        if size is None:
            size = self.argument(node, "last")
        return size if isinstance(size, int) and size > 0 else 0

    # ------------------------------------------------------------------ requested
    def requested(self, selection_set: SelectionSetNode | None, parent: Any) -> int:
        """Cost of the selections on ``parent`` (an object, interface or union type)."""
        return max(
            (
                sum(self._requested_field(t, f) for f in self.fields(selection_set, t.name))
                for t in self._possible(parent)
            ),
            default=0,
        )

    def _requested_field(self, parent: GraphQLObjectType, node: FieldNode) -> int:
        field_def = self._field_def(parent, node)
        if field_def is None:  # __typename and other meta fields
            return 0
        named = _named(field_def.type)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            return 0
        if is_connection(field_def.type):
            return CONNECTION_COST + self.page_size(node) * self._requested_node(node, named)
        ids = self.argument(node, "ids")
        if _is_list(field_def.type) and isinstance(ids, list):
            return len(ids) * (OBJECT_COST + self.requested(node.selection_set, named))
        return OBJECT_COST + self.requested(node.selection_set, named)

    def _requested_node(self, connection: FieldNode, connection_type: GraphQLObjectType) -> int:
        node_type = _named(connection_type.fields["nodes"].type)
        inner = 0
        for f in self.fields(connection.selection_set, connection_type.name):
            if f.name.value == "nodes":
                inner = max(inner, self.requested(f.selection_set, node_type))
            elif f.name.value == "edges":
                edge_type = _named(connection_type.fields["edges"].type)
                for e in self.fields(f.selection_set, edge_type.name):
                    if e.name.value == "node":
                        inner = max(inner, self.requested(e.selection_set, node_type))
        return OBJECT_COST + inner

    # ------------------------------------------------------------------ actual
    def actual(self, selection_set: SelectionSetNode | None, parent: Any, value: Any) -> int:
        """Cost of what came back for the selections on ``parent``."""
        if not isinstance(value, Mapping):
            return 0
        concrete = parent
        if isinstance(parent, GraphQLInterfaceType | GraphQLUnionType):
            typename = value.get("__typename")
            concrete = self.schema.get_type(typename) if typename else None
            if concrete is None:
                return self.requested(selection_set, parent)
        return sum(
            self._actual_field(concrete, f, value)
            for f in self.fields(selection_set, concrete.name)
        )

    def _actual_field(self, parent: GraphQLObjectType, node: FieldNode, data: Mapping) -> int:
        field_def = self._field_def(parent, node)
        if field_def is None:
            return 0
        named = _named(field_def.type)
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            return 0
        key = node.alias.value if node.alias else node.name.value
        value = data.get(key)
        if value is None:
            return 0
        if is_connection(field_def.type):
            return CONNECTION_COST + self._actual_nodes(node, named, value)
        if _is_list(field_def.type) and isinstance(self.argument(node, "ids"), list):
            return sum(OBJECT_COST + self.actual(node.selection_set, named, v) for v in value if v)
        if _is_list(field_def.type):
            items = [v for v in value if v is not None]
            return OBJECT_COST + self.actual(node.selection_set, named, items[0]) if items else 0
        return OBJECT_COST + self.actual(node.selection_set, named, value)

    def _actual_nodes(
        self, connection: FieldNode, connection_type: GraphQLObjectType, value: Mapping
    ) -> int:
        node_type = _named(connection_type.fields["nodes"].type)
        per_index: dict[int, int] = {}
        for f in self.fields(connection.selection_set, connection_type.name):
            key = f.alias.value if f.alias else f.name.value
            if f.name.value == "nodes":
                for i, item in enumerate(value.get(key) or []):
                    cost = self.actual(f.selection_set, node_type, item)
                    per_index[i] = max(per_index.get(i, 0), cost)
            elif f.name.value == "edges":
                edge_type = _named(connection_type.fields["edges"].type)
                for i, edge in enumerate(value.get(key) or []):
                    for e in self.fields(f.selection_set, edge_type.name):
                        if e.name.value == "node":
                            node_key = e.alias.value if e.alias else "node"
                            cost = self.actual(e.selection_set, node_type, edge.get(node_key))
                            per_index[i] = max(per_index.get(i, 0), cost)
        return sum(OBJECT_COST + c for c in per_index.values())


def _root(schema: GraphQLSchema, operation: OperationDefinitionNode) -> GraphQLObjectType:
    root = (
        schema.mutation_type if operation.operation == OperationType.MUTATION else schema.query_type
    )
    assert root is not None  # our schema has both
    return root


def requested_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> int:
    """The requested cost of ``operation`` with coerced ``variables``."""
    walker = _Walker(schema, fragments, variables)
    root = _root(schema, operation)
    if operation.operation == OperationType.MUTATION:
        total = 0
        for node in walker.fields(operation.selection_set, root.name):
            field_def = root.fields.get(node.name.value)
            if field_def is not None:
                total += MUTATION_COST + walker.requested(
                    node.selection_set, _named(field_def.type)
                )
        return total
    return walker.requested(operation.selection_set, root)


def actual_cost(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    data: Mapping[str, Any] | None,
) -> int:
    """The cost of what ``operation`` actually returned in ``data``."""
    walker = _Walker(schema, fragments, variables)
    root = _root(schema, operation)
    if data is None:
        return 0
    if operation.operation == OperationType.MUTATION:
        total = 0
        for node in walker.fields(operation.selection_set, root.name):
            field_def = root.fields.get(node.name.value)
            if field_def is not None:
                key = node.alias.value if node.alias else node.name.value
                payload = data.get(key)
                total += MUTATION_COST + walker.actual(
                    node.selection_set, _named(field_def.type), payload
                )
        return total
    return walker.actual(operation.selection_set, root, data)


class LeakyBucket:
    """One app+shop bucket: ``size`` points, refilled at ``restore_rate`` points per second.

    Not thread-safe by itself: the simulator's store lock guards it.
    """

    def __init__(self, size: float, restore_rate: float, clock: Callable[[], float]) -> None:
        self.size = float(size)
        self.restore_rate = float(restore_rate)
        self.clock = clock
        self.available = float(size)
        self._last = clock()

    def _refill(self) -> None:
        now = self.clock()
        elapsed = max(0.0, now - self._last)
        self._last = now
        self.available = min(self.size, self.available + elapsed * self.restore_rate)

    def take(self, cost: float) -> bool:
        """Spend ``cost`` if the bucket holds it; False (nothing spent) otherwise."""
        self._refill()
        if cost > self.available + 1e-9:  # float refills land a hair short of whole points
            return False
        self.available -= cost
        return True

    def refund(self, amount: float) -> None:
        self.available = min(self.size, self.available + max(0.0, amount))

    def reconfigure(self, *, size: float | None = None, restore_rate: float | None = None) -> None:
        self._refill()
        if size is not None:
            self.size = float(size)
            self.available = min(self.available, self.size)
        if restore_rate is not None:
            self.restore_rate = float(restore_rate)

    def status(self) -> dict[str, float]:
        """The throttleStatus object Shopify returns."""
        self._refill()
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": round(self.available, 2),
            "restoreRate": self.restore_rate,
        }
