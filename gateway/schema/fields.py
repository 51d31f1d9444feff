"""One definition per field: how its value is read from the billing API's record.

A field declared with :func:`reads` carries its reader in the Strawberry field's metadata.
Strawberry's resolver for the field calls the reader, and so does the projection of
:mod:`gateway.schema.execution`, which finds it through the GraphQL field's Strawberry
definition. A field declared as a plain attribute is read with ``getattr``, as Strawberry's own
default resolver reads it. Any other field (an argument, an ``async`` resolver) has no reader,
and an object selecting it is completed by graphql-core field by field: adding a field is one
edit, and a field the projection does not know falls back by construction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any

import strawberry
from graphql import GraphQLField
from strawberry.federation.schema_directives import ListSize

READS = "gateway.reads"

Reader = Callable[[Any], Any]


def reads(read: Reader, *, description: str, directives: Sequence[object] = ()) -> Any:
    """A field whose value is ``read(source)``, whichever executor asks."""

    def resolver(root: Any) -> Any:
        return read(root)

    return strawberry.field(
        resolver=resolver,
        description=description,
        metadata={READS: read},
        directives=list(directives),
    )


def reader_of(field: GraphQLField) -> Reader | None:
    """The reader of a schema field: its :func:`reads` reader, ``getattr`` for a plain
    attribute, ``None`` for a field only its own resolver can answer."""
    definition = (field.extensions or {}).get("strawberry-definition")
    # Arguments and field extensions (permissions among them) run in Strawberry's resolver.
    if definition is None or definition.arguments or definition.extensions:
        return None
    read: Reader | None = definition.metadata.get(READS)
    if read is not None:
        return read
    if definition.base_resolver is None:
        return attrgetter(definition.python_name)
    return None


def assumed_size(size: int) -> ListSize:
    """How long a router's demand control may assume a list is (Apollo's @listSize), for a
    list no argument sizes: a seat holds a few credit types, rarely more than ten commits or
    credits (a page holds at most about 100 of them), a ledger tens of entries."""
    return ListSize(assumed_size=size, require_one_slicing_argument=False)  # type: ignore[call-arg]
