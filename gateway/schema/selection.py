"""Look-ahead: which fields an operation selects below a field, as graphql-core will execute it.

The include flags of an upstream call follow what the query selects below the field that
makes it. Strawberry's ``info.selected_fields`` keeps fields that ``@skip``/``@include`` drop,
so the answer comes from graphql-core's own field collection, run by the executor of this very
execution (:meth:`~gateway.schema.execution.GatewayExecutor.names_below`): named and inline
fragments, type conditions, aliases by field name, directives with the request's variables.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLResolveInfo

from gateway.schema.context import RequestContext


def selected_names(info: GraphQLResolveInfo[Any]) -> frozenset[str]:
    """Names of every field selected at any depth below the field being resolved."""
    request = info.context.get("gateway") if isinstance(info.context, dict) else None
    assert isinstance(request, RequestContext) and request.executor is not None
    return request.executor.names_below(info.return_type, info.field_nodes)  # type: ignore[no-any-return]
