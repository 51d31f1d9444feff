"""Benchmark the seat-balance gateway against GraphQL Mesh and against the direct REST call.

Run it from the repository root (standard library and httpx only)::

    .venv/bin/python bench/run.py                  # the full run, 15 s per target and shape
    .venv/bin/python bench/run.py --smoke          # 2 s each, Mesh only if installed (for CI)

What it sets up (2 cores assumed; see BENCHMARKS.md):

* the billing API stand-in (``python -m gateway.standin``) as its own HTTP server pinned to
  core 1, or the billing API at ``METRONOME_BASE_URL`` when that is set;
* one target at a time on core 0: the floor (``bench/floor.py``: raw ASGI on uvicorn, one
  aiohttp POST, keys renamed, orjson), the frameworks' floor (``bench/frameworks.py``: the
  floor's work through uvicorn, FastAPI, Strawberry's view and ``Schema.execute`` and httpx,
  the layers the gateway must keep, and nothing else), the gateway (``gateway serve``, one
  uvicorn worker), GraphQL Mesh's own server (``mesh start``, ``@graphql-mesh/cli`` over ``bench/openapi.yaml``,
  ``bench/mesh-cli``), then GraphQL Mesh v1 (``mesh-compose`` over the same document, served by
  ``hive-gateway`` with one process, ``bench/mesh``); "direct" is the stand-in itself, called
  with the REST body a target would send;
* ``wrk`` (one thread, 8 connections) on the core the target does not use.

What it measures, for each target and each shape (A, B, C: ``bench/queries/``,
``bench/mesh/queries/`` and the matching REST bodies):

* throughput and latency under load: requests/s, p50 and p99 from ``wrk`` after a warm-up;
* CPU time per request: utime+stime of the target's process tree (``/proc/<pid>/stat``, live
  descendants and reaped children included) before and after the load, divided by the requests;
  the same for the stand-in, to show the upstream's share;
* upstream calls per request: the stand-in's access lines during the load over the requests
  (1.00 unless the target shared calls between concurrent requests; the requests carry
  ``--callers`` tokens in turn, 64 by default, so that the gateway, which shares identical
  calls of one credential, makes every call as the others do);
* memory: RSS of the target's process tree after the load (``/proc/<pid>/status``);
* single-request latency: N sequential requests over one keep-alive connection (httpx),
  median and p99, and the median minus the direct call's median ("added latency"). The
  client runs on wrk's core, never on the target's: a client sharing the target's core waits
  for whatever the target does after sending its answer (its access log, freeing the
  request), which no remote client waits for, and the scheduler placed it on either core
  from one run to the next (BENCHMARKS.md, round six).

Before loading a target it checks one response per shape: HTTP 200, no GraphQL ``errors``, and
the same seats as the direct call. It fails (non-zero exit) on any such problem and on any
non-2xx answer or socket error that ``wrk`` counts. It never judges the numbers: it prints a
markdown table and writes everything to ``bench/results/<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
MESH_DIR = BENCH / "mesh"
MESH_CLI_DIR = BENCH / "mesh-cli"
RESULTS_DIR = BENCH / "results"
WRK_SCRIPT = BENCH / "wrk" / "post.lua"

SEAT_BALANCES_PATH = "/v1/contracts/seatBalances/list"
DEMO_CUSTOMER_ID = "66826d59-42c6-47ad-a3dc-07b0b602e610"
DEMO_CONTRACT_ID = "4ac528e4-73f3-42ba-9772-e5303e69e9fe"
DEMO_TOKEN = "demo-token"  # noqa: S105 - the stand-in's published demo token

TARGET_NAMES = ("direct", "floor", "frameworks", "gateway", "mesh-cli", "mesh")
# What the gateway's CPU per request and added latency are compared with, in the summary table.
PEERS = {
    "floor": "the floor",
    "frameworks": "the frameworks' floor",
    "mesh-cli": "mesh start",
    "mesh": "Hive Gateway (Mesh v1)",
}
STARTUP_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NOISY_CORES = 0.1  # other programs' CPU (in cores) during a measurement that makes it noisy
NOISY_WAIT_S = 120.0  # how long to wait for a quiet machine before measuring again

JSON = dict[str, Any]


class BenchError(Exception):
    """A reason to stop the run: a wrong answer, a failed start, a missing tool."""


# --- shapes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """One query shape, with the REST body that fetches the same data in one call."""

    name: str
    summary: str
    limit: int
    commits_and_credits: bool = False
    ledgers: bool = False

    def rest_body(self, customer_id: str, contract_id: str) -> JSON:
        body: JSON = {"customer_id": customer_id, "contract_id": contract_id, "limit": self.limit}
        if self.commits_and_credits:
            body["include_credits_and_commits"] = True
        if self.ledgers:
            body["include_ledgers"] = True
        return body


SHAPES = {
    "A": Shape("A", "25 seats, balances only", limit=25),
    "B": Shape("B", "first 100, commits and credits", limit=100, commits_and_credits=True),
    "C": Shape("C", "B plus ledger entries", limit=100, commits_and_credits=True, ledgers=True),
    # As a normalising client (Apollo Client, urql's graphcache, Relay) sends them: `id` on every
    # object that has one (the gateway's Seat, Commit and Credit; Mesh's commits and credits).
    "Ai": Shape("Ai", "A with `id` selected", limit=25),
    "Bi": Shape("Bi", "B with `id` selected", limit=100, commits_and_credits=True),
    "Ci": Shape("Ci", "C with `id` selected", limit=100, commits_and_credits=True, ledgers=True),
}


# --- targets ---------------------------------------------------------------------------------


@dataclass
class Target:
    """Something to load: a URL, the body to POST for each shape, and how to read its answer."""

    name: str
    url: str
    pid: int  # the process whose tree does the work (the stand-in itself for "direct")
    bodies: dict[str, bytes]
    read_seats: Callable[[JSON], list[str]]


def gateway_body(shape: Shape, customer_id: str, contract_id: str) -> bytes:
    query = (BENCH / "queries" / f"{shape.name}.graphql").read_text()
    variables = {"customerId": customer_id, "contractId": contract_id}
    return json.dumps({"query": query, "variables": variables}).encode()


def mesh_body(shape: Shape, customer_id: str, contract_id: str) -> bytes:
    query = (MESH_DIR / "queries" / f"{shape.name}.graphql").read_text()
    variables = {"input": shape.rest_body(customer_id, contract_id)}
    return json.dumps({"query": query, "variables": variables}).encode()


def floor_body(shape: Shape, customer_id: str, contract_id: str) -> bytes:
    """The floor reads no GraphQL: like Mesh's caller, it is handed the REST body in ``input``."""
    variables = {"input": shape.rest_body(customer_id, contract_id)}
    return json.dumps({"query": f"# shape {shape.name}", "variables": variables}).encode()


def direct_seats(answer: JSON) -> list[str]:
    return [seat["seat_id"] for seat in answer["data"]]


def gateway_seats(answer: JSON) -> list[str]:
    _raise_graphql_errors(answer)
    return [edge["node"]["seatId"] for edge in answer["data"]["seatBalances"]["edges"]]


def mesh_seats(answer: JSON) -> list[str]:
    _raise_graphql_errors(answer)
    listing = answer["data"]["listSeatBalances"]
    if listing["__typename"] != "SeatBalancesListResponse":
        raise BenchError(f"Mesh answered {listing['__typename']}: {listing.get('message')}")
    return [seat["seat_id"] for seat in listing["data"]]


def _raise_graphql_errors(answer: JSON) -> None:
    if answer.get("errors"):
        raise BenchError(f"GraphQL errors: {json.dumps(answer['errors'])[:500]}")
    if not isinstance(answer.get("data"), dict):
        raise BenchError(f"no data in the answer: {json.dumps(answer)[:500]}")


# --- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str], cpu: int | None) -> list[str]:
    """``command`` under ``taskset -c cpu`` when there is a cpu to pin to and taskset exists."""
    if cpu is None or shutil.which("taskset") is None:
        return command
    return ["taskset", "-c", str(cpu), *command]


@contextlib.contextmanager
def started(
    name: str, command: list[str], *, cwd: Path, env: dict[str, str], logs: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` in its own process group for the block; stop that group after it."""
    log_path = logs / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own command lines
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    print(f"  started {name} (pid {process.pid}): {shlex.join(command)}", flush=True)
    try:
        yield process
    except BaseException:
        if process.poll() is not None:  # it died: its last words say why
            print(f"--- {name} exited; its last lines ---\n{tail(log_path)}", file=sys.stderr)
        raise
    finally:
        stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_ready(
    process: subprocess.Popen[bytes] | None,
    url: str,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float = STARTUP_TIMEOUT_S,
) -> None:
    """Poll with a real request until the server answers 200 (a 4xx fails at once)."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    with httpx.Client(timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BenchError(f"{url}: the server exited with code {process.returncode}")
            try:
                response = client.post(url, content=body, headers=headers)
            except httpx.TransportError as error:
                last = repr(error)
            else:
                if response.status_code == 200:
                    return
                answer = f"{url}: HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code < 500:  # up, and answering wrongly: waiting won't help
                    raise BenchError(answer)
                last = answer
            time.sleep(0.2)
    raise BenchError(f"{url} was not ready after {timeout_s:.0f} s ({last})")


# --- /proc -----------------------------------------------------------------------------------


def descendants(root: int) -> list[int]:
    """``root`` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(int(entry.name))[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def _stat_fields(pid: int) -> list[str]:
    """``/proc/<pid>/stat`` after the command name: index 0 is field 3 (state)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def cpu_seconds(root: int) -> float:
    """utime+stime+cutime+cstime of ``root`` and its live descendants."""
    ticks = 0
    for pid in descendants(root):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            ticks += sum(int(value) for value in fields[11:15])  # fields 14-17
    return ticks / CLOCK_TICKS


def rss_kib(root: int) -> int:
    """Resident set size of ``root`` and its live descendants."""
    total = 0
    for pid in descendants(root):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def core_times() -> dict[str, tuple[int, int, int]]:
    """Per core, (busy, steal, total) jiffies since boot from ``/proc/stat``."""
    times = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, values[:8])
            total = sum(int(value) for value in values[:8])
            times[name] = (user + nice + system + irq + softirq, steal, total)
    return times


def core_busy(
    before: dict[str, tuple[int, int, int]], after: dict[str, tuple[int, int, int]]
) -> JSON:
    """Per core, the share of the time between two ``core_times()`` spent busy and stolen.

    Busy (1.0 = saturated) next to the target's, the stand-in's and wrk's own CPU shows whether
    another program used the cores; steal is time the hypervisor gave to other machines.
    """
    shares: JSON = {"busy": {}, "steal": {}}
    for name, (busy_after, steal_after, total_after) in after.items():
        busy_before, steal_before, total_before = before.get(name, (0, 0, 0))
        elapsed = total_after - total_before
        shares["busy"][name] = round((busy_after - busy_before) / elapsed, 3) if elapsed else 0.0
        shares["steal"][name] = round((steal_after - steal_before) / elapsed, 3) if elapsed else 0.0
    return shares


def quiet_check(seconds: float = 2.0) -> JSON:
    """How busy the cores are before we start anything; warns when something else runs."""
    before = core_times()
    time.sleep(seconds)
    busy = core_busy(before, core_times())
    if any(value > 0.1 for value in busy["busy"].values()):
        print(
            f"WARNING: the machine is busy before the benchmark starts ({busy}); "
            "other programs will skew the numbers",
            file=sys.stderr,
            flush=True,
        )
    return busy


# --- measuring -------------------------------------------------------------------------------


@dataclass
class Layout:
    """Who runs where, and what every request carries."""

    target_cpu: int | None
    upstream_cpu: int | None
    connections: int
    token: str
    customer_id: str
    contract_id: str
    upstream_pid: int | None  # None when the upstream is not ours to measure
    callers: int = 1  # wrk's requests carry this many callers' tokens in turn
    upstream_log: Path | None = None  # the stand-in's log: an access line per call answered

    def tokens(self) -> str:
        """wrk's tokens: the caller's, then the stand-in's other demo callers (``--callers``;
        named as ``python -m gateway.standin --callers`` names them: this script imports
        nothing of the gateway)."""
        return ",".join(
            [self.token, *(f"{self.token}-{number}" for number in range(2, self.callers + 1))]
        )

    def headers(self) -> dict[str, str]:
        return {
            "Content-Type": "application/json",
            "Accept": "application/json",
            # As wrk sends it: uncompressed, so targets compare on the same work (httpx would
            # otherwise ask for zstd, br and gzip); bench/compression.py measures compression.
            "Accept-Encoding": "identity",
            "Authorization": f"Bearer {self.token}",
        }


@dataclass
class Measurement:
    target: str
    shape: str
    seats: int
    response_bytes: int
    load: JSON = field(default_factory=dict)
    sequential: JSON = field(default_factory=dict)


def check_answer(target: Target, shape: Shape, layout: Layout, expected: list[str] | None) -> JSON:
    """One request: HTTP 200, no GraphQL errors, the expected seats. Returns seats and size."""
    response = httpx.post(
        target.url, content=target.bodies[shape.name], headers=layout.headers(), timeout=30.0
    )
    if response.status_code != 200:
        raise BenchError(
            f"{target.name} shape {shape.name}: HTTP {response.status_code}: {response.text[:300]}"
        )
    try:
        seats = target.read_seats(response.json())
    except (BenchError, ValueError, KeyError, TypeError) as error:
        reason = error if isinstance(error, BenchError) else repr(error)
        raise BenchError(f"{target.name} shape {shape.name}: {reason}") from None
    if not seats:
        raise BenchError(f"{target.name} shape {shape.name}: no seats in the answer")
    if expected is not None and seats != expected:
        raise BenchError(
            f"{target.name} shape {shape.name}: seats differ from the direct call's "
            f"({len(seats)} vs {len(expected)}; first {seats[:3]} vs {expected[:3]})"
        )
    return {"seats": seats, "bytes": len(response.content)}


def run_wrk(
    target: Target, shape: Shape, layout: Layout, duration_s: float, body_dir: Path
) -> JSON:
    """One ``wrk`` run; returns its BENCH_JSON summary. Fails on any error it counts."""
    body_file = body_dir / f"{target.name}-{shape.name}.json"
    body_file.write_bytes(target.bodies[shape.name])
    wrk_cpu = layout.target_cpu if target.name == "direct" else layout.upstream_cpu
    command = pinned(
        [
            "wrk",
            "-t1",
            f"-c{layout.connections}",
            f"-d{max(1, round(duration_s))}s",
            "--timeout",
            "10s",
            "-s",
            str(WRK_SCRIPT),
            target.url,
            "--",
            str(body_file),
            layout.tokens(),
        ],
        wrk_cpu,
    )
    finished = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if finished.returncode != 0:
        raise BenchError(f"wrk failed ({finished.returncode}): {finished.stderr.strip()}")
    lines = [line for line in finished.stdout.splitlines() if line.startswith("BENCH_JSON ")]
    if not lines:
        raise BenchError(f"wrk printed no summary:\n{finished.stdout}\n{finished.stderr}")
    summary: JSON = json.loads(lines[-1].removeprefix("BENCH_JSON "))
    errors = summary["errors"]
    if any(errors.values()):
        raise BenchError(f"{target.name} shape {shape.name}: wrk counted errors {errors}")
    if summary["requests"] == 0:
        raise BenchError(f"{target.name} shape {shape.name}: wrk completed no request")
    return summary


@dataclass
class Meter:
    """CPU used by everything else on the machine while a block runs (see ``metered``)."""

    wall_s: float = 0.0
    cores: JSON = field(default_factory=dict)
    other_cpu_busy: float = 0.0  # in cores: 0.0 = nothing else ran, 1.0 = a whole core


@contextlib.contextmanager
def metered(pids: list[int]) -> Iterator[Meter]:
    """Compare the cores' busy time with our own processes' (``pids``, this script, wrk)."""
    meter = Meter()
    cores0, ours0, began = core_times(), _our_cpu_seconds(pids), time.monotonic()
    yield meter
    meter.wall_s = time.monotonic() - began
    meter.cores = core_busy(cores0, core_times())
    ours = (_our_cpu_seconds(pids) - ours0) / meter.wall_s
    # Kernel work for loopback traffic that no process is charged with lands here too: small.
    meter.other_cpu_busy = max(0.0, sum(meter.cores["busy"].values()) - ours)


def _our_cpu_seconds(pids: list[int]) -> float:
    mine = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once it has exited
    own = mine.ru_utime + mine.ru_stime + waited.ru_utime + waited.ru_stime
    return own + sum(cpu_seconds(pid) for pid in set(pids))


def load(target: Target, shape: Shape, layout: Layout, duration_s: float, body_dir: Path) -> JSON:
    """A measured ``wrk`` run with the CPU time of the target and the upstream around it."""
    upstream_pid = layout.upstream_pid if target.name != "direct" else None
    log = layout.upstream_log
    log_start = log.stat().st_size if log is not None and log.exists() else None
    target_cpu0 = cpu_seconds(target.pid)
    upstream_cpu0 = cpu_seconds(upstream_pid) if upstream_pid else 0.0
    with metered([target.pid, *([upstream_pid] if upstream_pid else [])]) as meter:
        summary = run_wrk(target, shape, layout, duration_s, body_dir)
    target_cpu_s = cpu_seconds(target.pid) - target_cpu0
    requests = summary["requests"]
    result: JSON = {
        "requests": requests,
        "duration_s": summary["duration_us"] / 1e6,
        "rps": requests / (summary["duration_us"] / 1e6),
        "latency_ms": {key: value / 1000 for key, value in summary["latency_us"].items()},
        "cpu_s": target_cpu_s,
        "cpu_ms_per_request": 1000 * target_cpu_s / requests,
        "cpu_busy": target_cpu_s / meter.wall_s,  # 1.0 = one core saturated
        "rss_mib": rss_kib(target.pid) / 1024,
        "cores": meter.cores,
        "other_cpu_busy": meter.other_cpu_busy,
    }
    if log is not None and log_start is not None:
        # Exact, where the CPU figures are not: a target that answers several requests with
        # one call (the gateway shares identical calls in flight) spends less per request.
        result["upstream_calls_per_request"] = upstream_calls(log, log_start) / requests
    if upstream_pid:
        upstream_cpu_s = cpu_seconds(upstream_pid) - upstream_cpu0
        result["upstream_cpu_ms_per_request"] = 1000 * upstream_cpu_s / requests
        result["upstream_cpu_busy"] = upstream_cpu_s / meter.wall_s
    return result


def upstream_calls(log: Path, start: int) -> int:
    """The seat-balance calls the stand-in answered since its log was ``start`` bytes long:
    its access lines (it runs unbuffered, so each is written as the call is answered); only
    what the load added is read."""
    with log.open("rb") as file:
        file.seek(start)
        return file.read().count(b'"POST ' + SEAT_BALANCES_PATH.encode())


def sequential(target: Target, shape: Shape, layout: Layout, count: int) -> JSON:
    """``count`` requests one after another on one connection (after 20 unmeasured ones),
    from wrk's core (the one the target does not use) when the run pins its processes."""
    client_cpu = layout.target_cpu if target.name == "direct" else layout.upstream_cpu
    timings: list[float] = []
    body = target.bodies[shape.name]
    pids = [target.pid, *([layout.upstream_pid] if layout.upstream_pid else [])]
    with (
        on_core(client_cpu),
        httpx.Client(timeout=30.0, headers=layout.headers()) as client,
        metered(pids) as meter,
    ):
        for index in range(20 + count):
            began = time.perf_counter()
            response = client.post(target.url, content=body)
            elapsed = time.perf_counter() - began
            if response.status_code != 200:
                raise BenchError(
                    f"{target.name} shape {shape.name}: HTTP {response.status_code} "
                    "during the sequential run"
                )
            if index >= 20:
                timings.append(elapsed * 1000)
    return {
        "count": count,
        "median_ms": statistics.median(timings),
        "p99_ms": statistics.quantiles(timings, n=100)[98] if count >= 2 else timings[0],
        "min_ms": min(timings),
        "other_cpu_busy": meter.other_cpu_busy,
    }


@contextlib.contextmanager
def on_core(cpu: int | None) -> Iterator[None]:
    """This process (the sequential client) on ``cpu`` for the block (``None``: anywhere)."""
    if cpu is None:
        yield
        return
    everywhere = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, everywhere)


def percentile(values: list[float], share: float) -> float:
    """The value ``share`` of the way up ``values`` (0.1: the 10th percentile), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def wait_for_quiet(timeout_s: float) -> None:
    """Until the cores, with our processes idle, stay under NOISY_CORES for 3 s (or timeout)."""
    deadline = time.monotonic() + timeout_s
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        before = core_times()
        time.sleep(0.5)
        if sum(core_busy(before, core_times())["busy"].values()) > NOISY_CORES:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= 3.0:
            return


def least_noisy(what: str, measure: Callable[[], JSON], retries: int) -> JSON:
    """Run ``measure``; again (up to ``retries`` times) while other programs used the CPU.

    Keeps the attempt during which the rest of the machine was quietest. Each attempt's
    ``other_cpu_busy`` stays in the result, so a noisy number is never silent.
    """
    best: JSON | None = None
    for attempt in range(retries + 1):
        result = measure()
        result["attempt"] = attempt + 1
        if best is None or result["other_cpu_busy"] < best["other_cpu_busy"]:
            best = result
        if result["other_cpu_busy"] <= NOISY_CORES:
            break
        print(
            f"  WARNING: {result['other_cpu_busy']:.2f} cores were busy with other programs "
            f"during {what}" + (", measuring again" if attempt < retries else ""),
            file=sys.stderr,
            flush=True,
        )
        if attempt < retries:
            wait_for_quiet(NOISY_WAIT_S)
    assert best is not None
    return best


@dataclass
class Plan:
    shapes: list[Shape]
    duration_s: float
    warmup_s: float
    sequential_count: int
    retries: int


def measure_target(
    target: Target,
    plan: Plan,
    layout: Layout,
    expected_seats: dict[str, list[str]],
    body_dir: Path,
) -> list[Measurement]:
    """Check every shape, then for each: warm up, load, sequential requests."""
    checked = {
        shape.name: check_answer(
            target, shape, layout, None if target.name == "direct" else expected_seats[shape.name]
        )
        for shape in plan.shapes
    }
    measurements = []
    for shape in plan.shapes:
        seats = checked[shape.name]["seats"]
        label = f"{target.name} {shape.name}"
        print(f"  {label}: {len(seats)} seats, warming up", flush=True)
        if plan.warmup_s > 0:
            run_wrk(target, shape, layout, plan.warmup_s, body_dir)
        result = Measurement(target.name, shape.name, len(seats), checked[shape.name]["bytes"])
        result.load = least_noisy(
            f"the load on {label}",
            lambda: load(target, shape, layout, plan.duration_s, body_dir),  # noqa: B023
            plan.retries,
        )
        result.sequential = least_noisy(
            f"the sequential requests to {label}",
            lambda: sequential(target, shape, layout, plan.sequential_count),  # noqa: B023
            plan.retries,
        )
        calls = result.load.get("upstream_calls_per_request")
        print(
            f"  {label}: {result.load['rps']:.0f} req/s, "
            f"{result.load['cpu_ms_per_request']:.2f} CPU ms/req, "
            + ("" if calls is None else f"{calls:.2f} upstream calls/req, ")
            + f"sequential median {result.sequential['median_ms']:.2f} ms",
            flush=True,
        )
        measurements.append(result)
    return measurements


# --- the peers -------------------------------------------------------------------------------


# Each Node peer: its npm project (with a committed lockfile) and the program that shows it is in.
NODE_PEERS = {"mesh": (MESH_DIR, "hive-gateway"), "mesh-cli": (MESH_CLI_DIR, "mesh")}


def mesh_installed(name: str = "mesh") -> bool:
    directory, program = NODE_PEERS[name]
    return (directory / "node_modules" / ".bin" / program).exists()


def install_mesh(name: str = "mesh") -> None:
    if mesh_installed(name):
        return
    directory = NODE_PEERS[name][0]
    if shutil.which("npm") is None:
        raise BenchError(f"{name} is a target but npm is not installed (Node 20+ with npm)")
    print(f"  installing {name}: npm ci in {directory.relative_to(REPO)}", flush=True)
    subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],  # noqa: S607
        cwd=directory,
        check=True,
    )


def build_mesh_cli(upstream: str, logs: Path) -> None:
    """``mesh build`` in bench/mesh-cli, pointed at ``upstream`` (baked into ``.mesh/``)."""
    env = {**os.environ, "METRONOME_BASE_URL": upstream}
    with (logs / "mesh-build.log").open("wb") as log:
        finished = subprocess.run(  # noqa: S603
            [str(MESH_CLI_DIR / "node_modules" / ".bin" / "mesh"), "build"],
            cwd=MESH_CLI_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if finished.returncode != 0:
        raise BenchError(f"mesh build failed:\n{tail(logs / 'mesh-build.log')}")


def compose_mesh(upstream: str, out_dir: Path, logs: Path) -> Path:
    """``mesh-compose`` over bench/openapi.yaml, pointed at ``upstream``; the supergraph path."""
    supergraph = out_dir / "supergraph.graphql"
    env = {**os.environ, "METRONOME_BASE_URL": upstream}
    with (logs / "mesh-compose.log").open("wb") as log:
        finished = subprocess.run(  # noqa: S603
            [str(MESH_DIR / "node_modules" / ".bin" / "mesh-compose"), "-o", str(supergraph)],
            cwd=MESH_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if finished.returncode != 0 or not supergraph.exists():
        raise BenchError(f"mesh-compose failed:\n{tail(logs / 'mesh-compose.log')}")
    return supergraph


def gateway_command(template: str | None, port: int) -> list[str]:
    """``--gateway-cmd`` with its ``{port}``, else ``gateway serve`` with one worker."""
    if template is not None:
        return shlex.split(template.format(port=port))
    executable = str(Path(sys.executable).parent / "gateway")
    command = [executable, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if "--workers" in _output([executable, "serve", "--help"]):  # older versions had no flag
        command += ["--workers", "1"]
    return command


# --- the report ------------------------------------------------------------------------------


def ratio(value: float | None, base: float | None) -> str:
    if value is None or not base:
        return "-"
    return f"{value / base:.2f}x"


LOAD_HEADER = [
    "| shape | target | seats | req/s | p50 ms | p99 ms | CPU ms/req | upstream CPU ms/req "
    "| upstream calls/req | RSS MiB | req/s vs mesh start | CPU/req vs mesh start "
    "| req/s vs direct | CPU/req vs direct | other CPU |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
]
SEQUENTIAL_HEADER = [
    "| shape | target | response bytes | median ms | p99 ms | added latency vs direct ms |",
    "|---|---|--:|--:|--:|--:|",
]


def load_row(m: Measurement, mesh: Measurement | None, direct: Measurement | None) -> str:
    load = m.load
    upstream = load.get("upstream_cpu_ms_per_request")
    calls = load.get("upstream_calls_per_request")
    other = load["other_cpu_busy"]

    def versus(peer: Measurement | None, key: str) -> str:
        return ratio(load[key], peer.load[key] if peer else None)

    cells = [
        m.shape,
        m.target,
        str(m.seats),
        f"{load['rps']:,.0f}",
        f"{load['latency_ms']['p50']:.2f}",
        f"{load['latency_ms']['p99']:.2f}",
        f"{load['cpu_ms_per_request']:.2f}",
        "-" if upstream is None else f"{upstream:.2f}",
        "-" if calls is None else f"{calls:.2f}",
        f"{load['rss_mib']:.0f}",
        versus(mesh, "rps"),
        versus(mesh, "cpu_ms_per_request"),
        versus(direct, "rps"),
        versus(direct, "cpu_ms_per_request"),
        f"{other:.2f}" + (" (noisy)" if other > NOISY_CORES else ""),
    ]
    return "| " + " | ".join(cells) + " |"


def sequential_row(m: Measurement, direct: Measurement | None) -> str:
    median = m.sequential["median_ms"]
    added = "-"
    if direct is not None and m.target != "direct":
        added = f"{median - direct.sequential['median_ms']:.2f}"
    cells = [
        m.shape,
        m.target,
        f"{m.response_bytes:,}",
        f"{median:.2f}",
        f"{m.sequential['p99_ms']:.2f}",
        added,
    ]
    return "| " + " | ".join(cells) + " |"


def markdown_tables(measurements: list[Measurement]) -> str:
    by_key = {(m.target, m.shape): m for m in measurements}
    load_rows, sequential_rows = list(LOAD_HEADER), list(SEQUENTIAL_HEADER)
    for shape in sorted({m.shape for m in measurements}):
        mesh = by_key.get(("mesh-cli", shape))
        direct = by_key.get(("direct", shape))
        for name in TARGET_NAMES:
            m = by_key.get((name, shape))
            if m is not None:
                load_rows.append(load_row(m, mesh, direct))
                sequential_rows.append(sequential_row(m, direct))
    return "\n".join(
        [
            "Under load (wrk, 8 connections):",
            "",
            *load_rows,
            "",
            "Single requests, one after another (1 connection):",
            "",
            *sequential_rows,
            "",
            "The gateway against each (CPU per request: below 1x is less; added latency over the "
            "direct call's median, ms):",
            "",
            *summary_rows(by_key),
        ]
    )


def added_ms(m: Measurement | None, direct: Measurement | None) -> str:
    if m is None or direct is None:
        return "-"
    return f"{m.sequential['median_ms'] - direct.sequential['median_ms']:.2f}"


def summary_rows(by_key: dict[tuple[str, str], Measurement]) -> list[str]:
    peers = [name for name in PEERS if any(key[0] == name for key in by_key)]
    rows = [
        "| shape | gateway CPU ms/req | "
        + " | ".join(f"vs {PEERS[name]}" for name in peers)
        + " | gateway added ms | "
        + " | ".join(f"{PEERS[name]} added ms" for name in peers)
        + " |",
        "|---|--:|" + "--:|" * (2 * len(peers) + 1),
    ]
    for shape in sorted({key[1] for key in by_key}):
        gateway, direct = by_key.get(("gateway", shape)), by_key.get(("direct", shape))
        if gateway is None:
            continue
        cpu = gateway.load["cpu_ms_per_request"]
        cells = [shape, f"{cpu:.3f}"]
        for name in peers:
            peer = by_key.get((name, shape))
            cells.append(ratio(cpu, peer.load["cpu_ms_per_request"] if peer else None))
        cells.append(added_ms(gateway, direct))
        cells += [added_ms(by_key.get((name, shape)), direct) for name in peers]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def versions() -> JSON:
    found: JSON = {"python": platform.python_version()}
    for package in ("strawberry-graphql", "graphql-core", "fastapi", "uvicorn", "httpx"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    found["node"] = _output(["node", "--version"])
    found["wrk"] = _output(["wrk", "-v"]).splitlines()[0] if shutil.which("wrk") else None
    for directory, packages in (
        (MESH_DIR, ("@graphql-hive/gateway", "@graphql-mesh/compose-cli", "@omnigraph/openapi")),
        (MESH_CLI_DIR, ("@graphql-mesh/cli", "@graphql-mesh/openapi", "@omnigraph/openapi")),
    ):
        for package in packages:
            manifest = directory / "node_modules" / package / "package.json"
            if manifest.exists():
                key = package if directory == MESH_DIR else f"mesh-cli {package}"
                found[key] = json.loads(manifest.read_text())["version"]
    for package in ("aiohttp", "httpx-aiohttp", "orjson", "msgspec", "pydantic-core"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[package] = importlib.metadata.version(package)
    found["git_commit"] = _output(["git", "-C", str(REPO), "rev-parse", "HEAD"])
    found["gateway_dirty"] = bool(
        _output(["git", "-C", str(REPO), "status", "--porcelain", "--", "gateway"])
    )
    return found


def machine() -> JSON:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _shown_path(path: str) -> str:
    """``path`` relative to the repository when it is inside it (``.venv/bin/python``)."""
    resolved = Path(path).absolute()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else path


def _output(command: list[str]) -> str:
    try:
        finished = subprocess.run(  # noqa: S603
            command, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (finished.stdout or finished.stderr).strip()


def write_results(report: JSON, smoke: bool) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}{'-smoke' if smoke else ''}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/run.py", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--targets", default=",".join(TARGET_NAMES), help="subset of %(default)s")
    parser.add_argument(
        "--shapes", default="A,B,C,Ai,Bi,Ci", help="subset of %(default)s (Ai..Ci: with `id`)"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of load per run")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds of load before each")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--callers",
        type=int,
        default=None,
        help="callers (the stand-in's demo tokens) wrk's requests carry in turn; default 64 "
        "with the stand-in (every request its own upstream call, as many callers' traffic is), "
        "1 with METRONOME_BASE_URL; 1: one caller, whose concurrent identical requests the "
        "gateway answers with one upstream call",
    )
    parser.add_argument(
        "--sequential", type=int, default=300, help="sequential requests per target and shape"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=2,
        help="measure again while other programs use more than 0.1 core (keeps the quietest)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="2 s runs, 1 s warm-up, 30 sequential requests; Mesh only if installed (CI)",
    )
    parser.add_argument(
        "--gateway-cmd",
        help="command line of the gateway to benchmark, with {port}; "
        "default: .venv/bin/gateway serve --host 127.0.0.1 --port {port} [--workers 1]",
    )
    parser.add_argument(
        "--frameworks-args",
        default="",
        help="extra arguments of bench/frameworks.py, e.g. '--client aiohttp' or '--router none'",
    )
    parser.add_argument("--target-cpu", type=int, default=0, help="core of the target")
    parser.add_argument(
        "--spread",
        action="store_true",
        help="pin nothing: the target, the stand-in and wrk share every core (for --workers 2)",
    )
    parser.add_argument("--upstream-cpu", type=int, default=1, help="core of the stand-in")
    parser.add_argument("--token", default=os.environ.get("BENCH_TOKEN", DEMO_TOKEN))
    parser.add_argument("--customer-id", default=DEMO_CUSTOMER_ID)
    parser.add_argument("--contract-id", default=DEMO_CONTRACT_ID)
    args = parser.parse_args(argv)
    if args.smoke:
        args.duration, args.warmup, args.sequential, args.retries = 2.0, 1.0, 30, 0
    args.targets = _choose(args.targets, TARGET_NAMES, "target")
    args.shapes = _choose(args.shapes, tuple(SHAPES), "shape")
    if os.environ.get("METRONOME_BASE_URL") and "direct" in args.targets:
        print("METRONOME_BASE_URL is set: no direct target (it loads only our own stand-in)")
        args.targets = [name for name in args.targets if name != "direct"]
    for name, (directory, _program) in NODE_PEERS.items():
        if args.smoke and name in args.targets and not mesh_installed(name):
            print(f"smoke: {name} is not installed (npm ci in {directory.name}), leaving it out")
            args.targets = [target for target in args.targets if target != name]
    return args


def _choose(text: str, known: tuple[str, ...], what: str) -> list[str]:
    chosen = [item.strip() for item in text.split(",") if item.strip()]
    unknown = [item for item in chosen if item not in known]
    if unknown or not chosen:
        raise SystemExit(f"unknown {what}(s) {unknown}; choose from {', '.join(known)}")
    return [item for item in known if item in chosen]  # in the canonical order


def cores(args: argparse.Namespace) -> tuple[int | None, int | None]:
    available = os.sched_getaffinity(0)
    if args.spread:
        print("  --spread: nothing is pinned", flush=True)
        return None, None
    if len(available) < 2 or shutil.which("taskset") is None:
        print("  fewer than 2 cores or no taskset: nothing is pinned", flush=True)
        return None, None
    if {args.target_cpu, args.upstream_cpu} - available:
        raise BenchError(f"cores {args.target_cpu}/{args.upstream_cpu} not in {available}")
    return args.target_cpu, args.upstream_cpu


def run(args: argparse.Namespace) -> JSON:
    if shutil.which("wrk") is None:
        raise BenchError("wrk is not installed: apt-get install -y wrk")
    for name in NODE_PEERS:
        if name in args.targets:
            install_mesh(name)
    target_cpu, upstream_cpu = cores(args)
    if args.callers is None:
        args.callers = 1 if os.environ.get("METRONOME_BASE_URL") else 64
    plan = Plan(
        [SHAPES[name] for name in args.shapes],
        args.duration,
        args.warmup,
        args.sequential,
        args.retries,
    )
    measurements: list[Measurement] = []
    expected_seats: dict[str, list[str]] = {}
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seat-bench-")))
        upstream, upstream_process = start_upstream(stack, upstream_cpu, work, args.callers)
        layout = Layout(
            target_cpu=target_cpu,
            upstream_cpu=upstream_cpu,
            connections=args.connections,
            token=args.token,
            customer_id=args.customer_id,
            contract_id=args.contract_id,
            upstream_pid=upstream_process.pid if upstream_process else None,
            callers=args.callers,
            upstream_log=work / "standin.log" if upstream_process else None,
        )
        direct = direct_target(upstream, upstream_process, layout)
        wait_ready(
            upstream_process, direct.url, direct.bodies[plan.shapes[0].name], layout.headers()
        )
        # The direct call's seats are what the others must answer: check them even if not loaded.
        for shape in plan.shapes:
            expected_seats[shape.name] = check_answer(direct, shape, layout, None)["seats"]
        for name in args.targets:
            print(f"{name}:", flush=True)
            with contextlib.ExitStack() as peer:
                target = start_target(name, peer, args, upstream, direct, layout, work)
                measurements += measure_target(target, plan, layout, expected_seats, work)
    return build_report(args, (target_cpu, upstream_cpu), measurements)


def build_report(
    args: argparse.Namespace, pins: tuple[int | None, int | None], measurements: list[Measurement]
) -> JSON:
    target_cpu, upstream_cpu = pins
    return {
        "started": args.started,
        "command": shlex.join([_shown_path(sys.executable), *sys.argv]),
        "machine": args.machine,
        "versions": versions(),
        "config": {
            "targets": args.targets,
            "shapes": {name: SHAPES[name].summary for name in args.shapes},
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "callers": args.callers,
            "sequential": args.sequential,
            "retries": args.retries,
            "target_cpu": target_cpu,
            "upstream_cpu": upstream_cpu,
            "upstream": os.environ.get("METRONOME_BASE_URL") or "stand-in",
            "gateway_cmd": args.gateway_cmd,
        },
        "results": [m.__dict__ for m in measurements],
        "table": markdown_tables(measurements),
    }


def start_upstream(
    stack: contextlib.ExitStack, cpu: int | None, logs: Path, callers: int = 1
) -> tuple[str, subprocess.Popen[bytes] | None]:
    """The billing API: ``METRONOME_BASE_URL`` if set, else the stand-in started here (with
    ``callers`` demo callers)."""
    configured = os.environ.get("METRONOME_BASE_URL")
    if configured:
        if callers > 1:
            raise BenchError("--callers needs the stand-in (unset METRONOME_BASE_URL)")
        print(f"upstream: {configured} (METRONOME_BASE_URL; its CPU is not measured)")
        return configured.rstrip("/"), None
    port = free_port()
    command = pinned(
        [
            *[sys.executable, "-u", "-m", "gateway.standin", "--host", "127.0.0.1"],
            *["--port", str(port), "--callers", str(callers)],
        ],
        cpu,
    )
    print("upstream: the stand-in", flush=True)
    process = stack.enter_context(
        started("standin", command, cwd=REPO, env=dict(os.environ), logs=logs)
    )
    return f"http://127.0.0.1:{port}", process


def standin_and_direct(
    stack: contextlib.ExitStack, work: Path, shape: Shape, *, connections: int, callers: int = 1
) -> tuple[str, Layout, Target]:
    """For the scripts beside this one (hotspots, latency, timeline): the upstream (the stand-in
    on core 1, unless ``METRONOME_BASE_URL``), the layout (targets on core 0, the demo
    account) and the direct call, once it answers ``shape``."""
    upstream, standin = start_upstream(stack, 1, work, callers)
    layout = Layout(
        target_cpu=0,
        upstream_cpu=1,
        connections=connections,
        token=DEMO_TOKEN,
        customer_id=DEMO_CUSTOMER_ID,
        contract_id=DEMO_CONTRACT_ID,
        upstream_pid=standin.pid if standin else None,
        callers=callers,
        upstream_log=work / "standin.log" if standin else None,
    )
    direct = direct_target(upstream, standin, layout)
    wait_ready(standin, direct.url, direct.bodies[shape.name], layout.headers())
    return upstream, layout, direct


def add_side_by_side_arguments(parser: argparse.ArgumentParser, *, shapes: str) -> None:
    """The options of the scripts that keep every target alive at once (latency, rounds)."""
    parser.add_argument("--targets", default="frameworks,gateway,mesh-cli")
    parser.add_argument("--shapes", default=shapes)
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="another gateway, started with COMMAND ({port} for its port), e.g. an older commit",
    )
    parser.add_argument("--frameworks-args", default="", help="as in bench/run.py")


def side_by_side(
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    work: Path,
    *,
    connections: int,
    callers: int = 1,
    direct: bool = False,
) -> tuple[Layout, list[Target], list[Shape]]:
    """For the scripts that keep every target alive at once: the stand-in, then every target
    of ``--targets`` and each ``--also`` gateway (the direct call first when ``direct``), each
    checked on every shape of ``--shapes``."""
    shapes = [SHAPES[name] for name in args.shapes.split(",")]
    args.shapes = [shape.name for shape in shapes]
    names = args.targets.split(",")
    for name in NODE_PEERS:
        if name in names:
            install_mesh(name)
    upstream, layout, the_direct = standin_and_direct(
        stack, work, shapes[0], connections=connections, callers=callers
    )
    targets = [the_direct] if direct else []
    for name in names:
        args.gateway_cmd = None
        targets.append(start_target(name, stack, args, upstream, the_direct, layout, work))
    for also in args.also:
        label, _, command = also.partition("=")
        args.gateway_cmd = command
        target = start_target("gateway", stack, args, upstream, the_direct, layout, work)
        target.name = label
        targets.append(target)
    for target in targets:
        for shape in shapes:
            check_answer(target, shape, layout, None)
    return layout, targets, shapes


def direct_target(upstream: str, process: subprocess.Popen[bytes] | None, layout: Layout) -> Target:
    bodies = {
        name: json.dumps(shape.rest_body(layout.customer_id, layout.contract_id)).encode()
        for name, shape in SHAPES.items()
    }
    return Target(
        "direct", upstream + SEAT_BALANCES_PATH, process.pid if process else 0, bodies, direct_seats
    )


def start_target(
    name: str,
    stack: contextlib.ExitStack,
    args: argparse.Namespace,
    upstream: str,
    direct: Target,
    layout: Layout,
    work: Path,
) -> Target:
    """Start ``name`` (unless it is the direct call), wait until it answers, return it."""
    if name == "direct":
        if not direct.pid:
            raise BenchError("the direct target needs the stand-in (unset METRONOME_BASE_URL)")
        return direct
    port = free_port()
    env = {**os.environ, "METRONOME_BASE_URL": upstream}
    if name == "gateway":
        env.pop("METRONOME_BEARER_TOKEN", None)  # forward the caller's token, like Mesh
        command = pinned(gateway_command(args.gateway_cmd, port), layout.target_cpu)
        process = stack.enter_context(started(name, command, cwd=REPO, env=env, logs=work))
        make_body, read_seats = gateway_body, gateway_seats
    elif name in ("floor", "frameworks"):
        command = pinned(
            [
                *[sys.executable, str(BENCH / f"{name}.py"), "--host", "127.0.0.1"],
                *["--port", str(port), "--upstream", upstream],
                *(shlex.split(args.frameworks_args) if name == "frameworks" else []),
            ],
            layout.target_cpu,
        )
        process = stack.enter_context(started(name, command, cwd=REPO, env=env, logs=work))
        make_body = floor_body if name == "floor" else gateway_body
        read_seats = gateway_seats
    elif name == "mesh-cli":
        build_mesh_cli(upstream, work)
        mesh = str(MESH_CLI_DIR / "node_modules" / ".bin" / "mesh")
        command = pinned([mesh, "start", "--port", str(port)], layout.target_cpu)
        env["NODE_ENV"] = "production"
        process = stack.enter_context(started(name, command, cwd=MESH_CLI_DIR, env=env, logs=work))
        make_body, read_seats = mesh_body, mesh_seats
    else:
        supergraph = compose_mesh(upstream, work, work)
        hive = str(MESH_DIR / "node_modules" / ".bin" / "hive-gateway")
        command = pinned(
            [
                *[hive, "supergraph", str(supergraph), "-c", "gateway.config.ts"],
                *["--host", "127.0.0.1", "--port", str(port), "--fork", "1"],
            ],
            layout.target_cpu,
        )
        env["NODE_ENV"] = "production"
        process = stack.enter_context(started(name, command, cwd=MESH_DIR, env=env, logs=work))
        make_body, read_seats = mesh_body, mesh_seats
    bodies = {
        shape_name: make_body(shape, layout.customer_id, layout.contract_id)
        for shape_name, shape in SHAPES.items()
    }
    url = f"http://127.0.0.1:{port}/graphql"
    wait_ready(process, url, bodies[args.shapes[0]], layout.headers())
    return Target(name, url, process.pid, bodies, read_seats)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.started = datetime.now(UTC).isoformat(timespec="seconds")
    args.machine = machine()
    args.machine["busy_before_start"] = quiet_check()
    try:
        report = run(args)
    except BenchError as error:
        print(f"bench: FAILED: {error}", file=sys.stderr)
        return 1
    print()
    print(report["table"])
    path = write_results(report, args.smoke)
    print(f"\nwrote {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
