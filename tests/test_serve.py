"""`gateway serve` as operators run it: JSON logs, several workers, graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from tests.support import gateway_process, serve

pytestmark = pytest.mark.process  # the process tier: starts `gateway serve` processes

QUERY = f"""query Seats {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
  contractId: "{DEMO_CONTRACT_ID}", first: 2) {{ nodes {{ seatId }} }} }}"""


def post(url: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(
        f"{url}/graphql",
        json={"query": QUERY},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        timeout=30,
        **kwargs,
    )


def test_logs_are_json_lines_with_an_access_line_per_request() -> None:
    """Every log line of `gateway serve` is JSON; a query leaves one access line. One worker
    counts its rates alone as it should: no warning about workers."""
    with gateway_process(env={"GATEWAY_CALLER_RATE": "600/minute"}) as (_, url, output):
        response = post(url)
        assert response.status_code == 200
        request_id = response.headers["x-request-id"]
        deadline = time.monotonic() + 5
        while not any(request_id in line for line in output) and time.monotonic() < deadline:
            time.sleep(0.05)
    records = [json.loads(line) for line in output if line.startswith("{")]
    [access] = [r for r in records if r.get("requestId") == request_id]
    assert access["logger"] == "gateway.access" and access["operationName"] == "Seats"
    assert any("EMBEDDED STAND-IN" in r.get("message", "") for r in records)
    assert not any("workers alone" in r.get("message", "") for r in records)
    assert DEMO_TOKEN not in "".join(output)


def test_several_workers_serve_the_same_api() -> None:
    """--workers 2 starts two worker processes that both answer; rates set without Redis are
    counted by each worker alone, and the start-up log says so, naming the setting."""
    rates = {"GATEWAY_CALLER_RATE": "600/minute", "GATEWAY_UPSTREAM_RATE": "50/second"}
    with gateway_process("--workers", "2", env=rates) as (process, url, output):
        children = _children(process.pid)
        deadline = time.monotonic() + 20
        while len(children) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
            children = _children(process.pid)
        assert len(children) >= 2
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: post(url), range(16)))
        assert all(
            a.status_code == 200 and a.json()["data"]["seatBalances"]["nodes"] for a in answers
        )
    warnings = [
        record["message"]
        for record in (json.loads(line) for line in output if line.startswith("{"))
        if record.get("level") == "warning" and "workers alone" in record.get("message", "")
    ]
    assert len(warnings) == 2
    assert "GATEWAY_CALLER_RATE (600/minute)" in warnings[0] and "2 times" in warnings[0]
    assert "GATEWAY_UPSTREAM_RATE (50/second)" in warnings[1]


def test_sigterm_lets_in_flight_requests_finish() -> None:
    """On SIGTERM the server stops taking work but answers the request it is serving."""
    standin = create_standin_app()

    async def slow_billing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(1.5)
        await standin(scope, receive, send)

    with (
        serve(slow_billing) as billing_url,
        gateway_process(env={"METRONOME_BASE_URL": billing_url}) as (process, url, _),
    ):
        with ThreadPoolExecutor(1) as pool:
            in_flight = pool.submit(post, url)
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            response = in_flight.result(20)
        assert response.status_code == 200
        assert response.json()["data"]["seatBalances"]["nodes"]
        # uvicorn re-raises the signal once shut down, as a supervisor expects.
        assert process.wait(20) in (0, -signal.SIGTERM)


LIVE = (
    f'subscription Live {{ seatBalanceUpdates(customerId: "{DEMO_CUSTOMER_ID}", '
    f'contractId: "{DEMO_CONTRACT_ID}") {{ reason seats {{ seatId }} }} }}'
)


def test_sigterm_ends_live_subscriptions_at_once() -> None:
    """A live subscription never ends by itself: on SIGTERM it is told SHUTTING_DOWN and its
    stream completes, so the process exits at once instead of after its whole grace period
    (GATEWAY_SHUTDOWN_TIMEOUT, 20 s), and the client knows to subscribe again. The access log
    shows the subscription's start and end."""

    def subscribe(url: str, received: list[Any]) -> None:
        headers = {"accept": "text/event-stream", "authorization": f"Bearer {DEMO_TOKEN}"}
        with httpx.stream(
            "POST", f"{url}/graphql", json={"query": LIVE}, headers=headers, timeout=60
        ) as stream:
            event = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                    if event == "complete":
                        received.append("complete")
                elif line.startswith("data: ") and event == "next":
                    received.append(json.loads(line.removeprefix("data: ")))

    received: list[Any] = []
    with (
        gateway_process(env={"GATEWAY_DEMO_LIVE": "false"}) as (process, url, output),
        ThreadPoolExecutor(1) as pool,
    ):
        subscriber = pool.submit(subscribe, url, received)
        deadline = time.monotonic() + 20
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received and received[0]["data"]["seatBalanceUpdates"]["reason"] == "SNAPSHOT"
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) in (0, -signal.SIGTERM)
        exited = time.monotonic() - signalled
        subscriber.result(10)
    assert exited < 5, exited  # not the 20 s grace period
    [error] = received[1]["errors"]
    assert error["extensions"]["code"] == "SHUTTING_DOWN"
    assert received[-1] == "complete"
    # The access log has the subscription's start and its end, with why it ended.
    lines = [json.loads(line) for line in output if line.startswith("{")]
    events = {line.get("event"): line for line in lines if line.get("logger") == "gateway.access"}
    start, end = events["subscription.start"], events["subscription.end"]
    assert start["operationName"] == end["operationName"] == "Live"
    assert start["listing"] == end["listing"]
    assert end["messages"] == 1 and end["errorCodes"] == ["SHUTTING_DOWN"]


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []
