"""A request's objects are freed as it ends, by reference counting: none of them is left in a
reference cycle for the cycle collector.

What a request leaves in cycles waits for the next collection, and collections are paid by
whichever requests run then: before the cycles were broken (the request state and its
context, a seat and its commits), shape Ci left about 440 objects per request, and the
collector took about 8 % of its CPU (BENCHMARKS.md, round six). These tests fail as soon as a
change brings a cycle back on one of the request's paths: answers, Relay ids, ledgers, joined
details, refetching by id, batches, refusals and errors.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import gateway as gateway_package
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, OTHER_CUSTOMER_ID
from tests.support import Gateway

GATEWAY_DIR = str(Path(gateway_package.__file__).parent)
IDS = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
SEATS = "seatBalances(customerId: $customerId, contractId: $contractId, first: 20)"
VARIABLES = "$customerId: ID!, $contractId: ID!"

REQUESTS: dict[str, tuple[str, dict[str, Any], bool]] = {
    # name: (document, variables, whether it answers without errors)
    "balances": (
        f"query({VARIABLES}) {{ {SEATS} {{ edges {{ cursor node {{ seatId "
        "balances { creditTypeId balance } } } pageInfo { endCursor } } }",
        IDS,
        True,
    ),
    "commits and credits with ids": (
        f"query({VARIABLES}) {{ {SEATS} {{ nodes {{ id seatId "
        "commits { id commitId balance } credits { id creditId balance } } } }",
        IDS,
        True,
    ),
    "ledger entries": (
        f"query({VARIABLES}) {{ {SEATS} {{ nodes {{ commits {{ ledgerEntries "
        "{ type amount timestamp } } credits { ledgerEntries { type amount } } } } }",
        IDS,
        True,
    ),
    "joined details": (
        f"query({VARIABLES}) {{ {SEATS} {{ nodes {{ commits {{ name product {{ name }} }} "
        "balances { creditType { name } } } } }",
        IDS,
        True,
    ),
    "a refusal (another customer's seats)": (
        f"query({VARIABLES}) {{ {SEATS} {{ nodes {{ seatId }} }} }}",
        {**IDS, "customerId": OTHER_CUSTOMER_ID},
        False,
    ),
    "bad input": (
        f"query({VARIABLES}) {{ {SEATS} {{ nodes {{ seatId }} }} }}",
        {**IDS, "customerId": "not-a-uuid"},
        False,
    ),
    "a document that does not validate": ("{ seatBalances { nope } }", {}, False),
}


def _ours(obj: object) -> bool:
    """Whether ``obj`` belongs to the gateway: an instance of one of its classes, or a frame,
    coroutine or task running its code."""
    if type(obj).__module__.startswith("gateway"):
        return True
    code = None
    if inspect.isframe(obj):
        code = obj.f_code
    elif inspect.iscoroutine(obj):
        code = obj.cr_code
    elif isinstance(obj, asyncio.Task):
        code = getattr(obj.get_coro(), "cr_code", None)
    return code is not None and code.co_filename.startswith(GATEWAY_DIR)


class Finished(logging.Handler):
    """Knows when the server is done with a request: its access line is the last thing the
    gateway does for it (after the answer is sent, after the request's state is closed)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines = 0
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines += 1
            self.changed.notify_all()

    def wait_for(self, lines: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.lines >= lines, timeout=10)


class Requests:
    """Sends requests and waits for the server to finish each, then finds what they left in
    reference cycles."""

    def __init__(self, gateway: Gateway, finished: Finished) -> None:
        self.gateway = gateway
        self.finished = finished

    def post(self, document: str, variables: dict[str, Any]) -> Any:
        expected = self.finished.lines + 1
        answer = self.gateway.post(document, variables).json()
        self.finished.wait_for(expected)
        return answer

    def batch(self, operations: list[dict[str, Any]]) -> Any:
        expected = self.finished.lines + 1
        answer = self.gateway.http.post(
            f"{self.gateway.url}/graphql",
            json=operations,
            headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
        ).json()
        self.finished.wait_for(expected)
        return answer

    @staticmethod
    def start_counting() -> None:
        """From here on, what the collector finds is kept in ``gc.garbage`` to be looked at
        (and what it found before is freed: kept, it would be found again)."""
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)

    @staticmethod
    def left_in_cycles() -> Counter[str]:
        gc.collect()
        return Counter(type(obj).__qualname__ for obj in gc.garbage if _ours(obj))


@pytest.fixture
def requests(gateway: Gateway) -> Iterator[Requests]:
    """Requests whose cyclic garbage can be kept (``gc.DEBUG_SAVEALL``) to be looked at."""
    finished = Finished()
    access = logging.getLogger("gateway.access")
    level = access.level
    access.setLevel(logging.INFO)
    access.addHandler(finished)
    try:
        yield Requests(gateway, finished)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.collect()
        access.removeHandler(finished)
        access.setLevel(level)


@pytest.mark.parametrize("name", list(REQUESTS))
def test_a_request_leaves_nothing_to_the_cycle_collector(requests: Requests, name: str) -> None:
    document, variables, succeeds = REQUESTS[name]
    # The document validated and its plans made once, outside the count: graphql-core's
    # validation rules are cycles of their own (each visitor keeps its bound methods), paid
    # once per document text, not per request.
    requests.post(document, variables)
    requests.start_counting()
    answer = requests.post(document, variables)
    if succeeds:
        assert answer.get("data") and not answer.get("errors"), answer
    else:
        assert answer["errors"], answer
    assert not requests.left_in_cycles(), "left in reference cycles"


def test_refetching_by_id_and_batches_leave_nothing_to_the_cycle_collector(
    requests: Requests,
) -> None:
    document = (
        f"query({VARIABLES}) {{ {SEATS} {{ nodes {{ id commits {{ id }} credits {{ id }} }} }} }}"
    )
    seats = requests.post(document, IDS)["data"]["seatBalances"]["nodes"]
    commit = next(seat["commits"][0]["id"] for seat in seats if seat["commits"])
    credit = next(seat["credits"][0]["id"] for seat in seats if seat["credits"])
    ids = [seats[0]["id"], commit, credit]
    nodes = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Commit { balance } } }"
    batch = [{"query": document, "variables": IDS}, {"query": nodes, "variables": {"ids": ids}}]

    def both() -> list[Any]:
        return [requests.post(nodes, {"ids": ids}), *requests.batch(batch)]

    both()
    requests.start_counting()
    answers = both()
    assert [answer.get("errors") for answer in answers] == [None, None, None]
    assert [len(answers[0]["data"]["nodes"]), len(answers[2]["data"]["nodes"])] == [3, 3]
    assert not requests.left_in_cycles(), "left in reference cycles"
