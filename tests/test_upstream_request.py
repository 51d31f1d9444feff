"""What the billing API receives: the request's exact head and body over a real connection
(the gateway's aiohttp transport against a raw TCP server on 127.0.0.1), for a POST with a
JSON body and a GET without one."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest

from gateway.upstream import BillingClient
from gateway.upstream.transport import billing_transport
from tests.support import DEFAULT_POLICY, RawRequests, raw_http_server


@pytest.fixture
async def billing(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[str, RawRequests]]:
    """A billing API that records every request's head lines and body."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    async with raw_http_server() as server:
        yield server


async def test_a_post_carries_its_json_body_with_its_length_and_the_callers_token(
    billing: tuple[str, RawRequests],
) -> None:
    """`POST /v1/contracts/seatBalances/list`: the host, JSON content type, the body's exact
    length (not chunked), the bearer token, and the body itself."""
    url, received = billing
    transport = billing_transport(url, max_connections=2)
    try:
        client = BillingClient(transport, url, DEFAULT_POLICY)
        body = {"customer_id": "c", "contract_id": "k", "limit": 25}
        await client.list_seat_balances(body, token="secret-token")
    finally:
        await transport.aclose()
    [head] = received.heads
    fields = {line.split(b":", 1)[0].lower(): line.split(b":", 1)[1].strip() for line in head[1:]}
    assert head[0] == b"POST /v1/contracts/seatBalances/list HTTP/1.1"
    assert fields[b"host"] == url.removeprefix("http://").encode()
    assert fields[b"content-type"] == b"application/json"
    assert fields[b"accept"] == b"application/json"
    assert fields[b"authorization"] == b"Bearer secret-token"
    assert b"transfer-encoding" not in fields
    assert received.bodies == [orjson.dumps(body)]
    assert fields[b"content-length"] == str(len(received.bodies[0])).encode()


async def test_a_get_has_no_body(billing: tuple[str, RawRequests]) -> None:
    """`GET /v1/credit-types/list`: its parameters in the query, no body, no content type."""
    url, received = billing
    transport = billing_transport(url, max_connections=2)
    try:
        client = BillingClient(transport, url, DEFAULT_POLICY)
        page = await client.list_credit_types(limit=5, token="secret-token")
    finally:
        await transport.aclose()
    assert page["data"] == []
    head = received.heads[0]
    fields = {line.split(b":", 1)[0].lower() for line in head[1:]}
    assert head[0] == b"GET /v1/credit-types/list?limit=5 HTTP/1.1"
    assert b"content-type" not in fields and b"transfer-encoding" not in fields
    assert received.bodies[0] == b""
