"""Who may read which customer: the one check every field that reads a customer makes.

The schema sees the caller as a plain :class:`Caller` value that the composition root built
(from a verified JWT, see ``gateway/http/auth.py``); it never sees a token. The check runs where a
customer id is first known and before any loader is touched, so a refused field costs no
upstream call and nothing it would have fetched reaches any cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from gateway.schema.errors import FORBIDDEN, UNAUTHENTICATED, GatewayError


@dataclass(frozen=True, slots=True)
class Caller:
    """The customers a request may read. ``subject`` is the JWT's ``sub`` (for the logs)."""

    subject: str | None = None
    customer_ids: frozenset[str] = frozenset()  # lower-case UUIDs, as arguments are
    all_customers: bool = False
    authenticated: bool = False
    expires_at: float | None = None  # the JWT's `exp` (a live subscription ends then)


class HasCaller(Protocol):
    """What the checks read of a request's context (the context holds a Caller, so this
    module names only what it needs of it)."""

    @property
    def caller(self) -> Caller: ...


# No caller authentication configured (the embedded stand-in, forwarding mode, or
# GATEWAY_ALLOW_ANONYMOUS): the billing token alone decides what is read.
UNRESTRICTED = Caller(all_customers=True)
# Caller authentication configured, and the request carried no token.
ANONYMOUS = Caller()

# The same words whether or not the customer exists, so a refusal tells nothing about it.
_FORBIDDEN = "This caller may not read that customer's seat balances."


def require_caller(context: HasCaller) -> Caller:
    """The request's caller; ``UNAUTHENTICATED`` when authentication is on and it sent none."""
    caller = context.caller
    if not caller.all_customers and not caller.authenticated:
        raise GatewayError(
            "Authentication required: send 'Authorization: Bearer <JWT from your identity "
            "provider>'.",
            UNAUTHENTICATED,
        )
    return caller


def check_customer(context: HasCaller, customer_id: str) -> None:
    """Refuse, before any upstream call, a read of a customer the caller may not read."""
    caller = require_caller(context)
    if not caller.all_customers and customer_id.lower() not in caller.customer_ids:
        raise GatewayError(_FORBIDDEN, FORBIDDEN)
