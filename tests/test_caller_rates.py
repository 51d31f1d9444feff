"""Each caller's rate (GATEWAY_CALLER_RATE, issue 28 "Per caller"), counted in this process:
refusals, the IETF headers, what counts and who the caller is."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
import pytest
import websockets
from pydantic import SecretStr, ValidationError

from gateway.config import Settings
from gateway.graphiql import ASSETS_PATH
from gateway.standin import DEMO_TOKEN, OTHER_CONTRACT_ID, OTHER_CUSTOMER_ID, OTHER_TOKEN
from tests.support import Gateway, running_gateway
from tests.test_persisted_documents import GRAPHQL_RESPONSE, QUERY, codes

TYPENAME = {"query": "{ __typename }"}


def ask(
    gateway: Gateway, body: object, *, token: str | None = DEMO_TOKEN, **headers: str
) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return gateway.http.post(f"{gateway.url}/graphql", json=body, headers=headers)


def limited(settings: Settings, rate: str, **update: object) -> Settings:
    return settings.model_copy(update={"caller_rate": rate, **update})


def test_a_caller_over_its_rate_is_refused_before_any_upstream_call(settings: Settings) -> None:
    """Three operations a minute: the fourth is HTTP 429 RATE_LIMITED, in the negotiated media
    type, with Retry-After and the IETF headers, and calls nothing upstream; another caller
    (another forwarded token) is served meanwhile."""
    with running_gateway(limited(settings, "3/minute")) as gateway:
        for remaining in (2, 1, 0):
            served = ask(gateway, {"query": QUERY})
            assert served.json()["data"]["seatBalances"]["edges"]
            assert served.headers["ratelimit-policy"] == '"caller";q=3;w=60'
            assert served.headers["ratelimit"].startswith(f'"caller";r={remaining};t=')
        calls = len(gateway.calls)
        assert calls == 3

        refused = ask(gateway, {"query": QUERY}, accept=GRAPHQL_RESPONSE)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == GRAPHQL_RESPONSE
        assert codes(refused) == ["RATE_LIMITED"]
        assert "data" not in refused.json()  # a request error: nothing ran
        assert 1 <= int(refused.headers["retry-after"]) <= 20  # one operation drains in 20 s
        assert refused.headers["ratelimit-policy"] == '"caller";q=3;w=60'
        reset = int(refused.headers["ratelimit"].split("t=")[1])
        assert refused.headers["ratelimit"] == f'"caller";r=0;t={reset}'
        assert 40 <= reset <= 60
        assert len(gateway.calls) == calls

        other = ask(gateway, {"query": QUERY}, token=OTHER_TOKEN)
        assert other.status_code == 200
        assert "RATE_LIMITED" not in codes(other)
        assert other.headers["ratelimit"].startswith('"caller";r=2;')
        metrics = gateway.http.get(f"{gateway.url}/metrics").text
        assert 'gateway_rate_limited_total{counters="process"} 1.0' in metrics


def test_a_batch_counts_each_operation(settings: Settings) -> None:
    with running_gateway(limited(settings, "5/minute")) as gateway:
        batch = ask(gateway, [TYPENAME] * 3)
        assert [answer["data"] for answer in batch.json()] == [{"__typename": "Query"}] * 3
        assert batch.headers["ratelimit"].startswith('"caller";r=2;')
        refused = ask(gateway, [TYPENAME] * 3)  # three more do not fit in the two left
        assert refused.status_code == 429
        assert codes(refused) == ["RATE_LIMITED"]
        assert refused.headers["ratelimit"].startswith('"caller";r=2;')
        assert ask(gateway, [TYPENAME] * 2).status_code == 200
        assert ask(gateway, TYPENAME).status_code == 429


def test_health_metrics_and_graphiql_never_count(settings: Settings) -> None:
    with running_gateway(limited(settings, "1/minute")) as gateway:
        http, url = gateway.http, gateway.url
        page = http.get(f"{url}/graphql", headers={"accept": "text/html"})
        assert page.status_code == 200
        assert "ratelimit" not in page.headers
        script = next(p for p in page.text.split('"') if p.startswith(ASSETS_PATH))
        for _ in range(3):
            for path in ("/healthz", "/readyz", "/metrics", script):
                answer = http.get(f"{url}{path}")
                assert answer.status_code == 200, path
                assert "ratelimit" not in answer.headers
        assert http.get(f"{url}/readyz").json()["rateLimits"] == "ok"
        assert ask(gateway, TYPENAME).status_code == 200
        assert ask(gateway, TYPENAME).status_code == 429


def test_an_address_comes_from_x_forwarded_for_only_through_a_trusted_proxy(
    settings: Settings,
) -> None:
    """Without forwarded tokens or JWTs, the caller is its address: the rightmost
    X-Forwarded-For hop that is not a trusted proxy, when the peer itself is one."""
    anonymous = limited(
        settings,
        "1/minute",
        metronome_bearer_token=SecretStr(DEMO_TOKEN),
        allow_anonymous=True,
        trusted_proxies=["127.0.0.0/8", "10.1.2.3"],
    )
    with running_gateway(anonymous) as gateway:

        def via(hops: str) -> int:
            return ask(gateway, TYPENAME, token=None, **{"x-forwarded-for": hops}).status_code

        assert via("203.0.113.5") == 200
        assert via("203.0.113.5") == 429
        assert via("198.51.100.7, 10.1.2.3") == 200  # the hop before our proxy
        # A client writing hops of its own on the left is still the hop our proxy saw.
        assert via("198.51.100.99, 203.0.113.5") == 429
        assert via("garbage, 192.0.2.1") == 200

    untrusted = anonymous.model_copy(update={"trusted_proxies": ["10.0.0.0/8"]})
    with running_gateway(untrusted) as gateway:
        first = ask(gateway, TYPENAME, token=None, **{"x-forwarded-for": "203.0.113.5"})
        assert first.status_code == 200
        # The peer (127.0.0.1) is not a proxy of ours: what it claims is ignored.
        again = ask(gateway, TYPENAME, token=None, **{"x-forwarded-for": "198.51.100.7"})
        assert again.status_code == 429


def test_a_jwt_caller_is_its_subject(settings: Settings) -> None:
    """Two tokens of one subject share its quota; another subject has its own."""
    secret = "s" * 32
    jwt_settings = limited(
        settings,
        "2/minute",
        jwt_secret=SecretStr(secret),
        metronome_bearer_token=SecretStr(DEMO_TOKEN),
    )

    def token(subject: str, nonce: str) -> str:
        claims = {"sub": subject, "exp": int(time.time()) + 600, "nonce": nonce}
        return jwt.encode(claims, secret, algorithm="HS256")

    with running_gateway(jwt_settings) as gateway:
        assert ask(gateway, TYPENAME, token=token("ada", "1")).status_code == 200
        assert ask(gateway, TYPENAME, token=token("ada", "2")).status_code == 200
        assert ask(gateway, TYPENAME, token=token("ada", "3")).status_code == 429
        assert ask(gateway, TYPENAME, token=token("grace", "1")).status_code == 200


def test_bad_rate_settings_are_refused_with_their_name() -> None:
    with pytest.raises(ValidationError, match="GATEWAY_CALLER_RATE"):
        Settings(caller_rate="600/fortnight")
    with pytest.raises(ValidationError, match="GATEWAY_CALLER_RATE"):
        Settings(caller_rate="0/second")
    with pytest.raises(ValidationError, match="GATEWAY_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.0/8,proxy.internal")
    assert Settings(caller_rate=" 10 / Seconds").caller_rate == "10/second"


def test_a_browser_page_may_read_the_rate_headers(settings: Settings) -> None:
    configured = limited(settings, "5/minute", cors_origins=["https://app.example.com"])
    with running_gateway(configured) as gateway:
        answer = ask(gateway, TYPENAME, origin="https://app.example.com")
        exposed = {
            h.strip().lower() for h in answer.headers["access-control-expose-headers"].split(",")
        }
        assert {"ratelimit", "ratelimit-policy", "retry-after"} <= exposed


async def websocket_operations(url: str, count: int) -> list[dict[str, object]]:
    """``count`` queries over one graphql-transport-ws connection, one after another: the
    last message each got (its `next`, or its `error`)."""
    answers: list[dict[str, object]] = []
    async with websockets.connect(
        url.replace("http", "ws", 1) + "/graphql", subprotocols=["graphql-transport-ws"]
    ) as socket:
        init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {DEMO_TOKEN}"}}
        await socket.send(json.dumps(init))
        assert json.loads(await socket.recv())["type"] == "connection_ack"
        for number in range(count):
            payload = {"query": QUERY}
            await socket.send(
                json.dumps({"type": "subscribe", "id": str(number), "payload": payload})
            )
            while True:
                message = json.loads(await socket.recv())
                if message["type"] in ("next", "error"):
                    answers.append(message)
                if message["type"] in ("complete", "error"):
                    break
    return answers


def test_operations_over_a_websocket_count_against_the_callers_rate(settings: Settings) -> None:
    """A WebSocket connection is no way around GATEWAY_CALLER_RATE: each of its operations
    is one operation of the caller's rate; past it the operation gets an `error` message with
    RATE_LIMITED and calls nothing upstream, while the connection stays open."""
    with running_gateway(limited(settings, "3/minute")) as gateway:
        answers = asyncio.run(websocket_operations(gateway.url, 5))
    assert [answer["type"] for answer in answers] == ["next"] * 3 + ["error"] * 2
    assert all(answer["payload"]["data"]["seatBalances"]["edges"] for answer in answers[:3])  # type: ignore[index]
    refusal = answers[3]["payload"][0]  # type: ignore[index]
    assert refusal["extensions"]["code"] == "RATE_LIMITED"
    assert len(gateway.calls) == 3


def test_tool_calls_over_mcp_count_against_the_callers_rate(settings: Settings) -> None:
    """/mcp is no way around GATEWAY_CALLER_RATE either (the official MCP client over real
    HTTP): each tool call is one operation of the caller's rate, listing the tools is none;
    past the rate a call is an error result with RATE_LIMITED and calls nothing upstream,
    while another caller's calls go on."""
    from mcp.client.session import ClientSession

    from tests.test_mcp import DEMO, run

    def calling(count: int, arguments: dict[str, object]) -> Callable[..., Awaitable[Any]]:
        async def use(session: ClientSession) -> list[Any]:
            for _ in range(3):
                await session.list_tools()
            return [await session.call_tool("seat_balances", arguments) for _ in range(count)]

        return use

    mine = {**DEMO, "first": 2}
    theirs = {"customerId": OTHER_CUSTOMER_ID, "contractId": OTHER_CONTRACT_ID, "first": 2}
    with running_gateway(limited(settings, "3/minute")) as gateway:
        served = run(f"{gateway.url}/mcp", calling(3, mine))
        calls = len(gateway.calls)
        refused = run(f"{gateway.url}/mcp", calling(2, mine))
        calls_when_refused = len(gateway.calls) - calls
        other_token = {"Authorization": f"Bearer {OTHER_TOKEN}"}
        [other] = run(f"{gateway.url}/mcp", calling(1, theirs), headers=other_token)

    assert not any(result.is_error for result in served)
    assert all(result.structured_content["seats"] for result in served)
    for result in refused:
        assert result.is_error
        [error] = result.structured_content["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert result.content[0].text.startswith("RATE_LIMITED: Too many requests")
    assert calls_when_refused == 0
    assert not other.is_error and other.structured_content["seats"]
