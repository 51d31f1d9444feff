"""The GraphQL schema: Strawberry types over the billing API's seat balances."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Final

import strawberry
from graphql import GraphQLError, GraphQLSchema
from strawberry.exceptions import MissingQueryError
from strawberry.federation.schema import FederationAny
from strawberry.schema.config import StrawberryConfig
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.schema.name_converter import NameConverter
from strawberry.types import ExecutionContext
from strawberry.types.execution import PreExecutionError

from gateway.schema.context import RequestContext
from gateway.schema.documents import DocumentStore
from gateway.schema.errors import shape_error
from gateway.schema.execution import GatewayExecutor, PlanCache, ProjectingExecutor
from gateway.schema.limits import QueryLimits
from gateway.schema.live import Subscription
from gateway.schema.nodes import require_entities_caller
from gateway.schema.pipeline import GatewayPipeline, PipelineSettings
from gateway.schema.query import Contract, Query
from gateway.schema.scalars import DATE_TIME, DateTime
from gateway.schema.sdl import print_client_schema, without_directive

__all__ = [
    "GatewaySchema",
    "QueryLimits",
    "RequestContext",
    "build_schema",
    "print_client_sdl",
    "print_sdl",
    "shape_error",
]


# The highest Federation version both Apollo's composition (2.14) and The Guild's composer
# accept; the subgraph needs @key, @cost and @listSize (2.9), and @authenticated (2.5) when
# it prints it (see README, "Federation").
FEDERATION_VERSION: Final = "2.9"


class GatewaySchema(strawberry.federation.Schema):
    """The federation schema; errors are logged by :func:`shape_error`, not here."""

    documents: DocumentStore  # parsed and validated documents (gateway.schema.documents)
    # Whether the SDL carries @authenticated, a hint to routers that enforce it (Apollo
    # Router with GraphOS, Hive Gateway) and one that @apollo/gateway refuses.
    auth_directives: bool = False
    _sdl: str | None = None

    @property
    def graphql_schema(self) -> GraphQLSchema:
        """The graphql-core schema Strawberry built (what the limits and the executor walk)."""
        return self._schema

    def as_str(self) -> str:
        """The subgraph SDL, as exported and as ``{ _service { sdl } }`` serves it:
        Strawberry's ``print_schema``, without ``@authenticated`` unless asked for; printed
        once (routers poll ``_service``)."""
        if self._sdl is None:
            printed = super().as_str()
            self._sdl = (
                printed if self.auth_directives else without_directive(printed, "authenticated")
            )
        return self._sdl

    async def stream(self, *args: Any, **kwargs: Any) -> Any:
        """Strawberry's ``stream`` (subscriptions, and operations over a streaming transport),
        answering what a schema extension raises while parsing (the size and selection limits)
        as ``execute`` does, as the stream's one result: Strawberry's own stream lets it
        escape, and the stream then ends without telling the client why."""
        return _answered(await super().stream(*args, **kwargs))

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """No log line per error: expected ones are the caller's business, and unexpected ones
        are logged once, with their errorId, by :func:`shape_error`."""

    def entities_resolver(
        self, info: strawberry.Info, representations: list[FederationAny]
    ) -> list[FederationAny]:
        """Strawberry's ``_entities``, refused as a whole for a request without a caller."""
        require_entities_caller(info)
        return super().entities_resolver(info, representations)


async def _answered(results: AsyncGenerator[Any, None]) -> AsyncGenerator[Any, None]:
    async with aclosing(results):
        try:
            async for result in results:
                yield result
        except (MissingQueryError, CannotGetOperationTypeError, InvalidOperationTypeError):
            raise  # the transports answer these themselves
        except Exception as error:  # what schema.execute answers, answered
            graphql_error = (
                error
                if isinstance(error, GraphQLError)
                else GraphQLError(str(error), original_error=error)
            )
            yield PreExecutionError(data=None, errors=[shape_error(graphql_error)])


class _SchemaNames(NameConverter):
    """Strawberry's name converter, remembering what it computed: Strawberry converts each
    argument's Python name to its GraphQL name again on every resolver call. The names are the
    schema's own (never a client's), a fixed set; the bound is only a guard."""

    _MAX_NAMES = 4096

    def __init__(self) -> None:
        super().__init__()
        self._names: dict[str, str] = {}

    def apply_naming_config(self, name: str) -> str:
        known = self._names.get(name)
        if known is None:
            known = super().apply_naming_config(name)
            if len(self._names) < self._MAX_NAMES:
                self._names[name] = known
        return known


def build_schema(
    limits: QueryLimits,
    *,
    fast_path: bool = True,
    max_batch: int = 10,
    auth_directives: bool = False,
) -> GatewaySchema:
    """The schema, with ``limits`` on what one operation may ask and ``max_batch`` operations
    per batched request; ``auth_directives``: its SDL marks what needs a caller with
    ``@authenticated``."""
    documents = DocumentStore(max_entries=256, max_bytes=4_000_000)
    pipeline = PipelineSettings(limits, documents, limits.validation_rules())
    schema = GatewaySchema(
        query=Query,
        subscription=Subscription,
        types=[Contract],  # reachable only through _entities
        federation_version=FEDERATION_VERSION,
        # One extension for every step the gateway adds (gateway.schema.pipeline).
        extensions=[lambda: GatewayPipeline(pipeline)],
        config=StrawberryConfig(
            scalar_map={DateTime: DATE_TIME},
            batching_config={"max_operations": max_batch},
            name_converter=_SchemaNames(),
        ),
        # The compiled projection plugs in as graphql-core's executor class; without it,
        # graphql-core completes every field (the reference, GATEWAY_FAST_PATH=false).
        execution_context_class=(
            type("SchemaProjectingExecutor", (ProjectingExecutor,), {"plans": PlanCache(512)})
            if fast_path
            else GatewayExecutor
        ),
    )
    schema.documents = documents
    schema.auth_directives = auth_directives
    return schema


def print_sdl(schema: strawberry.Schema) -> str:
    """The exported ``schema.graphql``: exactly ``print_schema(schema) + "\\n"`` (without
    ``@authenticated`` unless the schema prints it)."""
    return schema.as_str() + "\n"


def print_client_sdl(schema: strawberry.Schema) -> str:
    """The exported ``client-schema.graphql``: the API schema clients load
    (:mod:`gateway.schema.sdl`)."""
    return print_client_schema(schema._schema)
