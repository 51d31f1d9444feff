"""The wire payloads of "List balances" and of the credit types, in the wire's own names.

Like :mod:`gateway.upstream.models`, ``TypedDict``s validated by pydantic-core from the bytes.
Tolerant where the contract is: unknown keys are dropped, ``type`` and ``allocation`` are free
strings (the API may add values), every optional field may be absent or ``null``, and every
field of a credit type is optional (the SDKs say so). Strict where a break would hide data: an
item without ``id`` or ``type``, a schedule item without its four fields or with a date that is
not RFC 3339, a non-numeric amount or priority.
"""

from __future__ import annotations

from typing import NotRequired

from pydantic import FiniteFloat, TypeAdapter
from typing_extensions import TypedDict

from gateway.upstream.models import Timestamp


class Product(TypedDict):
    id: str
    name: str


class ScheduleItem(TypedDict):
    id: str
    amount: FiniteFloat
    starting_at: Timestamp
    ending_before: Timestamp


class CreditTypeRef(TypedDict):
    id: str
    name: NotRequired[str | None]


class AccessSchedule(TypedDict):
    schedule_items: list[ScheduleItem]
    credit_type: NotRequired[CreditTypeRef | None]


class SubscriptionConfig(TypedDict):
    subscription_id: NotRequired[str | None]
    allocation: NotRequired[str | None]  # INDIVIDUAL | POOLED, or one added later


class BalanceItem(TypedDict):
    """A commit (``type`` PREPAID or POSTPAID) or a credit (CREDIT) of a customer."""

    id: str
    type: str
    product: NotRequired[Product | None]  # required by the contract; absent is shown as null
    name: NotRequired[str | None]
    description: NotRequired[str | None]
    priority: NotRequired[FiniteFloat | None]
    access_schedule: NotRequired[AccessSchedule | None]
    custom_fields: NotRequired[dict[str, str] | None]
    subscription_config: NotRequired[SubscriptionConfig | None]


class BalancesPage(TypedDict):
    data: list[BalanceItem]
    next_page: NotRequired[str | None]


class CreditType(TypedDict):
    id: NotRequired[str | None]
    name: NotRequired[str | None]
    is_currency: NotRequired[bool | None]


class CreditTypesPage(TypedDict):
    data: list[CreditType]
    next_page: NotRequired[str | None]


BALANCES_PAGE: TypeAdapter[BalancesPage] = TypeAdapter(BalancesPage)
CREDIT_TYPES_PAGE: TypeAdapter[CreditTypesPage] = TypeAdapter(CreditTypesPage)
