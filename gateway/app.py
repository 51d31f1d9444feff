"""The composition root: ``create_app(settings, transport=None)`` builds the whole service.

``transport`` is where tests and the embedded stand-in plug in: when given, every upstream call
goes through it (``httpx.MockTransport`` for faults, ``ASGITransport`` for the stand-in); when
``settings.metronome_base_url`` is unset the stand-in is used in process.

The layers, outermost first: :class:`~gateway.http.observability.AccessLog` (request id, trace
context, metrics, one JSON line per request) -> :class:`~gateway.http.guard.RequestGuard` (header
and body limits, cancellation) -> :class:`~gateway.http.compression.ResponseCompression`
(``Accept-Encoding``, when enabled) -> CORS (:mod:`gateway.http.cors`, when origins are
configured) -> :class:`~gateway.http.auth.CallerAuthentication` (when callers authenticate by
JWT) -> FastAPI (``/graphql`` through :class:`~gateway.http.view.GraphQLView`, Strawberry's view,
with each request's context from :class:`~gateway.http.context.RequestContexts`; GraphiQL's page
and assets from :mod:`gateway.graphiql`; health and metrics from :mod:`gateway.http.routes`).

Only composition here: what each part does lives in its module; this one decides which parts
a configuration gets, and plugs in the stand-in.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, replace
from ipaddress import ip_network
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp

from gateway import graphiql, standin
from gateway.config import Settings, Stores
from gateway.http.auth import CallerAuthentication, CallerAuthenticator
from gateway.http.compression import ResponseCompression
from gateway.http.context import RequestContexts
from gateway.http.cors import allow_origins
from gateway.http.guard import SHUTDOWN_STATE, RequestGuard
from gateway.http.mcp import (
    METADATA_PATH,
    ROOT_METADATA_PATH,
    GraphQLTools,
    McpEndpoint,
    resource_metadata,
)
from gateway.http.observability import AccessLog, Metrics
from gateway.http.persisted import PersistedDocuments, load_trusted_documents
from gateway.http.ratelimit import CallerIdentity, CallerRateLimit, operation_admission
from gateway.http.routes import operations_routes
from gateway.http.view import GraphQLView
from gateway.http.webhooks import PATH as WEBHOOK_PATH
from gateway.http.webhooks import WebhookReceiver
from gateway.live import LiveHub
from gateway.loaders import PageCache
from gateway.loaders.details import CreditTypeCache
from gateway.schema import build_schema, print_client_sdl
from gateway.upstream import BillingClient, RetryPolicy
from gateway.upstream.budget import BudgetMetrics, UpstreamBudget
from gateway.upstream.transport import billing_transport

logger = logging.getLogger("gateway")

STANDIN_BASE_URL = "http://billing-standin.invalid"


@dataclass(frozen=True)
class Upstream:
    """Where upstream calls go and which token they carry when the caller sends none."""

    base_url: str
    transport: httpx.AsyncBaseTransport | None
    default_token: str | None
    embedded: bool
    standin_app: Any = None  # the embedded stand-in (its demo activity moves its balances)


def resolve_upstream(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> Upstream:
    configured = settings.metronome_bearer_token
    token = configured.get_secret_value() if configured else None
    if settings.embedded:
        standin_app = None  # a test's transport stands in for the stand-in itself
        if transport is None:
            standin_app = standin.create_standin_app()
            transport = httpx.ASGITransport(app=standin_app)
        return Upstream(
            base_url=STANDIN_BASE_URL,
            transport=transport,
            # Callers may still send their own token (e.g. the stand-in's second account).
            default_token=token or standin.DEMO_TOKEN,
            embedded=True,
            standin_app=standin_app,
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


def demo_subscription() -> str:
    """GraphiQL's second tab on the embedded stand-in: the README's live subscription (the
    whole demo contract, so that the seats the stand-in moves are in it)."""
    return f"""# Live balances from the EMBEDDED STAND-IN: a SNAPSHOT of every seat first, then
# the seats whose balances change (the stand-in moves a few every few seconds).
subscription LiveSeats {{
  seatBalanceUpdates(
    customerId: "{standin.DEMO_CUSTOMER_ID}"
    contractId: "{standin.DEMO_CONTRACT_ID}"
  ) {{
    reason
    at
    seats {{ seatId balances {{ creditTypeId balance }} }}
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
    metrics = Metrics()
    policy = settings.retry_policy()
    if retry_sleep is not None:
        policy = replace(policy, sleep=retry_sleep)
    schema = build_schema(
        settings.query_limits(),
        fast_path=settings.fast_path,
        max_batch=settings.max_batch,
        auth_directives=settings.federation_auth_directives,
    )
    trusted = (
        load_trusted_documents(settings.trusted_documents, schema._schema, schema.documents)
        if settings.trusted_documents is not None
        else None
    )
    redis = settings.redis(metrics)
    stores = settings.stores(metrics, redis)
    rates = settings.caller_rates(metrics, redis)
    budget = settings.upstream_budget(BudgetMetrics(metrics.registry), metrics, redis)
    persisted = PersistedDocuments(
        stores.apq,
        trusted,
        trusted_only=settings.trusted_documents_only,
        max_query_bytes=settings.max_query_bytes,
        ttl=settings.persisted_queries_ttl,
        authenticated_only=authenticator is not None,
        registrations_per_minute=settings.persisted_queries_registrations_per_minute,
        observer=metrics,
    )
    page_cache = PageCache(stores.pages, settings.cache_ttl, metrics)
    # The live listings: one refresh loop each, shared by their subscribers (and, with Redis,
    # by the replicas); the billing client is the one the lifespan opens.
    holder: dict[str, BillingClient] = {}
    hub = LiveHub(
        settings.live_settings(),
        settings.live_bus(redis, metrics),
        page_cache=page_cache,
        observer=metrics,
        client=lambda: holder["billing"],
    )
    identity = CallerIdentity(
        authenticates_callers=authenticator is not None,
        forwarding=settings.metronome_bearer_token is None,
        trusted_proxies=[ip_network(proxy, strict=False) for proxy in settings.trusted_proxies],
    )
    contexts = RequestContexts(
        authenticates_callers=authenticator is not None,
        forced_token=_secret(settings.metronome_bearer_token),
        default_token=upstream.default_token,
        max_upstream_calls=settings.max_upstream_calls,
        observer=metrics,
        credit_types=CreditTypeCache(ttl=settings.credit_types_ttl),
        # Always there: with GATEWAY_CACHE_TTL=0 it keeps nothing but still shares identical
        # upstream calls in flight.
        page_cache=page_cache,
        live=hub,
        identity=identity,
        authenticator=authenticator,
    )
    view = GraphQLView(
        schema,
        context_factory=contexts,
        graphiql_page=graphiql.page(
            default_query=demo_query() if upstream.embedded else None,
            caller_mode=graphiql.caller_mode(settings),
            default_subscription=demo_subscription() if upstream.embedded else None,
        )
        if settings.graphiql
        else None,
        persisted=persisted,
        cache_ttl=settings.cache_ttl,
        max_response_bytes=settings.max_response_bytes,
        connection_check=contexts.connect,
        allowed_origins=tuple(settings.cors_origins),
        operation_admission=operation_admission(rates, identity) if rates is not None else None,
    )
    # Webhooks: the endpoint with METRONOME_WEBHOOK_SECRET; on the embedded stand-in, its demo
    # activity signs with its published demo secret and delivers in process.
    webhooks = (
        WebhookReceiver(settings.metronome_webhook_secret.get_secret_value(), hub, metrics)
        if settings.metronome_webhook_secret is not None
        else None
    )
    demo = (
        standin.DemoActivity(
            upstream.standin_app,
            _deliver_to(WebhookReceiver(standin.DEMO_WEBHOOK_SECRET, hub, metrics)),
            period=settings.demo_live_seconds,
        )
        if upstream.standin_app is not None and settings.demo_live
        else None
    )

    # /mcp: every tool call runs through the same schema with the same request contexts.
    mcp = (
        McpEndpoint(
            GraphQLTools(
                schema,
                contexts,
                sdl=print_client_sdl(schema),
                trusted=trusted,
                execute=settings.mcp_execute,
                admission=operation_admission(rates, identity) if rates is not None else None,
            ),
            authenticator,
        )
        if settings.mcp
        else None
    )

    app = FastAPI(
        title="Seat balance GraphQL gateway",
        lifespan=_lifespan(
            settings,
            upstream,
            policy,
            metrics,
            stores,
            authenticator,
            budget,
            mcp,
            live=Live(hub, holder, demo),
        ),
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    # Routed as a plain ASGI endpoint: Strawberry's view does its own parsing, so FastAPI's
    # dependency injection would only add cost. Every method reaches the view, so that a 405
    # is a GraphQL error that varies on Accept like every other answer of /graphql.
    app.router.routes.append(Route("/graphql", endpoint=view))
    # Subscriptions over graphql-transport-ws: the same view, the same schema and contexts.
    app.router.routes.append(WebSocketRoute("/graphql", endpoint=view))
    if webhooks is not None:
        app.router.routes.append(Route(WEBHOOK_PATH, endpoint=webhooks))
    if mcp is not None:
        # A plain ASGI endpoint too: the SDK's transport answers every method itself.
        app.router.routes.append(Route("/mcp", endpoint=mcp))
        if authenticator is not None:
            metadata = resource_metadata(settings.jwt_issuer)
            for path in (METADATA_PATH, ROOT_METADATA_PATH):
                app.router.routes.append(Route(path, endpoint=metadata))
    if settings.graphiql:
        app.mount(graphiql.ASSETS_PATH, graphiql.assets(), name="graphiql")
    app.include_router(
        operations_routes(
            stores=stores,
            embedded=upstream.embedded,
            metrics=metrics,
            metrics_token=_secret(settings.metrics_token),
            # The metrics name every caller's operations (README, "Operations").
            serve_metrics=settings.metrics_token is not None or authenticator is None,
            rates=rates,
            live=hub if redis is not None else None,
        )
    )

    stack: ASGIApp = app
    if rates is not None:
        # Inside authentication (a JWT's subject names the caller), in front of the view (a
        # refused request parses nothing and calls nothing upstream).
        stack = CallerRateLimit(stack, rates, identity, path="/graphql")
    if authenticator is not None:
        stack = CallerAuthentication(stack, authenticator, path="/graphql")
    if settings.cors_origins:
        stack = allow_origins(stack, settings.cors_origins)
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


def _lifespan(
    settings: Settings,
    upstream: Upstream,
    policy: RetryPolicy,
    metrics: Metrics,
    stores: Stores,
    authenticator: CallerAuthenticator | None,
    budget: UpstreamBudget | None = None,
    mcp: McpEndpoint | None = None,
    *,
    live: Live,
) -> Callable[[FastAPI], AbstractAsyncContextManager[dict[str, Any]]]:
    """Opens the billing client (``app.state.billing``) when the app starts, and closes it,
    the stores and the JWKS client when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
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
                budget=budget,
            )
            live.clients["billing"] = app.state.billing
            await live.hub.start()
            demo = asyncio.ensure_future(live.demo.run()) if live.demo is not None else None
            # In the lifespan state: `gateway serve`'s protocol ends live streams when the
            # server starts shutting down (they never end by themselves).
            state = {SHUTDOWN_STATE: live.hub.drain}
            try:
                if mcp is None:
                    yield state
                else:
                    async with mcp.run():  # the MCP transport's task group
                        yield state
            finally:
                if demo is not None:
                    demo.cancel()
                await live.hub.aclose()
        finally:
            await transport.aclose()
            for store in stores:
                await store.aclose()
            if authenticator is not None:
                await authenticator.aclose()

    return lifespan


@dataclass(frozen=True)
class Live:
    """What the lifespan starts and stops for live balances."""

    hub: LiveHub
    clients: dict[str, BillingClient]  # the billing client, once the lifespan opened it
    demo: standin.DemoActivity | None


def _deliver_to(receiver: WebhookReceiver) -> Callable[[bytes, Mapping[str, str]], Awaitable[int]]:
    """The stand-in's in-process delivery: the receiver's verification, as over HTTP."""

    async def deliver(body: bytes, headers: Mapping[str, str]) -> int:
        status, _code, _message = await receiver.receive(
            {name.lower(): value for name, value in headers.items()}, body
        )
        return status

    return deliver


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
