"""GraphQL over HTTP as clients speak it now: the response media type is negotiated by
``Accept``, and under ``application/graphql-response+json`` the status code says whether the
request was executed at all.

The last test runs graphql-http's own server audit (``audit/``, ``npm ci --prefix audit``)
against a real gateway. Without ``audit/node_modules`` it is skipped, unless
``GATEWAY_REQUIRE_AUDIT`` is set (as in ``scripts/test``), which makes a missing install a failure.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from gateway.config import Settings
from gateway.schema.ids import global_id
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN
from tests.support import ROOT, Gateway, gateway_process, node_harness, running_gateway

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
MEDIA_TYPES = [GRAPHQL_RESPONSE_JSON, JSON]
# What Apollo Client 4, urql and graphql-http's client send.
MODERN_ACCEPT = f"{GRAPHQL_RESPONSE_JSON}, {JSON};q=0.9"

SEATS = (
    f'seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", '
    "first: 1) { edges { cursor } }"
)


def post(
    gateway: Gateway,
    body: Any,
    accept: str | None,
    *,
    token: str | None = DEMO_TOKEN,
) -> httpx.Response:
    """``body`` as the JSON of a POST to /graphql, with ``Accept`` when given."""
    headers = {"content-type": "application/json"}
    if accept is not None:
        headers["accept"] = accept
    if token:
        headers["authorization"] = f"Bearer {token}"
    return gateway.http.post(f"{gateway.url}/graphql", content=json.dumps(body), headers=headers)


def get(gateway: Gateway, params: dict[str, str], accept: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {DEMO_TOKEN}"}
    if accept is not None:
        headers["accept"] = accept
    return gateway.http.get(f"{gateway.url}/graphql", params=params, headers=headers)


def varies_on_accept(response: httpx.Response) -> bool:
    values = ",".join(response.headers.get_list("vary"))
    return "accept" in {value.strip().lower() for value in values.split(",")}


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json()["errors"]]


def assert_request_error(response: httpx.Response, media_type: str, code: str) -> None:
    """A request error: 400 without `data` under graphql-response+json, 200 with a null
    `data` under application/json; in the negotiated media type, varying on Accept."""
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    assert codes(response) == [code], response.text
    if media_type == GRAPHQL_RESPONSE_JSON:
        assert response.status_code == 400
        assert "data" not in response.json()
    else:
        assert response.status_code == 200
        assert response.json()["data"] is None


# --- negotiation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (MODERN_ACCEPT, GRAPHQL_RESPONSE_JSON),
        (GRAPHQL_RESPONSE_JSON, GRAPHQL_RESPONSE_JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE_JSON};q=0.5", JSON),
        (JSON, JSON),
        (f"{GRAPHQL_RESPONSE_JSON};q=0, {JSON}", JSON),
        (f"{JSON};q=0, */*", GRAPHQL_RESPONSE_JSON),
        (f"{JSON}, {GRAPHQL_RESPONSE_JSON}", GRAPHQL_RESPONSE_JSON),
        (f"{JSON};charset=utf-8, */*;q=0.1", JSON),
        (f"text/html, {GRAPHQL_RESPONSE_JSON};q=0.8", GRAPHQL_RESPONSE_JSON),
        ("*/*", JSON),
        ("application/*", JSON),
        ("", JSON),
        (None, JSON),
    ],
)
def test_the_response_media_type_follows_accept(
    gateway: Gateway, accept: str | None, media_type: str
) -> None:
    """Accept's qualities pick the media type; a tie between the two named goes to
    graphql-response+json, a wildcard or no Accept at all to application/json."""
    response = post(gateway, {"query": "{ __typename }"}, accept)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "accept",
    ["text/html", "application/xml, text/plain;q=0.5", f"{JSON};q=0, {GRAPHQL_RESPONSE_JSON};q=0"],
)
def test_an_accept_that_allows_neither_is_a_406(gateway: Gateway, accept: str) -> None:
    """A client that accepts neither JSON media type gets a 406 GraphQL error, not a run."""
    response = post(gateway, {"query": f"{{ {SEATS} }}"}, accept)
    assert response.status_code == 406
    assert response.headers["content-type"] == JSON
    assert varies_on_accept(response)
    assert codes(response) == ["NOT_ACCEPTABLE"]
    assert "Accept" in response.json()["errors"][0]["message"]
    assert gateway.calls == []


def test_graphiql_is_still_served_to_a_browser_that_accepts_only_html(gateway: Gateway) -> None:
    """GET /graphql for HTML is GraphiQL, not a 406, and says it varies on Accept."""
    response = gateway.http.get(f"{gateway.url}/graphql", headers={"accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert varies_on_accept(response)


# --- statuses per error class ----------------------------------------------------------------


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"query": "{ seatBalances("}, "GRAPHQL_PARSE_FAILED"),
        ({"query": "{ seats { id } }"}, "GRAPHQL_VALIDATION_FAILED"),
        (
            {
                "query": f"query Q($first: Int!) {{ {SEATS.replace('first: 1', 'first: $first')} }}",
                "variables": {"first": "ten"},
            },
            "BAD_USER_INPUT",
        ),
        (
            {
                "query": f"query Q($first: Int!) {{ {SEATS.replace('first: 1', 'first: $first')} }}",
                "variables": {"first": None},
            },
            "BAD_USER_INPUT",
        ),
    ],
    ids=["parse", "validation", "variable-type", "variable-null"],
)
def test_request_errors_are_400_only_under_graphql_response_json(
    gateway: Gateway, media_type: str, body: dict[str, Any], code: str
) -> None:
    """A document that does not parse or validate, or variables that do not coerce: 400 and
    no `data` under graphql-response+json, 200 with `data: null` under application/json."""
    response = post(gateway, body, media_type)
    assert_request_error(response, media_type, code)
    assert gateway.calls == []


@pytest.fixture(scope="module")
def shallow(standin_url: str) -> Iterator[Gateway]:
    """A gateway whose depth limit a short document crosses."""
    with running_gateway(Settings(metronome_base_url=standin_url, max_depth=3)) as gateway:
        yield gateway


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_a_limit_refusal_is_a_request_error(shallow: Gateway, media_type: str) -> None:
    """An operation over a limit is refused before execution: 400 without `data` under
    graphql-response+json, 200 under application/json, no upstream call either way."""
    shallow.upstream.calls.clear()
    query = f"{{ {SEATS.replace('{ cursor }', '{ node { balances { balance } } }')} }}"
    response = post(shallow, {"query": query}, media_type)
    assert_request_error(response, media_type, "MAX_DEPTH_LIMIT")
    assert shallow.calls == []


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_an_unknown_operation_name_is_a_400_under_both(gateway: Gateway, media_type: str) -> None:
    """An operationName the document does not define is refused with a 400 under both media
    types (the view refuses it before execution), in the negotiated media type."""
    body = {"query": "query Mine { __typename }", "operationName": "Theirs"}
    response = post(gateway, body, media_type)
    assert response.status_code == 400
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    assert codes(response) == ["BAD_REQUEST"]
    assert "Theirs" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_a_field_error_keeps_200_and_the_partial_data(gateway: Gateway, media_type: str) -> None:
    """UNAUTHENTICATED from a nullable field is a field error: 200 with the data that could be
    resolved, under both media types, and no upstream call without a token."""
    seat = gateway.query(f"{{ {SEATS.replace('cursor', 'node { id }')} }}")
    seat_id = seat["seatBalances"]["edges"][0]["node"]["id"]
    gateway.upstream.calls.clear()
    query = "query Q($id: ID!) { __typename node(id: $id) { id } }"
    response = post(gateway, {"query": query, "variables": {"id": seat_id}}, media_type, token=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    payload = response.json()
    assert payload["data"] == {"__typename": "Query", "node": None}
    [error] = payload["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["node"]
    assert gateway.calls == []


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_a_field_error_that_nulls_all_data_is_still_200(gateway: Gateway, media_type: str) -> None:
    """A field error on the non-null `nodes` nulls `data`, but `data` is there and the status
    is 200: execution ran, so it is not a request error under either media type."""
    seat_id = global_id("Seat", DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, "someone@example.com")
    query = f'{{ __typename nodes(ids: ["{seat_id}"]) {{ id }} }}'
    response = post(gateway, {"query": query}, media_type, token=None)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    payload = response.json()
    assert "data" in payload
    assert payload["data"] is None
    assert [(e["extensions"]["code"], e["path"]) for e in payload["errors"]] == [
        ("UNAUTHENTICATED", ["nodes"])
    ]
    assert gateway.calls == []


@pytest.fixture(scope="module")
def failing_upstream() -> Iterator[Gateway]:
    """A gateway whose billing API answers every call with a 503, retries off."""
    settings = Settings(metronome_base_url="http://billing.invalid", upstream_max_retries=0)
    transport = httpx.MockTransport(lambda request: httpx.Response(503))
    with running_gateway(settings, transport) as gateway:
        yield gateway


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_an_upstream_fault_keeps_200_under_both(failing_upstream: Gateway, media_type: str) -> None:
    """UPSTREAM_UNAVAILABLE is a field error: 200 with `data` under both media types."""
    failing_upstream.upstream.calls.clear()
    response = post(failing_upstream, {"query": f"{{ {SEATS} }}"}, media_type)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    assert "data" in response.json()  # null: `seatBalances` is non-null
    assert codes(response) == ["UPSTREAM_UNAVAILABLE"]
    assert len(failing_upstream.calls) == 1


# --- parameters of the wrong type, refusals --------------------------------------------------


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"query": "{ __typename }", "operationName": {"name": "Q"}}, "operationName"),
        ({"query": "{ __typename }", "operationName": ["Q"]}, "operationName"),
        ({"query": "{ __typename }", "extensions": "persisted"}, "extensions"),
        ({"query": "{ __typename }", "extensions": [{"a": 1}]}, "extensions"),
        ({"query": "{ __typename }", "extensions": 0}, "extensions"),
        ({"query": "{ __typename }", "variables": ["x"]}, "variables"),
        ({"query": {"text": "{ __typename }"}}, "query"),
    ],
    ids=[
        "operationName-object",
        "operationName-list",
        "extensions-string",
        "extensions-list",
        "extensions-number",
        "variables-list",
        "query-object",
    ],
)
def test_a_parameter_of_the_wrong_type_is_a_400_under_both(
    gateway: Gateway, media_type: str, body: dict[str, Any], named: str
) -> None:
    """A POST whose parameter has the wrong JSON type is a 400 naming it, in the negotiated
    media type, whichever media type the client accepts."""
    response = post(gateway, body, media_type)
    assert response.status_code == 400
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    assert codes(response) == ["BAD_REQUEST"]
    assert f"`{named}`" in response.json()["errors"][0]["message"]
    assert gateway.calls == []


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
@pytest.mark.parametrize(
    ("name", "value"),
    [("extensions", '"persisted"'), ("extensions", "[1]"), ("variables", "5")],
)
def test_a_get_parameter_of_the_wrong_type_is_a_400_under_both(
    gateway: Gateway, media_type: str, name: str, value: str
) -> None:
    """A GET whose `variables` or `extensions` is JSON but not an object is a 400 naming it."""
    response = get(gateway, {"query": "{ __typename }", name: value}, media_type)
    assert response.status_code == 400
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    assert codes(response) == ["BAD_REQUEST"]
    assert f"`{name}`" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_a_request_that_names_no_document_is_a_400_naming_what_it_may_carry(
    gateway: Gateway, media_type: str
) -> None:
    """A POST or a GET with variables but no `query`, `documentId`, `doc_id` or persisted
    query hash is a 400 whose message names each of those, so that a client speaking another
    protocol (Relay's `doc_id`, APQ) learns what the gateway reads."""
    for response in (
        post(gateway, {"variables": {"first": 1}}, media_type),
        post(gateway, {"query": None, "extensions": {}}, media_type),
        get(gateway, {"variables": "{}"}, media_type),
    ):
        assert response.status_code == 400
        assert response.headers["content-type"] == media_type
        assert varies_on_accept(response)
        assert codes(response) == ["BAD_REQUEST"]
        message = response.json()["errors"][0]["message"]
        for field in ("`query`", "`documentId`", "`doc_id`", "`extensions.persistedQuery`"):
            assert field in message, message
    assert gateway.calls == []


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_refusals_keep_their_status_and_take_the_negotiated_type(
    gateway: Gateway, media_type: str
) -> None:
    """A body that is not JSON and a batch of more than GATEWAY_MAX_BATCH operations are 400
    under both media types, answered as one GraphQL error in the negotiated media type."""
    headers = {"content-type": "application/json", "accept": media_type}
    not_json = gateway.http.post(f"{gateway.url}/graphql", content=b'{"query', headers=headers)
    batch = post(gateway, [{"query": "{ __typename }"}] * 11, media_type)
    for response in (not_json, batch):
        assert response.status_code == 400
        assert response.headers["content-type"] == media_type
        assert varies_on_accept(response)
        assert codes(response) == ["BAD_REQUEST"]


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_another_method_is_a_405_graphql_error(gateway: Gateway, media_type: str) -> None:
    """PUT /graphql is a 405 naming the allowed methods, as a GraphQL error in the negotiated
    media type that varies on Accept, like every other answer of /graphql."""
    response = gateway.http.put(f"{gateway.url}/graphql", headers={"accept": media_type})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == media_type
    assert varies_on_accept(response)
    assert codes(response) == ["BAD_REQUEST"]


# --- GET -------------------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", MEDIA_TYPES)
def test_get_queries_negotiate_like_posts(gateway: Gateway, media_type: str) -> None:
    """A query over GET answers in the negotiated media type; its request errors take the
    same statuses as over POST; an empty `variables` and a null `extensions` are none."""
    params = {"query": "{ __typename }", "variables": "", "extensions": "null"}
    ok = get(gateway, params, media_type)
    assert ok.status_code == 200
    assert ok.headers["content-type"] == media_type
    assert varies_on_accept(ok)
    assert ok.json() == {"data": {"__typename": "Query"}}
    broken = get(gateway, {"query": "{ __typename"}, media_type)
    assert_request_error(broken, media_type, "GRAPHQL_PARSE_FAILED")


# --- not offered yet (README: "Not offered yet") ----------------------------------------------

NOT_OFFERED = ROOT.joinpath("README.md").read_text().partition("### Not offered yet")[2]
# What Apollo Client sends with an operation that uses @defer.
DEFER_ACCEPT = f"multipart/mixed;deferSpec=20220824,{GRAPHQL_RESPONSE_JSON},{JSON};q=0.9"


LIVE = (
    f'subscription Live {{ seatBalanceUpdates(customerId: "{DEMO_CUSTOMER_ID}", '
    f'contractId: "{DEMO_CONTRACT_ID}") {{ reason seats {{ seatId }} }} }}'
)


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("accept", MEDIA_TYPES)
def test_a_subscription_over_plain_http_is_refused_before_anything_runs(
    gateway: Gateway, method: str, accept: str
) -> None:
    """A subscription is an event stream or a WebSocket operation; sent as a plain request it
    is a request error naming both transports, not a query run once (which would start a live
    listing that nobody reads): no upstream call, no subscription left open."""
    if method == "POST":
        response = post(gateway, {"query": LIVE}, accept)
    else:
        response = get(gateway, {"query": LIVE}, accept)
    assert response.status_code == (400 if accept == GRAPHQL_RESPONSE_JSON else 200)
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "OPERATION_NOT_ALLOWED"
    assert "text/event-stream" in error["message"] and "graphql-transport-ws" in error["message"]
    assert gateway.calls == []
    metrics = gateway.http.get(f"{gateway.url}/metrics").text
    assert "gateway_live_subscriptions 0.0" in metrics


@pytest.mark.parametrize(
    ("query", "accept", "status", "message"),
    [
        (
            f"query Q {{ ... @defer {{ {SEATS} }} }}",
            DEFER_ACCEPT,
            400,
            "Unknown directive '@defer'.",
        ),
        (
            f"query Q {{ {SEATS.replace('edges', 'edges @stream')} }}",
            MODERN_ACCEPT,
            400,
            "Unknown directive '@stream'.",
        ),
        (f"{{ {SEATS} }}", "multipart/mixed", 406, None),
    ],
    ids=["defer", "stream", "multipart"],
)
def test_what_is_not_offered_yet_is_refused_as_the_readme_says(
    gateway: Gateway, query: str, accept: str, status: int, message: str | None
) -> None:
    """`@defer`, `@stream` and the multipart transport are refused before anything runs, with
    the message the README's "Not offered yet" quotes (subscriptions are offered: "Live
    balances")."""
    response = post(gateway, {"query": query}, accept)
    assert response.status_code == status, response.text
    [error] = response.json()["errors"]
    if message is None:
        assert error["extensions"]["code"] == "NOT_ACCEPTABLE"
    else:
        assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
        assert error["message"] == message
        assert " ".join(message.split()) in " ".join(NOT_OFFERED.split()), (
            "README's 'Not offered yet' should quote this refusal"
        )
    assert gateway.calls == []


def websocket_handshake(url: str, subprotocol: str, origin: str | None = None) -> bytes:
    """The first bytes `gateway serve` answers a WebSocket handshake on /graphql with."""
    address = urlsplit(url)
    handshake = (
        "GET /graphql HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n"
        + (f"Origin: {origin}\r\n" if origin else "")
        + "\r\n"
    ).encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        sock.sendall(handshake)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        # What follows the handshake (a close frame, when the connection is refused after it).
        sock.settimeout(2)
        with contextlib.suppress(TimeoutError):
            answer += sock.recv(65536)
        return answer


@pytest.mark.process  # starts another program
def test_gateway_serve_speaks_graphql_transport_ws_and_refuses_the_legacy_protocol() -> None:
    """`gateway serve` (uvicorn with WebSocket support) accepts graphql-transport-ws on
    /graphql; the legacy subscriptions-transport-ws (subprotocol `graphql-ws`) is closed with
    4406 at once, and a page on a foreign origin is refused, as the README's "Live balances"
    and "Not offered yet" say."""
    assert "graphql-transport-ws" in " ".join(NOT_OFFERED.split())
    with gateway_process() as (_, url, _output):
        accepted = websocket_handshake(url, "graphql-transport-ws")
        legacy = websocket_handshake(url, "graphql-ws")
        foreign = websocket_handshake(url, "graphql-transport-ws", origin="https://evil.example")
    assert accepted.startswith(b"HTTP/1.1 101"), accepted[:200]
    assert b"sec-websocket-protocol: graphql-transport-ws" in accepted.lower()
    frames = legacy.partition(b"\r\n\r\n")[2]
    # Accepted without a subprotocol, then closed: opcode 8 with code 4406.
    assert frames[:1] == b"\x88" and frames[2:4] == (4406).to_bytes(2, "big"), legacy[:300]
    assert not foreign.startswith(b"HTTP/1.1 101"), foreign[:200]


# --- graphql-http's audit ----------------------------------------------------------------------

AUDIT = ROOT / "audit"


@pytest.fixture(scope="module")
def node() -> str:
    """The ``node`` executable, once ``audit/node_modules`` is installed."""
    return node_harness(
        "audit", ("graphql-http",), "GATEWAY_REQUIRE_AUDIT", "run graphql-http's audit"
    )


@pytest.mark.process  # starts another program
def test_graphql_http_audit_passes_without_warnings(gateway: Gateway, node: str) -> None:
    """graphql-http's server audit finds no error, no warning and no notice (README:
    "GraphQL over HTTP")."""
    completed = subprocess.run(
        [node, str(AUDIT / "audit.mjs"), f"{gateway.url}/graphql"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    assert report["failures"] == [], json.dumps(report["failures"], indent=2)
    assert report["counts"] == {"ok": report["total"], "notice": 0, "warn": 0, "error": 0}
    assert report["total"] >= 61  # graphql-http 1.23.1 runs 61 audits


@pytest.mark.parametrize(
    "batch, parameter",
    [
        ([{"query": "{ __typename }", "extensions": "x"}], "extensions"),
        ([{"query": 5}], "query"),
        ([{"query": "{ __typename }", "variables": "x"}], "variables"),
        (
            [{"query": "{ __typename }"}, {"query": "{ __typename }", "operationName": 1}],
            "operationName",
        ),
        ([], "batch"),
    ],
    ids=["extensions-string", "query-number", "variables-string", "operationName-number", "empty"],
)
def test_a_batch_item_of_the_wrong_shape_is_a_400(
    gateway: Gateway, batch: list[Any], parameter: str
) -> None:
    """Every operation of a batch is held to the single operation's rules: a parameter of the
    wrong type (or an empty batch) is a 400 BAD_REQUEST naming it, not a 500."""
    response = gateway.http.post(f"{gateway.url}/graphql", json=batch)
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert parameter in error["message"]
    assert gateway.calls == []


def test_every_answer_varies_on_authorization(gateway: Gateway) -> None:
    """An answer is one caller's: GET and POST answers say Vary: Authorization, so that a
    browser's own cache never hands one user's data to the next user of the profile."""
    query = "{ __typename }"
    for response in (
        gateway.http.get(f"{gateway.url}/graphql", params={"query": query}),
        gateway.http.post(f"{gateway.url}/graphql", json={"query": query}),
    ):
        values = ",".join(response.headers.get_list("vary"))
        assert "authorization" in {value.strip().lower() for value in values.split(",")}


# What urql's fetch sends with every query: JSON first, then the streaming types it can read.
URQL_ACCEPT = (
    "application/graphql-response+json, application/graphql+json, application/json, "
    "text/event-stream, multipart/mixed"
)


@pytest.mark.parametrize(
    ("accept", "streamed"),
    [
        (URQL_ACCEPT, False),
        ("text/event-stream", True),
        (f"text/event-stream, {JSON};q=0.5", True),
        (f"{JSON}, text/event-stream;q=0.5", False),
    ],
    ids=["urql", "event-stream-only", "event-stream-preferred", "json-preferred"],
)
def test_a_query_is_an_event_stream_only_for_a_client_that_prefers_one(
    gateway: Gateway, accept: str, streamed: bool
) -> None:
    """A query is answered as JSON to a client that accepts JSON as much as an event stream
    (urql lists both on every request; as a stream its answers would lose compression, caching
    and status codes), and as graphql-sse's stream to one that prefers it."""
    response = post(gateway, {"query": f"{{ {SEATS} }}"}, accept)
    assert response.status_code == 200
    if streamed:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert "event: next" in response.text and "event: complete" in response.text
    else:
        assert response.headers["content-type"] in (GRAPHQL_RESPONSE_JSON, JSON)
        assert response.json()["data"]["seatBalances"]["edges"]


def test_an_unknown_persisted_query_asked_as_an_event_stream_is_answered_not_streamed(
    gateway: Gateway,
) -> None:
    """An APQ hash the gateway does not know, from a client that prefers an event stream: the
    usual PERSISTED_QUERY_NOT_FOUND answer (the client resends the query), not a failed
    stream."""
    body = {
        "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "ab" * 32}},
    }
    response = post(gateway, body, "text/event-stream")
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert gateway.calls == []
