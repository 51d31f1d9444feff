"""The side doors beside /graphql: the admin scope's setting, /metrics, health checks by HEAD,
anonymous `_entities`, and what GraphiQL tells each kind of caller to send.

Over real gateways on 127.0.0.1 (the embedded stand-in as upstream, its calls recorded);
callers authenticate with HS256 JWTs (``GATEWAY_JWT_SECRET``) where JWT mode is needed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import httpx
import jwt
import pytest
from pydantic import ValidationError

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from tests.support import Gateway, running_gateway

SECRET = "a-development-secret-of-32-bytes!"
METRICS_TOKEN = "scrape-me-with-this-token-0123456789"
SEATS = f"""query Seats {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
  contractId: "{DEMO_CONTRACT_ID}", first: 2) {{ nodes {{ seatId }} }} }}"""


def standin() -> httpx.AsyncBaseTransport:
    """The embedded stand-in, in process (what a gateway without METRONOME_BASE_URL uses)."""
    return httpx.ASGITransport(app=create_standin_app())


def caller_token(**claims: Any) -> str:
    now = int(time.time())
    payload = {"sub": "ada", "iat": now, "exp": now + 300}
    payload["metronome_customer_ids"] = [DEMO_CUSTOMER_ID]
    payload.update(claims)
    return jwt.encode(payload, SECRET, algorithm="HS256")


@pytest.fixture(scope="module")
def jwt_gateway() -> Iterator[Gateway]:
    """JWT mode on the embedded stand-in, without a metrics token."""
    with running_gateway(Settings(jwt_secret=SECRET), standin()) as gateway:
        yield gateway


# --- GATEWAY_ADMIN_SCOPE ----------------------------------------------------------------------


@pytest.mark.parametrize("scope", ["", " ", "\t\n"])
def test_an_empty_admin_scope_is_refused_at_start_up(scope: str) -> None:
    """GATEWAY_ADMIN_SCOPE="" (or blanks) would make a token with `scp: [""]` an admin: the
    settings are refused, naming the variable."""
    with pytest.raises(ValidationError) as refused:
        Settings(jwt_secret=SECRET, admin_scope=scope)
    assert "GATEWAY_ADMIN_SCOPE" in str(refused.value)
    assert Settings(jwt_secret=SECRET, admin_scope="billing:read-all").admin_scope


# --- /metrics -----------------------------------------------------------------------------------


def test_metrics_are_not_served_in_jwt_mode_without_a_metrics_token(jwt_gateway: Gateway) -> None:
    """With callers authenticated by JWT and no GATEWAY_METRICS_TOKEN, /metrics (which names
    every caller's operations) is not served on the public listener, not even to a caller
    with a valid JWT."""
    jwt_gateway.query(SEATS, token=caller_token())
    for headers in ({}, {"Authorization": f"Bearer {caller_token()}"}):
        response = jwt_gateway.http.get(f"{jwt_gateway.url}/metrics", headers=headers)
        assert response.status_code == 404, response.text
        assert "Seats" not in response.text


def test_metrics_need_the_metrics_token_when_one_is_configured() -> None:
    """With GATEWAY_METRICS_TOKEN, /metrics answers 401 without it or with another token
    (a caller's JWT included), and the metrics with it."""
    settings = Settings(jwt_secret=SECRET, metrics_token=METRICS_TOKEN)
    with running_gateway(settings, standin()) as gateway:
        gateway.query(SEATS, token=caller_token())
        url = f"{gateway.url}/metrics"
        for headers in (
            {},
            {"Authorization": f"Bearer {caller_token()}"},
            {"Authorization": f"Bearer {METRICS_TOKEN}x"},
            {"Authorization": f"Basic {METRICS_TOKEN}"},
        ):
            refused = gateway.http.get(url, headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "Seats" not in refused.text
        allowed = gateway.http.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert allowed.status_code == 200
        assert 'operation="Seats"' in allowed.text


def test_metrics_stay_public_without_caller_authentication(gateway: Gateway) -> None:
    """Forwarding mode (no caller authentication, no metrics token): /metrics answers as
    before, for the scraper beside the gateway."""
    assert gateway.http.get(f"{gateway.url}/metrics").status_code == 200


@pytest.mark.parametrize("value", ["", "   ", "short"])
def test_a_blank_or_short_metrics_token_is_refused(value: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(metrics_token=value)
    assert "GATEWAY_METRICS_TOKEN" in str(refused.value)


# --- HEAD /healthz, /readyz ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_checks_answer_head(gateway: Gateway, path: str) -> None:
    """Load balancers that probe with HEAD get the status GET would give, without a body."""
    response = gateway.http.head(f"{gateway.url}{path}")
    assert response.status_code == 200
    assert response.content == b""


# --- _entities without a token ----------------------------------------------------------------


def test_anonymous_entities_are_refused_once(jwt_gateway: Gateway) -> None:
    """999 Seat representations without a token: one UNAUTHENTICATED error for the whole
    `_entities` field (not one per representation), and no upstream call."""
    jwt_gateway.upstream.calls.clear()
    representations = [
        {
            "__typename": "Seat",
            "customerId": DEMO_CUSTOMER_ID,
            "contractId": DEMO_CONTRACT_ID,
            "seatId": f"seat-{index}@acme.example",
        }
        for index in range(999)
    ]
    response = jwt_gateway.post(
        """query($representations: [_Any!]!) {
          _entities(representations: $representations) { ... on Seat { seatId } }
        }""",
        {"representations": representations},
        token=None,
    )
    assert response.status_code == 200
    payload = response.json()
    [error] = payload["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    assert error["path"] == ["_entities"]
    assert payload["data"] is None
    assert jwt_gateway.calls == []


def test_entities_with_a_token_are_still_answered(jwt_gateway: Gateway) -> None:
    """The refusal is for callers without a token only: a caller's JWT resolves entities."""
    data = jwt_gateway.query(
        """query($representations: [_Any!]!) {
          _entities(representations: $representations) { ... on Seat { seatId } }
        }""",
        {
            "representations": [
                {
                    "__typename": "Seat",
                    "customerId": DEMO_CUSTOMER_ID,
                    "contractId": DEMO_CONTRACT_ID,
                    "seatId": "nobody@acme.example",
                }
            ]
        },
        token=caller_token(),
    )
    assert data == {"_entities": [None]}


# --- GraphiQL's token tab, per mode -----------------------------------------------------------


class _Root(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.root: dict[str, str | None] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if dict(attrs).get("id") == "graphiql":
            self.root = dict(attrs)


def token_tab(gateway: Gateway) -> str:
    """The comments of the last first-visit tab of GraphiQL (how the token reaches the API)."""
    response = gateway.http.get(f"{gateway.url}/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    parser = _Root()
    parser.feed(response.text)
    tabs = json.loads(parser.root["data-tabs"] or "")
    query: str = tabs[-1]["query"]
    return "\n".join(line for line in query.splitlines() if line.startswith("#"))


def test_graphiql_in_jwt_mode_asks_for_a_jwt_never_a_billing_token(jwt_gateway: Gateway) -> None:
    """In JWT mode the tab says to send a JWT from the identity provider, and that the
    gateway calls the billing API with its own token: nothing tells a user to paste a billing
    (Metronome API) token."""
    text = token_tab(jwt_gateway)
    assert "Metronome API token" not in text
    assert '{ "Authorization": "Bearer <JWT from your identity provider>" }' in text
    assert "calls the billing API with its own credentials" in text
    assert "UNAUTHENTICATED" in text


def test_graphiql_in_forwarding_mode_asks_for_the_callers_billing_token(
    gateway: Gateway,
) -> None:
    """Forwarding mode (a real billing API, no billing token of the gateway's own): the tab
    asks for the caller's Metronome API token, forwarded as is."""
    text = token_tab(gateway)
    assert '{ "Authorization": "Bearer <your Metronome API token>" }' in text
    assert "UNAUTHENTICATED" in text


def test_graphiql_on_the_stand_in_needs_no_token() -> None:
    """The embedded stand-in with no settings: the tab says the demo token is used and a
    token is optional."""
    with running_gateway(Settings(), standin()) as gateway:
        text = token_tab(gateway)
    assert "stand-in" in text
    assert "demo token" in text
    assert DEMO_TOKEN not in text


def test_graphiql_with_anonymous_callers_asks_for_nothing(standin_url: str) -> None:
    """GATEWAY_ALLOW_ANONYMOUS with the gateway's own billing token: nothing to send."""
    settings = Settings(
        metronome_base_url=standin_url, metronome_bearer_token=DEMO_TOKEN, allow_anonymous=True
    )
    with running_gateway(settings) as gateway:
        text = token_tab(gateway)
    assert "Metronome API token" not in text
    assert "no token" in text.lower()


def test_the_metrics_token_is_kept_secret() -> None:
    """The metrics token is never shown by the settings (a start-up error prints them)."""
    assert METRICS_TOKEN not in repr(Settings(metrics_token=METRICS_TOKEN))
