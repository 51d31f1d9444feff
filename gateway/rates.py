"""Per-caller rate limits (``GATEWAY_CALLER_RATE``): the generic cell rate algorithm (GCRA).

GCRA keeps one number per caller, its *theoretical arrival time* (TAT): when the caller's
spent quota will have drained again. A request of ``cost`` units moves it ``cost`` emission
intervals (``window / quantity``) later, and is allowed while the TAT stays within one
``window`` of now. So ``quantity`` units may come at once, and then one more per interval;
nothing is ever reset at a window's edge (a fixed window lets twice the quota through around
its boundary), and one number per caller is the whole state, so a Redis key per caller holds
it and one Lua script reads and moves it atomically.

* :class:`InProcessRates`: the TATs in this process, in a bounded map (least recently used
  out: a forgotten caller's TAT was most likely in the past already, so little is lost).
* :class:`RedisRates`: the TATs in Redis (``gateway:v2:rate:<caller hash>``, expiring when
  drained), read and moved by :data:`GCRA_SCRIPT` (``EVALSHA``, ``EVAL`` when Redis does not
  know it yet) on Redis' own clock, so replicas share each caller's quota whatever their
  clocks say. Redis failing, slow, or skipped by the circuit breaker it shares with the
  stores (:class:`~gateway.stores.CircuitBreaker`), or answering anything but the two numbers
  the script returns: the request is decided by the per-process counters instead, and the
  fallback is counted (:class:`RateObserver`). Each replica then allows the quota on its own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from gateway.caches import LRUCache
from gateway.stores import FORMAT_VERSION, CircuitBreaker, RedisSkipped

logger = logging.getLogger("gateway.rates")

KEY_PREFIX = f"gateway:{FORMAT_VERSION}:rate:"
DEFAULT_MAX_CALLERS = 100_000  # callers whose TAT a process keeps (a few MB at most)

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86_400}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Rate:
    """``quantity`` units per ``window`` seconds."""

    quantity: int
    window: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``600/minute``, ``10/second``, ``5000/hour``, ``100000/day``."""
        match = _RATE.fullmatch(text)
        if match is None or int(match.group(1)) < 1:
            raise ValueError(
                f"{text!r} is not a rate: write <count>/<second|minute|hour|day> with a count "
                "of 1 or more, e.g. 600/minute"
            )
        return cls(int(match.group(1)), _UNITS[match.group(2).lower()])

    @property
    def interval(self) -> float:
        """Seconds one unit takes to drain."""
        return self.window / self.quantity

    def __str__(self) -> str:
        unit = next(name for name, seconds in _UNITS.items() if seconds == self.window)
        return f"{self.quantity}/{unit}"


@dataclass(frozen=True)
class Decision:
    """Whether a request may run, and what its answer tells the caller."""

    allowed: bool
    remaining: int  # units the caller may still spend now
    reset: float  # seconds until the caller's whole quota is back
    retry_after: float  # seconds until this request would be allowed (0 when it is)


def decide(rate: Rate, used: float, cost: int, allowed: bool) -> Decision:
    """The decision once the caller's TAT is ``used`` seconds ahead of now (after the request
    when it was allowed, as it stands when it was not)."""
    interval = rate.interval
    remaining = max(0, math.floor((rate.window - used) / interval + 1e-9))
    retry_after = 0.0 if allowed else max(0.0, used + cost * interval - rate.window)
    return Decision(allowed, remaining, max(0.0, used), retry_after)


class RateObserver(Protocol):
    """Told about refused requests (by where their caller's counter was kept: ``redis`` or
    ``process``) and about requests decided in process because Redis could not be used."""

    def rate_limited(self, counters: str) -> None: ...

    def rate_limit_fallback(self, reason: str) -> None: ...


class CallerRates(Protocol):
    rate: Rate

    async def take(self, caller: str, cost: int) -> Decision:
        """Spend ``cost`` units of ``caller``'s quota if they are there."""

    @property
    def degraded(self) -> bool:
        """Whether the counters are not shared as configured (Redis failing)."""

    async def ping(self) -> bool: ...


class InProcessRates:
    """Each caller's TAT in this process (at most ``max_callers`` of them)."""

    def __init__(
        self,
        rate: Rate,
        *,
        max_callers: int = DEFAULT_MAX_CALLERS,
        observer: RateObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self._observer = observer
        self._clock = clock
        self._arrivals: LRUCache[str, float] = LRUCache(max_callers)

    @property
    def degraded(self) -> bool:
        return False

    async def ping(self) -> bool:
        return True

    async def take(self, caller: str, cost: int) -> Decision:
        return self.take_now(caller, cost, counters="process")

    def take_now(self, caller: str, cost: int, *, counters: str) -> Decision:
        now = self._clock()
        tat = max(self._arrivals.get(caller, now), now)
        moved = tat + cost * self.rate.interval
        if moved - now <= self.rate.window + 1e-9:
            self._arrivals[caller] = moved
            return decide(self.rate, moved - now, cost, allowed=True)
        if self._observer is not None:
            self._observer.rate_limited(counters)
        return decide(self.rate, tat - now, cost, allowed=False)


# KEYS[1]: the caller's key; ARGV: the emission interval and the window (milliseconds), the
# cost (units). Returns {1 allowed | 0 refused, the TAT's lead on now in ms as a string}:
# a number Lua returns is truncated to an integer, a string keeps the fraction.
GCRA_SCRIPT = """
local interval = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local moved = tat + cost * interval
if moved - now <= window then
  redis.call('SET', KEYS[1], string.format('%.3f', moved), 'PX', math.ceil(moved - now) + 1)
  return {1, string.format('%.3f', moved - now)}
end
return {0, string.format('%.3f', tat - now)}
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()  # noqa: S324 - Redis names scripts so


class InvalidAnswer(Exception):
    """Redis answered the script with something else than its two numbers."""


class RedisRates:
    """Each caller's TAT in Redis, shared by every replica; :class:`InProcessRates` whenever
    Redis cannot be used (see the module's docstring)."""

    def __init__(
        self,
        rate: Rate,
        client: Any,
        *,
        timeout: float,
        breaker: CircuitBreaker,
        fallback: InProcessRates,
        observer: RateObserver | None = None,
    ) -> None:
        self.rate = rate
        self._redis = client
        self._timeout = timeout
        self._breaker = breaker
        self._fallback = fallback
        self._observer = observer
        self._failing = False  # the last call asked of Redis failed

    @property
    def degraded(self) -> bool:
        return self._failing or self._breaker.is_open

    async def ping(self) -> bool:
        try:
            await self._breaker.ask(self._redis.ping, self._timeout)
        except RedisSkipped:
            pass
        except Exception as error:  # unreachable, slow: the counters are per process
            self._failed("ping", error)
        else:
            self._failing = False
        return not self.degraded

    async def take(self, caller: str, cost: int) -> Decision:
        arguments = (
            f"{self.rate.interval * 1000:.6f}",
            str(self.rate.window * 1000),
            str(cost),
        )
        try:
            answer = await self._breaker.ask(
                lambda: self._evaluate(caller, arguments), self._timeout
            )
            allowed, used = _checked(answer, self.rate)
        except RedisSkipped:
            return self._fall_back(caller, cost, "skipped")
        except Exception as error:  # any failure: this request is decided in process
            self._failed("take", error)
            return self._fall_back(caller, cost, "failed")
        self._failing = False
        decision = decide(self.rate, used, cost, allowed)
        if not allowed and self._observer is not None:
            self._observer.rate_limited("redis")
        return decision

    async def _evaluate(self, caller: str, arguments: tuple[str, ...]) -> Any:
        from redis.exceptions import NoScriptError

        key = KEY_PREFIX + caller
        try:
            return await self._redis.evalsha(GCRA_SHA, 1, key, *arguments)
        except NoScriptError:  # a fresh (or flushed) Redis: EVAL also caches the script
            return await self._redis.eval(GCRA_SCRIPT, 1, key, *arguments)

    def _failed(self, operation: str, error: Exception) -> None:
        """Redis failed or answered something else than the script's two numbers (the
        breaker has counted the call already, :meth:`CircuitBreaker.ask`)."""
        if not self._failing:
            logger.warning(
                "redis rate %s failed (%s): counting per process", operation, type(error).__name__
            )
        self._failing = True

    def _fall_back(self, caller: str, cost: int, reason: str) -> Decision:
        if self._observer is not None:
            self._observer.rate_limit_fallback(reason)
        return self._fallback.take_now(caller, cost, counters="process")


def _checked(answer: object, rate: Rate) -> tuple[bool, float]:
    """The script's two numbers, or :class:`InvalidAnswer`: nothing else Redis could return
    (another script under the name, a key of another shape) decides a request."""
    if not isinstance(answer, list) or len(answer) != 2:
        raise InvalidAnswer("not a pair")
    allowed, used = answer
    if allowed not in (0, 1) or isinstance(allowed, bool):
        raise InvalidAnswer("not an allowed flag")
    if not isinstance(used, bytes | str):
        raise InvalidAnswer("not a lead")
    try:
        lead = float(used)
    except ValueError:
        raise InvalidAnswer("not a lead") from None
    if not math.isfinite(lead) or not 0 <= lead <= rate.window * 1000 + 1:
        raise InvalidAnswer("a lead out of range")
    return allowed == 1, lead / 1000


def caller_key(kind: str, value: str) -> str:
    """A caller's counter name: a hash, so that no subject, token or address is stored."""
    return hashlib.sha256(f"{kind}\0{value}".encode()).hexdigest()


__all__ = [
    "GCRA_SCRIPT",
    "KEY_PREFIX",
    "CallerRates",
    "Decision",
    "InProcessRates",
    "Rate",
    "RateObserver",
    "RedisRates",
    "caller_key",
    "decide",
]
