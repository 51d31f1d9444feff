"""Demo activity for the stand-in: usage that moves a few seats' balances every few seconds, and
now and then a signed webhook, so that live seat balances move with nothing configured.

The billing API announces usage by nothing (the contract: "only polling sees it"), while it
does send alerts when a balance crosses a threshold. The demo does both: every ``period``
seconds ``step()`` deducts usage from two or three seats of the demo contract, writing it into
the dataset the stand-in app serves, and every ``webhook_every``-th step ``deliver_webhook()``
signs an ``alerts.low_remaining_seat_balance_reached`` for a seat that just moved and hands it to
``deliver`` (the gateway's webhook endpoint, in process), as the billing API would POST it.

A move keeps a seat as data.py builds it: the commit's or credit's ``balance`` is still the sum
of its ledger, and the seat's balance of that credit type still the sum of its commits' and
credits' balances. Amounts are counted in quarters, as there, so every number stays exact.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import hmac
import json
import logging
import random
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

from starlette.applications import Starlette

from gateway.standin.app import standin_dataset
from gateway.standin.data import (
    AI_TOKENS_ID,
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    _instant,
    _number,
    _quarters,
)

JSON = dict[str, Any]
Deliver = Callable[[bytes, Mapping[str, str]], Awaitable[int]]  # body, headers -> HTTP status

DEMO_WEBHOOK_SECRET: Final = "demo-webhook-secret"  # noqa: S105 - a published demo secret, like DEMO_TOKEN

ALERT_EVENT_TYPE: Final = "alerts.low_remaining_seat_balance_reached"
# The one alert configuration the demo contract has: the same id in every delivery.
DEMO_ALERT_ID: Final = "5a1d6e0c-2b7f-4c8e-9d3a-6f0b1e2c3d4e"

# Usage is deducted by the invoice: the deduction entry of a commit or of a credit.
_USAGE_ENTRY = {
    "commits": "PREPAID_COMMIT_AUTOMATED_INVOICE_DEDUCTION",
    "credits": "CREDIT_AUTOMATED_INVOICE_DEDUCTION",
}

logger = logging.getLogger("gateway.standin")


def sign_webhook(secret: str, date: str, body: bytes) -> str:
    """The billing API's ``Metronome-Webhook-Signature``: lower-case hex HMAC-SHA256 of the
    date header, a newline and the raw body."""
    return hmac.new(secret.encode(), date.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def _utc_now() -> datetime:
    return datetime.now(UTC)


class DemoActivity:
    """Moves the demo contract's balances in the app's dataset and tells ``deliver`` now and
    then. ``seed`` makes the moves repeatable; the webhook ids are always fresh, because a
    receiver deduplicates on them across restarts. ``clock`` is for tests."""

    def __init__(
        self,
        app: Starlette,
        deliver: Deliver | None,
        *,
        period: float = 5.0,
        webhook_every: int = 3,
        seed: int | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        if period <= 0 or webhook_every < 1:
            raise ValueError("period must be positive and webhook_every at least 1")
        contract = standin_dataset(app)["customers"][DEMO_CUSTOMER_ID]["contracts"][
            DEMO_CONTRACT_ID
        ]
        self._seats: list[JSON] = contract["seats"]
        self._credit_type: dict[str, str] = {
            entry["id"]: entry["credit_type_id"] for entry in contract["commits"]
        }
        self._deliver = deliver
        self._period = period
        self._webhook_every = webhook_every
        self._rng = random.Random(seed)  # noqa: S311 - repeatable demo usage, not cryptography
        self._clock = clock
        self._last_moved: list[tuple[JSON, str]] = []  # (seat, credit type) of the last step
        self._failing = False

    def step(self) -> list[str]:
        """Deduct usage now from two or three seats holding an active commit or credit with a
        positive balance: 1-5 % of its starting amount, never more than is left. Returns the
        ids of the seats that moved."""
        now = self._clock()
        candidates = [(seat, usable) for seat in self._seats if (usable := self._usable(seat, now))]
        chosen = self._rng.sample(candidates, min(self._rng.randint(2, 3), len(candidates)))
        moved = []
        for seat, usable in chosen:
            kind, item = self._rng.choice(usable)
            moved.append((seat, self._deduct(seat, kind, item, now)))
        if moved:
            self._last_moved = moved
        return [seat["seat_id"] for seat, _ in moved]

    async def deliver_webhook(self) -> int | None:
        """Sign one alert for a seat that moved (any seat with a balance before the first
        move) and hand it to ``deliver``; its status, or ``None`` without ``deliver``. An
        error of ``deliver`` is raised."""
        if self._deliver is None:
            return None
        now = self._clock()
        body = json.dumps(self._alert(now), separators=(",", ":")).encode()
        date = email.utils.formatdate(now.timestamp(), usegmt=True)
        headers = {
            "Content-Type": "application/json",
            "X-Metronome-Date": date,
            "Metronome-Webhook-Signature": sign_webhook(DEMO_WEBHOOK_SECRET, date, body),
        }
        return await self._deliver(body, headers)

    async def run(self) -> None:
        """Step every ``period`` seconds and deliver every ``webhook_every``-th step, until
        cancelled. A failed delivery is logged, never raised: the demo outlives a receiver that
        is down or refuses it."""
        steps = 0
        while True:
            await asyncio.sleep(self._period)
            self.step()
            steps += 1
            if self._deliver is not None and steps % self._webhook_every == 0:
                await self._deliver_logged()

    async def _deliver_logged(self) -> None:
        try:
            status = await self.deliver_webhook()
        except Exception as exc:  # whatever the receiver raises, the balances keep moving
            self._failed(repr(exc))
            return
        if status is not None and status > 299:
            self._failed(f"HTTP {status}")
        else:
            self._failing = False

    def _failed(self, reason: str) -> None:
        # A warning when deliveries start failing, then quiet until one succeeds again.
        log = logger.debug if self._failing else logger.warning
        log("demo webhook delivery failed (%s); the demo usage goes on", reason)
        self._failing = True

    # --- a move ----------------------------------------------------------------------------------

    def _usable(self, seat: JSON, now: datetime) -> list[tuple[str, JSON]]:
        """The seat's commits and credits that usage may draw on at ``now``."""
        return [
            (kind, item)
            for kind in ("commits", "credits")
            for item in seat.get(kind) or []
            if item["balance"] > 0
            and _instant(item["start_date"]) <= now
            and (not item["end_date"] or now < _instant(item["end_date"]))
        ]

    def _deduct(self, seat: JSON, kind: str, item: JSON, now: datetime) -> str:
        """Deduct usage from one of the seat's commits or credits; its credit type."""
        credit_type_id = self._credit_type[item["id"]]
        step = 4 if credit_type_id == AI_TOKENS_ID else 1  # tokens are whole, as data.py has them
        ledger = item["ledger_entries"]
        starting = next(
            (_quarters(e["amount"]) for e in ledger if e["type"].endswith("SEGMENT_START")),
            _quarters(item["balance"]),
        )
        left = _quarters(item["balance"])
        usage = int(starting * self._rng.uniform(0.01, 0.05))
        usage = min(max(usage - usage % step, step), left)
        item["balance"] = _number(left - usage)
        ledger.append(
            {"type": _USAGE_ENTRY[kind], "amount": _number(-usage), "timestamp": _timestamp(now)}
        )
        totals = next(b for b in seat["balances"] if b["credit_type_id"] == credit_type_id)
        totals["balance"] = _number(_quarters(totals["balance"]) - usage)
        return credit_type_id

    # --- a webhook -------------------------------------------------------------------------------

    def _alert(self, now: datetime) -> JSON:
        """The alert's event, for a seat whose balance of one credit type is low: the threshold
        is the lowest tenth of its starting balance the balance has reached."""
        seat, credit_type_id = self._alert_subject()
        totals = next(b for b in seat["balances"] if b["credit_type_id"] == credit_type_id)
        starting, left = _quarters(totals["starting_balance"]), _quarters(totals["balance"])
        tenths = -(-left * 10 // starting) if starting > 0 else 0
        return {
            "id": str(uuid.uuid4()),
            "type": ALERT_EVENT_TYPE,
            "properties": {
                "customer_id": DEMO_CUSTOMER_ID,
                "contract_id": DEMO_CONTRACT_ID,
                "alert_id": DEMO_ALERT_ID,
                "alert_name": "Seat balance low",
                "threshold": _number(-(-tenths * starting // 10)),
                "credit_type_id": credit_type_id,
                "remaining_balance": totals["balance"],
                "seat_filter": {"seat_group_key": "seat_id", "seat_group_value": seat["seat_id"]},
                "triggered_by": "usage",
                "timestamp": _timestamp(now),
            },
        }

    def _alert_subject(self) -> tuple[JSON, str]:
        if self._last_moved:
            return self._last_moved[-1]
        for seat in self._seats:
            for totals in seat["balances"]:
                if totals["balance"] > 0:
                    return seat, totals["credit_type_id"]
        raise LookupError("no seat of the demo contract has a balance")


def _timestamp(at: datetime) -> str:
    # To the millisecond, as the wire writes it: data.py's whole seconds would tie two moves.
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%S}.{at.microsecond // 1000:03d}Z"
