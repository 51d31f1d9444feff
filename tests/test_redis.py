"""Across replicas: two gateways sharing one real redis-server, and a Redis killed mid-run,
silent, full, or holding entries the gateway did not write (issue 23, items 4 and 5)."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import jwt
import orjson
import pytest
import redis
from pydantic import SecretStr

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN
from tests.support import Gateway, running_gateway
from tests.test_persisted_documents import OTHER, QUERY, apq, codes, post, sha

pytestmark = pytest.mark.process  # the process tier: starts redis-server

REDIS_SERVER = shutil.which("redis-server")
if REDIS_SERVER is None:
    if os.environ.get("GATEWAY_REQUIRE_REDIS"):
        pytest.fail("redis-server is missing (apt-get install redis-server)", pytrace=False)
    pytest.skip("redis-server is not installed", allow_module_level=True)


class RedisServer:
    """A redis-server of our own on a free port, without persistence (``options``: more
    command-line settings, e.g. a ``--maxmemory``)."""

    def __init__(self, directory: Path, *options: str) -> None:
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
                *options,
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


LISTING = f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}"'
BALANCES = (
    f"{{ seatBalances({LISTING}, first: 2) {{ nodes {{ seatId balances {{ balance }} }} }} }}"
)
DETAILED = (
    f"{{ seatBalances({LISTING}, first: 5) {{ nodes {{ seatId "
    "commits { commitId name } balances { creditType { name } } } } }"
)


def metric(gateway: Gateway, line_start: str) -> float:
    """The value of the first /metrics sample whose line starts with ``line_start`` (0 if none)."""
    for line in gateway.http.get(f"{gateway.url}/metrics").text.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def with_redis(settings: Settings, url: str, **update: object) -> Settings:
    return settings.model_copy(update={"redis_url": SecretStr(url), "cache_ttl": 60.0, **update})


@contextmanager
def silent_listener() -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that accepts every connection and never answers (a
    black-holed Redis): yields its redis:// URL."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)
        for connection in held:
            connection.close()


def timed(gateway: Gateway, query: str) -> tuple[float, dict[str, object]]:
    started = time.monotonic()
    payload = gateway.post(query).json()
    return time.monotonic() - started, payload


# Item 4: a Redis that does not answer, or is full


def test_a_silent_redis_costs_only_the_first_failures(settings: Settings) -> None:
    """Redis accepts connections and never answers: the first detail query waits for a few
    timed-out operations, then the circuit breaker skips Redis, so the next ones take no
    longer than without a cache, and /readyz says degraded at once."""
    with silent_listener() as url, running_gateway(with_redis(settings, url)) as gateway:
        gateway.http.timeout = httpx.Timeout(5.0)
        first, payload = timed(gateway, DETAILED)
        assert "errors" not in payload
        later = [timed(gateway, DETAILED) for _ in range(5)]
        assert all("errors" not in answer for _, answer in later)
        assert first < 1.5, f"the first detail query took {first:.2f} s"
        # Shorter than one Redis timeout (0.25 s): no later query waited for Redis at all.
        slowest = max(seconds for seconds, _ in later)
        assert slowest < 0.25, f"a detail query took {slowest:.2f} s with Redis skipped"
        started = time.monotonic()
        ready = gateway.http.get(f"{gateway.url}/readyz")
        assert ready.json()["cache"] == "degraded"
        assert time.monotonic() - started < 0.25
        assert metric(gateway, 'gateway_cache_circuit_open{redis="redis"}') == 1
        assert metric(gateway, 'gateway_cache_skipped_total{operation="get"') > 0


def test_a_redis_that_answers_again_is_used_again_after_the_cooldown(
    settings: Settings, redis_server: RedisServer
) -> None:
    """A redis-server stopped (SIGSTOP: connections accepted, nothing answered) opens the
    breaker; continued, one probe after the cooldown closes it and pages are cached again."""
    configured = with_redis(settings, redis_server.url, redis_breaker_seconds=0.5)
    with running_gateway(configured) as gateway:
        assert "errors" not in gateway.post(BALANCES).json()
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            for _ in range(4):
                assert "errors" not in gateway.post(BALANCES).json()
            assert metric(gateway, 'gateway_cache_circuit_open{redis="redis"}') == 1
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        time.sleep(0.6)
        assert gateway.http.get(f"{gateway.url}/readyz").json()["cache"] == "ok"
        assert metric(gateway, 'gateway_cache_circuit_open{redis="redis"}') == 0
        assert "errors" not in gateway.post(DETAILED).json()
        made = len(gateway.calls)
        assert "errors" not in gateway.post(DETAILED).json()
        assert len(gateway.calls) == made  # every page of the second from Redis


def test_a_full_redis_that_refuses_writes_is_degraded(settings: Settings, tmp_path: Path) -> None:
    """A Redis at its maxmemory with noeviction answers reads and refuses every write (OOM):
    requests are still answered (from upstream), and /readyz says the cache is degraded."""
    server = RedisServer(tmp_path, "--maxmemory", "1mb", "--maxmemory-policy", "noeviction")
    try:
        filler = redis.Redis.from_url(server.url)
        for size in (10_000, 1_000, 100, 10, 1):  # to the last byte
            with pytest.raises(redis.exceptions.OutOfMemoryError):
                for index in range(10_000):
                    filler.set(f"filler:{size}:{index}", b"x" * size)
        with running_gateway(with_redis(settings, server.url)) as gateway:
            for _ in range(2):
                assert "errors" not in gateway.post(BALANCES).json()
            assert len(gateway.calls) == 2  # nothing could be kept
            ready = gateway.http.get(f"{gateway.url}/readyz")
            assert ready.status_code == 200
            assert ready.json()["cache"] == "degraded"
            assert metric(gateway, 'gateway_cache_failures_total{operation="set"') > 0
            assert metric(gateway, 'gateway_cache_circuit_open{redis="redis"}') == 0
        filler.close()
    finally:
        server.stop()


# Item 5: what is read back from Redis is checked


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


def only_key(store: redis.Redis, pattern: str) -> bytes:
    [key] = store.keys(pattern)
    return key  # type: ignore[no-any-return]


def test_every_key_carries_the_format_version(
    settings: Settings, redis_server: RedisServer, store: redis.Redis
) -> None:
    """Pages and APQ documents are kept under gateway:v2:..., so a gateway of another format
    never reads them; an APQ entry under the unversioned key is not read."""
    with running_gateway(with_redis(settings, redis_server.url)) as gateway:
        assert post(gateway, {"query": QUERY, "extensions": apq(sha(QUERY))}).json()["data"]
        keys = sorted(key.decode() for key in store.keys("*"))
        assert keys and all(key.startswith("gateway:v2:") for key in keys), keys
        store.set(f"gateway:apq:{sha(OTHER)}", OTHER)
        assert codes(post(gateway, {"extensions": apq(sha(OTHER))})) == [
            "PERSISTED_QUERY_NOT_FOUND"
        ]


def stored_page(store: redis.Redis, key: bytes) -> tuple[bytes, dict[str, object]]:
    expiry, _, page = store.get(key).partition(b"\n")  # type: ignore[union-attr]
    return expiry, orjson.loads(page)


def spoiled_entries(expiry: bytes, page: dict[str, object]) -> dict[str, bytes]:
    """Entries a page cache key might hold that no gateway of this version wrote."""
    lots = orjson.loads(orjson.dumps(page))
    lots["data"][0]["balances"][0]["balance"] = "lots"
    no_pagination = {"data": page["data"]}
    return {
        "a balance that is not a number": expiry + b"\n" + orjson.dumps(lots),
        "no pagination": expiry + b"\n" + orjson.dumps(no_pagination),
        "not JSON": expiry + b"\n\xff\xfe{",
        "no expiry": orjson.dumps(page),
        "an expiry that is not a number": b"nan\n" + orjson.dumps(page),
    }


def test_a_spoiled_page_is_dropped_and_fetched_again(
    settings: Settings, redis_server: RedisServer, store: redis.Redis
) -> None:
    """A page cache entry that breaks the upstream contract (a balance "lots", no
    `pagination`, not JSON, no expiry) is a miss: the answer is the billing API's, with one
    upstream call, no error; the bad entry is replaced and counted."""
    with running_gateway(with_redis(settings, redis_server.url)) as gateway:
        expected = gateway.query(BALANCES)
        key = only_key(store, "gateway:v2:page:*")
        expiry, page = stored_page(store, key)
        for name, value in spoiled_entries(expiry, page).items():
            store.set(key, value, px=60_000)
            gateway.calls.clear()
            payload = gateway.post(BALANCES).json()
            assert payload == {"data": expected}, name
            assert len(gateway.calls) == 1, name
            assert store.get(key) != value, name
        assert metric(gateway, 'gateway_cache_rejected_total{store="redis-pages"}') == 5


def test_an_apq_text_that_is_not_its_hash_never_runs(
    settings: Settings, redis_server: RedisServer, store: redis.Redis
) -> None:
    """A key's text swapped for another document is PERSISTED_QUERY_NOT_FOUND (the other
    document does not run) and the entry is deleted; the client's registration then works."""
    with running_gateway(with_redis(settings, redis_server.url)) as gateway:
        registered = post(gateway, {"query": QUERY, "extensions": apq(sha(QUERY))}).json()
        key = f"gateway:v2:apq:{sha(QUERY)}"
        store.set(key, OTHER)
        gateway.calls.clear()
        refused = post(gateway, {"extensions": apq(sha(QUERY))})
        assert codes(refused) == ["PERSISTED_QUERY_NOT_FOUND"]
        assert gateway.calls == []
        assert store.exists(key) == 0
        assert post(gateway, {"query": QUERY, "extensions": apq(sha(QUERY))}).json() == registered
        assert post(gateway, {"extensions": apq(sha(QUERY))}).json() == registered
        assert metric(gateway, 'gateway_cache_rejected_total{store="redis-apq"}') == 1


def test_an_apq_value_that_is_not_utf8_is_not_found_not_a_500(
    settings: Settings, redis_server: RedisServer, store: redis.Redis
) -> None:
    """Bytes that are not UTF-8 under their own hash: PERSISTED_QUERY_NOT_FOUND in JSON."""
    value = b"{ __typename \xff }"
    digest = hashlib.sha256(value).hexdigest()
    store.set(f"gateway:v2:apq:{digest}", value)
    with running_gateway(with_redis(settings, redis_server.url)) as gateway:
        response = post(gateway, {"extensions": apq(digest)})
        assert response.status_code == 200
        assert codes(response) == ["PERSISTED_QUERY_NOT_FOUND"]


# Item 6: what callers may put into the shared Redis


JWT_SECRET = "a-development-secret-of-32-bytes!"


def padded_document(index: int, size: int) -> str:
    """A `{ __typename }` document padded with a comment to ``size`` bytes."""
    head = f"{{ __typename }} # {index} "
    return head + "x" * (size - len(head))


def test_anonymous_callers_register_nothing_in_jwt_mode(
    settings: Settings, redis_server: RedisServer, store: redis.Redis
) -> None:
    """With JWT authentication on, 100 comment-padded documents registered without a token
    leave nothing in Redis (they still run); an authenticated caller's registration is kept,
    for 24 hours at most."""
    configured = Settings(
        metronome_base_url=settings.metronome_base_url,
        metronome_bearer_token=DEMO_TOKEN,
        jwt_secret=JWT_SECRET,
        redis_url=redis_server.url,
    )
    before = store.info("memory")["used_memory"]
    with running_gateway(configured) as gateway:
        size = configured.max_query_bytes
        for index in range(100):
            text = padded_document(index, size)
            answer = gateway.http.post(
                f"{gateway.url}/graphql", json={"query": text, "extensions": apq(sha(text))}
            )
            assert answer.json()["data"] == {"__typename": "Query"}
        assert store.keys("gateway:v2:apq:*") == []
        grown = store.info("memory")["used_memory"] - before
        assert grown < 200_000, f"Redis grew by {grown} bytes"
        subject = jwt.encode({"sub": "user-1", "exp": int(time.time()) + 300}, JWT_SECRET)
        text = padded_document(0, 100)
        answer = gateway.http.post(
            f"{gateway.url}/graphql",
            json={"query": text, "extensions": apq(sha(text))},
            headers={"Authorization": f"Bearer {subject}"},
        )
        assert answer.json()["data"] == {"__typename": "Query"}
        key = f"gateway:v2:apq:{sha(text)}"
        assert store.get(key) == text.encode()
        assert 0 < store.pttl(key) <= 24 * 3600 * 1000
