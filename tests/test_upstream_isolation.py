"""Detail calls cannot starve seat calls, and retries spend the request's upstream budget.

Over a real gateway on 127.0.0.1 whose upstream is the embedded stand-in behind a transport
that hangs on the details endpoints (``customerBalances/list``, ``credit-types/list``), or an
``httpx.MockTransport`` answering 503 to everything.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import CREDIT_TYPES_PATH, CUSTOMER_BALANCES_PATH, SEAT_BALANCES_PATH
from tests.support import BUDGET, Gateway, SleepRecorder, running_gateway

DETAILS_DEADLINE = 1.0  # GATEWAY_DETAILS_DEADLINE for these tests (3 s by default)

LISTING = f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}"'
PLAIN = f"{{ seatBalances({LISTING}, first: 5) {{ nodes {{ seatId balances {{ balance }} }} }} }}"
DETAILED = (
    f"{{ seatBalances({LISTING}, first: 5) {{ nodes {{ seatId "
    "commits { commitId name } balances { creditType { name } } } } }"
)


class DetailsHang(httpx.AsyncBaseTransport):
    """The stand-in, except that the two details endpoints never answer."""

    def __init__(self) -> None:
        self.standin = httpx.ASGITransport(app=create_standin_app())
        self.hanging = 0
        self.busy = threading.Event()  # set once 8 detail calls hang (the server's thread)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path in (CUSTOMER_BALANCES_PATH, CREDIT_TYPES_PATH):
            self.hanging += 1
            if self.hanging >= 8:
                self.busy.set()
            await asyncio.Event().wait()  # until the gateway gives up on it
        return await self.standin.handle_async_request(request)

    async def aclose(self) -> None:
        await self.standin.aclose()


@pytest.fixture
def hanging() -> Iterator[tuple[Gateway, DetailsHang]]:
    upstream = DetailsHang()
    with running_gateway(Settings(details_deadline=DETAILS_DEADLINE), upstream) as gateway:
        yield gateway, upstream


async def _timed(http: httpx.AsyncClient, url: str, query: str) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    response = await http.post(
        f"{url}/graphql",
        json={"query": query},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
    )
    assert response.status_code == 200, response.text
    return time.monotonic() - started, response.json()


async def test_seat_pages_never_wait_for_hanging_detail_calls(
    hanging: tuple[Gateway, DetailsHang],
) -> None:
    """Ten detail queries hold far more detail calls than the process has upstream slots (the
    details endpoints hang); a plain seats query sent meanwhile answers at once, and each
    detail query answers its seats with null detail fields, UPSTREAM_TIMEOUT, within about
    the details deadline."""
    gateway, upstream = hanging
    async with httpx.AsyncClient(timeout=60) as http:
        detailed = [asyncio.ensure_future(_timed(http, gateway.url, DETAILED)) for _ in range(10)]
        # The detail calls are in, the others wait for a slot.
        assert await asyncio.to_thread(upstream.busy.wait, 10)
        await asyncio.sleep(0.2)
        plain_seconds, plain = await _timed(http, gateway.url, PLAIN)
        answers = await asyncio.gather(*detailed)

    assert "errors" not in plain, plain
    assert len(plain["data"]["seatBalances"]["nodes"]) == 5
    assert plain_seconds < 1.0, f"the plain seats query took {plain_seconds:.2f} s"

    for seconds, payload in answers:
        assert seconds < DETAILS_DEADLINE + 1.5, f"a detail query took {seconds:.2f} s"
        nodes = payload["data"]["seatBalances"]["nodes"]
        assert len(nodes) == 5
        assert all(node["seatId"] for node in nodes)
        commits = [commit for node in nodes for commit in node["commits"]]
        assert commits and all(c["commitId"] and c["name"] is None for c in commits)
        assert all(b["creditType"] is None for node in nodes for b in node["balances"])
        codes = {error["extensions"]["code"] for error in payload["errors"]}
        assert codes == {"UPSTREAM_TIMEOUT"}
        assert {error["path"][-1] for error in payload["errors"]} == {"name", "creditType"}


def test_retries_count_against_the_upstream_call_budget() -> None:
    """Against a billing API answering 503 to everything, 19 distinct pages (each retried up
    to twice) make at most GATEWAY_MAX_UPSTREAM_CALLS upstream requests in all, and each
    page still reports the billing API's failure."""
    seen: list[str] = []

    def failing(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(503, json={"message": "down"})

    aliases = " ".join(
        f"p{n}: seatBalances({LISTING}, first: {n}) {{ nodes {{ seatId }} }}" for n in range(1, 20)
    )
    settings = Settings(metronome_base_url="https://billing.example")  # forwarding mode
    with running_gateway(
        settings, httpx.MockTransport(failing), retry_sleep=SleepRecorder()
    ) as gateway:
        payload = gateway.post(f"{{ {aliases} }}").json()

    assert len(seen) <= BUDGET, f"{len(seen)} upstream requests with a budget of {BUDGET}"
    assert set(seen) == {SEAT_BALANCES_PATH}
    assert payload["data"] == {f"p{n}": None for n in range(1, 20)}
    assert {error["extensions"]["code"] for error in payload["errors"]} == {"UPSTREAM_UNAVAILABLE"}
    assert len(payload["errors"]) == 19
