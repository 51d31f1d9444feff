"""Commit, credit and credit type details: lazy, batched, cached per credential, nullable.

Over a real gateway whose upstream is the stand-in (its data is the reference), counting every
upstream call; faults come from an ``httpx.MockTransport`` that breaks one path only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.config import Settings
from gateway.loaders import Loaders
from gateway.loaders.details import CreditTypeCache, DetailKey
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
    build_dataset,
    create_standin_app,
)
from gateway.upstream import BillingClient
from tests.support import BUDGET, DEFAULT_POLICY, Gateway, SleepRecorder, running_gateway, serve

BALANCES = "/v1/contracts/customerBalances/list"
CREDIT_TYPES = "/v1/credit-types/list"
SEATS_PATH = "/v1/contracts/seatBalances/list"
AI_TOKENS = "b0db0d66-c8f6-438c-b925-a133746ff2c0"

DATA = build_dataset()
DEMO = DATA["customers"][DEMO_CUSTOMER_ID]
SEATS = DEMO["contracts"][DEMO_CONTRACT_ID]["seats"]
ITEMS = {item["id"]: item for item in DEMO["balances"]}
LIST_ORDER = sorted(i for i in ITEMS if i not in DEMO["archived_balance_ids"])
CREDIT_TYPE_NAMES = {ct["id"]: ct["name"] for ct in DATA["credit_types"]}

FRAGMENTS = """
fragment CommitDetails on Commit {
  commitId name description product { id name } type priority
  accessSchedule { id amount startingAt endingBefore } customFields { key value }
  allocation subscriptionId
}
fragment CreditDetails on Credit {
  creditId name description product { id name } priority
  accessSchedule { id amount startingAt endingBefore } customFields { key value }
  allocation subscriptionId
}"""
SEATS_QUERY = (
    "query($first: Int, $seatIds: [String!]) { seatBalances("
    f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", '
    "first: $first, seatIds: $seatIds) { nodes { seatId SELECTION } } }"
)


def selected(selection: str) -> str:
    """The demo contract's seats (``first`` or ``seatIds``) with ``selection`` on each."""
    return SEATS_QUERY.replace("SELECTION", selection)


DETAILS = selected("commits { ...CommitDetails } credits { ...CreditDetails }") + FRAGMENTS


def held_ids(seats: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for s in seats for item in (s["commits"] or []) + (s["credits"] or [])]


def shown(item_id: str, kind: str) -> dict[str, Any]:
    """What the gateway must answer for a commit or credit: the stand-in's item, renamed."""
    item = ITEMS[item_id]
    config = item.get("subscription_config") or {}
    fields = item.get("custom_fields")
    answer = {
        "commitId" if kind == "commits" else "creditId": item_id,
        "name": item["name"],
        "description": item.get("description"),
        "product": item["product"],
        "priority": item["priority"],
        "accessSchedule": [
            {
                "id": s["id"],
                "amount": s["amount"],
                "startingAt": s["starting_at"],
                "endingBefore": s["ending_before"],
            }
            for s in item["access_schedule"]["schedule_items"]
        ],
        "customFields": None
        if fields is None
        else [{"key": k, "value": v} for k, v in fields.items()],
        "allocation": config.get("allocation"),
        "subscriptionId": config.get("subscription_id"),
    }
    if kind == "commits":
        answer["type"] = item["type"]
    return answer


def detail_calls(gateway: Gateway) -> list[dict[str, Any]]:
    return [call.body for call in gateway.calls if call.path == BALANCES]


@pytest.fixture
def fresh(settings: Settings) -> Iterator[Gateway]:
    """A gateway of its own: an empty credit type cache."""
    with running_gateway(settings) as gateway:
        yield gateway


def test_details_are_the_billing_apis_and_each_id_is_fetched_once(gateway: Gateway) -> None:
    """Ten seats holding 26 commits and credits of 9 distinct ids cost one seat page and one
    call per distinct id, and every detail is the billing API's."""
    data = gateway.query(DETAILS, {"first": 10})
    seats = data["seatBalances"]["nodes"]
    distinct = sorted(set(held_ids(SEATS[:10])))
    assert (len(held_ids(SEATS[:10])), len(distinct)) == (26, 9)
    for seat, reference in zip(seats, SEATS[:10], strict=True):
        for kind in ("commits", "credits"):
            assert seat[kind] == [shown(item["id"], kind) for item in reference[kind] or []]
    assert [call.path for call in gateway.calls] == [SEATS_PATH] + [BALANCES] * 9
    assert sorted(detail_calls(gateway), key=lambda body: body["id"]) == [
        {
            "customer_id": DEMO_CUSTOMER_ID,
            "id": item_id,
            "include_contract_balances": True,
            "limit": 25,
        }
        for item_id in distinct
    ]


def test_many_ids_page_through_the_customers_list(gateway: Gateway) -> None:
    """A seat with 98 commits and credits pages the customer's list (11 pages of 25) instead
    of making 98 calls."""
    heavy = SEATS[10]
    assert len(held_ids([heavy])) == 98
    data = gateway.query(DETAILS, {"seatIds": [heavy["seat_id"]]})
    (seat,) = data["seatBalances"]["nodes"]
    assert [c["name"] for c in seat["commits"]] == [
        ITEMS[c["id"]]["name"] for c in heavy["commits"]
    ]
    assert seat["credits"] == [shown(c["id"], "credits") for c in heavy["credits"]]
    pages = detail_calls(gateway)
    assert [call.path for call in gateway.calls] == [SEATS_PATH] + [BALANCES] * 11
    assert pages[0] == {
        "customer_id": DEMO_CUSTOMER_ID,
        "include_contract_balances": True,
        "limit": 25,
    }
    assert all(set(page) == {*pages[0], "next_page"} for page in pages[1:])
    assert len({page["next_page"] for page in pages[1:]}) == 10


def seats_query(selection: str, conditions: tuple[str, ...] = (), fragments: str = "") -> str:
    """First five demo seats with ``selection``; ``conditions`` are Boolean! variables."""
    declared = "".join(f", ${name}: Boolean!" for name in conditions)
    return (
        f'query($first: Int{declared}) {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", '
        f'contractId: "{DEMO_CONTRACT_ID}", first: $first) {{ nodes {{ seatId {selection} }} }} }}'
        f" {fragments}"
    )


def test_batches_of_one_operation_share_one_scan(gateway: Gateway) -> None:
    """A page of 25 seats with a heavy one pages the list once (11 calls), although its
    commits and credits are loaded in two batches of 53 and 45 ids (ledgerEntries, an async
    resolver, puts the credits a tick behind)."""
    data = gateway.query(
        selected("commits { name ledgerEntries { type } } credits { name }"),
        {"first": 25},
    )
    seats = data["seatBalances"]["nodes"]
    assert [seat["seatId"] for seat in seats] == [seat["seat_id"] for seat in SEATS[:11]]
    for seat, reference in zip(seats, SEATS, strict=False):
        for kind in ("commits", "credits"):
            assert [c["name"] for c in seat[kind]] == [
                ITEMS[c["id"]]["name"] for c in reference[kind] or []
            ]
    assert [call.path for call in gateway.calls] == [SEATS_PATH] + [BALANCES] * 11


@pytest.mark.parametrize(
    ("query", "variables"),
    [
        (seats_query("balances { balance } commits { commitId } credits { creditId }"), {}),
        (seats_query("commits { commitId name @skip(if: true) }"), {}),
        (
            seats_query("commits { commitId ... on Commit @include(if: $yes) { name } }", ("yes",)),
            {"yes": False},
        ),
        (seats_query("balances { creditType @skip(if: $no) { name } }", ("no",)), {"no": True}),
        (
            seats_query(
                "credits { ...Named @skip(if: $no) }", ("no",), "fragment Named on Credit { name }"
            ),
            {"no": True},
        ),
    ],
)
def test_no_detail_field_no_extra_call(
    gateway: Gateway, query: str, variables: dict[str, Any]
) -> None:
    """Without a detail field that is executed, an operation costs only its seat page."""
    gateway.query(query, {"first": 5, **variables})
    assert [call.path for call in gateway.calls] == [SEATS_PATH]


@pytest.mark.parametrize(
    ("query", "kinds"),
    [
        (seats_query("commits { label: name } credits { creditId }"), ["commits"]),
        (
            seats_query(
                "commits { commitId } ...Held", (), "fragment Held on Seat { credits { name } }"
            ),
            ["credits"],
        ),
        (
            seats_query("credits { ... on Credit @include(if: true) { product { name } } }"),
            ["credits"],
        ),
    ],
)
def test_aliases_and_fragments_of_detail_fields_fetch_them(
    gateway: Gateway, query: str, kinds: list[str]
) -> None:
    """A detail field behind an alias or a fragment is fetched, once per distinct id of the
    commits or credits it is selected on."""
    gateway.query(query, {"first": 5})
    wanted = {item["id"] for seat in SEATS[:5] for kind in kinds for item in seat[kind] or []}
    assert sorted(body["id"] for body in detail_calls(gateway)) == sorted(wanted)


def test_credit_types_are_listed_once_per_credential(fresh: Gateway) -> None:
    """The first creditType of a credential lists the credit types (two pages of 100); later
    operations within the TTL list none; another credential lists its own."""
    query = selected("balances { creditTypeId creditType { id name isCurrency } }")
    data = fresh.query(query, {"first": 5})
    for seat in data["seatBalances"]["nodes"]:
        for balance in seat["balances"]:
            assert balance["creditType"]["id"] == balance["creditTypeId"]
            assert balance["creditType"]["name"] == CREDIT_TYPE_NAMES[balance["creditTypeId"]]
    listings = [call for call in fresh.calls if call.path == CREDIT_TYPES]
    assert [call.params.get("limit") for call in listings] == ["100", "100"]
    assert "next_page" not in listings[0].params and listings[1].params["next_page"]
    assert len(fresh.calls) == 3

    fresh.calls.clear()
    fresh.query(query, {"first": 7})
    assert [call.path for call in fresh.calls] == [SEATS_PATH]

    fresh.calls.clear()
    other = f"""{{ seatBalances(customerId: "{OTHER_CUSTOMER_ID}", contractId: "{OTHER_CONTRACT_ID}", first: 3) {{
        nodes {{ balances {{ creditType {{ name }} }} }} }} }}"""
    fresh.query(other, token=OTHER_TOKEN)
    assert [(c.path, c.authorization) for c in fresh.calls] == [
        (SEATS_PATH, f"Bearer {OTHER_TOKEN}"),
        (CREDIT_TYPES, f"Bearer {OTHER_TOKEN}"),
        (CREDIT_TYPES, f"Bearer {OTHER_TOKEN}"),
    ]


def test_an_unknown_credit_type_is_null_without_error() -> None:
    """A credit type the listing does not have gives creditType null, and no error."""
    dataset = build_dataset()
    dataset["credit_types"] = [ct for ct in dataset["credit_types"] if ct["id"] != AI_TOKENS]
    with (
        serve(create_standin_app(dataset)) as url,
        running_gateway(Settings(metronome_base_url=url)) as gateway,
    ):
        query = selected("balances { creditTypeId creditType { name } }")
        data = gateway.query(query, {"first": 10})  # raises on any error
    balances = [b for seat in data["seatBalances"]["nodes"] for b in seat["balances"]]
    assert {b["creditTypeId"] for b in balances if b["creditType"] is None} == {AI_TOKENS}
    assert any(b["creditType"] for b in balances)


def failing(path: str) -> httpx.MockTransport:
    """The stand-in (in process), except that ``path`` answers 503."""
    standin = httpx.ASGITransport(app=create_standin_app())

    async def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == path:
            return httpx.Response(503, json={"message": "down for maintenance"})
        response = await standin.handle_async_request(request)
        content = await response.aread()
        return httpx.Response(response.status_code, headers=response.headers, content=content)

    return httpx.MockTransport(handler)


def test_a_failed_detail_call_nulls_its_fields_and_keeps_the_balances() -> None:
    """When List balances fails, the detail fields are null with UPSTREAM_UNAVAILABLE at their
    paths, after the usual retries; seats, balances and commit ids are still answered."""
    query = selected("balances { balance } commits { commitId name priority }")
    with running_gateway(
        Settings(metronome_base_url="http://billing.invalid"),
        failing(BALANCES),
        retry_sleep=SleepRecorder(),
    ) as gateway:
        payload = gateway.post(query, {"seatIds": [SEATS[0]["seat_id"]]}).json()
        calls = [call.path for call in gateway.calls]
    (seat,) = payload["data"]["seatBalances"]["nodes"]
    assert seat["balances"] == [{"balance": b["balance"]} for b in SEATS[0]["balances"]]
    commits = SEATS[0]["commits"]
    assert seat["commits"] == [
        {"commitId": c["id"], "name": None, "priority": None} for c in commits
    ]
    assert sorted(
        (tuple(error["path"]), error["extensions"]["code"]) for error in payload["errors"]
    ) == sorted(
        (("seatBalances", "nodes", 0, "commits", n, field), "UPSTREAM_UNAVAILABLE")
        for n in range(len(commits))
        for field in ("name", "priority")
    )
    assert calls == [SEATS_PATH] + [BALANCES] * 3 * len(commits)  # two retries each


def test_a_failed_credit_type_listing_nulls_credit_type_only() -> None:
    """When the credit types cannot be listed, creditType is null with an error at its path
    and the balances are answered; the failure is not cached."""
    query = selected("balances { balance creditType { name } }")
    with running_gateway(
        Settings(metronome_base_url="http://billing.invalid", upstream_max_retries=0),
        failing(CREDIT_TYPES),
    ) as gateway:
        for _ in range(2):
            gateway.calls.clear()
            payload = gateway.post(query, {"seatIds": [SEATS[0]["seat_id"]]}).json()
            assert [call.path for call in gateway.calls] == [SEATS_PATH, CREDIT_TYPES]
    (seat,) = payload["data"]["seatBalances"]["nodes"]
    assert seat["balances"] == [
        {"balance": b["balance"], "creditType": None} for b in SEATS[0]["balances"]
    ]
    assert [(e["path"], e["extensions"]["code"]) for e in payload["errors"]] == [
        (["seatBalances", "nodes", 0, "balances", n, "creditType"], "UPSTREAM_UNAVAILABLE")
        for n in range(len(SEATS[0]["balances"]))
    ]


def test_node_and_entities_answer_details(gateway: Gateway) -> None:
    """A commit refetched by id and seats found as entities answer their details, one call
    per distinct id on top of the seat lookup."""
    first = gateway.query(selected("commits { id commitId }"), {"first": 1})
    commit = first["seatBalances"]["nodes"][0]["commits"][0]
    gateway.calls.clear()
    data = gateway.query(
        "query($id: ID!) { node(id: $id) { ... on Commit { commitId name type product { name } } } }",
        {"id": commit["id"]},
    )
    item = ITEMS[commit["commitId"]]
    assert data["node"] == {
        "commitId": commit["commitId"],
        "name": item["name"],
        "type": item["type"],
        "product": {"name": item["product"]["name"]},
    }
    assert [call.path for call in gateway.calls] == [SEATS_PATH, BALANCES]

    gateway.calls.clear()
    representations = [
        {
            "__typename": "Seat",
            "customerId": DEMO_CUSTOMER_ID,
            "contractId": DEMO_CONTRACT_ID,
            "seatId": seat["seat_id"],
        }
        for seat in SEATS[:4]
    ]
    data = gateway.query(
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Seat { "
        "commits { commitId name } credits { creditId name } } } }",
        {"r": representations},
    )
    for entity, seat in zip(data["_entities"], SEATS[:4], strict=True):
        assert [c["name"] for c in entity["commits"]] == [
            ITEMS[c["id"]]["name"] for c in seat["commits"] or []
        ]
        assert [c["name"] for c in entity["credits"]] == [
            ITEMS[c["id"]]["name"] for c in seat["credits"] or []
        ]
    distinct = set(held_ids(SEATS[:4]))
    assert [call.path for call in gateway.calls] == [SEATS_PATH] + [BALANCES] * len(distinct)


def test_the_call_budget_counts_detail_calls(settings: Settings) -> None:
    """With a budget of 4 calls, the seat page and three detail calls are made; the other
    details fail with MAX_UPSTREAM_CALLS_LIMIT and the seats are still answered."""
    query = selected("commits { commitId name } credits { creditId name }")
    with running_gateway(settings.model_copy(update={"max_upstream_calls": 4})) as gateway:
        payload = gateway.post(query, {"first": 5}).json()
        assert len(gateway.calls) == 4
    seats = payload["data"]["seatBalances"]["nodes"]
    assert [seat["seatId"] for seat in seats] == [seat["seat_id"] for seat in SEATS[:5]]
    named = {
        c.get("commitId") or c["creditId"]
        for s in seats
        for c in s["commits"] + s["credits"]
        if c["name"]
    }
    assert len(named) == 3
    assert payload["errors"]
    assert {e["extensions"]["code"] for e in payload["errors"]} == {"MAX_UPSTREAM_CALLS_LIMIT"}
    assert all(e["path"][-1] == "name" for e in payload["errors"])


@pytest.mark.parametrize(
    "query",
    [
        DETAILS,
        selected("balances { creditTypeId creditType { id name isCurrency } } commits { name }"),
        selected("commits { commitId balance ledgerEntries { type } }"),  # projected whole
    ],
)
async def test_projection_and_graphql_core_answer_details_alike(query: str) -> None:
    """Detail fields have no reader, so the objects selecting them are completed by
    graphql-core by construction: the same bytes with the projection on and off."""
    settings = Settings(metronome_base_url="http://standin")
    bodies = []
    for fast_path in (True, False):
        app = create_app(
            settings.model_copy(update={"fast_path": fast_path}),
            transport=httpx.ASGITransport(app=create_standin_app()),
        )
        async with (
            LifespanManager(app) as running,  # type: ignore[arg-type]
            httpx.AsyncClient(
                transport=httpx.ASGITransport(running.app), base_url="http://gw"
            ) as http,
        ):
            response = await http.post(
                "/graphql",
                json={"query": query, "variables": {"first": 3}},
                headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
            )
            bodies.append(response.content)
    assert bodies[0] == bodies[1]
    assert b'"errors"' not in bodies[0] and b'"seatId"' in bodies[0]


# --- the loaders, in process, for what the stand-in never does -----------------------------------


def scripted(*answers: httpx.Response) -> tuple[Loaders, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    script = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return script.pop(0)

    client = BillingClient(httpx.MockTransport(handler), "http://billing", DEFAULT_POLICY)
    return Loaders(client, "t", max_calls=BUDGET), seen


ITEM = {"id": "62c0cb84-bf3f-48b9-9bcf-a8ddf8c1cf35", "type": "PREPAID", "name": "Q3"}


async def test_an_empty_page_with_next_page_is_followed() -> None:
    """List balances may answer an empty page with a next_page: the loader follows it."""
    loaders, seen = scripted(
        httpx.Response(200, json={"data": [], "next_page": "p2"}),
        httpx.Response(200, json={"data": [ITEM], "next_page": None}),
    )
    assert await loaders.detail(DetailKey("c", ITEM["id"])) == ITEM
    assert len(seen) == 2 and loaders.upstream_calls == 2


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(404, json={"message": "Commit not found"}),
        httpx.Response(200, json={"data": [], "next_page": None}),
    ],
)
async def test_an_unknown_id_is_none(answer: httpx.Response) -> None:
    """An id the billing API does not know (404 or an empty list) is None, not an error."""
    loaders, _ = scripted(answer)
    assert await loaders.detail(DetailKey("c", ITEM["id"])) is None


async def test_a_scan_stops_once_every_id_is_seen() -> None:
    """Paging the list stops at the page holding the last wanted id, and the other items it
    saw answer later loads of the request without a call."""
    items = [{"id": f"{n:08d}-0000-4000-8000-000000000000", "type": "CREDIT"} for n in range(30)]
    loaders, seen = scripted(
        httpx.Response(200, json={"data": items[:15], "next_page": "p2"}),
        httpx.Response(200, json={"data": items[15:], "next_page": "p3"}),
    )
    wanted = [DetailKey("c", item["id"]) for item in items[::2][:11]]  # ids 0..20
    found = await loaders.details.load_many(wanted)
    assert [item["id"] for item in found] == [key.item_id for key in wanted]
    assert len(seen) == 2
    assert await loaders.detail(DetailKey("c", items[29]["id"])) == items[29]
    assert len(seen) == 2


def test_credit_type_cache_is_bounded_keyed_by_hash_and_expires() -> None:
    """Entries expire after the TTL, the least recently used go past the bound, and a TTL of 0
    keeps nothing."""
    now = [0.0]
    cache = CreditTypeCache(ttl=300, max_entries=2, clock=lambda: now[0])
    types: dict[str, Any] = {"u": {"id": "u", "name": "USD"}}
    cache.put("token-a", types)
    cache.put("token-b", {})
    assert cache.get("token-a") == types and cache.get("token-c") is None
    cache.put("token-c", {})
    assert cache.get("token-b") is None and len(cache) == 2  # b was least recently used
    now[0] = 300.0
    assert cache.get("token-a") is None
    never = CreditTypeCache(ttl=0)
    never.put("token-a", types)
    assert never.get("token-a") is None and len(never) == 0
