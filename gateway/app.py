"""The composition root: ``create_app(settings, transport=None)`` builds the whole service.

``transport`` is where tests and the embedded stand-in plug in: when given, every upstream call
goes through it (``httpx.MockTransport`` for faults, ``ASGITransport`` for the stand-in); when
``settings.metronome_base_url`` is unset the stand-in is used in process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gateway import standin
from gateway.config import Settings
from gateway.schema import RequestContext, build_schema, shape_error
from gateway.upstream import BillingClient

logger = logging.getLogger("gateway")

STANDIN_BASE_URL = "http://billing-standin.invalid"


@dataclass(frozen=True)
class Upstream:
    """Where upstream calls go and which token they carry when the caller sends none."""

    base_url: str
    transport: httpx.AsyncBaseTransport | None
    default_token: str | None
    embedded: bool


def resolve_upstream(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> Upstream:
    configured = settings.metronome_bearer_token
    token = configured.get_secret_value() if configured else None
    if settings.embedded:
        return Upstream(
            base_url=STANDIN_BASE_URL,
            transport=transport or httpx.ASGITransport(app=standin.create_standin_app()),
            # Callers may still send their own token (e.g. the stand-in's second account).
            default_token=token or standin.DEMO_TOKEN,
            embedded=True,
        )
    assert settings.metronome_base_url is not None
    return Upstream(
        base_url=settings.metronome_base_url.rstrip("/"),
        transport=transport,
        default_token=token,
        embedded=False,
    )


def create_app(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    upstream = resolve_upstream(settings, transport)
    forced_token = (
        settings.metronome_bearer_token.get_secret_value()
        if settings.metronome_bearer_token
        else None
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeout = httpx.Timeout(
            settings.upstream_timeout, connect=min(5.0, settings.upstream_timeout)
        )
        async with httpx.AsyncClient(
            base_url=upstream.base_url,
            transport=upstream.transport,
            timeout=timeout,
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            headers={"User-Agent": "seat-balance-gateway/0.1"},
        ) as http:
            app.state.billing = BillingClient(http)
            yield

    async def context_getter(request: Request) -> dict[str, Any]:
        token = forced_token or _bearer(request) or upstream.default_token
        return {
            "request": request,
            "gateway": RequestContext(client=request.app.state.billing, token=token),
        }

    app = FastAPI(
        title="Seat balance GraphQL gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.upstream_is_embedded = upstream.embedded
    graphql = _GraphQLRouter(
        build_schema(),
        context_getter=context_getter,
        graphql_ide="graphiql" if settings.graphiql else None,
    )
    app.include_router(graphql, prefix="/graphql")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok", "embeddedUpstream": upstream.embedded})

    return app


class _GraphQLRouter(GraphQLRouter[dict[str, Any], None]):
    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Every error leaves shaped, whichever step (parse, validate, execute) produced it.
        if result.errors:
            result.errors = [shape_error(error) for error in result.errors]
        return await super().process_result(request, result)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
