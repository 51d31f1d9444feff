"""What the README promises a new user works: `gateway serve` and the sample queries."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, list[str]]]:
    """`python -m gateway serve` as a user starts it: no configuration, embedded stand-in."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METRONOME_", "GATEWAY_"))}
    env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, "gateway serve exited"
            assert time.monotonic() < deadline, "gateway serve did not start"
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url, output
    finally:
        process.terminate()
        process.wait(timeout=10)
        reader.join(5)
        process.stdout.close()


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
