"""Parsed and validated documents, remembered by their text: bounded, and never learned from a
request refused for its credentials.

Parsing and validating a document costs far more than looking it up (BENCHMARKS.md), and a
client sends the same few documents again and again. :class:`DocumentStore` keeps, per query
text, the parsed document and the validation errors, and the gateway's pipeline
(:mod:`gateway.schema.pipeline`, a schema extension, so it serves every request) answers
Strawberry's parse and validate steps from it, and skips measuring a known document again.

Bounds: at most ``max_entries`` documents and ``max_bytes`` of query text (the parsed
document's size is proportional to its text; each text is itself at most
``GATEWAY_MAX_QUERY_BYTES``); the least recently used go first. A document is learned only
once its operation has run without a credential refusal (``UNAUTHENTICATED``, ``FORBIDDEN``),
so a request refused for its credentials teaches it nothing, and only documents that passed the
limits reach it. (A document that reads nothing, ``{ __typename }``, is not refused: such
documents are learned within the same bounds, and can only push others out.) Strawberry's own ``ParserCache``/``ValidationCache`` are bounded in entries
only and learn from every request, which is why they are not used; the bookkeeping is
cachetools' (:mod:`gateway.caches`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from graphql import DocumentNode, GraphQLError

from gateway.caches import LRUCache

if TYPE_CHECKING:
    from gateway.schema.work import Estimate


@dataclass(frozen=True, slots=True)
class Known:
    """A document as parsed and validated. ``measured``: it passed the selection and nesting
    limits (every document the pipeline learns did; the trusted documents the operator lists
    are learned unmeasured, and are measured on every request as before)."""

    document: DocumentNode
    errors: tuple[GraphQLError, ...]
    measured: bool
    # The length of its text: what it counts against the store's byte bound (the parsed
    # document's size is proportional to it).
    size: int
    # The estimate of each operation of it (its work, pages and seat ids), by the name a
    # request runs it with, for operations no variable changes (gateway.schema.work).
    work: dict[str | None, Estimate] = field(default_factory=dict, compare=False)


class DocumentStore:
    """Documents by query text, least recently used first out."""

    def __init__(self, *, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._known: LRUCache[str, Known] = LRUCache(
            max_entries, max_size=max_bytes, getsizeof=_size_of
        )

    def __len__(self) -> int:
        return len(self._known)

    @property
    def bytes(self) -> int:
        return int(self._known.currsize)

    def get(self, query: str) -> Known | None:
        return self._known.get(query)

    def learn(
        self,
        query: str,
        document: DocumentNode,
        errors: list[GraphQLError],
        *,
        measured: bool,
    ) -> None:
        size = len(query)
        if query in self._known or size > self.max_bytes:
            return
        self._known[query] = Known(document, tuple(errors), measured, size)


def _size_of(known: Known) -> int:
    return known.size
