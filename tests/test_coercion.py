"""A stored operation's planned argument coercion answers what graphql-core answers, or
leaves the request to graphql-core.

Over a corpus of operations on ``seatBalances`` (ids, counts, flags, cursors, dates and lists
as variables with and without defaults, nullable and not, as literals, inside lists) and every
combination of a set of inputs for their variables (left out, null, strings, integers in and
out of 32 bits, floats, booleans, lists, objects), the plan (:mod:`gateway.schema.coercion`)
either gives exactly the arguments graphql-core's ``get_variable_values`` and
``get_argument_values`` give (same values, same types, same keys), or declines; it never
answers where graphql-core refuses. It must decline only what it does not cover: the shapes
clients send (``bench/queries``) are planned and answered by the plan.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from graphql import FieldNode, GraphQLError, OperationDefinitionNode, parse
from graphql.execution.values import get_argument_values, get_variable_values

from gateway.schema import build_schema
from gateway.schema.coercion import plan_arguments
from tests.support import DEFAULT_LIMITS

SCHEMA = build_schema(DEFAULT_LIMITS)._schema
FIELD = SCHEMA.query_type.fields["seatBalances"]  # type: ignore[union-attr]
QUERIES = Path(__file__).resolve().parent.parent / "bench" / "queries"

SELECTION = "{ edges { node { seatId } } }"
OPERATIONS = [
    f"query($c: ID!, $k: ID!) {{ seatBalances(customerId: $c, contractId: $k) {SELECTION} }}",
    f"query($c: ID, $k: String!, $n: Int) "
    f"{{ seatBalances(customerId: $c, contractId: $k, first: $n) {SELECTION} }}",
    f'query($c: ID! = "c", $k: ID!, $n: Int = 10) '
    f"{{ seatBalances(customerId: $c, contractId: $k, first: $n) {SELECTION} }}",
    f'query($k: ID!, $n: Int! = 5, $s: Boolean) {{ seatBalances(customerId: "c", '
    f"contractId: $k, first: $n, skipMissingSeatIds: $s) {SELECTION} }}",
    f'query($k: ID!, $a: String, $n: Int) {{ seatBalances(customerId: "c", contractId: $k, '
    f'after: $a, first: $n, seatIds: ["x", "y"]) {SELECTION} }}',
    f'query($k: ID!, $n: Int) {{ seatBalances(customerId: "c", contractId: $k, first: null, '
    f"skipMissingSeatIds: true) {SELECTION} }}",
    f'{{ seatBalances(customerId: "c", contractId: "k", first: 7) {SELECTION} }}',
    # Not covered: a list variable, a variable inside a list, a custom scalar.
    f'query($k: ID!, $ids: [String!]) {{ seatBalances(customerId: "c", contractId: $k, '
    f"seatIds: $ids) {SELECTION} }}",
    f'query($k: ID!, $a: String!) {{ seatBalances(customerId: "c", contractId: $k, '
    f"seatIds: [$a]) {SELECTION} }}",
    f'query($k: ID!, $d: DateTime) {{ seatBalances(customerId: "c", contractId: $k, '
    f"coveringDate: $d) {SELECTION} }}",
    # A variable whose value is a float where an Int is expected (graphql-core converts 5.0).
    f'query($k: ID!, $f: Float) {{ seatBalances(customerId: "c", contractId: $k) {SELECTION} }}',
]
INPUTS: list[Any] = [
    "left out",
    None,
    "d7abd0cd-4ae9-4db7-8676-e986a4ebd8dc",
    "",
    5,
    2**31,
    -(2**31),
    5.0,
    2.5,
    True,
    ["x"],
    {"a": 1},
]


def _parts(text: str) -> tuple[OperationDefinitionNode, FieldNode]:
    operation = parse(text).definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    field = operation.selection_set.selections[0]
    assert isinstance(field, FieldNode)
    return operation, field


def _reference(
    operation: OperationDefinitionNode, node: FieldNode, inputs: dict[str, Any]
) -> dict[str, Any] | None:
    """graphql-core's arguments, or None where it refuses them."""
    coerced = get_variable_values(SCHEMA, operation.variable_definitions or (), inputs)
    if isinstance(coerced, list):
        return None
    try:
        return get_argument_values(FIELD, node, coerced)
    except GraphQLError:
        return None


def _typed(values: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {name: (type(value), value) for name, value in values.items()}


@pytest.mark.parametrize("text", OPERATIONS)
def test_a_plan_answers_as_graphql_core_or_declines(text: str) -> None:
    operation, node = _parts(text)
    plan = plan_arguments(SCHEMA, operation.variable_definitions or (), FIELD, node)
    names = [d.variable.name.value for d in operation.variable_definitions or ()]
    answered = 0
    for chosen in itertools.product(INPUTS, repeat=len(names)):
        inputs = {n: v for n, v in zip(names, chosen, strict=True) if v != "left out"}
        reference = _reference(operation, node, inputs)
        if plan is None:
            continue
        planned = plan.values(inputs)
        if planned is None:
            continue
        assert reference is not None, f"planned {planned} where graphql-core refuses {inputs}"
        assert _typed(planned) == _typed(reference), inputs
        answered += 1
    covered = not any(marker in text for marker in ("[String!]", "[$a]", "DateTime"))
    assert (plan is not None) == covered
    if covered:
        assert answered > 0


@pytest.mark.parametrize("path", sorted(QUERIES.glob("*.graphql")), ids=lambda p: p.stem)
def test_the_shapes_clients_send_are_planned(path: Path) -> None:
    operation, node = _parts(path.read_text())
    plan = plan_arguments(SCHEMA, operation.variable_definitions or (), FIELD, node)
    assert plan is not None
    inputs = {"customerId": "d7abd0cd-4ae9-4db7-8676-e986a4ebd8dc", "contractId": "k-1"}
    assert plan.values(inputs) == _reference(operation, node, inputs)
    # A null for a non-null id is graphql-core's to refuse, with its message.
    assert plan.values({**inputs, "customerId": None}) is None
    assert _reference(operation, node, {**inputs, "customerId": None}) is None
