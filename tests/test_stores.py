"""The rules the stores live by, on a clock of the test's own: the Redis circuit breaker
(closed, open, one probe at a time) and the per-caller budget of APQ registrations."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.http.persisted import MAX_REGISTRANTS, RegistrationBudget
from gateway.stores import CircuitBreaker


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
