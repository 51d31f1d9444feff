"""A bounded load run: N concurrent clients for D seconds against a gateway on the embedded
stand-in, with a mix of query shapes. Prints requests, errors, latency percentiles and the
gateway's memory over time. A script, not a test: run it by hand, record what it prints.

    .venv/bin/python bench/load.py --clients 16 --duration 30

It starts `gateway serve` itself (no METRONOME_BASE_URL: the embedded stand-in, in process),
or drives `--url` if given (then memory is not sampled).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
)

SEATS = "seatBalances(customerId: $c, contractId: $k, first: $first, after: $after)"
SHAPES = {
    "balances": "nodes { seatId balances { creditTypeId balance startingBalance } }",
    "commits": "nodes { seatId commits { commitId balance startDate endDate } credits { creditId balance } }",
    "ledgers": "nodes { seatId commits { commitId ledgerEntries { type amount timestamp } } credits { creditId ledgerEntries { type amount } } }",
    "paging": "edges { cursor node { id seatId } } pageInfo { hasNextPage endCursor }",
}
ACCOUNTS = [
    (DEMO_TOKEN, DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID),
    (OTHER_TOKEN, OTHER_CUSTOMER_ID, OTHER_CONTRACT_ID),
]


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def query_for(shape: str) -> str:
    return f"query Load($c: ID!, $k: ID!, $first: Int, $after: String) {{ {SEATS} {{ {SHAPES[shape]} pageInfo {{ hasNextPage endCursor }} }} }}"


async def client(url: str, until: float, tally: Tally, rng: random.Random) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        after: str | None = None
        while time.monotonic() < until:
            shape = rng.choice(list(SHAPES))
            token, customer, contract = rng.choice(ACCOUNTS)
            variables = {"c": customer, "k": contract, "first": rng.choice([10, 25, 50, 100])}
            if shape == "paging" and after and token == DEMO_TOKEN:
                variables["after"] = after
            started = time.perf_counter()
            try:
                response = await http.post(
                    f"{url}/graphql",
                    json={"query": query_for(shape), "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                payload = response.json()
            except (httpx.HTTPError, ValueError) as error:
                tally.errors.append(type(error).__name__)
                continue
            tally.latencies.append(time.perf_counter() - started)
            if response.status_code != 200 or payload.get("errors"):
                tally.errors.append(str(payload.get("errors") or response.status_code)[:200])
                continue
            page = payload["data"]["seatBalances"]["pageInfo"]
            if shape == "paging" and token == DEMO_TOKEN:
                after = page["endCursor"] if page["hasNextPage"] else None


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_gateway() -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("METRONOME_")}
    env["GATEWAY_LOG_LEVEL"] = "warning"
    return launch_gateway([sys.executable, "-m", "gateway"], env=env)


def launch_gateway(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path = ROOT,
    stderr: int | None = subprocess.DEVNULL,
) -> tuple[subprocess.Popen[bytes], str]:
    """``command serve --port <a free port>`` (a gateway's CLI), once /healthz answers: the
    process and its URL (the benchmarks' one way to start a gateway)."""
    port = free_port()
    process = subprocess.Popen(
        [*command, "serve", "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit("the gateway did not start")


async def run(url: str, clients: int, seconds: float, pid: int | None) -> Tally:
    tally = Tally()
    until = time.monotonic() + seconds
    memory: list[tuple[float, float]] = []

    async def sample() -> None:
        started = time.monotonic()
        while pid and time.monotonic() < until:
            memory.append((time.monotonic() - started, rss_mb(pid)))
            await asyncio.sleep(max(1.0, seconds / 10))

    await asyncio.gather(
        sample(), *(client(url, until, tally, random.Random(i)) for i in range(clients))
    )
    if memory:
        print("RSS (MB) over the run: " + ", ".join(f"{t:.0f}s {m:.1f}" for t, m in memory))
    return tally


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--url", help="drive a running gateway instead of starting one")
    args = parser.parse_args()
    process, url = (None, args.url) if args.url else start_gateway()
    pid = process.pid if process else None
    try:
        asyncio.run(run(url, args.clients, args.warmup, None))
        before = rss_mb(pid) if pid else float("nan")
        tally = asyncio.run(run(url, args.clients, args.duration, pid))
        after = rss_mb(pid) if pid else float("nan")
    finally:
        if process:
            process.terminate()
            process.wait(10)
    lat = sorted(tally.latencies)
    count = len(lat)
    p = lambda q: lat[min(count - 1, int(q * count))] * 1000  # noqa: E731
    print(
        f"clients {args.clients}, {args.duration:.0f} s: {count} requests, {count / args.duration:.0f} req/s, {len(tally.errors)} errors"
    )
    if count:
        print(
            f"latency ms: p50 {p(0.50):.1f}  p90 {p(0.90):.1f}  p99 {p(0.99):.1f}  max {lat[-1] * 1000:.1f}  mean {statistics.mean(lat) * 1000:.1f}"
        )
    print(f"gateway RSS after warm-up {before:.1f} MB, at the end {after:.1f} MB")
    for error in tally.errors[:5]:
        print("error:", error)
    return 1 if tally.errors else 0


if __name__ == "__main__":
    sys.exit(main())
