"""Every step the gateway adds to Strawberry's pipeline, as one schema extension.

Strawberry runs an operation through four stages (operation, parse, validate, execute) and,
for each stage and each extension, looks the hook up and wraps it in a context manager on every
request: its fixed cost grows with extensions times hooks (nine extensions made 36 hook
look-ups and 12 context managers per operation; one makes 4 and 4: BENCHMARKS.md, "Round two:
the pipeline's fixed costs"). The one extension calls the gateway's steps in a fixed order,
the order the nine ran in (Strawberry enters hooks in list order and leaves them in reverse).
The steps themselves
live with what they check (:mod:`~gateway.schema.limits`, :mod:`~gateway.schema.documents`,
:mod:`~gateway.schema.errors`, :mod:`~gateway.schema.context`, :mod:`~gateway.schema.work`).

What each stage does, in order:

- **operation**: the token limit for the parser, the validation rules, the operation's span;
  afterwards the document is learned by the store (unless the request was refused for its
  credentials or stopped before validation) and the operation is named for the access log.
- **parse**: a known document is taken from the store (no parsing), and the request context
  told so (only a known document's plans are kept across requests); the size limit; once
  parsed, the selection and nesting limits (skipped for a document the store learned after it
  passed them) and the choice of operation.
- **validate**: a known document's validation errors from the store (no validation); every
  validation error gets its code; the errors as validation left them are kept for learning.
- **execute**: one walk of the operation as it will run, variables applied
  (:mod:`~gateway.schema.work`; a stored document's kept when no variable changes it): the
  seat-id budget, then the work estimate admitted against the request's budget (and answered
  when asked); then, for a stored document with a compiled root, the result itself (:func:`~gateway.schema.execution.execute_compiled`), and
  graphql-core does not run; afterwards the errors in the order of their paths
  (:func:`~gateway.schema.errors.in_path_order`), whichever executor answered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLError
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension

from gateway.schema.context import (
    check_operation_chosen,
    context_of,
    describe_operation,
    operation_kind,
    operation_span,
)
from gateway.schema.documents import DocumentStore, Known
from gateway.schema.errors import (
    OPERATION_NOT_ALLOWED,
    in_path_order,
    refused_for_credentials,
    shape_error,
    stamp_validation_codes,
)
from gateway.schema.execution import execute_compiled
from gateway.schema.limits import (
    QueryLimits,
    check_document_shape,
    check_document_size,
    check_seat_ids,
    without_graphql_core_depth_rule,
)
from gateway.schema.work import Estimate, admit, cost_extensions, estimate

Rules = tuple[type[ASTValidationRule], ...]


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline checks against, built once per schema."""

    limits: QueryLimits
    documents: DocumentStore
    rules: Rules
    # The rules an operation validates with, by the rules Strawberry starts it with (the same
    # tuple every request: derived once, not filtered again per request).
    _validation: dict[Rules, Rules] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def validation_rules(self, given: Rules) -> Rules:
        """``given`` less graphql-core's introspection depth rule, plus the gateway's rules."""
        rules = self._validation.get(given)
        if rules is None:
            rules = without_graphql_core_depth_rule(given) + self.rules
            if len(self._validation) < 8:  # Strawberry's defaults, and whatever else is set
                self._validation[given] = rules
        return rules


class GatewayPipeline(SchemaExtension):
    """The gateway's steps around Strawberry's operation, parse, validate and execute."""

    def __init__(self, settings: PipelineSettings) -> None:
        self.settings = settings
        self.known: Known | None = None
        self.validation_errors: list[GraphQLError] | None = None  # as validation left them
        self.estimate: Estimate | None = None  # when the request asked for it

    def on_operation(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.settings.limits.max_tokens
        context.validation_rules = self.settings.validation_rules(tuple(context.validation_rules))
        with operation_span() as span:
            yield
            self._learn()
            describe_operation(
                span, context_of(context.context), context.operation_name, operation_kind(context)
            )

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        query = context.query
        if query is not None and context.graphql_document is None:
            self.known = self.settings.documents.get(query)
            if self.known is not None:
                context.graphql_document = self.known.document
        request = context_of(context.context)
        if request is not None:
            request.document_known = self.known is not None
        check_document_size(query or "", self.settings.limits.max_query_bytes)
        yield
        document = context.graphql_document
        if document is None:
            return
        if self.known is None or not self.known.measured:
            check_document_shape(document, self.settings.limits.max_selections)
        check_operation_chosen(context)

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.known is not None:
            context.pre_execution_errors = list(self.known.errors)
        yield
        errors = context.pre_execution_errors or []
        stamp_validation_codes(errors)
        # A copy: Strawberry adds the execution's errors to this list later.
        self.validation_errors = list(errors)

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        request = context_of(context.context)
        limits = self.settings.limits
        if (
            request is not None
            and not request.streaming
            and operation_kind(context) == "subscription"
        ):
            # Over plain HTTP a subscription would be run once as a query: its resolver would
            # start a live listing nobody reads.
            raise GraphQLError(
                "A subscription needs a streaming transport: POST it with 'Accept: "
                "text/event-stream' (graphql-sse), or send it over a graphql-transport-ws "
                "WebSocket at /graphql.",
                extensions={"code": OPERATION_NOT_ALLOWED},
            )
        if document is not None:
            # One walk of the operation as it will run, variables applied: its seat ids, its
            # work and its pages (gateway.schema.work).
            estimated = estimate(
                context.schema._schema,
                document,
                context.operation_name,
                context.variables or {},
                self.known.work if self.known is not None else None,
            )
            check_seat_ids(estimated.seat_ids, limits.max_seat_ids)
            admit(estimated, limits.max_cost, request)
            if request is not None and request.cost_asked:
                self.estimate = estimated
        if request is not None and request.document_known:
            # Strawberry's seam for a result: when set here, graphql-core does not run.
            result = await execute_compiled(context, request)
            if result is not None:
                context.result = result
        yield
        executed = context.result
        if executed is not None and executed.errors:
            in_path_order(executed.errors)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        """Each message of a subscription (or an operation run over a stream) leaves with its
        errors shaped, as a query's do: the WebSocket transport formats them itself."""
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [shape_error(error) for error in errors]
        yield
        # The transport asked for the next message, so this one has been written. Strawberry
        # and graphql-core keep a subscription's last result until the next one comes: a
        # thousand idle subscribers would each hold their snapshot's hundreds of seats.
        data = getattr(result, "data", None)
        if isinstance(data, dict) and operation_kind(self.execution_context) == "subscription":
            data.clear()

    def get_results(self) -> dict[str, Any]:
        if self.estimate is None:
            return {}
        return cost_extensions(
            self.estimate, self.settings.limits, context_of(self.execution_context.context)
        )

    def _learn(self) -> None:
        """The store learns a document that was parsed and validated here (not one it gave),
        unless the request was refused for its credentials or stopped before validation."""
        context = self.execution_context
        query = context.query
        errors = self.validation_errors
        document = context.graphql_document
        if self.known is not None or query is None or document is None or errors is None:
            return
        result = context.result
        if result is not None and any(refused_for_credentials(e) for e in result.errors or ()):
            return
        self.settings.documents.learn(query, document, errors, measured=True)
