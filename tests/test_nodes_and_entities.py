"""Refetching by id (Relay Node) and federation entity lookups, batched per contract."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from gateway.schema.ids import (
    GlobalIds,
    global_id,
    global_ids,
    legacy_global_id,
    parse_global_id,
)
from gateway.standin import (
    DEMO_CONTRACT_ID,
    DEMO_CUSTOMER_ID,
    OTHER_CONTRACT_ID,
    OTHER_CUSTOMER_ID,
    OTHER_TOKEN,
)
from tests.support import Gateway

IDS = {"customerId": DEMO_CUSTOMER_ID, "contractId": DEMO_CONTRACT_ID}
PAGE = """query($customerId: ID!, $contractId: ID!, $first: Int) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: $first) {
    nodes { id seatId balances { balance } commits { id commitId balance } credits { id creditId } }
  }
}"""
NODES = """query($ids: [ID!]!) {
  nodes(ids: $ids) {
    __typename id
    ... on Seat { seatId balances { balance } }
    ... on Commit { commitId balance }
    ... on Credit { creditId }
  }
}"""


def _id(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _raw(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _bytes(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


@pytest.fixture
def page(gateway: Gateway) -> list[dict[str, Any]]:
    seats = gateway.query(PAGE, {**IDS, "first": 12})["seatBalances"]["nodes"]
    gateway.calls.clear()
    return seats


def test_nodes_over_four_seats_costs_one_upstream_call(
    gateway: Gateway, page: list[dict[str, Any]]
) -> None:
    """Four seat ids of one contract are refetched with one call, in the order asked."""
    seats = [page[1], page[7], page[3], page[0]]
    data = gateway.query(NODES, {"ids": [seat["id"] for seat in seats]})
    assert [node["seatId"] for node in data["nodes"]] == [seat["seatId"] for seat in seats]
    assert [node["balances"] for node in data["nodes"]] == [seat["balances"] for seat in seats]
    [call] = gateway.calls
    assert call.body == {
        "customer_id": DEMO_CUSTOMER_ID,
        "contract_id": DEMO_CONTRACT_ID,
        "seat_ids": sorted(seat["seatId"] for seat in seats),
        "skip_missing_seat_ids": True,
        "limit": 4,
    }


def test_commits_and_credits_are_refetched_by_id(
    gateway: Gateway, page: list[dict[str, Any]]
) -> None:
    """A per-seat commit or credit id comes back as that seat's commit, with its balance."""
    held = [seat for seat in page if seat["commits"] and seat["credits"]][:2]
    wanted = [held[0]["commits"][0], held[1]["credits"][0], held[0]["commits"][-1]]
    data = gateway.query(NODES, {"ids": [item["id"] for item in wanted]})
    assert data["nodes"][0] == {
        "__typename": "Commit",
        **{k: wanted[0][k] for k in ("id", "commitId", "balance")},
    }
    assert data["nodes"][1] == {
        "__typename": "Credit",
        "id": wanted[1]["id"],
        "creditId": wanted[1]["creditId"],
    }
    assert data["nodes"][2]["id"] == wanted[2]["id"]
    assert len(gateway.calls) == 1
    assert gateway.calls[0].body["include_credits_and_commits"] is True


def test_node_of_a_seat_that_is_gone_is_null(gateway: Gateway, page: list[dict[str, Any]]) -> None:
    """An id that names no seat any more refetches as null, not as an error."""
    ghost = _id(f'Seat:["{DEMO_CUSTOMER_ID}","{DEMO_CONTRACT_ID}","ghost@nowhere.example"]')
    data = gateway.query(NODES, {"ids": [ghost, page[0]["id"]]})
    assert data["nodes"][0] is None
    assert data["nodes"][1]["seatId"] == page[0]["seatId"]
    assert len(gateway.calls) == 1


@pytest.mark.parametrize(
    "bad_id",
    [
        "not-an-id",
        base64.urlsafe_b64encode(b'User:["42"]').decode(),
        base64.urlsafe_b64encode(b'Seat:["acme","contract","x"]').decode(),
        base64.urlsafe_b64encode(b"Seat:{}").decode(),
        # Ours in form, not in content: a seat id the seatIds argument and the federation key
        # refuse (empty, over 512 characters), an empty commit id, an over-long one.
        global_id("Seat", DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, ""),
        global_id("Seat", DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, "x" * 513),
        global_id("Commit", DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, "ada@acme.example", ""),
        global_id("Credit", DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, "ada@acme.example", "k" * 513),
        # The binary form broken: a UUID cut short, a length past the end, text that is not
        # UTF-8, a length that never ends, a length below zero (written in two bytes, followed
        # by what would read as a seat's parts), a type byte we do not issue, a commit's four parts
        # under the seat's type byte, nothing at all.
        _raw(b"\x81\x00" + bytes(10)),
        _raw(b"\x81\x05ab"),
        _raw(b"\x81\x03\xff\xfe"),
        _raw(b"\x81\x80\x80\x80\x80\x80"),
        _raw(b"\x81\x80\x00" + bytes(16) + bytes(16) + b"\x02a"),  # a length of -1
        _raw(b"\x84\x02a\x02b\x02c"),
        _raw(
            b"\x81"
            + _bytes(
                global_id("Commit", DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, "ada@acme.example", "c")
            )[1:]
        ),
        "",
    ],
)
def test_malformed_or_foreign_ids_are_bad_user_input(gateway: Gateway, bad_id: str) -> None:
    """An id that is not ours, or of a type we do not serve, is refused before any call."""
    [error] = gateway.errors("query($id: ID!) { node(id: $id) { id } }", {"id": bad_id})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.calls == []


def test_one_bad_id_among_nodes_refuses_the_whole_list_before_any_call(
    gateway: Gateway, page: list[dict[str, Any]]
) -> None:
    """nodes(ids:) checks every id first, so a bad one costs no upstream call."""
    [error] = gateway.errors(NODES, {"ids": [page[0]["id"], "garbage"]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "ids" in error["message"]
    assert gateway.calls == []


ENTITIES = """query($representations: [_Any!]!) {
  _entities(representations: $representations) {
    ... on Seat { seatId balances { creditTypeId balance } %s }
  }
}"""


def test_entities_of_one_contract_cost_one_call_and_unknown_seats_are_null(
    gateway: Gateway,
    page: list[dict[str, Any]],
) -> None:
    """N Seat representations of one contract: one call; an unknown seat is a null entity."""
    representations = [
        {"__typename": "Seat", **IDS, "seatId": seat["seatId"]} for seat in page[:5]
    ] + [{"__typename": "Seat", **IDS, "seatId": "ghost@nowhere.example"}]
    data = gateway.query(
        ENTITIES % "commits { commitId ledgerEntries { amount } }",
        {"representations": representations},
    )
    entities = data["_entities"]
    assert [e["seatId"] if e else None for e in entities] == [s["seatId"] for s in page[:5]] + [
        None
    ]
    assert [e["commits"] and [c["commitId"] for c in e["commits"]] for e in entities[:5]] == [
        s["commits"] and [c["commitId"] for c in s["commits"]] for s in page[:5]
    ]
    [call] = gateway.calls
    assert call.body["include_credits_and_commits"] is True
    assert call.body["include_ledgers"] is True
    assert call.body["skip_missing_seat_ids"] is True


def test_entity_include_flags_follow_the_selection(
    gateway: Gateway, page: list[dict[str, Any]]
) -> None:
    """Entities selecting only balances ask the billing API for no commits or ledgers."""
    representations = [{"__typename": "Seat", **IDS, "seatId": s["seatId"]} for s in page[:3]]
    gateway.query(ENTITIES % "", {"representations": representations})
    [call] = gateway.calls
    assert "include_credits_and_commits" not in call.body
    assert "include_ledgers" not in call.body


def test_entities_of_two_contracts_cost_one_call_each(
    gateway: Gateway, page: list[dict[str, Any]]
) -> None:
    """Seats of different (customer, contract) pairs are batched per pair."""
    other = {"customerId": OTHER_CUSTOMER_ID, "contractId": OTHER_CONTRACT_ID}
    representations = [
        {"__typename": "Seat", **IDS, "seatId": page[0]["seatId"]},
        {"__typename": "Seat", **other, "seatId": "nobody@globex.example"},
        {"__typename": "Seat", **IDS, "seatId": page[1]["seatId"]},
    ]
    # The demo token cannot see the other customer: its entity fails, the others do not.
    payload = gateway.post(ENTITIES % "", {"representations": representations}).json()
    assert payload["data"]["_entities"][0]["seatId"] == page[0]["seatId"]
    assert payload["data"]["_entities"][2]["seatId"] == page[1]["seatId"]
    assert payload["data"]["_entities"][1] is None
    assert payload["errors"][0]["extensions"]["code"] == "NOT_FOUND"
    assert payload["errors"][0]["path"] == ["_entities", 1]
    assert sorted(call.body["customer_id"] for call in gateway.calls) == sorted(
        [DEMO_CUSTOMER_ID, OTHER_CUSTOMER_ID]
    )
    assert OTHER_TOKEN not in str(payload)


def test_a_malformed_representation_is_bad_user_input(gateway: Gateway) -> None:
    """A representation without a UUID customerId is refused for that entity only."""
    payload = gateway.post(
        ENTITIES % "",
        {
            "representations": [
                {
                    "__typename": "Seat",
                    "customerId": "acme",
                    "contractId": DEMO_CONTRACT_ID,
                    "seatId": "a",
                }
            ]
        },
    ).json()
    assert payload["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert gateway.calls == []


def test_contract_entity_reaches_the_seat_balances_connection(gateway: Gateway) -> None:
    """A Contract known elsewhere by (id, customerId) lists its seats through billing."""
    data = gateway.query(
        """query($representations: [_Any!]!) {
          _entities(representations: $representations) {
            ... on Contract { id seatBalances(first: 3) { nodes { seatId } pageInfo { hasNextPage } } }
          }
        }""",
        {
            "representations": [
                {"__typename": "Contract", "id": DEMO_CONTRACT_ID, "customerId": DEMO_CUSTOMER_ID}
            ]
        },
    )
    [contract] = data["_entities"]
    assert len(contract["seatBalances"]["nodes"]) == 3
    assert contract["seatBalances"]["pageInfo"]["hasNextPage"] is True
    assert len(gateway.calls) == 1


@pytest.mark.parametrize("type_name", ["Seat", "Commit", "Credit"])
@pytest.mark.parametrize(
    "parts",
    [
        (),
        ("a",),
        ("ab", "c"),
        (DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, 'é"\\x\u2028'),
        # Not canonical UUIDs (upper case, no hyphens): kept as the text they are.
        (DEMO_CUSTOMER_ID.upper(), DEMO_CONTRACT_ID.replace("-", "")),
    ],
)
def test_the_encoded_prefix_gives_the_ids_global_id_gives(
    type_name: str, parts: tuple[str, ...]
) -> None:
    """A page's ids come from an encoder of their common beginning (GlobalIds), remembered
    across requests: each is the same text as global_id, the reference, spells out, whatever
    the length of the beginning (base64's 3-byte groups) and the characters or length of the
    last part (a UUID, text shorter or longer than a one-byte length), also once its memo was
    emptied; and each reads back as exactly its parts."""
    ids = global_ids(type_name, *parts)
    lasts = [
        "",
        "z",
        "zz",
        "zzz",
        'ü"\n\\',
        "k" * 126,
        "k" * 127,
        "k" * 513,
        "\u2028" * 6000,
        DEMO_CONTRACT_ID,
        *(f"seat-{n}" for n in range(300)),
    ]
    for last in lasts * 2:
        made = global_id(type_name, *parts, last)
        assert ids[last] == made
        assert GlobalIds(type_name, *parts)[last] == made
        assert parse_global_id(made) == (type_name, [*parts, last])


def test_each_byte_of_a_binary_id_is_read_once() -> None:
    """A length written in two bytes as zero (one less than an empty part's) is refused, not
    read as an empty part followed by a second reading of its own bytes."""
    # Misread, the zero of the length would begin a UUID part of the 16 bytes after it.
    body = b"\x00" + bytes(16) + b"\x00" + bytes(16) + b"\x80\x00" + bytes(16)
    with pytest.raises(ValueError):
        parse_global_id(_raw(b"\x82" + body))


def test_an_id_is_shorter_than_the_ids_it_stands_for(
    gateway: Gateway, page: list[dict[str, Any]]
) -> None:
    """A commit's id holds its customer, contract, seat and commit: it is shorter than those
    four written out, so a client selecting ``id`` everywhere does not double the answer."""
    seat = next(seat for seat in page if seat["commits"])
    commit = seat["commits"][0]
    written_out = len(DEMO_CUSTOMER_ID + DEMO_CONTRACT_ID + seat["seatId"] + commit["commitId"])
    assert len(commit["id"]) < written_out
    assert parse_global_id(commit["id"]) == (
        "Commit",
        [DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, seat["seatId"], commit["commitId"]],
    )


def test_ids_issued_in_the_old_form_still_refetch(
    gateway: Gateway, page: list[dict[str, Any]]
) -> None:
    """Ids issued before the binary form (base64 of ``Type:[parts]``), kept by a client,
    refetch the same seat, commit and credit as today's ids, with one call, answered with
    today's ids."""
    seat = next(seat for seat in page if seat["commits"] and seat["credits"])
    commit, credit = seat["commits"][0], seat["credits"][0]
    key = (DEMO_CUSTOMER_ID, DEMO_CONTRACT_ID, seat["seatId"])
    old = [
        legacy_global_id("Seat", *key),
        legacy_global_id("Commit", *key, commit["commitId"]),
        legacy_global_id("Credit", *key, credit["creditId"]),
    ]
    assert not set(old) & {seat["id"], commit["id"], credit["id"]}
    data = gateway.query(NODES, {"ids": old})
    assert [node["id"] for node in data["nodes"]] == [seat["id"], commit["id"], credit["id"]]
    assert data["nodes"][0]["seatId"] == seat["seatId"]
    assert data["nodes"][1]["commitId"] == commit["commitId"]
    assert data["nodes"][2]["creditId"] == credit["creditId"]
    assert len(gateway.calls) == 1
