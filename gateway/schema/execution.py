"""Projection: graphql-core's executor, completing pure-data objects in one pass.

graphql-core completes every field of every object through its general machinery (a resolve
info, a path, the resolver's wrapper, a few microseconds a field), while most answers of this API
are projections of the billing API's JSON. :class:`ProjectingExecutor` is the executor class the
schema hands to graphql-core (``execution_context_class``, a public seam of Strawberry and of
graphql-core); everything before and around it (parsing, validation, limits, the schema
extensions, the root resolvers, error shaping) is Strawberry's usual pipeline.

When graphql-core is about to complete an object, the executor looks at what the operation
selects on it, through graphql-core's own field collection (``collect_subfields``: aliases,
merged fields, fragments, type conditions, ``@skip``/``@include`` with this request's
variables). If every selected field has a reader (:mod:`gateway.schema.fields`) and a type it
can complete (scalars, enums, lists and objects of the same kind), it builds a projection once
per (type, selection) for this execution and completes the object by calling the readers and the
types' own ``coerce_output_value``. Anything else, or anything unexpected while projecting (a
null in a non-null field, a value a scalar refuses, a reader that raises), is left to
graphql-core, which completes that object again field by field and reports the error where it
belongs; readers only read, so reading twice changes nothing.

A field may read something that must first be joined onto its source (a commit's details,
from another endpoint: ``reads(joins=...)``). A projection knows every join below it
(``starts``): the object that holds them (an answer, an entity) starts them all at once, so
the loaders batch them, awaits them together and is then projected in one pass; nothing is
awaited per field.

Projections live beside graphql-core's own memo of collected fields for the execution; those of
operations whose ``@skip``/``@include`` take no variable are also kept across requests in a
bounded :class:`PlanCache` (the selection, and so the projection, is then the same for every
request of that document), so no variable value can multiply them.

The compiled root (:func:`execute_compiled`) goes one step further for such a document, as
graphql-jit compiles a whole query: when the operation's root selects one field that declares
its answer (:func:`~gateway.schema.fields.answer_of`) and an object the projection completes
whole, the pipeline's ``on_execute`` (Strawberry's seam for supplying a result) answers it with
graphql-core's own variable and argument coercion, the field's one definition, graphql-core's
error location and the same projection, and graphql-core's executor is not built at all.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from inspect import isawaitable
from keyword import iskeyword
from operator import attrgetter, itemgetter
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLFloat,
    GraphQLID,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfoHelpers,
    GraphQLScalarType,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    located_error,
)
from graphql.execution.collect_fields import FieldDetails, FieldDetailsList, collect_fields
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.pyutils import AwaitableOrValue, Path
from graphql.utilities import get_operation_ast
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import ExecutionContext

from gateway.caches import LRUCache
from gateway.schema.coercion import ArgumentPlan, plan_arguments
from gateway.schema.context import RequestContext, context_of
from gateway.schema.fields import Asked, Join, Reader, RootAnswer, answer_of, join_of, reader_of
from gateway.schema.scalars import same_text

Complete = Callable[[Any], Any]


class _Decline(Exception):
    """This value is graphql-core's to complete (and perhaps to report)."""


_UNKNOWN: Any = object()


class GatewayExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, as Strawberry configures it, offering the look-ahead
    (:meth:`names_below`) to the request's resolvers through the request context."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # graphql-core binds the helpers it hands resolvers to the executor that holds them: a
        # reference cycle that leaves every execution (its context, loaders, pages and result)
        # to the cycle collector instead of freeing it as the request ends. The same helpers,
        # holding their executor weakly (it outlives every resolver it runs).
        executor = weakref.ref(self)
        self.async_helpers = GraphQLResolveInfoHelpers(
            gather=lambda values: executor().gather_async_work(values),  # type: ignore[union-attr]
            track=lambda values: executor().track_async_work(values),  # type: ignore[union-attr]
        )
        self._request = context_of(self.context_value)
        if self._request is not None:
            self._request.executor = self
        # Per execution, like graphql-core's own memo: the field nodes are the document's, so
        # every entity of an _entities list shares one walk.
        self._names_below: dict[tuple[Any, tuple[int, ...]], frozenset[str]] = {}

    def names_below(
        self, return_type: GraphQLOutputType, field_nodes: list[FieldNode]
    ) -> frozenset[str]:
        """The names of the fields executing this operation will complete at any depth below
        these field nodes: graphql-core's own field collection (fragments, type conditions,
        ``@skip``/``@include`` with this request's variables), memoised per execution like
        completion itself. Its cost is linear in the operation's merged shape, which the
        limits have bounded before execution starts."""
        key = (return_type, tuple(id(node) for node in field_nodes))
        known = self._names_below.get(key)
        if known is not None:
            return known
        names: set[str] = set()
        # A stack, not a nested function that calls itself: such a function is a reference
        # cycle (through its own closure) that would keep this executor for the collector.
        todo: list[tuple[GraphQLOutputType, FieldDetailsList]] = [
            (return_type, [FieldDetails(node, None) for node in field_nodes])
        ]
        while todo:
            type_, group = todo.pop()
            named = get_named_type(type_)
            if is_object_type(named):
                runtime_types: Any = (named,)
            elif is_abstract_type(named):
                runtime_types = self.schema.get_possible_types(named)
            else:
                continue
            for runtime_type in runtime_types:
                grouped = self.collect_subfields(runtime_type, group).grouped_field_set
                for child in grouped.values():
                    name = child[0].node.name.value
                    names.add(name)
                    field = runtime_type.fields.get(name)
                    if field is not None:
                        todo.append((field.type, child))
        self._names_below[key] = found = frozenset(names)
        return found


class PlanCache:
    """Projections shared across requests, for operations whose selections do not depend on
    variables: keyed by the operation, the type and the field nodes. The operation is held
    beside each entry (so its ``id`` cannot be reused by another document while the entry
    lives) and checked on every hit. Bounded in entries, least recently used first out."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._plans: LRUCache[Hashable, tuple[OperationDefinitionNode, Any]] = LRUCache(max_entries)
        self._variable_free: LRUCache[int, tuple[OperationDefinitionNode, bool]] = LRUCache(
            max_entries
        )

    def __len__(self) -> int:
        return len(self._plans)

    def get(self, key: Hashable, operation: OperationDefinitionNode) -> Any:
        entry = self._plans.get(key)
        if entry is None or entry[0] is not operation:
            return _UNKNOWN
        return entry[1]

    def put(self, key: Hashable, operation: OperationDefinitionNode, plan: Any) -> None:
        self._plans[key] = (operation, plan)

    def variable_free(
        self,
        operation: OperationDefinitionNode,
        fragments: Iterable[FragmentDefinitionNode],
    ) -> bool:
        """Whether no @skip/@include of the operation (or its fragments) takes a variable;
        ``fragments`` are read only the first time an operation is asked about."""
        entry = self._variable_free.get(id(operation))
        if entry is not None and entry[0] is operation:
            return entry[1]
        free = not any(
            isinstance(argument.value, VariableNode)
            for node in _directive_holders(operation, fragments)
            for directive in node.directives or ()
            for argument in directive.arguments or ()
        )
        self._variable_free[id(operation)] = (operation, free)
        return free


def _directive_holders(
    operation: OperationDefinitionNode, fragments: Iterable[FragmentDefinitionNode]
) -> Iterator[Any]:
    """Every selection of the operation and of the document's fragments (each once)."""
    pending: list[Any] = [operation.selection_set, *(f.selection_set for f in fragments)]
    while pending:
        selection_set = pending.pop()
        for selection in selection_set.selections:
            yield selection
            if getattr(selection, "selection_set", None) is not None:
                pending.append(selection.selection_set)


class ProjectingExecutor(GatewayExecutor):
    """graphql-core's executor, completing objects whose selection it can project in one
    pass (see the module's docstring)."""

    plans: PlanCache  # set on the schema's own subclass (gateway.schema.build_schema)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._projections: dict[tuple[GraphQLObjectType, int], tuple[Any, Complete | None]] = {}
        manager = self.middleware_manager
        # A schema extension that wraps resolvers must see every field: no projection then.
        self._projecting = not (manager and manager.middlewares)

    def names_below(
        self, return_type: GraphQLOutputType, field_nodes: list[FieldNode]
    ) -> frozenset[str]:
        """The look-ahead, shared across requests under the same rule as the projections."""
        if not self._may_share():
            return super().names_below(return_type, field_nodes)
        shared = ("names below", id(self.operation), return_type, tuple(map(id, field_nodes)))
        known = self.plans.get(shared, self.operation)
        if known is not _UNKNOWN:
            return known  # type: ignore[no-any-return]
        names = super().names_below(return_type, field_nodes)
        self.plans.put(shared, self.operation, names)
        return names

    def collect_and_execute_subfields(
        self,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> AwaitableOrValue[dict[str, Any]]:
        if self._projecting:
            project = self._projection(return_type, field_details_list)
            if project is not None and project.starts is not None:  # type: ignore[attr-defined]
                return self._joined(
                    project, return_type, field_details_list, path, result, position_context
                )
            if project is not None:
                try:
                    data = project(result)
                except Exception:  # noqa: S110 - graphql-core completes it, errors and all
                    pass
                else:
                    if self._request is not None:
                        self._request.fast_path = True
                    return data  # type: ignore[no-any-return]
        return super().collect_and_execute_subfields(
            return_type, field_details_list, path, result, position_context
        )

    async def _joined(
        self,
        project: Complete,
        return_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
        position_context: Any,
    ) -> dict[str, Any]:
        """An object with something joined below it (the details of commits or credits):
        every join of the whole object started at once (the loaders batch them), awaited
        together, then the one-pass projection, instead of an awaited resolver per field."""
        request = self._request
        if request is not None:
            try:
                await joined(project, result, request)
                data = project(result)
            except Exception:  # noqa: S110 - graphql-core completes it, errors and all
                pass
            else:
                request.fast_path = True
                return data  # type: ignore[no-any-return]
        completed = super().collect_and_execute_subfields(
            return_type, field_details_list, path, result, position_context
        )
        return await completed if isawaitable(completed) else completed

    def _projection(
        self, type_: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> Complete | None:
        # Keyed like graphql-core's own memo: by the identity of the field group, which is
        # kept alive beside the projection.
        key = (type_, id(field_details_list))
        cached = self._projections.get(key)
        if cached is not None:
            return cached[1]
        shared = self._shared_key(type_, field_details_list)
        if shared is not None:
            known = self.plans.get(shared, self.operation)
            if known is not _UNKNOWN:
                self._projections[key] = (field_details_list, known)
                return known  # type: ignore[no-any-return]
        # A subscription executes its selection again for every message, each time with an
        # executor of its own: what one message compiled serves the next (the same document
        # and variables for the operation's whole life; bench/live_fanout.py).
        own = self._request.projections if self._request is not None else None
        mine: Hashable = None  # keyed only for a streaming operation (a query executes once)
        if own is not None:
            mine = (id(self.operation), type_.name, tuple(id(f.node) for f in field_details_list))
            if mine in own:
                self._projections[key] = (field_details_list, own[mine])
                return own[mine]  # type: ignore[no-any-return]
        self._projections[key] = (field_details_list, None)  # recursion guard
        project = self._compile_object(type_, field_details_list, unrolled=shared is not None)
        self._projections[key] = (field_details_list, project)
        if shared is not None and project is not None:  # what cannot be projected: per request
            self.plans.put(shared, self.operation, project)
        if own is not None:
            own[mine] = project
        return project

    def _may_share(self) -> bool:
        """Whether what this execution compiles may be kept across requests: only for a
        document the document store gave (learned from a request that was not refused, so a
        refused request leaves nothing behind, and the same document object every time), and
        only when no @skip/@include of the operation depends on a variable, so that no variable
        value can multiply plans."""
        return (
            self._request is not None
            and self._request.document_known
            and self.plans.variable_free(self.operation, self.fragment_definitions.values())
        )

    def _shared_key(
        self, type_: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> tuple[int, str, tuple[int, ...]] | None:
        """The key a projection is shared under across requests (see :meth:`_may_share`)."""
        if not self._may_share():
            return None
        return (id(self.operation), type_.name, tuple(id(f.node) for f in field_details_list))

    def _compile_object(
        self, type_: GraphQLObjectType, field_details_list: FieldDetailsList, *, unrolled: bool
    ) -> Complete | None:
        grouped, defer_usages, _ = self.collect_subfields(type_, field_details_list)
        if defer_usages:
            return None
        fields: list[tuple[str, Reader, Complete]] = []
        joins: list[Join] = []
        below: list[tuple[Reader, Starts]] = []
        for response_key, group in grouped.items():
            name = group[0].node.name.value
            if name == "__typename":
                fields.append((response_key, _constant(type_.name), _identity))
                continue
            field = type_.fields.get(name)
            read = reader_of(field) if field is not None else None
            if field is None or read is None:
                return None
            complete = self._compile_value(field.type, group)
            if complete is None:
                return None
            fields.append((response_key, read, complete))
            join = join_of(field)
            if join is not None and join not in joins:
                joins.append(join)
            starts = getattr(complete, "starts", None)
            if starts is not None:
                below.append((read, starts))
        is_type_of = type_.is_type_of
        entries = tuple(fields)
        if unrolled:
            project = _unrolled(is_type_of, entries)
        else:

            def project(source: Any) -> dict[str, Any]:
                if is_type_of is not None and not is_type_of(source, None):  # type: ignore[arg-type]
                    raise _Decline
                return {key: complete(read(source)) for key, read, complete in entries}

        project.starts = _starts(tuple(joins), tuple(below))  # type: ignore[attr-defined]
        return project

    def _compile_value(self, type_: GraphQLOutputType, group: FieldDetailsList) -> Complete | None:
        """How a value of ``type_`` is completed; ``None`` for what only graphql-core does.

        A non-null wrapper is folded into what it wraps (one call per value, not two): a null
        there is graphql-core's to report."""
        required = is_non_null_type(type_)
        inner: Any = type_.of_type if required else type_  # type: ignore[union-attr]
        if is_leaf_type(inner):
            return _leaf(inner, required=required)
        if is_list_type(inner):
            item = self._compile_value(inner.of_type, group)
            if item is None:
                return None

            def items(value: Any) -> Any:
                if value is None:
                    if required:
                        raise _Decline
                    return None
                if not isinstance(value, list | tuple):
                    raise _Decline
                return [item(element) for element in value]

            items.items_of = item  # type: ignore[attr-defined]  # inlined by _unrolled
            item_starts: Starts | None = getattr(item, "starts", None)
            if item_starts is not None:

                def starts(value: Any, request: RequestContext, pending: list[Any]) -> None:
                    for element in value or ():
                        item_starts(element, request, pending)

                items.starts = starts  # type: ignore[attr-defined]
            return items
        if is_object_type(inner):
            project = self._projection(inner, group)
            if project is None:
                return None

            def obj(value: Any) -> Any:
                if value is None:
                    if required:
                        raise _Decline
                    return None
                return project(value)

            obj.object_of = project  # type: ignore[attr-defined]  # inlined by _unrolled
            object_starts: Starts | None = project.starts  # type: ignore[attr-defined]
            if object_starts is not None:

                def starts_object(value: Any, request: RequestContext, pending: list[Any]) -> None:
                    if value is not None:
                        object_starts(value, request, pending)

                obj.starts = starts_object  # type: ignore[attr-defined]
            return obj
        return None  # interfaces and unions: graphql-core resolves the runtime type


# starts(value, request, pending): starts every join below a value, adding their futures.
Starts = Callable[[Any, RequestContext, list[Any]], None]


def _starts(joins: tuple[Join, ...], below: tuple[tuple[Reader, Starts], ...]) -> Starts | None:
    """What starts the joins of an object and of everything below it (``None``: there are
    none): its own fields' joins, then each field's value's, read by the field's reader."""
    if not joins and not below:
        return None

    def starts(source: Any, request: RequestContext, pending: list[Any]) -> None:
        for join in joins:
            future = join(source, request)
            if future is not None:
                pending.append(future)
        for read, starts_below in below:
            starts_below(read(source), request, pending)

    return starts


async def joined(project: Complete, source: Any, request: RequestContext) -> None:
    """Every join below ``source`` started, then awaited together (``asyncio.wait``: one
    caller leaving does not cancel a load another waits for); a reader that raises here is
    the projection's to decline."""
    starts: Starts | None = project.starts  # type: ignore[attr-defined]
    if starts is None:
        return
    pending: list[Any] = []
    starts(source, request, pending)
    if pending:
        await asyncio.wait(pending)


@dataclass(frozen=True, slots=True)
class RootPlan:
    """An operation whose root selects one field with an answer (:func:`answer_of`), an object
    the projection completes whole, and nothing else but ``__typename``: everything graphql-core
    would do for it, compiled once per stored document (see :func:`execute_compiled`)."""

    operation: OperationDefinitionNode
    keys: tuple[str, ...]  # the root's response keys, in order
    key: str  # the answering field's
    typename: str  # the root type's name, for the other keys
    field: Any  # its GraphQLField
    details: FieldDetails  # its first field node, with its fragment variables
    nodes: tuple[FieldNode, ...]  # all of its field nodes, for an error's locations
    answer: RootAnswer
    selected: frozenset[str]  # the look-ahead below it
    project: Complete  # the projection of the object it answers
    # Its arguments from the request's variables, planned once (None: graphql-core's coercion
    # for every request of this operation).
    arguments: ArgumentPlan | None


async def execute_compiled(
    context: ExecutionContext, request: RequestContext
) -> ExecutionResult | None:
    """The result of the operation by its compiled root, when its document has one; ``None``
    to leave the operation to graphql-core (which then reports whatever stopped this).

    Called by the pipeline's ``on_execute`` (Strawberry's seam for supplying a result), after
    the limits and the seat-id budget: the steps around execution are the same. What graphql-core
    would do is done by graphql-core's own functions or by a plan made with them: the variables
    and the arguments by the operation's :class:`~gateway.schema.coercion.ArgumentPlan` where
    it covers them, else by ``get_variable_values`` and ``get_argument_values``; the answer is
    the field's one definition (its resolver calls it too), a raised error is located by
    ``located_error`` at the field, and the value is completed by the projection graphql-core's
    executor uses.
    Nothing here runs before every argument is known good; a value the projection declines (a
    null where the schema promises none) is left to graphql-core, which completes it again from
    the request's loaders (no second upstream call) and reports the error where it belongs."""
    plan = _root_plan(context, request)
    if plan is None:
        return None
    variables = context.variables or {}
    values = None if plan.arguments is None else plan.arguments.values(variables)
    if values is None:
        values = _coerced_arguments(context, plan, variables)
        if values is None:
            return None
    asked = Asked(request, plan.selected, plan.details.node.name.value)
    errors = None
    try:
        answered = await plan.answer.answer(asked, **plan.answer.keywords(values))
    except Exception as error:
        errors = [located_error(error, list(plan.nodes), [plan.key])]
        value = None
    else:
        try:
            if answered is not None:
                await joined(plan.project, answered, request)
            value = None if answered is None else plan.project(answered)
        except Exception:
            return None
    request.fast_path = request.compiled = True
    data = {key: value if key == plan.key else plan.typename for key in plan.keys}
    return ExecutionResult(data, errors)


def _coerced_arguments(
    context: ExecutionContext, plan: RootPlan, variables: dict[str, Any]
) -> dict[str, Any] | None:
    """The root field's arguments as graphql-core coerces them; ``None`` when it refuses them
    (graphql-core then reports why)."""
    definitions = plan.operation.variable_definitions
    coerced = None
    if definitions:
        got = get_variable_values(context.schema._schema, definitions, variables, 50)
        if isinstance(got, list):
            return None
        coerced = got
    details = plan.details
    try:
        return get_argument_values(
            plan.field, details.node, coerced, details.fragment_variable_values
        )
    except Exception:
        return None


def _root_plan(context: ExecutionContext, request: RequestContext) -> RootPlan | None:
    """The compiled root of the request's operation: kept across requests (in the schema's
    plan cache, with its operation) for a stored document only, compiled on its first
    request by graphql-core's field collection and the projection's own compiler."""
    executor_class = context.schema.execution_context_class
    plans: PlanCache | None = getattr(executor_class, "plans", None)
    document = context.graphql_document
    if plans is None or document is None or not request.document_known:
        return None
    operation = get_operation_ast(document, context.operation_name)
    if operation is None or operation.operation is not OperationType.QUERY:
        return None
    key = ("root", id(operation))
    known = plans.get(key, operation)
    if known is not _UNKNOWN:
        return known  # type: ignore[no-any-return]
    fragments = (d for d in document.definitions if isinstance(d, FragmentDefinitionNode))
    if not plans.variable_free(operation, fragments):  # remembered per operation, bounded
        return None
    plan = _compile_root(context, executor_class, operation)
    if plan is _UNKNOWN:  # this request's variables are refused: nothing learned from it
        return None
    plans.put(key, operation, plan)
    return plan  # type: ignore[no-any-return]


def _compile_root(
    context: ExecutionContext, executor_class: Any, operation: OperationDefinitionNode
) -> Any:
    """The operation's root plan, ``None`` when it has none, ``_UNKNOWN`` when this request
    cannot tell (graphql-core refuses its variables)."""
    schema = context.schema._schema
    executor = executor_class.build(
        schema,
        context.graphql_document,
        None,
        context.context,
        context.variables,
        context.operation_name,
    )
    if isinstance(executor, list):
        return _UNKNOWN
    if not executor._may_share():
        return None
    # A schema extension that wraps resolvers must see every field: no compiled root then.
    if any(extension._implements_resolve() for extension in context.schema.get_extensions()):
        return None
    root = schema.query_type
    if root is None:
        return None
    grouped, defer_usages, _ = collect_fields(
        schema, executor.fragments, executor.variable_values, root, operation
    )
    answering = [key for key, group in grouped.items() if group[0].node.name.value != "__typename"]
    if defer_usages or len(answering) != 1:
        return None
    key = answering[0]
    group = grouped[key]
    field = root.fields.get(group[0].node.name.value)
    answer = answer_of(field) if field is not None else None
    if field is None or answer is None or is_non_null_type(field.type):
        return None
    named = field.type
    if not is_object_type(named):  # a union (Strawberry's error results among them) is not
        return None
    project = executor._projection(named, group)
    if project is None:
        return None
    return RootPlan(
        operation=operation,
        keys=tuple(grouped),
        key=key,
        typename=root.name,
        field=field,
        details=group[0],
        nodes=tuple(details.node for details in group),
        answer=answer,
        selected=executor.names_below(field.type, [details.node for details in group]),
        project=project,
        arguments=(
            None
            if group[0].fragment_variable_values is not None
            else plan_arguments(schema, operation.variable_definitions or (), field, group[0].node)
        ),
    )


# graphql-core's own output coercion of its specified scalars returns these very values
# unchanged (a str for String and ID, a bool for Boolean, a finite float for Float): a value of
# exactly that type is its own output, as graphql-jit inlines the built-in serializers. Any
# other value goes through the scalar's coerce_output_value.
_UNCHANGED: dict[GraphQLScalarType, type] = {
    GraphQLString: str,
    GraphQLID: str,
    GraphQLBoolean: bool,
    GraphQLFloat: float,
}


def _unrolled(is_type_of: Any, entries: tuple[tuple[str, Reader, Complete], ...]) -> Complete:
    """The projection of one object as one generated function, as graphql-jit compiles one: a
    dict display with an entry per field instead of a loop over the fields, with the
    completions inlined where they are a test and a call: a leaf that passes its value through
    (``v if type(v) is str else complete(v)``), an enum value's name by one lookup, an
    object's projection (``p(v) if v is not None else complete(v)``), a list's items
    (``[... for x in v] if type(v) is list else complete(v)``). Anything else, and every value
    an inlined test does not pass, goes to the completion itself, so the generated function
    answers exactly what the completions would. The fields are read by their readers, or by
    the lookup a reader stands for (:func:`_read`). Made only for projections kept across
    requests, where its compilation (tens of microseconds) is paid once. The generated text
    holds only generated names and the schema's own Python attribute names: the response keys
    (the caller's aliases), the keys read, readers and completions are values of its
    namespace, never part of its text."""
    namespace: dict[str, Any] = {"is_type_of": is_type_of, "_Decline": _Decline}
    items = []
    for i, (key, read, complete) in enumerate(entries):
        namespace[f"k{i}"] = key
        value = f"(v := {_read(read, f'r{i}', namespace)})"
        items.append(f"k{i}: {_inlined(complete, f'c{i}', namespace, 'v', value)}")
    check = (
        "    if not is_type_of(source, None):\n        raise _Decline\n"
        if is_type_of is not None
        else ""
    )
    text = f"def project(source):\n{check}    return {{{', '.join(items)}}}\n"
    exec(compile(text, "<gateway projection>", "exec"), namespace)  # noqa: S102 - generated names only
    project: Complete = namespace["project"]
    return project


def _read(read: Reader, name: str, namespace: dict[str, Any]) -> str:
    """The expression reading a field of ``source``: the lookup itself for the readers that are
    one (a key: ``itemgetter``; an attribute: ``attrgetter``; a key of an attribute:
    :func:`~gateway.schema.fields.item_of`), a call of the reader (a namespace value named
    ``name``) for any other. The keys are namespace values; the attribute names are the
    schema's own Python identifiers, never a caller's text."""
    namespace[name] = read
    if type(read) is itemgetter:
        keys = read.__reduce__()[1]
        if len(keys) == 1:
            namespace[f"{name}k"] = keys[0]
            return f"source[{name}k]"
    elif type(read) is attrgetter:
        names = read.__reduce__()[1]
        if len(names) == 1 and all(_identifier(part) for part in names[0].split(".")):
            return f"source.{names[0]}"
    lookup = getattr(read, "lookup", None)
    if lookup is not None and _identifier(lookup[0]):
        attribute, key, optional = lookup
        namespace[f"{name}k"] = key
        return f"source.{attribute}.get({name}k)" if optional else f"source.{attribute}[{name}k]"
    return f"{name}(source)"


def _identifier(name: Any) -> bool:
    return isinstance(name, str) and name.isidentifier() and not iskeyword(name)


def _inlined(
    complete: Complete, name: str, namespace: dict[str, Any], value: str, bind: str
) -> str:
    """The expression completing ``value`` by ``complete`` (a namespace value named ``name``);
    ``bind`` is its first use, the one evaluated first (it may bind ``value``)."""
    namespace[name] = complete
    passes = getattr(complete, "passes", None)
    if passes is float:  # a finite float (x - x is 0.0 only for finite x)
        return (
            f"({value} if type({bind}) is float and {value} - {value} == 0.0 else {name}({value}))"
        )
    if passes is not None:
        namespace[f"{name}t"] = passes
        return f"({value} if type({bind}) is {name}t else {name}({value}))"
    names = getattr(complete, "names", None)
    if names is not None:  # an enum: a value's name by one lookup
        namespace[f"{name}n"] = names
        return (
            f"(m if type({bind}) is str and (m := {name}n.get({value})) is not None"
            f" else {name}({value}))"
        )
    project = getattr(complete, "object_of", None)
    if project is not None:
        namespace[f"{name}p"] = project
        return f"({name}p({value}) if {bind} is not None else {name}({value}))"
    item = getattr(complete, "items_of", None)
    if item is not None:
        element = f"x{len(name)}"  # one name per depth of nested lists
        inner = _inlined(item, f"{name}i", namespace, element, element)
        return f"([{inner} for {element} in {value}] if type({bind}) is list else {name}({value}))"
    return f"{name}({bind})"


def _leaf(type_: Any, *, required: bool) -> Complete:
    """Completes a scalar or enum value by the type's own output coercion."""
    coerce = type_.coerce_output_value
    unchanged = _UNCHANGED.get(type_)
    if unchanged is None and getattr(type_, "serialize", None) is same_text:
        unchanged = str  # the gateway's DateTime: its output is the wire's own text

    def coerced(value: Any) -> Any:
        if value is None:
            if required:
                raise _Decline
            return None
        output = coerce(value)
        if output is None or output is Undefined:
            raise _Decline
        return output

    if unchanged is float:

        def leaf(value: Any) -> Any:
            # A finite float (x - x is 0.0 only for finite x) is its own output.
            return value if type(value) is float and value - value == 0.0 else coerced(value)

        leaf.passes = float  # type: ignore[attr-defined]  # inlined by _unrolled

    elif unchanged is not None:

        def leaf(value: Any) -> Any:
            return value if type(value) is unchanged else coerced(value)

        leaf.passes = unchanged  # type: ignore[attr-defined]

    elif isinstance(type_, GraphQLEnumType):
        # graphql-core's own output coercion of an enum value: the name of the value it
        # equals, one lookup in the type's values (built here once per plan). Anything else
        # (an enum member, an unknown value) goes through the type's coercion.
        names = {
            value.value: name
            for name, value in type_.values.items()
            if isinstance(value.value, str)  # the values a string can equal
        }

        def leaf(value: Any) -> Any:
            name = names.get(value) if type(value) is str else None
            return name if name is not None else coerced(value)

        leaf.names = names  # type: ignore[attr-defined]  # inlined by _unrolled

    else:
        leaf = coerced

    return leaf


def _identity(value: Any) -> Any:
    return value


def _constant(value: Any) -> Reader:
    return lambda _: value
