"""Real parts for the tests: uvicorn servers on 127.0.0.1 and a transport that records calls.

Test conventions (decided once): every test that talks GraphQL goes over real HTTP to a real
uvicorn server on 127.0.0.1, with an ``httpx.Client``; Starlette's ``TestClient`` is not used.
The upstream is the embedded stand-in, itself served by uvicorn, so both hops are real HTTP.
Faults the stand-in cannot produce come from an ``httpx.MockTransport`` given to ``create_app``.
Upstream calls are counted by :class:`RecordingTransport`, which sees every request the
gateway's client sends, whatever transport is underneath.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from graphql import InterfaceTypeDefinitionNode, ObjectTypeDefinitionNode, parse

from gateway.app import create_app
from gateway.config import Settings
from gateway.http.guard import GatewayHttpProtocol
from gateway.standin import DEMO_TOKEN
from gateway.upstream.transport import billing_transport

ROOT = Path(__file__).resolve().parent.parent

# The gateway's own defaults, for the parts a test builds by hand (gateway/config.py has them).
DEFAULT_SETTINGS = Settings.model_construct()
DEFAULT_LIMITS = DEFAULT_SETTINGS.query_limits()
DEFAULT_POLICY = DEFAULT_SETTINGS.retry_policy()
BUDGET = DEFAULT_SETTINGS.max_upstream_calls


@dataclass
class UpstreamCall:
    path: str
    body: dict[str, Any]
    authorization: str | None
    traceparent: str | None = None
    headers: dict[str, str] = field(default_factory=dict)  # every header, names lower-case
    params: dict[str, str] = field(default_factory=dict)  # the query string (GET calls)


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests on to ``inner`` and keeps what each one asked for."""

    inner: httpx.AsyncBaseTransport
    calls: list[UpstreamCall] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else {}
        self.calls.append(
            UpstreamCall(
                request.url.path,
                body,
                request.headers.get("authorization"),
                request.headers.get("traceparent"),
                dict(request.headers),
                dict(request.url.params),
            )
        )
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def bodies(self) -> list[dict[str, Any]]:
        return [call.body for call in self.calls]


@contextmanager
def serve(app: Any, *, http: Any = GatewayHttpProtocol) -> Iterator[str]:
    """Run ``app`` on a fresh 127.0.0.1 port in a thread, with the HTTP protocol `gateway
    serve` uses (or ``http``, e.g. uvicorn's own ``"httptools"``); yield its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # Without uvicorn's X-Forwarded-For rewriting, as `gateway serve` runs (the gateway decides
    # which proxies it trusts: GATEWAY_TRUSTED_PROXIES).
    config = uvicorn.Config(
        app,
        log_level="warning",
        ws="websockets-sansio",
        lifespan="on",
        http=http,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def authenticated_marks(sdl: str) -> set[str]:
    """Which types (``Seat``) and fields (``Query.node``) of ``sdl`` carry ``@authenticated``."""
    marked = set()

    def applies(node: Any) -> bool:
        return any(d.name.value == "authenticated" for d in node.directives or ())

    for definition in parse(sdl).definitions:
        if isinstance(definition, ObjectTypeDefinitionNode | InterfaceTypeDefinitionNode):
            name = definition.name.value
            marked |= {name} if applies(definition) else set()
            marked |= {f"{name}.{f.name.value}" for f in definition.fields or () if applies(f)}
    return marked


class GraphQLErrors(AssertionError):
    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(json.dumps(errors, indent=2))
        self.errors = errors


@dataclass
class Gateway:
    """A running gateway and the upstream calls it made."""

    url: str
    upstream: RecordingTransport
    http: httpx.Client

    @property
    def calls(self) -> list[UpstreamCall]:
        return self.upstream.calls

    def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = DEMO_TOKEN,
        operation_name: str | None = None,
    ) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload: dict[str, Any] = {"query": query}
        if variables is not None:
            payload["variables"] = variables
        if operation_name is not None:
            payload["operationName"] = operation_name
        return self.http.post(f"{self.url}/graphql", json=payload, headers=headers)

    def query(
        self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """The ``data`` of a query that must succeed; raises with the errors otherwise."""
        response = self.post(query, variables, **kwargs)
        payload = response.json()
        if payload.get("errors"):
            raise GraphQLErrors(payload["errors"])
        assert response.status_code == 200, response.text
        return payload["data"]  # type: ignore[no-any-return]

    def errors(
        self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """The errors of a query that must fail."""
        payload = self.post(query, variables, **kwargs).json()
        assert payload.get("errors"), f"expected errors, got {payload}"
        return payload["errors"]  # type: ignore[no-any-return]


@dataclass
class SleepRecorder:
    """Stands in for ``asyncio.sleep`` between retries: keeps the waits, waits for none."""

    waits: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@contextmanager
def running_gateway(
    settings: Settings,
    inner: httpx.AsyncBaseTransport | None = None,
    *,
    retry_sleep: SleepRecorder | None = None,
) -> Iterator[Gateway]:
    """A gateway on a real port whose upstream calls are recorded (and sent on to ``inner``)."""
    # The production transport unless a test brings its own (faults, a held upstream).
    recorder = RecordingTransport(
        inner or billing_transport(settings.metronome_base_url or "", max_connections=32)
    )
    app = create_app(settings, transport=recorder, retry_sleep=retry_sleep)
    with serve(app) as url, httpx.Client(timeout=30) as http:
        yield Gateway(url=url, upstream=recorder, http=http)


def operator_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any METRONOME_/GATEWAY_ setting, plus ``env``: what
    an operator starting `gateway serve` with only those settings would have."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "GATEWAY_"))
    }
    environment.update(env or {})
    return environment


def refused_start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python -m gateway serve` with the settings ``env``, for a configuration it must refuse:
    its exit status and output (it is given 60 s to exit)."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--port", "0"],
        cwd=ROOT,
        env=operator_environment(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextmanager
def gateway_process(
    *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """`python -m gateway serve` as an operator starts it (no METRONOME_/GATEWAY_ settings but
    ``env``), once /healthz answers: the process, its URL, and its output lines so far."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = operator_environment({**(env or {}), "PYTHONUNBUFFERED": "1"})
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port), *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "gateway serve did not start"
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield process, url, output
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(20)
        reader.join(5)
        process.stdout.close()


EMPTY_PAGE = b'{"data": [], "pagination": {"seats_included": 0}}'


@dataclass
class RawRequests:
    """What a raw HTTP server received: each request's head lines and body."""

    heads: list[list[bytes]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@asynccontextmanager
async def raw_http_server(
    answer: bytes | Callable[[asyncio.StreamWriter], Awaitable[None]] = EMPTY_PAGE,
) -> AsyncIterator[tuple[str, RawRequests]]:
    """An HTTP/1.1 server on 127.0.0.1 written on asyncio's streams (no HTTP library between
    the gateway and what it sends): records every request exactly as it arrived and answers
    each with ``answer`` as JSON, or lets ``answer`` write the whole response itself (slowly,
    endlessly: a misbehaving server) and then closes the connection. Yields its URL and what
    it received."""
    received = RawRequests()
    connections: set[asyncio.StreamWriter] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.add(writer)
        while not reader.at_eof():
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            lines = head.rstrip(b"\r\n").split(b"\r\n")
            received.heads.append(lines)
            length = next(
                (
                    int(v)
                    for k, _, v in (line.partition(b":") for line in lines[1:])
                    if k.strip().lower() == b"content-length"
                ),
                0,
            )
            received.bodies.append(await reader.readexactly(length))
            if callable(answer):
                with contextlib.suppress(ConnectionError):
                    await answer(writer)
                break
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(answer)}\r\n\r\n".encode()
                + answer
            )
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", received
    finally:
        server.close()
        for writer in connections:  # an answer still being written ends with the test
            writer.close()
        await server.wait_closed()


def node_harness(harness: str, packages: tuple[str, ...], required_by: str, purpose: str) -> str:
    """The ``node`` executable for a Node harness of this repository (``federation/``,
    ``audit/``, ``clients/``) once its ``node_modules`` holds ``packages``: skipped on a
    developer's machine without them, failed where the environment variable ``required_by``
    is set (scripts/test sets it, so CI runs every harness)."""
    executable = shutil.which("node")
    missing = None
    if executable is None:
        missing = "node (20 or later) is not installed"
    elif not all((ROOT / harness / "node_modules" / package).is_dir() for package in packages):
        missing = f"{harness}/node_modules is missing: run `npm ci --prefix {harness}`"
    if missing:
        if os.environ.get(required_by):
            pytest.fail(f"{missing} ({required_by} is set)")
        pytest.skip(f"{missing} to {purpose}")
    assert executable is not None
    return executable
