"""The two published schemas, both derived from the one served schema.

- **The subgraph SDL** (``schema.graphql``, ``{ _service { sdl } }``): what routers compose,
  Strawberry's ``print_schema``. ``@authenticated`` is a GraphOS-licensed feature of Apollo
  Router that ``@apollo/gateway`` refuses and an unlicensed Router halts on; billing enforces
  authentication itself, so the directive is only a hint, printed when asked for
  (``GATEWAY_FEDERATION_AUTH_DIRECTIVES``) and otherwise cut out of the printed text.
- **The client schema** (``client-schema.graphql``): the API a client of this gateway sees,
  without federation's fields, types and directives, for tools that load a schema file
  (graphql-js's ``buildSchema``, graphql-core's ``build_schema``, GraphQL Code Generator, Relay's
  compiler, ``gql``); graphql-core's ``print_schema`` of the served schema with federation's
  parts taken away.
"""

from __future__ import annotations

from graphql import (
    DirectiveNode,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    ListValueNode,
    StringValueNode,
    is_interface_type,
    parse,
    print_schema,
    specified_directives,
    visit,
)
from graphql.language import Visitor

# The root fields the federation spec adds for routers (subgraph spec: _entities, _service).
FEDERATION_ROOT_FIELDS = frozenset({"_entities", "_service"})


def without_directive(sdl: str, name: str) -> str:
    """``sdl`` without any application of ``@name`` nor its ``@link`` import; every other
    byte is kept as printed. Cut by the parser's locations, so a description that mentions
    the directive is left alone."""
    cuts = _DirectiveCuts(name)
    visit(parse(sdl), cuts)
    kept, start = [], 0
    for cut_start, cut_end in sorted(cuts.spans):
        kept.append(sdl[start:cut_start])
        start = cut_end
    kept.append(sdl[start:])
    return "".join(kept)


class _DirectiveCuts(Visitor):
    """The spans of ``sdl`` that apply or import one directive."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.spans: list[tuple[int, int]] = []

    def enter_directive(self, node: DirectiveNode, *_: object) -> None:
        if node.name.value == self.name and node.loc is not None:
            # From the end of the token before it: " @authenticated" goes with its space.
            previous = node.loc.start_token.prev
            start = previous.end if previous is not None else node.loc.start
            self.spans.append((start, node.loc.end))
        elif node.name.value == "link":
            for argument in node.arguments or ():
                if argument.name.value == "import" and isinstance(argument.value, ListValueNode):
                    self._cut_import(argument.value)

    def _cut_import(self, imports: ListValueNode) -> None:
        values = list(imports.values)
        for i, value in enumerate(values):
            if not (isinstance(value, StringValueNode) and value.value == f"@{self.name}"):
                continue
            assert value.loc is not None
            if i + 1 < len(values):  # '"@authenticated", ' up to the next import
                following = values[i + 1].loc
                assert following is not None
                self.spans.append((value.loc.start, following.start))
            elif i > 0:  # the last import: from the end of the one before
                preceding = values[i - 1].loc
                assert preceding is not None
                self.spans.append((preceding.end, value.loc.end))
            else:
                self.spans.append((value.loc.start, value.loc.end))


def client_schema(schema: GraphQLSchema) -> GraphQLSchema:
    """The served schema as a client of this gateway sees it: the query root without
    ``_entities`` and ``_service``, the subscription root, the types reachable from them (so
    ``_Any``, ``_Entity``,
    ``_Service`` and ``Contract``, reachable only through ``_entities``, are gone, while every
    implementation of a reachable interface stays), and only the directives every GraphQL
    implementation knows."""
    served = schema.query_type
    assert served is not None
    query = GraphQLObjectType(
        served.name,
        {name: f for name, f in served.fields.items() if name not in FEDERATION_ROOT_FIELDS},
        interfaces=served.interfaces,
        description=served.description,
    )
    extra: list[GraphQLNamedType] = []
    while True:
        client = GraphQLSchema(
            query=query,
            subscription=schema.subscription_type,
            types=extra,
            directives=specified_directives,
        )
        missing = [
            implementation
            for kind in client.type_map.values()
            if is_interface_type(kind)
            for implementation in schema.get_possible_types(kind)
            if implementation.name not in client.type_map
        ]
        if not missing:
            return client
        extra.extend(missing)


def print_client_schema(schema: GraphQLSchema) -> str:
    """The committed ``client-schema.graphql``: graphql-core's ``print_schema`` of
    :func:`client_schema`, and a newline."""
    return print_schema(client_schema(schema)) + "\n"
