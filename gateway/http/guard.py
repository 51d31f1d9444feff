"""What stands between hostile or careless clients and the app.

* :class:`RequestGuard`, an ASGI layer: refuses headers over their caps (431), then ambiguous
  or mangled credentials (several ``Authorization`` headers: 400; one that is not printable
  ASCII: 401), before anything else reads them, reads the body itself within ``body_timeout`` seconds (else 408) and ``max_body_bytes``
  (else 413), then runs the app, cancelled when the client disconnects before the response is
  complete (Starlette keeps running a handler whose client has gone; for a gateway that means
  upstream calls nobody will read). It listens for the disconnect from 20 ms into the
  request: most answers are complete by then, and listening costs a task per request. Such a
  request is marked gone for the access log (status 499). The callbacks of the request state's ``on_close``
  (:mod:`gateway.http.state`) run when the request ends either way (the request's loaders use it
  to cancel upstream calls still in flight). Its refusals are GraphQL errors in the media type
  the view would have answered in (:func:`gateway.http.responses.send_refusal`).
* :class:`GatewayHttpProtocol`, uvicorn's httptools protocol with a deadline on a request's
  headers and caps on their size, which uvicorn lacks: a client that sends them a byte at a
  time would otherwise hold its connection (and a file descriptor) for ever, and one that
  sends a header of megabytes costs seconds of CPU (httptools joins a header's pieces as they
  come, so the cost grows with the square of its size). ``gateway serve`` runs it
  (``uvicorn.run(http=...)``); it reads the deadline and the caps from the app's lifespan
  state, where :class:`RequestGuard` puts them. The guard checks the caps again for servers
  that run without it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.http.media import refusal_media_type
from gateway.http.responses import graphql_error, refusal_body, send_refusal
from gateway.http.state import request_state

# Lifespan state keys: how long GatewayHttpProtocol waits for a request's headers, and the
# caps on one header line and on the whole head (request line and headers), in bytes.
HEADER_TIMEOUT_STATE = "gateway.request_header_timeout"
HEADER_LIMITS_STATE = "gateway.request_header_limits"
# A callable the app puts in its lifespan state: called (at least once) when the server starts
# shutting down, so that streams that never end by themselves (live subscriptions) end now
# rather than holding the shutdown for its whole grace period.
SHUTDOWN_STATE = "gateway.on_shutdown"
DEFAULT_HEADER_TIMEOUT = 5.0
DEFAULT_MAX_HEADER_BYTES = 8192
DEFAULT_MAX_HEADERS_BYTES = 32768

# How long a connection whose headers were refused keeps reading (and dropping) what the client
# still sends before it is closed: closing with unread bytes would reset the connection, and
# the client could lose the answer.
_LINGER = 1.0

# How long a request runs before the guard starts listening for its client leaving.
_WATCH_AFTER = 0.02

# What survives the trip upstream unchanged: a header value of printable ASCII.
_PRINTABLE_ASCII = re.compile(rb"[\x20-\x7e]*")

logger = logging.getLogger("gateway.http.guard")


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout: float = 10.0,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_headers_bytes: int = DEFAULT_MAX_HEADERS_BYTES,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.max_headers_bytes = max_headers_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan" and "state" in scope:
                scope["state"][HEADER_TIMEOUT_STATE] = self.header_timeout
                scope["state"][HEADER_LIMITS_STATE] = (
                    self.max_header_bytes,
                    self.max_headers_bytes,
                )
            await self.app(scope, receive, send)
            return
        excess = self._header_excess(scope["headers"])
        if excess is not None:
            # An Accept over the cap is not parsed: that refusal is application/json.
            media_type = refusal_media_type(scope["headers"], limit=self.max_header_bytes)
            error = graphql_error(excess, "REQUEST_HEADER_FIELDS_TOO_LARGE")
            await send_refusal(scope, send, 431, error, media_type=media_type, close=True)
            return
        if await _refused_credentials(scope, send):
            return
        try:
            async with asyncio.timeout(self.body_timeout):
                body = await self._read_body(scope, receive)
        except _ClientGone:
            request_state(scope).client_gone = True
            return
        except TimeoutError:
            await _too_slow(scope, send, self.body_timeout)
            return
        if body is None:
            await _too_large(scope, send, self.max_body_bytes)
            return
        disconnected = asyncio.Event()
        complete = False
        client_left = False  # the watcher cancelled the request because its client left
        request = asyncio.current_task()

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message: Message = {"type": "http.request", "body": body, "more_body": False}
                body = None
                return message
            await disconnected.wait()
            return {"type": "http.disconnect"}

        async def tracked_send(message: Message) -> None:
            nonlocal complete
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True

        async def watch() -> None:
            nonlocal client_left
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()
            if not complete and request is not None:
                client_left = True
                request.cancel()

        # The watcher starts only if the request is still running after _WATCH_AFTER: most
        # answers are sent before that, and then neither its task nor a task for the app is
        # made (about a tenth of a small request's CPU in this layer).
        loop = asyncio.get_running_loop()
        watcher: asyncio.Task[None] | None = None

        def start_watching() -> None:
            nonlocal watcher
            watcher = loop.create_task(watch())

        timer = loop.call_later(_WATCH_AFTER, start_watching)
        try:
            await self.app(scope, replay, tracked_send)
        except asyncio.CancelledError:
            # The client leaving is the end of this request, not a cancellation to pass on; the
            # server cancelling us (as well) is.
            if not client_left or request is None or request.uncancel() > 0:
                raise
        finally:
            timer.cancel()
            if watcher is not None:
                watcher.cancel()
            if disconnected.is_set() and not complete:
                request_state(scope).client_gone = True
            request_state(scope).close()

    def _header_excess(self, headers: list[tuple[bytes, bytes]]) -> str | None:
        """Why the headers are over their caps (names and values counted), else ``None``.
        Under ``gateway serve`` the protocol refused such a request already; under another
        server this is the first look at them."""
        total = 0
        for name, value in headers:
            size = len(name) + len(value)
            if size > self.max_header_bytes:
                return header_too_large(self.max_header_bytes)
            total += size
        if total > self.max_headers_bytes:
            return headers_too_large(self.max_headers_bytes)
        return None

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or ``None`` once it is known to be too large."""
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)


class _ClientGone(Exception):
    """The client left before sending its whole body."""


async def _refused_credentials(scope: Scope, send: Send) -> bool:
    """Refuses a request whose credentials the gateway cannot forward as they came: which of
    several ``Authorization`` headers is meant is not for the gateway to guess, and a value
    outside printable ASCII would be re-encoded on its way upstream. Checked here, before the
    body is read, so that it holds on every path (the fast lane and FastAPI's view alike)."""
    values = [value for name, value in scope["headers"] if name == b"authorization"]
    if len(values) > 1:
        error = graphql_error("Send one Authorization header, not several.", "BAD_REQUEST")
        await send_refusal(scope, send, 400, error, close=True)
        return True
    if values and not _PRINTABLE_ASCII.fullmatch(values[0]):
        error = graphql_error(
            "The Authorization header must be printable ASCII: "
            "'Authorization: Bearer <Metronome API token>'.",
            "UNAUTHENTICATED",
        )
        await send_refusal(
            scope,
            send,
            401,
            error,
            close=True,
            headers=[(b"www-authenticate", b'Bearer error="invalid_token"')],
        )
        return True
    return False


def header_too_large(limit: int) -> str:
    return f"A request header is larger than {limit} bytes."


def headers_too_large(limit: int) -> str:
    return f"The request's headers are larger than {limit} bytes in all."


async def _too_large(scope: Scope, send: Send, limit: int) -> None:
    error = graphql_error(f"The request body is larger than {limit} bytes.", "REQUEST_TOO_LARGE")
    await send_refusal(scope, send, 413, error, close=True)


async def _too_slow(scope: Scope, send: Send, limit: float) -> None:
    error = graphql_error(
        f"The request body took longer than {limit:g} s to arrive.", "REQUEST_TIMEOUT"
    )
    await send_refusal(scope, send, 408, error, close=True)


class GatewayHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline on the headers of each request and caps
    on their size.

    The clock starts when the connection opens or, on a kept-alive connection, with the first
    byte of the next request (uvicorn's keep-alive timeout covers the silence before it), and
    stops when the headers are complete; from then on :class:`RequestGuard` bounds the body.
    Past the deadline the connection is closed, after a 408 if the client had begun a request
    (a connection that sent nothing is closed silently, as uvicorn closes an idle kept-alive
    one).

    The bytes of a request's head are counted as they arrive, before the parser sees them: a
    header line longer than ``max_header_bytes``, or a head (request line and headers) longer
    than ``max_headers_bytes``, is answered 431 at once, and the connection closed after a
    short linger, without the parser ever holding more than the caps (and one read) of it.
    On a connection with pipelined requests, the head of a request that begins in the same read
    as the previous one's end is counted from the next read on. A chunked body's trailer
    fields, which httptools joins as it joins headers, are bounded too: once the parser has
    taken more than ``max_headers_bytes`` of a body without a byte of content or a chunk
    boundary coming of it, the connection is closed (the request is being answered, or about
    to be, so there is no room for a 431).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = float(app_state.get(HEADER_TIMEOUT_STATE, DEFAULT_HEADER_TIMEOUT))
        self.max_header_bytes, self.max_headers_bytes = app_state.get(
            HEADER_LIMITS_STATE, (DEFAULT_MAX_HEADER_BYTES, DEFAULT_MAX_HEADERS_BYTES)
        )
        self._header_deadline: asyncio.TimerHandle | None = None
        self._request_begun = False  # bytes of the request the clock is running for arrived
        # The head being received: its bytes, its complete lines, the bytes of its last line.
        self._in_head = True
        self._head_bytes = 0
        self._head_lines = 0
        self._line_bytes = 0
        self._lingering: asyncio.TimerHandle | None = None  # set once a head was refused
        # Bytes of a body the parser took with nothing coming of them (trailers, chunk
        # extensions), and whether the read being parsed has produced anything yet.
        self._idle_body_bytes = 0
        self._body_quiet = False

    def shutdown(self) -> None:
        """The server is shutting down: the app's streams are told first (see
        :data:`SHUTDOWN_STATE`), then uvicorn lets the response in progress finish."""
        on_shutdown = self.app_state.get(SHUTDOWN_STATE)
        if on_shutdown is not None:
            on_shutdown()
        super().shutdown()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_clock()

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return  # the rest of a refused request: dropped unread
        if self._in_head:
            excess = self._count_head(data)
            if excess is not None:
                self._refuse_head(excess)
                return
        in_body = not self._in_head
        self._body_quiet = True
        previous = self.cycle
        super().data_received(data)
        if in_body and self._body_quiet and not self._in_head:
            self._idle_body_bytes += len(data)
            if self._idle_body_bytes > self.max_headers_bytes:
                logger.warning(
                    "closed a connection whose request sent more than %d bytes of trailers "
                    "or chunk framing",
                    self.max_headers_bytes,
                )
                self.transport.close()
                return
        if (
            self.cycle is not previous  # a request's headers are complete
            or self.transport.is_closing()
            or self.transport.get_protocol() is not self  # upgraded to another protocol
        ):
            self._stop_header_clock()
        elif previous is None or previous.response_complete:
            if self._header_deadline is None:
                self._start_header_clock()  # the first bytes of the next request
            self._request_begun = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = self._head_lines = self._line_bytes = self._idle_body_bytes = 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_progress()
        super().on_body(body)

    def on_chunk_header(self) -> None:
        self._body_progress()

    def on_chunk_complete(self) -> None:
        self._body_progress()

    def _body_progress(self) -> None:
        self._body_quiet = False
        self._idle_body_bytes = 0

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True  # what comes next is the next request's head

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_clock()
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def _count_head(self, data: bytes) -> str | None:
        """Counts the head's bytes in ``data`` (up to the blank line that ends it); why the
        head is over a cap, else ``None``. Linear in ``data``: one ``find`` per line."""
        if (
            self._head_bytes == 0
            and data.find(b"\r\n\r\n", 0, min(self.max_header_bytes, self.max_headers_bytes)) >= 0
        ):
            return None  # the usual case: a whole head in one read, shorter than either cap
        start = 0
        while start < len(data):
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline + 1
            self._line_bytes += end - start
            self._head_bytes += end - start
            # The request line is bounded by the whole head's cap only.
            if self._head_lines > 0 and self._line_bytes > self.max_header_bytes:
                return header_too_large(self.max_header_bytes)
            if self._head_bytes > self.max_headers_bytes:
                return headers_too_large(self.max_headers_bytes)
            if newline < 0:
                return None
            blank = self._line_bytes <= 2  # CRLF (or a bare LF) alone: the head is complete
            self._head_lines += 1
            self._line_bytes = 0
            if blank and self._head_lines > 1:
                return None  # the rest is a body, or the next request: the parser's business
            start = end
        return None

    def _refuse_head(self, message: str) -> None:
        self._stop_header_clock()
        logger.warning("refused a request whose headers were too large (HTTP 431): %s", message)
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request while the previous one is answered: no room for an answer.
            self.transport.close()
            return
        self._write_error(431, message, "REQUEST_HEADER_FIELDS_TOO_LARGE")
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._lingering = self.loop.call_later(_LINGER, self.transport.close)

    def _start_header_clock(self) -> None:
        self._request_begun = False
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_clock(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self.transport.is_closing():
            return
        answering = self.cycle is not None and not self.cycle.response_complete
        if self._request_begun and not answering:
            logger.warning(
                "closed a connection whose request headers took longer than %g s (HTTP 408)",
                self.header_timeout,
            )
            self._write_error(
                408,
                f"The request headers took longer than {self.header_timeout:g} s to arrive.",
                "REQUEST_TIMEOUT",
            )
        self.transport.close()

    def _write_error(self, status: int, message: str, code: str) -> None:
        """A whole JSON error answer, written straight to the connection (no request to hand
        the app), saying that the connection closes. Always ``application/json``: the headers
        are incomplete, so there is no ``Accept`` to negotiate with."""
        body = refusal_body(graphql_error(message, code))
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
