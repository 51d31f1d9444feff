from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.config import Settings
from gateway.standin import create_standin_app
from tests.support import Gateway, running_gateway, serve


@pytest.fixture(scope="session")
def standin_url() -> Iterator[str]:
    """The stand-in billing API on its own real HTTP server, as a remote upstream would be."""
    with serve(create_standin_app()) as url:
        yield url


@pytest.fixture(scope="session")
def settings(standin_url: str) -> Settings:
    """A gateway pointed by METRONOME_BASE_URL at the stand-in, forwarding callers' tokens."""
    return Settings(metronome_base_url=standin_url)


@pytest.fixture(scope="module")
def module_gateway(settings: Settings) -> Iterator[Gateway]:
    with running_gateway(settings) as gateway:
        yield gateway


@pytest.fixture
def gateway(module_gateway: Gateway) -> Gateway:
    """The module's gateway, with the upstream call record cleared for this test."""
    module_gateway.upstream.calls.clear()
    return module_gateway


# The two tiers. The fast tier runs in this process (ASGI apps over httpx.ASGITransport, or
# uvicorn on 127.0.0.1 in a thread): `pytest -m "not process"`, seconds after every change. The
# process tier starts other programs (`gateway serve`, Node's Apollo gateway and composers,
# chromium, redis-server): each such module (or test) says so with `pytest.mark.process`; CI
# runs both.


@pytest.fixture(scope="session")
def spans() -> InMemorySpanExporter:
    """Every span of the test session, kept in memory (the SDK is installed once, and tracing
    stays on in this process from then on)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter
