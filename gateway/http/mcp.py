"""``/mcp``: the Model Context Protocol for AI agents, on the one GraphQL pipeline.

Served with the official SDK (``mcp``): its Streamable HTTP transport, stateless (every POST
stands alone, so any replica answers any request) and answering JSON. Every tool call is a
GraphQL operation run by ``schema.execute`` with the context the GraphQL view would build for
the same HTTP request (:class:`~gateway.http.context.RequestContexts`): the same caller and
per-customer authorization, the same billing credential, limits, cost, page cache and loaders.

The tools (their names are the contract):

* ``seat_balances``: the gateway's own document (:data:`SEAT_BALANCES`), validated at start-up,
  answering structured content under :data:`SEAT_BALANCES_OUTPUT` and a short text;
* one tool per named query operation of the trusted documents, named in snake_case, its input
  schema derived from the operation's variable definitions (:func:`variables_schema`);
* ``graphql_query`` (any query document), only when asked for (``GATEWAY_MCP_EXECUTE``).

The client schema's SDL is a resource. A GraphQL error is a tool result with ``isError`` whose
structured content carries the errors (with ``extensions.code``); arguments that do not match
the tool's input schema are refused the same way before anything runs.

With caller authentication, :class:`McpEndpoint` answers a request without a valid bearer token
with a ``401`` naming the protected resource metadata (RFC 9728, :func:`resource_metadata`).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import orjson
from graphql import (
    GraphQLEnumType,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    parse,
    type_from_ast,
    validate,
    value_from_ast_untyped,
)
from jsonschema import Draft202012Validator
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.http.auth import AuthenticationFailed, CallerAuthenticator
from gateway.http.state import request_state
from gateway.schema import RequestContext, shape_error

ContextFactory = Callable[[Request], RequestContext]
# Counts one operation against its caller's rate: None when it fits, else the refusal's
# message and code (gateway.http.ratelimit.operation_admission).
Admission = Callable[[Scope], Awaitable[tuple[str, str] | None]]

# RFC 9728's well-known location of /mcp's metadata (section 3.1: inserted between the host and
# the resource's path), which 401s name; the document is served at the root form too, where
# clients that do not look at the path, and this gateway before, look for it.
METADATA_PATH = "/.well-known/oauth-protected-resource/mcp"
ROOT_METADATA_PATH = "/.well-known/oauth-protected-resource"
SCHEMA_URI = "graphql://gateway/client-schema.graphql"

# The gateway's own document for `seat_balances`: what an agent asks about seats, the include
# flags as @include on variables (one document, validated once).
SEAT_BALANCES = """
query SeatBalancesTool(
  $customerId: ID!
  $contractId: ID!
  $seatIds: [String!]
  $first: Int = 25
  $after: String
  $includeCommitsAndCredits: Boolean! = false
  $includeLedgers: Boolean! = false
  $coveringDate: DateTime
) {
  seatBalances(
    customerId: $customerId
    contractId: $contractId
    seatIds: $seatIds
    first: $first
    after: $after
    coveringDate: $coveringDate
  ) {
    pageInfo { hasNextPage endCursor }
    nodes {
      seatId
      balances { creditTypeId creditType { name } balance startingBalance }
      commits @include(if: $includeCommitsAndCredits) {
        commitId name type balance startDate endDate product { name }
        accessSchedule { amount startingAt endingBefore }
        ledgerEntries @include(if: $includeLedgers) { type amount timestamp }
      }
      credits @include(if: $includeCommitsAndCredits) {
        creditId name balance startDate endDate product { name }
        accessSchedule { amount startingAt endingBefore }
        ledgerEntries @include(if: $includeLedgers) { type amount timestamp }
      }
    }
  }
}
"""

_STRING = {"type": "string"}
_NUMBER = {"type": "number"}
_DATE_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_STRING = {"type": ["string", "null"]}
_SCHEDULE = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"amount": _NUMBER, "startingAt": _DATE_TIME, "endingBefore": _DATE_TIME},
    },
}
_LEDGER = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {"type": _STRING, "amount": _NUMBER, "timestamp": _DATE_TIME},
    },
}


def _held(id_field: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                id_field: _STRING,
                "name": _NULLABLE_STRING,
                "balance": _NUMBER,
                "startDate": _DATE_TIME,
                "endDate": {"type": ["string", "null"], "format": "date-time"},
                "product": {
                    "type": ["object", "null"],
                    "properties": {"name": _STRING},
                },
                "accessSchedule": {"anyOf": [_SCHEDULE, {"type": "null"}]},
                "ledgerEntries": _LEDGER,
            },
            "required": [id_field, "balance"],
        },
    }


SEAT_BALANCES_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "customerId": {"type": "string", "description": "The customer (UUID)."},
        "contractId": {"type": "string", "description": "The seat-based contract (UUID)."},
        "seatIds": {
            "type": "array",
            "items": _STRING,
            "description": "Only these seats (the billing API's seat ids).",
        },
        "first": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 25,
            "description": "Seats per page.",
        },
        "after": {"type": "string", "description": "The page after this cursor (endCursor)."},
        "includeCommitsAndCredits": {
            "type": "boolean",
            "default": False,
            "description": "Also each seat's commits and credits (names, products, schedules).",
        },
        "includeLedgers": {
            "type": "boolean",
            "default": False,
            "description": "Also the ledger entries of those commits and credits.",
        },
        "coveringDate": {
            **_DATE_TIME,
            "description": "Only commits and credits whose access covers this instant.",
        },
    },
    "required": ["customerId", "contractId"],
    "additionalProperties": False,
}

SEAT_BALANCES_OUTPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "seats": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "seatId": _STRING,
                    "balances": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "creditTypeId": _STRING,
                                "creditType": {
                                    "type": ["object", "null"],
                                    "properties": {"name": _STRING},
                                },
                                "balance": _NUMBER,
                                "startingBalance": _NUMBER,
                            },
                            "required": ["creditTypeId", "balance", "startingBalance"],
                        },
                    },
                    "commits": _held("commitId"),
                    "credits": _held("creditId"),
                },
                "required": ["seatId", "balances"],
            },
        },
        "pageInfo": {
            "type": "object",
            "properties": {"hasNextPage": {"type": "boolean"}, "endCursor": _NULLABLE_STRING},
            "required": ["hasNextPage"],
        },
        # Only on an error result (isError): the GraphQL errors, each with extensions.code.
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}

GRAPHQL_QUERY_INPUT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "A GraphQL query document."},
        "variables": {"type": "object", "description": "The operation's variables."},
        "operationName": {"type": "string", "description": "The operation to run."},
    },
    "required": ["query"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Tool:
    """One MCP tool: the GraphQL document it runs (``None``: the caller's, ``graphql_query``)."""

    name: str
    description: str
    input_schema: dict[str, Any]
    document: str | None
    operation_name: str | None = None
    output_schema: dict[str, Any] | None = None

    def validator(self) -> Draft202012Validator:
        return Draft202012Validator(
            self.input_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def listed(self) -> types.Tool:
        return types.Tool(
            name=self.name,
            description=self.description,
            input_schema=self.input_schema,
            output_schema=self.output_schema,
            annotations=types.ToolAnnotations(read_only_hint=True, open_world_hint=False),
        )


def snake_case(name: str) -> str:
    """``SeatsOfAcme`` -> ``seats_of_acme``; ``getHTTPThing`` -> ``get_http_thing``."""
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", spaced)
    return re.sub(r"[^a-z0-9_]+", "_", spaced.lower()).strip("_")


def input_type_schema(kind: GraphQLInputType) -> dict[str, Any]:
    """A GraphQL input type as JSON Schema (nullability is the caller's: see
    :func:`variables_schema`)."""
    if isinstance(kind, GraphQLNonNull):
        return input_type_schema(kind.of_type)
    if isinstance(kind, GraphQLList):
        return {"type": "array", "items": input_type_schema(kind.of_type)}
    if isinstance(kind, GraphQLEnumType):
        return {"type": "string", "enum": list(kind.values)}
    if isinstance(kind, GraphQLInputObjectType):
        return {
            "type": "object",
            "properties": {name: input_type_schema(f.type) for name, f in kind.fields.items()},
            "required": [
                name
                for name, f in kind.fields.items()
                if isinstance(f.type, GraphQLNonNull) and f.default_value is None
            ],
        }
    assert isinstance(kind, GraphQLScalarType)
    return dict(_SCALARS.get(kind.name, {}))


_SCALARS: dict[str, dict[str, Any]] = {
    "Int": {"type": "integer"},
    "Float": {"type": "number"},
    "String": {"type": "string"},
    "ID": {"type": "string"},
    "Boolean": {"type": "boolean"},
    "DateTime": _DATE_TIME,
}


def variables_schema(schema: GraphQLSchema, operation: OperationDefinitionNode) -> dict[str, Any]:
    """The JSON Schema of an operation's variables: a non-null variable without a default is
    required; defaults are given as ``default``."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        kind = type_from_ast(schema, definition.type)
        assert kind is not None  # the document validated against the schema
        property_schema = input_type_schema(kind)  # type: ignore[arg-type]
        if definition.default_value is not None:
            property_schema["default"] = value_from_ast_untyped(definition.default_value)
        elif isinstance(kind, GraphQLNonNull):
            required.append(name)
        properties[name] = property_schema
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def trusted_document_tools(
    schema: GraphQLSchema, manifest: Mapping[str, str], taken: set[str]
) -> list[Tool]:
    """One tool per named query operation of the trusted documents (the first of a name)."""
    tools: list[Tool] = []
    for body in manifest.values():
        document = parse(body)
        for definition in document.definitions:
            if not (
                isinstance(definition, OperationDefinitionNode)
                and definition.operation == OperationType.QUERY
                and definition.name is not None
            ):
                continue
            operation = definition.name.value
            name = snake_case(operation)
            if not name or name in taken:
                continue
            taken.add(name)
            tools.append(
                Tool(
                    name=name,
                    description=_description(body, definition)
                    or f"Runs the trusted GraphQL query `{operation}`.",
                    input_schema=variables_schema(schema, definition),
                    document=body,
                    operation_name=operation,
                )
            )
    return tools


def _description(body: str, operation: OperationDefinitionNode) -> str | None:
    """The operation's description, else the comment lines right above it."""
    described = getattr(operation, "description", None)
    if described is not None and described.value.strip():
        return str(described.value).strip()
    if operation.loc is None:
        return None
    lines = body[: operation.loc.start].rstrip().splitlines()
    comment: list[str] = []
    while lines and lines[-1].strip().startswith("#"):
        comment.insert(0, lines.pop().strip().lstrip("#").strip())
    return " ".join(line for line in comment if line) or None


class GraphQLTools:
    """The MCP server: its tools, the SDL resource, and how each call runs."""

    def __init__(
        self,
        schema: Any,
        contexts: ContextFactory,
        *,
        sdl: str,
        trusted: Mapping[str, str] | None,
        execute: bool,
        admission: Admission | None = None,
    ) -> None:
        self.schema = schema
        self.contexts = contexts
        self.admission = admission  # GATEWAY_CALLER_RATE, when set
        self.sdl = sdl
        graphql_schema: GraphQLSchema = schema.graphql_schema
        errors = validate(graphql_schema, parse(SEAT_BALANCES))
        if errors:  # the gateway's own document: a failure here is the gateway's bug
            raise RuntimeError(f"seat_balances' document does not validate: {errors[0].message}")
        tools = [
            Tool(
                name="seat_balances",
                description=(
                    "The seats of a customer's seat-based contract with their balances per "
                    "credit type (and, when asked, their commits and credits with names, "
                    "products, access schedules and ledgers), one page at a time."
                ),
                input_schema=SEAT_BALANCES_INPUT,
                document=SEAT_BALANCES,
                operation_name="SeatBalancesTool",
                output_schema=SEAT_BALANCES_OUTPUT,
            )
        ]
        if execute:
            tools.append(
                Tool(
                    name="graphql_query",
                    description=(
                        "Runs any GraphQL query document against the gateway (see the schema "
                        "resource); mutations and subscriptions are refused."
                    ),
                    input_schema=GRAPHQL_QUERY_INPUT,
                    document=None,
                )
            )
        if trusted:
            tools += trusted_document_tools(graphql_schema, trusted, {t.name for t in tools})
        self.tools = {tool.name: tool for tool in tools}
        self.validators = {tool.name: tool.validator() for tool in tools}
        self.server: Server[Any] = Server(
            "seat-balance-gateway",
            version="0.1.0",
            instructions=(
                "Seat balances of Metronome seat-based contracts. Call seat_balances with a "
                "customerId and contractId; read the schema resource for other queries."
            ),
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_list_resources=self._list_resources,
            on_read_resource=self._read_resource,
        )

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool.listed() for tool in self.tools.values()])

    async def _list_resources(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        return types.ListResourcesResult(
            resources=[
                types.Resource(
                    uri=SCHEMA_URI,
                    name="client-schema.graphql",
                    description="The gateway's GraphQL schema (SDL), as its clients see it.",
                    mime_type="application/graphql",
                )
            ]
        )

    async def _read_resource(
        self, ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        if str(params.uri) != SCHEMA_URI:
            raise ValueError(f"No resource {params.uri}")
        return types.ReadResourceResult(
            contents=[
                types.TextResourceContents(
                    uri=SCHEMA_URI, mime_type="application/graphql", text=self.sdl
                )
            ]
        )

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        request = ctx.request
        assert isinstance(request, Request)  # the Streamable HTTP transport's
        tool = self.tools.get(params.name)
        if self.admission is not None:
            # Each tool call is one operation of the caller's rate, counted before its
            # arguments are read, as the operations of a request to /graphql are: /mcp is no
            # way around the rate.
            over_rate = await self.admission(request.scope)
            if over_rate is not None:
                message, code = over_rate
                request_state(request.scope).access["rateLimited"] = True
                if tool is not None:  # an unknown name is no label (the metrics' are bounded)
                    _account(request, tool.name, None, [code])
                return _failure([_error(message, code)])
        if tool is None:
            return _failure([_error(f"No tool named {params.name!r}.", "BAD_USER_INPUT")])
        state = request_state(request.scope)
        state.access.update(tool=tool.name)
        arguments = dict(params.arguments or {})
        problems = sorted(self.validators[tool.name].iter_errors(arguments), key=str)
        if problems:
            where = "/".join(str(part) for part in problems[0].absolute_path)
            message = f"Invalid arguments{f' at {where}' if where else ''}: {problems[0].message}"
            _account(request, tool.name, None, ["BAD_USER_INPUT"])
            return _failure([_error(message, "BAD_USER_INPUT")])
        if tool.document is None:
            query = arguments["query"]
            variables = arguments.get("variables")
            operation_name = arguments.get("operationName")
            refusal = _not_a_query(query, operation_name)
            if refusal is not None:
                _account(request, tool.name, None, [refusal["extensions"]["code"]])
                return _failure([refusal])
        else:
            query, variables, operation_name = tool.document, arguments, tool.operation_name
        context = self.contexts(request)
        result = await self.schema.execute(
            query,
            variable_values=variables,
            operation_name=operation_name,
            context_value={"request": request, "response": Response(), "gateway": context},
        )
        errors: list[dict[str, Any]] = [
            dict(shape_error(error).formatted) for error in result.errors or ()
        ]
        codes = [str((error.get("extensions") or {}).get("code")) for error in errors]
        _account(request, tool.name, context, codes, answered=_answered(result.data))
        if errors:
            state.answered_errors = True
            return _failure(errors, result.data)
        data = result.data or {}
        if tool.name == "seat_balances":
            connection = data.get("seatBalances") or {}
            structured = {
                "seats": connection.get("nodes", []),
                "pageInfo": connection.get("pageInfo", {"hasNextPage": False}),
            }
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=seats_text(structured))],
                structured_content=structured,
            )
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=_json(data))],
            structured_content=data,
        )


def seats_text(structured: Mapping[str, Any]) -> str:
    """A short rendering of a page of seats for the model to read."""
    lines: list[str] = []
    for seat in structured["seats"]:
        balances = ", ".join(
            f"{(b.get('creditType') or {}).get('name') or b['creditTypeId']}: {b['balance']:g}"
            for b in seat["balances"]
        )
        lines.append(f"- seat {seat['seatId']}: {balances or 'no balances'}")
        for held in (*seat.get("commits", ()), *seat.get("credits", ())):
            product = (held.get("product") or {}).get("name")
            lines.append(
                f"  - {held.get('name') or held.get('commitId') or held.get('creditId')}"
                f"{f' ({product})' if product else ''}: {held['balance']:g}"
            )
    page = structured["pageInfo"]
    more = (
        f"More seats: pass after={page.get('endCursor')!r}."
        if page.get("hasNextPage")
        else "No more seats."
    )
    return "\n".join([f"{len(structured['seats'])} seat(s).", *lines, more])


def _not_a_query(query: str, operation_name: str | None) -> dict[str, Any] | None:
    """``graphql_query`` runs queries only: the refusal of a mutation or subscription (a
    document that does not parse is left to the pipeline, which says why)."""
    try:
        document = parse(query)
    except GraphQLError:
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        o
        for o in operations
        if operation_name is None or (o.name is not None and o.name.value == operation_name)
    ]
    if any(o.operation != OperationType.QUERY for o in chosen[:1] or operations):
        return _error("graphql_query runs queries only.", "OPERATION_NOT_ALLOWED")
    return None


def _answered(data: Mapping[str, Any] | None) -> bool:
    return any(value is not None for value in (data or {}).values())


def _account(
    request: Request,
    tool: str,
    context: RequestContext | None,
    codes: list[str],
    *,
    answered: bool = False,
) -> None:
    """Tells the access log and the metrics about the call: the tool's name is the operation
    label (a bounded set: the tools are fixed at start-up)."""
    request_state(request.scope).access.update(
        route=("mcp", "tool"),
        operation=tool,
        upstreamCalls=context.upstream_calls if context else 0,
        errorCodes=codes,
        outcome="ok" if not codes else ("partial" if answered else "error"),
    )


def _error(message: str, code: str) -> dict[str, Any]:
    return {"message": message, "extensions": {"code": code}}


def _failure(errors: list[dict[str, Any]], data: Any = None) -> types.CallToolResult:
    structured: dict[str, Any] = {"errors": errors}
    if data:
        structured["data"] = data
    text = "\n".join(
        f"{(error.get('extensions') or {}).get('code', 'ERROR')}: {error['message']}"
        for error in errors
    )
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=text)],
        structured_content=structured,
        is_error=True,
    )


def _json(data: Any) -> str:
    return orjson.dumps(data).decode()


class McpEndpoint:
    """The ASGI endpoint of ``/mcp``: caller authentication (when configured), then the SDK's
    stateless Streamable HTTP transport. :meth:`run` belongs in the app's lifespan."""

    def __init__(self, tools: GraphQLTools, authenticator: CallerAuthenticator | None) -> None:
        self.tools = tools
        self.authenticator = authenticator
        self.manager = StreamableHTTPSessionManager(
            app=tools.server, stateless=True, json_response=True
        )

    @asynccontextmanager
    async def run(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.authenticator is not None:
            refusal = await self._authenticate(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.manager.handle_request(scope, receive, send)

    async def _authenticate(self, scope: Scope) -> Response | None:
        assert self.authenticator is not None
        header = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        scheme, _, token = header.decode("latin-1").partition(" ")
        metadata = f'resource_metadata="{base_url(Request(scope))}{METADATA_PATH}"'
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("Send 'Authorization: Bearer <JWT>'.", f"Bearer {metadata}")
        try:
            caller = await self.authenticator.authenticate(token.strip())
        except AuthenticationFailed as failure:
            if failure.status != 401:
                return JSONResponse(
                    {"error": failure.code.lower(), "error_description": failure.message},
                    status_code=failure.status,
                )
            return _unauthorized(
                failure.message, f'Bearer error="invalid_token", {metadata}', "invalid_token"
            )
        state = request_state(scope)
        state.caller = caller
        state.access["subject"] = caller.subject
        return None


def _unauthorized(message: str, challenge: str, error: str = "unauthorized") -> Response:
    return JSONResponse(
        {"error": error, "error_description": message},
        status_code=401,
        headers={"WWW-Authenticate": challenge},
    )


def base_url(request: Request) -> str:
    """Where the caller reached the gateway: scheme and host of its request."""
    return f"{request.url.scheme}://{request.url.netloc}"


def resource_metadata(issuer: str | None) -> Callable[[Request], Response]:
    """The OAuth protected resource metadata of ``/mcp`` (RFC 9728)."""

    def endpoint(request: Request) -> Response:
        return JSONResponse(
            {
                "resource": f"{base_url(request)}/mcp",
                "authorization_servers": [issuer] if issuer else [],
                "bearer_methods_supported": ["header"],
                "resource_name": "Seat balance GraphQL gateway (MCP)",
            }
        )

    return endpoint


__all__ = [
    "METADATA_PATH",
    "ROOT_METADATA_PATH",
    "SCHEMA_URI",
    "GraphQLTools",
    "McpEndpoint",
    "Tool",
    "input_type_schema",
    "resource_metadata",
    "snake_case",
    "variables_schema",
]
