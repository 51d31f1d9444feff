"""The projection answers exactly what graphql-core answers, byte for byte, errors included.

A generated corpus of operations (aliases, merged fields, named and inline fragments, type
conditions on the interfaces a type implements, @skip/@include with and without variables,
__typename, nulls, paging cursors, bad arguments, upstream errors, ledger types the gateway
does not know, the fields that call the billing API again: the details of commits and credits,
joined, and the credit types, which graphql-core completes) is sent over HTTP to two gateways,
one with the projection (the default) and one without (``GATEWAY_FAST_PATH=false``:
graphql-core completes every field); status, content type and body bytes must be identical,
and the projection must have answered most of the corpus. The selections are generated from
the schema the gateway serves (its first operation selects every field of every object type
below ``seatBalances``, the others a random part of them), so a new field is in the corpus
without an edit here.

In-process tier: both gateways run in this process over ``httpx.ASGITransport`` with their
lifespan, and so does the stand-in.
"""

from __future__ import annotations

import gc
import json
import random
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import (
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    get_named_type,
    is_leaf_type,
    is_object_type,
    is_required_argument,
)

from gateway.app import create_app
from gateway.config import Settings
from gateway.schema import build_schema
from gateway.schema.fields import join_of, reader_of
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    create_standin_app,
)
from tests.support import DEFAULT_LIMITS

CORPUS_SIZE = 400

# When a non-null root field fails, graphql-core abandons its sibling resolvers' coroutines
# without awaiting them; Python warns when they are collected. That is graphql-core's own
# behaviour, not something the projection does.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")


class NewLedgerTypes(httpx.AsyncBaseTransport):
    """The stand-in, with every fifth ledger entry of a type this gateway does not know."""

    def __init__(self) -> None:
        self.standin = httpx.ASGITransport(app=create_standin_app())

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.standin.handle_async_request(request)
        body = await response.aread()
        if response.status_code != 200:
            return httpx.Response(response.status_code, content=body, headers=response.headers)
        page = json.loads(body)
        count = 0
        for seat in page["data"]:
            for item in (seat.get("commits") or []) + (seat.get("credits") or []):
                for entry in item.get("ledger_entries") or []:
                    count += 1
                    if count % 5 == 0:
                        entry["type"] = "PREPAID_COMMIT_TELEPORTED"
        return httpx.Response(200, json=page)


@dataclass
class Gateways:
    projecting: httpx.AsyncClient
    reference: httpx.AsyncClient


@pytest.fixture
async def gateways() -> AsyncIterator[Gateways]:
    settings = Settings(metronome_base_url="http://standin", metronome_bearer_token=None)
    projecting = create_app(settings, transport=NewLedgerTypes())
    reference = create_app(settings.model_copy(update={"fast_path": False}), NewLedgerTypes())
    async with (
        LifespanManager(projecting) as one,  # type: ignore[arg-type]
        LifespanManager(reference) as other,  # type: ignore[arg-type]
        httpx.AsyncClient(transport=httpx.ASGITransport(one.app), base_url="http://gw") as a,
        httpx.AsyncClient(transport=httpx.ASGITransport(other.app), base_url="http://gw") as b,
    ):
        yield Gateways(a, b)


async def send(client: httpx.AsyncClient, case: Case) -> tuple[int, str, bytes]:
    """What the caller receives: status, content type and the body's exact bytes."""
    headers = {"Authorization": f"Bearer {case.token}"} if case.token else {}
    payload: dict[str, Any] = {"query": case.query, "variables": case.variables}
    if case.name is not None:
        payload["operationName"] = case.name
    response = await client.post("/graphql", json=payload, headers=headers)
    return response.status_code, response.headers["content-type"], response.content


@dataclass
class Case:
    query: str
    variables: dict[str, Any]
    name: str | None
    token: str | None


Selectable = GraphQLObjectType | GraphQLInterfaceType


def served_field(type_name: str, field_name: str) -> GraphQLField:
    """A field of the schema the gateway serves, as graphql-core executes it."""
    served = build_schema(DEFAULT_LIMITS).schema_converter.type_map[type_name].implementation
    assert isinstance(served, GraphQLObjectType)
    return served.fields[field_name]


def calls_upstream(field: GraphQLField) -> bool:
    """Whether completing the field can call the billing API again (a join onto its source, as
    the details of commits and credits, or a resolver of its own, as a credit type)."""
    return join_of(field) is not None or reader_of(field) is None


# The root field the corpus asks.
ROOT = "seatBalances"
_LEFT_OUT = object()  # a declared variable the request does not send


def every_field(type_: Selectable, below: frozenset[str] = frozenset()) -> str:
    """A selection of every field of ``type_`` and of the objects below it (each type once on a
    path), every field one without a required argument."""
    parts = []
    for name, field in type_.fields.items():
        named = get_named_type(field.type)
        if any(is_required_argument(argument) for argument in field.args.values()):
            continue
        if is_leaf_type(named):
            parts.append(name)
        elif is_object_type(named) and named.name not in below | {type_.name}:
            parts.append(f"{name} {{ {every_field(named, below | {type_.name})} }}")
    return " ".join(parts)


class Generator:
    """Random operations over ``seatBalances``, reproducible from a seed: every field of every
    object type below it, read from the schema the gateway serves; the fields that call the
    billing API again only in a fifth of the selections of their type (each such call is an
    upstream call per commit, credit or credential, and an operation may make 20)."""

    def __init__(self, seed: int, cursors: list[str]) -> None:
        self.rng = random.Random(seed)  # noqa: S311 - a reproducible corpus, not a secret
        self.cursors = cursors
        answered = get_named_type(served_field("Query", ROOT).type)
        assert is_object_type(answered)
        self.answered: GraphQLObjectType = answered
        self.fragments: dict[str, str] = {}
        self.conditions: dict[str, bool] = {}
        self.variable_conditions = True
        self.aliases = 0

    def maybe(self, p: float) -> bool:
        return self.rng.random() < p

    def alias(self, name: str) -> str:
        if self.maybe(0.15) and self.aliases < 20:
            self.aliases += 1
            return f"{name}_{self.aliases}: {name}"
        return name

    def directive(self) -> str:
        if not self.maybe(0.15):
            return ""
        if self.maybe(0.3) or not self.variable_conditions:
            return self.rng.choice([" @skip(if: false)", " @include(if: true)", " @skip(if: true)"])
        variable = f"c{len(self.conditions)}"
        self.conditions[variable] = self.maybe(0.5)
        kind = self.rng.choice(["skip", "include"])
        return f" @{kind}(if: ${variable})"

    def select(self, type_: Selectable, below: frozenset[str] = frozenset()) -> str:
        """A selection on ``type_``: its leaves and, below them, its objects (each type once on
        a path), every field one without a required argument."""
        fields = [
            (name, field)
            for name, field in type_.fields.items()
            if not any(is_required_argument(argument) for argument in field.args.values())
        ]
        if any(calls_upstream(field) for _, field in fields) and not self.maybe(0.2):
            fields = [(name, field) for name, field in fields if not calls_upstream(field)]
        leaves = [name for name, field in fields if is_leaf_type(get_named_type(field.type))]
        objects = {
            name: (lambda named=named: self.select(named, below | {type_.name}))
            for name, field in fields
            if is_object_type(named := get_named_type(field.type))
            and named.name not in below | {type_.name}
        }
        return self.pick(leaves, objects, type_)

    def pick(self, leaves: list[str], objects: dict[str, Any], type_: Selectable) -> str:
        parts: list[str] = []
        for name in leaves:
            if self.maybe(0.45):
                parts.append(self.alias(name) + self.directive())
        for name, sub in objects.items():
            if self.maybe(0.45):
                parts.append(f"{self.alias(name)}{self.directive()} {{ {sub()} }}")
        if self.maybe(0.2):
            parts.append("__typename")
        if self.maybe(0.15) and parts:
            parts.append(self.rng.choice(parts))  # a duplicate: graphql-core merges it
        if self.maybe(0.15):
            inner = self.pick(leaves, {}, type_)
            parts.append(f"... on {type_.name}{self.directive()} {{ {inner} }}")
        if self.maybe(0.1) and type_.interfaces:
            interface = self.rng.choice(type_.interfaces)
            inner = self.pick(
                [n for n, f in interface.fields.items() if is_leaf_type(get_named_type(f.type))],
                {},
                interface,
            )
            parts.append(f"... on {interface.name} {{ {inner} }}")
        if self.maybe(0.1):
            name = f"F{len(self.fragments)}"
            self.fragments[name] = (
                f"fragment {name} on {type_.name} {{ {self.pick(leaves, {}, type_)} }}"
            )
            parts.append(f"...{name}{self.directive()}")
        return " ".join(parts) or "__typename"

    def arguments(self, variables: dict[str, Any]) -> tuple[str, bool]:
        """Arguments of one seatBalances field, and whether they are all valid."""
        valid = True
        if self.maybe(0.1):
            customer, contract = OTHER_CUSTOMER_ID, OTHER_CONTRACT_ID  # 404 for the demo token
        else:
            customer, contract = DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID
        if self.maybe(0.3):
            # As clients send them: ids in variables (the compiled root's argument plan),
            # now and then null, a number, or left out (graphql-core's errors, byte for byte).
            variables["customerId"] = self.rng.choice([customer] * 5 + [None, 12345, _LEFT_OUT])
            variables["contractId"] = contract
            args = ["customerId: $customerId", "contractId: $contractId"]
            valid &= variables["customerId"] == customer
        else:
            args = [f'customerId: "{customer}"', f'contractId: "{contract}"']
        roll = self.rng.random()
        if roll < 0.25:
            variables["first"] = self.rng.choice([1, 3, 7, 25, 60, 100, 0, None])
            valid &= variables["first"] != 0
            args.append("first: $first")
        elif roll < 0.5:
            args.append(f"first: {self.rng.choice([2, 10, 40, 101])}")
        if self.maybe(0.25) and self.cursors:
            args.append(f'after: "{self.rng.choice(self.cursors)}"')
        elif self.maybe(0.05):
            args.append('after: "garbage"')
            valid = False
        if self.maybe(0.2):
            args.append(
                self.rng.choice(
                    [
                        'coveringDate: "2026-05-10T00:00:00Z"',
                        'startingAt: "2026-04-01T00:00:00+02:00"',
                        'effectiveBefore: "2026-06-01T00:00:00Z"',
                        'coveringDate: "2026-05-10T00:00:00Z", startingAt: "2026-01-01T00:00:00Z"',
                        "startingAt: null",
                    ]
                )
            )
        if self.maybe(0.08):
            args.append(
                'seatIds: ["ghost@nowhere.example"], skipMissingSeatIds: '
                + self.rng.choice(["true", "false"])
            )
        return ", ".join(args), valid

    def corpus(self) -> Iterator[Case]:
        """The corpus: one operation selecting every field, then random ones."""
        yield self.everything()
        while True:
            yield self.case()

    def everything(self) -> Case:
        """Every field of every type below ``seatBalances``, on a few seats."""
        query = (
            f'query Everything {{ {ROOT}(customerId: "{DEMO_CUSTOMER_ID}", '
            f'contractId: "{DEMO_CONTRACT_ID}", first: 5) {{ {every_field(self.answered)} }} }}'
        )
        return Case(query, {}, "Everything", DEMO_TOKEN)

    def case(self) -> Case:
        self.fragments, self.conditions, self.aliases = {}, {}, 0
        # Half of the operations take no variable in @skip/@include: their plans are kept
        # across requests, and those with one seatBalances get the compiled root.
        self.variable_conditions = self.maybe(0.5)
        variables: dict[str, Any] = {}
        roots: list[str] = []
        for index in range(self.rng.choice([1, 1, 1, 2, 3])):
            args, _ = self.arguments(variables)
            prefix = f"r{index}: " if index or self.maybe(0.3) else ""
            roots.append(
                f"{prefix}{ROOT}({args}){self.directive()} {{ {self.select(self.answered)} }}"
            )
        if self.maybe(0.2):
            roots.append("__typename")
        declared = [f"${name}: Boolean!" for name in self.conditions]
        if "first" in variables:
            declared.append("$first: Int")
        if "customerId" in variables:
            declared += ["$customerId: ID!", "$contractId: ID!"]
        header = f"query Op({', '.join(declared)})" if declared else "query Op"
        query = f"{header} {{ {' '.join(roots)} }} {' '.join(self.fragments.values())}"
        token = DEMO_TOKEN if self.maybe(0.95) else None
        given = {name: value for name, value in variables.items() if value is not _LEFT_OUT}
        return Case(query, {**given, **self.conditions}, "Op", token)


async def first_cursors(gateways: Gateways) -> list[str]:
    query = f'{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 30) {{ edges {{ cursor }} }} }}'
    _, _, body = await send(gateways.reference, Case(query, {}, None, DEMO_TOKEN))
    return [edge["cursor"] for edge in json.loads(body)["data"]["seatBalances"]["edges"]][::7]


async def executed(client: httpx.AsyncClient, executor: str) -> float:
    """How many operations ``executor`` answered, from the gateway's own metrics."""
    metrics = (await client.get("/metrics")).text
    for line in metrics.splitlines():
        if line.startswith("gateway_graphql_execution_total") and f'executor="{executor}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def projected(client: httpx.AsyncClient) -> float:
    """How many operations the projection completed (the compiled root's included)."""
    return await executed(client, "fast-path") + await executed(client, "compiled")


# The fast tier sends the corpus's first cases, the process tier the rest (one sequence).
FAST_TIER_CASES = 80


@pytest.mark.parametrize(
    ("start", "stop"),
    [
        pytest.param(0, FAST_TIER_CASES, id="first"),
        pytest.param(FAST_TIER_CASES, CORPUS_SIZE, id="rest", marks=pytest.mark.process),
    ],
)
async def test_the_projection_answers_a_generated_corpus_byte_for_byte_as_graphql_core(
    gateways: Gateways, start: int, stop: int
) -> None:
    """Every generated operation gets the same status, content type and body bytes, the first
    time (graphql-core with the projection) and the second (the document is stored then: its
    compiled root answers when it has one)."""
    generator = Generator(seed=20261125, cursors=await first_cursors(gateways))
    for number, case in zip(range(stop), generator.corpus(), strict=False):
        if number < start:
            continue  # the same sequence whichever part runs
        expected = await send(gateways.reference, case)
        first = await send(gateways.projecting, case)
        again = await send(gateways.projecting, case)
        if b'"errors"' in expected[2]:
            gc.collect()  # abandoned coroutines warn now, under this module's filter
        assert first == expected, f"case {number}: {case.query} {case.variables}"
        assert again == expected, f"case {number}, again: {case.query} {case.variables}"
    # Operations that fail before completing any object are graphql-core's alone.
    assert await projected(gateways.projecting) >= stop - start
    assert await executed(gateways.projecting, "compiled") >= (stop - start) // 5
    assert await projected(gateways.reference) == 0


DIVERGENCES = [
    # A null @skip/@include condition is a request error on every path.
    Case(
        "query Op($c: Boolean = false) { seatBalances("
        f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 2)'
        " { nodes { seatId @skip(if: $c) } } }",
        {"c": None},
        "Op",
        DEMO_TOKEN,
    ),
    # node, nodes and _entities: interfaces and unions are resolved by graphql-core, and the
    # objects below them projected.
    Case(
        '{ node(id: "U2VhdDpbXQ") { id } }',
        {},
        None,
        DEMO_TOKEN,
    ),
    # Several operations and no operationName.
    Case("query A { __typename } query B { __typename }", {}, None, DEMO_TOKEN),
]


@pytest.mark.parametrize("case", DIVERGENCES, ids=["null-condition", "node", "no-operation-name"])
async def test_known_divergences_answer_alike(gateways: Gateways, case: Case) -> None:
    """Cases where the old fast path and graphql-core once differed now answer alike."""
    assert await send(gateways.projecting, case) == await send(gateways.reference, case)


async def test_objects_below_node_and_nodes_are_projected_identically(gateways: Gateways) -> None:
    """nodes over seats answers the same bytes whether or not the projection completes them."""
    query = f'{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 2) {{ nodes {{ id }} }} }}'
    _, _, body = await send(gateways.reference, Case(query, {}, None, DEMO_TOKEN))
    ids = [node["id"] for node in json.loads(body)["data"]["seatBalances"]["nodes"]]
    case = Case(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Seat { seatId balances { balance } commits { commitId ledgerEntries { type } } } } }",
        {"ids": ids},
        None,
        DEMO_TOKEN,
    )
    expected = await send(gateways.reference, case)
    assert expected[0] == 200 and b'"errors"' not in expected[2]
    before = await projected(gateways.projecting)
    assert await send(gateways.projecting, case) == expected
    assert await projected(gateways.projecting) == before + 1


# An unexpected error's id, different in each answer (and each log line) by design.
ERROR_ID = re.compile(rb"[0-9a-f]{32}")


async def test_a_null_in_a_non_null_field_propagates_over_the_wire_as_graphql_core_does(
    gateways: Gateways,
) -> None:
    """A null where the schema promises none, sent by a caller: no billing page can carry one
    (the page validation refuses it), but a Contract representation without its `id` does.
    The projection (the document's first request: a plan for this request; the second: the
    stored document's generated plan) answers the very bytes graphql-core answers, but for
    the error's id: the error at `_entities.1.id` and the null propagated to that entity, the
    nearest nullable parent; the whole contract beside it is still projected."""
    case = Case(
        "query Contracts($representations: [_Any!]!) { _entities(representations: "
        "$representations) { ... on Contract { id customerId } } }",
        {
            "representations": [
                {"__typename": "Contract", "id": DEMO_CONTRACT_ID, "customerId": DEMO_CUSTOMER_ID},
                {"__typename": "Contract", "customerId": DEMO_CUSTOMER_ID},
            ]
        },
        "Contracts",
        DEMO_TOKEN,
    )
    status, media_type, body = await send(gateways.reference, case)
    expected = (status, media_type, ERROR_ID.sub(b"<id>", body))
    before = await projected(gateways.projecting)
    for _ in range(2):
        status, media_type, body = await send(gateways.projecting, case)
        assert (status, media_type, ERROR_ID.sub(b"<id>", body)) == expected
    assert await projected(gateways.projecting) == before + 2
    answer = json.loads(body)
    assert answer["data"] == {
        "_entities": [{"id": DEMO_CONTRACT_ID, "customerId": DEMO_CUSTOMER_ID}, None]
    }
    assert [error["path"] for error in answer["errors"]] == [["_entities", 1, "id"]]
