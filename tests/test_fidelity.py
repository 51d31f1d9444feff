"""What the gateway answers is exactly what the billing API returned for the same filters."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_SUBSCRIPTION_IDS,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
)
from tests.reference import as_graphql, upstream_seats
from tests.support import Gateway

FULL = """query($customerId: ID!, $contractId: ID!, $after: String, $subscriptionIds: [ID!],
  $seatIds: [String!], $skip: Boolean, $coveringDate: DateTime, $startingAt: DateTime,
  $effectiveBefore: DateTime) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: 100, after: $after,
    subscriptionIds: $subscriptionIds, seatIds: $seatIds, skipMissingSeatIds: $skip,
    coveringDate: $coveringDate, startingAt: $startingAt, effectiveBefore: $effectiveBefore) {
    pageInfo { hasNextPage endCursor }
    nodes {
      id seatId customerId contractId
      balances { creditTypeId balance startingBalance }
      commits { id commitId balance startDate endDate ledgerEntries { type amount timestamp } }
      credits { id creditId balance startDate endDate ledgerEntries { type amount timestamp } }
    }
  }
}"""


def graphql_seats(
    gateway: Gateway, variables: dict[str, Any], **kwargs: Any
) -> list[dict[str, Any]]:
    seats: list[dict[str, Any]] = []
    after = None
    while True:
        page = gateway.query(FULL, {**variables, "after": after}, **kwargs)["seatBalances"]
        seats += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            return seats
        after = page["pageInfo"]["endCursor"]


def without_ids(seat: dict[str, Any]) -> dict[str, Any]:
    """The seat minus the gateway's own fields, for comparison with the wire."""
    out = {k: v for k, v in seat.items() if k not in ("id", "customerId", "contractId")}
    for kind in ("commits", "credits"):
        out[kind] = [{k: v for k, v in item.items() if k != "id"} for item in seat[kind]]
    return out


FILTERS = [
    pytest.param({}, {}, id="whole contract"),
    pytest.param(
        {"subscriptionIds": [DEMO_SUBSCRIPTION_IDS[1]]},
        {"subscription_ids": [DEMO_SUBSCRIPTION_IDS[1]]},
        id="one subscription",
    ),
    pytest.param(
        {"coveringDate": "2026-05-10T00:00:00Z"},
        {"covering_date": "2026-05-10T00:00:00.000Z"},
        id="covering date",
    ),
    pytest.param(
        {"startingAt": "2026-04-01T00:00:00Z", "effectiveBefore": "2026-06-01T00:00:00Z"},
        {"starting_at": "2026-04-01T00:00:00.000Z", "effective_before": "2026-06-01T00:00:00.000Z"},
        id="date window",
    ),
]


@pytest.mark.parametrize(("variables", "body"), FILTERS)
def test_seats_commits_credits_and_ledgers_match_the_billing_api(
    gateway: Gateway, standin_url: str, variables: dict[str, Any], body: dict[str, Any]
) -> None:
    """Every seat, balance, commit, credit and ledger entry comes back as the API sent it."""
    ids = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
    wire = upstream_seats(
        standin_url,
        {
            "customer_id": DEMO_CUSTOMER_ID,
            "contract_id": DEMO_CONTRACT_ID,
            "include_credits_and_commits": True,
            "include_ledgers": True,
            **body,
        },
    )
    seats = graphql_seats(gateway, {**ids, **variables})
    assert [without_ids(seat) for seat in seats] == [as_graphql(seat) for seat in wire]
    assert all(
        seat["customerId"] == DEMO_CUSTOMER_ID and seat["contractId"] == DEMO_CONTRACT_ID
        for seat in seats
    )
    sent = gateway.upstream.bodies()[0]
    assert {k: v for k, v in sent.items() if k in body} == body


def test_seat_ids_filter_and_skipping_missing_ones(gateway: Gateway, standin_url: str) -> None:
    """seatIds narrows the listing; with skipMissingSeatIds an unknown seat is left out."""
    wanted = [
        seat["seat_id"]
        for seat in upstream_seats(
            standin_url, {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID}
        )
    ][5:9]
    ids = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
    seats = graphql_seats(
        gateway, {**ids, "seatIds": [*wanted, "ghost@nowhere.example"], "skip": True}
    )
    assert [seat["seatId"] for seat in seats] == wanted
    assert gateway.upstream.bodies()[0]["skip_missing_seat_ids"] is True
    [error] = gateway.errors(FULL, {**ids, "seatIds": ["ghost@nowhere.example"]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ghost@nowhere.example" in error["message"]


def test_another_account_sees_its_own_contract(gateway: Gateway, standin_url: str) -> None:
    """A caller's own token is forwarded and returns that account's seats."""
    seats = graphql_seats(
        gateway,
        {"customerId": OTHER_CUSTOMER_ID, "contractId": OTHER_CONTRACT_ID},
        token=OTHER_TOKEN,
    )
    wire = upstream_seats(
        standin_url,
        {
            "customer_id": OTHER_CUSTOMER_ID,
            "contract_id": OTHER_CONTRACT_ID,
            "include_credits_and_commits": True,
            "include_ledgers": True,
        },
        token=OTHER_TOKEN,
    )
    assert [without_ids(seat) for seat in seats] == [as_graphql(seat) for seat in wire]
    assert {call.authorization for call in gateway.calls} == {f"Bearer {OTHER_TOKEN}"}


def test_per_seat_commit_ids_are_globally_unique(gateway: Gateway) -> None:
    """The same billing commit under several seats gets a distinct id per seat."""
    seats = graphql_seats(gateway, {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID})
    commitments = [item for seat in seats for item in seat["commits"] + seat["credits"]]
    shared = Counter(item.get("commitId") or item.get("creditId") for item in commitments)
    assert max(shared.values()) > 1, "the demo data shares commits across seats"
    ids = [item["id"] for item in commitments] + [seat["id"] for seat in seats]
    assert len(ids) == len(set(ids))
    assert all(seat["commits"] is not None and seat["credits"] is not None for seat in seats)
