"""Where the persisted query store and the page cache keep their bytes: in this process, or in
Redis shared by every replica.

:class:`KeyValueStore` is the one interface: ``get``/``set``/``delete`` of bytes with a time to
live. Both implementations are bounded: :class:`InProcessStore` by entries and bytes (least
recently used first out) and by each entry's TTL; :class:`RedisStore` by the TTL every key is
written with (and by the Redis server's ``maxmemory`` policy, see the README).

Redis is a cache here, never a dependency: an operation that fails or takes longer than
``timeout`` seconds is counted (:class:`StoreObserver`) and answered as a miss (``get``) or
dropped (``set``), so a request is answered whether Redis is up, down, slow or full. A
:class:`CircuitBreaker` (one per Redis, shared by its stores) keeps a Redis that does not answer
from costing every operation its timeout: after ``threshold`` operations in a row went
unanswered (timed out, or no connection) Redis is skipped for ``cooldown`` seconds, then one
operation probes it while the others still skip it; an answer closes the breaker. A Redis that
answers with an error (``OOM`` when it is full and may not evict) is not skipped, since reads
still work, but its failed writes make it ``degraded`` (``/readyz`` reports it).

What is read back is bytes only: the callers (the page cache, the APQ store) check each entry
before using it and drop a bad one with :meth:`KeyValueStore.delete`. Every key carries
:data:`FORMAT_VERSION`, so that two versions of the gateway sharing a Redis during a rolling
deploy never read each other's entries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from gateway.caches import TLRUCache

_T = TypeVar("_T")

logger = logging.getLogger("gateway.stores")

# The format of what is stored under a key; part of every Redis key (gateway:v2:page:<hash>).
# Change it whenever the bytes kept under a key change meaning.
FORMAT_VERSION = "v2"


class StoreObserver(Protocol):
    """Told about evictions, bytes held, failed and skipped operations of a store, entries
    dropped as unreadable, and the state of a Redis circuit breaker."""

    def evicted(self, store: str, count: int) -> None: ...

    def held(self, store: str, size: int) -> None: ...

    def failed(self, store: str, operation: str) -> None: ...

    def skipped(self, store: str, operation: str) -> None: ...

    def rejected(self, store: str) -> None: ...

    def circuit(self, name: str, is_open: bool) -> None: ...


class KeyValueStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    async def delete(self, key: str) -> None: ...

    def rejected(self) -> None:
        """An entry read back was unreadable (and has been deleted): count it."""

    @property
    def degraded(self) -> bool: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


class InProcessStore:
    """Bytes by key in this process: at most ``max_entries`` entries and ``max_bytes`` of values,
    least recently used first out (each one pushed out is counted); an entry past its TTL is a
    miss, and is dropped before a live one is pushed out."""

    def __init__(
        self,
        name: str,
        *,
        max_entries: int,
        max_bytes: int,
        observer: StoreObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._observer = observer
        # Each entry is its expiry (on ``clock``) and its bytes.
        self._entries: TLRUCache[str, tuple[float, bytes]] = TLRUCache(
            max_entries,
            ttu=_expiry,
            timer=clock,
            max_size=max_bytes,
            getsizeof=_size,
            evicted=self._evicted,
        )

    @property
    def degraded(self) -> bool:
        return False

    @property
    def held_bytes(self) -> int:
        return int(self._entries.currsize)

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            if self._entries.expire():  # it may have just expired: say what is held now
                self._held()
            return None
        return entry[1]

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0 or len(value) > self.max_bytes:
            return
        self._entries[key] = (self._entries.timer() + ttl, value)
        self._held()

    async def delete(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self._held()

    def rejected(self) -> None:
        if self._observer is not None:
            self._observer.rejected(self.name)

    def _evicted(self, key: str, entry: tuple[float, bytes]) -> None:
        if self._observer is not None:
            self._observer.evicted(self.name, 1)

    def _held(self) -> None:
        if self._observer is not None:
            self._observer.held(self.name, self.held_bytes)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._entries.clear()


def _expiry(key: str, entry: tuple[float, bytes], now: float) -> float:
    return entry[0]


def _size(entry: tuple[float, bytes]) -> int:
    return len(entry[1])


class RedisSkipped(Exception):
    """The circuit breaker is open: Redis was not asked."""


class CircuitBreaker:
    """Whether to ask Redis at all. Closed: every operation goes. After ``threshold``
    unanswered operations in a row: open, every operation is skipped for ``cooldown`` seconds;
    then one operation at a time probes (half-open) while the others still skip, and the first
    answer closes the breaker (another unanswered probe opens it for ``cooldown`` again)."""

    def __init__(
        self,
        name: str,
        *,
        threshold: int,
        cooldown: float,
        observer: StoreObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self._observer = observer
        self._clock = clock
        self._unanswered = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def admit(self) -> bool:
        """May this operation ask Redis? (If so, it must report :meth:`answered` or
        :meth:`unanswered`.)"""
        if self._open_until is None:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True
        return True

    async def ask(self, call: Callable[[], Awaitable[_T]], seconds: float) -> _T:
        """``call`` (a Redis operation) through the breaker, within ``seconds``: raises
        :class:`RedisSkipped` when the breaker is open, and the call's own failure once the
        breaker has counted it (an error reply is an answer: Redis is there and quick; a
        timeout or a lost connection is not); a cancellation tells it nothing. The one way
        every user of Redis (stores, caller rates, upstream budget) asks it."""
        if not self.admit():
            raise RedisSkipped(self.name)
        try:
            answer = await asyncio.wait_for(call(), seconds)
        except Exception as error:
            if _answered(error):
                self.answered()
            else:
                self.unanswered()
            raise
        except BaseException:  # cancelled with its request: it tells nothing about Redis
            self.abandoned()
            raise
        self.answered()
        return answer

    def abandoned(self) -> None:
        """An admitted operation was cancelled before Redis answered or timed out."""
        self._probing = False

    def answered(self) -> None:
        self._unanswered = 0
        self._probing = False
        if self._open_until is not None:
            self._open_until = None
            logger.warning("redis %s answers again: using it", self.name)
            if self._observer is not None:
                self._observer.circuit(self.name, False)

    def unanswered(self) -> None:
        self._unanswered += 1
        was_probing, self._probing = self._probing, False
        if was_probing or (self._open_until is None and self._unanswered >= self.threshold):
            if self._open_until is None:
                logger.warning(
                    "redis %s: %d operations unanswered, skipping it for %.1f s",
                    self.name,
                    self._unanswered,
                    self.cooldown,
                )
                if self._observer is not None:
                    self._observer.circuit(self.name, True)
            self._open_until = self._clock() + self.cooldown


class _Skipped(Exception):
    """The breaker is open: the operation did not ask Redis."""


class RedisStore:
    """Bytes by key in Redis (redis-py's asyncio client), under ``prefix``; every operation
    bounded by ``timeout`` seconds and by the ``breaker``, and a failure a miss, never an
    error."""

    def __init__(
        self,
        name: str,
        client: Any,
        *,
        prefix: str,
        timeout: float,
        max_value_bytes: int,
        breaker: CircuitBreaker,
        observer: StoreObserver | None = None,
    ) -> None:
        self.name = name
        self._redis = client
        self._prefix = prefix
        self._timeout = timeout
        self._max_value_bytes = max_value_bytes
        self._breaker = breaker
        self._observer = observer
        self._failing = False  # the last operation asked failed
        self._writes_failing = False  # the last write asked failed (e.g. OOM: Redis is full)

    @property
    def degraded(self) -> bool:
        return self._failing or self._writes_failing or self._breaker.is_open

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", lambda: self._redis.get(self._prefix + key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0 or len(value) > self._max_value_bytes:
            return
        milliseconds = max(1, int(ttl * 1000))
        await self._call("set", lambda: self._redis.set(self._prefix + key, value, px=milliseconds))

    async def delete(self, key: str) -> None:
        await self._call("delete", lambda: self._redis.delete(self._prefix + key))

    def rejected(self) -> None:
        if self._observer is not None:
            self._observer.rejected(self.name)

    async def ping(self) -> bool:
        """Whether Redis answers and takes writes: a PING, then a small write with a short TTL
        (a full Redis that may not evict answers PING but refuses writes)."""
        await self._call("ping", self._redis.ping)
        await self._call("set", lambda: self._redis.set(self._prefix + "readyz", b"1", px=10_000))
        return not self.degraded

    async def _call(self, operation: str, call: Callable[[], Awaitable[Any]]) -> Any:
        try:
            answer = await self._breaker.ask(call, self._timeout)
        except RedisSkipped:
            if self._observer is not None:
                self._observer.skipped(self.name, operation)
            return None
        except Exception as error:  # any failure of a cache is a miss: the request goes on
            self._failed(operation, error)
            return None
        self._failing = False
        if operation == "set":
            self._writes_failing = False
        return answer

    def _failed(self, operation: str, error: Exception) -> None:
        if not self._failing:
            logger.warning(
                "redis %s failed (%s): serving without it", operation, type(error).__name__
            )
        self._failing = True
        if operation == "set" and _answered(error):
            # Redis is there and quick (it refused, e.g. OOM when full): reads may still work.
            self._writes_failing = True
        if self._observer is not None:
            self._observer.failed(self.name, operation)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection: nothing to report
            await self._redis.aclose()


def _answered(error: Exception) -> bool:
    """Whether Redis answered (with an error reply) rather than timing out or not connecting."""
    from redis.exceptions import ResponseError

    return isinstance(error, ResponseError)
