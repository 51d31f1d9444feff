"""The ``Subscription`` root: live seat balances, fed by :mod:`gateway.live`.

``seatBalanceUpdates`` runs through the same pipeline as a query (parse, validation, limits,
work estimate, error shapes), over graphql-transport-ws or Server-Sent Events (Strawberry's
view). When it starts, it checks what a query would (arguments, the caller's customers, the
credential) before any upstream call, then follows the hub's listing: the first message is a
``SNAPSHOT`` of every seat; later ones carry only the seats whose selected fields changed.

"Selected fields" are compared on what the selection reads of the seat listing: the selection
below ``seats`` is compiled once, through graphql-core's own field collection (fragments,
aliases, ``@skip``/``@include`` with the subscription's variables), into the fields' own readers
(:mod:`gateway.schema.fields`), and each seat's values are hashed. Fields joined from another
endpoint (a commit's name, product, schedule; a credit type's name) are not compared: they
describe, and do not move with usage.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Hashable
from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any

import orjson
import strawberry
from graphql import (
    GraphQLError,
    GraphQLObjectType,
    GraphQLResolveInfo,
    get_named_type,
    is_leaf_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetails, FieldDetailsList

from gateway.live import LiveListing, TooManySeats, TooManySubscriptions
from gateway.live.hub import (
    SNAPSHOT,
    CredentialExpired,
    RefreshFailing,
    ShuttingDown,
    SubscriberTooSlow,
    Update,
)
from gateway.schema.access import check_customer
from gateway.schema.arguments import SeatIds, listing_from_arguments
from gateway.schema.context import request_context
from gateway.schema.errors import UNAUTHENTICATED, GatewayError, bad_input, shape_error
from gateway.schema.fields import Facts, Reader, assumed_size, declared, join_of, reader_of
from gateway.schema.scalars import DateTime
from gateway.schema.selection import selected_names
from gateway.schema.types import Seat
from gateway.upstream.wire import Listing

# The access log's logger (gateway.http.observability writes each request's line to it).
access_logger = logging.getLogger("gateway.access")

TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"
# How many seats an update without seatIds is assumed to hold (GATEWAY_LIVE_MAX_SEATS' default).
LIVE_SEATS_ASSUMED = 500
SHUTTING_DOWN = "SHUTTING_DOWN"
_SHUTTING_DOWN = "This gateway process is shutting down: subscribe again."
SUBSCRIPTION_DROPPED = "SUBSCRIPTION_DROPPED"


@strawberry.enum(description="Why a live update was sent.")
class SeatBalanceUpdateReason(Enum):
    SNAPSHOT = "SNAPSHOT"
    WEBHOOK = "WEBHOOK"
    POLL = "POLL"


@strawberry.type(
    description="Seats of a live subscription: all of them first, then those that changed."
)
class SeatBalanceUpdate:
    reason: SeatBalanceUpdateReason = strawberry.field(
        description=(
            "`SNAPSHOT`: the first message, every seat the subscription covers. `WEBHOOK`: "
            "the billing API announced a change. `POLL`: the periodic re-read saw one."
        )
    )
    at: DateTime = strawberry.field(description="When the billing API was read.")
    seats: list[Seat] = strawberry.field(
        description=(
            "The seats whose selected fields changed since the last message (every seat in a "
            "`SNAPSHOT`), in the billing API's order."
        ),
        directives=[assumed_size(LIVE_SEATS_ASSUMED)],
    )


# (response key, field name, reader, the selection below it when it is an object or a list of
# them)
_Plan = tuple[tuple[str, str, Reader, "_Plan | None"], ...]


@strawberry.type(description="Live seat balances.")
class Subscription:
    @strawberry.subscription(
        description=(
            "Live seat balances of a contract (the listed seats, or every seat of the contract "
            "up to the gateway's limit): a `SNAPSHOT`, then the seats whose selected fields "
            "changed, when the billing API announces a change (webhooks) or the periodic "
            "re-read sees one. Include flags follow the selection, as in queries."
        ),
        # Its seats are as many as the seatIds it names (else up to GATEWAY_LIVE_MAX_SEATS,
        # the default of which the seats' @listSize says): the work estimate sizes them so.
        **declared(
            Facts(upstream=True, seat_ids="seatIds", page_filter="seatIds", sizes_below=("seats",))
        ),
    )
    async def seat_balance_updates(
        self,
        info: strawberry.Info,
        customer_id: Annotated[
            strawberry.ID, strawberry.argument(description="The customer (UUID).")
        ],
        contract_id: Annotated[
            strawberry.ID, strawberry.argument(description="The seat-based contract (UUID).")
        ],
        seat_ids: SeatIds = None,
    ) -> AsyncGenerator[SeatBalanceUpdate, None]:
        context = request_context(info)
        listing = listing_from_arguments(
            customer_id=customer_id,
            contract_id=contract_id,
            subscription_ids=None,
            seat_ids=seat_ids,
            skip_missing_seat_ids=True,
            covering_date=None,
            starting_at=None,
            effective_before=None,
        )
        check_customer(context, listing.customer_id)
        hub = context.live
        if hub is None:
            raise GatewayError("Live seat balances are not served here.", "NOT_FOUND")
        if not context.token:
            raise GatewayError(
                "No credentials: send 'Authorization: Bearer <Metronome API token>'.",
                UNAUTHENTICATED,
            )
        selected = selected_names(info._raw_info)
        include_commits = "commits" in selected or "credits" in selected
        include_ledgers = include_commits and "ledgerEntries" in selected
        include_credit_types = "creditType" in selected
        key = LiveListing.of(
            context.token,
            listing,
            include_commits=include_commits,
            include_ledgers=include_ledgers,
        )
        plan = _seat_plan(info._raw_info)
        shape = _shape(plan)
        try:
            subscription = await hub.subscribe(
                key,
                context.token,
                context.caller_key(),
                expires_at=context.caller.expires_at,
            )
        except TooManySubscriptions as refused:
            raise GatewayError(
                f"{refused} Close a subscription before opening another.", TOO_MANY_SUBSCRIPTIONS
            ) from None
        except ShuttingDown:
            raise GatewayError(_SHUTTING_DOWN, SHUTTING_DOWN) from None
        except TooManySeats as refused:
            raise bad_input(
                "seatIds",
                f"is needed: a live subscription follows at most {refused.limit} seats, and "
                "this contract has more. Name the seats to follow.",
            ) from None
        operation = info._raw_info.operation.name
        logged = _Logged(
            operation.value if operation is not None else None,
            context.caller.subject,
            key.digest()[:16],
        )
        logged.started(hub.subscriptions)
        updates = _updates(
            subscription,
            plan,
            shape,
            listing,
            has_commits=include_commits,
            has_ledgers=include_ledgers,
            has_credit_types=include_credit_types,
            logged=logged,
        )
        # A client that leaves before the stream is first read leaves a generator that never
        # started, whose `finally` never runs: the subscription is closed when it goes.
        weakref.finalize(updates, subscription.close)
        return updates


class _Logged:
    """A subscription's start and end in the access log (``gateway.access``): its operation,
    caller, listing (a hash), how long it lasted, the messages it was sent and why it ended.
    An HTTP request's own access line comes when its response ends, which for an event stream
    is the subscription's end, and a WebSocket has none."""

    def __init__(self, operation: str | None, subject: str | None, listing: str) -> None:
        self.fields: dict[str, Any] = {"operationName": operation, "listing": listing}
        if subject is not None:
            self.fields["subject"] = subject
        self.since = time.perf_counter()
        self.messages = 0

    def started(self, open_now: int) -> None:
        self._log({"event": "subscription.start", "subscriptions": open_now})

    def ended(self, code: str | None) -> None:
        self._log(
            {
                "event": "subscription.end",
                "durationMs": round((time.perf_counter() - self.since) * 1000, 2),
                "messages": self.messages,
                "errorCodes": [code] if code is not None else [],
            }
        )

    def _log(self, line: dict[str, Any]) -> None:
        access_logger.info(orjson.dumps({**line, **self.fields}).decode())


async def _updates(
    subscription: AsyncIterator[Update],
    plan: _Plan,
    shape: Hashable,
    listing: Listing,
    *,
    has_commits: bool,
    has_ledgers: bool,
    has_credit_types: bool,
    logged: _Logged,
) -> AsyncGenerator[SeatBalanceUpdate, None]:
    """The subscriber's messages: every seat first, then the seats whose selected values
    changed since they were last sent (a message without any is not sent)."""
    sent: dict[str, bytes] = {}
    ended: str | None = None
    try:
        async for update in subscription:
            marks = _marks(
                update, plan, shape, listing, has_commits=has_commits, has_ledgers=has_ledgers
            )
            seats = []
            for record in update.seats:
                seat_id = record["seat_id"]
                mark = marks[seat_id]
                if sent.get(seat_id) != mark:
                    sent[seat_id] = mark
                    seats.append(
                        Seat.from_wire(
                            record,
                            listing,
                            has_commits=has_commits,
                            has_ledgers=has_ledgers,
                            has_credit_types=has_credit_types,
                        )
                    )
            if seats or update.reason == SNAPSHOT:
                message = SeatBalanceUpdate(
                    reason=SeatBalanceUpdateReason(update.reason),
                    at=_instant(update.at),
                    seats=seats,
                )
                logged.messages += 1
                yield message
                # Asked for the next one, so this one has been executed. graphql-core's event
                # stream keeps the last event until the next comes: an idle subscriber would
                # hold its last message's seats (a snapshot's hundreds) for nothing.
                message.seats = []
            seats = marks = None  # type: ignore[assignment]  # likewise, not held while idle
    except SubscriberTooSlow:
        ended = SUBSCRIPTION_DROPPED
        raise GatewayError(
            "The subscription was dropped: its updates were not read.", SUBSCRIPTION_DROPPED
        ) from None
    except ShuttingDown:
        ended = SHUTTING_DOWN
        raise GatewayError(_SHUTTING_DOWN, SHUTTING_DOWN) from None
    except CredentialExpired:
        ended = UNAUTHENTICATED
        raise GatewayError(
            "The caller's token expired: subscribe again with a fresh one.", UNAUTHENTICATED
        ) from None
    except RefreshFailing as failing:
        ended = (shape_error(GraphQLError("", original_error=failing.cause)).extensions or {}).get(
            "code"
        )
        raise failing.cause from None
    finally:
        close = getattr(subscription, "close", None)
        if close is not None:
            close()
        logged.ended(ended)


# Selections whose digests one update keeps for its subscribers (more are computed each time).
MAX_MEMO_PLANS = 64


def _marks(
    update: Update,
    plan: _Plan,
    shape: Hashable,
    listing: Listing,
    *,
    has_commits: bool,
    has_ledgers: bool,
) -> dict[str, bytes]:
    """Each seat's digest of what ``plan`` selects, computed once per update and selection:
    the subscribers of one listing that select alike share it (with a thousand subscribers,
    digesting every seat for each would hold the loop for seconds per refresh)."""
    marks: dict[str, bytes] | None = update.memo.get(shape)
    if marks is None:
        marks = {}
        for record in update.seats:
            seat = Seat.from_wire(record, listing, has_commits=has_commits, has_ledgers=has_ledgers)
            marks[seat.seat_id] = _fingerprint(plan, seat)
        if len(update.memo) < MAX_MEMO_PLANS:
            update.memo[shape] = marks
    return marks


def _seat_plan(info: GraphQLResolveInfo[Any]) -> _Plan:
    """What the subscription selects below ``seats`` (every alias of it), as readers."""
    executor = info.context["gateway"].executor
    update_type = get_named_type(info.return_type)
    assert is_object_type(update_type) and executor is not None
    group = [FieldDetails(node, None) for node in info.field_nodes]
    seat_type = info.schema.get_type("Seat")
    assert isinstance(seat_type, GraphQLObjectType)
    plan: list[tuple[str, str, Reader, _Plan | None]] = []
    for key, child in executor.collect_subfields(update_type, group).grouped_field_set.items():
        if child[0].node.name.value == "seats":
            plan.append((key, "seats", _identity, _plan(executor, seat_type, child)))
    return tuple(plan)


def _plan(executor: Any, type_: GraphQLObjectType, group: FieldDetailsList) -> _Plan:
    entries: list[tuple[str, str, Reader, _Plan | None]] = []
    for key, child in executor.collect_subfields(type_, group).grouped_field_set.items():
        name = child[0].node.name.value
        field = type_.fields.get(name)
        if field is None or join_of(field) is not None:
            continue  # __typename, or a detail joined from another endpoint
        read = reader_of(field)
        if read is None:
            continue  # answered by a resolver of its own (a credit type's name)
        named = get_named_type(field.type)
        if is_object_type(named):
            entries.append((key, name, read, _plan(executor, named, child)))
        elif is_leaf_type(named):
            entries.append((key, name, read, None))
    return tuple(entries)


def _fingerprint(plan: _Plan, seat: Seat) -> bytes:
    """A digest of the seat's selected values."""
    values = (
        _project(plan[0][3] or (), seat)
        if len(plan) == 1
        else [_project(below or (), seat) for _key, _name, _read, below in plan]
    )
    return hashlib.blake2b(orjson.dumps(values, default=str), digest_size=16).digest()


def _project(plan: _Plan, source: Any) -> list[Any]:
    values: list[Any] = []
    for _key, _name, read, below in plan:
        try:
            value = read(source)
        except Exception:
            value = None
        if below is not None and value is not None:
            if isinstance(value, list):
                value = [_project(below, item) for item in value]
            else:
                value = _project(below, value)
        values.append(value)
    return values


def _shape(plan: _Plan) -> Hashable:
    """What a plan selects, without its readers (a plain attribute's reader is made anew for
    each subscription): the key under which subscribers selecting alike share digests."""
    return tuple(
        (key, name, _shape(below) if below is not None else None)
        for key, name, _read, below in plan
    )


def _identity(value: Any) -> Any:
    return value


def _instant(at: float) -> DateTime:
    text = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    return DateTime(text.replace("+00:00", "Z"))
