"""The routes beside ``/graphql`` that operators use: ``/healthz``, ``/readyz``, ``/metrics``.

* ``/healthz``: the process lives and answers HTTP;
* ``/readyz``: the billing API answers (checked at most every 5 s, by one probe at a time:
  concurrent requests share its answer); Redis being unreachable, slow or full makes the
  cache ``degraded``, not the gateway unready (it is a cache), and, with callers' rates
  limited, ``rateLimits`` ``degraded`` (counted per process meanwhile); with Redis, ``live``
  ``degraded`` while live balances cannot use it (each process polls its listings alone);
* ``/metrics``: Prometheus' text format. The metrics name every caller's operations: with
  callers authenticated by JWT they are served only to ``GATEWAY_METRICS_TOKEN`` (else not at
  all: 404); without caller authentication, to anyone unless that token is set (README,
  "Operations").

Both health checks answer HEAD too: load balancers and uptime checkers often probe with it.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Iterable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.http.context import bearer_token
from gateway.http.observability import Metrics
from gateway.http.responses import refusal_response
from gateway.live import LiveHub
from gateway.rates import CallerRates
from gateway.stores import KeyValueStore
from gateway.upstream import BillingClient

READY_CACHE_SECONDS = 5.0


def operations_routes(
    *,
    stores: Iterable[KeyValueStore],
    embedded: bool,
    metrics: Metrics,
    metrics_token: str | None,
    serve_metrics: bool,
    rates: CallerRates | None = None,
    live: LiveHub | None = None,
) -> APIRouter:
    """The health checks and, when ``serve_metrics``, ``/metrics`` (behind ``metrics_token``
    when there is one). ``embedded``: the billing API is the in-process stand-in, always
    ready."""
    router = APIRouter(include_in_schema=False)
    readiness = Readiness(list(stores), embedded=embedded, rates=rates, live=live)
    router.add_api_route("/healthz", healthz, methods=["GET", "HEAD"])
    router.add_api_route("/readyz", readiness.answer, methods=["GET", "HEAD"])
    if serve_metrics:

        async def prometheus_metrics(request: Request) -> Response:
            if metrics_token is not None and not _same_secret(
                bearer_token(request.scope), metrics_token
            ):
                return refusal_response(
                    "/metrics needs 'Authorization: Bearer <GATEWAY_METRICS_TOKEN>'.",
                    401,
                    code="UNAUTHENTICATED",
                    headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
                )
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

        router.add_api_route("/metrics", prometheus_metrics, methods=["GET"])
    return router


async def healthz() -> JSONResponse:
    """The process lives and answers HTTP."""
    return JSONResponse({"status": "ok"})


class Readiness:
    """Whether the billing API answers, asked of the billing client the app's lifespan opened
    (``app.state.billing``), at most every :data:`READY_CACHE_SECONDS`."""

    def __init__(
        self,
        stores: list[KeyValueStore],
        *,
        embedded: bool,
        rates: CallerRates | None = None,
        live: LiveHub | None = None,
    ) -> None:
        self.stores = stores
        self.rates = rates
        self.live = live
        self.embedded = embedded
        self.ready = False
        self.ready_at: float | None = None
        self.probe: asyncio.Future[None] | None = None

    async def answer(self, request: Request) -> JSONResponse:
        cache = "degraded" if not all([await store.ping() for store in self.stores]) else "ok"
        # Caller rates counted per process while their Redis fails: each replica allows the
        # whole quota on its own.
        limits = {} if self.rates is None else {"rateLimits": await _rate_state(self.rates)}
        # Live balances shared through Redis: degraded while each process polls alone.
        if self.live is not None:
            limits["live"] = "degraded" if self.live.bus.degraded else "ok"
        if self.embedded:
            body = {"status": "ready", "embeddedUpstream": True, "cache": cache, **limits}
            return JSONResponse(body)
        if self.ready_at is None or time.monotonic() - self.ready_at > READY_CACHE_SECONDS:
            if self.probe is None:
                self.probe = asyncio.ensure_future(self._probe(request.app.state.billing))
            # Shielded: a prober whose client leaves must not cancel the others' answer.
            await asyncio.shield(self.probe)
        body = {
            "status": "ready" if self.ready else "unavailable",
            "embeddedUpstream": False,
            "cache": cache,
            **limits,
        }
        return JSONResponse(body, status_code=200 if self.ready else 503)

    async def _probe(self, billing: BillingClient) -> None:
        try:
            self.ready = await billing.answers()
            self.ready_at = time.monotonic()
        finally:
            self.probe = None


async def _rate_state(rates: CallerRates) -> str:
    return "ok" if await rates.ping() else "degraded"


def _same_secret(presented: str | None, expected: str) -> bool:
    """Whether the presented token is the expected one, compared in constant time."""
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("latin-1"), expected.encode())


__all__ = ["READY_CACHE_SECONDS", "Readiness", "operations_routes"]
