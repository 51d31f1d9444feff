"""Abusive operations are refused before any upstream call, each with its own code."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from graphql import get_introspection_query

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN
from tests.support import Gateway, running_gateway

ARGS = f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}"'


@pytest.fixture(scope="module")
def strict(standin_url: str) -> Iterator[Gateway]:
    """A gateway with small limits, so each can be crossed with a short document."""
    settings = Settings(
        metronome_base_url=standin_url,
        max_depth=5,
        max_aliases=3,
        max_tokens=300,
        max_query_bytes=2000,
        max_upstream_calls=3,
        max_body_bytes=4000,
    )
    with running_gateway(settings) as gateway:
        yield gateway


@pytest.fixture
def limited(strict: Gateway) -> Gateway:
    strict.upstream.calls.clear()
    return strict


def refused(
    gateway: Gateway, query: str, code: str, variables: dict[str, Any] | None = None
) -> str:
    errors = gateway.errors(query, variables)
    assert [error["extensions"]["code"] for error in errors] == [code], errors
    assert gateway.calls == []
    return str(errors[0]["message"])


def test_a_query_within_every_limit_runs(limited: Gateway) -> None:
    """Five levels, three aliases and three upstream fields are allowed by these limits."""
    data = limited.query(
        f"""{{ a: seatBalances({ARGS}, first: 2) {{ nodes {{ commits {{ ledgerEntries {{ type }} }} }} }}
             b: seatBalances({ARGS}, first: 3) {{ nodes {{ seatId }} }}
             c: seatBalances({ARGS}, first: 4) {{ nodes {{ seatId }} }} }}"""
    )
    assert [len(data[k]["nodes"]) for k in "abc"] == [2, 3, 4]


def test_too_deep_is_refused(limited: Gateway) -> None:
    """Depth counts through named and inline fragments; six levels against five are refused."""
    message = refused(
        limited,
        f"""{{ seatBalances({ARGS}) {{ ...Edges }} }}
        fragment Edges on SeatConnection {{ edges {{ node {{ ... on Seat {{ commits {{ ledgerEntries {{ type }} }} }} }} }} }}""",
        "MAX_DEPTH_LIMIT",
    )
    assert "6 levels deep" in message and "at most 5" in message


def test_too_many_aliases_are_refused(limited: Gateway) -> None:
    """Aliases are counted in fragments too; four against three are refused."""
    message = refused(
        limited,
        f"""{{ seatBalances({ARGS}) {{ nodes {{ a: seatId b: seatId ...F }} }} }}
        fragment F on Seat {{ c: seatId d: id }}""",
        "MAX_ALIASES_LIMIT",
    )
    assert "4 aliases" in message


def test_fragment_fan_out_is_counted_without_expanding_it(limited: Gateway) -> None:
    """Fragments that spread each other twice per level are measured in linear time."""
    levels = 14
    fragments = (
        " ".join(f"fragment F{i} on Seat {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
        + f" fragment F{levels} on Seat {{ x: seatId }}"
    )
    query = f"{{ seatBalances({ARGS}) {{ nodes {{ ...F0 }} }} }} {fragments}"
    message = refused(limited, query, "MAX_ALIASES_LIMIT")
    assert str(2**levels) in message


def test_too_many_upstream_fields_are_refused(limited: Gateway) -> None:
    """More fields that call the billing API than the operation budget allows."""
    query = (
        "{ "
        + " ".join(
            f"s{i}: seatBalances({ARGS}, first: {i + 1}) {{ nodes {{ seatId }} }}" for i in range(4)
        )
        + " }"
    )
    with_aliases = refused(
        limited, query.replace("s3: ", "").replace("s2: ", "x: "), "MAX_UPSTREAM_CALLS_LIMIT"
    )
    assert "4 calls" in with_aliases


def test_too_many_tokens_are_refused(limited: Gateway) -> None:
    """A document longer than the token limit stops the parser early."""
    query = "{ " + " ".join("a" for _ in range(400)) + " }"  # 800 bytes, 402 tokens
    refused(limited, query, "MAX_TOKENS_LIMIT")


def test_too_large_a_document_is_refused(limited: Gateway) -> None:
    """A document over the size limit is refused before it is parsed."""
    query = "{ __typename }" + " " * 2500
    message = refused(limited, query, "MAX_QUERY_SIZE_LIMIT")
    assert "2000 bytes" in message


def test_too_large_a_body_is_refused_with_413(limited: Gateway) -> None:
    """A request body over the limit gets 413 and a GraphQL error, and no work."""
    response = limited.post("{ __typename }", {"padding": "x" * 5000})
    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "REQUEST_TOO_LARGE"
    assert limited.calls == []


def test_the_standard_introspection_query_is_answered(limited: Gateway) -> None:
    """GraphiQL's own introspection query stays within the introspection bound."""
    data = limited.query(get_introspection_query(descriptions=True))
    assert data["__schema"]["queryType"]["name"] == "Query"


def test_nested_introspection_is_refused(limited: Gateway) -> None:
    """types { fields { type { fields ... } } } fans out and is refused."""
    query = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }"
    message = refused(limited, query, "MAX_INTROSPECTION_DEPTH_LIMIT")
    assert "3 levels" in message


def test_introspection_can_be_switched_off(standin_url: str) -> None:
    """With introspection=false, __schema and __type are refused; data queries run."""
    settings = Settings(metronome_base_url=standin_url, introspection=False)
    with running_gateway(settings) as gateway:
        errors = gateway.errors("{ __schema { queryType { name } } }")
        assert {error["extensions"]["code"] for error in errors} == {"INTROSPECTION_DISABLED"}
        data = gateway.query(
            f"{{ __typename seatBalances({ARGS}, first: 1) {{ nodes {{ seatId }} }} }}"
        )
        assert data["__typename"] == "Query"


def test_the_runtime_budget_stops_what_the_document_did_not_show(limited: Gateway) -> None:
    """Entity lookups over more contracts than the budget fail past it, counted exactly."""
    representations = [
        {
            "__typename": "Seat",
            "customerId": DEMO_CUSTOMER_ID,
            "contractId": f"00000000-0000-4000-8000-00000000000{i}",
            "seatId": "a",
        }
        for i in range(5)
    ]
    payload = limited.post(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Seat { seatId } } }",
        {"r": representations},
    ).json()
    codes = sorted(error["extensions"]["code"] for error in payload["errors"])
    assert codes == ["MAX_UPSTREAM_CALLS_LIMIT"] * 2 + ["NOT_FOUND"] * 3
    assert len(limited.calls) == 3


def test_get_cannot_run_a_mutation(limited: Gateway) -> None:
    """There are no mutations, and GET could not run one anyway."""
    response = limited.http.get(
        f"{limited.url}/graphql",
        params={"query": "mutation { __typename }"},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    )
    assert response.status_code in (400, 405)
    assert "mutation" in response.text.lower()
    assert limited.calls == []


def test_get_queries_are_allowed_and_limited_the_same_way(limited: Gateway) -> None:
    """A query sent by GET runs, and one over a limit sent by GET is refused the same way."""

    def get(query: str) -> dict[str, Any]:
        response = limited.http.get(
            f"{limited.url}/graphql",
            params={"query": query},
            headers={"Authorization": f"Bearer {DEMO_TOKEN}", "Accept": "application/json"},
        )
        return response.json()  # type: ignore[no-any-return]

    assert get(f"{{ seatBalances({ARGS}, first: 1) {{ nodes {{ seatId }} }} }}")["data"]
    deep = get(
        f"{{ seatBalances({ARGS}) {{ edges {{ node {{ commits {{ ledgerEntries {{ type }} }} }} }} }} }}"
    )
    assert deep["errors"][0]["extensions"]["code"] == "MAX_DEPTH_LIMIT"
    assert len(limited.calls) == 1
