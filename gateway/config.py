"""Settings, read from the environment by ``cli.py`` only; everything else receives a value.

Every default lives here: the settings build the values the rest of the gateway is given
(:meth:`Settings.query_limits`, :meth:`Settings.retry_policy`, :meth:`Settings.stores`, the
loaders' budget).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.live import Bus, LiveSettings, LocalBus, RedisBus
from gateway.live.bus import BusObserver
from gateway.rates import CallerRates, InProcessRates, Rate, RateObserver, RedisRates
from gateway.schema.limits import QueryLimits
from gateway.stores import (
    FORMAT_VERSION,
    CircuitBreaker,
    InProcessStore,
    KeyValueStore,
    RedisStore,
    StoreObserver,
)
from gateway.upstream import budget
from gateway.upstream.client import RetryPolicy


class Stores(NamedTuple):
    """Where the APQ documents and the page cache's pages are kept."""

    apq: KeyValueStore
    pages: KeyValueStore


class RedisConnection(NamedTuple):
    """The one Redis client of a process and its circuit breaker, shared by the stores and the
    callers' rate counters."""

    client: Any
    breaker: CircuitBreaker


class Settings(BaseSettings):
    """The gateway's configuration (see the README's configuration table)."""

    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", extra="forbid", frozen=True, populate_by_name=True
    )

    metronome_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("METRONOME_BASE_URL"),
        description="The billing API; unset means the embedded stand-in.",
    )
    metronome_bearer_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("METRONOME_BEARER_TOKEN"),
        description="Token for every upstream call; unset means forward the caller's.",
    )
    upstream_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds per upstream attempt."
    )
    upstream_deadline: float = Field(
        default=25.0,
        gt=0,
        le=300,
        description="Seconds for a whole upstream call, retries included.",
    )
    upstream_max_retries: int = Field(default=2, ge=0, le=10)
    upstream_concurrency: int = Field(
        default=32, ge=1, le=1024, description="Upstream calls in flight per process."
    )
    details_concurrency: int = Field(
        default=8,
        ge=1,
        le=1024,
        description="Detail calls (commit details, credit types) in flight per process, apart.",
    )
    details_deadline: float = Field(
        default=3.0,
        gt=0,
        le=300,
        description="Seconds for a whole detail call, retries included.",
    )
    upstream_rate: str | None = Field(
        default=None,
        description="Calls all replicas together make to the billing API per credential, "
        "e.g. 50/second; unset: no budget.",
    )
    upstream_rate_wait: float = Field(
        default=2.0,
        ge=0,
        le=60,
        description="Seconds a call over the upstream budget waits for its turn (within its "
        "deadline) before UPSTREAM_RATE_LIMITED.",
    )
    max_body_bytes: int = Field(default=1_000_000, ge=1_000)
    request_header_timeout: float = Field(
        default=5.0, gt=0, le=300, description="Seconds a client has to send a request's headers."
    )
    request_body_timeout: float = Field(
        default=10.0, gt=0, le=300, description="Seconds a client has to send a request's body."
    )
    max_header_bytes: int = Field(
        default=8192,
        ge=1024,
        le=1_048_576,
        description="Bytes of one request header line (name and value); more gets HTTP 431.",
    )
    max_headers_bytes: int = Field(
        default=32768,
        ge=4096,
        le=4_194_304,
        description="Bytes of a request's whole head (request line and headers); more: 431.",
    )
    max_query_bytes: int = Field(default=20_000, ge=100)
    max_tokens: int = Field(default=2_000, ge=10)
    max_depth: int = Field(default=12, ge=2)
    max_aliases: int = Field(default=30, ge=0)
    max_upstream_calls: int = Field(
        default=20, ge=1, description="Upstream calls one operation may cause."
    )
    credit_types_ttl: float = Field(
        default=300.0,
        ge=0,
        le=86_400,
        description="Seconds a credential's credit type listing is kept; 0 lists every request.",
    )
    max_selections: int = Field(
        default=200, ge=10, description="Selections (fields, fragments) one document may hold."
    )
    max_seat_ids_per_operation: int = Field(
        default=1_000, ge=1, description="Seat ids one operation may send upstream in total."
    )
    max_cost: int = Field(
        default=200_000,
        ge=100,
        description="Estimated work (field and object completions) one request may cause.",
    )
    max_response_bytes: int = Field(
        default=8_000_000, ge=10_000, description="Bytes of one GraphQL answer, before compression."
    )
    introspection: bool = Field(default=True, description="Answer introspection queries.")
    fast_path: bool = Field(
        default=True,
        description="Complete pure-data objects by projection; false: graphql-core field by field.",
    )
    graphiql: bool = Field(default=True, description="Serve GraphiQL on GET /graphql.")
    mcp: bool = Field(default=True, description="Serve the Model Context Protocol on /mcp.")
    mcp_execute: bool = Field(
        default=False, description="Offer the MCP tool graphql_query (any query document)."
    )
    compression: bool = Field(
        default=True, description="Compress answers for clients that accept zstd, br or gzip."
    )
    compression_min_bytes: int = Field(
        default=1024, ge=0, description="Answers shorter than this go out uncompressed."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Browser origins allowed to call the API."
    )
    federation_auth_directives: bool = Field(
        default=False,
        description="Mark what needs a caller with @authenticated in the served SDL.",
    )
    jwks_url: str | None = Field(
        default=None, description="The identity provider's JWKS: callers authenticate by JWT."
    )
    jwt_secret: SecretStr | None = Field(
        default=None, description="HS256 secret for caller JWTs (development only)."
    )
    jwt_issuer: str | None = Field(default=None, description="The `iss` caller JWTs must carry.")
    jwt_audience: str | None = Field(default=None, description="The `aud` caller JWTs must carry.")
    jwt_leeway: float = Field(
        default=30.0, ge=0, le=300, description="Clock skew allowed for `exp` and `nbf`."
    )
    jwks_refetch_interval: float = Field(
        default=10.0,
        gt=0,
        le=3600,
        description="Least seconds between two JWKS fetches caused by an unknown `kid`.",
    )
    jwks_timeout: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Seconds for a whole JWKS fetch, however the identity provider trickles.",
    )
    customer_claim: str = Field(
        default="metronome_customer_ids",
        min_length=1,
        description="The JWT claim naming the customers a caller may read.",
    )
    admin_scope: str | None = Field(
        default=None, description="A scope value that lets a caller read every customer."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token /metrics asks for; with JWT callers, /metrics needs one.",
    )
    allow_anonymous: bool = Field(
        default=False,
        description="Serve a configured billing token without caller authentication.",
    )
    trusted_documents: Path | None = Field(
        default=None,
        description="A persisted document manifest (Apollo's or GraphQL Code Generator's).",
    )
    trusted_documents_only: bool = Field(
        default=False,
        description="Refuse every document that is not in GATEWAY_TRUSTED_DOCUMENTS.",
    )
    persisted_queries_max_entries: int = Field(
        default=1_000, ge=1, description="APQ documents kept in process."
    )
    persisted_queries_max_bytes: int = Field(
        default=5_000_000, ge=1_000, description="Bytes of APQ documents kept in process."
    )
    persisted_queries_ttl: float = Field(
        default=86_400,
        gt=0,
        le=30 * 86_400,
        description="Seconds a registered APQ document is kept (in Redis and in process).",
    )
    persisted_queries_registrations_per_minute: int = Field(
        default=60,
        ge=1,
        description="APQ documents one caller (JWT subject, else client address) may register "
        "per minute.",
    )
    cache_ttl: float = Field(
        default=0,
        ge=0,
        le=86_400,
        description="Seconds an upstream page is kept per credential; 0 switches the cache off.",
    )
    cache_max_bytes: int = Field(
        default=64_000_000, ge=10_000, description="Bytes of upstream pages kept in process."
    )
    cache_max_entries: int = Field(
        default=10_000, ge=1, description="Upstream pages kept in process."
    )
    max_batch: int = Field(
        default=10, ge=1, le=100, description="Operations one batched request may hold."
    )
    redis_url: SecretStr | None = Field(
        default=None,
        description="Redis for the APQ store and the page cache, shared by every replica.",
    )
    redis_timeout: float = Field(
        default=0.25,
        gt=0,
        le=5,
        description="Seconds a Redis operation may take before it is skipped (a miss).",
    )
    redis_breaker_failures: int = Field(
        default=3,
        ge=1,
        le=1_000,
        description="Redis operations unanswered in a row after which Redis is skipped.",
    )
    redis_breaker_seconds: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="Seconds Redis is skipped before one operation probes it again.",
    )
    metronome_webhook_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("METRONOME_WEBHOOK_SECRET"),
        description="The webhook destination's secret; set: POST /webhooks/metronome is on.",
    )
    live_poll_interval: float = Field(
        default=30.0,
        ge=0.2,
        le=3_600,
        description="Seconds between re-reads of a live listing (jittered by 10 %).",
    )
    live_max_seats: int = Field(
        default=500, ge=1, le=10_000, description="Seats one live subscription may follow."
    )
    live_max_subscriptions: int = Field(
        default=1_000, ge=0, le=1_000_000, description="Live subscriptions per process."
    )
    live_max_per_caller: int = Field(
        default=20, ge=1, le=100_000, description="Live subscriptions per caller, per process."
    )
    live_failure_grace: float = Field(
        default=120.0,
        ge=0,
        le=86_400,
        description="Seconds a live listing's refreshes may fail before subscribers are told.",
    )
    live_lease_seconds: float = Field(
        default=10.0,
        ge=0.5,
        le=600,
        description="With Redis: seconds a replica's lease on a listing's polling lasts unrenewed.",
    )
    demo_live: bool = Field(
        default=True,
        description="On the embedded stand-in: balances move and signed webhooks arrive.",
    )
    demo_live_seconds: float = Field(
        default=5.0, ge=0.1, le=3_600, description="Seconds between the stand-in's moves."
    )
    caller_rate: str | None = Field(
        default=None,
        description="Operations one caller may send, e.g. 600/minute; unset: no limit.",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Proxies (addresses or CIDRs) whose X-Forwarded-For names the client.",
    )
    log_level: str = Field(default="info")
    log_format: Literal["json", "text"] = Field(default="json")
    shutdown_timeout: int = Field(
        default=20, ge=0, description="Seconds in-flight requests get to finish on SIGTERM."
    )

    @field_validator("caller_rate")
    @classmethod
    def _a_rate(cls, rate: str | None) -> str | None:
        if rate is None:
            return None
        try:
            return str(Rate.parse(rate))
        except ValueError as error:
            raise ValueError(f"GATEWAY_CALLER_RATE: {error}") from None

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [proxy.strip() for proxy in value.split(",") if proxy.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, proxies: list[str]) -> list[str]:
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(
                    f"GATEWAY_TRUSTED_PROXIES: {proxy!r} is not an address or a CIDR "
                    "(e.g. 10.0.0.0/8,192.168.1.7)"
                ) from None
        return proxies

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _named_origins_only(cls, origins: list[str]) -> list[str]:
        # Listed origins may send credentials: "*" would let every web page call the API with
        # its visitors' credentials (Starlette then echoes any Origin back), and "null" is
        # what sandboxed frames and local files send.
        for origin in origins:
            if origin in ("*", "null"):
                raise ValueError(
                    f"GATEWAY_CORS_ORIGINS may not contain {origin!r}: listed origins may send "
                    "credentials, so name each one, e.g. https://app.example.com"
                )
        return origins

    @field_validator("upstream_rate")
    @classmethod
    def _upstream_rate_readable(cls, rate: str | None) -> str | None:
        if rate is not None:
            try:
                Rate.parse(rate)
            except ValueError as error:
                raise ValueError(f"GATEWAY_UPSTREAM_RATE: {error}") from None
        return rate

    @field_validator("admin_scope")
    @classmethod
    def _admin_scope_named(cls, scope: str | None) -> str | None:
        # An empty scope would match a token whose `scp` holds "" (or a `scope` of blanks).
        if scope is not None and not scope.strip():
            raise ValueError(
                "GATEWAY_ADMIN_SCOPE may not be empty or blank: a token with an empty scope "
                "would read every customer; name the scope (e.g. billing:read-all) or unset it"
            )
        return scope

    @field_validator("metrics_token")
    @classmethod
    def _metrics_token_strong(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and len(token.get_secret_value().strip()) < 16:
            raise ValueError(
                "GATEWAY_METRICS_TOKEN must be at least 16 characters (not blanks); unset it "
                "to serve /metrics without one (never with JWT callers)"
            )
        return token

    @model_validator(mode="after")
    def _callers_are_authenticated(self) -> Settings:
        """Refuse the configurations that would give away the billing token's reach."""
        if self.trusted_documents_only and self.trusted_documents is None:
            raise ValueError(
                "GATEWAY_TRUSTED_DOCUMENTS_ONLY needs GATEWAY_TRUSTED_DOCUMENTS (the manifest "
                "naming the documents allowed)"
            )
        if self.trusted_documents_only and self.mcp_execute:
            raise ValueError(
                "GATEWAY_MCP_EXECUTE offers agents any query document, which "
                "GATEWAY_TRUSTED_DOCUMENTS_ONLY forbids: set one of them, not both"
            )
        if self.jwks_url and self.jwt_secret:
            raise ValueError("set GATEWAY_JWKS_URL or GATEWAY_JWT_SECRET, not both")
        if self.jwks_url and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError(
                "GATEWAY_JWKS_URL needs GATEWAY_JWT_ISSUER and GATEWAY_JWT_AUDIENCE: an identity "
                "provider's keys sign tokens for every application it serves"
            )
        secret = self.jwt_secret.get_secret_value() if self.jwt_secret else None
        if secret is not None and len(secret.encode()) < 32:
            raise ValueError("GATEWAY_JWT_SECRET must be at least 32 bytes (HS256)")
        real_upstream = not self.embedded
        if self.authenticates_callers and real_upstream and not self.metronome_bearer_token:
            raise ValueError(
                "caller authentication (GATEWAY_JWKS_URL or GATEWAY_JWT_SECRET) needs "
                "METRONOME_BEARER_TOKEN: the caller's Authorization header carries its JWT, "
                "so there is no billing token to forward"
            )
        if (
            real_upstream
            and self.metronome_bearer_token
            and not self.authenticates_callers
            and not self.allow_anonymous
        ):
            raise ValueError(
                "METRONOME_BEARER_TOKEN reads every customer, and no caller authentication is "
                "configured: set GATEWAY_JWKS_URL (or GATEWAY_JWT_SECRET in development), or "
                "GATEWAY_ALLOW_ANONYMOUS=true if the network in front of the gateway "
                "authorizes callers"
            )
        return self

    @property
    def authenticates_callers(self) -> bool:
        return bool(self.jwks_url or self.jwt_secret)

    def query_limits(self) -> QueryLimits:
        """The bounds on what one operation may ask (gateway.schema.limits)."""
        return QueryLimits(
            max_query_bytes=self.max_query_bytes,
            max_tokens=self.max_tokens,
            max_depth=self.max_depth,
            max_aliases=self.max_aliases,
            max_upstream_calls=self.max_upstream_calls,
            max_selections=self.max_selections,
            max_seat_ids=self.max_seat_ids_per_operation,
            max_cost=self.max_cost,
            introspection=self.introspection,
        )

    def retry_policy(self) -> RetryPolicy:
        """How upstream calls are bounded and retried (gateway.upstream.client)."""
        return RetryPolicy(
            max_retries=self.upstream_max_retries,
            attempt_timeout=self.upstream_timeout,
            deadline=self.upstream_deadline,
            max_concurrency=self.upstream_concurrency,
            details_deadline=self.details_deadline,
            details_concurrency=self.details_concurrency,
        )

    def live_settings(self) -> LiveSettings:
        return LiveSettings(
            poll_interval=self.live_poll_interval,
            max_seats=self.live_max_seats,
            max_subscriptions=self.live_max_subscriptions,
            max_per_caller=self.live_max_per_caller,
            failure_grace=self.live_failure_grace,
            max_upstream_calls=self.max_upstream_calls,
        )

    def live_bus(self, redis: RedisConnection | None, observer: BusObserver) -> Bus:
        """Through Redis when it is configured (a pub/sub connection of its own, which waits
        for messages without the operations' timeout), else this process alone."""
        if redis is None or self.redis_url is None:
            return LocalBus()
        from redis.asyncio import Redis

        subscriber = Redis.from_url(
            self.redis_url.get_secret_value(),
            socket_connect_timeout=self.redis_timeout,
            health_check_interval=15,
        )
        return RedisBus(
            redis.client,
            subscriber,
            breaker=redis.breaker,
            timeout=self.redis_timeout,
            lease_seconds=self.live_lease_seconds,
            keep_seconds=max(60.0, 2 * self.live_poll_interval),
            observer=observer,
        )

    def redis(self, observer: StoreObserver) -> RedisConnection | None:
        """The Redis client and its breaker, when GATEWAY_REDIS_URL is set."""
        if self.redis_url is None:
            return None
        from redis.asyncio import Redis

        client = Redis.from_url(
            self.redis_url.get_secret_value(),
            socket_timeout=self.redis_timeout,
            socket_connect_timeout=self.redis_timeout,
            retry_on_timeout=False,
        )
        # One Redis, one breaker: every user of it skips it once it stops answering.
        breaker = CircuitBreaker(
            "redis",
            threshold=self.redis_breaker_failures,
            cooldown=self.redis_breaker_seconds,
            observer=observer,
        )
        return RedisConnection(client, breaker)

    def upstream_budget(
        self,
        observer: budget.BudgetObserver,
        store_observer: StoreObserver,
        redis: RedisConnection | None,
    ) -> budget.UpstreamBudget | None:
        """The upstream budget per credential (GATEWAY_UPSTREAM_RATE; ``None`` when unset): in
        Redis when there is one (shared by every replica; in process while it fails), else in
        process."""
        if self.upstream_rate is None:
            return None
        return budget.UpstreamBudget(
            Rate.parse(self.upstream_rate),
            wait=self.upstream_rate_wait,
            observer=observer,
            redis=redis.client if redis is not None else None,
            timeout=self.redis_timeout,
            breaker=redis.breaker if redis is not None else None,
            store_observer=store_observer,
        )

    def caller_rates(
        self, observer: RateObserver, redis: RedisConnection | None
    ) -> CallerRates | None:
        """Each caller's rate counters (GATEWAY_CALLER_RATE): in Redis when there is one (in
        process while it fails), else in process; ``None`` when callers are not limited."""
        if self.caller_rate is None:
            return None
        rate = Rate.parse(self.caller_rate)
        in_process = InProcessRates(rate, observer=observer)
        if redis is None:
            return in_process
        return RedisRates(
            rate,
            redis.client,
            timeout=self.redis_timeout,
            breaker=redis.breaker,
            fallback=in_process,
            observer=observer,
        )

    def stores(self, observer: StoreObserver, redis: RedisConnection | None = None) -> Stores:
        """The APQ store and the page cache's store: in Redis when GATEWAY_REDIS_URL is set
        (shared by every replica), else in this process (bounded)."""
        if redis is None:
            redis = self.redis(observer)
        if redis is not None:
            client = redis.client
            common: dict[str, Any] = {
                "timeout": self.redis_timeout,
                "max_value_bytes": self.max_body_bytes * 4,
                "observer": observer,
                "breaker": redis.breaker,
            }
            return Stores(
                RedisStore("redis-apq", client, prefix=f"gateway:{FORMAT_VERSION}:apq:", **common),
                RedisStore(
                    "redis-pages", client, prefix=f"gateway:{FORMAT_VERSION}:page:", **common
                ),
            )
        return Stores(
            InProcessStore(
                "memory-apq",
                max_entries=self.persisted_queries_max_entries,
                max_bytes=self.persisted_queries_max_bytes,
                observer=observer,
            ),
            InProcessStore(
                "memory-pages",
                max_entries=self.cache_max_entries,
                max_bytes=self.cache_max_bytes,
                observer=observer,
            ),
        )

    @property
    def embedded(self) -> bool:
        return not self.metronome_base_url
