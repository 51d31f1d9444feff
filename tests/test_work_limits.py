"""The work one request makes the gateway do is bounded before it runs (issue 23, item 1): an
estimate of the fields and objects completion will produce (``COST_LIMIT``), the same estimate
in ``X-Gateway-Cost``, one budget for a batch, seats looked up by key held to what the estimate
assumed of them at run time, and answers bounded in bytes (``RESPONSE_TOO_LARGE``). Over real
HTTP with the stand-in as upstream; upstream calls counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, build_dataset
from tests.support import Gateway, running_gateway

ROOT = Path(__file__).resolve().parent.parent
SEATS = build_dataset()["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]["seats"]


def held(seat: dict[str, Any]) -> int:
    return len(seat["commits"] or ()) + len(seat["credits"] or ())


# The seat holding the most commits and credits (the stand-in's 130, above the page cap).
HEAVY = max(SEATS, key=held)
PLAIN = next(seat for seat in SEATS if 0 < held(seat) <= 5)

DETAILS = (
    "name description type priority allocation subscriptionId product { id name } "
    "accessSchedule { id amount startingAt endingBefore } customFields { key value }"
)
ENTITIES = (
    "query($r: [_Any!]!) { _entities(representations: $r) { ... on Seat { seatId "
    "commits { commitId balance SELECTION } } } }"
)
PAGE = (
    f'seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", '
    "first: 100) { edges { node { ...Seat } } }"
)


def representations(seat: dict[str, Any], count: int) -> list[dict[str, Any]]:
    key = {
        "__typename": "Seat",
        "customerId": DEMO_CUSTOMER_ID,
        "contractId": DEMO_CONTRACT_ID,
        "seatId": seat["seat_id"],
    }
    return [key] * count


def codes(payload: dict[str, Any]) -> list[str]:
    return [error["extensions"]["code"] for error in payload.get("errors") or ()]


def post(gateway: Gateway, body: Any, **headers: str) -> httpx.Response:
    return gateway.http.post(
        f"{gateway.url}/graphql",
        json=body,
        headers={"Authorization": f"Bearer {DEMO_TOKEN}", **headers},
    )


@pytest.fixture(scope="module")
def small_budget(settings: Settings) -> Iterator[Gateway]:
    """A gateway whose work budget is 100 (a first: 2 page of seat ids costs 11 of it)."""
    with running_gateway(settings.model_copy(update={"max_cost": 100})) as gateway:
        yield gateway


def test_repeated_entities_with_detail_fields_are_refused_before_any_upstream_call(
    gateway: Gateway,
) -> None:
    """The probe's request: one seat's representation 300 times with the detail fields (an
    11.9 MB answer and 20 s of CPU before) is one COST_LIMIT request error, no upstream call."""
    response = post(
        gateway,
        {
            "query": ENTITIES.replace("SELECTION", DETAILS),
            "variables": {"r": representations(PLAIN, 300)},
        },
    )
    payload = response.json()
    assert codes(payload) == ["COST_LIMIT"]
    assert payload.get("data") is None
    assert "units of work" in payload["errors"][0]["message"]
    assert gateway.calls == []


def test_aliases_written_through_fragments_count_as_often_as_they_are_spread(
    gateway: Gateway,
) -> None:
    """Nineteen aliased first: 100 pages whose every field sits in nested fragments (a 4 KB
    document) weigh what they would written out: refused, no upstream call."""
    pages = " ".join(f"p{i}: {PAGE}" for i in range(19))
    document = (
        f"{{ {pages} }} fragment Seat on Seat {{ seatId ...Held }} "
        "fragment Held on Seat { commits { ...Commit } credits { creditId balance } } "
        f"fragment Commit on Commit {{ commitId balance {DETAILS} "
        "ledgerEntries { type amount timestamp } }"
    )
    payload = post(gateway, {"query": document}).json()
    assert codes(payload) == ["COST_LIMIT"]
    assert gateway.calls == []


def test_the_cost_header_reports_the_estimate_the_limit_enforces(
    gateway: Gateway, settings: Settings
) -> None:
    """`X-Gateway-Cost` answers the estimate the limit compares: a budget of exactly that
    estimate admits the operation, one less refuses it, naming the same figure."""
    query = (ROOT / "bench/queries/C.graphql").read_text()
    variables = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
    asked = post(gateway, {"query": query, "variables": variables}, **{"x-gateway-cost": "true"})
    cost = asked.json()["extensions"]["cost"]
    assert cost["estimatedCost"] <= cost["maxCost"] == Settings().max_cost  # C runs by default
    estimated = cost["estimatedCost"]
    with running_gateway(settings.model_copy(update={"max_cost": estimated})) as exact:
        assert codes(post(exact, {"query": query, "variables": variables}).json()) == []
    with running_gateway(settings.model_copy(update={"max_cost": estimated - 1})) as below:
        refused = post(below, {"query": query, "variables": variables}).json()
        assert codes(refused) == ["COST_LIMIT"]
        assert f"about {estimated} units" in refused["errors"][0]["message"]
        assert below.calls == []


def test_the_operations_of_a_batch_share_one_budget(small_budget: Gateway) -> None:
    """Three operations of 44 each fit a budget of 100 one by one, not together: the batch's
    third operation (whichever is admitted last) is refused, the others are answered."""
    query = (
        f'{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", '
        "first: 2) { edges { node { seatId } } } }"
    )
    four_aliases = "{ " + " ".join(f"a{i}: {query[2:-2]}" for i in range(4)) + " }"
    alone = post(small_budget, {"query": four_aliases}, **{"x-gateway-cost": "true"}).json()
    assert alone["extensions"]["cost"]["estimatedCost"] == 44
    small_budget.upstream.calls.clear()
    results = post(small_budget, [{"query": four_aliases}] * 3).json()
    assert sorted(codes(result) for result in results) == [[], [], ["COST_LIMIT"]]
    assert len(small_budget.calls) == 1  # identical pages: one call for the batch


def test_seats_looked_up_by_key_are_held_to_what_the_estimate_assumed(gateway: Gateway) -> None:
    """A thousand representations of the seat with 130 commits and credits, selecting only
    balances (an estimate within the budget, 130,000 commits and credits at run time): the
    seats past the assumed size are refused with COST_LIMIT before anything of them is
    completed, in one upstream call."""
    response = post(
        gateway,
        {
            "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Seat { "
            "commits { balance } credits { balance } } } }",
            "variables": {"r": representations(HEAVY, 1000)},
        },
    )
    payload = response.json()
    entities = payload["data"]["_entities"]
    answered = [entity for entity in entities if entity is not None]
    assert 0 < len(answered) < 10
    assert set(codes(payload)) == {"COST_LIMIT"}
    assert len(gateway.calls) == 1


def test_ordinary_seats_looked_up_by_key_are_answered_whole(gateway: Gateway) -> None:
    """The run-time hold refuses nothing of ordinary entities: 200 seats with their commits."""
    seats = [seat for seat in SEATS if held(seat) <= 20][:200]
    keys = [representations(seat, 1)[0] for seat in seats]
    payload = post(
        gateway,
        {"query": ENTITIES.replace("SELECTION", ""), "variables": {"r": keys}},
    ).json()
    assert codes(payload) == []
    assert [entity["seatId"] for entity in payload["data"]["_entities"]] == [
        seat["seat_id"] for seat in seats
    ]


def test_an_answer_over_the_byte_bound_is_one_error(settings: Settings) -> None:
    """GATEWAY_MAX_RESPONSE_BYTES: a page whose answer passes it is replaced by one
    RESPONSE_TOO_LARGE error (not kept by caches); a smaller one is answered as it is."""
    small = settings.model_copy(update={"max_response_bytes": 10_000})
    query = (
        f'{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", '
        "first: FIRST) { edges { node { id seatId } } } }"
    )
    with running_gateway(small) as gateway:
        large = post(gateway, {"query": query.replace("FIRST", "100")})
        assert large.json() == {
            "data": None,
            "errors": [
                {
                    "message": large.json()["errors"][0]["message"],
                    "extensions": {"code": "RESPONSE_TOO_LARGE"},
                }
            ],
        }
        assert "at most 10000 are sent" in large.json()["errors"][0]["message"]
        assert large.headers["cache-control"] == "no-store"
        batch = post(gateway, [{"query": query.replace("FIRST", "100")}] * 2).json()
        assert [codes(result) for result in batch] == [["RESPONSE_TOO_LARGE"]] * 2
        fits = post(gateway, {"query": query.replace("FIRST", "3")}).json()
        assert len(fits["data"]["seatBalances"]["edges"]) == 3


def test_a_stored_documents_estimate_follows_its_include_variables(small_budget: Gateway) -> None:
    """A document whose @include takes a variable is estimated with each request's variables,
    also once the document store knows it: cheap twice, then expensive is refused."""
    query = (
        "query($all: Boolean!) { seatBalances("
        f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 30) '
        "{ pageInfo { hasNextPage } edges @include(if: $all) { node { seatId } } } }"
    )
    for _ in range(2):
        cheap = post(small_budget, {"query": query, "variables": {"all": False}}).json()
        assert codes(cheap) == []
    expensive = post(small_budget, {"query": query, "variables": {"all": True}}).json()
    assert codes(expensive) == ["COST_LIMIT"]


def test_a_page_of_100_seats_with_every_detail_field_runs_by_default(gateway: Gateway) -> None:
    """The heaviest page a dashboard asks for (every field, every detail, 100 seats) is within
    the default budget since the details are joined once per commit and projected."""
    fields = (
        f"seatId balances {{ creditTypeId balance creditType {{ name }} }} "
        f"commits {{ commitId balance ledgerEntries {{ type amount }} {DETAILS} }} "
        f"credits {{ creditId balance ledgerEntries {{ type amount }} {DETAILS.replace('type ', '')} }}"
    )
    document = PAGE.replace("...Seat", fields)
    payload = post(gateway, {"query": f"{{ {document} }}"}, **{"x-gateway-cost": "true"}).json()
    assert codes(payload) == []
    assert payload["extensions"]["cost"]["estimatedCost"] <= Settings().max_cost
    seats = [edge["node"] for edge in payload["data"]["seatBalances"]["edges"]]
    named = [c["name"] for seat in seats for c in seat["commits"]]
    assert named and all(name for name in named)
