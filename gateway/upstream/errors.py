"""What can go wrong when calling the billing API, in our own words.

    UpstreamError                 anything that kept us from a usable answer
     +-- UpstreamTimeout          no complete answer within the time we allow
     +-- UpstreamUnavailable      connection failed, or the API answered 5xx
     +-- UpstreamRejected         the API answered 4xx: ``status`` and its ``{"message"}``
     +-- UpstreamBadResponse      a 2xx body that is not JSON or breaks the contract
     +-- UpstreamRateLimited      the gateway's own upstream budget had no turn in time (no call)

httpx's exceptions never leave ``client.py``; these carry no URL and no token, so a caller may
show ``str(error)`` to a user.
"""

from __future__ import annotations


class UpstreamError(Exception):
    """The billing API did not give a usable answer."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class UpstreamTimeout(UpstreamError):
    """No complete answer in time (connect, read or the overall deadline)."""


class UpstreamUnavailable(UpstreamError):
    """The connection failed, or the billing API answered with a 5xx."""


class UpstreamRejected(UpstreamError):
    """The billing API refused the request with a 4xx; ``message`` is the API's own text."""

    status: int

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message, status=status)


class UpstreamBadResponse(UpstreamError):
    """A success status with a body we cannot read or that breaks the wire contract."""


class UpstreamRateLimited(UpstreamError):
    """The upstream budget (``gateway.upstream.budget``) had no turn for the call within its
    wait: the call was not made."""
