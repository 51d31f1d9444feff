"""Where the persisted query store and the page cache keep their bytes: in this process, or in
Redis shared by every replica.

:class:`KeyValueStore` is the one interface: ``get``/``set`` of bytes with a time to live. Both
implementations are bounded: :class:`InProcessStore` by entries and bytes (least recently used
first out) and by each entry's TTL; :class:`RedisStore` by the TTL every key is written with
(and by the Redis server's ``maxmemory`` policy, see the README).

Redis is a cache here, never a dependency: an operation that fails or takes longer than
``timeout`` seconds is counted (:class:`StoreObserver`) and answered as a miss (``get``) or
dropped (``set``), so a request is answered whether Redis is up, down or slow; ``degraded``
says whether the last operation failed (``/readyz`` reports it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

logger = logging.getLogger("gateway.keyvalue")


class StoreObserver(Protocol):
    """Told about evictions, bytes held and failed operations of a store."""

    def evicted(self, store: str, count: int) -> None: ...

    def held(self, store: str, size: int) -> None: ...

    def failed(self, store: str, operation: str) -> None: ...


class KeyValueStore(Protocol):
    name: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float) -> None: ...

    @property
    def degraded(self) -> bool: ...

    async def ping(self) -> bool: ...

    async def aclose(self) -> None: ...


class InProcessStore:
    """Bytes by key in this process: at most ``max_entries`` entries and ``max_bytes`` of values,
    least recently used first out; an entry past its TTL is a miss (and forgotten)."""

    def __init__(
        self, name: str, *, max_entries: int, max_bytes: int, observer: StoreObserver | None = None
    ) -> None:
        self.name = name
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._observer = observer
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    @property
    def degraded(self) -> bool:
        return False

    @property
    def held_bytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires_at, value = entry
        if time.monotonic() >= expires_at:
            self._forget(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0 or len(value) > self.max_bytes:
            return
        if key in self._entries:
            self._forget(key)
        self._entries[key] = (time.monotonic() + ttl, value)
        self._bytes += len(value)
        evicted = 0
        while len(self._entries) > self.max_entries or self._bytes > self.max_bytes:
            _, (_, old) = self._entries.popitem(last=False)
            self._bytes -= len(old)
            evicted += 1
        if self._observer is not None:
            if evicted:
                self._observer.evicted(self.name, evicted)
            self._observer.held(self.name, self._bytes)

    def _forget(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self._bytes -= len(value)
        if self._observer is not None:
            self._observer.held(self.name, self._bytes)

    async def ping(self) -> bool:
        return True

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0


class RedisStore:
    """Bytes by key in Redis (redis-py's asyncio client), under ``prefix``; every operation
    bounded by ``timeout`` seconds, and a failure a miss, never an error."""

    def __init__(
        self,
        name: str,
        client: Any,
        *,
        prefix: str,
        timeout: float,
        max_value_bytes: int,
        observer: StoreObserver | None = None,
    ) -> None:
        self.name = name
        self._redis = client
        self._prefix = prefix
        self._timeout = timeout
        self._max_value_bytes = max_value_bytes
        self._observer = observer
        self._degraded = False

    @property
    def degraded(self) -> bool:
        return self._degraded

    async def get(self, key: str) -> bytes | None:
        value = await self._call("get", self._redis.get(self._prefix + key))
        return value if isinstance(value, bytes) else None

    async def set(self, key: str, value: bytes, ttl: float) -> None:
        if ttl <= 0 or len(value) > self._max_value_bytes:
            return
        milliseconds = max(1, int(ttl * 1000))
        await self._call("set", self._redis.set(self._prefix + key, value, px=milliseconds))

    async def ping(self) -> bool:
        await self._call("ping", self._redis.ping())
        return not self._degraded

    async def _call(self, operation: str, call: Any) -> Any:
        try:
            answer = await asyncio.wait_for(call, self._timeout)
        except Exception as error:  # any failure of a cache is a miss: the request goes on
            if not self._degraded:
                logger.warning(
                    "redis %s failed (%s): serving without it", operation, type(error).__name__
                )
            self._degraded = True
            if self._observer is not None:
                self._observer.failed(self.name, operation)
            return None
        self._degraded = False
        return answer

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken connection: nothing to report
            await self._redis.aclose()
