"""A billing-API page with numbers the schema cannot show is the billing API's fault.

``NaN``, ``Infinity``, ``1e400`` or an integer too large for a double as a balance or an
amount, or a seat count beyond GraphQL's 32-bit ``Int``, breaks the contract: the field fails
with ``UPSTREAM_BAD_RESPONSE``, the same with the fast path on and off, and never comes out as
a null in a non-null field or an out-of-range ``Int``.
"""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID
from tests.support import running_gateway

PAGE = {
    "data": [
        {
            "seat_id": "ada@acme.example",
            "balances": [
                {
                    "credit_type_id": "2714e483-4ff1-48e4-9e25-ac732e8f24f2",
                    "balance": "BALANCE",
                    "starting_balance": 100,
                }
            ],
            "commits": [
                {
                    "id": "62c0cb84-bf3f-48b9-9bcf-a8ddf8c1cf35",
                    "balance": 10,
                    "start_date": "2026-05-01T00:00:00.000Z",
                    "ledger_entries": [
                        {
                            "type": "PREPAID_COMMIT_SEGMENT_START",
                            "amount": "AMOUNT",
                            "timestamp": "2026-05-01T00:00:00.000Z",
                        }
                    ],
                }
            ],
            "credits": [],
        }
    ],
    "pagination": {"seats_included": 1, "seats_available_for_next_page": "AVAILABLE"},
}

QUERY = f"""{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}") {{
  seatsAvailableForNextPage
  nodes {{ seatId balances {{ balance }} commits {{ ledgerEntries {{ amount }} }} }}
}} }}"""

HUGE_INTEGER = "1" + "0" * 400


def page_with(balance: str = "10", amount: str = "-5", available: str = "0") -> httpx.MockTransport:
    """The stand-in's page shape, with raw JSON number text where the placeholders are."""
    body = (
        json.dumps(PAGE)
        .replace('"BALANCE"', balance)
        .replace('"AMOUNT"', amount)
        .replace('"AVAILABLE"', available)
    )
    return httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=body.encode(), headers={"content-type": "application/json"}
        )
    )


BROKEN_PAGES = {
    "NaN balance": {"balance": "NaN"},
    "Infinity balance": {"balance": "Infinity"},
    "-Infinity balance": {"balance": "-Infinity"},
    "1e400 balance": {"balance": "1e400"},
    "huge integer balance": {"balance": HUGE_INTEGER},
    "NaN amount": {"amount": "NaN"},
    "1e400 amount": {"amount": "-1e400"},
    "seats available above 2^31": {"available": str(2**31)},
    "seats available 1e400": {"available": "1e400"},
    "seats available NaN": {"available": "NaN"},
}


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "graphql-core"])
def test_numbers_outside_the_schema_are_upstream_bad_response(fast_path: bool) -> None:
    """Each broken page fails the field with UPSTREAM_BAD_RESPONSE (the nullable seatBalances
    is null), twice in a row, never as data, with the projection on and off."""
    for name, numbers in BROKEN_PAGES.items():
        settings = Settings(metronome_base_url="http://billing.test", fast_path=fast_path)
        with running_gateway(settings, page_with(**numbers)) as gateway:
            for _ in range(2):
                payload = gateway.post(QUERY).json()
                assert payload["data"] == {"seatBalances": None}, name
                assert [e["extensions"]["code"] for e in payload["errors"]] == [
                    "UPSTREAM_BAD_RESPONSE"
                ], (name, payload["errors"])
                assert "billing.test" not in json.dumps(payload)
            assert len(gateway.calls) == 2


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "graphql-core"])
def test_numbers_inside_the_schema_are_shown(fast_path: bool) -> None:
    """Large finite balances and the largest Int seat count are data, not errors."""
    settings = Settings(metronome_base_url="http://billing.test", fast_path=fast_path)
    transport = page_with(balance="1e300", amount="-2.5", available=str(2**31 - 1))
    with running_gateway(settings, transport) as gateway:
        for _ in range(2):
            data = gateway.query(QUERY)["seatBalances"]
            assert data["seatsAvailableForNextPage"] == 2**31 - 1
            node = data["nodes"][0]
            assert node["balances"] == [{"balance": 1e300}]
            assert node["commits"] == [{"ledgerEntries": [{"amount": -2.5}]}]
