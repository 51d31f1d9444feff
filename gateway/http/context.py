"""The HTTP request read into the schema's :class:`~gateway.schema.RequestContext`.

Every request header the schema acts on is read here, once, and handed down as a plain value:
who the caller is (caller authentication's verdict in the request state), which billing token
upstream calls carry (the gateway's own, or the caller's ``Authorization: Bearer`` in
forwarding mode), ``Cache-Control: no-cache`` (or ``Pragma: no-cache``: fetch every page anew)
and ``X-Gateway-Cost: true`` (add ``extensions.cost``). The schema reads the flags, never the
headers.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Protocol

from starlette.requests import Request
from starlette.types import Scope

from gateway.http.state import request_state
from gateway.live import LiveHub
from gateway.loaders import BatchObserver, PageCache
from gateway.loaders.details import CreditTypeCache
from gateway.schema import RequestContext
from gateway.schema.access import ANONYMOUS, UNRESTRICTED, Caller

COST_HEADER = "x-gateway-cost"


class Authenticator(Protocol):
    """What verifies a caller's JWT (:class:`gateway.http.auth.CallerAuthenticator`)."""

    async def authenticate(self, token: str) -> Caller: ...


_COST_HEADER = COST_HEADER.encode()


class RequestContexts:
    """Makes each request's context: its caller, its token and fresh loaders (closed with the
    request), over the process's credit type cache and page cache. The billing client is the
    one the app's lifespan opened (``app.state.billing``)."""

    def __init__(
        self,
        *,
        authenticates_callers: bool,
        forced_token: str | None,
        default_token: str | None,
        max_upstream_calls: int,
        observer: BatchObserver,
        credit_types: CreditTypeCache,
        page_cache: PageCache,
        live: LiveHub | None = None,
        identity: Callable[[Scope], str] | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.authenticates_callers = authenticates_callers
        self.forced_token = forced_token  # METRONOME_BEARER_TOKEN: every upstream call's
        self.default_token = default_token  # when the caller sends none (the stand-in's)
        self.max_upstream_calls = max_upstream_calls
        self.observer = observer
        self.credit_types = credit_types
        self.page_cache = page_cache
        self.live = live
        self.identity = identity  # names a caller for the live subscription limits
        self.authenticator = authenticator  # verifies a WebSocket connection's JWT

    def __call__(self, request: Request) -> RequestContext:
        scope = request.scope
        if self.authenticates_callers:
            # The caller's Authorization carries its JWT, which never goes upstream.
            caller = request_state(scope).caller or ANONYMOUS
            token = self.forced_token or self.default_token
        else:
            caller = UNRESTRICTED
            token = self.forced_token or bearer_token(scope) or self.default_token
        context = RequestContext(
            client=request.app.state.billing,
            token=token,
            max_upstream_calls=self.max_upstream_calls,
            observer=self.observer,
            caller=caller,
            credit_types=self.credit_types,
            page_cache=self.page_cache,
            refresh=no_cache(scope),
            cost_asked=cost_asked(scope),
            live=self.live,
            identify=partial(self.identity, scope) if self.identity is not None else None,
        )
        state = request_state(scope)
        state.context = context
        state.on_close.append(context.close)
        return context

    async def connect(
        self, context: RequestContext, scope: Scope, authorization: str | None
    ) -> bool:
        """A WebSocket connection's credentials, from its ``connection_init`` payload's
        ``Authorization`` (else its upgrade request's): with callers authenticated by JWT, a
        token that does not verify refuses the connection (none: its operations are
        anonymous, and refused as such); in forwarding mode, the billing token its operations'
        calls carry."""
        token = _bearer(authorization) if authorization is not None else bearer_token(scope)
        if self.authenticator is not None:
            if token is None:
                return authorization is None  # a payload that is not a bearer token: refused
            try:
                caller = await self.authenticator.authenticate(token)
            except Exception:
                return False
            context.caller = caller
            request_state(scope).caller = caller  # the subscription limits name it by it
        elif token is not None and self.forced_token is None:
            context.token = token
        return True


def _bearer(header: str) -> str | None:
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bearer_token(scope: Scope) -> str | None:
    """The token of the request's ``Authorization: Bearer <token>``, if it sent one."""
    header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    scheme, _, token = header.decode("latin-1").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def no_cache(scope: Scope) -> bool:
    """The caller sent ``Cache-Control: no-cache`` (or ``Pragma: no-cache``): fresh pages."""
    for name, value in scope["headers"]:
        if name in (b"cache-control", b"pragma") and b"no-cache" in value.lower():
            return True
    return False


def cost_asked(scope: Scope) -> bool:
    """The caller sent ``X-Gateway-Cost: true``: the answer's ``extensions.cost``."""
    header: bytes = next((v for k, v in scope["headers"] if k == _COST_HEADER), b"")
    return header.decode("latin-1").strip().lower() == "true"


__all__ = ["COST_HEADER", "RequestContexts", "bearer_token", "cost_asked", "no_cache"]
