"""One upstream budget per credential (GATEWAY_UPSTREAM_RATE), in process: a burst goes no
faster than the budget, the calls that cannot get a turn within GATEWAY_UPSTREAM_RATE_WAIT fail
UPSTREAM_RATE_LIMITED without calling, and a 429 with Retry-After holds the next calls.

Over a real gateway on 127.0.0.1; upstream calls are counted, with their times, at the
transport under the client. (Across replicas with Redis: tests/test_upstream_budget_redis.py.)
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pydantic
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, create_standin_app
from tests.support import Gateway, SleepRecorder, running_gateway

LISTING = f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}"'
OK_PAGE = {"data": [], "pagination": {"seats_included": 0, "next_page": None}}
# How far the times a call is seen at may stray from the instant its turn came: late wake-ups
# of an event loop, a busy machine between the gateway and the recording upstream.
JITTER = 0.1


def ahead_of_budget(times: list[float], interval: float) -> float:
    """How far the calls seen at ``times`` got ahead of one every ``interval`` seconds from
    the first: the largest ``k * interval - (t[k] - t[0])``. Within the budget, at most the
    jitter; two replicas on budgets of their own get ahead by about half of the span.

    Counted from the first call only: a call sent late (its turn came, then a busy machine
    kept it) is no earlier than its turn, but compared with the calls after it, it would make
    them look early (a pair of a late call and an on-time one two turns later looked 0.19 s
    ahead on a loaded run)."""
    ordered = sorted(times)
    return max(
        (k * interval - (ordered[k] - ordered[0]) for k in range(1, len(ordered))),
        default=0.0,
    )


def seats(first: int) -> str:
    """A query making one upstream call whose body differs with ``first`` (identical calls in
    flight would be shared, not repeated)."""
    return f"{{ seatBalances({LISTING}, first: {first}) {{ nodes {{ seatId }} }} }}"


class Timed(httpx.AsyncBaseTransport):
    """Passes requests on to ``inner`` and keeps the monotonic time each one was sent."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.times: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.times.append(time.monotonic())
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def burst(gateway: Gateway, queries: list[str]) -> list[dict[str, Any]]:
    """Every query sent at once, each on its own connection; their answers in order."""
    with ThreadPoolExecutor(len(queries)) as pool:
        return list(pool.map(lambda query: gateway.post(query).json(), queries))


def codes(payload: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in payload.get("errors", [])}


def metric(gateway: Gateway, name: str) -> float:
    text = gateway.http.get(f"{gateway.url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_a_burst_goes_no_faster_than_the_budget_and_the_rest_fail_without_calling() -> None:
    """20 requests at once with a budget of 10 calls a second and a wait of 0.5 s: the calls
    that go are never more than the jitter ahead of one every 0.1 s (the budget); the requests
    whose turn would come later fail UPSTREAM_RATE_LIMITED, and no call of theirs is made."""
    upstream = Timed(httpx.ASGITransport(app=create_standin_app()))
    settings = Settings(upstream_rate="10/second", upstream_rate_wait=0.5)
    with running_gateway(settings, upstream) as gateway:
        answers = burst(gateway, [seats(first) for first in range(1, 21)])
        refused = metric(gateway, "gateway_upstream_rate_limited_total")

    served = [payload for payload in answers if not payload.get("errors")]
    limited = [payload for payload in answers if codes(payload) == {"UPSTREAM_RATE_LIMITED"}]
    assert len(served) + len(limited) == 20, answers
    assert len(upstream.times) == len(served)  # a refused request called nothing
    # How many get a turn depends on how spread out the burst arrives (a loaded machine
    # spreads it); the budget is in the times of the calls made.
    assert len(served) >= 3 and len(limited) >= 1, (len(served), len(limited))
    assert ahead_of_budget(upstream.times, 0.1) <= JITTER, sorted(upstream.times)
    assert refused == len(limited)
    assert all(payload["data"] == {"seatBalances": None} for payload in limited)


def test_every_credential_has_a_budget_of_its_own() -> None:
    """With a budget of one call a minute, a second call with the same token fails
    UPSTREAM_RATE_LIMITED at once (wait 0), and another token's call still goes."""
    seen: list[str | None] = []

    def billing(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json=OK_PAGE)

    settings = Settings(
        metronome_base_url="https://billing.example", upstream_rate="1/minute", upstream_rate_wait=0
    )
    with running_gateway(settings, httpx.MockTransport(billing)) as gateway:
        assert gateway.query(seats(1), token="alice")
        assert codes(gateway.post(seats(2), token="alice").json()) == {"UPSTREAM_RATE_LIMITED"}
        assert gateway.query(seats(3), token="bob")
    assert seen == ["Bearer alice", "Bearer bob"]


def test_a_429_with_retry_after_holds_the_credentials_next_calls() -> None:
    """The billing API answers 429 with Retry-After: 0.6 once: the retry and the next request,
    inside the hold and with a wait of 0.2 s, fail UPSTREAM_RATE_LIMITED without calling; after
    the hold the calls go again."""
    seen: list[float] = []

    def billing(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return httpx.Response(
                429, json={"message": "slow down"}, headers={"retry-after": "0.6"}
            )
        return httpx.Response(200, json=OK_PAGE)

    settings = Settings(
        metronome_base_url="https://billing.example",
        upstream_rate="100/second",
        upstream_rate_wait=0.2,
    )
    with running_gateway(settings, httpx.MockTransport(billing), retry_sleep=SleepRecorder()) as g:
        started = time.monotonic()
        assert codes(g.post(seats(1), token="alice").json()) == {"UPSTREAM_RATE_LIMITED"}
        assert codes(g.post(seats(2), token="alice").json()) == {"UPSTREAM_RATE_LIMITED"}
        assert len(seen) == 1
        time.sleep(max(0.0, 0.65 - (time.monotonic() - started)))
        assert g.query(seats(3), token="alice")
        holds = metric(g, "gateway_upstream_holds_total")
    assert len(seen) == 2
    assert holds == 1


def test_a_held_call_waits_for_the_end_of_the_hold_when_it_may() -> None:
    """A hold shorter than the wait: the retry of the 429 waits for the hold's end and is
    answered, never sooner than Retry-After asked."""
    seen: list[float] = []

    def billing(request: httpx.Request) -> httpx.Response:
        seen.append(time.monotonic())
        if len(seen) == 1:
            return httpx.Response(
                429, json={"message": "slow down"}, headers={"retry-after": "0.3"}
            )
        return httpx.Response(200, json=OK_PAGE)

    settings = Settings(metronome_base_url="https://billing.example", upstream_rate="100/second")
    with running_gateway(settings, httpx.MockTransport(billing), retry_sleep=SleepRecorder()) as g:
        assert g.query(seats(1), token="alice")
    assert len(seen) == 2
    assert seen[1] - seen[0] >= 0.3 - 0.02  # a late wake-up, never an early one


@pytest.mark.parametrize("rate", ["fast", "0/second", "50/fortnight", "50"])
def test_a_bad_rate_is_a_settings_error_naming_the_setting(rate: str) -> None:
    """GATEWAY_UPSTREAM_RATE must read <count>/<second|minute|hour|day>; anything else stops the
    configuration with a message naming the setting."""
    with pytest.raises(pydantic.ValidationError, match="GATEWAY_UPSTREAM_RATE"):
        Settings(upstream_rate=rate)


def test_without_a_rate_there_is_no_budget() -> None:
    """Unset, the feature is off: 20 calls at once all go, however close together."""
    upstream = Timed(httpx.ASGITransport(app=create_standin_app()))
    with running_gateway(Settings(), upstream) as gateway:
        answers = burst(gateway, [seats(first) for first in range(1, 21)])
    assert all(not payload.get("errors") for payload in answers)
    assert len(upstream.times) == 20
