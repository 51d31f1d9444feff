"""Relay pagination over the billing API's forward-only page tokens."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, OTHER_CONTRACT_ID, OTHER_CUSTOMER_ID
from tests.reference import upstream_seats
from tests.support import Gateway

IDS = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
BASE = {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID}

SEATS = """query($customerId: ID!, $contractId: ID!, $first: Int, $after: String) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: $first, after: $after) {
    edges { cursor node { seatId } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""

SEATS_WITH_COMMITS = SEATS.replace("node { seatId }", "node { seatId commits { commitId } }")


def walk(gateway: Gateway, query: str, first: int) -> list[dict[str, Any]]:
    """Every page of the demo contract, following endCursor; checks each page's own promises."""
    pages: list[dict[str, Any]] = []
    after = None
    while True:
        before = len(gateway.calls)
        page = gateway.query(query, {**IDS, "first": first, "after": after})["seatBalances"]
        assert len(gateway.calls) - before == 1, "one upstream call per page"
        assert 1 <= len(page["edges"]) <= first
        assert page["pageInfo"]["hasPreviousPage"] is False
        assert page["pageInfo"]["startCursor"] == page["edges"][0]["cursor"]
        assert page["pageInfo"]["endCursor"] == page["edges"][-1]["cursor"]
        pages.append(page)
        if not page["pageInfo"]["hasNextPage"]:
            return pages
        after = page["pageInfo"]["endCursor"]


@pytest.fixture(scope="module")
def all_seat_ids(standin_url: str) -> list[str]:
    return [seat["seat_id"] for seat in upstream_seats(standin_url, BASE)]


# Page sizes the fast tier walks with (the smallest, primes, around the 100 commits cap and
# the largest); the process tier walks with every other size from 1 to 100.
FAST_TIER_SIZES = (1, 2, 3, 7, 13, 25, 41, 64, 99, 100)
PAGE_SIZES = [
    pytest.param(FAST_TIER_SIZES, id="some sizes"),
    pytest.param(
        tuple(n for n in range(1, 101) if n not in FAST_TIER_SIZES),
        id="the other sizes",
        marks=pytest.mark.process,
    ),
]


@pytest.mark.parametrize("sizes", PAGE_SIZES)
def test_walking_with_every_page_size_visits_every_seat_once(
    gateway: Gateway, all_seat_ids: list[str], sizes: tuple[int, ...]
) -> None:
    """Pages of 1 to 100 seats, balances only, list the contract's seats in order, no gap."""
    for first in sizes:
        pages = walk(gateway, SEATS, first)
        seen = [edge["node"]["seatId"] for page in pages for edge in page["edges"]]
        assert seen == all_seat_ids, f"first={first}"
        assert all(len(page["edges"]) == first for page in pages[:-1])


@pytest.mark.parametrize("sizes", PAGE_SIZES)
def test_walking_with_commits_follows_pages_shortened_by_the_cap(
    gateway: Gateway, all_seat_ids: list[str], sizes: tuple[int, ...]
) -> None:
    """With commits selected, the 100 commits cap shortens pages; the walk still has no gap."""
    shortened = 0
    for first in sizes:
        pages = walk(gateway, SEATS_WITH_COMMITS, first)
        seen = [edge["node"]["seatId"] for page in pages for edge in page["edges"]]
        assert seen == all_seat_ids, f"first={first}"
        shortened += sum(
            1 for page in pages if page["pageInfo"]["hasNextPage"] and len(page["edges"]) < first
        )
    assert shortened > 0, "the demo data must cross the 100 commits cap"


@pytest.mark.parametrize("selection", ["seatId", "seatId commits { commitId }"])
def test_any_edge_cursor_resumes_with_the_very_next_seat(
    gateway: Gateway, all_seat_ids: list[str], selection: str
) -> None:
    """after: <any edge's cursor> continues with the next seat, also mid-page and across caps."""
    query = SEATS.replace("node { seatId }", f"node {{ {selection} }}")
    edges: list[dict[str, Any]] = []
    after = None
    while len(edges) < 120:
        page = gateway.query(SEATS_WITH_COMMITS, {**IDS, "first": 40, "after": after})
        edges += page["seatBalances"]["edges"]
        after = page["seatBalances"]["pageInfo"]["endCursor"]
    for index, edge in enumerate(edges):
        resumed = gateway.query(query, {**IDS, "first": 3, "after": edge["cursor"]})
        got = [e["node"]["seatId"] for e in resumed["seatBalances"]["edges"]]
        assert got[0] == all_seat_ids[index + 1]
        assert got == all_seat_ids[index + 1 : index + 1 + len(got)]


def test_a_mid_page_cursor_costs_one_call_from_its_page(
    gateway: Gateway, all_seat_ids: list[str]
) -> None:
    """Resuming inside a page re-reads that page from its token and skips what was seen."""
    page = gateway.query(SEATS, {**IDS, "first": 10})["seatBalances"]
    second = gateway.query(SEATS, {**IDS, "first": 10, "after": page["pageInfo"]["endCursor"]})
    gateway.calls.clear()
    middle = second["seatBalances"]["edges"][3]["cursor"]
    resumed = gateway.query(SEATS, {**IDS, "first": 5, "after": middle})["seatBalances"]
    assert [e["node"]["seatId"] for e in resumed["edges"]] == all_seat_ids[14:19]
    [call] = gateway.calls
    assert call.body["limit"] == 4 + 5
    assert call.body["cursor"]  # the second page's own upstream token


def test_the_last_page_says_there_is_no_next_page(
    gateway: Gateway, all_seat_ids: list[str]
) -> None:
    """hasNextPage turns false at the end, and a cursor past the end gives an empty page."""
    pages = walk(gateway, SEATS, 100)
    assert pages[-1]["pageInfo"]["hasNextPage"] is False
    end = gateway.query(SEATS, {**IDS, "first": 5, "after": pages[-1]["pageInfo"]["endCursor"]})
    assert end["seatBalances"]["edges"] == []
    assert end["seatBalances"]["pageInfo"] == {
        "hasNextPage": False,
        "hasPreviousPage": False,
        "startCursor": None,
        "endCursor": None,
    }


def test_cursors_are_opaque_base64(gateway: Gateway) -> None:
    """Cursors are URL-safe base64 text that does not show the upstream token as-is."""
    page = gateway.query(SEATS, {**IDS, "first": 2})["seatBalances"]
    for edge in page["edges"]:
        decoded = base64.urlsafe_b64decode(edge["cursor"] + "=" * (-len(edge["cursor"]) % 4))
        assert decoded.startswith(b"seat-cursor:")


def test_a_cursor_of_another_contract_is_refused(gateway: Gateway) -> None:
    """A cursor issued for one contract cannot page through another one."""
    page = gateway.query(SEATS, {**IDS, "first": 2})["seatBalances"]
    gateway.calls.clear()
    errors = gateway.errors(
        SEATS,
        {
            "customerId": OTHER_CUSTOMER_ID,
            "contractId": OTHER_CONTRACT_ID,
            "after": page["pageInfo"]["endCursor"],
        },
    )
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "after" in errors[0]["message"]
    assert gateway.calls == []
