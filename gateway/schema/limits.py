"""Bounds on what one operation may ask, checked before any resolver (or upstream call) runs.

| bound                     | code                          | how                               |
|---------------------------|-------------------------------|-----------------------------------|
| document size (bytes)     | MAX_QUERY_SIZE_LIMIT          | before parsing                    |
| tokens                    | MAX_TOKENS_LIMIT              | the parser stops counting at N    |
| depth (introspection not) | MAX_DEPTH_LIMIT               | validation rule, fragments walked |
| aliases                   | MAX_ALIASES_LIMIT             | validation rule                   |
| nested introspection      | MAX_INTROSPECTION_DEPTH_LIMIT | graphql-core's rule (3 list levels) |
| introspection switched off| INTROSPECTION_DISABLED        | graphql-core's rule               |
| upstream calls            | MAX_UPSTREAM_CALLS_LIMIT      | static count of the fields that call upstream; the loaders enforce the same budget at run time |

The static counts ignore ``@skip``/``@include`` (validation sees no variables): they bound what
the document could do, which is what a limit is for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    get_named_type,
)
from graphql.type import GraphQLNamedType
from graphql.validation import (
    ASTValidationRule,
    MaxIntrospectionDepthRule,
    NoSchemaIntrospectionCustomRule,
)
from strawberry.extensions import MaxTokensLimiter, SchemaExtension

from gateway.schema.errors import MAX_TOKENS_LIMIT, MAX_UPSTREAM_CALLS_LIMIT

MAX_QUERY_SIZE_LIMIT = "MAX_QUERY_SIZE_LIMIT"
MAX_DEPTH_LIMIT = "MAX_DEPTH_LIMIT"
MAX_ALIASES_LIMIT = "MAX_ALIASES_LIMIT"
MAX_INTROSPECTION_DEPTH_LIMIT = "MAX_INTROSPECTION_DEPTH_LIMIT"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
__all__ = ["MAX_TOKENS_LIMIT", "MAX_UPSTREAM_CALLS_LIMIT", "QueryLimits"]

# Fields each of which costs at least one upstream call when it runs: (type, field).
UPSTREAM_FIELDS = frozenset(
    {
        ("Query", "seatBalances"),
        ("Query", "node"),
        ("Query", "nodes"),
        ("Query", "_entities"),
        ("Contract", "seatBalances"),
    }
)


@dataclass(frozen=True)
class QueryLimits:
    """The bounds, with defaults that leave every legitimate query of this API room."""

    max_query_bytes: int = 20_000
    max_tokens: int = 2_000
    max_depth: int = 12
    max_aliases: int = 30
    max_upstream_calls: int = 20
    introspection: bool = True

    def extensions(self) -> list[Any]:
        """Strawberry extension factories enforcing these bounds."""
        rules: list[type[ASTValidationRule]] = [_operation_rule(self), _IntrospectionDepth]
        if not self.introspection:
            rules.append(_NoIntrospection)
        size = self.max_query_bytes
        tokens = self.max_tokens
        return [
            lambda: _DocumentSize(size),
            lambda: MaxTokensLimiter(max_token_count=tokens),
            lambda: _ValidationRules(rules),
        ]


def limit_error(message: str, code: str, node: Any = None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": code})


class _ValidationRules(SchemaExtension):
    """Adds our rules; ours replaces graphql-core's own introspection depth rule (same bound,
    a message and code of ours)."""

    def __init__(self, rules: list[type[ASTValidationRule]]) -> None:
        self.rules = tuple(rules)

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        kept = tuple(r for r in context.validation_rules if r is not MaxIntrospectionDepthRule)
        context.validation_rules = kept + self.rules
        yield


class _DocumentSize(SchemaExtension):
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes

    def on_parse(self) -> Iterator[None]:
        query = self.execution_context.query or ""
        if len(query) > self.max_bytes or len(query.encode()) > self.max_bytes:
            raise limit_error(
                f"The document is longer than {self.max_bytes} bytes; send a smaller one.",
                MAX_QUERY_SIZE_LIMIT,
            )
        yield


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
            calls = int((getattr(parent, "name", None), name) in UPSTREAM_FIELDS)
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
