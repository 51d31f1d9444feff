"""Compressed answers: ``Accept-Encoding`` negotiated here, the bytes made by maintained libraries.

:class:`ResponseCompression` is an ASGI middleware. Per request it picks a content coding from
the client's ``Accept-Encoding`` (:func:`negotiate`: quality values, ``identity`` and ``*``
honoured; ``zstd``, ``br``, ``gzip`` offered in that order of preference); per response it
decides whether compressing helps, and if so compresses with ``zstandard``, ``brotli`` or the
standard library's ``zlib``.

Why not Starlette's ``GZipMiddleware``: it only speaks gzip and tests for the substring
``"gzip"`` in the header, so ``gzip;q=0`` still gets gzip; on the gateway's answers zstd and
brotli give smaller bodies for less CPU (see BENCHMARKS.md, "Compression"). Why not
``starlette-compress`` (zstd, br, gzip): it costs answers the same CPU, but ignores relative
quality values and compresses every GraphiQL asset request anew, 22 ms of CPU a page load
(BENCHMARKS.md, "Compression: the library considered"). This module holds only the negotiation
and the response bookkeeping (``Vary``, ``Content-Length``, ``ETag``).

What goes out compressed: a response whose type is text, JSON, JavaScript, XML or an
uncompressed font (TrueType, OpenType), at least ``minimum_bytes`` long, not already encoded,
not a partial (206) or ``text/event-stream`` answer and not marked ``no-transform``. Every such response carries ``Vary: Accept-Encoding``,
compressed or not, so that a cache never hands one client's coding to another. A body sent in
pieces (``StaticFiles``) is collected up to :data:`WHOLE_BODY_BYTES` and compressed whole (with
an exact ``Content-Length``); a longer one is compressed as it streams, without a length.

The GraphiQL assets under ``assets_path`` never change while the process lives, so their
compressed bytes are kept (at a higher level, since it is paid once), keyed by path, coding and
the file's ``ETag``, within :data:`ASSET_CACHE_BYTES`.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import posixpath
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Protocol
from urllib.parse import unquote

import brotli
import zstandard
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.caches import LRUCache

__all__ = [
    "ASSET_CACHE_BYTES",
    "CODINGS",
    "WHOLE_BODY_BYTES",
    "Coding",
    "ResponseCompression",
    "negotiate",
]

WHOLE_BODY_BYTES = 2 * 1024 * 1024  # a streamed body up to this is compressed whole
# Compressed GraphiQL assets kept: a fixed set of files (7, in 3 codings: about 6.5 MB).
ASSET_CACHE_BYTES = 16 * 1024 * 1024
_THREAD_BYTES = 256 * 1024  # longer bodies are compressed off the event loop

_COMPRESSIBLE = frozenset(
    {
        "application/json",
        "application/graphql-response+json",
        "application/javascript",
        "application/xml",
        "image/svg+xml",
        # Fonts without a compression of their own (not WOFF2): Monaco's icon font is one.
        "font/ttf",
        "font/otf",
    }
)
_NOT_TRANSFORMED_STATUSES = frozenset({204, 206, 304})


class StreamCompressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def finish(self) -> bytes: ...


@dataclass(frozen=True)
class Coding:
    """A content coding: its token, how to compress a whole body or a stream, and the levels
    chosen by measurement (BENCHMARKS.md): ``answer_level`` for the gateway's answers,
    ``asset_level`` for the GraphiQL assets, compressed once and kept."""

    name: str
    compress: Callable[[bytes, int], bytes]
    stream: Callable[[int], StreamCompressor]
    answer_level: int
    asset_level: int


class _Gzip:
    def __init__(self, level: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: a gzip wrapper

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def finish(self) -> bytes:
        return self._compressor.flush()


class _Brotli:
    def __init__(self, quality: int) -> None:
        self._compressor = brotli.Compressor(quality=quality)

    def compress(self, data: bytes) -> bytes:
        return bytes(self._compressor.process(data))

    def finish(self) -> bytes:
        return bytes(self._compressor.finish())


class _Zstd:
    def __init__(self, level: int) -> None:
        self._compressor = zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, data: bytes) -> bytes:
        return self._compressor.compress(data)

    def finish(self) -> bytes:
        return self._compressor.flush()


def _gzip(data: bytes, level: int) -> bytes:
    return gzip.compress(data, level, mtime=0)  # mtime 0: the same answer, the same bytes


def _brotli(data: bytes, quality: int) -> bytes:
    return bytes(brotli.compress(data, quality=quality))


def _zstd(data: bytes, level: int) -> bytes:
    # A fresh compressor per body: one may be used by a worker thread at the same time.
    return zstandard.ZstdCompressor(level=level).compress(data)


# In the order the gateway prefers them when the client likes several equally: at the levels
# chosen, zstd gives the smallest answers for the least CPU, brotli comes next (and is what
# Safari has), gzip is what everyone has. Answer levels: the best that costs at most a tenth of
# the gateway's CPU per request (level 1 for all three; higher ones save at most a quarter
# more bytes for up to 11 times the CPU). Asset levels: the best that costs about a fifth of a
# second at most, once per process, for GraphiQL's 5 MB script (zstd 19 would take 1.7 s to save
# 7 %, brotli 9 0.37 s to save 3 %).
CODINGS: tuple[Coding, ...] = (
    Coding("zstd", _zstd, _Zstd, answer_level=1, asset_level=11),
    Coding("br", _brotli, _Brotli, answer_level=1, asset_level=6),
    Coding("gzip", _gzip, _Gzip, answer_level=1, asset_level=9),
)


def negotiate(accept_encoding: str | None, codings: Iterable[Coding] = CODINGS) -> Coding | None:
    """The coding to answer with, or ``None`` for identity (RFC 9110, section 12.5.3).

    No header, or an empty one, means identity. Each offered coding gets the quality of its own
    entry, else that of ``*``, else 0; the best one above 0 wins (ties: the gateway's order),
    unless ``identity`` is listed with a higher quality. When nothing offered is acceptable the
    answer goes out as identity, even if the client excluded identity too: a readable answer
    beats a 406.
    """
    if not accept_encoding:
        return None
    qualities: dict[str, float] = {}
    for entry in accept_encoding.split(","):
        token, *parameters = entry.split(";")
        name = token.strip().lower()
        if not name:
            continue
        quality = 1.0
        for parameter in parameters:
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "q":
                quality = _quality(value)
        if quality < 0:  # malformed: the entry says nothing
            continue
        qualities["gzip" if name == "x-gzip" else name] = quality
    best: Coding | None = None
    best_quality = 0.0
    for coding in codings:
        quality = qualities.get(coding.name, qualities.get("*", 0.0))
        if quality > best_quality:
            best, best_quality = coding, quality
    if best is not None and qualities.get("identity", 0.0) > best_quality:
        return None
    return best


def _quality(value: str) -> float:
    """The weight in ``q=value``, or -1 when it is not a number from 0 to 1."""
    try:
        quality = float(value.strip())
    except ValueError:
        return -1.0
    return quality if 0.0 <= quality <= 1.0 else -1.0


class ResponseCompression:
    """Compresses what the client accepts compressed; see the module's docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        minimum_bytes: int = 1024,
        assets_path: str | None = None,
        codings: tuple[Coding, ...] = CODINGS,
    ) -> None:
        self.app = app
        self.minimum_bytes = minimum_bytes
        self.assets_prefix = assets_path.rstrip("/") + "/" if assets_path else None
        self.codings = codings
        # Clients send a handful of distinct Accept-Encoding values: each is parsed once, then
        # answered from a memo (256 values, the least recently used dropped first).
        self.negotiated = lru_cache(maxsize=256)(partial(negotiate, codings=codings))
        # Least recently used dropped first past ASSET_CACHE_BYTES.
        self.compressed_assets: LRUCache[tuple[str, str, bytes], bytes] = LRUCache(
            math.inf, max_size=ASSET_CACHE_BYTES, getsizeof=len
        )
        # Assets being compressed: concurrent first requests wait for one compression.
        self.compressing: dict[tuple[str, str, bytes], asyncio.Future[bytes]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        accept = b",".join(v for k, v in scope["headers"] if k == b"accept-encoding")
        # HEAD: the headers of the identity answer (a compressed length needs the body).
        coding = (
            None
            if not accept or scope["method"] == "HEAD"
            else self.negotiated(accept.decode("latin-1"))
        )
        if coding is not None and "http.response.pathsend" in scope.get("extensions", {}):
            # A file sent by path would bypass us; have StaticFiles send its bytes instead.
            extensions = dict(scope["extensions"])
            del extensions["http.response.pathsend"]
            scope = {**scope, "extensions": extensions}
        path: str = scope.get("path", "")
        asset = self.assets_prefix is not None and path.startswith(self.assets_prefix)
        # The file, however the caller spelled its path (StaticFiles normalises it too), so
        # that spellings cannot multiply the cache's entries.
        name = posixpath.normpath(unquote(path)) if asset else None
        await self.app(scope, receive, _Responder(self, send, coding, name))


class _Responder:
    """The ``send`` of one request: holds back the start of a response it may compress."""

    def __init__(
        self, owner: ResponseCompression, send: Send, coding: Coding | None, asset: str | None
    ) -> None:
        self.owner = owner
        self.send = send
        self.coding = coding
        self.asset = asset  # the asset's path when the response is a GraphiQL asset
        self.start: Message | None = None
        self.passing = True  # sending messages on untouched
        self.chunks: list[bytes] = []
        self.size = 0
        self.stream: StreamCompressor | None = None

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.get("headers", ())
            if message["status"] == 304:  # it must say what its 200 would have said
                message["headers"] = _with_vary(headers)
            if not _compressible(message["status"], headers):
                await self.send(message)
                return
            message["headers"] = _with_vary(headers)
            if self.coding is None:
                await self.send(message)
                return
            self.start = message
            self.passing = False
            return
        if self.passing or message["type"] != "http.response.body":
            await self.send(message)
            return
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if self.stream is not None:
            await self._send_streamed(body, more)
            return
        self.chunks.append(body)
        self.size += len(body)
        # An asset (one of the gateway's own files) is always compressed whole, once, and kept;
        # only answers longer than WHOLE_BODY_BYTES are compressed as they stream.
        if more and (self.size <= WHOLE_BODY_BYTES or self.asset is not None):
            return
        whole = b"".join(self.chunks)
        self.chunks = []
        if more:
            await self._start_streaming(whole)
        elif len(whole) < self.owner.minimum_bytes:
            assert self.start is not None
            await self.send(self.start)
            await self.send({"type": "http.response.body", "body": whole})
        else:
            await self._send_whole(whole)

    async def _send_whole(self, body: bytes) -> None:
        assert self.coding is not None and self.start is not None
        coding = self.coding
        headers = self.start["headers"]
        key = None
        if self.asset is not None:
            etag = _header(headers, b"etag")
            key = (self.asset, coding.name, etag) if etag else None
        if key is None:
            compressed = await _compress(coding, body, coding.answer_level)
        else:
            compressed = self.owner.compressed_assets.get(key) or await self._compress_asset(
                key, body
            )
        self.start["headers"] = _encoded(headers, coding.name, len(compressed))
        await self.send(self.start)
        await self.send({"type": "http.response.body", "body": compressed})

    async def _compress_asset(self, key: tuple[str, str, bytes], body: bytes) -> bytes:
        """The asset compressed once: concurrent first requests share one compression."""
        assert self.coding is not None
        pending = self.owner.compressing.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        pending = asyncio.ensure_future(_compress(self.coding, body, self.coding.asset_level))
        self.owner.compressing[key] = pending
        try:
            compressed = await asyncio.shield(pending)
        finally:
            self.owner.compressing.pop(key, None)
        if len(compressed) <= ASSET_CACHE_BYTES:
            self.owner.compressed_assets[key] = compressed
        return compressed

    async def _start_streaming(self, first: bytes) -> None:
        assert self.coding is not None and self.start is not None
        level = self.coding.asset_level if self.asset is not None else self.coding.answer_level
        self.stream = self.coding.stream(level)
        self.start["headers"] = _encoded(self.start["headers"], self.coding.name, None)
        await self.send(self.start)
        await self._send_streamed(first, True)

    async def _send_streamed(self, body: bytes, more: bool) -> None:
        assert self.stream is not None
        out = self.stream.compress(body) if body else b""
        if not more:
            out += self.stream.finish()
        if out or not more:
            await self.send({"type": "http.response.body", "body": out, "more_body": more})


async def _compress(coding: Coding, body: bytes, level: int) -> bytes:
    if len(body) > _THREAD_BYTES:
        return await asyncio.to_thread(coding.compress, body, level)
    return coding.compress(body, level)


def _compressible(status: int, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether this response could go out compressed (its size aside)."""
    if status < 200 or status in _NOT_TRANSFORMED_STATUSES:
        return False
    content_type = b""
    for name, value in headers:
        if name == b"content-encoding":
            return False
        if name == b"cache-control" and b"no-transform" in value.lower():
            return False
        if name == b"content-type":
            content_type = value
    media = content_type.partition(b";")[0].strip().lower().decode("latin-1")
    if media.startswith("text/"):
        return media != "text/event-stream"
    return media in _COMPRESSIBLE or media.endswith(("+json", "+xml"))


def _header(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> bytes | None:
    return next((value for name, value in headers if name == wanted), None)


def _with_vary(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` with ``Accept-Encoding`` in ``Vary`` (merged into an existing one)."""
    out: list[tuple[bytes, bytes]] = []
    merged = False
    for name, value in headers:
        if name == b"vary" and not merged:
            fields = {field.strip().lower() for field in value.split(b",")}
            if not fields & {b"accept-encoding", b"*"}:
                value = value + b", Accept-Encoding"
            merged = True
        out.append((name, value))
    if not merged:
        out.append((b"vary", b"Accept-Encoding"))
    return out


def _encoded(
    headers: Iterable[tuple[bytes, bytes]], coding: str, length: int | None
) -> list[tuple[bytes, bytes]]:
    """The headers of the compressed representation: its coding and length (none when it
    streams), no byte ranges, and a weak ``ETag`` (the bytes differ from the identity ones, the
    content does not; Starlette's ``If-None-Match`` check accepts the weak form)."""
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name in (b"content-length", b"accept-ranges"):
            continue
        if name == b"etag" and not value.startswith(b"W/"):
            value = b"W/" + value
        out.append((name, value))
    out.append((b"content-encoding", coding.encode()))
    if length is not None:
        out.append((b"content-length", str(length).encode()))
    return out
