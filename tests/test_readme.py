"""What the README promises a new user works: `gateway serve` and the sample queries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID
from tests.support import gateway_process

pytestmark = pytest.mark.process  # the process tier: starts `gateway serve` as the README says

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, list[str]]]:
    """`python -m gateway serve` as a user starts it: no configuration, embedded stand-in."""
    with gateway_process() as (_, url, output):
        yield url, output


def test_serve_announces_the_embedded_standin_loudly(served: tuple[str, list[str]]) -> None:
    """Start-up says that answers come from the stand-in, with the demo ids to query."""
    url, output = served
    assert httpx.get(f"{url}/readyz").json()["embeddedUpstream"] is True
    banner = "".join(output)
    assert "DEMO MODE" in banner
    assert "EMBEDDED" in banner
    assert DEMO_CUSTOMER_ID in banner and DEMO_CONTRACT_ID in banner
    assert DEMO_CUSTOMER_ID in README and DEMO_CONTRACT_ID in README


DOCUMENTS = re.findall(r"```graphql\n(.*?)```", README, re.S)
QUERIES = [document for document in DOCUMENTS if not document.startswith("subscription")]
SUBSCRIPTIONS = [document for document in DOCUMENTS if document.startswith("subscription")]


@pytest.mark.parametrize("query", QUERIES)
def test_readme_queries_work_as_is(served: tuple[str, list[str]], query: str) -> None:
    """Every ```graphql query of the README runs without errors against the default gateway."""
    url, _ = served
    payload = httpx.post(f"{url}/graphql", json={"query": query}, timeout=30).json()
    assert "errors" not in payload, payload
    seats = payload["data"]["seatBalances"]["edges"]
    assert seats and seats[0]["node"]["seatId"]


def test_graphiql_is_served(served: tuple[str, list[str]]) -> None:
    """A browser asking for /graphql gets the GraphiQL page."""
    url, _ = served
    page = httpx.get(f"{url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert "graphiql" in page.text.lower()


def events(url: str, body: dict[str, object], headers: dict[str, str]) -> Iterator[dict]:  # type: ignore[type-arg]
    """The `next` events of a graphql-sse stream, as the README's curl shows them."""
    with httpx.stream("POST", f"{url}/graphql", json=body, headers=headers, timeout=60) as stream:
        assert stream.status_code == 200, stream.read()
        assert stream.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "next":
                yield json.loads(line.removeprefix("data: "))


@pytest.mark.parametrize("document", SUBSCRIPTIONS)
def test_readme_subscriptions_push_updates_on_the_default_gateway(
    served: tuple[str, list[str]], document: str
) -> None:
    """Every ```graphql subscription of the README, run over Server-Sent Events against the
    default gateway: a SNAPSHOT of the demo contract's seats, then an update (the stand-in's
    demo activity moves balances and delivers a webhook every 15 s) holding only seats that
    changed."""
    url, _ = served
    stream = events(url, {"query": document}, {"accept": "text/event-stream"})
    snapshot = next(stream)
    assert "errors" not in snapshot, snapshot
    first = snapshot["data"]["seatBalanceUpdates"]
    assert first["reason"] == "SNAPSHOT" and len(first["seats"]) == 300
    update = next(stream)["data"]["seatBalanceUpdates"]
    assert update["reason"] in ("WEBHOOK", "POLL")
    before = {seat["seatId"]: seat["balances"] for seat in first["seats"]}
    assert update["seats"] and all(
        seat["balances"] != before[seat["seatId"]] for seat in update["seats"]
    )


def test_the_readme_curl_subscription_streams_as_shown(served: tuple[str, list[str]]) -> None:
    """The README's curl for Server-Sent Events, its headers and body as written."""
    url, _ = served
    command = re.search(r"curl -N localhost:8000/graphql(.*?)\n  ```", README, re.S)
    assert command, "README shows a curl subscription"
    headers = dict(header.split(": ", 1) for header in re.findall(r"-H '([^']*)'", command[1]))
    body = json.loads(re.search(r"-d '(.*)'", command[1])[1])  # type: ignore[index]
    snapshot = next(events(url, body, headers))
    assert snapshot["data"]["seatBalanceUpdates"]["reason"] == "SNAPSHOT"
