"""Relay object identification: any Seat, Commit or Credit refetched by its id.

Ids are parsed and checked before any upstream call; the lookups then go through the
``seats`` loader, so K ids of one contract cost one upstream call whatever their types.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import strawberry
from opentelemetry import trace

from gateway.schema.access import check_customer, require_caller
from gateway.schema.arguments import seat_id_ok, uuid_argument
from gateway.schema.context import request_context
from gateway.schema.errors import GatewayError, bad_input
from gateway.schema.ids import parse_global_id
from gateway.schema.types import HeldCommit, HeldCredit, Node, seat_by_key
from gateway.upstream.wire import Listing

MAX_NODE_IDS = 100

_tracer = trace.get_tracer("gateway.schema")

_KINDS = {"Seat": 3, "Commit": 4, "Credit": 4}


@dataclass(frozen=True, slots=True)
class NodeKey:
    type_name: str
    listing: Listing
    seat_id: str
    wire_id: str | None  # the billing API's commit or credit id


def parse_node_id(argument: str, value: str) -> NodeKey:
    """The object an id names; a ``BAD_USER_INPUT`` for ids that are not ours."""
    try:
        type_name, parts = parse_global_id(value)
    except ValueError:
        raise bad_input(
            argument, f"holds {value[:80]!r}, which is not an id from this API."
        ) from None
    if _KINDS.get(type_name) != len(parts):
        raise bad_input(
            argument, f"holds an id of a type this API does not serve ({type_name[:40]!r})."
        )
    customer_id, contract_id, seat_id, *rest = parts
    # The parts this API puts in an id are never empty, and a seat id is held to the rule of
    # the seatIds argument and the federation key: a forged one costs no upstream call.
    if not all(seat_id_ok(part) for part in (seat_id, *rest)):
        raise bad_input(argument, f"holds {value[:80]!r}, which is not an id from this API.")
    listing = Listing(
        customer_id=uuid_argument(argument, customer_id),
        contract_id=uuid_argument(argument, contract_id),
    )
    return NodeKey(type_name, listing, seat_id, rest[0] if rest else None)


def parse_node_ids(ids: Sequence[str]) -> list[NodeKey]:
    if len(ids) > MAX_NODE_IDS:
        raise bad_input("ids", f"holds {len(ids)} ids; send at most {MAX_NODE_IDS}.")
    return [parse_node_id("ids", value) for value in ids]


async def resolve_node(
    info: strawberry.Info, key: NodeKey, *, with_commits: bool = False
) -> Node | None:
    with_commits = with_commits or key.wire_id is not None
    seat = await seat_by_key(info, key.listing, key.seat_id, with_commits=with_commits)
    if seat is None or key.wire_id is None:
        return seat
    kind, where = (HeldCommit, "commits") if key.type_name == "Commit" else (HeldCredit, "credits")
    for held in seat.held(kind, where):
        if held.record["id"] == key.wire_id:
            return held  # type: ignore[return-value]  # the source of a Commit or a Credit
    return None


def require_entities_caller(info: strawberry.Info) -> None:
    """Refuse a whole ``_entities`` list at once when the request has no caller (JWT mode, no
    token): one ``UNAUTHENTICATED`` error instead of one per representation, and no call.
    Every entity of this subgraph (a Seat, a Contract's seat balances) reads a customer."""
    require_caller(request_context(info))


async def resolve_nodes(info: strawberry.Info, keys: Sequence[NodeKey]) -> list[Node | None]:
    """The objects in the order asked. An id of a customer the caller may not read is ``null``
    with a ``FORBIDDEN`` error at its index, and costs no upstream call; the others are
    answered."""
    context = request_context(info)
    require_caller(context)
    refusals: dict[int, GatewayError] = {}
    for index, key in enumerate(keys):
        try:
            check_customer(context, key.listing.customer_id)
        except GatewayError as refusal:
            refusals[index] = refusal
    allowed = [key for index, key in enumerate(keys) if index not in refusals]
    # Gathered in one tick, so the seats loader sees every key at once and batches them; one
    # commit or credit among the ids means all seats are fetched with theirs (one call).
    with_commits = any(key.wire_id is not None for key in allowed)
    found = iter(
        await asyncio.gather(
            *(resolve_node(info, key, with_commits=with_commits) for key in allowed)
        )
    )
    # graphql-core reports an exception in a list as that item's error, the item as null.
    return [
        cast("Node | None", refusals[index]) if index in refusals else next(found)
        for index in range(len(keys))
    ]
