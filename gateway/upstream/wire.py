"""The requests the gateway sends to "List seat balances", in the wire's own names.

A :class:`Listing` is the set of filters every page of one listing repeats (the contract does
not say whether the upstream cursor remembers them, so they are always sent); a
:class:`PageRequest` is exactly one upstream call. Both are frozen and hashable: the request's
loaders key their caches by them, so two fields asking for the same page share one call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.upstream.errors import UpstreamBadResponse

# The billing API's own bound on `limit` (seats per page).
MAX_SEATS_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class Listing:
    """The filters that every page of one seat listing repeats (the cursor may not remember)."""

    customer_id: str
    contract_id: str
    subscription_ids: tuple[str, ...] | None = None
    seat_ids: tuple[str, ...] | None = None
    skip_missing_seat_ids: bool = False
    covering_date: str | None = None
    starting_at: str | None = None
    effective_before: str | None = None

    def body(self) -> dict[str, Any]:
        """The filter part of an upstream request body; absent filters are not sent."""
        body: dict[str, Any] = {
            "customer_id": self.customer_id,
            "contract_id": self.contract_id,
        }
        if self.subscription_ids is not None:
            body["subscription_ids"] = list(self.subscription_ids)
        if self.seat_ids is not None:
            body["seat_ids"] = list(self.seat_ids)
            if self.skip_missing_seat_ids:
                body["skip_missing_seat_ids"] = True
        for name in ("covering_date", "starting_at", "effective_before"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body


@dataclass(frozen=True, slots=True)
class PageRequest:
    """Exactly one upstream call: a listing, what to include, and where to start."""

    listing: Listing
    include_commits: bool
    include_ledgers: bool
    limit: int
    cursor: str | None = None

    def body(self) -> dict[str, Any]:
        body = self.listing.body()
        if self.include_commits:
            body["include_credits_and_commits"] = True
            if self.include_ledgers:
                body["include_ledgers"] = True
        body["limit"] = self.limit
        if self.cursor is not None:
            body["cursor"] = self.cursor
        return body


@dataclass
class PageTokens:
    """The page tokens one listing has followed. A token the billing API hands out twice would
    page for ever (a dataloader or the page cache answers the repeat without yielding, so not
    even the call budget would stop it): the answer breaks the contract."""

    _followed: set[str] = field(default_factory=set)

    def follow(self, token: str) -> str:
        if token in self._followed:
            raise UpstreamBadResponse("The billing API returned the same page token twice.")
        self._followed.add(token)
        return token
