"""Whose token reaches the billing API, and that no token reaches a log line."""

from __future__ import annotations

import logging

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_TOKEN,
    create_standin_app,
)
from tests.support import Gateway, running_gateway

QUERY = f"""{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}",
  first: 2) {{ nodes {{ seatId }} }} }}"""


def test_the_callers_bearer_token_is_forwarded(gateway: Gateway) -> None:
    """Without METRONOME_BEARER_TOKEN, the caller's own Authorization goes upstream."""
    gateway.query(QUERY, token=DEMO_TOKEN)
    assert [call.authorization for call in gateway.calls] == [f"Bearer {DEMO_TOKEN}"]


def test_no_token_at_all_is_refused_before_any_upstream_call(gateway: Gateway) -> None:
    """A request with neither a configured nor a caller token is UNAUTHENTICATED, uncalled."""
    [error] = gateway.errors(QUERY, token=None)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert "Authorization" in error["message"]
    assert gateway.calls == []


def test_a_configured_token_is_used_for_every_call(standin_url: str) -> None:
    """METRONOME_BEARER_TOKEN wins over whatever the caller sends."""
    settings = Settings(
        metronome_base_url=standin_url, metronome_bearer_token=DEMO_TOKEN, allow_anonymous=True
    )
    with running_gateway(settings) as gateway:
        gateway.query(QUERY, token=None)
        gateway.query(QUERY, token=OTHER_TOKEN)
        assert [call.authorization for call in gateway.calls] == [f"Bearer {DEMO_TOKEN}"] * 2


def test_the_embedded_standin_works_without_any_credentials() -> None:
    """With no METRONOME_BASE_URL, a fresh gateway answers from the stand-in with no token."""
    with running_gateway(Settings(), httpx.ASGITransport(app=create_standin_app())) as gateway:
        data = gateway.query(QUERY, token=None)
        assert len(data["seatBalances"]["nodes"]) == 2
        assert gateway.calls[0].authorization == f"Bearer {DEMO_TOKEN}"
        ready = gateway.http.get(f"{gateway.url}/readyz").json()
        assert ready == {"status": "ready", "embeddedUpstream": True, "cache": "ok"}


def test_tokens_never_reach_the_logs(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    """Neither a good nor a rejected token appears in any log line of the gateway."""
    caplog.set_level(logging.DEBUG)
    secret = "sk_test_please_do_not_log_me"
    gateway.errors(QUERY, token=secret)
    gateway.query(QUERY, token=DEMO_TOKEN)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert secret not in text
    assert DEMO_TOKEN not in text
