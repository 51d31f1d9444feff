"""What a resolver may use: the request's loaders, built once per GraphQL request."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import strawberry
from graphql import GraphQLError, OperationDefinitionNode
from opentelemetry import trace
from strawberry.types import ExecutionContext

from gateway.live import LiveHub
from gateway.loaders import BatchObserver, Loaders, PageCache
from gateway.loaders.details import CreditTypeCache
from gateway.schema.access import UNRESTRICTED, Caller
from gateway.schema.errors import OPERATION_RESOLUTION_FAILURE, UNAUTHENTICATED, GatewayError
from gateway.upstream import BillingClient
from gateway.upstream.tracing import span

_tracer = trace.get_tracer("gateway.schema")


@dataclass
class RequestContext:
    """Per-request state. ``token`` is the bearer token upstream calls will carry, if any."""

    client: BillingClient
    token: str | None = field(repr=False)
    max_upstream_calls: int  # the operation's budget (GATEWAY_MAX_UPSTREAM_CALLS)
    observer: BatchObserver | None = None
    caller: Caller = UNRESTRICTED  # who asks (gateway.schema.access checks it)
    operation_name: str | None = None  # filled in by the pipeline, read by the access log
    fast_path: bool = False  # the projection completed objects (gateway.schema.execution)
    compiled: bool = False  # the compiled root answered (gateway.schema.execution)
    # The document came from the document store (learned from a request not refused): only
    # then may its plans and look-ahead be kept across requests (gateway.schema.execution).
    document_known: bool = False
    # A weak reference to the GatewayExecutor running this operation (see :attr:`executor`).
    _executor: Any = field(default=None, repr=False)
    credit_types: CreditTypeCache | None = None  # the process's, shared across requests
    page_cache: PageCache | None = None  # the process's (or Redis's), keyed by credential
    refresh: bool = False  # the caller sent `Cache-Control: no-cache`: fetch anew, then keep
    cost_asked: bool = False  # the caller sent `X-Gateway-Cost: true`: add extensions.cost
    work: int = 0  # estimated work admitted so far (gateway.schema.work), the batch's in all
    # Commits and credits of seats looked up by key beyond what the estimate assumed for them
    # (gateway.schema.work.charge_held), the batch's in all.
    held_excess: int = 0
    live: LiveHub | None = None  # the process's live listings (gateway.live)
    # The operation runs over a streaming transport (graphql-sse, graphql-transport-ws): only
    # then may it be a subscription (gateway.schema.pipeline).
    streaming: bool = False
    # A streaming operation's projections, kept from one message to the next (None: not
    # kept; a query executes once).
    projections: dict[Any, Any] | None = field(default=None, repr=False)
    # Names the caller for the live subscription limits (its JWT subject, else its token's
    # hash or its address): asked only by a subscription, so a query never computes it.
    identify: Callable[[], str] | None = field(default=None, repr=False)
    _loaders: Loaders | None = field(default=None, repr=False)
    # The request whose loaders an operation of a batch shares (see :meth:`for_operation`).
    _request: RequestContext | None = field(default=None, repr=False)

    @property
    def executor(self) -> Any:
        """The GatewayExecutor running this operation (its look-ahead). Held weakly: a
        subscription executes each message with an executor of its own, and the last one holds
        the last message (a snapshot's seats) for as long as the subscription lives."""
        ref = self._executor
        return ref() if ref is not None else None

    @executor.setter
    def executor(self, executor: Any) -> None:
        self._executor = weakref.ref(executor) if executor is not None else None

    def for_operation(self) -> RequestContext:
        """A context for one operation of a batch: its own name and executor, the request's
        loaders (one upstream call per distinct page across the batch, one budget)."""
        return self._same_caller(request=self)

    def detached(self) -> RequestContext:
        """A context of its own (loaders, budget, work) for the same caller and credential:
        each operation of one WebSocket connection gets one, so that none of them shares
        another's loaders or budget for as long as the connection lives."""
        return self._same_caller(request=None)

    def _same_caller(self, *, request: RequestContext | None) -> RequestContext:
        """A new context with this one's caller, credential, process-wide parts and flags."""
        return RequestContext(
            client=self.client,
            token=self.token,
            max_upstream_calls=self.max_upstream_calls,
            observer=self.observer,
            caller=self.caller,
            credit_types=self.credit_types,
            page_cache=self.page_cache,
            refresh=self.refresh,
            cost_asked=self.cost_asked,
            live=self.live,
            identify=self.identify,
            _request=request,
        )

    def caller_key(self) -> str:
        """The caller's name for per-caller limits."""
        return self.identify() if self.identify is not None else "anonymous"

    @property
    def root(self) -> RequestContext:
        """The request's context (a batch's operations each have their own over it)."""
        return self._request if self._request is not None else self

    def admit_work(self, estimate: int, budget: int) -> int | None:
        """Admits an operation's estimated work against the request's budget (a batch's
        operations share it); the work already admitted when it does not fit (nothing is
        charged then)."""
        root = self.root
        if root.work + estimate > budget:
            return root.work
        root.work += estimate
        return None

    @property
    def upstream_calls(self) -> int:
        if self._request is not None:
            return self._request.upstream_calls
        return self._loaders.upstream_calls if self._loaders else 0

    @property
    def fresh_for(self) -> float | None:
        """Seconds the cached pages this request used stay fresh (``None``: it used none)."""
        return self._loaders.fresh_for if self._loaders else None

    def close(self) -> None:
        """The request is over: stop upstream calls nobody will read."""
        if self._loaders is not None:
            self._loaders.close()

    @property
    def loaders(self) -> Loaders:
        """The request's loaders; refuses before any upstream call when there is no token."""
        if self._request is not None:
            return self._request.loaders
        if self._loaders is None:
            if not self.token:
                raise GatewayError(
                    "No credentials: send 'Authorization: Bearer <Metronome API token>'.",
                    UNAUTHENTICATED,
                )
            self._loaders = Loaders(
                self.client,
                self.token,
                max_calls=self.max_upstream_calls,
                observer=self.observer,
                credit_types=self.credit_types,
                cache=self.page_cache,
                refresh=self.refresh,
            )
        return self._loaders


def request_context(info: strawberry.Info) -> RequestContext:
    context = info.context["gateway"]
    assert isinstance(context, RequestContext)
    return context


def check_operation_chosen(context: ExecutionContext) -> None:
    """A parsed document of several operations must say which one to run (the GraphQL over
    HTTP specification: a request error, not the first operation)."""
    document = context.graphql_document
    # Strawberry's `operation_name` falls back to the first operation's name; only the name
    # the request gave counts here (a test pins this against Strawberry upgrades).
    if document is None or context._provided_operation_name is not None:
        return
    operations = sum(isinstance(d, OperationDefinitionNode) for d in document.definitions)
    if operations > 1:
        raise GraphQLError(
            f"The document holds {operations} operations; say which one to run with "
            "'operationName'.",
            extensions={"code": OPERATION_RESOLUTION_FAILURE},
        )


def operation_kind(context: ExecutionContext) -> str:
    try:
        return context.operation_type.value
    except RuntimeError:  # no document (it did not parse) or no such operation
        return "query"


def operation_span() -> AbstractContextManager[trace.Span]:
    return span(_tracer, "graphql.operation")


def describe_operation(
    span: trace.Span, request: RequestContext | None, name: str | None, kind: str
) -> None:
    """Names the operation's span and tells the request context (for the access log)."""
    span.update_name(f"{kind} {name}" if name else kind)
    span.set_attribute("graphql.operation.type", kind)
    if name:
        span.set_attribute("graphql.operation.name", name)
    if request is not None:
        request.operation_name = name
        span.set_attribute("gateway.upstream_calls", request.upstream_calls)


def context_of(context_value: Any) -> RequestContext | None:
    """The gateway's part of a Strawberry context value, if it has one."""
    request = context_value.get("gateway") if isinstance(context_value, dict) else None
    return request if isinstance(request, RequestContext) else None
