"""The billing API client: HTTP and the wire contract, nothing about GraphQL or settings."""

from gateway.upstream.client import (
    SEAT_BALANCES_PATH,
    BillingClient,
    RetryPolicy,
    UpstreamObserver,
)
from gateway.upstream.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.models import SeatBalance, SeatBalancePage, SeatCommit

__all__ = [
    "SEAT_BALANCES_PATH",
    "BillingClient",
    "RetryPolicy",
    "SeatBalance",
    "SeatBalancePage",
    "SeatCommit",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamObserver",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
