"""The upstream client under faults: retries as the billing API's SDKs do them, bounded."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest

from gateway.upstream import (
    BillingClient,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.transport import billing_transport
from tests.support import DEFAULT_POLICY, SleepRecorder

OK_PAGE = {"data": [], "pagination": {"seats_included": 0, "next_page": None}}
BODY = {"customer_id": "c", "contract_id": "k"}


class Script:
    """An upstream that answers each attempt with the next response of a script."""

    def __init__(self, *responses: httpx.Response | type[Exception]) -> None:
        self.responses = list(responses)
        self.attempts = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, type):
            raise answer("scripted failure")
        return answer


def client(
    handler: Callable[[httpx.Request], httpx.Response], sleep: SleepRecorder, **policy: float
) -> BillingClient:
    transport = httpx.MockTransport(handler)
    return BillingClient(
        transport, "http://billing", replace(DEFAULT_POLICY, sleep=sleep, **policy)
    )  # type: ignore[arg-type]


def answer(status: int, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"message": f"HTTP {status}"}, headers=headers)


async def test_a_503_then_a_200_is_one_retry_after_a_jittered_backoff() -> None:
    """A transient 5xx is retried once after 0.5 s less up to 25 % jitter."""
    script, sleep = Script(answer(503), httpx.Response(200, json=OK_PAGE)), SleepRecorder()
    page = await client(script, sleep).list_seat_balances(BODY, token="t")
    assert page["data"] == []
    assert script.attempts == 2
    [wait] = sleep.waits
    assert 0.375 <= wait <= 0.5


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after-ms": "1500"}, (1.5, 1.5)),
        ({"retry-after-ms": "250", "retry-after": "9"}, (0.25, 0.25)),
        ({"retry-after": "3"}, (3.0, 3.0)),
        ({"retry-after": "__date+5__"}, (3.5, 5.0)),
        ({"retry-after": "120"}, (0.375, 0.5)),  # beyond 60 s: the SDKs back off on their own
        ({"retry-after": "soon"}, (0.375, 0.5)),
    ],
)
async def test_a_429_waits_as_long_as_the_server_asks(
    headers: dict[str, str], expected: tuple[float, float]
) -> None:
    """retry-after-ms wins over retry-after; seconds and HTTP dates both work."""
    if headers.get("retry-after") == "__date+5__":
        headers = {"retry-after": email.utils.formatdate(time.time() + 5, usegmt=True)}
    script, sleep = (
        Script(answer(429, **headers), httpx.Response(200, json=OK_PAGE)),
        SleepRecorder(),
    )
    await client(script, sleep, deadline=60).list_seat_balances(BODY, token="t")
    [wait] = sleep.waits
    assert expected[0] <= wait <= expected[1]


async def test_persistent_failures_stop_after_the_retry_budget() -> None:
    """Three attempts at most by default, backing off 0.5 s then 1 s, then the last error."""
    script, sleep = Script(answer(502)), SleepRecorder()
    with pytest.raises(UpstreamUnavailable) as failure:
        await client(script, sleep).list_seat_balances(BODY, token="t")
    assert failure.value.status == 502
    assert script.attempts == 3
    assert 0.375 <= sleep.waits[0] <= 0.5 and 0.75 <= sleep.waits[1] <= 1.0


@pytest.mark.parametrize("status", [408, 409, 429, 500, 503])
async def test_the_sdks_retried_statuses_are_retried(status: int) -> None:
    """408, 409, 429 and 5xx are worth another attempt."""
    script, sleep = Script(answer(status), httpx.Response(200, json=OK_PAGE)), SleepRecorder()
    await client(script, sleep).list_seat_balances(BODY, token="t")
    assert script.attempts == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_client_errors_are_not_retried(status: int) -> None:
    """A 4xx the SDKs do not retry fails at once with the API's message."""
    script, sleep = Script(answer(status)), SleepRecorder()
    with pytest.raises(UpstreamRejected) as failure:
        await client(script, sleep).list_seat_balances(BODY, token="t")
    assert (failure.value.status, script.attempts, sleep.waits) == (status, 1, [])


async def test_x_should_retry_overrides_the_status() -> None:
    """x-should-retry: false stops a 503 from being retried; true retries a 400."""
    script, sleep = Script(answer(503, **{"x-should-retry": "false"})), SleepRecorder()
    with pytest.raises(UpstreamUnavailable):
        await client(script, sleep).list_seat_balances(BODY, token="t")
    assert script.attempts == 1
    script = Script(answer(400, **{"x-should-retry": "true"}), httpx.Response(200, json=OK_PAGE))
    await client(script, sleep).list_seat_balances(BODY, token="t")
    assert script.attempts == 2


async def test_timeouts_and_connection_errors_are_retried_then_reported() -> None:
    """Read timeouts become UpstreamTimeout, connection errors UpstreamUnavailable, after retries."""
    for error, expected in (
        (httpx.ReadTimeout, UpstreamTimeout),
        (httpx.ConnectError, UpstreamUnavailable),
    ):
        script, sleep = Script(error), SleepRecorder()
        with pytest.raises(expected):
            await client(script, sleep).list_seat_balances(BODY, token="t")
        assert script.attempts == 3


async def test_connection_refused_by_a_real_closed_port() -> None:
    """A billing API that is not listening is UPSTREAM_UNAVAILABLE, not a crash."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleep = SleepRecorder()
    transport = billing_transport(f"http://127.0.0.1:{port}", max_connections=4)
    with pytest.raises(UpstreamUnavailable) as failure:
        await BillingClient(
            transport, f"http://127.0.0.1:{port}", replace(DEFAULT_POLICY, sleep=sleep)
        ).list_seat_balances(BODY, token="t")
    await transport.aclose()
    assert "127.0.0.1" not in str(failure.value)
    assert len(sleep.waits) == 2


async def test_a_slow_upstream_is_cut_at_the_deadline() -> None:
    """An upstream that never answers gives UpstreamTimeout once the call's deadline passes."""
    attempts = 0

    async def never(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(30)
        return httpx.Response(200, json=OK_PAGE)

    transport = httpx.MockTransport(never)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeout):
        await BillingClient(
            transport,
            "http://billing",
            replace(DEFAULT_POLICY, attempt_timeout=0.2, deadline=0.5, initial_backoff=0.05),
        ).list_seat_balances(BODY, token="t")
    assert time.monotonic() - started < 2.0, "the deadline bounds the whole call"
    assert attempts >= 2


async def test_a_wait_beyond_the_deadline_is_not_made() -> None:
    """When the server asks to wait past the call's deadline, the error comes back at once."""
    script, sleep = Script(answer(429, **{"retry-after": "30"})), SleepRecorder()
    with pytest.raises(UpstreamRejected) as failure:
        await client(script, sleep, deadline=5).list_seat_balances(BODY, token="t")
    assert failure.value.status == 429
    assert (script.attempts, sleep.waits) == (1, [])


async def test_concurrent_calls_are_capped_per_process() -> None:
    """No more than max_concurrency calls are in flight; the others wait their turn."""
    in_flight = peak = 0
    release = asyncio.Event()

    async def held(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await release.wait()
        in_flight -= 1
        return httpx.Response(200, json=OK_PAGE)

    billing = BillingClient(
        httpx.MockTransport(held), "http://billing", replace(DEFAULT_POLICY, max_concurrency=2)
    )
    calls = [asyncio.ensure_future(billing.list_seat_balances(BODY, token="t")) for _ in range(6)]
    await asyncio.sleep(0.1)
    assert peak == 2
    release.set()
    await asyncio.gather(*calls)
    assert peak == 2


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>maintenance</html>"),
        httpx.Response(200, json={"data": "nope", "pagination": {}}),
        httpx.Response(
            200,
            json={
                "data": [
                    {
                        "seat_id": "a",
                        "balances": [
                            {"credit_type_id": "x", "balance": "lots", "starting_balance": 1}
                        ],
                    }
                ],
                "pagination": {"seats_included": 1},
            },
        ),
        httpx.Response(
            200,
            json={
                "data": [
                    {
                        "seat_id": "a",
                        "balances": [],
                        "commits": [{"id": "k", "balance": 1, "start_date": "yesterday"}],
                    }
                ],
                "pagination": {"seats_included": 1},
            },
        ),
        httpx.Response(204),
    ],
)
async def test_unreadable_or_contract_breaking_bodies_are_bad_responses(
    response: httpx.Response,
) -> None:
    """A body we cannot trust is UpstreamBadResponse, never retried, never half-used."""
    script, sleep = Script(response), SleepRecorder()
    with pytest.raises(UpstreamBadResponse):
        await client(script, sleep).list_seat_balances(BODY, token="t")
    assert script.attempts == 1


async def test_a_billing_api_that_hangs_up_is_unavailable_not_a_timeout() -> None:
    """A server that accepts the connection and closes it without answering is
    UPSTREAM_UNAVAILABLE (retried), through the production transport."""

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sleep = SleepRecorder()
    transport = billing_transport(f"http://127.0.0.1:{port}", max_connections=4)
    try:
        with pytest.raises(UpstreamUnavailable):
            await BillingClient(
                transport, f"http://127.0.0.1:{port}", replace(DEFAULT_POLICY, sleep=sleep)
            ).list_seat_balances(BODY, token="t")
    finally:
        await transport.aclose()
        server.close()
    assert len(sleep.waits) == 2


async def test_an_answer_that_does_not_decode_is_a_bad_response_not_retried() -> None:
    """A body whose Content-Encoding lies (gzip that is not gzip) is UpstreamBadResponse at
    once, never an internal error, and not retried."""
    attempts = 0

    def corrupt(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        return httpx.Response(
            200,
            content=b"not gzip at all",
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )

    sleep = SleepRecorder()
    with pytest.raises(UpstreamBadResponse):
        await client(corrupt, sleep).list_seat_balances(BODY, token="t")
    assert attempts == 1 and sleep.waits == []


async def test_a_malformed_answer_is_unavailable_not_an_internal_error() -> None:
    """An answer whose status line is not HTTP (aiohttp's error, which httpx-aiohttp leaves
    untranslated) is UPSTREAM_UNAVAILABLE, retried, through the production transport."""

    async def garbled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 2OO OK\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbled, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    sleep = SleepRecorder()
    transport = billing_transport(url, max_connections=4)
    try:
        with pytest.raises(UpstreamUnavailable):
            await BillingClient(
                transport, url, replace(DEFAULT_POLICY, sleep=sleep)
            ).list_seat_balances(BODY, token="t")
    finally:
        await transport.aclose()
        server.close()
    assert len(sleep.waits) == 2
