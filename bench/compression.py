"""What compressing the gateway's answers costs and saves, per coding and level.

Run it from the repository root (the gateway's own dependencies only)::

    .venv/bin/python bench/compression.py                 # everything, about 2 minutes
    .venv/bin/python bench/compression.py --no-requests   # the per-body tables only
    .venv/bin/python bench/compression.py --library --no-requests  # ours vs starlette-compress

Three tables and a line, printed as markdown (see BENCHMARKS.md, "Compression"):

1. **Per answer**: the answers to shapes B and C (``bench/queries``), fetched once from a
   gateway over the embedded stand-in in this process, compressed at each level of each coding:
   CPU microseconds per compression (``time.process_time`` over repeated runs, the best of five
   batches), bytes and the share of the identity size. Each result is decompressed and compared
   with the original bytes.
2. **GraphiQL assets**: the three largest assets at the answer level and a few higher levels:
   CPU milliseconds for one compression (paid once per process: the result is kept) and bytes.
3. **Pass-through**: the middleware's own cost on an answer it leaves alone.
3b. **The library considered** (``--library``; ``pip install -e ".[bench]"`` brings it): CPU per
   request of the same ASGI app bare, behind ``ResponseCompression`` and behind
   ``starlette-compress``'s ``CompressMiddleware`` (at level 1 of each coding, as ours answers,
   and at its own defaults), for the B and C answers and each GraphiQL asset served by
   ``StaticFiles``, with the bytes each sends.
4. **Whole requests** (unless ``--no-requests``): ``gateway serve`` as a subprocess in front of
   the stand-in (``python -m gateway.standin``, another subprocess), once with compression on
   and once with ``GATEWAY_COMPRESSION=false``; the same query sent ``--requests`` times per
   ``Accept-Encoding`` in interleaved rounds over one keep-alive connection. CPU per request is
   the gateway process's utime+stime (``/proc/<pid>/stat``) divided by the requests; the
   bytes are what went over the wire.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import brotli
import uvicorn
import zstandard
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app import create_app
from gateway.config import Settings
from gateway.graphiql import ASSETS_DIR
from gateway.http.compression import CODINGS, ResponseCompression
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN

REPO = Path(__file__).resolve().parent.parent
QUERIES = REPO / "bench" / "queries"
SHAPES = ("B", "C")
LEVELS = {"gzip": (1, 3, 4, 6, 9), "br": (1, 3, 4, 5, 6), "zstd": (1, 3, 6, 9)}
ASSET_LEVELS = {"gzip": (6,), "br": (5, 9, 11), "zstd": (12, 19)}  # beside the defaults
ASSETS = ("graphiql.js", "graphiql.css", "graphql.worker.js")  # the largest three
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

COMPRESS: dict[str, Callable[[bytes, int], bytes]] = {c.name: c.compress for c in CODINGS}
DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompress(data),
}
ANSWER_LEVEL = {c.name: c.answer_level for c in CODINGS}
ASSET_LEVEL = {c.name: c.asset_level for c in CODINGS}


def request_body(shape: str) -> bytes:
    query = (QUERIES / f"{shape}.graphql").read_text()
    variables = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
    return json.dumps({"query": query, "variables": variables}).encode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def post(
    connection: http.client.HTTPConnection, body: bytes, accept_encoding: str
) -> tuple[int, bytes, dict[str, str]]:
    """One POST /graphql; the body exactly as sent (http.client decodes nothing)."""
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {DEMO_TOKEN}",
        "Accept-Encoding": accept_encoding,
    }
    connection.request("POST", "/graphql", body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    return response.status, data, {k.lower(): v for k, v in response.getheaders()}


def batch(
    port: int, body: bytes, accept_encoding: str, count: int
) -> tuple[int, bytes, dict[str, str]]:
    """``count`` requests on one fresh keep-alive connection (an idle one is closed by the
    server after 5 s); the last answer."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(count):
            answer = post(connection, body, accept_encoding)
        return answer
    finally:
        connection.close()


def identity_answers() -> dict[str, bytes]:
    """The B and C answers, from a gateway over the embedded stand-in in this process."""
    app = create_app(Settings(compression=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=30)
        answers = {}
        for shape in SHAPES:
            status, data, _ = post(connection, request_body(shape), "identity")
            assert status == 200 and b'"errors"' not in data, data[:300]
            answers[shape] = data
        return answers
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def cpu_microseconds(work: Callable[[], object], min_seconds: float = 0.1) -> float:
    """Process CPU per call of ``work``: the best of five batches of at least ``min_seconds``."""
    work()
    count = 1
    while True:  # a batch size that takes at least min_seconds
        began = time.process_time()
        for _ in range(count):
            work()
        if time.process_time() - began >= min_seconds:
            break
        count *= 2
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for _ in range(count):
            work()
        best = min(best, (time.process_time() - began) / count)
    return best * 1e6


def per_answer_table(answers: dict[str, bytes]) -> None:
    print("\n### Per answer: one compression of the shape's answer\n")
    print("| shape | coding | level | CPU µs | bytes | of identity |")
    print("|---|---|--:|--:|--:|--:|")
    for shape, data in answers.items():
        print(f"| {shape} | identity | - | 0 | {len(data):,} | 100.0 % |")
        for coding, levels in LEVELS.items():
            for level in levels:
                compressed = COMPRESS[coding](data, level)
                assert DECOMPRESS[coding](compressed) == data, (coding, level)
                micros = cpu_microseconds(
                    lambda c=coding, lv=level, d=data: COMPRESS[c](d, lv)  # type: ignore[misc]
                )
                chosen = " **(default)**" if level == ANSWER_LEVEL[coding] else ""
                share = 100 * len(compressed) / len(data)
                print(
                    f"| {shape} | {coding} | {level}{chosen} | {micros:,.0f} | "
                    f"{len(compressed):,} | {share:.1f} % |"
                )


def asset_table() -> None:
    print("\n### GraphiQL assets: one compression, kept afterwards\n")
    print("| asset | identity bytes | coding | level | CPU ms | bytes |")
    print("|---|--:|---|--:|--:|--:|")
    for name in ASSETS:
        data = (ASSETS_DIR / name).read_bytes()
        for coding in COMPRESS:
            for level in sorted({ANSWER_LEVEL[coding], ASSET_LEVEL[coding], *ASSET_LEVELS[coding]}):
                began = time.process_time()
                compressed = COMPRESS[coding](data, level)
                millis = (time.process_time() - began) * 1000
                assert DECOMPRESS[coding](compressed) == data, (name, coding, level)
                kind = {
                    ASSET_LEVEL[coding]: " **(asset default)**",
                    ANSWER_LEVEL[coding]: " (answer)",
                }
                print(
                    f"| {name} | {len(data):,} | {coding} | {level}{kind.get(level, '')} | "
                    f"{millis:,.1f} | {len(compressed):,} |"
                )


def pass_through_line() -> None:
    """What the middleware costs an answer it does not compress (identity accepted only)."""
    body = b"x" * 78_369

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", b"78369")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    def scope() -> Scope:
        headers = [(b"content-type", b"application/json"), (b"accept-encoding", b"identity")]
        return {"type": "http", "method": "POST", "path": "/graphql", "headers": headers}

    async def per_call(target: ASGIApp, count: int = 20_000) -> float:
        began = time.process_time()
        for _ in range(count):
            await target(scope(), receive, send)
        return (time.process_time() - began) / count * 1e6

    async def measure() -> tuple[float, float]:
        await per_call(app, 1000)
        return await per_call(app), await per_call(ResponseCompression(app))

    bare, wrapped = asyncio.run(measure())
    print(
        f"\nPass-through (identity accepted, 78 KB answer): {wrapped - bare:.1f} µs per request "
        "spent in the middleware."
    )


async def _never() -> Message:
    await asyncio.Event().wait()  # the client never leaves (FileResponse listens for it)
    raise AssertionError


async def _cpu_per_request(target: ASGIApp, scope: Scope) -> tuple[float, int]:
    """CPU µs per request of ``target`` (the best of five batches of about 0.1 s) and the
    bytes of body it sends."""
    sent = [0]

    async def send(message: Message) -> None:
        sent[0] += len(message.get("body", b""))

    await target(dict(scope), _never, send)
    body_bytes = sent[0]
    count = 1
    while True:
        began = time.process_time()
        for _ in range(count):
            await target(dict(scope), _never, send)
        if time.process_time() - began >= 0.1:
            break
        count *= 2
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for _ in range(count):
            await target(dict(scope), _never, send)
        best = min(best, (time.process_time() - began) / count)
    return best * 1e6, body_bytes


def library_table(answers: dict[str, bytes]) -> None:
    """Ours against starlette-compress, the maintained middleware for the same three codings."""
    from starlette.staticfiles import StaticFiles
    from starlette_compress import CompressMiddleware, add_compress_type

    add_compress_type("application/graphql-response+json")  # not among its types by default
    wrappers: dict[str, Callable[[ASGIApp], ASGIApp]] = {
        "bare": lambda app: app,
        "ours": lambda app: ResponseCompression(app, assets_path="/assets"),
        "starlette-compress 1": lambda app: CompressMiddleware(
            app, minimum_size=1024, zstd_level=1, brotli_quality=1, gzip_level=1
        ),
        "starlette-compress defaults": lambda app: CompressMiddleware(app, minimum_size=1024),
    }

    def answer_app(body: bytes) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return app

    def scope(path: str, accept: str) -> Scope:
        root = "/assets" if path.startswith("/assets/") else ""
        return {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": root,
            "query_string": b"",
            "headers": [(b"host", b"gateway"), (b"accept-encoding", accept.encode())],
            "server": ("gateway", 80),
        }

    rows: list[tuple[str, ASGIApp, str, str]] = [  # (what, app, path, Accept-Encoding)
        (f"{shape} answer", answer_app(body), "/graphql", accept)
        for shape, body in answers.items()
        for accept in ("identity", "zstd", "br", "gzip")
    ]
    files = StaticFiles(directory=ASSETS_DIR)
    for asset in sorted(path.name for path in ASSETS_DIR.iterdir()):
        for accept in ("gzip, deflate, br, zstd", "gzip, deflate, br"):  # Chrome's, Safari's
            rows.append((asset, files, f"/assets/{asset}", accept))

    async def measure() -> None:
        print("\n### The library considered: CPU µs per request (bytes sent)\n")
        print("| what | Accept-Encoding | " + " | ".join(wrappers) + " |")
        print("|---|---|" + "--:|" * len(wrappers))
        for what, app, path, accept in rows:
            cells = []
            for wrap in wrappers.values():
                micros, sent = await _cpu_per_request(wrap(app), scope(path, accept))
                cells.append(f"{micros:,.1f} ({sent:,})")
            print(f"| {what} | {accept} | " + " | ".join(cells) + " |", flush=True)

    asyncio.run(measure())


def process_cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


@contextlib.contextmanager
def started(command: list[str], env: dict[str, str], port: int) -> Iterator[int]:
    """Run ``command`` until the block ends, once something listens on ``port``; yield its pid."""
    process = subprocess.Popen(  # noqa: S603 - our own command lines
        command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise SystemExit(f"{command[0]} exited with {process.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"{command} did not start")
            time.sleep(0.1)
        yield process.pid
    finally:
        process.terminate()
        process.wait(20)


def whole_request_table(requests: int, rounds: int) -> None:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "GATEWAY_"))
    }
    standin_port, on_port, off_port = free_port(), free_port(), free_port()
    standin = [sys.executable, "-m", "gateway.standin", "--port", str(standin_port)]
    upstream = {**environment, "METRONOME_BASE_URL": f"http://127.0.0.1:{standin_port}"}
    gateway = [sys.executable, "-m", "gateway", "serve", "--port"]
    rows: list[tuple[str, str, str]] = [  # (label, which gateway, Accept-Encoding)
        ("compression off", "off", "zstd, br, gzip"),
        ("compression on, identity", "on", "identity"),
        ("gzip", "on", "gzip"),
        ("br", "on", "br"),
        ("zstd", "on", "zstd"),
    ]
    with (
        started(standin, environment, standin_port),
        started([*gateway, str(on_port)], upstream, on_port) as on_pid,
        started(
            [*gateway, str(off_port)], {**upstream, "GATEWAY_COMPRESSION": "false"}, off_port
        ) as off_pid,
    ):
        pids = {"on": on_pid, "off": off_pid}
        ports = {"on": on_port, "off": off_port}
        print(
            f"\n### Whole requests: gateway CPU per request, {requests * rounds} requests per row\n"
        )
        print("| shape | Accept-Encoding | coding sent | bytes sent | gateway CPU ms/req |")
        print("|---|---|---|--:|--:|")
        for shape in SHAPES:
            body = request_body(shape)
            cpu = dict.fromkeys(range(len(rows)), 0.0)
            sent: dict[int, tuple[str, int]] = {}
            for index, (_, which, accept) in enumerate(rows):  # warm-up
                status, data, headers = batch(ports[which], body, accept, 50)
                assert status == 200, data[:300]
                sent[index] = (headers.get("content-encoding", "identity"), len(data))
            for _ in range(rounds):  # interleaved, so that drift hits every row alike
                for index, (_, which, accept) in enumerate(rows):
                    before = process_cpu_seconds(pids[which])
                    batch(ports[which], body, accept, requests)
                    cpu[index] += process_cpu_seconds(pids[which]) - before
            for index, (label, _, _) in enumerate(rows):
                coding, size = sent[index]
                per_request = cpu[index] * 1000 / (requests * rounds)
                print(
                    f"| {shape} | {label} | {coding} | {size:,} | {per_request:.2f} |", flush=True
                )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="requests per row and round")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds")
    parser.add_argument("--no-requests", action="store_true", help="skip the whole-request table")
    parser.add_argument(
        "--library", action="store_true", help="also ours against starlette-compress"
    )
    args = parser.parse_args()
    answers = identity_answers()
    per_answer_table(answers)
    asset_table()
    pass_through_line()
    if args.library:
        library_table(answers)
    if not args.no_requests:
        whole_request_table(args.requests, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
