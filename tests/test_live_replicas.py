"""Live seat balances across replicas (issue 26, "Polling, fan-out, scale-out"): two `gateway
serve` processes sharing one real redis-server, forwarding the caller's token to ONE stand-in
served by this process, whose seat listing endpoint counts every call it answers (so upstream
calls are counted across both replicas exactly). Subscribers speak Server-Sent Events (httpx)
or graphql-transport-ws (gql's websockets transport), as a dashboard would.

Each listing follows the first 100 seats of the demo contract (one upstream page per refresh);
the stand-in's :class:`~gateway.standin.DemoActivity` moves balances between refreshes.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import inspect
import itertools
import json
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from gql import Client, gql
from gql.transport.websockets import WebsocketsTransport
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    DemoActivity,
    create_standin_app,
    sign_webhook,
)
from gateway.standin.app import standin_dataset
from tests.support import gateway_process, serve
from tests.test_redis import REDIS_SERVER, RedisServer

pytestmark = pytest.mark.process  # starts redis-server and two gateway processes

SECRET = "replicas-webhook-secret"
SEAT_LIST = "/v1/contracts/seatBalances/list"
POLL_INTERVAL = 0.5  # GATEWAY_LIVE_POLL_INTERVAL where the test counts polls
LEASE_SECONDS = 1.5  # GATEWAY_LIVE_LEASE_SECONDS: renewed every 0.5 s
# What the tests wait for at most: far above what they measure (reported by the prints).
PATIENCE = 15.0
ALERT = "alerts.low_remaining_seat_balance_reached"

SUBSCRIPTION = """
subscription Live($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {
  seatBalanceUpdates(customerId: $customerId, contractId: $contractId, seatIds: $seatIds) {
    reason
    at
    seats { seatId balances { creditTypeId balance } }
  }
}
"""
QUERY = """
query Seats($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {
  seatBalances(customerId: $customerId, contractId: $contractId, seatIds: $seatIds, first: 100) {
    nodes { seatId balances { creditTypeId balance } }
  }
}
"""
AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}


# --- the stand-in, counting its seat listing calls ----------------------------------------------


class SeatListCounter:
    """ASGI middleware in front of the stand-in: the time of every ``POST`` to the seat listing
    endpoint it passes on, whichever replica sent it."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.calls: list[float] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == SEAT_LIST:
            self.calls.append(time.monotonic())
        await self.app(scope, receive, send)

    def since(self, start: float) -> list[float]:
        return [at for at in self.calls if at >= start]


@dataclass
class Billing:
    """The stand-in as the replicas' billing API: its URL, its call counter, the seats the
    subscriptions follow, and a mover of their balances."""

    url: str
    counter: SeatListCounter
    seat_ids: list[str]
    activity: DemoActivity

    def move(self) -> set[str]:
        """Moves balances until at least one followed seat moved: the followed seats moved."""
        moved: set[str] = set()
        while not moved:
            moved = set(self.activity.step()) & set(self.seat_ids)
        return moved

    @property
    def calls(self) -> int:
        return len(self.counter.calls)


@pytest.fixture
def billing() -> Iterator[Billing]:
    app = create_standin_app()
    counter = SeatListCounter(app)
    seats = standin_dataset(app)["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]
    seat_ids = [seat["seat_id"] for seat in seats["seats"][:100]]
    with serve(counter) as url:
        yield Billing(url, counter, seat_ids, DemoActivity(app, None, seed=1))


# --- redis-server and the replicas ---------------------------------------------------------------


class RestartableRedis(RedisServer):
    """A redis-server that can be stopped and started again on the same port (empty)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.directory = directory

    def start(self) -> None:
        assert REDIS_SERVER is not None and self.process.poll() is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                *("--port", str(self.port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--dir", str(self.directory)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until_sync(lambda: _accepts(self.port), "redis-server did not start again")


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RestartableRedis]:
    server = RestartableRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@dataclass
class Replica:
    process: subprocess.Popen[str]
    url: str
    output: list[str]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def start_replicas(
    billing: Billing, redis_url: str, stack: ExitStack, **env: str
) -> tuple[Replica, Replica]:
    """Two `gateway serve` processes on one Redis and one stand-in, forwarding callers' tokens."""
    environment = {
        "METRONOME_BASE_URL": billing.url,
        "METRONOME_WEBHOOK_SECRET": SECRET,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_TIMEOUT": "0.2",
        "GATEWAY_REDIS_BREAKER_SECONDS": "0.5",
        "GATEWAY_LIVE_POLL_INTERVAL": str(POLL_INTERVAL),
        "GATEWAY_LIVE_LEASE_SECONDS": str(LEASE_SECONDS),
        "GATEWAY_LOG_LEVEL": "warning",
        **env,
    }
    one, two = (Replica(*stack.enter_context(gateway_process(env=environment))) for _ in range(2))
    return one, two


@pytest.fixture
def replicas(billing: Billing, redis_server: RestartableRedis) -> Iterator[tuple[Replica, Replica]]:
    with ExitStack() as stack:
        yield start_replicas(billing, redis_server.url, stack)


# --- waiting -------------------------------------------------------------------------------------


def wait_until_sync(condition: Callable[[], bool], message: str, within: float = PATIENCE) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


async def wait_until(condition: Callable[[], Any], message: str, within: float = PATIENCE) -> Any:
    """``condition()``'s first truthy value (awaited if it is awaitable), checked every 20 ms
    for at most ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, message
        await asyncio.sleep(0.02)


async def metric(http: httpx.AsyncClient, url: str, sample: str) -> float:
    """The value of the /metrics sample named exactly ``sample`` (labels included), 0 if none."""
    text = (await http.get(f"{url}/metrics")).text
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return 0.0


async def live_state(http: httpx.AsyncClient, url: str) -> str:
    return str((await http.get(f"{url}/readyz")).json()["live"])


# --- subscribers -------------------------------------------------------------------------------


@dataclass
class Message:
    reason: str
    seats: dict[str, list[dict[str, Any]]]  # seat id -> its balances
    received: float  # monotonic


@dataclass
class Subscriber:
    """One live subscription, read by a task: what arrived so far."""

    name: str
    messages: list[Message] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def take(self, payload: dict[str, Any]) -> None:
        if payload.get("errors"):
            self.errors.append(payload["errors"])
            return
        update = payload["data"]["seatBalanceUpdates"]
        seats = {seat["seatId"]: seat["balances"] for seat in update["seats"]}
        self.messages.append(Message(update["reason"], seats, time.monotonic()))

    def first(self, reason: str, after: int = 0) -> Message | None:
        """The first message of ``reason`` from the ``after``-th on."""
        assert not self.errors, self.errors
        if self.task is not None and self.task.done():
            self.task.result()  # the reader's exception, if it failed
            raise AssertionError(f"{self.name}: the subscription ended")
        return next((m for m in self.messages[after:] if m.reason == reason), None)

    async def next(self, reason: str, after: int = 0) -> Message:
        return await wait_until(  # type: ignore[no-any-return]
            lambda: self.first(reason, after), f"{self.name}: no {reason} message"
        )


def variables(billing: Billing) -> dict[str, Any]:
    return {
        "customerId": DEMO_CUSTOMER_ID,
        "contractId": DEMO_CONTRACT_ID,
        "seatIds": billing.seat_ids,
    }


async def read_sse(url: str, billing: Billing, subscriber: Subscriber) -> None:
    """graphql-sse, distinct connections mode: one streaming POST per subscription."""
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http,
        http.stream(
            "POST",
            f"{url}/graphql",
            json={"query": SUBSCRIPTION, "variables": variables(billing)},
            headers={**AUTH, "Accept": "text/event-stream"},
        ) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                if event == "complete":
                    return
            elif line.startswith("data:") and event == "next":
                subscriber.take(json.loads(line.removeprefix("data:")))


async def read_ws(url: str, billing: Billing, subscriber: Subscriber) -> None:
    """graphql-transport-ws through gql's websockets transport, the token in connection_init."""
    transport = WebsocketsTransport(
        url=url.replace("http://", "ws://") + "/graphql",
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
        init_payload=AUTH,
    )
    async with Client(transport=transport) as session:
        request = gql(SUBSCRIPTION)
        request.variable_values = variables(billing)
        async for data in session.subscribe(request):
            subscriber.take({"data": data})


READERS = {"sse": read_sse, "ws": read_ws}


@asynccontextmanager
async def subscribed(
    billing: Billing, *urls_and_transports: tuple[str, str]
) -> AsyncIterator[list[Subscriber]]:
    """A subscription per (replica URL, transport), each with its SNAPSHOT received."""
    subscribers: list[Subscriber] = []
    try:
        for number, (url, transport) in enumerate(urls_and_transports):
            subscriber = Subscriber(f"subscriber {number} ({transport} on {url})")
            subscriber.task = asyncio.create_task(READERS[transport](url, billing, subscriber))
            subscribers.append(subscriber)
            await subscriber.next("SNAPSHOT")
        yield subscribers
    finally:
        for subscriber in subscribers:
            assert subscriber.task is not None
            subscriber.task.cancel()
            # A reader that ended (its replica killed, say) is not this test's failure.
            with contextlib.suppress(BaseException):
                await subscriber.task


# --- webhooks ----------------------------------------------------------------------------------


def delivery(event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A balance alert about the demo contract, signed as the billing API signs it."""
    body = json.dumps(
        {
            "id": event_id or str(uuid.uuid4()),
            "type": ALERT,
            "properties": {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID},
        }
    ).encode()
    date = email.utils.formatdate(usegmt=True)
    headers = {
        "Content-Type": "application/json",
        "X-Metronome-Date": date,
        "Metronome-Webhook-Signature": sign_webhook(SECRET, date, body),
    }
    return body, headers


async def post_webhook(
    http: httpx.AsyncClient, url: str, signed: tuple[bytes, dict[str, str]]
) -> str:
    body, headers = signed
    response = await http.post(f"{url}/webhooks/metronome", content=body, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["status"])


def changed_seats(subscriber: Subscriber, after: int) -> dict[str, str]:
    """Seat id -> the reason of the last message that carried it, from the ``after``-th on."""
    assert not subscriber.errors, subscriber.errors
    return {seat: m.reason for m in subscriber.messages[after:] for seat in m.seats}


async def moved_and_received(
    billing: Billing, subscribers: list[Subscriber], reason: str = "POLL"
) -> set[str]:
    """Moves balances and waits until every subscriber has received each moved seat in
    ``reason`` messages, and nothing else; the seats moved."""
    seen = [len(s.messages) for s in subscribers]
    moved = billing.move()
    for subscriber, after in zip(subscribers, seen, strict=True):
        await wait_until(
            lambda s=subscriber, a=after: set(changed_seats(s, a)) >= moved,
            f"{subscriber.name}: the moved seats {sorted(moved)} did not arrive",
        )
        assert changed_seats(subscriber, after) == dict.fromkeys(moved, reason)
    # Every subscriber has the same balances for them now.
    last = [{seat: s.messages[-1].seats.get(seat) for seat in moved} for s in subscribers]
    assert all(balances == last[0] for balances in last), last
    return moved


def spacing(calls: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(calls)]


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["sse", "ws"])
async def test_a_webhook_posted_to_one_replica_reaches_a_subscriber_on_the_other(
    billing: Billing, redis_server: RestartableRedis, transport: str
) -> None:
    """A signed alert posted to replica one refreshes the listing followed on replica two: its
    subscriber receives a WEBHOOK message with exactly the seats that moved (one upstream call,
    no poll in between: the poll interval is a minute)."""
    with ExitStack() as stack:
        one, two = start_replicas(billing, redis_server.url, stack, GATEWAY_LIVE_POLL_INTERVAL="60")
        async with (
            httpx.AsyncClient(timeout=10) as http,
            subscribed(billing, (two.url, transport)) as [subscriber],
        ):
            before = billing.calls
            moved = billing.move()
            seen = len(subscriber.messages)
            sent = time.monotonic()
            assert await post_webhook(http, one.url, delivery()) == "OK"
            update = await subscriber.next("WEBHOOK", seen)
            latency = update.received - sent
            print(f"\nwebhook on one -> {transport} subscriber on two: {latency * 1000:.1f} ms")
            assert set(update.seats) == moved
            assert billing.calls == before + 1
            assert latency < 5.0  # issue 26 asks for a second; the figure is the print's
            assert (
                await metric(
                    http, one.url, f'gateway_webhooks_total{{outcome="refreshed",type="{ALERT}"}}'
                )
                == 1.0
            )


async def test_subscribers_on_both_replicas_share_one_poll_per_interval(
    billing: Billing, replicas: tuple[Replica, Replica]
) -> None:
    """Three subscribers on each replica follow one listing: over several poll intervals the
    billing API sees one call per interval in all (never two replicas polling the same one),
    and every subscriber on both replicas receives each POLL update with the seats that
    moved."""
    one, two = replicas
    start = time.monotonic()
    async with subscribed(
        billing,
        *[(one.url, "sse"), (one.url, "ws"), (one.url, "sse")],
        *[(two.url, "ws"), (two.url, "sse"), (two.url, "ws")],
    ) as subscribers:
        snapshots = billing.counter.since(start)
        print(f"\nsnapshot calls for 6 subscribers on 2 replicas: {len(snapshots)}")
        # The first subscriber's replica read it and kept it in Redis; the other replica's
        # first subscriber, joining after, starts from what was kept.
        assert len(snapshots) == 1
        polling = time.monotonic()
        for _ in range(3):
            await moved_and_received(billing, subscribers)
        # Then several intervals more, counted.
        await asyncio.sleep(4 * POLL_INTERVAL)
        calls = billing.counter.since(polling)
        window = time.monotonic() - polling
        print(
            f"calls over {window:.2f} s ({window / POLL_INTERVAL:.1f} intervals of "
            f"{POLL_INTERVAL} s): {len(calls)}; between calls: "
            f"{min(spacing(calls)):.3f}-{max(spacing(calls)):.3f} s"
        )
        # One poll per interval (jittered by 10 %): no two calls in one interval...
        assert min(spacing(calls)) > 0.6 * POLL_INTERVAL, spacing(calls)
        # ...and no interval without one (a slow test machine may stretch one, not skip it).
        assert len(calls) <= window / (0.9 * POLL_INTERVAL) + 1
        assert len(calls) >= window / (1.1 * POLL_INTERVAL) - 2


async def test_the_other_replica_takes_polling_over_when_the_poller_is_killed(
    billing: Billing, replicas: tuple[Replica, Replica]
) -> None:
    """The replica whose upstream call counter grows is the one polling; SIGKILLed, it leaves
    its lease to expire, and the other replica starts polling within the lease and a poll
    interval or so; its subscribers keep receiving updates."""
    one, two = replicas
    async with (
        httpx.AsyncClient(timeout=10) as http,
        subscribed(billing, (one.url, "sse"), (two.url, "ws")) as subscribers,
    ):
        counter = "gateway_live_upstream_calls_total"
        before = {r.url: await metric(http, r.url, counter) for r in replicas}

        async def poller() -> Replica | None:
            grown = [r for r in replicas if await metric(http, r.url, counter) >= before[r.url] + 2]
            return grown[0] if grown else None

        polling = await wait_until(poller, "neither replica polls")
        survivor, survivor_subscriber = (
            (two, subscribers[1]) if polling is one else (one, subscribers[0])
        )
        assert await metric(http, survivor.url, counter) == before[survivor.url]

        polling.kill()
        killed = time.monotonic()
        await wait_until(
            lambda: _grown(http, survivor.url, counter, before[survivor.url]),
            "the survivor did not take polling over",
        )
        # A request the killed replica had sent may still arrive within milliseconds: the
        # survivor's first call is the first one after those.
        taken = next(at for at in billing.counter.since(killed) if at - killed > 0.05)
        takeover = taken - killed
        bound = LEASE_SECONDS + LEASE_SECONDS / 3 + 1.1 * POLL_INTERVAL
        print(
            f"\ntakeover after SIGKILL: {takeover:.2f} s (lease + tick + interval: {bound:.2f} s)"
        )
        assert takeover < bound + 2.0  # generous: the measured figure is the print's
        await moved_and_received(billing, [survivor_subscriber])


async def test_with_redis_down_each_replica_polls_alone_and_shares_again_when_it_is_back(
    billing: Billing, replicas: tuple[Replica, Replica], redis_server: RestartableRedis
) -> None:
    """redis-server stopped while subscribed: subscriptions keep working, each replica polling
    for itself (one call per interval each), /readyz says live is degraded and the metric is
    1; started again on its port, the replicas share one poll again and say ok."""
    one, two = replicas
    async with (
        httpx.AsyncClient(timeout=10) as http,
        subscribed(
            billing, (one.url, "sse"), (one.url, "ws"), (two.url, "sse"), (two.url, "ws")
        ) as subscribers,
    ):
        assert [await live_state(http, r.url) for r in replicas] == ["ok", "ok"]
        await moved_and_received(billing, subscribers)

        redis_server.stop()
        for replica in replicas:
            await wait_until(
                lambda r=replica: _degraded(http, r.url),
                f"{replica.url} does not say live is degraded",
            )
        await moved_and_received(billing, subscribers)
        alone = await polls_per_replica(http, billing, replicas)
        print(f"\nRedis down: calls per interval per replica {alone}")
        assert all(0.5 <= rate <= 1.25 for rate in alone), alone

        redis_server.start()
        for replica in replicas:
            await wait_until(
                lambda r=replica: _shared(http, r.url),
                f"{replica.url} does not say live is ok again",
            )
        # A lease renewed by a replica that had polled alone outlives the outage by at most
        # a lease: from then on, one poll per interval in all.
        await asyncio.sleep(LEASE_SECONDS)
        shared = await polls_per_replica(http, billing, replicas)
        print(f"Redis back: calls per interval per replica {shared}")
        assert 0.5 <= sum(shared) <= 1.25, shared
        assert min(shared) == 0.0, shared
        await moved_and_received(billing, subscribers)


async def _grown(http: httpx.AsyncClient, url: str, sample: str, before: float) -> bool:
    return await metric(http, url, sample) > before


async def _degraded(http: httpx.AsyncClient, url: str) -> bool:
    return await live_state(http, url) == "degraded" and (
        await metric(http, url, "gateway_live_bus_degraded") == 1.0
    )


async def _shared(http: httpx.AsyncClient, url: str) -> bool:
    return await live_state(http, url) == "ok" and (
        await metric(http, url, "gateway_live_bus_degraded") == 0.0
    )


async def polls_per_replica(
    http: httpx.AsyncClient, billing: Billing, replicas: tuple[Replica, Replica]
) -> list[float]:
    """Each replica's upstream calls per poll interval over eight intervals (its own counter;
    the stand-in's count over the same window is their sum, within one call each)."""
    counter = "gateway_live_upstream_calls_total"
    before = [await metric(http, r.url, counter) for r in replicas]
    start = time.monotonic()
    await asyncio.sleep(8 * POLL_INTERVAL)
    after = [await metric(http, r.url, counter) for r in replicas]
    intervals = (time.monotonic() - start) / POLL_INTERVAL
    total = len(billing.counter.since(start))
    assert abs(total - (sum(after) - sum(before))) <= 2, (total, before, after)
    return [round((b - a) / intervals, 2) for a, b in zip(before, after, strict=True)]


async def test_a_webhook_replayed_to_the_other_replica_is_a_duplicate_and_calls_nothing(
    billing: Billing, redis_server: RestartableRedis
) -> None:
    """The billing API delivers an event again when it saw no answer: the same id posted to
    replica one, then to replica two, answers 200 DUPLICATE there and refreshes nothing."""
    with ExitStack() as stack:
        one, two = start_replicas(billing, redis_server.url, stack, GATEWAY_LIVE_POLL_INTERVAL="60")
        async with (
            httpx.AsyncClient(timeout=10) as http,
            subscribed(billing, (two.url, "sse")) as [subscriber],
        ):
            before = billing.calls
            signed = delivery()
            moved = billing.move()
            seen = len(subscriber.messages)
            assert await post_webhook(http, one.url, signed) == "OK"
            assert set((await subscriber.next("WEBHOOK", seen)).seats) == moved
            assert billing.calls == before + 1

            seen = len(subscriber.messages)
            billing.move()  # a refresh now would have something to send
            assert await post_webhook(http, two.url, signed) == "DUPLICATE"
            assert await post_webhook(http, one.url, signed) == "DUPLICATE"
            # Nothing to wait for: a refresh the replay caused would come within milliseconds
            # (the delivery above took that long), so a second of quiet shows there is none.
            await asyncio.sleep(1.0)
            assert billing.calls == before + 1
            assert subscriber.messages[seen:] == []
            duplicate = f'gateway_webhooks_total{{outcome="duplicate",type="{ALERT}"}}'
            assert await metric(http, two.url, duplicate) == 1.0
            # A new delivery still refreshes, once.
            assert await post_webhook(http, two.url, delivery()) == "OK"
            await subscriber.next("WEBHOOK", seen)
            assert billing.calls == before + 2


async def test_a_webhook_on_one_replica_drops_the_customers_cached_pages_on_the_other(
    billing: Billing, redis_server: RestartableRedis
) -> None:
    """GATEWAY_CACHE_TTL=60 with Redis as the shared page cache: a query on replica two costs
    one call, then none; balances move and a webhook reaches replica one; the query on replica
    two calls the billing API once more and answers the new balances."""
    with ExitStack() as stack:
        one, two = start_replicas(
            billing,
            redis_server.url,
            stack,
            GATEWAY_CACHE_TTL="60",
            GATEWAY_LIVE_POLL_INTERVAL="60",
        )
        async with httpx.AsyncClient(timeout=10) as http:

            async def seats() -> dict[str, Any]:
                response = await http.post(
                    f"{two.url}/graphql",
                    json={"query": QUERY, "variables": variables(billing)},
                    headers=AUTH,
                )
                payload = response.json()
                assert "errors" not in payload, payload
                nodes = payload["data"]["seatBalances"]["nodes"]
                return {node["seatId"]: node["balances"] for node in nodes}

            before = billing.calls
            cached = await seats()
            assert billing.calls == before + 1
            assert await seats() == cached
            assert billing.calls == before + 1

            moved = billing.move()
            assert await post_webhook(http, one.url, delivery()) == "OK"
            # Replica two hears of it over Redis pub/sub, a few milliseconds later: until then
            # its cached page answers (no call).
            fresh = await wait_until(
                lambda: _if_changed(seats(), cached), "replica two kept the cached page"
            )
            assert billing.calls == before + 2
            assert {seat for seat in cached if fresh[seat] != cached[seat]} == moved
            assert set(fresh) == set(cached)


async def _if_changed(answer: Any, old: dict[str, Any]) -> dict[str, Any] | None:
    new: dict[str, Any] = await answer
    return new if new != old else None
