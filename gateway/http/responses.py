"""Every error answer the gateway writes itself rather than Strawberry: one GraphQL error with
its ``extensions.code``, its status, its media type and its ``Vary``, composed here only.

Who answers with which:

* the layers in front of the view (the guard's 400/401/408/413/431, caller authentication's
  401/503) write :func:`send_refusal` straight to ASGI: in the media type the request's
  ``Accept`` negotiates (:mod:`gateway.http.media`), varying on ``Accept``; under
  ``application/graphql-response+json`` without ``data`` (nothing ran), under
  ``application/json`` with ``data: null``, as they always were;
* the server protocol's 408/431, written before a request's headers are complete, take their
  body from :func:`refusal_body` (always ``application/json``: no ``Accept`` to read);
* the view's own refusals (400, 405, 406) and the app's (``/metrics``' 401) are
  :func:`refusal_response`, without ``data`` under either type (the view adds ``Vary`` and
  ``Cache-Control`` as it does to every answer of ``/graphql``);
* an answer over ``GATEWAY_MAX_RESPONSE_BYTES`` is replaced by :func:`too_large_response`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Scope, Send

from gateway.http.media import APPLICATION_JSON, GRAPHQL_RESPONSE_JSON, refusal_media_type

RESPONSE_TOO_LARGE = "RESPONSE_TOO_LARGE"

Headers = list[tuple[bytes, bytes]]


def graphql_error(message: str, code: str) -> dict[str, Any]:
    """One GraphQL error as the gateway writes it: a message for the caller and its code."""
    return {"message": message, "extensions": {"code": code}}


def refusal_payload(
    error: dict[str, Any], media_type: str, *, null_data: bool = True
) -> dict[str, Any]:
    """A refused request's GraphQL response: no ``data`` under graphql-response+json (a
    request error), ``data: null`` first under ``application/json`` unless ``null_data`` is
    false."""
    if null_data and media_type != GRAPHQL_RESPONSE_JSON:
        return {"data": None, "errors": [error]}
    return {"errors": [error]}


def refusal_body(error: dict[str, Any], media_type: str = APPLICATION_JSON) -> bytes:
    """The bytes of :func:`refusal_payload`, for what writes to the connection itself."""
    return orjson.dumps(refusal_payload(error, media_type))


async def send_refusal(
    scope: Scope,
    send: Send,
    status: int,
    error: dict[str, Any],
    *,
    media_type: str | None = None,
    close: bool = False,
    headers: Headers | None = None,
) -> None:
    """A request refused in front of the view, as one GraphQL error in the media type the
    request's ``Accept`` negotiates (:func:`gateway.http.media.refusal_media_type`, unless
    ``media_type`` is given), varying on ``Accept`` as the view's answers do. ``close`` when
    the rest of the request will not be read."""
    media_type = media_type or refusal_media_type(scope["headers"])
    vary = [(b"vary", b"Accept")]
    await send_json(
        send,
        status,
        refusal_payload(error, media_type),
        media_type,
        close=close,
        headers=[*vary, *(headers or ())],
    )


async def send_json(
    send: Send,
    status: int,
    payload: object,
    media_type: str,
    *,
    close: bool = False,
    headers: Headers | None = None,
) -> None:
    """A whole JSON response; ``close`` when the rest of the request will not be read."""
    body = orjson.dumps(payload)
    headers = [
        (b"content-type", media_type.encode()),
        (b"content-length", str(len(body)).encode()),
        *(headers or ()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def refusal_response(
    message: str,
    status: int = 400,
    media_type: str | None = APPLICATION_JSON,
    *,
    code: str = "BAD_REQUEST",
    headers: dict[str, str] | None = None,
) -> Response:
    """A request the view or the app refuses, as a GraphQL response (``extensions.code``
    BAD_REQUEST by default) in ``media_type`` (``application/json`` when none could be
    negotiated)."""
    body = refusal_payload(graphql_error(message, code), APPLICATION_JSON, null_data=False)
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type=media_type or APPLICATION_JSON,
        headers=headers,
    )


def too_large_response(
    size: int, limit: int, *, status: int, media_type: str | None, batch: int | None
) -> Response:
    """The answer that replaces one of ``size`` bytes, over ``limit``: one
    ``RESPONSE_TOO_LARGE`` error with ``data: null``, once per operation of a batch."""
    error = graphql_error(
        f"The answer is {size} bytes; at most {limit} are sent. Select fewer fields, a "
        "smaller `first`, or fewer aliases, ids or representations.",
        RESPONSE_TOO_LARGE,
    )
    body: object = {"data": None, "errors": [error]}
    if batch is not None:
        body = [body] * batch
    return Response(orjson.dumps(body), status_code=status, media_type=media_type)


__all__ = [
    "RESPONSE_TOO_LARGE",
    "graphql_error",
    "refusal_body",
    "refusal_payload",
    "refusal_response",
    "send_json",
    "send_refusal",
    "too_large_response",
]
