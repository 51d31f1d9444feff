"""Across replicas: two gateways sharing one real redis-server, and a Redis killed mid-run."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN
from tests.support import running_gateway
from tests.test_persisted_documents import QUERY, apq, codes, post, sha

REDIS_SERVER = shutil.which("redis-server")
if REDIS_SERVER is None:
    if os.environ.get("GATEWAY_REQUIRE_REDIS"):
        pytest.fail("redis-server is missing (apt-get install redis-server)", pytrace=False)
    pytest.skip("redis-server is not installed", allow_module_level=True)


class RedisServer:
    """A redis-server of our own on a free port, without persistence."""

    def __init__(self, directory: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        assert REDIS_SERVER is not None
        self.process = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def test_two_replicas_share_persisted_queries_and_pages(
    settings: Settings, redis_server: RedisServer
) -> None:
    """A hash registered on one gateway answers on the other, and a page cached by one is
    reused by the other (one upstream call between them)."""
    shared = settings.model_copy(
        update={"redis_url": SecretStr(redis_server.url), "cache_ttl": 60.0}
    )
    with running_gateway(shared) as one, running_gateway(shared) as two:
        registered = post(one, {"query": QUERY, "extensions": apq(sha(QUERY))})
        assert registered.json()["data"]["seatBalances"]["edges"]
        assert len(one.calls) == 1
        answered = post(two, {"extensions": apq(sha(QUERY))})
        assert answered.json() == registered.json()
        assert two.calls == []
        assert answered.headers["cache-control"].startswith("private, max-age=")
        assert two.http.get(f"{two.url}/readyz").json()["cache"] == "ok"


def test_a_redis_killed_mid_run_degrades_without_failing_requests(
    settings: Settings, redis_server: RedisServer
) -> None:
    """With Redis gone, requests are still answered (from upstream), the failures are counted,
    and /readyz says the cache is degraded while staying ready."""
    configured = settings.model_copy(
        update={"redis_url": SecretStr(redis_server.url), "cache_ttl": 60.0}
    )
    with running_gateway(configured) as gateway:
        assert post(gateway, {"query": QUERY}).json()["data"]
        assert len(gateway.calls) == 1
        redis_server.stop()
        started = time.monotonic()
        answer = post(gateway, {"query": QUERY})
        assert answer.json()["data"]["seatBalances"]["edges"]
        assert time.monotonic() - started < 5
        assert len(gateway.calls) == 2  # the page comes from upstream now
        assert codes(post(gateway, {"extensions": apq(sha(QUERY))})) == [
            "PERSISTED_QUERY_NOT_FOUND"
        ]
        ready = gateway.http.get(f"{gateway.url}/readyz")
        assert ready.status_code == 200
        assert ready.json()["cache"] == "degraded"
        metrics = gateway.http.get(f"{gateway.url}/metrics").text
        assert 'gateway_cache_failures_total{operation="get",store="redis-pages"}' in metrics


def test_a_redis_that_does_not_answer_costs_at_most_the_timeout(settings: Settings) -> None:
    """A Redis address that accepts connections but never answers: the request is answered
    well under a second later than without it."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        url = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        configured = settings.model_copy(
            update={"redis_url": SecretStr(url), "cache_ttl": 60.0, "redis_timeout": 0.1}
        )
        with running_gateway(configured) as gateway:
            started = time.monotonic()
            response = gateway.http.post(
                f"{gateway.url}/graphql",
                json={"query": QUERY},
                headers={"Authorization": f"Bearer {DEMO_TOKEN}"},
            )
            assert response.json()["data"]["seatBalances"]["edges"]
            assert time.monotonic() - started < 1.5
            assert httpx.get(f"{gateway.url}/readyz").json()["cache"] == "degraded"


assert DEMO_CONTRACT_ID and DEMO_CUSTOMER_ID  # the queries above read the demo contract
