"""The network under the billing client: httpx's transport interface over aiohttp, through
the maintained ``httpx-aiohttp`` transport (the one Metronome's own Stainless-generated SDK uses
for its aiohttp backend).

The client speaks httpx (``httpx.Request``/``httpx.Response`` and httpx's exceptions), so tests
and the embedded stand-in plug in at the same place (``MockTransport``, ``ASGITransport``).
Choice and figures: BENCHMARKS.md, "Upstream HTTP stack".

What this module decides, and why:

* **No cookie jar.** One session serves every caller; a cookie the billing API sets for one
  account must never ride along on another account's call (``aiohttp.DummyCookieJar``).
* **The environment is honoured**: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (aiohttp's
  ``trust_env``) and ``SSL_CERT_FILE``/``SSL_CERT_DIR`` (httpx's SSL context), as an operator
  of any HTTP client expects.
* **No timeouts here**: the client bounds each attempt and the whole call (one place).
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def billing_transport(*, max_connections: int) -> httpx.AsyncBaseTransport:
    """A keep-alive pool of at most ``max_connections`` to the billing API, opened on first use
    inside the event loop that uses it and closed by ``aclose()``."""
    ssl_context = httpx.create_ssl_context(trust_env=True)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections, ssl=ssl_context, ttl_dns_cache=300
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=True,
        )

    return AiohttpTransport(client=session)
