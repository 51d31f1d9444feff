"""``POST /webhooks/metronome``: the billing API's signed notifications, feeding live balances.

On only when ``METRONOME_WEBHOOK_SECRET`` is set (the app routes nothing there otherwise: 404).
A delivery is checked in this order, and a refusal does nothing else (nothing is remembered,
nothing refreshed, no upstream call):

1. at most :data:`MAX_BODY_BYTES` (64 KB): else ``413``;
2. signed: ``Metronome-Webhook-Signature`` is the lower-case hex HMAC-SHA256, with the secret,
   of the ``X-Metronome-Date`` header (``Date`` when absent), a newline and the raw body,
   compared in constant time; the date within :data:`TOLERANCE_SECONDS` (5 minutes) of now in
   either direction: else ``401``;
3. a JSON object with a string ``id``: else ``400``;
4. new: an ``id`` already seen (by any replica, when Redis is configured) answers ``200`` and
   does nothing, since the billing API delivers again whatever it did not see answered;
5. a known event type naming a ``customer_id`` (perhaps a ``contract_id``): that customer's
   pages leave the page cache and its live listings are refreshed, on every replica; an unknown
   type answers ``200`` and is counted.

Every delivery is counted by type (unknown types as ``other``) and outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import orjson
from starlette.types import Receive, Scope, Send

from gateway.live import LiveHub

logger = logging.getLogger("gateway.webhooks")

PATH = "/webhooks/metronome"
MAX_BODY_BYTES = 64 * 1024
TOLERANCE_SECONDS = 300
# Event types whose customer's seat balances (or their meaning) may have moved.
EVENT_PREFIXES = ("alerts.",)
EVENT_TYPES = frozenset(
    f"{kind}.{change}"
    for kind, changes in (
        ("commit", ("segment.start", "segment.end", "create", "edit", "archive")),
        ("credit", ("segment.start", "segment.end", "create", "edit", "archive")),
        ("contract", ("create", "start", "edit", "end", "archive")),
    )
    for change in changes
)


class WebhookObserver(Protocol):
    def webhook(self, event_type: str, outcome: str) -> None: ...


class WebhookReceiver:
    """Verifies and acts on one delivery (see the module's docstring); the ASGI endpoint, and
    what the embedded stand-in delivers to in process."""

    def __init__(
        self,
        secret: str,
        hub: LiveHub,
        observer: WebhookObserver | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret.encode()
        self._hub = hub
        self._observer = observer
        self._clock = clock

    async def receive(self, headers: Mapping[str, str], body: bytes) -> tuple[int, str, str]:
        """``(status, code, message)`` for a delivery of ``body`` with ``headers`` (names in
        lower case)."""
        if len(body) > MAX_BODY_BYTES:
            return self._answer("unknown", "too_large", 413, "PAYLOAD_TOO_LARGE", "Over 64 KB.")
        problem = self._unsigned(headers, body)
        if problem is not None:
            return self._answer("unknown", "unauthenticated", 401, "UNAUTHENTICATED", problem)
        try:
            event = orjson.loads(body)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict) or not _text(event.get("id"), 256):
            return self._answer(
                "unknown", "malformed", 400, "BAD_REQUEST", "Expected a JSON object with an id."
            )
        event_type = event.get("type")
        label = _label(event_type)
        if not await self._hub.bus.first_delivery(event["id"]):
            return self._answer(label, "duplicate", 200, "DUPLICATE", "Already received.")
        if label == "other":
            return self._answer(label, "ignored", 200, "IGNORED", "Not an event acted on.")
        properties = event.get("properties")
        customer = properties.get("customer_id") if isinstance(properties, dict) else None
        contract = properties.get("contract_id") if isinstance(properties, dict) else None
        if not isinstance(customer, str) or not _uuid(customer):
            return self._answer(label, "ignored", 200, "IGNORED", "Names no customer.")
        await self._hub.changed(
            customer, contract if isinstance(contract, str) and _uuid(contract) else None
        )
        return self._answer(label, "refreshed", 200, "OK", "Received.")

    def _unsigned(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the delivery is not signed as the billing API signs, or ``None``."""
        signature = headers.get("metronome-webhook-signature")
        date = headers.get("x-metronome-date") or headers.get("date")
        if not signature or not date:
            return "The delivery is not signed."
        try:
            sent = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return "The delivery's date is not an HTTP date."
        if abs(self._clock() - sent) > TOLERANCE_SECONDS:
            return "The delivery's date is more than 5 minutes away from now."
        expected = hmac.new(
            self._secret, date.encode("latin-1") + b"\n" + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode("latin-1")):
            return "The delivery's signature does not verify."
        return None

    def _answer(
        self, label: str, outcome: str, status: int, code: str, message: str
    ) -> tuple[int, str, str]:
        if self._observer is not None:
            self._observer.webhook(label, outcome)
        return status, code, message

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _send(send, 405, "METHOD_NOT_ALLOWED", "POST only.", allow=True)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope["headers"]
        }
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            status, code, message = self._answer(
                "unknown", "too_large", 413, "PAYLOAD_TOO_LARGE", "Over 64 KB."
            )
            await _send(send, status, code, message)
            return
        body = bytearray()
        while True:
            received = await receive()
            if received["type"] == "http.disconnect":
                return
            body += received.get("body", b"")
            if len(body) > MAX_BODY_BYTES:
                break  # refused below, without reading the rest
            if not received.get("more_body", False):
                break
        status, code, text = await self.receive(headers, bytes(body))
        await _send(send, status, code, text)


def _label(event_type: Any) -> str:
    """The event type as a metric label: a known type, or ``other``."""
    if isinstance(event_type, str) and (
        event_type in EVENT_TYPES
        or (
            event_type.startswith(EVENT_PREFIXES) and len(event_type) <= 64 and event_type.isascii()
        )
    ):
        return event_type
    return "other"


def _text(value: object, limit: int) -> bool:
    return isinstance(value, str) and 0 < len(value) <= limit


def _uuid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


async def _send(send: Send, status: int, code: str, message: str, *, allow: bool = False) -> None:
    body = orjson.dumps({"status": code, "message": message})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if allow:
        headers.append((b"allow", b"POST"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


__all__ = ["MAX_BODY_BYTES", "PATH", "TOLERANCE_SECONDS", "WebhookReceiver"]
