"""Live seat balances in one process (issue 26): ``seatBalanceUpdates`` over graphql-sse (a
streamed POST, parsed event by event) and graphql-transport-ws (the ``websockets`` client), from
a real gateway on 127.0.0.1 to the stand-in on its own port, whose balances the stand-in's own
demo usage moves (``DemoActivity.step``). Webhooks are signed as the billing API signs them.

Upstream calls are counted exactly where they matter: a subscription costs one listing read,
shared by every subscriber of that listing, and a refused subscription or webhook costs none.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import email.utils
import itertools
import json
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
import websockets
from starlette.applications import Starlette
from websockets.typing import Subprotocol

from gateway.config import Settings
from gateway.live import LiveHub, LiveListing, LiveSettings, LocalBus
from gateway.live.hub import SubscriberTooSlow
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    DemoActivity,
    build_dataset,
    create_standin_app,
    sign_webhook,
)
from gateway.standin.app import standin_dataset
from gateway.standin.live import ALERT_EVENT_TYPE
from gateway.upstream import BillingClient
from gateway.upstream.transport import billing_transport
from gateway.upstream.wire import MAX_SEATS_PER_PAGE, Listing
from tests.support import DEFAULT_POLICY, Gateway, running_gateway, serve

WEBHOOK_SECRET = "live-tests-webhook-secret"
JWT_SECRET = "live-tests-jwt-secret-of-at-least-32-bytes"
# A second billing token for the demo customer (two credentials, one customer), and an
# operator's token that reads both customers (so that FORBIDDEN is the gateway's doing).
SECOND_TOKEN = "second-demo-token"
OPERATOR_TOKEN = "operator-token"
SEED = 1
WAIT = 10.0  # a safety net: every awaited message comes long before it
SILENCE = 0.3  # how long "no message" is watched for, after what would have caused one

BALANCES = "seatId balances { creditTypeId balance }"
CREDIT_TYPES = "seatId balances { creditTypeId }"
COMMITS = "seatId commits { id balance }"
LEDGERS = "seatId commits { id balance ledgerEntries { amount } }"


def subscription(selection: str = BALANCES) -> str:
    return (
        "subscription Live($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {"
        " seatBalanceUpdates(customerId: $customerId, contractId: $contractId,"
        f" seatIds: $seatIds) {{ reason at seats {{ {selection} }} }} }}"
    )


def demo(seat_ids: list[str] | None = None) -> dict[str, Any]:
    """The variables for the demo contract (every seat of it when ``seat_ids`` is None)."""
    return {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID, "seatIds": seat_ids}


# --- the stand-in and its usage ---------------------------------------------------------------


@dataclass
class StandIn:
    """The stand-in billing API on its own port (one per test module and worker: tests
    read its balances as they are now), and the demo usage that moves them."""

    app: Starlette
    url: str
    seed: int = SEED

    def seats(self) -> list[dict[str, Any]]:
        seats: list[dict[str, Any]] = _demo_seats(standin_dataset(self.app))
        return seats

    def balances(self, seat_id: str) -> list[dict[str, Any]]:
        """The seat's balances as the stand-in holds them now, in the subscription's shape."""
        seat = next(seat for seat in self.seats() if seat["seat_id"] == seat_id)
        return [
            {"creditTypeId": b["credit_type_id"], "balance": b["balance"]} for b in seat["balances"]
        ]

    def next_move(self) -> list[str]:
        """The seats the next :meth:`move` will move: the same seeded usage, rehearsed on a
        copy of the data."""
        rehearsal = create_standin_app(copy.deepcopy(standin_dataset(self.app)))
        return DemoActivity(rehearsal, None, seed=self.seed).step()

    def move(self) -> list[str]:
        """Usage on two or three seats now; their ids."""
        moved = DemoActivity(self.app, None, seed=self.seed).step()
        self.seed += 1
        return moved


def _demo_seats(dataset: dict[str, Any]) -> Any:
    return dataset["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]["seats"]


@pytest.fixture(scope="module")
def standin_server() -> Iterator[tuple[Starlette, str]]:
    dataset = build_dataset()
    dataset["tokens"][SECOND_TOKEN] = [DEMO_CUSTOMER_ID]
    dataset["tokens"][OPERATOR_TOKEN] = [DEMO_CUSTOMER_ID, OTHER_CUSTOMER_ID]
    app = create_standin_app(dataset)
    with serve(app) as url:
        yield app, url


@pytest.fixture
def standin(standin_server: tuple[Starlette, str]) -> StandIn:
    return StandIn(*standin_server)


def live_settings(standin: StandIn, **update: Any) -> Settings:
    """A gateway forwarding callers' tokens to ``standin``, with webhooks on."""
    values: dict[str, Any] = {
        "metronome_base_url": standin.url,
        "metronome_webhook_secret": WEBHOOK_SECRET,
        **update,
    }
    return Settings(**values)


def unmoved(standin: StandIn, moved: list[str], count: int) -> list[str]:
    return [seat["seat_id"] for seat in standin.seats() if seat["seat_id"] not in moved][:count]


# --- subscribers -------------------------------------------------------------------------------


@dataclass
class Ended:
    """The subscription ended: ``complete``, the stream's end or the socket's close."""

    close_code: int | None = None


@dataclass
class Messages:
    """What one subscriber receives, message by message."""

    _items: asyncio.Queue[dict[str, Any] | Ended] = field(default_factory=asyncio.Queue)
    id: str = ""
    heartbeats: int = 0

    def put(self, item: dict[str, Any] | Ended) -> None:
        self._items.put_nowait(item)

    async def next(self) -> dict[str, Any]:
        item = await asyncio.wait_for(self._items.get(), WAIT)
        assert not isinstance(item, Ended), f"the subscription ended ({item})"
        return item

    async def update(self) -> dict[str, Any]:
        """The next message, which must be a live update."""
        return await self.update_of("seatBalanceUpdates")

    async def update_of(self, root: str) -> dict[str, Any]:
        """The next message, which must be data without errors: its ``root`` field."""
        message = await self.next()
        assert not message.get("errors"), message
        data: dict[str, Any] = message["data"][root]
        return data

    async def error(self) -> dict[str, Any]:
        """The next message, which must be an error, and the end after it."""
        message = await self.next()
        assert message.get("errors"), message
        await self.end()
        error: dict[str, Any] = message["errors"][0]
        return error

    async def end(self) -> Ended:
        item = await asyncio.wait_for(self._items.get(), WAIT)
        assert isinstance(item, Ended), f"expected the end, got {item}"
        return item

    async def silent(self, seconds: float = SILENCE) -> None:
        try:
            item = await asyncio.wait_for(self._items.get(), seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected no message, got {item}")


@asynccontextmanager
async def sse(
    url: str, query: str, variables: dict[str, Any], *, token: str | None = DEMO_TOKEN
) -> AsyncIterator[Messages]:
    """A graphql-sse subscriber (distinct connections: one streamed POST); leaving the block
    disconnects it."""
    headers = {"Accept": "text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    messages = Messages()
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(WAIT, read=None)) as client,
        client.stream(
            "POST",
            f"{url}/graphql",
            json={"query": query, "variables": variables},
            headers=headers,
        ) as response,
    ):
        reader = asyncio.ensure_future(_read_events(response, messages))
        try:
            yield messages
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def _read_events(response: httpx.Response, messages: Messages) -> None:
    if not response.headers.get("content-type", "").startswith("text/event-stream"):
        # Refused before the stream started (e.g. authentication): one GraphQL answer.
        messages.put(json.loads(await response.aread()))
        messages.put(Ended())
        return
    event, data = None, []
    with contextlib.suppress(httpx.HTTPError):
        async for line in response.aiter_lines():
            if line.startswith(":"):
                messages.heartbeats += 1
            elif line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                data.append(line.removeprefix("data:").removeprefix(" "))
            elif line == "" and event is not None:
                if event == "next":
                    messages.put(json.loads("\n".join(data)))
                elif event == "complete":
                    break
                event, data = None, []
    messages.put(Ended())


class Connection:
    """A graphql-transport-ws connection: the messages of each of its operations."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self._operations: dict[str, Messages] = {}
        self._ids = itertools.count(1)

    async def subscribe(self, query: str, variables: dict[str, Any]) -> Messages:
        messages = Messages(id=str(next(self._ids)))
        self._operations[messages.id] = messages
        payload = {"query": query, "variables": variables}
        await self.socket.send(
            json.dumps({"id": messages.id, "type": "subscribe", "payload": payload})
        )
        return messages

    async def complete(self, messages: Messages) -> None:
        await self.socket.send(json.dumps({"id": messages.id, "type": "complete"}))

    async def read(self) -> None:
        try:
            async for raw in self.socket:
                message = json.loads(raw)
                kind, operation = message["type"], self._operations.get(message.get("id", ""))
                if kind == "ping":
                    await self.socket.send(json.dumps({"type": "pong"}))
                elif operation is None:
                    continue
                elif kind == "next":
                    operation.put(message["payload"])
                elif kind == "error":
                    operation.put({"errors": message["payload"]})
                    operation.put(Ended())
                elif kind == "complete":
                    operation.put(Ended())
        except websockets.ConnectionClosed:
            pass
        for operation in self._operations.values():
            operation.put(Ended(self.socket.close_code))


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://", 1) + "/graphql"


@asynccontextmanager
async def websocket(url: str, *, token: str | None = DEMO_TOKEN) -> AsyncIterator[Connection]:
    """A graphql-transport-ws connection, acknowledged; ``token`` in ``connection_init``."""
    async with websockets.connect(
        ws_url(url), subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as socket:
        payload = {"Authorization": f"Bearer {token}"} if token is not None else {}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(socket.recv(), WAIT))
        assert ack["type"] == "connection_ack", ack
        connection = Connection(socket)
        reader = asyncio.ensure_future(connection.read())
        try:
            yield connection
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


@asynccontextmanager
async def subscriber(
    transport: str,
    url: str,
    query: str,
    variables: dict[str, Any],
    *,
    token: str | None = DEMO_TOKEN,
) -> AsyncIterator[Messages]:
    """One subscriber over ``transport`` (``sse`` or ``ws``, a connection of its own)."""
    if transport == "sse":
        async with sse(url, query, variables, token=token) as messages:
            yield messages
    else:
        async with websocket(url, token=token) as connection:
            yield await connection.subscribe(query, variables)


TRANSPORTS = ["sse", "ws"]


# --- webhooks and metrics ----------------------------------------------------------------------


def event(
    customer_id: str = DEMO_CUSTOMER_ID,
    contract_id: str | None = DEMO_CONTRACT_ID,
    *,
    event_type: str = ALERT_EVENT_TYPE,
    event_id: str | None = None,
) -> bytes:
    properties = {"customer_id": customer_id}
    if contract_id is not None:
        properties["contract_id"] = contract_id
    body = {"id": event_id or str(uuid.uuid4()), "type": event_type, "properties": properties}
    return json.dumps(body).encode()


def http_date(at: float | None = None) -> str:
    return email.utils.formatdate(time.time() if at is None else at, usegmt=True)


def signed(
    body: bytes,
    *,
    secret: str = WEBHOOK_SECRET,
    date: str | None = None,
    header: str = "X-Metronome-Date",
) -> dict[str, str]:
    """The headers the billing API sends with ``body``."""
    date = http_date() if date is None else date
    return {
        "Content-Type": "application/json",
        header: date,
        "Metronome-Webhook-Signature": sign_webhook(secret, date, body),
    }


async def deliver(url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    """POSTs a webhook delivery (signed as the billing API signs unless ``headers`` say)."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        return await client.post(
            f"{url}/webhooks/metronome",
            content=body,
            headers=signed(body) if headers is None else headers,
        )


async def metric(url: str, name: str) -> float:
    """A sample of /metrics (``name`` with its labels); 0 when absent."""
    async with httpx.AsyncClient(timeout=WAIT) as client:
        text = (await client.get(f"{url}/metrics")).text
    for line in text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[-1])
    return 0.0


def flags(body: dict[str, Any]) -> set[str]:
    return {name for name in ("include_credits_and_commits", "include_ledgers") if body.get(name)}


async def settled(gateway: Gateway, seconds: float = SILENCE) -> int:
    """The upstream calls made so far, once ``seconds`` passed without a new one."""
    while True:
        count = len(gateway.calls)
        await asyncio.sleep(seconds)
        if len(gateway.calls) == count:
            return count


# --- 1. a snapshot, then the seats a webhook moved ------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_listed_seats_a_snapshot_then_only_the_moved_ones_after_a_webhook(
    standin: StandIn, transport: str
) -> None:
    """A subscription naming seats first receives every one of them with its balances; after
    usage moves some seats and the billing API's webhook arrives, it receives only the moved
    seats it follows, with their new balances, read by one more upstream call."""
    moved = standin.next_move()
    followed = sorted([moved[0], *unmoved(standin, moved, 3)])
    with running_gateway(live_settings(standin)) as gateway:
        async with subscriber(transport, gateway.url, subscription(), demo(followed)) as messages:
            snapshot = await messages.update()
            assert snapshot["reason"] == "SNAPSHOT"
            assert {seat["seatId"]: seat["balances"] for seat in snapshot["seats"]} == {
                seat_id: standin.balances(seat_id) for seat_id in followed
            }
            assert len(gateway.calls) == 1

            before = standin.balances(moved[0])
            assert standin.move() == moved
            assert (await deliver(gateway.url, event())).status_code == 200
            update = await messages.update()
            assert update["reason"] == "WEBHOOK"
            assert update["seats"] == [{"seatId": moved[0], "balances": standin.balances(moved[0])}]
            assert update["seats"][0]["balances"] != before
            assert update["at"] > snapshot["at"]
            assert len(gateway.calls) == 2


async def test_the_whole_contract_a_snapshot_then_exactly_the_moved_seats(
    standin: StandIn,
) -> None:
    """Without seatIds the subscription follows every seat of the contract (page after page);
    a webhook's refresh re-reads them all and sends exactly the seats that moved."""
    moved = standin.next_move()
    pages = math.ceil(len(standin.seats()) / MAX_SEATS_PER_PAGE)
    with running_gateway(live_settings(standin)) as gateway:
        async with websocket(gateway.url) as connection:
            messages = await connection.subscribe(subscription(), demo())
            snapshot = await messages.update()
            assert snapshot["reason"] == "SNAPSHOT"
            assert [seat["seatId"] for seat in snapshot["seats"]] == sorted(
                seat["seat_id"] for seat in standin.seats()
            )
            assert len(gateway.calls) == pages > 1

            standin.move()
            assert (await deliver(gateway.url, event())).status_code == 200
            update = await messages.update()
            assert update["reason"] == "WEBHOOK"
            assert {seat["seatId"]: seat["balances"] for seat in update["seats"]} == {
                seat_id: standin.balances(seat_id) for seat_id in moved
            }
            assert len(gateway.calls) == 2 * pages


async def test_a_move_that_changes_nothing_selected_sends_nothing(standin: StandIn) -> None:
    """Usage moves a seat's balance, not its credit types: the subscriber selecting only
    ``creditTypeId`` receives nothing, while one selecting ``balance`` receives the seat."""
    moved = standin.next_move()
    with running_gateway(live_settings(standin)) as gateway:
        async with (
            sse(gateway.url, subscription(CREDIT_TYPES), demo(moved)) as types_only,
            sse(gateway.url, subscription(BALANCES), demo(moved)) as with_balance,
        ):
            assert (await types_only.update())["reason"] == "SNAPSHOT"
            assert (await with_balance.update())["reason"] == "SNAPSHOT"

            standin.move()
            assert (await deliver(gateway.url, event())).status_code == 200
            update = await with_balance.update()
            assert {seat["seatId"] for seat in update["seats"]} == set(moved)
            await types_only.silent()
            # One listing (same include flags): one snapshot, one refresh.
            assert len(gateway.calls) == 2


# --- 2. include flags --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        pytest.param(BALANCES, set(), id="balances only"),
        pytest.param(COMMITS, {"include_credits_and_commits"}, id="commits"),
        pytest.param(LEDGERS, {"include_credits_and_commits", "include_ledgers"}, id="ledgers"),
    ],
)
async def test_include_flags_follow_the_selection(
    standin: StandIn, selection: str, expected: set[str]
) -> None:
    """The subscription's upstream read asks for commits and ledgers only when they are
    selected (the billing API's answer is much larger with them), and its updates carry them."""
    seat_id = standin.seats()[0]["seat_id"]
    with running_gateway(live_settings(standin)) as gateway:
        async with sse(gateway.url, subscription(selection), demo([seat_id])) as messages:
            (seat,) = (await messages.update())["seats"]
            assert [flags(body) for body in gateway.upstream.bodies()] == [expected]
            if "commits" in selection:
                assert seat["commits"], "the seat's commits are sent"
            if "ledgerEntries" in selection:
                assert all(commit["ledgerEntries"] for commit in seat["commits"])


# --- 3. one listing, many subscribers ----------------------------------------------------------


async def test_one_listing_is_read_once_for_all_its_subscribers(standin: StandIn) -> None:
    """Five subscribers of one listing (three over SSE, two over WebSockets) cost one upstream
    read for their snapshots, and a webhook one more, which all five receive."""
    moved = standin.next_move()
    followed = sorted([*moved, *unmoved(standin, moved, 5)])
    query, variables = subscription(), demo(followed)
    with running_gateway(live_settings(standin)) as gateway:
        async with contextlib.AsyncExitStack() as stack:
            subscribers = [
                await stack.enter_async_context(
                    subscriber(transport, gateway.url, query, variables)
                )
                for transport in ["sse", "ws", "sse", "ws", "sse"]
            ]
            snapshots = await asyncio.gather(*(messages.update() for messages in subscribers))
            assert {len(snapshot["seats"]) for snapshot in snapshots} == {len(followed)}
            assert len(gateway.calls) == 1

            standin.move()
            assert (await deliver(gateway.url, event())).status_code == 200
            updates = await asyncio.gather(*(messages.update() for messages in subscribers))
            expected = [
                {"seatId": seat_id, "balances": standin.balances(seat_id)}
                for seat_id in sorted(moved)
            ]
            assert [update["seats"] for update in updates] == [expected] * 5
            assert await settled(gateway) == 2


async def test_other_include_flags_and_other_tokens_are_other_listings(standin: StandIn) -> None:
    """Subscribers with other include flags, or another billing token for the same customer,
    read the billing API apart: one read per listing for the snapshots, one per listing when
    a webhook names the customer, each with its own flags and credential."""
    followed = [seat["seat_id"] for seat in standin.seats()[:3]]
    with running_gateway(live_settings(standin)) as gateway:
        async with (
            sse(gateway.url, subscription(BALANCES), demo(followed)) as balances,
            sse(gateway.url, subscription(CREDIT_TYPES), demo(followed)) as same_listing,
            sse(gateway.url, subscription(COMMITS), demo(followed)) as commits,
            sse(gateway.url, subscription(BALANCES), demo(followed), token=SECOND_TOKEN) as second,
        ):
            for messages in (balances, same_listing, commits, second):
                assert (await messages.update())["reason"] == "SNAPSHOT"
            listings = {
                ("Bearer demo-token", frozenset()),
                ("Bearer demo-token", frozenset({"include_credits_and_commits"})),
                (f"Bearer {SECOND_TOKEN}", frozenset()),
            }
            reads = [(call.authorization, frozenset(flags(call.body))) for call in gateway.calls]
            assert sorted(reads) == sorted(listings)

            standin.move()
            assert (await deliver(gateway.url, event())).status_code == 200
            assert await settled(gateway) == 6
            reads = [
                (call.authorization, frozenset(flags(call.body))) for call in gateway.calls[3:]
            ]
            assert sorted(reads) == sorted(listings)


# --- 4. polling --------------------------------------------------------------------------------


async def test_polling_sends_the_seats_that_moved(standin: StandIn) -> None:
    """Without any webhook, the periodic re-read (GATEWAY_LIVE_POLL_INTERVAL) finds the moved
    seats and sends them, reason POLL."""
    moved = standin.next_move()
    followed = sorted([moved[0], *unmoved(standin, moved, 2)])
    with running_gateway(live_settings(standin, live_poll_interval=0.3)) as gateway:
        async with sse(gateway.url, subscription(), demo(followed)) as messages:
            assert (await messages.update())["reason"] == "SNAPSHOT"
            standin.move()
            update = await messages.update()
            assert update["reason"] == "POLL"
            assert update["seats"] == [{"seatId": moved[0], "balances": standin.balances(moved[0])}]


async def test_polling_without_a_change_sends_nothing(standin: StandIn) -> None:
    """Re-reads that find nothing changed send nothing (no empty message every interval)."""
    with running_gateway(live_settings(standin, live_poll_interval=0.2)) as gateway:
        async with sse(gateway.url, subscription(), demo(unmoved(standin, [], 3))) as messages:
            assert (await messages.update())["reason"] == "SNAPSHOT"
            await messages.silent(1.0)
            assert len(gateway.calls) >= 3, "the listing was re-read meanwhile"


# --- 5. refusals, before any upstream call -----------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_customer_id_that_is_not_a_uuid_is_refused_without_an_upstream_call(
    standin: StandIn, transport: str
) -> None:
    """A malformed id is the caller's mistake, named as such, and costs the billing API
    nothing."""
    variables = {**demo(), "customerId": "not-a-uuid"}
    with running_gateway(live_settings(standin)) as gateway:
        async with subscriber(transport, gateway.url, subscription(), variables) as messages:
            error = await messages.error()
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
            assert "customerId" in error["message"]
        assert gateway.calls == []


async def test_more_seat_ids_than_a_live_subscription_may_follow_are_refused(
    standin: StandIn,
) -> None:
    """GATEWAY_LIVE_MAX_SEATS bounds the seats one subscription follows: one more is refused
    (BAD_USER_INPUT on seatIds) before any upstream call; as many are followed."""
    seat_ids = [seat["seat_id"] for seat in standin.seats()[:4]]
    with running_gateway(live_settings(standin, live_max_seats=3)) as gateway:
        async with sse(gateway.url, subscription(), demo(seat_ids)) as messages:
            error = await messages.error()
            assert error["extensions"]["code"] == "BAD_USER_INPUT"
            assert "seatIds" in error["message"]
        assert gateway.calls == []
        async with sse(gateway.url, subscription(), demo(seat_ids[:3])) as messages:
            assert len((await messages.update())["seats"]) == 3
        assert len(gateway.calls) == 1


async def test_a_caller_over_its_subscription_limit_is_refused(standin: StandIn) -> None:
    """GATEWAY_LIVE_MAX_PER_CALLER: a caller (here, by its forwarded token) holding as many
    subscriptions as allowed is refused another (TOO_MANY_SUBSCRIPTIONS) before any upstream
    call, while another caller may still subscribe."""
    seats = [seat["seat_id"] for seat in standin.seats()[:3]]
    with running_gateway(live_settings(standin, live_max_per_caller=2)) as gateway:
        async with (
            sse(gateway.url, subscription(), demo(seats[:1])) as first,
            sse(gateway.url, subscription(), demo(seats[:2])) as second,
        ):
            await first.update()
            await second.update()
            assert len(gateway.calls) == 2
            async with sse(gateway.url, subscription(), demo(seats)) as third:
                error = await third.error()
                assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
            assert len(gateway.calls) == 2
            async with sse(gateway.url, subscription(), demo(seats), token=SECOND_TOKEN) as other:
                assert (await other.update())["reason"] == "SNAPSHOT"
            assert len(gateway.calls) == 3


async def test_a_process_over_its_subscription_limit_is_refused_until_one_leaves(
    standin: StandIn,
) -> None:
    """GATEWAY_LIVE_MAX_SUBSCRIPTIONS: with the process full, any caller is refused
    (TOO_MANY_SUBSCRIPTIONS) before any upstream call; once a subscriber leaves, its place is
    free again."""
    seats = [seat["seat_id"] for seat in standin.seats()[:3]]
    with running_gateway(live_settings(standin, live_max_subscriptions=2)) as gateway:
        async with sse(gateway.url, subscription(), demo(seats[:1])) as first:
            await first.update()
            async with sse(gateway.url, subscription(), demo(seats[:2])) as second:
                await second.update()
                async with sse(
                    gateway.url, subscription(), demo(seats), token=SECOND_TOKEN
                ) as refused:
                    error = await refused.error()
                    assert error["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS"
                assert len(gateway.calls) == 2
            await until(lambda: metric(gateway.url, "gateway_live_subscriptions"), 1)
            async with sse(gateway.url, subscription(), demo(seats), token=SECOND_TOKEN) as third:
                assert (await third.update())["reason"] == "SNAPSHOT"
            assert len(gateway.calls) == 3


async def until(read: Any, expected: float) -> None:
    """Waits (within WAIT) until the awaitable ``read()`` gives ``expected``."""
    deadline = time.monotonic() + WAIT
    while (value := await read()) != expected:
        assert time.monotonic() < deadline, f"still {value}, expected {expected}"
        await asyncio.sleep(0.05)


async def read_at_least(gateway: Gateway, calls: int) -> None:
    """Waits (within WAIT) until the gateway made ``calls`` upstream calls."""
    deadline = time.monotonic() + WAIT
    while len(gateway.calls) < calls:
        assert time.monotonic() < deadline, f"{len(gateway.calls)} upstream calls"
        await asyncio.sleep(0.05)


def caller_jwt(*customers: str, expires_in: float = 600, subject: str = "alice") -> str:
    claims = {
        "sub": subject,
        "exp": int(time.time() + expires_in),
        "metronome_customer_ids": list(customers),
    }
    return jwt.encode(claims, JWT_SECRET, algorithm="HS256")


def jwt_settings(standin: StandIn, **update: Any) -> Settings:
    """Callers authenticate with HS256 JWTs naming their customers; the gateway reads the
    billing API with its own token (one that reads every customer)."""
    return live_settings(
        standin,
        jwt_secret=JWT_SECRET,
        jwt_leeway=0,
        metronome_bearer_token=OPERATOR_TOKEN,
        **update,
    )


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_customer_the_callers_jwt_does_not_name_is_forbidden(
    standin: StandIn, transport: str
) -> None:
    """With JWT callers, a subscription to a customer the token does not name is FORBIDDEN
    before any upstream call (the gateway's billing token could read it); its own customer is
    followed."""
    token = caller_jwt(DEMO_CUSTOMER_ID)
    other = {"customerId": OTHER_CUSTOMER_ID, "contractId": OTHER_CONTRACT_ID, "seatIds": None}
    with running_gateway(jwt_settings(standin)) as gateway:
        async with subscriber(
            transport, gateway.url, subscription(), other, token=token
        ) as refused:
            assert (await refused.error())["extensions"]["code"] == "FORBIDDEN"
        assert gateway.calls == []
        seat = standin.seats()[0]["seat_id"]
        async with subscriber(
            transport, gateway.url, subscription(), demo([seat]), token=token
        ) as own:
            assert (await own.update())["reason"] == "SNAPSHOT"
        assert [call.authorization for call in gateway.calls] == [f"Bearer {OPERATOR_TOKEN}"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_an_anonymous_caller_is_unauthenticated_where_callers_need_a_jwt(
    standin: StandIn, transport: str
) -> None:
    """With JWT callers, a subscription without a token is UNAUTHENTICATED before any
    upstream call."""
    with running_gateway(jwt_settings(standin)) as gateway:
        async with subscriber(
            transport, gateway.url, subscription(), demo(), token=None
        ) as refused:
            assert (await refused.error())["extensions"]["code"] == "UNAUTHENTICATED"
        assert gateway.calls == []


LEDGER_QUERY = (
    "query Deep($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {"
    " seatBalances(customerId: $customerId, contractId: $contractId, seatIds: $seatIds)"
    " { nodes { commits { ledgerEntries { amount } } } } }"
)
PADDING = "# " + "padding " * 2_600 + "\n"


@pytest.mark.parametrize(
    ("limit", "settings", "document", "query"),
    [
        pytest.param("depth", {"max_depth": 4}, subscription(LEDGERS), LEDGER_QUERY, id="depth"),
        pytest.param(
            "size",
            {},
            PADDING + subscription(),
            PADDING + LEDGER_QUERY,
            id="size",
        ),
        pytest.param(
            "selections",
            {"max_selections": 10},
            subscription(" ".join(f"a{n}: seatId" for n in range(10))),
            LEDGER_QUERY.replace("amount", " ".join(f"a{n}: amount" for n in range(10))),
            id="selections",
        ),
    ],
)
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_document_over_the_limits_is_refused_as_a_query_is(
    standin: StandIn,
    transport: str,
    limit: str,
    settings: dict[str, Any],
    document: str,
    query: str,
) -> None:
    """A subscription document over the size, depth or selection limits gets the error a
    query over the same limit gets, before any upstream call."""
    with running_gateway(live_settings(standin, **settings)) as gateway:
        (query_error,) = gateway.errors(query, demo())
        async with subscriber(transport, gateway.url, document, demo()) as messages:
            error = await messages.error()
        assert error["extensions"]["code"] == query_error["extensions"]["code"], limit
        assert error["extensions"]["code"].endswith("_LIMIT")
        assert gateway.calls == []


# --- 6. credentials that expire ----------------------------------------------------------------


async def test_a_subscription_ends_unauthenticated_when_the_callers_jwt_expires(
    standin: StandIn,
) -> None:
    """A JWT is good until its ``exp``: subscriptions made with it (over SSE, and over a
    WebSocket whose ``connection_init`` carried it) end then, with an UNAUTHENTICATED error
    telling the client to subscribe again."""
    token = caller_jwt(DEMO_CUSTOMER_ID, expires_in=2)
    expiry = jwt.decode(token, options={"verify_signature": False})["exp"]
    variables = demo([standin.seats()[0]["seat_id"]])
    with running_gateway(jwt_settings(standin)) as gateway:
        async with (
            sse(gateway.url, subscription(), variables, token=token) as over_sse,
            websocket(gateway.url, token=token) as connection,
        ):
            over_ws = await connection.subscribe(subscription(), variables)
            for messages in (over_sse, over_ws):
                assert (await messages.update())["reason"] == "SNAPSHOT"
            for error in await asyncio.gather(over_sse.error(), over_ws.error()):
                assert error["extensions"]["code"] == "UNAUTHENTICATED"
                assert "expired" in error["message"]
            assert time.time() >= expiry


async def test_a_websocket_whose_jwt_does_not_verify_is_closed_4403(standin: StandIn) -> None:
    """graphql-transport-ws: a ``connection_init`` carrying a JWT that does not verify (here
    signed with another secret) closes the socket with 4403 Forbidden."""
    forged = jwt.encode(
        {
            "sub": "mallory",
            "exp": int(time.time()) + 600,
            "metronome_customer_ids": [DEMO_CUSTOMER_ID],
        },
        "another-secret-of-at-least-32-bytes!!",
        algorithm="HS256",
    )
    with running_gateway(jwt_settings(standin)) as gateway:
        async with websockets.connect(
            ws_url(gateway.url), subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as socket:
            payload = {"Authorization": f"Bearer {forged}"}
            await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), WAIT)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
        assert gateway.calls == []


# --- 7. a client that leaves -------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_client_that_leaves_stops_its_listings_polling(
    standin: StandIn, transport: str
) -> None:
    """When the last subscriber of a listing leaves (an SSE client disconnects; a WebSocket
    client sends ``complete`` and keeps its connection), gateway_live_subscriptions returns to
    0 and the listing is not read again."""
    seat = standin.seats()[0]["seat_id"]
    with running_gateway(live_settings(standin, live_poll_interval=0.2)) as gateway:
        live_subscriptions = lambda: metric(gateway.url, "gateway_live_subscriptions")  # noqa: E731
        async with websocket(gateway.url) as connection:
            if transport == "sse":
                async with sse(gateway.url, subscription(), demo([seat])) as messages:
                    await messages.update()
                    await read_at_least(gateway, 3)  # it polls meanwhile
                    assert await live_subscriptions() == 1
            else:
                messages = await connection.subscribe(subscription(), demo([seat]))
                await messages.update()
                await read_at_least(gateway, 3)
                assert await live_subscriptions() == 1
                await connection.complete(messages)
            await until(live_subscriptions, 0)
            calls = len(gateway.calls)
            await asyncio.sleep(0.6)  # three poll intervals
            assert len(gateway.calls) == calls


# --- 8. a subscriber that does not read --------------------------------------------------------


async def test_a_subscriber_that_does_not_read_is_dropped(standin: StandIn) -> None:
    """Each subscriber's queue holds ``queue_size`` updates: one that never reads is dropped
    when the next comes (its place released), the others go on receiving, and when it finally
    reads it finds what it was sent, then SubscriberTooSlow (SUBSCRIPTION_DROPPED to a client)."""
    transport = billing_transport(standin.url, max_connections=4)
    client = BillingClient(transport, standin.url, DEFAULT_POLICY)
    hub = LiveHub(LiveSettings(queue_size=2, poll_interval=3600), LocalBus(), client=lambda: client)
    seats = tuple(seat["seat_id"] for seat in standin.seats()[:2])
    key = LiveListing.of(
        DEMO_TOKEN,
        Listing(DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, seat_ids=seats),
        include_commits=False,
        include_ledgers=False,
    )
    await hub.start()
    try:
        reader = await hub.subscribe(key, DEMO_TOKEN, "reader")
        idle = await hub.subscribe(key, DEMO_TOKEN, "idle")
        assert (await anext(reader)).reason == "SNAPSHOT"
        assert hub.subscriptions == 2

        await hub.changed(DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID)
        assert (await asyncio.wait_for(anext(reader), WAIT)).reason == "WEBHOOK"
        assert hub.subscriptions == 2  # the idle one holds two updates: no more than allowed

        await hub.changed(DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID)
        assert (await asyncio.wait_for(anext(reader), WAIT)).reason == "WEBHOOK"
        assert hub.subscriptions == 1  # a third for the idle one: dropped

        await hub.changed(DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID)
        assert (await asyncio.wait_for(anext(reader), WAIT)).reason == "WEBHOOK"

        assert [(await anext(idle)).reason for _ in range(2)] == ["SNAPSHOT", "WEBHOOK"]
        with pytest.raises(SubscriberTooSlow):
            await anext(idle)
        reader.close()
        assert hub.subscriptions == 0
        assert hub.listings == 0
    finally:
        await hub.aclose()
        await transport.aclose()


# --- 9. a failing billing API ------------------------------------------------------------------


class FlakyUpstream:
    """The stand-in behind a switch: ``fail(n)`` makes the next ``n`` calls answer 503."""

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)
        self._failures_left = 0
        self.failed_at: list[float] = []

    def fail(self, calls: int = 1_000_000) -> None:
        self._failures_left = calls

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if self._failures_left > 0:
            self._failures_left -= 1
            self.failed_at.append(time.monotonic())
            return httpx.Response(503, json={"message": "Service Unavailable"})
        return await self._inner.handle_async_request(request)


def flaky_gateway(standin: StandIn, upstream: FlakyUpstream) -> Any:
    settings = live_settings(
        standin, live_poll_interval=0.2, live_failure_grace=1.0, upstream_max_retries=0
    )
    return running_gateway(settings, httpx.MockTransport(upstream))


async def test_refreshes_failing_past_the_grace_end_the_subscription_with_the_error(
    standin: StandIn,
) -> None:
    """Failed re-reads send nothing while they fail for less than GATEWAY_LIVE_FAILURE_GRACE;
    past it, the subscription ends with the upstream error's code."""
    upstream = FlakyUpstream(standin.app)
    seat = standin.seats()[0]["seat_id"]
    with flaky_gateway(standin, upstream) as gateway:
        async with sse(gateway.url, subscription(), demo([seat])) as messages:
            assert (await messages.update())["reason"] == "SNAPSHOT"
            upstream.fail()
            error = await messages.error()  # the first message after the snapshot
            assert error["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
            assert time.monotonic() - upstream.failed_at[0] >= 1.0
            assert len(upstream.failed_at) >= 3, "re-read meanwhile, every poll interval"
            assert standin.url not in error["message"]  # no upstream address leaves


async def test_a_refresh_that_recovers_within_the_grace_sends_the_changes(
    standin: StandIn,
) -> None:
    """Two failed re-reads within the grace, then one that succeeds: the subscriber receives
    the moved seat and no error."""
    moved = standin.next_move()
    upstream = FlakyUpstream(standin.app)
    with flaky_gateway(standin, upstream) as gateway:
        async with sse(gateway.url, subscription(), demo(moved[:1])) as messages:
            assert (await messages.update())["reason"] == "SNAPSHOT"
            upstream.fail(2)
            standin.move()
            update = await messages.update()
            assert len(upstream.failed_at) == 2
            assert update["reason"] == "POLL"
            assert update["seats"] == [{"seatId": moved[0], "balances": standin.balances(moved[0])}]
            await messages.silent()


# --- 10. webhooks ------------------------------------------------------------------------------


def _forged(body: bytes) -> dict[str, str]:
    return signed(body, secret="another-secret")


def _dated(seconds_from_now: float) -> Any:
    return lambda body: signed(body, date=http_date(time.time() + seconds_from_now))


def _unsigned(body: bytes) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Metronome-Date": http_date()}


# (what is wrong, the body, its headers, the status that refuses it)
REFUSED_DELIVERIES = [
    ("forged signature", event(), _forged, 401),
    ("dated 6 minutes ago", event(), _dated(-360), 401),
    ("dated in 6 minutes", event(), _dated(360), 401),
    ("unsigned", event(), _unsigned, 401),
    (
        "over 64 KB",
        json.dumps({**json.loads(event()), "pad": "x" * 64 * 1024}).encode(),
        signed,
        413,
    ),
    ("malformed JSON", b'{"id": "evt-1", "type": ', signed, 400),
    ("not an object", b'["evt-1"]', signed, 400),
]


@asynccontextmanager
async def followed_moves(
    standin: StandIn, **update: Any
) -> AsyncIterator[tuple[Gateway, Messages, list[str]]]:
    """A gateway with webhooks on and a subscriber, past its snapshot, of the seats the next
    move moves (the gateway, the subscriber, those seats)."""
    moved = standin.next_move()
    with running_gateway(live_settings(standin, **update)) as gateway:
        async with sse(gateway.url, subscription(), demo(moved)) as messages:
            assert (await messages.update())["reason"] == "SNAPSHOT"
            assert len(gateway.calls) == 1
            yield gateway, messages, moved


async def test_a_refused_webhook_refreshes_nothing(standin: StandIn, subtests: Any) -> None:
    """A delivery that is forged, out of the 5-minute window, unsigned, too large or not a
    JSON object with an id is refused, and nothing is refreshed: no upstream call, no message,
    though the balances did move (a signed delivery then refreshes them)."""
    async with followed_moves(standin) as (gateway, messages, moved):
        standin.move()
        for wrong, body, headers, status in REFUSED_DELIVERIES:
            with subtests.test(wrong):
                calls = len(gateway.calls)
                response = await deliver(gateway.url, body, headers(body))
                assert response.status_code == status, response.text
                await messages.silent()
                assert len(gateway.calls) == calls

        assert (await deliver(gateway.url, event())).status_code == 200
        assert {seat["seatId"] for seat in (await messages.update())["seats"]} == set(moved)
        assert len(gateway.calls) == 2


async def test_a_delivery_seen_before_is_acknowledged_and_ignored(standin: StandIn) -> None:
    """The billing API delivers again what it did not see answered: the same event id a second
    time answers 200 DUPLICATE and refreshes nothing."""
    async with followed_moves(standin) as (gateway, messages, moved):
        standin.move()
        body = event(event_id="evt-once")
        first = await deliver(gateway.url, body)
        assert first.status_code == 200
        assert first.json()["status"] != "DUPLICATE"
        assert {seat["seatId"] for seat in (await messages.update())["seats"]} == set(moved)
        assert len(gateway.calls) == 2

        standin.move()
        again = await deliver(gateway.url, body)  # signed afresh, the same id
        assert again.status_code == 200
        assert again.json()["status"] == "DUPLICATE"
        await messages.silent()
        assert len(gateway.calls) == 2


async def test_an_unknown_event_type_is_acknowledged_and_counted_as_other(
    standin: StandIn,
) -> None:
    """An event type the gateway does not act on answers 200 (so the billing API does not
    deliver it again), refreshes nothing, and is counted as type "other"."""
    counted = 'gateway_webhooks_total{outcome="ignored",type="other"}'
    async with followed_moves(standin) as (gateway, messages, _moved):
        assert await metric(gateway.url, counted) == 0
        standin.move()
        response = await deliver(gateway.url, event(event_type="invoice.finalized"))
        assert response.status_code == 200
        await messages.silent()
        assert len(gateway.calls) == 1
        assert await metric(gateway.url, counted) == 1


async def test_without_a_webhook_secret_there_is_no_webhook_endpoint(standin: StandIn) -> None:
    """Without METRONOME_WEBHOOK_SECRET nothing listens: a delivery, even signed, is a 404
    and refreshes nothing."""
    seat = standin.seats()[0]["seat_id"]
    settings = live_settings(standin, metronome_webhook_secret=None)
    with running_gateway(settings) as gateway:
        async with sse(gateway.url, subscription(), demo([seat])) as messages:
            await messages.update()
            assert (await deliver(gateway.url, event())).status_code == 404
            await messages.silent()
            assert len(gateway.calls) == 1


async def test_the_signature_covers_the_raw_bytes_as_sent(standin: StandIn) -> None:
    """The signature is over the bytes delivered: a body with the billing API's own spacing
    verifies as sent, while the same JSON re-serialised (other whitespace) does not."""
    raw = (
        b'{\n  "id" : "evt-raw",\n  "type" : "alerts.low_remaining_seat_balance_reached",\n'
        + f'  "properties" : {{ "customer_id" : "{DEMO_CUSTOMER_ID}" }}\n}}'.encode()
    )
    reserialised = json.dumps(json.loads(raw)).encode()
    assert reserialised != raw
    async with followed_moves(standin) as (gateway, messages, moved):
        standin.move()
        headers = signed(raw)
        assert (await deliver(gateway.url, reserialised, headers)).status_code == 401
        await messages.silent()
        assert len(gateway.calls) == 1
        assert (await deliver(gateway.url, raw, headers)).status_code == 200
        assert {seat["seatId"] for seat in (await messages.update())["seats"]} == set(moved)
        assert len(gateway.calls) == 2


async def test_the_date_header_signs_when_x_metronome_date_is_absent(standin: StandIn) -> None:
    """A delivery dated by ``Date`` alone (no X-Metronome-Date) verifies over that date."""
    async with followed_moves(standin) as (gateway, messages, moved):
        standin.move()
        body = event()
        headers = signed(body, header="Date")
        assert "X-Metronome-Date" not in headers
        assert (await deliver(gateway.url, body, headers)).status_code == 200
        assert {seat["seatId"] for seat in (await messages.update())["seats"]} == set(moved)


# --- 11. the page cache ------------------------------------------------------------------------

BALANCE_QUERY = (
    "query Balances($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {"
    " seatBalances(customerId: $customerId, contractId: $contractId, seatIds: $seatIds)"
    " { nodes { seatId balances { creditTypeId balance } } } }"
)


async def test_a_webhook_drops_its_customers_cached_pages(standin: StandIn) -> None:
    """With GATEWAY_CACHE_TTL, a repeated query is answered from the cache; a webhook naming
    another customer leaves it there, one naming this customer drops it: the next query reads
    the billing API again and answers the moved balance."""
    moved = standin.next_move()
    variables = demo(moved[:1])

    def balances() -> list[dict[str, Any]]:
        (seat,) = gateway.query(BALANCE_QUERY, variables)["seatBalances"]["nodes"]
        balances: list[dict[str, Any]] = seat["balances"]
        return balances

    with running_gateway(live_settings(standin, cache_ttl=60)) as gateway:
        before = balances()
        assert before == standin.balances(moved[0])
        assert balances() == before
        assert len(gateway.calls) == 1

        standin.move()
        other = event(OTHER_CUSTOMER_ID, OTHER_CONTRACT_ID)
        assert (await deliver(gateway.url, other)).status_code == 200
        assert balances() == before  # still the cached page
        assert len(gateway.calls) == 1

        assert (await deliver(gateway.url, event(contract_id=None))).status_code == 200
        after = balances()
        assert after == standin.balances(moved[0]) != before
        assert len(gateway.calls) == 2


# --- 12. many operations on one WebSocket ------------------------------------------------------


async def test_each_subscription_of_a_connection_has_its_own_work_budget(
    standin: StandIn,
) -> None:
    """GATEWAY_MAX_COST bounds one operation: a connection holding several subscriptions is
    not refused for their sum (a budget fitting one and a half of them serves three)."""
    seats = [seat["seat_id"] for seat in standin.seats()[:3]]
    # Every ledger entry of one seat costs more than the least budget allowed (100).
    with running_gateway(live_settings(standin, max_cost=100)) as gateway:
        async with websocket(gateway.url) as connection:
            refused = await connection.subscribe(subscription(LEDGERS), demo(seats[:1]))
            message = (await refused.error())["message"]
    cost = int(re.search(r"about (\d+) units", message).group(1))  # type: ignore[union-attr]
    with running_gateway(live_settings(standin, max_cost=cost * 3 // 2)) as gateway:
        async with websocket(gateway.url) as connection:
            # Three listings of one seat each: each costs what the refused one did.
            subscribers = [
                await connection.subscribe(subscription(LEDGERS), demo([seat])) for seat in seats
            ]
            for messages in subscribers:
                assert (await messages.update())["reason"] == "SNAPSHOT"
            assert len(gateway.calls) == 3


async def test_queries_over_a_websocket_each_have_their_own_loaders_and_budget(
    standin: StandIn,
) -> None:
    """A query over the WebSocket is answered, and the next one on the same connection reads
    the billing API afresh within a budget of its own (GATEWAY_MAX_UPSTREAM_CALLS=1 each):
    it sees the moved balance, not the first one's loaders' page."""
    moved = standin.next_move()
    variables = demo(moved[:1])
    with running_gateway(live_settings(standin, max_upstream_calls=1)) as gateway:
        async with websocket(gateway.url) as connection:
            live = await connection.subscribe(subscription(), variables)
            await live.update()
            first = await connection.subscribe(BALANCE_QUERY, variables)
            (seat,) = (await first.update_of("seatBalances"))["nodes"]
            assert seat["balances"] == standin.balances(moved[0])
            await first.end()

            standin.move()
            second = await connection.subscribe(BALANCE_QUERY, variables)
            (seat,) = (await second.update_of("seatBalances"))["nodes"]
            assert seat["balances"] == standin.balances(moved[0])
            await second.end()
            assert len(gateway.calls) == 3


EVERYTHING = (
    "id seatId customerId contractId balances { creditTypeId balance startingBalance "
    "creditType { name } } commits { id commitId name type balance startDate endDate "
    "product { name } ledgerEntries { type amount timestamp } } credits { id creditId name "
    "balance ledgerEntries { type amount } }"
)


async def raw_messages(url: str, query: str, variables: dict[str, Any], count: int) -> list[str]:
    """The first ``count`` `next` events' data of a graphql-sse stream, as sent."""
    found: list[str] = []
    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {DEMO_TOKEN}"}
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(WAIT, read=WAIT)) as client,
        client.stream(
            "POST", f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
        ) as response,
    ):
        event = None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "next":
                found.append(line.removeprefix("data:").strip())
                if len(found) == count:
                    return found
    return found


async def test_the_compiled_path_and_the_reference_path_send_the_same_bytes(
    standin: StandIn,
) -> None:
    """A subscription's messages (every field a seat has, details and credit types joined from
    the other endpoints) are the same bytes whether the projection completes them or
    graphql-core does field by field (GATEWAY_FAST_PATH=false), snapshot and update alike."""
    moved = standin.next_move()
    followed = sorted([moved[0], *unmoved(standin, moved, 2)])
    query = f"""subscription Everything($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {{
      seatBalanceUpdates(customerId: $customerId, contractId: $contractId, seatIds: $seatIds) {{
        reason seats {{ {EVERYTHING} }} }} }}"""
    with (
        running_gateway(live_settings(standin)) as fast,
        running_gateway(live_settings(standin, fast_path=False)) as reference,
    ):
        readers = [
            asyncio.ensure_future(raw_messages(gateway.url, query, demo(followed), 2))
            for gateway in (fast, reference)
        ]
        await until(lambda: metric(fast.url, "gateway_live_subscriptions"), 1)
        await until(lambda: metric(reference.url, "gateway_live_subscriptions"), 1)
        assert standin.move() == moved
        for gateway in (fast, reference):
            assert (await deliver(gateway.url, event())).status_code == 200
        compiled, field_by_field = await asyncio.gather(*readers)
    assert len(compiled) == 2 and '"reason":"WEBHOOK"' in compiled[1]
    assert compiled == field_by_field


async def test_the_work_estimate_sizes_an_updates_seats_by_its_seat_ids(standin: StandIn) -> None:
    """The cost of a subscription's messages is estimated for the seats it names (else for
    GATEWAY_LIVE_MAX_SEATS' default, 500): every field for three named seats is admitted, for
    the whole contract it is COST_LIMIT before any upstream call."""
    query = f"""subscription Everything($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {{
      seatBalanceUpdates(customerId: $customerId, contractId: $contractId, seatIds: $seatIds) {{
        reason seats {{ {EVERYTHING} }} }} }}"""
    with running_gateway(live_settings(standin)) as gateway:
        [named] = await raw_messages(gateway.url, query, demo(standin_seats(standin, 3)), 1)
        assert '"reason":"SNAPSHOT"' in named
        calls = len(gateway.calls)
        [whole] = await raw_messages(gateway.url, query, demo(), 1)
        [error] = json.loads(whole)["errors"]
        assert error["extensions"]["code"] == "COST_LIMIT"
        assert len(gateway.calls) == calls


def standin_seats(standin: StandIn, count: int) -> list[str]:
    return [seat["seat_id"] for seat in standin.seats()][:count]
