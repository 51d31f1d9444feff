"""Every GraphQL error leaves with an ``extensions.code``, and nothing unexpected leaks.

Resolvers raise :class:`GatewayError` (a user's mistake or a refusal, with its code) or let an
:class:`~gateway.upstream.UpstreamError` through; :func:`shape_error`, applied to every error of
every result just before it is sent, turns both into ``extensions``. Any other exception is a
bug: the response says ``INTERNAL_SERVER_ERROR`` with an ``errorId``, and the log line carries
the same id and the traceback, so that nothing of the process (paths, URLs, tokens) reaches
the caller.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from graphql import GraphQLError

from gateway.loaders import UpstreamBudgetExceeded
from gateway.upstream import (
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
    UpstreamUnavailable,
)

logger = logging.getLogger("gateway.errors")

BAD_USER_INPUT = "BAD_USER_INPUT"
UNAUTHENTICATED = "UNAUTHENTICATED"
FORBIDDEN = "FORBIDDEN"
NOT_FOUND = "NOT_FOUND"
UPSTREAM_RATE_LIMITED = "UPSTREAM_RATE_LIMITED"
UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
UPSTREAM_TIMEOUT = "UPSTREAM_TIMEOUT"
UPSTREAM_BAD_RESPONSE = "UPSTREAM_BAD_RESPONSE"
UPSTREAM_REJECTED = "UPSTREAM_REJECTED"
GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
OPERATION_RESOLUTION_FAILURE = "OPERATION_RESOLUTION_FAILURE"
GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
MAX_UPSTREAM_CALLS_LIMIT = "MAX_UPSTREAM_CALLS_LIMIT"
MAX_TOKENS_LIMIT = "MAX_TOKENS_LIMIT"
OPERATION_NOT_ALLOWED = "OPERATION_NOT_ALLOWED"

_REJECTION_CODES = {
    400: BAD_USER_INPUT,
    401: UNAUTHENTICATED,
    403: FORBIDDEN,
    404: NOT_FOUND,
    408: UPSTREAM_TIMEOUT,
    429: UPSTREAM_RATE_LIMITED,
}


class GatewayError(Exception):
    """An expected failure with a message written for the caller and a stable code."""

    def __init__(self, message: str, code: str = BAD_USER_INPUT) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def bad_input(argument: str, problem: str) -> GatewayError:
    """A ``BAD_USER_INPUT`` naming the argument, so the message says what to change."""
    return GatewayError(f"Argument '{argument}' {problem}", BAD_USER_INPUT)


def upstream_extensions(error: UpstreamError) -> dict[str, Any]:
    """The code (and HTTP status, where there was one) an upstream failure is reported with."""
    if isinstance(error, UpstreamTimeout):
        code = UPSTREAM_TIMEOUT
    elif isinstance(error, UpstreamUnavailable):
        code = UPSTREAM_UNAVAILABLE
    elif isinstance(error, UpstreamBadResponse):
        code = UPSTREAM_BAD_RESPONSE
    elif isinstance(error, UpstreamRateLimited):
        code = UPSTREAM_RATE_LIMITED
    elif isinstance(error, UpstreamRejected):
        code = _REJECTION_CODES.get(error.status, UPSTREAM_REJECTED)
    else:
        code = UPSTREAM_UNAVAILABLE
    extensions: dict[str, Any] = {"code": code}
    if error.status is not None:
        extensions["http"] = {"status": error.status}
    return extensions


def refused_for_credentials(error: GraphQLError) -> bool:
    """Whether a field failed because the caller's credentials do not allow it: the gateway's
    own refusal or the billing API's 401/403."""
    original = error.original_error
    if isinstance(original, GatewayError):
        return original.code in (UNAUTHENTICATED, FORBIDDEN)
    return isinstance(original, UpstreamRejected) and original.status in (401, 403)


def _upstream_message(error: UpstreamError) -> str:
    if isinstance(error, UpstreamRejected) and error.status == 400:
        return f"The billing API rejected the request: {error.message}"
    if isinstance(error, UpstreamRejected) and error.status in (401, 403):
        return f"The billing API refused the credentials: {error.message}"
    return error.message


def shape_error(error: GraphQLError) -> GraphQLError:
    """The error as the caller sees it: a message, a location, a path and a code. Once it is
    shaped (and an unexpected one logged with its traceback), the tracebacks behind it go
    (:func:`_forget_frames`)."""
    try:
        return _shaped(error)
    finally:
        _forget_frames(error)


_CHAINED_ERRORS = 16  # how far an error's chain of causes is followed to drop tracebacks


def _forget_frames(error: BaseException) -> None:
    """Drops the tracebacks of an answered error and of the exceptions behind it (its original
    error, cause and context; at most ``_CHAINED_ERRORS``). A traceback holds every frame the
    error passed through, and their locals hold the error again (the execution's list of
    errors, the located error): a reference cycle that would keep the request's objects
    (its context, loaders and pages) for the cycle collector instead of freeing them as the
    request ends."""
    todo: list[BaseException] = [error]
    for _ in range(_CHAINED_ERRORS):
        if not todo:
            return
        current = todo.pop()
        current.__traceback__ = None
        original = getattr(current, "original_error", None)
        for behind in (original, current.__cause__, current.__context__):
            if isinstance(behind, BaseException):
                todo.append(behind)


def _shaped(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, GatewayError):
        return _with(error, original.message, {"code": original.code})
    if isinstance(original, UpstreamError):
        return _with(error, _upstream_message(original), upstream_extensions(original))
    if isinstance(original, UpstreamBudgetExceeded):
        return _with(
            error,
            f"{original} Split the operation into several.",
            {"code": MAX_UPSTREAM_CALLS_LIMIT},
        )
    if original is None or isinstance(original, GraphQLError):
        if error.extensions and "code" in error.extensions:
            return error
        inner = original.extensions if isinstance(original, GraphQLError) else None
        if inner and "code" in inner:
            return _with(error, error.message, dict(inner))
        return _with(error, error.message, {"code": _request_error_code(error)})
    error_id = uuid.uuid4().hex
    logger.error("unexpected error %s at %s", error_id, error.path, exc_info=original)
    return _with(
        error,
        f"Internal server error (errorId {error_id}).",
        {"code": INTERNAL_SERVER_ERROR, "errorId": error_id},
    )


def _request_error_code(error: GraphQLError) -> str:
    """Errors graphql-core raised before any resolver ran (validation ones are stamped)."""
    if error.message.startswith("Syntax Error: Document contains more than"):
        return MAX_TOKENS_LIMIT  # the parser's own stop at the token limit
    if error.message.startswith("Syntax Error"):
        return GRAPHQL_PARSE_FAILED
    return BAD_USER_INPUT  # variable values that do not fit their types, unknown operation


def _with(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


def stamp_validation_codes(errors: list[GraphQLError]) -> None:
    """Stamps ``GRAPHQL_VALIDATION_FAILED`` on errors of the validation step (only it knows).
    The document store hands out the same error objects again: stamp, don't copy."""
    for error in errors:
        if not error.extensions or "code" not in error.extensions:
            error.extensions = {**(error.extensions or {}), "code": GRAPHQL_VALIDATION_FAILED}


def in_path_order(errors: list[GraphQLError]) -> None:
    """Puts an execution's errors in the order of their paths (list items by index, response
    keys by name), then of their locations. graphql-core lists them in the order their fields
    finished, which for fields waiting on calls is the order the calls came back (a batch's
    failures, each commit's detail call), and which the projection, completing an object again
    after a failed join, cannot repeat: in a fixed order, the same answer is the same bytes
    whichever executor wrote it."""
    if len(errors) > 1:
        errors.sort(key=_position)


def _position(error: GraphQLError) -> tuple[tuple[tuple[int, int, str], ...], tuple[Any, ...]]:
    path = tuple(
        (0, step, "") if isinstance(step, int) else (1, 0, step) for step in error.path or ()
    )
    return path, tuple((location.line, location.column) for location in error.locations or ())
