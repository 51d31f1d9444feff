"""The fast lane: a plain ``POST /graphql`` JSON request goes straight to the schema.

FastAPI's routing and dependency injection and Strawberry's HTTP view handle every kind of
GraphQL-over-HTTP request (GET, GraphiQL, multipart, batches, incremental delivery); for the
one kind that carries nearly all traffic, a JSON body with ``query``, ``variables`` and
``operationName``, they cost as much CPU as executing the operation (BENCHMARKS.md). This
layer answers that kind itself, the way the view would: same context, same error shaping,
same response body (``{"data", "errors"?, "extensions"?}``, HTTP 200). Anything else, or
anything it is unsure of (an unknown operation name, a body that is not a single operation),
goes on to the FastAPI app untouched. ``tests/test_lane.py`` sends the same requests down
both paths and requires the same answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from strawberry.http import process_result
from strawberry.types import ExecutionResult

from gateway.guard import ASGIApp, Message, Receive, Scope, Send, send_json

Respond = Callable[[Scope, ExecutionResult], None]

LANE = "gateway.lane"  # scope key: set when the lane answered the request
MakeContext = Callable[[Scope], dict[str, Any]]


class GraphQLLane:
    """Also, whether ``enabled`` or not, it keeps every answer of the GraphQL endpoint a JSON
    GraphQL response: the view's plain-text refusals (no query, batching disabled, ...) are
    rewritten as ``{"errors": [{"message", "extensions": {"code": "BAD_REQUEST"}}]}`` with
    their status, and a JSON body that is neither an object nor a list of objects (on which
    the view crashes) is refused here."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str,
        schema: Any,
        make_context: MakeContext,
        on_result: Respond,
        enabled: bool = True,
    ) -> None:
        self.app = app
        self.path = path
        self.schema = schema
        self.make_context = make_context
        self.on_result = on_result
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        if not self._applies(scope):
            await self.app(scope, receive, _json_refusals(send))
            return
        body = await _read(receive)
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = _UNREADABLE
        if data is not _UNREADABLE and not _request_shaped(data):
            await _refuse(
                send,
                "The request body must be a JSON object such as "
                '{"query": "...", "variables": {...}, "operationName": "..."}.',
            )
            return
        operation = _operation(data) if self.enabled else None
        if operation is None:
            await self.app(scope, _replay(body, receive), _json_refusals(send))
            return
        query, variables, operation_name = operation
        context = self.make_context(scope)
        try:
            result = await self.schema.execute(
                query,
                variable_values=variables,
                context_value=context,
                operation_name=operation_name,
            )
        except Exception:  # the view turns these into its own HTTP answers
            await self.app(scope, _replay(body, receive), _json_refusals(send))
            return
        scope[LANE] = True
        self.on_result(scope, result)
        await send_json(send, 200, process_result(result))

    def _applies(self, scope: Scope) -> bool:
        if scope["method"] != "POST":
            return False
        content_type = accept = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"accept":
                accept = value
        media_type = content_type.split(b";", 1)[0].strip().lower()
        # Incremental delivery (@defer/@stream) and SSE answers are the view's business.
        return (
            media_type == b"application/json"
            and b"multipart" not in accept
            and (b"text/event-stream" not in accept)
        )


_UNREADABLE = object()


def _request_shaped(data: object) -> bool:
    """An operation (an object) or a batch of them (a list of objects)."""
    return isinstance(data, dict) or (
        isinstance(data, list) and all(isinstance(item, dict) for item in data)
    )


def _operation(data: object) -> tuple[str, dict[str, Any] | None, str | None] | None:
    """(query, variables, operation name) of a plain request, else ``None``."""
    if not isinstance(data, dict):
        return None
    query = data.get("query")
    variables = data.get("variables")
    operation_name = data.get("operationName")
    if (
        not isinstance(query, str)
        or not query
        or not (variables is None or isinstance(variables, dict))
        or not (operation_name is None or isinstance(operation_name, str))
        or set(data) - {"query", "variables", "operationName", "extensions"}
    ):
        return None
    return query, variables, operation_name


async def _read(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, message: str, status: int = 400) -> None:
    error = {"message": message, "extensions": {"code": "BAD_REQUEST"}}
    await send_json(send, status, {"errors": [error]})


def _json_refusals(send: Send) -> Send:
    """``send`` that rewrites a plain-text 4xx answer of the view as a JSON GraphQL error."""
    start: Message | None = None
    text: list[bytes] = []

    async def rewriting(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers", ()))
            plain = headers.get(b"content-type", b"").startswith(b"text/plain")
            if 400 <= message["status"] < 500 and plain:
                start = message
                return
        elif start is not None:
            text.append(message.get("body", b""))
            if not message.get("more_body"):
                await _refuse(send, b"".join(text).decode("utf-8", "replace"), start["status"])
            return
        await send(message)

    return rewriting
