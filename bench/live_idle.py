"""Memory of idle live subscriptions: 1,000 of them on one `gateway serve` process.

    .venv/bin/python bench/live_idle.py                      # 1,000 over SSE, then over WebSockets
    .venv/bin/python bench/live_idle.py --transport ws --subscriptions 1000 --idle 20

A `gateway serve` on the embedded stand-in (its demo activity off: nothing moves, so the
subscriptions are idle; the listings are still re-read every GATEWAY_LIVE_POLL_INTERVAL, 1 s
here) with GATEWAY_LIVE_MAX_PER_CALLER and GATEWAY_LIVE_MAX_SUBSCRIPTIONS raised. The
subscriptions follow ``--listings`` listings of 20 seats of the demo contract, round robin:
Server-Sent Events (one connection each) or graphql-transport-ws (20 operations per
connection, the gateway's limit per connection). The gateway's resident memory (VmRSS in
/proc/<pid>/status) is read before, once every subscription has its SNAPSHOT, once a second
while they idle for ``--idle`` seconds, and after they are closed (the
gateway_live_subscriptions gauge back at 0); then ``--cycles`` - 1 times more, opened and
closed again: memory the allocator keeps after the first cycle is reused, a leak grows with
each. Prints one markdown table per transport.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets
from load import launch_gateway  # bench/load.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    build_dataset,
)

SUBSCRIPTION = """
subscription Idle($customerId: ID!, $contractId: ID!, $seatIds: [String!]) {
  seatBalanceUpdates(customerId: $customerId, contractId: $contractId, seatIds: $seatIds) {
    reason
    seats { seatId balances { creditTypeId balance } }
  }
}
"""
AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}
PER_CONNECTION = 20  # the gateway's max_subscriptions_per_connection


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def listings(count: int) -> list[dict[str, Any]]:
    seats = build_dataset()["customers"][DEMO_CUSTOMER_ID]["contracts"][DEMO_CONTRACT_ID]["seats"]
    ids = [seat["seat_id"] for seat in seats]
    return [
        {
            "customerId": DEMO_CUSTOMER_ID,
            "contractId": DEMO_CONTRACT_ID,
            "seatIds": ids[20 * n : 20 * (n + 1)],
        }
        for n in range(count)
    ]


def start_gateway(subscriptions: int, poll: float) -> tuple[subprocess.Popen[bytes], str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "GATEWAY_DEMO_LIVE": "false",
        "GATEWAY_LIVE_POLL_INTERVAL": str(poll),
        "GATEWAY_LIVE_MAX_SUBSCRIPTIONS": str(subscriptions + 100),
        "GATEWAY_LIVE_MAX_PER_CALLER": str(subscriptions + 100),
        "GATEWAY_LOG_LEVEL": "warning",
    }
    return launch_gateway([sys.executable, "-m", "gateway"], env=env)


class Subscriptions:
    """``count`` live subscriptions, each counted when its SNAPSHOT arrived."""

    def __init__(self, url: str, transport: str, count: int, variables: list[dict[str, Any]]):
        self.url = url
        self.transport = transport
        self.count = count
        self.variables = variables
        self.snapshots = 0
        self.updates = 0
        self.tasks: list[asyncio.Task[None]] = []

    def open(self, http: httpx.AsyncClient) -> None:
        if self.transport == "sse":
            self.tasks = [
                asyncio.create_task(self._sse(http, self.variables[n % len(self.variables)]))
                for n in range(self.count)
            ]
        else:
            numbers = list(range(self.count))
            self.tasks = [
                asyncio.create_task(self._ws(numbers[n : n + PER_CONNECTION]))
                for n in range(0, self.count, PER_CONNECTION)
            ]

    def _received(self, payload: dict[str, Any]) -> None:
        if payload.get("errors"):
            raise RuntimeError(payload["errors"])
        if payload["data"]["seatBalanceUpdates"]["reason"] == "SNAPSHOT":
            self.snapshots += 1
        else:
            self.updates += 1

    async def _sse(self, http: httpx.AsyncClient, variables: dict[str, Any]) -> None:
        body = {"query": SUBSCRIPTION, "variables": variables}
        headers = {**AUTH, "Accept": "text/event-stream"}
        async with http.stream("POST", f"{self.url}/graphql", json=body, headers=headers) as r:
            if r.status_code != 200:
                raise RuntimeError(f"{r.status_code}: {(await r.aread())[:300]!r}")
            event = None
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event == "next":
                    self._received(json.loads(line[5:]))

    async def _ws(self, numbers: list[int]) -> None:
        url = self.url.replace("http://", "ws://") + "/graphql"
        async with websockets.connect(url, subprotocols=["graphql-transport-ws"]) as socket_:  # type: ignore[list-item]
            await socket_.send(json.dumps({"type": "connection_init", "payload": AUTH}))
            ack = json.loads(await socket_.recv())
            assert ack["type"] == "connection_ack", ack
            for n in numbers:
                operation = {
                    "query": SUBSCRIPTION,
                    "variables": self.variables[n % len(self.variables)],
                }
                await socket_.send(
                    json.dumps({"id": str(n), "type": "subscribe", "payload": operation})
                )
            async for raw in socket_:
                message = json.loads(raw)
                if message["type"] == "next":
                    self._received(message["payload"])
                elif message["type"] == "ping":
                    await socket_.send(json.dumps({"type": "pong"}))
                elif message["type"] == "error":
                    raise RuntimeError(message)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def failed(self) -> BaseException | None:
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                return task.exception()
        return None


async def gauge(http: httpx.AsyncClient, url: str) -> float:
    for line in (await http.get(f"{url}/metrics")).text.splitlines():
        if line.startswith("gateway_live_subscriptions "):
            return float(line.split()[1])
    return 0.0


async def measure(
    transport: str, count: int, listing_count: int, idle: float, poll: float, cycles: int
) -> None:
    process, url = start_gateway(count, poll)
    try:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        timeout = httpx.Timeout(30, read=None)
        async with httpx.AsyncClient(limits=limits, timeout=timeout) as http:
            # One query first, so that "before" counts what any serving process holds.
            warm = await http.post(f"{url}/graphql", json={"query": "{ __typename }"}, headers=AUTH)
            warm.raise_for_status()
            await asyncio.sleep(1)
            rows: list[tuple[str, int]] = [("before", rss_kib(process.pid))]
            for cycle in range(1, cycles + 1):
                subscriptions = Subscriptions(url, transport, count, listings(listing_count))
                started = time.monotonic()
                subscriptions.open(http)
                while subscriptions.snapshots < count:
                    if (error := subscriptions.failed()) is not None:
                        raise RuntimeError(f"a subscription failed: {error!r}")
                    if time.monotonic() - started > 120:
                        raise RuntimeError(f"only {subscriptions.snapshots} snapshots in 120 s")
                    await asyncio.sleep(0.05)
                opened = time.monotonic() - started
                rows.append(
                    (f"{cycle}: {count} subscribed ({opened:.1f} s to open)", rss_kib(process.pid))
                )
                if cycle == 1:
                    samples = []
                    for _ in range(int(idle)):
                        await asyncio.sleep(1)
                        samples.append(rss_kib(process.pid))
                    if (error := subscriptions.failed()) is not None:
                        raise RuntimeError(f"a subscription failed while idle: {error!r}")
                    rows.append(
                        (f"1: idle {idle:.0f} s ({idle / poll:.0f} polls), 1st s", samples[0])
                    )
                    rows.append((f"1: idle, min .. max over {len(samples)} s", min(samples)))
                    rows.append(("1: idle, last second", samples[-1]))
                    updates = subscriptions.updates
                await subscriptions.close()
                deadline = time.monotonic() + 30
                while await gauge(http, url) > 0:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the subscriptions were not released")
                    await asyncio.sleep(0.1)
                await asyncio.sleep(1)
                rows.append((f"{cycle}: closed (gauge at 0)", rss_kib(process.pid)))
    finally:
        process.terminate()
        process.wait(20)

    base = rows[0][1]
    print(f"\n{transport}: {count} subscriptions over {listing_count} listings, poll {poll} s")
    print("| moment | RSS (MiB) | vs before (MiB) | per subscription (KiB) |")
    print("|---|---:|---:|---:|")
    for label, kib in rows:
        if label.startswith("1: idle, min"):
            spread = max(samples) - min(samples)
            print(
                f"| {label} | {min(samples) / 1024:.1f} .. {max(samples) / 1024:.1f} "
                f"| spread {spread / 1024:.1f} | |"
            )
            continue
        per = f"{(kib - base) / count:.1f}" if label != "before" else ""
        print(f"| {label} | {kib / 1024:.1f} | {(kib - base) / 1024:+.1f} | {per} |")
    print(f"updates received while idle: {updates} (nothing moved)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=["sse", "ws", "both"], default="both")
    parser.add_argument("--subscriptions", type=int, default=1000)
    parser.add_argument("--listings", type=int, default=5)
    parser.add_argument("--idle", type=float, default=10.0, help="seconds held idle")
    parser.add_argument("--poll", type=float, default=1.0, help="GATEWAY_LIVE_POLL_INTERVAL")
    parser.add_argument(
        "--cycles", type=int, default=2, help="open and close them again: growth is a leak"
    )
    args = parser.parse_args()
    # Every SSE subscription is a connection: a descriptor here and one in the gateway (which
    # inherits this process's limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * args.subscriptions + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    for transport in ("sse", "ws") if args.transport == "both" else (args.transport,):
        asyncio.run(
            measure(transport, args.subscriptions, args.listings, args.idle, args.poll, args.cycles)
        )


if __name__ == "__main__":
    main()
