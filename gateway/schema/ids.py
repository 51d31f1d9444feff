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
