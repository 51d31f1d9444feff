"""The object types of the public schema, read straight from the billing API's JSON.

Objects keep the upstream record they came from (``Private``) and resolve from it; a field whose
data the page was fetched without (commits, credits, ledger entries) is loaded lazily through
the request's ``seats`` loader, which batches every such seat of the operation into one call.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

import strawberry
from strawberry import Private

from gateway.loaders import Listing, SeatRequest
from gateway.schema import details
from gateway.schema.arguments import uuid_argument
from gateway.schema.context import request_context
from gateway.schema.errors import NOT_FOUND, GatewayError
from gateway.schema.ids import global_id
from gateway.schema.scalars import DateTime
from gateway.schema.selection import selected_names
from gateway.upstream import SeatBalance, SeatCommit


@strawberry.interface(
    description=(
        "An object with a globally unique id, refetchable with `Query.node` / `Query.nodes` "
        "(Relay's Object Identification)."
    )
)
class Node:
    @strawberry.field(description="Opaque, globally unique id of the object.")
    def id(self) -> strawberry.ID:
        raise NotImplementedError  # each type gives its own


@strawberry.enum(
    description=(
        "What a ledger entry records. Values the billing API adds later arrive as `UNKNOWN` "
        "(see `LedgerEntry.rawType` for the API's own name) instead of failing the query."
    )
)
class LedgerEntryType(Enum):
    PREPAID_COMMIT_SEGMENT_START = "PREPAID_COMMIT_SEGMENT_START"
    PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION = "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION"
    PREPAID_COMMIT_ROLLOVER = "PREPAID_COMMIT_ROLLOVER"
    PREPAID_COMMIT_EXPIRATION = "PREPAID_COMMIT_EXPIRATION"
    PREPAID_COMMIT_CANCELED = "PREPAID_COMMIT_CANCELED"
    PREPAID_COMMIT_CREDITED = "PREPAID_COMMIT_CREDITED"
    PREPAID_COMMIT_MANUAL = "PREPAID_COMMIT_MANUAL"
    PREPAID_COMMIT_SEAT_BASED_ADJUSTMENT = "PREPAID_COMMIT_SEAT_BASED_ADJUSTMENT"
    CREDIT_SEGMENT_START = "CREDIT_SEGMENT_START"
    CREDIT_AUTOMATED_INVOICE_DEDUCTION = "CREDIT_AUTOMATED_INVOICE_DEDUCTION"
    CREDIT_EXPIRATION = "CREDIT_EXPIRATION"
    CREDIT_CANCELED = "CREDIT_CANCELED"
    CREDIT_CREDITED = "CREDIT_CREDITED"
    CREDIT_MANUAL = "CREDIT_MANUAL"
    CREDIT_SEAT_BASED_ADJUSTMENT = "CREDIT_SEAT_BASED_ADJUSTMENT"
    CREDIT_ROLLOVER = "CREDIT_ROLLOVER"
    UNKNOWN = strawberry.enum_value(
        "UNKNOWN", description="A type this gateway does not know yet; see `rawType`."
    )


_LEDGER_TYPES = {member.value: member for member in LedgerEntryType}
# The GraphQL enum value name of each known wire type (what the response carries).
LEDGER_TYPE_NAMES = {member.value: member.name for member in LedgerEntryType}


@strawberry.type(description="One movement of a commit's or credit's balance.")
class LedgerEntry:
    raw_type: str = strawberry.field(
        description="The billing API's own name of the type, also for types added later."
    )
    amount: float = strawberry.field(
        description="Signed amount in the credit type's unit; deductions are negative."
    )
    timestamp: DateTime = strawberry.field(description="When the movement took effect.")

    @strawberry.field(description="What the entry records.")
    def type(self) -> LedgerEntryType:
        return _LEDGER_TYPES.get(self.raw_type, LedgerEntryType.UNKNOWN)


def _maybe_datetime(value: str | None) -> DateTime | None:
    return None if value is None else DateTime(value)


def _ledger(entries: list[Any] | None) -> list[LedgerEntry]:
    return [
        LedgerEntry(raw_type=e["type"], amount=e["amount"], timestamp=DateTime(e["timestamp"]))
        for e in entries or ()
    ]


@strawberry.type(description="A seat's balance in one credit type (a currency or custom unit).")
class CreditTypeBalance:
    credit_type_id: strawberry.ID = strawberry.field(
        description="The billing API's id of the credit type."
    )
    balance: float = strawberry.field(
        description="What remains across this seat's commits and credits of this credit type."
    )
    starting_balance: float = strawberry.field(
        description="What those commits and credits started with."
    )
    credit_type = details.credit_type_field()


@strawberry.type
class _Commitment:
    """Fields a commit and a credit share, as seen from one seat."""

    balance: float = strawberry.field(description="What remains of it for this seat.")
    start_date: DateTime = strawberry.field(description="When access starts.")
    end_date: DateTime | None = strawberry.field(
        description="When access ends (exclusive); `null` when it does not end."
    )
    # A Seat. Typed Any: Strawberry's entity discovery walks Private annotations too and
    # would list Seat twice in _Entity (strawberry-graphql 0.341); see `seat` for the type.
    _seat: Private[Any]
    _wire_id: Private[str]
    _record: Private[SeatCommit]
    _has_ledgers: Private[bool]
    _kind: Private[str]  # "commits" or "credits": where the record sits in the seat
    # Details from "List balances", fetched only when selected (gateway/schema/details.py).
    name = details.name_field()
    description = details.description_field()
    product = details.product_field()
    priority = details.priority_field()
    access_schedule = details.access_schedule_field()
    custom_fields = details.custom_fields_field()
    allocation = details.allocation_field()
    subscription_id = details.subscription_id_field()

    @strawberry.field(
        description="Every movement of its balance, oldest first as the API sends them."
    )
    async def ledger_entries(self, info: strawberry.Info) -> list[LedgerEntry]:
        if self._has_ledgers:
            return _ledger(self._record.get("ledger_entries"))
        seat: Seat = self._seat
        record = await seat.load_full(info, include_commits=True, include_ledgers=True)
        items = (record.get("commits") if self._kind == "commits" else record.get("credits")) or []
        for item in items:
            if item["id"] == self._wire_id:
                return _ledger(item.get("ledger_entries"))
        return []


@strawberry.type(description="A prepaid commit as seen from one seat, with this seat's balance.")
class Commit(_Commitment, Node):
    type = details.commit_type_field()

    @strawberry.field(
        description="Opaque, globally unique id of this commit on this seat (Relay object id)."
    )
    def id(self) -> strawberry.ID:
        seat = self._seat
        return strawberry.ID(
            global_id("Commit", seat.customer_id, seat.contract_id, seat.seat_id, self._wire_id)
        )

    @strawberry.field(description="The billing API's id of the commit (shared across seats).")
    def commit_id(self) -> strawberry.ID:
        return strawberry.ID(self._wire_id)


@strawberry.type(description="A credit as seen from one seat, with this seat's balance.")
class Credit(_Commitment, Node):
    @strawberry.field(
        description="Opaque, globally unique id of this credit on this seat (Relay object id)."
    )
    def id(self) -> strawberry.ID:
        seat = self._seat
        return strawberry.ID(
            global_id("Credit", seat.customer_id, seat.contract_id, seat.seat_id, self._wire_id)
        )

    @strawberry.field(description="The billing API's id of the credit (shared across seats).")
    def credit_id(self) -> strawberry.ID:
        return strawberry.ID(self._wire_id)


@strawberry.federation.type(
    keys=["customerId contractId seatId"],
    description=(
        "One seat of a seat-based contract and what it holds. A federation entity: other "
        "subgraphs that know a seat by (customerId, contractId, seatId) can extend it."
    ),
)
class Seat(Node):
    seat_id: str = strawberry.field(
        description="The billing API's seat id: free-form, often the holder's e-mail."
    )
    customer_id: strawberry.ID = strawberry.field(description="The customer owning the contract.")
    contract_id: strawberry.ID = strawberry.field(description="The seat-based contract.")
    _record: Private[SeatBalance]
    _listing: Private[Listing]
    _has_commits: Private[bool]
    _has_ledgers: Private[bool]

    @classmethod
    def from_wire(
        cls, record: SeatBalance, listing: Listing, *, has_commits: bool, has_ledgers: bool
    ) -> Seat:
        return cls(
            seat_id=record["seat_id"],
            customer_id=strawberry.ID(listing.customer_id),
            contract_id=strawberry.ID(listing.contract_id),
            _record=record,
            _listing=listing,
            _has_commits=has_commits,
            _has_ledgers=has_commits and has_ledgers,
        )

    @classmethod
    async def resolve_reference(cls, info: strawberry.Info, **key: Any) -> Seat | None:
        """A seat another subgraph knows by its key; ``null`` when the billing API does not."""
        seat_id = key.get("seatId")
        if not isinstance(seat_id, str) or not seat_id:
            raise GatewayError("A Seat representation needs a non-empty 'seatId'.")
        listing = Listing(
            customer_id=uuid_argument("customerId", key.get("customerId")),  # type: ignore[arg-type]
            contract_id=uuid_argument("contractId", key.get("contractId")),  # type: ignore[arg-type]
        )
        return await seat_by_key(info, listing, seat_id)

    @strawberry.field(description="Opaque, globally unique id of this seat (Relay object id).")
    def id(self) -> strawberry.ID:
        return strawberry.ID(global_id("Seat", self.customer_id, self.contract_id, self.seat_id))

    @strawberry.field(description="One balance per credit type the seat holds.")
    def balances(self) -> list[CreditTypeBalance]:
        return [
            CreditTypeBalance(
                credit_type_id=strawberry.ID(b["credit_type_id"]),
                balance=b["balance"],
                starting_balance=b["starting_balance"],
            )
            for b in self._record["balances"]
        ]

    @strawberry.field(description="The seat's prepaid commits, within the listing's date filters.")
    async def commits(self, info: strawberry.Info) -> list[Commit]:
        record, has_ledgers = await self.with_commitments(info)
        return [self.commitment(Commit, c, has_ledgers) for c in record.get("commits") or ()]

    @strawberry.field(description="The seat's credits, within the listing's date filters.")
    async def credits(self, info: strawberry.Info) -> list[Credit]:
        record, has_ledgers = await self.with_commitments(info)
        return [self.commitment(Credit, c, has_ledgers) for c in record.get("credits") or ()]

    def commitment(
        self, kind: type[_CommitmentT], item: SeatCommit, has_ledgers: bool
    ) -> _CommitmentT:
        """A commit or credit of this seat from its wire record."""
        return kind(
            balance=item["balance"],
            start_date=DateTime(item["start_date"]),
            end_date=_maybe_datetime(item.get("end_date")),
            _seat=self,
            _wire_id=item["id"],
            _record=item,
            _has_ledgers=has_ledgers,
            _kind="commits" if kind is Commit else "credits",
        )

    async def with_commitments(self, info: strawberry.Info) -> tuple[SeatBalance, bool]:
        if self._has_commits:
            return self._record, self._has_ledgers
        # The page came without commits (the look-ahead could not see them, or the seat was
        # found by key): fetch them, with ledgers at once if they are selected below.
        wants_ledgers = "ledgerEntries" in selected_names(info._raw_info)
        record = await self.load_full(info, include_commits=True, include_ledgers=wants_ledgers)
        return record, wants_ledgers

    async def load_full(
        self, info: strawberry.Info, *, include_commits: bool, include_ledgers: bool
    ) -> SeatBalance:
        """This seat's record again, batched with the operation's other seats."""
        record = await request_context(info).loaders.seat(
            SeatRequest(
                self._listing,
                self.seat_id,
                include_commits=include_commits,
                include_ledgers=include_ledgers,
            )
        )
        if record is None:
            raise GatewayError(
                f"Seat {self.seat_id!r} no longer exists in contract {self.contract_id}.",
                NOT_FOUND,
            )
        return record


_CommitmentT = TypeVar("_CommitmentT", Commit, Credit)


async def seat_by_key(
    info: strawberry.Info, listing: Listing, seat_id: str, *, with_commits: bool = False
) -> Seat | None:
    """One seat by key, through the ``seats`` loader: every seat the operation looks up in the
    same listing shares one upstream call, which asks for what is selected below ``info``
    (and for commits and credits anyway when ``with_commits``)."""
    names = selected_names(info._raw_info)
    include_commits = with_commits or "commits" in names or "credits" in names
    include_ledgers = include_commits and "ledgerEntries" in names
    record = await request_context(info).loaders.seat(
        SeatRequest(
            listing, seat_id, include_commits=include_commits, include_ledgers=include_ledgers
        )
    )
    if record is None:
        return None
    return Seat.from_wire(record, listing, has_commits=include_commits, has_ledgers=include_ledgers)
