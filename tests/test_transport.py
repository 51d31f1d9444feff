"""The production transport (gateway/upstream/transport.py) honours the environment as any HTTP
client does: a proxy from HTTP_PROXY carries the billing API's calls."""

from __future__ import annotations

import asyncio
import json

import pytest

from gateway.upstream import BillingClient
from gateway.upstream.transport import billing_transport
from tests.support import DEFAULT_POLICY

PAGE = {"data": [], "pagination": {"seats_included": 0, "next_page": None}}


async def test_the_environment_proxy_carries_upstream_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With HTTP_PROXY set, the call to a billing API whose host does not even resolve goes
    to the proxy, as an absolute-form request for the billing API's URL."""
    seen: list[str] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head.split(b"\r\n", 1)[0].decode())
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        await reader.readexactly(length)
        body = json.dumps(PAGE).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(proxy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    transport = billing_transport(max_connections=2)
    try:
        page = await BillingClient(
            transport, "http://billing.invalid", DEFAULT_POLICY
        ).list_seat_balances({"customer_id": "c", "contract_id": "k"}, token="t")
    finally:
        await transport.aclose()
        server.close()
    assert page["data"] == []
    assert seen == ["POST http://billing.invalid/v1/contracts/seatBalances/list HTTP/1.1"]
