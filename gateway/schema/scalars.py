"""The ``DateTime`` scalar: RFC 3339 in, the billing API's own text out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import NewType

import strawberry
from graphql import GraphQLError

from gateway.schema.errors import BAD_USER_INPUT

DateTime = NewType("DateTime", str)


def same_text(value: object) -> object:
    """``DateTime``'s output: the billing API's own text, unchanged (a compiled projection
    that sees this serializer passes a string through without calling it)."""
    return value


DATE_TIME = strawberry.scalar(
    name="DateTime",
    description=(
        "An instant as an RFC 3339 date-time with a time zone offset, e.g. "
        "`2026-05-01T00:00:00Z`. Inputs are normalised to UTC; outputs are the billing "
        "API's own text."
    ),
    specified_by_url="https://datatracker.ietf.org/doc/html/rfc3339",
    serialize=same_text,
    parse_value=lambda value: parse_datetime(value),
)


def parse_datetime(value: object) -> str:
    """An input instant as the UTC text sent upstream; a clear error for anything else."""
    if not isinstance(value, str):
        raise _invalid(f"expected an RFC 3339 string, got {type(value).__name__}")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(f"{value!r} is not an RFC 3339 date-time") from None
    if instant.tzinfo is None:
        raise _invalid(f"{value!r} has no time zone offset; add one, e.g. 'Z'")
    instant = instant.astimezone(UTC)
    spec = "microseconds" if instant.microsecond % 1000 else "milliseconds"
    return instant.isoformat(timespec=spec).replace("+00:00", "Z")


def _invalid(problem: str) -> GraphQLError:
    return GraphQLError(
        f"DateTime: {problem} (e.g. '2026-05-01T00:00:00Z').",
        extensions={"code": BAD_USER_INPUT},
    )
