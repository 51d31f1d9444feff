"""Opaque identifiers: Relay global ids and connection cursors.

Both are URL-safe base64 (unpadded) of bytes we own, so clients treat them as opaque and we can
change the inside. A per-seat commit's id includes the seat because the billing API shows the
same commit under several seats, each with its own balance.

A global id is binary: one byte naming the type (``Seat``, ``Commit``, ``Credit``), then its
parts (customer, contract, seat, and a commit's or credit's own id), each either a UUID as its
16 bytes (a canonical, lower-case one: the customer and contract always are) or a length and
its UTF-8 text. A commit's id is about 100 characters; the form issued before (base64 of
``<Type>:<JSON array of the parts>``, the form Strawberry's relay ``GlobalID`` reads) was about
200, half of a page's answer when a normalising client selects ``id`` everywhere. The old form
is still read: an id a client kept refetches the same object (answered with its new id).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from functools import lru_cache
from typing import NamedTuple

import orjson

from gateway.loaders import MAX_SEATS_PER_PAGE


def _encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode_bytes(token: str) -> bytes:
    padded = token + "=" * (-len(token) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _decode(token: str) -> str:
    return _decode_bytes(token).decode()


# The first byte of a global id. Bytes 0x80-0xBF never begin UTF-8 text, so no id of the old
# (text) form starts with one.
_TYPE_BYTES = {"Seat": 0x81, "Commit": 0x82, "Credit": 0x83}
_TYPE_NAMES = {byte: name for name, byte in _TYPE_BYTES.items()}
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_PART = 0  # a part's first byte: 0 for a UUID's 16 bytes, else its length's first


def _pack(part: str) -> bytes:
    """One part of a global id: a canonical UUID as a zero byte and its 16 bytes, any other
    text as 1 + its UTF-8 length (LEB128: one byte below 127 bytes of text) and its UTF-8."""
    if len(part) == 36 and _CANONICAL_UUID.fullmatch(part):
        return b"\x00" + bytes.fromhex(part.replace("-", ""))
    raw = part.encode()
    size = len(raw) + 1
    if size < 0x80:
        return bytes((size,)) + raw
    head = bytearray()
    while size >= 0x80:
        head.append(0x80 | size & 0x7F)
        size >>= 7
    head.append(size)
    return bytes(head) + raw


def _unpack(raw: bytes) -> list[str]:
    """The parts :func:`_pack` wrote one after the other; ``ValueError`` when ``raw`` is not
    exactly that."""
    parts: list[str] = []
    at, end = 0, len(raw)
    while at < end:
        size = raw[at]
        at += 1
        if size == _UUID_PART:
            if at + 16 > end:
                raise ValueError("a UUID part is cut short")
            text = raw[at : at + 16].hex()
            parts.append(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")
            at += 16
            continue
        shift = 7
        if size & 0x80:  # a longer part: its length goes on, 7 bits a byte
            size &= 0x7F
            while True:
                if at >= end or shift > 21:
                    raise ValueError("a part's length is cut short")
                byte = raw[at]
                at += 1
                size |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    break
        size -= 1  # a part's length is 1 + its UTF-8 length: 0 here is a length of -1
        if size < 0 or at + size > end:
            raise ValueError("a part is cut short")
        parts.append(raw[at : at + size].decode())  # UnicodeDecodeError is a ValueError
        at += size
    return parts


def global_id(type_name: str, *parts: str) -> str:
    """The global id of the object of ``type_name`` whose parts are ``parts`` (the reference
    :class:`GlobalIds` is held to)."""
    return base64.urlsafe_b64encode(_packed(type_name, parts)).decode().rstrip("=")


def _packed(type_name: str, parts: tuple[str, ...]) -> bytes:
    """An id's bytes: its type's byte, then its parts."""
    return bytes((_TYPE_BYTES[type_name],)) + b"".join(map(_pack, parts))


def legacy_global_id(type_name: str, *parts: str) -> str:
    """The id this API issued before the binary form: still read by :func:`parse_global_id`."""
    return _encode(f"{type_name}:{orjson.dumps(parts).decode()}")


_URL_SAFE = bytes.maketrans(b"+/", b"-_")
# Kept across requests: an encoder per (type, seat) recently answered, each with the ids it made
# (a seat's commits or credits, a listing's seats); at most 256 x 128 ids, about 4 MiB.
_MAX_ENCODERS = 256
_MAX_IDS = 128


class GlobalIds(dict[str, str]):
    """The global ids of one type whose parts all begin with the same ones (a seat's commits:
    customer, contract, seat), by their last part: ``GlobalIds(t, *parts)[last] ==
    global_id(t, *parts, last)``. base64 encodes 3 bytes at a time, so the whole 3-byte groups
    of the common beginning are encoded once, here, and an id encodes only the bytes left over
    and its last part; and each id is encoded once, then remembered (clients ask for the same
    seats again and again). A dict of the ids made: an id already made is a plain look-up, no
    Python call."""

    __slots__ = ("_head", "_rest")

    def __init__(self, type_name: str, *parts: str) -> None:
        super().__init__()
        start = _packed(type_name, parts)
        cut = len(start) - len(start) % 3
        self._head = base64.urlsafe_b64encode(start[:cut]).decode()
        self._rest = start[cut:]

    def __missing__(self, last: str) -> str:
        if len(self) >= _MAX_IDS:
            self.clear()
        tail = binascii.b2a_base64(self._rest + _pack(last), newline=False)
        made = self[last] = self._head + tail.translate(_URL_SAFE).rstrip(b"=").decode()
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
    """(type name, parts) of a global id, of either form; ``ValueError`` when it is not one
    of ours."""
    try:
        raw = _decode_bytes(value)
        type_name = _TYPE_NAMES.get(raw[0]) if raw else None
        if type_name is not None:
            return type_name, _unpack(raw[1:])
        type_name, _, parts = raw.decode().partition(":")
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
