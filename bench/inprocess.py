"""The gateway's own CPU per request, in process: the whole ASGI stack (access log, compression,
guard, FastAPI, Strawberry's view, the schema, the loaders, the upstream client) over canned
billing-API pages, without uvicorn and without a socket.

    .venv/bin/python bench/inprocess.py                 # shapes A, B, C; 2,000 requests each
    .venv/bin/python bench/inprocess.py --shapes A --profile 20   # cProfile, top 20 by own time
    .venv/bin/python bench/inprocess.py --accept-encoding zstd    # answers compressed (zstd)

The pages are the embedded stand-in's own answers, fetched once and replayed by an
``httpx.MockTransport``, so the figure is the gateway's work alone (what ``bench/run.py``
measures under load adds uvicorn's HTTP parsing and the real upstream socket). The garbage
collector is tuned as ``gateway serve`` tunes it (``BENCH_GC_DEFAULTS=1``: CPython's defaults). A development
aid for quick before/after comparisons; ``bench/run.py`` gives the figures that count.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from gateway.app import create_app
from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app

BENCH = Path(__file__).resolve().parent


def canned_transport() -> httpx.MockTransport:
    """Replays the stand-in's answer to each distinct request (fetched once, then kept)."""
    standin = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_standin_app()), base_url="http://standin"
    )
    answers: dict[tuple[str, bytes, bytes], tuple[int, bytes, str]] = {}

    async def handler(request: httpx.Request) -> httpx.Response:
        # The query string too: the credit type listing's pages differ only by `next_page`.
        key = (request.url.path, request.url.query, request.content)
        if key not in answers:
            real = await standin.request(
                request.method,
                request.url.path,
                content=request.content,
                headers={"Authorization": request.headers["authorization"]},
                params=request.url.params,
            )
            answers[key] = (real.status_code, real.content, real.headers["content-type"])
        status, content, content_type = answers[key]
        return httpx.Response(status, content=content, headers={"content-type": content_type})

    return httpx.MockTransport(handler)


async def drive(
    app: Any, body: bytes, count: int, accept_encoding: str = "identity"
) -> tuple[float, bytes]:
    """Sends ``body`` ``count`` times; returns CPU seconds per request and the last answer
    (as sent: compressed when ``accept_encoding`` asks for it)."""
    headers = [
        (b"host", b"127.0.0.1"),
        (b"content-type", b"application/json"),
        (b"accept", b"application/json"),
        (b"accept-encoding", accept_encoding.encode()),
        (b"authorization", f"Bearer {DEMO_TOKEN}".encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    answer = bytearray()
    delivered = False
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        # The body once, then nothing until the client leaves (it never does here), as a
        # server does: the guard listens for a disconnect while the request runs.
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await never.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            answer.extend(message.get("body", b""))

    started = time.process_time()
    for _ in range(count):
        answer.clear()
        delivered = False
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/graphql",
            "raw_path": b"/graphql",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await app(scope, receive, send)
    return (time.process_time() - started) / count, bytes(answer)


GC_SECONDS = [0.0, 0.0]
GC_COUNTS = [0, 0, 0]


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        GC_SECONDS[1] = time.process_time()
    else:
        GC_SECONDS[0] += time.process_time() - GC_SECONDS[1]
        GC_COUNTS[info["generation"]] += 1


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default="A,B,C")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--profile", type=int, default=0, help="print the top N functions")
    parser.add_argument(
        "--frameworks",
        action="store_true",
        help="the frameworks' floor (bench/frameworks.py) instead of the gateway",
    )
    parser.add_argument(
        "--typename",
        action="store_true",
        help="also `{ __typename }`: the pipeline's fixed cost, no upstream call",
    )
    parser.add_argument(
        "--accept-encoding",
        default="identity",
        help="the requests' Accept-Encoding (default identity: answers uncompressed)",
    )
    args = parser.parse_args()
    logging.getLogger("gateway").addHandler(logging.NullHandler())
    logging.getLogger("gateway").propagate = False
    if args.frameworks:
        sys.path.insert(0, str(BENCH))
        import frameworks  # type: ignore[import-not-found]

        app = frameworks.create_app("http://billing.invalid", transport=canned_transport())
    else:
        settings = Settings(metronome_base_url="http://billing.invalid")
        app = create_app(settings, transport=canned_transport())
    async with LifespanManager(app) as manager:  # type: ignore[arg-type]
        shapes = args.shapes.split(",") + (["__typename"] if args.typename else [])
        for shape in shapes:
            query = (
                "{ __typename }"
                if shape == "__typename"
                else (BENCH / "queries" / f"{shape}.graphql").read_text()
            )
            body = json.dumps(
                {
                    "query": query,
                    "variables": {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID},
                }
            ).encode()
            _, answer = await drive(manager.app, body, 1)
            encoding = args.accept_encoding
            _, compressed = await drive(manager.app, body, 200, encoding)  # warm: pages, plans
            if not os.environ.get("BENCH_GC_DEFAULTS"):
                from gateway.cli import tune_garbage_collector

                tune_garbage_collector()  # as `gateway serve` does
            if b'"errors"' in answer:
                sys.exit(f"shape {shape}: {answer[:300]!r}")
            if os.environ.get("BENCH_GC_GARBAGE"):
                gc.collect()
                gc.set_debug(gc.DEBUG_SAVEALL)
                await drive(manager.app, body, 10)
                gc.collect()
                from collections import Counter

                kinds = Counter(type(o).__qualname__ for o in gc.garbage)
                print(
                    f"  cyclic garbage of 10 requests: {sum(kinds.values())}", kinds.most_common(25)
                )
                gc.set_debug(0)
                gc.garbage.clear()
            if args.profile:
                profile = cProfile.Profile()
                profile.enable()
            GC_SECONDS[0] = 0.0
            GC_COUNTS[:] = [0, 0, 0]
            gc.callbacks.append(_gc_timer)
            # The best of five batches: the least disturbed by the rest of the machine.
            seconds = min(
                [(await drive(manager.app, body, args.count // 5, encoding))[0] for _ in range(5)]
            )
            gc.callbacks.remove(_gc_timer)
            print(
                f"  garbage collection: {GC_SECONDS[0] / args.count * 1e6:,.0f} us per request,"
                f" collections by generation {GC_COUNTS}"
            )
            if args.profile:
                profile.disable()
                profile.dump_stats(Path(tempfile.gettempdir()) / f"inprocess-{shape}.prof")
                pstats.Stats(profile).sort_stats("tottime").print_stats(args.profile)
            print(
                f"shape {shape}: {seconds * 1e6:,.0f} us CPU per request ({len(compressed):,} bytes)"
            )


if __name__ == "__main__":
    asyncio.run(main())
