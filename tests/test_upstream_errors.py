"""Upstream failures keep their meaning, and never leak a URL, a token or a stack trace."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID
from tests.support import Gateway, SleepRecorder, running_gateway

SECRET_URL = "https://billing.internal.example:8443"
SECRET_TOKEN = "sk_live_do_not_leak_9f8e7d"
QUERY = f"""{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}")
  {{ nodes {{ seatId }} }} }}"""

Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def faulty() -> Iterator[Callable[[Handler], Gateway]]:
    """A gateway whose upstream is a MockTransport answering with ``handler``."""
    stack: list[Any] = []

    def start(handler: Handler) -> Gateway:
        settings = Settings(
            metronome_base_url=SECRET_URL, metronome_bearer_token=SECRET_TOKEN, allow_anonymous=True
        )
        context = running_gateway(
            settings, httpx.MockTransport(handler), retry_sleep=SleepRecorder()
        )
        stack.append(context)
        return context.__enter__()

    yield start
    for context in stack:
        context.__exit__(None, None, None)


def message(status: int, text: str) -> Handler:
    return lambda request: httpx.Response(status, json={"message": text})


def raising(error: type[Exception]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise error("boom at " + str(request.url))  # type: ignore[call-arg]

    return handler


@pytest.mark.parametrize(
    ("handler", "code", "status"),
    [
        (message(400, "seat_ids contains unknown seat 'x'"), "BAD_USER_INPUT", 400),
        (message(401, "invalid token"), "UNAUTHENTICATED", 401),
        (message(403, "forbidden"), "FORBIDDEN", 403),
        (message(404, "customer not found"), "NOT_FOUND", 404),
        (message(429, "Too many requests"), "UPSTREAM_RATE_LIMITED", 429),
        (
            lambda r: httpx.Response(503, text="<html>Service Unavailable</html>"),
            "UPSTREAM_UNAVAILABLE",
            503,
        ),
        (lambda r: httpx.Response(500), "UPSTREAM_UNAVAILABLE", 500),
        (raising(httpx.ConnectError), "UPSTREAM_UNAVAILABLE", None),
        (raising(httpx.ReadTimeout), "UPSTREAM_TIMEOUT", None),
        (raising(httpx.ConnectTimeout), "UPSTREAM_TIMEOUT", None),
        (
            lambda r: httpx.Response(200, text="<html>gateway login</html>"),
            "UPSTREAM_BAD_RESPONSE",
            200,
        ),
        (
            lambda r: httpx.Response(200, json={"data": [{"balances": []}], "pagination": {}}),
            "UPSTREAM_BAD_RESPONSE",
            200,
        ),
        (lambda r: httpx.Response(200, json=[1, 2, 3]), "UPSTREAM_BAD_RESPONSE", 200),
    ],
)
def test_upstream_failures_map_to_codes(
    faulty: Callable[[Handler], Gateway], handler: Handler, code: str, status: int | None
) -> None:
    """Each upstream failure becomes its documented code, with the HTTP status where known."""
    gateway = faulty(handler)
    response = gateway.post(QUERY, token=None)
    assert response.status_code == 200
    payload = response.json()
    assert payload["data"] == {"seatBalances": None}  # nullable: one failed field, not the answer
    [error] = payload["errors"]
    assert error["extensions"]["code"] == code
    assert error["extensions"].get("http", {}).get("status") == status
    assert error["path"] == ["seatBalances"]
    text = json.dumps(payload)
    for secret in (SECRET_URL, "billing.internal", SECRET_TOKEN, "Traceback", "httpx"):
        assert secret not in text


def test_a_400_carries_the_billing_apis_message(faulty: Callable[[Handler], Gateway]) -> None:
    """The user sees the billing API's own explanation of a rejected request."""
    gateway = faulty(message(400, "subscription 123 is not SEAT_BASED"))
    [error] = gateway.errors(QUERY, token=None)
    assert "subscription 123 is not SEAT_BASED" in error["message"]


def test_unknown_ledger_types_do_not_fail_the_query(faulty: Callable[[Handler], Gateway]) -> None:
    """A ledger type the billing API adds later arrives as UNKNOWN with its raw name."""
    page = {
        "data": [
            {
                "seat_id": "a@x.example",
                "balances": [{"credit_type_id": "c", "balance": 5, "starting_balance": 10.5}],
                "commits": [
                    {
                        "id": "k1",
                        "balance": 5,
                        "start_date": "2026-01-01T00:00:00.000Z",
                        "ledger_entries": [
                            {
                                "type": "PREPAID_COMMIT_MANUAL",
                                "amount": 10,
                                "timestamp": "2026-01-01T00:00:00Z",
                            },
                            {
                                "type": "PREPAID_COMMIT_TELEPORTED",
                                "amount": -5,
                                "timestamp": "2026-01-02T00:00:00Z",
                            },
                        ],
                    }
                ],
                "credits": None,
            }
        ],
        "pagination": {"seats_included": 1, "seats_available_for_next_page": 0, "next_page": None},
    }
    gateway = faulty(lambda request: httpx.Response(200, json=page))
    data = gateway.query(
        QUERY.replace(
            "nodes { seatId }",
            "nodes { seatId commits { endDate ledgerEntries { type rawType amount } } credits { balance } }",
        ),
        token=None,
    )
    [seat] = data["seatBalances"]["nodes"]
    assert seat["credits"] == []
    assert seat["commits"][0]["endDate"] is None
    assert seat["commits"][0]["ledgerEntries"] == [
        {"type": "PREPAID_COMMIT_MANUAL", "rawType": "PREPAID_COMMIT_MANUAL", "amount": 10.0},
        {"type": "UNKNOWN", "rawType": "PREPAID_COMMIT_TELEPORTED", "amount": -5.0},
    ]


def test_upstream_errors_from_the_standin_keep_their_meaning(gateway: Gateway) -> None:
    """Against a real implementation, a bad token is UNAUTHENTICATED and a foreign customer NOT_FOUND."""
    [bad_token] = gateway.errors(QUERY, token="nope")
    assert bad_token["extensions"] == {"code": "UNAUTHENTICATED", "http": {"status": 401}}
    [foreign] = gateway.errors(
        QUERY.replace(DEMO_CUSTOMER_ID, "00000000-0000-4000-8000-000000000000")
    )
    assert foreign["extensions"] == {"code": "NOT_FOUND", "http": {"status": 404}}
