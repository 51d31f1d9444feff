"""ASGI guard in front of the app: a bounded request body, and work stopped when the caller
leaves.

Starlette keeps running a handler whose client has gone; for a gateway that means upstream
calls nobody will read. The guard reads the body itself (refusing more than ``max_body_bytes``
with a 413 before the app sees a byte), then runs the app in a task that is cancelled when the
client disconnects before the response is complete. Callbacks registered under
``scope["gateway.on_close"]`` run when the request ends either way (the request's loaders use
it to cancel upstream calls still in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ON_CLOSE = "gateway.on_close"


class RequestGuard:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._read_body(scope, receive)
        except _ClientGone:
            return
        if body is None:
            await _too_large(send, self.max_body_bytes)
            return
        scope[ON_CLOSE] = []
        disconnected = asyncio.Event()
        complete = False

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

        task = asyncio.ensure_future(self.app(scope, replay, tracked_send))

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected.set()
            if not complete:
                task.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            await task
        except asyncio.CancelledError:
            if not disconnected.is_set():
                raise  # the server is cancelling us, not the client leaving
        finally:
            watcher.cancel()
            for callback in scope[ON_CLOSE]:
                callback()

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


async def _too_large(send: Send, limit: int) -> None:
    error = {
        "message": f"The request body is larger than {limit} bytes.",
        "extensions": {"code": "REQUEST_TOO_LARGE"},
    }
    await send_json(send, 413, {"data": None, "errors": [error]}, close=True)


async def send_json(
    send: Send,
    status: int,
    payload: object,
    *,
    close: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A whole JSON response; ``close`` when the rest of the request will not be read."""
    body = orjson.dumps(payload)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *(headers or ()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
