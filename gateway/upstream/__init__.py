"""The billing API client: HTTP and the wire contract, nothing about GraphQL or settings."""

from gateway.upstream.client import (
    CREDIT_TYPES_PATH,
    CUSTOMER_BALANCES_PATH,
    SEAT_BALANCES_PATH,
    BillingClient,
    RetryPolicy,
    UpstreamObserver,
)
from gateway.upstream.details import BalanceItem, BalancesPage, CreditType, CreditTypesPage
from gateway.upstream.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.models import SeatBalance, SeatBalancePage, SeatCommit

__all__ = [
    "CREDIT_TYPES_PATH",
    "CUSTOMER_BALANCES_PATH",
    "SEAT_BALANCES_PATH",
    "BalanceItem",
    "BalancesPage",
    "BillingClient",
    "CreditType",
    "CreditTypesPage",
    "RetryPolicy",
    "SeatBalance",
    "SeatBalancePage",
    "SeatCommit",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamObserver",
    "UpstreamRateLimited",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]
