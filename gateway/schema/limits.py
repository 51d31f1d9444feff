"""Bounds on what one operation may ask, checked before any resolver (or upstream call) runs.

| bound                     | code                          | how                               |
|---------------------------|-------------------------------|-----------------------------------|
| document size (bytes)     | MAX_QUERY_SIZE_LIMIT          | before parsing                    |
| tokens                    | MAX_TOKENS_LIMIT              | the parser stops counting at N    |
| depth (introspection not) | MAX_DEPTH_LIMIT               | validation rule, fragments walked |
| aliases                   | MAX_ALIASES_LIMIT             | validation rule                   |
| nested introspection      | MAX_INTROSPECTION_DEPTH_LIMIT | graphql-core's rule (3 list levels) |
| introspection switched off| INTROSPECTION_DISABLED        | graphql-core's rule               |
| selections                | MAX_SELECTIONS_LIMIT          | one pass over the parsed document, before graphql-core's validation |
| nesting as written (64)   | MAX_DEPTH_LIMIT               | the same pass                     |
| upstream calls            | MAX_UPSTREAM_CALLS_LIMIT      | static count of the fields that call upstream; the loaders enforce the same budget at run time |
| seat ids sent upstream    | MAX_SEAT_IDS_LIMIT            | the work estimate's walk (gateway.schema.work), before execution |

The static counts ignore ``@skip``/``@include`` (validation sees no variables): they bound what
the document could do, which is what a limit is for.

The selection and nesting bounds run before graphql-core's validation because some of its rules
cost more than linear time (OverlappingFieldsCanBeMerged compares same-named siblings pairwise):
the bound on selections is what bounds the CPU a document can cost before it is refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    ListValueNode,
    NullValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValueNode,
    VariableNode,
    get_named_type,
)
from graphql.type import GraphQLNamedType
from graphql.validation import (
    ASTValidationRule,
    MaxIntrospectionDepthRule,
    NoSchemaIntrospectionCustomRule,
)

from gateway.schema.errors import MAX_TOKENS_LIMIT, MAX_UPSTREAM_CALLS_LIMIT
from gateway.schema.fields import facts_of

MAX_QUERY_SIZE_LIMIT = "MAX_QUERY_SIZE_LIMIT"
MAX_DEPTH_LIMIT = "MAX_DEPTH_LIMIT"
MAX_ALIASES_LIMIT = "MAX_ALIASES_LIMIT"
MAX_INTROSPECTION_DEPTH_LIMIT = "MAX_INTROSPECTION_DEPTH_LIMIT"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
MAX_SELECTIONS_LIMIT = "MAX_SELECTIONS_LIMIT"
MAX_SEAT_IDS_LIMIT = "MAX_SEAT_IDS_LIMIT"
__all__ = ["MAX_TOKENS_LIMIT", "MAX_UPSTREAM_CALLS_LIMIT", "QueryLimits"]


@dataclass(frozen=True)
class QueryLimits:
    """The bounds, built by ``Settings.query_limits()`` (where their defaults are)."""

    max_query_bytes: int
    max_tokens: int
    max_depth: int
    max_aliases: int
    max_upstream_calls: int
    max_selections: int
    max_seat_ids: int
    introspection: bool
    max_cost: int  # gateway.schema.work

    def validation_rules(self) -> tuple[type[ASTValidationRule], ...]:
        """The gateway's validation rules for these bounds; they replace graphql-core's own
        introspection depth rule (same bound, a message and code of ours)."""
        rules: list[type[ASTValidationRule]] = [_operation_rule(self), _IntrospectionDepth]
        if not self.introspection:
            rules.append(_NoIntrospection)
        return tuple(rules)


def limit_error(message: str, code: str, node: Any = None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": code})


def without_graphql_core_depth_rule(
    rules: tuple[type[ASTValidationRule], ...],
) -> tuple[type[ASTValidationRule], ...]:
    """Strawberry's default rules less graphql-core's introspection depth rule (ours replaces
    it: see :meth:`QueryLimits.validation_rules`)."""
    return tuple(rule for rule in rules if rule is not MaxIntrospectionDepthRule)


def check_document_size(query: str, max_bytes: int) -> None:
    """Refuses a document text longer than ``max_bytes`` (before it is parsed)."""
    if len(query) > max_bytes or len(query.encode()) > max_bytes:
        raise limit_error(
            f"The document is longer than {max_bytes} bytes; send a smaller one.",
            MAX_QUERY_SIZE_LIMIT,
        )


# Nesting of the document as written (selection sets, lists, input objects). graphql-core's
# parser allows 200 levels, but the validation cache compares documents recursively and fails
# (RecursionError) on two equal ones nested ~140 levels deep; no legitimate document nests
# more than ~15 (the introspection query's type references).
MAX_NESTING = 64


def check_document_shape(document: DocumentNode, max_selections: int) -> None:
    """Refuses a parsed document with more selections, or deeper nesting, than allowed; run
    once it is parsed and before any validation rule."""
    selections, nesting = measure_document(document, max_selections, MAX_NESTING)
    if nesting > MAX_NESTING:
        raise limit_error(
            f"The document nests selections, lists or input objects more than "
            f"{MAX_NESTING} levels deep; send a flatter one.",
            MAX_DEPTH_LIMIT,
        )
    if selections > max_selections:
        raise limit_error(
            f"The document holds more than {max_selections} selections (fields, "
            "inline fragments and fragment spreads; each fragment counted once, however "
            "often it is spread). Send a smaller one.",
            MAX_SELECTIONS_LIMIT,
        )


def measure_document(
    document: DocumentNode, max_selections: int, max_nesting: int
) -> tuple[int, int]:
    """(selections, deepest nesting) of a document as written, in one pass that stops once
    either passes its bound. Each fragment's content counts once however often it is spread:
    that is what graphql-core's validation rules walk. An argument's lists and input objects
    nest below the selection set holding it."""
    selections = deepest = 0
    sets: list[tuple[SelectionSetNode, int]] = []
    values: list[tuple[ValueNode, int]] = []

    def arguments(node: Any, depth: int) -> None:
        for directive in node.directives or ():
            values.extend((argument.value, depth) for argument in directive.arguments or ())
        values.extend(
            (argument.value, depth) for argument in getattr(node, "arguments", None) or ()
        )

    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode):
            sets.append((definition.selection_set, 1))
            arguments(definition, 0)
            for variable in definition.variable_definitions or ():
                if variable.default_value is not None:
                    values.append((variable.default_value, 0))
    while sets and selections <= max_selections and deepest <= max_nesting:
        selection_set, depth = sets.pop()
        deepest = max(deepest, depth)
        selections += len(selection_set.selections)
        for selection in selection_set.selections:
            arguments(selection, depth)
            inner = getattr(selection, "selection_set", None)
            if inner is not None:
                sets.append((inner, depth + 1))
    while values and deepest <= max_nesting:
        value, depth = values.pop()
        if isinstance(value, ListValueNode):
            deepest = max(deepest, depth + 1)
            values.extend((item, depth + 1) for item in value.values)
        elif isinstance(value, ObjectValueNode):
            deepest = max(deepest, depth + 1)
            values.extend((field.value, depth + 1) for field in value.fields)
    return selections, deepest


def check_seat_ids(count: int, max_seat_ids: int) -> None:
    """Refuses an operation that would send more seat ids upstream than allowed, before it
    runs: a seat-id filter travels in every call it applies to, so aliases repeating a long
    ``seatIds`` list multiply the bytes sent to the billing API. ``count`` is the operation's
    estimate's (:mod:`gateway.schema.work`: every field that will run, variables applied,
    through fragments, times the objects of a list sized by an argument)."""
    if count > max_seat_ids:
        raise limit_error(
            f"The operation would send {count} seat ids to the billing API; at most "
            f"{max_seat_ids} are allowed. Split it into several operations.",
            MAX_SEAT_IDS_LIMIT,
        )


def operations_run(
    document: DocumentNode, operation_name: str | None
) -> list[OperationDefinitionNode]:
    """The operations of a document a request with ``operation_name`` may run (all of them
    when it names none: the count errs on the side of refusing)."""
    return [
        operation
        for operation in document.definitions
        if isinstance(operation, OperationDefinitionNode)
        and (
            operation_name is None
            or (operation.name is not None and operation.name.value == operation_name)
        )
    ]


_MAX_KNOWN_COUNTS = 16  # figures kept per stored document (one per operation name asked)
_T = TypeVar("_T")


def kept_per_operation(
    known: dict[str | None, _T] | None,
    document: DocumentNode,
    operation_name: str | None,
    compute: Callable[[], tuple[_T, bool]],
) -> _T:
    """A figure of the operation a request runs, from ``known`` (a stored document's figures)
    or ``compute`` (the figure, and whether a variable entered it); kept in ``known`` when no
    variable did and the document holds an operation of that name."""
    found = known.get(operation_name) if known is not None else None
    if found is None:
        found, varies = compute()
        if (
            known is not None
            and not varies
            and len(known) < _MAX_KNOWN_COUNTS
            and operations_run(document, operation_name)  # a name the document holds
        ):
            known[operation_name] = found
    return found


@dataclass
class ListItems:
    """Counts the items of a list argument, with a request's variables (and the operation's
    variable defaults); notes whether a variable entered the count."""

    variables: dict[str, Any]
    defaults: Mapping[str, ValueNode | None]
    varies: bool = False  # a variable entered the count

    def items(self, value: ValueNode | None) -> int:
        """How many items a list argument holds (a single value counts as one)."""
        if value is None or isinstance(value, NullValueNode):
            return 0
        if isinstance(value, ListValueNode):
            return len(value.values)
        if isinstance(value, VariableNode):
            self.varies = True
            name = value.name.value
            if name not in self.variables:
                return self.items(self.defaults.get(name))
            given = self.variables[name]
            return len(given) if isinstance(given, list) else int(given is not None)
        return 1


def argument_value(field: FieldNode, name: str | None) -> ValueNode | None:
    argument: ArgumentNode | None = next(
        (a for a in field.arguments or () if a.name.value == name), None
    )
    return argument.value if argument else None


class _IntrospectionDepth(MaxIntrospectionDepthRule):
    def report_error(self, error: GraphQLError) -> None:
        super().report_error(
            limit_error(
                "Introspection nests list fields (fields, interfaces, possibleTypes, "
                "inputFields) more than 3 levels deep; use the standard introspection query.",
                MAX_INTROSPECTION_DEPTH_LIMIT,
                error.nodes,
            )
        )


class _NoIntrospection(NoSchemaIntrospectionCustomRule):
    def report_error(self, error: GraphQLError) -> None:
        super().report_error(
            limit_error(
                "Introspection is switched off on this gateway (GATEWAY_INTROSPECTION=false).",
                INTROSPECTION_DISABLED,
                error.nodes,
            )
        )


@dataclass(frozen=True, slots=True)
class _Shape:
    """What a selection set could do: its depth, aliases and upstream-calling fields."""

    depth: int = 0
    aliases: int = 0
    upstream_calls: int = 0

    def around(self, other: _Shape, *, deeper: bool) -> _Shape:
        return _Shape(
            max(self.depth, other.depth + (1 if deeper else 0)),
            self.aliases + other.aliases,
            self.upstream_calls + other.upstream_calls,
        )


def _shape(
    selection_set: SelectionSetNode | None,
    parent: GraphQLNamedType | None,
    context: ValidationContext,
    fragments: dict[str, _Shape],
    visiting: frozenset[str] = frozenset(),
) -> _Shape:
    """Each fragment's shape is computed once and reused, so a document whose fragments
    spread each other many times costs time in proportion to its length, not its expansion."""
    schema = context.schema
    shape = _Shape()
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            name = selection.name.value
            calls = int(facts_of(parent, name).upstream)
            own = _Shape(1, int(selection.alias is not None), calls)
            if not name.startswith("__"):  # introspection is bounded by its own rule
                fields = getattr(parent, "fields", None) or {}
                child = get_named_type(fields[name].type) if name in fields else None
                inner = _shape(selection.selection_set, child, context, fragments, visiting)
                own = own.around(inner, deeper=True)
            shape = shape.around(own, deeper=False)
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            on = schema.get_type(condition.name.value) if condition else parent
            inner = _shape(selection.selection_set, on, context, fragments, visiting)
            shape = shape.around(inner, deeper=False)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in fragments and name not in visiting:  # cycles: another rule's error
                fragment: FragmentDefinitionNode | None = context.get_fragment(name)
                fragments[name] = (
                    _shape(
                        fragment.selection_set,
                        schema.get_type(fragment.type_condition.name.value),
                        context,
                        fragments,
                        visiting | {name},
                    )
                    if fragment
                    else _Shape()
                )
            shape = shape.around(fragments.get(name, _Shape()), deeper=False)
    return shape


def _operation_rule(limits: QueryLimits) -> type[ASTValidationRule]:
    class OperationShape(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            context = self.context
            assert isinstance(context, ValidationContext)  # validation always has a schema
            root = context.schema.get_root_type(node.operation)
            shape = _shape(node.selection_set, root, context, {})
            name = node.name.value if node.name else "The operation"
            if shape.depth > limits.max_depth:
                self.report_error(
                    limit_error(
                        f"{name} is {shape.depth} levels deep; at most {limits.max_depth} "
                        "are allowed.",
                        MAX_DEPTH_LIMIT,
                        node,
                    )
                )
            if shape.aliases > limits.max_aliases:
                self.report_error(
                    limit_error(
                        f"{name} uses {shape.aliases} aliases; at most {limits.max_aliases} "
                        "are allowed.",
                        MAX_ALIASES_LIMIT,
                        node,
                    )
                )
            if shape.upstream_calls > limits.max_upstream_calls:
                self.report_error(
                    limit_error(
                        f"{name} could make {shape.upstream_calls} calls to the billing API; "
                        f"at most {limits.max_upstream_calls} are allowed. Split it into "
                        "several operations.",
                        MAX_UPSTREAM_CALLS_LIMIT,
                        node,
                    )
                )

    return OperationShape
