"""What the replicas share about live listings: :class:`RedisBus`, or :class:`LocalBus` alone.

Through Redis (``GATEWAY_REDIS_URL``):

* a **lease** per listing (``gateway:v2:live:lease:<digest>``, this process's id, expiring
  after ``lease_seconds``): the replica holding it polls the listing, renewing it every third
  of that; when its holder dies the lease expires and another replica following the listing
  takes it at its next tick;
* each **refresh**, published on ``gateway:v2:live:updates`` (the listing's digest, the
  publisher's id, the reason, the time and the page's JSON) and kept as the listing's last
  (``gateway:v2:live:last:<digest>``) for replicas that start following it;
* each **webhook event** (customer and contract), on ``gateway:v2:live:events``;
* each **webhook id** seen (``gateway:v2:webhook:<id>``, three days): a delivery repeated to
  another replica does nothing there either.

Redis is not trusted and not needed: what comes back is validated by the hub; every operation
goes through the Redis connection's circuit breaker and timeout; when a lease cannot be asked,
or the subscription to the channels is down, this process polls its listings itself (each
replica then calls upstream for its own subscribers), and :attr:`Bus.degraded` says so (the
``/readyz`` ``live`` field and a metric).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any, Protocol

from gateway.caches import TLRUCache
from gateway.stores import FORMAT_VERSION, CircuitBreaker, RedisSkipped

logger = logging.getLogger("gateway.live")

PREFIX = f"gateway:{FORMAT_VERSION}:live:"
UPDATES = PREFIX + "updates"
EVENTS = PREFIX + "events"
WEBHOOK_IDS = f"gateway:{FORMAT_VERSION}:webhook:"
# How long a webhook id is remembered: the billing API retries deliveries for two to three days.
WEBHOOK_ID_SECONDS = 3 * 24 * 3600
# Webhook ids remembered in a process without Redis (or while it fails); the oldest go first.
MAX_LOCAL_WEBHOOK_IDS = 100_000

# Take the lease if free, renew it if held: 1 when this process holds it now.
_LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
# Give the lease up, if still held.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class BusListener(Protocol):
    """What the bus tells the hub: another replica's webhook event or refresh."""

    def on_event(self, customer_id: str, contract_id: str | None) -> None: ...

    async def on_update(self, digest: str, reason: str, at: float, body: bytes) -> None: ...


class BusObserver(Protocol):
    """Told when an operation on the bus failed, and whether the bus is degraded."""

    def live_bus_failure(self, operation: str) -> None: ...

    def live_bus_degraded(self, degraded: bool) -> None: ...


class Bus(Protocol):
    lease_step: float

    @property
    def degraded(self) -> bool: ...

    async def start(self, listener: BusListener) -> None: ...

    async def aclose(self) -> None: ...

    async def lead(self, digest: str) -> bool:
        """Whether this process polls the listing now (taking or renewing its lease)."""

    async def release(self, digest: str) -> None: ...

    async def publish_update(self, digest: str, reason: str, at: float, body: bytes) -> None:
        """Sends a refresh to the other replicas' subscribers, and keeps it (:meth:`keep`)."""

    async def keep(self, digest: str, at: float, body: bytes) -> None:
        """Keeps the listing's seats as its last refresh, for replicas that start following
        it (read with :meth:`last`)."""

    async def last(self, digest: str) -> tuple[float, bytes] | None:
        """The listing's last refresh made by any replica, if still kept."""

    async def publish_event(self, customer_id: str, contract_id: str | None) -> None: ...

    async def first_delivery(self, event_id: str) -> bool:
        """Whether this webhook id is new (and remember it)."""


class _SeenIds:
    """Webhook ids seen by this process, bounded by count and by age."""

    def __init__(self) -> None:
        self._ids: TLRUCache[str, float] = TLRUCache(
            MAX_LOCAL_WEBHOOK_IDS, ttu=lambda _key, value, now: value, timer=time.monotonic
        )

    def first(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = time.monotonic() + WEBHOOK_ID_SECONDS
        return True


class LocalBus:
    """One process alone: it polls every listing it follows."""

    lease_step = 3600.0  # no lease to renew: the poll interval alone wakes the poller

    def __init__(self) -> None:
        self._seen = _SeenIds()

    @property
    def degraded(self) -> bool:
        return False

    async def start(self, listener: BusListener) -> None:
        return None

    async def aclose(self) -> None:
        return None

    async def lead(self, digest: str) -> bool:
        return True

    async def release(self, digest: str) -> None:
        return None

    async def publish_update(self, digest: str, reason: str, at: float, body: bytes) -> None:
        return None

    async def keep(self, digest: str, at: float, body: bytes) -> None:
        return None

    async def last(self, digest: str) -> tuple[float, bytes] | None:
        return None

    async def publish_event(self, customer_id: str, contract_id: str | None) -> None:
        return None

    async def first_delivery(self, event_id: str) -> bool:
        return self._seen.first(event_id)


class RedisBus:
    """The replicas' bus over Redis (see the module's docstring). ``client`` is the shared
    connection (with its ``breaker`` and ``timeout``); ``subscriber`` a client of its own for
    the pub/sub connection, which waits for messages without a read timeout."""

    def __init__(
        self,
        client: Any,
        subscriber: Any,
        *,
        breaker: CircuitBreaker,
        timeout: float,
        lease_seconds: float = 10.0,
        keep_seconds: float = 60.0,
        observer: BusObserver | None = None,
    ) -> None:
        self._redis = client
        self._subscriber = subscriber
        self._breaker = breaker
        self._timeout = timeout
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self.lease_step = lease_seconds / 3
        self._keep_ms = max(1, int(keep_seconds * 1000))
        self._observer = observer
        self.origin = uuid.uuid4().hex.encode()
        self._seen = _SeenIds()
        self._listening: asyncio.Task[None] | None = None
        self._connected = False
        self._failing = False
        self._lead = client.register_script(_LEAD)
        self._release = client.register_script(_RELEASE)

    @property
    def degraded(self) -> bool:
        return not self._connected or self._failing or self._breaker.is_open

    async def start(self, listener: BusListener) -> None:
        self._listening = asyncio.ensure_future(self._listen(listener))

    async def aclose(self) -> None:
        if self._listening is not None:
            self._listening.cancel()
            with contextlib.suppress(BaseException):
                await self._listening
        with contextlib.suppress(Exception):
            await self._subscriber.aclose()

    async def lead(self, digest: str) -> bool:
        if not self._connected:
            return True  # no refresh of another replica would reach this one: poll alone
        held = await self._ask(
            "lease",
            lambda: self._lead(
                keys=[PREFIX + "lease:" + digest], args=[self.origin, self._lease_ms]
            ),
        )
        return held is None or held == 1

    async def release(self, digest: str) -> None:
        await self._ask(
            "release", lambda: self._release(keys=[PREFIX + "lease:" + digest], args=[self.origin])
        )

    async def publish_update(self, digest: str, reason: str, at: float, body: bytes) -> None:
        head = b"%s\n%s\n%s\n%r\n" % (digest.encode(), self.origin, reason.encode(), at)
        message = head + body
        await self._ask("publish", lambda: self._redis.publish(UPDATES, message))
        await self.keep(digest, at, body)

    async def keep(self, digest: str, at: float, body: bytes) -> None:
        last = repr(at).encode() + b"\n" + body
        await self._ask(
            "set", lambda: self._redis.set(PREFIX + "last:" + digest, last, px=self._keep_ms)
        )

    async def last(self, digest: str) -> tuple[float, bytes] | None:
        raw = await self._ask("get", lambda: self._redis.get(PREFIX + "last:" + digest))
        if not isinstance(raw, bytes):
            return None
        at, newline, body = raw.partition(b"\n")
        try:
            when = float(at)
        except ValueError:
            return None
        if not newline or not 0 < when <= time.time() + 60:
            return None
        return when, body

    async def publish_event(self, customer_id: str, contract_id: str | None) -> None:
        message = b"%s\n%s\n%s" % (self.origin, customer_id.encode(), (contract_id or "").encode())
        await self._ask("publish", lambda: self._redis.publish(EVENTS, message))

    async def first_delivery(self, event_id: str) -> bool:
        if not self._seen.first(event_id):
            return False

        async def claim() -> bool:
            # SET NX answers None when the id is there already: not the None of no answer.
            answer = await self._redis.set(
                WEBHOOK_IDS + event_id, b"1", nx=True, ex=WEBHOOK_ID_SECONDS
            )
            return answer is not None

        new = await self._ask("set", claim)
        # Redis unanswered: this process's memory decides alone.
        return new is None or bool(new)

    async def _ask(self, operation: str, call: Any) -> Any:
        try:
            answer = await self._breaker.ask(call, self._timeout)
        except RedisSkipped:
            return None
        except Exception as error:
            self._failed(operation, error)
            return None
        self._failing = False
        return answer

    def _failed(self, operation: str, error: BaseException) -> None:
        if not self._failing:
            logger.warning(
                "redis %s for live balances failed (%s)", operation, type(error).__name__
            )
        self._failing = True
        if self._observer is not None:
            self._observer.live_bus_failure(operation)

    async def _listen(self, listener: BusListener) -> None:
        """Follows both channels, reconnecting with a backoff while Redis is away."""
        backoff = 0.2
        while True:
            pubsub = self._subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(UPDATES, EVENTS)
                self._connected_now(True)
                backoff = 0.2
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None:
                        await self._dispatch(listener, message)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._connected_now(False)
                self._failed("subscribe", error)
            finally:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(pubsub.aclose())
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _connected_now(self, connected: bool) -> None:
        if connected != self._connected:
            self._connected = connected
            if self._observer is not None:
                self._observer.live_bus_degraded(self.degraded)

    async def _dispatch(self, listener: BusListener, message: dict[str, Any]) -> None:
        channel = message.get("channel")
        data = message.get("data")
        if not isinstance(data, bytes):
            return
        if channel == UPDATES.encode():
            parts = data.split(b"\n", 4)
            if len(parts) != 5 or parts[1] == self.origin:
                return
            digest, _, reason, at, body = parts
            try:
                when = float(at)
                name, kind = digest.decode("ascii"), reason.decode("ascii")
            except ValueError:
                return
            await listener.on_update(name, kind, when, body)
        elif channel == EVENTS.encode():
            parts = data.split(b"\n")
            if len(parts) != 3 or parts[0] == self.origin:
                return
            try:
                customer, contract = parts[1].decode("ascii"), parts[2].decode("ascii")
            except ValueError:
                return
            if _uuid_like(customer) and (not contract or _uuid_like(contract)):
                listener.on_event(customer, contract or None)


def _uuid_like(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return len(value) == 36
