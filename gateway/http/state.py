"""What the gateway's layers learn about one HTTP request, in one typed object.

Each ASGI layer (the access log, the guard, caller authentication, the GraphQL view) reads and
writes the request's :class:`RequestState` instead of keys of its own in the ASGI scope. It
lives in the scope's ``state`` mapping, where Starlette's ``request.state`` finds it too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Scope

_KEY = "gateway"


@dataclass
class RequestState:
    """One request, as the gateway's layers see it."""

    # What the access log and the metrics report (operation, outcome, error codes, ...).
    access: dict[str, Any] = field(default_factory=dict)
    # Run when the request ends, answered or abandoned (the loaders cancel their calls).
    on_close: list[Callable[[], None]] = field(default_factory=list)
    client_gone: bool = False  # the client left before its answer was complete (499)
    caller: Any = None  # the authenticated caller (gateway.schema.access.Caller), if any
    context: Any = None  # the GraphQL request context (gateway.schema.RequestContext)
    media_type: str | None = None  # the negotiated response media type
    answered_errors: bool = False  # some result (or a refusal) of this request has errors
    batch: int | None = None  # the operations of a batched request (None: not a batch)

    def close(self) -> None:
        """The request is over: its ``on_close`` callbacks run (once), and the state lets go
        of the request's context. The context refers back to the scope that holds this state
        (its caller's name is read from it), so keeping it would leave every request's
        objects (its context, loaders, pages and tasks) to the cycle collector instead of
        freeing them as the request ends."""
        callbacks, self.on_close = self.on_close, []
        self.context = None
        for callback in callbacks:
            callback()


def new_request_state(scope: Scope) -> RequestState:
    """A fresh state for a new request, in a copy of the scope's ``state`` mapping: the
    specification wants a copy per request, but not every server makes one (asgi-lifespan
    hands every request the same dict), and one request's state must never be another's."""
    state = RequestState()
    scope["state"] = {**scope.get("state", {}), _KEY: state}
    return state


def request_state(scope: Scope) -> RequestState:
    """The request's state (made by the outermost layer, or here on first use)."""
    states = scope.setdefault("state", {})
    state = states.get(_KEY)
    if state is None:
        state = states[_KEY] = RequestState()
    return state  # type: ignore[no-any-return]
