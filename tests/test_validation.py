"""Bad input is a BAD_USER_INPUT error that says what to change, before any upstream call."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID
from tests.support import Gateway

QUERY = """query($customerId: ID!, $contractId: ID!, $first: Int, $after: String,
  $coveringDate: DateTime, $startingAt: DateTime, $effectiveBefore: DateTime,
  $subscriptionIds: [ID!], $seatIds: [String!]) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: $first, after: $after,
    coveringDate: $coveringDate, startingAt: $startingAt, effectiveBefore: $effectiveBefore,
    subscriptionIds: $subscriptionIds, seatIds: $seatIds) {
    nodes { seatId }
  }
}"""

IDS = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}


@pytest.mark.parametrize(
    ("variables", "mentions"),
    [
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"first": -5}, "first"),
        (
            {"coveringDate": "2026-05-01T00:00:00Z", "startingAt": "2026-01-01T00:00:00Z"},
            "coveringDate",
        ),
        (
            {"coveringDate": "2026-05-01T00:00:00Z", "effectiveBefore": "2026-09-01T00:00:00Z"},
            "coveringDate",
        ),
        ({"startingAt": "next tuesday"}, "RFC 3339"),
        ({"startingAt": "2026-05-01T00:00:00"}, "time zone"),
        ({"effectiveBefore": "2026-13-01T00:00:00Z"}, "RFC 3339"),
        ({"coveringDate": 1714521600}, "RFC 3339"),
        ({"after": "not-a-cursor"}, "after"),
        ({"after": "c2VhdC1jdXJzb3I6djE6WzEsMl0"}, "after"),  # ours in form, not in content
        ({"customerId": "acme"}, "customerId"),
        ({"customerId": DEMO_CUSTOMER_ID + "\n"}, "customerId"),  # `$` would let it through
        ({"customerId": DEMO_CUSTOMER_ID.replace("6", "\u0666")}, "customerId"),  # not ASCII
        ({"startingAt": "2026-05-01T00:00:00Z\n"}, "RFC 3339"),
        ({"contractId": "7f1c' OR 1=1"}, "contractId"),
        ({"subscriptionIds": ["not-a-uuid"]}, "subscriptionIds"),
        ({"subscriptionIds": [DEMO_CONTRACT_ID + "\n"]}, "subscriptionIds"),
        ({"subscriptionIds": []}, "subscriptionIds"),
        ({"seatIds": []}, "seatIds"),
        ({"seatIds": [""]}, "seatIds"),
        ({"seatIds": ["x" * 600]}, "seatIds"),
    ],
)
def test_bad_arguments_are_refused_before_any_upstream_call(
    gateway: Gateway, variables: dict[str, Any], mentions: str
) -> None:
    """Each malformed or conflicting argument gets BAD_USER_INPUT naming what to fix."""
    errors = gateway.errors(QUERY, {**IDS, **variables})
    assert len(errors) == 1
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert mentions in errors[0]["message"]
    assert gateway.calls == []


def test_a_malformed_literal_date_is_bad_user_input(gateway: Gateway) -> None:
    """A date written into the query text gets the same code as one passed in a variable."""
    errors = gateway.errors(
        f"""{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}",
            startingAt: "yesterday") {{ nodes {{ seatId }} }} }}"""
    )
    assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "RFC 3339" in errors[0]["message"]
    assert gateway.calls == []


def test_syntax_and_schema_errors_have_their_own_codes(gateway: Gateway) -> None:
    """A broken document and an unknown field are told apart from bad argument values."""
    [syntax] = gateway.errors("{ seatBalances(")
    assert syntax["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    [unknown] = gateway.errors("{ seats { id } }")
    assert unknown["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    assert gateway.calls == []


def test_dates_are_sent_upstream_in_utc(gateway: Gateway) -> None:
    """An offset date-time is normalised to UTC RFC 3339 in the upstream body."""
    gateway.query(QUERY, {**IDS, "startingAt": "2026-05-01T02:00:00+02:00", "first": 1})
    [call] = gateway.calls
    assert call.body["starting_at"] == "2026-05-01T00:00:00.000Z"


def test_a_body_that_is_not_json_is_a_clear_400(gateway: Gateway) -> None:
    """A request body that does not parse as JSON is refused without reaching GraphQL."""
    response = gateway.http.post(
        f"{gateway.url}/graphql",
        content=b'{"query": "{ __typename }"',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert "JSON" in response.text
    assert gateway.calls == []
    assert gateway.query("{ __typename }") == {"__typename": "Query"}  # still serving
