"""The stand-in's demo activity: usage that moves the demo contract's balances, read back through
the stand-in's own HTTP API, and the signed webhooks it delivers about them."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import itertools
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    DEMO_WEBHOOK_SECRET,
    DemoActivity,
    build_dataset,
    create_standin_app,
    sign_webhook,
)

SEATS = "/v1/contracts/seatBalances/list"
BALANCES = "/v1/contracts/customerBalances/list"
AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}
# A moment the demo data covers: most commits and credits are active and hold a balance.
MAY_20 = datetime(2026, 5, 20, 12, 30, 15, 250_000, tzinfo=UTC)
USAGE_TYPES = {
    "commits": "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION",
    "credits": "CREDIT_AUTOMATED_INVOICE_DEDUCTION",
}

Seats = dict[str, dict[str, Any]]
Delivery = tuple[bytes, Mapping[str, str]]


@pytest.fixture
def app() -> Starlette:
    return create_standin_app(build_dataset())


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as http:
        yield http


async def all_seats(client: httpx.AsyncClient) -> Seats:
    """Every seat of the demo contract with its commits, credits and ledgers, page by page."""
    seats: Seats = {}
    body: dict[str, Any] = {
        "customer_id": DEMO_CUSTOMER_ID,
        "contract_id": DEMO_CONTRACT_ID,
        "include_credits_and_commits": True,
        "include_ledgers": True,
        "limit": 100,
    }
    while True:
        response = await client.post(SEATS, json=body, headers=AUTH)
        assert response.status_code == 200, response.text
        page = response.json()
        seats.update((seat["seat_id"], seat) for seat in page["data"])
        if not page["pagination"]["next_page"]:
            return seats
        body["cursor"] = page["pagination"]["next_page"]


async def listed_items(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The contract-level commits and credits of "List balances", each with the balance it sums
    over the seats."""
    found = []
    body: dict[str, Any] = {
        "customer_id": DEMO_CUSTOMER_ID,
        "include_contract_balances": True,
        "include_balance": True,
    }
    while True:
        page = (await client.post(BALANCES, json=body, headers=AUTH)).json()
        found += [item for item in page["data"] if "contract" in item]
        if not page["next_page"]:
            return found
        body["next_page"] = page["next_page"]


def items(seat: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any]]]:
    """The seat's commits and credits by id, each with its kind."""
    return {
        item["id"]: (kind, item) for kind in ("commits", "credits") for item in seat[kind] or []
    }


def totals(seat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {balance["credit_type_id"]: balance for balance in seat["balances"]}


def ticking_clock(start: datetime) -> Callable[[], datetime]:
    """A clock one second later at every reading, so that each move has a timestamp of its own."""
    ticks = itertools.count()
    return lambda: start + timedelta(seconds=next(ticks))


def usage_moments(seats: Seats) -> set[str]:
    """The timestamps of the usage the demo wrote from MAY_20 on (the demo data's own usage
    ends before May 15)."""
    return {
        entry["timestamp"]
        for seat in seats.values()
        for _, item in items(seat).values()
        for entry in item["ledger_entries"]
        if entry["type"] in USAGE_TYPES.values() and entry["timestamp"] >= "2026-05-20T12:30"
    }


async def test_a_step_deducts_usage_from_two_or_three_seats(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """A step deducts 1-5 % of one commit's or credit's starting amount from two or three
    seats: the next answer shows the usage entry, the item's balance and the seat's balance of
    that credit type lower by exactly that amount; nothing else changes."""
    before = await all_seats(client)
    moved = DemoActivity(app, None, seed=1, clock=lambda: MAY_20).step()
    after = await all_seats(client)

    assert 2 <= len(moved) <= 3
    assert {seat_id for seat_id in before if before[seat_id] != after[seat_id]} == set(moved)
    for seat_id in moved:
        old_items, new_items = items(before[seat_id]), items(after[seat_id])
        changed = [item_id for item_id in old_items if old_items[item_id] != new_items[item_id]]
        assert len(changed) == 1
        kind, old = old_items[changed[0]]
        _, new = new_items[changed[0]]
        assert new["ledger_entries"][:-1] == old["ledger_entries"]
        entry = new["ledger_entries"][-1]
        assert entry["type"] == USAGE_TYPES[kind]
        assert entry["timestamp"] == "2026-05-20T12:30:15.250Z"
        usage = -entry["amount"]
        starting = old["ledger_entries"][0]["amount"]
        assert 0 < usage <= min(old["balance"], 0.05 * starting)
        assert new["balance"] == old["balance"] - usage
        assert {k: v for k, v in new.items() if k not in ("balance", "ledger_entries")} == {
            k: v for k, v in old.items() if k not in ("balance", "ledger_entries")
        }
        old_totals, new_totals = totals(before[seat_id]), totals(after[seat_id])
        lowered = [ct for ct in old_totals if old_totals[ct] != new_totals[ct]]
        assert len(lowered) == 1
        assert new_totals[lowered[0]] == {
            **old_totals[lowered[0]],
            "balance": old_totals[lowered[0]]["balance"] - usage,
        }


async def test_list_balances_follows_the_moves(app: Starlette, client: httpx.AsyncClient) -> None:
    """With include_balance, "List balances" follows the moves: each commit's or credit's
    balance is lower by the usage deducted from it, and still the sum of its seats' balances."""
    listed_before = {item["id"]: item["balance"] for item in await listed_items(client)}
    activity = DemoActivity(app, None, seed=2, clock=lambda: MAY_20)
    for _ in range(5):
        activity.step()
    seats = await all_seats(client)
    listed_after = {item["id"]: item["balance"] for item in await listed_items(client)}

    usage: dict[str, float] = {}
    held: dict[str, float] = {}
    for seat in seats.values():
        for item_id, (_, item) in items(seat).items():
            held[item_id] = held.get(item_id, 0) + item["balance"]
            for entry in item["ledger_entries"]:
                if entry["timestamp"] == "2026-05-20T12:30:15.250Z":
                    usage[item_id] = usage.get(item_id, 0) - entry["amount"]
    assert usage
    assert listed_after.keys() == listed_before.keys() == held.keys()
    for item_id, balance in listed_after.items():
        assert balance == listed_before[item_id] - usage.get(item_id, 0)
        assert balance == held[item_id]


async def test_balances_never_go_below_zero(app: Starlette, client: httpx.AsyncClient) -> None:
    """Years on, only the open-ended credits are left to draw on: steps drain them to exactly
    zero and then move nothing, and every ledger still adds up to its balance, every seat's
    balance to its commits' and credits'."""
    activity = DemoActivity(app, None, seed=3, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    steps = 0
    while activity.step():
        steps += 1
        assert steps < 5000, "the open-ended credits never ran dry"
    seats = await all_seats(client)
    credit_types = {
        item["id"]: item["access_schedule"]["credit_type"]["id"]
        for item in await listed_items(client)
    }

    drained = 0
    for seat in seats.values():
        per_credit_type: dict[str, float] = {}
        for item_id, (_, item) in items(seat).items():
            assert item["balance"] >= 0
            assert item["balance"] == sum(entry["amount"] for entry in item["ledger_entries"])
            drained += item["balance"] == 0 and item["end_date"] is None
            credit_type = credit_types[item_id]
            per_credit_type[credit_type] = per_credit_type.get(credit_type, 0) + item["balance"]
        for credit_type, balance in totals(seat).items():
            assert balance["balance"] >= 0
            assert balance["balance"] == per_credit_type[credit_type]
    assert drained > 0


async def test_the_same_seed_moves_the_same_seats_by_the_same_amounts() -> None:
    """Two stand-ins with the same seed (and clock) answer the same after the same steps."""
    answers = []
    for _ in range(2):
        app = create_standin_app(build_dataset())
        activity = DemoActivity(app, None, seed=42, clock=lambda: MAY_20)
        moved = [activity.step() for _ in range(4)]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://standin"
        ) as http:
            answers.append((moved, await all_seats(http)))
    assert answers[0] == answers[1]


async def test_a_webhook_is_signed_over_its_raw_body(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """deliver gets a low seat balance alert for a seat that just moved, with the billing API's
    headers; its signature is HMAC-SHA256 of the demo secret over the X-Metronome-Date header, a
    newline and exactly the bytes delivered; each event has an id of its own."""
    deliveries: list[Delivery] = []

    async def deliver(body: bytes, headers: Mapping[str, str]) -> int:
        deliveries.append((body, headers))
        return 204

    activity = DemoActivity(app, deliver, seed=4, clock=lambda: MAY_20)
    moved = activity.step()
    assert await activity.deliver_webhook() == 204
    assert await activity.deliver_webhook() == 204

    (body, headers), (second, _) = deliveries
    assert DEMO_WEBHOOK_SECRET == "demo-webhook-secret"
    assert headers["Content-Type"] == "application/json"
    date = headers["X-Metronome-Date"]
    assert email.utils.parsedate_to_datetime(date) == MAY_20.replace(microsecond=0)
    expected = hmac.new(b"demo-webhook-secret", date.encode() + b"\n" + body, hashlib.sha256)
    assert headers["Metronome-Webhook-Signature"] == expected.hexdigest()
    assert sign_webhook(DEMO_WEBHOOK_SECRET, date, body) == expected.hexdigest()
    assert sign_webhook(DEMO_WEBHOOK_SECRET, date, body + b" ") != expected.hexdigest()

    event = json.loads(body)
    assert event["type"] == "alerts.low_remaining_seat_balance_reached"
    assert event["id"] != json.loads(second)["id"]
    properties = event["properties"]
    assert (properties["customer_id"], properties["contract_id"]) == (
        DEMO_CUSTOMER_ID,
        DEMO_CONTRACT_ID,
    )
    assert properties["triggered_by"] == "usage"
    assert properties["alert_id"] == json.loads(second)["properties"]["alert_id"]
    seat_id = properties["seat_filter"]["seat_group_value"]
    assert properties["seat_filter"]["seat_group_key"] == "seat_id"
    assert seat_id in moved
    balance = totals((await all_seats(client))[seat_id])[properties["credit_type_id"]]
    assert properties["remaining_balance"] == balance["balance"]
    assert balance["balance"] <= properties["threshold"] <= balance["starting_balance"]


async def test_no_deliver_no_webhook(app: Starlette) -> None:
    """Without a receiver, deliver_webhook sends nothing and says so with None."""
    assert await DemoActivity(app, None).deliver_webhook() is None


async def test_run_moves_balances_and_delivers_every_third_step(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """run() moves balances every period and delivers after every third move: when each of
    the first three webhooks arrives, the stand-in answers with 3, 6, then 9 moves' usage."""
    moves_seen: list[int] = []
    third = asyncio.Event()

    async def deliver(body: bytes, headers: Mapping[str, str]) -> int:
        moves_seen.append(len(usage_moments(await all_seats(client))))
        if len(moves_seen) == 3:
            third.set()
        return 200

    activity = DemoActivity(
        app, deliver, period=0.001, webhook_every=3, seed=5, clock=ticking_clock(MAY_20)
    )
    task = asyncio.create_task(activity.run())
    try:
        await asyncio.wait_for(third.wait(), 10)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert moves_seen[:3] == [3, 6, 9]


async def test_run_outlives_failed_deliveries(
    app: Starlette, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A receiver that is down or refuses the webhook does not stop the demo: balances keep
    moving and deliveries keep coming, one warning is logged for the run of failures, and
    cancelling still stops it."""
    caplog.set_level(logging.DEBUG, logger="gateway.standin")
    answers: list[int | Exception] = [httpx.ConnectError("refused"), 500, 401, 200]
    calls = 0
    done = asyncio.Event()

    async def deliver(body: bytes, headers: Mapping[str, str]) -> int:
        nonlocal calls
        calls += 1
        answer = answers[min(calls, len(answers)) - 1]
        if calls == len(answers):
            done.set()
        if isinstance(answer, Exception):
            raise answer
        return answer

    activity = DemoActivity(
        app, deliver, period=0.001, webhook_every=1, seed=6, clock=ticking_clock(MAY_20)
    )
    task = asyncio.create_task(activity.run())
    try:
        await asyncio.wait_for(done.wait(), 10)
    finally:
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert calls >= 4
    assert len(usage_moments(await all_seats(client))) >= 4
    failures = [r for r in caplog.records if r.name == "gateway.standin"]
    assert [r.levelno for r in failures] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "ConnectError" in failures[0].getMessage()
