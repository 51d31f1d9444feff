"""CPU per request under load, with every target measured in the same minutes, round by round.

    .venv/bin/python bench/rounds.py                              # A, Ai, B, Bi, C, Ci; 4 rounds
    .venv/bin/python bench/rounds.py --shapes A --also "before=env PYTHONPATH=../old \\
        .venv/bin/python -P -m gateway serve --host 127.0.0.1 --port {port} --workers 1"

bench/run.py loads one target after another, each for one long block: on this machine the
same code measured 0.88 and 1.00 ms per request on A in two runs twenty minutes apart
(BENCHMARKS.md, round seven), as much as the differences asked of it. Here, as in
bench/latency.py, every target is started first (the stand-in on core 1, every target on
core 0, idle while another is loaded) and ``wrk`` (on core 1, with bench/run.py's 8
connections and ``--callers`` tokens) loads each target in turn for ``--seconds``, ``--rounds``
times, the order reversed every other round, after one unmeasured block each. A disturbance
of the machine then lands on every target, and the ratios are taken round by round.

For each shape and target: the median CPU per request over the rounds, with their spread,
and the upstream calls per request (exact, from the stand-in's access lines); then the
gateway's ratio to each other target, the median of the per-round ratios with their spread.
The raw figures go to ``bench/results/<timestamp>-rounds.json``. Nothing here judges them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import run as bench


def measure(
    targets: list[bench.Target],
    shape: bench.Shape,
    layout: bench.Layout,
    rounds: int,
    seconds: float,
    work: Path,
) -> dict[str, dict[str, Any]]:
    for target in targets:  # warm: connections, plans, the JIT of Node's targets
        bench.run_wrk(target, shape, layout, 2, work)
    cpu: dict[str, list[float]] = {t.name: [] for t in targets}
    calls: dict[str, list[float]] = {t.name: [] for t in targets}
    for index in range(rounds):
        for target in targets if index % 2 == 0 else targets[::-1]:
            measured = bench.load(target, shape, layout, seconds, work)
            cpu[target.name].append(1000 * measured["cpu_ms_per_request"])
            calls[target.name].append(measured.get("upstream_calls_per_request", float("nan")))
    return {
        name: {
            "cpu_us_per_request": statistics.median(values),
            "round_cpu_us": values,
            "upstream_calls_per_request": statistics.median(calls[name]),
        }
        for name, values in cpu.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/rounds.py", description=__doc__)
    bench.add_side_by_side_arguments(parser, shapes="A,Ai,B,Bi,C,Ci")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per block")
    parser.add_argument("--callers", type=int, default=64, help="as in bench/run.py")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "argv": sys.argv[1:]}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with contextlib.ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seat-rounds-")))
            layout, targets, shapes = bench.side_by_side(
                stack, args, work, connections=8, callers=args.callers
            )
            for shape in shapes:
                print(f"shape {shape.name}...", flush=True)
                results[shape.name] = measure(
                    targets, shape, layout, args.rounds, args.seconds, work
                )
    except bench.BenchError as error:
        print(f"rounds: FAILED: {error}", file=sys.stderr)
        return 1
    report["results"] = results
    print("\n| shape | target | CPU µs/req | rounds (min-max) | upstream calls/req |")
    print("|---|---|--:|--:|--:|")
    for shape_name, by_target in results.items():
        for name, row in by_target.items():
            spread = row["round_cpu_us"]
            print(
                f"| {shape_name} | {name} | {row['cpu_us_per_request']:,.0f} "
                f"| {min(spread):,.0f}-{max(spread):,.0f} "
                f"| {row['upstream_calls_per_request']:.2f} |"
            )
    if "gateway" in args.targets.split(","):
        print("\n| shape | gateway / target | median of the rounds' ratios | rounds (min-max) |")
        print("|---|---|--:|--:|")
        for shape_name, by_target in results.items():
            ours = by_target["gateway"]["round_cpu_us"]
            for name, row in by_target.items():
                if name == "gateway":
                    continue
                ratios = [a / b for a, b in zip(ours, row["round_cpu_us"], strict=True)]
                report.setdefault("ratios", {}).setdefault(shape_name, {})[name] = ratios
                print(
                    f"| {shape_name} | {name} | {statistics.median(ratios):.2f}x "
                    f"| {min(ratios):.2f}-{max(ratios):.2f} |"
                )
    bench.RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = bench.RESULTS_DIR / f"{stamp}-rounds.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(bench.REPO)}")
    return 0


if __name__ == "__main__":
    os.chdir(bench.REPO)
    sys.exit(main())
