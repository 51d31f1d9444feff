"""Details of commits and credits ("List balances") and credit types, for the loaders.

Commit and credit details are loaded per request by :class:`DetailKey` (customer, id) in
batches, one strategy per customer of the batch:

* up to :data:`PER_ID_MAX` distinct ids: one call per id (``id`` is the endpoint's only
  filter), all at once, so the batch costs exactly that many calls and one round trip;
* more: the customer's whole list, :data:`BALANCES_PAGE_LIMIT` items a call, stopping as soon
  as every wanted id has been seen. That costs at least ``ceil(ids / 25)`` calls and at most
  ``ceil(list / 25)``, one after the other; the length of the list is not known in advance,
  so a handful of ids is cheaper (and faster) one by one, and many ids cheaper paged.

The batches of one request share how far each customer's list has been paged: graphql-core
loads commits and credits in different ticks (different batches), and a later batch continues
the scan, or finds its ids in what was already seen, instead of paging again.

Both ask with ``include_contract_balances`` (seat commits are contract-level and are not listed
without it) and without ``include_balance``/``include_ledgers`` (the seat endpoint's per-seat
figures are the ones shown). An id the API does not know (an empty answer or a 404) is
``None``. Items a scan sees beyond the wanted ones are handed back too, so that later loads of
the same request find them without a call.

Credit types are listed once per credential and kept :class:`CreditTypeCache` ``ttl`` seconds,
in a bounded map keyed by a hash of the token (never the token): one caller's listing never
serves another credential, and a failed listing is not kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import defaultdict
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from gateway.caches import TLRUCache
from gateway.upstream import (
    BalanceItem,
    BalancesPage,
    BillingClient,
    CreditType,
    CreditTypesPage,
    UpstreamRejected,
)
from gateway.upstream.client import CUSTOMER_BALANCES_PATH
from gateway.upstream.wire import PageTokens

PER_ID_MAX = 10
BALANCES_PAGE_LIMIT = 25  # the endpoint's maximum
CREDIT_TYPES_PAGE_LIMIT = 100  # the endpoint's maximum
CREDIT_TYPES_TTL = 300.0
CREDIT_TYPES_MAX_CREDENTIALS = 256

_T = TypeVar("_T")
# Runs one upstream call, counted against the request's budget (Loaders owns the count).
Counted = Callable[[Callable[[], Awaitable[_T]]], Awaitable[_T]]
# The same through the request's page cache, keyed by the endpoint's path and the body.
Cached = Callable[[str, Any, Callable[[], Awaitable[_T]]], Awaitable[_T]]


@dataclass(frozen=True, slots=True)
class DetailKey:
    """One commit or credit of one customer, by the billing API's id."""

    customer_id: str
    item_id: str


class _Scan:
    """How far one customer's list has been paged in this request: the batches of a request
    share it, so a second batch continues where the first stopped instead of starting over
    (graphql-core resolves commits and credits in different ticks, i.e. different batches)."""

    def __init__(self) -> None:
        self.seen: dict[str, BalanceItem] = {}
        self.next_page: str | None = None
        self.tokens = PageTokens()
        self.done = False  # the whole list has been seen
        self.lock = asyncio.Lock()  # one page at a time


class CommitDetails:
    """The batch function of the details loader: one result per key, in key order, ``None``
    for an id the billing API does not know, an Exception for a customer whose calls failed.
    One per request (it remembers how far each customer's list was paged)."""

    def __init__(
        self,
        client: BillingClient,
        token: str,
        counted: Counted[Any],
        cached: Cached[Any] | None = None,
        *,
        may_retry: Callable[[], bool] | None = None,
    ) -> None:
        self._client = client
        self._token = token
        self._counted = counted
        self._cached = cached
        self._may_retry = may_retry
        self._scans: dict[str, _Scan] = {}

    async def load(self, keys: list[DetailKey]) -> tuple[list[Any], dict[DetailKey, BalanceItem]]:
        """The answers for ``keys``, and the other items seen on the way."""
        wanted: dict[str, list[str]] = defaultdict(list)
        for key in keys:
            wanted[key.customer_id].append(key.item_id)
        customers = list(wanted)
        answers = await asyncio.gather(
            *(self._customer(customer, wanted[customer]) for customer in customers),
            return_exceptions=True,
        )
        found: dict[DetailKey, BalanceItem | Exception] = {}
        for customer, answer in zip(customers, answers, strict=True):
            if isinstance(answer, BaseException):
                found.update((DetailKey(customer, i), _per_key(answer)) for i in wanted[customer])
            else:
                found.update((DetailKey(customer, i), item) for i, item in answer.items())
        asked = set(keys)
        extra = {
            key: item
            for key, item in found.items()
            if key not in asked and not isinstance(item, Exception)
        }
        return [found.get(key) for key in keys], extra

    async def _customer(
        self, customer_id: str, item_ids: list[str]
    ) -> dict[str, BalanceItem | Exception]:
        """What one customer's ids are (a missing id is not found), with what a scan saw."""
        distinct = sorted(set(item_ids))
        scan = self._scans.get(customer_id)
        if scan is not None:
            async with scan.lock:  # let a scan in progress finish first
                pass
            if scan.done or len([i for i in distinct if i not in scan.seen]) > PER_ID_MAX:
                return dict(await self._scan(customer_id, set(distinct)))
            known: dict[str, BalanceItem | Exception] = dict(scan.seen)
            distinct = [i for i in distinct if i not in scan.seen]
        elif len(distinct) > PER_ID_MAX:
            return dict(await self._scan(customer_id, set(distinct)))
        else:
            known = {}
        answers = await asyncio.gather(
            *(self._one(customer_id, item_id) for item_id in distinct), return_exceptions=True
        )
        known.update(
            (item_id, _per_key(answer))
            for item_id, answer in zip(distinct, answers, strict=True)
            if answer is not None
        )
        return known

    async def _one(self, customer_id: str, item_id: str) -> BalanceItem | None:
        body: dict[str, Any] = {
            "customer_id": customer_id,
            "id": item_id,
            "include_contract_balances": True,
            "limit": BALANCES_PAGE_LIMIT,
        }
        async with aclosing(self._pages(body)) as pages:
            async for page in pages:
                for item in page:
                    if item["id"] == item_id:
                        return item
        return None

    async def _scan(self, customer_id: str, wanted: set[str]) -> dict[str, BalanceItem]:
        """Page the customer's list, from where this request left it, until every wanted id
        has been seen or the list ends; answers everything seen so far."""
        scan = self._scans.setdefault(customer_id, _Scan())
        async with scan.lock:
            while not scan.done and not wanted <= scan.seen.keys():
                body: dict[str, Any] = {
                    "customer_id": customer_id,
                    "include_contract_balances": True,
                    "limit": BALANCES_PAGE_LIMIT,
                }
                if scan.next_page:
                    body["next_page"] = scan.next_page
                page = await self._page(body)
                if page is None:
                    scan.done = True
                    break
                scan.seen.update((item["id"], item) for item in page["data"])
                next_page = page.get("next_page")
                # Only a null or empty next_page ends the list: a page may be empty.
                scan.next_page = scan.tokens.follow(next_page) if next_page else None
                scan.done = not scan.next_page
        return dict(scan.seen)

    async def _page(self, body: dict[str, Any]) -> BalancesPage | None:
        """One page, or ``None`` for a 404 (what the API may answer for an unknown id)."""
        try:
            call = partial(
                self._client.list_customer_balances,
                body,
                token=self._token,
                may_retry=self._may_retry,
            )
            page: BalancesPage = await (
                self._cached(CUSTOMER_BALANCES_PATH, body, call)
                if self._cached is not None
                else self._counted(call)
            )
        except UpstreamRejected as error:
            if error.status == 404:
                return None
            raise
        return page

    async def _pages(self, body: dict[str, Any]) -> AsyncGenerator[list[BalanceItem], None]:
        """The pages of one listing, until a null or empty ``next_page`` (``data`` may be
        empty while it is set); a 404 is an empty listing."""
        tokens = PageTokens()
        while (page := await self._page(body)) is not None:
            yield page["data"]
            next_page = page.get("next_page")
            if not next_page:
                return
            body = {**body, "next_page": tokens.follow(next_page)}


async def list_credit_types(
    client: BillingClient,
    token: str,
    counted: Counted[Any],
    *,
    may_retry: Callable[[], bool] | None = None,
) -> dict[str, CreditType]:
    """Every credit type the credential sees, by id, following ``next_page``. A credit type
    without an id or a name (every field is optional on the wire) cannot be shown: skipped.
    ``may_retry`` spends the request's budget on retries (gateway.upstream.client)."""
    types: dict[str, CreditType] = {}
    next_page: str | None = None
    tokens = PageTokens()
    while True:
        page: CreditTypesPage = await counted(
            partial(
                client.list_credit_types,
                limit=CREDIT_TYPES_PAGE_LIMIT,
                next_page=next_page,
                token=token,
                may_retry=may_retry,
            )
        )
        for credit_type in page["data"]:
            credit_type_id = credit_type.get("id")
            if credit_type_id and credit_type.get("name"):
                types[credit_type_id] = credit_type
        next_page = page.get("next_page")
        if not next_page:
            return types
        tokens.follow(next_page)


class CreditTypeCache:
    """Credit type listings per credential for ``ttl`` seconds, at most ``max_entries`` of
    them (the least recently used go first). Keyed by a SHA-256 of the token: the process
    never keeps a token, and one credential's listing never answers another's."""

    def __init__(
        self,
        ttl: float = CREDIT_TYPES_TTL,
        max_entries: int = CREDIT_TYPES_MAX_CREDENTIALS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._entries: TLRUCache[bytes, dict[str, CreditType]] = TLRUCache(
            max_entries, ttu=self._expiry, timer=clock
        )

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, token: str) -> dict[str, CreditType] | None:
        return self._entries.get(_credential(token))

    def put(self, token: str, types: dict[str, CreditType]) -> None:
        if self._ttl > 0:
            self._entries[_credential(token)] = types

    def _expiry(self, key: bytes, types: dict[str, CreditType], now: float) -> float:
        return now + self._ttl


def _per_key(answer: _T | BaseException) -> _T | Exception:
    """A gathered answer as a per-key result; cancellation is not a result, it propagates."""
    if isinstance(answer, BaseException) and not isinstance(answer, Exception):
        raise answer
    return answer


def _credential(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
