"""The ``Query`` root and the ``Contract`` entity: every way into seat balances."""

from __future__ import annotations

from operator import attrgetter
from typing import Annotated, Any

import strawberry
from strawberry.federation.schema_directives import ListSize

from gateway.schema.arguments import (
    After,
    CoveringDate,
    EffectiveBefore,
    First,
    SeatIds,
    SkipMissingSeatIds,
    StartingAt,
    SubscriptionIds,
    listing_from_arguments,
)
from gateway.schema.connection import SeatConnection, connection_for
from gateway.schema.fields import Asked, Facts, answering, declared
from gateway.schema.nodes import parse_node_id, parse_node_ids, resolve_node, resolve_nodes
from gateway.schema.types import Node

# A connection of seats: calls the billing API (which puts @cost on it), sends its seatIds
# upstream, holds no more seats than they name; `first` sizes its edges and nodes (Apollo's
# @listSize, Federation 2.9, which the work estimate reads too).
_CONNECTION = declared(
    Facts(upstream=True, seat_ids="seatIds", page_filter="seatIds"),
    # Strawberry leaves unset arguments out of the SDL; its stubs mark them required.
    ListSize(  # type: ignore[call-arg]
        slicing_arguments=["first"],
        sized_fields=["edges", "nodes"],
        require_one_slicing_argument=False,
    ),
)

_SEAT_BALANCES = (
    "The seats of a contract with their balances, commits, credits and ledger entries, as a "
    "Relay connection. Pages go forward only (`first`/`after`; the billing API has no way "
    "back, so there is no `last`/`before`). A page can hold fewer than `first` seats when "
    "commits or credits are selected: the billing API stops adding seats once a page holds "
    "100 commits and credits. Trust `pageInfo.hasNextPage`."
)


async def answer_seat_balances(
    asked: Asked,
    *,
    customer_id: Annotated[strawberry.ID, strawberry.argument(description="The customer (UUID).")],
    contract_id: Annotated[
        strawberry.ID, strawberry.argument(description="The seat-based contract (UUID).")
    ],
    subscription_ids: SubscriptionIds = None,
    seat_ids: SeatIds = None,
    skip_missing_seat_ids: SkipMissingSeatIds = False,
    covering_date: CoveringDate = None,
    starting_at: StartingAt = None,
    effective_before: EffectiveBefore = None,
    first: First = 25,
    after: After = None,
) -> SeatConnection | None:
    """``seatBalances``: the one definition of the field. Its resolvers are made from it
    (:func:`~gateway.schema.fields.answering`: its parameters are the field's arguments,
    ``Contract``'s less the two ids it holds), and the compiled root of
    :mod:`gateway.schema.execution` calls it without them."""
    return await connection_for(
        asked.context,
        listing_from_arguments(
            customer_id=customer_id,
            contract_id=contract_id,
            subscription_ids=subscription_ids,
            seat_ids=seat_ids,
            skip_missing_seat_ids=skip_missing_seat_ids,
            covering_date=covering_date,
            starting_at=starting_at,
            effective_before=effective_before,
        ),
        first=first,
        after=after,
        selected=asked.selected,
        field_name=asked.field_name,
    )


@strawberry.federation.type(
    keys=["id customerId"],
    description=(
        "A Metronome contract, owned by another subgraph (e.g. a CRM or accounts service) "
        "that resolves it by `id` and `customerId`; billing contributes its seat balances."
    ),
)
class Contract:
    id: strawberry.ID = strawberry.field(description="The billing API's contract id (UUID).")
    customer_id: strawberry.ID = strawberry.field(
        description="The billing API's id of the customer holding the contract (UUID)."
    )

    @classmethod
    def resolve_reference(cls, **key: Any) -> Contract:
        # Checked when seatBalances runs, where a bad id becomes a BAD_USER_INPUT.
        return cls(id=key.get("id"), customer_id=key.get("customerId"))  # type: ignore[arg-type]

    # The contract's own seats: the same answer, with the ids this entity holds.
    seat_balances = strawberry.federation.field(
        resolver=answering(
            answer_seat_balances,
            source={"customer_id": attrgetter("customer_id"), "contract_id": attrgetter("id")},
        ),
        description=_SEAT_BALANCES,
        authenticated=True,
        **_CONNECTION,
    )


@strawberry.type(name="_Service")
class SubgraphService:
    """Federation's ``_Service``: the subgraph's SDL, for routers."""

    sdl: str


@strawberry.type(description="Seat balances of Metronome seat-based contracts.")
class Query:
    # Strawberry's own _service prints the schema on every call and always with every
    # directive; this one serves the schema's SDL as exported (GatewaySchema.as_str).
    @strawberry.field(name="_service")
    def service(self, info: strawberry.Info) -> SubgraphService:
        return SubgraphService(sdl=info.schema.as_str())

    seat_balances = strawberry.federation.field(
        resolver=answering(answer_seat_balances),
        description=_SEAT_BALANCES,
        authenticated=True,
        **_CONNECTION,
    )

    @strawberry.federation.field(
        description="Any Seat, Commit or Credit by its `id` (Relay); `null` once it is gone.",
        authenticated=True,
        **declared(Facts(upstream=True, seat_ids="id")),
    )
    async def node(
        self,
        info: strawberry.Info,
        id: Annotated[strawberry.ID, strawberry.argument(description="An object's `id`.")],
    ) -> Node | None:
        return await resolve_node(info, parse_node_id("id", id))

    @strawberry.federation.field(
        description=(
            "Several objects by `id`, in the order asked, `null` for those that are gone (and, "
            "with a `FORBIDDEN` error, for those of customers the caller may not read). Ids "
            "of one contract cost one upstream call together."
        ),
        authenticated=True,
        **declared(
            Facts(upstream=True, seat_ids="ids", sized_by="ids"),
            ListSize(assumed_size=100, require_one_slicing_argument=False),  # type: ignore[call-arg]
        ),
    )
    async def nodes(
        self,
        info: strawberry.Info,
        ids: Annotated[
            list[strawberry.ID], strawberry.argument(description="Up to 100 objects' ids.")
        ],
    ) -> list[Node | None]:
        return await resolve_nodes(info, parse_node_ids(ids))
