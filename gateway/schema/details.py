"""What a dashboard shows next to a seat's figures: a commit's or credit's name, product,
schedule and subscription (from "List balances"), and a credit type's name.

The fields are added to ``Commit``, ``Credit`` and ``CreditTypeBalance`` (``types.py``) by the
``*_field()`` functions below, and resolve lazily: nothing is fetched unless one of them is
selected. They load through the request's ``details`` loader, which batches every commit and
credit of the operation (see :mod:`gateway.details_loaders`), and the credential's credit type
listing. All are nullable: when a detail call fails, these fields are ``null`` with an error at
their path, and the seats and balances around them are still answered. A commit the billing
API does not list any more, a type or allocation this gateway does not know, and an unknown
credit type are ``null`` without an error.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from gateway.details_loaders import DetailKey
from gateway.schema.context import request_context
from gateway.schema.fields import assumed_size
from gateway.schema.scalars import DateTime
from gateway.schema.work import WORK
from gateway.upstream import BalanceItem


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
    id: strawberry.ID = strawberry.field(description="The billing API's credit type id.")
    name: str = strawberry.field(description="Its name, e.g. `USD (cents)`.")
    is_currency: bool | None = strawberry.field(
        description="Whether it is a currency; `null` when the billing API does not say."
    )


_COMMIT_TYPES = {member.name: member for member in CommitType}  # names are the wire values
_ALLOCATIONS = {member.name: member for member in SeatAllocation}


async def _item(root: Any, info: strawberry.Info) -> BalanceItem | None:
    """The commit's or credit's "List balances" item; ``root`` is its ``Held`` (seat, record)."""
    key = DetailKey(str(root.seat.customer_id), root.record["id"])
    return await request_context(info).loaders.detail(key)


async def _name(root: strawberry.Parent[Any], info: strawberry.Info) -> str | None:
    item = await _item(root, info)
    return item.get("name") if item else None


async def _description(root: strawberry.Parent[Any], info: strawberry.Info) -> str | None:
    item = await _item(root, info)
    return item.get("description") if item else None


async def _product(root: strawberry.Parent[Any], info: strawberry.Info) -> Product | None:
    item = await _item(root, info)
    product = item.get("product") if item else None
    return Product(id=strawberry.ID(product["id"]), name=product["name"]) if product else None


async def _type(root: strawberry.Parent[Any], info: strawberry.Info) -> CommitType | None:
    item = await _item(root, info)
    return _COMMIT_TYPES.get(item["type"]) if item else None


async def _priority(root: strawberry.Parent[Any], info: strawberry.Info) -> float | None:
    item = await _item(root, info)
    return item.get("priority") if item else None


async def _access_schedule(
    root: strawberry.Parent[Any], info: strawberry.Info
) -> list[ScheduleItem] | None:
    item = await _item(root, info)
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


async def _custom_fields(
    root: strawberry.Parent[Any], info: strawberry.Info
) -> list[CustomField] | None:
    item = await _item(root, info)
    fields = item.get("custom_fields") if item else None
    if fields is None:
        return None
    return [CustomField(key=key, value=value) for key, value in fields.items()]


async def _allocation(root: strawberry.Parent[Any], info: strawberry.Info) -> SeatAllocation | None:
    item = await _item(root, info)
    config = item.get("subscription_config") if item else None
    allocation = config.get("allocation") if config else None
    return _ALLOCATIONS.get(allocation) if allocation else None


async def _subscription_id(
    root: strawberry.Parent[Any], info: strawberry.Info
) -> strawberry.ID | None:
    item = await _item(root, info)
    config = item.get("subscription_config") if item else None
    subscription_id = config.get("subscription_id") if config else None
    return strawberry.ID(subscription_id) if subscription_id else None


async def _credit_type(root: strawberry.Parent[Any], info: strawberry.Info) -> CreditType | None:
    # ``root`` is the seat's wire balance.
    wire = await request_context(info).loaders.credit_type(root["credit_type_id"])
    if wire is None:
        return None
    return CreditType(
        id=strawberry.ID(str(wire.get("id"))),
        name=str(wire.get("name")),
        is_currency=wire.get("is_currency"),
    )


_FAILS = "`null` if the billing API does not list it or the call failed"

# What completing a detail field costs against a field read from the page (gateway.schema.work):
# each is a resolver of its own awaiting the request's details loader (bench/amplification.py:
# about 25 µs a field, against about 1 µs for a projected one).
DETAIL_WORK = 20
_WEIGHT = {WORK: DETAIL_WORK}


def name_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT, resolver=_name, description=f"Its name in the billing API; {_FAILS}."
    )


def description_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT, resolver=_description, description=f"Its description; {_FAILS}."
    )


def product_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT, resolver=_product, description=f"The product it applies to; {_FAILS}."
    )


def commit_type_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT,
        resolver=_type,
        description=f"Prepaid or postpaid; also `null` for a type this API does not know; {_FAILS}.",
    )


def priority_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT,
        resolver=_priority,
        description=f"Which commit or credit is drawn on first: the lower priority; {_FAILS}.",
    )


def access_schedule_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT,
        resolver=_access_schedule,
        description=f"When which amount is available (the whole commit, all seats); {_FAILS}.",
        directives=[assumed_size(12)],
    )


def custom_fields_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT,
        resolver=_custom_fields,
        description=f"Custom fields set on it; {_FAILS}.",
        directives=[assumed_size(10)],
    )


def allocation_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT,
        resolver=_allocation,
        description=(
            "How a subscription's seats share it, from its subscription config; also `null` "
            f"when it belongs to no subscription or the allocation is one this API does not "
            f"know; {_FAILS}."
        ),
    )


def subscription_id_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT,
        resolver=_subscription_id,
        description=f"The subscription whose seats it was made for, if any; {_FAILS}.",
    )


def credit_type_field() -> Any:
    return strawberry.field(
        metadata=_WEIGHT,
        resolver=_credit_type,
        description=(
            "The credit type's name and kind; `null` when the billing API does not list it "
            "(no error) or the listing could not be fetched (with an error)."
        ),
    )
