"""GraphiQL served by the gateway itself: no CDN, no inline script, a strict CSP.

The page (:func:`render_page`) loads only files under :data:`ASSETS_PATH`, which the app
serves from :data:`ASSETS_DIR`; the app sends :data:`CONTENT_SECURITY_POLICY` with it. What the
page needs to know (endpoint, first tabs, worker files) travels in ``data-`` attributes that
the bundled ``static/graphiql.js`` reads, so no inline script is ever needed.

Subscriptions run over Server-Sent Events (``graphql-sse``, one POST per subscription, like a
query): ``connect-src 'self'`` covers them, and the Headers editor authenticates them as it
does queries.

``static/`` is built, never edited: ``ui/vendor.mjs`` bundles ``ui/src/`` (the page's script,
its fetcher and layout) with React 19, GraphiQL 5, ``@graphiql/plugin-explorer``,
``graphql-sse`` and Monaco editor into ``graphiql.js`` and ``graphiql.css``, Monaco's web
workers into ``*.worker.js``, and lists the licence of every package whose code is in them in
``THIRD_PARTY_LICENSES.txt``. To upgrade or rebuild, change the pins in ``ui/package.json`` or
the files in ``ui/src/``, then::

    npm install --prefix ui          # only when changing a pin: updates ui/package-lock.json
    npm ci --prefix ui               # installs exactly what ui/package-lock.json pins
    node ui/vendor.mjs               # rebuilds gateway/graphiql/static/ (esbuild)
    node ui/vendor.mjs --check       # fails when it differs from a rebuild

The same lockfile and sources give byte-identical files. Nothing here touches the network at
run time.
"""

from __future__ import annotations

import hashlib
import html
import json
import pathlib
from collections.abc import Callable
from functools import cache
from typing import Literal

from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from gateway.config import Settings

__all__ = [
    "ASSETS_DIR",
    "ASSETS_PATH",
    "AUTHORIZATION_TABS",
    "CONTENT_SECURITY_POLICY",
    "CallerMode",
    "assets",
    "caller_mode",
    "page",
    "render_page",
]

ASSETS_DIR = pathlib.Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/graphiql/assets"

# Only the gateway's own origin, for everything; no inline script, no eval, no inline style.
# Monaco's language services run in web workers built as files (`worker-src 'self'`, no blob:).
# The fonts GraphiQL's CSS embeds are data: URIs, Monaco's icon font is a file (`font-src`);
# `data:` images are GraphiQL's icons and the favicon. `connect-src 'self'` is the GraphQL
# endpoint. The page may not be framed (`frame-ancestors 'none'`), rebased or post forms.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "worker-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

# How the gateway is set up to authenticate, as far as the token tab is concerned.
CallerMode = Literal["stand-in", "forwarding", "jwt", "anonymous"]

_CHECK_QUERY = """query TokenCheck($customerId: ID!, $contractId: ID!) {
  seatBalances(customerId: $customerId, contractId: $contractId, first: 1) {
    edges { node { seatId } }
  }
}
"""
_HEADERS_STAY_LOCAL = """#
# Headers belong to their tab and are not saved in the browser (GraphiQL's
# "persist headers" stays off), so the token is gone when the page is reloaded.
# The gateway never logs headers.
"""

# The second tab: how a caller's token reaches the billing API, and where GraphiQL takes it,
# in the words of the gateway's configuration (one text per mode).
AUTHORIZATION_TABS: dict[CallerMode, str] = {
    "stand-in": """# How your token reaches the billing API
#
# This gateway answers from its EMBEDDED STAND-IN of the billing API (demo data).
# You need no token: without an Authorization header the stand-in's demo token
# is used. To see what another account sees, open "Headers" below this editor
# and send one of the stand-in's tokens (gateway/standin/):
#
#   { "Authorization": "Bearer <a stand-in token>" }
#
# Against the real billing API the gateway forwards each caller's own token, uses
# METRONOME_BEARER_TOKEN for every caller, or asks callers for a JWT (README,
# "Who may see what").
"""
    + _HEADERS_STAY_LOCAL
    + _CHECK_QUERY,
    "forwarding": """# How your token reaches the billing API
#
# The gateway takes the bearer token from the Authorization header of each request
# and calls the billing API with it: the billing API decides what the token may see.
# Without one, fields that need the billing API fail with UNAUTHENTICATED before
# any call.
#
# To send your token from GraphiQL, open "Headers" below this editor and write:
#
#   { "Authorization": "Bearer <your Metronome API token>" }
"""
    + _HEADERS_STAY_LOCAL
    + _CHECK_QUERY,
    "jwt": """# How you are authenticated here
#
# This gateway calls the billing API with its own credentials: you never send a
# billing API token, and it never reaches your browser. You send a JWT issued to
# you by your identity provider; its claim names the customers you may read, and
# the gateway refuses the others (FORBIDDEN) before any call. Without a JWT,
# fields that read a customer fail with UNAUTHENTICATED; an invalid one is HTTP 401.
#
# To send your JWT from GraphiQL, open "Headers" below this editor and write:
#
#   { "Authorization": "Bearer <JWT from your identity provider>" }
"""
    + _HEADERS_STAY_LOCAL
    + _CHECK_QUERY,
    "anonymous": """# How requests reach the billing API
#
# This gateway calls the billing API with its own credentials for every request:
# send no token. Who may call it is decided by the network in front of it (a
# router or proxy), which may ask you for credentials of its own.
"""
    + _CHECK_QUERY,
}

_STYLES = ("graphiql.css",)
_SCRIPTS = ("graphiql.js",)
# Monaco's web workers, by the label it asks for them with (see ui/src/page.jsx).
_WORKERS = {"editor": "editor.worker.js", "json": "json.worker.js", "graphql": "graphql.worker.js"}


@cache
def _asset_url(name: str) -> str:
    """The file's URL, versioned by its content so a browser never mixes two releases."""
    digest = hashlib.sha256((ASSETS_DIR / name).read_bytes()).hexdigest()[:12]
    return f"{ASSETS_PATH}/{name}?v={digest}"


def render_page(
    *,
    graphql_path: str = "/graphql",
    default_query: str | None = None,
    title: str = "Seat balances · GraphiQL",
    caller_mode: CallerMode = "forwarding",
    default_subscription: str | None = None,
) -> str:
    """The GraphiQL HTML page: loads only ASSETS_PATH files, with the explorer open.

    A first visit opens up to three tabs: ``default_query`` and ``default_subscription``
    (each when given; the page runs subscriptions over Server-Sent Events) and the
    :data:`AUTHORIZATION_TABS` text of ``caller_mode`` (what a caller sends, if anything).
    They travel as JSON in an HTML-escaped ``data-tabs`` attribute, read by ``graphiql.js``,
    never as inline script.
    """
    tabs = [{"query": text} for text in (default_query, default_subscription) if text is not None]
    tabs.append(
        {
            "query": AUTHORIZATION_TABS[caller_mode],
            "variables": '{ "customerId": "", "contractId": "" }',
        }
    )
    attrs = {"data-endpoint": graphql_path, "data-tabs": json.dumps(tabs)}
    attrs |= {f"data-{label}-worker": _asset_url(name) for label, name in _WORKERS.items()}
    root_attrs = "".join(
        f' {name}="{html.escape(value, quote=True)}"' for name, value in attrs.items()
    )
    styles = "".join(f'\n    <link rel="stylesheet" href="{_asset_url(name)}">' for name in _STYLES)
    scripts = "".join(
        f'\n    <script src="{_asset_url(name)}" defer></script>' for name in _SCRIPTS
    )
    return f"""<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <meta name="referrer" content="no-referrer">
    <title>{html.escape(title)}</title>
    <link rel="icon" href="data:,">{styles}{scripts}
  </head>
  <body>
    <div id="graphiql"{root_attrs}><p class="graphiql-loading">Loading GraphiQL…</p></div>
    <noscript>GraphiQL needs JavaScript. POST queries to {html.escape(graphql_path)} instead.</noscript>
  </body>
</html>
"""


def assets() -> StaticFiles:
    """The app that serves :data:`ASSETS_DIR`, mounted at :data:`ASSETS_PATH`."""
    return StaticFiles(directory=ASSETS_DIR)


def page(
    *,
    default_query: str | None,
    caller_mode: CallerMode,
    default_subscription: str | None = None,
) -> Callable[[], HTMLResponse]:
    """What answers a browser's ``GET /graphql``: the page, rendered from the gateway's own
    assets as they are now, with :data:`CONTENT_SECURITY_POLICY`."""

    def answer() -> HTMLResponse:
        html_page = render_page(
            graphql_path="/graphql",
            default_query=default_query,
            default_subscription=default_subscription,
            caller_mode=caller_mode,
        )
        return HTMLResponse(html_page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    return answer


def caller_mode(settings: Settings) -> CallerMode:
    """What the token tab tells a user to send: a JWT (callers authenticate), nothing (the
    gateway's own billing token serves everyone), or their own billing token (forwarding;
    optional on the stand-in, which falls back to its demo token)."""
    if settings.authenticates_callers:
        return "jwt"
    if settings.metronome_bearer_token is not None:
        return "anonymous"
    return "stand-in" if settings.embedded else "forwarding"
