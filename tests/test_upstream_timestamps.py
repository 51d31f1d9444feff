"""A billing-API page whose timestamps are not RFC 3339 date-times is the billing API's fault.

RFC 3339's digits are ASCII (``DIGIT = %x30-39``): a date written with other decimal digits
(Arabic-Indic, full-width), a date without its time, a time without its offset or a value with a
trailing newline breaks the contract, and the field fails with ``UPSTREAM_BAD_RESPONSE`` rather
than handing a client a ``DateTime`` it cannot parse. What RFC 3339 allows comes out as the
billing API wrote it.
"""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID
from tests.support import running_gateway

QUERY = f"""{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}") {{
  nodes {{ seatId commits {{ startDate ledgerEntries {{ timestamp }} }} }}
}} }}"""


def page_with(
    start_date: str = "2026-05-01T00:00:00.000Z", timestamp: str = "2026-05-01T00:00:00.000Z"
) -> httpx.MockTransport:
    page = {
        "data": [
            {
                "seat_id": "ada@acme.example",
                "balances": [],
                "commits": [
                    {
                        "id": "62c0cb84-bf3f-48b9-9bcf-a8ddf8c1cf35",
                        "balance": 10,
                        "start_date": start_date,
                        "ledger_entries": [
                            {
                                "type": "PREPAID_COMMIT_SEGMENT_START",
                                "amount": 10,
                                "timestamp": timestamp,
                            }
                        ],
                    }
                ],
                "credits": [],
            }
        ],
        "pagination": {"seats_included": 1, "seats_available_for_next_page": 0},
    }
    body = json.dumps(page).encode()
    return httpx.MockTransport(
        lambda request: httpx.Response(
            200, content=body, headers={"content-type": "application/json"}
        )
    )


BROKEN = {
    "Arabic-Indic digits": "\u0662\u0660\u0662\u0666-05-01T00:00:00Z",
    "full-width digits": "\uff12\uff10\uff12\uff16-05-01T00:00:00Z",
    "Devanagari seconds": "2026-05-01T00:00:\u0966\u0966Z",
    "a date without its time": "2026-05-01",
    "no offset": "2026-05-01T00:00:00",
    "a trailing newline": "2026-05-01T00:00:00Z\n",
}


@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "graphql-core"])
@pytest.mark.parametrize("where", ["start_date", "timestamp"])
def test_timestamps_outside_rfc_3339_are_upstream_bad_response(fast_path: bool, where: str) -> None:
    """Each broken timestamp, in a commit's dates or a ledger entry, fails the field with
    UPSTREAM_BAD_RESPONSE (the nullable seatBalances is null), never comes out as data."""
    for name, text in BROKEN.items():
        settings = Settings(metronome_base_url="http://billing.test", fast_path=fast_path)
        transport = page_with(**{where: text})
        with running_gateway(settings, transport) as gateway:
            payload = gateway.post(QUERY).json()
            assert payload["data"] == {"seatBalances": None}, name
            assert [e["extensions"]["code"] for e in payload["errors"]] == [
                "UPSTREAM_BAD_RESPONSE"
            ], (name, payload["errors"])


@pytest.mark.parametrize(
    "text",
    [
        "2026-05-01T00:00:00Z",
        "2026-05-01T00:00:00.123456789Z",
        "2026-05-01t00:00:00z",
        "2026-05-01 00:00:00+02:00",
        "2026-05-01T00:00:00-05:30",
    ],
)
def test_rfc_3339_timestamps_come_out_as_written(text: str) -> None:
    """The forms RFC 3339 allows (fractions of any length, lower-case separators, a space,
    offsets) are data, as the billing API wrote them."""
    settings = Settings(metronome_base_url="http://billing.test")
    with running_gateway(settings, page_with(text, text)) as gateway:
        [seat] = gateway.query(QUERY)["seatBalances"]["nodes"]
        assert seat["commits"] == [{"startDate": text, "ledgerEntries": [{"timestamp": text}]}]
