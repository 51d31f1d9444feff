"""One upstream budget: the calls every replica together makes to the billing API, per credential.

The billing API limits each account, not each replica: N replicas calling as if alone can
together exhaust it for every customer's dashboard. Every upstream attempt (retries, detail
calls and credit type listings included) first takes a turn here.

The algorithm is GCRA (the generic cell rate algorithm) with a reservation and no burst: a
credential's budget is its *theoretical arrival time* (TAT), the earliest instant its next call
may go; a call reserves ``max(TAT, now)``, moves the TAT one interval (``period / calls``) on,
and learns how long to wait before it goes. So calls go at least one interval apart: at most
``calls`` in any window of ``period``, whatever the number of replicas. A call whose turn is
further away than it may wait (``GATEWAY_UPSTREAM_RATE_WAIT``, within its deadline) reserves
nothing and fails with :class:`~gateway.upstream.errors.UpstreamRateLimited`, without calling.

A 429 with ``Retry-After`` from the billing API *holds* the credential: no turn starts before
the hold's end, on any replica, instead of each replica finding the limit by itself.

With Redis, both live there (``gateway:v2:budget:<credential hash>`` and
``gateway:v2:hold:<credential hash>``, each with a TTL), in one atomic Lua script on Redis's own
clock, so replicas' clocks do not matter. Redis failing, slow or skipped by its circuit breaker
(:class:`gateway.stores.CircuitBreaker`): the turn is decided in this process (a bounded map per
credential), counted. What Redis answers is trusted only as an integer in range; anything else
is a failure. Keys are the credential's SHA-256, never the token.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.caches import LRUCache
from gateway.rates import Rate
from gateway.stores import FORMAT_VERSION, CircuitBreaker, RedisSkipped, StoreObserver
from gateway.upstream.errors import UpstreamRateLimited

logger = logging.getLogger("gateway.upstream")

# A hold longer than this is not believed (the SDKs ignore a longer Retry-After too).
MAX_HOLD = 60.0
_STORE = "redis-budget"


class BudgetObserver(Protocol):
    """Told about each turn's wait, each call refused, each hold begun, and each turn decided
    in this process because Redis failed or was skipped."""

    def waited(self, seconds: float) -> None: ...

    def refused(self) -> None: ...

    def held(self) -> None: ...

    def local(self) -> None: ...


class BudgetMetrics:
    """The budget's Prometheus metrics, in the gateway's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._waits = Histogram(
            "gateway_upstream_rate_wait_seconds",
            "Seconds an upstream attempt waited for its turn in the upstream budget.",
            buckets=(0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=registry,
        )
        self._refused = Counter(
            "gateway_upstream_rate_limited",
            "Upstream calls refused by the upstream budget (no turn within the wait), never sent.",
            registry=registry,
        )
        self._holds = Counter(
            "gateway_upstream_holds",
            "Holds begun: a 429 with Retry-After held the credential's calls (on every replica).",
            registry=registry,
        )
        self._local = Counter(
            "gateway_upstream_budget_local",
            "Turns decided in this process because Redis failed or was skipped.",
            registry=registry,
        )

    def waited(self, seconds: float) -> None:
        self._waits.observe(seconds)

    def refused(self) -> None:
        self._refused.inc()

    def held(self) -> None:
        self._holds.inc()

    def local(self) -> None:
        self._local.inc()


class LocalBudget:
    """GCRA per credential in this process: a bounded map of TATs and one of holds (on the
    monotonic clock). The least recently used credential is forgotten first, which can only
    let it call sooner than its budget once."""

    def __init__(
        self, interval: float, *, max_credentials: int = 10_000, clock: Callable[[], float]
    ) -> None:
        self._interval = interval
        self._clock = clock
        self._arrivals: LRUCache[str, float] = LRUCache(max_credentials)
        self._holds: LRUCache[str, float] = LRUCache(max_credentials)

    def reserve(self, key: str, longest: float) -> float | None:
        """Seconds to wait for this credential's turn (reserved), or None: not within
        ``longest`` (nothing reserved)."""
        now = self._clock()
        go = max(self._arrivals.get(key, now), now, self._holds.get(key, now))
        wait = go - now
        if wait > longest:
            return None
        self._arrivals[key] = go + self._interval
        return wait

    def hold(self, key: str, seconds: float) -> None:
        until = self._clock() + seconds
        if until > self._holds.get(key, 0.0):
            self._holds[key] = until


# Redis's clock in microseconds (a double holds them exactly for centuries).
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# KEYS: the TAT, the hold. ARGV: the interval, the longest wait (microseconds).
# Returns the wait in microseconds (a turn reserved), or -1 (none within the longest wait).
_RESERVE = (
    _NOW
    + """
local interval = tonumber(ARGV[1])
local longest = tonumber(ARGV[2])
local go = math.max(tonumber(redis.call('GET', KEYS[1])) or now, now,
                    tonumber(redis.call('GET', KEYS[2])) or now)
local wait = go - now
if wait > longest then
  return -1
end
redis.call('SET', KEYS[1], string.format('%d', go + interval), 'PX',
           math.ceil((wait + interval) / 1000) + 1000)
return math.floor(wait)
"""
)

# KEYS: the hold. ARGV: its length (microseconds). Returns 0.
_HOLD = (
    _NOW
    + """
local length = tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1])) or 0
if now + length > current then
  redis.call('SET', KEYS[1], string.format('%d', now + length), 'PX',
             math.ceil(length / 1000) + 1)
end
return 0
"""
)


class UpstreamBudget:
    """Turns for upstream calls, per credential: in Redis when a client is given (shared by the
    replicas; the client's owner closes it), else (and whenever Redis fails) in this process."""

    def __init__(
        self,
        rate: Rate,
        *,
        wait: float,
        observer: BudgetObserver,
        redis: Any = None,
        timeout: float = 0.25,
        breaker: CircuitBreaker | None = None,
        store_observer: StoreObserver | None = None,
        max_credentials: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self.wait = wait
        self._observer = observer
        self._local = LocalBudget(rate.interval, max_credentials=max_credentials, clock=clock)
        self._timeout = timeout
        self._breaker = breaker or CircuitBreaker(_STORE, threshold=3, cooldown=5.0)
        self._store_observer = store_observer
        self._clock = clock
        self._sleep = sleep
        self._interval_us = max(1, round(rate.interval * 1_000_000))
        self._reserve_script = redis.register_script(_RESERVE) if redis is not None else None
        self._hold_script = redis.register_script(_HOLD) if redis is not None else None

    async def turn(self, token: str, deadline: float) -> None:
        """Wait for the credential's turn (at most the budget's wait, and never past the call's
        ``deadline`` on the monotonic clock), or raise :class:`UpstreamRateLimited`."""
        key = _credential(token)
        longest = max(0.0, min(self.wait, deadline - self._clock()))
        wait = await self._reserve(key, longest)
        if wait is None:
            self._observer.refused()
            raise UpstreamRateLimited(
                "The gateway's budget of calls to the billing API for this account is spent; "
                "try again shortly."
            )
        self._observer.waited(wait)
        if wait > 0:
            await self._sleep(wait)

    async def hold(self, token: str, seconds: float) -> None:
        """The billing API answered 429 asking for ``seconds``: hold the credential's calls
        until then, here and (with Redis) on every replica."""
        if not 0 < seconds <= MAX_HOLD or math.isnan(seconds):
            return
        key = _credential(token)
        self._observer.held()
        self._local.hold(key, seconds)
        if self._hold_script is not None:
            await self._ask(
                "hold",
                self._hold_script,
                [f"gateway:{FORMAT_VERSION}:hold:{key}"],
                [max(1, round(seconds * 1_000_000))],
            )

    async def _reserve(self, key: str, longest: float) -> float | None:
        if self._reserve_script is not None:
            longest_us = int(longest * 1_000_000)
            answer = await self._ask(
                "reserve",
                self._reserve_script,
                [
                    f"gateway:{FORMAT_VERSION}:budget:{key}",
                    f"gateway:{FORMAT_VERSION}:hold:{key}",
                ],
                [self._interval_us, longest_us],
            )
            if answer is not _FAILED:
                if answer == -1:
                    return None
                if type(answer) is int and 0 <= answer <= longest_us:
                    return answer / 1_000_000
                self._failed("reserve", None)  # an answer out of range: not Redis's to give
            self._observer.local()
        return self._local.reserve(key, longest)

    async def _ask(self, operation: str, script: Any, keys: list[str], args: list[int]) -> Any:
        """The script's answer, or ``_FAILED`` (Redis skipped, failing or too slow)."""
        try:
            return await self._breaker.ask(lambda: script(keys=keys, args=args), self._timeout)
        except RedisSkipped:
            if self._store_observer is not None:
                self._store_observer.skipped(_STORE, operation)
            return _FAILED
        except Exception as error:  # Redis is never a dependency: decide in process
            self._failed(operation, error)
            return _FAILED

    def _failed(self, operation: str, error: Exception | None) -> None:
        """Redis failed, or (``error`` None) answered out of range; the breaker has counted the
        call already (:meth:`CircuitBreaker.ask`)."""
        logger.warning(
            "redis budget %s failed (%s): deciding in process",
            operation,
            type(error).__name__ if error is not None else "an answer out of range",
        )
        if self._store_observer is not None:
            self._store_observer.failed(_STORE, operation)


_FAILED: Any = object()


def _credential(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
