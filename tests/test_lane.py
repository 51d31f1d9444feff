"""The HTTP fast lane answers exactly what FastAPI and Strawberry's view answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, OTHER_CUSTOMER_ID
from tests.support import Gateway, running_gateway

SEATS = f"""query Seats($first: Int) {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
  contractId: "{DEMO_CONTRACT_ID}", first: $first) {{ edges {{ cursor node {{ id seatId
  commits {{ commitId ledgerEntries {{ type amount }} }} }} }} pageInfo {{ endCursor }} }} }}"""

REQUESTS: list[tuple[str, dict[str, str], bytes | Any]] = [
    ("fast path", {}, {"query": SEATS, "variables": {"first": 4}}),
    (
        "named operation",
        {},
        {"query": SEATS + " query Other { __typename }", "operationName": "Seats"},
    ),
    ("unknown operation", {}, {"query": SEATS, "operationName": "Nope"}),
    ("several operations, no name", {}, {"query": SEATS + " query Other { __typename }"}),
    ("standard path", {}, {"query": '{ __typename node(id: "x") { id } }'}),
    ("syntax error", {}, {"query": "{ seatBalances("}),
    ("validation error", {}, {"query": "{ seats }"}),
    ("bad variable", {}, {"query": SEATS, "variables": {"first": "many"}}),
    ("bad argument", {}, {"query": SEATS, "variables": {"first": 0}}),
    ("upstream 404", {}, {"query": SEATS.replace(DEMO_CUSTOMER_ID, OTHER_CUSTOMER_ID)}),
    (
        "too deep",
        {},
        {
            "query": '{ seatBalances(customerId: "a", contractId: "b") { edges { node { commits { ledgerEntries { __typename } } } } } }'
            * 1
        },
    ),
    ("extensions", {}, {"query": "{ __typename }", "extensions": {"x": 1}}),
    ("charset", {"content-type": "application/json; charset=utf-8"}, {"query": "{ __typename }"}),
    ("no query", {}, {"variables": {}}),
    ("empty query", {}, {"query": ""}),
    ("query not a string", {}, {"query": 42}),
    ("variables not an object", {}, {"query": "{ __typename }", "variables": [1]}),
    ("a batch", {}, [{"query": "{ __typename }"}]),
    ("not JSON", {}, b'{"query": '),
    ("a JSON string", {}, b'"{ __typename }"'),
    ("a mutation", {}, {"query": "mutation { __typename }"}),
    ("a number", {}, b"123"),
    ("a batch of numbers", {}, b"[1, 2]"),
]


@pytest.fixture(scope="module")
def both(standin_url: str) -> Iterator[tuple[Gateway, Gateway]]:
    with (
        running_gateway(Settings(metronome_base_url=standin_url)) as lane,
        running_gateway(Settings(metronome_base_url=standin_url, http_fast_lane=False)) as view,
    ):
        yield lane, view


def send(gateway: Gateway, headers: dict[str, str], body: Any) -> tuple[int, str, Any]:
    headers = {"Authorization": "Bearer demo-token", "content-type": "application/json", **headers}
    if isinstance(body, bytes):
        response = gateway.http.post(f"{gateway.url}/graphql", content=body, headers=headers)
    else:
        response = gateway.http.post(f"{gateway.url}/graphql", json=body, headers=headers)
    content_type = response.headers.get("content-type", "")
    payload = response.json() if content_type.startswith("application/json") else response.text
    return response.status_code, content_type.split(";")[0], _stable(payload)


def _stable(payload: Any) -> Any:
    """The answer without what differs between any two runs (error ids)."""
    return re.sub(r"[0-9a-f]{32}", "<id>", str(payload))


@pytest.mark.parametrize(("case", "headers", "body"), REQUESTS, ids=[r[0] for r in REQUESTS])
def test_the_lane_answers_as_the_view_does(
    both: tuple[Gateway, Gateway], case: str, headers: dict[str, str], body: Any
) -> None:
    """Status, content type and body are the same with and without the fast lane."""
    lane, view = both
    for _ in range(2):  # the second time, the fast path knows the document
        assert send(lane, headers, body) == send(view, headers, body), case


def test_the_lane_and_the_fast_path_do_take_the_traffic(both: tuple[Gateway, Gateway]) -> None:
    """Plain POSTs are answered by the lane, and known pure-data documents by the fast path."""
    lane, view = both
    for gateway in both:
        for _ in range(3):
            send(gateway, {}, {"query": SEATS, "variables": {"first": 2}})
    lane_metrics = lane.http.get(f"{lane.url}/metrics").text
    view_metrics = view.http.get(f"{view.url}/metrics").text
    assert 'gateway_graphql_execution_total{executor="fast-path",http="lane"}' in lane_metrics
    assert 'gateway_graphql_execution_total{executor="fast-path",http="view"}' in view_metrics
    assert 'http="lane"' not in view_metrics


@pytest.mark.parametrize("body", [b'"{ __typename }"', b"123", b"[1, 2]", b"null"])
def test_a_body_that_is_no_request_is_a_json_graphql_error(
    both: tuple[Gateway, Gateway], body: bytes
) -> None:
    """JSON that is not an operation gets 400 and a GraphQL error, never a 500 or a reset."""
    for gateway in both:
        status, content_type, payload = send(gateway, {}, body)
        assert (status, content_type) == (400, "application/json")
        assert "BAD_REQUEST" in payload and "JSON object" in payload


def test_the_views_refusals_are_json_graphql_errors(both: tuple[Gateway, Gateway]) -> None:
    """What Strawberry's view refuses in plain text leaves as a JSON error with a code."""
    for gateway in both:
        status, content_type, payload = send(gateway, {}, {"variables": {}})
        assert (status, content_type) == (400, "application/json")
        assert "No GraphQL query found" in payload and "BAD_REQUEST" in payload
