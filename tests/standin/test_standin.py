"""The stand-in of "List seat balances", driven over ASGI as the gateway drives it."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest

import gateway.standin
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_SUBSCRIPTION_IDS,
    DEMO_TOKEN,
    DEMO_USAGE_SUBSCRIPTION_ID,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
    build_dataset,
    create_standin_app,
)

PATH = "/v1/contracts/seatBalances/list"
COMMIT_LEDGER_TYPES = {
    "PREPAID_COMMIT_SEGMENT_START",
    "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION",
    "PREPAID_COMMIT_ROLLOVER",
    "PREPAID_COMMIT_EXPIRATION",
    "PREPAID_COMMIT_CANCELED",
    "PREPAID_COMMIT_CREDITED",
    "PREPAID_COMMIT_MANUAL",
    "PREPAID_COMMIT_SEAT_BASED_ADJUSTMENT",
}
CREDIT_LEDGER_TYPES = {
    "CREDIT_SEGMENT_START",
    "CREDIT_AUTOMATED_INVOICE_DEDUCTION",
    "CREDIT_EXPIRATION",
    "CREDIT_CANCELED",
    "CREDIT_CREDITED",
    "CREDIT_MANUAL",
    "CREDIT_SEAT_BASED_ADJUSTMENT",
    "CREDIT_ROLLOVER",
}


@pytest.fixture(scope="module")
def dataset() -> dict[str, Any]:
    return build_dataset()


@pytest.fixture(scope="module")
def demo_seats(dataset: dict[str, Any]) -> list[dict[str, Any]]:
    seats: list[dict[str, Any]] = dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][
        DEMO_CONTRACT_ID
    ]["seats"]
    return seats


@pytest.fixture
async def client(dataset: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_standin_app(dataset))
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as http:
        yield http


async def post(
    client: httpx.AsyncClient, body: object, token: str | None = DEMO_TOKEN
) -> httpx.Response:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return await client.post(PATH, json=body, headers=headers)


def demo(**fields: Any) -> dict[str, Any]:
    return {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID, **fields}


async def ok(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await post(client, body)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    return page


async def rejected(client: httpx.AsyncClient, body: object, status: int = 400) -> str:
    response = await post(client, body)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"message"}
    message: str = response.json()["message"]
    assert message
    return message


def items_of(seat: dict[str, Any]) -> list[dict[str, Any]]:
    return [*(seat.get("commits") or []), *(seat.get("credits") or [])]


def numbers(value: object) -> Iterator[object]:
    if isinstance(value, dict):
        for item in value.values():
            yield from numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from numbers(item)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        yield value


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the public surface ---------------------------------------------------------------------


def test_public_surface() -> None:
    """The package exports exactly the app factory, the dataset builder, the demo ids and the
    demo activity (its mover, webhook secret and signature)."""
    assert sorted(gateway.standin.__all__) == sorted(
        [
            "create_standin_app",
            "build_dataset",
            "DEMO_TOKEN",
            "DEMO_CUSTOMER_ID",
            "DEMO_CONTRACT_ID",
            "OTHER_TOKEN",
            "OTHER_CUSTOMER_ID",
            "OTHER_CONTRACT_ID",
            "DEMO_SUBSCRIPTION_IDS",
            "DEMO_USAGE_SUBSCRIPTION_ID",
            "DEMO_WEBHOOK_SECRET",
            "DemoActivity",
            "sign_webhook",
        ]
    )
    assert (DEMO_TOKEN, OTHER_TOKEN) == ("demo-token", "other-token")


# --- routing and authentication -------------------------------------------------------------


async def test_other_paths_are_404_with_a_message(client: httpx.AsyncClient) -> None:
    """A path other than the three endpoints is a 404 with a {"message"} body."""
    response = await client.post("/v1/contracts/balances/list", json=demo())
    assert response.status_code == 404
    assert set(response.json()) == {"message"}


async def test_other_methods_are_405_with_a_message(client: httpx.AsyncClient) -> None:
    """Any method but POST on the endpoint is a 405 with a {"message"} body."""
    response = await client.get(PATH, headers={"Authorization": f"Bearer {DEMO_TOKEN}"})
    assert response.status_code == 405
    assert set(response.json()) == {"message"}


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic demo-token", "demo-token"])
async def test_missing_or_unknown_token_is_401(
    client: httpx.AsyncClient, authorization: str | None
) -> None:
    """A request without a known bearer token is a 401 with a {"message"} body."""
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.post(PATH, json=demo(), headers=headers)
    assert response.status_code == 401
    assert set(response.json()) == {"message"}


@pytest.mark.parametrize(
    ("token", "customer_id", "contract_id"),
    [
        (DEMO_TOKEN, OTHER_CUSTOMER_ID, OTHER_CONTRACT_ID),
        (OTHER_TOKEN, DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID),
        (DEMO_TOKEN, "00000000-0000-4000-8000-000000000000", DEMO_CONTRACT_ID),
        (DEMO_TOKEN, DEMO_CUSTOMER_ID, OTHER_CONTRACT_ID),
        (DEMO_TOKEN, DEMO_CUSTOMER_ID, "00000000-0000-4000-8000-000000000000"),
    ],
    ids=[
        "demo-token-other-customer",
        "other-token-demo-customer",
        "unknown-customer",
        "contract-of-another-customer",
        "unknown-contract",
    ],
)
async def test_customers_and_contracts_out_of_reach_are_404(
    client: httpx.AsyncClient, token: str, customer_id: str, contract_id: str
) -> None:
    """A customer the token may not see, an unknown one, or a foreign contract is a 404."""
    body = {"customer_id": customer_id, "contract_id": contract_id}
    response = await post(client, body, token=token)
    assert response.status_code == 404
    assert set(response.json()) == {"message"}


async def test_other_token_sees_its_own_customer(client: httpx.AsyncClient) -> None:
    """The second account's token lists its own forty globex seats."""
    body = {"customer_id": OTHER_CUSTOMER_ID, "contract_id": OTHER_CONTRACT_ID, "limit": 100}
    response = await post(client, body, token=OTHER_TOKEN)
    assert response.status_code == 200
    seats = response.json()["data"]
    assert len(seats) == 40
    assert all(seat["seat_id"].endswith("@globex.example") for seat in seats)


# --- request validation ---------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"not json", b"[]", b'"text"', b"", b"\xff"])
async def test_body_must_be_a_json_object(client: httpx.AsyncClient, content: bytes) -> None:
    """A body that is not a JSON object is a 400."""
    response = await client.post(
        PATH, content=content, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
    )
    assert response.status_code == 400
    assert set(response.json()) == {"message"}


@pytest.mark.parametrize(
    "body",
    [
        {"contract_id": DEMO_CONTRACT_ID},
        {"customer_id": DEMO_CUSTOMER_ID},
        {"customer_id": "acme", "contract_id": DEMO_CONTRACT_ID},
        {"customer_id": DEMO_CUSTOMER_ID, "contract_id": 7},
        demo(include_credits_and_commits="yes"),
        demo(include_ledgers=1),
        demo(skip_missing_seat_ids=None),
        demo(seat_ids="ada.lovelace@acme.example"),
        demo(seat_ids=[1, 2]),
        demo(subscription_ids=["not-a-uuid"]),
        demo(cursor=None),
        demo(page_size=10),
        demo(ending_before="2026-05-01T00:00:00.000Z"),
    ],
    ids=[
        "no-customer",
        "no-contract",
        "customer-not-uuid",
        "contract-not-string",
        "flag-string",
        "flag-number",
        "flag-null",
        "seat-ids-string",
        "seat-ids-numbers",
        "subscription-not-uuid",
        "cursor-null",
        "unknown-field",
        "prose-only-field",
    ],
)
async def test_malformed_requests_are_400(client: httpx.AsyncClient, body: object) -> None:
    """Missing ids, wrongly typed fields and unknown fields are each a 400."""
    await rejected(client, body)


@pytest.mark.parametrize("limit", [0, 101, -1, True, "10", 2.5, None])
async def test_limit_must_be_an_integer_from_1_to_100(
    client: httpx.AsyncClient, limit: object
) -> None:
    """A limit outside 1..100, or not an integer, is a 400."""
    message = await rejected(client, demo(limit=limit))
    assert "limit" in message


@pytest.mark.parametrize("limit", [1, 100])
async def test_limit_bounds_are_accepted(client: httpx.AsyncClient, limit: int) -> None:
    """Without commits and credits a page holds exactly `limit` seats."""
    page = await ok(client, demo(limit=limit))
    assert page["pagination"]["seats_included"] == limit == len(page["data"])


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "",
        _b64(b"not json"),
        _b64(b'{"seat": "x"}'),
        _b64(b'{"last_seat_id": 3}'),
        _b64(b'["ada.lovelace@acme.example"]'),
        42,
    ],
)
async def test_garbage_cursor_is_400(client: httpx.AsyncClient, cursor: object) -> None:
    """A cursor that is not a next_page token of this endpoint is a 400."""
    message = await rejected(client, demo(cursor=cursor))
    assert "cursor" in message


# --- the include flags ----------------------------------------------------------------------


async def test_without_flags_seats_have_no_commit_keys(client: httpx.AsyncClient) -> None:
    """Without include_credits_and_commits a seat has only seat_id and balances."""
    for body in (demo(), demo(include_ledgers=True)):
        page = await ok(client, body)
        assert {frozenset(seat) for seat in page["data"]} == {frozenset({"seat_id", "balances"})}


async def test_include_credits_and_commits_adds_them_without_ledgers(
    client: httpx.AsyncClient,
) -> None:
    """include_credits_and_commits adds commits and credits, without ledger entries."""
    page = await ok(client, demo(include_credits_and_commits=True, limit=100))
    assert all(set(seat) == {"seat_id", "balances", "commits", "credits"} for seat in page["data"])
    items = [item for seat in page["data"] for item in items_of(seat)]
    assert items
    assert all(set(item) == {"id", "balance", "start_date", "end_date"} for item in items)


async def test_both_flags_add_ledger_entries(client: httpx.AsyncClient) -> None:
    """With both flags every commit and credit carries its ledger entries."""
    page = await ok(client, demo(include_credits_and_commits=True, include_ledgers=True, limit=100))
    items = [item for seat in page["data"] for item in items_of(seat)]
    assert items
    assert all(item["ledger_entries"] for item in items)


async def test_empty_seats_are_served_as_null_or_empty(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """Seats without commits are served with commits null or [] as stored, and no balances."""
    null_seat = next(seat for seat in demo_seats if seat["commits"] is None)
    empty_seat = next(seat for seat in demo_seats if seat["commits"] == [])
    page = await ok(
        client,
        demo(
            seat_ids=[null_seat["seat_id"], empty_seat["seat_id"]], include_credits_and_commits=True
        ),
    )
    served = {seat["seat_id"]: seat for seat in page["data"]}
    assert served[null_seat["seat_id"]]["commits"] is None
    assert served[empty_seat["seat_id"]]["commits"] == []
    assert served[null_seat["seat_id"]]["balances"] == []


# --- pages and the 100 commits/credits cap --------------------------------------------------


async def test_cap_ends_a_page_before_limit_with_next_page_set(
    client: httpx.AsyncClient,
) -> None:
    """A page crossing 100 commits/credits holds fewer seats than limit and still has next_page."""
    page = await ok(client, demo(include_credits_and_commits=True, limit=25))
    seats = page["data"]
    assert len(seats) < 25
    assert page["pagination"]["next_page"] is not None
    counts = [len(items_of(seat)) for seat in seats]
    assert sum(counts[:-1]) < 100 <= sum(counts)

    without = await ok(client, demo(limit=25))
    assert len(without["data"]) == 25


async def test_contract_example_98_then_10_both_fit(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """As in the contract's example, a seat with 98 commits and a later one share one page."""
    position = next(i for i, seat in enumerate(demo_seats) if len(items_of(seat)) == 98)
    following = next(seat for seat in demo_seats[position + 1 :] if len(items_of(seat)) >= 3)
    page = await ok(
        client,
        demo(
            seat_ids=[demo_seats[position]["seat_id"], following["seat_id"]],
            include_credits_and_commits=True,
        ),
    )
    assert [seat["seat_id"] for seat in page["data"]] == [
        demo_seats[position]["seat_id"],
        following["seat_id"],
    ]
    assert sum(len(items_of(seat)) for seat in page["data"]) > 100
    assert page["pagination"]["next_page"] is None


async def test_a_seat_above_the_cap_is_returned_whole(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """A seat with 130 commits/credits fills a page alone, with all 130 of them."""
    position = next(i for i, seat in enumerate(demo_seats) if len(items_of(seat)) == 130)
    cursor = _b64(json.dumps({"last_seat_id": demo_seats[position - 1]["seat_id"]}).encode())
    page = await ok(client, demo(include_credits_and_commits=True, cursor=cursor))
    assert [seat["seat_id"] for seat in page["data"]] == [demo_seats[position]["seat_id"]]
    assert len(items_of(page["data"][0])) == 130
    assert page["pagination"]["next_page"] is not None
    assert page["pagination"]["seats_available_for_next_page"] == len(demo_seats) - position - 1


@pytest.mark.parametrize("limit", [1, 7, 25, 100])
async def test_walking_every_page_returns_every_seat_once_in_order(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]], limit: int
) -> None:
    """Following next_page with commits included returns each seat once, in seat_id order."""
    seen: list[str] = []
    body = demo(include_credits_and_commits=True, limit=limit)
    while True:
        page = await ok(client, body)
        seats, pagination = page["data"], page["pagination"]
        assert pagination["seats_included"] == len(seats) <= limit
        counts = [len(items_of(seat)) for seat in seats]
        assert sum(counts[:-1]) < 100  # the greedy rule: the last seat joined below the cap
        if len(seats) < limit and pagination["next_page"] is not None:
            assert sum(counts) >= 100
        seen += [seat["seat_id"] for seat in seats]
        assert pagination["seats_available_for_next_page"] == len(demo_seats) - len(seen)
        if pagination["next_page"] is None:
            break
        body = {**body, "cursor": pagination["next_page"]}
    assert seen == [seat["seat_id"] for seat in demo_seats]
    assert seen == sorted(set(seen))


async def test_last_page_has_null_next_page(client: httpx.AsyncClient) -> None:
    """Three pages of 100 seats end with a null next_page and no seats left."""
    body = demo(limit=100)
    availability = []
    for _ in range(3):
        page = await ok(client, body)
        availability.append(page["pagination"]["seats_available_for_next_page"])
        body = {**body, "cursor": page["pagination"]["next_page"]}
    assert availability == [200, 100, 0]
    assert page["pagination"]["next_page"] is None


# --- seat and subscription filters ----------------------------------------------------------


async def test_seat_ids_select_those_seats_in_order(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """seat_ids returns only those seats, in seat_id order whatever the request order."""
    wanted = [demo_seats[200]["seat_id"], demo_seats[3]["seat_id"], demo_seats[42]["seat_id"]]
    page = await ok(client, demo(seat_ids=wanted))
    assert [seat["seat_id"] for seat in page["data"]] == sorted(wanted)
    assert page["pagination"]["next_page"] is None


async def test_unknown_seat_id_is_400_unless_skipped(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """An unknown seat id is a 400 naming it, and silently omitted with skip_missing_seat_ids."""
    known = demo_seats[5]["seat_id"]
    message = await rejected(client, demo(seat_ids=[known, "nobody@acme.example"]))
    assert "nobody@acme.example" in message

    page = await ok(
        client, demo(seat_ids=[known, "nobody@acme.example"], skip_missing_seat_ids=True)
    )
    assert [seat["seat_id"] for seat in page["data"]] == [known]


async def test_seat_of_another_account_is_unknown(client: httpx.AsyncClient) -> None:
    """A seat id of the other account is unknown to the demo contract."""
    other = build_dataset()["customers"][OTHER_CUSTOMER_ID]["contracts"][OTHER_CONTRACT_ID]
    await rejected(client, demo(seat_ids=[other["seats"][0]["seat_id"]]))


async def test_subscription_ids_select_their_seats(
    client: httpx.AsyncClient, dataset: dict[str, Any]
) -> None:
    """subscription_ids returns exactly the seats of those seat-based subscriptions."""
    subscriptions = {
        sub["id"]: sub
        for sub in dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID][
            "subscriptions"
        ]
    }
    for subscription_id in DEMO_SUBSCRIPTION_IDS:
        expected = sorted(subscriptions[subscription_id]["seat_ids"])
        seen: list[str] = []
        body = demo(subscription_ids=[subscription_id], limit=100)
        while True:
            page = await ok(client, body)
            seen += [seat["seat_id"] for seat in page["data"]]
            if page["pagination"]["next_page"] is None:
                break
            body = {**body, "cursor": page["pagination"]["next_page"]}
        assert seen == expected


async def test_subscription_and_seat_filters_intersect(
    client: httpx.AsyncClient, dataset: dict[str, Any]
) -> None:
    """A known seat outside the subscription filter is left out, not an error."""
    contract = dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]
    members = {sub["id"]: sub["seat_ids"] for sub in contract["subscriptions"]}
    inside = members[DEMO_SUBSCRIPTION_IDS[0]][0]
    outside = members[DEMO_SUBSCRIPTION_IDS[1]][0]
    page = await ok(
        client, demo(subscription_ids=[DEMO_SUBSCRIPTION_IDS[0]], seat_ids=[inside, outside])
    )
    assert [seat["seat_id"] for seat in page["data"]] == [inside]


async def test_non_seat_based_subscription_is_400(client: httpx.AsyncClient) -> None:
    """A usage subscription, or one not on the contract, in subscription_ids is a 400."""
    message = await rejected(client, demo(subscription_ids=[DEMO_USAGE_SUBSCRIPTION_ID]))
    assert "SEAT_BASED" in message
    await rejected(client, demo(subscription_ids=["00000000-0000-4000-8000-000000000000"]))


# --- date windows ---------------------------------------------------------------------------


def _expected_items(demo_seats: list[dict[str, Any]], keeps: Any) -> dict[str, list[str]]:
    return {
        seat["seat_id"]: [item["id"] for item in items_of(seat) if keeps(item)]
        for seat in demo_seats
    }


async def _all_items(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, list[str]]:
    served: dict[str, list[str]] = {}
    body = {**body, "include_credits_and_commits": True, "limit": 100}
    while True:
        page = await ok(client, body)
        for seat in page["data"]:
            served[seat["seat_id"]] = [item["id"] for item in items_of(seat)]
        if page["pagination"]["next_page"] is None:
            return served
        body = {**body, "cursor": page["pagination"]["next_page"]}


def _end(item: dict[str, Any]) -> datetime | None:
    return None if item["end_date"] is None else instant(item["end_date"])


async def test_covering_date_keeps_commits_whose_window_covers_it(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """covering_date keeps commits and credits with start_date <= d < end_date (or no end)."""
    moment = instant("2026-04-01T00:00:00.000Z")

    def keeps(item: dict[str, Any]) -> bool:
        end = _end(item)
        return instant(item["start_date"]) <= moment and (end is None or moment < end)

    served = await _all_items(client, demo(covering_date="2026-04-01T00:00:00.000Z"))
    assert served == _expected_items(demo_seats, keeps)
    assert 0 < sum(map(len, served.values())) < sum(len(items_of(s)) for s in demo_seats)


async def test_starting_at_and_effective_before_bound_the_window(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """starting_at drops windows ended by then; effective_before drops those starting later."""
    low, high = instant("2026-03-01T00:00:00Z"), instant("2026-06-01T00:00:00Z")

    def keeps(item: dict[str, Any]) -> bool:
        end = _end(item)
        return (end is None or end > low) and instant(item["start_date"]) < high

    served = await _all_items(
        client, demo(starting_at="2026-03-01T00:00:00Z", effective_before="2026-06-01T00:00:00Z")
    )
    assert served == _expected_items(demo_seats, keeps)
    assert 0 < sum(map(len, served.values())) < sum(len(items_of(s)) for s in demo_seats)


async def test_date_windows_do_not_filter_balances(
    client: httpx.AsyncClient, demo_seats: list[dict[str, Any]]
) -> None:
    """Balances stay the seat's totals whatever the date window."""
    page = await ok(
        client,
        demo(include_credits_and_commits=True, covering_date="2020-01-01T00:00:00Z", limit=50),
    )
    assert all(items_of(seat) == [] for seat in page["data"])
    assert [seat["balances"] for seat in page["data"]] == [
        seat["balances"] for seat in demo_seats[:50]
    ]


@pytest.mark.parametrize(
    "extra", [{"starting_at": "2026-01-01T00:00:00Z"}, {"effective_before": "2026-01-01T00:00:00Z"}]
)
async def test_covering_date_with_another_bound_is_400(
    client: httpx.AsyncClient, extra: dict[str, str]
) -> None:
    """covering_date combined with starting_at or effective_before is a 400."""
    message = await rejected(client, demo(covering_date="2026-04-01T00:00:00Z", **extra))
    assert "covering_date" in message


@pytest.mark.parametrize(
    "value", ["2026-05-01", "yesterday", "2026-05-01T00:00:00", "2026-13-01T00:00:00Z", 5]
)
async def test_malformed_dates_are_400(client: httpx.AsyncClient, value: object) -> None:
    """A date filter that is not an RFC 3339 date-time with an offset is a 400."""
    message = await rejected(client, demo(starting_at=value))
    assert "starting_at" in message


# --- the dataset ----------------------------------------------------------------------------


def test_dataset_is_deterministic(dataset: dict[str, Any]) -> None:
    """The same seed builds the same data, and another seed builds other data."""
    assert build_dataset(2026) == dataset
    assert build_dataset(7) != dataset


def test_demo_contract_shape(dataset: dict[str, Any], demo_seats: list[dict[str, Any]]) -> None:
    """300 unique sorted seats, a fifth of them empty, and heavy seats of 98, 60 and 130."""
    seat_ids = [seat["seat_id"] for seat in demo_seats]
    assert len(seat_ids) == 300
    assert seat_ids == sorted(set(seat_ids))
    assert "ada.lovelace@acme.example" in seat_ids
    counts = [len(items_of(seat)) for seat in demo_seats]
    assert 0.15 <= counts.count(0) / len(counts) <= 0.25
    heavy = [count for count in counts if count > 20]
    assert heavy == [98, 60, 130]
    empty = [seat for seat in demo_seats if not items_of(seat)]
    assert {repr(seat["commits"]) for seat in empty} == {"None", "[]"}
    assert {repr(seat["credits"]) for seat in empty} == {"None", "[]"}
    assert all(seat["balances"] == [] for seat in empty)

    subscriptions = dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID][
        "subscriptions"
    ]
    seat_based = [sub for sub in subscriptions if sub["quantity_management_mode"] == "SEAT_BASED"]
    assert [sub["id"] for sub in seat_based] == list(DEMO_SUBSCRIPTION_IDS)
    assert sorted(s for sub in seat_based for s in sub["seat_ids"]) == seat_ids
    assert DEMO_USAGE_SUBSCRIPTION_ID in {sub["id"] for sub in subscriptions}
    assert DEMO_USAGE_SUBSCRIPTION_ID not in DEMO_SUBSCRIPTION_IDS


def test_every_ledger_type_appears_on_its_own_kind(demo_seats: list[dict[str, Any]]) -> None:
    """All 16 ledger types appear, commit types on commits and credit types on credits."""
    commit_types = {
        entry["type"]
        for seat in demo_seats
        for item in seat["commits"] or []
        for entry in item["ledger_entries"]
    }
    credit_types = {
        entry["type"]
        for seat in demo_seats
        for item in seat["credits"] or []
        for entry in item["ledger_entries"]
    }
    assert commit_types == COMMIT_LEDGER_TYPES
    assert credit_types == CREDIT_LEDGER_TYPES


def test_commit_ids_are_shared_across_seats(demo_seats: list[dict[str, Any]]) -> None:
    """The same commit id appears under many seats, with different per-seat balances."""
    balances: dict[str, list[object]] = {}
    for seat in demo_seats:
        ids = [item["id"] for item in items_of(seat)]
        assert len(ids) == len(set(ids))  # an id appears at most once per seat
        for item in items_of(seat):
            balances.setdefault(item["id"], []).append(item["balance"])
    shared = {item_id: seen for item_id, seen in balances.items() if len(seen) > 1}
    assert len(shared) >= 5
    assert any(len(set(seen)) > 1 for seen in shared.values())


def test_numbers_mix_integers_and_floats(dataset: dict[str, Any]) -> None:
    """JSON integers and non-integral floats both occur in the served numbers."""
    seen = list(numbers(dataset["customers"]))
    assert any(isinstance(value, int) for value in seen)
    assert any(isinstance(value, float) and not value.is_integer() for value in seen)


def test_ledgers_add_up(dataset: dict[str, Any], demo_seats: list[dict[str, Any]]) -> None:
    """A commit's balance is its ledger's sum; a seat's balances sum its commits per credit type."""
    catalogue = dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]["commits"]
    credit_type_of = {entry["id"]: entry["credit_type_id"] for entry in catalogue}
    for seat in demo_seats:
        expected: dict[str, dict[str, float]] = {}
        for item in items_of(seat):
            ledger = item["ledger_entries"]
            assert item["balance"] == sum(entry["amount"] for entry in ledger)
            assert ledger[0]["type"].endswith("SEGMENT_START") and ledger[0]["amount"] > 0
            assert all(
                entry["amount"] <= 0
                for entry in ledger
                if entry["type"].endswith(("DEDUCTION", "EXPIRATION", "CANCELED"))
            )
            assert [e["timestamp"] for e in ledger] == sorted(e["timestamp"] for e in ledger)
            totals = expected.setdefault(
                credit_type_of[item["id"]], {"balance": 0, "starting_balance": 0}
            )
            totals["balance"] += item["balance"]
            totals["starting_balance"] += ledger[0]["amount"]
        assert {
            balance["credit_type_id"]: {
                "balance": balance["balance"],
                "starting_balance": balance["starting_balance"],
            }
            for balance in seat["balances"]
        } == expected
        assert len(seat["balances"]) == len(expected)


def test_timestamps_are_rfc3339_with_milliseconds(demo_seats: list[dict[str, Any]]) -> None:
    """Dates are written like 2026-05-01T00:00:00.000Z, and some end dates are open."""
    items = [item for seat in demo_seats for item in items_of(seat)]
    stamps = [item["start_date"] for item in items] + [
        entry["timestamp"] for item in items for entry in item["ledger_entries"]
    ]
    assert all(len(stamp) == 24 and stamp.endswith(".000Z") for stamp in stamps)
    assert any(item["end_date"] is None for item in items)


def test_other_account_is_separate(dataset: dict[str, Any]) -> None:
    """The second account has about forty globex seats and only its own token."""
    other = dataset["customers"][OTHER_CUSTOMER_ID]["contracts"][OTHER_CONTRACT_ID]
    assert len(other["seats"]) == 40
    assert all(seat["seat_id"].endswith("@globex.example") for seat in other["seats"])
    assert dataset["tokens"] == {DEMO_TOKEN: [DEMO_CUSTOMER_ID], OTHER_TOKEN: [OTHER_CUSTOMER_ID]}
