"""Added latency, one request at a time, with every target measured in the same minutes.

    .venv/bin/python bench/latency.py                            # A, Ai, B, C; 12 rounds
    .venv/bin/python bench/latency.py --shapes A --also "before=env PYTHONPATH=../old \\
        .venv/bin/python -P -m gateway serve --host 127.0.0.1 --port {port} --workers 1"

bench/run.py measures each target's sequential requests right after its own load, one target
after another: its medians moved by 0.3-0.5 ms between runs of the same code (BENCHMARKS.md,
round six), more than the differences it was asked to show. Here every target is started
first (the stand-in on core 1, every target on core 0, idle while another is measured), and
the client (on core 1, where wrk runs in bench/run.py) sends blocks of ``--block`` requests
to each target in turn, ``--rounds`` times, the order reversed every other round. Every
target thus sees the same machine, and a disturbance lands on all of them.

For each shape and target: the median of all its requests, its 10th and 90th percentiles, the
spread of its per-round medians, the median minus the direct call's ("added"), and the
target's CPU per request one request at a time (its process tree's, from ``/proc``; for the
direct call, the stand-in's). The raw
figures go to ``bench/results/<timestamp>-latency.json``. Nothing here judges the numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

import run as bench


def measure(
    targets: list[bench.Target],
    shape: bench.Shape,
    layout: bench.Layout,
    rounds: int,
    block: int,
) -> dict[str, dict[str, Any]]:
    clients = {t.name: httpx.Client(timeout=30.0, headers=layout.headers()) for t in targets}
    timings: dict[str, list[float]] = {t.name: [] for t in targets}
    medians: dict[str, list[float]] = {t.name: [] for t in targets}
    cpu: dict[str, float] = {t.name: 0.0 for t in targets}
    try:
        for target in targets:  # warm: connections, plans, the JIT of Node's targets
            for _ in range(200):
                clients[target.name].post(target.url, content=target.bodies[shape.name])
        for index in range(rounds):
            for target in targets if index % 2 == 0 else targets[::-1]:
                client, body = clients[target.name], target.bodies[shape.name]
                these: list[float] = []
                cpu_before = bench.cpu_seconds(target.pid)
                for _ in range(block):
                    began = time.perf_counter()
                    response = client.post(target.url, content=body)
                    these.append(1e6 * (time.perf_counter() - began))
                    if response.status_code != 200:
                        raise bench.BenchError(f"{target.name} {shape.name}: {response.text[:300]}")
                cpu[target.name] += bench.cpu_seconds(target.pid) - cpu_before
                timings[target.name] += these
                medians[target.name].append(statistics.median(these))
    finally:
        for client in clients.values():
            client.close()
    return {
        name: {
            "median_us": statistics.median(values),
            "p10_us": bench.percentile(values, 0.1),
            "p90_us": bench.percentile(values, 0.9),
            "round_medians_us": medians[name],
            "cpu_us_per_request": 1e6 * cpu[name] / len(values),
        }
        for name, values in timings.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/latency.py", description=__doc__)
    bench.add_side_by_side_arguments(parser, shapes="A,Ai,B,C")
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--block", type=int, default=200, help="requests per target per round")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"started": datetime.now(UTC).isoformat(), "argv": sys.argv[1:]}
    results: dict[str, dict[str, dict[str, Any]]] = {}
    try:
        with contextlib.ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="seat-latency-")))
            layout, targets, shapes = bench.side_by_side(
                stack, args, work, connections=1, direct=True
            )
            with bench.on_core(layout.upstream_cpu):
                for shape in shapes:
                    print(f"shape {shape.name}...", flush=True)
                    results[shape.name] = measure(targets, shape, layout, args.rounds, args.block)
    except bench.BenchError as error:
        print(f"latency: FAILED: {error}", file=sys.stderr)
        return 1
    report["results"] = results
    print(
        "\n| shape | target | median µs | p10-p90 µs | round medians µs (min-max) | added µs "
        "| CPU µs/req |\n|---|---|--:|--:|--:|--:|--:|"
    )
    for shape_name, by_target in results.items():
        base = by_target["direct"]["median_us"]
        for name, row in by_target.items():
            rounds = row["round_medians_us"]
            added = "-" if name == "direct" else f"{row['median_us'] - base:.0f}"
            print(
                f"| {shape_name} | {name} | {row['median_us']:.0f} | "
                f"{row['p10_us']:.0f}-{row['p90_us']:.0f} | {min(rounds):.0f}-{max(rounds):.0f} | "
                f"{added} | {row['cpu_us_per_request']:.0f} |"
            )
    bench.RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = bench.RESULTS_DIR / f"{stamp}-latency.json"
    path.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {path.relative_to(bench.REPO)}")
    return 0


if __name__ == "__main__":
    os.chdir(bench.REPO)
    sys.exit(main())
