"""Each caller's rate (``GATEWAY_CALLER_RATE``), enforced in front of the GraphQL view.

The ASGI layer inside caller authentication (so that it knows a JWT's subject) and outside the
view (so that a refused request parses nothing and calls nothing upstream). Who the caller is:

* callers authenticate by JWT: its ``sub``; a request without a token: the client address;
* forwarding mode (no ``METRONOME_BEARER_TOKEN``): the SHA-256 of the forwarded bearer token;
  without one, the client address;
* otherwise the client address: the direct peer's, or, when that peer is one of
  ``GATEWAY_TRUSTED_PROXIES``, the rightmost ``X-Forwarded-For`` hop that is not (a client
  can write any hop to the left of what its proxies append, never to the right).

What counts: one unit per operation, so a batch of five costs five. The work estimate would
weigh a heavy operation more, but it is made inside the schema's pipeline, after parsing and
validation, which a refused request should not cost; ``GATEWAY_MAX_COST`` already bounds each
request's weight.

Every GraphQL answer carries the IETF draft's ``RateLimit-Policy: "caller";q=<quota>;w=<window
seconds>`` and ``RateLimit: "caller";r=<remaining>;t=<seconds until the quota is whole>``
(draft-ietf-httpapi-ratelimit-headers, the structured-field form of drafts 07 on); a refused
one is HTTP 429 with ``RATE_LIMITED`` and ``Retry-After``. GraphiQL's page and assets,
``/healthz``, ``/readyz`` and ``/metrics`` are other paths, never counted.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
from collections.abc import Awaitable, Callable, Sequence

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.context import bearer_token
from gateway.http.responses import Headers, graphql_error, send_refusal
from gateway.http.state import request_state
from gateway.rates import CallerRates, Decision, caller_key

RATE_LIMITED = "RATE_LIMITED"
# A GET naming a document by one of these is an operation, whatever it accepts.
_DOCUMENT_PARAMETERS = (b"query=", b"documentId=", b"doc_id=", b"extensions=")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CallerIdentity:
    """Names the caller of a request (see the module's docstring)."""

    def __init__(
        self,
        *,
        authenticates_callers: bool,
        forwarding: bool,
        trusted_proxies: Sequence[Network] = (),
    ) -> None:
        self.authenticates_callers = authenticates_callers
        self.forwarding = forwarding
        self.trusted_proxies = tuple(trusted_proxies)

    def __call__(self, scope: Scope) -> str:
        if self.authenticates_callers:
            caller = request_state(scope).caller
            if caller is not None and caller.authenticated and caller.subject is not None:
                return caller_key("subject", caller.subject)
        elif self.forwarding:
            token = bearer_token(scope)
            if token:
                return caller_key("token", hashlib.sha256(token.encode()).hexdigest())
        return caller_key("address", self.address(scope))

    def address(self, scope: Scope) -> str:
        client = scope.get("client")
        peer = str(client[0]) if client else ""
        if not self._trusted(peer):
            return peer
        hops: list[str] = [
            hop.strip()
            for name, value in scope["headers"]
            if name == b"x-forwarded-for"
            for hop in value.decode("latin-1").split(",")
        ]
        for hop in reversed(hops):
            if not self._trusted(hop):
                return hop
        return hops[0] if hops and hops[0] else peer  # every hop a proxy of ours

    def _trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # "unknown", an obfuscated name, garbage: not one of ours
        return any(ip in network for network in self.trusted_proxies)


class CallerRateLimit:
    """The ASGI layer: refuses a caller over its rate with 429, and tells every caller of the
    GraphQL endpoint where it stands."""

    def __init__(
        self, app: ASGIApp, rates: CallerRates, identity: CallerIdentity, *, path: str
    ) -> None:
        self.app = app
        self.rates = rates
        self.identity = identity
        self.path = path
        rate = rates.rate
        self.policy = (b"ratelimit-policy", f'"caller";q={rate.quantity};w={rate.window}'.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or _graphiql_page(scope):
            await self.app(scope, receive, send)
            return
        messages = await _whole_request(scope, receive)
        decision = await self.rates.take(self.identity(scope), _operations(messages))
        headers = self._headers(decision)
        if not decision.allowed:
            wait = max(1, math.ceil(decision.retry_after))
            error = graphql_error(
                f"Too many requests from this caller: at most {self.rates.rate} operations; "
                f"retry in {wait} s.",
                RATE_LIMITED,
            )
            request_state(scope).access["rateLimited"] = True
            await send_refusal(
                scope, send, 429, error, headers=[*headers, (b"retry-after", str(wait).encode())]
            )
            return

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *headers]
            await send(message)

        await self.app(scope, replay, send_with_headers)

    def _headers(self, decision: Decision) -> Headers:
        reset = math.ceil(decision.reset)
        state = f'"caller";r={decision.remaining};t={reset}'.encode()
        return [self.policy, (b"ratelimit", state)]


def operation_admission(
    rates: CallerRates, identity: CallerIdentity
) -> Callable[[Scope], Awaitable[tuple[str, str] | None]]:
    """Counts one operation of a WebSocket connection against its caller's rate: ``None``
    when it fits, else the refusal's message and code (the view answers the operation with
    them; the connection stays open)."""

    async def admit(scope: Scope) -> tuple[str, str] | None:
        decision = await rates.take(identity(scope), 1)
        if decision.allowed:
            return None
        wait = max(1, math.ceil(decision.retry_after))
        return (
            f"Too many requests from this caller: at most {rates.rate} operations; "
            f"retry in {wait} s.",
            RATE_LIMITED,
        )

    return admit


async def _whole_request(scope: Scope, receive: Receive) -> list[Message]:
    """The request's body messages (the guard in front has read and bounded the body)."""
    if scope.get("method") != "POST":
        return []
    messages = [await receive()]
    while messages[-1]["type"] == "http.request" and messages[-1].get("more_body"):
        messages.append(await receive())
    return messages


def _operations(messages: list[Message]) -> int:
    """Units a request costs: its operations (a JSON list is a batch), at least one."""
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    if not body.lstrip().startswith(b"["):
        return 1
    try:
        batch = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 1
    return max(1, len(batch)) if isinstance(batch, list) else 1


def _graphiql_page(scope: Scope) -> bool:
    """A browser asking for GraphiQL's page (a GET accepting HTML, naming no document)."""
    query_string = scope.get("query_string", b"")
    if scope.get("method") != "GET" or any(name in query_string for name in _DOCUMENT_PARAMETERS):
        return False
    accept = b",".join(v for k, v in scope["headers"] if k == b"accept")
    return b"text/html" in accept


__all__ = ["RATE_LIMITED", "CallerIdentity", "CallerRateLimit", "operation_admission"]
