"""Compressed answers: ``Accept-Encoding`` negotiation, exact bytes, ``Vary``, the threshold.

Requests go over a raw ``http.client`` connection, which neither sends an ``Accept-Encoding``
of its own nor decodes anything, so each test sees the bytes on the wire and decompresses
them itself.
"""

from __future__ import annotations

import gzip
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import brotli
import pytest
import zstandard
from starlette.types import Receive, Scope, Send

from gateway.config import Settings
from gateway.graphiql import ASSETS_DIR, ASSETS_PATH
from gateway.http.compression import WHOLE_BODY_BYTES, ResponseCompression
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN
from tests.support import Gateway, running_gateway, serve

# About 80 KB of JSON: one page of seats with their commits, credits and ledger entries.
LEDGERS = f"""query Ledgers {{
  seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 100) {{
    edges {{ node {{ seatId
      commits {{ commitId balance ledgerEntries {{ type amount timestamp }} }}
      credits {{ creditId balance ledgerEntries {{ type amount timestamp }} }} }} }}
  }}
}}"""
# A few dozen bytes of JSON.
ONE_SEAT = f"""query OneSeat {{
  seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 1) {{
    nodes {{ seatId }}
  }}
}}"""
# Sixty unknown fields: sixty validation errors, a few kilobytes.
UNKNOWN_FIELDS = "{ " + " ".join(f"noSuchField{n}" for n in range(60)) + " }"


def decompress(coding: str, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    assert coding == "zstd", coding
    # A stream reader: a streamed frame does not state its size up front.
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    raw: bytes  # exactly as received

    @property
    def coding(self) -> str:
        return self.headers.get("content-encoding", "identity")

    @property
    def vary(self) -> list[str]:
        return [v.strip().lower() for v in ",".join(self.headers.get_all("vary") or []).split(",")]

    def content(self) -> bytes:
        """The body after undoing the content coding, checking the length that was sent."""
        if "content-length" in self.headers:
            assert int(self.headers["content-length"]) == len(self.raw)
        return self.raw if self.coding == "identity" else decompress(self.coding, self.raw)


def exchange(
    url: str,
    method: str,
    path: str,
    *,
    accept_encoding: str | None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request with exactly the given ``Accept-Encoding`` (``None``: no such header)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        all_headers = {"Authorization": f"Bearer {DEMO_TOKEN}", **(headers or {})}
        if accept_encoding is not None:
            all_headers["Accept-Encoding"] = accept_encoding
        if body is not None:
            all_headers |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
        for name, value in all_headers.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        connection.close()


def post(
    gateway: Gateway, query: str, accept_encoding: str | None, **kwargs: dict[str, str]
) -> Answer:
    body = json.dumps({"query": query}).encode()
    return exchange(
        gateway.url, "POST", "/graphql", accept_encoding=accept_encoding, body=body, **kwargs
    )


def test_every_coding_round_trips_to_the_exact_identity_bytes(gateway: Gateway) -> None:
    """zstd, br and gzip answers decompress to exactly the identity answer's bytes, with a
    Content-Length that matches what was sent and Vary: Accept-Encoding."""
    identity = post(gateway, LEDGERS, "identity")
    assert identity.status == 200 and identity.coding == "identity"
    assert len(identity.raw) > 30_000 and b'"errors"' not in identity.raw
    for coding in ("zstd", "br", "gzip"):
        answer = post(gateway, LEDGERS, coding)
        assert (answer.status, answer.coding) == (200, coding)
        assert int(answer.headers["content-length"]) == len(answer.raw) < len(identity.raw) / 4
        assert answer.content() == identity.raw
        assert "accept-encoding" in answer.vary


def test_a_client_without_accept_encoding_gets_identity(gateway: Gateway) -> None:
    """No Accept-Encoding header (or an empty one): the plain JSON bytes, still with Vary."""
    for header in (None, ""):
        answer = post(gateway, LEDGERS, header)
        assert answer.status == 200 and answer.coding == "identity"
        assert int(answer.headers["content-length"]) == len(answer.raw)
        assert json.loads(answer.raw)["data"]["seatBalances"]["edges"]
        assert "accept-encoding" in answer.vary


@pytest.mark.parametrize(
    ("accept_encoding", "coding"),
    [
        ("gzip, deflate, br, zstd", "zstd"),  # a browser: the gateway's preference decides
        ("gzip, deflate, br", "br"),
        ("gzip;q=0, br", "br"),
        ("zstd;q=0.5, br;q=0.4, gzip", "gzip"),  # quality beats the gateway's preference
        ("GZip;Q=0.8", "gzip"),  # tokens and parameters are case-insensitive
        ("x-gzip", "gzip"),
        ("*", "zstd"),
        ("*, zstd;q=0", "br"),
        ("*;q=0.2, gzip;q=0.9", "gzip"),
        ("zstd;q=0, br;q=0, gzip;q=0", "identity"),
        ("*;q=0", "identity"),  # nothing acceptable: identity rather than a 406
        ("gzip;q=0.000", "identity"),
        ("identity;q=1, gzip;q=0.5", "identity"),  # identity preferred outright
        ("deflate, compress", "identity"),  # nothing the gateway offers
        ("gzip;q=abc, br", "br"),  # a malformed entry counts for nothing
        ("gzip;q=2, br;q=0.1", "br"),
    ],
)
def test_the_coding_follows_accept_encoding_and_its_quality_values(
    gateway: Gateway, accept_encoding: str, coding: str
) -> None:
    """The coding sent is the acceptable one with the highest q (ties: zstd, br, gzip); q=0
    excludes a coding, `*` stands for the codings not listed, and the bytes still round-trip."""
    identity = post(gateway, LEDGERS, "identity").raw
    answer = post(gateway, LEDGERS, accept_encoding)
    assert (answer.status, answer.coding) == (200, coding)
    assert answer.content() == identity


def test_small_answers_go_out_as_they_are(gateway: Gateway) -> None:
    """An answer under the 1 KB default threshold is not compressed, whatever is accepted."""
    answer = post(gateway, ONE_SEAT, "gzip, br, zstd")
    assert answer.status == 200 and answer.coding == "identity"
    assert len(answer.raw) < 1024 and json.loads(answer.raw)["data"]["seatBalances"]["nodes"]
    assert "accept-encoding" in answer.vary


def test_the_threshold_is_exact_and_configurable(settings: Settings, gateway: Gateway) -> None:
    """GATEWAY_COMPRESSION_MIN_BYTES=N compresses an answer of N bytes and not one of N-1."""
    size = len(post(gateway, ONE_SEAT, "identity").raw)
    at = settings.model_copy(update={"compression_min_bytes": size})
    above = settings.model_copy(update={"compression_min_bytes": size + 1})
    with running_gateway(at) as small_enough, running_gateway(above) as too_small:
        assert post(small_enough, ONE_SEAT, "gzip").coding == "gzip"
        assert post(too_small, ONE_SEAT, "gzip").coding == "identity"


def test_errors_are_answered_the_same_way_as_data(gateway: Gateway) -> None:
    """A large error answer is negotiated and compressed like data: through the JSON lane
    (POST) and through Strawberry's view (GET), with q=0 respected."""
    body = json.dumps({"query": UNKNOWN_FIELDS}).encode()
    get_path = "/graphql?" + urlencode({"query": UNKNOWN_FIELDS})
    for method, path, request_body in (("POST", "/graphql", body), ("GET", get_path, None)):
        identity = exchange(gateway.url, method, path, accept_encoding=None, body=request_body)
        errors = json.loads(identity.raw)["errors"]
        assert len(errors) == 60 and len(identity.raw) > 1024
        for accept, coding in (("br", "br"), ("gzip", "gzip"), ("gzip;q=0", "identity")):
            answer = exchange(gateway.url, method, path, accept_encoding=accept, body=request_body)
            assert (answer.status, answer.coding) == (identity.status, coding)
            assert answer.content() == identity.raw
            assert "accept-encoding" in answer.vary


def test_get_queries_are_compressed_too(gateway: Gateway) -> None:
    """A query sent by GET (Strawberry's view) is compressed like one sent by POST."""
    path = "/graphql?" + urlencode({"query": LEDGERS})
    identity = exchange(gateway.url, "GET", path, accept_encoding="identity")
    answer = exchange(gateway.url, "GET", path, accept_encoding="zstd")
    assert identity.status == answer.status == 200 and answer.coding == "zstd"
    assert answer.content() == identity.raw


@pytest.mark.parametrize("coding", ["zstd", "br", "gzip"])
def test_graphiql_assets_go_out_compressed(gateway: Gateway, coding: str) -> None:
    """GraphiQL's largest asset is sent compressed: the exact file bytes once decompressed,
    the same bytes on the second request, a weak ETag that still validates (304)."""
    path = f"{ASSETS_PATH}/graphiql.js"
    original = (ASSETS_DIR / "graphiql.js").read_bytes()
    first = exchange(gateway.url, "GET", path, accept_encoding=coding)
    second = exchange(gateway.url, "GET", path, accept_encoding=coding)
    assert (first.status, first.coding) == (200, coding)
    assert len(first.raw) < len(original) / 3
    assert first.content() == original and second.raw == first.raw
    assert "accept-ranges" not in first.headers
    etag = first.headers["etag"]
    assert etag.startswith('W/"')
    revalidated = exchange(
        gateway.url, "GET", path, accept_encoding=coding, headers={"If-None-Match": etag}
    )
    assert revalidated.status == 304 and revalidated.raw == b""
    assert "accept-encoding" in revalidated.vary
    plain = exchange(gateway.url, "GET", path, accept_encoding=None)
    assert plain.coding == "identity" and plain.raw == original
    assert not plain.headers["etag"].startswith("W/")


def test_the_icon_font_goes_out_compressed_too(gateway: Gateway) -> None:
    """Monaco's icon font (font/ttf, which has no compression of its own) is compressed like
    the scripts and decompresses to the file's bytes."""
    path = f"{ASSETS_PATH}/codicon.ttf"
    original = (ASSETS_DIR / "codicon.ttf").read_bytes()
    answer = exchange(gateway.url, "GET", path, accept_encoding="br")
    assert (answer.status, answer.coding) == (200, "br")
    assert len(answer.raw) < len(original) * 0.7 and answer.content() == original
    assert "accept-encoding" in answer.vary


def test_head_requests_describe_the_identity_answer(gateway: Gateway) -> None:
    """HEAD of an asset, even from a client accepting gzip: the identity length, no coding
    and no body, with Vary."""
    path = f"{ASSETS_PATH}/graphiql.js"
    answer = exchange(gateway.url, "HEAD", path, accept_encoding="gzip, br, zstd")
    assert answer.status == 200 and answer.coding == "identity" and answer.raw == b""
    assert int(answer.headers["content-length"]) == (ASSETS_DIR / "graphiql.js").stat().st_size
    assert "accept-encoding" in answer.vary


def test_vary_merges_with_the_cors_vary(settings: Settings) -> None:
    """With CORS configured, the answer says Vary: Origin, Accept and Accept-Encoding, once each."""
    origin = "https://app.example.com"
    with running_gateway(settings.model_copy(update={"cors_origins": [origin]})) as gateway:
        answer = post(gateway, LEDGERS, "gzip", headers={"Origin": origin})
        assert answer.coding == "gzip"
        assert sorted(answer.vary) == ["accept", "accept-encoding", "authorization", "origin"]
        assert answer.headers["access-control-allow-origin"] == origin


def test_compression_can_be_turned_off(settings: Settings) -> None:
    """GATEWAY_COMPRESSION=false: identity for everyone and no Vary of ours, for answers and
    assets alike (a proxy in front compresses instead)."""
    with running_gateway(settings.model_copy(update={"compression": False})) as gateway:
        answer = post(gateway, LEDGERS, "gzip, br, zstd")
        asset = exchange(gateway.url, "GET", f"{ASSETS_PATH}/graphiql.js", accept_encoding="gzip")
    for response in (answer, asset):
        assert response.status == 200 and response.coding == "identity"
        assert "accept-encoding" not in response.vary


# The parts of the middleware the gateway's own routes never exercise (long streamed bodies,
# event streams, bodies encoded already), on a real server with a small ASGI app behind it.


@pytest.fixture(scope="module")
def streams() -> Iterator[str]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        kind = scope["path"].strip("/")
        content_type = b"text/event-stream" if kind == "events" else b"text/plain"
        headers = [(b"content-type", content_type)]
        if kind == "encoded":
            headers.append((b"content-encoding", b"gzip"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        chunk = b"".join(b"line %d of a long text\n" % n for n in range(3000))  # ~70 KB
        pieces = WHOLE_BODY_BYTES // len(chunk) + 5 if kind == "long" else 3
        for _ in range(pieces):
            body = gzip.compress(chunk) if kind == "encoded" else chunk
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with serve(ResponseCompression(app)) as url:
        yield url


def test_a_long_streamed_body_is_compressed_as_it_streams(streams: str) -> None:
    """A streamed body longer than the whole-body bound goes out compressed in pieces, with no
    Content-Length, and decompresses to every byte sent."""
    identity = exchange(streams, "GET", "/long", accept_encoding=None)
    assert len(identity.raw) > WHOLE_BODY_BYTES
    for coding in ("zstd", "br", "gzip"):
        answer = exchange(streams, "GET", "/long", accept_encoding=coding)
        assert answer.coding == coding and "content-length" not in answer.headers
        assert answer.headers["transfer-encoding"] == "chunked"
        assert answer.content() == identity.raw


def test_a_short_streamed_body_is_compressed_whole(streams: str) -> None:
    """A body sent in a few pieces is compressed whole, with its exact Content-Length."""
    identity = exchange(streams, "GET", "/short", accept_encoding=None)
    answer = exchange(streams, "GET", "/short", accept_encoding="gzip")
    assert answer.coding == "gzip"
    assert int(answer.headers["content-length"]) == len(answer.raw)
    assert answer.content() == identity.raw


def test_event_streams_and_encoded_bodies_pass_untouched(streams: str) -> None:
    """text/event-stream and a body with a Content-Encoding already are sent as they are."""
    events = exchange(streams, "GET", "/events", accept_encoding="gzip, br, zstd")
    assert events.coding == "identity" and events.raw.startswith(b"line 0 of")
    assert "accept-encoding" not in events.vary
    encoded = exchange(streams, "GET", "/encoded", accept_encoding="br, zstd, gzip")
    assert encoded.coding == "gzip"
    assert gzip.decompress(encoded.raw).startswith(b"line 0 of")  # gzip members, once


async def test_a_large_asset_is_compressed_once_whatever_its_path_spelling(tmp_path: Path) -> None:
    """Concurrent first requests and differently spelled paths of one asset larger than
    WHOLE_BODY_BYTES cost one compression, kept; the bytes round-trip."""
    import asyncio as _asyncio
    import gzip as _gzip

    import httpx
    from starlette.staticfiles import StaticFiles

    from gateway.http.compression import CODINGS, WHOLE_BODY_BYTES, Coding, ResponseCompression

    compressions: list[int] = []

    def counted(data: bytes, level: int) -> bytes:
        compressions.append(len(data))
        return _gzip.compress(data, compresslevel=level)

    coding = Coding("gzip", counted, CODINGS[-1].stream, answer_level=1, asset_level=6)
    content = b"x = 1;\n" * (WHOLE_BODY_BYTES // 7 + 100_000)  # longer than a whole body
    (tmp_path / "big.js").write_bytes(content)
    app = ResponseCompression(StaticFiles(directory=tmp_path), assets_path="/", codings=(coding,))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://gateway"
    ) as client:
        paths = ["/big.js"] * 4 + ["/./big.js", "/a/../big.js", "/%2E/big.js"]
        answers = await _asyncio.gather(
            *(client.get(path, headers={"Accept-Encoding": "gzip"}) for path in paths)
        )
    for answer in answers:
        assert answer.status_code == 200
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.content == content  # httpx decodes gzip
    assert compressions == [len(content)]
