"""CORS for the browser origins listed in ``GATEWAY_CORS_ORIGINS`` (Starlette's middleware).

Listed origins may send credentials and ``Authorization`` (so ``*`` and ``null`` are refused at
start-up), and every request header the gateway reads or documents; pages may read the
request id; browsers keep a preflight 10 minutes.
"""

from __future__ import annotations

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from gateway.http.context import COST_HEADER
from gateway.http.observability import REQUEST_ID_HEADER

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


def allow_origins(app: ASGIApp, origins: list[str]) -> ASGIApp:
    """``app`` answering preflights from, and cross-origin requests of, ``origins``."""
    return CORSMiddleware(
        app,
        allow_origins=origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=CORS_REQUEST_HEADERS,
        # A page may read where its caller stands (GATEWAY_CALLER_RATE) and when to retry.
        expose_headers=[REQUEST_ID_HEADER, "RateLimit", "RateLimit-Policy", "Retry-After"],
        max_age=600,
    )


__all__ = ["CORS_REQUEST_HEADERS", "allow_origins"]
