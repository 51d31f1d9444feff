"""The composition root: ``create_app(settings, transport=None)`` builds the whole service.

``transport`` is where tests and the embedded stand-in plug in: when given, every upstream call
goes through it (``httpx.MockTransport`` for faults, ``ASGITransport`` for the stand-in); when
``settings.metronome_base_url`` is unset the stand-in is used in process.

The layers, outermost first: :class:`~gateway.http.observability.AccessLog` (request id, trace
context, metrics, one JSON line per request) -> :class:`~gateway.http.guard.RequestGuard` (header
and body limits, cancellation) -> :class:`~gateway.http.compression.ResponseCompression`
(``Accept-Encoding``, when enabled) -> CORS (when origins are configured) ->
:class:`~gateway.http.auth.CallerAuthentication` (when callers authenticate by JWT) -> FastAPI
(``/graphql`` through :class:`~gateway.http.view.GraphQLView`, Strawberry's view; GraphiQL's
assets, health, metrics).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope
from strawberry.types import ExecutionResult

from gateway import graphiql, standin
from gateway.config import Settings
from gateway.http.auth import CallerAuthentication, CallerAuthenticator
from gateway.http.compression import ResponseCompression
from gateway.http.guard import RequestGuard
from gateway.http.observability import REQUEST_ID_HEADER, AccessLog, Metrics
from gateway.http.persisted import PersistedDocuments, load_trusted_documents
from gateway.http.responses import refusal_response
from gateway.http.state import request_state
from gateway.http.view import GraphQLView
from gateway.loaders import PageCache
from gateway.loaders.details import CreditTypeCache
from gateway.schema import RequestContext, build_schema, shape_error
from gateway.schema.access import ANONYMOUS, UNRESTRICTED
from gateway.schema.work import COST_HEADER
from gateway.stores import (
    FORMAT_VERSION,
    CircuitBreaker,
    InProcessStore,
    KeyValueStore,
    RedisStore,
)
from gateway.upstream import BillingClient
from gateway.upstream.transport import billing_transport

logger = logging.getLogger("gateway")

STANDIN_BASE_URL = "http://billing-standin.invalid"
# What a page on a listed origin may send (the preflight's Access-Control-Allow-Headers): a
# header missing here fails the browser's fetch as a whole. Accept is CORS-safelisted (and
# Starlette allows it with the other safelisted headers).
CORS_REQUEST_HEADERS = [
    # Read by the gateway, or documented for callers to send.
    "authorization",
    "content-type",
    COST_HEADER,  # X-Gateway-Cost: true adds extensions.cost
    "cache-control",  # no-cache fetches every page anew
    "pragma",
    REQUEST_ID_HEADER,
    "traceparent",  # the W3C trace context joined by the access log's span
    "tracestate",
    # Sent by common GraphQL clients: Apollo Client's client awareness, and the headers
    # Apollo's CSRF prevention asks of clients (Apollo Client with file uploads, Apollo Kotlin).
    "apollographql-client-name",
    "apollographql-client-version",
    "apollo-require-preflight",
    "x-apollo-operation-name",
]
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
        balances {{ creditTypeId creditType {{ name }} balance startingBalance }}
        commits {{
          commitId name type product {{ name }} allocation balance startDate endDate
          ledgerEntries {{ type amount timestamp }}
        }}
        credits {{ creditId name balance }}
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
    jwks_transport: httpx.AsyncBaseTransport | None = None,
) -> ASGIApp:
    """The whole service. ``transport`` replaces the network under the upstream client,
    ``retry_sleep`` the wait between retries (tests record it instead of waiting) and
    ``jwks_transport`` the network under the JWKS fetches."""
    upstream = resolve_upstream(settings, transport)
    authenticator = CallerAuthenticator.from_settings(settings, transport=jwks_transport)
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
    credit_types = CreditTypeCache(ttl=settings.credit_types_ttl)
    policy = settings.retry_policy()
    if retry_sleep is not None:
        policy = replace(policy, sleep=retry_sleep)
    limits = settings.query_limits()
    schema = build_schema(
        limits,
        fast_path=settings.fast_path,
        max_batch=settings.max_batch,
        auth_directives=settings.federation_auth_directives,
    )
    trusted = (
        load_trusted_documents(settings.trusted_documents, schema._schema, schema.documents)
        if settings.trusted_documents is not None
        else None
    )
    stores = _stores(settings, metrics)
    apq_store, page_store = stores
    persisted = PersistedDocuments(
        apq_store,
        trusted,
        trusted_only=settings.trusted_documents_only,
        max_query_bytes=settings.max_query_bytes,
        ttl=settings.persisted_queries_ttl,
        authenticated_only=authenticator is not None,
        registrations_per_minute=settings.persisted_queries_registrations_per_minute,
        observer=metrics,
    )
    # Always there: with GATEWAY_CACHE_TTL=0 it keeps nothing but still shares identical
    # upstream calls in flight.
    page_cache = PageCache(page_store, settings.cache_ttl, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One connection per slot of both lanes: a seat page never waits for a connection
        # that a hanging detail call holds.
        transport = upstream.transport or billing_transport(
            upstream.base_url,
            max_connections=settings.upstream_concurrency + settings.details_concurrency,
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
            app.state.ready_probe = None
            yield
        finally:
            await transport.aclose()
            for store in stores:
                await store.aclose()
            if authenticator is not None:
                await authenticator.aclose()

    def make_context(request: Request) -> RequestContext:
        """The request's own state: its caller, its token and fresh loaders (closed with the
        request)."""
        scope = request.scope
        if authenticator is None:
            caller = UNRESTRICTED
            token = forced_token or _bearer(scope) or upstream.default_token
        else:
            # The caller's Authorization carries its JWT, which never goes upstream.
            caller = request_state(scope).caller or ANONYMOUS
            token = forced_token or upstream.default_token
        context = RequestContext(
            client=app.state.billing,
            token=token,
            max_upstream_calls=settings.max_upstream_calls,
            observer=metrics,
            caller=caller,
            credit_types=credit_types,
            page_cache=page_cache,
            refresh=_no_cache(scope),
        )
        state = request_state(scope)
        state.context = context
        state.on_close.append(context.close)
        return context

    app = FastAPI(
        title="Seat balance GraphQL gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    default_query = demo_query() if upstream.embedded else None
    caller_mode = _caller_mode(settings)

    def graphiql_page() -> HTMLResponse:
        """GraphiQL from the gateway's own assets: no CDN, a strict CSP."""
        page = graphiql.render_page(
            graphql_path="/graphql", default_query=default_query, caller_mode=caller_mode
        )
        return HTMLResponse(
            page, headers={"Content-Security-Policy": graphiql.CONTENT_SECURITY_POLICY}
        )

    view = GraphQLView(
        schema,
        context_factory=make_context,
        on_result=lambda request, result: _record(request.scope, result),
        graphiql_page=graphiql_page if settings.graphiql else None,
        persisted=persisted,
        cache_ttl=settings.cache_ttl,
        max_response_bytes=settings.max_response_bytes,
    )
    # Routed as a plain ASGI endpoint: Strawberry's view does its own parsing, so FastAPI's
    # dependency injection would only add cost. Every method reaches the view, so that a 405
    # is a GraphQL error that varies on Accept like every other answer of /graphql.
    app.router.routes.append(Route("/graphql", endpoint=view))
    if settings.graphiql:
        app.mount(graphiql.ASSETS_PATH, StaticFiles(directory=graphiql.ASSETS_DIR), name="graphiql")

    # HEAD too: load balancers and uptime checkers often probe with it.
    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> JSONResponse:
        """The process lives and answers HTTP."""
        return JSONResponse({"status": "ok"})

    @app.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        """Ready when the billing API answers (checked at most every 5 s, by one probe at a
        time: concurrent requests share its answer)."""
        # Redis is a cache: unreachable, slow (its breaker open) or full (refusing writes),
        # the gateway still answers (degraded), and is ready.
        cache = "degraded" if not all([await store.ping() for store in stores]) else "ok"
        if upstream.embedded:
            return JSONResponse({"status": "ready", "embeddedUpstream": True, "cache": cache})
        state = request.app.state
        if state.ready_at is None or time.monotonic() - state.ready_at > _READY_CACHE_SECONDS:
            if state.ready_probe is None:
                state.ready_probe = asyncio.ensure_future(_probe_billing(state))
            # Shielded: a prober whose client leaves must not cancel the others' answer.
            await asyncio.shield(state.ready_probe)
        body = {
            "status": "ready" if state.ready else "unavailable",
            "embeddedUpstream": False,
            "cache": cache,
        }
        return JSONResponse(body, status_code=200 if state.ready else 503)

    # The metrics name every caller's operations: with callers authenticated by JWT they are
    # served only to GATEWAY_METRICS_TOKEN (else not at all: 404); without caller
    # authentication, to anyone unless that token is set (README, "Operations").
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    if metrics_token is not None or authenticator is None:

        @app.get("/metrics", include_in_schema=False)
        async def prometheus_metrics(request: Request) -> Response:
            if metrics_token is not None and not _same_secret(
                _bearer(request.scope), metrics_token
            ):
                return refusal_response(
                    "/metrics needs 'Authorization: Bearer <GATEWAY_METRICS_TOKEN>'.",
                    401,
                    code="UNAUTHENTICATED",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    stack: ASGIApp = app
    if authenticator is not None:
        stack = CallerAuthentication(stack, authenticator, path="/graphql")
    if settings.cors_origins:
        stack = CORSMiddleware(
            stack,
            allow_origins=settings.cors_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=[REQUEST_ID_HEADER],
            max_age=600,
        )
    if settings.compression:
        stack = ResponseCompression(
            stack, minimum_bytes=settings.compression_min_bytes, assets_path=graphiql.ASSETS_PATH
        )
    # Outside compression, so that oversized headers are refused before anything parses them
    # (an Accept-Encoding of megabytes would otherwise be negotiated first).
    stack = RequestGuard(
        stack,
        max_body_bytes=settings.max_body_bytes,
        body_timeout=settings.request_body_timeout,
        header_timeout=settings.request_header_timeout,
        max_header_bytes=settings.max_header_bytes,
        max_headers_bytes=settings.max_headers_bytes,
    )
    return AccessLog(stack, metrics)


def _record(scope: Scope, result: ExecutionResult) -> None:
    """Shapes the result's errors, and tells the access log and the metrics about it."""
    if result.errors:
        result.errors = [shape_error(error) for error in result.errors]
    state = request_state(scope)
    context = state.context
    codes = [str((error.extensions or {}).get("code")) for error in result.errors or ()]
    # Root fields are nullable: an answer whose every root field is null has no data.
    answered = any(value is not None for value in (result.data or {}).values())
    outcome = "ok" if not codes else ("partial" if answered else "error")
    state.access.update(
        route=("view", _executor_label(context)),
        operation=context.operation_name if context else None,
        upstreamCalls=context.upstream_calls if context else 0,
        errorCodes=codes,
        outcome=outcome,
    )


def _executor_label(context: RequestContext | None) -> str:
    """Which executor answered: the compiled root, graphql-core with the projection, or
    graphql-core field by field (the ``executor`` label of the routes metric)."""
    if context is not None and context.compiled:
        return "compiled"
    return "fast-path" if context is not None and context.fast_path else "graphql-core"


async def _probe_billing(state: Any) -> None:
    try:
        state.ready = await state.billing.answers()
        state.ready_at = time.monotonic()
    finally:
        state.ready_probe = None


def _stores(settings: Settings, metrics: Metrics) -> tuple[KeyValueStore, KeyValueStore]:
    """The APQ store and the page cache's store: in Redis when GATEWAY_REDIS_URL is set (shared
    by every replica), else in this process (bounded)."""
    if settings.redis_url is not None:
        from redis.asyncio import Redis

        client = Redis.from_url(
            settings.redis_url.get_secret_value(),
            socket_timeout=settings.redis_timeout,
            socket_connect_timeout=settings.redis_timeout,
            retry_on_timeout=False,
        )
        common: dict[str, Any] = {
            "timeout": settings.redis_timeout,
            "max_value_bytes": settings.max_body_bytes * 4,
            "observer": metrics,
            # One Redis, one breaker: both stores skip it once it stops answering.
            "breaker": CircuitBreaker(
                "redis",
                threshold=settings.redis_breaker_failures,
                cooldown=settings.redis_breaker_seconds,
                observer=metrics,
            ),
        }
        return (
            RedisStore("redis-apq", client, prefix=f"gateway:{FORMAT_VERSION}:apq:", **common),
            RedisStore("redis-pages", client, prefix=f"gateway:{FORMAT_VERSION}:page:", **common),
        )
    return (
        InProcessStore(
            "memory-apq",
            max_entries=settings.persisted_queries_max_entries,
            max_bytes=settings.persisted_queries_max_bytes,
            observer=metrics,
        ),
        InProcessStore(
            "memory-pages",
            max_entries=settings.cache_max_entries,
            max_bytes=settings.cache_max_bytes,
            observer=metrics,
        ),
    )


def _no_cache(scope: Scope) -> bool:
    """The caller sent ``Cache-Control: no-cache`` (or ``Pragma: no-cache``): fresh pages."""
    for name, value in scope["headers"]:
        if name in (b"cache-control", b"pragma") and b"no-cache" in value.lower():
            return True
    return False


def _caller_mode(settings: Settings) -> graphiql.CallerMode:
    """What GraphiQL's token tab tells a user to send: a JWT (callers authenticate), nothing
    (the gateway's own billing token serves everyone), or their own billing token (forwarding;
    optional on the stand-in, which falls back to its demo token)."""
    if settings.authenticates_callers:
        return "jwt"
    if settings.metronome_bearer_token is not None:
        return "anonymous"
    return "stand-in" if settings.embedded else "forwarding"


def _same_secret(presented: str | None, expected: str) -> bool:
    """Whether the presented token is the expected one, compared in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("latin-1"), expected.encode())


def _bearer(scope: Scope) -> str | None:
    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
