"""The client's two detail endpoints: the seat endpoint's retries and errors, tolerant models."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

from gateway.standin import DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from gateway.upstream import (
    BillingClient,
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamUnavailable,
)
from tests.support import DEFAULT_POLICY, RecordingTransport, SleepRecorder

ITEM = {"id": "62c0cb84-bf3f-48b9-9bcf-a8ddf8c1cf35", "type": "PREPAID"}


def scripted(
    handler: Callable[[httpx.Request], httpx.Response], sleep: SleepRecorder
) -> BillingClient:
    return BillingClient(
        httpx.MockTransport(handler), "http://billing", replace(DEFAULT_POLICY, sleep=sleep)
    )


async def test_both_endpoints_against_the_stand_in() -> None:
    """List balances is a JSON POST and the credit types a GET with limit and next_page in the
    query, both with the caller's token; their answers are read as the contract says."""
    recorder = RecordingTransport(httpx.ASGITransport(app=create_standin_app()))
    client = BillingClient(recorder, "http://standin/", DEFAULT_POLICY)
    body = {"customer_id": DEMO_CUSTOMER_ID, "include_contract_balances": True, "limit": 3}
    page = await client.list_customer_balances(body, token=DEMO_TOKEN)
    assert len(page["data"]) == 3 and page["next_page"]
    assert all(item["product"] and item["type"] for item in page["data"])
    types = await client.list_credit_types(limit=100, token=DEMO_TOKEN)
    more = await client.list_credit_types(limit=100, next_page=types["next_page"], token=DEMO_TOKEN)
    assert (len(types["data"]), len(more["data"]), more["next_page"]) == (100, 23, None)
    assert [(c.path, c.params, c.authorization) for c in recorder.calls] == [
        ("/v1/contracts/customerBalances/list", {}, f"Bearer {DEMO_TOKEN}"),
        ("/v1/credit-types/list", {"limit": "100"}, f"Bearer {DEMO_TOKEN}"),
        (
            "/v1/credit-types/list",
            {"limit": "100", "next_page": types["next_page"]},
            f"Bearer {DEMO_TOKEN}",
        ),
    ]
    assert recorder.bodies()[0] == body


async def test_detail_calls_are_retried_like_the_seat_endpoint() -> None:
    """A 503 then a 200 on the credit types is one retry after the SDKs' backoff."""
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.method)
        if len(attempts) == 1:
            return httpx.Response(503, json={"message": "busy"})
        return httpx.Response(200, json={"data": [], "next_page": None})

    sleep = SleepRecorder()
    page = await scripted(handler, sleep).list_credit_types(limit=100, token="t")
    assert page == {"data": [], "next_page": None}
    assert attempts == ["GET", "GET"]
    assert len(sleep.waits) == 1 and 0.375 <= sleep.waits[0] <= 0.5


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (httpx.Response(404, json={"message": "Commit not found"}), UpstreamRejected),
        (httpx.Response(500, json={"message": "down"}), UpstreamUnavailable),
        (httpx.Response(200, content=b"<html>"), UpstreamBadResponse),
    ],
)
async def test_detail_errors_map_to_ours(response: httpx.Response, error: type[Exception]) -> None:
    """4xx, 5xx (after the retries) and an unreadable 200 become the usual upstream errors."""
    client = scripted(lambda request: response, SleepRecorder())
    with pytest.raises(error):
        await client.list_customer_balances({"customer_id": "c"}, token="t")


@pytest.mark.parametrize(
    ("item", "accepted"),
    [
        ({**ITEM, "type": "MARKETPLACE_CREDIT", "surprise": {"new": 1}}, True),
        ({**ITEM, "name": None, "product": None, "subscription_config": None}, True),
        ({**ITEM, "subscription_config": {"allocation": "SHARED"}}, True),
        ({"type": "PREPAID"}, False),  # no id: nothing to join it to
        ({**ITEM, "priority": "high"}, False),
        ({**ITEM, "priority": float("nan")}, False),  # numbers the schema cannot show
        (
            {
                **ITEM,
                "access_schedule": {
                    "schedule_items": [
                        {
                            "id": "s",
                            "amount": float("inf"),
                            "starting_at": "2026-05-01T00:00:00Z",
                            "ending_before": "2026-06-01T00:00:00Z",
                        }
                    ]
                },
            },
            False,
        ),
        (
            {
                **ITEM,
                "access_schedule": {
                    "schedule_items": [
                        {"id": "s", "amount": 1, "starting_at": "May 1", "ending_before": "x"}
                    ]
                },
            },
            False,
        ),
    ],
)
async def test_items_are_read_tolerantly_but_not_blindly(item: Any, accepted: bool) -> None:
    """Unknown fields and types, nulls and new allocations are accepted; an item without id, a
    non-numeric or non-finite number or a schedule date that is not RFC 3339 breaks the
    contract."""
    # The stdlib writes NaN and Infinity as the billing API might; httpx's json= refuses them.
    body = json.dumps({"data": [item], "next_page": None}).encode()
    client = scripted(
        lambda request: httpx.Response(
            200, content=body, headers={"content-type": "application/json"}
        ),
        SleepRecorder(),
    )
    if accepted:
        page = await client.list_customer_balances({"customer_id": "c"}, token="t")
        assert page["data"][0]["id"] == ITEM["id"]
        assert "surprise" not in page["data"][0]
    else:
        with pytest.raises(UpstreamBadResponse):
            await client.list_customer_balances({"customer_id": "c"}, token="t")


async def test_credit_type_fields_are_all_optional() -> None:
    """Credit types without a name, an id or is_currency are read, not refused."""
    body = {"data": [{"id": "a"}, {"name": "b"}, {}], "next_page": None}
    client = scripted(lambda request: httpx.Response(200, json=body), SleepRecorder())
    page = await client.list_credit_types(limit=10, token="t")
    assert page["data"] == [{"id": "a"}, {"name": "b"}, {}]
