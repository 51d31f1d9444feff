"""What a resolver may use: the request's loaders, built once per GraphQL request."""

from __future__ import annotations

from dataclasses import dataclass, field

import strawberry

from gateway.loaders import Loaders
from gateway.schema.errors import UNAUTHENTICATED, GatewayError
from gateway.upstream import BillingClient


@dataclass
class RequestContext:
    """Per-request state. ``token`` is the bearer token upstream calls will carry, if any."""

    client: BillingClient
    token: str | None = field(repr=False)
    max_upstream_calls: int = 20
    _loaders: Loaders | None = field(default=None, repr=False)

    def close(self) -> None:
        """The request is over: stop upstream calls nobody will read."""
        if self._loaders is not None:
            self._loaders.cancel()

    @property
    def loaders(self) -> Loaders:
        """The request's loaders; refuses before any upstream call when there is no token."""
        if self._loaders is None:
            if not self.token:
                raise GatewayError(
                    "No credentials: send 'Authorization: Bearer <Metronome API token>'.",
                    UNAUTHENTICATED,
                )
            self._loaders = Loaders(self.client, self.token, max_calls=self.max_upstream_calls)
        return self._loaders


def request_context(info: strawberry.Info) -> RequestContext:
    context = info.context["gateway"]
    assert isinstance(context, RequestContext)
    return context
