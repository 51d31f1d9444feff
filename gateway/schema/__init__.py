"""The GraphQL schema: Strawberry types over the billing API's seat balances."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import strawberry
from graphql import GraphQLError
from strawberry.extensions import ParserCache, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext, ExecutionResult
from strawberry.types.graphql import OperationType

from gateway.schema.context import (
    OperationInfo,
    RequestContext,
    context_of,
    describe_operation,
    operation_span,
)
from gateway.schema.errors import ValidationErrorCodes, shape_error
from gateway.schema.fastpath import FastPath
from gateway.schema.limits import QueryLimits
from gateway.schema.query import Contract, Query
from gateway.schema.scalars import DATE_TIME, DateTime

__all__ = [
    "GatewaySchema",
    "QueryLimits",
    "RequestContext",
    "build_schema",
    "print_sdl",
    "shape_error",
]


# The highest Federation version both Apollo's composition (2.14) and The Guild's composer
# accept; the subgraph uses only @key, available since 2.0 (see README, "Federation").
FEDERATION_VERSION: Final = "2.9"


class GatewaySchema(strawberry.federation.Schema):
    """The federation schema, with the pure-data fast path in front of the standard executor
    (see :mod:`gateway.schema.fastpath`)."""

    def __init__(self, *args: Any, fast_path: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fast_path = FastPath(self._schema) if fast_path else None

    async def execute(
        self,
        query: str | None,
        variable_values: dict[str, Any] | None = None,
        context_value: Any | None = None,
        root_value: Any | None = None,
        operation_name: str | None = None,
        allowed_operation_types: Iterable[OperationType] | None = None,
        operation_extensions: dict[str, Any] | None = None,
    ) -> ExecutionResult:
        request = context_of(context_value)
        fast = self.fast_path
        if fast is not None and query and request is not None:
            with operation_span() as span:
                data = await fast.execute(query, operation_name, variable_values, request)
                if data is not None:
                    name = operation_name or fast.operation_name(query, operation_name)
                    describe_operation(span, request, name, "query")
                    span.set_attribute("gateway.fast_path", True)
                    request.fast_path = True
                    return ExecutionResult(data=data, errors=None)
                span.update_name("graphql.fast_path.declined")
        result = await super().execute(
            query,
            variable_values=variable_values,
            context_value=context_value,
            root_value=root_value,
            operation_name=operation_name,
            allowed_operation_types=allowed_operation_types,
            operation_extensions=operation_extensions,
        )
        if fast is not None and query and all(e.path for e in result.errors or ()):
            # Parsed and validated by the standard path: a document the fast path may learn.
            fast.learn(query, operation_name)
        return result

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """No log line per error: expected ones are the caller's business, and unexpected ones
        are logged once, with their errorId, by :func:`shape_error`."""


def build_schema(limits: QueryLimits | None = None, *, fast_path: bool = True) -> GatewaySchema:
    """The schema, with ``limits`` on what one operation may ask (defaults when ``None``)."""
    return GatewaySchema(
        fast_path=fast_path,
        query=Query,
        types=[Contract],  # reachable only through _entities
        federation_version=FEDERATION_VERSION,
        extensions=[
            OperationInfo,
            ValidationErrorCodes,
            lambda: ParserCache(maxsize=256),
            lambda: ValidationCache(maxsize=256),
            *(limits or QueryLimits()).extensions(),
        ],
        config=StrawberryConfig(scalar_map={DateTime: DATE_TIME}),
    )


def print_sdl(schema: strawberry.Schema) -> str:
    """The exported ``schema.graphql``: exactly ``print_schema(schema) + "\\n"``."""
    return schema.as_str() + "\n"
