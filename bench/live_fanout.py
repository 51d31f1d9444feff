"""What one live refresh costs the gateway when many subscribers follow the listing.

    .venv/bin/python bench/live_fanout.py                       # 1, 100, 1000 subscribers
    .venv/bin/python bench/live_fanout.py --subscribers 1000 --refreshes 5 --root ../other-tree

A `gateway serve` (one worker; from ``--root``, to compare two trees) reads a stand-in served by
this process. N subscribers (Server-Sent Events, forwarding the demo token) follow the demo
contract's 300 seats (``seatId balances { creditTypeId balance }``); then, ``--refreshes``
times, the stand-in moves two or three seats and a signed webhook tells the gateway. Printed per
N: the gateway's CPU per refresh (from /proc, until every subscriber has its update), the time
until the last subscriber has it, the slowest `/healthz` meanwhile, and the upstream calls per
refresh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from email.utils import formatdate
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from load import free_port, launch_gateway  # bench/load.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    DemoActivity,
    create_standin_app,
    sign_webhook,
)

SECRET = "bench-webhook-secret"  # noqa: S105 - a benchmark's own
QUERY = (
    f'subscription {{ seatBalanceUpdates(customerId: "{DEMO_CUSTOMER_ID}", '
    f'contractId: "{DEMO_CONTRACT_ID}") {{ reason seats {{ seatId balances '
    "{ creditTypeId balance } } } }"
)


def _probe(url: str, slowest: Any, stop: Any) -> None:
    with httpx.Client(timeout=30) as client:
        while not stop.is_set():
            started = time.monotonic()
            client.get(f"{url}/healthz")
            elapsed = time.monotonic() - started
            with slowest.get_lock():
                slowest.value = max(slowest.value, elapsed)
            time.sleep(0.02)


class Probe:
    """/healthz asked every 20 ms by a process of its own (this one's loop is busy reading a
    thousand streams, and would delay a thread's probes itself), the slowest answer since the
    last reset kept."""

    def __init__(self, url: str) -> None:
        self._slowest = multiprocessing.Value("d", 0.0)
        self.stop = multiprocessing.Event()
        self.process = multiprocessing.Process(
            target=_probe, args=(url, self._slowest, self.stop), daemon=True
        )
        self.process.start()

    @property
    def slowest(self) -> float:
        return float(self._slowest.value)

    def reset(self) -> None:
        with self._slowest.get_lock():
            self._slowest.value = 0.0


class Counting:
    """The stand-in, counting its seat-balance calls."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith("seatBalances/list"):
            self.calls += 1
        await self.app(scope, receive, send)


def serve_standin(app: Any) -> str:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}"


def start_gateway(
    root: Path, standin: str, *, gc_pauses: bool = False
) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "GATEWAY_"))}
    env.update(
        METRONOME_BASE_URL=standin,
        METRONOME_WEBHOOK_SECRET=SECRET,
        GATEWAY_LOG_LEVEL="warning",
        GATEWAY_LIVE_POLL_INTERVAL="3600",
        GATEWAY_LIVE_MAX_SUBSCRIPTIONS="100000",
        GATEWAY_LIVE_MAX_PER_CALLER="100000",
    )
    python = str(ROOT / ".venv/bin/python")
    command = [python, str(ROOT / "bench/gc_pauses.py")] if gc_pauses else [python, "-m", "gateway"]
    return launch_gateway(
        command, env=env, cwd=root, stderr=None if gc_pauses else subprocess.DEVNULL
    )


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def subscriber(
    client: httpx.AsyncClient, url: str, ready: asyncio.Event, got: list[int], index: int
) -> None:
    headers = {"accept": "text/event-stream", "authorization": f"Bearer {DEMO_TOKEN}"}
    async with client.stream("POST", f"{url}/graphql", json={"query": QUERY}, headers=headers) as r:
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "next":
                payload = json.loads(line[6:])
                if "errors" in payload:
                    raise SystemExit(f"subscriber {index}: {payload['errors']}")
                got[index] += 1
                ready.set()


async def measure(
    url: str, pid: int, standin: Counting, activity: DemoActivity, n: int, k: int
) -> dict[str, float]:
    got = [0] * n
    ready = asyncio.Event()
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    probe = Probe(url)
    async with httpx.AsyncClient(timeout=None, limits=limits) as client:
        tasks = [asyncio.create_task(subscriber(client, url, ready, got, i)) for i in range(n)]
        while min(got) < 1:
            await asyncio.sleep(0.05)
        cpu, waits, healthz, calls = [], [], [], []
        for _ in range(k):
            target = [count + 1 for count in got]
            activity.step()
            body = json.dumps(
                {
                    "id": os.urandom(8).hex(),
                    "type": "alerts.low_remaining_seat_balance_reached",
                    "properties": {
                        "customer_id": DEMO_CUSTOMER_ID,
                        "contract_id": DEMO_CONTRACT_ID,
                    },
                }
            ).encode()
            date = formatdate(usegmt=True)
            headers = {
                "x-metronome-date": date,
                "metronome-webhook-signature": sign_webhook(SECRET, date, body),
                "content-type": "application/json",
            }
            before_cpu, before_calls, started = cpu_seconds(pid), standin.calls, time.monotonic()
            probe.reset()
            response = await client.post(f"{url}/webhooks/metronome", content=body, headers=headers)
            assert response.status_code == 200, response.text
            while any(g < t for g, t in zip(got, target, strict=True)):
                await asyncio.sleep(0.005)
            waits.append(time.monotonic() - started)
            cpu.append(cpu_seconds(pid) - before_cpu)
            healthz.append(probe.slowest)
            calls.append(standin.calls - before_calls)
            await asyncio.sleep(0.2)
        probe.stop.set()
        probe.process.join()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "healthz each": [round(h * 1000) for h in healthz],
        "cpu": sum(cpu) / k,
        "wait": sum(waits) / k,
        "healthz": max(healthz),
        "calls": sum(calls) / k,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1, 100, 1000])
    parser.add_argument("--refreshes", type=int, default=5)
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree whose gateway runs")
    parser.add_argument(
        "--verbose", action="store_true", help="also the slowest /healthz of each refresh"
    )
    parser.add_argument(
        "--gc-pauses", action="store_true", help="print the gateway's collections over 10 ms"
    )
    args = parser.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    app = create_standin_app()
    standin = Counting(app)
    activity = DemoActivity(app, None, seed=1)
    base = serve_standin(standin)
    print(f"gateway from {args.root}")
    print(
        "| subscribers | CPU per refresh | last subscriber served | slowest /healthz | upstream calls per refresh |"
    )
    print("|---:|---:|---:|---:|---:|")
    for n in args.subscribers:
        process, url = start_gateway(args.root, base, gc_pauses=args.gc_pauses)
        try:
            figures = asyncio.run(measure(url, process.pid, standin, activity, n, args.refreshes))
        finally:
            process.kill()
            process.wait()
        print(
            f"| {n} | {figures['cpu'] * 1000:.0f} ms | {figures['wait'] * 1000:.0f} ms | "
            f"{figures['healthz'] * 1000:.0f} ms | {figures['calls']:.1f} |",
            flush=True,
        )
        if args.verbose:
            print(f"  slowest /healthz of each refresh (ms): {figures['healthz each']}")


if __name__ == "__main__":
    main()
