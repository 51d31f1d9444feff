"""Each caller's rate across replicas (issue 28, "Per caller"): two `gateway serve` processes
sharing one real redis-server count a caller once, and with Redis killed each counts alone."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from gateway.config import Settings
from gateway.rates import KEY_PREFIX, caller_key
from gateway.standin import DEMO_TOKEN, OTHER_TOKEN
from tests.support import gateway_process, running_gateway
from tests.test_persisted_documents import QUERY
from tests.test_redis import RedisServer

pytestmark = pytest.mark.process  # starts redis-server and two gateway processes


@contextmanager
def replicas(standin_url: str, redis_url: str, rate: str) -> Iterator[tuple[str, str]]:
    """Two `gateway serve` processes with the same GATEWAY_REDIS_URL: their URLs."""
    env = {
        "METRONOME_BASE_URL": standin_url,
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_CALLER_RATE": rate,
        "GATEWAY_REDIS_TIMEOUT": "0.2",
        "GATEWAY_LOG_LEVEL": "warning",
    }
    with ExitStack() as stack:
        urls = [stack.enter_context(gateway_process(env=env))[1] for _ in range(2)]
        yield urls[0], urls[1]


def status(url: str, token: str) -> int:
    response = httpx.post(
        f"{url}/graphql",
        json={"query": QUERY},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    if response.status_code == 429:
        assert response.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert int(response.headers["retry-after"]) >= 1
    assert response.headers["ratelimit-policy"] == '"caller";q=4;w=60'
    return response.status_code


def test_replicas_share_a_callers_rate_and_count_alone_without_redis(
    standin_url: str, tmp_path: Path
) -> None:
    redis_server = RedisServer(tmp_path)
    try:
        with replicas(standin_url, redis_server.url, "4/minute") as (one, two):
            # Four operations a minute, whichever replica they reach.
            assert [status(one, DEMO_TOKEN), status(two, DEMO_TOKEN)] == [200, 200]
            assert [status(one, DEMO_TOKEN), status(two, DEMO_TOKEN)] == [200, 200]
            assert [status(one, DEMO_TOKEN), status(two, DEMO_TOKEN)] == [429, 429]
            # Another caller is served by both meanwhile.
            assert [status(one, OTHER_TOKEN), status(two, OTHER_TOKEN)] == [200, 200]
            assert httpx.get(f"{one}/readyz").json()["rateLimits"] == "ok"
            keys = redis_server_keys(redis_server)
            assert len(keys) == 2 and all(key.startswith(b"gateway:v2:rate:") for key in keys)

            redis_server.stop()
            # Each replica counts alone now: a fresh quota of four on each, then refusals.
            fresh = "a caller new to both replicas"
            started = time.monotonic()
            assert [status(one, fresh) for _ in range(5)] == [200] * 4 + [429]
            assert [status(two, fresh) for _ in range(5)] == [200] * 4 + [429]
            assert time.monotonic() - started < 10
            for url in (one, two):
                ready = httpx.get(f"{url}/readyz")
                assert ready.status_code == 200
                assert ready.json()["rateLimits"] == "degraded"
                metrics = httpx.get(f"{url}/metrics").text
                assert 'gateway_rate_limited_total{counters="process"} 1.0' in metrics
                assert "gateway_rate_limit_fallbacks_total" in metrics
    finally:
        redis_server.stop()


def redis_server_keys(server: RedisServer) -> list[bytes]:
    import redis

    client = redis.Redis.from_url(server.url)
    try:
        return list(client.keys("*rate*"))
    finally:
        client.close()


def test_a_counter_redis_holds_in_another_shape_is_a_failure_counted_in_process(
    settings: Settings, tmp_path: Path
) -> None:
    """A caller's key holding something the script cannot read (a list: WRONGTYPE) decides
    nothing: that caller is counted in the process, the fallback counted, /readyz degraded;
    another caller is still counted in Redis."""
    import redis

    redis_server = RedisServer(tmp_path)
    try:
        client = redis.Redis.from_url(redis_server.url)
        token_key = caller_key("token", hashlib.sha256(DEMO_TOKEN.encode()).hexdigest())
        client.rpush(KEY_PREFIX + token_key, b"not a time")
        client.close()
        configured = settings.model_copy(
            update={"redis_url": SecretStr(redis_server.url), "caller_rate": "2/minute"}
        )
        with running_gateway(configured) as gateway:

            def ask(token: str) -> int:
                return gateway.http.post(
                    f"{gateway.url}/graphql",
                    json={"query": "{ __typename }"},
                    headers={"Authorization": f"Bearer {token}"},
                ).status_code

            assert [ask(DEMO_TOKEN) for _ in range(3)] == [200, 200, 429]
            metrics = gateway.http.get(f"{gateway.url}/metrics").text
            assert 'gateway_rate_limit_fallbacks_total{reason="failed"} 3.0' in metrics
            assert 'gateway_rate_limited_total{counters="process"} 1.0' in metrics
            assert [ask(OTHER_TOKEN) for _ in range(3)] == [200, 200, 429]
            metrics = gateway.http.get(f"{gateway.url}/metrics").text
            assert 'gateway_rate_limited_total{counters="redis"} 1.0' in metrics
    finally:
        redis_server.stop()
