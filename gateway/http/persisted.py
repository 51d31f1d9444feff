"""Persisted documents: Apollo's automatic persisted queries (APQ) and a safelist of trusted
documents, resolved to query text before Strawberry executes anything.

A request names its document in one of three ways:

* ``query``: free-form text (refused with ``PERSISTED_QUERY_NOT_IN_LIST`` when only trusted
  documents are allowed, unless the text is one of them);
* ``extensions.persistedQuery = {"version": 1, "sha256Hash": "<hex>"}``: Apollo's protocol (the
  hash bare or ``sha256:``-prefixed, as GraphQL Code Generator's client preset writes its
  document ids; both name the same document). A trusted document with that hash (bare or
  ``sha256:``-prefixed in the manifest) answers; else
  the APQ store; else ``PERSISTED_QUERY_NOT_FOUND``, to which the client answers by sending
  the hash again with ``query``, which is stored once its operation ran without a credential
  refusal (nothing is learned from a refused request), within the limits of
  :class:`PersistedDocuments`;
* ``documentId`` (or Relay's ``doc_id``, its synonym): the GraphQL-over-HTTP persisted
  documents proposal, a manifest key as written (``sha256:<hex>`` or a bare hash matching each
  other).

The resolved text goes through the one pipeline (limits, validation, the document store, every
extension); a document from the manifest was parsed and validated at start-up.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from graphql import GraphQLError, GraphQLSchema, parse, validate
from starlette.types import Scope

from gateway.caches import LRUCache
from gateway.http.state import request_state
from gateway.schema.documents import DocumentStore
from gateway.stores import KeyValueStore

PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"
PERSISTED_QUERY_NOT_IN_LIST = "PERSISTED_QUERY_NOT_IN_LIST"
PERSISTED_QUERY_HASH_MISMATCH = "PERSISTED_QUERY_HASH_MISMATCH"
PERSISTED_QUERY_INVALID = "PERSISTED_QUERY_INVALID"
APOLLO_MANIFEST_FORMAT = "apollo-persisted-query-manifest"
# Callers whose registrations per minute are remembered at once (least recently seen first out).
MAX_REGISTRANTS = 10_000

_HEX_SHA256 = re.compile(r"[0-9a-f]{64}")
# An APQ hash as clients send it: bare, or with the prefix of Code Generator's document ids.
_APQ_HASH = re.compile(r"(?:sha256:)?([0-9a-f]{64})")


class TrustedDocumentsError(Exception):
    """The manifest cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Resolution:
    """The query text to run, or the refusal to answer instead; ``register`` is the hash to
    store the text under once the operation ran (a new APQ registration)."""

    query: str | None = None
    refusal: GraphQLError | None = None
    register: str | None = None


class RegistrationObserver(Protocol):
    """Told the outcome of every APQ registration (stored, anonymous, over_budget)."""

    def registration(self, outcome: str) -> None: ...


class RegistrationBudget:
    """At most ``per_minute`` registrations per caller in each minute, for at most
    ``MAX_REGISTRANTS`` callers at once (the least recently seen forgotten first)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        # Each caller's minute: when it started, and the registrations spent in it.
        self._windows: LRUCache[str, tuple[float, int]] = LRUCache(MAX_REGISTRANTS)

    def spend(self, registrant: str) -> bool:
        now = self._clock()
        started, used = self._windows.get(registrant, (now, 0))
        if now - started >= 60:
            started, used = now, 0
        self._windows[registrant] = (started, used + 1)
        return used < self.per_minute

    def __len__(self) -> int:
        return len(self._windows)


class PersistedDocuments:
    """The APQ store (bounded, in process or Redis) and the trusted documents (immutable).

    A registered text is kept ``ttl`` seconds, and only: when it is within ``max_query_bytes``
    (the raw text, comments and all), when its caller authenticated if ``authenticated_only``
    (JWT mode), and within the caller's :class:`RegistrationBudget`. Read back, a text must be
    UTF-8 whose SHA-256 is its key's hash; another one is deleted and is not found."""

    def __init__(
        self,
        store: KeyValueStore,
        trusted: dict[str, str] | None = None,
        *,
        trusted_only: bool = False,
        max_query_bytes: int,
        ttl: float = 86_400,
        authenticated_only: bool = False,
        registrations_per_minute: int = 60,
        observer: RegistrationObserver | None = None,
    ) -> None:
        self._store = store
        self._trusted = trusted or {}
        self._trusted_texts = frozenset(self._trusted.values())
        self.trusted_only = trusted_only
        self._max_query_bytes = max_query_bytes
        self._ttl = ttl
        self._authenticated_only = authenticated_only
        self._budget = RegistrationBudget(registrations_per_minute)
        self._observer = observer

    async def resolve(
        self, query: Any, extensions: dict[str, Any] | None, document_id: Any
    ) -> Resolution:
        persisted = (extensions or {}).get("persistedQuery")
        if document_id is not None:
            if not isinstance(document_id, str):
                return _refuse(
                    "`documentId` (or `doc_id`) must be a string.", PERSISTED_QUERY_INVALID
                )
            text = self._trusted_text(document_id)
            if text is None:
                return _refuse("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)
            return Resolution(query=text)
        if persisted is None:
            if self.trusted_only and isinstance(query, str) and query not in self._trusted_texts:
                return _refuse(
                    "Only trusted documents are allowed here; send a `documentId` or a "
                    "persisted query hash from the client's manifest.",
                    PERSISTED_QUERY_NOT_IN_LIST,
                )
            return Resolution(query=query)
        sent = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        hashed = _APQ_HASH.fullmatch(sent) if isinstance(sent, str) else None
        if not (isinstance(persisted, dict) and persisted.get("version") == 1 and hashed):
            return _refuse(
                '`extensions.persistedQuery` must be {"version": 1, "sha256Hash": '
                '"<64 lower-case hex digits, optionally prefixed sha256:>"}.',
                PERSISTED_QUERY_INVALID,
            )
        # The bare hex from here on: the store's key, the text's hash, the trusted lookup.
        digest = hashed.group(1)
        if isinstance(query, str) and sha256_hex(query) != digest:
            return _refuse(
                "The persisted query's sha256Hash does not match its query.",
                PERSISTED_QUERY_HASH_MISMATCH,
            )
        text = self._trusted_text(digest)
        if text is not None:
            return Resolution(query=text)
        if self.trusted_only:
            return _refuse(
                "This persisted query is not one of the trusted documents.",
                PERSISTED_QUERY_NOT_IN_LIST,
            )
        if isinstance(query, str):
            if len(query.encode()) > self._max_query_bytes:
                return Resolution(query=query)  # the size limit refuses it; nothing stored
            return Resolution(query=query, register=digest)
        stored = await self._store.get(digest)
        text = self._checked(digest, stored) if stored is not None else None
        if text is None:
            if stored is not None:
                await self._store.delete(digest)
                self._store.rejected()
            return _refuse("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND)
        return Resolution(query=text)

    def _checked(self, digest: str, stored: bytes) -> str | None:
        """The stored text if it is the document its key names, else ``None``."""
        if len(stored) > self._max_query_bytes or hashlib.sha256(stored).hexdigest() != digest:
            return None
        try:
            return stored.decode("utf-8")
        except UnicodeDecodeError:
            return None

    async def register(self, digest: str, query: str, scope: Scope) -> None:
        """Keep ``query`` under ``digest`` for the request ``scope``'s caller, if it may."""
        caller = request_state(scope).caller
        if self._authenticated_only and not (caller is not None and caller.authenticated):
            self._registered("anonymous")
            return
        if caller is not None and caller.authenticated and caller.subject:
            registrant = f"sub:{caller.subject}"
        else:
            client = scope.get("client")
            registrant = f"addr:{client[0] if client else ''}"
        if not self._budget.spend(registrant):
            self._registered("over_budget")
            return
        await self._store.set(digest, query.encode(), self._ttl)
        self._registered("stored")

    def _registered(self, outcome: str) -> None:
        if self._observer is not None:
            self._observer.registration(outcome)

    def _trusted_text(self, document_id: str) -> str | None:
        text = self._trusted.get(document_id)
        if text is None and document_id.startswith("sha256:"):
            text = self._trusted.get(document_id.removeprefix("sha256:"))
        if text is None and _HEX_SHA256.fullmatch(document_id):
            text = self._trusted.get(f"sha256:{document_id}")
        return text


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _refuse(message: str, code: str) -> Resolution:
    return Resolution(refusal=GraphQLError(message, extensions={"code": code}))


def load_trusted_documents(
    path: Path, schema: GraphQLSchema, documents: DocumentStore | None = None
) -> dict[str, str]:
    """The manifest's documents by id, each parsed and validated against ``schema`` (and, when
    given, learned by the document store so that its first request parses nothing).

    Both formats clients produce: Apollo's persisted query manifest and GraphQL Code
    Generator's client preset ``persisted-documents.json`` (``{"<id>": "<document>"}``)."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise TrustedDocumentsError(f"{path}: cannot be read ({error.strerror})") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise TrustedDocumentsError(f"{path}: not JSON ({error})") from None
    if isinstance(raw, dict) and "format" in raw:
        if raw.get("format") != APOLLO_MANIFEST_FORMAT or raw.get("version") != 1:
            raise TrustedDocumentsError(
                f"{path}: unknown manifest format {raw.get('format')!r} version "
                f"{raw.get('version')!r} (expected {APOLLO_MANIFEST_FORMAT!r} version 1)"
            )
        operations = raw.get("operations")
        if not isinstance(operations, list):
            raise TrustedDocumentsError(f"{path}: `operations` must be a list")
        manifest: dict[str, str] = {}
        for index, operation in enumerate(operations):
            if not (
                isinstance(operation, dict)
                and isinstance(operation.get("id"), str)
                and isinstance(operation.get("body"), str)
            ):
                raise TrustedDocumentsError(
                    f"{path}: operations[{index}] needs a string `id` and `body`"
                )
            manifest[operation["id"]] = operation["body"]
    elif isinstance(raw, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
    ):
        manifest = dict(raw)
    else:
        raise TrustedDocumentsError(
            f"{path}: expected Apollo's persisted query manifest or an object of "
            '{"<document id>": "<document>"}'
        )
    for document_id, body in manifest.items():
        try:
            document = parse(body)
        except GraphQLError as error:
            raise TrustedDocumentsError(
                f"{path}: document {document_id!r} does not parse: {error.message}"
            ) from None
        errors = validate(schema, document)
        if errors:
            raise TrustedDocumentsError(
                f"{path}: document {document_id!r} does not validate: {errors[0].message}"
            )
        if documents is not None:
            documents.learn(body, document, [], measured=False)
    return manifest
