"""The network transport for a real billing API: httpx's transport interface over aiohttp.

The client speaks httpx (``httpx.Request``/``httpx.Response``, httpx's exceptions, any
``httpx.AsyncBaseTransport``: ``MockTransport`` in tests, ``ASGITransport`` for the embedded
stand-in). Underneath, for real HTTP, this transport moves the bytes with aiohttp, whose
C-accelerated HTTP parser and connection pool cost about half of httpcore's CPU per call
(measured: 0.60 ms against 1.07 ms for one 25-seat page on the benchmark machine; see
BENCHMARKS.md). aiohttp's exceptions are translated to httpx's, so nothing above this module
knows aiohttp is there.
"""

from __future__ import annotations

import aiohttp
import httpx

# Headers aiohttp computes itself, or adds unless told not to.
_COMPUTED = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """A keep-alive connection pool of at most ``max_connections`` to the billing API.

    The aiohttp session is created on first use, inside the event loop that will use it, and
    closed by :meth:`aclose` (the httpx client's ``__aexit__``).
    """

    def __init__(self, *, max_connections: int = 32, connect_timeout: float = 5.0) -> None:
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
                ),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
                auto_decompress=False,  # httpx decodes from Content-Encoding
                skip_auto_headers=_NO_AUTO_HEADERS,
                trust_env=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in request.headers.raw
            if name.lower() not in _COMPUTED
        ]
        try:
            async with self._open().request(
                request.method,
                str(request.url),
                data=request.content,
                headers=headers,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                return httpx.Response(
                    response.status,
                    headers=list(response.raw_headers),
                    content=body,
                    request=request,
                )
        except aiohttp.ClientConnectorError as error:
            raise httpx.ConnectError(str(error), request=request) from error
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise httpx.ReadTimeout(str(error), request=request) from error
        except aiohttp.ClientError as error:
            raise httpx.ReadError(str(error), request=request) from error

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
