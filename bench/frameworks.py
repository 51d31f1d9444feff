"""The frameworks' floor: the least a gateway built on the brief's frameworks can do for a shape.

What the floor (``bench/floor.py``) does, through the layers the brief and issue 10 keep on
every request's path, and nothing else::

    uvicorn (uvloop, httptools, no access log)
      -> FastAPI (``/graphql`` a plain route, no dependency injection, no middleware of its own)
      -> Strawberry's ASGI view (``strawberry.asgi.GraphQL``, orjson for JSON)
      -> ``Schema.execute`` with one extension (Strawberry's per-request cost grows with
         extensions times hooks) that takes the parsed document and its validation errors from
         bounded caches by the query's text, as Strawberry's ``ParserCache`` and
         ``ValidationCache`` do, and whose ``on_execute`` supplies the answer (Strawberry's
         seam; graphql-core's executor does not run)
      -> one upstream POST through httpx over httpx-aiohttp's transport (aiohttp underneath),
         the page decoded by orjson, its keys renamed as the floor renames them.

Its garbage collector is tuned as ``gateway serve`` tunes the gateway's. It takes the gateway's
own request (``bench/queries``: the GraphQL document and its variables)
and reads the upstream listing off the document once per document text (``first`` and which
lists are selected). Left out, as the floor leaves them out: validation of the upstream page,
authentication, limits, error shaping, the access log, metrics, tracing. So the gap between
this program and the floor is what the frameworks cost, and the gap between the gateway and this
program is what the gateway adds::

    python bench/frameworks.py --port 8001 --upstream http://127.0.0.1:8002

``--client aiohttp`` (no httpx) and ``--router none`` (no FastAPI) take one framework out, to
measure what each costs (``bench/run.py --frameworks-args "--client aiohttp"``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from functools import lru_cache
from typing import Any

import aiohttp
import httpx
import orjson
import strawberry
from fastapi import FastAPI
from floor import SEAT_BALANCES_PATH, node, serve  # type: ignore[import-not-found]
from graphql import FieldNode, IntValueNode, OperationDefinitionNode, parse
from httpx_aiohttp import AiohttpTransport
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document
from strawberry.types import ExecutionResult

from gateway.cli import tune_garbage_collector


@strawberry.type
class LedgerEntry:
    type: str
    amount: float
    timestamp: str


@strawberry.type
class Commit:
    id: strawberry.ID  # selectable (shapes Ai-Ci); not answered: the floor has no global ids
    commit_id: strawberry.ID
    balance: float
    start_date: str
    end_date: str | None
    ledger_entries: list[LedgerEntry]


@strawberry.type
class Credit:
    id: strawberry.ID  # selectable (shapes Ai-Ci); not answered: the floor has no global ids
    credit_id: strawberry.ID
    balance: float
    start_date: str
    end_date: str | None
    ledger_entries: list[LedgerEntry]


@strawberry.type
class Balance:
    credit_type_id: strawberry.ID
    balance: float
    starting_balance: float


@strawberry.type
class Seat:
    id: strawberry.ID  # selectable (shapes Ai-Ci); not answered: the floor has no global ids
    seat_id: strawberry.ID
    balances: list[Balance]
    commits: list[Commit]
    credits: list[Credit]


@strawberry.type
class SeatEdge:
    node: Seat


@strawberry.type
class SeatConnection:
    edges: list[SeatEdge]


@strawberry.type
class Query:
    @strawberry.field
    def seat_balances(
        self, customer_id: strawberry.ID, contract_id: strawberry.ID, first: int = 25
    ) -> SeatConnection:
        raise NotImplementedError("the extension supplies every answer")


# The upstream listing each document asks for: (limit, commits and credits, ledgers); a few
# benchmark documents reach this program, and it keeps at most 64.
_PLANS: dict[str, tuple[int, bool, bool]] = {}


def plan(query: str, operation: OperationDefinitionNode) -> tuple[int, bool, bool]:
    known = _PLANS.get(query)
    if known is None:
        root = operation.selection_set.selections[0]
        assert isinstance(root, FieldNode)
        first = next(
            (int(a.value.value) for a in root.arguments if isinstance(a.value, IntValueNode)), 25
        )
        names: set[str] = set()
        stack = [root]
        while stack:
            field = stack.pop()
            names.add(field.name.value)
            if field.selection_set is not None:
                stack.extend(s for s in field.selection_set.selections if isinstance(s, FieldNode))
        known = (first, "commits" in names or "credits" in names, "ledgerEntries" in names)
        if len(_PLANS) < 64:
            _PLANS[query] = known
    return known


class Upstream:
    """One POST to the listing: through httpx over httpx-aiohttp's transport (what the brief
    requires), called as the gateway calls it (httpx's transport interface, no ``AsyncClient``:
    its least cost), or with ``--client aiohttp`` through aiohttp alone (what the floor uses),
    to measure what httpx's layer costs."""

    def __init__(
        self, base_url: str, client: str, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.url = httpx.URL(base_url.rstrip("/") + SEAT_BALANCES_PATH)
        if transport is None and client == "httpx":
            transport = AiohttpTransport()
        self.transport = transport
        self.aiohttp: aiohttp.ClientSession | None = None

    async def post(self, body: bytes, authorization: str) -> bytes:
        if self.transport is not None:
            request = httpx.Request(
                "POST",
                self.url,
                headers=[
                    (b"Host", self.url.netloc),
                    (b"Authorization", authorization.encode()),
                    (b"Content-Type", b"application/json"),
                    (b"Content-Length", str(len(body)).encode()),
                ],
                stream=httpx.ByteStream(body),
            )
            request.read()
            response = await self.transport.handle_async_request(request)
            try:
                return await response.aread()
            finally:
                await response.aclose()
        if self.aiohttp is None:
            self.aiohttp = aiohttp.ClientSession()
        headers = {"Authorization": authorization, "Content-Type": "application/json"}
        async with self.aiohttp.post(str(self.url), data=body, headers=headers) as response:
            return await response.read()


_parse = lru_cache(maxsize=64)(parse)
_validate = lru_cache(maxsize=64)(validate_document)


class Supply(SchemaExtension):
    """The one extension: the document and its validation errors from the caches, and the
    result itself, set in ``on_execute`` (Strawberry's seam: graphql-core's executor does not
    run)."""

    upstream: Upstream

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.graphql_document = _parse(context.query)
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.pre_execution_errors = _validate(
            context.schema._schema, context.graphql_document, context.validation_rules
        )
        yield

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        assert document is not None
        operation = document.definitions[0]
        assert isinstance(operation, OperationDefinitionNode)
        root = operation.selection_set.selections[0]
        if isinstance(root, FieldNode) and root.name.value == "__typename":
            # `{ __typename }`: the frameworks' fixed cost (bench/inprocess.py --typename).
            context.result = ExecutionResult(data={"__typename": "Query"}, errors=None)
            yield
            return
        limit, commits, ledgers = plan(context.query or "", operation)
        variables = context.variables or {}
        listing: dict[str, Any] = {
            "customer_id": variables["customerId"],
            "contract_id": variables["contractId"],
            "limit": limit,
        }
        if commits:
            listing["include_credits_and_commits"] = True
        if ledgers:
            listing["include_ledgers"] = True
        request = context.context["request"]
        page = orjson.loads(
            await self.upstream.post(
                orjson.dumps(listing), request.headers.get("authorization", "")
            )
        )
        edges = [{"node": node(seat, listing)} for seat in page["data"]]
        context.result = ExecutionResult(data={"seatBalances": {"edges": edges}}, errors=None)
        yield


class View(GraphQL[Any, None]):
    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)


def create_app(
    upstream: str,
    *,
    client: str = "httpx",
    router: str = "fastapi",
    transport: httpx.AsyncBaseTransport | None = None,
) -> Any:
    """The app; ``transport`` replaces httpx-aiohttp's (``bench/inprocess.py --frameworks``
    replays canned pages through it)."""
    Supply.upstream = Upstream(upstream, client, transport)
    schema = strawberry.Schema(query=Query, extensions=[Supply])
    view = View(schema, graphql_ide=None)
    if router == "none":  # Strawberry's view as the whole ASGI app: what FastAPI costs
        return view
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    app.router.routes.append(Route("/graphql", endpoint=view))
    return app


async def measure_execute(count: int) -> float:
    """CPU seconds of one ``Schema.execute`` of ``{ __typename }`` through this schema (its
    caches warm, the extension supplying the result), without the view or any HTTP layer."""
    schema = create_app("http://billing.invalid", router="none").schema
    for _ in range(200):
        await schema.execute("{ __typename }", context_value={})
    started = time.process_time()
    for _ in range(count):
        result = await schema.execute("{ __typename }", context_value={})
    assert result.data == {"__typename": "Query"}, result
    return (time.process_time() - started) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument(
        "--upstream",
        default=os.environ.get("METRONOME_BASE_URL", ""),
        help="the billing API's base URL (default: METRONOME_BASE_URL, as the gateway reads it)",
    )
    parser.add_argument(
        "--client",
        choices=("httpx", "aiohttp"),
        default="httpx",
        help="the upstream client (aiohttp: without httpx's layer, to measure it)",
    )
    parser.add_argument(
        "--router",
        choices=("fastapi", "none"),
        default="fastapi",
        help="none: Strawberry's view is the whole app, without FastAPI (to measure it)",
    )
    parser.add_argument(
        "--measure-execute",
        action="store_true",
        help="print the CPU of Schema.execute alone (`{ __typename }`), serve nothing",
    )
    args = parser.parse_args()
    if args.measure_execute:
        seconds = min(asyncio.run(measure_execute(5000)) for _ in range(5))
        print(f"Schema.execute of {{ __typename }}: {seconds * 1e6:.1f} us CPU per operation")
        return
    if not args.upstream:
        parser.error("--upstream is required to serve")
    app = create_app(args.upstream, client=args.client, router=args.router)
    tune_garbage_collector()  # as `gateway serve` tunes it
    serve(app, args.host, args.port)


if __name__ == "__main__":
    main()
