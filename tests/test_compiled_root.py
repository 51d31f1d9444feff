"""The compiled root (gateway/schema/execution.py, ``execute_compiled``): a stored document's
root answered without graphql-core's executor, through the pipeline's ``on_execute``. Whatever
it answers (data, errors, a value it leaves to graphql-core) must be what graphql-core answers,
byte for byte, with the same upstream calls.

In-process tier: two gateways (compiled root and projection on, and the reference with
``GATEWAY_FAST_PATH=false``) over ``httpx.ASGITransport`` with their lifespan, each over its
own stand-in behind a transport that counts the billing API's calls and can corrupt its pages.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.config import Settings
from gateway.schema import execution
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app

Page = dict[str, Any]


class Billing(httpx.AsyncBaseTransport):
    """The stand-in, counting calls; ``corrupt`` rewrites each page, ``status`` replaces the
    answer by an empty one with that status."""

    def __init__(self) -> None:
        self.standin = httpx.ASGITransport(app=create_standin_app())
        self.calls = 0
        self.corrupt: Callable[[Page], None] | None = None
        self.status: int | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.status is not None:
            return httpx.Response(self.status, json={"message": "unavailable"})
        response = await self.standin.handle_async_request(request)
        body = await response.aread()
        if self.corrupt is None or response.status_code != 200:
            return httpx.Response(response.status_code, content=body, headers=response.headers)
        page = json.loads(body)
        self.corrupt(page)
        return httpx.Response(200, json=page)


@dataclass
class Gateway:
    http: httpx.AsyncClient
    billing: Billing

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> tuple[int, bytes]:
        response = await self.http.post(
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        )
        return response.status_code, response.content

    async def executed(self, executor: str) -> float:
        for line in (await self.http.get("/metrics")).text.splitlines():
            if line.startswith("gateway_graphql_execution_total") and f'"{executor}"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Gateway, Gateway]]:
    """(compiled, reference), each over its own counted stand-in, no retries of a 503."""
    settings = Settings(
        metronome_base_url="http://standin", metronome_bearer_token=None, upstream_max_retries=0
    )
    billing, reference_billing = Billing(), Billing()
    compiled = create_app(settings, transport=billing)
    reference = create_app(settings.model_copy(update={"fast_path": False}), reference_billing)
    async with (
        LifespanManager(compiled) as one,  # type: ignore[arg-type]
        LifespanManager(reference) as other,  # type: ignore[arg-type]
        httpx.AsyncClient(transport=httpx.ASGITransport(one.app), base_url="http://gw") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(other.app), base_url="http://gw") as b,
    ):
        yield Gateway(a, billing), Gateway(b, reference_billing)


SEATS = "seatBalances(customerId: $customer, contractId: $contract, first: 5)"
QUERY = (
    "query Op($customer: ID!, $contract: ID!) { __typename "
    f"page: {SEATS} {{ edges {{ cursor node {{ seatId balances {{ balance }} }} }} "
    "pageInfo { hasNextPage endCursor } } }"
)
DEMO = {"customer": DEMO_CUSTOMER_ID, "contract": DEMO_CONTRACT_ID}


async def twice_alike(
    pair: tuple[Gateway, Gateway], variables: dict[str, Any]
) -> tuple[int, bytes]:
    """The document sent twice to each gateway (the second time it is stored): every answer
    the same bytes, every request the same number of upstream calls."""
    compiled, reference = pair
    answers = []
    for _ in range(2):
        before = compiled.billing.calls, reference.billing.calls
        expected = await reference.post(QUERY, variables)
        got = await compiled.post(QUERY, variables)
        assert got == expected
        assert compiled.billing.calls - before[0] == reference.billing.calls - before[1]
        answers.append(got)
    return answers[-1]


async def test_a_stored_documents_root_is_compiled_and_answers_as_graphql_core(
    pair: tuple[Gateway, Gateway],
) -> None:
    """The first request of a document goes through graphql-core (with the projection), the
    second through the compiled root: same bytes, one upstream call each."""
    compiled, _ = pair
    status, body = await twice_alike(pair, DEMO)
    assert status == 200 and len(json.loads(body)["data"]["page"]["edges"]) == 5
    assert await compiled.executed("compiled") == 1
    assert await compiled.executed("fast-path") == 1
    assert compiled.billing.calls == 2


async def test_an_argument_refused_by_the_answer_is_located_at_the_field(
    pair: tuple[Gateway, Gateway],
) -> None:
    """A customer id that is not a UUID: BAD_USER_INPUT at `page`, no upstream call, on both
    executors."""
    compiled, _ = pair
    status, body = await twice_alike(pair, {**DEMO, "customer": "not-a-uuid"})
    answer = json.loads(body)
    assert status == 200 and answer["data"] == {"__typename": "Query", "page": None}
    assert answer["errors"][0]["path"] == ["page"]
    assert answer["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await compiled.executed("compiled") == 1
    assert compiled.billing.calls == 0


async def test_an_upstream_failure_is_located_at_the_field(
    pair: tuple[Gateway, Gateway],
) -> None:
    """The billing API answering 503: the same error at `page` and one call per request."""
    compiled, reference = pair
    compiled.billing.status = reference.billing.status = 503
    _, body = await twice_alike(pair, DEMO)
    answer = json.loads(body)
    assert answer["data"] == {"__typename": "Query", "page": None}
    assert answer["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
    assert await compiled.executed("compiled") == 1
    assert compiled.billing.calls == 2


async def test_a_value_the_projection_declines_goes_to_graphql_core_without_another_call(
    pair: tuple[Gateway, Gateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the compiled root's projection declines a value (a null where the schema promises
    none: the page validation makes that a bug, so the fault is injected into the compiled
    plan), graphql-core completes the operation again from the request's loaders and reports
    what it finds: the same bytes, and still one upstream call for the request."""
    compiled, _ = pair

    def declining(*args: Any) -> execution.RootPlan | None:
        plan = compile_root(*args)
        return None if plan is None else dataclasses.replace(plan, project=refuse)

    def refuse(value: Any) -> Any:
        raise execution._Decline

    compile_root = execution._compile_root
    monkeypatch.setattr(execution, "_compile_root", declining)
    _, body = await twice_alike(pair, DEMO)
    assert len(json.loads(body)["data"]["page"]["edges"]) == 5
    assert compiled.billing.calls == 2
    assert await compiled.executed("compiled") == 0  # graphql-core answered both
    assert await compiled.executed("fast-path") == 2


async def test_a_request_whose_variables_are_refused_leaves_the_compiled_root_to_later_ones(
    pair: tuple[Gateway, Gateway],
) -> None:
    """A stored document's request with variables graphql-core refuses (a null for an `ID!`)
    gets graphql-core's request error, and teaches the gateway nothing: the next good request
    of the document is still answered by the compiled root."""
    compiled, reference = pair
    await compiled.post(QUERY, DEMO)  # the document is stored
    refused = {**DEMO, "contract": None}
    assert await compiled.post(QUERY, refused) == await reference.post(QUERY, refused)
    assert await compiled.executed("compiled") == 0
    assert await compiled.post(QUERY, DEMO) == await reference.post(QUERY, DEMO)
    assert await compiled.executed("compiled") == 1
