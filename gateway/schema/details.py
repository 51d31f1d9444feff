"""What a dashboard shows next to a seat's figures: a commit's or credit's name, product,
schedule and subscription (from "List balances"), and a credit type's name.

The fields are added to ``Commit``, ``Credit`` and ``CreditTypeBalance`` (``types.py``) by the
``*_field()`` functions below, and resolve lazily: nothing is fetched unless one of them is
selected. They load through the request's ``details`` loader, which batches every commit and
credit of the operation (see :mod:`gateway.loaders.details`), and the credential's credit type
listing. All are nullable: when a detail call fails, these fields are ``null`` with an error at
their path, and the seats and balances around them are still answered. A commit the billing
API does not list any more, a type or allocation this gateway does not know, and an unknown
credit type are ``null`` without an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

import strawberry

from gateway.loaders.details import DetailKey
from gateway.schema.fields import FACTS, Facts, Reader, assumed_size, reads
from gateway.schema.scalars import DateTime
from gateway.upstream import BalanceItem

if TYPE_CHECKING:
    from gateway.schema.context import RequestContext


@strawberry.enum(description="How a commit is paid for.")
class CommitType(Enum):
    PREPAID = strawberry.enum_value("PREPAID", description="Paid up front, then drawn down.")
    POSTPAID = strawberry.enum_value(
        "POSTPAID", description="A minimum spend, invoiced at the end of its period."
    )


@strawberry.enum(description="How a subscription's commit or credit is shared by its seats.")
class SeatAllocation(Enum):
    INDIVIDUAL = strawberry.enum_value("INDIVIDUAL", description="Each seat has its own amount.")
    POOLED = strawberry.enum_value("POOLED", description="The seats draw on one shared amount.")


@strawberry.type(description="The product a commit or credit applies to.")
class Product:
    id: strawberry.ID = strawberry.field(description="The billing API's product id.")
    name: str = strawberry.field(description="The product's name.")


@strawberry.type(description="One period of an access schedule and the amount it makes available.")
class ScheduleItem:
    id: strawberry.ID = strawberry.field(description="The billing API's id of this period.")
    amount: float = strawberry.field(
        description="The amount available in this period, in the schedule's credit type."
    )
    starting_at: DateTime = strawberry.field(description="When the period starts (inclusive).")
    ending_before: DateTime = strawberry.field(description="When it ends (exclusive).")


@strawberry.type(description="A custom field set on a commit or credit in the billing API.")
class CustomField:
    key: str = strawberry.field(description="The custom field's name.")
    value: str = strawberry.field(description="Its value.")


@strawberry.type(description="A credit type: a currency or a custom pricing unit.")
class CreditType:
    """Read from the billing API's credit type record (``gateway.upstream.CreditType``)."""

    id: strawberry.ID = reads(
        lambda wire: str(wire.get("id")), description="The billing API's credit type id."
    )
    name: str = reads(
        lambda wire: str(wire.get("name")), description="Its name, e.g. `USD (cents)`."
    )
    is_currency: bool | None = reads(
        lambda wire: wire.get("is_currency"),
        description="Whether it is a currency; `null` when the billing API does not say.",
    )


_COMMIT_TYPES = {member.name: member for member in CommitType}  # names are the wire values
_ALLOCATIONS = {member.name: member for member in SeatAllocation}


# The item of a commit or credit not joined yet (``Held.item``).
UNJOINED: Any = object()


def join_item(held: Any, context: RequestContext) -> asyncio.Future[Any] | None:
    """Starts joining the commit's or credit's "List balances" item onto its ``Held`` (seat,
    record), once, whichever of its fields are selected: the load joins the operation's batch
    at once, and the future it returns is done when the item is on the ``Held`` (``None``: it
    already is). A failure is kept as the item, and each field that reads it reports it at its
    own path."""
    item = held.item
    if isinstance(item, asyncio.Future):
        return item
    if item is not UNJOINED:
        return None
    try:
        load = context.loaders.detail_future(
            DetailKey(str(held.seat.customer_id), held.record["id"])
        )
    except Exception as error:  # no credentials, a spent budget: the fields report it
        held.item = error
        return None

    def attach(done: asyncio.Future[Any]) -> None:
        held.item = (
            asyncio.CancelledError() if done.cancelled() else done.exception() or done.result()
        )

    # Registered before anyone awaits the load, so the item is on the Held when they resume.
    load.add_done_callback(attach)
    held.item = load
    return load


def _item(held: Any) -> BalanceItem | None:
    item = held.item
    if isinstance(item, BaseException):
        raise item
    if item is UNJOINED or isinstance(item, asyncio.Future):  # a bug, not the caller's fault
        raise RuntimeError("a detail field was read before its item was joined")
    return item  # type: ignore[no-any-return]


def _name(held: Any) -> str | None:
    item = _item(held)
    return item.get("name") if item else None


def _description(held: Any) -> str | None:
    item = _item(held)
    return item.get("description") if item else None


def _product(held: Any) -> Product | None:
    item = _item(held)
    product = item.get("product") if item else None
    return Product(id=strawberry.ID(product["id"]), name=product["name"]) if product else None


def _type(held: Any) -> str | None:
    """The enum's value, as the other enum readers give it (see ``types._ledger_type``)."""
    item = _item(held)
    wire = item["type"] if item else None
    return wire if wire in _COMMIT_TYPES else None


def _priority(held: Any) -> float | None:
    item = _item(held)
    return item.get("priority") if item else None


def _access_schedule(held: Any) -> list[ScheduleItem] | None:
    item = _item(held)
    schedule = item.get("access_schedule") if item else None
    if not schedule:
        return None
    return [
        ScheduleItem(
            id=strawberry.ID(entry["id"]),
            amount=entry["amount"],
            starting_at=DateTime(entry["starting_at"]),
            ending_before=DateTime(entry["ending_before"]),
        )
        for entry in schedule["schedule_items"]
    ]


def _custom_fields(held: Any) -> list[CustomField] | None:
    item = _item(held)
    fields = item.get("custom_fields") if item else None
    if fields is None:
        return None
    return [CustomField(key=key, value=value) for key, value in fields.items()]


def _allocation(held: Any) -> str | None:
    item = _item(held)
    config = item.get("subscription_config") if item else None
    allocation = config.get("allocation") if config else None
    return allocation if allocation in _ALLOCATIONS else None


def _subscription_id(held: Any) -> str | None:
    item = _item(held)
    config = item.get("subscription_config") if item else None
    subscription_id = config.get("subscription_id") if config else None
    return subscription_id or None


def join_credit_type(balance: Any, context: RequestContext) -> asyncio.Future[Any] | None:
    """Starts joining a balance's credit type onto it (a ``types.HeldBalance``: made when
    ``creditType`` is selected), from the credential's listing, shared by the whole request:
    the future is done when the credit type (``None`` when the listing lacks it, or the
    listing's failure) is on the balance (``None``: it already is)."""
    joined = getattr(balance, "credit_type", None)
    if isinstance(joined, asyncio.Future):
        return joined
    if joined is not UNJOINED:
        return None  # joined already, or a plain record (the look-ahead missed: see the reader)
    try:
        listing = context.loaders.credit_types()
    except Exception as error:  # no credentials, a spent budget: the field reports it
        balance.credit_type = error
        return None

    def attach(done: asyncio.Future[Any]) -> None:
        if done.cancelled():
            balance.credit_type = asyncio.CancelledError()
        elif (error := done.exception()) is not None:
            balance.credit_type = error
        else:
            balance.credit_type = done.result().get(balance["credit_type_id"])

    if listing.done():
        attach(listing)
        return None
    listing.add_done_callback(attach)
    balance.credit_type = listing
    return listing


def _credit_type(balance: Any) -> Any:
    """The balance's credit type record once joined, ``None`` when the listing lacks it."""
    joined = getattr(balance, "credit_type", UNJOINED)
    if isinstance(joined, BaseException):
        raise joined
    if joined is UNJOINED or isinstance(joined, asyncio.Future):  # a bug, not the caller's fault
        raise RuntimeError("a balance's credit type was read before it was joined")
    return joined


_FAILS = "`null` if the billing API does not list it or the call failed"

# What completing a field costs against a field read from the page (gateway.schema.work),
# measured with bench/amplification.py's pages and entities: a field of a joined item about
# 2-3 times (the join is a future per commit or credit). A balance's credit type, joined too
# since round eight (a copy of the balance, a callback on the request's one listing): 2.9 us
# per balance with its name against 0.15 us per field read from the page (bench/inprocess.py,
# A with `creditType { name }` and A with four more leaves per balance), about 17 units for
# the field, its object and its name together; it was 60 while graphql-core completed every
# object selecting it field by field.
DETAIL_WORK = 3
CREDIT_TYPE_WORK = 15
_WEIGHT = {FACTS: Facts(work=DETAIL_WORK)}


def _detail(read: Reader, description: str, directives: Sequence[object] = ()) -> Any:
    """A field read from the joined item (:func:`join_item`), weighed like any other field."""
    return reads(
        read,
        description=description,
        directives=directives,
        joins=join_item,
        metadata=_WEIGHT,
    )


def name_field() -> Any:
    return _detail(_name, f"Its name in the billing API; {_FAILS}.")


def description_field() -> Any:
    return _detail(_description, f"Its description; {_FAILS}.")


def product_field() -> Any:
    return _detail(_product, f"The product it applies to; {_FAILS}.")


def commit_type_field() -> Any:
    return _detail(
        _type, f"Prepaid or postpaid; also `null` for a type this API does not know; {_FAILS}."
    )


def priority_field() -> Any:
    return _detail(
        _priority, f"Which commit or credit is drawn on first: the lower priority; {_FAILS}."
    )


def access_schedule_field() -> Any:
    return _detail(
        _access_schedule,
        f"When which amount is available (the whole commit, all seats); {_FAILS}.",
        [assumed_size(12)],
    )


def custom_fields_field() -> Any:
    return _detail(_custom_fields, f"Custom fields set on it; {_FAILS}.", [assumed_size(10)])


def allocation_field() -> Any:
    return _detail(
        _allocation,
        "How a subscription's seats share it, from its subscription config; also `null` "
        "when it belongs to no subscription or the allocation is one this API does not "
        f"know; {_FAILS}.",
    )


def subscription_id_field() -> Any:
    return _detail(
        _subscription_id, f"The subscription whose seats it was made for, if any; {_FAILS}."
    )


def credit_type_field() -> Any:
    return reads(
        _credit_type,
        joins=join_credit_type,
        metadata={FACTS: Facts(work=CREDIT_TYPE_WORK)},
        description=(
            "The credit type's name and kind; `null` when the billing API does not list it "
            "(no error) or the listing could not be fetched (with an error)."
        ),
    )
