"""Seeded demo data for the stand-in, as plain JSON-ready dicts.

``build_dataset(seed)`` returns the same data for the same seed (one ``random.Random``, no clock)::

    {
      "seed": 2026,
      "as_of": "2026-05-15T00:00:00.000Z",          # the "today" the ledgers were written up to
      "credit_types": [{"id", "name", "is_currency"?}, ...],  # USD, cloud credits, AI tokens and
                                                    # 120 custom pricing units (two pages)
      "tokens": {token: [customer_id, ...]},        # which customers a bearer token may see
      "customers": {customer_id: {
        "id", "name",
        "balances": [Commit | Credit, ...],         # "List balances" items in the wire's shape:
                                                    # the contract-level ones (they carry
                                                    # `contract`) and a few customer-level ones
        "archived_balance_ids": [id, ...],          # listed only with include_archived
        "contracts": {contract_id: {
          "id", "name",
          "subscriptions": [{"id", "name", "quantity_management_mode", "seat_ids"}],
          "commits": [{"id", "name", "type", "credit_type_id"}],   # the catalogue behind the ids
          "seats": [SeatBalance, ...],              # sorted by seat_id, in the wire's own shape
        }},
      }},
    }

Every commit and credit id a seat holds is also a full item of the customer's ``balances``
(name, product, priority, access schedule, custom fields, ``subscription_config``), built from
the same pools after the seats, with its own generator: the seats are the same with or without it.

A seat is stored exactly as the wire serves it with both include flags on: ``seat_id``,
``balances``, ``commits`` and ``credits`` (each ``null`` or a list of ``{id, balance, start_date,
end_date, ledger_entries}``). The app only drops keys and filters lists.

Amounts are counted in quarters while they are generated, so every number is an exact binary
float: a commit's ``balance`` is exactly the sum of its ledger amounts, and a seat's balance is
exactly the sum of its commits' and credits' balances. Whole amounts are served as JSON integers,
the others as floats (``7500`` and ``7500.25``).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise, product
from typing import Any, Literal

JSON = dict[str, Any]

DEMO_TOKEN = "demo-token"  # noqa: S105 - a published demo credential, not a secret
OTHER_TOKEN = "other-token"  # noqa: S105 - a published demo credential, not a secret

DEMO_CUSTOMER_ID = "66826d59-42c6-47ad-a3dc-07b0b602e610"
DEMO_CONTRACT_ID = "4ac528e4-73f3-42ba-9772-e5303e69e9fe"
DEMO_SUBSCRIPTION_IDS = (
    "6402cebd-97b5-43ba-8c54-38291559c73a",  # Engineering seats
    "c17566d0-f72c-477e-980e-eecdb9e0162e",  # Support seats
)
DEMO_USAGE_SUBSCRIPTION_ID = "879c9da3-3413-4405-8061-89c54da79cff"  # API usage, not seat-based

OTHER_CUSTOMER_ID = "8a45b895-37ff-49c2-80a3-0e2fda830f12"
OTHER_CONTRACT_ID = "6601c4a4-81f4-4efd-beec-34ea032a5697"
OTHER_SUBSCRIPTION_ID = "e39706d8-19bb-4d9f-8447-a561b73b264f"

USD_ID = "2714e483-4ff1-48e4-9e25-ac732e8f24f2"  # the id of USD in Metronome's own examples
CLOUD_CREDITS_ID = "1f32bd72-0fec-4472-a745-32d153775280"
AI_TOKENS_ID = "b0db0d66-c8f6-438c-b925-a133746ff2c0"
CREDIT_TYPES = (
    {"id": USD_ID, "name": "USD (cents)"},
    {"id": CLOUD_CREDITS_ID, "name": "Cloud credits"},
    {"id": AI_TOKENS_ID, "name": "AI tokens"},
)

AS_OF = datetime(2026, 5, 15, tzinfo=UTC)

COMMIT_LEDGER_TYPES = (
    "PREPAID_COMMIT_SEGMENT_START",
    "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION",
    "PREPAID_COMMIT_ROLLOVER",
    "PREPAID_COMMIT_EXPIRATION",
    "PREPAID_COMMIT_CANCELED",
    "PREPAID_COMMIT_CREDITED",
    "PREPAID_COMMIT_MANUAL",
    "PREPAID_COMMIT_SEAT_BASED_ADJUSTMENT",
)
CREDIT_LEDGER_TYPES = (
    "CREDIT_SEGMENT_START",
    "CREDIT_AUTOMATED_INVOICE_DEDUCTION",
    "CREDIT_EXPIRATION",
    "CREDIT_CANCELED",
    "CREDIT_CREDITED",
    "CREDIT_MANUAL",
    "CREDIT_SEAT_BASED_ADJUSTMENT",
    "CREDIT_ROLLOVER",
)

DEMO_SEAT_COUNT = 300
OTHER_SEAT_COUNT = 40
EMPTY_SEAT_SHARE = 0.2
# Positions in the sorted seat order -> commits+credits of that seat. They make the 100
# commits/credits cap split pages: 98 is the contract's own example, 130 is a seat above the cap.
DEMO_HEAVY_SEATS = {10: 98, 137: 60, 262: 130}

Kind = Literal["commit", "credit"]

_FIRST_NAMES = (
    "ada",
    "alan",
    "barbara",
    "claude",
    "dennis",
    "donald",
    "edsger",
    "frances",
    "grace",
    "guido",
    "hedy",
    "ivan",
    "jean",
    "john",
    "karen",
    "ken",
    "leslie",
    "linus",
    "margaret",
    "mary",
    "niklaus",
    "radia",
    "richard",
    "robin",
    "sophie",
    "tim",
    "vint",
    "whitfield",
    "yukihiro",
    "adele",
    "anita",
    "bjarne",
    "carol",
    "david",
    "elena",
    "fernando",
)
_LAST_NAMES = (
    "lovelace",
    "turing",
    "liskov",
    "shannon",
    "ritchie",
    "knuth",
    "dijkstra",
    "allen",
    "hopper",
    "rossum",
    "lamarr",
    "sutherland",
    "sammet",
    "backus",
    "sparck-jones",
    "thompson",
    "lamport",
    "torvalds",
    "hamilton",
    "keller",
    "wirth",
    "perlman",
    "stallman",
    "milner",
    "wilson",
    "berners-lee",
    "cerf",
    "diffie",
    "matsumoto",
    "goldberg",
    "borg",
    "stroustrup",
    "shaw",
    "wheeler",
    "noether",
    "corbato",
)


@dataclass(frozen=True)
class _Pool:
    """A contract-level commit or credit that many seats draw on, each with its own share."""

    name: str
    kind: Kind
    credit_type_id: str
    start: datetime
    end: datetime | None
    allocations: tuple[float, ...]  # per-seat starting amounts to pick from
    share: float  # probability that an ordinary seat holds it


def _day(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


_DEMO_POOLS = (
    _Pool(
        "2026 annual prepaid commit",
        "commit",
        USD_ID,
        _day(2026, 1, 1),
        _day(2027, 1, 1),
        (1200, 1500, 2400, 7500, 7500.25),
        0.7,
    ),
    _Pool(
        "Q1 2026 seat commit",
        "commit",
        USD_ID,
        _day(2026, 1, 1),
        _day(2026, 4, 1),
        (300, 450.5, 600),
        0.3,
    ),
    _Pool(
        "Q2 2026 seat commit",
        "commit",
        USD_ID,
        _day(2026, 4, 1),
        _day(2026, 7, 1),
        (300, 450.5, 600),
        0.4,
    ),
    _Pool(
        "FY26 cloud credits pool",
        "commit",
        CLOUD_CREDITS_ID,
        _day(2025, 7, 1),
        _day(2026, 7, 1),
        (1000, 2500.75, 5000),
        0.25,
    ),
    _Pool(
        "Q3 2026 seat commit",
        "commit",
        USD_ID,
        _day(2026, 7, 1),
        _day(2026, 10, 1),
        (300, 600),
        0.15,
    ),
    _Pool("Onboarding credit", "credit", USD_ID, _day(2025, 10, 1), None, (100, 250.5), 0.3),
    _Pool(
        "AI tokens grant, May 2026",
        "credit",
        AI_TOKENS_ID,
        _day(2026, 5, 1),
        _day(2026, 6, 1),
        (500_000, 1_000_000),
        0.35,
    ),
    _Pool(
        "AI tokens grant, April 2026",
        "credit",
        AI_TOKENS_ID,
        _day(2026, 4, 1),
        _day(2026, 5, 1),
        (500_000, 1_000_000),
        0.25,
    ),
    _Pool("Goodwill credit", "credit", CLOUD_CREDITS_ID, _day(2026, 2, 15), None, (50, 75.25), 0.1),
    _Pool(
        "Summer promotion credit", "credit", USD_ID, _day(2026, 6, 1), _day(2026, 9, 1), (200,), 0.1
    ),
)

_OTHER_POOLS = (
    _Pool(
        "2026 platform commit",
        "commit",
        USD_ID,
        _day(2026, 1, 1),
        _day(2027, 1, 1),
        (900, 1250.5),
        0.8,
    ),
    _Pool(
        "Cloud credits starter pack",
        "commit",
        CLOUD_CREDITS_ID,
        _day(2025, 11, 1),
        _day(2026, 5, 1),
        (400, 800.25),
        0.4,
    ),
    _Pool("Referral credit", "credit", USD_ID, _day(2026, 3, 1), None, (75, 150.75), 0.3),
    _Pool(
        "AI tokens grant, May 2026",
        "credit",
        AI_TOKENS_ID,
        _day(2026, 5, 1),
        _day(2026, 6, 1),
        (250_000,),
        0.5,
    ),
)

# Ledgers of the heavy seats' own commits and credits cycle through these, so that every ledger
# entry type appears whatever the seed.
_CLOSINGS = ("EXPIRATION", "ROLLOVER", "CANCELED")
_EXTRAS: tuple[tuple[str, ...], ...] = (
    (),
    ("MANUAL",),
    ("CREDITED",),
    ("SEAT_BASED_ADJUSTMENT",),
    ("MANUAL", "CREDITED"),
)


def build_dataset(seed: int = 2026) -> JSON:
    """Build the demo data: the same seed always gives the same data."""
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not cryptography
    names = _email_locals(rng, DEMO_SEAT_COUNT + OTHER_SEAT_COUNT)
    demo = _build_contract(
        rng,
        contract_id=DEMO_CONTRACT_ID,
        name="Acme Corp enterprise agreement 2026",
        seat_ids=[f"{local}@acme.example" for local in names[:DEMO_SEAT_COUNT]],
        pools=_DEMO_POOLS,
        heavy=DEMO_HEAVY_SEATS,
        seat_subscriptions=(
            (DEMO_SUBSCRIPTION_IDS[0], "Engineering seats", 0.6),
            (DEMO_SUBSCRIPTION_IDS[1], "Support seats", 0.4),
        ),
        usage_subscription=(DEMO_USAGE_SUBSCRIPTION_ID, "API usage"),
    )
    other = _build_contract(
        rng,
        contract_id=OTHER_CONTRACT_ID,
        name="Globex platform agreement",
        seat_ids=[f"{local}@globex.example" for local in names[DEMO_SEAT_COUNT:]],
        pools=_OTHER_POOLS,
        heavy={},
        seat_subscriptions=((OTHER_SUBSCRIPTION_ID, "Platform seats", 1.0),),
        usage_subscription=None,
    )
    return {
        "seed": seed,
        "as_of": _timestamp(AS_OF),
        "credit_types": _credit_types(),
        "tokens": {DEMO_TOKEN: [DEMO_CUSTOMER_ID], OTHER_TOKEN: [OTHER_CUSTOMER_ID]},
        "customers": {
            DEMO_CUSTOMER_ID: {
                "id": DEMO_CUSTOMER_ID,
                "name": "Acme Corp",
                "contracts": {DEMO_CONTRACT_ID: demo},
                "balances": [
                    *_contract_balances(demo, _DEMO_POOLS),
                    *_customer_balances(DEMO_CUSTOMER_ID),
                ],
                "archived_balance_ids": [_stable_id("archived", DEMO_CUSTOMER_ID)],
            },
            OTHER_CUSTOMER_ID: {
                "id": OTHER_CUSTOMER_ID,
                "name": "Globex Corporation",
                "contracts": {OTHER_CONTRACT_ID: other},
                "balances": [
                    *_contract_balances(other, _OTHER_POOLS),
                    *_customer_balances(OTHER_CUSTOMER_ID),
                ],
                "archived_balance_ids": [_stable_id("archived", OTHER_CUSTOMER_ID)],
            },
        },
    }


# --- "List balances" items and credit types ------------------------------------------------------
# Built after the seats from what they hold, with generators of their own (uuid5 ids, a
# Random seeded by the contract id): the seats do not change when these do.

_ID_NAMESPACE = uuid.UUID("0c6f3f0e-6a52-4f1e-9a53-3c1b8f2d7a10")
_PRODUCTS = {
    USD_ID: "Enterprise seat plan",
    CLOUD_CREDITS_ID: "Cloud compute",
    AI_TOKENS_ID: "AI assistant tokens",
}
_CUSTOM_UNITS = (
    "Compute hours",
    "Storage GB-months",
    "Egress GB",
    "GPU hours",
    "API requests (thousands)",
    "Build minutes",
    "Seats (prorated)",
    "Support tickets",
    "Vector index GB",
    "Model fine-tunes",
    "Edge functions (millions)",
    "Log ingest GB",
)
_REGIONS = (
    "us-east",
    "us-west",
    "eu-central",
    "eu-west",
    "ap-south",
    "ap-northeast",
    "sa-east",
    "ca-central",
    "me-central",
    "af-south",
)
_COST_CENTERS = ("ENG-100", "ENG-240", "SUP-310", "FIN-020")


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts)))


def _credit_types() -> list[JSON]:
    """The three credit types of the seats, then 120 custom pricing units (more than one page
    of 100); every tenth unit leaves ``is_currency`` out, as the SDKs allow."""
    units: list[JSON] = [
        {**credit_type, "is_currency": credit_type["id"] == USD_ID} for credit_type in CREDIT_TYPES
    ]
    for n, (unit, region) in enumerate(product(_CUSTOM_UNITS, _REGIONS)):
        entry: JSON = {"id": _stable_id("credit-type", unit, region), "name": f"{unit} ({region})"}
        if n % 10:
            entry["is_currency"] = False
        units.append(entry)
    return units


def _contract_balances(contract: JSON, pools: tuple[_Pool, ...]) -> list[JSON]:
    """One full item per commit or credit the contract's seats hold, consistent with them: the
    same id, dates and credit type, and a schedule that adds up to what the seats started with.

    Pool items are POOLED and belong to the first seat-based subscription; a heavy seat's own
    items are INDIVIDUAL and belong to that seat's subscription.
    """
    rng = random.Random(contract["id"])  # noqa: S311 - reproducible demo data
    subscription_of = {
        seat_id: sub["id"]
        for sub in contract["subscriptions"]
        if sub["quantity_management_mode"] == "SEAT_BASED"
        for seat_id in sub["seat_ids"]
    }
    first_subscription = next(iter(subscription_of.values()))
    holders: dict[str, list[tuple[str, JSON]]] = {}
    for seat in contract["seats"]:
        for share in (seat["commits"] or []) + (seat["credits"] or []):
            holders.setdefault(share["id"], []).append((seat["seat_id"], share))
    items = []
    for position, entry in enumerate(contract["commits"]):
        held = holders.get(entry["id"])
        if not held:
            continue  # a pool no seat drew on
        pooled = position < len(pools)
        first = held[0][1]
        starting = sum(_quarters(share["ledger_entries"][0]["amount"]) for _, share in held)
        credit_type = next(ct for ct in CREDIT_TYPES if ct["id"] == entry["credit_type_id"])
        item: JSON = {
            "id": entry["id"],
            "type": entry["type"],
            "name": entry["name"],
            "product": {
                "id": _stable_id("product", _PRODUCTS[credit_type["id"]]),
                "name": _PRODUCTS[credit_type["id"]],
            },
            "priority": position + 1 if pooled else 100 + position,
            "access_schedule": {
                "schedule_items": _schedule(entry["id"], first, starting, quarterly=pooled),
                "credit_type": dict(credit_type),
            },
            "contract": {"id": contract["id"]},
        }
        if pooled:
            item["description"] = f"{entry['name']}, shared by the seats of {contract['name']}"
            item["custom_fields"] = {"cost_center": rng.choice(_COST_CENTERS)}
            item["subscription_config"] = {
                "subscription_id": first_subscription,
                "allocation": "POOLED",
                "apply_seat_increase_config": {"is_prorated": True},
            }
        else:
            item["subscription_config"] = {
                "subscription_id": subscription_of[held[0][0]],
                "allocation": "INDIVIDUAL",
            }
        if entry["type"] != "CREDIT" or rng.random() < 0.5:  # optional on credits
            item["created_at"] = _timestamp(_instant(first["start_date"]) - timedelta(days=14))
        items.append(item)
    return items


def _schedule(item_id: str, seat_item: JSON, starting: int, *, quarterly: bool) -> list[JSON]:
    """The access schedule: the item's dates, cut into quarters for a long pooled commit; an
    open end is written as 2030-01-01 (the four fields are required)."""
    start = _instant(seat_item["start_date"])
    end = _instant(seat_item["end_date"]) if seat_item["end_date"] else _day(2030, 1, 1)
    cuts = [start]
    while quarterly and seat_item["end_date"] and (cuts[-1] + timedelta(days=92)) < end:
        month = cuts[-1].month + 3
        cuts.append(
            cuts[-1].replace(year=cuts[-1].year + (month - 1) // 12, month=(month - 1) % 12 + 1)
        )
    cuts.append(end)
    share, rest = divmod(starting, len(cuts) - 1)
    return [
        {
            "id": _stable_id("schedule", item_id, str(n)),
            "amount": _number(share + (rest if n == 0 else 0)),
            "starting_at": _timestamp(begin),
            "ending_before": _timestamp(finish),
        }
        for n, (begin, finish) in enumerate(pairwise(cuts))
    ]


def _customer_balances(customer_id: str) -> list[JSON]:
    """Items outside any contract (listed with or without ``include_contract_balances``): a
    postpaid commitment, a credit of a type this API may add later, and an archived credit."""
    product_ = {"id": _stable_id("product", "Platform fee"), "name": "Platform fee"}
    window = {
        "schedule_items": [
            {
                "id": _stable_id("schedule", customer_id, "postpaid"),
                "amount": 120000,
                "starting_at": "2026-01-01T00:00:00.000Z",
                "ending_before": "2027-01-01T00:00:00.000Z",
            }
        ],
        "credit_type": dict(CREDIT_TYPES[0]),
    }
    return [
        {
            "id": _stable_id("postpaid", customer_id),
            "type": "POSTPAID",
            "name": "2026 minimum spend",
            "product": product_,
            "priority": 50,
            "access_schedule": window,
            "created_at": "2025-12-01T00:00:00.000Z",
        },
        {
            "id": _stable_id("unknown-type", customer_id),
            "type": "MARKETPLACE_CREDIT",  # a type the API may add: clients must not break
            "name": "Marketplace credit",
            "product": product_,
        },
        {
            "id": _stable_id("archived", customer_id),
            "type": "CREDIT",
            "name": "Archived goodwill credit",
            "product": product_,
        },
    ]


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _email_locals(rng: random.Random, count: int) -> list[str]:
    """``count`` distinct ``first.last`` names; ada.lovelace is always the first."""
    others = [f"{first}.{last}" for first, last in product(_FIRST_NAMES, _LAST_NAMES)]
    others.remove("ada.lovelace")
    return ["ada.lovelace", *rng.sample(others, count - 1)]


def _build_contract(
    rng: random.Random,
    *,
    contract_id: str,
    name: str,
    seat_ids: list[str],
    pools: tuple[_Pool, ...],
    heavy: dict[int, int],
    seat_subscriptions: tuple[tuple[str, str, float], ...],
    usage_subscription: tuple[str, str] | None,
) -> JSON:
    seat_ids = sorted(seat_ids)
    catalogue: list[JSON] = []
    pool_ids = [_uuid(rng) for _ in pools]
    for pool_id, pool in zip(pool_ids, pools, strict=True):
        catalogue.append(_catalogue_entry(pool_id, pool.name, pool.kind, pool.credit_type_id))

    seats: list[JSON] = []
    for position, seat_id in enumerate(seat_ids):
        if position in heavy:
            items = [
                _pool_item(rng, pool_id, pool)
                for pool_id, pool in zip(pool_ids, pools, strict=True)
            ]
            items += _own_items(rng, heavy[position] - len(items), catalogue)
            seats.append(_seat(seat_id, items, empty_as=None))
        elif rng.random() < EMPTY_SEAT_SHARE:
            # The contract allows both null and [] for a seat without commits or credits.
            empty_as: tuple[list[JSON] | None, ...] = (
                rng.choice((None, [])),
                rng.choice((None, [])),
            )
            seats.append(_seat(seat_id, [], empty_as=empty_as))
        else:
            chosen = [i for i, pool in enumerate(pools) if rng.random() < pool.share] or [0]
            items = [_pool_item(rng, pool_ids[i], pools[i]) for i in chosen]
            seats.append(_seat(seat_id, items, empty_as=None))

    subscriptions: list[JSON] = []
    members: dict[str, list[str]] = {sub_id: [] for sub_id, _, _ in seat_subscriptions}
    weights = [weight for _, _, weight in seat_subscriptions]
    for seat_id in seat_ids:
        sub_id = rng.choices(list(members), weights=weights)[0]
        members[sub_id].append(seat_id)
    for sub_id, sub_name, _ in seat_subscriptions:
        subscriptions.append(
            {
                "id": sub_id,
                "name": sub_name,
                "quantity_management_mode": "SEAT_BASED",
                "seat_ids": members[sub_id],
            }
        )
    if usage_subscription is not None:
        subscriptions.append(
            {
                "id": usage_subscription[0],
                "name": usage_subscription[1],
                "quantity_management_mode": "QUANTITY_ONLY",
                "seat_ids": [],
            }
        )
    return {
        "id": contract_id,
        "name": name,
        "subscriptions": subscriptions,
        "commits": catalogue,
        "seats": seats,
    }


def _catalogue_entry(item_id: str, name: str, kind: Kind, credit_type_id: str) -> JSON:
    return {
        "id": item_id,
        "name": name,
        "type": "PREPAID" if kind == "commit" else "CREDIT",
        "credit_type_id": credit_type_id,
    }


@dataclass
class _Item:
    """One seat's share of a commit or credit, before it is written out in the wire shape."""

    kind: Kind
    credit_type_id: str
    starting: int  # quarters
    balance: int  # quarters
    wire: JSON


def _pool_item(rng: random.Random, item_id: str, pool: _Pool) -> _Item:
    starting = _quarters(rng.choice(pool.allocations))
    return _item(
        rng,
        item_id,
        pool.kind,
        pool.credit_type_id,
        pool.start,
        pool.end,
        starting,
        whole=pool.credit_type_id == AI_TOKENS_ID,
        rotation=None,
    )


def _own_items(rng: random.Random, count: int, catalogue: list[JSON]) -> list[_Item]:
    """A heavy seat's own weekly commits and AI token top-ups, newest first, going back in time."""
    items = []
    for n in range(count):
        start = _day(2026, 6, 29) - timedelta(weeks=n)
        item_id = _uuid(rng)
        if n % 2 == 0:
            kind: Kind = "commit"
            credit_type_id, whole = USD_ID, False
            starting = _quarters(rng.choice((50, 75.5, 100)))
            end: datetime | None = start + timedelta(weeks=4)
            name = f"Weekly usage commit, week of {start:%Y-%m-%d}"
        else:
            kind = "credit"
            credit_type_id, whole = AI_TOKENS_ID, True
            starting = _quarters(rng.choice((20_000, 50_000)))
            end = None if n % 9 == 0 else start + timedelta(weeks=4)
            name = f"AI tokens top-up, week of {start:%Y-%m-%d}"
        catalogue.append(_catalogue_entry(item_id, name, kind, credit_type_id))
        items.append(
            _item(rng, item_id, kind, credit_type_id, start, end, starting, whole=whole, rotation=n)
        )
    return items


def _item(
    rng: random.Random,
    item_id: str,
    kind: Kind,
    credit_type_id: str,
    start: datetime,
    end: datetime | None,
    starting: int,
    *,
    whole: bool,
    rotation: int | None,
) -> _Item:
    ended = end is not None and end <= AS_OF
    if rotation is None:
        closing = (
            rng.choice(("EXPIRATION", "EXPIRATION", "ROLLOVER", "CANCELED"))
            if ended
            else ("CANCELED" if rng.random() < 0.04 else None)
        )
        extras = tuple(
            extra for extra in ("MANUAL", "CREDITED", "SEAT_BASED_ADJUSTMENT") if rng.random() < 0.1
        )
    else:
        closing = _CLOSINGS[rotation % len(_CLOSINGS)] if ended else None
        extras = _EXTRAS[rotation % len(_EXTRAS)]
    ledger, balance = _ledger(rng, kind, start, end, starting, whole, closing, extras)
    wire = {
        "id": item_id,
        "balance": _number(balance),
        "start_date": _timestamp(start),
        "end_date": None if end is None else _timestamp(end),
        "ledger_entries": ledger,
    }
    return _Item(kind, credit_type_id, starting, balance, wire)


def _ledger(
    rng: random.Random,
    kind: Kind,
    start: datetime,
    end: datetime | None,
    starting: int,
    whole: bool,
    closing: str | None,
    extras: tuple[str, ...],
) -> tuple[list[JSON], int]:
    """The ledger of one seat's share, and the balance it adds up to (both in quarters)."""
    prefix = "PREPAID_COMMIT_" if kind == "commit" else "CREDIT_"
    entries: list[tuple[datetime, str, int]] = [(start, "SEGMENT_START", starting)]
    remaining = starting
    if start < AS_OF:
        active_until = min(end or AS_OF, AS_OF)
        span = int((active_until - start).total_seconds() // 60)
        events = ["AUTOMATED_INVOICE_DEDUCTION"] * rng.randint(1, 4) + list(extras)
        rng.shuffle(events)
        minutes = sorted(rng.randrange(60, max(span, 61)) for _ in events)
        for event, minute in zip(events, minutes, strict=True):
            amount = _event_amount(rng, event, starting, remaining, whole)
            remaining += amount
            entries.append((start + timedelta(minutes=minute), event, amount))
        if closing == "CANCELED":
            at = min(entries[-1][0] + timedelta(hours=rng.randint(1, 48)), active_until)
            entries.append((at, closing, -remaining))
            remaining = 0
        elif closing is not None:
            assert end is not None  # only a share with an end expires or rolls over
            entries.append((end, closing, -remaining))
            remaining = 0
    ledger = [
        {"type": prefix + event, "amount": _number(amount), "timestamp": _timestamp(at)}
        for at, event, amount in entries
    ]
    return ledger, remaining


def _event_amount(
    rng: random.Random, event: str, starting: int, remaining: int, whole: bool
) -> int:
    """A signed amount in quarters that never takes the remaining balance below zero."""
    step = 4 if whole else 1
    if event in ("AUTOMATED_INVOICE_DEDUCTION", "SEAT_BASED_ADJUSTMENT", "MANUAL"):
        negative = event == "AUTOMATED_INVOICE_DEDUCTION" or rng.random() < 0.6
        if negative:
            share = int(remaining * rng.uniform(0.05, 0.4))
            return -(share - share % step)
    share = int(starting * rng.uniform(0.02, 0.15))  # a positive correction or credit-back
    return share - share % step


def _seat(seat_id: str, items: list[_Item], empty_as: tuple[list[JSON] | None, ...] | None) -> JSON:
    if empty_as is not None:
        return {"seat_id": seat_id, "balances": [], "commits": empty_as[0], "credits": empty_as[1]}
    balances = []
    for credit_type in CREDIT_TYPES:
        held = [item for item in items if item.credit_type_id == credit_type["id"]]
        if held:
            balances.append(
                {
                    "credit_type_id": credit_type["id"],
                    "balance": _number(sum(item.balance for item in held)),
                    "starting_balance": _number(sum(item.starting for item in held)),
                }
            )
    return {
        "seat_id": seat_id,
        "balances": balances,
        "commits": [item.wire for item in items if item.kind == "commit"],
        "credits": [item.wire for item in items if item.kind == "credit"],
    }


def _quarters(amount: float) -> int:
    return round(amount * 4)


def _number(quarters: int) -> int | float:
    """Quarters as the wire's number: an integer when whole, else an exact binary float."""
    return quarters // 4 if quarters % 4 == 0 else quarters / 4


def _timestamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))
