"""The media type of an answer, negotiated by the request's ``Accept``.

Every answer of the gateway that carries GraphQL errors takes its media type from here: the
view's (data, request errors, its 400/405/406 refusals) and the refusals the layers in front of
it write themselves (the guard's 400/401/408/413/431, caller authentication's 401/503). A client
that asked for ``application/graphql-response+json`` (Apollo Client 4, urql, graphql-http) reads
GraphQL errors only in that type: a 401 in ``application/json`` would be a transport error to it.
Those answers vary on ``Accept``, and say so.

Below every layer that answers (it imports nothing of the gateway's), so that the guard and
authentication use the view's negotiation rather than a copy of it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"

_EXACT = 2  # specificity of a range naming the type itself; `type/*` is 1, `*/*` is 0


def accept_of(headers: Iterable[tuple[bytes, bytes]], *, limit: int | None = None) -> str | None:
    """The ``Accept`` of a request's raw (ASGI) headers, several fields joined as one list
    (RFC 9110 5.3); ``None`` without one, or when longer than ``limit`` bytes (a refusal of
    oversized headers does not parse them)."""
    values = [value for name, value in headers if name == b"accept"]
    if not values:
        return None
    joined = b", ".join(values)
    if limit is not None and len(joined) > limit:
        return None
    return joined.decode("latin-1")


def refusal_media_type(headers: Iterable[tuple[bytes, bytes]], *, limit: int | None = None) -> str:
    """The media type of a refusal to the request with these headers: the negotiated one, and
    ``application/json`` when ``Accept`` allows neither (as the view's 406 is)."""
    return negotiate(accept_of(headers, limit=limit)) or APPLICATION_JSON


# Clients send a handful of distinct Accept values: each is parsed once, then answered from a
# memo (256 values, the least recently used dropped first; a value is at most a header's size).
@lru_cache(maxsize=256)
def negotiate(accept: str | None) -> str | None:
    """The response media type an ``Accept`` header asks for, or ``None`` when it accepts
    neither ``application/graphql-response+json`` nor ``application/json``.

    Each type takes the quality of the most specific range matching it (RFC 9110 12.5.1); the
    higher quality wins, then the more specific match. Between two types named outright the
    specification's preference (graphql-response+json) breaks the tie; matched only by a
    wildcard (``*/*``, ``application/*``), or with no ``Accept`` at all, the answer is
    ``application/json``, which is what a legacy client sending those means.
    """
    if accept is None or not accept.strip():
        return APPLICATION_JSON
    ranges = _media_ranges(accept)
    best: tuple[float, int, bool] | None = None
    chosen = None
    for media_type in (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON):
        match = _quality(media_type, ranges)
        if match is None or match[0] <= 0:
            continue
        quality, specificity = match
        preferred = media_type == (
            GRAPHQL_RESPONSE_JSON if specificity == _EXACT else APPLICATION_JSON
        )
        rank = (quality, specificity, preferred)
        if best is None or rank > best:
            best, chosen = rank, media_type
    return chosen


EVENT_STREAM = "text/event-stream"


@lru_cache(maxsize=256)
def prefers_event_stream(accept: str | None) -> bool:
    """Whether an ``Accept`` asks for Server-Sent Events (graphql-sse) over a JSON answer: it
    names ``text/event-stream`` with a quality above every JSON type's. A client that lists
    JSON too at the same quality (urql sends both, and ``multipart/mixed``, on every request)
    gets JSON: it prefers the plain answer, and only a subscription needs a stream."""
    if accept is None:
        return False
    ranges = _media_ranges(accept)
    stream = next((quality for media_range, quality in ranges if media_range == EVENT_STREAM), 0.0)
    if stream <= 0:
        return False
    json = max(
        (
            (_quality(media_type, ranges) or (0.0, 0))[0]
            for media_type in (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON)
        ),
    )
    return stream > json


def _media_ranges(accept: str) -> list[tuple[str, float]]:
    """``Accept``'s media ranges (lower-cased, parameters other than ``q`` dropped) with their
    quality; a range or a quality that does not parse is ignored, not an error."""
    ranges = []
    for element in accept.split(","):
        media_range, *parameters = (part.strip() for part in element.split(";"))
        if media_range.count("/") != 1:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = parameter.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    quality = -1.0  # malformed: this range says nothing
        if quality >= 0:
            ranges.append((media_range.lower(), quality))
    return ranges


def _quality(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int] | None:
    """The quality the most specific matching range gives ``media_type``, and how specific."""
    kind = media_type.split("/")[0]
    best: tuple[int, float] | None = None
    for media_range, quality in ranges:
        if media_range == media_type:
            specificity = _EXACT
        elif media_range == f"{kind}/*":
            specificity = 1
        elif media_range == "*/*":
            specificity = 0
        else:
            continue
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return None if best is None else (best[1], best[0])


__all__ = [
    "APPLICATION_JSON",
    "EVENT_STREAM",
    "GRAPHQL_RESPONSE_JSON",
    "accept_of",
    "negotiate",
    "prefers_event_stream",
    "refusal_media_type",
]
