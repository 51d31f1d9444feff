"""Where the gateway's CPU goes under load: py-spy on the gateway while wrk drives one shape.

    .venv/bin/pip install py-spy          # once; not a project dependency
    .venv/bin/python bench/hotspots.py    # shape C, 10 s of samples, top 15 by own time

Same set-up as bench/run.py (stand-in on core 1, gateway on core 0, wrk with 8 connections on
core 1, the requests of 64 callers in turn). py-spy samples the gateway process at 100 Hz (the
process is paused for each sample, so the throughput while profiling is a little lower than in
bench/run.py) and writes its collapsed
stacks (``--format raw``, one line per distinct stack with its sample count). This script then
ranks functions by own time (samples where the function is the innermost frame) and prints that
table, with the inclusive time next to it, then the CPU per request by layer. The raw file is
kept in bench/results/.

    .venv/bin/python bench/hotspots.py --shape A --target frameworks   # the frameworks' floor
    .venv/bin/python bench/hotspots.py --shape A --inclusive BillingClient._attempt \
        --inclusive 'estimate .gateway/schema/work'    # us per request under these frames

``--target frameworks`` samples the frameworks' floor (bench/frameworks.py) under the same load,
for a side-by-side of the layers (BENCHMARKS.md, round eight). ``--inclusive REGEX`` adds the
CPU per request of the samples with a frame matching REGEX (each sample counted once).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import run as bench

PY_SPY = Path(sys.executable).parent / "py-spy"


def record(pid: int, seconds: int, out: Path) -> None:
    """``py-spy record`` of ``pid`` for ``seconds`` into ``out`` (collapsed stacks)."""
    command = [str(PY_SPY if PY_SPY.exists() else shutil.which("py-spy") or "py-spy")]
    command += ["record", "--pid", str(pid), "--duration", str(seconds), "--rate", "100"]
    command += ["--format", "raw", "--function", "--output", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if finished.returncode != 0 or not out.exists():
        raise bench.BenchError(f"py-spy failed: {finished.stderr.strip()[-500:]}")


def hot_spots(raw: Path, top: int) -> tuple[int, list[tuple[str, int, int]]]:
    """(total samples, [(function, own samples, inclusive samples)]) from collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    return total, [(name, samples, inclusive[name]) for name, samples in own.most_common(top)]


def by_package(raw: Path) -> tuple[int, list[tuple[str, int]]]:
    """Own time per package (``graphql``, ``strawberry``, ``gateway``, ``json``...)."""
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        total += int(count_text)
        own[_package(_short(stack.split(";")[-1]))] += int(count_text)
    return total, own.most_common()


# Where a sample's time goes, by layer: the innermost frame that is not generic (asyncio,
# contextlib, typing...) decides, so that e.g. a dataloader's task bookkeeping counts as the
# loaders'. The first matching rule wins; a stack of generic frames only is the event loop.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("upstream page validation (pydantic-core)", ("pydantic/", "pydantic_core/")),
    (
        "upstream call (gateway client, httpx, httpx-aiohttp, aiohttp)",
        (
            *("gateway/upstream/", "httpx/", "httpx_aiohttp/", "aiohttp/", "multidict/"),
            *("yarl/", "netrc.py", "urllib/", "concurrent/"),
        ),
    ),
    (
        "loaders (gateway, aiodataloader)",
        ("gateway/loaders/__init__.py", "gateway/loaders/details.py", "aiodataloader"),
    ),
    (
        "projection executor (execution.py, fields.py, types, connection)",
        (
            "gateway/schema/execution.py",
            "gateway/schema/fields.py",
            "gateway/schema/types.py",
            "gateway/schema/connection.py",
            "gateway/schema/ids.py",
        ),
    ),
    ("parse (graphql-core)", ("graphql/language/",)),
    ("validation (graphql-core)", ("graphql/validation/",)),
    ("graphql-core execution (field collection, completion)", ("graphql/",)),
    (
        "Strawberry schema pipeline and the gateway's extensions (limits, documents, errors)",
        (
            "strawberry/schema/",
            "strawberry/extensions/",
            "strawberry/types/",
            "strawberry/",
            "gateway/schema/",
        ),
    ),
    (
        "Strawberry view, request context (view.py, context.py)",
        ("gateway/http/view.py", "gateway/http/context.py", "cross_web/", "email/"),
    ),
    (
        "access log, metrics, tracing",
        (
            "gateway/http/observability.py",
            "logging/",
            "prometheus_client/",
            "opentelemetry/",
            "json/",
        ),
    ),
    ("compression layer", ("gateway/http/compression.py",)),
    (
        "request guard, auth, Starlette/FastAPI routing",
        ("gateway/http/guard.py", "gateway/http/auth.py", "starlette/", "fastapi/"),
    ),
    ("event loop (uvloop, asyncio) and native code", ("uvicorn/server.py", "uvicorn/main.py")),
    ("uvicorn (HTTP protocol)", ("uvicorn/",)),
    ("access log, metrics, tracing", ("trace/", "context/", "_decorator.py", "uuid.py")),
]
GENERIC = (
    "asyncio/",
    "contextlib.py",
    "typing.py",
    "abc.py",
    "functools.py",
    "enum.py",
    "dataclasses.py",
    "<",
    "contextvars",
    "weakref.py",
    "inspect.py",
    "copy.py",
    "typing_extensions.py",
    "_weakrefset.py",
)


# A thread pool's worker waiting for work: py-spy samples it, but it uses no CPU.
IDLE_WORKER = "_worker (concurrent/futures/thread.py:"


def by_layer(raw: Path) -> tuple[int, list[tuple[str, int]]]:
    """Samples per layer (``LAYERS``), decided by each stack's innermost non-generic frame;
    idle thread-pool workers are left out (of the total too)."""
    counts: Counter[str] = Counter()
    total = 0
    for frames, count in _busy_stacks(raw):
        total += count
        counts[_layer(frames)] += count
    return total, counts.most_common()


def _busy_stacks(raw: Path) -> Iterator[tuple[list[str], int]]:
    """Each stack's frames (shortened) and its samples, idle thread-pool workers left out."""
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = [_short(frame) for frame in stack.split(";")]
        if not frames[-1].startswith(IDLE_WORKER):
            yield frames, int(count_text)


def _layer(frames: list[str]) -> str:
    for frame in reversed(frames):
        where = frame.rpartition("(")[2]
        if where.startswith(GENERIC):
            continue
        for name, prefixes in LAYERS:
            if where.startswith(prefixes):
                return name
        return f"other ({_package(frame)})"
    return "event loop (uvloop, asyncio) and native code"


def _package(frame: str) -> str:
    """``fn (pkg/mod.py:12)`` -> ``pkg``; frames without a file (``<string>``) -> ``<generated>``."""
    where = frame.rpartition("(")[2].rstrip(")")
    if where.startswith("<"):
        return "<generated>"
    top = where.split("/", 1)[0]
    return top.split(":")[0].removesuffix(".py")


def _short(frame: str) -> str:
    """``fn (/long/path/site-packages/pkg/mod.py:12)`` -> ``fn (pkg/mod.py:12)``."""
    for marker in ("site-packages/", "/lib/python3.11/", str(bench.REPO) + "/"):
        if marker in frame:
            head, _, rest = frame.partition("(")
            return f"{head}({rest.split(marker, 1)[1]}"
    if "/gateway/" in frame:  # the gateway's modules from another checkout (--gateway-cmd)
        head, _, rest = frame.partition("(")
        return f"{head}(gateway/{rest.rsplit('/gateway/', 1)[1]}"
    return frame


def table(total: int, rows: list[tuple[str, int, int]]) -> str:
    lines = ["| # | function (file:line) | own % | total % |", "|--:|---|--:|--:|"]
    for rank, (name, samples, inclusive) in enumerate(rows, 1):
        cell = name.replace("|", "\\|")
        lines.append(
            f"| {rank} | `{cell}` | {100 * samples / total:.1f} | {100 * inclusive / total:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/hotspots.py", description=__doc__)
    parser.add_argument("--shape", default="C", choices=sorted(bench.SHAPES))
    parser.add_argument("--seconds", type=int, default=10, help="seconds of samples")
    parser.add_argument("--top", type=int, default=15)
    parser.add_argument(
        "--callers", type=int, default=64, help="as in bench/run.py (1: concurrent calls shared)"
    )
    parser.add_argument("--gateway-cmd", help="as in bench/run.py")
    parser.add_argument(
        "--target",
        default="gateway",
        choices=["gateway", "frameworks"],
        help="the process to sample: the gateway, or the frameworks' floor",
    )
    parser.add_argument(
        "--frameworks-args", default="", help="as in bench/run.py (with --target frameworks)"
    )
    parser.add_argument(
        "--inclusive",
        action="append",
        default=[],
        metavar="REGEX",
        help="also the CPU per request of the samples with a frame matching REGEX",
    )
    args = parser.parse_args(argv)
    try:
        raw, total, rows, rps, cpu_us = sample_under_load(args)
    except bench.BenchError as error:
        print(f"hotspots: FAILED: {error}", file=sys.stderr)
        return 1
    print(
        f"\n{total} samples of the {args.target} under shape {args.shape} ({rps:.0f} req/s, "
        f"{cpu_us:.0f} us of CPU per request):\n"
    )
    print(table(total, rows))
    print("\nOwn time by package:\n")
    print("| package | own % |\n|---|--:|")
    for package, samples in by_package(raw)[1]:
        print(f"| `{package}` | {100 * samples / total:.1f} |")
    if cpu_us:
        print(
            f"\nWhere the {cpu_us:.0f} us of CPU per request go (by layer; CPU per request "
            "measured over the sampled load, from /proc):\n"
        )
    print("| layer | share % | us per request |\n|---|--:|--:|")
    busy, layers = by_layer(raw)
    for layer, samples in layers:
        share = samples / busy
        print(f"| {layer} | {100 * share:.1f} | {share * cpu_us:.0f} |")
    if args.inclusive:
        print("\n| frames matching | us per request |\n|---|--:|")
        for pattern, samples in inclusive(raw, args.inclusive):
            print(f"| `{pattern}` | {samples / busy * cpu_us:.1f} |")
    print(f"\nraw stacks: {raw.relative_to(bench.REPO)}")
    return 0


def inclusive(raw: Path, patterns: list[str]) -> list[tuple[str, int]]:
    """For each pattern, the samples (idle workers left out) with a frame matching it."""
    compiled = [re.compile(pattern) for pattern in patterns]
    counts = [0] * len(patterns)
    for frames, count in _busy_stacks(raw):
        for index, pattern in enumerate(compiled):
            if any(pattern.search(frame) for frame in frames):
                counts[index] += count
    return list(zip(patterns, counts, strict=True))


def sample_under_load(
    args: argparse.Namespace,
) -> tuple[Path, int, list[tuple[str, int, int]], float, float]:
    shape = bench.SHAPES[args.shape]
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seat-hotspots-")))
        upstream, layout, direct = bench.standin_and_direct(
            stack, work, shape, connections=8, callers=args.callers
        )
        args.shapes = [shape.name]
        gateway = bench.start_target(args.target, stack, args, upstream, direct, layout, work)
        bench.check_answer(gateway, shape, layout, None)
        bench.run_wrk(gateway, shape, layout, 5, work)  # warm-up
        bench.RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        raw = bench.RESULTS_DIR / f"{stamp}-py-spy-{shape.name}.txt"
        # Load a little longer than the sampling so that every sample sees the gateway busy.
        loaded: dict[str, float] = {}
        loader = threading.Thread(
            target=lambda: loaded.update(
                requests=bench.run_wrk(gateway, shape, layout, args.seconds + 3, work)["requests"]
            )
        )
        cpu_before = bench.cpu_seconds(gateway.pid)
        loader.start()
        record(gateway.pid, args.seconds, raw)
        loader.join()
        cpu_s = bench.cpu_seconds(gateway.pid) - cpu_before
        requests = loaded.get("requests", 0.0)
    total, rows = hot_spots(raw, args.top)
    if total == 0:
        raise bench.BenchError("py-spy recorded no sample")
    rps = requests / (args.seconds + 3)
    return raw, total, rows, rps, 1e6 * cpu_s / requests if requests else 0.0


if __name__ == "__main__":
    os.chdir(bench.REPO)
    sys.exit(main())
