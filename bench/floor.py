"""The floor: the least a Python ASGI gateway can do for one benchmark shape.

A raw ASGI app on uvicorn (uvloop, httptools, no access log) that reads the body, makes the one
upstream POST through aiohttp, renames the keys into the gateway's GraphQL answer and dumps it
with orjson. Nothing else: no GraphQL parsing or validation, no checks of the upstream page, no
logging, no metrics. Like Mesh's caller, the client spells out the REST body in
``variables.input`` (``bench/run.py`` sends the shape's body)::

    python bench/floor.py --port 8001 --upstream http://127.0.0.1:8002
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp
import orjson
import uvicorn

SEAT_BALANCES_PATH = "/v1/contracts/seatBalances/list"


def entries(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": e["type"], "amount": e["amount"], "timestamp": e["timestamp"]} for e in items]


def commitment(item: dict[str, Any], id_key: str, ledgers: bool) -> dict[str, Any]:
    out = {
        id_key: item["id"],
        "balance": item["balance"],
        "startDate": item["start_date"],
        "endDate": item.get("end_date"),
    }
    if ledgers:
        out["ledgerEntries"] = entries(item.get("ledger_entries") or [])
    return out


def node(seat: dict[str, Any], listing: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seatId": seat["seat_id"],
        "balances": [
            {
                "creditTypeId": b["credit_type_id"],
                "balance": b["balance"],
                "startingBalance": b["starting_balance"],
            }
            for b in seat["balances"]
        ],
    }
    if listing.get("include_credits_and_commits"):
        ledgers = bool(listing.get("include_ledgers"))
        out["commits"] = [commitment(c, "commitId", ledgers) for c in seat.get("commits") or []]
        out["credits"] = [commitment(c, "creditId", ledgers) for c in seat.get("credits") or []]
    return out


class Floor:
    def __init__(self, upstream: str) -> None:
        self.url = upstream.rstrip("/") + SEAT_BALANCES_PATH
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            if self.session is not None:
                await self.session.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        listing = orjson.loads(body)["variables"]["input"]
        authorization = dict(scope["headers"]).get(b"authorization", b"").decode()
        if self.session is None:
            self.session = aiohttp.ClientSession()
        async with self.session.post(
            self.url,
            data=orjson.dumps(listing),
            headers={"Authorization": authorization, "Content-Type": "application/json"},
        ) as response:
            page = orjson.loads(await response.read())
        edges = [{"node": node(seat, listing)} for seat in page["data"]]
        answer = orjson.dumps({"data": {"seatBalances": {"edges": edges}}})
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": answer})


def serve(app: Any, host: str, port: int) -> None:
    """uvicorn as every Python target of the benchmark runs: uvloop, httptools, no access log."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--upstream", required=True, help="the billing API's base URL")
    args = parser.parse_args()
    serve(Floor(args.upstream), args.host, args.port)


if __name__ == "__main__":
    main()
