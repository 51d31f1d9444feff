"""Many callers at once: no shared answers, no hung work, no leaked secrets."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
)
from tests.support import Gateway, running_gateway

QUERY = """query($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: 10, seatIds: $seatIds,
    skipMissingSeatIds: true) { nodes { seatId commits { commitId } } }
}"""
ACCOUNTS = {
    DEMO_TOKEN: {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID},
    OTHER_TOKEN: {"customerId": OTHER_CUSTOMER_ID, "contractId": OTHER_CONTRACT_ID},
}


def test_two_accounts_calling_at_once_each_get_only_their_own_answers(gateway: Gateway) -> None:
    """Concurrent requests with different tokens never see each other's seats."""

    def call(index: int) -> tuple[str, list[str], list[str]]:
        token = DEMO_TOKEN if index % 2 else OTHER_TOKEN
        own = ACCOUNTS[token]
        data = gateway.query(QUERY, own, token=token)
        # The same query shape with the other account's ids must fail for this token.
        foreign = ACCOUNTS[OTHER_TOKEN if token == DEMO_TOKEN else DEMO_TOKEN]
        errors = gateway.errors(QUERY, foreign, token=token)
        return (
            token,
            [n["seatId"] for n in data["seatBalances"]["nodes"]],
            [e["extensions"]["code"] for e in errors],
        )

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(call, range(64)))
    for token, seats, codes in results:
        domain = "@acme.example" if token == DEMO_TOKEN else "@globex.example"
        assert seats and all(seat.endswith(domain) for seat in seats), (token, seats)
        assert codes == ["NOT_FOUND"]
    by_token: dict[str | None, set[str]] = {}
    for call in gateway.calls:
        by_token.setdefault(call.authorization, set()).add(call.body["customer_id"])
    assert by_token == {
        f"Bearer {DEMO_TOKEN}": {DEMO_CUSTOMER_ID, OTHER_CUSTOMER_ID},
        f"Bearer {OTHER_TOKEN}": {DEMO_CUSTOMER_ID, OTHER_CUSTOMER_ID},
    }


class HeldUpstream:
    """An upstream whose answers wait until released, and that notices being cancelled."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self.release: asyncio.Event | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the server's, once a call waits

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body.get("limit") == 7:  # the slow query
            self.release = asyncio.Event()
            self.loop = asyncio.get_running_loop()
            self.started.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
        # A transport per request, closed here: nothing outlives the server's event loop.
        async with httpx.AsyncHTTPTransport() as standin:
            response = await standin.handle_async_request(request)
            await response.aread()
        return httpx.Response(
            response.status_code, content=response.content, headers=response.headers
        )


@pytest.fixture
def held(standin_url: str) -> Iterator[tuple[Gateway, HeldUpstream]]:
    upstream = HeldUpstream()
    with running_gateway(
        Settings(metronome_base_url=standin_url), httpx.MockTransport(upstream)
    ) as gateway:
        yield gateway, upstream


SLOW = QUERY.replace("first: 10", "first: 7")


def test_a_slow_upstream_call_does_not_block_other_requests(
    held: tuple[Gateway, HeldUpstream],
) -> None:
    """While one request waits on the billing API, others are answered."""
    gateway, upstream = held
    with ThreadPoolExecutor(max_workers=1) as pool:
        slow = pool.submit(gateway.query, SLOW, ACCOUNTS[DEMO_TOKEN])
        assert upstream.started.wait(10)
        fast = gateway.query(QUERY, ACCOUNTS[DEMO_TOKEN])
        assert fast["seatBalances"]["nodes"]
        assert not slow.done()
        assert upstream.release is not None and upstream.loop is not None
        # Released from the server's own loop, thread-safely.
        upstream.loop.call_soon_threadsafe(upstream.release.set)
        assert slow.result(10)["seatBalances"]["nodes"]


def test_a_caller_that_leaves_cancels_its_upstream_call(held: tuple[Gateway, HeldUpstream]) -> None:
    """When the client disconnects, the upstream call made for it is cancelled."""
    gateway, upstream = held
    with (
        httpx.Client(timeout=httpx.Timeout(5, read=0.5)) as impatient,
        pytest.raises(httpx.ReadTimeout),
    ):
        impatient.post(
            f"{gateway.url}/graphql",
            json={"query": SLOW, "variables": ACCOUNTS[DEMO_TOKEN]},
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        )
    assert upstream.started.is_set()
    assert upstream.cancelled.wait(10), "the upstream call outlived its caller"


def test_unexpected_failures_are_masked_with_a_correlation_id(
    standin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug answers INTERNAL_SERVER_ERROR with an errorId; the log line has the id and cause."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError(
            f"bug while calling {request.url} with {request.headers['authorization']}"
        )

    caplog.set_level(logging.INFO)
    with running_gateway(
        Settings(metronome_base_url="https://billing.secret.example"), httpx.MockTransport(broken)
    ) as gateway:
        response = gateway.post(QUERY, ACCOUNTS[DEMO_TOKEN])
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    error_id = error["extensions"]["errorId"]
    assert error_id in error["message"]
    assert "billing.secret.example" not in response.text and DEMO_TOKEN not in response.text
    assert "RuntimeError" not in response.text
    [record] = [r for r in caplog.records if error_id in r.getMessage()]
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


def test_no_token_or_upstream_url_in_any_response_or_log_line(
    standin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Across failures and retries, neither the token nor the billing URL is shown or logged."""
    secret_url = "https://billing.internal.example"
    secret_token = "sk_live_secret_1234"
    answers = iter(
        [
            httpx.Response(503),
            httpx.Response(429, headers={"retry-after": "0"}),
            httpx.Response(200, text="junk"),
        ]
        + [httpx.Response(401, json={"message": "bad token"})] * 10
    )
    caplog.set_level(logging.DEBUG)
    settings = Settings(
        metronome_base_url=secret_url, metronome_bearer_token=secret_token, allow_anonymous=True
    )
    with running_gateway(settings, httpx.MockTransport(lambda request: next(answers))) as gateway:
        texts = [gateway.post(QUERY, ACCOUNTS[DEMO_TOKEN]).text for _ in range(3)]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "retrying" in logged  # the retries were logged...
    for text in [*texts, logged]:
        assert "billing.internal" not in text
        assert secret_token not in text
