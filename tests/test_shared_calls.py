"""Identical upstream calls in flight at once are made once (issue 23, item 8): requests with
the same credential asking the billing API for the same page while it is being fetched wait for
that one call, with the page cache on or off; other credentials never share it; a request that
leaves stops waiting without stopping the call for the others, and a call nobody waits for any
more is cancelled."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID
from tests.support import Gateway, running_gateway

QUERY = (
    f'{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", '
    "first: 2) { nodes { seatId } } }"
)


class HeldUpstream:
    """A billing API that holds every call until :meth:`release`; each page holds one seat
    named after the credential that asked for it. Counts the calls cancelled while held."""

    def __init__(self) -> None:
        self.cancelled = 0
        self._released = threading.Event()
        self._waiting: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._lock = threading.Lock()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        event = asyncio.Event()
        with self._lock:
            if not self._released.is_set():
                self._waiting.append((asyncio.get_running_loop(), event))
            else:
                event.set()
        try:
            await event.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        seat = f"seat-of-{request.headers['authorization'].removeprefix('Bearer ')}"
        return httpx.Response(
            200,
            json={
                "data": [{"seat_id": seat, "balances": []}],
                "pagination": {"seats_included": 1, "next_page": None},
            },
        )

    def release(self) -> None:
        with self._lock:
            self._released.set()
            for loop, event in self._waiting:
                loop.call_soon_threadsafe(event.set)


@contextmanager
def held_gateway(**update: object) -> Iterator[tuple[Gateway, HeldUpstream]]:
    upstream = HeldUpstream()
    settings = Settings(metronome_base_url="http://billing.invalid", **update)  # type: ignore[arg-type]
    with running_gateway(settings, httpx.MockTransport(upstream)) as gateway:
        try:
            yield gateway, upstream
        finally:
            upstream.release()


def shared_calls(gateway: Gateway) -> float:
    for line in gateway.http.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith("gateway_upstream_shared_calls_total "):
            return float(line.split()[1])
    return 0.0


def wait_for_shared(gateway: Gateway, count: int, seconds: float = 10.0) -> None:
    """Until ``count`` requests wait for a call another made (at most ``seconds``)."""
    deadline = time.monotonic() + seconds
    while shared_calls(gateway) < count and time.monotonic() < deadline:
        time.sleep(0.02)


def ask(gateway: Gateway, token: str, timeout: float = 30.0) -> httpx.Response:
    return gateway.http.post(
        f"{gateway.url}/graphql",
        json={"query": QUERY},
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )


@pytest.mark.parametrize("cache_ttl", [0.0, 60.0], ids=["cache off", "cache on"])
def test_fifty_identical_concurrent_requests_make_one_upstream_call(cache_ttl: float) -> None:
    """50 requests for the same page with the same token while the billing API holds the
    first call: one upstream call, and all 50 get its answer."""
    with held_gateway(cache_ttl=cache_ttl) as (gateway, upstream), ThreadPoolExecutor(50) as pool:
        answers = [pool.submit(ask, gateway, "token-a") for _ in range(50)]
        wait_for_shared(gateway, 49)
        upstream.release()
        bodies = [answer.result().json() for answer in answers]
        assert len(gateway.calls) == 1
        expected = {"data": {"seatBalances": {"nodes": [{"seatId": "seat-of-token-a"}]}}}
        assert all(body == expected for body in bodies)


def test_concurrent_requests_of_two_credentials_never_share_a_call() -> None:
    """Ten requests with token A and ten with token B at once: two upstream calls, and each
    caller gets the page its own credential fetched."""
    with held_gateway() as (gateway, upstream), ThreadPoolExecutor(20) as pool:
        answers = [pool.submit(ask, gateway, token) for token in ["token-a", "token-b"] * 10]
        wait_for_shared(gateway, 18)
        upstream.release()
        seats = [answer.result().json()["data"]["seatBalances"]["nodes"] for answer in answers]
        assert sorted(call.authorization or "" for call in gateway.calls) == [
            "Bearer token-a",
            "Bearer token-b",
        ]
        assert seats == [[{"seatId": f"seat-of-{t}"}] for t in ["token-a", "token-b"] * 10]


def test_a_caller_that_leaves_does_not_cancel_the_call_for_the_others() -> None:
    """Two requests share a held call; the first client gives up (and disconnects): the call
    goes on and the second gets its answer from it, one upstream call in all."""
    with held_gateway() as (gateway, upstream), ThreadPoolExecutor(2) as pool:
        leaving = pool.submit(ask, gateway, "token-a", 0.5)
        staying = pool.submit(ask, gateway, "token-a")
        wait_for_shared(gateway, 1)
        with pytest.raises(httpx.ReadTimeout):
            leaving.result()
        time.sleep(0.3)  # the gateway notices the disconnect and cancels that request
        assert upstream.cancelled == 0
        upstream.release()
        assert staying.result().json()["data"]["seatBalances"]["nodes"] == [
            {"seatId": "seat-of-token-a"}
        ]
        assert len(gateway.calls) == 1


def test_a_call_nobody_waits_for_any_more_is_cancelled() -> None:
    """Every request waiting for a held call leaves: the upstream call is cancelled."""
    with held_gateway() as (gateway, upstream), ThreadPoolExecutor(2) as pool:
        leaving = [pool.submit(ask, gateway, "token-a", 0.5) for _ in range(2)]
        wait_for_shared(gateway, 1)
        for answer in leaving:
            with pytest.raises(httpx.ReadTimeout):
                answer.result()
        deadline = time.monotonic() + 5
        while upstream.cancelled == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.cancelled == 1
        assert len(gateway.calls) == 1
