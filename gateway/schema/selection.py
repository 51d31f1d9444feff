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

# Key of the per-request memo in the Strawberry context (a dict built for each request).
_MEMO = "gateway.selected_names"


def selected_names(info: GraphQLResolveInfo[Any]) -> frozenset[str]:
    """Names of every field selected at any depth below the field being resolved.

    Memoised for the request by the field's nodes: every entity of an ``_entities`` list
    resolves the same nodes, and walks the document once between them."""
    memo: dict[tuple[int, ...], frozenset[str]] | None = None
    if isinstance(info.context, dict):
        memo = info.context.setdefault(_MEMO, {})
    key = tuple(id(node) for node in info.field_nodes)
    if memo is not None and key in memo:
        return memo[key]
    names = selected_below(
        info.field_nodes,
        info.fragments,
        info.variable_values,  # type: ignore[arg-type]  # the coerced dict at run time
    )
    if memo is not None:
        memo[key] = names
    return names


def selected_below(
    field_nodes: Iterable[FieldNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
) -> frozenset[str]:
    """:func:`selected_names` from the AST itself (the fast path has no ``info``).

    Each fragment is walked at most once: the names below it do not depend on where it is
    spread (the variables are the request's), so a document whose fragments spread each
    other many times costs time in proportion to its length, not to its expansion."""
    names: set[str] = set()
    visited: set[str] = set()
    for node in field_nodes:
        if node.selection_set is not None:
            _walk(node.selection_set.selections, fragments, variables, names, visited)
    return frozenset(names)


def _walk(
    selections: Iterable[SelectionNode],
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    names: set[str],
    visited: set[str],
) -> None:
    for selection in selections:
        if not is_included(selection, variables):
            continue
        if isinstance(selection, FieldNode):
            names.add(selection.name.value)
            if selection.selection_set is not None:
                _walk(selection.selection_set.selections, fragments, variables, names, visited)
        elif isinstance(selection, InlineFragmentNode):
            _walk(selection.selection_set.selections, fragments, variables, names, visited)
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = fragments.get(name)
            if fragment is not None and name not in visited:
                visited.add(name)
                _walk(fragment.selection_set.selections, fragments, variables, names, visited)


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
