"""One async method per use of the billing API; httpx errors become ours at this boundary.

Every call is bounded three ways: a timeout per attempt, a deadline for the whole call
including retries and waiting for a slot, and a per-process cap on concurrent calls. Retries
follow the billing API's own SDKs (see :class:`RetryPolicy`); every endpoint used only reads,
so retrying is safe. The three endpoints share that machinery: a call is a method, a path, a
body or query, and the pydantic-core validator of its 200 answer.

Seat pages and details run in two lanes, each with its own slots and deadline: the details
(nullable fields beside the figures) get fewer slots and a shorter deadline, so a details
endpoint that hangs fails its fields quickly and never holds a slot a seat page needs.

A caller may pass ``may_retry``, asked before each retry (never before the first attempt): it
answers whether one more upstream request is allowed, and counts it if so. The gateway's
loaders pass the request's upstream budget, so retries spend it like any other request.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

import httpx
import orjson
import pydantic
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from gateway.upstream.budget import UpstreamBudget
from gateway.upstream.details import (
    BALANCES_PAGE,
    CREDIT_TYPES_PAGE,
    BalancesPage,
    CreditTypesPage,
)
from gateway.upstream.errors import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.upstream.models import SEAT_BALANCE_PAGE, SeatBalancePage
from gateway.upstream.tracing import child_span

SEAT_BALANCES_PATH = "/v1/contracts/seatBalances/list"
CUSTOMER_BALANCES_PATH = "/v1/contracts/customerBalances/list"
CREDIT_TYPES_PATH = "/v1/credit-types/list"

_Answer = TypeVar("_Answer")

logger = logging.getLogger("gateway.upstream")
_tracer = trace.get_tracer("gateway.upstream")
_TRACE_CONTEXT = TraceContextTextMapPropagator()


class UpstreamObserver(Protocol):
    """Told about every attempt (its outcome: the HTTP status, ``timeout`` or
    ``connection_error``, and its duration) and every retry; the app turns these into metrics."""

    def attempt(self, outcome: str, seconds: float) -> None: ...

    def retry(self) -> None: ...


class _Unobserved:
    def attempt(self, outcome: str, seconds: float) -> None:
        pass

    def retry(self) -> None:
        pass


# An upstream message is shown to users (a 400 says what to change); keep it a message.
_MAX_MESSAGE_CHARS = 500
_RETRIED_STATUSES = frozenset({408, 409, 429})
# The SDKs ignore a server-requested wait longer than this and back off on their own.
_MAX_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """How calls are bounded and retried. The bounds come from the settings
    (``Settings.retry_policy()``); the backoff is the billing API SDKs' own rule.

    Retried: connection errors, timeouts, 408, 409, 429 and 5xx, at most ``max_retries``
    times, unless the answer says ``x-should-retry: false`` (``true`` retries any answer).
    The wait is the server's ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)
    when it asks for 0-60 s, else ``min(0.5 s * 2^n, 8 s)`` minus up to 25 % jitter.
    """

    max_retries: int
    attempt_timeout: float
    deadline: float
    max_concurrency: int
    # The details lane: "List balances" and the credit types (nullable fields, see the module).
    details_deadline: float = 3.0
    details_concurrency: int = 8
    initial_backoff: float = 0.5
    max_backoff: float = 8.0
    jitter: float = 0.25
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, compare=False)


class _PastDeadline(stop_base):
    """Stop when the next attempt could only start after the call's deadline."""

    def __init__(self, deadline: float) -> None:
        self._deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + (retry_state.upcoming_sleep or 0) >= self._deadline


class _OutOfBudget(stop_base):
    """Stop when the caller's budget allows no further upstream request (asked last, so a
    retry is counted only when it is going to be made)."""

    def __init__(self, may_retry: Callable[[], bool]) -> None:
        self._may_retry = may_retry

    def __call__(self, retry_state: RetryCallState) -> bool:
        return not self._may_retry()


@dataclass(frozen=True, slots=True)
class _Lane:
    """Slots and a deadline shared by one kind of call."""

    slots: asyncio.Semaphore
    deadline: float


class _Retryable(Exception):
    """An attempt's failure that may be retried; ``error`` is what the caller gets if not."""

    def __init__(self, error: UpstreamError, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class _Call(Generic[_Answer]):
    """One call, as every attempt of it repeats it."""

    method: str
    path: str
    url: httpx.URL
    content: bytes | None
    answer: pydantic.TypeAdapter[_Answer]
    lane: _Lane
    may_retry: Callable[[], bool] | None


class BillingClient:
    """Calls the billing API through an ``httpx`` transport that the caller owns.

    It takes a transport, not an ``httpx.AsyncClient``: the client layer (URL merging, cookies,
    auth and redirect handling, none of which this endpoint uses) cost 0.3-0.45 ms of CPU per
    call, as much as the network I/O itself (BENCHMARKS.md). Tests and the embedded stand-in
    still plug in at the transport (``MockTransport``, ``ASGITransport``). The token is per
    call: the gateway forwards each caller's own token when it has none of its own.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport,
        base_url: str,
        policy: RetryPolicy,
        observer: UpstreamObserver | None = None,
        *,
        user_agent: str = "seat-balance-gateway",
        budget: UpstreamBudget | None = None,
    ) -> None:
        self._transport = transport
        self._base_url = base_url.rstrip("/")
        self._url = httpx.URL(self._base_url + SEAT_BALANCES_PATH)
        self._user_agent = user_agent.encode()
        self._policy = policy
        self._observer = observer or _Unobserved()
        # Every attempt takes a turn in it first (gateway.upstream.budget); None: no budget.
        self._budget = budget
        self._seats = _Lane(asyncio.Semaphore(policy.max_concurrency), policy.deadline)
        self._details = _Lane(
            asyncio.Semaphore(policy.details_concurrency), policy.details_deadline
        )

    async def list_seat_balances(
        self,
        body: Mapping[str, object],
        *,
        token: str,
        may_retry: Callable[[], bool] | None = None,
    ) -> SeatBalancePage:
        """``POST /v1/contracts/seatBalances/list``: one page of seats."""
        content = orjson.dumps(body)
        call = _Call(
            "POST",
            SEAT_BALANCES_PATH,
            self._url,
            content,
            SEAT_BALANCE_PAGE,
            self._seats,
            may_retry,
        )
        return await self._call(call, token)

    async def list_customer_balances(
        self,
        body: Mapping[str, object],
        *,
        token: str,
        may_retry: Callable[[], bool] | None = None,
    ) -> BalancesPage:
        """``POST /v1/contracts/customerBalances/list``: one page of a customer's commits and
        credits (their names, products, schedules; not their balances). In the details lane."""
        url = httpx.URL(self._base_url + CUSTOMER_BALANCES_PATH)
        content = orjson.dumps(body)
        call = _Call(
            "POST", CUSTOMER_BALANCES_PATH, url, content, BALANCES_PAGE, self._details, may_retry
        )
        return await self._call(call, token)

    async def list_credit_types(
        self,
        *,
        limit: int,
        next_page: str | None = None,
        token: str,
        may_retry: Callable[[], bool] | None = None,
    ) -> CreditTypesPage:
        """``GET /v1/credit-types/list``: one page of the account's credit types. In the
        details lane."""
        params: dict[str, str | int] = {"limit": limit}
        if next_page is not None:
            params["next_page"] = next_page
        url = httpx.URL(self._base_url + CREDIT_TYPES_PATH, params=params)
        call = _Call(
            "GET", CREDIT_TYPES_PATH, url, None, CREDIT_TYPES_PAGE, self._details, may_retry
        )
        return await self._call(call, token)

    async def _call(self, call: _Call[_Answer], token: str) -> _Answer:
        """One call with its retries, all within its lane's deadline and the caller's budget."""
        policy = self._policy
        deadline = time.monotonic() + call.lane.deadline
        try:
            # Most calls succeed at once: the retry machinery is only set up for those that
            # do not (it costs as much as a fast attempt).
            return await self._attempt(call, token, deadline)
        except _Retryable as failure:
            wait = self._wait(failure, 0)
            if (
                policy.max_retries == 0
                or time.monotonic() + wait >= deadline
                or (call.may_retry is not None and not call.may_retry())
            ):
                raise failure.error from None
            self._announce_retry(1, failure, wait)
        await policy.sleep(wait)
        stop = stop_after_attempt(policy.max_retries) | _PastDeadline(deadline)
        if call.may_retry is not None:
            stop = stop | _OutOfBudget(call.may_retry)
        retrying = AsyncRetrying(
            # Tenacity computes the wait before asking `stop`: a retry that could only start
            # after the deadline, or beyond the caller's budget, is not made, and the caller
            # gets the last error at once.
            stop=stop,
            retry=retry_if_exception(lambda error: isinstance(error, _Retryable)),
            wait=self._wait_for,
            sleep=policy.sleep,
            before_sleep=self._before_retry,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._attempt(call, token, deadline)
        except _Retryable as failure:
            raise failure.error from None
        raise AssertionError("unreachable: tenacity either returns or raises")

    async def answers(self) -> bool:
        """Whether the billing API answers at all (any status below 500) within 2 s, for
        readiness. Sent without a token and with an empty body: a 400 or 401 is a live API."""
        try:
            async with asyncio.timeout(2.0):
                response = await self._send("POST", self._url, b"{}", [])
        except (TimeoutError, httpx.HTTPError):
            return False
        return response.status_code < 500

    async def _send(
        self,
        method: str,
        url: httpx.URL,
        content: bytes | None,
        headers: list[tuple[bytes, bytes]],
    ) -> httpx.Response:
        # The request httpx would build from `content=` (the same headers, in the same order),
        # given its body as a stream with its length: httpx's encoding of `content=` costs
        # three times as much (BENCHMARKS.md, "Round three").
        fields = [(b"Host", url.netloc), (b"Accept", b"application/json")]
        fields.append((b"User-Agent", self._user_agent))
        if content is not None:
            fields.append((b"Content-Type", b"application/json"))
        fields += headers
        if content is not None:
            fields.append((b"Content-Length", str(len(content)).encode()))
        request = httpx.Request(
            method, url, headers=fields, stream=httpx.ByteStream(content or b"")
        )
        request.read()  # its content, for transports that read `request.content`
        response = await self._transport.handle_async_request(request)
        try:
            await response.aread()
        finally:
            await response.aclose()
        return response

    async def _attempt(self, call: _Call[_Answer], token: str, deadline: float) -> _Answer:
        if time.monotonic() >= deadline:
            raise UpstreamTimeout("The billing API did not answer within the deadline.")
        if self._budget is not None:
            # Before the lane's slot: a call waiting for its turn holds no slot.
            await self._budget.turn(token, deadline)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise UpstreamTimeout("The billing API did not answer within the deadline.")
        with child_span(_tracer, f"{call.method} {call.path}", trace.SpanKind.CLIENT) as current:
            headers = [(b"Authorization", f"Bearer {token}".encode())]
            headers += _trace_headers(current)
            started = time.perf_counter()
            outcome = "connection_error"
            try:
                async with asyncio.timeout(min(self._policy.attempt_timeout, remaining)):
                    async with call.lane.slots:
                        response = await self._send(call.method, call.url, call.content, headers)
                outcome = str(response.status_code)
                current.set_attribute("http.response.status_code", response.status_code)
            except httpx.DecodingError:
                outcome = "bad_response"
                raise UpstreamBadResponse(
                    "The billing API's answer could not be decoded (its content encoding)."
                ) from None
            except (TimeoutError, httpx.TransportError) as error:
                if not _timed_out(error):
                    raise _Retryable(
                        UpstreamUnavailable("The billing API could not be reached.")
                    ) from None
                outcome = "timeout"
                raise _Retryable(
                    UpstreamTimeout("The billing API did not answer in time.")
                ) from None
            finally:
                self._observer.attempt(outcome, time.perf_counter() - started)
                if outcome != "200":
                    current.set_status(trace.StatusCode.ERROR, outcome)
            try:
                return _read(response, call.answer)
            except _Retryable as failure:
                # A 429 that says how long: every replica holds this credential until then.
                if (
                    self._budget is not None
                    and failure.error.status == 429
                    and failure.retry_after is not None
                ):
                    await self._budget.hold(token, failure.retry_after)
                raise

    def _announce_retry(self, attempt: int, failure: BaseException | None, wait: float) -> None:
        self._observer.retry()
        logger.warning(
            "billing API attempt %d failed (%s); retrying in %.2f s",
            attempt,
            _describe(failure),
            wait,
        )

    def _before_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self._announce_retry(state.attempt_number + 1, error, state.upcoming_sleep)

    def _wait_for(self, state: RetryCallState) -> float:
        # Tenacity's first attempt is the call's second: after it, `attempt_number` retries
        # have been made.
        error = state.outcome.exception() if state.outcome else None
        return self._wait(error, state.attempt_number)

    def _wait(self, error: BaseException | None, retries_so_far: int) -> float:
        asked = error.retry_after if isinstance(error, _Retryable) else None
        if asked is not None and 0 <= asked <= _MAX_RETRY_AFTER:
            return asked
        policy = self._policy
        backoff = min(policy.initial_backoff * 2.0**retries_so_far, policy.max_backoff)
        return backoff * (1 - policy.jitter * random.random())  # noqa: S311 - jitter, not crypto


def _timed_out(error: BaseException) -> bool:
    """Whether an attempt failed by running out of time (else the API could not be reached).

    httpx-aiohttp reports every aiohttp connection error (refused, reset, disconnected) as
    ``httpx.ConnectTimeout`` (its exception map prefers aiohttp's parent class); the cause tells
    them apart: only a ``TimeoutError`` is one.
    """
    if isinstance(error, TimeoutError):
        return True
    if not isinstance(error, httpx.TimeoutException):
        return False
    cause = error.__cause__
    return cause is None or isinstance(cause, TimeoutError)


def _trace_headers(current: trace.Span) -> list[tuple[bytes, bytes]]:
    """The ``traceparent`` of this attempt's span when there is one (tracing on and the operation
    recorded), so that the billing API's trace joins ours; nothing otherwise (never the caller's
    own, passed on verbatim). Never the caller's ``tracestate`` or ``baggage``: only what
    the gateway decides goes upstream."""
    if not current.get_span_context().is_valid:
        return []
    carrier: dict[str, str] = {}
    _TRACE_CONTEXT.inject(carrier)
    traceparent = carrier.get("traceparent")
    return [(b"traceparent", traceparent.encode())] if traceparent else []


def _describe(error: BaseException | None) -> str:
    inner = getattr(error, "error", error)
    status = getattr(inner, "status", None)
    return f"HTTP {status}" if status else type(inner).__name__


def _read(response: httpx.Response, answer: pydantic.TypeAdapter[_Answer]) -> _Answer:
    status = response.status_code
    should_retry = response.headers.get("x-should-retry", "").strip().lower()
    if status >= 400 or should_retry == "true":
        error: UpstreamError = (
            UpstreamUnavailable(f"The billing API failed with HTTP {status}.", status=status)
            if status >= 500
            else UpstreamRejected(_error_message(response), status=status)
        )
        retryable = status >= 500 or status in _RETRIED_STATUSES
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        if retryable:
            raise _Retryable(error, _retry_after(response.headers))
        raise error
    if status != 200:
        raise UpstreamBadResponse(
            f"The billing API answered HTTP {status} instead of 200.", status=status
        )
    try:
        return answer.validate_json(response.content)
    except pydantic.ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise UpstreamBadResponse(
            f"The billing API's answer breaks the contract at {where or 'the top'}: "
            f"{first['msg']}.",
            status=status,
        ) from None


def _retry_after(headers: httpx.Headers) -> float | None:
    """The wait the server asks for, in seconds: ``retry-after-ms`` first, then
    ``retry-after`` as seconds or as an HTTP date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


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
