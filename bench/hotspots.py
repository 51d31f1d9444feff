"""Where the gateway's CPU goes under load: py-spy on the gateway while wrk drives one shape.

    .venv/bin/pip install py-spy          # once; not a project dependency
    .venv/bin/python bench/hotspots.py    # shape C, 10 s of samples, top 15 by own time

Same set-up as bench/run.py (stand-in on core 1, gateway on core 0, wrk with 8 connections on
core 1). py-spy samples the gateway process at 100 Hz (the process is paused for each sample, so
the throughput while profiling is a little lower than in bench/run.py) and writes its collapsed
stacks (``--format raw``, one line per distinct stack with its sample count). This script then
ranks functions by own time (samples where the function is the innermost frame) and prints that
table, with the inclusive time next to it. The raw file is kept in bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
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
    parser.add_argument("--gateway-cmd", help="as in bench/run.py")
    args = parser.parse_args(argv)
    try:
        raw, total, rows, rps = sample_under_load(args)
    except bench.BenchError as error:
        print(f"hotspots: FAILED: {error}", file=sys.stderr)
        return 1
    print(f"\n{total} samples of the gateway under shape {args.shape} ({rps:.0f} req/s):\n")
    print(table(total, rows))
    print("\nOwn time by package:\n")
    print("| package | own % |\n|---|--:|")
    for package, samples in by_package(raw)[1]:
        print(f"| `{package}` | {100 * samples / total:.1f} |")
    print(f"\nraw stacks: {raw.relative_to(bench.REPO)}")
    return 0


def sample_under_load(
    args: argparse.Namespace,
) -> tuple[Path, int, list[tuple[str, int, int]], float]:
    shape = bench.SHAPES[args.shape]
    target_cpu, upstream_cpu = 0, 1
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seat-hotspots-")))
        upstream, standin = bench.start_upstream(stack, upstream_cpu, work)
        layout = bench.Layout(
            target_cpu=target_cpu,
            upstream_cpu=upstream_cpu,
            connections=8,
            token=bench.DEMO_TOKEN,
            customer_id=bench.DEMO_CUSTOMER_ID,
            contract_id=bench.DEMO_CONTRACT_ID,
            upstream_pid=standin.pid if standin else None,
        )
        direct = bench.direct_target(upstream, standin, layout)
        bench.wait_ready(standin, direct.url, direct.bodies[shape.name], layout.headers())
        args.shapes = [shape.name]
        gateway = bench.start_target("gateway", stack, args, upstream, direct, layout, work)
        bench.check_answer(gateway, shape, layout, None)
        bench.run_wrk(gateway, shape, layout, 5, work)  # warm-up
        bench.RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        raw = bench.RESULTS_DIR / f"{stamp}-py-spy-{shape.name}.txt"
        # Load a little longer than the sampling so that every sample sees the gateway busy.
        loaded: dict[str, float] = {}
        loader = threading.Thread(
            target=lambda: loaded.update(
                rps=bench.run_wrk(gateway, shape, layout, args.seconds + 3, work)["requests"]
                / (args.seconds + 3)
            )
        )
        loader.start()
        record(gateway.pid, args.seconds, raw)
        loader.join()
    total, rows = hot_spots(raw, args.top)
    if total == 0:
        raise bench.BenchError("py-spy recorded no sample")
    return raw, total, rows, loaded.get("rps", 0.0)


if __name__ == "__main__":
    os.chdir(bench.REPO)
    sys.exit(main())
