"""Persisted documents (APQ and trusted documents), the page cache and Cache-Control, batching
and the cost estimate, over real HTTP with the stand-in as upstream."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from gateway.config import Settings
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, OTHER_TOKEN
from tests.support import Gateway, refused_start, running_gateway

QUERY = f"""query Seats {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
  contractId: "{DEMO_CONTRACT_ID}", first: 2) {{ edges {{ node {{ seatId }} }} }} }}"""
OTHER = f"""query Other {{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
  contractId: "{DEMO_CONTRACT_ID}", first: 3) {{ edges {{ node {{ seatId }} }} }} }}"""
AUTH = {"Authorization": f"Bearer {DEMO_TOKEN}"}
JSON = "application/json"
GRAPHQL_RESPONSE = "application/graphql-response+json"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def apq(query_hash: str) -> dict[str, object]:
    return {"persistedQuery": {"version": 1, "sha256Hash": query_hash}}


def post(gateway: Gateway, body: object, accept: str = JSON, **headers: str) -> httpx.Response:
    return gateway.http.post(
        f"{gateway.url}/graphql", json=body, headers={**AUTH, "accept": accept, **headers}
    )


def codes(response: httpx.Response) -> list[str]:
    return [error["extensions"]["code"] for error in response.json().get("errors", [])]


@pytest.fixture
def fresh(settings: Settings) -> Iterator[Gateway]:
    with running_gateway(settings) as gateway:
        yield gateway


@pytest.fixture
def cached(settings: Settings) -> Iterator[Gateway]:
    with running_gateway(settings.model_copy(update={"cache_ttl": 60.0})) as gateway:
        yield gateway


# 1. Automatic persisted queries


def test_an_unknown_hash_is_persisted_query_not_found_without_an_upstream_call(
    fresh: Gateway,
) -> None:
    """A hash the gateway never saw answers PersistedQueryNotFound (200 under application/json,
    as Apollo Client expects; 400 under graphql-response+json), and calls nothing upstream."""
    for accept, status in ((JSON, 200), (GRAPHQL_RESPONSE, 400)):
        response = post(fresh, {"extensions": apq(sha(QUERY))}, accept)
        assert response.status_code == status
        assert codes(response) == ["PERSISTED_QUERY_NOT_FOUND"]
        assert response.json()["errors"][0]["message"] == "PersistedQueryNotFound"
        assert response.headers["cache-control"] == "no-store"
    assert fresh.calls == []


def test_a_registered_hash_answers_alone_over_post_and_get(fresh: Gateway) -> None:
    """Hash and query register the document; then the hash alone answers, over POST and over
    GET with `extensions` and `variables` in the query string (useGETForHashedQueries)."""
    registered = post(fresh, {"query": QUERY, "extensions": apq(sha(QUERY))})
    assert registered.json()["data"]["seatBalances"]["edges"]
    again = post(fresh, {"extensions": apq(sha(QUERY))})
    assert again.json()["data"] == registered.json()["data"]
    get = fresh.http.get(
        f"{fresh.url}/graphql",
        params={"extensions": json.dumps(apq(sha(QUERY))), "variables": "{}"},
        headers={**AUTH, "accept": JSON},
    )
    assert get.status_code == 200
    assert get.json()["data"] == registered.json()["data"]


def get(gateway: Gateway, params: dict[str, object], accept: str = JSON) -> httpx.Response:
    """A GET of /graphql whose object parameters (`extensions`, `variables`) go as JSON."""
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in params.items()}
    return gateway.http.get(
        f"{gateway.url}/graphql", params=encoded, headers={**AUTH, "accept": accept}
    )


def test_a_sha256_prefixed_hash_registers_and_answers_over_post_and_get(fresh: Gateway) -> None:
    """GraphQL Code Generator's client preset sends its document id, `sha256:<hex>`, as the
    APQ hash: it registers the document and then answers alone over POST and GET, as the
    same document as the bare hash; an unknown prefixed hash is PersistedQueryNotFound."""
    prefixed = f"sha256:{sha(QUERY)}"
    unknown = post(fresh, {"extensions": apq(prefixed)})
    assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"], unknown.text
    registered = post(fresh, {"query": QUERY, "extensions": apq(prefixed)})
    assert registered.json()["data"]["seatBalances"]["edges"], registered.text
    for answer in (
        post(fresh, {"extensions": apq(prefixed)}),
        get(fresh, {"extensions": apq(prefixed)}),
        post(fresh, {"extensions": apq(sha(QUERY))}),
    ):
        assert answer.status_code == 200
        assert answer.json() == registered.json()
    mismatch = post(fresh, {"query": OTHER, "extensions": apq(prefixed)})
    assert codes(mismatch) == ["PERSISTED_QUERY_HASH_MISMATCH"]


def test_a_hash_that_does_not_match_the_query_is_refused_and_not_stored(fresh: Gateway) -> None:
    """A hash sent with another document's text is refused before anything runs, and that
    hash stays unknown."""
    wrong = post(fresh, {"query": OTHER, "extensions": apq(sha(QUERY))})
    assert codes(wrong) == ["PERSISTED_QUERY_HASH_MISMATCH"]
    assert codes(post(fresh, {"extensions": apq(sha(QUERY))})) == ["PERSISTED_QUERY_NOT_FOUND"]
    assert fresh.calls == []


def test_a_registration_refused_for_credentials_is_not_learned(fresh: Gateway) -> None:
    """A registration whose operation the billing API refuses (bad token) stores nothing."""
    refused = fresh.http.post(
        f"{fresh.url}/graphql",
        json={"query": QUERY, "extensions": apq(sha(QUERY))},
        headers={"Authorization": "Bearer wrong-token"},
    )
    assert "UNAUTHENTICATED" in codes(refused)
    assert codes(post(fresh, {"extensions": apq(sha(QUERY))})) == ["PERSISTED_QUERY_NOT_FOUND"]


def registered(gateway: Gateway, text: str, **headers: str) -> bool:
    """Registers ``text`` (hash and query; it must run), then tells whether its hash alone
    answers."""
    assert post(gateway, {"query": text, "extensions": apq(sha(text))}, **headers).json()["data"]
    return not codes(post(gateway, {"extensions": apq(sha(text))}, **headers))


def test_a_callers_registrations_per_minute_are_bounded(settings: Settings) -> None:
    """Past GATEWAY_PERSISTED_QUERIES_REGISTRATIONS_PER_MINUTE (here 5) a caller's documents
    still run but are not stored: their hashes stay unknown."""
    limited = settings.model_copy(update={"persisted_queries_registrations_per_minute": 5})
    with running_gateway(limited) as gateway:
        kept = [registered(gateway, f"{{ a{index}: __typename }}") for index in range(8)]
    assert kept == [True] * 5 + [False] * 3


def test_each_authenticated_caller_has_its_own_registration_budget(standin_url: str) -> None:
    """In JWT mode the budget is the subject's: one subject spending its registrations leaves
    another's intact; a caller without a token registers nothing at all."""
    secret = "a-development-secret-of-32-bytes!"
    jwt_mode = Settings(
        metronome_base_url=standin_url,
        metronome_bearer_token=DEMO_TOKEN,
        jwt_secret=secret,
        persisted_queries_registrations_per_minute=2,
    )

    def bearer(subject: str) -> str:
        claims = {"sub": subject, "exp": int(time.time()) + 300}
        return f"Bearer {jwt.encode(claims, secret, algorithm='HS256')}"

    with running_gateway(jwt_mode) as gateway:
        ada, bob = bearer("ada"), bearer("bob")
        assert [
            registered(gateway, f"{{ ada{index}: __typename }}", Authorization=ada)
            for index in range(3)
        ] == [True, True, False]
        assert registered(gateway, "{ bob: __typename }", Authorization=bob)
        anonymous = gateway.http.post(
            f"{gateway.url}/graphql",
            json={
                "query": "{ nobody: __typename }",
                "extensions": apq(sha("{ nobody: __typename }")),
            },
        )
        assert anonymous.json()["data"] == {"nobody": "Query"}
        unknown = post(
            gateway, {"extensions": apq(sha("{ nobody: __typename }"))}, Authorization=ada
        )
        assert codes(unknown) == ["PERSISTED_QUERY_NOT_FOUND"]


def test_the_size_limit_counts_comments_and_nothing_over_it_is_stored(fresh: Gateway) -> None:
    """A `{ __typename }` padded with a comment past GATEWAY_MAX_QUERY_BYTES is refused by the
    size limit and its hash stays unknown."""
    head = "{ __typename } #"
    text = head + "x" * (20_001 - len(head))
    refused = post(fresh, {"query": text, "extensions": apq(sha(text))})
    assert codes(refused) == ["MAX_QUERY_SIZE_LIMIT"]
    assert codes(post(fresh, {"extensions": apq(sha(text))})) == ["PERSISTED_QUERY_NOT_FOUND"]


# 2. Trusted documents


def manifests(tmp_path: Path) -> tuple[Path, Path]:
    apollo = tmp_path / "apollo.json"
    apollo.write_text(
        json.dumps(
            {
                "format": "apollo-persisted-query-manifest",
                "version": 1,
                "operations": [{"id": sha(QUERY), "name": "Seats", "type": "query", "body": QUERY}],
            }
        )
    )
    codegen = tmp_path / "persisted-documents.json"
    codegen.write_text(json.dumps({f"sha256:{sha(QUERY)}": QUERY}))
    return apollo, codegen


@pytest.mark.parametrize("which", ["apollo", "codegen"])
def test_trusted_documents_answer_by_id_and_hash_and_refuse_anything_else(
    settings: Settings, tmp_path: Path, which: str
) -> None:
    """With GATEWAY_TRUSTED_DOCUMENTS_ONLY, a manifest's document answers by `documentId`
    (as written, or with/without `sha256:`) and by APQ hash; free-form text and unknown
    hashes are PERSISTED_QUERY_NOT_IN_LIST before any upstream call."""
    apollo, codegen = manifests(tmp_path)
    manifest = apollo if which == "apollo" else codegen
    configured = settings.model_copy(
        update={"trusted_documents": manifest, "trusted_documents_only": True}
    )
    with running_gateway(configured) as gateway:
        for document_id in (sha(QUERY), f"sha256:{sha(QUERY)}"):
            answer = post(gateway, {"documentId": document_id})
            assert answer.json()["data"]["seatBalances"]["edges"], answer.text
        assert post(gateway, {"extensions": apq(sha(QUERY))}).json()["data"]
        calls = len(gateway.calls)
        assert codes(post(gateway, {"query": OTHER})) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        registration = {"query": OTHER, "extensions": apq(sha(OTHER))}
        assert codes(post(gateway, registration)) == ["PERSISTED_QUERY_NOT_IN_LIST"]
        refused = post(gateway, {"query": OTHER}, GRAPHQL_RESPONSE)
        assert refused.status_code == 400
        assert len(gateway.calls) == calls


@pytest.mark.parametrize("which", ["apollo", "codegen"])
def test_trusted_documents_answer_a_sha256_prefixed_hash_and_relays_doc_id(
    settings: Settings, tmp_path: Path, which: str
) -> None:
    """With GATEWAY_TRUSTED_DOCUMENTS_ONLY, whichever way the manifest writes its ids, a
    document answers by APQ hash with the `sha256:` prefix and by Relay's `doc_id` (prefixed
    or not), over POST and GET; `documentId` and `doc_id` naming different documents is a
    400."""
    apollo, codegen = manifests(tmp_path)
    manifest = apollo if which == "apollo" else codegen
    configured = settings.model_copy(
        update={"trusted_documents": manifest, "trusted_documents_only": True}
    )
    prefixed = f"sha256:{sha(QUERY)}"
    with running_gateway(configured) as gateway:
        answers = [
            post(gateway, {"extensions": apq(prefixed)}),
            get(gateway, {"extensions": apq(prefixed)}),
            post(gateway, {"doc_id": prefixed, "variables": {}}),
            post(gateway, {"doc_id": sha(QUERY)}),
            get(gateway, {"doc_id": prefixed, "variables": {}}),
        ]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            assert answer.json()["data"]["seatBalances"]["edges"], answer.text
        calls = len(gateway.calls)
        both = post(gateway, {"documentId": prefixed, "doc_id": sha(OTHER)})
        assert both.status_code == 400
        assert codes(both) == ["BAD_REQUEST"]
        assert "doc_id" in both.json()["errors"][0]["message"]
        assert codes(post(gateway, {"doc_id": sha(OTHER)})) == ["PERSISTED_QUERY_NOT_FOUND"]
        assert len(gateway.calls) == calls


def test_a_trusted_document_is_held_to_the_selection_limit_on_every_request(
    settings: Settings, tmp_path: Path
) -> None:
    """A trusted document is learned without being measured; a gateway whose selection limit
    it exceeds refuses it with MAX_SELECTIONS_LIMIT each time (the pipeline measures what the
    store did not), while a document that passed the limits is answered again from the store."""
    listing = f'customerId: "{DEMO_CUSTOMER_ID}", contractId: "{DEMO_CONTRACT_ID}", first: 1'
    wide = (
        f"query Wide {{ seatBalances({listing}) {{ pageInfo {{ hasNextPage endCursor }} "
        "nodes { seatId id customerId contractId "
        "balances { creditTypeId balance startingBalance } } } }"
    )  # 13 selections
    small = f"{{ seatBalances({listing}) {{ nodes {{ seatId }} }} }}"  # 3
    manifest = tmp_path / "persisted-documents.json"
    manifest.write_text(json.dumps({f"sha256:{sha(wide)}": wide}))
    configured = settings.model_copy(update={"trusted_documents": manifest, "max_selections": 10})
    with running_gateway(configured) as gateway:
        for _ in range(2):
            assert codes(post(gateway, {"documentId": sha(wide)})) == ["MAX_SELECTIONS_LIMIT"]
        for _ in range(2):
            assert post(gateway, {"query": small}).json()["data"]["seatBalances"]["nodes"]
        assert len(gateway.calls) == 2


@pytest.mark.process  # starts another program
def test_a_malformed_manifest_stops_start_up_naming_the_file(tmp_path: Path) -> None:
    """`gateway serve` with a manifest whose document does not validate exits 2 with one line
    naming the file and the document."""
    manifest = tmp_path / "broken.json"
    manifest.write_text(json.dumps({"sha256:abc": "{ noSuchField }"}))
    finished = refused_start({"GATEWAY_TRUSTED_DOCUMENTS": str(manifest)})
    assert finished.returncode == 2
    assert str(manifest) in finished.stderr
    assert "'sha256:abc' does not validate" in finished.stderr


# 3. The page cache and Cache-Control


def test_the_cache_answers_the_same_token_and_never_another(cached: Gateway) -> None:
    """Within the TTL the same query with the same token makes no upstream call; another
    token makes its own; `Cache-Control: no-cache` fetches anew."""
    first = post(cached, {"query": QUERY})
    assert len(cached.calls) == 1
    again = post(cached, {"query": QUERY})
    assert again.json() == first.json()
    assert len(cached.calls) == 1
    other = cached.http.post(
        f"{cached.url}/graphql",
        json={"query": QUERY},
        headers={"Authorization": f"Bearer {OTHER_TOKEN}"},
    )
    assert other.status_code == 200
    assert len(cached.calls) == 2
    assert cached.calls[1].authorization == f"Bearer {OTHER_TOKEN}"
    post(cached, {"query": QUERY}, **{"cache-control": "no-cache"})
    assert len(cached.calls) == 3
    metrics = cached.http.get(f"{cached.url}/metrics").text
    assert 'gateway_cache_lookups_total{result="hit",store="memory-pages"} 1.0' in metrics
    assert 'gateway_cache_bytes{store="memory-pages"}' in metrics


def test_answers_say_what_a_cache_may_do_with_them(cached: Gateway, fresh: Gateway) -> None:
    """Data answers are `private` (with `max-age` the pages have left when the cache is on),
    error answers `no-store`."""
    assert post(fresh, {"query": QUERY}).headers["cache-control"] == "private"
    control = post(cached, {"query": QUERY}).headers["cache-control"]
    assert control.startswith("private, max-age=")
    assert 55 <= int(control.rsplit("=", 1)[1]) <= 60
    failed = post(cached, {"query": "{ nope }"})
    assert failed.headers["cache-control"] == "no-store"


def test_the_cache_serves_entities_too(cached: Gateway) -> None:
    """`node` answers come from the cache too: the second identical refetch calls nothing."""
    seat_id = post(cached, {"query": QUERY.replace("seatId", "id")}).json()
    node_id = seat_id["data"]["seatBalances"]["edges"][0]["node"]["id"]
    query = "query($id: ID!) { node(id: $id) { id } }"
    post(cached, {"query": query, "variables": {"id": node_id}})
    calls = len(cached.calls)
    assert post(cached, {"query": query, "variables": {"id": node_id}}).json()["data"]["node"]
    assert len(cached.calls) == calls


# 4. Batching


def test_a_batch_answers_in_order_and_shares_identical_upstream_calls(fresh: Gateway) -> None:
    """A list of operations answers a list of results in order; two operations asking for the
    same page make one upstream call between them."""
    batch = [{"query": QUERY}, {"query": "{ __typename }"}, {"query": QUERY}]
    response = post(fresh, batch)
    results = response.json()
    assert isinstance(results, list) and len(results) == 3
    assert results[1] == {"data": {"__typename": "Query"}}
    assert results[0] == results[2]
    assert results[0]["data"]["seatBalances"]["edges"]
    assert len(fresh.calls) == 1
    assert response.headers["cache-control"] == "private"


def test_a_batch_over_the_limit_is_one_error(fresh: Gateway) -> None:
    """More than GATEWAY_MAX_BATCH operations: one error answer (not a list), nothing run."""
    response = post(fresh, [{"query": QUERY}] * 11)
    assert response.status_code == 400
    assert codes(response) == ["BAD_REQUEST"]
    assert fresh.calls == []


def test_the_upstream_budget_applies_to_the_batch(settings: Settings) -> None:
    """Two operations of one call each, with a budget of one call: the second is refused."""
    with running_gateway(settings.model_copy(update={"max_upstream_calls": 1})) as gateway:
        results = post(gateway, [{"query": QUERY}, {"query": OTHER}]).json()
        refused = [r for r in results if r.get("errors")]
        assert len(refused) == 1
        assert refused[0]["errors"][0]["extensions"]["code"] == "MAX_UPSTREAM_CALLS_LIMIT"
        assert len(gateway.calls) == 1


# 5. Cost


def test_the_cost_estimate_is_returned_when_asked(fresh: Gateway) -> None:
    """`X-Gateway-Cost: true` adds extensions.cost; without the header there is none."""
    twice = (
        f"{{ a: {QUERY.split('{', 1)[1].strip()[:-1]} b: {QUERY.split('{', 1)[1].strip()[:-1]} }}"
    )
    asked = post(fresh, {"query": twice}, **{"x-gateway-cost": "true"}).json()
    assert asked["extensions"]["cost"] == {
        # Per alias: seatBalances, its object, edges, and per seat the edge, node, the seat and
        # seatId (gateway.schema.work).
        "estimatedCost": 2 * (3 + 2 * 4),
        "maxCost": 200_000,
        "estimatedUpstreamPages": 2,
        "maxUpstreamCalls": 20,
        "upstreamCalls": 1,
    }
    assert "extensions" not in post(fresh, {"query": QUERY}).json()
