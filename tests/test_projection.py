"""The projection's plans (gateway/schema/execution.py): shared across requests only for
documents the store has learned and where no variable can change the selection, and bounded;
and a null where a type promises none propagated as graphql-core propagates it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from operator import itemgetter
from typing import Any, cast

import httpx
import pytest
import strawberry
from graphql import OperationDefinitionNode, parse

from gateway.schema import GatewaySchema, RequestContext, build_schema
from gateway.schema.errors import in_path_order
from gateway.schema.execution import GatewayExecutor, PlanCache, ProjectingExecutor
from gateway.schema.fields import reads
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import BillingClient
from tests.support import BUDGET, DEFAULT_LIMITS, DEFAULT_POLICY

SEATS = (
    f'seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 3)'
)


@pytest.fixture
async def client() -> AsyncIterator[BillingClient]:
    transport = httpx.ASGITransport(app=create_standin_app())
    yield BillingClient(transport, "http://standin", DEFAULT_POLICY)
    await transport.aclose()


async def run(
    schema: GatewaySchema, client: BillingClient, query: str, variables: dict[str, Any]
) -> RequestContext:
    request = RequestContext(client=client, token=DEMO_TOKEN, max_upstream_calls=BUDGET)
    result = await schema.execute(
        query, variable_values=variables, context_value={"gateway": request}
    )
    assert result.errors is None, result.errors
    return request


def plans_of(schema: GatewaySchema) -> PlanCache:
    return schema.execution_context_class.plans  # type: ignore[attr-defined, no-any-return]


async def test_a_document_without_variable_conditions_is_planned_once(
    client: BillingClient,
) -> None:
    """A document's first request compiles its projections for itself only (the document is
    not known yet); once the document store has learned it, the next request's projections are
    kept and every later request reuses them: the plan cache stops growing, and the answer is
    still projected."""
    schema = build_schema(DEFAULT_LIMITS)
    query = f"{{ {SEATS} {{ nodes {{ seatId balances {{ balance }} }} }} }}"
    assert (await run(schema, client, query, {})).fast_path
    assert len(plans_of(schema)) == 0
    assert (await run(schema, client, query, {})).fast_path
    planned = len(plans_of(schema))
    assert planned > 0
    for _ in range(3):
        assert (await run(schema, client, query, {})).fast_path
    assert len(plans_of(schema)) == planned


async def test_a_refused_request_leaves_no_plan(client: BillingClient) -> None:
    """Requests refused for want of a token (their document never learned) leave nothing in
    the shared plan cache, however many there are."""
    schema = build_schema(DEFAULT_LIMITS)
    query = f"{{ {SEATS} {{ nodes {{ seatId balances {{ balance }} }} }} }}"
    for _ in range(3):
        request = RequestContext(client=client, token=None, max_upstream_calls=BUDGET)
        result = await schema.execute(query, context_value={"gateway": request})
        assert result.errors
    assert len(plans_of(schema)) == 0 and len(schema.documents) == 0


async def test_variable_conditions_never_multiply_plans(client: BillingClient) -> None:
    """A document whose @include takes a variable is projected per request and never shared:
    however many values callers send, the shared cache does not grow."""
    schema = build_schema(DEFAULT_LIMITS)
    query = (
        f"query($a: Boolean!, $b: Boolean!) {{ {SEATS} {{ nodes {{ "
        "seatId @include(if: $a) balances @include(if: $b) { balance } } } }"
    )
    for a in (True, False):
        for b in (True, False):
            assert (await run(schema, client, query, {"a": a, "b": b})).fast_path
    assert len(plans_of(schema)) == 0


def test_the_plan_cache_is_bounded_and_checks_the_operation() -> None:
    """At most max_entries plans are kept, least recently used first out, and an entry is
    never answered for another operation that happens to reuse an id."""
    cache = PlanCache(max_entries=2)
    operations = [
        cast(OperationDefinitionNode, parse(f"{{ a{i}: __typename }}").definitions[0])
        for i in range(3)
    ]
    plans = [object() for _ in operations]
    for index, operation in enumerate(operations):
        cache.put(("key", index), operation, plans[index])
    assert len(cache) == 2
    assert cache.get(("key", 0), operations[0]) is not plans[0]  # forgotten
    assert cache.get(("key", 2), operations[2]) is plans[2]
    assert cache.get(("key", 2), operations[1]) is not plans[2]


# Null propagation. No billing page can bring a null into a non-null field (pydantic-core
# refuses the page), so a schema of the projection's own kinds of values holds one of each:
# a leaf, a list, a list's item, an object, and a leaf of an object inside a required list.


@strawberry.type
class Leaf:
    value: str = reads(itemgetter("value"), description="A non-null leaf of an object.")


@strawberry.type
class Holder:
    name: str = reads(itemgetter("name"), description="A non-null leaf.")
    tags: list[str] = reads(itemgetter("tags"), description="A non-null list of non-nulls.")
    leaf: Leaf = reads(itemgetter("leaf"), description="A non-null object.")
    leaves: list[Leaf] = reads(itemgetter("leaves"), description="Non-null objects.")
    maybe: Leaf | None = reads(itemgetter("maybe"), description="A nullable object.")


def _holder(**nulls: Any) -> dict[str, Any]:
    whole = {
        "name": "n",
        "tags": ["a", "b"],
        "leaf": {"value": "v"},
        "leaves": [{"value": "w"}],
        "maybe": {"value": "m"},
    }
    return {**whole, **nulls}


HOLDERS = [
    _holder(),
    _holder(name=None),
    _holder(tags=None),
    _holder(tags=["a", None]),
    _holder(leaf=None),
    _holder(leaf={"value": None}),
    _holder(leaves=[{"value": "w"}, {"value": None}]),
    _holder(maybe={"value": None}),  # null stops at `maybe`: the holder stays
    _holder(maybe=None),
]


@strawberry.type
class HoldersQuery:
    @strawberry.field(description="Holders, each nullable: where a null must stop.")
    def holders(self) -> list[Holder | None]:
        return HOLDERS  # type: ignore[return-value]  # the records the readers read


HOLDERS_QUERY = "{ holders { name tags leaf { value } leaves { value } maybe { value } } }"


@pytest.mark.parametrize("kept", [False, True], ids=["per-request", "kept-across-requests"])
async def test_a_null_where_none_is_promised_propagates_as_graphql_core_propagates_it(
    client: BillingClient, kept: bool
) -> None:
    """Each holder's null in a non-null leaf, list, list item or object (at any depth) makes
    the holder null with one error at the null's path, exactly as graphql-core answers, and a
    null below the nullable `maybe` stops there; the projection still completes the holders
    that have no null. Both kinds of plan: made for one request, and generated to be kept (a
    stored document's, which the compiled root uses)."""
    projecting = type("Projecting", (ProjectingExecutor,), {"plans": PlanCache(64)})
    answers = []
    for executor in (GatewayExecutor, projecting):
        schema = strawberry.Schema(query=HoldersQuery, execution_context_class=executor)
        request = RequestContext(client=client, token=DEMO_TOKEN, max_upstream_calls=BUDGET)
        request.document_known = kept
        result = await schema.execute(HOLDERS_QUERY, context_value={"gateway": request})
        errors = list(result.errors or [])
        in_path_order(errors)
        answers.append((result.data, [error.formatted for error in errors], request.fast_path))
    (data, errors, reference_projected), (got_data, got_errors, projected) = answers
    assert (got_data, got_errors) == (data, errors)
    assert projected and not reference_projected
    assert data is not None
    holders = data["holders"]
    assert holders[0] == {
        "name": "n",
        "tags": ["a", "b"],
        "leaf": {"value": "v"},
        "leaves": [{"value": "w"}],
        "maybe": {"value": "m"},
    }
    assert holders[1:7] == [None] * 6
    assert holders[7]["maybe"] is None and holders[8]["maybe"] is None
    assert [(error["path"], error["message"]) for error in errors] == [
        (["holders", 1, "name"], "Cannot return null for non-nullable field Holder.name."),
        (["holders", 2, "tags"], "Cannot return null for non-nullable field Holder.tags."),
        (["holders", 3, "tags", 1], "Cannot return null for non-nullable field Holder.tags."),
        (["holders", 4, "leaf"], "Cannot return null for non-nullable field Holder.leaf."),
        (["holders", 5, "leaf", "value"], "Cannot return null for non-nullable field Leaf.value."),
        (
            ["holders", 6, "leaves", 1, "value"],
            "Cannot return null for non-nullable field Leaf.value.",
        ),
        (["holders", 7, "maybe", "value"], "Cannot return null for non-nullable field Leaf.value."),
    ]
