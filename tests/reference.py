"""The billing API's own answer, fetched directly, to compare the gateway's answers with."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.standin import DEMO_TOKEN

PATH = "/v1/contracts/seatBalances/list"


def upstream_seats(
    base_url: str, body: dict[str, Any], token: str = DEMO_TOKEN
) -> list[dict[str, Any]]:
    """Every seat of a listing, following ``next_page`` to the end, as the API sends them."""
    seats: list[dict[str, Any]] = []
    request = {**body, "limit": 100}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as http:
        while True:
            response = http.post(PATH, json=request)
            response.raise_for_status()
            page = response.json()
            seats.extend(page["data"])
            if not page["pagination"].get("next_page"):
                return seats
            request["cursor"] = page["pagination"]["next_page"]


def as_graphql(seat: dict[str, Any]) -> dict[str, Any]:
    """A wire seat in the gateway's shape (camelCase, floats, null lists as [])."""

    def commitment(item: dict[str, Any], id_name: str) -> dict[str, Any]:
        out = {
            id_name: item["id"],
            "balance": float(item["balance"]),
            "startDate": item["start_date"],
            "endDate": item.get("end_date"),
        }
        if "ledger_entries" in item:
            out["ledgerEntries"] = [
                {"type": e["type"], "amount": float(e["amount"]), "timestamp": e["timestamp"]}
                for e in item["ledger_entries"] or []
            ]
        return out

    out: dict[str, Any] = {
        "seatId": seat["seat_id"],
        "balances": [
            {
                "creditTypeId": b["credit_type_id"],
                "balance": float(b["balance"]),
                "startingBalance": float(b["starting_balance"]),
            }
            for b in seat["balances"]
        ],
    }
    if "commits" in seat or "credits" in seat:
        out["commits"] = [commitment(c, "commitId") for c in seat.get("commits") or []]
        out["credits"] = [commitment(c, "creditId") for c in seat.get("credits") or []]
    return out
