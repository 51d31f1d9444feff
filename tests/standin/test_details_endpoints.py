"""The stand-in's "List balances" and credit types endpoints, driven over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_SUBSCRIPTION_IDS,
    DEMO_TOKEN,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
    build_dataset,
    create_standin_app,
)

BALANCES = "/v1/contracts/customerBalances/list"
CREDIT_TYPES = "/v1/credit-types/list"
USD = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"


@pytest.fixture(scope="module")
def dataset() -> dict[str, Any]:
    return build_dataset()


@pytest.fixture(scope="module")
def seats(dataset: dict[str, Any]) -> list[dict[str, Any]]:
    contract = dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]
    return contract["seats"]  # type: ignore[no-any-return]


@pytest.fixture
async def client(dataset: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_standin_app(dataset))
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://standin",
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    ) as http:
        yield http


def held_items(seats: list[dict[str, Any]]) -> dict[str, tuple[str, list[dict[str, Any]]]]:
    """Every id a seat holds -> ("commits" or "credits", the seat items with that id)."""
    held: dict[str, tuple[str, list[dict[str, Any]]]] = {}
    for seat in seats:
        for kind in ("commits", "credits"):
            for item in seat[kind] or []:
                held.setdefault(item["id"], (kind, []))[1].append(item)
    return held


async def whole_list(client: httpx.AsyncClient, **body: Any) -> tuple[list[dict[str, Any]], int]:
    """Every item of the demo customer's list, and the number of pages it took."""
    items: list[dict[str, Any]] = []
    body = {"customer_id": DEMO_CUSTOMER_ID, **body}
    pages = 0
    while True:
        response = await client.post(BALANCES, json=body)
        assert response.status_code == 200, response.text
        pages += 1
        page = response.json()
        items += page["data"]
        if not page["next_page"]:
            return items, pages
        body["next_page"] = page["next_page"]


async def test_every_seat_commit_and_credit_has_its_details(
    client: httpx.AsyncClient, seats: list[dict[str, Any]]
) -> None:
    """Each id a seat holds is one item of the list, of its kind, with the seat's dates, a
    product, a priority and a schedule that adds up to what its seats started with."""
    items, _ = await whole_list(client, include_contract_balances=True)
    by_id = {item["id"]: item for item in items}
    held = held_items(seats)
    assert len(held) > 200
    for item_id, (kind, seat_items) in held.items():
        item = by_id[item_id]
        assert (item["type"] == "CREDIT") == (kind == "credits")
        assert item["name"] and item["product"]["name"] and item["priority"] > 0
        assert item["contract"] == {"id": DEMO_CONTRACT_ID}
        schedule = item["access_schedule"]["schedule_items"]
        assert schedule[0]["starting_at"] == seat_items[0]["start_date"]
        if seat_items[0]["end_date"]:
            assert schedule[-1]["ending_before"] == seat_items[0]["end_date"]
        started = sum(s["ledger_entries"][0]["amount"] for s in seat_items)
        assert sum(entry["amount"] for entry in schedule) == started


async def test_seat_commits_need_include_contract_balances(
    client: httpx.AsyncClient, seats: list[dict[str, Any]]
) -> None:
    """Without include_contract_balances a seat commit is not found, and the list holds only
    customer-level items (one of them of a type the API may add later)."""
    commit_id = next(seat["commits"][0]["id"] for seat in seats if seat["commits"])
    body = {"customer_id": DEMO_CUSTOMER_ID, "id": commit_id}
    assert (await client.post(BALANCES, json=body)).json() == {"data": [], "next_page": None}
    found = (await client.post(BALANCES, json={**body, "include_contract_balances": True})).json()
    assert [item["id"] for item in found["data"]] == [commit_id]
    items, pages = await whole_list(client)
    assert pages == 1
    assert sorted(item["type"] for item in items) == ["MARKETPLACE_CREDIT", "POSTPAID"]
    assert all("contract" not in item for item in items)


async def test_whole_list_pages_by_id(client: httpx.AsyncClient) -> None:
    """The list comes in pages of at most 25 ordered by id, without duplicates; an archived
    item only with include_archived."""
    items, pages = await whole_list(client, include_contract_balances=True)
    ids = [item["id"] for item in items]
    assert ids == sorted(set(ids))
    assert len(items) == 270 and pages == 11
    with_archived, _ = await whole_list(
        client, include_contract_balances=True, include_archived=True
    )
    assert {item["name"] for item in with_archived} - {item["name"] for item in items} == {
        "Archived goodwill credit"
    }
    small, small_pages = await whole_list(client, include_contract_balances=True, limit=1)
    assert small == items and small_pages == 270


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"limit": 26}, "limit must be an integer from 1 to 25"),
        ({"limit": 0}, "limit must be an integer from 1 to 25"),
        ({"ids": []}, "Unknown field(s): ids"),
        ({"next_page": "nope"}, "next_page is not a token of this endpoint"),
        ({"include_ledgers": True}, "include_ledgers is not served by the stand-in"),
        ({"id": "not-a-uuid"}, 'id must be a UUID string, got "not-a-uuid"'),
    ],
)
async def test_bad_balances_requests_are_400(
    client: httpx.AsyncClient, body: dict[str, Any], message: str
) -> None:
    """A wrong request body is a 400 with a message saying what is wrong."""
    response = await client.post(BALANCES, json={"customer_id": DEMO_CUSTOMER_ID, **body})
    assert (response.status_code, response.json()) == (400, {"message": message})


async def test_balances_are_per_token(client: httpx.AsyncClient) -> None:
    """A token sees only its own customers' balances; no token is a 401."""
    other = await client.post(
        BALANCES,
        json={"customer_id": DEMO_CUSTOMER_ID},
        headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
    )
    assert other.status_code == 404
    own = await client.post(
        BALANCES,
        json={"customer_id": OTHER_CUSTOMER_ID, "include_contract_balances": True},
        headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
    )
    assert len(own.json()["data"]) == 6
    anonymous = await client.post(
        BALANCES, json={"customer_id": DEMO_CUSTOMER_ID}, headers={"Authorization": ""}
    )
    assert anonymous.status_code == 401


async def test_subscription_config_follows_the_seats(
    client: httpx.AsyncClient, dataset: dict[str, Any], seats: list[dict[str, Any]]
) -> None:
    """Pooled commits belong to a seat-based subscription; a heavy seat's own items are
    INDIVIDUAL and belong to that seat's subscription."""
    items, _ = await whole_list(client, include_contract_balances=True)
    by_id = {item["id"]: item for item in items}
    contract = dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]
    subscription_of = {
        seat_id: sub["id"] for sub in contract["subscriptions"] for seat_id in sub["seat_ids"]
    }
    held = held_items(seats)
    heavy = next(seat for seat in seats if len(seat["commits"] or []) > 40)
    for kind in ("commits", "credits"):
        for seat_item in heavy[kind]:
            config = by_id[seat_item["id"]]["subscription_config"]
            if len(held[seat_item["id"]][1]) == 1:
                assert config == {
                    "subscription_id": subscription_of[heavy["seat_id"]],
                    "allocation": "INDIVIDUAL",
                }
            else:
                assert config["allocation"] == "POOLED"
                assert config["subscription_id"] in DEMO_SUBSCRIPTION_IDS


async def test_include_balance_sums_the_seats(
    client: httpx.AsyncClient, seats: list[dict[str, Any]]
) -> None:
    """include_balance adds the item's balance: the sum of its per-seat balances."""
    item_id, (_, seat_items) = next(iter(held_items(seats).items()))
    body = {
        "customer_id": DEMO_CUSTOMER_ID,
        "id": item_id,
        "include_contract_balances": True,
        "include_balance": True,
    }
    (item,) = (await client.post(BALANCES, json=body)).json()["data"]
    assert item["balance"] == sum(s["balance"] for s in seat_items)


async def test_credit_types_take_two_pages(client: httpx.AsyncClient) -> None:
    """123 credit types come in two pages of at most 100, USD among them as a currency, and
    every credit type a seat balance names is listed."""
    first = (await client.get(CREDIT_TYPES, params={"limit": 100})).json()
    assert len(first["data"]) == 100 and first["next_page"]
    second = (
        await client.get(CREDIT_TYPES, params={"limit": 100, "next_page": first["next_page"]})
    ).json()
    assert len(second["data"]) == 23 and second["next_page"] is None
    listed = {ct["id"]: ct for ct in first["data"] + second["data"]}
    assert len(listed) == 123
    assert listed[USD] == {"id": USD, "name": "USD (cents)", "is_currency": True}
    assert any("is_currency" not in ct for ct in listed.values())


async def test_credit_types_cover_the_seats(
    client: httpx.AsyncClient, seats: list[dict[str, Any]]
) -> None:
    """Every credit type a seat's balance names is in the listing."""
    listed: set[str] = set()
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = (await client.get(CREDIT_TYPES, params=params)).json()
        listed |= {ct["id"] for ct in page["data"]}
        if not page["next_page"]:
            break
        params["next_page"] = page["next_page"]
    named = {balance["credit_type_id"] for seat in seats for balance in seat["balances"]}
    assert named and named <= listed


@pytest.mark.parametrize(
    "params", [{}, {"limit": "0"}, {"limit": "101"}, {"limit": "ten"}, {"limit": "5", "x": "1"}]
)
async def test_bad_credit_types_requests_are_400(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """A missing or out-of-range limit, or an unknown parameter, is a 400."""
    response = await client.get(CREDIT_TYPES, params=params)
    assert response.status_code == 400 and response.json()["message"]


async def test_credit_types_need_a_token(client: httpx.AsyncClient) -> None:
    """Listing credit types without a known token is a 401; POST is a 405."""
    response = await client.get(
        CREDIT_TYPES, params={"limit": 5}, headers={"Authorization": "Bearer nope"}
    )
    assert response.status_code == 401
    assert (await client.post(CREDIT_TYPES)).status_code == 405
