"""The projection's plans (gateway/schema/execution.py): shared across requests only for
documents the store has learned and where no variable can change the selection, and bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from graphql import OperationDefinitionNode, parse

from gateway.schema import GatewaySchema, RequestContext, build_schema
from gateway.schema.execution import PlanCache
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
