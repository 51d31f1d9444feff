"""One upstream budget across replicas (issue 28): a real redis-server, two `gateway serve`
processes, and one stand-in of the billing API served by the test, which records the time of
every call it receives (one clock for both replicas)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import SEAT_BALANCES_PATH
from tests.support import gateway_process, serve
from tests.test_redis import RedisServer
from tests.test_upstream_budget import JITTER, ahead_of_budget

pytestmark = pytest.mark.process  # starts redis-server and two `gateway serve`

LISTING = f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}"'


def seats(first: int) -> str:
    """One upstream call, whose body differs with ``first``."""
    return f"{{ seatBalances({LISTING}, first: {first}) {{ nodes {{ seatId }} }} }}"


class Recorded:
    """The stand-in, recording the monotonic time of each seat call; it answers the first
    ``refusals`` of them 429 with ``Retry-After``."""

    def __init__(self, *, refusals: int = 0, retry_after: str = "1") -> None:
        self.app: ASGIApp = create_standin_app()
        self.times: list[float] = []
        self.refusals = refusals
        self.retry_after = retry_after

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == SEAT_BALANCES_PATH:
            self.times.append(time.monotonic())
            if self.refusals > 0:
                self.refusals -= 1
                await send(
                    {
                        "type": "http.response.start",
                        "status": 429,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"retry-after", self.retry_after.encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"message": "slow down"}'})
                return
        await self.app(scope, receive, send)


@contextmanager
def replicas(
    standin: Recorded, redis_url: str, **env: str
) -> Iterator[tuple[list[str], list[list[str]]]]:
    """Two `gateway serve` sharing ``redis_url``, both pointed at ``standin``: their URLs and
    output lines."""
    with serve(standin) as billing, ExitStack() as stack:
        settings = {
            "METRONOME_BASE_URL": billing,
            "GATEWAY_REDIS_URL": redis_url,
            "GATEWAY_UPSTREAM_RATE": "10/second",
            "GATEWAY_UPSTREAM_RATE_WAIT": "0.5",
            **env,
        }
        started = [stack.enter_context(gateway_process(env=settings)) for _ in range(2)]
        yield [url for _, url, _ in started], [output for _, _, output in started]


def post(url: str, query: str) -> dict[str, Any]:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        timeout=30,
    )
    return response.json()  # type: ignore[no-any-return]


def codes(payload: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in payload.get("errors", [])}


def burst(urls: list[str], count: int, start: int = 1) -> list[dict[str, Any]]:
    """``count`` requests at once, alternating between the replicas."""
    jobs = [(urls[n % len(urls)], seats(start + n)) for n in range(count)]
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda job: post(*job), jobs))


def metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_a_burst_over_two_replicas_stays_within_one_budget(tmp_path: Path) -> None:
    """20 requests at once over two replicas with a budget of 10 calls a second and a wait of
    0.5 s: the calls the stand-in receives keep to one every 0.1 s (within the jitter),
    whichever replica made them
    (one budget, not one each), and the requests that got no turn fail UPSTREAM_RATE_LIMITED
    without a call."""
    redis = RedisServer(tmp_path)
    standin = Recorded()
    try:
        with replicas(standin, redis.url) as (urls, _):
            answers = burst(urls, 20)
    finally:
        redis.stop()
    served = [payload for payload in answers if not payload.get("errors")]
    limited = [payload for payload in answers if codes(payload) == {"UPSTREAM_RATE_LIMITED"}]
    assert len(served) + len(limited) == 20, answers
    assert len(standin.times) == len(served)
    # How many get a turn depends on how spread out the burst arrives (a loaded machine
    # spreads it); the budget is in the times of the calls made.
    assert len(served) >= 3 and len(limited) >= 1, (len(served), len(limited))
    assert ahead_of_budget(standin.times, 0.1) <= JITTER, sorted(standin.times)


def test_a_429_seen_by_one_replica_holds_the_other(tmp_path: Path) -> None:
    """The stand-in answers the first seat call 429 with Retry-After: 1. The replica that got
    it fails UPSTREAM_RATE_LIMITED (no retries configured); a request to the other replica
    inside the hold fails the same way without calling the stand-in; after the hold it is
    served."""
    redis = RedisServer(tmp_path)
    standin = Recorded(refusals=1, retry_after="1")
    try:
        with replicas(standin, redis.url, GATEWAY_UPSTREAM_MAX_RETRIES="0") as (urls, _):
            started = time.monotonic()
            assert codes(post(urls[0], seats(1))) == {"UPSTREAM_RATE_LIMITED"}
            assert codes(post(urls[1], seats(2))) == {"UPSTREAM_RATE_LIMITED"}
            assert len(standin.times) == 1, "the other replica called during the hold"
            time.sleep(max(0.0, 1.05 - (time.monotonic() - started)))
            assert not post(urls[1], seats(3)).get("errors")
            holds = metric(urls[0], "gateway_upstream_holds_total")
    finally:
        redis.stop()
    assert len(standin.times) == 2
    assert holds == 1


def test_with_redis_killed_mid_run_the_budget_applies_per_process(tmp_path: Path) -> None:
    """Redis is killed after a first request: each replica then keeps the budget by itself
    (its own calls keep to one every 0.1 s, the rest refused), and says so in its metrics."""
    redis = RedisServer(tmp_path)
    standin = Recorded()
    try:
        with replicas(standin, redis.url) as (urls, _):
            assert not post(urls[0], seats(1)).get("errors")
            redis.stop()
            time.sleep(0.2)
            standin.times.clear()
            answers = burst(urls[:1], 12, start=2)
            local = metric(urls[0], "gateway_upstream_budget_local_total")
    finally:
        redis.stop()
    served = [payload for payload in answers if not payload.get("errors")]
    limited = [payload for payload in answers if codes(payload) == {"UPSTREAM_RATE_LIMITED"}]
    assert len(served) + len(limited) == 12, answers
    assert len(served) >= 2 and len(limited) >= 1, (len(served), len(limited))
    assert len(standin.times) == len(served)
    assert ahead_of_budget(standin.times, 0.1) <= JITTER, sorted(standin.times)
    assert local >= len(served)
