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
)
from graphql.validation import (
    ASTValidationContext,
    ASTValidationRule,
    MaxIntrospectionDepthRule,
    NoSchemaIntrospectionCustomRule,
)
from strawberry.extensions import AddValidationRules, MaxTokensLimiter, SchemaExtension

from gateway.schema.errors import MAX_TOKENS_LIMIT, MAX_UPSTREAM_CALLS_LIMIT

MAX_QUERY_SIZE_LIMIT = "MAX_QUERY_SIZE_LIMIT"
MAX_DEPTH_LIMIT = "MAX_DEPTH_LIMIT"
MAX_ALIASES_LIMIT = "MAX_ALIASES_LIMIT"
MAX_INTROSPECTION_DEPTH_LIMIT = "MAX_INTROSPECTION_DEPTH_LIMIT"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
__all__ = ["MAX_TOKENS_LIMIT", "MAX_UPSTREAM_CALLS_LIMIT", "QueryLimits"]

# Fields each of which costs at least one upstream call when it runs.
UPSTREAM_FIELDS = frozenset({"seatBalances", "node", "nodes", "_entities"})


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
            lambda: AddValidationRules(rules),
        ]


def limit_error(message: str, code: str, node: Any = None) -> GraphQLError:
    return GraphQLError(message, node, extensions={"code": code})


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
    context: ASTValidationContext,
    fragments: dict[str, _Shape],
    visiting: frozenset[str] = frozenset(),
) -> _Shape:
    """Each fragment's shape is computed once and reused, so a document whose fragments
    spread each other many times costs time in proportion to its length, not its expansion."""
    shape = _Shape()
    for selection in selection_set.selections if selection_set else ():
        if isinstance(selection, FieldNode):
            name = selection.name.value
            own = _Shape(1, int(selection.alias is not None), int(name in UPSTREAM_FIELDS))
            if not name.startswith("__"):  # introspection is bounded by its own rule
                own = own.around(
                    _shape(selection.selection_set, context, fragments, visiting), deeper=True
                )
            shape = shape.around(own, deeper=False)
        elif isinstance(selection, InlineFragmentNode):
            inner = _shape(selection.selection_set, context, fragments, visiting)
            shape = shape.around(inner, deeper=False)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in fragments and name not in visiting:  # cycles: another rule's error
                fragment: FragmentDefinitionNode | None = context.get_fragment(name)
                fragments[name] = (
                    _shape(fragment.selection_set, context, fragments, visiting | {name})
                    if fragment
                    else _Shape()
                )
            shape = shape.around(fragments.get(name, _Shape()), deeper=False)
    return shape


def _operation_rule(limits: QueryLimits) -> type[ASTValidationRule]:
    class OperationShape(ASTValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            shape = _shape(node.selection_set, self.context, {})
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
