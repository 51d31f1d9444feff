"""Which HTTP stack should the gateway's upstream client use? Each candidate measured alone.

Run it from the repository root, once ``.venv`` exists with ``httpx-aiohttp`` installed::

    .venv/bin/python bench/upstream_clients.py                # 3 repeats, medians, a table
    .venv/bin/python bench/upstream_clients.py --smoke        # a few calls each, for the harness

Set-up (2 cores assumed; see BENCHMARKS.md, "Upstream HTTP stack (issue 10)"):

* the embedded stand-in (``gateway.standin.create_standin_app()``) served by its own uvicorn
  process (uvloop + httptools, no access log) pinned to core 1;
* each candidate, one at a time, in its own process pinned to core 0, on uvloop like the
  gateway: a warm-up, then ``--calls`` POSTs to ``/v1/contracts/seatBalances/list`` over one
  keep-alive pool, either one after another or from ``--concurrency`` callers at once.

Candidates (``--candidates``, comma-separated letters):

* ``a``: ``httpx.AsyncClient`` with its default transport (httpcore);
* ``b``: ``httpx_aiohttp.AiohttpTransport`` called directly through httpx's transport interface
  (``handle_async_request`` then ``aread``), as ``gateway.upstream.client`` calls its transport;
* ``c``: ``httpx.AsyncClient(transport=httpx_aiohttp.AiohttpTransport())``;
* ``d``: ``aiohttp.ClientSession`` alone (the floor);
* ``e``: the hand-written ``gateway.upstream.transport.AiohttpTransport``, like ``b``.

Per candidate and scenario it reports, as the median of ``--repeats`` runs (candidates are
interleaved within each repeat so that drift hits them alike): calls per second, the client
process's CPU microseconds per call (``time.process_time``), the stand-in's CPU per call
(``/proc/<pid>/stat``) and the cores other programs used meanwhile (``/proc/stat``). It checks
that every answer is a 200 with the expected seats, and never judges the numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SEAT_BALANCES_PATH = "/v1/contracts/seatBalances/list"
CANDIDATES = {
    "a": "httpx.AsyncClient, default transport (httpcore)",
    "b": "httpx_aiohttp.AiohttpTransport, transport interface only",
    "c": "httpx.AsyncClient over httpx_aiohttp.AiohttpTransport",
    "d": "aiohttp.ClientSession (floor)",
    "e": "gateway.upstream.transport.AiohttpTransport (hand-written)",
}
NOISY_CORES = 0.1
JSON = dict[str, Any]
Call = Callable[[bytes], Awaitable[bytes]]


# --- the stand-in server process ---------------------------------------------------------------


def serve(port: int, cpu: int | None) -> None:
    """The stand-in as the billing API: its own process, uvloop + httptools, no access log."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    import uvicorn

    from gateway.standin import create_standin_app

    uvicorn.run(
        create_standin_app(),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


# --- the candidates -----------------------------------------------------------------------------


def request_headers() -> dict[str, str]:
    from gateway.standin import DEMO_TOKEN

    # The headers gateway.upstream.client sends; every candidate sends the same ones.
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": "upstream-clients-bench",
        "Authorization": f"Bearer {DEMO_TOKEN}",
    }


@contextlib.asynccontextmanager
async def open_candidate(name: str, url: str, pool: int) -> AsyncIterator[Call]:
    """``call(body) -> response bytes`` over one keep-alive pool of at most ``pool``."""
    import aiohttp
    import httpx
    import httpx_aiohttp

    headers = request_headers()
    limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)

    if name in ("a", "c"):
        transport: httpx.AsyncBaseTransport | None = (
            httpx_aiohttp.AiohttpTransport(limits=limits) if name == "c" else None
        )
        async with httpx.AsyncClient(limits=limits, transport=transport) as client:

            async def via_client(body: bytes) -> bytes:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                return response.content

            yield via_client
        return

    if name in ("b", "e"):
        if name == "b":
            bare: httpx.AsyncBaseTransport = httpx_aiohttp.AiohttpTransport(limits=limits)
        else:
            from gateway.upstream.transport import AiohttpTransport

            bare = AiohttpTransport(max_connections=pool)
        raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
        try:

            async def via_transport(body: bytes) -> bytes:
                # The shape of gateway.upstream.client's _send: no httpx client layer.
                request = httpx.Request("POST", url, content=body, headers=raw_headers)
                response = await bare.handle_async_request(request)
                try:
                    content = await response.aread()
                finally:
                    await response.aclose()
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {content[:200]!r}")
                return content

            yield via_transport
        finally:
            await bare.aclose()
        return

    if name == "d":
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool), trust_env=False
        ) as session:

            async def via_aiohttp(body: bytes) -> bytes:
                async with session.post(url, data=body, headers=headers) as response:
                    content = await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}: {content[:200]!r}")
                    return content

            yield via_aiohttp
        return

    raise ValueError(f"unknown candidate {name!r}")


# --- one measurement, in the client process ----------------------------------------------------


def body_for(kind: str) -> bytes:
    from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID

    body: JSON = {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID, "limit": 25}
    if kind == "large":
        body |= {"include_credits_and_commits": True, "include_ledgers": True}
    return json.dumps(body).encode()


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies over all cores since boot, from ``/proc/stat``."""
    values = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return user + nice + system + irq + softirq + steal, sum(values)


def connections_to(port: int) -> frozenset[int]:
    """Local ports of the established IPv4 connections to 127.0.0.1:``port`` (``/proc/net/tcp``).

    Only the running candidate talks to the stand-in: the same set before and after a run means
    its pool kept every connection alive and opened none."""
    ports = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if int(remote.split(":")[1], 16) == port and state == "01":
            ports.add(int(local.split(":")[1], 16))
    return frozenset(ports)


async def run_calls(call: Call, body: bytes, calls: int, concurrency: int) -> None:
    async def caller(count: int) -> None:
        for _ in range(count):
            await call(body)

    share, extra = divmod(calls, concurrency)
    await asyncio.gather(*(caller(share + (i < extra)) for i in range(concurrency)))


async def measure(args: argparse.Namespace) -> JSON:
    body = body_for(args.body)
    url = f"http://127.0.0.1:{args.port}{SEAT_BALANCES_PATH}"
    async with open_candidate(args.candidate, url, pool=max(args.concurrency, 8)) as call:
        first = json.loads(await call(body))
        seats = len(first["data"])
        size = len(await call(body))
        await run_calls(call, body, args.warmup, args.concurrency)

        connections_before = connections_to(args.port)
        busy_before, total_before = busy_jiffies()
        server_before = process_cpu_seconds(args.server_pid)
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        await run_calls(call, body, args.calls, args.concurrency)
        cpu_after, wall_after = time.process_time(), time.perf_counter()
        server_after = process_cpu_seconds(args.server_pid)
        busy_after, total_after = busy_jiffies()
        connections_after = connections_to(args.port)

    wall = wall_after - wall_before
    client_cpu = cpu_after - cpu_before
    server_cpu = server_after - server_before
    cores = os.cpu_count() or 1
    all_busy = cores * (busy_after - busy_before) / max(total_after - total_before, 1)
    return {
        "seats": seats,
        "response_bytes": size,
        "calls": args.calls,
        "wall_s": wall,
        "calls_per_s": args.calls / wall,
        "client_cpu_us_per_call": 1e6 * client_cpu / args.calls,
        "server_cpu_us_per_call": 1e6 * server_cpu / args.calls,
        "connections": len(connections_after),
        "same_connections": connections_before == connections_after,
        "client_cores": client_cpu / wall,
        "server_cores": server_cpu / wall,
        # Jiffies are coarse (10 ms): a short run reads a few hundredths too high or low.
        "other_cores": max(0.0, all_busy - (client_cpu + server_cpu) / wall),
    }


def worker(args: argparse.Namespace) -> None:
    if args.cpu is not None:
        os.sched_setaffinity(0, {args.cpu})
    import uvloop

    # The gateway's event loop is uvloop (uvicorn[standard]); the client runs on it here too.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        result = runner.run(measure(args))
    print(json.dumps(result), flush=True)


# --- the harness --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def standin_server(port: int, cpu: int | None) -> Iterator[subprocess.Popen[bytes]]:
    command = [sys.executable, __file__, "--serve", "--port", str(port)]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    process = subprocess.Popen(command, cwd=ROOT)  # noqa: S603 (our own script)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the stand-in did not start")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def run_worker(
    candidate: str,
    body: str,
    concurrency: int,
    calls: int,
    warmup: int,
    port: int,
    server: int,
    cpu: int | None,
) -> JSON:
    command = [
        sys.executable, __file__, "--worker", candidate, "--body", body,
        "--concurrency", str(concurrency), "--calls", str(calls), "--warmup", str(warmup),
        "--port", str(port), "--server-pid", str(server),
    ]  # fmt: skip
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"candidate {candidate} failed:\n{done.stderr[-3000:]}")
    result: JSON = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def wait_for_quiet(timeout_s: float) -> float:
    """Until the machine, with our processes idle, stays under NOISY_CORES for 3 s (or timeout).
    Returns the cores busy in the last second sampled."""
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    busy = 0.0
    while time.monotonic() < deadline:
        busy_before, total_before = busy_jiffies()
        time.sleep(1.0)
        busy_after, total_after = busy_jiffies()
        busy = (
            (os.cpu_count() or 1) * (busy_after - busy_before) / max(total_after - total_before, 1)
        )
        if busy > NOISY_CORES:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 3.0:
            break
    return busy


def versions() -> JSON:
    packages = ("httpx", "httpcore", "httpx-aiohttp", "aiohttp", "uvicorn", "uvloop", "httptools")
    found = {name: importlib.metadata.version(name) for name in packages}
    return {"python": sys.version.split()[0], **found}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--candidates", default="a,b,c,d,e")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="callers in the concurrent runs")
    parser.add_argument("--calls-small", type=int, default=4000, help="measured calls, 25 seats")
    parser.add_argument("--calls-large", type=int, default=1500, help="measured calls, ledgers")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured calls before each run")
    parser.add_argument("--client-cpu", type=int, default=0)
    parser.add_argument("--server-cpu", type=int, default=1)
    parser.add_argument("--retries", type=int, default=2, help="re-measure a noisy run")
    parser.add_argument("--smoke", action="store_true", help="50 calls each, one repeat")
    parser.add_argument("--json", type=Path, help="also write every run to this file")
    # Internal: the server and worker processes are this script too.
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--body", help=argparse.SUPPRESS)
    parser.add_argument("--calls", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--server-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cpu", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    sys.path.insert(0, str(ROOT))
    if args.serve:
        serve(args.port, args.cpu)
        return 0
    if args.worker:
        args.candidate = args.worker
        worker(args)
        return 0

    candidates = [name.strip() for name in args.candidates.split(",")]
    pinned = len(os.sched_getaffinity(0)) >= 2
    client_cpu = args.client_cpu if pinned else None
    server_cpu = args.server_cpu if pinned else None
    if args.smoke:
        args.repeats, args.warmup, args.retries = 1, 10, 0
        args.calls_small = args.calls_large = 50
    scenarios = [
        (body, concurrency, args.calls_small if body == "small" else args.calls_large)
        for body in ("small", "large")
        for concurrency in (1, args.concurrency)
    ]
    print(f"load average before: {os.getloadavg()}; versions: {versions()}", flush=True)
    port = free_port()
    runs: dict[tuple[str, str, str], list[JSON]] = {}
    with standin_server(port, server_cpu) as server:
        for repeat in range(args.repeats):
            for body, concurrency, calls in scenarios:
                for candidate in candidates:
                    for attempt in range(args.retries + 1):
                        result = run_worker(
                            candidate,
                            body,
                            concurrency,
                            calls,
                            args.warmup,
                            port,
                            server.pid,
                            client_cpu,
                        )
                        if result["other_cores"] <= NOISY_CORES or attempt == args.retries:
                            break
                        print(
                            f"  noisy ({result['other_cores']:.2f} other cores), again", flush=True
                        )
                        wait_for_quiet(60)
                    result["attempt"] = attempt + 1
                    runs.setdefault((body, str(concurrency), candidate), []).append(result)
                    print(
                        f"  repeat {repeat + 1} {body:5} x{concurrency} {candidate}: "
                        f"{result['calls_per_s']:8.0f} calls/s "
                        f"{result['client_cpu_us_per_call']:7.0f} us/call client "
                        f"{result['server_cpu_us_per_call']:7.0f} us/call stand-in "
                        f"other {result['other_cores']:.2f} "
                        f"connections {result['connections']} kept {result['same_connections']}",
                        flush=True,
                    )
    print(f"load average after: {os.getloadavg()}", flush=True)
    print()
    print(table(runs, candidates, scenarios))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"versions": versions(), "runs": {"/".join(k): v for k, v in runs.items()}},
                indent=2,
            )
        )
    return 0


def table(
    runs: dict[tuple[str, str, str], list[JSON]],
    candidates: list[str],
    scenarios: list[tuple[str, int, int]],
) -> str:
    lines = [
        "| body | callers | candidate | calls/s | client CPU µs/call | vs d | stand-in CPU µs/call | connections | max other cores |",
        "|---|--:|---|--:|--:|--:|--:|--:|--:|",
    ]
    for body, concurrency, _calls in scenarios:
        floor = runs.get((body, str(concurrency), "d"))
        floor_cpu = statistics.median(r["client_cpu_us_per_call"] for r in floor) if floor else None
        for candidate in candidates:
            results = runs[(body, str(concurrency), candidate)]
            rate = statistics.median(r["calls_per_s"] for r in results)
            cpu = statistics.median(r["client_cpu_us_per_call"] for r in results)
            server = statistics.median(r["server_cpu_us_per_call"] for r in results)
            other = max(r["other_cores"] for r in results)
            kept = all(r["same_connections"] for r in results)
            pool = f"{results[0]['connections']}, kept" if kept else "reopened"
            versus = f"{cpu / floor_cpu:.2f}x" if floor_cpu else "-"
            label = f"{results[0]['seats']} seats, {results[0]['response_bytes']:,} B"
            lines.append(
                f"| {body} ({label}) | {concurrency} | {candidate}: {CANDIDATES[candidate]} "
                f"| {rate:,.0f} | {cpu:,.0f} | {versus} | {server:,.0f} | {pool} | {other:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
