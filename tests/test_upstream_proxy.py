"""The environment's proxy settings reach the billing API's calls, decided once per transport.

aiohttp's ``trust_env`` would re-read them (and ``~/.netrc``) in a worker thread on every call;
the transport reads them when it is built instead, for the billing API's URL.
"""

from __future__ import annotations

import pytest

from gateway.upstream import BillingClient
from gateway.upstream.transport import billing_transport, proxy_from_environment
from tests.support import DEFAULT_POLICY, raw_http_server


@pytest.fixture(autouse=True)
def no_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def test_the_proxy_for_the_billing_apis_scheme_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY applies to an https billing API, with the proxy URL's credentials kept."""
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.internal:3128")
    proxy = proxy_from_environment("https://api.metronome.com")
    assert proxy is not None
    assert proxy.url.host == "proxy.internal"
    assert proxy.auth == ("user", "secret")
    assert proxy_from_environment("http://billing.internal") is None  # no HTTP_PROXY


def test_no_proxy_exempts_the_billing_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host listed in NO_PROXY is called directly; without any variable there is no proxy."""
    assert proxy_from_environment("https://api.metronome.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "metronome.com")
    assert proxy_from_environment("https://api.metronome.com") is None


async def test_calls_go_through_the_environments_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, a real call is sent to the proxy in absolute form."""
    async with raw_http_server() as (proxy, received):
        monkeypatch.setenv("HTTP_PROXY", proxy)
        transport = billing_transport("http://billing.test", max_connections=4)
        try:
            client = BillingClient(transport, "http://billing.test", DEFAULT_POLICY)
            page = await client.list_seat_balances({"customer_id": "c", "limit": 1}, token="t")
        finally:
            await transport.aclose()
    assert page["data"] == []
    assert [head[0] for head in received.heads] == [
        b"POST http://billing.test/v1/contracts/seatBalances/list HTTP/1.1"
    ]
