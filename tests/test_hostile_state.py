"""Hostile world, round two: what the process keeps between requests (issue 9, items 2, 3, 14).

Nothing grows with what hostile callers send (every store is bounded, and nothing is learned
from a request refused for its credentials), nothing of one caller's upstream exchange reaches
another caller, and a document of several operations must name the one to run.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.schema import RequestContext, build_schema
from gateway.schema.documents import DocumentStore
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
    create_standin_app,
)
from gateway.upstream import BillingClient
from tests.support import (
    BUDGET,
    DEFAULT_LIMITS,
    DEFAULT_POLICY,
    ROOT,
    Gateway,
    running_gateway,
    serve,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

CONDITIONS = 20


def conditional_document() -> str:
    """One document whose selection depends on 20 @include variables (2^20 shapes)."""
    declared = ", ".join(f"$c{i}: Boolean!" for i in range(CONDITIONS))
    fields = " ".join(f"f{i}: seatId @include(if: $c{i})" for i in range(CONDITIONS))
    return (
        f'query Shapes({declared}) {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", '
        f'contractId: "{DEMO_CONTRACT_ID}", first: 1) {{ nodes {{ {fields} }} }} }}'
    )


# Run in a fresh interpreter, so that nothing else of the test session (other servers' threads,
# earlier tests' garbage) moves its resident memory.
RSS_PROBE = """
import asyncio, gc, os, random, sys
import httpx
from asgi_lifespan import LifespanManager
from gateway.app import create_app
from gateway.config import Settings

query, conditions = sys.argv[1], int(sys.argv[2])

def resident():
    gc.collect()
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

async def main():
    app = create_app(Settings(metronome_base_url="http://billing.invalid"))
    rng = random.Random(9)
    async with LifespanManager(app) as manager, httpx.AsyncClient(
        transport=httpx.ASGITransport(manager.app), base_url="http://gateway"
    ) as client:
        async def shapes(count):
            for _ in range(count):
                variables = {f"c{i}": rng.random() < 0.5 for i in range(conditions)}
                response = await client.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
                [error] = response.json()["errors"]
                assert error["extensions"]["code"] == "UNAUTHENTICATED", error
        await shapes(300)  # warm-up: imports, pools, first allocations
        before = resident()
        await shapes(3_000)
        print(resident() - before)

asyncio.run(main())
"""


@pytest.mark.process  # starts another program
def test_memory_stays_flat_under_many_shapes_of_one_document_without_a_token() -> None:
    """3,000 requests of one 20-variable document, each with other @include values and no
    token, leave the resident memory of a fresh gateway process within a few MB."""
    probe = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, conditional_document(), str(CONDITIONS)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    grown = int(probe.stdout.strip().splitlines()[-1])
    assert grown < 4 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB"


async def test_documents_are_learned_only_from_requests_not_refused_for_credentials() -> None:
    """A document refused for want of a token is not remembered; the same document with a
    token is, once."""
    transport = httpx.ASGITransport(app=create_standin_app())
    client = BillingClient(transport, "http://standin", replace(DEFAULT_POLICY, max_retries=0))
    schema = build_schema(DEFAULT_LIMITS)
    query = f'{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 1) {{ nodes {{ seatId }} }} }}'
    for _ in range(3):
        result = await schema.execute(
            query,
            context_value={
                "gateway": RequestContext(client=client, token=None, max_upstream_calls=BUDGET)
            },
        )
        assert result.errors and result.errors[0].original_error is not None
    assert len(schema.documents) == 0
    for _ in range(2):
        result = await schema.execute(
            query,
            context_value={
                "gateway": RequestContext(
                    client=client, token=DEMO_TOKEN, max_upstream_calls=BUDGET
                )
            },
        )
        assert result.errors is None
    assert len(schema.documents) == 1
    await transport.aclose()


def test_the_document_store_is_bounded_in_entries_and_in_bytes() -> None:
    """The least recently used documents go first once either bound is reached, and a text
    larger than the byte bound is never kept."""
    from graphql import parse

    store = DocumentStore(max_entries=3, max_bytes=100)
    texts = [f"{{ a{i}: __typename }}" for i in range(5)]
    for text in texts:
        store.learn(text, parse(text), [], measured=True)
    assert len(store) == 3 and store.get(texts[0]) is None and store.get(texts[4]) is not None
    big = "{ " + "a: __typename " * 10 + "}"
    store.learn(big, parse(big), [], measured=True)
    assert store.bytes <= 100 and len(store) <= 3
    huge = "{ " + "b: __typename " * 20 + "}"
    store.learn(huge, parse(huge), [], measured=True)
    assert store.get(huge) is None


class CookieSettingBilling:
    """The stand-in behind a session cookie, as a billing API on a hostname might set: every
    answer sets a cookie naming the caller's token, and every Cookie header is recorded."""

    def __init__(self) -> None:
        self.standin = create_standin_app()
        self.cookies: list[str | None] = []

    async def __call__(
        self, scope: Scope, receive: Callable[[], Awaitable[Message]], send: Any
    ) -> None:
        if scope["type"] != "http":
            await self.standin(scope, receive, send)
            return
        headers = dict(scope["headers"])
        self.cookies.append(headers.get(b"cookie", b"").decode() or None)
        caller = hashlib.sha256(headers.get(b"authorization", b"")).hexdigest()[:16]

        async def with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"set-cookie", f"session={caller}; Path=/; HttpOnly".encode()),
                ]
            await send(message)

        await self.standin(scope, receive, with_cookie)


def test_a_cookie_set_for_one_account_never_reaches_another() -> None:
    """The billing API (on a hostname) sets a session cookie for account A; neither A's next
    call nor account B's carries it: the upstream client keeps no cookies."""
    billing = CookieSettingBilling()
    with serve(billing) as url:
        port = url.rsplit(":", 1)[1]
        settings = Settings(metronome_base_url=f"http://localhost:{port}")
        with running_gateway(settings) as gateway:
            for token, customer, contract in (
                (DEMO_TOKEN, DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID),
                (DEMO_TOKEN, DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID),
                (OTHER_TOKEN, OTHER_CUSTOMER_ID, OTHER_CONTRACT_ID),
            ):
                query = f'{{ seatBalances(customerId: "{customer}", contractId: "{contract}", first: 1) {{ nodes {{ seatId }} }} }}'
                gateway.query(query, token=token)
    assert len(billing.cookies) == 3
    assert billing.cookies == [None, None, None]


@pytest.mark.parametrize(
    "accept, status",
    [("application/json", 200), ("application/graphql-response+json", 400)],
)
def test_several_operations_without_an_operation_name_are_a_request_error(
    gateway: Gateway, accept: str, status: int
) -> None:
    """A document of two operations and no operationName runs neither: a request error
    (OPERATION_RESOLUTION_FAILURE), no data, no upstream call."""
    seats = f'seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 1) {{ nodes {{ seatId }} }}'
    response = gateway.http.post(
        f"{gateway.url}/graphql",
        json={"query": f"query A {{ {seats} }} query B {{ __typename }}"},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}", "Accept": accept},
    )
    assert response.status_code == status
    payload = response.json()
    assert payload.get("data") is None
    assert [e["extensions"]["code"] for e in payload["errors"]] == ["OPERATION_RESOLUTION_FAILURE"]
    assert gateway.calls == []


def test_a_remembered_document_runs_again_with_its_own_errors(gateway: Gateway) -> None:
    """The store remembers parsing and validation, never an execution: the same document
    with a field error twice makes its upstream call twice and reports its error twice."""
    query = f'{{ ok: seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 1) {{ nodes {{ seatId }} }} bad: seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 0) {{ nodes {{ seatId }} }} }}'
    for _ in range(2):
        gateway.calls.clear()
        payload = gateway.post(query).json()
        assert payload["data"]["ok"]["nodes"] and payload["data"]["bad"] is None
        assert [e["path"] for e in payload["errors"]] == [["bad"]]
        assert len(gateway.calls) == 1


def test_a_page_token_handed_out_twice_is_a_bad_response_not_a_hang(settings: Settings) -> None:
    """A billing API whose every page says `next_page: "SAME"`: a seat looked up by key is
    UPSTREAM_BAD_RESPONSE after the second page, not an endless loop on the event loop."""
    from gateway.schema.ids import global_id

    seat = {"seat_id": "a@example.com", "balances": []}
    page = {"data": [seat], "pagination": {"seats_included": 1, "next_page": "SAME"}}
    endless = httpx.MockTransport(lambda request: httpx.Response(200, json=page))
    seat_id = global_id("Seat", DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, "b@example.com")
    with running_gateway(settings, endless) as gateway:
        gateway.http.timeout = httpx.Timeout(5.0)
        payload = gateway.post(f'{{ node(id: "{seat_id}") {{ id }} }}').json()
        assert payload["data"] == {"node": None}
        assert [e["extensions"]["code"] for e in payload["errors"]] == ["UPSTREAM_BAD_RESPONSE"]
        assert len(gateway.calls) == 2
