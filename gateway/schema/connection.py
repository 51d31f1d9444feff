"""Relay connections over the billing API's forward-only page tokens.

An edge's cursor is the position of the seat after it: the upstream token of the page the seat
came in plus how many seats of that page to skip (or the next page's token when the seat ended
its page). Resuming from any edge therefore costs one upstream call in the common case, and two
only when the skip plus ``first`` exceed 100 seats or a page shortened by the 100 commits cap
ends before the skip does.
"""

from __future__ import annotations

from dataclasses import dataclass

import strawberry
from opentelemetry import trace

from gateway.loaders import Loaders
from gateway.schema.access import check_customer
from gateway.schema.arguments import check_first
from gateway.schema.context import RequestContext
from gateway.schema.errors import UPSTREAM_BAD_RESPONSE, GatewayError, bad_input
from gateway.schema.fields import reads
from gateway.schema.ids import Position, decode_cursor, encode_cursor, listing_fingerprint
from gateway.schema.types import Seat
from gateway.upstream.tracing import child_span
from gateway.upstream.wire import MAX_SEATS_PER_PAGE, Listing, PageRequest

_tracer = trace.get_tracer("gateway.schema")

# A resumption skips at most 99 seats, so this only stops an upstream that pages forever.
_MAX_PAGES_PER_SLICE = 16


@strawberry.type(description="Where a page of a connection sits in the whole listing.")
class PageInfo:
    has_next_page: bool = strawberry.field(
        description="Whether more seats follow; taken from the billing API's `next_page`."
    )
    has_previous_page: bool = strawberry.field(
        description="Always false: the billing API pages forward only, so there is no `last`."
    )
    # The first and last edges' positions, encoded only when a cursor is asked for.
    start: strawberry.Private[Position | None]
    end: strawberry.Private[Position | None]

    start_cursor: str | None = reads(
        lambda info: None if info.start is None else encode_cursor(info.start),
        description="The first edge's cursor.",
    )
    end_cursor: str | None = reads(
        lambda info: None if info.end is None else encode_cursor(info.end),
        description="The last edge's cursor; pass it as `after` to continue.",
    )


@strawberry.type(description="A seat and the cursor to resume after it.")
class SeatEdge:
    node: Seat = strawberry.field(description="The seat.")
    after: strawberry.Private[Position]  # encoded only when a cursor is asked for

    cursor: str = reads(
        lambda edge: encode_cursor(edge.after),
        description="Opaque; `after: <cursor>` continues with the very next seat.",
    )


@strawberry.type(description="A page of seats with their balances (Relay connection).")
class SeatConnection:
    edges: list[SeatEdge] = strawberry.field(description="The seats of this page, in order.")
    page_info: PageInfo = strawberry.field(description="How to get the next page.")
    seats_available_for_next_page: int | None = strawberry.field(
        description=(
            "The billing API's `seats_available_for_next_page` for the last page it served "
            "here (the API does not define it precisely; there is no total count)."
        )
    )

    nodes: list[Seat] = reads(
        lambda connection: [edge.node for edge in connection.edges],
        description="The seats of this page without cursors (a shortcut).",
    )


@dataclass(frozen=True, slots=True)
class SliceRequest:
    listing: Listing
    fingerprint: str
    include_commits: bool
    include_ledgers: bool
    include_credit_types: bool  # creditType selected: the seats' balances are made to hold it
    first: int
    start: Position


async def load_slice(loaders: Loaders, request: SliceRequest) -> SeatConnection:
    """Up to ``first`` seats from ``start``; fewer when the commits cap shortened the page."""
    page_token, skip = request.start.page, request.start.skip
    edges: list[SeatEdge] = []
    next_page: str | None = None
    available: float | None = None
    for _ in range(_MAX_PAGES_PER_SLICE):
        page = await loaders.page(
            PageRequest(
                listing=request.listing,
                include_commits=request.include_commits,
                include_ledgers=request.include_ledgers,
                limit=min(MAX_SEATS_PER_PAGE, skip + request.first),
                cursor=page_token,
            )
        )
        seats = page["data"]
        next_page = page["pagination"].get("next_page") or None
        available = page["pagination"].get("seats_available_for_next_page")
        last = len(seats) - 1
        for index in range(skip, len(seats)):
            after = (
                Position(next_page, 0, request.fingerprint)
                if index == last and next_page
                else Position(page_token, index + 1, request.fingerprint)
            )
            node = Seat.from_wire(
                seats[index],
                request.listing,
                has_commits=request.include_commits,
                has_ledgers=request.include_ledgers,
                has_credit_types=request.include_credit_types,
            )
            edges.append(SeatEdge(node=node, after=after))
        skip = max(0, skip - len(seats))
        if edges or not next_page:
            break
        if next_page == page_token:
            raise GatewayError(
                "The billing API returned the same page token twice.", UPSTREAM_BAD_RESPONSE
            )
        page_token = next_page
    else:
        raise GatewayError("The billing API's pages made no progress.", UPSTREAM_BAD_RESPONSE)
    has_next = bool(next_page) or len(edges) > request.first
    edges = edges[: request.first]
    return SeatConnection(
        edges=edges,
        page_info=PageInfo(
            has_next_page=has_next,
            has_previous_page=False,
            start=edges[0].after if edges else None,
            end=edges[-1].after if edges else None,
        ),
        seats_available_for_next_page=None if available is None else int(available),
    )


async def connection_for(
    context: RequestContext,
    listing: Listing,
    *,
    first: int | None,
    after: str | None,
    selected: frozenset[str],
    field_name: str,
) -> SeatConnection:
    """The connection a field listing seats answers: checks, then one slice. ``selected`` is
    every name selected below the field (the look-ahead), which decides the include flags."""
    check_customer(context, listing.customer_id)
    first = check_first(first)
    fingerprint = listing_fingerprint(
        listing.customer_id,
        listing.contract_id,
        listing.subscription_ids,
        listing.seat_ids,
        listing.skip_missing_seat_ids,
    )
    start = Position(page=None, skip=0, listing=fingerprint)
    if after is not None:
        try:
            start = decode_cursor(after)
        except ValueError:
            raise bad_input(
                "after",
                "is not a cursor from this API; pass an edge's `cursor` or "
                "`pageInfo.endCursor` unchanged.",
            ) from None
        if start.listing != fingerprint:
            raise bad_input(
                "after",
                "was issued for another listing; page with the same customerId, contractId, "
                "subscriptionIds and seatIds that produced it.",
            )
    include_commits = "commits" in selected or "credits" in selected
    loaders = context.loaders
    with child_span(_tracer, f"resolve {field_name}") as current:
        current.set_attribute("gateway.first", first)
        current.set_attribute("gateway.include_commits", include_commits)
        return await load_slice(
            loaders,
            SliceRequest(
                listing=listing,
                fingerprint=fingerprint,
                include_commits=include_commits,
                include_ledgers=include_commits and "ledgerEntries" in selected,
                include_credit_types="creditType" in selected,
                first=first,
                start=start,
            ),
        )
