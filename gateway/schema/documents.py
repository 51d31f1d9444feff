"""Parsed and validated documents, remembered by their text: bounded, and never learned from a
request refused for its credentials.

Parsing and validating a document costs far more than looking it up (BENCHMARKS.md), and a
client sends the same few documents again and again. :class:`DocumentStore` keeps, per query
text, the parsed document and the validation errors, and :class:`CachedDocuments` (a schema
extension, so it serves every request) answers Strawberry's parse and validate steps from it.

Bounds: at most ``max_entries`` documents and ``max_bytes`` of query text (the parsed
document's size is proportional to its text; each text is itself at most
``GATEWAY_MAX_QUERY_BYTES``); the least recently used go first. A document is learned only
once its operation has run without a credential refusal (``UNAUTHENTICATED``, ``FORBIDDEN``),
so a request refused for its credentials teaches it nothing, and only documents that passed the
limits reach it. (A document that reads nothing, ``{ __typename }``, is not refused: such
documents are learned within the same bounds, and can only push others out.) Strawberry's own ``ParserCache``/``ValidationCache`` are bounded in entries
only and learn from every request, which is why they are not used.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from graphql import DocumentNode, GraphQLError
from strawberry.extensions import SchemaExtension

from gateway.schema.errors import refused_for_credentials


@dataclass(frozen=True, slots=True)
class _Known:
    document: DocumentNode
    errors: tuple[GraphQLError, ...]


class DocumentStore:
    """Documents by query text, least recently used first out."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._known: OrderedDict[str, _Known] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._known)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, query: str) -> _Known | None:
        known = self._known.get(query)
        if known is not None:
            self._known.move_to_end(query)
        return known

    def learn(self, query: str, document: DocumentNode, errors: list[GraphQLError]) -> None:
        size = len(query)
        if query in self._known or size > self.max_bytes:
            return
        self._known[query] = _Known(document, tuple(errors))
        self._bytes += size
        while len(self._known) > self.max_entries or self._bytes > self.max_bytes:
            forgotten, _ = self._known.popitem(last=False)
            self._bytes -= len(forgotten)


class CachedDocuments(SchemaExtension):
    """Strawberry's parse and validate steps, answered from the store when it knows the text."""

    def __init__(self, store: DocumentStore) -> None:
        self.store = store
        self.known: _Known | None = None
        self.validation_errors: list[GraphQLError] | None = None  # as validation left them

    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        query = context.query
        errors = self.validation_errors
        if self.known is not None or query is None or context.graphql_document is None:
            return
        if errors is None:  # refused before validation (a limit of the parse step)
            return
        result = context.result
        if result is not None and any(refused_for_credentials(e) for e in result.errors or ()):
            return
        self.store.learn(query, context.graphql_document, errors)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query is not None and context.graphql_document is None:
            self.known = self.store.get(context.query)
            if self.known is not None:
                context.graphql_document = self.known.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        if self.known is not None:
            context.pre_execution_errors = list(self.known.errors)
        yield
        # A copy: Strawberry adds the execution's errors to this list later.
        self.validation_errors = list(context.pre_execution_errors or ())
