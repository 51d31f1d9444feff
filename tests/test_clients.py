"""The documented recipes of the client libraries frontends use, run against a real gateway
(issue 25): each library as its own documentation sets it up, not a hand-made request.

The Node libraries run from ``clients/`` (``npm ci --prefix clients``, a committed lockfile):
urql's persisted exchange and Apollo Client 4's persisted queries link with Code Generator's
``sha256:`` ids, Relay's compiler and network layer with ``doc_id``, graphql-request with a
client preset ``documentId``, and Apollo Client 4's error link reading ``UNAUTHENTICATED`` from
a refused JWT. Each script prints one JSON object:
what the library answered and what each HTTP request carried. Without ``clients/node_modules``
those tests are skipped, unless ``GATEWAY_REQUIRE_CLIENTS`` is set (as in ``scripts/test``),
which makes a missing install a failure. They are the process tier (they start node).

Python's ``gql`` runs here, in the fast tier: it loads ``client-schema.graphql``, validates
documents against it before sending anything, and queries the gateway over HTTP.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from gql import Client, gql
from gql.transport.httpx import HTTPXTransport
from graphql import GraphQLError

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN
from tests.support import ROOT, Gateway, node_harness, running_gateway

CLIENTS = ROOT / "clients"
CLIENT_SCHEMA = ROOT / "client-schema.graphql"
DEMO = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JWT_SECRET = "a-development-secret-of-32-bytes!"
# The packages the scripts import, as clients/package.json pins them.
PACKAGES = (
    "@apollo/client",
    "@urql/core",
    "@urql/exchange-persisted",
    "graphql-request",
    "relay-compiler",
    "relay-runtime",
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# --- the Node side: installed, or skipped (locally) / failed (CI) ----------------------------


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` executable, once ``clients/node_modules`` is installed."""
    return node_harness(
        "clients", PACKAGES, "GATEWAY_REQUIRE_CLIENTS", "run the client libraries' recipes"
    )


def run(node: str, script: str, *args: str, cwd: Path = CLIENTS) -> str:
    completed = subprocess.run(
        [node, str(CLIENTS / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr or completed.stdout
    return completed.stdout


def recipe(node: str, script: str, options: dict[str, Any]) -> Any:
    """What ``clients/<script>`` printed, run with ``options`` as its JSON argument."""
    return json.loads(run(node, script, json.dumps(options)))


def seat_ids(data: dict[str, Any]) -> list[str]:
    return [edge["node"]["seatId"] for edge in data["seatBalances"]["edges"]]


def demo_seat_ids(gateway: Gateway, first: int = 2) -> list[str]:
    """The demo contract's first seats, asked of the gateway directly (for comparison)."""
    query = """query($customerId: ID!, $contractId: ID!, $first: Int!) {
      seatBalances(customerId: $customerId, contractId: $contractId, first: $first) {
        edges { node { seatId } } } }"""
    data = gateway.query(query, {**DEMO, "first": first})
    gateway.upstream.calls.clear()
    return seat_ids(data)


# --- APQ with Code Generator's sha256: ids: urql's persisted exchange, Apollo's link ------------


@pytest.mark.process  # starts node
@pytest.mark.parametrize(
    ("script", "method", "registered_by"),
    [
        ("urql-apq.mjs", "POST", "POST"),
        ("urql-apq.mjs", "GET", "GET"),  # preferGetForPersistedQueries: the text in the URL too
        ("apollo-apq.mjs", "POST", "POST"),
        ("apollo-apq.mjs", "GET", "POST"),  # useGETForHashedQueries: hashes only
    ],
    ids=["urql-post", "urql-get", "apollo-post", "apollo-get"],
)
def test_apq_clients_register_a_sha256_prefixed_hash_then_send_it_alone(
    settings: Settings, node: str, script: str, method: str, registered_by: str
) -> None:
    """urql's persistedExchange and Apollo Client 4's PersistedQueryLink, hashing as Code
    Generator's client preset ids read (``sha256:<hex>``): the first page load's hash alone is
    PersistedQueryNotFound (no billing call), its retry with the text registers it, and the
    next page load's hash alone answers; over POST, and over GET as each library offers it."""
    with running_gateway(settings) as gateway:
        expected = demo_seat_ids(gateway)
        printed = recipe(
            node,
            script,
            {
                "url": f"{gateway.url}/graphql",
                "token": DEMO_TOKEN,
                "variables": DEMO,
                "get": method == "GET",
            },
        )
        calls = len(gateway.calls)
    for result in printed["results"]:
        assert result["error"] is None, result
        assert seat_ids(result["data"]) == expected
    miss, registration, hit = printed["sent"]
    text = registration["params"]["query"]
    persisted = {"version": 1, "sha256Hash": f"sha256:{sha256(text)}"}
    assert [request["method"] for request in printed["sent"]] == [method, registered_by, method]
    assert "query" not in miss["params"] and "query" not in hit["params"]
    for request in printed["sent"]:
        # urql marks its retry {"miss": true}; the gateway reads only version and sha256Hash.
        sent = request["params"]["extensions"]["persistedQuery"]
        assert {name: sent[name] for name in persisted} == persisted
    # Both ask for graphql-response+json: the miss is a request error, a 400 without data.
    assert (miss["status"], miss["contentType"]) == (400, GRAPHQL_RESPONSE_JSON)
    assert (registration["status"], hit["status"]) == (200, 200)
    assert calls == 2  # the registration's and the hit's; the miss asked billing nothing


# --- Relay: relay-compiler's persisted queries file, doc_id from the network layer -------------


def compile_relay(node: str, directory: Path) -> Path:
    """Runs relay-compiler on ``clients/relay`` (its config, its source, ``client-schema.graphql``
    as README's Relay line loads it) in ``directory``; returns the persisted queries file."""
    # Whatever a compiler run by hand in clients/relay left there is not copied.
    outputs = shutil.ignore_patterns("__generated__", "persisted_queries.json", "*.graphql")
    shutil.copytree(CLIENTS / "relay", directory, ignore=outputs, dirs_exist_ok=True)
    shutil.copy(CLIENT_SCHEMA, directory / "client-schema.graphql")
    (directory / "__generated__").mkdir()
    (directory / "persisted_queries.json").write_text("{}")  # relay-compiler fills it in
    (directory / "package.json").write_text('{"type": "module"}')  # its artifacts are ESM
    run(node, "node_modules/relay-compiler/cli.js", cwd=directory)
    return directory / "persisted_queries.json"


@pytest.mark.process  # starts node
def test_relay_sends_doc_id_for_the_documents_relay_compiler_persisted(
    settings: Settings, node: str, tmp_path: Path
) -> None:
    """relay-compiler's ``persistConfig`` file (``{"<md5>": "<text>"}``, as written) is the
    gateway's GATEWAY_TRUSTED_DOCUMENTS, trusted-only; Relay's network layer from its guide
    sends ``{"doc_id", "variables"}`` and the store holds the seats, one billing call."""
    manifest = compile_relay(node, tmp_path)
    [(doc_id, text)] = json.loads(manifest.read_text()).items()
    assert doc_id == hashlib.md5(text.encode()).hexdigest()  # noqa: S324 (Relay's id, not security)
    configured = settings.model_copy(
        update={"trusted_documents": manifest, "trusted_documents_only": True}
    )
    variables = {**DEMO, "first": 2}
    with running_gateway(configured) as gateway:
        printed = recipe(
            node,
            "relay.mjs",
            {
                "url": f"{gateway.url}/graphql",
                "token": DEMO_TOKEN,
                "artifact": str(tmp_path / "__generated__" / "RelaySeatsQuery.graphql.js"),
                "variables": variables,
            },
        )
        calls = len(gateway.calls)
        # The same gateway refuses free-form text: only the compiled documents run.
        refused = gateway.post("{ __typename }").json()
    [request] = printed["sent"]
    assert request["params"] == {"doc_id": doc_id, "variables": variables}
    assert request["status"] == 200
    seats = [edge["node"] for edge in printed["data"]["seatBalances"]["edges"]]
    assert len(seats) == 2 and all(seat["id"] and seat["balances"] is not None for seat in seats)
    assert calls == 1
    assert refused["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"


# --- graphql-request: Code Generator's client preset documentId --------------------------------


@pytest.mark.process  # starts node
def test_graphql_request_sends_a_client_preset_document_id(
    settings: Settings, node: str, tmp_path: Path
) -> None:
    """graphql-request sends the preset's document id (``sha256:<hex>``) as ``documentId`` and
    no text; the gateway, trusted-only on the preset's ``persisted-documents.json``, answers."""
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(run(node, "graphql-request.mjs", "manifest"))
    [(document_id, text)] = json.loads(manifest.read_text()).items()
    assert document_id == f"sha256:{sha256(text)}"
    configured = settings.model_copy(
        update={"trusted_documents": manifest, "trusted_documents_only": True}
    )
    with running_gateway(configured) as gateway:
        expected = seat_ids(gateway.query(text, DEMO))
        gateway.upstream.calls.clear()
        printed = recipe(
            node,
            "graphql-request.mjs",
            {"url": f"{gateway.url}/graphql", "token": DEMO_TOKEN, "variables": DEMO},
        )
        calls = len(gateway.calls)
    [request] = printed["sent"]
    assert request["params"] == {
        "documentId": document_id,
        "variables": DEMO,
        "operationName": "GraphqlRequestSeats",
    }
    assert (request["status"], request["contentType"]) == (200, GRAPHQL_RESPONSE_JSON)
    assert seat_ids(printed["data"]) == expected
    assert calls == 1


# --- Apollo Client 4: the error link sees UNAUTHENTICATED --------------------------------------


def hs256(secret: str = JWT_SECRET, **claims: Any) -> str:
    payload = {
        "sub": "auth0|ada",
        "exp": int(time.time()) + 300,
        "metronome_customer_ids": [DEMO_CUSTOMER_ID],
        **claims,
    }
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.process  # starts node
def test_apollo_clients_error_link_sees_unauthenticated_for_a_refused_jwt(
    standin_url: str, node: str
) -> None:
    """Apollo Client 4 against a gateway whose callers authenticate by HS256 JWT: a valid token
    reads the seats; an expired, forged or unreadable one is refused with a 401 that Apollo
    reads as GraphQL errors (CombinedGraphQLErrors, not a ServerError) whose code the error
    link matches; no token at all is a field error with the same code. Only the valid token
    reaches billing, with the gateway's own billing token."""
    jwt_mode = Settings(
        metronome_base_url=standin_url,
        metronome_bearer_token=DEMO_TOKEN,
        jwt_secret=JWT_SECRET,
    )
    tokens = {
        "valid": hs256(),
        "expired": hs256(exp=int(time.time()) - 120),  # past GATEWAY_JWT_LEEWAY's 30 s
        "forged": hs256("another-secret-that-is-32-bytes-long"),
        "unreadable": "not-a-jwt",
        "absent": None,
    }
    with running_gateway(jwt_mode) as gateway:
        printed = recipe(
            node,
            "apollo-auth.mjs",
            {"url": f"{gateway.url}/graphql", "tokens": tokens, "variables": DEMO},
        )
        calls = gateway.calls
    valid = printed.pop("valid")
    assert valid["error"] is None and valid["link"] == []
    assert len(valid["data"]["seatBalances"]["edges"]) == 2
    unauthenticated = {
        "name": "CombinedGraphQLErrors",
        "graphQLErrors": True,
        "serverError": False,
        "codes": ["UNAUTHENTICATED"],
    }
    for case, result in printed.items():
        assert result["data"] is None, case
        assert result["error"] == unauthenticated, case
        assert result["link"] == [{**unauthenticated, "signIn": True}], case
        [request] = result["sent"]
        refused = case != "absent"  # no token: the field answers UNAUTHENTICATED, status 200
        assert request["status"] == (401 if refused else 200), case
        assert request["contentType"] == GRAPHQL_RESPONSE_JSON, case
    assert [call.authorization for call in calls] == [f"Bearer {DEMO_TOKEN}"]


# --- Python's gql: the client schema for local validation, queries over HTTP -------------------


def test_gql_validates_against_client_schema_graphql_and_queries_over_http(
    gateway: Gateway,
) -> None:
    """gql's Client loads ``client-schema.graphql`` as README says (``schema=`` its text),
    refuses a document that does not fit it before sending anything, and runs one that does
    over HTTP (its httpx transport)."""
    sent: list[httpx.Request] = []
    transport = HTTPXTransport(
        url=f"{gateway.url}/graphql",
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        event_hooks={"request": [sent.append]},
    )
    client = Client(schema=CLIENT_SCHEMA.read_text(), transport=transport)
    seats = gql(
        """query GqlSeats($customerId: ID!, $contractId: ID!) {
          seatBalances(customerId: $customerId, contractId: $contractId, first: 3) {
            edges { node { id seatId balances { creditTypeId balance startingBalance } } }
            pageInfo { hasNextPage endCursor }
          }
        }"""
    )
    seats.variable_values = DEMO
    misspelt = gql(
        """query Misspelt($customerId: ID!, $contractId: ID!) {
          seatBalances(customerId: $customerId, contractId: $contractId) { edges { seat } }
        }"""
    )
    misspelt.variable_values = DEMO
    with client as session:
        with pytest.raises(GraphQLError, match="Cannot query field 'seat' on type 'SeatEdge'"):
            session.execute(misspelt)
        assert sent == []  # refused by the local schema: nothing went to the gateway
        data = session.execute(seats)
    assert len(sent) == 1
    assert len(data["seatBalances"]["edges"]) == 3
    assert data["seatBalances"]["pageInfo"]["hasNextPage"] is True
    assert len(gateway.calls) == 1
