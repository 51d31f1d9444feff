"""Look-ahead: which fields an operation selects below a field, as graphql-core would execute.

Strawberry's ``info.selected_fields`` keeps fields that ``@skip``/``@include`` drop, so the
walk is done here on graphql-core's AST: named and inline fragments are followed, aliases count
by field name, and directives are evaluated with the operation's variables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLResolveInfo,
    InlineFragmentNode,
    SelectionNode,
    VariableNode,
)


def selected_names(info: GraphQLResolveInfo[Any]) -> frozenset[str]:
    """Names of every field selected at any depth below the field being resolved."""
    return selected_below(
        info.field_nodes,
        info.fragments,
        info.variable_values,  # type: ignore[arg-type]  # the coerced dict at run time
    )


def selected_below(
    field_nodes: Iterable[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> frozenset[str]:
    """:func:`selected_names` from the AST itself (the fast path has no ``info``)."""
    names: set[str] = set()
    for node in field_nodes:
        if node.selection_set is not None:
            _walk(node.selection_set.selections, fragments, variables, names, frozenset())
    return frozenset(names)


def _walk(
    selections: Iterable[SelectionNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    names: set[str],
    visiting: frozenset[str],
) -> None:
    for selection in selections:
        if not is_included(selection, variables):
            continue
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
            if selection.selection_set is not None:
                _walk(selection.selection_set.selections, fragments, variables, names, visiting)
        elif isinstance(selection, InlineFragmentNode):
            _walk(selection.selection_set.selections, fragments, variables, names, visiting)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in visiting:
                _walk(
                    fragment.selection_set.selections,
                    fragments,
                    variables,
                    names,
                    visiting | {name},
                )


def is_included(node: SelectionNode, variables: Mapping[str, Any]) -> bool:
    """graphql-core's own rule: ``@skip(if: true)`` or ``@include(if: false)`` drops a node.

    The document has passed validation, so ``if`` is a Boolean literal or a Boolean variable
    (whose coerced value, default applied, is in ``variables``).
    """
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        condition = next(a.value for a in directive.arguments or () if a.name.value == "if")
        if isinstance(condition, VariableNode):
            value = variables.get(condition.name.value)
        else:
            value = isinstance(condition, BooleanValueNode) and condition.value
        if (name == "skip") == (value is True):
            return False
    return True
