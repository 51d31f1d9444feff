"""Opaque identifiers: Relay global ids and connection cursors.

Both are URL-safe base64 of text we own, so clients treat them as opaque and we can change the
inside. A global id is ``<Type>:<JSON array>`` (the form Strawberry's relay ``GlobalID`` reads);
a per-seat commit's id includes the seat because the billing API shows the same commit under
several seats, each with its own balance.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from functools import lru_cache
from typing import NamedTuple

import orjson

from gateway.loaders import MAX_SEATS_PER_PAGE


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(token: str) -> str:
    padded = token + "=" * (-len(token) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii")).decode()


def global_id(type_name: str, *parts: str) -> str:
    return _encode(f"{type_name}:{orjson.dumps(parts).decode()}")


_URL_SAFE = bytes.maketrans(b"+/", b"-_")
# Kept across requests: an encoder per (type, seat) recently answered, each with the ids it made
# (a seat's commits or credits, a listing's seats); at most 256 x 128 ids, about 6 MiB.
_MAX_ENCODERS = 256
_MAX_IDS = 128


class GlobalIds:
    """The global ids of one type whose parts all begin with the same ones (a seat's commits:
    customer, contract, seat), by their last part: ``GlobalIds(t, *parts).id(last) ==
    global_id(t, *parts, last)``. base64 encodes 3 bytes at a time, so the whole 3-byte groups
    of the common beginning are encoded once, here, and an id encodes only the one or two bytes
    left over, its last part and the closing bracket (no text built, no JSON array dumped per
    id); and each id is encoded once, then remembered (clients ask for the same seats again and
    again)."""

    __slots__ = ("_head", "_made", "_rest")

    def __init__(self, type_name: str, *parts: str) -> None:
        start = f"{type_name}:{orjson.dumps(parts).decode()[:-1]}{',' if parts else ''}".encode()
        cut = len(start) - len(start) % 3
        self._head = base64.urlsafe_b64encode(start[:cut]).decode()
        self._rest = start[cut:]
        self._made: dict[str, str] = {}

    def id(self, last: str) -> str:
        made = self._made.get(last)
        if made is None:
            if len(self._made) >= _MAX_IDS:
                self._made.clear()
            tail = binascii.b2a_base64(self._rest + orjson.dumps(last) + b"]", newline=False)
            made = self._made[last] = self._head + tail.translate(_URL_SAFE).rstrip(b"=").decode()
        return made


_encoders: dict[tuple[str, ...], GlobalIds] = {}


def global_ids(type_name: str, *parts: str) -> GlobalIds:
    """The :class:`GlobalIds` of ``type_name`` and ``parts``, kept across requests (at most
    256, the oldest dropped first): a listing's seats and each seat's commits and credits
    are asked for again and again, and an encoder costs as much as one id."""
    key = (type_name, *parts)
    found = _encoders.get(key)
    if found is None:
        if len(_encoders) >= _MAX_ENCODERS:
            del _encoders[next(iter(_encoders))]
        found = _encoders[key] = GlobalIds(type_name, *parts)
    return found


def parse_global_id(value: str) -> tuple[str, list[str]]:
    """(type name, parts) of a global id; ``ValueError`` when it is not one of ours."""
    try:
        type_name, _, parts = _decode(value).partition(":")
        decoded = orjson.loads(parts)
    except (ValueError, UnicodeError, binascii.Error):
        raise ValueError("not an id issued by this API") from None
    if (
        not type_name
        or not isinstance(decoded, list)
        or not all(isinstance(part, str) for part in decoded)
    ):
        raise ValueError("not an id issued by this API")
    return type_name, decoded


class Position(NamedTuple):  # a tuple: built for every edge, a third of a frozen dataclass's cost
    """Where the next seat of a listing is: skip ``skip`` seats of the upstream page at ``page``.

    ``skip`` is at most a page's worth of seats (the edge after a full last page skips them
    all): a larger one is forged, and would make the gateway walk pages to honour it.

    ``page`` is the upstream cursor that page was fetched with (``None`` for the first page).
    Because upstream cursors are keyset tokens, the same page cursor starts at the same seat
    whatever ``limit`` or include flags are sent later, so any edge can be resumed from.
    """

    page: str | None
    skip: int
    listing: str  # fingerprint of the listing the cursor was issued for


_CURSOR_PREFIX = "seat-cursor:v1:"


# A listing asked for again is fingerprinted once: 256 listings, least recently used dropped.
@lru_cache(maxsize=256)
def listing_fingerprint(*parts: object) -> str:
    return hashlib.blake2s(orjson.dumps(parts), digest_size=6).hexdigest()


def encode_cursor(position: Position) -> str:
    payload = orjson.dumps([position.page, position.skip, position.listing]).decode()
    return _encode(_CURSOR_PREFIX + payload)


def decode_cursor(cursor: str) -> Position:
    """The position a cursor stands for; ``ValueError`` when it is not one of ours."""
    try:
        text = _decode(cursor)
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError
        page, skip, listing = orjson.loads(text[len(_CURSOR_PREFIX) :])
    except (ValueError, TypeError, UnicodeError, binascii.Error):
        raise ValueError("not a cursor issued by this API") from None
    if (
        not (page is None or isinstance(page, str))
        or not isinstance(skip, int)
        or isinstance(skip, bool)
        or not 0 <= skip <= MAX_SEATS_PER_PAGE
        or not isinstance(listing, str)
    ):
        raise ValueError("not a cursor issued by this API")
    return Position(page=page, skip=skip, listing=listing)
