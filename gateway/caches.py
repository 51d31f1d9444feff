"""Bounded maps, least recently used first out: cachetools' caches, with an entry bound beside
their size bound and a word to their owner when the bounds push an entry out.

Every bounded map the gateway keeps in process is one of these two: the parsed documents
(:mod:`gateway.schema.documents`) and the projection plans (:mod:`gateway.schema.execution`),
the credit type listings per credential (:mod:`gateway.loaders.details`), the in-process APQ and
page stores (:mod:`gateway.stores`), the callers' APQ registration budgets
(:mod:`gateway.http.persisted`), the operation names with a metric label of their own
(:mod:`gateway.http.observability`) and the compressed GraphiQL assets
(:mod:`gateway.http.compression`).

cachetools bounds a cache by one measure, ``maxsize`` in units of ``getsizeof`` (one an entry
by default). The document store and the in-process stores are bounded by entries *and* bytes,
and the stores count what their bounds push out (``gateway_cache_evictions_total``), so these
classes add ``max_entries`` and ``evicted`` to cachetools' own, and nothing else: the order, the
sizes and the expiry are cachetools'. An entry that expires is not an eviction.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

import cachetools

__all__ = ["LRUCache", "TLRUCache"]

K = TypeVar("K")
V = TypeVar("V")


class _Bounded(cachetools.Cache[K, V]):
    """At most ``max_entries`` entries, and ``evicted(key, value)`` for each entry a bound
    pushed out (cachetools evicts through ``popitem``, and only there)."""

    max_entries: float
    evicted: Callable[[K, V], None] | None

    def __setitem__(self, key: K, value: V) -> None:
        super().__setitem__(key, value)
        while len(self) > self.max_entries:
            self.popitem()

    def popitem(self) -> tuple[K, V]:
        key, value = super().popitem()
        if self.evicted is not None:
            self.evicted(key, value)
        return key, value


class LRUCache(_Bounded[K, V], cachetools.LRUCache[K, V]):
    """cachetools' ``LRUCache``: at most ``max_entries`` entries and, with ``getsizeof``, at
    most ``max_size`` of their sizes; the least recently used go first."""

    def __init__(
        self,
        max_entries: float,
        *,
        max_size: float = math.inf,
        getsizeof: Callable[[V], float] | None = None,
        evicted: Callable[[K, V], None] | None = None,
    ) -> None:
        cachetools.LRUCache.__init__(
            self, max_entries if getsizeof is None else max_size, getsizeof
        )
        self.max_entries = max_entries
        self.evicted = evicted


class TLRUCache(_Bounded[K, V], cachetools.TLRUCache[K, V, float]):
    """cachetools' ``TLRUCache``: :class:`LRUCache`'s bounds, and each entry is forgotten at
    the time ``ttu(key, value, now)`` gives it (on ``timer``'s clock); expired entries go
    before any live one is pushed out."""

    def __init__(
        self,
        max_entries: float,
        *,
        ttu: Callable[[K, V, float], float],
        timer: Callable[[], float] = time.monotonic,
        max_size: float = math.inf,
        getsizeof: Callable[[V], float] | None = None,
        evicted: Callable[[K, V], None] | None = None,
    ) -> None:
        cachetools.TLRUCache.__init__(
            self, max_entries if getsizeof is None else max_size, ttu, timer, getsizeof
        )
        self.max_entries = max_entries
        self.evicted = evicted
