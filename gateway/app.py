"""The composition root: ``create_app(settings, transport=None)`` builds the whole service.

``transport`` is where tests and the embedded stand-in plug in: when given, every upstream call
goes through it (``httpx.MockTransport`` for faults, ``ASGITransport`` for the stand-in); when
``settings.metronome_base_url`` is unset the stand-in is used in process.

The layers, outermost first: :class:`~gateway.observability.AccessLog` (request id, trace
context, metrics, one JSON line per request) -> :class:`~gateway.guard.RequestGuard` (body
limit, cancellation) -> CORS (when origins are configured) ->
:class:`~gateway.lane.GraphQLLane` (plain JSON POSTs straight to the schema) -> FastAPI
(``/graphql`` through Strawberry's view, GraphiQL and its assets, health, metrics).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLHTTPResponse
from strawberry.types import ExecutionResult

from gateway import graphiql, standin
from gateway.config import Settings
from gateway.guard import ON_CLOSE, ASGIApp, RequestGuard, Scope
from gateway.lane import LANE, GraphQLLane
from gateway.observability import ACCESS, REQUEST_ID_HEADER, AccessLog, Metrics
from gateway.schema import QueryLimits, RequestContext, build_schema, shape_error
from gateway.upstream import BillingClient, RetryPolicy
from gateway.upstream.transport import AiohttpTransport

logger = logging.getLogger("gateway")

STANDIN_BASE_URL = "http://billing-standin.invalid"
_CONTEXT = "gateway.context"  # scope key of the request's RequestContext
_READY_CACHE_SECONDS = 5.0


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


def demo_query() -> str:
    """GraphiQL's default query on the embedded stand-in: the README's first query."""
    return f"""# Answers come from the EMBEDDED STAND-IN of the billing API (demo data).
query FirstSeats {{
  seatBalances(
    customerId: "{standin.DEMO_CUSTOMER_ID}"
    contractId: "{standin.DEMO_CONTRACT_ID}"
    first: 5
  ) {{
    pageInfo {{ hasNextPage endCursor }}
    edges {{
      cursor
      node {{
        seatId
        balances {{ creditTypeId balance startingBalance }}
        commits {{ commitId balance startDate endDate ledgerEntries {{ type amount timestamp }} }}
        credits {{ creditId balance }}
      }}
    }}
  }}
}}
"""


def create_app(
    settings: Settings,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    retry_sleep: Callable[[float], Awaitable[None]] | None = None,
) -> ASGIApp:
    """The whole service. ``transport`` replaces the network under the upstream client and
    ``retry_sleep`` the wait between retries (tests record it instead of waiting)."""
    upstream = resolve_upstream(settings, transport)
    # httpx and httpcore log every request with its URL; the billing API's address is not for
    # the logs (nor are the hosts a test points it at).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
    forced_token = (
        settings.metronome_bearer_token.get_secret_value()
        if settings.metronome_bearer_token
        else None
    )
    metrics = Metrics()
    policy = RetryPolicy(
        max_retries=settings.upstream_max_retries,
        attempt_timeout=settings.upstream_timeout,
        deadline=settings.upstream_deadline,
        max_concurrency=settings.upstream_concurrency,
    )
    if retry_sleep is not None:
        policy = replace(policy, sleep=retry_sleep)
    limits = QueryLimits(
        max_query_bytes=settings.max_query_bytes,
        max_tokens=settings.max_tokens,
        max_depth=settings.max_depth,
        max_aliases=settings.max_aliases,
        max_upstream_calls=settings.max_upstream_calls,
        max_selections=settings.max_selections,
        max_seat_ids=settings.max_seat_ids_per_operation,
        introspection=settings.introspection,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        transport = upstream.transport or AiohttpTransport(
            max_connections=settings.upstream_concurrency,
            connect_timeout=min(5.0, settings.upstream_timeout),
        )
        try:
            app.state.billing = BillingClient(
                transport,
                upstream.base_url,
                policy,
                metrics,
                user_agent="seat-balance-gateway/0.1",
            )
            app.state.ready_at = None
            yield
        finally:
            await transport.aclose()

    def make_context(scope: Scope) -> dict[str, Any]:
        """The Strawberry context of one request: its token and fresh loaders."""
        token = forced_token or _bearer(scope) or upstream.default_token
        context = RequestContext(
            client=app.state.billing,
            token=token,
            max_upstream_calls=settings.max_upstream_calls,
            observer=metrics,
        )
        scope[_CONTEXT] = context
        scope.setdefault(ON_CLOSE, []).append(context.close)
        return {"gateway": context}

    async def context_getter(request: Request) -> dict[str, Any]:
        return {"request": request, **make_context(request.scope)}

    app = FastAPI(
        title="Seat balance GraphQL gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    schema = build_schema(limits, fast_path=settings.fast_path)
    graphql = _GraphQLRouter(
        schema,
        context_getter=context_getter,
        graphql_ide="graphiql" if settings.graphiql else None,
    )
    graphql.default_query = demo_query() if upstream.embedded else None
    app.include_router(graphql, prefix="/graphql")
    if settings.graphiql:
        app.mount(graphiql.ASSETS_PATH, StaticFiles(directory=graphiql.ASSETS_DIR), name="graphiql")

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:
        """The process lives and answers HTTP."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the billing API answers (checked at most every 5 s)."""
        if upstream.embedded:
            return JSONResponse({"status": "ready", "embeddedUpstream": True})
        state = request.app.state
        now = time.monotonic()
        if state.ready_at is None or now - state.ready_at > _READY_CACHE_SECONDS:
            state.ready = await state.billing.answers()
            state.ready_at = now
        body = {"status": "ready" if state.ready else "unavailable", "embeddedUpstream": False}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    stack: ASGIApp = GraphQLLane(
        app,
        path="/graphql",
        schema=schema,
        make_context=make_context,
        on_result=_record,
        enabled=settings.http_fast_lane,
    )
    if settings.cors_origins:
        stack = CORSMiddleware(
            stack,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["authorization", "content-type", REQUEST_ID_HEADER, "traceparent"],
            expose_headers=[REQUEST_ID_HEADER],
            max_age=600,
        )
    stack = RequestGuard(stack, max_body_bytes=settings.max_body_bytes)
    return AccessLog(stack, metrics)


class _GraphQLRouter(GraphQLRouter[dict[str, Any], None]):
    default_query: str | None = None

    # orjson: several times faster than the stdlib on large answers, same JSON.
    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        """GraphiQL from the gateway's own assets: no CDN, a strict CSP."""
        page = graphiql.render_page(graphql_path="/graphql", default_query=self.default_query)
        return HTMLResponse(
            page, headers={"Content-Security-Policy": graphiql.CONTENT_SECURITY_POLICY}
        )

    async def process_result(
        self, request: Request, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        # Every error leaves shaped, whichever step (parse, validate, execute) produced it.
        _record(request.scope, result)
        return await super().process_result(request, result)


def _record(scope: Scope, result: ExecutionResult) -> None:
    """Shapes the result's errors, and tells the access log and the metrics about it."""
    if result.errors:
        result.errors = [shape_error(error) for error in result.errors]
    access = scope.get(ACCESS)
    if access is None:
        return
    context = scope.get(_CONTEXT)
    codes = [str((error.extensions or {}).get("code")) for error in result.errors or ()]
    outcome = "ok" if not codes else ("partial" if result.data else "error")
    access.update(
        route=(
            "lane" if scope.get(LANE) else "view",
            "fast-path" if context and context.fast_path else "graphql-core",
        ),
        operation=context.operation_name if context else None,
        upstreamCalls=context.upstream_calls if context else 0,
        errorCodes=codes,
        outcome=outcome,
    )


def _bearer(scope: Scope) -> str | None:
    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
