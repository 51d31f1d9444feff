"""The one GraphQL-over-HTTP handler: Strawberry's ASGI view, through its own hooks.

Every request to ``/graphql`` (GET, POST, GraphiQL) goes through :class:`GraphQLView`, a subclass
of ``strawberry.asgi.GraphQL`` routed on the FastAPI app without FastAPI's dependency injection
(which cost as much CPU as executing an operation; BENCHMARKS.md). What it adds, each through a
hook of the view:

* ``get_context``: the request's :class:`~gateway.schema.RequestContext` (fresh loaders, the
  caller's credential) beside Starlette's ``request`` and ``response``;
* ``run``: the response media type is negotiated by ``Accept``
  (:func:`gateway.http.media.negotiate`, which the guard's and authentication's refusals share):
  ``application/graphql-response+json`` or ``application/json``, else a ``406``; every answer
  carries ``Vary: Accept``; the view's refusals (``HTTPException``) answer a GraphQL error with
  ``extensions.code`` ``BAD_REQUEST`` instead of plain text
  (:func:`gateway.http.responses.refusal_response`), so every answer of ``/graphql`` is a
  GraphQL response;
* ``parse_json``/``parse_http_body``/``parse_query_params``: a body that is not a GraphQL
  request (a JSON value that is not an object or a list of objects, an ``operationName`` that is
  not a string) or a GET whose ``variables``/``extensions`` is not an object is a ``400``;
* ``process_result``: every error leaves shaped (:func:`~gateway.schema.shape_error`), and the
  access log and the metrics learn how the operation went; under
  ``application/graphql-response+json`` a request error (nothing executed) has no ``data``;
* ``create_response``: the negotiated content type, and ``400`` for a request error under
  ``application/graphql-response+json`` (the GraphQL-over-HTTP specification's status codes);
* ``encode_json``/``decode_json``: orjson; ``render_graphql_ide``: the gateway's own GraphiQL;
* ``parse_http_body``/``execute_single``: persisted documents (APQ, trusted documents, see
  :mod:`gateway.http.persisted`) resolve to query text before Strawberry executes anything, and a
  refusal (``PERSISTED_QUERY_NOT_FOUND``...) is a request error in the negotiated media type;
* ``execute_operation``: each operation of a batch gets its own request context sharing the
  request's loaders (identical upstream requests across the batch are made once, and the
  upstream-call budget is the batch's);
* ``run``: ``Cache-Control`` on every answer: ``private`` (with ``max-age`` of the time the
  pages it used have left when the page cache is on) on an answer without errors,
  ``no-store`` on any answer with an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, fields
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.websockets import WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.http.streaming import SSETransport
from strawberry.http.types import QueryParams
from strawberry.subscriptions import GRAPHQL_SSE_PROTOCOL, GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from gateway.http.media import (
    APPLICATION_JSON,
    GRAPHQL_RESPONSE_JSON,
    accept_of,
    negotiate,
    prefers_event_stream,
)
from gateway.http.persisted import PersistedDocuments
from gateway.http.responses import RESPONSE_TOO_LARGE, refusal_response, too_large_response
from gateway.http.state import request_state
from gateway.schema import RequestContext, shape_error
from gateway.schema.errors import refused_for_credentials

ContextFactory = Callable[[Request], RequestContext]
# Verifies a WebSocket connection's credentials (its `connection_init` payload's, else its
# upgrade request's `Authorization`) into the connection's context; False refuses it.
ConnectionCheck = Callable[[RequestContext, Any, str | None], Awaitable[bool]]
# Whether one more operation of a WebSocket connection's caller fits its rate: None, or the
# refusal's message and code.
OperationAdmission = Callable[[Any], Awaitable[tuple[str, str] | None]]

# The 400 for a request that names no document: what a request may carry instead (Strawberry's
# own "No GraphQL query found" sends a Relay or persisted-documents client looking for `query`).
NO_DOCUMENT = (
    "The request names no GraphQL document: send `query` (the document's text), `documentId` "
    "or `doc_id` (a trusted document's id), or `extensions.persistedQuery` (an APQ hash)."
)
# The `documentId` (or Relay's `doc_id`) of each operation of the request being parsed (the
# GraphQL-over-HTTP persisted documents proposal), which Strawberry's GraphQLRequestData has no
# field for.
_DOCUMENT_IDS: ContextVar[list[Any] | None] = ContextVar("document_ids", default=None)
# Strawberry's request data's fields, looked up once (``dataclasses.fields`` per request cost
# more than copying them).
_REQUEST_DATA_FIELDS = tuple(f.name for f in fields(GraphQLRequestData))


@dataclass
class PersistedRequestData(GraphQLRequestData):
    """A request whose persisted document was resolved: the refusal to answer instead of
    executing, or the APQ hash to store the query under once it ran."""

    refusal: Any = None
    register: str | None = None


class ConnectionOperations(BaseGraphQLTransportWSHandler[dict[str, Any], None]):
    """graphql-transport-ws, with a request context per operation: Strawberry hands every
    operation of a connection the one context made when it opened, and a connection lives for
    hours; each operation gets its own loaders, budget and work (the connection's caller and
    credential), closed when it ends; and each is one operation of the caller's rate
    (``GATEWAY_CALLER_RATE``), as a request's are: a connection is no way around it."""

    async def run_operation(self, operation: Any) -> None:
        connection = self.__dict__.setdefault("_connection_context", self.context)
        admission = getattr(self.view, "operation_admission", None)  # GraphQLView's
        if admission is not None:
            refusal = await admission(connection["request"].scope)
            if refusal is not None:
                message, code = refusal
                await operation.send_initial_errors(
                    [GraphQLError(message, extensions={"code": code})]
                )
                return
        own = connection["gateway"].detached()
        own.streaming = True
        own.projections = {}
        # Strawberry's run_operation reads self.context before its first await, and nothing
        # runs between this assignment and that read: each operation runs with its own.
        self.context = {**connection, "gateway": own}
        try:
            await super().run_operation(operation)
        finally:
            own.close()


class TextFrames(ASGIWebSocketAdapter):
    """graphql-transport-ws messages in text frames. Strawberry sends a binary frame when
    ``encode_json`` returns bytes (orjson's), and the protocol's clients refuse those: gql
    raises "Binary data received", graphql-ws in a browser gets a Blob it cannot parse."""

    async def send_json(self, message: Any) -> None:
        try:
            await self.ws.send_text(self.view.encode_json_string(message))
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class EventStream(SSETransport):
    """graphql-sse's distinct connections mode, for a request that prefers it to JSON
    (:func:`~gateway.http.media.prefers_event_stream`). Strawberry's own takes any request whose
    Accept names ``text/event-stream`` at all, and urql names it on every query, after JSON: its
    queries would all become event streams (uncompressed, uncached, another status code)."""

    def accepts(self, accept: str) -> bool:
        return prefers_event_stream(accept)


class GraphQLView(GraphQL[dict[str, Any], None]):
    graphql_transport_ws_handler_class = ConnectionOperations
    stream_transport_classes_by_protocol = {
        **GraphQL.stream_transport_classes_by_protocol,
        GRAPHQL_SSE_PROTOCOL: EventStream,
    }
    websocket_adapter_class = TextFrames

    def __init__(
        self,
        schema: Any,
        *,
        context_factory: ContextFactory,
        graphiql_page: Callable[[], HTMLResponse] | None,
        persisted: PersistedDocuments,
        cache_ttl: float = 0,
        max_response_bytes: int = 8_000_000,
        connection_check: ConnectionCheck | None = None,
        allowed_origins: tuple[str, ...] = (),
        operation_admission: OperationAdmission | None = None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql_page is not None else None,
            allow_queries_via_get=True,
            # Subscriptions: graphql-transport-ws over a WebSocket, and graphql-sse's distinct
            # connections mode (POST with `Accept: text/event-stream`); not the legacy
            # subscriptions-transport-ws.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL, GRAPHQL_SSE_PROTOCOL),
            # Browsers may open a WebSocket from any page: only the gateway's own origin and
            # the configured CORS origins may.
            allowed_origins=allowed_origins,
            max_subscriptions_per_connection=20,
        )
        self._connection_check = connection_check
        self.operation_admission = operation_admission
        self._context_factory = context_factory
        self._graphiql_page = graphiql_page
        self._persisted = persisted
        self._cache_ttl = cache_ttl
        self._max_response_bytes = max_response_bytes

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        context = self._context_factory(request)  # also the request state's context
        return {"request": request, "response": response, "gateway": context}

    async def on_ws_connect(self, context: Any) -> Any:
        """A WebSocket's credentials, checked once at ``connection_init``: a browser cannot set
        headers on a WebSocket, so its ``Authorization`` travels in the payload (the upgrade
        request's header counts for other clients). Refused: closed with 4403."""
        params = context.get("connection_params") or {}
        authorization = params.get("Authorization", params.get("authorization"))
        if authorization is not None and not isinstance(authorization, str):
            raise ConnectionRejectionError()
        if self._connection_check is not None and not await self._connection_check(
            context["gateway"], context["request"].scope, authorization
        ):
            raise ConnectionRejectionError()
        return UNSET

    async def execute_operation(
        self,
        request: Any,
        request_adapter: Any,
        request_data: GraphQLRequestData | list[GraphQLRequestData],
        context: Any,
        root_value: Any,
        sub_response: Any,
    ) -> Any:
        if isinstance(request_data, list) and isinstance(context, dict):
            # Strawberry runs a batch's operations concurrently with one context; each needs
            # its own per-operation state (name, executor), over the request's shared loaders.
            shared = context["gateway"]
            request_state(request.scope).batch = len(request_data)
            # Started one loop turn apart, so that each operation's synchronous steps (parse,
            # validate, limits) take a turn of their own and other requests are served between
            # them, instead of the whole batch's in one turn (bench/amplification.py: /healthz
            # waited 160 ms behind ten refused 2,000-token documents). They still run together.
            operations: list[asyncio.Future[ExecutionResult]] = []
            try:
                for data in request_data:
                    operations.append(
                        asyncio.ensure_future(
                            self.execute_single(
                                request=request,
                                request_adapter=request_adapter,
                                sub_response=sub_response,
                                context={**context, "gateway": shared.for_operation()},
                                root_value=root_value,
                                request_data=data,
                            )
                        )
                    )
                    await asyncio.sleep(0)
                return await asyncio.gather(*operations)
            finally:
                for operation in operations:
                    operation.cancel()  # a no-op for those done; the others' client left
        if (
            isinstance(context, dict)
            and not isinstance(request_data, list)
            and request_data.protocol == "sse"
        ):
            if not request_data.query or (
                isinstance(request_data, PersistedRequestData) and request_data.refusal is not None
            ):
                # Nothing to stream (no document, or a persisted one refused): the refusal is
                # answered as any request's is.
                return await self.execute_single(
                    request, request_adapter, sub_response, context, root_value, request_data
                )
            context["gateway"].streaming = True  # a subscription may run (schema.pipeline)
            context["gateway"].projections = {}
        return await super().execute_operation(
            request, request_adapter, request_data, context, root_value, sub_response
        )

    async def execute_single(
        self,
        request: Any,
        request_adapter: Any,
        sub_response: Any,
        context: Any,
        root_value: Any,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        if isinstance(request_data, PersistedRequestData) and request_data.refusal is not None:
            # Nothing runs: a request error, as a parse failure would be.
            return ExecutionResult(data=None, errors=[request_data.refusal])
        if not request_data.query:
            raise HTTPException(400, NO_DOCUMENT)
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if (
            isinstance(request_data, PersistedRequestData)
            and request_data.register is not None
            and request_data.query is not None
            and not _request_error(result)
            and not any(refused_for_credentials(error) for error in result.errors or ())
        ):
            await self._persisted.register(request_data.register, request_data.query, request.scope)
        return result

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if request.scope["type"] == "websocket":
            return await super().run(request, context, root_value)  # graphql-transport-ws
        media_type = negotiate(accept_of(request.scope["headers"]))
        request_state(request.scope).media_type = media_type
        try:
            # A browser asking for the IDE accepts HTML, not JSON: only GraphQL answers negotiate.
            if (
                media_type is None
                and not _wants_event_stream(request)
                and not self.should_render_graphql_ide(self.request_adapter_class(request))
            ):
                raise HTTPException(
                    406,
                    f"The response is {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}; "
                    "the Accept header allows neither.",
                )
            response = await super().run(request, context, root_value)
            if isinstance(response, StreamingResponse):
                return response  # an event stream: its own headers, each message bounded
            if len(response.body) > self._max_response_bytes:
                response = self._too_large(request, response)
        except HTTPException as refusal:
            code = "NOT_ACCEPTABLE" if refusal.status_code == 406 else "BAD_REQUEST"
            response = refusal_response(refusal.reason, refusal.status_code, media_type, code=code)
            if refusal.status_code == 405:
                response.headers["Allow"] = "GET, POST"
            request_state(request.scope).answered_errors = True
        if response.headers.get("content-type", "").startswith(
            ("application/json", GRAPHQL_RESPONSE_JSON)
        ):
            response.headers["Cache-Control"] = self._cache_control(request.scope)
        # The same URL answers JSON, graphql-response+json or the IDE's HTML by Accept: a cache
        # in front must not hand one client's answer to another.
        response.headers.append("Vary", "Accept")
        # The answer is one caller's: a browser's own cache must not hand it to the next user
        # of the same profile (RFC 9111 keeps only shared caches from reusing it).
        response.headers.append("Vary", "Authorization")
        return response

    def parse_json(self, data: str | bytes) -> Any:
        """A request body: a JSON object, or a list of objects (a batch); anything else is a
        ``400``, not a crash."""
        parsed = super().parse_json(data)
        if not _request_shaped(parsed):
            raise HTTPException(
                400,
                "The request body must be a JSON object such as "
                '{"query": "...", "variables": {...}, "operationName": "..."}.',
            )
        items = parsed if isinstance(parsed, list) else [parsed]
        _DOCUMENT_IDS.set([_document_id(item) for item in items])
        return parsed

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        """A GET's parameters: ``variables`` and ``extensions`` are JSON objects (an empty one
        is as good as none); anything else is a ``400`` that names the parameter."""
        parsed: dict[str, Any] = dict(params)
        for name in ("variables", "extensions"):
            raw = parsed.pop(name, None)
            if not raw:
                continue
            value = super().parse_json(raw)  # the plain decoder: 400 when it is not JSON
            if not (value is None or isinstance(value, dict)):
                raise HTTPException(
                    400, f"The GraphQL operation's `{name}` must be a JSON object or null."
                )
            parsed[name] = value
        _DOCUMENT_IDS.set([_document_id(parsed)])
        return parsed

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        _DOCUMENT_IDS.set(None)
        parsed = await super().parse_http_body(request)
        items = parsed if isinstance(parsed, list) else [parsed]
        if not items:
            raise HTTPException(400, "A batch holds at least one operation.")
        for item in items:
            # Strawberry checks these types for a single operation only; a batch's items too.
            for name, value, kinds in (
                ("query", item.query, (str,)),
                ("variables", item.variables, (dict,)),
                ("extensions", item.extensions, (dict,)),
                ("operationName", item.operation_name, (str,)),
            ):
                if not (value is None or isinstance(value, kinds)):
                    expected = "a string" if kinds == (str,) else "an object"
                    raise HTTPException(
                        400, f"The GraphQL operation's `{name}` must be {expected} or null."
                    )
        document_ids = _DOCUMENT_IDS.get() or [None] * len(items)
        resolved = [
            await self._resolve(item, document_id)
            for item, document_id in zip(items, document_ids, strict=True)
        ]
        return resolved if isinstance(parsed, list) else resolved[0]

    async def _resolve(self, item: GraphQLRequestData, document_id: Any) -> GraphQLRequestData:
        """The operation with its persisted document's text, or with the refusal to answer."""
        resolution = await self._persisted.resolve(item.query, item.extensions, document_id)
        values = {name: getattr(item, name) for name in _REQUEST_DATA_FIELDS}
        values["query"] = resolution.query if resolution.refusal is None else item.query
        return PersistedRequestData(
            **values, refusal=resolution.refusal, register=resolution.register
        )

    async def get_sub_response(self, request: Any) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = request_state(request.scope).media_type or APPLICATION_JSON
        return sub_response

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        _record(request.scope, result)
        if result.errors:
            request_state(request.scope).answered_errors = True
        response = await super().process_result(request, result)
        if request_state(request.scope).media_type == GRAPHQL_RESPONSE_JSON and _request_error(
            result
        ):
            # Nothing was executed: the specification's "no data entry" (and so a 400 below).
            del response["data"]
        return response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = super().create_response(response_data, sub_response)
        media_type = sub_response.media_type or APPLICATION_JSON
        response.headers["content-type"] = media_type
        # Under application/json every GraphQL response is a 200 (legacy clients read the body);
        # under graphql-response+json a response without `data` is a request error.
        if (
            media_type == GRAPHQL_RESPONSE_JSON
            and isinstance(response_data, dict)
            and "data" not in response_data
            and not sub_response.status_code
        ):
            response.status_code = 400
        return response

    def _too_large(self, request: Any, response: Response) -> Response:
        """An answer over ``GATEWAY_MAX_RESPONSE_BYTES`` replaced by one error (per operation
        of a batch): its bytes are neither sent nor held while a slow client reads them."""
        state = request_state(request.scope)
        state.answered_errors = True
        state.access.update(errorCodes=[RESPONSE_TOO_LARGE], outcome="error")
        return too_large_response(
            len(response.body),
            self._max_response_bytes,
            status=response.status_code,
            media_type=response.headers.get("content-type"),
            batch=state.batch,
        )

    def _cache_control(self, scope: Any) -> str:
        """What a cache between the gateway and the caller may do with this answer: never keep
        one with an error (a refusal, an upstream failure, a partial answer); an answer with
        data is one caller's (``private``), fresh as long as the pages it used."""
        state = request_state(scope)
        if state.answered_errors:
            return "no-store"
        if self._cache_ttl <= 0:
            return "private"
        context = state.context
        left = context.fresh_for if isinstance(context, RequestContext) else None
        seconds = self._cache_ttl if left is None else left
        return f"private, max-age={max(0, int(seconds))}"

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def render_graphql_ide(self, request: Any) -> Response:
        assert self._graphiql_page is not None  # the view serves no IDE without a page
        return self._graphiql_page()


def _record(scope: Any, result: ExecutionResult) -> None:
    """Shapes the result's errors, and tells the access log and the metrics about it."""
    if result.errors:
        result.errors = [shape_error(error) for error in result.errors]
    state = request_state(scope)
    context = state.context
    codes = [str((error.extensions or {}).get("code")) for error in result.errors or ()]
    # Root fields are nullable: an answer whose every root field is null has no data.
    answered = any(value is not None for value in (result.data or {}).values())
    outcome = "ok" if not codes else ("partial" if answered else "error")
    state.access.update(
        route=("view", _executor_label(context)),
        operation=context.operation_name if context else None,
        upstreamCalls=context.upstream_calls if context else 0,
        errorCodes=codes,
        outcome=outcome,
    )


def _wants_event_stream(request: Any) -> bool:
    """A POST that prefers Server-Sent Events (graphql-sse): :class:`EventStream` answers it."""
    return request.method == "POST" and prefers_event_stream(accept_of(request.scope["headers"]))


def _executor_label(context: RequestContext | None) -> str:
    """Which executor answered: the compiled root, graphql-core with the projection, or
    graphql-core field by field (the ``executor`` label of the routes metric)."""
    if context is not None and context.compiled:
        return "compiled"
    return "fast-path" if context is not None and context.fast_path else "graphql-core"


def _request_error(result: ExecutionResult) -> bool:
    """An error before execution (the document does not parse or validate, a limit refuses
    it, variables do not coerce, no such operation): no data, and no error has a path."""
    return (
        result.data is None
        and bool(result.errors)
        and all(not error.path for error in result.errors or ())
    )


def _document_id(item: dict[str, Any]) -> Any:
    """The operation's persisted document id: ``documentId``, or Relay's ``doc_id`` (its
    synonym); both naming different documents is a ``400``, not a guess."""
    document_id = item.get("documentId")
    relay_id = item.get("doc_id")
    if document_id is not None and relay_id is not None and document_id != relay_id:
        raise HTTPException(400, "`documentId` and `doc_id` name different documents; send one.")
    return relay_id if document_id is None else document_id


def _request_shaped(data: object) -> bool:
    """An operation (an object) or a batch of them (a list of objects)."""
    return isinstance(data, dict) or (
        isinstance(data, list) and all(isinstance(item, dict) for item in data)
    )


__all__ = ["GraphQLView"]
