"""The compiled root (gateway/schema/execution.py, ``execute_compiled``): a stored document's
root answered without graphql-core's executor, through the pipeline's ``on_execute``. Whatever
it answers (data, errors, a value it leaves to graphql-core) must be what graphql-core answers,
byte for byte, with the same upstream calls.

In-process tier: two gateways (compiled root and projection on, and the reference with
``GATEWAY_FAST_PATH=false``) over ``httpx.ASGITransport`` with their lifespan, each over its
own stand-in behind a transport that counts the billing API's calls and can fail them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app

# "List balances", where the detail fields of commits and credits come from.
BALANCES_PATH = "/v1/contracts/customerBalances/list"


class Billing(httpx.AsyncBaseTransport):
    """The stand-in, counting calls; ``status`` answers the calls to ``failing`` (every path
    when it is ``None``) with an empty answer of that status instead."""

    def __init__(self) -> None:
        self.standin = httpx.ASGITransport(app=create_standin_app())
        self.calls = 0
        self.status: int | None = None
        self.failing: str | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.status is not None and self.failing in (None, request.url.path):
            return httpx.Response(self.status, json={"message": "unavailable"})
        return await self.standin.handle_async_request(request)


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
    pair: tuple[Gateway, Gateway], variables: dict[str, Any], query: str = QUERY
) -> tuple[int, bytes]:
    """The document sent twice to each gateway (the second time it is stored): every answer
    the same bytes, every request the same number of upstream calls."""
    compiled, reference = pair
    answers = []
    for _ in range(2):
        before = compiled.billing.calls, reference.billing.calls
        expected = await reference.post(query, variables)
        got = await compiled.post(query, variables)
        assert got == expected
        assert compiled.billing.calls - before[0] == reference.billing.calls - before[1]
        answers.append(got)
    return answers[-1]


def fail(pair: tuple[Gateway, Gateway], path: str) -> None:
    """Both billing APIs answer the calls to ``path`` with an empty 503."""
    for gateway in pair:
        gateway.billing.status, gateway.billing.failing = 503, path


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


# The first seats with their commits' names, which a detail call joins onto each commit.
NAMED_COMMITS = QUERY.replace(
    "balances { balance }", "balances { balance } commits { commitId name }"
)


async def test_a_value_the_projection_declines_goes_to_graphql_core_without_another_call(
    pair: tuple[Gateway, Gateway],
) -> None:
    """When the projection declines what the answer gave (here the commits' names, whose
    detail calls failed: their reader raises), the compiled root leaves the operation to
    graphql-core, which completes it again from the request's loaders and reports each
    failure at its own field: the same bytes as the reference, the same upstream calls, and the
    stored document is still compiled once the details answer."""
    compiled, reference = pair
    fail(pair, BALANCES_PATH)
    status, body = await twice_alike(pair, DEMO, NAMED_COMMITS)
    answer = json.loads(body)
    edges = answer["data"]["page"]["edges"]
    named = [commit["name"] for edge in edges for commit in edge["node"]["commits"]]
    assert status == 200 and len(edges) == 5 and named and set(named) == {None}
    assert {error["extensions"]["code"] for error in answer["errors"]} == {"UPSTREAM_UNAVAILABLE"}
    assert sorted(tuple(error["path"]) for error in answer["errors"]) == sorted(
        ("page", "edges", n, "node", "commits", c, "name")
        for n, edge in enumerate(edges)
        for c in range(len(edge["node"]["commits"]))
    )
    assert await compiled.executed("compiled") == 0  # graphql-core answered both
    assert await compiled.executed("fast-path") == 2  # pageInfo and the balances projected
    for billing in (compiled.billing, reference.billing):
        billing.status = None
    calls = compiled.billing.calls
    status, body = await compiled.post(NAMED_COMMITS, DEMO)
    assert (status, body) == await reference.post(NAMED_COMMITS, DEMO)
    assert b'"errors"' not in body and b'"name":null' not in body
    assert await compiled.executed("compiled") == 1
    assert compiled.billing.calls > calls + 1  # the page, then the details


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


CREDIT_TYPES_PATH = "/v1/credit-types/list"
# The balances' credit types, as the MCP tool and GraphiQL's first query select them.
CREDIT_TYPES = QUERY.replace(
    "balances { balance }", "balances { balance creditTypeId creditType { id name isCurrency } }"
)


async def test_a_balances_credit_type_is_joined_and_the_root_still_compiled(
    pair: tuple[Gateway, Gateway],
) -> None:
    """creditType is read from the credential's credit type listing joined onto each balance:
    a stored document selecting it is answered by the compiled root (before, every object
    selecting it went to graphql-core field by field), with graphql-core's bytes and the same
    upstream calls: the page, and the listing once while the credential's listing is kept."""
    compiled, _ = pair
    status, body = await twice_alike(pair, DEMO, CREDIT_TYPES)
    balances = [
        balance
        for edge in json.loads(body)["data"]["page"]["edges"]
        for balance in edge["node"]["balances"]
    ]
    assert status == 200 and balances and b'"errors"' not in body
    assert all(b["creditType"]["id"] == b["creditTypeId"] for b in balances if b["creditType"])
    assert any(b["creditType"] and b["creditType"]["name"] for b in balances)
    assert await compiled.executed("compiled") == 1
    listing_calls = compiled.billing.calls - 2  # one page per request
    assert listing_calls >= 1
    await compiled.post(CREDIT_TYPES, DEMO)
    assert compiled.billing.calls == 2 + listing_calls + 1  # the listing is kept: the page only


async def test_a_credit_type_listing_that_fails_is_reported_at_each_credit_type(
    pair: tuple[Gateway, Gateway],
) -> None:
    """The credit type listing answering 503: each creditType null with the error at its own
    path, the balances around it answered, the same bytes as graphql-core's on both requests."""
    fail(pair, CREDIT_TYPES_PATH)
    status, body = await twice_alike(pair, DEMO, CREDIT_TYPES)
    answer = json.loads(body)
    edges = answer["data"]["page"]["edges"]
    assert status == 200 and len(edges) == 5
    assert all(b["creditType"] is None for e in edges for b in e["node"]["balances"])
    assert sorted(tuple(error["path"]) for error in answer["errors"]) == sorted(
        ("page", "edges", n, "node", "balances", b, "creditType")
        for n, edge in enumerate(edges)
        for b in range(len(edge["node"]["balances"]))
    )
    assert {error["extensions"]["code"] for error in answer["errors"]} == {"UPSTREAM_UNAVAILABLE"}
