"""Caller authentication: the JWT in ``Authorization: Bearer`` becomes a :class:`Caller`.

PyJWT does the cryptography; this module decides which keys and algorithms a token may use
and what its claims allow:

- keys come from the identity provider's JWKS (``GATEWAY_JWKS_URL``), fetched with httpx and
  kept by :class:`KeySet`: refetched when older than five minutes, or at once for a ``kid`` it
  does not know, but never more often than once per ``GATEWAY_JWKS_REFETCH_INTERVAL`` seconds,
  so a flood of made-up ``kid``\\ s costs the identity provider a few fetches a minute at most,
  and each fetch is bounded as a whole (``GATEWAY_JWKS_TIMEOUT`` seconds, 1 MB), so a slow or
  endless identity provider costs a request a few seconds at most, then a 503;
  or, in development, an HS256 secret (``GATEWAY_JWT_SECRET``);
- the algorithm is the key's own (the JWK's ``alg``, else what its type implies), never the
  token's choice: ``alg: none`` and an HS256 token "signed" with an RSA public key are refused;
- ``exp`` and ``sub`` are required, ``iss``/``aud`` checked when configured, ``exp``/``nbf``
  with ``GATEWAY_JWT_LEEWAY`` seconds of clock skew.

:class:`CallerAuthentication` is the ASGI layer in front of the GraphQL endpoint: a valid token
puts a :class:`Caller` in the request's state (:class:`~gateway.http.context.RequestContexts`
hands it to the schema), no token makes the caller anonymous (introspection still works; every
field that reads a customer answers ``UNAUTHENTICATED``), and an invalid one is refused with
HTTP 401 and an ``UNAUTHENTICATED`` GraphQL error before anything else runs. Tokens are never
logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import jwt
import orjson
from jwt import PyJWK
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import Settings
from gateway.http.responses import graphql_error, send_refusal
from gateway.http.state import request_state
from gateway.schema.access import ANONYMOUS, Caller

logger = logging.getLogger("gateway.http.auth")

_KEYS_MAX_AGE = 300.0  # seconds; a key the identity provider withdrew stops working by then
DEFAULT_FETCH_TIMEOUT = 5.0  # seconds for a whole JWKS fetch (GATEWAY_JWKS_TIMEOUT)
_MAX_JWKS_BYTES = 1_000_000


class AuthenticationFailed(Exception):
    """A token that does not authenticate its caller; the message is for the caller."""

    def __init__(self, message: str, *, status: int = 401, code: str = "UNAUTHENTICATED") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class KeySet:
    """The identity provider's public signing keys by ``kid``, cached and rate-limited.

    One fetch at a time, shared: a request that needs the keys while a fetch runs waits for
    that fetch (never for a second one after it), and a request that gives up (its client
    left) does not cancel it for the others. A fetch is bounded as a whole by
    ``fetch_timeout`` seconds and ``_MAX_JWKS_BYTES``, read as it streams in: an identity
    provider that answers a byte at a time, or endlessly, costs a request at most that long.
    """

    def __init__(
        self,
        url: str,
        *,
        refetch_interval: float,
        fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
        max_age: float = _KEYS_MAX_AGE,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self.refetch_interval = refetch_interval
        self.fetch_timeout = fetch_timeout
        self.max_age = max_age
        self.clock = clock
        self.fetches = 0  # fetch attempts (tests and operators read it)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._keys: dict[str, PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._fetching: asyncio.Task[None] | None = None  # the fetch under way

    async def key(self, kid: str) -> PyJWK:
        """The key named ``kid``; fetches the set when it lacks ``kid``. A known key of a stale
        set is used at once while one background fetch refreshes the set, so that no request
        waits on the identity provider for a key the gateway has."""
        if kid in self._keys:
            if self._stale() and self._fetching is None and self._may_fetch():
                self._start_fetch()
            return self._keys[kid]
        if self._fetching is None and self._may_fetch():
            self._start_fetch()
        if self._fetching is not None:
            # Shielded: this request leaving (cancelled) leaves the fetch to the others.
            await asyncio.shield(self._fetching)
        key = self._keys.get(kid)
        if key is not None:
            return key
        if self._fetched_at is None:
            raise AuthenticationFailed(
                "The identity provider's keys are unavailable; try again shortly.",
                status=503,
                code="AUTHENTICATION_UNAVAILABLE",
            )
        raise AuthenticationFailed("The token was signed with a key this gateway does not know.")

    def _stale(self) -> bool:
        return self._fetched_at is None or self.clock() - self._fetched_at > self.max_age

    def _may_fetch(self) -> bool:
        return self._attempted_at is None or self.clock() - self._attempted_at >= (
            self.refetch_interval
        )

    def _start_fetch(self) -> None:
        self._attempted_at = self.clock()
        self.fetches += 1
        self._fetching = asyncio.ensure_future(self._fetch())

    async def _fetch(self) -> None:
        """Replaces the keys with the identity provider's; on failure (logged) keeps the keys
        in hand until the provider answers again. Never raises."""
        if self._http is None:
            self._http = httpx.AsyncClient(
                transport=self._transport, timeout=self.fetch_timeout, follow_redirects=False
            )
        try:
            async with asyncio.timeout(self.fetch_timeout):
                document = await self._download()
            keys = _signing_keys(orjson.loads(document))
        except Exception as error:
            # Whatever the failure (httpx's errors, the deadline, bad or too deeply nested JSON,
            # an unusable URL), the fetch failed: the requests waiting on it get a 503, never a
            # 500. The URL stays out of the log, as upstream URLs do; the kind is enough.
            logger.warning("could not fetch the JWKS: %s", type(error).__name__)
        else:
            self._keys = keys
            self._fetched_at = self.clock()
        finally:
            self._fetching = None

    async def _download(self) -> bytes:
        """The key set's bytes, read as they come and abandoned past ``_MAX_JWKS_BYTES``.
        Asked for uncompressed, so that the cap holds on what is read, not on what a
        decompressor makes of it."""
        assert self._http is not None
        headers = {"accept": "application/json", "accept-encoding": "identity"}
        async with self._http.stream("GET", self.url, headers=headers) as response:
            response.raise_for_status()
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise ValueError("the key set came compressed")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > _MAX_JWKS_BYTES:
                raise ValueError("the key set is larger than 1 MB")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > _MAX_JWKS_BYTES:
                    raise ValueError("the key set is larger than 1 MB")
                chunks.append(chunk)
        return b"".join(chunks)

    async def aclose(self) -> None:
        if self._fetching is not None:
            self._fetching.cancel()
        if self._http is not None:
            await self._http.aclose()


# The algorithms a published key may sign with: asymmetric ones only ("none" signs nothing,
# and an HMAC secret has no place in a published key set).
_PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES256K", "ES384", "ES512"}
    | {"EdDSA"}
)


def _signing_keys(document: object) -> dict[str, PyJWK]:
    """The public signing keys of a JWKS document by ``kid``. Symmetric (``oct``) keys have no
    place in a published key set and encryption keys sign nothing: both are ignored, as is an
    entry whose ``alg`` is not a public-key signature algorithm (``none``, a list...) or that
    PyJWT cannot make a key of."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: dict[str, PyJWK] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str):
            continue
        if entry.get("kty") == "oct" or entry.get("use", "sig") != "sig":
            continue
        algorithm = entry.get("alg")
        if algorithm is not None and (
            not isinstance(algorithm, str) or algorithm not in _PUBLIC_KEY_ALGORITHMS
        ):
            continue
        try:
            keys[entry["kid"]] = PyJWK.from_dict(entry)
        except Exception:  # noqa: S112 - one bad entry of a foreign document, however it fails
            continue  # (PyJWTError, TypeError, NotImplementedError...); other keys may serve
    return keys


_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "The token has expired."),
    (jwt.ImmatureSignatureError, "The token is not valid yet."),
    (jwt.InvalidIssuerError, "The token was issued by another issuer."),
    (jwt.InvalidAudienceError, "The token is meant for another audience."),
    (jwt.InvalidAlgorithmError, "The token's algorithm is not allowed for its key."),
    (jwt.InvalidSignatureError, "The token's signature does not verify."),
    (jwt.MissingRequiredClaimError, "The token lacks a required claim (exp, sub, iss, aud)."),
    (jwt.DecodeError, "The bearer token is not a readable JWT."),
]


class CallerAuthenticator:
    """Verifies a JWT and reads what its claims allow."""

    def __init__(
        self,
        *,
        keys: KeySet | None = None,
        secret: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway: float,
        customer_claim: str,
        admin_scope: str | None = None,
    ) -> None:
        if (keys is None) == (secret is None):
            raise ValueError("give a key set or a secret")
        self.keys = keys
        self.secret = secret
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.customer_claim = customer_claim
        self.admin_scope = admin_scope

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> CallerAuthenticator | None:
        """The authenticator the settings ask for; ``None`` when callers are not authenticated.
        ``transport`` carries the JWKS fetches (tests may record them)."""
        if not settings.authenticates_callers:
            return None
        keys = (
            KeySet(
                settings.jwks_url,
                refetch_interval=settings.jwks_refetch_interval,
                fetch_timeout=settings.jwks_timeout,
                transport=transport,
            )
            if settings.jwks_url
            else None
        )
        return cls(
            keys=keys,
            secret=settings.jwt_secret.get_secret_value() if settings.jwt_secret else None,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            leeway=settings.jwt_leeway,
            customer_claim=settings.customer_claim,
            admin_scope=settings.admin_scope,
        )

    async def authenticate(self, token: str) -> Caller:
        """The caller a token names; :class:`AuthenticationFailed` when it does not verify."""
        try:
            header = jwt.get_unverified_header(token)
            key: Any
            if self.keys is not None:
                kid = header.get("kid")
                if not isinstance(kid, str) or not kid:
                    raise AuthenticationFailed("The token names no signing key ('kid').")
                jwk = await self.keys.key(kid)
                key, algorithms = jwk.key, [jwk.algorithm_name]
            else:
                key, algorithms = self.secret, ["HS256"]
            required = ["exp", "sub"]
            required += ["iss"] if self.issuer else []
            required += ["aud"] if self.audience else []
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway,
                options={"require": required},
            )
        except jwt.PyJWTError as error:
            reason = next((text for kind, text in _REASONS if isinstance(error, kind)), None)
            raise AuthenticationFailed(reason or "The bearer token is not valid.") from None
        return self.caller(claims)

    def caller(self, claims: Mapping[str, Any]) -> Caller:
        subject = claims.get("sub")
        if not isinstance(subject, str):
            raise AuthenticationFailed("The token's 'sub' claim must be a string.")
        granted = claims.get(self.customer_claim)
        if isinstance(granted, str):
            granted = [granted]
        if granted is None:
            granted = []
        if not isinstance(granted, list) or not all(isinstance(item, str) for item in granted):
            raise AuthenticationFailed(
                f"The token's {self.customer_claim!r} claim must be a string or a list of strings."
            )
        return Caller(
            subject=subject,
            customer_ids=frozenset(item.strip().lower() for item in granted),
            all_customers=self.admin_scope is not None and self.admin_scope in _scopes(claims),
            authenticated=True,
            # `exp` is required and checked by decode(); a live subscription ends at it (plus
            # the leeway decode() allowed it).
            expires_at=_expiry(claims.get("exp"), self.leeway),
        )

    async def aclose(self) -> None:
        if self.keys is not None:
            await self.keys.aclose()


def _scopes(claims: Mapping[str, Any]) -> set[str]:
    """OAuth scopes: ``scope`` (RFC 8693, space-separated) or ``scp`` (a list, or a string)."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return found


class CallerAuthentication:
    """The ASGI layer that authenticates the callers of the GraphQL endpoint (see above)."""

    def __init__(self, app: ASGIApp, authenticator: CallerAuthenticator, *, path: str) -> None:
        self.app = app
        self.authenticator = authenticator
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        header = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        if header is None:
            request_state(scope).caller = ANONYMOUS
            await self.app(scope, receive, send)
            return
        scheme, _, token = header.decode("latin-1").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AuthenticationFailed("Send 'Authorization: Bearer <JWT>'.")
            caller = await self.authenticator.authenticate(token.strip())
        except AuthenticationFailed as failure:
            error = graphql_error(failure.message, failure.code)
            challenge = [(b"www-authenticate", b'Bearer error="invalid_token"')]
            # In the negotiated media type: a client that asked for graphql-response+json
            # reads only that as GraphQL errors (Apollo Client 4's error link matches the code).
            await send_refusal(
                scope,
                send,
                failure.status,
                error,
                headers=challenge if failure.status == 401 else [],
            )
            return
        state = request_state(scope)
        state.caller = caller
        state.access["subject"] = caller.subject
        await self.app(scope, receive, send)


def _expiry(exp: object, leeway: float) -> float | None:
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    return float(exp) + leeway
