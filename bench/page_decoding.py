"""Decoding and validating one upstream page: pydantic-core (what the gateway does) against msgspec.

    .venv/bin/pip install msgspec        # not a dependency of the package
    .venv/bin/python bench/page_decoding.py

Fetches shape A's page (25 seats, balances), B's (11 seats with commits and credits) and C's
(B's with ledgers, 77 kB) from the embedded stand-in, checks that every candidate that validates gives the
same dicts as ``gateway.upstream.models.SEAT_BALANCE_PAGE``, then prints the CPU time
(``time.process_time``) per page of each, the best of 5 batches. The msgspec candidates enforce
the same contract as ``models.py`` (finite numbers, the 2^31 bound on seat counts, RFC 3339
timestamps) unless their name says otherwise; so do the pydantic-core variants (another
pattern or option of the same model).
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from typing import Annotated, Any, NotRequired

import httpx
import msgspec
import orjson
from pydantic import ConfigDict, Field, FiniteFloat, StringConstraints, TypeAdapter, with_config
from typing_extensions import TypedDict

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, create_standin_app
from gateway.upstream.models import _RFC3339, SEAT_BALANCE_PAGE

MAX_DOUBLE = 1.7976931348623157e308
Finite = Annotated[float, msgspec.Meta(ge=-MAX_DOUBLE, le=MAX_DOUBLE)]
# Python's `re` (which msgspec uses) lets `$` match before a final newline: `\Z` does not.
Timestamp = Annotated[str, msgspec.Meta(pattern=_RFC3339.removesuffix("$") + r"\Z")]
SeatCount = Annotated[float, msgspec.Meta(ge=0, le=2**31 - 1)]


class Balance(TypedDict):
    credit_type_id: str
    balance: Finite
    starting_balance: Finite


class Pagination(TypedDict):
    seats_included: SeatCount
    seats_available_for_next_page: NotRequired[SeatCount | None]
    next_page: NotRequired[str | None]


class LedgerEntry(TypedDict):
    type: str
    amount: Finite
    timestamp: Timestamp


class SeatCommit(TypedDict):
    id: str
    balance: Finite
    start_date: Timestamp
    end_date: NotRequired[Timestamp | None]
    ledger_entries: NotRequired[list[LedgerEntry] | None]


class SeatBalance(TypedDict):
    seat_id: str
    balances: list[Balance]
    commits: NotRequired[list[SeatCommit] | None]
    credits: NotRequired[list[SeatCommit] | None]


class Page(TypedDict):
    data: list[SeatBalance]
    pagination: Pagination


# The same without the timestamp check, to show what it costs.
class UncheckedLedgerEntry(TypedDict):
    type: str
    amount: Finite
    timestamp: str


class UncheckedSeatCommit(TypedDict):
    id: str
    balance: Finite
    start_date: str
    end_date: NotRequired[str | None]
    ledger_entries: NotRequired[list[UncheckedLedgerEntry] | None]


class UncheckedSeatBalance(TypedDict):
    seat_id: str
    balances: list[Balance]
    commits: NotRequired[list[UncheckedSeatCommit] | None]
    credits: NotRequired[list[UncheckedSeatCommit] | None]


class UncheckedPage(TypedDict):
    data: list[UncheckedSeatBalance]
    pagination: Pagination


class LedgerStruct(msgspec.Struct):
    type: str
    amount: Finite
    timestamp: datetime.datetime


class CommitStruct(msgspec.Struct):
    id: str
    balance: Finite
    start_date: datetime.datetime
    end_date: datetime.datetime | None = None
    ledger_entries: list[LedgerStruct] | None = None


class BalanceStruct(msgspec.Struct):
    credit_type_id: str
    balance: Finite
    starting_balance: Finite


class SeatStruct(msgspec.Struct):
    seat_id: str
    balances: list[BalanceStruct]
    commits: list[CommitStruct] | None = None
    credits: list[CommitStruct] | None = None


class PaginationStruct(msgspec.Struct):
    seats_included: SeatCount
    seats_available_for_next_page: SeatCount | None = None
    next_page: str | None = None


class PageStruct(msgspec.Struct):
    data: list[SeatStruct]
    pagination: PaginationStruct


def pydantic_page(pattern: str, config: ConfigDict | None = None) -> TypeAdapter[Any]:
    """``gateway/upstream/models.py``'s page with another timestamp pattern or pydantic config,
    to measure what those options change (the functional syntax: the types are this call's
    values, which postponed annotations in a class body could not see)."""

    def typed_dict(name: str, fields: dict[str, Any]) -> Any:
        made = TypedDict(name, fields)  # type: ignore[operator]
        return with_config(config)(made) if config is not None else made

    timestamp = Annotated[str, StringConstraints(pattern=pattern)]
    count = Annotated[float, Field(ge=0, le=2**31 - 1, allow_inf_nan=False)]
    entry = typed_dict("entry", {"type": str, "amount": FiniteFloat, "timestamp": timestamp})
    commit = typed_dict(
        "commit",
        {
            "id": str,
            "balance": FiniteFloat,
            "start_date": timestamp,
            "end_date": NotRequired[timestamp | None],
            "ledger_entries": NotRequired[list[entry] | None],
        },
    )
    balance = typed_dict(
        "balance",
        {"credit_type_id": str, "balance": FiniteFloat, "starting_balance": FiniteFloat},
    )
    seat = typed_dict(
        "seat",
        {
            "seat_id": str,
            "balances": list[balance],
            "commits": NotRequired[list[commit] | None],
            "credits": NotRequired[list[commit] | None],
        },
    )
    pagination = typed_dict(
        "pagination",
        {
            "seats_included": count,
            "seats_available_for_next_page": NotRequired[count | None],
            "next_page": NotRequired[str | None],
        },
    )
    page = typed_dict("page", {"data": list[seat], "pagination": pagination})
    return TypeAdapter(page)


async def fetch(shape: dict[str, Any]) -> bytes:
    body = {"customer_id": DEMO_CUSTOMER_ID, "contract_id": DEMO_CONTRACT_ID, **shape}
    transport = httpx.ASGITransport(create_standin_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://standin") as client:
        response = await client.post(
            "/v1/contracts/seatBalances/list",
            json=body,
            headers={"Authorization": "Bearer demo-token"},
        )
        return response.content


def cpu_us(decode: Callable[[bytes], object], page: bytes, calls: int) -> float:
    best = float("inf")
    for _ in range(5):
        began = time.process_time()
        for _ in range(calls):
            decode(page)
        best = min(best, (time.process_time() - began) / calls)
    return best * 1e6


def main() -> None:
    pages = {
        "A": asyncio.run(fetch({"limit": 25})),
        "B": asyncio.run(fetch({"limit": 100, "include_credits_and_commits": True})),
        "C": asyncio.run(
            fetch({"limit": 100, "include_credits_and_commits": True, "include_ledgers": True})
        ),
    }
    with_pattern = msgspec.json.Decoder(Page).decode
    candidates: list[tuple[str, Callable[[bytes], object], bool]] = [
        (
            "pydantic-core TypeAdapter.validate_json (the gateway)",
            SEAT_BALANCE_PAGE.validate_json,
            True,
        ),
        ("msgspec, TypedDicts, timestamps by Meta(pattern=RFC 3339)", with_pattern, True),
        (
            "msgspec, TypedDicts, timestamps NOT checked",
            msgspec.json.Decoder(UncheckedPage).decode,
            True,
        ),
        (
            "msgspec, Structs, timestamps as datetime (values change: not the wire's text)",
            msgspec.json.Decoder(PageStruct).decode,
            False,
        ),
        (
            "pydantic-core, Unicode digits (\\d) instead of [0-9] in the timestamp pattern",
            pydantic_page(_RFC3339.replace("[0-9]", r"\d")).validate_json,
            True,
        ),
        (
            "pydantic-core, cache_strings='keys'",
            pydantic_page(_RFC3339, ConfigDict(cache_strings="keys")).validate_json,
            True,
        ),
        (
            "pydantic-core, Python's re for the pattern (regex_engine='python-re')",
            pydantic_page(_RFC3339, ConfigDict(regex_engine="python-re")).validate_json,
            True,
        ),
        ("orjson.loads alone (no validation)", orjson.loads, True),
    ]
    print("| page | bytes | decoder | CPU µs per page |\n|---|--:|---|--:|")
    for shape, page in pages.items():
        reference = SEAT_BALANCE_PAGE.validate_json(page)
        for name, decode, same_dicts in candidates:
            if same_dicts and not name.startswith("orjson"):
                assert decode(page) == reference, name
            calls = 3000 if shape == "A" else 1000 if shape == "B" else 300
            print(f"| {shape} | {len(page):,} | {name} | {cpu_us(decode, page, calls):.0f} |")


if __name__ == "__main__":
    main()
