"""What the heaviest requests the limits admit cost the gateway: CPU, answer bytes, memory, and
how long `/healthz` waits meanwhile. The probe of issue 23 ("Hostile world, round three"),
kept as a benchmark so that a change to the work bound shows its figure.

    .venv/bin/python bench/amplification.py               # every attack, against `gateway serve`
    .venv/bin/python bench/amplification.py --attacks entities-details

Each attack is one request to a fresh `gateway serve` on the embedded stand-in (default
settings, one worker), while a second thread asks `/healthz` every 20 ms. Printed per attack:
the HTTP status and the first error code, the answer's bytes, the server's CPU seconds for the
request (from /proc), its RSS before and after, and the slowest `/healthz`.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from load import start_gateway  # bench/load.py, beside this file

ROOT = Path(__file__).resolve().parent.parent
CUSTOMER = "66826d59-42c6-47ad-a3dc-07b0b602e610"
CONTRACT = "4ac528e4-73f3-42ba-9772-e5303e69e9fe"
SEAT = "alice@example.com"  # replaced by a real seat id at start

DETAILS = (
    "id commitId balance startDate endDate name description type priority allocation "
    "subscriptionId product { id name } accessSchedule { id amount startingAt endingBefore } "
    "customFields { key value } ledgerEntries { type rawType amount timestamp }"
)
CREDIT_DETAILS = DETAILS.replace("commitId", "creditId").replace(" type priority", " priority")
SEAT_FIELDS = (
    "id seatId customerId contractId balances { creditTypeId balance startingBalance "
    "creditType { id name isCurrency } } "
    f"commits {{ {DETAILS} }} credits {{ {CREDIT_DETAILS} }}"
)


def entities(count: int) -> dict[str, Any]:
    representation = {
        "__typename": "Seat",
        "customerId": CUSTOMER,
        "contractId": CONTRACT,
        "seatId": SEAT,
    }
    return {
        "query": "query($r: [_Any!]!) { _entities(representations: $r) { ... on Seat { "
        + SEAT_FIELDS
        + " } } }",
        "variables": {"r": [representation] * count},
    }


def aliased_pages(aliases: int, fields: str = SEAT_FIELDS) -> dict[str, Any]:
    pages = " ".join(
        f'p{i}: seatBalances(customerId: "{CUSTOMER}", contractId: "{CONTRACT}", first: 100) '
        f"{{ edges {{ cursor node {{ {fields} }} }} pageInfo {{ hasNextPage endCursor }} }}"
        for i in range(aliases)
    )
    return {"query": "{ " + pages + " }"}


def nodes(count: int) -> dict[str, Any]:
    return {
        "query": "query($ids: [ID!]!) { nodes(ids: $ids) { ... on Seat { " + SEAT_FIELDS + " } } }",
        "variables": {"ids": [SEAT_NODE_ID] * count},
    }


def fragments(aliases: int) -> dict[str, Any]:
    """The aliased pages through nested fragments: the same work, written smaller."""
    pages = " ".join(
        f'p{i}: seatBalances(customerId: "{CUSTOMER}", contractId: "{CONTRACT}", first: 100) '
        "{ edges { node { ...S } } }"
        for i in range(aliases)
    )
    return {
        "query": "{ "
        + pages
        + " } fragment S on Seat { ...A ...B } fragment A on Seat { "
        + SEAT_FIELDS
        + " } fragment B on Seat { commits { ...C } } fragment C on Commit { "
        + DETAILS
        + " }"
    }


SEAT_NODE_ID = ""  # a seat's Relay id, found at start


def entities_held(count: int) -> dict[str, Any]:
    """Entities selecting only the commits' and credits' balances: cheap fields, long lists."""
    body = entities(count)
    body["query"] = (
        "query($r: [_Any!]!) { _entities(representations: $r) { ... on Seat { "
        "commits { balance } credits { balance } } } }"
    )
    return body


def cheap_pages(aliases: int) -> dict[str, Any]:
    return aliased_pages(aliases, "seatId balances { creditTypeId balance startingBalance }")


def shape(name: str) -> dict[str, Any]:
    return {
        "query": (ROOT / f"bench/queries/{name}.graphql").read_text(),
        "variables": {"customerId": CUSTOMER, "contractId": CONTRACT},
    }


def everything(first: int) -> dict[str, Any]:
    """One page with every field, details included."""
    return aliased_pages(1).copy() | {
        "query": aliased_pages(1)["query"].replace("first: 100", f"first: {first}")
    }


ATTACKS: dict[str, Callable[[], Any]] = {
    # The costliest field per unit of the estimate (a resolver of its own), as often as fits.
    "credit-type-pages": lambda: {
        "query": aliased_pages(5, "...S")["query"]
        + " fragment S on Seat { seatId balances { creditTypeId balance "
        "creditType { id name isCurrency } } }"
    },
    "shape-C": lambda: shape("C"),
    "batch-shape-C": lambda: [shape("C")] * 10,
    "everything-25": lambda: everything(25),
    "batch-everything-25": lambda: [everything(25)] * 10,
    "entities-held-1000": lambda: entities_held(1000),
    "batch-entities-held": lambda: [entities_held(1000) for _ in range(10)],
    "batch-cheap-pages": lambda: [cheap_pages(30) for _ in range(10)],
    "entities-details": lambda: entities(300),
    "entities-1000": lambda: entities(1000),
    "nodes-details": lambda: nodes(300),
    "batch-aliased-pages": lambda: [aliased_pages(19) for _ in range(10)],
    "aliased-pages": lambda: aliased_pages(19),
    "fragments": lambda: fragments(19),
    "one-page": lambda: aliased_pages(1),
}


def _proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _discover(url: str) -> None:
    """The seat holding the most commits and credits (the stand-in's 130), and its id."""
    global SEAT, SEAT_NODE_ID
    seats: list[dict[str, Any]] = []
    after = None
    while True:
        answer = httpx.post(
            f"{url}/graphql",
            json={
                "query": "query($after: String) { seatBalances(customerId: "
                f'"{CUSTOMER}", contractId: "{CONTRACT}", first: 100, after: $after) '
                "{ pageInfo { hasNextPage endCursor } edges { node { id seatId "
                "commits { commitId } credits { creditId } } } } }",
                "variables": {"after": after},
            },
            timeout=60,
        ).json()["data"]["seatBalances"]
        seats += [edge["node"] for edge in answer["edges"]]
        if not answer["pageInfo"]["hasNextPage"]:
            break
        after = answer["pageInfo"]["endCursor"]
    node = max(seats, key=lambda seat: len(seat["commits"]) + len(seat["credits"]))
    SEAT, SEAT_NODE_ID = node["seatId"], node["id"]


def run(name: str) -> dict[str, Any]:
    process, url = start_gateway()  # default settings, on the embedded stand-in
    try:
        _discover(url)
        body = ATTACKS[name]()
        raw = json.dumps(body).encode()
        slowest = 0.0
        stop = threading.Event()

        def watch() -> None:
            nonlocal slowest
            with httpx.Client(timeout=60) as client:
                while not stop.is_set():
                    started = time.perf_counter()
                    client.get(f"{url}/healthz")
                    slowest = max(slowest, time.perf_counter() - started)
                    time.sleep(0.02)

        rss_before = _proc_rss_mb(process.pid)
        cpu_before = _proc_cpu(process.pid)
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        started = time.perf_counter()
        response = httpx.post(
            f"{url}/graphql",
            content=raw,
            headers={"content-type": "application/json", "x-gateway-cost": "true"},
            timeout=300,
        )
        wall = time.perf_counter() - started
        time.sleep(0.1)
        stop.set()
        watcher.join()
        cpu = _proc_cpu(process.pid) - cpu_before
        payload = response.json()
        first = payload[0] if isinstance(payload, list) else payload
        errors = first.get("errors") or []
        return {
            "attack": name,
            "requestKB": round(len(raw) / 1024, 1),
            "status": response.status_code,
            "code": errors[0].get("extensions", {}).get("code") if errors else None,
            "answerKB": round(len(response.content) / 1024, 1),
            "cpuS": round(cpu, 2),
            "wallS": round(wall, 2),
            "rssMB": f"{rss_before:.0f} -> {_proc_rss_mb(process.pid):.0f}",
            "healthzMaxMs": round(slowest * 1000, 1),
            "cost": (first.get("extensions") or {}).get("cost"),
        }
    finally:
        process.terminate()
        process.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--attacks", nargs="*", default=list(ATTACKS), choices=list(ATTACKS))
    arguments = parser.parse_args()
    for name in arguments.attacks:
        print(json.dumps(run(name)), flush=True)


if __name__ == "__main__":
    main()
