"""Runs `gateway` (its arguments after this file's) and prints each garbage collection that
takes longer than 10 ms to stderr: a long full collection stalls every request the way a
blocking call does (bench/live_fanout.py --gc-pauses).

    .venv/bin/python bench/gc_pauses.py serve --port 8000
"""

from __future__ import annotations

import gc
import runpy
import sys
import time
from typing import Any

_started: list[float] = [0.0]


def _timed(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    took = time.perf_counter() - _started[0]
    if took > 0.01:
        print(
            f"gc: generation {info['generation']} took {took * 1000:.0f} ms "
            f"({info['collected']} collected)",
            file=sys.stderr,
            flush=True,
        )


if __name__ == "__main__":
    gc.callbacks.append(_timed)
    sys.argv = ["gateway", *sys.argv[1:]]
    runpy.run_module("gateway", run_name="__main__")
