"""The rules the stores live by, on a clock of the test's own: the Redis circuit breaker
(closed, open, one probe at a time), the per-caller budget of APQ registrations and the bounds
of the in-process store."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.http.persisted import MAX_REGISTRANTS, RegistrationBudget
from gateway.stores import CircuitBreaker, InProcessStore


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_after_unanswered_operations_in_a_row_only() -> None:
    """Two unanswered operations, an answer, two more: still closed; a third in a row opens
    it, and every operation is then skipped until the cooldown has passed."""
    clock = Clock()
    breaker = CircuitBreaker("redis", threshold=3, cooldown=5.0, clock=clock)
    for _ in range(2):
        assert breaker.admit()
        breaker.unanswered()
    assert breaker.admit()
    breaker.answered()
    for _ in range(2):
        assert breaker.admit()
        breaker.unanswered()
    assert not breaker.is_open
    assert breaker.admit()
    breaker.unanswered()
    assert breaker.is_open
    clock.now += 4.9
    assert not breaker.admit()


def test_after_the_cooldown_one_probe_goes_and_its_outcome_decides() -> None:
    """Past the cooldown one operation probes while the others are still skipped; an
    unanswered probe opens the breaker for another cooldown, an answered one closes it."""
    clock = Clock()
    breaker = CircuitBreaker("redis", threshold=1, cooldown=5.0, clock=clock)
    breaker.admit()
    breaker.unanswered()
    clock.now += 5.0
    assert breaker.admit()  # the probe
    assert not breaker.admit()  # the others meanwhile
    breaker.unanswered()
    assert breaker.is_open and not breaker.admit()
    clock.now += 5.0
    assert breaker.admit()
    breaker.answered()
    assert not breaker.is_open
    assert all(breaker.admit() for _ in range(10))


def test_a_probe_cancelled_with_its_request_lets_the_next_operation_probe() -> None:
    """A probe whose request was cancelled tells nothing about Redis: the next operation
    probes instead of the breaker staying open for good."""
    clock = Clock()
    breaker = CircuitBreaker("redis", threshold=1, cooldown=1.0, clock=clock)
    breaker.admit()
    breaker.unanswered()
    clock.now += 1.0
    assert breaker.admit()
    breaker.abandoned()
    assert breaker.admit()


def test_registrations_are_counted_per_caller_and_per_minute() -> None:
    """Each caller has its own budget; a new minute gives a caller a new one."""
    clock = Clock()
    budget = RegistrationBudget(2, clock=clock)
    assert [budget.spend("sub:ada") for _ in range(3)] == [True, True, False]
    assert budget.spend("sub:bob")
    clock.now += 60
    assert budget.spend("sub:ada")


def test_the_registration_budget_remembers_a_bounded_number_of_callers() -> None:
    """Callers past MAX_REGISTRANTS push the least recently seen out; the map never grows
    beyond it."""
    budget = RegistrationBudget(1, clock=Clock())
    for index in range(MAX_REGISTRANTS + 100):
        budget.spend(f"addr:{index}")
    assert len(budget) == MAX_REGISTRANTS


@dataclass
class Observer:
    """Records what an in-process store reports."""

    evictions: int = 0
    held_bytes: int = 0

    def evicted(self, store: str, count: int) -> None:
        self.evictions += count

    def held(self, store: str, size: int) -> None:
        self.held_bytes = size


async def test_the_in_process_store_is_bounded_in_entries_and_bytes_and_counts_evictions() -> None:
    """The least recently used entries go once either bound is reached, each counted as an
    eviction; a value larger than the byte bound is never kept; the bytes held are reported."""
    observer = Observer()
    store = InProcessStore("memory", max_entries=3, max_bytes=10, observer=observer)
    for key in "abc":
        await store.set(key, b"12", ttl=60)
    assert await store.get("a") == b"12"  # a is now the most recently used
    await store.set("d", b"12", ttl=60)
    assert await store.get("b") is None and len(store) == 3
    assert observer.evictions == 1 and observer.held_bytes == 6
    await store.set("e", b"12345678", ttl=60)  # 14 bytes: the two least recently used go
    assert [await store.get(key) for key in "cade"] == [None, None, b"12", b"12345678"]
    assert observer.evictions == 3 and observer.held_bytes == store.held_bytes == 10
    await store.set("f", b"12345678901", ttl=60)
    assert await store.get("f") is None and observer.evictions == 3


async def test_an_expired_entry_is_a_miss_and_goes_before_live_ones() -> None:
    """Past its TTL an entry is a miss and its bytes are no longer held; making room drops
    expired entries first, without counting them as evictions."""
    clock, observer = Clock(), Observer()
    store = InProcessStore("memory", max_entries=2, max_bytes=100, observer=observer, clock=clock)
    await store.set("short", b"1", ttl=1)
    await store.set("long", b"22", ttl=10)
    clock.now += 1
    assert await store.get("short") is None and observer.held_bytes == 2
    await store.set("short", b"1", ttl=1)
    clock.now += 1
    await store.set("new", b"333", ttl=10)
    assert await store.get("long") == b"22" and await store.get("new") == b"333"
    assert observer.evictions == 0 and len(store) == 2
    await store.set("never", b"4", ttl=0)
    assert await store.get("never") is None
