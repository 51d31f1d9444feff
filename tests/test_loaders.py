"""The per-request loaders: one upstream call per batch, one answer per key, in key order."""

from __future__ import annotations

import httpx
import pytest

from gateway.loaders import Listing, Loaders, SeatRequest
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import BillingClient, UpstreamRejected
from tests.support import BUDGET, DEFAULT_POLICY, RecordingTransport

LISTING = Listing(customer_id=DEMO_CUSTOMER_ID, contract_id=DEMO_CONTRACT_ID)


async def seat_ids(http: httpx.AsyncClient) -> list[str]:
    response = await http.post(
        "/v1/contracts/seatBalances/list",
        json={"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID, "limit": 100},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    )
    return [seat["seat_id"] for seat in response.json()["data"]]


async def test_seats_of_an_operation_are_loaded_in_one_call() -> None:
    """Seats asked for separately in one tick become one call with seat_ids, answers in order."""
    recorder = RecordingTransport(httpx.ASGITransport(app=create_standin_app()))
    async with httpx.AsyncClient(transport=recorder, base_url="http://standin") as http:
        ids = (await seat_ids(http))[20:25]
        recorder.calls.clear()
        loaders = Loaders(
            BillingClient(recorder, "http://standin", DEFAULT_POLICY), DEMO_TOKEN, max_calls=BUDGET
        )
        wanted = [ids[3], "ghost@nowhere.example", ids[0], ids[3]]
        seats = await loaders.seats.load_many(
            [SeatRequest(LISTING, seat_id, include_ledgers=False) for seat_id in wanted]
        )
    assert [seat["seat_id"] if seat else None for seat in seats] == [ids[3], None, ids[0], ids[3]]
    assert recorder.bodies() == [
        {
            "customer_id": DEMO_CUSTOMER_ID,
            "contract_id": DEMO_CONTRACT_ID,
            "seat_ids": sorted({ids[3], "ghost@nowhere.example", ids[0]}),
            "skip_missing_seat_ids": True,
            "include_credits_and_commits": True,
            "limit": 3,
        }
    ]
    assert all("ledger_entries" not in c for seat in seats if seat for c in seat["commits"] or [])


async def test_a_batch_split_by_the_commits_cap_follows_next_page() -> None:
    """When the 100 commits cap splits the answer, the loader follows next_page to the end."""
    recorder = RecordingTransport(httpx.ASGITransport(app=create_standin_app()))
    async with httpx.AsyncClient(transport=recorder, base_url="http://standin") as http:
        ids = await seat_ids(http)
        recorder.calls.clear()
        loaders = Loaders(
            BillingClient(recorder, "http://standin", DEFAULT_POLICY), DEMO_TOKEN, max_calls=BUDGET
        )
        seats = await loaders.seats.load_many(
            [SeatRequest(LISTING, seat_id, include_ledgers=True) for seat_id in ids[:40]]
        )
    assert [seat["seat_id"] for seat in seats if seat] == ids[:40]
    assert len(recorder.calls) > 1, "seat 10 of the demo contract holds 98 commits and credits"
    assert all(call.body["seat_ids"] == sorted(ids[:40]) for call in recorder.calls)
    assert next(call.body.get("cursor") is None for call in recorder.calls) is True
    assert all(call.body.get("cursor") for call in recorder.calls[1:])
    assert all("ledger_entries" in c for seat in seats if seat for c in seat["commits"] or [])


async def test_loader_errors_reject_only_their_own_keys() -> None:
    """An upstream failure for one listing fails that listing's keys and not another's."""
    recorder = RecordingTransport(httpx.ASGITransport(app=create_standin_app()))
    foreign = Listing(
        customer_id="00000000-0000-4000-8000-000000000000", contract_id=DEMO_CONTRACT_ID
    )
    async with httpx.AsyncClient(transport=recorder, base_url="http://standin") as http:
        ids = await seat_ids(http)
        loaders = Loaders(
            BillingClient(recorder, "http://standin", DEFAULT_POLICY), DEMO_TOKEN, max_calls=BUDGET
        )
        good = loaders.seats.load(SeatRequest(LISTING, ids[0], include_ledgers=False))
        bad = loaders.seats.load(SeatRequest(foreign, ids[0], include_ledgers=False))
        assert (await good)["seat_id"] == ids[0]
        with pytest.raises(UpstreamRejected) as rejected:
            await bad
    assert rejected.value.status == 404
