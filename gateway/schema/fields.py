"""One definition per field: how its value is read from the billing API's record.

A field declared with :func:`reads` carries its reader in the Strawberry field's metadata.
Strawberry's resolver for the field calls the reader, and so does the projection of
:mod:`gateway.schema.execution`, which finds it through the GraphQL field's Strawberry
definition. A field declared as a plain attribute is read with ``getattr``, as Strawberry's own
default resolver reads it. Any other field (an argument, an ``async`` resolver) has no reader,
and an object selecting it is completed by graphql-core field by field: adding a field is one
edit, and a field the projection does not know falls back by construction.

A field that fetches (``seatBalances``) is declared by its answer, an async function of the
request (:class:`Asked`) and its arguments; :func:`answering` makes Strawberry's resolver from
it, arguments and all, and :func:`answer_of` gives the compiled root the answer of a root field
only through a resolver made so: the resolver and the compiled root call the same function, and
there is no second body to drift.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

import strawberry
from graphql import GraphQLField, GraphQLList, GraphQLNonNull, GraphQLScalarType
from strawberry.federation.schema_directives import Cost, ListSize
from strawberry.types.unset import UNSET

from gateway.schema.context import request_context
from gateway.schema.selection import selected_names

if TYPE_CHECKING:
    from gateway.schema.context import RequestContext

READS = "gateway.reads"
JOINS = "gateway.joins"

Reader = Callable[[Any], Any]
# join(source, request context): starts attaching to the source what its readers read, and
# returns a future done once it is attached (None: it already is). Starting every join of an
# answer before awaiting any lets the loaders batch them.
Join = Callable[[Any, "RequestContext"], "asyncio.Future[Any] | None"]


def reads(
    read: Reader,
    *,
    description: str,
    directives: Sequence[object] = (),
    joins: Join | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Any:
    """A field whose value is ``read(source)``, whichever executor asks. ``joins``: what must
    be joined onto the source before it is read (awaited once per object, whichever of the
    fields sharing it are selected); ``metadata``: more of the field's facts (its weight)."""
    if joins is None:

        def resolver(root: Any) -> Any:
            return read(root)

    else:

        async def resolver(root: Any, info: strawberry.Info) -> Any:  # type: ignore[misc]
            pending = joins(root, info.context["gateway"])
            if pending is not None:
                await asyncio.wait((pending,))  # not cancelled with this field: others wait too
            return read(root)

    return strawberry.field(
        resolver=resolver,
        description=description,
        metadata={**(metadata or {}), READS: read, JOINS: joins},
        directives=list(directives),
    )


def join_of(field: GraphQLField) -> Join | None:
    """What a field's reader needs joined onto its source first (see :func:`reads`)."""
    definition = (field.extensions or {}).get("strawberry-definition")
    return definition.metadata.get(JOINS) if definition is not None else None


def item_of(attribute: str, key: str, *, optional: bool = False) -> Reader:
    """The reader ``source.<attribute>[key]`` (``.get(key)`` when ``optional``), which the
    compiled projection writes as that lookup instead of calling it (``lookup``)."""
    get = attrgetter(attribute)
    if optional:

        def read(source: Any) -> Any:
            return get(source).get(key)

    else:

        def read(source: Any) -> Any:
            return get(source)[key]

    read.lookup = (attribute, key, optional)  # type: ignore[attr-defined]
    return read


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


FACTS = "gateway.facts"


@dataclass(frozen=True, slots=True)
class Facts:
    """What the limits, the work estimate and the SDL's demand-control directives know of a
    field, declared once with it (``metadata={FACTS: Facts(...)}``): nothing restates them by
    name (:mod:`gateway.schema.limits`, :mod:`gateway.schema.work`)."""

    upstream: bool = False  # each run calls the billing API: at least one page
    seat_ids: str | None = None  # the argument whose items are seat ids sent upstream
    sized_by: str | None = None  # the list argument each item of which is one object listed
    page_filter: str | None = None  # the argument naming the seats a page may hold at most
    held: bool = False  # a list the billing API caps per page (a seat's commits or credits)
    # Lists of the object it returns that hold at most as many items as its `page_filter`
    # names, when it names any (else each its @listSize): a live update's seats.
    sizes_below: tuple[str, ...] = ()
    work: int = 1  # what completing it costs, per parent object, against a field read plainly


NO_FACTS = Facts()
# Federation's ``_entities`` is Strawberry's own field and declares nothing: each
# representation names one seat (or contract) and is one object of its list.
ENTITIES_FACTS = Facts(upstream=True, seat_ids="representations", sized_by="representations")
# What a field that calls the billing API weighs in a router's demand control (@cost): one
# upstream page more than a field read from a page.
UPSTREAM_PAGE_COST = 10


def facts_of(parent: Any, name: str) -> Facts:
    """The facts of field ``name`` of type ``parent`` (a GraphQL type)."""
    field = (getattr(parent, "fields", None) or {}).get(name)
    definition = (field.extensions or {}).get("strawberry-definition") if field else None
    facts: Facts | None = definition.metadata.get(FACTS) if definition is not None else None
    if facts is not None:
        return facts
    query_type = getattr(parent, "name", None) == "Query"
    return ENTITIES_FACTS if query_type and name == "_entities" else NO_FACTS


def declared(facts: Facts, *directives: object) -> dict[str, Any]:
    """A field's metadata and SDL directives from its facts: ``@cost`` for a field that calls
    the billing API (so the router's weights and the gateway's limits read one fact)."""
    cost = [Cost(weight=UPSTREAM_PAGE_COST)] if facts.upstream else []
    return {"metadata": {FACTS: facts}, "directives": [*cost, *directives]}


def assumed_size(size: int) -> ListSize:
    """How long a router's demand control may assume a list is (Apollo's @listSize), for a
    list no argument sizes: a seat holds a few credit types, rarely more than ten commits or
    credits (a page holds at most about 100 of them), a ledger tens of entries."""
    return ListSize(assumed_size=size, require_one_slicing_argument=False)  # type: ignore[call-arg]


@dataclass(frozen=True, slots=True)
class Asked:
    """What a root field's answer takes from the request besides its arguments: the request's
    context, the names selected at any depth below the field (the look-ahead, which decides the
    include flags) and the field's name."""

    context: RequestContext
    selected: frozenset[str]
    field_name: str


# answer(asked, **arguments), every argument by its Python name, none left to a default.
Answer = Callable[..., Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class _Answering:
    """What :func:`answering` made a resolver from."""

    answer: Answer
    reads_source: bool  # some arguments are read from the parent object, not the operation


# Every resolver made by answering(), with its answer: answer_of() trusts nothing else.
_MADE: WeakKeyDictionary[Callable[..., Any], _Answering] = WeakKeyDictionary()


def answering(
    answer: Answer, *, source: Mapping[str, Reader] | None = None
) -> Callable[..., Awaitable[Any]]:
    """Strawberry's resolver of a field whose value is ``answer(asked, **arguments)``, made
    from the answer so that the two cannot differ: the field's GraphQL arguments are the
    answer's keyword-only parameters (their annotations, with the descriptions, and their
    defaults), less those ``source`` reads from the parent object instead (``{Python name:
    reader}``, e.g. an entity's own ids), and its type is the answer's return annotation, read
    in the answer's module. The resolver does nothing but call the answer, so a behaviour of the
    field is the answer's, whichever executor asks; the compiled root calls the same answer
    without the resolver (:func:`answer_of`)."""
    signature = inspect.signature(answer)
    _asked, *keywords = signature.parameters.values()  # the answer takes Asked first
    sourced = dict(source or {})
    if any(parameter.kind is not inspect.Parameter.KEYWORD_ONLY for parameter in keywords):
        raise TypeError(f"{answer.__qualname__}: every argument must be keyword-only")
    unknown = set(sourced) - {parameter.name for parameter in keywords}
    if unknown:
        raise TypeError(f"{answer.__qualname__} has no parameter {sorted(unknown)}")
    arguments = [parameter for parameter in keywords if parameter.name not in sourced]
    reserved = [
        inspect.Parameter("info", inspect.Parameter.KEYWORD_ONLY, annotation=strawberry.Info)
    ]
    readers = tuple(sourced.items())
    if readers:
        reserved.insert(0, inspect.Parameter("root", inspect.Parameter.KEYWORD_ONLY))

        async def resolve(*, root: Any, info: strawberry.Info, **arguments: Any) -> Any:
            for name, read in readers:
                arguments[name] = read(root)
            return await answer(asked(info), **arguments)

    else:

        async def resolve(*, info: strawberry.Info, **arguments: Any) -> Any:  # type: ignore[misc]
            return await answer(asked(info), **arguments)

    # What Strawberry reads: the signature (arguments and return type), the module whose names
    # the answer's annotations use, and the name.
    resolve.__signature__ = signature.replace(parameters=[*reserved, *arguments])  # type: ignore[attr-defined]
    resolve.__annotations__ = {
        **{p.name: p.annotation for p in (*reserved, *arguments) if p.annotation is not p.empty},
        "return": signature.return_annotation,
    }
    resolve.__module__ = answer.__module__
    resolve.__name__ = resolve.__qualname__ = answer.__name__
    _MADE[resolve] = _Answering(answer, reads_source=bool(readers))
    return resolve


def asked(info: strawberry.Info) -> Asked:
    """What a root field's answer takes from a resolver's ``info``."""
    return Asked(request_context(info), selected_names(info._raw_info), info.field_name)


@dataclass(frozen=True, slots=True)
class RootAnswer:
    """A root field's answer and how its arguments reach it: (GraphQL name, Python name, the
    resolver's own default) per argument, in declaration order."""

    answer: Answer
    arguments: tuple[tuple[str, str, Any], ...]

    def keywords(self, values: dict[str, Any]) -> dict[str, Any]:
        """The answer's keyword arguments from graphql-core's coerced ``values`` (GraphQL
        names): an argument the operation leaves out takes the resolver's default."""
        return {python: values.get(graphql, default) for graphql, python, default in self.arguments}


def answer_of(field: GraphQLField) -> RootAnswer | None:
    """The answer of a root field whose resolver :func:`answering` made from it (and so calls
    exactly that answer, with every argument from the operation), when it can be called
    without Strawberry's resolver wrapper: no field extensions or permissions (they run in the
    wrapper), and only scalar arguments (and lists of them), which Strawberry passes on exactly
    as graphql-core coerced them."""
    definition = (field.extensions or {}).get("strawberry-definition")
    if definition is None or definition.extensions or definition.permission_classes:
        return None
    resolver = definition.base_resolver
    made = _MADE.get(resolver.wrapped_func) if resolver is not None else None
    if made is None or made.reads_source:
        return None
    arguments = []
    for argument in definition.arguments:
        graphql = _graphql_name(field, argument.python_name)
        if graphql is None or not _passes_unchanged(field.args[graphql].type):
            return None
        default = None if argument.default is UNSET else argument.default
        arguments.append((graphql, argument.python_name, default))
    return RootAnswer(made.answer, tuple(arguments))


def _graphql_name(field: GraphQLField, python_name: str) -> str | None:
    """The GraphQL name Strawberry gave the argument it declared as ``python_name``."""
    for name, argument in field.args.items():
        definition = (argument.extensions or {}).get("strawberry-definition")
        if definition is not None and definition.python_name == python_name:
            return name
    return None


def _passes_unchanged(type_: Any) -> bool:
    """Whether Strawberry's argument conversion returns graphql-core's value unchanged: a
    scalar, or a list of such, nullable or not (an enum or an input object it converts)."""
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return isinstance(type_, GraphQLScalarType)
