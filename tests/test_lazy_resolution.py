"""Fields a page was fetched without are loaded lazily, batched for the whole operation.

The look-ahead normally asks for everything up front, so this safety net is exercised with a
small schema of the test's own whose field hands out seats fetched without their commits
(or without ledgers), exactly as the gateway's types receive them.
"""

from __future__ import annotations

from typing import Any

import httpx
import strawberry
from strawberry.schema.config import StrawberryConfig

from gateway.loaders import Listing, PageRequest
from gateway.schema import RequestContext
from gateway.schema.context import request_context
from gateway.schema.scalars import DATE_TIME, DateTime
from gateway.schema.types import Seat
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import BillingClient
from tests.reference import as_graphql
from tests.support import RecordingTransport

LISTING = Listing(customer_id=DEMO_CUSTOMER_ID, contract_id=DEMO_CONTRACT_ID)


@strawberry.type
class Query:
    @strawberry.field
    async def seats(self, info: strawberry.Info, with_commits: bool) -> list[Seat]:
        """Eight seats as a page fetched with or without commits (never with ledgers)."""
        page = await request_context(info).loaders.page(
            PageRequest(LISTING, include_commits=with_commits, include_ledgers=False, limit=8)
        )
        return [
            Seat.from_wire(record, LISTING, has_commits=with_commits, has_ledgers=False)
            for record in page["data"]
        ]


SCHEMA = strawberry.federation.Schema(
    query=Query, config=StrawberryConfig(scalar_map={DateTime: DATE_TIME})
)
FIELDS = "seatId balances { creditTypeId balance startingBalance }"
COMMITMENT = "balance startDate endDate ledgerEntries { type amount timestamp }"


async def execute(query: str) -> tuple[dict[str, Any], RecordingTransport]:
    recorder = RecordingTransport(httpx.ASGITransport(app=create_standin_app()))
    client = BillingClient(recorder, "http://standin")
    context = {"gateway": RequestContext(client=client, token=DEMO_TOKEN)}
    result = await SCHEMA.execute(query, context_value=context)
    assert result.errors is None, result.errors
    assert result.data is not None
    return result.data, recorder


async def expected_seats() -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_standin_app()), base_url="http://standin"
    ) as http:
        response = await http.post(
            "/v1/contracts/seatBalances/list",
            json={
                "customer_id": DEMO_CUSTOMER_ID,
                "contract_id": DEMO_CONTRACT_ID,
                "include_credits_and_commits": True,
                "include_ledgers": True,
                "limit": 8,
            },
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        )
    return [as_graphql(seat) for seat in response.json()["data"]]


def wire_shape(seat: dict[str, Any]) -> dict[str, Any]:
    return {
        **seat,
        "commits": [{"commitId": c.pop("id"), **c} for c in seat["commits"]],
        "credits": [{"creditId": c.pop("id"), **c} for c in seat["credits"]],
    }


async def test_commits_of_seats_fetched_without_them_cost_one_batched_call() -> None:
    """Eight seats' commits and credits (with ledgers) come from one seat_ids call."""
    data, recorder = await execute(
        f"{{ seats(withCommits: false) {{ {FIELDS} commits {{ id: commitId {COMMITMENT} }} "
        f"credits {{ id: creditId {COMMITMENT} }} }} }}"
    )
    assert [wire_shape(seat) for seat in data["seats"]] == await expected_seats()
    page, batch = recorder.bodies()
    assert "include_credits_and_commits" not in page
    assert batch == {
        "customer_id": DEMO_CUSTOMER_ID,
        "contract_id": DEMO_CONTRACT_ID,
        "seat_ids": sorted(seat["seatId"] for seat in data["seats"]),
        "skip_missing_seat_ids": True,
        "include_credits_and_commits": True,
        "include_ledgers": True,
        "limit": 8,
    }


async def test_ledgers_of_commits_fetched_without_them_cost_one_batched_call() -> None:
    """Ledger entries missing from a page with commits are loaded for all seats at once."""
    data, recorder = await execute(
        f"{{ seats(withCommits: true) {{ {FIELDS} commits {{ id: commitId {COMMITMENT} }} "
        f"credits {{ id: creditId {COMMITMENT} }} }} }}"
    )
    assert [wire_shape(seat) for seat in data["seats"]] == await expected_seats()
    page, batch = recorder.bodies()
    assert page["include_credits_and_commits"] is True and "include_ledgers" not in page
    holding = sorted(s["seatId"] for s in data["seats"] if s["commits"] or s["credits"])
    assert batch["include_ledgers"] is True
    assert batch["seat_ids"] == holding, "only seats with commits or credits need ledgers"
    assert len(recorder.calls) == 2
