"""Metrics, access logs and tracing: what an operator sees of the gateway.

* :class:`Metrics` owns a Prometheus registry per app (served at ``/metrics``) and is the
  observer the upstream client and the loaders report to.
* :class:`AccessLog` is the outermost ASGI layer: it gives each request an id (the caller's
  ``X-Request-ID`` when it is a sane token, else a new one), returns it as a response header,
  joins the caller's trace (``traceparent``; never the caller's baggage), and writes one JSON
  line per request with the operation name, duration, upstream call count and error codes. A
  request whose client left before its answer was complete is logged with status 499. It
  never logs headers, so no token or ``Authorization`` value can reach a log line.
* :func:`configure_tracing` installs the OpenTelemetry SDK with an OTLP exporter when the
  standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; otherwise spans are no-ops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Iterator, MutableMapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.caches import LRUCache
from gateway.http.state import new_request_state, request_state
from gateway.upstream.tracing import tracing_on

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID_NAME = REQUEST_ID_HEADER.encode()
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_OPERATION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MAX_OPERATION_LABELS = 200  # client-chosen names: bounded label cardinality
_MAX_SERIES = 4096  # a guard only: the per-request metrics have far fewer series
_SHARED_LABELS = frozenset({"anonymous", "other"})
_OUTCOMES = ("ok", "partial", "error")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a request its client abandoned
# W3C trace context only: the caller's baggage is not the gateway's to carry.
_TRACE_CONTEXT = TraceContextTextMapPropagator()

access_logger = logging.getLogger("gateway.access")


class Metrics:
    """The gateway's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.operations = Counter(
            "gateway_graphql_operations",
            "GraphQL operations by name and outcome (ok, error, partial).",
            ["operation", "outcome"],
            registry=r,
        )
        self.operation_seconds = Histogram(
            "gateway_graphql_operation_duration_seconds",
            "Time to answer a GraphQL operation, by operation name.",
            ["operation"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.errors = Counter(
            "gateway_graphql_errors", "GraphQL errors by extensions.code.", ["code"], registry=r
        )
        self.upstream = Counter(
            "gateway_upstream_requests",
            "Billing API attempts by outcome (HTTP status, timeout, connection_error).",
            ["outcome"],
            registry=r,
        )
        self.upstream_seconds = Histogram(
            "gateway_upstream_request_duration_seconds",
            "Duration of one billing API attempt.",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.retries = Counter(
            "gateway_upstream_retries", "Billing API attempts that were retried.", registry=r
        )
        self.batch_sizes = Histogram(
            "gateway_dataloader_batch_size",
            "Keys per dataloader batch.",
            ["loader"],
            registry=r,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250),
        )
        self.routes = Counter(
            "gateway_graphql_execution",
            "GraphQL requests by how they were answered: the HTTP handler (the view), and the "
            "executor (compiled: the compiled root; fast-path: graphql-core with the "
            "projection; graphql-core: field by field).",
            ["http", "executor"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "gateway_cache_lookups",
            "Page cache lookups by store (memory, redis) and result (hit, miss).",
            ["store", "result"],
            registry=r,
        )
        self.cache_evictions = Counter(
            "gateway_cache_evictions",
            "Entries a bounded in-process store dropped to stay within its bounds.",
            ["store"],
            registry=r,
        )
        self.cache_bytes = Gauge(
            "gateway_cache_bytes", "Bytes held by an in-process store.", ["store"], registry=r
        )
        self.cache_failures = Counter(
            "gateway_cache_failures",
            "Redis operations that failed or timed out (answered as a miss), by store and "
            "operation.",
            ["store", "operation"],
            registry=r,
        )
        self.cache_skipped = Counter(
            "gateway_cache_skipped",
            "Redis operations not attempted because its circuit breaker was open (a miss), by "
            "store and operation.",
            ["store", "operation"],
            registry=r,
        )
        self.cache_rejected = Counter(
            "gateway_cache_rejected",
            "Entries read back from a store that failed their check (a page breaking the "
            "upstream contract, an APQ text not matching its hash): deleted, answered as a miss.",
            ["store"],
            registry=r,
        )
        self.cache_circuit_open = Gauge(
            "gateway_cache_circuit_open",
            "1 while a Redis circuit breaker is open (Redis skipped), else 0.",
            ["redis"],
            registry=r,
        )
        self.upstream_shared = Counter(
            "gateway_upstream_shared_calls",
            "Upstream calls a request did not make because an identical one (same credential, "
            "endpoint and body) was in flight: it waited for that one's answer.",
            registry=r,
        )
        self.apq_registrations = Counter(
            "gateway_persisted_query_registrations",
            "APQ registrations by outcome (stored, anonymous: refused without a token in JWT "
            "mode, over_budget: the caller's registrations per minute were spent).",
            ["outcome"],
            registry=r,
        )
        self.rate_limited_requests = Counter(
            "gateway_rate_limited",
            "Requests refused with RATE_LIMITED (GATEWAY_CALLER_RATE), by where their caller's "
            "counter was kept (redis: shared by the replicas; process: this process's).",
            ["counters"],
            registry=r,
        )
        self.rate_limit_fallbacks_counted = Counter(
            "gateway_rate_limit_fallbacks",
            "Requests whose caller's rate was counted in this process because Redis could not "
            "be used (failed: an error, a timeout or an answer that was not the script's; "
            "skipped: the circuit breaker was open).",
            ["reason"],
            registry=r,
        )
        self.live_subscriptions_held = Gauge(
            "gateway_live_subscriptions",
            "Live seat balance subscriptions open in this process.",
            registry=r,
        )
        self.live_updates = Counter(
            "gateway_live_updates",
            "Live updates queued to this process's subscribers, by reason (SNAPSHOT, WEBHOOK, "
            "POLL); a subscriber is sent those whose selected fields changed.",
            ["reason"],
            registry=r,
        )
        self.live_calls = Counter(
            "gateway_live_upstream_calls",
            "Billing API calls made to refresh live listings (snapshots and polls).",
            registry=r,
        )
        self.live_bus_failures = Counter(
            "gateway_live_bus_failures",
            "Redis operations for live balances that failed (each process then polls alone).",
            ["operation"],
            registry=r,
        )
        self.live_bus_degraded_now = Gauge(
            "gateway_live_bus_degraded",
            "1 while live balances cannot use Redis (this process polls its listings alone).",
            registry=r,
        )
        self.webhooks = Counter(
            "gateway_webhooks",
            "Billing API webhook deliveries, by event type (unknown types: other) and outcome "
            "(refreshed, duplicate, ignored, unauthenticated, malformed, too_large).",
            ["type", "outcome"],
            registry=r,
        )
        # Operation names with a label of their own; the least recently seen one gives up its
        # label and its series to a new name.
        self._operation_names: LRUCache[str, bool] = LRUCache(
            _MAX_OPERATION_LABELS, evicted=self._unlabel
        )
        # The series of the per-request metrics, by metric and labels: prometheus-client's
        # `labels()` checks and converts its labels and takes a lock on every call. As many as
        # the series themselves (the labels are bounded sets); a removed series leaves here too.
        self._series: dict[tuple[int, tuple[str, ...]], Any] = {}

    # LiveObserver, BusObserver, WebhookObserver
    def live_subscriptions(self, count: int) -> None:
        self.live_subscriptions_held.set(count)

    def live_update(self, reason: str, count: int) -> None:
        self.live_updates.labels(reason).inc(count)

    def live_upstream_calls(self, count: int) -> None:
        self.live_calls.inc(count)

    def live_bus_failure(self, operation: str) -> None:
        self.live_bus_failures.labels(operation).inc()

    def live_bus_degraded(self, degraded: bool) -> None:
        self.live_bus_degraded_now.set(1 if degraded else 0)

    def webhook(self, event_type: str, outcome: str) -> None:
        self.webhooks.labels(event_type, outcome).inc()

    # CacheObserver, StoreObserver
    def cache_lookup(self, store: str, hit: bool) -> None:
        self.cache_lookups.labels(store, "hit" if hit else "miss").inc()

    def evicted(self, store: str, count: int) -> None:
        self.cache_evictions.labels(store).inc(count)

    def held(self, store: str, size: int) -> None:
        self.cache_bytes.labels(store).set(size)

    def failed(self, store: str, operation: str) -> None:
        self.cache_failures.labels(store, operation).inc()

    def skipped(self, store: str, operation: str) -> None:
        self.cache_skipped.labels(store, operation).inc()

    def rejected(self, store: str) -> None:
        self.cache_rejected.labels(store).inc()

    def circuit(self, name: str, is_open: bool) -> None:
        self.cache_circuit_open.labels(name).set(1 if is_open else 0)

    # FlightObserver (gateway.loaders), RegistrationObserver (gateway.http.persisted)
    # RateObserver
    def rate_limited(self, counters: str) -> None:
        self._of(self.rate_limited_requests, counters).inc()

    def rate_limit_fallback(self, reason: str) -> None:
        self._of(self.rate_limit_fallbacks_counted, reason).inc()

    def shared_call(self) -> None:
        self.upstream_shared.inc()

    def registration(self, outcome: str) -> None:
        self.apq_registrations.labels(outcome).inc()

    # UpstreamObserver
    def attempt(self, outcome: str, seconds: float) -> None:
        if outcome == "connection_error":
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # Abandoned because its caller left, not failed: not an upstream error.
                outcome = "cancelled"
        self._of(self.upstream, outcome).inc()
        self.upstream_seconds.observe(seconds)

    def retry(self) -> None:
        self.retries.inc()

    # BatchObserver
    def batch(self, loader: str, size: int) -> None:
        self._of(self.batch_sizes, loader).observe(size)

    def operation(
        self,
        name: str | None,
        outcome: str,
        seconds: float,
        codes: list[str],
        route: tuple[str, str] = ("view", "graphql-core"),
    ) -> None:
        label = self._label(name)
        self._of(self.routes, *route).inc()
        self._of(self.operations, label, outcome).inc()
        self._of(self.operation_seconds, label).observe(seconds)
        for code in codes:
            self._of(self.errors, code).inc()

    def _of(self, metric: Any, *labels: str) -> Any:
        """The series of ``metric`` with ``labels``, as ``metric.labels(*labels)`` gives it."""
        key = (id(metric), labels)
        series = self._series.get(key)
        if series is None:
            series = metric.labels(*labels)
            if len(self._series) < _MAX_SERIES:
                self._series[key] = series
        return series

    def _label(self, name: str | None) -> str:
        """The name's own label while it is among the 200 most recently seen names; the
        least recently seen one gives up its label (and its series) to a new name, so a
        burst of one-off names cannot keep a frequent operation in ``other`` for good."""
        if not name:
            return "anonymous"
        if self._operation_names.get(name):  # seen now: the most recently seen
            return name
        if name in _SHARED_LABELS or not _OPERATION_NAME.fullmatch(name):
            return "other"
        self._operation_names[name] = True
        return name

    def _unlabel(self, name: str, _: bool) -> None:
        """``name`` has no label of its own any more: its series go."""
        for outcome in _OUTCOMES:
            self._series.pop((id(self.operations), (name, outcome)), None)
            with suppress(KeyError):  # older prometheus-clients raise for an unseen series
                self.operations.remove(name, outcome)
        self._series.pop((id(self.operation_seconds), (name,)), None)
        with suppress(KeyError):
            self.operation_seconds.remove(name)


def _random_ids() -> Iterator[str]:
    """128 random bits as 32 hex digits each, as ``uuid4().hex`` gives but without building a
    UUID, from the system's random source 256 ids at a time (one system call, not one per
    request); random, so that ids say nothing of the traffic."""
    while True:
        block = os.urandom(4096).hex()
        for start in range(0, len(block), 32):
            yield block[start : start + 32]


_request_ids = _random_ids()


def _new_request_id() -> str:
    return next(_request_ids)


def _fresh_request_ids() -> None:
    """A forked process draws its own ids, never the rest of its parent's block."""
    global _request_ids  # the process's one source of ids
    _request_ids = _random_ids()


os.register_at_fork(after_in_child=_fresh_request_ids)


class AccessLog:
    """Request ids, the caller's trace context, metrics and one JSON log line per request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = ""
        for name, value in scope["headers"]:
            if name == _REQUEST_ID_NAME:
                given = value.decode("latin-1")
        request_id = given if given and _REQUEST_ID.fullmatch(given) else _new_request_id()
        access = new_request_state(scope).access
        status = 0  # no response started

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        started = time.perf_counter()
        # The caller's trace context matters only to spans, and to the traceparent sent
        # upstream, both of which exist only when tracing is on.
        token = None
        if tracing_on():
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            token = otel_context.attach(_TRACE_CONTEXT.extract(headers))
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if token is not None:
                otel_context.detach(token)
            seconds = time.perf_counter() - started
            if request_state(scope).client_gone:
                status = CLIENT_CLOSED_REQUEST
            elif not status:
                status = 500
            if "outcome" in access:
                self.metrics.operation(
                    access.get("operation"),
                    access["outcome"],
                    seconds,
                    access["errorCodes"],
                    access["route"],
                )
            _log_access(scope, request_id, status, seconds, access)


def _log_access(
    scope: MutableMapping[str, Any],
    request_id: str,
    status: int,
    seconds: float,
    access: dict[str, Any],
) -> None:
    line: dict[str, Any] = {
        "event": "request",
        "requestId": request_id,
        "method": scope.get("method"),
        "path": scope.get("path"),
        "status": status,
        "durationMs": round(seconds * 1000, 2),
    }
    if "subject" in access:  # the authenticated caller's JWT `sub`; never the token
        line["subject"] = access["subject"]
    if "outcome" in access:
        line["operationName"] = access.get("operation")
        line["upstreamCalls"] = access.get("upstreamCalls", 0)
        line["errorCodes"] = access["errorCodes"]
        line["route"] = "/".join(access["route"])
    if logging._srcfile is not None:  # each record looks for its caller: the usual way
        access_logger.info(AccessLine(line))
    elif access_logger.isEnabledFor(logging.INFO):
        access_logger.handle(AccessRecord(AccessLine(line)))


class AccessLine(dict[str, Any]):
    """An access log line: its text is its JSON, made only when a handler formats it, and the
    JSON formatter merges its fields without parsing that text back."""

    def __str__(self) -> str:
        return orjson.dumps(self).decode()


class AccessRecord(logging.LogRecord):
    """The record ``access_logger.info(line)`` makes, made for a line with no arguments and
    no caller: the logging module's own ``__init__`` also splits the caller's path into a file
    and a module name, looks for a mapping among the arguments and reads the time twice, a
    third of writing the line. Handed to ``Logger.handle``, it meets the same filters and
    handlers as any record."""

    def __init__(self, line: AccessLine) -> None:
        created = time.time()
        self.name = access_logger.name
        self.msg = line
        self.args = ()
        self.levelname = "INFO"
        self.levelno = logging.INFO
        # What Logger._log gives a record when the caller is not looked for (_srcfile off).
        self.pathname = self.filename = self.module = "(unknown file)"
        self.exc_info = None
        self.exc_text = None
        self.stack_info = None
        self.lineno = 0
        self.funcName = "(unknown function)"
        self.created = created
        self.msecs = int((created - int(created)) * 1000) + 0.0
        self.relativeCreated = (created - logging._startTime) * 1000  # type: ignore[attr-defined]
        self.thread = threading.get_ident() if logging.logThreads else None
        self.threadName = threading.current_thread().name if logging.logThreads else None
        self.processName = None
        if logging.logMultiprocessing:
            processes = sys.modules.get("multiprocessing")
            if processes is not None:
                with suppress(Exception):
                    self.processName = processes.current_process().name
        self.process = os.getpid() if logging.logProcesses else None
        self.taskName = None  # Python 3.12's field, off as configure_logging leaves logging


class JsonFormatter(logging.Formatter):
    """One JSON object per log line; a message that already is one (the access line) is
    merged in rather than quoted."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.msg, AccessLine):
            payload.update(record.msg)
        else:
            message = record.getMessage()
            try:
                parsed = json.loads(message) if message.startswith("{") else None
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                payload.update(parsed)
            else:
                payload["message"] = message
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(payload, default=str).decode()


def configure_logging(level: str, *, json_lines: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    )
    # What no line of ours shows is not collected for every record (the logging module's own
    # "optimization" advice): the caller's file and line, the thread, the process and its
    # name cost about a third of writing the access line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Python warnings (e.g. graphql-core's abandoned resolvers when a root field fails) become
    # log lines too, so that stderr stays one JSON object per line.
    logging.captureWarnings(True)


def configure_tracing(service_name: str = "seat-balance-gateway") -> bool:
    """Export spans over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set; else no-op."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    return True
