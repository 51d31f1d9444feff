"""One refresh loop per live listing, shared by its subscribers.

A live listing (:class:`LiveListing`) is what one upstream call re-reads: the credential (as its
hash), the customer, the contract, the seats asked for and the include flags. Every subscription
of the same listing in this process shares one :class:`_Live`: its last known seats, one poller
task, and the subscribers' queues. A new subscriber starts from the last known seats (no upstream
call) or, for a listing nobody follows yet, from one fetch that concurrent newcomers share.

The poller re-reads the listing every ``poll_interval`` seconds (jittered, so that listings
started together do not call together), and at once when :meth:`LiveHub.changed` says a webhook
named the customer. Across replicas, :class:`~gateway.live.bus.Bus` decides who polls (a lease
per listing) and carries each refresh to the others; a refresh reaches the subscribers of every
replica, whoever made it.

Bounded: ``max_subscriptions`` in the process and ``max_per_caller`` per caller, refused before
any upstream call; each subscriber's queue holds ``queue_size`` updates, and a subscriber whose
queue is full when the next one comes (a client that does not read) is dropped; a listing's
seats are at most ``max_seats``. A refresh that fails sends nothing and is tried again at the
next tick; only one failing for longer than ``failure_grace`` seconds ends the subscriptions,
with the error.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import orjson

from gateway.live.bus import Bus, BusListener
from gateway.loaders import Loaders, PageCache
from gateway.upstream import BillingClient, SeatBalance
from gateway.upstream.models import SEAT_BALANCE_PAGE
from gateway.upstream.wire import MAX_SEATS_PER_PAGE, Listing, PageRequest, PageTokens

logger = logging.getLogger("gateway.live")

SNAPSHOT = "SNAPSHOT"
WEBHOOK = "WEBHOOK"
POLL = "POLL"

# Subscribers woken at once when an update fans out; the next ones once a loop turn takes less
# than SHORT_TURN_SECONDS again (waiting at most MAX_IDLE_WAIT_TURNS turns).
FAN_OUT_CHUNK = 16
SHORT_TURN_SECONDS = 0.002
MAX_IDLE_WAIT_TURNS = 200
# A refresh read back from the bus larger than this is not parsed (a listing of max_seats
# seats with their ledgers stays well below it).
MAX_UPDATE_BYTES = 16_000_000


class LiveObserver(Protocol):
    """Told how many subscriptions are live, each update sent by reason, and each upstream
    call a refresh made."""

    def live_subscriptions(self, count: int) -> None: ...

    def live_update(self, reason: str, count: int) -> None: ...

    def live_upstream_calls(self, count: int) -> None: ...


@dataclass(frozen=True)
class LiveSettings:
    poll_interval: float = 30.0
    max_seats: int = 500
    max_subscriptions: int = 1000
    max_per_caller: int = 20
    failure_grace: float = 120.0
    queue_size: int = 4
    max_upstream_calls: int = 50  # per refresh, as per request


@dataclass(frozen=True, slots=True)
class LiveListing:
    """What one refresh re-reads. ``credential`` is the hash of the billing token the calls
    carry: listings of different credentials never share anything."""

    credential: str
    listing: Listing
    include_commits: bool
    include_ledgers: bool

    @staticmethod
    def of(
        token: str, listing: Listing, *, include_commits: bool, include_ledgers: bool
    ) -> LiveListing:
        seat_ids = listing.seat_ids
        return LiveListing(
            credential=hashlib.sha256(token.encode()).hexdigest(),
            listing=replace(
                listing,
                seat_ids=tuple(sorted(set(seat_ids))) if seat_ids is not None else None,
                skip_missing_seat_ids=seat_ids is not None,
            ),
            include_commits=include_commits,
            include_ledgers=include_commits and include_ledgers,
        )

    def digest(self) -> str:
        """The listing's name on the bus and in Redis (a hash: no id or credential in it)."""
        body = orjson.dumps(
            [self.credential, self.listing.body(), self.include_commits, self.include_ledgers],
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True, slots=True)
class Update:
    """The seats of a listing as one refresh read them, in the billing API's order. ``memo``
    is for what every subscriber of the listing would otherwise compute alike from it (the
    schema keeps each selection's seat digests there)."""

    reason: str
    at: float  # wall clock
    seats: list[SeatBalance]
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)


class TooManySubscriptions(Exception):
    """The process or the caller holds as many live subscriptions as allowed."""


class TooManySeats(Exception):
    """The listing holds more seats than a live subscription may follow."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit


class SubscriberTooSlow(Exception):
    """The subscriber did not read its updates: it was dropped."""


class ShuttingDown(Exception):
    """The process is shutting down: subscribe again (another replica answers)."""


class CredentialExpired(Exception):
    """The caller's credential expired while subscribed."""


class RefreshFailing(Exception):
    """The listing's refreshes have failed for longer than the grace period."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


class Subscription:
    """One subscriber: its queue of updates, first the snapshot. Iterate it; close it when done
    (the hub then forgets it, and stops the listing's poller with its last subscriber)."""

    def __init__(
        self, hub: LiveHub, live: _Live, caller: str, expires_at: float | None, size: int
    ) -> None:
        self._hub = hub
        self._live = live
        self.caller = caller
        self._expires_at = expires_at
        self._queue: asyncio.Queue[Update | BaseException] = asyncio.Queue(size + 1)
        self._size = size
        self.closed = False

    def offer(self, update: Update | BaseException) -> None:
        """Queues an update; a subscriber already holding ``size`` unread ones is dropped (the
        one slot kept free carries the reason)."""
        if self.closed:
            return
        if isinstance(update, Update) and self._queue.qsize() >= self._size:
            update = SubscriberTooSlow()
        if not isinstance(update, Update):
            self._hub.forget(self)  # no more updates for it; its error is the last item
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(update)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Update:
        if self.closed and self._queue.empty():
            raise StopAsyncIteration
        timeout = None
        if self._expires_at is not None:
            timeout = max(0.0, self._expires_at - time.time())
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            self.close()
            raise CredentialExpired() from None
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._hub.forget(self)


@dataclass(eq=False)
class _Live:
    """A live listing in this process: its subscribers, last seats and poller."""

    key: LiveListing
    digest: str
    token: str = field(repr=False)
    subscribers: set[Subscription] = field(default_factory=set)
    last: Update | None = None
    first: asyncio.Future[Update] | None = None
    poller: asyncio.Task[None] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    woken_by: str | None = None
    joining: int = 0  # newcomers waiting for their snapshot
    failing_since: float | None = None


class LiveHub(BusListener):
    """Every live listing of this process (see the module's docstring)."""

    def __init__(
        self,
        settings: LiveSettings,
        bus: Bus,
        *,
        page_cache: PageCache | None = None,
        observer: LiveObserver | None = None,
        client: Callable[[], BillingClient] | None = None,
    ) -> None:
        self.settings = settings
        self.bus = bus
        self._page_cache = page_cache
        self._observer = observer
        self._client = client
        self._lives: dict[str, _Live] = {}
        self._per_caller: dict[str, int] = {}
        self._count = 0
        self._closing = False

    @property
    def subscriptions(self) -> int:
        return self._count

    @property
    def listings(self) -> int:
        return len(self._lives)

    async def start(self) -> None:
        await self.bus.start(self)

    def drain(self) -> None:
        """The process is shutting down: every subscription ends now (with
        :class:`ShuttingDown`) and no new one starts. Called again, it does nothing more."""
        if self._closing:
            return
        self._closing = True
        for live in list(self._lives.values()):
            for subscriber in list(live.subscribers):
                subscriber.offer(ShuttingDown())

    async def aclose(self) -> None:
        for live in list(self._lives.values()):
            for subscriber in list(live.subscribers):
                subscriber.close()
        await self.bus.aclose()

    async def subscribe(
        self, key: LiveListing, token: str, caller: str, *, expires_at: float | None = None
    ) -> Subscription:
        """A subscription of ``key``, its first update the listing's seats now; refused
        (:class:`TooManySubscriptions`, :class:`TooManySeats`) before any upstream call."""
        if self._closing:
            raise ShuttingDown()
        seat_ids = key.listing.seat_ids
        if seat_ids is not None and len(seat_ids) > self.settings.max_seats:
            raise TooManySeats(self.settings.max_seats)
        if self._count >= self.settings.max_subscriptions:
            raise TooManySubscriptions(
                f"This gateway process holds {self._count} live subscriptions, its limit."
            )
        if self._per_caller.get(caller, 0) >= self.settings.max_per_caller:
            raise TooManySubscriptions(
                f"This caller holds {self.settings.max_per_caller} live subscriptions, its limit."
            )
        digest = key.digest()
        live = self._lives.get(digest)
        if live is None:
            live = self._lives[digest] = _Live(key, digest, token)
        subscription = Subscription(
            self, live, caller, expires_at, max(1, self.settings.queue_size)
        )
        # Counted from now (concurrent newcomers see it), subscribed once it has its snapshot
        # (an update fanned out meanwhile would otherwise come before it).
        self._count += 1
        self._per_caller[caller] = self._per_caller.get(caller, 0) + 1
        self._counted()
        live.joining += 1
        try:
            snapshot = await self._snapshot(live)
        except BaseException:
            live.joining -= 1
            self._release(subscription)
            raise
        live.joining -= 1
        live.subscribers.add(subscription)
        subscription.offer(Update(SNAPSHOT, snapshot.at, snapshot.seats, snapshot.memo))
        if self._observer is not None:
            self._observer.live_update(SNAPSHOT, 1)
        if live.poller is None:
            live.poller = asyncio.ensure_future(self._poll(live))
        return subscription

    def forget(self, subscription: Subscription) -> None:
        live = subscription._live
        if subscription in live.subscribers:
            live.subscribers.discard(subscription)
            self._release(subscription)

    def _release(self, subscription: Subscription) -> None:
        """Uncounts a subscriber, and stops its listing once nobody follows or joins it."""
        live = subscription._live
        self._count -= 1
        left = self._per_caller.get(subscription.caller, 1) - 1
        if left > 0:
            self._per_caller[subscription.caller] = left
        else:
            self._per_caller.pop(subscription.caller, None)
        self._counted()
        if not live.subscribers and not live.joining and self._lives.get(live.digest) is live:
            del self._lives[live.digest]
            if live.poller is not None:
                live.poller.cancel()
            if live.first is not None and not live.first.done():
                live.first.cancel()

    async def changed(self, customer_id: str, contract_id: str | None) -> None:
        """A webhook said the customer's balances (of ``contract_id``, if named) moved: its
        pages leave the page cache and its live listings are refreshed now, on every
        replica."""
        self.on_event(customer_id, contract_id)
        await self.bus.publish_event(customer_id, contract_id)

    # -- BusListener: what other replicas say ------------------------------------------

    def on_event(self, customer_id: str, contract_id: str | None) -> None:
        customer_id = customer_id.lower()
        contract = contract_id.lower() if contract_id else None
        if self._page_cache is not None:
            self._page_cache.forget(customer_id)
        for live in self._lives.values():
            listing = live.key.listing
            if listing.customer_id == customer_id and contract in (None, listing.contract_id):
                live.woken_by = WEBHOOK
                live.wake.set()

    async def on_update(self, digest: str, reason: str, at: float, body: bytes) -> None:
        live = self._lives.get(digest)
        if live is None or reason not in (POLL, WEBHOOK) or len(body) > MAX_UPDATE_BYTES:
            return
        try:
            page = SEAT_BALANCE_PAGE.validate_json(body)
        except ValueError:  # what comes from Redis is checked like what comes upstream
            logger.warning("a live update from the bus did not validate: ignored")
            return
        if live.last is not None and live.last.at >= at:
            return  # an older refresh than the one this process has
        await self._fan_out(live, Update(reason, at, page["data"]))

    # -- the refreshes --------------------------------------------------------------------

    async def _snapshot(self, live: _Live) -> Update:
        if live.last is not None:
            return live.last
        if live.first is None or live.first.cancelled():
            live.first = asyncio.ensure_future(self._first(live))
        first = live.first
        try:
            return await asyncio.shield(first)
        finally:
            failed = first.done() and not first.cancelled() and first.exception() is not None
            if failed and live.first is first:
                live.first = None  # the next newcomer tries again

    async def _first(self, live: _Live) -> Update:
        """The listing's seats for its first subscribers: another replica's last refresh when
        the bus has one, else one fetch (the page cache may answer it)."""
        shared = await self.bus.last(live.digest)
        if shared is not None:
            at, body = shared
            with contextlib.suppress(ValueError):
                if len(body) <= MAX_UPDATE_BYTES:
                    page = SEAT_BALANCE_PAGE.validate_json(body)
                    update = Update(SNAPSHOT, at, page["data"])
                    if live.last is None:
                        live.last = update
                    return update
        seats = await self._fetch(live, refresh=False)
        update = Update(SNAPSHOT, time.time(), seats)
        if live.last is None:
            live.last = update
        # Kept for the other replicas, so that a subscriber of this listing on another one
        # starts from it rather than from a call of its own.
        await self.bus.keep(live.digest, update.at, _page_bytes(seats))
        return update

    async def _poll(self, live: _Live) -> None:
        """Re-reads the listing every poll interval, or when woken by a webhook, while this
        process leads it; follows the bus otherwise."""
        interval = self.settings.poll_interval
        lease_step = self.bus.lease_step
        next_poll = time.monotonic() + _jittered(interval)
        try:
            while True:
                wait = max(0.0, min(next_poll - time.monotonic(), lease_step))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(live.wake.wait(), wait)
                reason, live.woken_by = live.woken_by, None
                live.wake.clear()
                leading = await self.bus.lead(live.digest)
                now = time.monotonic()
                if reason is None:
                    if now < next_poll:
                        continue  # the lease's tick, not the poll's
                    reason = POLL
                next_poll = now + _jittered(interval)
                if leading:
                    await self._refresh(live, reason)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.bus.release(live.digest))

    async def _refresh(self, live: _Live, reason: str) -> None:
        try:
            seats = await self._fetch(live, refresh=True)
        except asyncio.CancelledError:
            raise
        except Exception as error:
            now = time.monotonic()
            if live.failing_since is None:
                live.failing_since = now
                logger.warning("live refresh failed (%s): retried next tick", type(error).__name__)
            if now - live.failing_since > self.settings.failure_grace:
                for subscriber in list(live.subscribers):
                    subscriber.offer(RefreshFailing(error))
            return
        live.failing_since = None
        update = Update(reason, time.time(), seats)
        await self._fan_out(live, update)
        await self.bus.publish_update(
            live.digest,
            reason,
            update.at,
            _page_bytes(seats),
        )

    async def _fan_out(self, live: _Live, update: Update) -> None:
        """Queues the update for every subscriber, a few at a time: each woken subscriber
        writes its message in the loop turn after, and a thousand of them woken at once would
        hold every other request for the whole fan-out (bench/live_fanout.py)."""
        live.last = update
        for index, subscriber in enumerate(list(live.subscribers), 1):
            subscriber.offer(update)
            if index % FAN_OUT_CHUNK == 0:
                await _idle_turn()
        if self._observer is not None and live.subscribers:
            self._observer.live_update(update.reason, len(live.subscribers))

    async def _fetch(self, live: _Live, *, refresh: bool) -> list[SeatBalance]:
        """Every seat of the listing, page after page, at most ``max_seats``; its calls are
        bounded like a request's (``max_upstream_calls``) and stop when the poller does."""
        if self._client is None:
            raise RuntimeError("the live hub has no billing client")
        key = live.key
        seat_ids = key.listing.seat_ids
        loaders = Loaders(
            self._client(),
            live.token,
            max_calls=self.settings.max_upstream_calls,
            cache=self._page_cache,
            refresh=refresh,
        )
        request = PageRequest(
            listing=key.listing,
            include_commits=key.include_commits,
            include_ledgers=key.include_ledgers,
            limit=min(MAX_SEATS_PER_PAGE, len(seat_ids)) if seat_ids else MAX_SEATS_PER_PAGE,
        )
        seats: list[SeatBalance] = []
        tokens = PageTokens()
        try:
            while True:
                page = await loaders.page(request)
                seats.extend(page["data"])
                if len(seats) > self.settings.max_seats:
                    raise TooManySeats(self.settings.max_seats)
                next_page = page["pagination"].get("next_page")
                if not next_page:
                    return seats
                request = replace(request, cursor=tokens.follow(next_page))
        finally:
            loaders.close()
            if self._observer is not None and loaders.upstream_calls:
                self._observer.live_upstream_calls(loaders.upstream_calls)

    def _counted(self) -> None:
        if self._observer is not None:
            self._observer.live_subscriptions(self._count)


def _page_bytes(seats: list[SeatBalance]) -> bytes:
    """The seats as a page of the billing API (what the bus carries is validated as one)."""
    return orjson.dumps({"data": seats, "pagination": {"seats_included": len(seats)}})


async def _idle_turn() -> None:
    """Returns once a loop turn is short again: the subscribers woken last have written their
    messages, and the requests that came meanwhile had their turns (at most
    :data:`MAX_IDLE_WAIT_TURNS` turns)."""
    loop = asyncio.get_running_loop()
    for _ in range(MAX_IDLE_WAIT_TURNS):
        started = loop.time()
        await asyncio.sleep(0)
        if loop.time() - started < SHORT_TURN_SECONDS:
            return


def _jittered(interval: float) -> float:
    """``interval`` give or take 10 %."""
    return interval * random.uniform(0.9, 1.1)  # noqa: S311 - spreading load, not a secret
