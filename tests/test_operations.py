"""What an operator relies on: health, readiness, metrics, traces and access logs."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN
from tests.support import Gateway, SleepRecorder, running_gateway

QUERY = f"""query Seats {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
  contractId: "{DEMO_CONTRACT_ID}", first: 3) {{ nodes {{ seatId commits {{ commitId }} }} }} }}"""


def test_healthz_and_readyz_against_a_live_billing_api(gateway: Gateway) -> None:
    """The process is healthy, and ready because the billing API answers."""
    assert gateway.http.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = gateway.http.get(f"{gateway.url}/readyz")
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ready", "embeddedUpstream": False, "cache": "ok"},
    )


def test_readyz_fails_when_the_billing_api_does_not_answer() -> None:
    """With the billing API down, /readyz is 503 while /healthz stays 200."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    with running_gateway(Settings(metronome_base_url=closed)) as gateway:
        ready = gateway.http.get(f"{gateway.url}/readyz")
        assert (ready.status_code, ready.json()["status"]) == (503, "unavailable")
        assert gateway.http.get(f"{gateway.url}/healthz").status_code == 200


def test_metrics_count_operations_upstream_calls_retries_batches_and_errors(
    standin_url: str,
) -> None:
    """/metrics shows operations by name and outcome, upstream outcomes, retries, batches, codes."""
    answers = iter([httpx.Response(503)])

    class FlakyOnce(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            failure = next(answers, None)
            if failure is not None:
                return failure
            async with httpx.AsyncHTTPTransport() as real:
                response = await real.handle_async_request(request)
                body = await response.aread()
            return httpx.Response(response.status_code, content=body, headers=response.headers)

    settings = Settings(metronome_base_url=standin_url)
    with running_gateway(settings, FlakyOnce(), retry_sleep=SleepRecorder()) as gateway:
        gateway.query(QUERY)
        gateway.query(QUERY)
        gateway.errors(QUERY.replace("first: 3", "first: 0"))
        text = gateway.http.get(f"{gateway.url}/metrics").text
    assert 'gateway_graphql_operations_total{operation="Seats",outcome="ok"} 2.0' in text
    assert 'gateway_graphql_operations_total{operation="Seats",outcome="error"} 1.0' in text
    assert 'gateway_graphql_errors_total{code="BAD_USER_INPUT"} 1.0' in text
    assert 'gateway_upstream_requests_total{outcome="503"} 1.0' in text
    assert 'gateway_upstream_requests_total{outcome="200"} 2.0' in text
    assert "gateway_upstream_retries_total 1.0" in text
    assert 'gateway_dataloader_batch_size_count{loader="pages"} 2.0' in text
    assert 'gateway_graphql_operation_duration_seconds_count{operation="Seats"} 3.0' in text
    assert "gateway_upstream_request_duration_seconds_count 3.0" in text


def test_one_json_access_line_per_request_with_its_request_id(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    """Each request logs one JSON line: id, operation, duration, upstream calls, error codes."""
    caplog.set_level(logging.INFO, logger="gateway.access")
    ok = gateway.post(QUERY)
    mine = gateway.http.post(
        f"{gateway.url}/graphql",
        json={"query": QUERY.replace("first: 3", "first: 500")},
        headers={"Authorization": f"Bearer {DEMO_TOKEN}", "X-Request-ID": "trace-me-42"},
    )
    lines = access_lines(caplog, 2)
    first, second = lines
    assert ok.headers["x-request-id"] == first["requestId"]
    assert first["operationName"] == "Seats"
    assert first["upstreamCalls"] == 1 and first["errorCodes"] == [] and first["status"] == 200
    assert first["durationMs"] > 0
    assert mine.headers["x-request-id"] == second["requestId"] == "trace-me-42"
    assert second["errorCodes"] == ["BAD_USER_INPUT"] and second["upstreamCalls"] == 0
    assert all(DEMO_TOKEN not in r.getMessage() for r in caplog.records)


def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    """The access lines, once ``count`` are there: a line is written just after its response."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gateway.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            assert len(lines) == count
            return lines
        time.sleep(0.01)


def test_an_unusable_request_id_is_replaced(gateway: Gateway) -> None:
    """A caller's X-Request-ID that is not a short plain token is not echoed into logs."""
    response = gateway.http.post(
        f"{gateway.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"X-Request-ID": 'evil {"level": "error"} ' + "x" * 200},
    )
    assert "evil" not in response.headers["x-request-id"]
    assert len(response.headers["x-request-id"]) == 32


def test_spans_cover_the_operation_the_resolver_and_the_upstream_call(
    gateway: Gateway, spans: InMemorySpanExporter
) -> None:
    """One trace: operation -> resolver -> upstream HTTP call, joined to the caller's trace,
    and the upstream request carries that trace in traceparent."""
    spans.clear()
    caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    gateway.http.post(
        f"{gateway.url}/graphql",
        json={"query": QUERY},
        headers={
            "Authorization": f"Bearer {DEMO_TOKEN}",
            "traceparent": f"00-{caller_trace}-00f067aa0ba902b7-01",
        },
    )
    finished = {span.name: span for span in spans.get_finished_spans()}
    operation = finished["query Seats"]
    resolver = finished["resolve seatBalances"]
    upstream = finished["POST /v1/contracts/seatBalances/list"]
    assert format(operation.context.trace_id, "032x") == caller_trace
    assert resolver.parent is not None and resolver.parent.span_id == operation.context.span_id
    assert upstream.context.trace_id == operation.context.trace_id
    assert upstream.kind is trace.SpanKind.CLIENT
    assert (
        upstream.attributes is not None and upstream.attributes["http.response.status_code"] == 200
    )
    [call] = gateway.calls
    assert call.traceparent is not None and caller_trace in call.traceparent


@pytest.fixture
def cors_gateway(standin_url: str) -> Iterator[Gateway]:
    settings = Settings(metronome_base_url=standin_url, cors_origins=["http://app.example:3000"])
    with running_gateway(settings) as gateway:
        yield gateway


def test_cors_answers_listed_origins_only(cors_gateway: Gateway, gateway: Gateway) -> None:
    """Preflight from a listed origin is allowed with credentials; others get no CORS headers."""
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    allowed = cors_gateway.http.options(
        f"{cors_gateway.url}/graphql", headers={"Origin": "http://app.example:3000", **preflight}
    )
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "http://app.example:3000"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    stranger = cors_gateway.http.options(
        f"{cors_gateway.url}/graphql", headers={"Origin": "http://evil.example", **preflight}
    )
    assert "access-control-allow-origin" not in stranger.headers
    default = gateway.http.options(
        f"{gateway.url}/graphql", headers={"Origin": "http://app.example:3000", **preflight}
    )
    assert "access-control-allow-origin" not in default.headers


def test_the_access_record_is_the_record_the_logging_module_makes(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With the caller not looked for (as `gateway serve` configures logging), an access line
    goes out as an AccessRecord made without the logging module's own __init__: it has every
    field of the record `access_logger.info(line)` makes, with the same values but the time."""
    from gateway.http.observability import AccessLine, AccessRecord, access_logger

    caplog.set_level(logging.INFO, logger="gateway.access")
    monkeypatch.setattr(logging, "_srcfile", None)
    line = AccessLine({"event": "request", "status": 200})
    made: list[logging.LogRecord] = []
    monkeypatch.setattr(access_logger, "handle", made.append)
    access_logger.info(line)
    ours = AccessRecord(line)
    expected = made[0].__dict__
    timed = {"created", "msecs", "relativeCreated"}
    assert set(ours.__dict__) >= set(expected)
    assert {k: v for k, v in ours.__dict__.items() if k in expected and k not in timed} == {
        k: v for k, v in expected.items() if k not in timed
    }
    assert ours.getMessage() == made[0].getMessage() == str(line)
