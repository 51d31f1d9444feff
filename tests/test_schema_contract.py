"""The published schema: committed, complete with descriptions, and named as promised."""

from __future__ import annotations

from pathlib import Path

from graphql import GraphQLEnumType, GraphQLInputObjectType, GraphQLObjectType, GraphQLScalarType

from gateway.cli import main
from gateway.schema import build_schema, print_sdl
from tests.support import DEFAULT_LIMITS

ROOT = Path(__file__).resolve().parent.parent


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
    schema = build_schema(DEFAULT_LIMITS)._schema
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
    enum = build_schema(DEFAULT_LIMITS)._schema.type_map["LedgerEntryType"]
    assert isinstance(enum, GraphQLEnumType)
    assert len(set(enum.values) - {"UNKNOWN"}) == 16


def test_every_list_tells_a_routers_demand_control_its_size() -> None:
    """Every list field of the SDL carries @listSize (an assumed size, or the connection's
    `first` sizing its edges and nodes), and every field that calls the billing API @cost."""
    from graphql import is_list_type, is_non_null_type

    schema = build_schema(DEFAULT_LIMITS)
    sdl = print_sdl(schema)
    graphql_schema = schema._schema
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
