"""Hostile documents cost little and no upstream call: each is answered or refused at once.

Look-ahead, limits and planning walk each fragment once, so fragments that spread each other
many times cost time in proportion to the document's length; a document with more selections
than allowed is refused before graphql-core's validation rules (some of which are quadratic)
run; an operation may send only so many seat ids upstream in total; a cursor's skip is bounded
by what a page holds.
"""

from __future__ import annotations

import base64
import gc
import json
import threading
import time
from dataclasses import replace
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query

from gateway.schema import RequestContext, build_schema, shape_error
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import BillingClient
from tests.support import BUDGET, DEFAULT_LIMITS, DEFAULT_POLICY, Gateway

ARGS = f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}"'


def fan_out(levels: int, leaf: str = "seatId", width: int = 3) -> str:
    """A short document whose fragments each spread the next one ``width`` times: walking
    every path would visit ``width ** levels`` leaves."""
    spreads = " ".join(
        f"fragment F{i} on Seat {{ {' '.join([f'...F{i + 1}'] * width)} }}" for i in range(levels)
    )
    return (
        f"{{ seatBalances({ARGS}, first: 1) {{ nodes {{ ...F0 }} }} }} "
        f"{spreads} fragment F{levels} on Seat {{ {leaf} }}"
    )


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in payload.get("errors") or ()]


def timed_while_healthz_answers(
    gateway: Gateway, query: str, token: str | None
) -> tuple[dict[str, Any], float, float]:
    """Posts ``query`` in one thread while another asks ``/healthz`` over and over: the
    answer, its time, and the slowest health check made meanwhile."""
    done = threading.Event()
    health: list[float] = []

    def probe() -> None:
        with httpx.Client(timeout=5) as client:
            while not done.is_set() or not health:
                started = time.perf_counter()
                assert client.get(f"{gateway.url}/healthz").status_code == 200
                health.append(time.perf_counter() - started)

    prober = threading.Thread(target=probe)
    prober.start()
    started = time.perf_counter()
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(
            f"{gateway.url}/graphql", json={"query": query}, headers=headers, timeout=5
        )
    finally:
        elapsed = time.perf_counter() - started
        done.set()
        prober.join(10)
    return response.json(), elapsed, max(health)


@pytest.mark.parametrize("token", [None, DEMO_TOKEN], ids=["without-token", "with-token"])
def test_a_fragment_fan_out_is_answered_at_once_while_health_checks_answer(
    gateway: Gateway, token: str | None
) -> None:
    """25 levels of fragments spreading the next three times (3^25 paths, 1.3 KB): refused
    without a token, answered with one (twice, so the fast path sees it too), each well
    under a second, and /healthz keeps answering meanwhile."""
    query = fan_out(25)
    for _ in range(2):
        payload, elapsed, slowest_health = timed_while_healthz_answers(gateway, query, token)
        assert elapsed < 1.0
        assert slowest_health < 1.0
        if token is None:
            assert codes(payload) == ["UNAUTHENTICATED"]
        else:
            assert codes(payload) == []
            assert payload["data"]["seatBalances"]["nodes"][0]["seatId"]
    assert len(gateway.calls) == (0 if token is None else 2)


def test_a_fragment_fan_out_is_measured_without_expanding_it(gateway: Gateway) -> None:
    """The limits count a fan-out's 3^25 aliases from each fragment's own count: refused at
    once, with the expanded figure in the message."""
    started = time.perf_counter()
    errors = gateway.errors(fan_out(25, leaf="s: seatId"))
    assert time.perf_counter() - started < 1.0
    assert [e["extensions"]["code"] for e in errors] == ["MAX_ALIASES_LIMIT"]
    assert str(3**25) in errors[0]["message"]
    assert gateway.calls == []


async def test_the_projection_completes_a_fragment_fan_out_in_linear_time() -> None:
    """The projection completes the 3^25 fan-out (merged by graphql-core's field collection)
    in well under a second of CPU, twice."""
    transport = httpx.ASGITransport(app=create_standin_app())
    client = BillingClient(transport, "http://standin", replace(DEFAULT_POLICY, max_retries=0))
    schema = build_schema(DEFAULT_LIMITS)
    query = fan_out(25)
    for _ in range(2):
        request = RequestContext(client=client, token=DEMO_TOKEN, max_upstream_calls=BUDGET)
        started = time.process_time()
        result = await schema.execute(query, context_value={"gateway": request})
        assert time.process_time() - started < 1.0
        assert result.errors is None
        assert request.fast_path
    await transport.aclose()


def _sb(inner: str, args: str = ARGS) -> str:
    return f"seatBalances({args}) {{ {inner} }}"


# Each document fits the token and size limits; the code it must be refused with.
HOSTILE_DOCUMENTS: dict[str, tuple[str, str]] = {
    "repeated siblings": (
        "{ " + _sb("nodes { seatId } " * 480) + " }",
        "MAX_SELECTIONS_LIMIT",
    ),
    "repeated leaves": (
        "{ " + _sb("nodes { " + "seatId " * 900 + "}") + " }",
        "MAX_SELECTIONS_LIMIT",
    ),
    "conflicting siblings": (
        "{ " + _sb("nodes { " + "a: seatId a: id " * 240 + "}") + " }",
        "MAX_SELECTIONS_LIMIT",
    ),
    "wide fragments": (
        "{ "
        + _sb("nodes { " + " ".join(f"...F{i}" for i in range(150)) + " }")
        + " } "
        + " ".join(f"fragment F{i} on Seat {{ seatId }}" for i in range(150)),
        "MAX_SELECTIONS_LIMIT",
    ),
    "wide inline fragments": (
        "{ " + _sb("nodes { " + "... on Seat { seatId } " * 300 + "}") + " }",
        "MAX_SELECTIONS_LIMIT",
    ),
    "unused fragments": (
        "{ __typename } " + " ".join(f"fragment F{i} on Seat {{ seatId }}" for i in range(250)),
        "MAX_SELECTIONS_LIMIT",
    ),
    "deep nesting": ("{ " + "nodes { " * 150 + "}" * 150 + " }", "MAX_DEPTH_LIMIT"),
    "too deep to parse": ("{ " + "nodes { " * 300 + "}" * 300 + " }", "GRAPHQL_PARSE_FAILED"),
    "many aliases": (
        "{ " + _sb("nodes { " + " ".join(f"a{i}: seatId" for i in range(150)) + " }") + " }",
        "MAX_ALIASES_LIMIT",
    ),
    "many unknown fields": (
        "{ " + " ".join(f"x{i}" for i in range(190)) + " }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "long argument list": (
        "{ seatBalances("
        + ARGS
        + " "
        + " ".join(f"a{i}: {i}" for i in range(600))
        + ") { nodes { seatId } } }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "repeated argument": (
        "{ seatBalances("
        + ARGS
        + " "
        + " ".join(f"first: {i}" for i in range(600))
        + ") { nodes { seatId } } }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "object argument": (
        "{ "
        + _sb(
            "nodes { seatId }",
            ARGS + ", first: {" + ", ".join(f"a{i}: 1" for i in range(500)) + "}",
        )
        + " }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "many variables": (
        "query("
        + " ".join(f"$v{i}: Int" for i in range(450))
        + ") { "
        + _sb("nodes { seatId }")
        + " }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "many directives": (
        "{ " + _sb("nodes { seatId " + "@skip(if: false) " * 250 + "}") + " }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "many unknown directives": (
        "{ " + _sb("nodes { seatId " + " ".join(f"@d{i}" for i in range(600)) + " }") + " }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "many operations": (
        " ".join(f"query Q{i} {{ __typename }}" for i in range(250)),
        "MAX_SELECTIONS_LIMIT",
    ),
    "many anonymous operations": (
        " ".join("{ __typename }" for _ in range(250)),
        "MAX_SELECTIONS_LIMIT",
    ),
    "many seat ids": (
        "{ "
        + _sb(
            "nodes { seatId }",
            ARGS + ", seatIds: [" + ", ".join(f'"s{i}"' for i in range(1500)) + "]",
        )
        + " }",
        "MAX_SEAT_IDS_LIMIT",
    ),
    "nested lists": (
        "{ " + _sb("nodes { seatId }", ARGS + ", seatIds: " + "[" * 300 + "]" * 300) + " }",
        "GRAPHQL_PARSE_FAILED",
    ),
    "fan-out of aliases": (fan_out(25, leaf="s: seatId"), "MAX_ALIASES_LIMIT"),
    "fan-out without a token": (fan_out(25), "UNAUTHENTICATED"),
}


@pytest.mark.parametrize("name", list(HOSTILE_DOCUMENTS))
async def test_a_hostile_document_is_refused_within_50_ms_of_cpu(name: str) -> None:
    """Refused with its code, before any upstream call, in under 50 ms of CPU (a bound, not
    a benchmark: the slowest of these takes under 20 ms here)."""
    query, code = HOSTILE_DOCUMENTS[name]
    assert len(query.encode()) <= 20_000
    schema = build_schema(DEFAULT_LIMITS)
    # No client: an upstream call would fail loudly instead of being made.
    context = {"gateway": RequestContext(client=None, token=None, max_upstream_calls=BUDGET)}  # type: ignore[arg-type]
    await schema.execute("{ __typename }", context_value=context)  # one-time set-up costs
    # A text the parser cache has not seen; the validation cache (keyed by the document's
    # structure) has not seen these documents either, each is validated once per session.
    query += f" # {time.monotonic_ns()}"
    # This thread's CPU, without a garbage collection of the whole test session's heap that
    # happens to fall due (the servers of other tests run in threads of this process).
    gc.disable()
    try:
        started = time.thread_time()
        result = await schema.execute(query, context_value=context)
        spent = time.thread_time() - started
    finally:
        gc.enable()
    found = {(shape_error(e).extensions or {}).get("code") for e in result.errors or ()}
    assert code in found, [e.message[:120] for e in result.errors or ()]
    assert result.data is None or all(v is None for v in result.data.values())
    assert spent < 0.05, f"{spent * 1000:.1f} ms"


@pytest.mark.parametrize("levels", [60, 150])
def test_a_deep_document_sent_twice_is_refused_twice(gateway: Gateway, levels: int) -> None:
    """Deeply nested selections or input objects, sent again with another comment (a new text,
    an equal document), are refused the same way both times, never as an internal error;
    past 64 levels, as too deep."""
    selections = "{ " + "nodes { " * levels + "}" * levels + " }"
    first = "{a: " * levels + "1" + "}" * levels
    objects = "{ " + _sb("nodes { seatId }", f"{ARGS}, first: {first}") + " }"
    for query in (selections, objects):
        once, twice = (
            {e["extensions"]["code"] for e in gateway.errors(f"{query} # {n}")} for n in range(2)
        )
        assert once == twice
        assert "INTERNAL_SERVER_ERROR" not in once
        if levels > 64:
            assert once == {"MAX_DEPTH_LIMIT"}
    assert gateway.calls == []


def test_the_largest_legitimate_documents_fit_the_selection_limit(gateway: Gateway) -> None:
    """GraphiQL's introspection query and a query selecting every seat field twice over are
    answered with the default limits."""
    gateway.query(get_introspection_query(descriptions=True, directive_is_repeatable=True))
    commitment = "id balance startDate endDate ledgerEntries { type rawType amount timestamp }"
    seat = (
        "id seatId customerId contractId balances { creditTypeId balance startingBalance } "
        f"commits {{ commitId {commitment} }} credits {{ creditId {commitment} }}"
    )
    connection = (
        f"seatsAvailableForNextPage edges {{ cursor node {{ {seat} }} }} nodes {{ {seat} }} "
        "pageInfo { hasNextPage hasPreviousPage startCursor endCursor }"
    )
    data = gateway.query(
        f"{{ a: seatBalances({ARGS}, first: 2) {{ {connection} }} "
        f"b: seatBalances({ARGS}, first: 3) {{ ...C }} }} "
        f"fragment C on SeatConnection {{ {connection} }}"
    )
    assert len(data["b"]["nodes"]) == 3


def many_seat_ids(count: int) -> list[str]:
    return [f"{i:04d}-" + "x" * 400 + "@example.com" for i in range(count)]


AMPLIFIER = (
    "query Amplify($ids: [String!]) { "
    + " ".join(
        f"a{i}: seatBalances({ARGS}, seatIds: $ids, skipMissingSeatIds: true, first: {i + 1}) {{ nodes {{ seatId }} }}"
        for i in range(20)
    )
    + " }"
)


def test_seat_ids_repeated_across_aliases_are_refused_before_any_upstream_call(
    gateway: Gateway,
) -> None:
    """20 aliases each sending the same 1,000 long seat ids (a 0.4 MB request that would
    send 8 MB upstream) are refused with MAX_SEAT_IDS_LIMIT and no upstream call."""
    errors = gateway.errors(AMPLIFIER, {"ids": many_seat_ids(1000)})
    assert [e["extensions"]["code"] for e in errors] == ["MAX_SEAT_IDS_LIMIT"]
    assert "20000 seat ids" in errors[0]["message"]
    assert gateway.calls == []


def test_the_seat_id_budget_holds_for_a_document_seen_before(gateway: Gateway) -> None:
    """The same document, answered once with 50 ids per alias (1,000 in all, the budget), is
    refused with 51 (1,020), also once the gateway knows it (the fast path's documents)."""
    for _ in range(2):
        data = gateway.query(AMPLIFIER, {"ids": ["ghost@nowhere.example"] * 50})
        assert data["a0"]["nodes"] == []
    gateway.upstream.calls.clear()
    for _ in range(2):
        errors = gateway.errors(AMPLIFIER, {"ids": ["ghost@nowhere.example"] * 51})
        assert [e["extensions"]["code"] for e in errors] == ["MAX_SEAT_IDS_LIMIT"]
    assert gateway.calls == []


def test_seat_ids_are_counted_through_fragments_and_entities(gateway: Gateway) -> None:
    """Ids written in a fragment count for each of its spreads; ids under ``_entities`` for
    each representation; ``nodes`` ids too."""
    ids = ", ".join(f'"s{i}"' for i in range(300))
    spread = (
        "{ ...R ...R2 } "
        f"fragment R on Query {{ a: seatBalances({ARGS}, seatIds: [{ids}], first: 1) "
        "{ __typename } } "
        f"fragment R2 on Query {{ b: seatBalances({ARGS}, seatIds: [{ids}], first: 2) "
        "{ __typename } ...R3 } "
        f"fragment R3 on Query {{ c: seatBalances({ARGS}, seatIds: [{ids}], first: 3) "
        "{ __typename } d: seatBalances(" + ARGS + f", seatIds: [{ids}], first: 4) "
        "{ __typename } }"
    )
    for _ in range(2):  # and again once the document is stored (its count kept with it)
        errors = gateway.errors(spread)
        assert [e["extensions"]["code"] for e in errors] == ["MAX_SEAT_IDS_LIMIT"]
        assert "1200 seat ids" in errors[0]["message"]
    representations = [
        {"__typename": "Contract", "id": DEMO_CONTRACT_ID, "customerId": DEMO_CUSTOMER_ID}
    ] * 4
    entities = (
        "query($r: [_Any!]!, $ids: [String!]) { _entities(representations: $r) "
        "{ ... on Contract { seatBalances(seatIds: $ids) { nodes { seatId } } } } }"
    )
    errors = gateway.errors(entities, {"r": representations, "ids": ["x"] * 300})
    assert [e["extensions"]["code"] for e in errors] == ["MAX_SEAT_IDS_LIMIT"]
    # 300 ids under each of 4 representations, and each representation counts one of its own.
    assert "1204 seat ids" in errors[0]["message"]
    assert gateway.calls == []


def _forged(cursor: str, skip: int) -> str:
    padded = cursor + "=" * (-len(cursor) % 4)
    prefix, _, payload = base64.urlsafe_b64decode(padded).decode().rpartition("v1:")
    page, _, listing = json.loads(payload)
    text = prefix + "v1:" + json.dumps([page, skip, listing])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def test_a_cursor_skipping_more_than_a_page_is_refused_without_upstream_calls(
    gateway: Gateway,
) -> None:
    """A cursor whose skip passes what a page holds (100 seats) is not one of ours."""
    page = gateway.query(f"{{ seatBalances({ARGS}, first: 2) {{ edges {{ cursor }} }} }}")
    cursor = page["seatBalances"]["edges"][0]["cursor"]
    gateway.upstream.calls.clear()
    for skip in (101, 250, 10**9):
        errors = gateway.errors(
            f'{{ seatBalances({ARGS}, first: 5, after: "{_forged(cursor, skip)}") '
            "{ nodes { seatId } } }"
        )
        assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]
        assert "'after'" in errors[0]["message"]
    assert gateway.calls == []


def test_the_cursor_after_a_full_last_page_still_resumes(gateway: Gateway) -> None:
    """The edge after the 100th and last seat of a listing skips a whole page (100): ours,
    resumed with one call to an empty page."""
    query = f"query($after: String) {{ seatBalances({ARGS}, first: 100, after: $after) {{ pageInfo {{ hasNextPage endCursor }} }} }}"
    after = None
    while True:
        info = gateway.query(query, {"after": after})["seatBalances"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    gateway.upstream.calls.clear()
    last = gateway.query(query, {"after": info["endCursor"]})["seatBalances"]["pageInfo"]
    assert last == {"hasNextPage": False, "endCursor": None}
    assert len(gateway.calls) == 1


def test_entity_representations_count_against_the_seat_id_budget(gateway: Gateway) -> None:
    """Each Seat representation of _entities sends its seat id upstream: 1,001 of them are
    refused with MAX_SEAT_IDS_LIMIT before any upstream call, and a seat id longer than a
    seat id can be is refused too."""
    query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on Seat { seatId } } }"

    def representation(seat_id: str) -> dict[str, str]:
        return {
            "__typename": "Seat",
            "customerId": DEMO_CUSTOMER_ID,
            "contractId": DEMO_CONTRACT_ID,
            "seatId": seat_id,
        }

    many = [representation(f"seat-{n}@example.com") for n in range(1_001)]
    errors = gateway.errors(query, {"r": many})
    assert [e["extensions"]["code"] for e in errors] == ["MAX_SEAT_IDS_LIMIT"]
    assert gateway.calls == []
    errors = gateway.errors(query, {"r": [representation("x" * 600)]})
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.calls == []
