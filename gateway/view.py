"""The one GraphQL-over-HTTP handler: Strawberry's ASGI view, through its own hooks.

Every request to ``/graphql`` (GET, POST, GraphiQL) goes through :class:`GraphQLView`, a subclass
of ``strawberry.asgi.GraphQL`` routed on the FastAPI app without FastAPI's dependency injection
(which cost as much CPU as executing an operation; BENCHMARKS.md). What it adds, each through a
hook of the view:

* ``get_context``: the request's :class:`~gateway.schema.RequestContext` (fresh loaders, the
  caller's credential) beside Starlette's ``request`` and ``response``;
* ``parse_json``/``parse_http_body``: a body that is not a GraphQL request (a JSON value that is
  not an object or a list of objects, an ``operationName`` that is not a string) is a ``400``;
* ``run``: the view's refusals (``HTTPException``) answer a JSON GraphQL error with
  ``extensions.code`` ``BAD_REQUEST`` instead of plain text, so every answer of ``/graphql`` is
  a GraphQL response;
* ``process_result``: every error leaves shaped (:func:`~gateway.schema.shape_error`), and the
  access log and the metrics learn how the operation went;
* ``encode_json``/``decode_json``: orjson; ``render_graphql_ide``: the gateway's own GraphiQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET

from gateway.schema import RequestContext

ContextFactory = Callable[[Request], RequestContext]
ResultObserver = Callable[[Request, ExecutionResult], None]


class GraphQLView(GraphQL[dict[str, Any], None]):
    def __init__(
        self,
        schema: Any,
        *,
        context_factory: ContextFactory,
        on_result: ResultObserver,
        graphiql_page: Callable[[], HTMLResponse] | None,
    ) -> None:
        super().__init__(
            schema,
            graphql_ide="graphiql" if graphiql_page is not None else None,
            allow_queries_via_get=True,
        )
        self._context_factory = context_factory
        self._on_result = on_result
        self._graphiql_page = graphiql_page

    async def get_context(self, request: Any, response: Any) -> dict[str, Any]:
        return {"request": request, "response": response, "gateway": self._context_factory(request)}

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        try:
            return await super().run(request, context, root_value)
        except HTTPException as refusal:
            return bad_request(refusal.reason, refusal.status_code)

    def parse_json(self, data: str | bytes) -> Any:
        """A request body (or the ``variables``/``extensions`` of a GET): a JSON object, or for
        a body a list of objects (a batch); anything else is a ``400``, not a crash."""
        parsed = super().parse_json(data)
        if not _request_shaped(parsed):
            raise HTTPException(
                400,
                "The request body must be a JSON object such as "
                '{"query": "...", "variables": {...}, "operationName": "..."}.',
            )
        return parsed

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        parsed = await super().parse_http_body(request)
        for item in parsed if isinstance(parsed, list) else (parsed,):
            if not (item.operation_name is None or isinstance(item.operation_name, str)):
                raise HTTPException(
                    400, "The GraphQL operation's `operationName` must be a string or null."
                )
        return parsed

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        self._on_result(request, result)
        return await super().process_result(request, result)

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    def encode_json(self, data: object) -> bytes:
        return orjson.dumps(data)

    async def render_graphql_ide(self, request: Any) -> Response:
        assert self._graphiql_page is not None  # the view serves no IDE without a page
        return self._graphiql_page()


def bad_request(message: str, status: int = 400) -> JSONResponse:
    """A request the view refuses, as a GraphQL response (``extensions.code`` BAD_REQUEST)."""
    error = {"message": message, "extensions": {"code": "BAD_REQUEST"}}
    return _OrjsonResponse({"errors": [error]}, status_code=status)


class _OrjsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _request_shaped(data: object) -> bool:
    """An operation (an object) or a batch of them (a list of objects)."""
    return isinstance(data, dict) or (
        isinstance(data, list) and all(isinstance(item, dict) for item in data)
    )


__all__ = ["GraphQLView", "bad_request"]
