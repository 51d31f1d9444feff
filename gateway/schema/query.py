"""The ``Query`` root: arguments are checked here, before any upstream call."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated

import strawberry

from gateway.loaders import MAX_SEATS_PER_PAGE, Listing
from gateway.schema.connection import SeatConnection, SliceRequest, load_slice
from gateway.schema.context import request_context
from gateway.schema.errors import bad_input
from gateway.schema.ids import Position, decode_cursor, listing_fingerprint
from gateway.schema.scalars import DateTime
from gateway.schema.selection import selected_names

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
MAX_SEAT_IDS = 1000
MAX_SEAT_ID_CHARS = 512


def _uuid(argument: str, value: str) -> str:
    if not _UUID.match(value):
        raise bad_input(argument, f"must be a UUID like '1b2c3d4e-...'; got {value[:80]!r}.")
    return value.lower()


def _id_list(argument: str, values: Sequence[str] | None, *, uuid: bool) -> tuple[str, ...] | None:
    if values is None:
        return None
    if not values:
        raise bad_input(argument, "is an empty list; leave it out to mean 'all'.")
    if len(values) > MAX_SEAT_IDS:
        raise bad_input(argument, f"holds {len(values)} ids; send at most {MAX_SEAT_IDS}.")
    if uuid:
        return tuple(_uuid(argument, value) for value in values)
    for value in values:
        if not value or len(value) > MAX_SEAT_ID_CHARS:
            raise bad_input(
                argument,
                f"holds an id that is empty or longer than {MAX_SEAT_ID_CHARS} characters.",
            )
    return tuple(values)


@strawberry.type(description="Seat balances of Metronome seat-based contracts.")
class Query:
    @strawberry.field(
        description=(
            "The seats of a contract with their balances, commits, credits and ledger entries, "
            "as a Relay connection. Pages go forward only (`first`/`after`; the billing API "
            "has no way back, so there is no `last`/`before`). A page can hold fewer than "
            "`first` seats when commits or credits are selected: the billing API stops adding "
            "seats once a page holds 100 commits and credits. Trust `pageInfo.hasNextPage`."
        )
    )
    async def seat_balances(
        self,
        info: strawberry.Info,
        customer_id: Annotated[
            strawberry.ID, strawberry.argument(description="The customer (UUID).")
        ],
        contract_id: Annotated[
            strawberry.ID, strawberry.argument(description="The seat-based contract (UUID).")
        ],
        subscription_ids: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(description="Only seats of these seat-based subscriptions."),
        ] = None,
        seat_ids: Annotated[
            list[str] | None,
            strawberry.argument(description="Only these seats (the billing API's seat ids)."),
        ] = None,
        skip_missing_seat_ids: Annotated[
            bool,
            strawberry.argument(
                description="Leave out unknown `seatIds` instead of failing the request."
            ),
        ] = False,
        covering_date: Annotated[
            DateTime | None,
            strawberry.argument(
                description=(
                    "Only commits and credits whose access covers this instant. Cannot be "
                    "combined with `startingAt` or `effectiveBefore`."
                )
            ),
        ] = None,
        starting_at: Annotated[
            DateTime | None,
            strawberry.argument(
                description="Only commits and credits with access effective on or after this."
            ),
        ] = None,
        effective_before: Annotated[
            DateTime | None,
            strawberry.argument(
                description="Only commits and credits with access effective before this."
            ),
        ] = None,
        first: Annotated[int, strawberry.argument(description="How many seats, 1 to 100.")] = 25,
        after: Annotated[
            str | None,
            strawberry.argument(
                description="Continue after this edge cursor (any edge's, or `endCursor`)."
            ),
        ] = None,
    ) -> SeatConnection:
        if not 1 <= first <= MAX_SEATS_PER_PAGE:
            raise bad_input("first", f"must be between 1 and {MAX_SEATS_PER_PAGE}; got {first}.")
        if covering_date is not None and (starting_at is not None or effective_before is not None):
            raise bad_input(
                "coveringDate",
                "cannot be combined with 'startingAt' or 'effectiveBefore'; send one or the other.",
            )
        listing = Listing(
            customer_id=_uuid("customerId", customer_id),
            contract_id=_uuid("contractId", contract_id),
            subscription_ids=_id_list("subscriptionIds", subscription_ids, uuid=True),
            seat_ids=_id_list("seatIds", seat_ids, uuid=False),
            skip_missing_seat_ids=bool(skip_missing_seat_ids and seat_ids),
            covering_date=covering_date,
            starting_at=starting_at,
            effective_before=effective_before,
        )
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
        names = selected_names(info._raw_info)
        include_commits = "commits" in names or "credits" in names
        loaders = request_context(info).loaders
        return await load_slice(
            loaders,
            SliceRequest(
                listing=listing,
                fingerprint=fingerprint,
                include_commits=include_commits,
                include_ledgers=include_commits and "ledgerEntries" in names,
                first=first,
                start=start,
            ),
        )
