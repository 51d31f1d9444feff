"""The stand-in ASGI app: Metronome's "List seat balances" over the seeded demo data, and the two
endpoints a dashboard joins to it ("List balances" and the credit types).

Implemented, following ``/work/shared/upstream-contract.md``:

* ``POST /v1/contracts/seatBalances/list``, ``POST /v1/contracts/customerBalances/list`` and
  ``GET /v1/credit-types/list``, and nothing else (other paths 404, other methods 405);
* ``Authorization: Bearer <token>`` (401 for a missing or unknown token); a token sees only its own
  customers, and an unknown customer, a customer the token may not see, or a contract that is not
  the customer's are all the same 404, so a token learns nothing about other accounts;
* request validation: a JSON object body, required uuid ``customer_id`` and ``contract_id``,
  checked types, unknown fields rejected; every 4xx body is ``{"message": "..."}``;
* the ``subscription_ids`` and ``seat_ids`` filters (with ``skip_missing_seat_ids``), the
  ``include_credits_and_commits`` and ``include_ledgers`` flags, the ``starting_at``,
  ``effective_before`` and ``covering_date`` windows on commits and credits;
* keyset pages ordered by ``seat_id`` with the greedy 100 commits/credits cap;
* "List balances": one ``id`` or the whole list in pages of ``limit`` (1-25) ordered by id;
  contract-level items (every commit and credit a seat holds) only with
  ``include_contract_balances``, archived ones only with ``include_archived``; an item whose
  ``type`` is not one of the three documented ones; ``include_balance`` adds the item's
  ``balance`` (the sum over its seats); the date windows apply to the access schedule;
* the credit types, 123 of them (more than a page of 100), keyset pages by id.

Deliberately not implemented: any other endpoint, rate limiting (429), ``retry-after`` headers,
403 and 409 answers, server errors, writes of any kind. Tests that need those plug an
``httpx.MockTransport`` in front of the client instead.

Choices where the contract is silent:

* ``null`` for an optional field is a 400 like any other wrong type (the schema has no nullable
  request fields), while an empty ``subscription_ids`` or ``seat_ids`` list means "no filter";
* an "unknown" seat id is one that is not a seat of the contract; a known seat outside the
  ``subscription_ids`` filter is simply not returned;
* ``effective_before`` is exclusive (``start_date < effective_before``);
* the cap counts the commits and credits a seat carries in the response, after the date window;
* the cursor remembers only the last seat id, never the filters: send the same filters each page;
* "List balances": an unknown ``id`` is an empty list (the API may also answer 404), and
  ``include_ledgers`` is a 400 (the stand-in does not serve aggregated ledgers);
* the credit types: ``limit`` is required (no default is documented) and every token sees the
  same list (credit types belong to the billing account).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from bisect import bisect_right
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.standin.data import build_dataset

JSON = dict[str, Any]

SEAT_BALANCES_PATH = "/v1/contracts/seatBalances/list"
CUSTOMER_BALANCES_PATH = "/v1/contracts/customerBalances/list"
CREDIT_TYPES_PATH = "/v1/credit-types/list"
DEFAULT_LIMIT = 25
MAX_LIMIT = 100
COMMITS_AND_CREDITS_CAP = 100

_FIELDS = frozenset(
    {
        "customer_id",
        "contract_id",
        "subscription_ids",
        "seat_ids",
        "skip_missing_seat_ids",
        "include_credits_and_commits",
        "include_ledgers",
        "starting_at",
        "effective_before",
        "covering_date",
        "limit",
        "cursor",
    }
)
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# RFC 3339's digits are ASCII; Python's `\d` is Unicode's, and `$` would allow a final newline.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


class StandinError(Exception):
    """A 4xx answer: its status and the text of the ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _bad_request(message: str) -> StandinError:
    return StandinError(400, message)


# --- the dataset, indexed once per app -----------------------------------------------------------


@dataclass(frozen=True)
class _Contract:
    customer_id: str
    seats: list[JSON]  # sorted by seat_id
    seat_ids: list[str]  # the same order, for bisecting a cursor
    seat_subscriptions: dict[str, frozenset[str]]  # SEAT_BASED subscription id -> its seat ids
    other_subscriptions: frozenset[str]  # subscriptions that are not seat-based


@dataclass(frozen=True)
class _Index:
    tokens: dict[str, frozenset[str]]  # bearer token -> the customer ids it may see
    contracts: dict[tuple[str, str], _Contract]  # (customer id, contract id) -> contract
    balances: dict[str, list[JSON]]  # customer id -> its "List balances" items, by id
    archived: frozenset[str]  # ids of archived items
    credit_types: list[JSON]  # ordered by id


def _index(dataset: JSON) -> _Index:
    contracts = {}
    for customer_id, customer in dataset["customers"].items():
        for contract_id, contract in customer["contracts"].items():
            seats = sorted(contract["seats"], key=lambda seat: seat["seat_id"])
            subscriptions = contract["subscriptions"]
            contracts[(customer_id, contract_id)] = _Contract(
                customer_id=customer_id,
                seats=seats,
                seat_ids=[seat["seat_id"] for seat in seats],
                seat_subscriptions={
                    sub["id"]: frozenset(sub["seat_ids"])
                    for sub in subscriptions
                    if sub["quantity_management_mode"] == "SEAT_BASED"
                },
                other_subscriptions=frozenset(
                    sub["id"]
                    for sub in subscriptions
                    if sub["quantity_management_mode"] != "SEAT_BASED"
                ),
            )
    tokens = {token: frozenset(ids) for token, ids in dataset["tokens"].items()}
    return _Index(
        tokens=tokens,
        contracts=contracts,
        balances={
            customer_id: sorted(customer.get("balances", []), key=lambda item: item["id"])
            for customer_id, customer in dataset["customers"].items()
        },
        archived=frozenset(
            item_id
            for customer in dataset["customers"].values()
            for item_id in customer.get("archived_balance_ids", [])
        ),
        credit_types=sorted(dataset.get("credit_types", []), key=lambda ct: ct.get("id", "")),
    )


# --- the request -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    """The access-window filters on commits and credits; balances are never filtered."""

    starting_at: datetime | None = None
    effective_before: datetime | None = None
    covering_date: datetime | None = None

    def keeps(self, item: JSON) -> bool:
        start = _instant(item["start_date"])
        end = _instant(item["end_date"]) if item.get("end_date") else None
        if self.starting_at is not None and end is not None and end <= self.starting_at:
            return False
        if self.effective_before is not None and start >= self.effective_before:
            return False
        if self.covering_date is not None:
            return start <= self.covering_date and (end is None or self.covering_date < end)
        return True


@dataclass(frozen=True)
class _Query:
    customer_id: str
    contract_id: str
    subscription_ids: tuple[str, ...]
    seat_ids: tuple[str, ...]
    skip_missing_seat_ids: bool
    include_credits_and_commits: bool
    include_ledgers: bool
    window: _Window
    limit: int
    after_seat_id: str | None


def _authenticate(request: Request, index: _Index) -> frozenset[str]:
    """The customer ids the bearer token may see."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    customers = index.tokens.get(token.strip()) if scheme.lower() == "bearer" else None
    if customers is None:
        raise StandinError(401, "Missing or invalid bearer token")
    return customers


async def _json_object(request: Request) -> JSON:
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _bad_request("The request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _bad_request("The request body must be a JSON object")
    return body


def _parse_query(body: JSON) -> _Query:
    unknown = sorted(set(body) - _FIELDS)
    if unknown:
        raise _bad_request(f"Unknown field(s): {', '.join(unknown)}")
    customer_id = _required_uuid(body, "customer_id")
    contract_id = _required_uuid(body, "contract_id")
    window = _Window(
        starting_at=_optional_instant(body, "starting_at"),
        effective_before=_optional_instant(body, "effective_before"),
        covering_date=_optional_instant(body, "covering_date"),
    )
    if window.covering_date is not None and (
        window.starting_at is not None or window.effective_before is not None
    ):
        raise _bad_request("covering_date cannot be combined with starting_at or effective_before")
    return _Query(
        customer_id=customer_id,
        contract_id=contract_id,
        subscription_ids=tuple(
            _uuid(value, "subscription_ids")
            for value in _optional_strings(body, "subscription_ids")
        ),
        seat_ids=_optional_strings(body, "seat_ids"),
        skip_missing_seat_ids=_optional_bool(body, "skip_missing_seat_ids"),
        include_credits_and_commits=_optional_bool(body, "include_credits_and_commits"),
        include_ledgers=_optional_bool(body, "include_ledgers"),
        window=window,
        limit=_limit(body),
        after_seat_id=_cursor(body),
    )


def _required_uuid(body: JSON, field: str) -> str:
    if field not in body:
        raise _bad_request(f"{field} is required")
    return _uuid(body[field], field)


def _uuid(value: object, field: str) -> str:
    if not isinstance(value, str) or not _UUID.fullmatch(value):
        raise _bad_request(f"{field} must be a UUID string, got {json.dumps(value)}")
    return value.lower()


def _optional_strings(body: JSON, field: str) -> tuple[str, ...]:
    value = body.get(field, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _bad_request(f"{field} must be an array of strings")
    return tuple(dict.fromkeys(value))  # without duplicates, in the order given


def _optional_bool(body: JSON, field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise _bad_request(f"{field} must be a boolean")
    return value


def _optional_instant(body: JSON, field: str) -> datetime | None:
    if field not in body:
        return None
    value = body[field]
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise _bad_request(
            f"{field} must be an RFC 3339 date-time such as 2026-05-01T00:00:00.000Z, "
            f"got {json.dumps(value)}"
        )
    try:
        return _instant(value)
    except ValueError:
        raise _bad_request(f"{field} is not a valid date-time: {value}") from None


@lru_cache(maxsize=4096)
def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.upper())


def _limit(body: JSON) -> int:
    value = body.get("limit", DEFAULT_LIMIT)
    # bool is an int in Python; JSON true is not a number.
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise _bad_request(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return value


def encode_cursor(last_seat_id: str) -> str:
    """The ``next_page`` token after the seat ``last_seat_id``: base64url of a small JSON."""
    raw = json.dumps({"last_seat_id": last_seat_id}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _cursor(body: JSON) -> str | None:
    """The seat id the page starts after, from a ``cursor`` made by ``encode_cursor``."""
    if "cursor" not in body:
        return None
    # Sent, even as null, it must be a token: only leaving it out starts at the beginning.
    return _key_token(body["cursor"] or "", "cursor", "last_seat_id", kind="a next_page token")


# --- answering ---------------------------------------------------------------------------------


def _find_contract(index: _Index, visible: frozenset[str], query: _Query) -> _Contract:
    # A customer the token may not see answers exactly like one that does not exist.
    if query.customer_id not in visible:
        raise StandinError(404, f"Customer {query.customer_id} not found")
    contract = index.contracts.get((query.customer_id, query.contract_id))
    if contract is None:
        raise StandinError(
            404, f"Contract {query.contract_id} not found for customer {query.customer_id}"
        )
    return contract


def _select_seats(contract: _Contract, query: _Query) -> list[JSON]:
    """The seats the filters keep that come after the cursor, in seat_id order."""
    allowed: set[str] | None = None
    for subscription_id in query.subscription_ids:
        seats = contract.seat_subscriptions.get(subscription_id)
        if seats is None:
            reason = (
                "is not a SEAT_BASED subscription"
                if subscription_id in contract.other_subscriptions
                else "is not a subscription of this contract"
            )
            raise _bad_request(f"Subscription {subscription_id} {reason}")
        allowed = set(seats) if allowed is None else allowed | seats
    if query.seat_ids:
        known = set(contract.seat_ids)
        missing = [seat_id for seat_id in query.seat_ids if seat_id not in known]
        if missing and not query.skip_missing_seat_ids:
            raise _bad_request(f"Unknown seat_ids: {', '.join(missing)}")
        requested = set(query.seat_ids) & known
        allowed = requested if allowed is None else allowed & requested
    start = 0
    if query.after_seat_id is not None:
        start = bisect_right(contract.seat_ids, query.after_seat_id)
    seats_after = contract.seats[start:]
    if allowed is None:
        return seats_after
    return [seat for seat in seats_after if seat["seat_id"] in allowed]


def _render_seat(seat: JSON, query: _Query) -> JSON:
    """A seat as the request asked for it; the stored seat is never changed."""
    rendered = {"seat_id": seat["seat_id"], "balances": seat["balances"]}
    if query.include_credits_and_commits:
        for key in ("commits", "credits"):
            items = seat.get(key)
            rendered[key] = (
                None
                if items is None
                else [
                    _render_item(item, query.include_ledgers)
                    for item in items
                    if query.window.keeps(item)
                ]
            )
    return rendered


def _render_item(item: JSON, with_ledger: bool) -> JSON:
    return {key: value for key, value in item.items() if with_ledger or key != "ledger_entries"}


def _commits_and_credits(seat: JSON) -> int:
    return len(seat.get("commits") or ()) + len(seat.get("credits") or ())


def _page(seats: list[JSON], query: _Query) -> JSON:
    """One page: up to ``limit`` seats, cut greedily at 100 commits and credits.

    Quoting the contract: seats are added in order while the commits and credits of the seats
    already on the page total less than 100, so the first seat always fits whole and the page
    that crosses the cap can hold more than 100.
    """
    page: list[JSON] = []
    carried = 0
    for seat in seats:
        if len(page) == query.limit:
            break
        if query.include_credits_and_commits and page and carried >= COMMITS_AND_CREDITS_CAP:
            break
        rendered = _render_seat(seat, query)
        carried += _commits_and_credits(rendered)
        page.append(rendered)
    remaining = len(seats) - len(page)
    return {
        "data": page,
        "pagination": {
            "seats_included": len(page),
            "seats_available_for_next_page": remaining,
            "next_page": encode_cursor(page[-1]["seat_id"]) if page and remaining else None,
        },
    }


def create_standin_app(dataset: JSON | None = None) -> Starlette:
    """The stand-in over ``dataset`` (``build_dataset()`` when ``None``), which it never changes.

    Balances are served as stored: the date window filters commits and credits only, because
    the contract defines a seat's balance as the total across all its commits and credits.
    The index holds the dataset's own seat dicts, so a change to them (the demo usage of
    ``gateway.standin.live``) shows in the next answer; ``standin_dataset(app)`` reaches them.
    """
    data = build_dataset() if dataset is None else dataset
    index = _index(data)

    async def list_seat_balances(request: Request) -> JSONResponse:
        visible = _authenticate(request, index)
        query = _parse_query(await _json_object(request))
        contract = _find_contract(index, visible, query)
        return JSONResponse(_page(_select_seats(contract, query), query))

    async def list_customer_balances(request: Request) -> JSONResponse:
        visible = _authenticate(request, index)
        query = _parse_balances_query(await _json_object(request))
        if query.customer_id not in visible:
            raise StandinError(404, f"Customer {query.customer_id} not found")
        return JSONResponse(_balances_page(index, query))

    async def list_credit_types(request: Request) -> JSONResponse:
        _authenticate(request, index)
        return JSONResponse(_credit_types_page(index, dict(request.query_params)))

    app = Starlette(
        routes=[
            Route(SEAT_BALANCES_PATH, list_seat_balances, methods=["POST"]),
            Route(CUSTOMER_BALANCES_PATH, list_customer_balances, methods=["POST"]),
            Route(CREDIT_TYPES_PATH, list_credit_types, methods=["GET"]),
        ],
        exception_handlers={StandinError: _standin_error, HTTPException: _routing_error},
    )
    app.state.standin_dataset = data
    return app


def standin_dataset(app: Starlette) -> JSON:
    """The dataset a ``create_standin_app`` app serves: the very dicts its answers read."""
    dataset: JSON = app.state.standin_dataset
    return dataset


# --- "List balances" and the credit types --------------------------------------------------------

_BALANCES_FIELDS = frozenset(
    {
        "customer_id",
        "id",
        "include_contract_balances",
        "include_balance",
        "include_ledgers",
        "include_archived",
        "covering_date",
        "starting_at",
        "effective_before",
        "limit",
        "next_page",
    }
)
MAX_BALANCES_LIMIT = 25
MAX_CREDIT_TYPES_LIMIT = 100


@dataclass(frozen=True)
class _BalancesQuery:
    customer_id: str
    item_id: str | None
    include_contract_balances: bool
    include_balance: bool
    include_archived: bool
    window: _Window
    limit: int
    after_id: str | None


def _parse_balances_query(body: JSON) -> _BalancesQuery:
    unknown = sorted(set(body) - _BALANCES_FIELDS)
    if unknown:
        raise _bad_request(f"Unknown field(s): {', '.join(unknown)}")
    if _optional_bool(body, "include_ledgers"):
        raise _bad_request("include_ledgers is not served by the stand-in")
    limit = body.get("limit", MAX_BALANCES_LIMIT)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int)
        or not 1 <= limit <= MAX_BALANCES_LIMIT
    ):
        raise _bad_request(f"limit must be an integer from 1 to {MAX_BALANCES_LIMIT}")
    window = _Window(
        starting_at=_optional_instant(body, "starting_at"),
        effective_before=_optional_instant(body, "effective_before"),
        covering_date=_optional_instant(body, "covering_date"),
    )
    return _BalancesQuery(
        customer_id=_required_uuid(body, "customer_id"),
        item_id=_uuid(body["id"], "id") if "id" in body else None,
        include_contract_balances=_optional_bool(body, "include_contract_balances"),
        include_balance=_optional_bool(body, "include_balance"),
        include_archived=_optional_bool(body, "include_archived"),
        window=window,
        limit=limit,
        after_id=_key_token(body.get("next_page"), "next_page", "last_id"),
    )


def _balances_page(index: _Index, query: _BalancesQuery) -> JSON:
    """Up to ``limit`` items after the token, ordered by id, with the filters applied."""
    kept = []
    for item in index.balances.get(query.customer_id, []):
        if query.item_id is not None and item["id"] != query.item_id:
            continue
        if query.after_id is not None and item["id"] <= query.after_id:
            continue
        if "contract" in item and not query.include_contract_balances:
            continue  # contract-level: the trap the contract warns about
        if item["id"] in index.archived and not query.include_archived:
            continue
        if not _schedule_window_keeps(query.window, item):
            continue
        kept.append(item)
    page = kept[: query.limit]
    balances = _seat_balance(index, query.customer_id) if query.include_balance else {}
    data = [
        {**item, "balance": balances.get(item["id"], 0)} if query.include_balance else item
        for item in page
    ]
    more = len(kept) > len(page)
    return {"data": data, "next_page": _make_token("last_id", page[-1]["id"]) if more else None}


def _seat_balance(index: _Index, customer_id: str) -> dict[str, int | float]:
    """Item id -> the sum of its per-seat balances, summed at each request because the demo
    usage moves the seats' balances under a running app."""
    totals: dict[str, int | float] = {}
    for (owner, _), contract in index.contracts.items():
        if owner != customer_id:
            continue
        for seat in contract.seats:
            for item in (seat.get("commits") or []) + (seat.get("credits") or []):
                totals[item["id"]] = totals.get(item["id"], 0) + item["balance"]
    return totals


def _schedule_window_keeps(window: _Window, item: JSON) -> bool:
    schedule = (item.get("access_schedule") or {}).get("schedule_items") or []
    if not schedule:
        return window == _Window()
    span = {
        "start_date": min(entry["starting_at"] for entry in schedule),
        "end_date": max(entry["ending_before"] for entry in schedule),
    }
    return window.keeps(span)


def _credit_types_page(index: _Index, params: dict[str, str]) -> JSON:
    unknown = sorted(set(params) - {"limit", "next_page"})
    if unknown:
        raise _bad_request(f"Unknown query parameter(s): {', '.join(unknown)}")
    raw = params.get("limit")
    if raw is None or not raw.isdigit() or not 1 <= int(raw) <= MAX_CREDIT_TYPES_LIMIT:
        raise _bad_request(f"limit must be an integer from 1 to {MAX_CREDIT_TYPES_LIMIT}")
    after = _key_token(params.get("next_page"), "next_page", "last_id")
    rest = [ct for ct in index.credit_types if after is None or ct.get("id", "") > after]
    page = rest[: int(raw)]
    more = len(rest) > len(page)
    return {"data": page, "next_page": _make_token("last_id", page[-1]["id"]) if more else None}


def _make_token(key: str, value: str) -> str:
    raw = json.dumps({key: value}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode("ascii")


def _key_token(token: object, field: str, key: str, *, kind: str = "a token") -> str | None:
    """The value a token of this endpoint carries under ``key``; ``None`` when there is no
    token, a 400 naming ``field`` when it is not one."""
    if token is None:
        return None
    invalid = _bad_request(f"{field} is not {kind} of this endpoint")
    if not isinstance(token, str):
        raise invalid
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        decoded = json.loads(raw)
    except (binascii.Error, ValueError):
        raise invalid from None
    if not isinstance(decoded, dict) or set(decoded) != {key} or not isinstance(decoded[key], str):
        raise invalid
    value: str = decoded[key]
    return value


async def _standin_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StandinError)
    return JSONResponse({"message": exc.message}, status_code=exc.status)


async def _routing_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = (
            f"No route {request.url.path}; the stand-in serves POST {SEAT_BALANCES_PATH}, "
            f"POST {CUSTOMER_BALANCES_PATH} and GET {CREDIT_TYPES_PATH}"
        )
    elif exc.status_code == 405:
        verb = "GET" if request.url.path == CREDIT_TYPES_PATH else "POST"
        message = f"Method {request.method} not allowed; use {verb} {request.url.path}"
    else:
        message = exc.detail
    return JSONResponse({"message": message}, status_code=exc.status_code, headers=exc.headers)
