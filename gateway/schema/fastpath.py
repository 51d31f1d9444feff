"""An execution fast path for the pure-data part of the schema.

graphql-core resolves every field of every object through its general machinery (a few
microseconds a field), while most answers of this API are projections of the billing API's
JSON. So, for an operation that

* has already been parsed and validated by the standard executor (same limits, same rules),
* is a query whose root fields are ``seatBalances`` and ``__typename`` only, and
* selects, below them, only fields of the pure-data types (connection, edges, page info,
  seats, balances, commits, credits, ledger entries, ``__typename``), with no directive other
  than ``@skip``/``@include``,

a plan is compiled once per (document, operation, values of the ``@skip``/``@include``
conditions), following graphql-core's field collection (aliases, merged fields, named and
inline fragments, type conditions). The pages are fetched by the very function the resolver
uses (:func:`~gateway.schema.connection.connection_for`), with the same look-ahead, so
upstream calls are identical; the plan only replaces the per-field resolution.

Anything else falls back to the standard executor with the same request context: variables
that do not coerce, any exception, a page fetched without data the plan needs. The context's
loaders keep what the fast path fetched, so a fallback costs no extra upstream call.
``tests/test_fastpath.py`` runs a generated corpus of operations through both executors and
requires identical responses, errors included.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    BooleanValueNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    parse,
)
from graphql.execution.values import get_argument_values, get_variable_values

from gateway.schema.arguments import listing_from_arguments
from gateway.schema.connection import SeatConnection, connection_for
from gateway.schema.context import RequestContext
from gateway.schema.ids import encode_cursor, global_id
from gateway.schema.selection import is_included, selected_below
from gateway.schema.types import LEDGER_TYPE_NAMES, Seat

Project = Callable[[Any], Any]

_PLAN_CACHE_SIZE = 256


class Ineligible(Exception):
    """The document uses something the fast path does not do; the standard executor will."""


class Fallback(Exception):
    """This execution cannot be answered by the plan; run the standard executor instead."""


@dataclass(frozen=True, slots=True)
class _Context:
    schema: GraphQLSchema
    fragments: Mapping[str, FragmentDefinitionNode]
    conditions: Mapping[str, bool]  # the @skip/@include variables of this plan


@dataclass(frozen=True, slots=True)
class _RootField:
    key: str
    nodes: tuple[FieldNode, ...]
    project: Project | None  # None: __typename


class Plan:
    """The root of one operation: its fields, and how to project each seat connection."""

    def __init__(self, operation: OperationDefinitionNode, fields: list[_RootField]) -> None:
        self.operation = operation
        self.fields = fields

    async def run(
        self,
        schema: GraphQLSchema,
        context: RequestContext,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Any,
    ) -> dict[str, Any]:
        query_type = schema.query_type
        assert query_type is not None
        field_def = query_type.fields["seatBalances"]

        async def one(field: _RootField) -> Any:
            if field.project is None:
                return query_type.name
            args = get_argument_values(field_def, field.nodes[0], variables)
            listing = listing_from_arguments(
                customer_id=args["customerId"],
                contract_id=args["contractId"],
                subscription_ids=args.get("subscriptionIds"),
                seat_ids=args.get("seatIds"),
                skip_missing_seat_ids=args.get("skipMissingSeatIds"),
                covering_date=args.get("coveringDate"),
                starting_at=args.get("startingAt"),
                effective_before=args.get("effectiveBefore"),
            )
            connection = await connection_for(
                context,
                listing,
                first=args.get("first"),
                after=args.get("after"),
                selected=selected_below(field.nodes, fragments, variables.coerced),
                field_name="seatBalances",
            )
            return field.project(connection)

        # Root query fields run concurrently, as graphql-core runs them, so that their loads
        # are batched the same way.
        values = await asyncio.gather(*(one(f) for f in self.fields), return_exceptions=True)
        for value in values:
            if isinstance(value, BaseException):
                raise Fallback from value
        return dict(zip((f.key for f in self.fields), values, strict=True))


class FastPath:
    """Plans by (document text, operation name, condition values), learnt from documents the
    standard executor has accepted."""

    def __init__(self, schema: GraphQLSchema) -> None:
        self.schema = schema
        self._known: OrderedDict[tuple[str, str | None], _Document | None] = OrderedDict()
        self.hits = 0  # executions answered by a plan (tests and benchmarks read it)

    def learn(self, query: str, operation_name: str | None) -> None:
        """Remember a document that parsed and validated; decide once if it is eligible.
        Called after every standard execution, so a known document costs a lookup only."""
        key = (query, operation_name)
        if key in self._known:
            return
        try:
            entry: _Document | None = _Document.prepare(self.schema, parse(query), operation_name)
        except Ineligible:
            entry = None
        self._known[key] = entry
        if len(self._known) > _PLAN_CACHE_SIZE:
            self._known.popitem(last=False)

    def operation_name(self, query: str, operation_name: str | None) -> str | None:
        document = self._known.get((query, operation_name))
        name = document.operation.name if document else None
        return name.value if name else None

    async def execute(
        self,
        query: str,
        operation_name: str | None,
        raw_variables: dict[str, Any] | None,
        context: RequestContext,
    ) -> dict[str, Any] | None:
        """The response data, or ``None`` when the standard executor must answer."""
        key = (query, operation_name)
        document = self._known.get(key)
        if document is None:
            return None
        self._known.move_to_end(key)  # least recently used documents are forgotten first
        variables = get_variable_values(
            self.schema, document.operation.variable_definitions or (), raw_variables or {}
        )
        if isinstance(variables, list):  # the standard executor reports these errors
            return None
        try:
            plan = document.plan(variables.coerced)
            data = await plan.run(self.schema, context, document.fragments, variables)
        except (Ineligible, Fallback):
            return None
        self.hits += 1
        return data


class _Document:
    """An eligible operation and its plans, one per combination of condition values."""

    def __init__(
        self,
        schema: GraphQLSchema,
        operation: OperationDefinitionNode,
        fragments: dict[str, FragmentDefinitionNode],
        condition_names: tuple[str, ...],
    ) -> None:
        self.schema = schema
        self.operation = operation
        self.fragments = fragments
        self.condition_names = condition_names
        self._plans: dict[tuple[bool, ...], Plan | None] = {}

    @classmethod
    def prepare(
        cls, schema: GraphQLSchema, document: DocumentNode, operation_name: str | None
    ) -> _Document:
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is None:
            if len(operations) != 1:
                raise Ineligible
            [operation] = operations
        else:
            named = [o for o in operations if o.name and o.name.value == operation_name]
            if len(named) != 1:
                raise Ineligible
            [operation] = named
        if operation.operation is not OperationType.QUERY or operation.directives:
            raise Ineligible
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        if any(f.directives or f.variable_definitions for f in fragments.values()):
            raise Ineligible
        names: set[str] = set()
        for node in _all_selections(document):
            if isinstance(node, FieldNode) and _seat_ids_from_variables(node):
                # Counted per request against the seat-id budget by the standard path's
                # extensions (gateway.schema.limits), which this path does not run.
                raise Ineligible
            for directive in node.directives or ():
                if directive.name.value not in ("skip", "include"):
                    raise Ineligible
                for argument in directive.arguments or ():
                    if isinstance(argument.value, VariableNode):
                        names.add(argument.value.name.value)
                    elif not isinstance(argument.value, BooleanValueNode):
                        raise Ineligible
        entry = cls(schema, operation, fragments, tuple(sorted(names)))
        entry.plan({name: False for name in names})  # the usual case: fail early if ineligible
        return entry

    def plan(self, variables: Mapping[str, Any]) -> Plan:
        key = tuple(variables.get(name) is True for name in self.condition_names)
        plan = self._plans.get(key)
        if plan is None:
            conditions = dict(zip(self.condition_names, key, strict=True))
            plan = _compile_root(_Context(self.schema, self.fragments, conditions), self.operation)
            self._plans[key] = plan
        return plan


def _seat_ids_from_variables(field: FieldNode) -> bool:
    for argument in field.arguments or ():
        value = argument.value
        if argument.name.value == "seatIds" and (
            isinstance(value, VariableNode)
            or (
                isinstance(value, ListValueNode)
                and any(isinstance(v, VariableNode) for v in value.values)
            )
        ):
            return True
    return False


def _all_selections(document: DocumentNode) -> list[SelectionNode]:
    found: list[SelectionNode] = []

    def visit(selection_set: SelectionSetNode | None) -> None:
        for selection in selection_set.selections if selection_set else ():
            found.append(selection)
            visit(getattr(selection, "selection_set", None))

    for definition in document.definitions:
        visit(getattr(definition, "selection_set", None))
    return found


def _collect(
    context: _Context, type_: GraphQLObjectType, selection_sets: list[SelectionSetNode]
) -> OrderedDict[str, list[FieldNode]]:
    """graphql-core's CollectFields for one concrete type: response keys in first-seen order,
    merged field nodes, each fragment visited once, type conditions applied."""
    fields: OrderedDict[str, list[FieldNode]] = OrderedDict()
    visited: set[str] = set()

    def applies(condition: Any) -> bool:
        if condition is None:
            return True
        on = context.schema.get_type(condition.name.value)
        if on is type_:
            return True
        return on is not None and context.schema.is_sub_type(on, type_)  # type: ignore[arg-type]

    def visit(selection_set: SelectionSetNode) -> None:
        for selection in selection_set.selections:
            if not is_included(selection, context.conditions):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                fields.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                if applies(selection.type_condition):
                    visit(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = context.fragments.get(name)
                if fragment is not None and applies(fragment.type_condition):
                    visit(fragment.selection_set)

    for selection_set in selection_sets:
        visit(selection_set)
    return fields


def _compile_root(context: _Context, operation: OperationDefinitionNode) -> Plan:
    query_type = context.schema.query_type
    assert query_type is not None
    fields: list[_RootField] = []
    for key, nodes in _collect(context, query_type, [operation.selection_set]).items():
        name = nodes[0].name.value
        if name == "__typename":
            fields.append(_RootField(key, tuple(nodes), None))
        elif name == "seatBalances":
            project = _compile_object(context, "SeatConnection", nodes)
            fields.append(_RootField(key, tuple(nodes), project))
        else:
            raise Ineligible
    return Plan(operation, fields)


def _compile_object(context: _Context, type_name: str, nodes: list[FieldNode]) -> Project:
    """A function from the type's source value (see ``_FIELDS``) to its response object."""
    type_ = context.schema.get_type(type_name)
    assert isinstance(type_, GraphQLObjectType)
    selection_sets = [n.selection_set for n in nodes if n.selection_set is not None]
    getters: list[tuple[str, Project]] = []
    for key, field_nodes in _collect(context, type_, selection_sets).items():
        name = field_nodes[0].name.value
        if name == "__typename":
            getters.append((key, _constant(type_name)))
            continue
        builder = _FIELDS.get((type_name, name))
        if builder is None or field_nodes[0].arguments:
            raise Ineligible
        child_type = get_named_type(type_.fields[name].type)
        child = (
            _compile_object(context, child_type.name, field_nodes)
            if isinstance(child_type, GraphQLObjectType)
            else None
        )
        getters.append((key, builder(child)))
    pairs = tuple(getters)
    return lambda source: {key: get(source) for key, get in pairs}


def _constant(value: Any) -> Project:
    return lambda _: value


# How each field is read from its type's source value. Sources: SeatConnection, SeatEdge and
# PageInfo are the Strawberry objects `connection_for` returns; Seat is the Strawberry Seat;
# CreditTypeBalance and LedgerEntry are wire dicts; Commit and Credit are (seat, wire dict).
Builder = Callable[[Project | None], Project]


def _attr(name: str) -> Builder:
    return lambda _: lambda source: getattr(source, name)


def _key(name: str) -> Builder:
    return lambda _: lambda source: source[name]


def _child_list(read: Callable[[Any], Any]) -> Builder:
    def build(child: Project | None) -> Project:
        assert child is not None
        return lambda source: [child(item) for item in read(source)]

    return build


def _child(read: Callable[[Any], Any]) -> Builder:
    def build(child: Project | None) -> Project:
        assert child is not None
        return lambda source: child(read(source))

    return build


def _commitments(kind: str) -> Builder:
    def build(child: Project | None) -> Project:
        assert child is not None

        def project(seat: Seat) -> list[Any]:
            if not seat._has_commits:
                raise Fallback  # the resolver would load them lazily
            items: list[Any] = seat._record.get(kind) or []  # type: ignore[assignment]
            return [child((seat, item)) for item in items]

        return project

    return build


def _ledger_entries(child: Project | None) -> Project:
    assert child is not None

    def project(source: tuple[Seat, Any]) -> list[Any]:
        seat, item = source
        if not seat._has_ledgers:
            raise Fallback
        return [child(entry) for entry in item.get("ledger_entries") or ()]

    return project


def _commitment_id(type_name: str) -> Builder:
    def build(_: Project | None) -> Project:
        def project(source: tuple[Seat, Any]) -> str:
            seat, item = source
            return global_id(
                type_name, seat.customer_id, seat.contract_id, seat.seat_id, item["id"]
            )

        return project

    return build


def _wire(name: str, default: Any = ...) -> Builder:
    if default is ...:
        return lambda _: lambda source: source[1][name]
    return lambda _: lambda source: source[1].get(name, default)


_FIELDS: dict[tuple[str, str], Builder] = {
    ("SeatConnection", "edges"): _child_list(lambda c: c.edges),
    ("SeatConnection", "nodes"): _child_list(lambda c: [edge.node for edge in c.edges]),
    ("SeatConnection", "pageInfo"): _child(lambda c: c.page_info),
    ("SeatConnection", "seatsAvailableForNextPage"): _attr("seats_available_for_next_page"),
    ("SeatEdge", "cursor"): lambda _: lambda edge: encode_cursor(edge.after),
    ("SeatEdge", "node"): _child(lambda e: e.node),
    ("PageInfo", "hasNextPage"): _attr("has_next_page"),
    ("PageInfo", "hasPreviousPage"): _attr("has_previous_page"),
    ("PageInfo", "startCursor"): _attr("start_cursor"),
    ("PageInfo", "endCursor"): _attr("end_cursor"),
    ("Seat", "id"): lambda _: lambda s: global_id("Seat", s.customer_id, s.contract_id, s.seat_id),
    ("Seat", "seatId"): _attr("seat_id"),
    ("Seat", "customerId"): _attr("customer_id"),
    ("Seat", "contractId"): _attr("contract_id"),
    ("Seat", "balances"): _child_list(lambda s: s._record["balances"]),
    ("Seat", "commits"): _commitments("commits"),
    ("Seat", "credits"): _commitments("credits"),
    ("CreditTypeBalance", "creditTypeId"): _key("credit_type_id"),
    ("CreditTypeBalance", "balance"): _key("balance"),
    ("CreditTypeBalance", "startingBalance"): _key("starting_balance"),
    ("Commit", "id"): _commitment_id("Commit"),
    ("Commit", "commitId"): _wire("id"),
    ("Credit", "id"): _commitment_id("Credit"),
    ("Credit", "creditId"): _wire("id"),
    ("LedgerEntry", "type"): lambda _: lambda e: LEDGER_TYPE_NAMES.get(e["type"], "UNKNOWN"),
    ("LedgerEntry", "rawType"): _key("type"),
    ("LedgerEntry", "amount"): _key("amount"),
    ("LedgerEntry", "timestamp"): _key("timestamp"),
}
for _kind in ("Commit", "Credit"):
    _FIELDS[(_kind, "balance")] = _wire("balance")
    _FIELDS[(_kind, "startDate")] = _wire("start_date")
    _FIELDS[(_kind, "endDate")] = _wire("end_date", None)
    _FIELDS[(_kind, "ledgerEntries")] = _ledger_entries


__all__ = ["FastPath", "SeatConnection"]
