"""The billing subgraph composes and runs behind a real Apollo Federation gateway.

``federation/harness.mjs`` (Node) starts a second subgraph, "people", which owns ``Seat.holder``,
``Query.team`` and ``Contract.name``; composes it with the billing subgraph that this module runs
(its SDL fetched from ``_service`` and composed as served); and serves an ``@apollo/gateway`` in front of both. Queries go
through that gateway in both directions while the billing API calls are counted by the billing
gateway's recording transport. Every response of the harness carries
``extensions.subgraphRequests``: the requests the federation gateway sent to each subgraph.

Needs ``npm ci --prefix federation``. Without ``federation/node_modules`` these tests are skipped,
unless ``GATEWAY_REQUIRE_FEDERATION`` is set (as in CI), which makes a missing install a failure.
"""

from __future__ import annotations

import json
import selectors
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from graphql import build_schema as build_graphql_schema

from gateway.app import demo_query
from gateway.config import Settings
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CUSTOMER_ID,
    create_standin_app,
)
from tests.reference import as_graphql, upstream_seats
from tests.support import (
    Gateway,
    GraphQLErrors,
    authenticated_marks,
    node_harness,
    running_gateway,
)

pytestmark = pytest.mark.process  # the process tier: starts node's Apollo gateway and composers

ROOT = Path(__file__).resolve().parent.parent
FEDERATION = ROOT / "federation"
SCHEMA = ROOT / "schema.graphql"
CLIENT_SCHEMA = ROOT / "client-schema.graphql"

BASE = {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID}
KEY = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
WITH_LEDGERS = {"include_credits_and_commits": True, "include_ledgers": True}
UNKNOWN_SEAT = "departed.engineer@acme.example"
CONTRACT_NAME = "Acme Corp seat plan"

DEEP_SEAT = """
  seatId
  holder { name team }
  balances { creditTypeId balance startingBalance }
  commits { commitId balance startDate endDate ledgerEntries { type amount timestamp } }
  credits { creditId balance startDate endDate ledgerEntries { type amount timestamp } }
"""


# --- the Node side: installed, or skipped (locally) / failed (CI) ----------------------------


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` executable, once ``federation/node_modules`` is installed."""
    return node_harness(
        "federation", (".",), "GATEWAY_REQUIRE_FEDERATION", "run the federation tests"
    )


def compose(node: str, *files: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, str(FEDERATION / "compose.mjs"), *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


# --- the demo contract's seats, and who holds them in the people subgraph --------------------


@dataclass(frozen=True)
class People:
    """Which seats the people subgraph puts in which team, and the file it reads."""

    file: Path
    platform: list[str]  # five seats the billing API knows, not in seat order
    support: list[str]  # three it knows, and one it does not
    first_ten: list[str]  # the contract's first ten seats, in the billing API's order
    holders: dict[str, dict[str, str]]  # seat id -> {"name", "team"}


@pytest.fixture(scope="module")
def people(standin_url: str, tmp_path_factory: pytest.TempPathFactory) -> People:
    """Real seat ids of the demo contract, shared out into teams, written as people.json."""
    seats = upstream_seats(standin_url, {**BASE, "include_credits_and_commits": True})
    ids = [seat["seat_id"] for seat in seats]
    first_ten = ids[:10]

    def held(seat: dict[str, Any]) -> int:
        return len(seat.get("commits") or ()) + len(seat.get("credits") or ())

    # Seats past the first ten that hold a few commits and credits each: five of them fit in
    # one upstream page (the billing API caps a page at 100 commits and credits).
    modest = [seat["seat_id"] for seat in seats[10:] if 2 <= held(seat) <= 15]
    assert len(modest) >= 8, "the demo contract has seats with a few commits"
    platform = modest[:5][::-1]  # not in seat order: the gateway must sort what it sends
    support = [*modest[5:8], UNKNOWN_SEAT]

    teams = {"Platform": platform, "Support": support, "Sales": first_ten[:7]}
    holders = {
        seat_id: {"name": f"{team} person {n}", "team": team}
        for team, members in teams.items()
        for n, seat_id in enumerate(members, 1)
    }
    file = tmp_path_factory.mktemp("federation") / "people.json"
    file.write_text(
        json.dumps(
            {
                **KEY,
                "contractName": CONTRACT_NAME,
                "people": [{"seatId": seat_id, **who} for seat_id, who in holders.items()],
            },
            indent=2,
        )
    )
    return People(file, platform, support, first_ten, holders)


def reference(standin_url: str, seat_ids: list[str], **flags: bool) -> dict[str, dict[str, Any]]:
    """The billing API's own answer for these seats, in the gateway's shape, by seat id."""
    body = {**BASE, "seat_ids": seat_ids, "skip_missing_seat_ids": True, **flags}
    return {seat["seat_id"]: as_graphql(seat) for seat in upstream_seats(standin_url, body)}


# --- the federation gateway -------------------------------------------------------------------


@dataclass
class Federation:
    """The harness's Apollo gateway, and the people subgraph behind it."""

    url: str
    people_url: str
    http: httpx.Client

    def post(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = DEMO_TOKEN
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.post(
            self.url, json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.headers["content-type"].startswith("application/json"), response.text
        return response.json()  # type: ignore[no-any-return]

    def query(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The whole payload of a query that must succeed (``data`` and ``extensions``)."""
        payload = self.post(query, variables)
        if payload.get("errors"):
            raise GraphQLErrors(payload["errors"])
        return payload


def subgraph_calls(payload: dict[str, Any]) -> list[str]:
    """Which subgraphs the federation gateway asked, in order, for this response."""
    return [request["subgraph"] for request in payload["extensions"]["subgraphRequests"]]


@contextmanager
def harness(node: str, billing_url: str, people: People, log: Path) -> Iterator[Federation]:
    """``node federation/harness.mjs`` over the billing subgraph at ``billing_url``, until
    stdin closes."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                node,
                str(FEDERATION / "harness.mjs"),
                "--billing-url",
                f"{billing_url}/graphql",
                "--people",
                str(people.file),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdin is not None and process.stdout is not None
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=90)
        line = process.stdout.readline() if ready else ""
        if not line:
            process.kill()
            process.wait(10)
            pytest.fail(f"the harness did not start:\n{log.read_text()}")
        urls = json.loads(line)
        with httpx.Client(timeout=60) as http:
            yield Federation(url=urls["gateway"], people_url=urls["people"], http=http)
    finally:
        process.stdin.close()
        try:
            returncode = process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise
        finally:
            process.stdout.close()
    assert returncode == 0, f"the harness exited with {returncode}:\n{log.read_text()}"


@pytest.fixture(scope="module")
def federation(
    node: str, module_gateway: Gateway, people: People, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    """The harness over this module's billing gateway."""
    log = tmp_path_factory.mktemp("harness") / "harness.log"
    with harness(node, module_gateway.url, people, log) as federation:
        yield federation


@pytest.fixture
def billing(module_gateway: Gateway, federation: Federation) -> Gateway:
    """The billing gateway behind the federation gateway, its upstream record cleared."""
    module_gateway.upstream.calls.clear()
    return module_gateway


def failed_harness(node: str, billing_url: str, people: People, log: Path) -> str:
    """Runs ``harness.mjs`` over ``billing_url`` expecting it to give up: asserts it exits 1
    with nothing on stdout, and returns its log."""
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                node,
                str(FEDERATION / "harness.mjs"),
                "--billing-url",
                billing_url,
                "--people",
                str(people.file),
            ],
            cwd=ROOT,
            stdin=subprocess.PIPE,  # left open: closing it asks the harness to stop (exit 0)
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    assert process.stdin is not None and process.stdout is not None
    try:
        returncode = process.wait(60)
        stdout = process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        process.stdin.close()
        process.stdout.close()
    assert returncode == 1, log.read_text()
    assert stdout == ""
    return log.read_text()


def test_the_harness_fails_loudly_without_a_billing_subgraph(
    node: str, people: People, tmp_path: Path
) -> None:
    """harness.mjs exits 1, saying why, when billing's SDL cannot be fetched from _service."""
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{sock.getsockname()[1]}/graphql"
    log = failed_harness(node, nowhere, people, tmp_path / "harness.log")
    assert f"could not fetch billing's SDL from {nowhere}" in log


# --- composition ------------------------------------------------------------------------------


def test_schema_graphql_composes_with_both_composers(node: str, tmp_path: Path) -> None:
    """schema.graphql composes with the people subgraph under Apollo's and The Guild's composers."""
    out = tmp_path / "supergraph.graphql"
    result = compose(node, SCHEMA, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "@apollo/composition: composes" in result.stdout
    assert "@theguild/federation-composition: composes" in result.stdout
    supergraph = out.read_text()
    for graph in ("BILLING", "PEOPLE"):
        assert f'@join__type(graph: {graph}, key: "customerId contractId seatId")' in supergraph
        assert f'@join__type(graph: {graph}, key: "id customerId")' in supergraph
    # No SECURITY feature: @apollo/gateway and an unlicensed Apollo Router run it.
    assert "for: SECURITY" not in supergraph and "@authenticated" not in supergraph


@pytest.fixture(scope="module")
def auth_billing() -> Iterator[Gateway]:
    """A billing gateway (on the embedded stand-in) whose SDL carries @authenticated
    (GATEWAY_FEDERATION_AUTH_DIRECTIVES=true)."""
    settings = Settings(federation_auth_directives=True)
    with running_gateway(settings, httpx.ASGITransport(app=create_standin_app())) as gateway:
        yield gateway


def test_with_auth_directives_the_served_sdl_composes_under_both_composers(
    node: str, auth_billing: Gateway, tmp_path: Path
) -> None:
    """With GATEWAY_FEDERATION_AUTH_DIRECTIVES=true the SDL billing serves, as is, composes
    under The Guild's composer (Hive Gateway's) and Apollo's, into a supergraph whose
    @authenticated a router enforcing it (Hive Gateway, Apollo Router with GraphOS) applies
    to every way into a customer's seats."""
    sdl = tmp_path / "billing.graphql"
    sdl.write_text(auth_billing.query("{ _service { sdl } }", token=None)["_service"]["sdl"])
    out = tmp_path / "supergraph.graphql"
    result = compose(node, sdl, "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "@theguild/federation-composition: composes" in result.stdout
    assert "@apollo/composition: composes" in result.stdout
    supergraph = out.read_text()
    assert '@link(url: "https://specs.apollo.dev/authenticated/v0.1", for: SECURITY)' in supergraph
    # Composition carries Seat's requirement over to the interface it implements.
    assert authenticated_marks(supergraph) == {
        "Query.seatBalances", "Query.node", "Query.nodes", "Contract.seatBalances", "Seat", "Node"
    }  # fmt: skip


def test_apollos_js_gateway_refuses_the_sdl_with_auth_directives(
    node: str, auth_billing: Gateway, people: People, tmp_path: Path
) -> None:
    """The harness runs billing's SDL as served, never an edited copy: with @authenticated in
    it, @apollo/gateway refuses the supergraph (a SECURITY feature it cannot enforce), which
    is why the directive is off by default."""
    log = failed_harness(node, f"{auth_billing.url}/graphql", people, tmp_path / "harness.log")
    assert "https://specs.apollo.dev/authenticated/v0.1" in log
    assert "is for: SECURITY but is unsupported" in log


def test_client_schema_graphql_loads_in_graphql_js(node: str, tmp_path: Path) -> None:
    """graphql-js's buildSchema (what Code Generator, Relay's compiler and graphcache build
    on) takes client-schema.graphql as is, with the types graphql-core builds, and the
    README's first query validates against it; the subgraph SDL it refuses (@link)."""
    document = tmp_path / "first.graphql"
    document.write_text(demo_query())
    loaded = subprocess.run(
        [node, str(FEDERATION / "load-schema.mjs"), str(CLIENT_SCHEMA), str(document)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    built = json.loads(loaded.stdout)
    client = build_graphql_schema(CLIENT_SCHEMA.read_text())
    assert built["types"] == sorted(name for name in client.type_map if not name.startswith("__"))
    assert built["queryFields"] == ["seatBalances", "node", "nodes"]

    refused = subprocess.run(
        [node, str(FEDERATION / "load-schema.mjs"), str(SCHEMA)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode == 1
    assert 'Unknown directive "@link"' in refused.stderr


@pytest.mark.parametrize(
    ("old", "new", "failing"),
    [
        pytest.param(
            "seatId: String!",
            "seatId: Int!",
            ["@apollo/composition", "@theguild/federation-composition"],
            id="key field type conflicts with people's",
        ),
        pytest.param(
            '@key(fields: "customerId contractId seatId")',
            '@key(fields: "customerId contractId seatNumber")',
            ["@apollo/composition", "@theguild/federation-composition"],
            id="key names a field Seat does not have",
        ),
        pytest.param(
            "federation/v2.9",
            "federation/v2.10",
            ["@theguild/federation-composition"],
            id="a federation version only Apollo knows",
        ),
    ],
)
def test_the_composition_check_fails_on_a_broken_schema(
    node: str, tmp_path: Path, old: str, new: str, failing: list[str]
) -> None:
    """compose.mjs exits 1 and names the failing composer when billing's SDL stops composing."""
    sdl = SCHEMA.read_text()
    assert old in sdl
    broken = tmp_path / "broken.graphql"
    broken.write_text(sdl.replace(old, new))
    result = compose(node, broken)
    assert result.returncode == 1, result.stdout + result.stderr
    for composer in failing:
        assert f"{composer}: FAILED" in result.stderr
    assert result.stderr.count(": FAILED") == len(failing), result.stderr


# --- other -> billing: seats reached through the people subgraph ------------------------------


TEAM_DEEP = f"""query($name: String!) {{
  team(name: $name) {{ name seats {{ {DEEP_SEAT} }} }}
}}"""


def test_five_seats_from_another_subgraph_cost_one_upstream_call(
    federation: Federation, billing: Gateway, people: People, standin_url: str
) -> None:
    """Five team seats with balances, commits and ledgers are one call, answered as the API did."""
    payload = federation.query(TEAM_DEEP, {"name": "Platform"})

    assert billing.upstream.bodies() == [
        {
            **BASE,
            "seat_ids": sorted(people.platform),
            "skip_missing_seat_ids": True,
            **WITH_LEDGERS,
            "limit": 5,
        }
    ]
    assert billing.calls[0].authorization == f"Bearer {DEMO_TOKEN}"
    assert subgraph_calls(payload) == ["people", "billing"]
    expected = reference(standin_url, people.platform, **WITH_LEDGERS)
    assert payload["data"]["team"] == {
        "name": "Platform",
        "seats": [
            {**expected[seat_id], "holder": people.holders[seat_id]} for seat_id in people.platform
        ],
    }
    held = [item for seat in expected.values() for item in seat["commits"] + seat["credits"]]
    assert held and all(item["ledgerEntries"] for item in held), "a deep answer, not an empty one"


@pytest.mark.parametrize(
    ("selection", "flags"),
    [
        pytest.param("balances { balance }", {}, id="balances only"),
        pytest.param(
            "commits { balance }", {"include_credits_and_commits": True}, id="commits, no ledgers"
        ),
        pytest.param("credits { ledgerEntries { amount } }", WITH_LEDGERS, id="ledgers"),
    ],
)
def test_include_flags_follow_the_entity_selection(
    federation: Federation,
    billing: Gateway,
    people: People,
    selection: str,
    flags: dict[str, bool],
) -> None:
    """The fields the gateway asks of billing's Seat entities decide the include flags sent."""
    federation.query(
        f'{{ team(name: "Platform") {{ seats {{ seatId {selection} }} }} }}',
    )
    assert billing.upstream.bodies() == [
        {
            **BASE,
            "seat_ids": sorted(people.platform),
            "skip_missing_seat_ids": True,
            **flags,
            "limit": 5,
        }
    ]


def test_a_seat_billing_does_not_know_is_null_and_the_others_are_whole(
    federation: Federation, billing: Gateway, people: People, standin_url: str
) -> None:
    """Apollo's gateway nulls just the unknown seat (Team.seats items are nullable), no error."""
    payload = federation.post(
        """{ team(name: "Support") { name seats { seatId holder { name } balances { balance } } } }"""
    )

    assert billing.upstream.bodies() == [
        {**BASE, "seat_ids": sorted(people.support), "skip_missing_seat_ids": True, "limit": 4}
    ]
    expected = reference(standin_url, people.support)
    assert UNKNOWN_SEAT not in expected
    seats = payload["data"]["team"]["seats"]
    assert seats == [
        None
        if seat_id == UNKNOWN_SEAT
        else {
            "seatId": seat_id,
            "holder": {"name": people.holders[seat_id]["name"]},
            "balances": [{"balance": b["balance"]} for b in expected[seat_id]["balances"]],
        }
        for seat_id in people.support
    ]
    # billing's `_entities` answered null for it; the gateway reports the non-null field it could
    # not fill in `extensions.valueCompletion`, not as a GraphQL error.
    assert "errors" not in payload
    [completion] = payload["extensions"]["valueCompletion"]
    assert completion["path"] == ["team", "seats", people.support.index(UNKNOWN_SEAT), "balances"]


# --- billing -> other: seats listed by billing, holders from the people subgraph --------------


def test_billing_listing_joins_holders_from_the_people_subgraph(
    federation: Federation, billing: Gateway, people: People, standin_url: str
) -> None:
    """seatBalances is one upstream call; each seat's holder comes from the people subgraph."""
    payload = federation.query(
        """query($customerId: ID!, $contractId: ID!) {
          seatBalances(customerId: $customerId, contractId: $contractId, first: 10) {
            nodes { seatId balances { balance } holder { name team } }
          }
        }""",
        KEY,
    )

    assert billing.upstream.bodies() == [{**BASE, "limit": 10}]
    assert subgraph_calls(payload) == ["billing", "people"]
    expected = reference(standin_url, people.first_ten)
    nodes = payload["data"]["seatBalances"]["nodes"]
    assert nodes == [
        {
            "seatId": seat_id,
            "balances": [{"balance": b["balance"]} for b in expected[seat_id]["balances"]],
            "holder": people.holders.get(seat_id),
        }
        for seat_id in people.first_ten
    ]
    assert any(node["holder"] is None for node in nodes), "people does not know every seat"


def test_a_contract_owned_elsewhere_reaches_its_seat_balances(
    federation: Federation, billing: Gateway, people: People
) -> None:
    """contracts (people) -> Contract.seatBalances (billing) works and is one upstream call."""
    payload = federation.query(
        "{ contracts { id customerId name seatBalances(first: 3) { nodes { seatId } } } }"
    )

    assert billing.upstream.bodies() == [{**BASE, "limit": 3}]
    assert subgraph_calls(payload) == ["people", "billing"]
    assert payload["data"]["contracts"] == [
        {
            "id": DEMO_CONTRACT_ID,
            "customerId": DEMO_CUSTOMER_ID,
            "name": CONTRACT_NAME,
            "seatBalances": {"nodes": [{"seatId": s} for s in people.first_ten[:3]]},
        }
    ]


# --- Relay refetch and entities ---------------------------------------------------------------


def test_nodes_over_four_seats_cost_one_upstream_call(
    federation: Federation, billing: Gateway, people: People, standin_url: str
) -> None:
    """nodes(ids:) over four seat ids through the federation gateway is one upstream call."""
    team = federation.query('{ team(name: "Platform") { seats { id seatId } } }')
    ids = {seat["seatId"]: seat["id"] for seat in team["data"]["team"]["seats"]}
    wanted = people.platform[:4]
    billing.upstream.calls.clear()

    payload = federation.query(
        """query($ids: [ID!]!) {
          nodes(ids: $ids) { id ... on Seat { seatId balances { balance } holder { name } } }
        }""",
        {"ids": [ids[seat_id] for seat_id in wanted]},
    )

    assert billing.upstream.bodies() == [
        {**BASE, "seat_ids": sorted(wanted), "skip_missing_seat_ids": True, "limit": 4}
    ]
    expected = reference(standin_url, wanted)
    assert payload["data"]["nodes"] == [
        {
            "id": ids[seat_id],
            "seatId": seat_id,
            "balances": [{"balance": b["balance"]} for b in expected[seat_id]["balances"]],
            "holder": {"name": people.holders[seat_id]["name"]},
        }
        for seat_id in wanted
    ]


def test_entities_of_one_contract_cost_one_upstream_call(
    gateway: Gateway, people: People, standin_url: str
) -> None:
    """_entities sent to billing with five seats and one unknown is one call, null for it."""
    seat_ids = [*people.platform, UNKNOWN_SEAT]
    data = gateway.query(
        """query($representations: [_Any!]!) {
          _entities(representations: $representations) {
            ... on Seat { seatId customerId contractId balances { creditTypeId balance } }
          }
        }""",
        {"representations": [{"__typename": "Seat", **KEY, "seatId": s} for s in seat_ids]},
    )

    assert gateway.upstream.bodies() == [
        {**BASE, "seat_ids": sorted(seat_ids), "skip_missing_seat_ids": True, "limit": 6}
    ]
    expected = reference(standin_url, seat_ids)
    assert data["_entities"] == [
        None
        if seat_id == UNKNOWN_SEAT
        else {
            "seatId": seat_id,
            **KEY,
            "balances": [
                {"creditTypeId": b["creditTypeId"], "balance": b["balance"]}
                for b in expected[seat_id]["balances"]
            ],
        }
        for seat_id in seat_ids
    ]


def test_the_callers_token_reaches_billing_and_none_means_no_upstream_call(
    federation: Federation, billing: Gateway
) -> None:
    """The gateway forwards Authorization to billing; without it billing refuses before calling."""
    query = """query($customerId: ID!, $contractId: ID!) {
      seatBalances(customerId: $customerId, contractId: $contractId, first: 1) { nodes { seatId } }
    }"""
    federation.query(query, KEY)
    assert [call.authorization for call in billing.calls] == [f"Bearer {DEMO_TOKEN}"]
    billing.upstream.calls.clear()

    payload = federation.post(query, KEY, token=None)
    assert billing.calls == []
    assert [error["extensions"]["code"] for error in payload["errors"]] == ["UNAUTHENTICATED"]


def test_a_router_forwarding_the_callers_jwt_works_unchanged(
    node: str, standin_url: str, people: People, tmp_path: Path
) -> None:
    """Billing authenticating callers by JWT behind the federation gateway, which forwards
    `Authorization`: the caller's JWT reads its customer's seats across subgraphs, a JWT for
    another customer is FORBIDDEN, and neither costs a call it should not."""
    secret = "a-development-secret-of-32-bytes!"
    settings = Settings(
        metronome_base_url=standin_url, metronome_bearer_token=DEMO_TOKEN, jwt_secret=secret
    )

    def caller(customer_id: str) -> str:
        exp = int(time.time()) + 300
        claims = {"sub": "user-1", "exp": exp, "metronome_customer_ids": [customer_id]}
        return jwt.encode(claims, secret, algorithm="HS256")

    query = "query($name: String!) { team(name: $name) { seats { seatId holder { name } balances { balance } } } }"
    with (
        running_gateway(settings) as billing,
        harness(node, billing.url, people, tmp_path / "harness.log") as federation,
    ):
        payload = federation.post(query, {"name": "Platform"}, token=caller(DEMO_CUSTOMER_ID))
        assert "errors" not in payload, payload
        seats = payload["data"]["team"]["seats"]
        assert [seat["seatId"] for seat in seats] == people.platform
        assert all(seat["balances"] for seat in seats)
        assert [call.authorization for call in billing.calls] == [f"Bearer {DEMO_TOKEN}"]
        billing.upstream.calls.clear()

        refused = federation.post(query, {"name": "Platform"}, token=caller(OTHER_CUSTOMER_ID))
        assert {error["extensions"]["code"] for error in refused["errors"]} == {"FORBIDDEN"}
        assert billing.calls == []
