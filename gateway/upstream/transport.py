"""The network under the billing client: httpx's transport interface over aiohttp, through
the maintained ``httpx-aiohttp`` transport (the one Metronome's own Stainless-generated SDK uses
for its aiohttp backend).

The client speaks httpx (``httpx.Request``/``httpx.Response`` and httpx's exceptions), so tests
and the embedded stand-in plug in at the same place (``MockTransport``, ``ASGITransport``).
Choice and figures: BENCHMARKS.md, "Upstream HTTP stack".

What this module decides, and why:

* **No cookie jar.** One session serves every caller; a cookie the billing API sets for one
  account must never ride along on another account's call (``aiohttp.DummyCookieJar``).
* **The environment is honoured**: ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY``
  (the standard library's reading of them, as aiohttp's ``trust_env`` does) and
  ``SSL_CERT_FILE``/``SSL_CERT_DIR`` (httpx's SSL context), as an operator of any HTTP client
  expects. The proxy is decided once, for the billing API's URL, when the transport is built:
  with ``trust_env`` aiohttp reads the proxy variables and ``~/.netrc`` again in a worker
  thread on every request, which cost about a tenth of a request's CPU (BENCHMARKS.md).
* **No timeouts here**: the client bounds each attempt and the whole call (one place).
"""

from __future__ import annotations

import urllib.request

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def billing_transport(base_url: str, *, max_connections: int) -> httpx.AsyncBaseTransport:
    """A keep-alive pool of at most ``max_connections`` to the billing API at ``base_url``
    (through the environment's proxy for it, if any), opened on first use inside the event
    loop that uses it and closed by ``aclose()``."""
    ssl_context = httpx.create_ssl_context(trust_env=True)

    def session() -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=max_connections, ssl=ssl_context, ttl_dns_cache=300
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=False,  # the proxy is passed in, decided once (see the docstring)
        )

    return _Transport(client=session, proxy=proxy_from_environment(base_url))


class _Transport(AiohttpTransport):
    """httpx-aiohttp's transport, with the aiohttp errors its exception map leaves out (an
    answer with a malformed status line or headers) raised as httpx's protocol error, so the
    client sees only httpx's exceptions."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await super().handle_async_request(request)
        except aiohttp.ClientError as error:
            raise httpx.RemoteProtocolError(type(error).__name__, request=request) from error


def proxy_from_environment(url: str) -> httpx.Proxy | None:
    """The proxy the environment names for ``url`` (``<scheme>_PROXY``, else ``ALL_PROXY``),
    unless ``NO_PROXY`` exempts its host; credentials in the proxy URL are kept."""
    proxies = urllib.request.getproxies()
    target = httpx.URL(url)
    proxy = proxies.get(target.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(target.host):
        return None
    return httpx.Proxy(proxy)
