"""The variables and the root field's arguments of a stored operation, coerced by a plan made
once per operation, as graphql-jit compiles coercion; graphql-core's own coercion for anything
the plan does not cover.

graphql-core coerces an operation's variables (``get_variable_values``) and then the root
field's arguments (``get_argument_values``) on every request, walking the definitions, the
argument nodes and the types each time: 13 µs apiece under load on shape A (BENCHMARKS.md,
round eight), for two ``ID!`` variables and a field of ten arguments. What the walk decides
depends on the document alone, except the variables' values: an argument that is absent, or a
literal, has the same value on every request; one that is a variable takes that variable's
value. The plan keeps the first kind as values and the second as names, and checks at request
time only what depends on the variables.

It covers what clients send: variables of type ``ID``, ``String``, ``Int``, ``Float`` or
``Boolean`` (nullable or not), given as a value graphql-core's scalar would take unchanged, or
left out for their default or for null; arguments that are absent, literals without variables,
or a variable directly. Anything else (an input object, a list, a value the scalar would convert
or refuse, a null for a non-null type, a missing required variable) is not decided here: the
request goes through graphql-core's functions, which coerce it or report its error as before.
So a plan's answer is always graphql-core's, which ``tests/test_coercion.py`` checks over a
corpus of documents and inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

from graphql import (
    FieldNode,
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLError,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    ListValueNode,
    NamedTypeNode,
    NameNode,
    NonNullTypeNode,
    ObjectValueNode,
    ValueNode,
    VariableDefinitionNode,
    VariableNode,
    is_required_argument,
)
from graphql.execution.values import get_argument_values, get_variable_values
from graphql.pyutils import Undefined

_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1  # GraphQL's Int: 32-bit signed


def _string(value: Any) -> bool:
    return type(value) is str


def _int(value: Any) -> bool:
    return type(value) is int and _INT_MIN <= value <= _INT_MAX


def _float(value: Any) -> bool:
    return type(value) is float and math.isfinite(value)


def _boolean(value: Any) -> bool:
    return type(value) is bool


# For each built-in scalar, the inputs its parse_value returns unchanged.
_TAKEN_AS_IS: dict[GraphQLScalarType, Callable[[Any], bool]] = {
    GraphQLID: _string,
    GraphQLString: _string,
    GraphQLInt: _int,
    GraphQLFloat: _float,
    GraphQLBoolean: _boolean,
}

# Stands for a required argument's value when its variable has none: graphql-core reports it.
_DECLINE: Any = object()
# An argument whose value is its variable's: (output name, variable name, non-null type,
# the value when the variable has none (Undefined: the argument is left out), or _DECLINE
# when the argument is required).
_FromVariable = tuple[str, str, bool, Any]


class _Variable:
    __slots__ = ("default", "name", "non_null", "takes")

    def __init__(
        self, name: str, takes: Callable[[Any], bool], non_null: bool, default: Any
    ) -> None:
        self.name = name
        self.takes = takes
        self.non_null = non_null
        self.default = default  # its coerced default; Undefined: none


class ArgumentPlan:
    """The coerced arguments of one field node of one operation, from the request's raw
    variables: :meth:`values`, or ``None`` where graphql-core must decide."""

    __slots__ = ("_constant", "_from_variables", "_variables")

    def __init__(
        self,
        variables: tuple[_Variable, ...],
        constant: dict[str, Any],
        from_variables: tuple[_FromVariable, ...],
    ) -> None:
        self._variables = variables
        self._constant = constant
        self._from_variables = from_variables

    def values(self, inputs: dict[str, Any]) -> dict[str, Any] | None:
        coerced: dict[str, Any] = {}
        for variable in self._variables:
            value = inputs.get(variable.name, Undefined)
            if value is Undefined:
                if variable.default is not Undefined:
                    coerced[variable.name] = variable.default
                elif variable.non_null:
                    return None  # graphql-core reports the missing variable
                continue
            if value is None:
                if variable.non_null:
                    return None
            elif not variable.takes(value):
                return None
            coerced[variable.name] = value
        values = self._constant.copy()
        for out_name, name, non_null, otherwise in self._from_variables:
            value = coerced.get(name, Undefined)
            if value is Undefined:
                if otherwise is _DECLINE:
                    return None
                if otherwise is not Undefined:
                    values[out_name] = otherwise
            elif value is None and non_null:
                return None
            else:
                values[out_name] = value
        return values


def plan_arguments(
    schema: GraphQLSchema,
    definitions: Collection[VariableDefinitionNode],
    field: GraphQLField,
    node: FieldNode,
) -> ArgumentPlan | None:
    """The plan for ``field`` at ``node`` in an operation with these variable definitions, or
    ``None`` when the operation has something it does not cover (then graphql-core coerces
    every request of it). Made by graphql-core's functions for every value that does not
    depend on the variables."""
    variables = []
    for definition in definitions:
        variable = _plan_variable(schema, definition)
        if variable is None:
            return None
        variables.append(variable)
    by_name = {argument.name.value: argument for argument in node.arguments or ()}
    constant_names: list[str] = []
    from_variables: list[_FromVariable] = []
    try:
        for name, argument in field.args.items():
            given = by_name.get(name)
            if given is None or not _has_variable(given.value):
                constant_names.append(name)
                continue
            if not isinstance(given.value, VariableNode):
                return None  # a variable inside a list or an input object
            from_variables.append(
                (
                    argument.out_name or name,
                    given.value.name.value,
                    isinstance(argument.type, GraphQLNonNull),
                    _DECLINE if is_required_argument(argument) else _default(name, argument),
                )
            )
        # The arguments that do not depend on variables, as graphql-core coerces them: a
        # field with only these arguments, at a node with only their literals.
        constant = get_argument_values(
            GraphQLField(field.type, {name: field.args[name] for name in constant_names}),
            FieldNode(
                name=node.name,
                arguments=tuple(
                    given for given in node.arguments or () if given.name.value in constant_names
                ),
            ),
        )
    except GraphQLError:
        return None
    return ArgumentPlan(tuple(variables), constant, tuple(from_variables))


def _plan_variable(schema: GraphQLSchema, definition: VariableDefinitionNode) -> _Variable | None:
    name = definition.variable.name.value
    type_node = definition.type
    non_null = isinstance(type_node, NonNullTypeNode)
    named = type_node.type if isinstance(type_node, NonNullTypeNode) else type_node
    if not isinstance(named, NamedTypeNode):
        return None  # a list
    scalar = schema.get_type(named.name.value)
    takes = _TAKEN_AS_IS.get(scalar) if isinstance(scalar, GraphQLScalarType) else None
    if takes is None:
        return None
    default: Any = Undefined
    if definition.default_value is not None:
        coerced = get_variable_values(schema, [definition], {})
        if isinstance(coerced, list) or name not in coerced.coerced:
            return None
        default = coerced.coerced[name]
    return _Variable(name, takes, non_null, default)


def _default(name: str, argument: GraphQLArgument) -> Any:
    """What graphql-core gives an optional argument whose variable has no value: its
    default, coerced, or nothing (Undefined)."""
    values = get_argument_values(
        GraphQLField(GraphQLString, {name: argument}),
        FieldNode(name=NameNode(value=name), arguments=()),
    )
    return values.get(argument.out_name or name, Undefined)


def _has_variable(value: ValueNode) -> bool:
    """Whether a literal holds a variable anywhere (a walk of its lists and objects: no
    visitor, whose bound methods would make a reference cycle of every compilation)."""
    pending = [value]
    while pending:
        node = pending.pop()
        if isinstance(node, VariableNode):
            return True
        if isinstance(node, ListValueNode):
            pending.extend(node.values)
        elif isinstance(node, ObjectValueNode):
            pending.extend(field.value for field in node.fields)
    return False
