"""The published schemas: committed, complete with descriptions, and named as promised; the
subgraph SDL for routers (``schema.graphql``) and the API schema for client tools
(``client-schema.graphql``)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLObjectType,
    GraphQLScalarType,
    assert_valid_schema,
    is_object_type,
    parse,
    print_schema,
    print_type,
    validate,
)
from graphql import build_schema as build_graphql_schema

from gateway.app import demo_query
from gateway.cli import main
from gateway.config import Settings
from gateway.schema import build_schema, print_client_sdl, print_sdl
from gateway.schema.sdl import without_directive
from gateway.standin import create_standin_app
from tests.support import DEFAULT_LIMITS, authenticated_marks, running_gateway

ROOT = Path(__file__).resolve().parent.parent
CLIENT_SCHEMA = ROOT / "client-schema.graphql"
# What the SDL marks with @authenticated when GATEWAY_FEDERATION_AUTH_DIRECTIVES is on: every
# way into a customer's seats.
AUTHENTICATED = {"Query.seatBalances", "Query.node", "Query.nodes", "Contract.seatBalances", "Seat"}
FEDERATION_NAMES = ("_entities", "_service", "_Any", "_Entity", "_Service", "@link", "@key")


def test_schema_graphql_is_the_export_of_the_code() -> None:
    """schema.graphql is exactly what `gateway export-schema` writes; regenerate on drift."""
    committed = (ROOT / "schema.graphql").read_text()
    assert committed == print_sdl(build_schema(DEFAULT_LIMITS)), (
        "schema.graphql is stale: run `gateway export-schema` and commit the result"
    )


def test_export_schema_check_fails_on_drift(tmp_path: Path) -> None:
    """`gateway export-schema --check` exits 1 for a stale file and 0 once regenerated."""
    target = tmp_path / "schema.graphql"
    target.write_text("type Query { stale: Int }\n")
    assert main(["export-schema", "--path", str(target), "--check"]) == 1
    assert main(["export-schema", "--path", str(target)]) == 0
    assert main(["export-schema", "--path", str(target), "--check"]) == 0


def test_every_type_field_and_argument_is_described() -> None:
    """GraphiQL and schema.graphql document every name of the API."""
    schema = build_schema(DEFAULT_LIMITS).graphql_schema
    missing = []
    for name, kind in schema.type_map.items():
        # Introspection, federation's own (_Any, link__Import, ...) and built-in scalars.
        if (
            name.startswith("_")
            or "__" in name
            or name in ("String", "Int", "Float", "Boolean", "ID")
        ):
            continue
        if not kind.description:
            missing.append(name)
        if isinstance(kind, GraphQLObjectType | GraphQLInputObjectType):
            for field_name, field in kind.fields.items():
                if field_name.startswith("_"):
                    continue  # federation's _entities and _service
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        if isinstance(kind, GraphQLEnumType):
            assert kind.values, name
        assert not isinstance(kind, GraphQLScalarType) or kind.description, name
    assert missing == []


def test_the_promised_names_are_there() -> None:
    """The field names the issue fixed as public contract exist with their types."""
    sdl = print_sdl(build_schema(DEFAULT_LIMITS))
    for line in (
        "startCursor: String",
        "endCursor: String",
        "hasPreviousPage: Boolean!",
        "hasNextPage: Boolean!",
        "edges: [SeatEdge!]!",
        "node: Seat!",
        "balances: [CreditTypeBalance!]!",
        "commits: [Commit!]!",
        "credits: [Credit!]!",
        "ledgerEntries: [LedgerEntry!]!",
        "type: LedgerEntryType!",
        "startDate: DateTime!",
        "endDate: DateTime",
        "commitId: ID!",
        "creditId: ID!",
        "creditTypeId: ID!",
        "startingBalance: Float!",
    ):
        assert line in sdl, line
    enum = build_schema(DEFAULT_LIMITS).graphql_schema.type_map["LedgerEntryType"]
    assert isinstance(enum, GraphQLEnumType)
    assert len(set(enum.values) - {"UNKNOWN"}) == 16


def test_every_list_tells_a_routers_demand_control_its_size() -> None:
    """Every list field of the SDL carries @listSize (an assumed size, or the connection's
    `first` sizing its edges and nodes), and every field that calls the billing API @cost."""
    from graphql import is_list_type, is_non_null_type

    schema = build_schema(DEFAULT_LIMITS)
    sdl = print_sdl(schema)
    graphql_schema = schema.graphql_schema
    for type_name in ("Seat", "Commit", "Credit"):
        for name, field in graphql_schema.get_type(type_name).fields.items():  # type: ignore[union-attr]
            inner = field.type.of_type if is_non_null_type(field.type) else field.type
            if is_list_type(inner):
                line = next(
                    line for line in sdl.splitlines() if line.strip().startswith(f"{name}:")
                )
                assert "@listSize(assumedSize:" in line, (type_name, name, line)
    for line in sdl.splitlines():
        if line.strip().startswith(("): SeatConnection", "): Node", "): [Node]")):
            assert "@cost(weight:" in line, line
    assert 'sizedFields: ["edges", "nodes"]' in sdl


# --- @authenticated: a hint for routers, printed only when asked for ---------------------------


def test_the_sdl_leaves_out_authenticated_by_default() -> None:
    """schema.graphql (the default export) neither imports nor applies @authenticated, which
    @apollo/gateway refuses and an unlicensed Apollo Router halts on; the rest is Strawberry's
    print of the schema, byte for byte."""
    committed = (ROOT / "schema.graphql").read_text()
    assert "authenticated" not in committed
    with_hint = print_sdl(build_schema(DEFAULT_LIMITS, auth_directives=True))
    assert committed == without_directive(with_hint, "authenticated")


def test_auth_directives_mark_every_way_into_a_customers_seats() -> None:
    """With auth directives on, the SDL imports @authenticated from federation 2.9 and marks
    seatBalances, node, nodes, Contract.seatBalances and Seat, and nothing else changes."""
    schema = build_schema(DEFAULT_LIMITS, auth_directives=True)
    sdl = print_sdl(schema)
    assert sdl == schema.as_str() + "\n"
    assert 'import: ["@authenticated", "@cost", "@key", "@listSize"]' in sdl
    assert authenticated_marks(sdl) == AUTHENTICATED


def test_cutting_a_directive_keeps_descriptions_that_name_it() -> None:
    """Only applications and the @link import are cut, found by the parser, not by text."""
    sdl = (
        'schema @link(url: "https://specs.apollo.dev/federation/v2.9", '
        'import: ["@key", "@authenticated"]) {\n  query: Query\n}\n\n'
        '"""Needs @authenticated callers."""\n'
        "type Query {\n  a: Int @authenticated\n  b: Int\n}\n"
    )
    assert without_directive(sdl, "authenticated") == (
        'schema @link(url: "https://specs.apollo.dev/federation/v2.9", import: ["@key"]) {\n'
        '  query: Query\n}\n\n"""Needs @authenticated callers."""\n'
        "type Query {\n  a: Int\n  b: Int\n}\n"
    )


@pytest.mark.parametrize("auth_directives", [False, True], ids=["default", "auth directives"])
def test_the_served_sdl_is_the_export(auth_directives: bool, tmp_path: Path) -> None:
    """`{ _service { sdl } }` serves exactly what `gateway export-schema` writes for the same
    setting: schema.graphql by default, with @authenticated under
    GATEWAY_FEDERATION_AUTH_DIRECTIVES=true."""
    exported = tmp_path / "schema.graphql"
    flags = ["--auth-directives"] if auth_directives else []
    assert main(["export-schema", "--path", str(exported), *flags]) == 0
    if not auth_directives:
        assert exported.read_text() == (ROOT / "schema.graphql").read_text()
    settings = Settings(federation_auth_directives=auth_directives)
    with running_gateway(settings, httpx.ASGITransport(app=create_standin_app())) as gateway:
        served = gateway.query("{ _service { sdl } }", token=None)["_service"]["sdl"]
        assert served + "\n" == exported.read_text()
        # Printed once, served as printed.
        assert gateway.query("{ _service { sdl } }", token=None)["_service"]["sdl"] == served
    assert ("@authenticated" in served) is auth_directives


# --- client-schema.graphql: the API schema client tools load ---------------------------------


def test_client_schema_graphql_is_the_export_of_the_code() -> None:
    """client-schema.graphql is exactly what `gateway export-schema --client` writes."""
    assert CLIENT_SCHEMA.read_text() == print_client_sdl(build_schema(DEFAULT_LIMITS)), (
        "client-schema.graphql is stale: run `gateway export-schema --client` and commit it"
    )


def test_export_schema_client_check_fails_on_drift(tmp_path: Path) -> None:
    """`gateway export-schema --client --check` exits 1 for a stale file (the subgraph SDL
    included) and 0 once regenerated."""
    target = tmp_path / "client-schema.graphql"
    target.write_text((ROOT / "schema.graphql").read_text())
    assert main(["export-schema", "--client", "--path", str(target), "--check"]) == 1
    assert main(["export-schema", "--client", "--path", str(target)]) == 0
    assert main(["export-schema", "--client", "--path", str(target), "--check"]) == 0
    assert target.read_text() == CLIENT_SCHEMA.read_text()


def test_client_schema_graphql_loads_in_graphql_core_as_is() -> None:
    """graphql-core's build_schema (what Python's gql loads) takes the committed file as is,
    unlike the subgraph SDL; it is the served API without federation's fields, types and
    directives, and the README's first query is valid against it."""
    with pytest.raises(TypeError, match="Unknown directive '@link'"):
        build_graphql_schema((ROOT / "schema.graphql").read_text())

    text = CLIENT_SCHEMA.read_text()
    client = build_graphql_schema(text)
    assert_valid_schema(client)
    assert print_schema(client) + "\n" == text
    for name in FEDERATION_NAMES:
        assert name not in text, name
    assert "@cost" not in text and "@listSize" not in text and "@authenticated" not in text
    assert [d.name for d in client.directives] == [
        "include", "skip", "deprecated", "specifiedBy", "oneOf"
    ]  # fmt: skip

    served = build_schema(DEFAULT_LIMITS).graphql_schema
    assert client.query_type is not None and served.query_type is not None
    assert list(client.query_type.fields) == [
        name for name in served.query_type.fields if not name.startswith("_")
    ]
    # Every type a client can reach, with the fields and arguments it is served with.
    for name, kind in client.type_map.items():
        if name.startswith("__") or name == "Query":
            continue
        assert print_type(kind) == print_type(served.type_map[name]), name
    # Federation's own types, and Contract, which only _entities reaches.
    assert set(served.type_map) - set(client.type_map) == {
        "_Any", "_Entity", "_Service", "_FieldSet", "link__Import", "link__Purpose", "Contract"
    }  # fmt: skip
    assert validate(client, parse(demo_query())) == []


ROOT_TYPES = ("Query", "Subscription")


def test_the_readme_names_a_graphcache_key_for_every_type_without_an_id() -> None:
    """README's urql graphcache `keys` lists exactly the object types of the client schema
    that have no `id` (graphcache warns about, and cannot normalize, the others)."""
    client = build_graphql_schema(CLIENT_SCHEMA.read_text())
    without_id = {
        name
        for name, kind in client.type_map.items()
        if is_object_type(kind) and not name.startswith("__") and name not in ROOT_TYPES
        if "id" not in kind.fields  # type: ignore[union-attr]
    }
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"keys: \{(.*?)\n *\}", readme, re.S)
    assert block, "README shows graphcache's keys"
    assert set(re.findall(r"(\w+): \(\) => null", block[1])) == without_id
