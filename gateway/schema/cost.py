"""The gateway's own estimate of what an operation costs: the upstream pages it may cause.

Asked with the request header ``X-Gateway-Cost: true``; answered in ``extensions.cost``:
``estimatedUpstreamPages`` (the static count of fields that call the billing API, the one the
upstream-call limit checks: each costs at least one page), ``maxUpstreamCalls`` (the budget)
and ``upstreamCalls`` (what the request made, after the loaders shared identical pages and the
page cache answered what it could).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from strawberry.extensions import SchemaExtension

from gateway.schema.context import context_of
from gateway.schema.limits import upstream_calls_written

COST_HEADER = "x-gateway-cost"


class CostEstimate(SchemaExtension):
    """Adds ``extensions.cost`` to the result of a request that asked for it."""

    def __init__(self, max_upstream_calls: int) -> None:
        self.max_upstream_calls = max_upstream_calls
        self.estimate: int | None = None

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        value: Any = context.context
        request = value.get("request") if isinstance(value, dict) else None
        headers = getattr(request, "headers", None)
        asked = headers is not None and headers.get(COST_HEADER, "").strip().lower() == "true"
        if asked and context.graphql_document is not None:
            self.estimate = upstream_calls_written(
                context.schema._schema, context.graphql_document, context.operation_name
            )
        yield

    def get_results(self) -> dict[str, Any]:
        if self.estimate is None:
            return {}
        request = context_of(self.execution_context.context)
        return {
            "cost": {
                "estimatedUpstreamPages": self.estimate,
                "maxUpstreamCalls": self.max_upstream_calls,
                "upstreamCalls": request.upstream_calls if request else 0,
            }
        }
