"""The wire payloads of "List seat balances", in the wire's own (snake_case) names.

They are ``TypedDict``s, validated once by pydantic-core straight from the response bytes and then
used as plain dicts: the GraphQL layer reads them without another copy. Validation is tolerant
where the contract is (unknown keys are dropped, integers become floats, ledger types are free
strings because the API may add some) and strict where a break would hide data (a missing seat id,
a non-numeric balance, a timestamp that is not RFC 3339, whose digits are ASCII) or reach the
schema as a value it cannot show: every number must be finite (``NaN``, ``Infinity`` and
``1e400`` are refused; GraphQL's ``Float`` has no such values) and the seat counts must fit
GraphQL's 32-bit ``Int``.
"""

from __future__ import annotations

from typing import (
    Annotated,
    NotRequired,  # pydantic needs these on Python < 3.12
)

from pydantic import Field, FiniteFloat, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

# RFC 3339's digits are ASCII (`DIGIT = %x30-39`); `\d` would also take Arabic-Indic or
# full-width digits (the regex engine's `\d` is Unicode's).
_RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
Timestamp = Annotated[str, StringConstraints(pattern=_RFC3339)]
# A number of seats: shown as GraphQL `Int` (32-bit signed).
SeatCount = Annotated[float, Field(ge=0, le=2**31 - 1, allow_inf_nan=False)]


class LedgerEntry(TypedDict):
    type: str
    amount: FiniteFloat
    timestamp: Timestamp


class SeatCommit(TypedDict):
    """A commit or a credit as seen from one seat (its ``balance`` is this seat's share)."""

    id: str
    balance: FiniteFloat
    start_date: Timestamp
    end_date: NotRequired[Timestamp | None]
    ledger_entries: NotRequired[list[LedgerEntry] | None]


class Balance(TypedDict):
    credit_type_id: str
    balance: FiniteFloat
    starting_balance: FiniteFloat


class SeatBalance(TypedDict):
    seat_id: str
    balances: list[Balance]
    commits: NotRequired[list[SeatCommit] | None]
    credits: NotRequired[list[SeatCommit] | None]


class Pagination(TypedDict):
    seats_included: SeatCount
    seats_available_for_next_page: NotRequired[SeatCount | None]
    next_page: NotRequired[str | None]


class SeatBalancePage(TypedDict):
    data: list[SeatBalance]
    pagination: Pagination


SEAT_BALANCE_PAGE: TypeAdapter[SeatBalancePage] = TypeAdapter(SeatBalancePage)
