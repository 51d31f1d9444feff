"""Who may see which customer: caller JWTs verified against a real JWKS served over HTTP, and
the per-customer check refusing, field by field and before any upstream call, what the
token's claim does not grant."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from jwt.utils import base64url_encode
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.config import Settings
from gateway.http.auth import AuthenticationFailed, KeySet
from gateway.schema.ids import global_id
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    DEMO_TOKEN,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
)
from tests.support import Gateway, raw_http_server, refused_start, running_gateway, serve

ISSUER = "https://idp.example.com/"
AUDIENCE = "seat-balance-gateway"
ADMIN_SCOPE = "billing:read-all"
MISSING_CUSTOMER_ID = "0f0f0f0f-0000-4000-8000-000000000000"

SEATS = """query Seats($customerId: ID!, $contractId: ID!) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: 2) {
    nodes { id seatId balances { balance } }
  }
}"""
DEMO = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
OTHER = {"customerId": OTHER_CUSTOMER_ID, "contractId": OTHER_CONTRACT_ID}


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwk(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": "RS256", "use": "sig"}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class KeyServer:
    """The identity provider's JWKS endpoint: publishes ``keys``, counts the fetches."""

    keys: list[SigningKey]
    url: str = ""
    fetches: int = 0
    odd_entries: list[dict[str, Any]] = field(default_factory=list)  # published first

    def app(self) -> Starlette:
        async def jwks(request: Request) -> JSONResponse:
            self.fetches += 1
            return JSONResponse({"keys": [*self.odd_entries, *(key.jwk() for key in self.keys)]})

        return Starlette(routes=[Route("/jwks.json", jwks)])


KEY = SigningKey("key-1")


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-42",
        "iat": now,
        "exp": now + 300,
        "metronome_customer_ids": [DEMO_CUSTOMER_ID],
    }
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def token(key: SigningKey = KEY, *, kid: str | None = None, **overrides: Any) -> str:
    return jwt.encode(
        claims(**overrides), key.private, algorithm="RS256", headers={"kid": kid or key.kid}
    )


def hs256_signed_with_the_public_key() -> str:
    """The classic confusion attack, forged by hand (PyJWT rightly refuses to make it): HMAC
    with the published RSA public key as the secret, under the RSA key's kid."""
    header = {"alg": "HS256", "typ": "JWT", "kid": KEY.kid}
    signing_input = b".".join(
        base64url_encode(json.dumps(part).encode()) for part in (header, claims())
    )
    signature = hmac.new(KEY.public_pem(), signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64url_encode(signature)).decode()


def auth_settings(standin_url: str, jwks_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "metronome_base_url": standin_url,
        "metronome_bearer_token": DEMO_TOKEN,
        "jwks_url": jwks_url,
        "jwt_issuer": ISSUER,
        "jwt_audience": AUDIENCE,
        "admin_scope": ADMIN_SCOPE,
        "jwks_refetch_interval": 60,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer(keys=[KEY])
    with serve(server.app()) as url:
        server.url = f"{url}/jwks.json"
        yield server


@pytest.fixture
def gateway(standin_url: str, key_server: KeyServer) -> Iterator[Gateway]:
    """A gateway with a billing token of its own whose callers authenticate by JWT."""
    with running_gateway(auth_settings(standin_url, key_server.url)) as gateway:
        yield gateway


def refusal(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    return error  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "granted", [[DEMO_CUSTOMER_ID], DEMO_CUSTOMER_ID, [DEMO_CUSTOMER_ID.upper()]]
)
def test_a_valid_token_reads_the_customers_its_claim_names(gateway: Gateway, granted: Any) -> None:
    """A verified token whose claim (a list or one string) names the customer reads it, and
    the upstream call carries the configured billing token, never the caller's JWT."""
    data = gateway.query(SEATS, DEMO, token=token(metronome_customer_ids=granted))
    assert len(data["seatBalances"]["nodes"]) == 2
    assert [call.authorization for call in gateway.calls] == [f"Bearer {DEMO_TOKEN}"]


@pytest.mark.parametrize(
    ("bad_token", "reason"),
    [
        (lambda: token(exp=int(time.time()) - 120), "expired"),
        (lambda: token(nbf=int(time.time()) + 600), "not valid yet"),
        (lambda: token(iss="https://evil.example.com/"), "another issuer"),
        (lambda: token(aud="another-app"), "another audience"),
        (lambda: token(exp=None), "required claim"),
        # Signed by a key the provider never published, under a published kid.
        (lambda: token(SigningKey("key-1")), "signature"),
        (lambda: jwt.encode(claims(), None, algorithm="none", headers={"kid": KEY.kid}), "alg"),
        # HS/RS confusion: HMAC "signed" with the published RSA public key as the secret.
        (lambda: hs256_signed_with_the_public_key(), "algorithm"),
        (lambda: "not-a-jwt", "not a readable JWT"),
    ],
    ids=[
        "expired",
        "not-yet-valid",
        "wrong-issuer",
        "wrong-audience",
        "no-exp",
        "wrong-signature",
        "alg-none",
        "hs256-with-public-key",
        "garbage",
    ],
)
def test_an_invalid_token_is_refused_before_any_upstream_call(
    gateway: Gateway, bad_token: Any, reason: str
) -> None:
    """Expired, early, foreign, unsigned or forged tokens: HTTP 401 UNAUTHENTICATED saying
    why, no upstream call, and the token in neither the answer nor the access log."""
    value = bad_token()
    response = gateway.post(SEATS, DEMO, token=value)
    error = refusal(response)
    assert reason.lower() in error["message"].lower()
    assert value not in response.text
    assert gateway.calls == []


def test_a_token_from_an_unknown_key_works_once_the_provider_publishes_it(
    standin_url: str, key_server: KeyServer
) -> None:
    """Key rotation: a token whose kid the key set lacks is refused until the provider
    publishes the key; then the next token after the refetch interval triggers one fetch."""
    new_key = SigningKey("key-2")
    settings = auth_settings(standin_url, key_server.url, jwks_refetch_interval=0.5)
    with running_gateway(settings) as gateway:
        gateway.query(SEATS, DEMO, token=token())
        assert key_server.fetches == 1
        refused = refusal(gateway.post(SEATS, DEMO, token=token(new_key)))
        assert "key this gateway does not know" in refused["message"]
        key_server.keys = [KEY, new_key]  # the provider rotates
        time.sleep(0.6)
        gateway.query(SEATS, DEMO, token=token(new_key))
        fetches = key_server.fetches
        gateway.query(SEATS, DEMO, token=token(new_key))
        gateway.query(SEATS, DEMO, token=token())
    assert fetches <= 3
    assert key_server.fetches == fetches  # known keys cost no fetch


def test_a_flood_of_unknown_kids_cannot_make_the_gateway_refetch(
    gateway: Gateway, key_server: KeyServer
) -> None:
    """Fifty tokens with made-up kids, concurrently, after one fetch: no more fetch at all
    within the refetch interval, and every one refused."""
    gateway.query(SEATS, DEMO, token=token())
    forged = [token(kid=f"made-up-{n}") for n in range(50)]

    async def flood() -> list[int]:
        async with httpx.AsyncClient(timeout=30) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"{gateway.url}/graphql",
                        json={"query": SEATS, "variables": DEMO},
                        headers={"Authorization": f"Bearer {value}"},
                    )
                    for value in forged
                )
            )
        return [response.status_code for response in responses]

    assert asyncio.run(flood()) == [401] * 50
    assert key_server.fetches == 1


async def test_the_key_set_fetches_at_most_once_per_interval_for_unknown_kids(
    key_server: KeyServer,
) -> None:
    """On a clock that only moves when told: unknown kids fetch once per interval, no more."""
    now = [1000.0]
    keys = KeySet(key_server.url, refetch_interval=10, clock=lambda: now[0])
    try:
        assert (await keys.key("key-1")).key_id == "key-1"
        for _ in range(20):
            with pytest.raises(AuthenticationFailed):
                await keys.key("unknown")
        assert key_server.fetches == 1
        now[0] += 10
        with pytest.raises(AuthenticationFailed):
            await keys.key("unknown")
        with pytest.raises(AuthenticationFailed):
            await keys.key("unknown")
        assert key_server.fetches == 2
    finally:
        await keys.aclose()


def test_a_customer_the_claim_does_not_name_is_forbidden_without_an_upstream_call(
    gateway: Gateway,
) -> None:
    """A claim with one customer, a query for another: FORBIDDEN, 0 upstream calls, and the
    same message whether that customer exists or not."""
    caller = token()
    existing = gateway.errors(SEATS, OTHER, token=caller)
    missing = gateway.errors(
        SEATS, {"customerId": MISSING_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}, token=caller
    )
    assert [e["extensions"]["code"] for e in existing + missing] == ["FORBIDDEN", "FORBIDDEN"]
    assert existing[0]["message"] == missing[0]["message"]
    assert OTHER_CUSTOMER_ID not in existing[0]["message"]
    assert gateway.calls == []


def test_a_forbidden_alias_is_refused_alone_and_the_others_answered(gateway: Gateway) -> None:
    """Two aliases, one allowed, one forbidden: the allowed one answered with one upstream
    call, the forbidden one null with its FORBIDDEN error, the same on a repeat (which the
    fast path may serve)."""
    query = f"""{{
      mine: seatBalances(customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 1) {{
        nodes {{ seatId }}
      }}
      theirs: seatBalances(customerId: "{OTHER_CUSTOMER_ID}", contractId: "{OTHER_CONTRACT_ID}", first: 1) {{
        nodes {{ seatId }}
      }}
    }}"""
    for _ in range(2):
        gateway.upstream.calls.clear()
        payload = gateway.post(query, token=token()).json()
        assert len(payload["data"]["mine"]["nodes"]) == 1
        assert payload["data"]["theirs"] is None
        assert [(e["path"], e["extensions"]["code"]) for e in payload["errors"]] == [
            (["theirs"], "FORBIDDEN")
        ]
        assert [call.body["customer_id"] for call in gateway.calls] == [DEMO_CUSTOMER_ID]


def test_nodes_mixing_an_allowed_and_a_forbidden_seat(gateway: Gateway) -> None:
    """`nodes` with a seat of the caller's customer and one of another: the first answered,
    the second null with FORBIDDEN at its index; one upstream call, for the allowed one."""
    caller = token()
    [seat, *_] = gateway.query(SEATS, DEMO, token=caller)["seatBalances"]["nodes"]
    gateway.upstream.calls.clear()
    foreign = global_id("Seat", OTHER_CUSTOMER_ID, OTHER_CONTRACT_ID, "someone@example.com")
    payload = gateway.post(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Seat { seatId } } }",
        {"ids": [seat["id"], foreign]},
        token=caller,
    ).json()
    assert payload["data"]["nodes"] == [{"id": seat["id"], "seatId": seat["seatId"]}, None]
    assert [(e["path"], e["extensions"]["code"]) for e in payload["errors"]] == [
        (["nodes", 1], "FORBIDDEN")
    ]
    assert [call.body["customer_id"] for call in gateway.calls] == [DEMO_CUSTOMER_ID]


def test_node_and_entities_of_another_customer_are_forbidden(gateway: Gateway) -> None:
    """`node`, a Seat representation and a Contract's seatBalances of another customer: each
    FORBIDDEN, the other entity answered, no upstream call for the forbidden ones."""
    caller = token()
    foreign = global_id("Seat", OTHER_CUSTOMER_ID, OTHER_CONTRACT_ID, "someone@example.com")
    [node_error] = gateway.errors(
        "query($id: ID!) { node(id: $id) { id } }", {"id": foreign}, token=caller
    )
    assert node_error["extensions"]["code"] == "FORBIDDEN"
    payload = gateway.post(
        """query($representations: [_Any!]!) {
          _entities(representations: $representations) {
            ... on Seat { seatId }
            ... on Contract { seatBalances(first: 1) { nodes { seatId } } }
          }
        }""",
        {
            "representations": [
                {"__typename": "Seat", **OTHER, "seatId": "someone@example.com"},
                {
                    "__typename": "Contract",
                    "id": OTHER_CONTRACT_ID,
                    "customerId": OTHER_CUSTOMER_ID,
                },
                {"__typename": "Contract", "id": DEMO_CONTRACT_ID, "customerId": DEMO_CUSTOMER_ID},
            ]
        },
        token=caller,
    ).json()
    entities = payload["data"]["_entities"]
    assert entities[0] is None
    assert entities[1] == {"seatBalances": None}
    assert len(entities[2]["seatBalances"]["nodes"]) == 1
    assert sorted((tuple(e["path"]), e["extensions"]["code"]) for e in payload["errors"]) == [
        (("_entities", 0), "FORBIDDEN"),
        (("_entities", 1, "seatBalances"), "FORBIDDEN"),
    ]
    assert [call.body["customer_id"] for call in gateway.calls] == [DEMO_CUSTOMER_ID]


def test_without_a_token_data_is_unauthenticated_but_the_schema_is_readable(
    gateway: Gateway,
) -> None:
    """No Authorization: every field that reads a customer is UNAUTHENTICATED (no upstream
    call), while introspection and `_service { sdl }` still answer (GraphiQL, routers)."""
    [error] = gateway.errors(SEATS, DEMO, token=None)
    assert error["extensions"]["code"] == "UNAUTHENTICATED"
    data = gateway.query("{ __schema { queryType { name } } _service { sdl } }", token=None)
    assert "type Seat implements Node" in data["_service"]["sdl"]
    assert gateway.calls == []


def test_a_non_bearer_authorization_is_refused(gateway: Gateway) -> None:
    """`Authorization: Basic ...` is not silently taken as anonymous: HTTP 401."""
    response = gateway.http.post(
        f"{gateway.url}/graphql",
        json={"query": SEATS, "variables": DEMO},
        headers={"Authorization": "Basic dXNlcjpwYXNz"},
    )
    refusal(response)
    assert gateway.calls == []


GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
JSON = "application/json"
# What Apollo Client 4 sends: it reads GraphQL errors (and runs an error link matching
# `extensions.code`) only from graphql-response+json; anything else is a ServerError.
APOLLO_CLIENT_ACCEPT = f"{GRAPHQL_RESPONSE_JSON},{JSON};q=0.9"
ACCEPTS = pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (APOLLO_CLIENT_ACCEPT, GRAPHQL_RESPONSE_JSON),
        (JSON, JSON),
        (None, JSON),
        ("text/html", JSON),
    ],
    ids=["apollo-client", "json", "no-accept", "neither"],
)


def in_media_type(response: httpx.Response, media_type: str) -> None:
    """The refusal is in ``media_type``, says it varies on Accept, and has no `data` under
    graphql-response+json (nothing ran: a request error)."""
    assert response.headers["content-type"] == media_type
    vary = ",".join(response.headers.get_list("vary"))
    assert "accept" in {value.strip().lower() for value in vary.split(",")}
    if media_type == GRAPHQL_RESPONSE_JSON:
        assert "data" not in response.json()


@ACCEPTS
def test_a_refused_token_is_answered_in_the_media_type_the_client_accepts(
    gateway: Gateway, accept: str | None, media_type: str
) -> None:
    """An expired JWT is a 401 UNAUTHENTICATED in graphql-response+json when the client
    prefers it (Apollo Client 4), in application/json otherwise, as the view negotiates."""
    headers = {"Authorization": f"Bearer {token(exp=int(time.time()) - 120)}"}
    if accept is not None:
        headers["Accept"] = accept
    response = gateway.http.post(
        f"{gateway.url}/graphql", json={"query": SEATS, "variables": DEMO}, headers=headers
    )
    assert "expired" in refusal(response)["message"]
    in_media_type(response, media_type)
    assert gateway.calls == []


@ACCEPTS
async def test_unavailable_keys_are_answered_in_the_media_type_the_client_accepts(
    standin_url: str, accept: str | None, media_type: str
) -> None:
    """A key set that cannot be had (here not a JWKS document) is a 503
    AUTHENTICATION_UNAVAILABLE in the negotiated media type too."""
    headers = {"Authorization": f"Bearer {token()}"}
    if accept is not None:
        headers["Accept"] = accept
    async with raw_http_server(b'{"keys": "none"}') as (url, _):
        settings = auth_settings(standin_url, f"{url}/jwks.json")
        with running_gateway(settings) as gateway:
            async with httpx.AsyncClient(timeout=10) as http:
                response = await http.post(
                    f"{gateway.url}/graphql",
                    json={"query": SEATS, "variables": DEMO},
                    headers=headers,
                )
    assert response.status_code == 503, response.text
    assert [error["extensions"]["code"] for error in response.json()["errors"]] == [
        "AUTHENTICATION_UNAVAILABLE"
    ]
    in_media_type(response, media_type)


def test_the_admin_scope_reads_every_customer(gateway: Gateway) -> None:
    """A token carrying GATEWAY_ADMIN_SCOPE reads a customer its claim does not name; the
    same token without the scope is forbidden."""
    unnamed = {"metronome_customer_ids": None}
    admin = token(scope=f"openid {ADMIN_SCOPE}", **unnamed)
    assert len(gateway.query(SEATS, DEMO, token=admin)["seatBalances"]["nodes"]) == 2
    [error] = gateway.errors(SEATS, DEMO, token=token(scope="openid", **unnamed))
    assert error["extensions"]["code"] == "FORBIDDEN"


def test_the_access_log_names_the_subject_and_never_the_token(
    standin_url: str, key_server: KeyServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The access line of an authenticated request carries the JWT's `sub`; no log line
    carries the token, valid or not."""
    caplog.set_level(logging.INFO)
    valid, forged = token(sub="alice@example.com"), token(SigningKey("key-1"))
    with running_gateway(auth_settings(standin_url, key_server.url)) as gateway:
        gateway.query(SEATS, DEMO, token=valid)
        gateway.post(SEATS, DEMO, token=forged)
    # Read once the server has stopped: a line is written after its response is sent.
    access = [r.getMessage() for r in caplog.records if r.name == "gateway.access"]
    assert '"subject":"alice@example.com"' in access[0]
    assert '"status":401' in access[1] and "subject" not in access[1]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert valid not in logged and forged not in logged


def test_a_development_secret_verifies_hs256_tokens(standin_url: str) -> None:
    """GATEWAY_JWT_SECRET: HS256 tokens with that secret are accepted, others refused."""
    secret = "a-development-secret-of-32-bytes!"
    settings = Settings(
        metronome_base_url=standin_url, metronome_bearer_token=DEMO_TOKEN, jwt_secret=secret
    )
    with running_gateway(settings) as gateway:
        good = jwt.encode(claims(aud=None, iss=None), secret, algorithm="HS256")
        assert gateway.query(SEATS, DEMO, token=good)["seatBalances"]["nodes"]
        bad = jwt.encode(
            claims(aud=None, iss=None), "another-secret-of-32-bytes-length", algorithm="HS256"
        )
        refusal(gateway.post(SEATS, DEMO, token=bad))
        assert len(gateway.calls) == 1


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"metronome_bearer_token": "billing-token-123"},
            ["METRONOME_BEARER_TOKEN", "GATEWAY_JWKS_URL", "GATEWAY_ALLOW_ANONYMOUS"],
        ),
        (
            {"jwks_url": "http://idp/jwks.json", "jwt_issuer": ISSUER, "jwt_audience": AUDIENCE},
            ["METRONOME_BEARER_TOKEN"],
        ),
        (
            {"metronome_bearer_token": "billing-token-123", "jwks_url": "http://idp/jwks.json"},
            ["GATEWAY_JWT_ISSUER", "GATEWAY_JWT_AUDIENCE"],
        ),
    ],
    ids=[
        "billing-token-without-authentication",
        "jwt-without-billing-token",
        "jwks-without-iss-aud",
    ],
)
def test_unsafe_configurations_are_refused_naming_the_settings(
    settings: dict[str, Any], named: list[str]
) -> None:
    """A billing token with nobody authenticated, JWT authentication with no billing token to
    use, a JWKS without issuer and audience: the settings are refused, saying which to set."""
    with pytest.raises(ValidationError) as refused:
        Settings(metronome_base_url="https://api.metronome.example", **settings)
    message = str(refused.value)
    assert all(name in message for name in named), message


def test_the_stand_in_and_declared_anonymous_configurations_still_start() -> None:
    """No configuration (the stand-in) and GATEWAY_ALLOW_ANONYMOUS=true are accepted."""
    assert not Settings().authenticates_callers
    assert Settings(
        metronome_base_url="https://api.metronome.example",
        metronome_bearer_token="billing-token-123",
        allow_anonymous=True,
    ).allow_anonymous


@pytest.mark.process  # starts another program
def test_gateway_serve_refuses_to_start_with_a_billing_token_and_no_authentication() -> None:
    """`gateway serve` with METRONOME_BEARER_TOKEN and no caller authentication exits
    non-zero, saying what to set, without printing the token."""
    secret = f"billing-{uuid.uuid4().hex}"
    finished = refused_start(
        {"METRONOME_BASE_URL": "https://api.metronome.example", "METRONOME_BEARER_TOKEN": secret}
    )
    assert finished.returncode != 0
    assert "GATEWAY_ALLOW_ANONYMOUS" in finished.stderr
    assert "GATEWAY_JWKS_URL" in finished.stderr
    assert secret not in finished.stdout + finished.stderr


async def test_a_stale_key_set_refreshes_in_the_background_while_known_keys_still_verify(
    key_server: KeyServer,
) -> None:
    """Once the key set is older than its max age and the identity provider hangs, a known
    kid is still answered at once (one refresh runs in the background), never after the
    provider's timeout."""
    now = [1000.0]
    hanging = asyncio.Event()
    answered = 0

    async def answer_once_then_hang(request: httpx.Request) -> httpx.Response:
        nonlocal answered
        answered += 1
        if answered > 1:
            await hanging.wait()
        body = json.dumps({"keys": [KEY.jwk()]}).encode()  # streamed, as a server sends it
        return httpx.Response(200, stream=httpx.ByteStream(body))

    keys = KeySet(
        key_server.url,
        refetch_interval=10,
        clock=lambda: now[0],
        transport=httpx.MockTransport(answer_once_then_hang),
    )
    try:
        assert (await keys.key("key-1")).key_id == "key-1"  # the set, fetched once
        now[0] += 3600  # long past the max age
        for _ in range(5):
            key = await asyncio.wait_for(keys.key("key-1"), timeout=0.5)
            assert key.key_id == "key-1"
        assert keys.fetches == 2  # one background refresh, still waiting on the provider
    finally:
        hanging.set()
        await keys.aclose()


# --- A hostile or broken identity provider ---------------------------------------------------

UNAVAILABLE = "AUTHENTICATION_UNAVAILABLE"


async def post_concurrently(url: str, tokens: list[str], *, seconds: float) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=seconds) as http:
        return await asyncio.gather(
            *(
                http.post(
                    f"{url}/graphql",
                    json={"query": SEATS, "variables": DEMO},
                    headers={"Authorization": f"Bearer {value}"},
                )
                for value in tokens
            )
        )


def unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == UNAVAILABLE


async def test_a_key_endpoint_that_trickles_is_answered_503_within_the_fetch_deadline(
    standin_url: str,
) -> None:
    """A JWKS endpoint that sends its answer a byte every half second (each read on time, the
    whole never done): three concurrent requests with a kid the gateway lacks are all answered
    503 AUTHENTICATION_UNAVAILABLE within the deadline on the whole fetch (GATEWAY_JWKS_TIMEOUT,
    1.5 s here; 5 s by default), one fetch shared, and /healthz answers meanwhile."""

    async def trickle(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: 100000\r\n\r\n")
        for _ in range(60):  # 30 s at most
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.5)

    async with raw_http_server(trickle) as (url, _):
        settings = auth_settings(
            standin_url, f"{url}/jwks.json", jwks_refetch_interval=1, jwks_timeout=1.5
        )
        with running_gateway(settings) as gateway:
            started = time.monotonic()
            answers = await post_concurrently(gateway.url, [token()] * 3, seconds=15)
            elapsed = time.monotonic() - started
            async with httpx.AsyncClient() as http:
                health = await http.get(f"{gateway.url}/healthz")
    for response in answers:
        unavailable(response)
    assert elapsed < 2.5
    assert health.status_code == 200


async def test_an_oversized_key_set_is_refused_without_reading_it_whole(
    standin_url: str,
) -> None:
    """A JWKS endpoint that would send 100 MB (no length announced): the gateway stops reading
    at its 1 MB cap and answers 503 AUTHENTICATION_UNAVAILABLE at once; the endpoint managed
    to send a few MB at most (what the socket buffers hold), not the 100 MB."""
    sent = 0

    async def endless(writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Connection: close\r\n\r\n")
        writer.write(b'{"keys": [], "padding": "')
        piece = b"x" * 65536
        while sent < 100 << 20:
            writer.write(piece)
            await writer.drain()
            sent += len(piece)

    async with raw_http_server(endless) as (url, _):
        settings = auth_settings(standin_url, f"{url}/jwks.json")
        with running_gateway(settings) as gateway:
            started = time.monotonic()
            [answer] = await post_concurrently(gateway.url, [token()], seconds=30)
            elapsed = time.monotonic() - started
    unavailable(answer)
    assert sent < 16 << 20, f"the endpoint sent {sent >> 20} MB in {elapsed:.2f} s"
    assert elapsed < 2.0


@pytest.mark.parametrize(
    "odd",
    [{"alg": "none"}, {"alg": ["RS256"]}, {"alg": {"name": "RS256"}}],
    ids=["alg-none", "alg-list", "alg-object"],
)
def test_an_odd_key_set_entry_is_skipped_and_the_other_keys_still_verify(
    standin_url: str, key_server: KeyServer, odd: dict[str, Any]
) -> None:
    """A JWKS entry the gateway cannot use (algorithm none, an algorithm that is not a
    string) is skipped like other bad entries: tokens
    signed by the other keys still verify, and a token naming the odd entry's kid is refused
    with 401 UNAUTHENTICATED, never a 500."""
    oddity = SigningKey("odd-key")
    key_server.odd_entries = [{**oddity.jwk(), **odd}]
    with running_gateway(auth_settings(standin_url, key_server.url)) as gateway:
        assert len(gateway.query(SEATS, DEMO, token=token())["seatBalances"]["nodes"]) == 2
        refused = refusal(gateway.post(SEATS, DEMO, token=token(oddity)))
    assert "key this gateway does not know" in refused["message"]


async def test_a_key_set_nested_too_deep_is_503_not_500(standin_url: str) -> None:
    """A JWKS answer of 100,000 nested arrays (200 KB, under the size cap) is a failed
    fetch, 503 AUTHENTICATION_UNAVAILABLE with its code, not a 500."""
    nested = b"[" * 100_000 + b"]" * 100_000
    async with raw_http_server(nested) as (url, _):
        settings = auth_settings(standin_url, f"{url}/jwks.json")
        with running_gateway(settings) as gateway:
            [answer] = await post_concurrently(gateway.url, [token()], seconds=30)
    unavailable(answer)


async def test_a_caller_who_leaves_does_not_cancel_the_key_fetch_for_the_others(
    standin_url: str,
) -> None:
    """An identity provider that takes a second to answer: a caller who gives up after 0.3 s
    leaves the fetch running for a caller who waits, who is answered with data once the keys
    arrive; the provider is asked once."""
    jwks = json.dumps({"keys": [KEY.jwk()]}).encode()

    async def slow(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(1.0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        writer.write(b"Content-Length: %d\r\n\r\n" % len(jwks) + jwks)
        await writer.drain()

    async with raw_http_server(slow) as (url, received):
        with running_gateway(auth_settings(standin_url, f"{url}/jwks.json")) as gateway:
            impatient = asyncio.ensure_future(
                post_concurrently(gateway.url, [token()], seconds=0.3)
            )
            await asyncio.sleep(0.1)
            patient = await post_concurrently(gateway.url, [token()], seconds=10)
            with pytest.raises(httpx.ReadTimeout):
                await impatient
    [answer] = patient
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]["seatBalances"]["nodes"]) == 2
    assert len(received.heads) == 1
