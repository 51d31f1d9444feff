"""One async method per use of the billing API; httpx errors become ours at this boundary."""

from __future__ import annotations

from collections.abc import Mapping

import httpx
import pydantic

from gateway.upstream.errors import (
    UpstreamBadResponse,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.models import SEAT_BALANCE_PAGE, SeatBalancePage

SEAT_BALANCES_PATH = "/v1/contracts/seatBalances/list"

# An upstream message is shown to users (a 400 says what to change); keep it a message.
_MAX_MESSAGE_CHARS = 500


class BillingClient:
    """Calls the billing API through an ``httpx.AsyncClient`` that the caller owns.

    The client carries the base URL and timeouts; the token is per call because the gateway
    forwards each caller's own token when it has none of its own.
    """

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def list_seat_balances(
        self, body: Mapping[str, object], *, token: str
    ) -> SeatBalancePage:
        """``POST /v1/contracts/seatBalances/list``: one page of seats."""
        try:
            response = await self._http.post(
                SEAT_BALANCES_PATH,
                json=body,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TimeoutException:
            raise UpstreamTimeout("The billing API did not answer in time.") from None
        except httpx.TransportError:
            raise UpstreamUnavailable("The billing API could not be reached.") from None
        return _read_page(response)


def _read_page(response: httpx.Response) -> SeatBalancePage:
    status = response.status_code
    if status >= 500:
        raise UpstreamUnavailable(f"The billing API failed with HTTP {status}.", status=status)
    if status >= 400:
        raise UpstreamRejected(_error_message(response), status=status)
    if status != 200:
        raise UpstreamBadResponse(
            f"The billing API answered HTTP {status} instead of 200.", status=status
        )
    try:
        return SEAT_BALANCE_PAGE.validate_json(response.content)
    except pydantic.ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UpstreamBadResponse(
            f"The billing API's answer breaks the contract at {where or 'the top'}: "
            f"{first['msg']}.",
            status=status,
        ) from None


def _error_message(response: httpx.Response) -> str:
    """The API's ``{"message": ...}``, or a generic text when the body is something else."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    message = payload.get("message") if isinstance(payload, dict) else None
    if not isinstance(message, str) or not message.strip():
        return f"The billing API refused the request (HTTP {response.status_code})."
    return message.strip()[:_MAX_MESSAGE_CHARS]
