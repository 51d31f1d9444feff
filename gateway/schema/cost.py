"""The gateway's own estimate of what an operation costs: the upstream pages it may cause.

Asked with the request header ``X-Gateway-Cost: true``; answered in ``extensions.cost``:
``estimatedUpstreamPages`` (the static count of fields that call the billing API, the one the
upstream-call limit checks: each costs at least one page), ``maxUpstreamCalls`` (the budget)
and ``upstreamCalls`` (what the request made, after the loaders shared identical pages and the
page cache answered what it could). The pipeline (:mod:`gateway.schema.pipeline`) calls these.
"""

from __future__ import annotations

from typing import Any

from strawberry.types import ExecutionContext

from gateway.schema.context import RequestContext
from gateway.schema.limits import upstream_calls_written

COST_HEADER = "x-gateway-cost"


def estimate_if_asked(context: ExecutionContext) -> int | None:
    """The operation's estimated upstream pages when its request asked for the cost."""
    value: Any = context.context
    request = value.get("request") if isinstance(value, dict) else None
    headers = getattr(request, "headers", None)
    asked = headers is not None and headers.get(COST_HEADER, "").strip().lower() == "true"
    if not asked or context.graphql_document is None:
        return None
    return upstream_calls_written(
        context.schema._schema, context.graphql_document, context.operation_name
    )


def cost_extensions(
    estimate: int, max_upstream_calls: int, request: RequestContext | None
) -> dict[str, Any]:
    """The ``extensions.cost`` of an answer whose request asked for it."""
    return {
        "cost": {
            "estimatedUpstreamPages": estimate,
            "maxUpstreamCalls": max_upstream_calls,
            "upstreamCalls": request.upstream_calls if request else 0,
        }
    }
