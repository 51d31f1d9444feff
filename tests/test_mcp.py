"""``/mcp``: the Model Context Protocol over the gateway's own GraphQL pipeline, driven by the
official SDK's client over real HTTP against gateways on uvicorn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx2
import jwt
import pytest
from mcp.client.auth.utils import build_protected_resource_metadata_discovery_urls
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, OTHER_CUSTOMER_ID
from tests.support import gateway_process, running_gateway

T = TypeVar("T")
SECRET = "a-development-secret-of-32-bytes!"
DEMO = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}

SEATS = """
query($customerId: ID!, $contractId: ID!) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: 3) {
    pageInfo { hasNextPage endCursor }
    nodes {
      seatId
      balances { creditTypeId creditType { name } balance startingBalance }
      commits {
        commitId name type balance startDate endDate product { name }
        accessSchedule { amount startingAt endingBefore }
      }
      credits {
        creditId name balance startDate endDate product { name }
        accessSchedule { amount startingAt endingBefore }
      }
    }
  }
}
"""


def run(url: str, use: Callable[[ClientSession], Awaitable[T]], **client: Any) -> T:
    """``use`` with an initialized SDK client session on ``url``; by default the caller's
    bearer token is the stand-in's billing token (forwarding mode, as for GraphQL)."""
    client.setdefault("headers", {"Authorization": f"Bearer {DEMO_TOKEN}"})

    async def main() -> T:
        async with (
            httpx2.AsyncClient(timeout=30, **client) as http,
            streamable_http_client(url, http_client=http) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            return await use(session)

    return asyncio.run(main())


def hs256(**claims: Any) -> str:
    now = int(time.time())
    values = {"sub": "agent-7", "iat": now, "exp": now + 300, **claims}
    return jwt.encode(values, SECRET, algorithm="HS256")


def test_tools_are_listed_with_input_and_output_schemas(settings: Settings) -> None:
    """seat_balances has its input and output schemas; graphql_query is off by default; the
    client schema is a resource."""
    with running_gateway(settings) as gateway:

        async def use(session: ClientSession) -> Any:
            return await session.list_tools(), await session.list_resources()

        tools, resources = run(f"{gateway.url}/mcp", use)
        by_name = {tool.name: tool for tool in tools.tools}
        assert set(by_name) == {"seat_balances"}
        seats = by_name["seat_balances"]
        assert seats.input_schema["required"] == ["customerId", "contractId"]
        assert seats.input_schema["properties"]["first"]["maximum"] == 100
        assert seats.output_schema is not None
        assert {"seats", "pageInfo"} <= set(seats.output_schema["properties"])
        assert [str(r.uri) for r in resources.resources] == [
            "graphql://gateway/client-schema.graphql"
        ]


def test_seat_balances_answers_what_graphql_answers(settings: Settings) -> None:
    """The tool's structured content is the GraphQL answer's seats and pageInfo."""
    with running_gateway(settings) as gateway:
        expected = gateway.query(SEATS, DEMO)["seatBalances"]

        async def use(session: ClientSession) -> Any:
            arguments = {**DEMO, "first": 3, "includeCommitsAndCredits": True}
            return await session.call_tool("seat_balances", arguments)

        result = run(f"{gateway.url}/mcp", use)
        assert not result.is_error
        assert result.structured_content == {
            "seats": expected["nodes"],
            "pageInfo": expected["pageInfo"],
        }
        text = result.content[0].text  # type: ignore[union-attr]
        assert text.startswith(f"{len(expected['nodes'])} seat(s).")
        assert expected["nodes"][0]["seatId"] in text
        # Counted under the tool's name, on the MCP route.
        metrics = gateway.http.get(f"{gateway.url}/metrics").text
        assert 'operation="seat_balances",outcome="ok"' in metrics
        assert 'http="mcp"' in metrics


def test_errors_are_tool_results_with_codes(settings: Settings) -> None:
    """Arguments outside the input schema are refused before any upstream call; a GraphQL
    error is an isError result carrying extensions.code."""
    with running_gateway(settings) as gateway:

        async def use(session: ClientSession) -> Any:
            bad_first = await session.call_tool("seat_balances", {**DEMO, "first": 500})
            missing = await session.call_tool("seat_balances", {"customerId": "x"})
            upstream_before = len(gateway.calls)
            bad_id = await session.call_tool(
                "seat_balances", {"customerId": "not-a-uuid", "contractId": DEMO_CONTRACT_ID}
            )
            return bad_first, missing, upstream_before, bad_id

        bad_first, missing, upstream_before, bad_id = run(f"{gateway.url}/mcp", use)
        assert upstream_before == 0
        for result in (bad_first, missing):
            assert result.is_error
            assert result.structured_content["errors"][0]["extensions"]["code"] == (
                "BAD_USER_INPUT"
            )
        assert bad_id.is_error
        codes = [e["extensions"]["code"] for e in bad_id.structured_content["errors"]]
        assert codes and "Traceback" not in json.dumps(bad_id.structured_content)


def test_graphql_query_runs_queries_only_when_enabled(standin_url: str) -> None:
    """GATEWAY_MCP_EXECUTE=true offers graphql_query, which refuses a mutation."""
    settings = Settings(metronome_base_url=standin_url, mcp_execute=True)
    with running_gateway(settings) as gateway:

        async def use(session: ClientSession) -> Any:
            names = {tool.name for tool in (await session.list_tools()).tools}
            query = await session.call_tool(
                "graphql_query",
                {
                    "query": "query($c: ID!, $k: ID!) { seatBalances(customerId: $c, "
                    "contractId: $k, first: 1) { nodes { seatId } } }",
                    "variables": {"c": DEMO_CUSTOMER_ID, "k": DEMO_CONTRACT_ID},
                },
            )
            mutation = await session.call_tool("graphql_query", {"query": "mutation { x }"})
            return names, query, mutation

        names, query, mutation = run(f"{gateway.url}/mcp", use)
        assert "graphql_query" in names
        assert query.structured_content["seatBalances"]["nodes"]
        assert mutation.is_error
        assert mutation.structured_content["errors"][0]["extensions"]["code"] == (
            "OPERATION_NOT_ALLOWED"
        )


def test_trusted_document_operations_are_tools(standin_url: str, tmp_path: Path) -> None:
    """Each named query of the trusted documents is a snake_case tool whose input schema comes
    from its variables and whose description from its leading comment."""
    manifest = tmp_path / "documents.json"
    body = (
        "# The first seats of a contract.\n"
        "query FirstSeatIds($customerId: ID!, $contractId: ID!, $first: Int = 2) {\n"
        "  seatBalances(customerId: $customerId, contractId: $contractId, first: $first) {\n"
        "    nodes { seatId }\n  }\n}\n"
    )
    manifest.write_text(json.dumps({"abc": body}))
    settings = Settings(metronome_base_url=standin_url, trusted_documents=manifest)
    with running_gateway(settings) as gateway:
        expected = gateway.query(body, DEMO)

        async def use(session: ClientSession) -> Any:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
            return tools, await session.call_tool("first_seat_ids", DEMO)

        tools, result = run(f"{gateway.url}/mcp", use)
        tool = tools["first_seat_ids"]
        assert tool.description == "The first seats of a contract."
        assert tool.input_schema["required"] == ["customerId", "contractId"]
        assert tool.input_schema["properties"]["first"] == {"type": "integer", "default": 2}
        assert result.structured_content == expected


def test_callers_are_authorized_as_for_graphql(standin_url: str) -> None:
    """With JWT callers: no token is a 401 naming the resource metadata, which is served; a
    customer outside the token's claims is FORBIDDEN with no upstream call."""
    settings = Settings(
        metronome_base_url=standin_url,
        metronome_bearer_token=DEMO_TOKEN,
        jwt_secret=SECRET,
        jwt_issuer="https://issuer.example",
    )
    with running_gateway(settings) as gateway:
        refused = gateway.http.post(
            f"{gateway.url}/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert refused.status_code == 401
        # RFC 9728's location for the resource <base>/mcp: the well-known path, then /mcp.
        metadata_url = f"{gateway.url}/.well-known/oauth-protected-resource/mcp"
        assert refused.headers["www-authenticate"] == (f'Bearer resource_metadata="{metadata_url}"')
        metadata = gateway.http.get(metadata_url).json()
        assert metadata["resource"] == f"{gateway.url}/mcp"
        assert metadata["authorization_servers"] == ["https://issuer.example"]
        assert metadata["bearer_methods_supported"] == ["header"]
        # Every place the MCP SDK's client looks, without the header too (the path form,
        # then the root form), serves the same document.
        urls = build_protected_resource_metadata_discovery_urls(None, f"{gateway.url}/mcp")
        assert len(urls) == 2
        assert all(gateway.http.get(url).json() == metadata for url in urls)

        token = hs256(iss="https://issuer.example", metronome_customer_ids=[DEMO_CUSTOMER_ID])

        async def use(session: ClientSession) -> Any:
            other = await session.call_tool(
                "seat_balances", {"customerId": OTHER_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
            )
            calls = len(gateway.calls)
            own = await session.call_tool("seat_balances", {**DEMO, "first": 1})
            return other, calls, own

        other, calls, own = run(
            f"{gateway.url}/mcp", use, headers={"Authorization": f"Bearer {token}"}
        )
        assert other.is_error and calls == 0
        assert other.structured_content["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        assert not own.is_error and own.structured_content["seats"]
        # The caller's JWT never went upstream: the gateway's billing token did.
        assert all(token not in json.dumps(call.headers) for call in gateway.calls)


def test_off_means_404(standin_url: str) -> None:
    """GATEWAY_MCP=false: no /mcp."""
    with running_gateway(Settings(metronome_base_url=standin_url, mcp=False)) as gateway:
        assert gateway.http.post(f"{gateway.url}/mcp", json={}).status_code == 404


class Alternating(httpx2.AsyncBaseTransport):
    """Sends each request to the next of several gateways: replicas without affinity."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.sent: list[int] = []
        self.inner = httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[len(self.sent) % len(self.ports)]
        self.sent.append(port)
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_two_replicas_answer_one_client_without_sessions(settings: Settings) -> None:
    """Stateless: initialize on one gateway, list and call on the other."""
    with running_gateway(settings) as first, running_gateway(settings) as second:
        ports = [int(g.url.rsplit(":", 1)[1]) for g in (first, second)]
        transport = Alternating(ports)

        async def use(session: ClientSession) -> Any:
            await session.list_tools()
            return await session.call_tool("seat_balances", {**DEMO, "first": 1})

        result = run(f"{first.url}/mcp", use, transport=transport)
        assert not result.is_error and result.structured_content["seats"]
        assert set(transport.sent) == set(ports)
        assert first.calls or second.calls


@pytest.mark.process  # starts `gateway serve`
def test_gateway_serve_with_no_configuration_serves_mcp_on_the_demo_data() -> None:
    """As the README's quick start runs it (the embedded stand-in, nothing configured), the
    SDK's client lists the tools and reads the demo contract's seats through /mcp, with no
    token (the stand-in's demo token answers, as for GraphQL)."""
    with gateway_process() as (_, url, _output):

        async def use(session: ClientSession) -> Any:
            tools = await session.list_tools()
            result = await session.call_tool("seat_balances", {**DEMO, "first": 2})
            return tools, result

        tools, result = run(f"{url}/mcp", use, headers={})
    assert "seat_balances" in {tool.name for tool in tools.tools}
    assert not result.is_error
    assert len(result.structured_content["seats"]) == 2
    assert result.structured_content["pageInfo"]["hasNextPage"] is True


def test_any_query_tool_and_trusted_documents_only_are_refused_together(tmp_path: Path) -> None:
    """GATEWAY_MCP_EXECUTE (any query document for agents) contradicts
    GATEWAY_TRUSTED_DOCUMENTS_ONLY: the configuration is refused, naming both."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"abc": "query Q { __typename }"}))
    with pytest.raises(ValueError, match=r"GATEWAY_MCP_EXECUTE.*GATEWAY_TRUSTED_DOCUMENTS_ONLY"):
        Settings(trusted_documents=manifest, trusted_documents_only=True, mcp_execute=True)
