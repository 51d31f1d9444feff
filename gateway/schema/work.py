"""The work an operation makes the gateway do, estimated before it runs, and its bound.

The other limits bound what an operation asks of the billing API; this one bounds what it asks
of the gateway: every object and field completion turns into CPU, memory and answer bytes, and
one request that completes millions of them stalls every other request of the process. The
estimate counts what completion will do, as a router's demand control does (IBM's cost
specification, Apollo's ``@cost``/``@listSize``), from the same declarations the SDL shows:

- each field selected costs its weight (1, or the weight its definition declares with
  ``metadata={WORK: n}``: the detail fields, which join a second endpoint's record), each
  object completed costs 1 more, per parent object;
- a list multiplies what is below it by its size: ``first`` for a connection's ``edges`` and
  ``nodes`` (``@listSize(slicingArguments)``), the number of ``ids`` of ``nodes`` and of
  ``representations`` of ``_entities`` (with this request's variables), else the list's
  ``@listSize(assumedSize)``. Commits and credits below a page are also capped by what the
  billing API puts on one page (about 100 of them, plus the seat that crosses the cap:
  :data:`HELD_PER_PAGE`);
- fields are collected as execution collects them (graphql-core's own field collection): an
  alias counts once for every place it answers, fields merged under one response key once,
  ``@skip``/``@include`` follow this request's variables; an abstract type counts as its
  costliest possible type. Each field group is walked once (as execution memoises it), so the
  walk is linear in the operation's merged shape;
- introspection fields cost :data:`INTROSPECTION_WORK` each (their depth has its own rule);
- the operations of a batch share one budget (:meth:`RequestContext.charge_work`).

The pipeline (:mod:`gateway.schema.pipeline`) refuses an operation whose estimate passes the
budget (``COST_LIMIT``, before any resolver runs: :func:`admit`), and answers the same estimate
in ``extensions.cost`` when the request asked for it (``RequestContext.cost_asked``, which
the HTTP layer sets from ``X-Gateway-Cost: true``; :func:`cost_extensions`): ``estimatedCost``
and ``maxCost`` (this estimate and its budget), ``estimatedUpstreamPages`` (runs of the fields
that call the billing API, times the lists they are in), ``maxUpstreamCalls`` and
``upstreamCalls`` (what the request made, after the loaders shared identical pages and the
page cache answered what it could; detail calls included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    OperationDefinitionNode,
    VariableNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import get_variable_values
from strawberry.federation.schema_directives import ListSize

from gateway.schema.context import RequestContext
from gateway.schema.errors import GatewayError
from gateway.schema.fields import Facts, facts_of
from gateway.schema.limits import (
    ListItems,
    QueryLimits,
    argument_value,
    kept_per_operation,
    limit_error,
    operations_run,
)

COST_LIMIT = "COST_LIMIT"

# Commits and credits on one page of seats, at most: the billing API stops adding seats at 100
# commits and credits, and the seat that crosses the cap comes whole (upstream-contract.md).
HELD_PER_PAGE = 200
# What the estimate assumes one seat holds (Seat.commits' and Seat.credits' assumed sizes), and
# how far the seats looked up by key in one request may pass it in all (:func:`charge_held`).
HELD_PER_SEAT = 20
HELD_EXCESS = HELD_PER_PAGE
# An introspection field (`__schema`, `__type`) as a whole: the standard introspection query
# of this schema completes about this many fields.
INTROSPECTION_WORK = 2_000


@dataclass(frozen=True, slots=True)
class Estimate:
    """What an operation would do: ``work`` (field and object completions),
    ``upstream_pages`` (runs of the fields that call the billing API, each at least one page)
    and ``seat_ids`` (the seat ids those runs send upstream: the seat-id limit's count)."""

    work: int
    upstream_pages: int
    seat_ids: int = 0  # seat ids sent upstream (each Facts.seat_ids argument's items)


@dataclass
class _Walk:
    """The estimate of one operation, on graphql-core's own field collection (as execution
    collects them: aliases, merged fields, fragments each once per selection, type conditions,
    ``@skip``/``@include`` with this request's variables), memoised per field group like
    execution's own, so the walk is linear in the operation's merged shape."""

    schema: GraphQLSchema
    operation: OperationDefinitionNode
    fragments: dict[str, FragmentDetails]
    variables: Any  # graphql-core's coerced VariableValues
    sizes: ListItems  # counts a list argument's items, variables applied
    memo: dict[tuple[Any, ...], Estimate] = field(default_factory=dict)

    def root(self, root: GraphQLObjectType) -> Estimate:
        grouped = collect_fields(
            self.schema, self.fragments, self.variables, root, self.operation
        ).grouped_field_set
        return self.fields(root, grouped, None, frozenset())

    def below(
        self,
        type_: GraphQLNamedType,
        group: FieldDetailsList,
        page: int | None,
        sized: frozenset[str],
    ) -> Estimate:
        """The work below one object of ``type_`` selected by ``group`` (``page``: the size of
        the page of seats it is on, if any; ``sized``: its fields that list that page). For an
        abstract type, the most any of its possible types would do, figure by figure."""
        key = (type_.name, tuple(id(details.node) for details in group), page, sized)
        known = self.memo.get(key)
        if known is not None:
            return known
        if isinstance(type_, GraphQLObjectType):
            runtime_types: Any = (type_,)
        elif isinstance(type_, GraphQLInterfaceType | GraphQLUnionType):
            runtime_types = self.schema.get_possible_types(type_)
        else:
            runtime_types = ()
        found = Estimate(0, 0)
        for runtime in runtime_types:
            grouped = collect_subfields(
                self.schema, self.fragments, self.variables, self.operation, runtime, group
            ).grouped_field_set
            estimate = self.fields(runtime, grouped, page, sized)
            found = Estimate(
                max(found.work, estimate.work),
                max(found.upstream_pages, estimate.upstream_pages),
                max(found.seat_ids, estimate.seat_ids),
            )
        self.memo[key] = found
        return found

    def fields(
        self,
        parent: GraphQLObjectType,
        grouped: dict[str, FieldDetailsList],
        page: int | None,
        sized: frozenset[str],
    ) -> Estimate:
        work = pages = seat_ids = 0
        for group in grouped.values():
            found = self.field(parent, group, page, sized)
            work += found.work
            pages += found.upstream_pages
            seat_ids += found.seat_ids
        return Estimate(work, pages, seat_ids)

    def field(
        self,
        parent: GraphQLObjectType,
        group: FieldDetailsList,
        page: int | None,
        sized: frozenset[str],
    ) -> Estimate:
        node = group[0].node
        name = node.name.value
        if name == "__typename":
            return Estimate(1, 0)
        if name.startswith("__"):
            return Estimate(INTROSPECTION_WORK, 0)
        definition: GraphQLField | None = parent.fields.get(name)
        if definition is None:  # validation reports it
            return Estimate(0, 0)
        strawberry_field = (definition.extensions or {}).get("strawberry-definition")
        facts = facts_of(parent, name)
        list_size = _list_size(strawberry_field)
        calls = int(facts.upstream)
        child = get_named_type(definition.type)
        # A connection's page size applies to the sized fields of the object it returns, and
        # to everything below them (the commits cap of a page).
        child_page, child_sized = page, frozenset[str]()
        if list_size is not None and list_size.slicing_arguments:
            child_page = self.slice(node, definition, list_size.slicing_arguments, facts)
            child_sized = frozenset(list_size.sized_fields or ())
        elif facts.sizes_below and facts.page_filter is not None:
            named = self.sizes.items(argument_value(node, facts.page_filter))
            if named:
                child_page, child_sized = named, frozenset(facts.sizes_below)
        if is_leaf_type(child):
            below, each = Estimate(0, 0), 0
        else:
            below = self.below(child, group, child_page, child_sized)
            each = below.work + 1  # the object's own completion
        if not _is_list(definition.type):
            size = 1
        elif facts.sized_by is not None:
            size = self.sizes.items(argument_value(node, facts.sized_by))
        elif page is not None and name in sized:
            size = page
        else:
            size = (list_size.assumed_size if list_size else None) or 1
            if facts.held and page:
                size = min(size, -(-HELD_PER_PAGE // page))
        seat_ids = self.sizes.items(argument_value(node, facts.seat_ids)) if facts.seat_ids else 0
        return Estimate(
            facts.work + size * each,
            calls + size * below.upstream_pages,
            seat_ids + size * below.seat_ids,
        )

    def slice(
        self, node: FieldNode, definition: GraphQLField, arguments: list[str], facts: Facts
    ) -> int:
        """The page size a slicing argument asks for (its default when not given), and no more
        than the seats its page filter names (``seatIds``)."""
        name = arguments[0]
        value = argument_value(node, name)
        size: Any = None
        if isinstance(value, VariableNode):
            self.sizes.varies = True
            size = self.sizes.variables.get(value.name.value)
            if size is None:
                value = self.sizes.defaults.get(value.name.value)
        if size is None and value is not None:
            size = value_from_ast_untyped(value)
        if size is None:
            argument = definition.args.get(name)
            size = argument.default_value if argument is not None else None
        bounded = _page_size(size)
        filtered = argument_value(node, facts.page_filter)
        if filtered is not None:
            seats = self.sizes.items(filtered)
            if seats:
                bounded = min(bounded, seats)
        return bounded


def _page_size(value: Any) -> int:
    """A page's size as asked (an out-of-range ``first`` is refused when the field runs)."""
    return value if isinstance(value, int) and 0 < value <= 100 else 100


def _is_list(type_: Any) -> bool:
    if isinstance(type_, GraphQLNonNull):
        type_ = type_.of_type
    return isinstance(type_, GraphQLList)


def _list_size(definition: Any) -> ListSize | None:
    for directive in getattr(definition, "directives", None) or ():
        if isinstance(directive, ListSize):
            return directive
    return None


def estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any],
    known: dict[str | None, Estimate] | None = None,
) -> Estimate:
    """The estimate of the operations a request may run (all of them when it names none).
    ``known``: a stored document's estimates, kept there when no variable changes them."""
    return kept_per_operation(
        known,
        document,
        operation_name,
        lambda: _estimate(schema, document, operation_name, variables),
    )


def _estimate(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any],
) -> tuple[Estimate, bool]:
    fragments = {
        d.name.value: FragmentDetails(d)
        for d in document.definitions
        if isinstance(d, FragmentDefinitionNode)
    }
    work = pages = seat_ids = 0
    varies = False
    for operation in operations_run(document, operation_name):
        root = schema.get_root_type(operation.operation)
        coerced = get_variable_values(schema, operation.variable_definitions or (), variables, 1)
        if root is None or isinstance(coerced, list):
            continue  # graphql-core refuses the variables before anything runs
        defaults = {
            d.variable.name.value: d.default_value for d in operation.variable_definitions or ()
        }
        walk = _Walk(
            schema,
            operation,
            fragments,
            coerced,
            ListItems(variables, defaults),
        )
        found = walk.root(root)
        work += found.work
        pages += found.upstream_pages
        seat_ids += found.seat_ids
        varies = varies or walk.sizes.varies
    # @skip/@include follow the variables too: such a document's estimate is not kept.
    return Estimate(work, pages, seat_ids), varies or _conditions_vary(document)


def _conditions_vary(document: DocumentNode) -> bool:
    """Whether a directive anywhere in the document takes a variable."""
    pending: list[Any] = [
        d.selection_set
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while pending:
        for selection in pending.pop().selections:
            for directive in selection.directives or ():
                if any(isinstance(a.value, VariableNode) for a in directive.arguments or ()):
                    return True
            if getattr(selection, "selection_set", None) is not None:
                pending.append(selection.selection_set)
    return False


def admit(estimated: Estimate, budget: int, request: RequestContext | None) -> None:
    """Refuses an operation whose estimated work does not fit in what is left of the request's
    budget (a batch's operations share one); charges it otherwise."""
    spent = request.admit_work(estimated.work, budget) if request is not None else None
    if spent is None and (request is not None or estimated.work <= budget):
        return
    batch = f" (the batch's earlier operations took {spent})" if spent else ""
    raise limit_error(
        f"The operation would cost about {estimated.work} units of work (fields and objects "
        f"completed, times the lists they are in); at most {budget} are allowed per request"
        f"{batch}. Select fewer fields, a smaller `first`, fewer aliases, ids or "
        "representations, or split it into several requests.",
        COST_LIMIT,
    )


def charge_held(request: RequestContext, held: int) -> None:
    """Holds a seat looked up by key (``node``, ``nodes``, ``_entities``) to what the estimate
    assumed of it, at run time: the commits and credits of such seats beyond
    :data:`HELD_PER_SEAT` each may add up to :data:`HELD_EXCESS` per request, and a seat past
    that is refused with ``COST_LIMIT`` before anything of it is completed. (A page of seats
    is held to the billing API's own cap, which the estimate counts.)"""
    root = request.root
    root.held_excess += held - HELD_PER_SEAT
    if root.held_excess > HELD_EXCESS:
        root.held_excess -= held - HELD_PER_SEAT
        raise GatewayError(
            f"This seat holds {held} commits and credits; the seats this request looked up by "
            f"key hold more than the cost estimate assumed ({HELD_PER_SEAT} each, "
            f"{HELD_EXCESS} more in all). Ask for fewer seats at a time.",
            COST_LIMIT,
        )


def cost_extensions(
    estimated: Estimate, limits: QueryLimits, request: RequestContext | None
) -> dict[str, Any]:
    """The ``extensions.cost`` of an answer whose request asked for it."""
    return {
        "cost": {
            "estimatedCost": estimated.work,
            "maxCost": limits.max_cost,
            "estimatedUpstreamPages": estimated.upstream_pages,
            "maxUpstreamCalls": limits.max_upstream_calls,
            "upstreamCalls": request.upstream_calls if request else 0,
        }
    }
