"""The object types of the public schema, read straight from the billing API's JSON.

Every field is defined once, with the reader of the record it shows (:func:`reads`, or a plain
attribute); Strawberry's resolvers and the projection of :mod:`gateway.schema.execution` both
use it. The sources are the wire records themselves: a balance or a ledger entry is the wire
dict, a seat keeps its record, and a commit or credit is the pair (seat, wire record), because
the billing API shows the same commit under several seats, each with its own balance.

Pages are fetched with exactly what the operation selects (the look-ahead of
:mod:`gateway.schema.selection` sees every field below, through fragments and directives), so
a seat's commits, credits and ledger entries are on the record whenever they are selected.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from operator import attrgetter, itemgetter
from typing import Any, ClassVar

import strawberry
from graphql import GraphQLResolveInfo
from strawberry import Private

from gateway.loaders import Listing, SeatRequest
from gateway.schema import details
from gateway.schema.access import check_customer
from gateway.schema.arguments import MAX_SEAT_ID_CHARS, seat_id_ok, uuid_argument
from gateway.schema.context import request_context
from gateway.schema.errors import GatewayError
from gateway.schema.fields import FACTS, Facts, assumed_size, item_of, reads
from gateway.schema.ids import GlobalIds, global_ids
from gateway.schema.scalars import DateTime
from gateway.schema.selection import selected_names
from gateway.schema.work import charge_held
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


_LEDGER_TYPES = frozenset(member.value for member in LedgerEntryType)


def _ledger_type(entry: dict[str, Any]) -> str:
    """The enum's value (graphql-core maps values to names with one lookup; Strawberry's
    output coercion of a member scans every member, a third of a ledger page's CPU)."""
    wire: str = entry["type"]
    return wire if wire in _LEDGER_TYPES else "UNKNOWN"  # LedgerEntryType.UNKNOWN's value


@strawberry.type(description="One movement of a commit's or credit's balance.")
class LedgerEntry:
    raw_type: str = reads(
        itemgetter("type"),
        description="The billing API's own name of the type, also for types added later.",
    )
    amount: float = reads(
        itemgetter("amount"),
        description="Signed amount in the credit type's unit; deductions are negative.",
    )
    timestamp: DateTime = reads(
        itemgetter("timestamp"), description="When the movement took effect."
    )
    type: LedgerEntryType = reads(_ledger_type, description="What the entry records.")


@strawberry.type(description="A seat's balance in one credit type (a currency or custom unit).")
class CreditTypeBalance:
    credit_type_id: strawberry.ID = reads(
        itemgetter("credit_type_id"), description="The billing API's id of the credit type."
    )
    balance: float = reads(
        itemgetter("balance"),
        description="What remains across this seat's commits and credits of this credit type.",
    )
    starting_balance: float = reads(
        itemgetter("starting_balance"), description="What those commits and credits started with."
    )
    credit_type: details.CreditType | None = details.credit_type_field()


class HeldBalance(dict[str, Any]):
    """A seat's balance in one credit type, made when the operation selects ``creditType``: a
    copy of the billing API's record (the record itself may be shared with other requests
    sharing the call, and is never written to) that its credit type is joined onto
    (``details.join_credit_type``). Read like the record by the balance's other fields."""

    credit_type: Any = details.UNJOINED  # set on the instance once the join starts


class LookAheadMissed(Exception):
    """A page was fetched without data the operation selects: a bug in the look-ahead."""


@dataclass(slots=True, eq=False)
class HeldBy:
    """What a seat's commits (or its credits) need of the seat: its key, whether its page has
    ledger entries, and the encoder of their global ids (made when one is selected). Not the
    :class:`Seat` itself: the seat holds its commits and credits, and a reference back would
    make every seat with commits a cycle, freed by the cycle collector instead of as the
    request ends."""

    type_name: str  # "Commit" or "Credit": the type of the ids
    customer_id: str
    contract_id: str
    seat_id: str
    has_ledgers: bool
    ids: GlobalIds | None = None

    def make_ids(self) -> GlobalIds:
        made = self.ids = global_ids(
            self.type_name, self.customer_id, self.contract_id, self.seat_id
        )
        return made


@dataclass(slots=True, eq=False)  # not frozen: built for every commit and credit of a page,
class Held:  # and a frozen dataclass's __init__ costs three times as much
    """A commit or credit as one seat holds it: the source of ``Commit`` and ``Credit``."""

    TYPE_NAME: ClassVar[str]  # the type of its id: "Commit" or "Credit"

    seat: HeldBy
    record: SeatCommit
    item: Any = details.UNJOINED  # its "List balances" item, once joined (details.join_item)

    def global_id(self) -> str:
        """Its Relay id: an id made before (the usual case) is one dict look-up."""
        by = self.seat
        ids = by.ids
        if ids is None:
            ids = by.make_ids()
        return ids[self.record["id"]]

    def ledger_entries(self) -> list[Any]:
        if not self.seat.has_ledgers:
            raise LookAheadMissed("ledger entries")
        return self.record.get("ledger_entries") or []


class HeldCommit(Held):
    __slots__ = ()
    TYPE_NAME = "Commit"


class HeldCredit(Held):
    __slots__ = ()
    TYPE_NAME = "Credit"


_BALANCE = "What remains of it for this seat."
_START_DATE = "When access starts."
_END_DATE = "When access ends (exclusive); `null` when it does not end."
_LEDGER = "Every movement of its balance, oldest first as the API sends them."


@strawberry.type
class _Held:
    """Fields a commit and a credit share, as one seat holds them (not a schema type)."""

    balance: float = reads(item_of("record", "balance"), description=_BALANCE)
    start_date: DateTime = reads(item_of("record", "start_date"), description=_START_DATE)
    end_date: DateTime | None = reads(
        item_of("record", "end_date", optional=True), description=_END_DATE
    )
    ledger_entries: list[LedgerEntry] = reads(
        Held.ledger_entries, description=_LEDGER, directives=[assumed_size(50)]
    )
    # Details from "List balances", fetched only when selected (gateway/schema/details.py).
    name: str | None = details.name_field()
    description: str | None = details.description_field()
    product: details.Product | None = details.product_field()
    priority: float | None = details.priority_field()
    access_schedule: list[details.ScheduleItem] | None = details.access_schedule_field()
    custom_fields: list[details.CustomField] | None = details.custom_fields_field()
    allocation: details.SeatAllocation | None = details.allocation_field()
    subscription_id: strawberry.ID | None = details.subscription_id_field()


@strawberry.type(description="A prepaid commit as seen from one seat, with this seat's balance.")
class Commit(_Held, Node):
    id: strawberry.ID = reads(
        Held.global_id,
        description="Opaque, globally unique id of this commit on this seat (Relay object id).",
    )
    commit_id: strawberry.ID = reads(
        item_of("record", "id"),
        description="The billing API's id of the commit (shared across seats).",
    )
    type: details.CommitType | None = details.commit_type_field()

    @classmethod
    def is_type_of(cls, source: Any, info: GraphQLResolveInfo[Any] | None) -> bool:
        return type(source) is HeldCommit


@strawberry.type(description="A credit as seen from one seat, with this seat's balance.")
class Credit(_Held, Node):
    id: strawberry.ID = reads(
        Held.global_id,
        description="Opaque, globally unique id of this credit on this seat (Relay object id).",
    )
    credit_id: strawberry.ID = reads(
        item_of("record", "id"),
        description="The billing API's id of the credit (shared across seats).",
    )

    @classmethod
    def is_type_of(cls, source: Any, info: GraphQLResolveInfo[Any] | None) -> bool:
        return type(source) is HeldCredit


@strawberry.federation.type(
    keys=["customerId contractId seatId"],
    authenticated=True,
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
    # Its balances: the records themselves, or HeldBalance copies when creditType is selected.
    _balances: Private[list[Any]]
    _has_commits: Private[bool]
    _has_ledgers: Private[bool]
    # Its commits and credits as Held objects, made once: what is joined onto them (their
    # details) stays with them from the join to the projection (Seat.held).
    _held: Private[dict[str, list[Held]] | None] = None

    @classmethod
    def is_type_of(cls, source: Any, info: GraphQLResolveInfo[Any] | None) -> bool:
        # Strawberry's own test for a type with interfaces also looks for casts and generic
        # origins, which this schema has none of: the exact class, as Commit and Credit do.
        return type(source) is cls

    @classmethod
    def from_wire(
        cls,
        record: SeatBalance,
        listing: Listing,
        *,
        has_commits: bool,
        has_ledgers: bool,
        has_credit_types: bool = False,
    ) -> Seat:
        """``has_credit_types``: the operation selects ``creditType`` below (the look-ahead),
        so the balances are made to hold it."""
        balances: list[Any] = record["balances"]
        if has_credit_types:
            balances = [HeldBalance(balance) for balance in balances]
        return cls(
            seat_id=record["seat_id"],
            customer_id=listing.customer_id,  # type: ignore[arg-type]  # an ID is a str
            contract_id=listing.contract_id,  # type: ignore[arg-type]
            _record=record,
            _balances=balances,
            _has_commits=has_commits,
            _has_ledgers=has_commits and has_ledgers,
        )

    @classmethod
    async def resolve_reference(cls, info: strawberry.Info, **key: Any) -> Seat | None:
        """A seat another subgraph knows by its key; ``null`` when the billing API does not."""
        seat_id = key.get("seatId")
        if not seat_id_ok(seat_id):
            raise GatewayError(
                f"A Seat representation needs a 'seatId' of 1 to {MAX_SEAT_ID_CHARS} characters."
            )
        listing = Listing(
            customer_id=uuid_argument("customerId", key.get("customerId")),  # type: ignore[arg-type]
            contract_id=uuid_argument("contractId", key.get("contractId")),  # type: ignore[arg-type]
        )
        return await seat_by_key(info, listing, seat_id)

    id: strawberry.ID = reads(
        lambda seat: global_ids("Seat", seat.customer_id, seat.contract_id)[seat.seat_id],
        description="Opaque, globally unique id of this seat (Relay object id).",
    )
    balances: list[CreditTypeBalance] = reads(
        attrgetter("_balances"),
        description="One balance per credit type the seat holds.",
        directives=[assumed_size(5)],
    )
    commits: list[Commit] = reads(
        lambda seat: seat.held(HeldCommit, "commits"),
        description="The seat's prepaid commits, within the listing's date filters.",
        directives=[assumed_size(10)],
        metadata={FACTS: Facts(held=True)},
    )
    credits: list[Credit] = reads(
        lambda seat: seat.held(HeldCredit, "credits"),
        description="The seat's credits, within the listing's date filters.",
        directives=[assumed_size(10)],
        metadata={FACTS: Facts(held=True)},
    )

    def held(self, kind: type[Held], where: str) -> list[Held]:
        """The seat's commits or credits (``where``), each as the seat holds it."""
        if not self._has_commits:
            raise LookAheadMissed(where)
        made = self._held
        if made is None:
            made = self._held = {}
        found = made.get(where)
        if found is None:
            items: list[SeatCommit] = self._record.get(where) or []  # type: ignore[assignment]
            by = HeldBy(
                kind.TYPE_NAME,
                str(self.customer_id),
                str(self.contract_id),
                self.seat_id,
                self._has_ledgers,
            )
            found = made[where] = [kind(by, item) for item in items]
        return found


async def seat_by_key(
    info: strawberry.Info, listing: Listing, seat_id: str, *, with_commits: bool = False
) -> Seat | None:
    """One seat by key, through the ``seats`` loader: every seat the operation looks up in the
    same listing shares one upstream call, which asks for what is selected below ``info``
    (and for commits and credits anyway when ``with_commits``)."""
    context = request_context(info)
    check_customer(context, listing.customer_id)
    names = selected_names(info._raw_info)
    include_commits = with_commits or "commits" in names or "credits" in names
    include_ledgers = include_commits and "ledgerEntries" in names
    credit_types = "creditType" in names
    record = await context.loaders.seat(
        SeatRequest(
            listing, seat_id, include_commits=include_commits, include_ledgers=include_ledgers
        )
    )
    if record is None:
        return None
    if include_commits:
        charge_held(context, len(record.get("commits") or ()) + len(record.get("credits") or ()))
    return Seat.from_wire(
        record,
        listing,
        has_commits=include_commits,
        has_ledgers=include_ledgers,
        has_credit_types=credit_types,
    )
