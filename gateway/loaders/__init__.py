"""Per-request dataloaders over the billing API: one upstream call per distinct page.

Two loaders, both built for one GraphQL request (their caches hold one caller's answers and
must never outlive the request):

* ``pages`` is keyed by the exact upstream request (:class:`PageRequest`). Two aliases that
  ask for the same page share one call; different pages of one operation run concurrently.
* ``seats`` is keyed by one seat of one listing (:class:`SeatRequest`) and answers with that
  seat's full record including commits and credits (and ledger entries when asked), or ``None``
  when the billing API does not know the seat. All seats of an operation that share a listing
  become one upstream call with ``seat_ids`` and ``skip_missing_seat_ids``, following
  ``next_page`` while ``limit`` or the 100 commits/credits cap splits the answer.
* ``details`` is keyed by one commit or credit of a customer (:class:`DetailKey`) and answers
  with its full "List balances" item; :meth:`Loaders.credit_type` answers a credit type from one
  listing per credential (see :mod:`gateway.loaders.details` for both). Every call of all of
  them counts against the request's budget.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from functools import cached_property, partial
from typing import Any, Protocol, TypeVar

import orjson
from aiodataloader import DataLoader
from pydantic import TypeAdapter

from gateway.caches import TLRUCache
from gateway.loaders.details import (
    CommitDetails,
    CreditTypeCache,
    DetailKey,
    list_credit_types,
)
from gateway.stores import KeyValueStore
from gateway.upstream import BalanceItem, BillingClient, CreditType, SeatBalance, SeatBalancePage
from gateway.upstream.client import CUSTOMER_BALANCES_PATH, SEAT_BALANCES_PATH
from gateway.upstream.details import BALANCES_PAGE
from gateway.upstream.models import SEAT_BALANCE_PAGE
from gateway.upstream.wire import MAX_SEATS_PER_PAGE, Listing, PageRequest, PageTokens

__all__ = [
    "MAX_SEATS_PER_PAGE",
    "BatchObserver",
    "Listing",
    "Loaders",
    "PageCache",
    "PageRequest",
    "SeatRequest",
    "UpstreamBudgetExceeded",
]

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SeatRequest:
    """One seat's record in a listing, with commits and credits (and ledgers) if asked."""

    listing: Listing
    seat_id: str
    include_commits: bool = True
    include_ledgers: bool = False


# Seats that can share one upstream call: (listing without seat filter, commits?, ledgers?).
_Group = tuple[Listing, bool, bool]


class UpstreamBudgetExceeded(Exception):
    """The operation needs more upstream calls than it is allowed."""

    def __init__(self, budget: int) -> None:
        super().__init__(f"The operation needs more than {budget} calls to the billing API.")
        self.budget = budget


class BatchObserver(Protocol):
    """Told the size of every batch a loader dispatches (for the batch size histogram)."""

    def batch(self, loader: str, size: int) -> None: ...


class CacheObserver(Protocol):
    """Told whether each page cache lookup was a hit or a miss, and of each upstream call a
    request did not make because an identical one was in flight."""

    def cache_lookup(self, store: str, hit: bool) -> None: ...

    def shared_call(self) -> None: ...


# What a kept page is checked with when it is read back: the very validator its upstream answer
# went through (gateway/upstream), so a page from the store is held to the same contract.
_DECODERS: dict[str, TypeAdapter[Any]] = {
    SEAT_BALANCES_PATH: SEAT_BALANCE_PAGE,
    CUSTOMER_BALANCES_PATH: BALANCES_PAGE,
}
# Identical upstream calls in flight at once that can be shared; past it, calls are not shared.
MAX_CALLS_IN_FLIGHT = 4096
# Customers whose pages a webhook dropped, remembered at once (the oldest go first).
MAX_FORGOTTEN_CUSTOMERS = 100_000


@dataclass(slots=True)
class _Flight:
    """One upstream call in flight and how many requests wait for its answer."""

    task: asyncio.Future[Any]
    waiters: int = 0


class PageCache:
    """Upstream pages kept ``ttl`` seconds (``0``: none kept), keyed by a hash of the
    credential and the exact upstream request, so that nothing one credential fetched is ever
    read with another; and the same key shares one call in flight between the requests that
    ask for the same page at the same time, kept or not.

    Read only by the loaders, which run after the authorization check of the field asking
    (gateway/schema/access.py). Each entry is its expiry (wall clock, so that replicas sharing
    Redis agree on it; for the answer's ``Cache-Control: max-age``), a newline and the page's
    JSON. Read back, an entry is validated as the upstream answer was; one that does not pass
    is deleted and is a miss.

    :meth:`forget` drops a customer's pages (a webhook said its balances moved): every entry of
    that customer written before is a miss from then on, in this process (each replica is told
    by the live bus, :mod:`gateway.live`)."""

    def __init__(
        self, store: KeyValueStore, ttl: float, observer: CacheObserver | None = None
    ) -> None:
        self.store = store
        self.ttl = ttl
        self._observer = observer
        self._flights: dict[str, _Flight] = {}
        # customer id -> when its pages were forgotten (wall clock, as entries' expiries are);
        # remembered for as long as an entry written before can live.
        self._forgotten: TLRUCache[str, float] = TLRUCache(
            MAX_FORGOTTEN_CUSTOMERS, ttu=lambda _key, at, _now: at + ttl, timer=time.time
        )

    def forget(self, customer_id: str) -> None:
        """Every page of this customer kept until now is a miss from now on."""
        if self.ttl > 0:
            self._forgotten[customer_id.lower()] = time.time()

    @staticmethod
    def key(token: str, path: str, body: object) -> str:
        digest = hashlib.sha256()
        for part in (
            token.encode(),
            path.encode(),
            orjson.dumps(body, option=orjson.OPT_SORT_KEYS),
        ):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.hexdigest()

    async def get(
        self, key: str, path: str, customer_id: str | None = None
    ) -> tuple[Any, float] | None:
        """The page and the seconds it has left, or ``None`` (also for a page of
        ``customer_id`` written before :meth:`forget` was told of it)."""
        raw = await self.store.get(key)
        entry = None
        if raw is not None:
            entry = self._read(raw, path)
            if entry is None:
                await self.store.delete(key)
                self.store.rejected()
        fresh = entry is not None and entry[1] > 0
        if fresh and customer_id is not None and self._forgotten:
            forgotten = self._forgotten.get(customer_id.lower())
            # Written at its expiry less the TTL; the same TTL across replicas (README).
            fresh = forgotten is None or time.time() + entry[1] - self.ttl > forgotten  # type: ignore[index]
        if self._observer is not None:
            self._observer.cache_lookup(self.store.name, fresh)
        return entry if fresh else None

    def _read(self, raw: bytes, path: str) -> tuple[Any, float] | None:
        expiry, newline, body = raw.partition(b"\n")
        decoder = _DECODERS.get(path)
        if not newline or decoder is None:
            return None
        try:
            left = float(expiry) - time.time()
            page = decoder.validate_json(body)
        except ValueError:  # pydantic's ValidationError is one
            return None
        if not math.isfinite(left):
            return None
        return page, min(left, self.ttl)

    async def put(self, key: str, page: object) -> None:
        expiry = repr(time.time() + self.ttl).encode()
        await self.store.set(key, expiry + b"\n" + orjson.dumps(page), self.ttl)

    async def shared(self, key: str, fetch: Callable[[], Awaitable[_T]]) -> _T:
        """``fetch()``'s answer, shared with every request awaiting the same ``key`` while it
        is in flight. A request that leaves stops waiting without stopping the call for the
        others; the call is cancelled once no request waits for it."""
        flight = self.join(key, fetch)
        try:
            return await asyncio.shield(flight.task)
        finally:
            self.leave(key, flight)

    def join(self, key: str, fetch: Callable[[], Awaitable[Any]]) -> _Flight:
        """The call in flight for ``key``, started now with ``fetch()`` if there is none, with
        one more request waiting for it: that request calls :meth:`leave` once, when it stops
        waiting (answered or not). Past ``MAX_CALLS_IN_FLIGHT`` a call is not shared."""
        flight = self._flights.get(key)
        if flight is None:
            flight = _Flight(asyncio.ensure_future(fetch()))
            if len(self._flights) < MAX_CALLS_IN_FLIGHT:
                self._flights[key] = flight
                flight.task.add_done_callback(partial(self._landed, key, flight))
            else:
                flight.task.add_done_callback(_seen)
        elif self._observer is not None:
            self._observer.shared_call()
        flight.waiters += 1
        return flight

    def leave(self, key: str, flight: _Flight) -> None:
        """One request waits no more for ``flight``: the last one leaving a call still in
        flight cancels it."""
        flight.waiters -= 1
        if flight.waiters == 0 and not flight.task.done():
            flight.task.cancel()
            self._landed(key, flight, flight.task)

    def _landed(self, key: str, flight: _Flight, task: asyncio.Future[Any]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        if task.done() and not task.cancelled():
            task.exception()  # seen: every waiter may have left before it failed

    @property
    def calls_in_flight(self) -> int:
        return len(self._flights)


class Loaders:
    """The dataloaders of one GraphQL request, calling upstream with one caller's token.

    ``max_calls`` bounds the upstream calls of the request; :meth:`close` stops those still
    in flight when the request ends (early, if the caller left) and lets go of what it loaded.
    """

    def __init__(
        self,
        client: BillingClient,
        token: str,
        *,
        max_calls: int,
        observer: BatchObserver | None = None,
        credit_types: CreditTypeCache | None = None,
        cache: PageCache | None = None,
        refresh: bool = False,
    ) -> None:
        self._client = client
        self._cache = cache
        self._refresh = refresh  # the caller sent `Cache-Control: no-cache`
        self.fresh_for: float | None = None  # seconds the pages used so far stay fresh
        self._observer = observer
        self._token = token
        self._max_calls = max_calls
        self._calls = 0
        self._in_flight: set[asyncio.Task[Any]] = set()
        # Pages are never batched (each distinct page is one call), so not a DataLoader: a page
        # is fetched in a task of its own as soon as it is asked for, and later loads of the
        # same page in this request share it (without a DataLoader's future per load, its
        # dispatch at the loop's next turn and its batch task: a loop turn and a task less).
        self._pages: dict[PageRequest, asyncio.Future[SeatBalancePage]] = {}
        # The calls in flight this request's pages wait for (see load_page), left at close.
        self._joined: list[tuple[str, _Flight]] = []
        self._credit_type_cache = credit_types
        self._credit_types: asyncio.Future[dict[str, CreditType]] | None = None

    # The loaders most operations never use are made on first use (a request that lists
    # seats, the common case, builds one DataLoader, not three).
    @cached_property
    def seats(self) -> DataLoader[SeatRequest, SeatBalance | None]:
        return DataLoader(self._load_seats)

    @cached_property
    def details(self) -> DataLoader[DetailKey, BalanceItem | None]:
        return DataLoader(self._load_details)

    @cached_property
    def _details(self) -> CommitDetails:
        return CommitDetails(
            self._client, self._token, self._counted, self._cached, may_retry=self._may_retry
        )

    async def page(self, request: PageRequest) -> SeatBalancePage:
        """One page, shared with every other load of the same request in this operation."""
        # Shielded: graphql-core cancels sibling resolvers when a non-null field fails, and
        # cancelling an await of a shared future would cancel it for every other consumer.
        return await asyncio.shield(self.load_page(request))

    def load_page(self, request: PageRequest) -> asyncio.Future[SeatBalancePage]:
        """The page ``request``, fetched once per request: its first load starts the call, and
        every load shares its answer or its error (as a DataLoader's cache would). The future
        may be another request's call as well (:meth:`_join`): await it through :meth:`page`,
        shielded, so that no consumer's cancellation cancels it."""
        loading = self._pages.get(request)
        if loading is None:
            if self._observer:
                self._observer.batch("pages", 1)
            cache = self._cache
            if cache is not None and cache.ttl <= 0:
                loading = self._join(cache, request)
            else:
                loading = asyncio.ensure_future(self._fetch(request))
                self._in_flight.add(loading)  # cancelled with the request (the call runs in it)
                loading.add_done_callback(self._in_flight.discard)
            loading.add_done_callback(_seen)
            self._pages[request] = loading
        return loading

    def _join(self, cache: PageCache, request: PageRequest) -> asyncio.Future[SeatBalancePage]:
        """With no page kept (the default), a page is the call in flight for it: this request
        waits for the same call as every other request asking for the same page with the same
        credential (:meth:`PageCache.join`), counted against its budget as a call it made, and
        leaves it when it closes. No task of the request's own between it and the call: two
        loop turns and a task less per page than going through :meth:`_cached`."""
        try:
            self._count()
        except UpstreamBudgetExceeded as error:
            refused: asyncio.Future[SeatBalancePage] = asyncio.get_running_loop().create_future()
            refused.set_exception(error)
            return refused
        body = request.body()
        key = cache.key(self._token, SEAT_BALANCES_PATH, body)
        flight = cache.join(
            key,
            lambda: self._client.list_seat_balances(
                body, token=self._token, may_retry=self._may_retry
            ),
        )
        self._joined.append((key, flight))
        return flight.task

    async def seat(self, request: SeatRequest) -> SeatBalance | None:
        """One seat's record, batched with the operation's other seats (shielded likewise)."""
        return await _shielded(self.seats.load(request))

    async def detail(self, key: DetailKey) -> BalanceItem | None:
        """A commit's or credit's details, batched with the operation's others (shielded)."""
        return await _shielded(self.details.load(key))

    def detail_future(self, key: DetailKey) -> asyncio.Future[BalanceItem | None]:
        """The load of :meth:`detail`, started now (it joins the batch dispatched at the
        loop's next turn), for a caller that attaches its result itself; awaiting it with
        ``asyncio.wait`` (or shielded) leaves it to the others when that caller goes."""
        future = asyncio.ensure_future(self.details.load(key))
        future.add_done_callback(lambda done: done.cancelled() or done.exception())
        return future

    def credit_types(self) -> asyncio.Future[dict[str, CreditType]]:
        """The credential's credit types by id, started on first use: one listing per request
        at most, none while the credential's listing is cached. Await it shielded (or through
        ``asyncio.wait``): every consumer shares it."""
        if self._credit_types is None:
            self._credit_types = asyncio.ensure_future(self._list_credit_types())
            self._credit_types.add_done_callback(_seen)
        return self._credit_types

    @property
    def upstream_calls(self) -> int:
        return self._calls

    def close(self) -> None:
        """The request is over: its calls still in flight stop, and its pages, dataloaders and
        tasks are let go. They refer back to these loaders (a dataloader's batch function, a
        task's traceback through :meth:`_cached`), so keeping them would leave every request's
        loaders and pages to the cycle collector instead of freeing them as it ends."""
        for task in list(self._in_flight):
            task.cancel()
        joined, self._joined = self._joined, []
        if self._cache is not None:
            for key, flight in joined:
                self._cache.leave(key, flight)
        self._pages = {}
        self._credit_types = None
        for made in ("seats", "details", "_details"):  # the cached properties' values
            self.__dict__.pop(made, None)

    def _count(self) -> None:
        """One upstream call more, within the budget."""
        if self._calls >= self._max_calls:
            raise UpstreamBudgetExceeded(self._max_calls)
        self._calls += 1

    async def _counted(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """One upstream call, counted against the budget and cancelled with the request."""
        self._count()
        task = asyncio.ensure_future(call())
        self._in_flight.add(task)
        task.add_done_callback(self._in_flight.discard)
        return await task

    def _may_retry(self) -> bool:
        """Whether one more attempt of a failed call fits the budget (counted if so): the
        budget bounds the upstream requests a request makes, retries included."""
        if self._calls >= self._max_calls:
            return False
        self._calls += 1
        return True

    async def _cached(
        self,
        path: str,
        body: object,
        call: Callable[[], Awaitable[_T]],
        *,
        tracked: bool = False,
    ) -> _T:
        """An upstream call through the page cache: when the cache is on, a fresh page is
        answered without a call, and a missing one (or every one, for a caller refreshing) is
        fetched and kept (only successful answers are). Cache on or off, a call identical to
        one in flight (same credential, endpoint and body) waits for that one's answer; it
        still counts against this request's budget, as a call it made would, so that whether
        a request fits its budget never depends on what others do at the same time.
        ``tracked``: the caller runs in a task of its own that :meth:`close` cancels (a page's),
        so the call is counted and awaited in it rather than in a task of the call's own."""
        cache = self._cache
        if cache is None:
            if tracked:
                self._count()
                return await call()
            return await self._counted(call)
        key = cache.key(self._token, path, body)
        if cache.ttl > 0 and not self._refresh:
            customer_id = body.get("customer_id") if isinstance(body, dict) else None
            cached = await cache.get(key, path, customer_id)
            if cached is not None:
                self._fresh(cached[1])
                return cached[0]  # type: ignore[no-any-return]

        async def fetch() -> _T:
            fetched = await call()
            if cache.ttl > 0:
                await cache.put(key, fetched)
            return fetched

        if tracked:
            self._count()
            answer = await cache.shared(key, fetch)
        else:
            answer = await self._counted(lambda: cache.shared(key, fetch))
        if cache.ttl > 0:
            self._fresh(cache.ttl)
        return answer

    def _fresh(self, left: float) -> None:
        self.fresh_for = left if self.fresh_for is None else min(self.fresh_for, left)

    async def _fetch(self, request: PageRequest) -> SeatBalancePage:
        body = request.body()
        return await self._cached(
            SEAT_BALANCES_PATH,
            body,
            lambda: self._client.list_seat_balances(
                body, token=self._token, may_retry=self._may_retry
            ),
            tracked=True,
        )

    async def _load_details(self, keys: list[DetailKey]) -> list[Any]:
        if self._observer:
            self._observer.batch("details", len(keys))
        results, seen = await self._details.load(keys)
        for key, item in seen.items():
            self.details.prime(key, item)  # a later load of this request needs no call
        return results

    async def _list_credit_types(self) -> dict[str, CreditType]:
        cache = self._credit_type_cache
        cached = cache.get(self._token) if cache is not None else None
        if cached is not None:
            return cached
        types = await list_credit_types(
            self._client, self._token, self._counted, may_retry=self._may_retry
        )
        if cache is not None:
            cache.put(self._token, types)
        return types

    # Batch functions answer one value or one Exception per key (aiodataloader rejects that
    # key's future with it); typed ``list[Any]`` because aiodataloader's stubs know no errors.
    async def _load_seats(self, requests: list[SeatRequest]) -> list[Any]:
        if self._observer:
            self._observer.batch("seats", len(requests))
        groups: dict[_Group, list[str]] = defaultdict(list)
        for request in requests:
            groups[_group_of(request)].append(request.seat_id)
        group_keys = list(groups)
        answers = await asyncio.gather(
            *(self._fetch_seats(group, groups[group]) for group in group_keys),
            return_exceptions=True,
        )
        found = dict(zip(group_keys, answers, strict=True))
        results: list[SeatBalance | Exception | None] = []
        for request in requests:
            answer = found[_group_of(request)]
            if isinstance(answer, BaseException):
                if not isinstance(answer, Exception):
                    raise answer  # cancellation and friends are not per-key results
                results.append(answer)
            else:
                results.append(answer.get(request.seat_id))
        return results

    async def _fetch_seats(self, group: _Group, seat_ids: list[str]) -> dict[str, SeatBalance]:
        """Every asked seat that exists, following ``next_page`` until the answer is whole."""
        listing, include_commits, include_ledgers = group
        wanted = tuple(sorted(set(seat_ids)))
        request = PageRequest(
            listing=replace(listing, seat_ids=wanted, skip_missing_seat_ids=True),
            include_commits=include_commits,
            include_ledgers=include_ledgers,
            limit=min(MAX_SEATS_PER_PAGE, len(wanted)),
        )
        seats: dict[str, SeatBalance] = {}
        tokens = PageTokens()
        while True:
            page = await self.page(request)  # shielded: the page may be another request's call too
            for seat in page["data"]:
                seats[seat["seat_id"]] = seat
            next_page = page["pagination"].get("next_page")
            if not next_page:
                return seats
            request = replace(request, cursor=tokens.follow(next_page))


def _group_of(request: SeatRequest) -> _Group:
    """Seats that can share one upstream call: same listing whatever seat filter it had."""
    listing = replace(request.listing, seat_ids=None, skip_missing_seat_ids=False)
    return listing, request.include_commits, request.include_ledgers


def _seen(done: asyncio.Future[Any]) -> None:
    """Marks a shared load's error as retrieved: one nobody awaits any more (every consumer
    left) does not log "exception was never retrieved"."""
    if not done.cancelled():
        done.exception()


async def _shielded(load: Awaitable[_T]) -> _T:
    """Await a cached load without letting this consumer's cancellation cancel it for the
    others; its error still reaches every consumer that stays, and is marked as seen so that
    one nobody awaits any more does not log "exception was never retrieved"."""
    future = asyncio.ensure_future(load)
    future.add_done_callback(lambda done: done.cancelled() or done.exception())
    return await asyncio.shield(future)
