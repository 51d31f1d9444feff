"""The upstream include flags follow what the query selects, and nothing else."""

from __future__ import annotations

import pytest

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID
from tests.support import Gateway

IDS = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
BASE = {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID}


def test_balances_only_sends_no_include_flags(gateway: Gateway) -> None:
    """Selecting only balances asks the billing API for neither commits nor ledgers."""
    gateway.query(
        """query($customerId: ID!, $contractId: ID!) {
          seatBalances(customerId: $customerId, contractId: $contractId) {
            edges { node { seatId balances { creditTypeId balance } } }
          }
        }""",
        IDS,
    )
    assert gateway.upstream.bodies() == [{**BASE, "limit": 25}]


@pytest.mark.parametrize(
    ("selection", "fragments", "variables", "expected_flags"),
    [
        ("commits { commitId }", "", {}, {"include_credits_and_commits": True}),
        ("credits { creditId }", "", {}, {"include_credits_and_commits": True}),
        ("mine: commits { balance }", "", {}, {"include_credits_and_commits": True}),
        (
            "...Held",
            "fragment Held on Seat { credits { balance } }",
            {},
            {"include_credits_and_commits": True},
        ),
        (
            "... on Seat { commits { ledgerEntries { amount } } }",
            "",
            {},
            {"include_credits_and_commits": True, "include_ledgers": True},
        ),
        (
            "...Deep",
            "fragment Deep on Seat { credits { ...Entries } } "
            "fragment Entries on Credit { history: ledgerEntries { type } }",
            {},
            {"include_credits_and_commits": True, "include_ledgers": True},
        ),
        ("commits @skip(if: $flag) { balance }", "", {"flag": True}, {}),
        (
            "commits @skip(if: $flag) { balance }",
            "",
            {"flag": False},
            {"include_credits_and_commits": True},
        ),
        ("commits @include(if: $flag) { ledgerEntries { amount } }", "", {"flag": False}, {}),
        (
            "commits { balance ledgerEntries @include(if: $flag) { amount } }",
            "",
            {"flag": False},
            {"include_credits_and_commits": True},
        ),
        (
            "...Held @include(if: $flag)",
            "fragment Held on Seat { credits { balance } }",
            {"flag": False},
            {},
        ),
        (
            "... @skip(if: $flag) { commits { ledgerEntries { amount } } }",
            "",
            {"flag": False},
            {"include_credits_and_commits": True, "include_ledgers": True},
        ),
    ],
)
def test_include_flags_follow_the_selection(
    gateway: Gateway,
    selection: str,
    fragments: str,
    variables: dict[str, bool],
    expected_flags: dict[str, bool],
) -> None:
    """Fragments, aliases and @skip/@include with variables decide the flags sent upstream."""
    declaration = ", $flag: Boolean!" if variables else ""
    gateway.query(
        f"""query($customerId: ID!, $contractId: ID!{declaration}) {{
          seatBalances(customerId: $customerId, contractId: $contractId, first: 3) {{
            edges {{ node {{ seatId {selection} }} }}
          }}
        }}
        {fragments}""",
        {**IDS, **variables},
    )
    assert gateway.upstream.bodies() == [{**BASE, **expected_flags, "limit": 3}]


def test_a_deep_query_costs_one_upstream_call_per_page(gateway: Gateway) -> None:
    """Seats, balances, commits, credits and ledger entries of a page come from one call."""
    data = gateway.query(
        """query($customerId: ID!, $contractId: ID!) {
          seatBalances(customerId: $customerId, contractId: $contractId, first: 100) {
            nodes {
              id seatId balances { balance }
              commits { id balance ledgerEntries { type amount timestamp } }
              credits { id balance ledgerEntries { type amount timestamp } }
            }
          }
        }""",
        IDS,
    )
    assert data["seatBalances"]["nodes"], "the demo contract has seats"
    assert len(gateway.calls) == 1


def test_identical_requests_within_an_operation_are_made_once(gateway: Gateway) -> None:
    """Two aliases with the same arguments share one upstream call; different ones do not."""
    data = gateway.query(
        """query($customerId: ID!, $contractId: ID!) {
          a: seatBalances(customerId: $customerId, contractId: $contractId, first: 5) {
            nodes { seatId } }
          b: seatBalances(customerId: $customerId, contractId: $contractId, first: 5) {
            nodes { seatId } }
          c: seatBalances(customerId: $customerId, contractId: $contractId, first: 6) {
            nodes { seatId } }
        }""",
        IDS,
    )
    assert data["a"] == data["b"]
    assert data["c"]["nodes"][:5] == data["a"]["nodes"]
    assert sorted(body["limit"] for body in gateway.upstream.bodies()) == [5, 6]
