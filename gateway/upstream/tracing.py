"""Spans only when tracing is on.

With no tracer provider configured (``OTEL_EXPORTER_OTLP_ENDPOINT`` unset), OpenTelemetry's API
still builds a non-recording span for every ``start_as_current_span`` and attaches it to the
context: three per request, about a twentieth of shape A's CPU (BENCHMARKS.md). :func:`span`
skips that work when nothing records it, and :func:`child_span` when the current span does not
record (asking the tracer provider reads the environment each time it is unset).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from opentelemetry import trace

_OFF = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)


def tracing_on() -> bool:
    """Whether a tracer provider that records spans has been configured."""
    return not isinstance(trace.get_tracer_provider(), _OFF)


def span(
    tracer: trace.Tracer, name: str, kind: trace.SpanKind = trace.SpanKind.INTERNAL
) -> AbstractContextManager[trace.Span]:
    """``tracer.start_as_current_span(name, kind=kind)``, or a span that records nothing
    (``INVALID_SPAN``, whose methods do nothing) when tracing is off."""
    if tracing_on():
        return tracer.start_as_current_span(name, kind=kind)
    return nullcontext(trace.INVALID_SPAN)


def child_span(
    tracer: trace.Tracer, name: str, kind: trace.SpanKind = trace.SpanKind.INTERNAL
) -> AbstractContextManager[trace.Span]:
    """Like :func:`span`, inside an operation's span: a span only below one that records."""
    if trace.get_current_span().is_recording():
        return tracer.start_as_current_span(name, kind=kind)
    return nullcontext(trace.INVALID_SPAN)
