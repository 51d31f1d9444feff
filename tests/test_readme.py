"""What the README promises a new user works: `gateway serve` and the sample queries."""

from __future__ import annotations

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


@pytest.mark.parametrize("query", re.findall(r"```graphql\n(.*?)```", README, re.S))
def test_readme_queries_work_as_is(served: tuple[str, list[str]], query: str) -> None:
    """Every ```graphql block of the README runs without errors against the default gateway."""
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
