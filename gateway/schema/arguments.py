"""Argument declarations shared by every field that lists seats, and their validation.

Everything here runs before any upstream call: a bad argument is a ``BAD_USER_INPUT`` that
names the argument and says what to send instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, TypeGuard

import strawberry

from gateway.schema.errors import bad_input
from gateway.schema.scalars import DateTime
from gateway.upstream.wire import MAX_SEATS_PER_PAGE, Listing

MAX_SEAT_IDS = 1000
MAX_SEAT_ID_CHARS = 512

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

SubscriptionIds = Annotated[
    list[strawberry.ID] | None,
    strawberry.argument(description="Only seats of these seat-based subscriptions (UUIDs)."),
]
SeatIds = Annotated[
    list[str] | None,
    strawberry.argument(description="Only these seats (the billing API's seat ids)."),
]
SkipMissingSeatIds = Annotated[
    bool | None,
    strawberry.argument(description="Leave out unknown `seatIds` instead of failing the request."),
]
CoveringDate = Annotated[
    DateTime | None,
    strawberry.argument(
        description=(
            "Only commits and credits whose access covers this instant. Cannot be combined "
            "with `startingAt` or `effectiveBefore`."
        )
    ),
]
StartingAt = Annotated[
    DateTime | None,
    strawberry.argument(
        description="Only commits and credits with access effective on or after this."
    ),
]
EffectiveBefore = Annotated[
    DateTime | None,
    strawberry.argument(description="Only commits and credits with access effective before this."),
]
First = Annotated[
    int | None,
    strawberry.argument(
        description=f"How many seats, 1 to {MAX_SEATS_PER_PAGE} (`null` means the default)."
    ),
]
After = Annotated[
    str | None,
    strawberry.argument(
        description="Continue after this edge cursor (any edge's `cursor`, or `endCursor`)."
    ),
]


def seat_id_ok(value: object) -> TypeGuard[str]:
    """A seat id the gateway sends upstream: a string of 1 to ``MAX_SEAT_ID_CHARS`` characters
    (the rule of the ``seatIds`` argument, the federation key and a Relay id's parts)."""
    return isinstance(value, str) and 0 < len(value) <= MAX_SEAT_ID_CHARS


def uuid_argument(argument: str, value: str) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        shown = value[:80] if isinstance(value, str) else value
        raise bad_input(argument, f"must be a UUID like '1b2c3d4e-...'; got {shown!r}.")
    return value.lower()


def _id_list(argument: str, values: Sequence[str] | None, *, uuid: bool) -> tuple[str, ...] | None:
    if values is None:
        return None
    if not values:
        raise bad_input(argument, "is an empty list; leave it out to mean 'all'.")
    if len(values) > MAX_SEAT_IDS:
        raise bad_input(argument, f"holds {len(values)} ids; send at most {MAX_SEAT_IDS}.")
    if uuid:
        return tuple(uuid_argument(argument, value) for value in values)
    for value in values:
        if not seat_id_ok(value):
            raise bad_input(
                argument,
                f"holds an id that is empty or longer than {MAX_SEAT_ID_CHARS} characters.",
            )
    return tuple(values)


DEFAULT_FIRST = 25


def check_first(first: int | None) -> int:
    if first is None:
        return DEFAULT_FIRST
    if not 1 <= first <= MAX_SEATS_PER_PAGE:
        raise bad_input("first", f"must be between 1 and {MAX_SEATS_PER_PAGE}; got {first}.")
    return first


def listing_from_arguments(
    *,
    customer_id: str,
    contract_id: str,
    subscription_ids: Sequence[str] | None,
    seat_ids: Sequence[str] | None,
    skip_missing_seat_ids: bool | None,
    covering_date: DateTime | None,
    starting_at: DateTime | None,
    effective_before: DateTime | None,
) -> Listing:
    """The upstream filters these arguments ask for, or a ``BAD_USER_INPUT``."""
    if covering_date is not None and (starting_at is not None or effective_before is not None):
        raise bad_input(
            "coveringDate",
            "cannot be combined with 'startingAt' or 'effectiveBefore'; send one or the other.",
        )
    return Listing(
        customer_id=uuid_argument("customerId", customer_id),
        contract_id=uuid_argument("contractId", contract_id),
        subscription_ids=_id_list("subscriptionIds", subscription_ids, uuid=True),
        seat_ids=_id_list("seatIds", seat_ids, uuid=False),
        skip_missing_seat_ids=bool(skip_missing_seat_ids and seat_ids),
        covering_date=covering_date,
        starting_at=starting_at,
        effective_before=effective_before,
    )
