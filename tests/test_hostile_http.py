"""Hostile and careless clients at the HTTP level: slow senders, forged trace headers, several
or mangled credentials, clients that leave, probe stampedes, label floods, a wildcard CORS."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from pydantic import ValidationError

from gateway.app import create_app
from gateway.config import Settings
from gateway.http.guard import RequestGuard
from gateway.http.observability import Metrics
from gateway.http.state import new_request_state
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import SEAT_BALANCES_PATH
from gateway.upstream.transport import AiohttpTransport
from tests.support import Gateway, gateway_process, refused_start, running_gateway, serve

QUERY = f"""query Seats {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
  contractId: "{DEMO_CONTRACT_ID}", first: 2) {{ nodes {{ seatId }} }} }}"""
CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_HEADERS = {
    "Authorization": f"Bearer {DEMO_TOKEN}",
    "traceparent": f"00-{CALLER_TRACE}-00f067aa0ba902b7-01",
    "tracestate": "vendor=caller-secret",
    "baggage": "user.id=alice," + ",".join(f"k{i}={'v' * 20}" for i in range(120)),  # ~3 KB
}


# --- 4. Slow clients ---------------------------------------------------------------------


def dribble(url: str, head: bytes, *, every: float = 0.05, within: float = 5.0) -> bytes:
    """Sends ``head`` at once, then one more byte every ``every`` seconds for as long as the
    server listens; returns what it answered once it closed the connection."""
    address = urlsplit(url)
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(head)
        sock.settimeout(every)
        answer = b""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                chunk = None
            except ConnectionResetError:
                return answer
            if chunk == b"":
                return answer
            if chunk:
                answer += chunk
                continue  # the server is answering: read the rest, send nothing more
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"a")
        raise AssertionError(f"the connection was still open after {within} s")


def parse(answer: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.fixture(scope="module")
def impatient(standin_url: str) -> Iterator[Gateway]:
    """A gateway that gives clients half a second for their headers and as long for a body."""
    settings = Settings(
        metronome_base_url=standin_url, request_header_timeout=0.5, request_body_timeout=0.5
    )
    with running_gateway(settings) as gateway:
        yield gateway


SLOW_HEADERS = b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nX-Slow: "
SLOW_BODY = (
    b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
    b"Content-Length: 5000\r\n\r\n"
)


def test_headers_sent_a_byte_at_a_time_get_408_and_the_connection_closed(
    impatient: Gateway,
) -> None:
    """A client still sending its headers after GATEWAY_REQUEST_HEADER_TIMEOUT gets a 408
    REQUEST_TIMEOUT and loses the connection, however steadily it trickles bytes."""
    started = time.monotonic()
    status, headers, body = parse(dribble(impatient.url, SLOW_HEADERS))
    assert time.monotonic() - started < 2.5
    assert (status, headers["connection"]) == (408, "close")
    assert body["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert impatient.calls == []


def test_a_body_sent_a_byte_at_a_time_gets_408_and_the_connection_closed(
    impatient: Gateway,
) -> None:
    """A body not complete within GATEWAY_REQUEST_BODY_TIMEOUT gets a 408 REQUEST_TIMEOUT
    and the connection is closed; nothing is executed."""
    started = time.monotonic()
    status, headers, body = parse(dribble(impatient.url, SLOW_BODY))
    assert time.monotonic() - started < 2.5
    assert (status, headers["connection"]) == (408, "close")
    assert body["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"
    assert impatient.calls == []


def test_a_connection_that_sends_nothing_is_closed_silently(impatient: Gateway) -> None:
    """A connection that never sends a byte is closed at the header deadline, without an
    answer (there is no request to answer)."""
    address = urlsplit(impatient.url)
    with socket.create_connection((address.hostname, address.port), timeout=3) as sock:
        started = time.monotonic()
        assert sock.recv(1024) == b""
        assert time.monotonic() - started < 2.5


def test_a_kept_alive_connection_outlives_the_header_deadline(impatient: Gateway) -> None:
    """The header deadline is per request: a connection serving prompt requests for longer
    than it stays open (the clock restarts with each request)."""
    with httpx.Client(base_url=impatient.url) as http:
        statuses = []
        for _ in range(4):
            statuses.append(http.get("/healthz").status_code)
            time.sleep(0.3)
        assert statuses == [200] * 4
        assert http.get("/healthz").status_code == 200  # same connection after 1.2 s


def test_many_slow_clients_are_all_cut_off_and_health_still_answers(impatient: Gateway) -> None:
    """A hundred slow clients at once (headers or body a byte at a time): /healthz answers
    while they trickle, and every one of them is answered 408 and closed."""
    with ThreadPoolExecutor(100) as pool:
        slow = [
            pool.submit(dribble, impatient.url, head, every=0.1)
            for head in [SLOW_HEADERS, SLOW_BODY] * 50
        ]
        time.sleep(0.2)
        assert httpx.get(f"{impatient.url}/healthz").status_code == 200
        statuses = [parse(answer.result())[0] for answer in slow]
    assert statuses == [408] * 100


@pytest.mark.process  # starts another program
def test_gateway_serve_bounds_the_time_for_headers() -> None:
    """`gateway serve` runs the protocol with the header deadline, read from its setting."""
    with gateway_process(env={"GATEWAY_REQUEST_HEADER_TIMEOUT": "0.5"}) as (_, url, _output):
        started = time.monotonic()
        status, _, body = parse(dribble(url, SLOW_HEADERS))
        assert time.monotonic() - started < 2.5
    assert status == 408 and body["errors"][0]["extensions"]["code"] == "REQUEST_TIMEOUT"


# --- 4b. Oversized headers -----------------------------------------------------------------

SEND_PIECE = 64 * 1024


def send_huge_head(
    url: str, head: bytes, filler_bytes: int, tail: bytes
) -> tuple[bytes, float, int]:
    """Sends ``head``, ``filler_bytes`` bytes of ``a`` in pieces, then ``tail``, from one
    thread while another reads; returns the answer (once the server closed the connection),
    the seconds until then and how many bytes the server let the client send."""
    address = urlsplit(url)
    sent = 0
    with socket.create_connection((address.hostname, address.port), timeout=30) as sock:

        def send() -> None:
            nonlocal sent
            piece = b"a" * SEND_PIECE
            with contextlib.suppress(OSError):
                sock.sendall(head)
                sent += len(head)
                while sent < filler_bytes:
                    sock.sendall(piece)
                    sent += len(piece)
                sock.sendall(tail)
                sent += len(tail)

        started = time.monotonic()
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(send)
            answer = b""
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    answer += chunk
            elapsed = time.monotonic() - started
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sending.result()
    return answer, elapsed, sent


TYPENAME_BODY = b'{"query": "{ __typename }"}'
KEPT_ALIVE_TAIL = (
    b"\r\nContent-Type: application/json\r\n"
    + b"Content-Length: %d\r\n\r\n" % len(TYPENAME_BODY)
    + TYPENAME_BODY
)
TYPENAME_REQUEST_TAIL = b"\r\nConnection: close" + KEPT_ALIVE_TAIL


def refused_431(answer: bytes) -> dict[str, Any]:
    status, headers, body = parse(answer)
    assert (status, headers["connection"]) == (431, "close"), answer[:300]
    assert headers["content-type"] == "application/json"
    [error] = body["errors"]
    assert error["extensions"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("name", "megabytes"),
    [("X-Junk", 64), ("Accept", 8), ("Accept-Encoding", 8), ("Authorization", 8)],
)
def test_one_huge_header_is_refused_431_before_it_is_read_whole(
    gateway: Gateway, name: str, megabytes: int
) -> None:
    """A header of megabytes (junk, Accept, Accept-Encoding, a JWT-shaped Authorization): HTTP
    431 REQUEST_HEADER_FIELDS_TOO_LARGE within a second, the connection closed after a small
    part of it was let in, no upstream call, and /healthz answers at once afterwards."""
    value_start = b"Bearer eyJhbGciOiJSUzI1NiJ9." if name == "Authorization" else b""
    head = b"POST /graphql HTTP/1.1\r\nHost: gateway\r\n" + name.encode() + b": " + value_start
    answer, elapsed, sent = send_huge_head(
        gateway.url, head, megabytes << 20, TYPENAME_REQUEST_TAIL
    )
    error = refused_431(answer)
    assert "8192 bytes" in error["message"]
    assert elapsed < 1.0
    assert sent < 16 << 20  # what the kernel buffers let through, not the whole header
    assert gateway.calls == []
    started = time.monotonic()
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200
    assert time.monotonic() - started < 0.5


def test_many_headers_over_the_total_are_refused_431_on_a_kept_alive_connection(
    gateway: Gateway,
) -> None:
    """On a kept-alive connection, a prompt request is answered, and the next one, with eight
    headers of 6 KiB each (48 KiB in all, each under the 8 KiB cap), gets HTTP 431 for the
    whole header block and the connection is closed."""
    prompt = b"POST /graphql HTTP/1.1\r\nHost: gateway" + KEPT_ALIVE_TAIL
    padded = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 6144) for i in range(8))
    crowded = b"POST /graphql HTTP/1.1\r\nHost: gateway\r\n" + padded.rstrip(b"\r\n")
    address = urlsplit(gateway.url)
    with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
        sock.sendall(prompt)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        sock.sendall(crowded + TYPENAME_REQUEST_TAIL)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    error = refused_431(answer)
    assert "32768 bytes" in error["message"]


def test_a_chunked_body_with_megabytes_of_trailers_is_cut_off(gateway: Gateway) -> None:
    """A chunked body is served, but one followed by a 64 MB trailer field (trailers are
    parsed like headers) loses its connection within a second, after a small part of it was
    let in, unanswered; /healthz answers at once afterwards."""
    served = gateway.http.post(
        f"{gateway.url}/graphql",
        content=iter([TYPENAME_BODY[:10], TYPENAME_BODY[10:]]),  # an iterator goes chunked
        headers={"Content-Type": "application/json"},
    )
    assert served.status_code == 200, served.text
    head = (
        b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x\r\n" % len(TYPENAME_BODY)
        + TYPENAME_BODY
        + b"\r\n0\r\nX-Trailer: "
    )
    answer, elapsed, sent = send_huge_head(gateway.url, head, 64 << 20, b"\r\n\r\n")
    assert answer == b""
    assert elapsed < 1.0
    assert sent < 16 << 20
    assert httpx.get(f"{gateway.url}/healthz").status_code == 200


def test_the_header_caps_are_settings(standin_url: str) -> None:
    """GATEWAY_MAX_HEADER_BYTES and GATEWAY_MAX_HEADERS_BYTES move the caps: at 16 KiB a
    header, a 12 KiB header is served and a 20 KiB one is refused with 431."""
    settings = Settings(
        metronome_base_url=standin_url, max_header_bytes=16384, max_headers_bytes=65536
    )
    with running_gateway(settings) as roomy:
        served = roomy.http.post(
            f"{roomy.url}/graphql", json={"query": "{ __typename }"}, headers={"X-Big": "b" * 12288}
        )
        assert served.status_code == 200, served.text
        head = b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nX-Big: "
        answer, _, _ = send_huge_head(roomy.url, head, 20480, TYPENAME_REQUEST_TAIL)
    assert "16384 bytes" in refused_431(answer)["message"]


def test_under_another_server_the_guard_refuses_oversized_headers_with_431(
    standin_url: str,
) -> None:
    """Under a server without the gateway's protocol (uvicorn's own httptools protocol), the
    app itself refuses a 100 KiB header, and 40 KiB of smaller ones, with HTTP 431 and a
    GraphQL-style error, before anything reads them."""
    app = create_app(Settings(metronome_base_url=standin_url))
    with serve(app, http="httptools") as url:
        one = httpx.post(
            f"{url}/graphql", json={"query": "{ __typename }"}, headers={"Accept": "a" * 102400}
        )
        many = httpx.post(
            f"{url}/graphql",
            json={"query": "{ __typename }"},
            headers={f"X-Pad-{i}": "p" * 4096 for i in range(10)},
        )
    for response in (one, many):
        assert response.status_code == 431, response.text
        [error] = response.json()["errors"]
        assert error["extensions"]["code"] == "REQUEST_HEADER_FIELDS_TOO_LARGE"


@pytest.mark.process  # starts another program
def test_gateway_serve_refuses_oversized_headers_with_431() -> None:
    """`gateway serve` caps each header at GATEWAY_MAX_HEADER_BYTES."""
    with gateway_process(env={"GATEWAY_MAX_HEADER_BYTES": "2048"}) as (_, url, _output):
        head = b"POST /graphql HTTP/1.1\r\nHost: gateway\r\nX-Big: "
        answer, elapsed, _ = send_huge_head(url, head, 4096, TYPENAME_REQUEST_TAIL)
    assert "2048 bytes" in refused_431(answer)["message"]
    assert elapsed < 1.0


# --- 4c. Refusals in the media type the client asked for -----------------------------------

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
# What Apollo Client 4 sends: it reads GraphQL errors only from graphql-response+json.
APOLLO_CLIENT_ACCEPT = f"{GRAPHQL_RESPONSE_JSON},{JSON};q=0.9"


def refused_as(
    status: int, headers: Any, body: Any, expected: tuple[int, str], media_type: str
) -> None:
    """A refusal with the expected status and code, as one GraphQL error in ``media_type``
    that says it varies on Accept; under graphql-response+json without `data` (nothing ran)."""
    assert status == expected[0], body
    assert headers["content-type"] == media_type
    assert "accept" in {value.strip().lower() for value in headers["vary"].split(",")}
    [error] = body["errors"]
    assert error["extensions"]["code"] == expected[1]
    if media_type == GRAPHQL_RESPONSE_JSON:
        assert "data" not in body
    else:
        assert body["data"] is None


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [(APOLLO_CLIENT_ACCEPT, GRAPHQL_RESPONSE_JSON), (JSON, JSON), ("text/html", JSON)],
    ids=["apollo-client", "json", "neither"],
)
def test_the_guards_refusals_take_the_media_type_the_client_accepts(
    gateway: Gateway, impatient: Gateway, standin_url: str, accept: str, media_type: str
) -> None:
    """Every refusal the guard writes before the view (400 for several Authorization headers,
    401 for a token that is not ASCII, 413 for a body over the cap, 408 for a body too slow,
    431 for headers over their caps under another server) follows the view's negotiation:
    graphql-response+json when the client prefers it, application/json otherwise (and when
    it accepts neither, as the view's 406 does), varying on Accept."""
    url = f"{gateway.url}/graphql"
    typename = {"query": "{ __typename }"}
    answers = {
        (400, "BAD_REQUEST"): gateway.http.post(
            url,
            json=typename,
            headers=[("Accept", accept), ("Authorization", "Bearer a"), ("Authorization", "b")],
        ),
        (401, "UNAUTHENTICATED"): gateway.http.post(
            url,
            json=typename,
            headers={"Accept": accept, "Authorization": "Bearer t\xf6ken".encode("latin-1")},
        ),
        (413, "REQUEST_TOO_LARGE"): gateway.http.post(
            url, content=b" " * 1_000_001, headers={"Accept": accept}
        ),
    }
    for expected, response in answers.items():
        refused_as(response.status_code, response.headers, response.json(), expected, media_type)
    assert answers[(401, "UNAUTHENTICATED")].headers["www-authenticate"].startswith("Bearer")
    slow = SLOW_BODY.replace(
        b"Host: gateway\r\n", b"Host: gateway\r\nAccept: %s\r\n" % accept.encode()
    )
    refused_as(*parse(dribble(impatient.url, slow)), (408, "REQUEST_TIMEOUT"), media_type)
    with serve(create_app(Settings(metronome_base_url=standin_url)), http="httptools") as other:
        oversized = httpx.post(
            f"{other}/graphql", json=typename, headers={"Accept": accept, "X-Big": "b" * 10_000}
        )
    refused_as(
        oversized.status_code,
        oversized.headers,
        oversized.json(),
        (431, "REQUEST_HEADER_FIELDS_TOO_LARGE"),
        media_type,
    )
    assert gateway.calls == [] and impatient.calls == []


def test_a_refusal_for_an_accept_over_the_header_cap_does_not_read_it(standin_url: str) -> None:
    """Under another server, an Accept header over GATEWAY_MAX_HEADER_BYTES that names
    graphql-response+json is refused 431 in application/json: an oversized header is refused,
    not parsed."""
    accept = ", ".join([GRAPHQL_RESPONSE_JSON] + ["x/y"] * 2000)  # 10 KB
    with serve(create_app(Settings(metronome_base_url=standin_url)), http="httptools") as other:
        response = httpx.post(
            f"{other}/graphql", json={"query": "{ __typename }"}, headers={"Accept": accept}
        )
    refused_as(
        response.status_code,
        response.headers,
        response.json(),
        (431, "REQUEST_HEADER_FIELDS_TOO_LARGE"),
        JSON,
    )


# --- 8. Headers forwarded upstream ---------------------------------------------------------


@pytest.mark.process  # starts another program
def test_with_tracing_off_no_caller_trace_header_or_baggage_reaches_the_billing_api() -> None:
    """`gateway serve` without OTEL_EXPORTER_OTLP_ENDPOINT sends the billing API the token
    and content type, and none of the caller's traceparent, tracestate or baggage."""
    seen: list[dict[str, str]] = []
    standin = create_standin_app()

    async def recording_billing(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await standin(scope, receive, send)

    tracing_off = {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    with (
        serve(recording_billing) as billing_url,
        gateway_process(env={"METRONOME_BASE_URL": billing_url, **tracing_off}) as (_, url, _),
    ):
        response = httpx.post(f"{url}/graphql", json={"query": QUERY}, headers=CALLER_HEADERS)
        assert response.status_code == 200 and "errors" not in response.json()
    [headers] = [h for h in seen if h.get("authorization") == f"Bearer {DEMO_TOKEN}"]
    assert headers["content-type"] == "application/json"
    assert {"traceparent", "tracestate", "baggage"}.isdisjoint(headers)


def test_with_tracing_on_the_billing_api_gets_the_gateways_own_span_and_no_baggage(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    """With a tracer provider installed, the upstream call carries the traceparent of the
    gateway's own client span (in the caller's trace), and no tracestate or baggage."""
    spans.clear()
    response = gateway.http.post(
        f"{gateway.url}/graphql", json={"query": QUERY}, headers=CALLER_HEADERS
    )
    assert "errors" not in response.json()
    upstream = f"POST {SEAT_BALANCES_PATH}"
    [attempt] = [s for s in spans.get_finished_spans() if s.name == upstream]
    [call] = gateway.calls
    own = f"00-{CALLER_TRACE}-{attempt.context.span_id:016x}-01"
    assert call.headers["traceparent"] == own
    assert {"tracestate", "baggage"}.isdisjoint(call.headers)


# --- 9. Credentials -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_several_authorization_headers_are_refused(gateway: Gateway, method: str) -> None:
    """Two Authorization headers: HTTP 400 with a BAD_REQUEST GraphQL error on the fast lane
    and FastAPI's view alike, and no upstream call (the gateway does not pick one)."""
    headers = [("Authorization", f"Bearer {DEMO_TOKEN}"), ("Authorization", "Bearer other")]
    if method == "POST":
        response = gateway.http.post(
            f"{gateway.url}/graphql", json={"query": QUERY}, headers=headers
        )
    else:
        response = gateway.http.get(
            f"{gateway.url}/graphql", params={"query": QUERY}, headers=headers
        )
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST"
    assert gateway.calls == []


def test_a_token_with_non_ascii_bytes_is_unauthenticated_without_an_upstream_call(
    gateway: Gateway,
) -> None:
    """A token that could not go upstream byte for byte is refused as UNAUTHENTICATED (401)
    before any upstream call."""
    response = gateway.http.post(
        f"{gateway.url}/graphql",
        json={"query": QUERY},
        headers={"Authorization": "Bearer t\xf6ken".encode("latin-1")},
    )
    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "t\xf6ken" not in response.text
    assert gateway.calls == []


# --- 10. Client gone ------------------------------------------------------------------------


class SlowBilling(httpx.AsyncBaseTransport):
    """The real transport, after a pause (``probe_delay`` for readiness probes)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.inner = AiohttpTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.delay)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_a_request_its_client_abandons_is_logged_499_and_is_no_upstream_error(
    standin_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that leaves before its answer: the access line says 499 (not 500), and the
    upstream call it abandoned is counted as cancelled, not as a connection error."""
    caplog.set_level(logging.INFO, logger="gateway.access")
    with running_gateway(Settings(metronome_base_url=standin_url), SlowBilling(2.0)) as gateway:
        with pytest.raises(httpx.ReadTimeout):
            gateway.http.post(
                f"{gateway.url}/graphql",
                json={"query": QUERY},
                headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
                timeout=0.3,
            )
        deadline = time.monotonic() + 5
        while not (lines := access_lines(caplog)) and time.monotonic() < deadline:
            time.sleep(0.02)
        metrics = gateway.http.get(f"{gateway.url}/metrics").text
    assert [line["status"] for line in lines] == [499]
    assert 'gateway_upstream_requests_total{outcome="cancelled"} 1.0' in metrics
    assert 'outcome="connection_error"' not in metrics


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        json.loads(r.getMessage())
        for r in caplog.records
        if r.name == "gateway.access" and json.loads(r.getMessage())["path"] == "/graphql"
    ]


# --- 11. /readyz stampede -------------------------------------------------------------------


async def test_a_hundred_concurrent_readiness_probes_make_one_upstream_call(
    standin_url: str,
) -> None:
    """100 concurrent /readyz while the billing API is up: one probe goes upstream, and all
    100 answer 200 ready."""
    with running_gateway(Settings(metronome_base_url=standin_url), SlowBilling(0.3)) as gateway:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30) as http:
            answers = await asyncio.gather(*(http.get("/readyz") for _ in range(100)))
        calls = len(gateway.calls)
    assert [a.status_code for a in answers] == [200] * 100
    assert {a.json()["status"] for a in answers} == {"ready"}
    assert calls == 1


# --- 12. Metric labels ----------------------------------------------------------------------


def test_a_frequent_operation_gets_its_label_after_a_flood_of_one_off_names(
    standin_url: str,
) -> None:
    """After 500 one-off operation names, a name that keeps coming gets a label of its own,
    and no more than 200 names have series at any time."""
    with running_gateway(Settings(metronome_base_url=standin_url)) as gateway:
        for i in range(500):
            gateway.query(f"query OneOff{i} {{ __typename }}")
        for _ in range(3):
            gateway.query("query Frequent { __typename }")
        text = gateway.http.get(f"{gateway.url}/metrics").text
    labelled = set(re.findall(r'gateway_graphql_operations_total\{operation="(\w+)"', text))
    assert 'gateway_graphql_operations_total{operation="Frequent",outcome="ok"} 3.0' in text
    assert len(labelled) == 200
    histogram = set(re.findall(r'operation_duration_seconds_count\{operation="(\w+)"', text))
    assert histogram == labelled


def test_an_operation_name_that_lost_its_label_is_counted_again_when_it_returns() -> None:
    """A name whose label went to newer names (and whose series was removed) is counted from
    one again when it comes back, in both the counter and the histogram."""
    metrics = Metrics()
    metrics.operation("Returning", "ok", 0.01, [])
    for i in range(200):
        metrics.operation(f"OneOff{i}", "ok", 0.01, [])
    metrics.operation("Returning", "ok", 0.01, [])
    text = generate_latest(metrics.registry).decode()
    assert 'gateway_graphql_operations_total{operation="Returning",outcome="ok"} 1.0' in text
    assert 'operation_duration_seconds_count{operation="Returning"} 1.0' in text


# --- 13. CORS -------------------------------------------------------------------------------


@pytest.mark.parametrize("origins", ["*", "https://app.example.com,*", "null"])
def test_a_wildcard_or_null_cors_origin_is_refused_naming_the_setting(origins: str) -> None:
    """GATEWAY_CORS_ORIGINS with `*` or `null` (which would reach every page with credentials)
    is a configuration error that names the setting."""
    with pytest.raises(ValidationError, match="GATEWAY_CORS_ORIGINS"):
        Settings(cors_origins=origins)


@pytest.mark.process  # starts another program
def test_gateway_serve_refuses_to_start_with_a_wildcard_cors_origin() -> None:
    """`gateway serve` with GATEWAY_CORS_ORIGINS=* exits at once with a message naming it."""
    result = refused_start({"GATEWAY_CORS_ORIGINS": "*"})
    assert result.returncode == 2
    assert "GATEWAY_CORS_ORIGINS" in result.stderr
    assert "Traceback" not in result.stderr


async def _guarded_call(
    leave_after: float | None,
) -> tuple[asyncio.Task[None], list[dict[str, Any]], dict[str, Any], asyncio.Event]:
    """The guard around an app that answers after 10 s, as a server runs it: a task per
    request, and a client that leaves after ``leave_after`` seconds (never when None)."""
    started = asyncio.Event()

    async def slow_app(scope: Any, receive: Any, send: Any) -> None:
        started.set()
        await asyncio.sleep(10)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"late"})

    left = asyncio.Event()
    body_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"{}", "more_body": False}
        if leave_after is None:
            await asyncio.Event().wait()  # never set: this client stays
        else:
            await asyncio.sleep(leave_after)
        left.set()
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": "/graphql", "headers": []}
    state = new_request_state(scope)
    closed: dict[str, Any] = {"calls": 0}
    state.on_close.append(lambda: closed.__setitem__("calls", closed["calls"] + 1))
    guard = RequestGuard(slow_app, max_body_bytes=1000)
    task = asyncio.ensure_future(guard(scope, receive, send))
    await started.wait()
    closed["state"] = state
    return task, sent, closed, left


async def test_a_client_that_leaves_ends_its_request_quietly() -> None:
    """When the client leaves, the guard stops the app's work, returns normally (nothing is
    sent, the request is marked gone and closed once), and the server's task is not left
    cancelled."""
    task, sent, closed, left = await _guarded_call(leave_after=0.05)
    await asyncio.wait_for(task, 2)
    assert left.is_set() and not task.cancelled() and task.exception() is None
    assert sent == [] and closed["state"].client_gone and closed["calls"] == 1
    assert task.cancelling() == 0


async def test_the_server_cancelling_a_request_is_not_swallowed() -> None:
    """A cancellation from the server (shutdown) goes through the guard: the request's task
    ends cancelled, and the request is still closed once."""
    task, sent, closed, _ = await _guarded_call(leave_after=None)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled() and sent == [] and closed["calls"] == 1
