"""GraphiQL served by the gateway itself: no CDN, no inline script, a strict CSP.

The page (:func:`render_page`) loads only files under :data:`ASSETS_PATH`, which the app
serves from :data:`ASSETS_DIR`; the app sends :data:`CONTENT_SECURITY_POLICY` with it. What the
page needs to know (endpoint, default query) travels in ``data-`` attributes that the bundled
``static/init.js`` reads, so no inline script is ever needed.

``static/`` holds:

- vendored, as published on npm (minus their source-map comments): React 18.3.1 and
  ReactDOM 18.3.1 (UMD builds) and GraphiQL 3.9.0 (UMD build and CSS; it bundles graphql-js,
  CodeMirror 5 and the docs explorer), with ``THIRD_PARTY_LICENSES.txt``;
- the gateway's own, edited by hand: ``init.js`` (starts GraphiQL) and ``page.css`` (layout).

To upgrade or regenerate the vendored files, change the pins in ``ui/package.json``, then::

    npm install --prefix ui          # only when changing a pin: updates ui/package-lock.json
    npm ci --prefix ui               # installs exactly what ui/package-lock.json pins
    node ui/vendor.mjs               # rewrites the vendored files in gateway/graphiql/static/
    node ui/vendor.mjs --check       # fails when they differ from ui/node_modules

The same lockfile gives byte-identical files. Nothing here touches the network at run time.
"""

from __future__ import annotations

import hashlib
import html
import pathlib
from functools import cache

__all__ = ["ASSETS_DIR", "ASSETS_PATH", "CONTENT_SECURITY_POLICY", "render_page"]

ASSETS_DIR = pathlib.Path(__file__).resolve().parent / "static"
ASSETS_PATH = "/graphiql/assets"

# GraphiQL's dialogs (settings, short keys) lock the page's scrolling by adding one <style>
# element (react-remove-scroll-bar). Its text depends only on the body's margins and scrollbar,
# which page.css fixes (margin 0, overflow hidden), so it is always the same and is allowed by
# its hash instead of 'unsafe-inline'. The browser test opens a dialog and fails on any CSP
# violation, so a GraphiQL upgrade that changes that text cannot go unnoticed.
_SCROLL_LOCK_STYLE_HASH = "'sha256-Y/huXlwoYkVyQlxwSVcCi1RCDGDCSVBzDt0hYP9qlTc='"

# Only the gateway's own origin, for everything; no inline script, no eval, no inline style but
# the one above. GraphiQL's CSS embeds its fonts and two tiny images as data: URIs, hence `data:`
# for fonts and images (the favicon is `data:,` too). `connect-src 'self'` is the GraphQL
# endpoint. The page may not be framed (`frame-ancestors 'none'`), rebased or post forms.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        f"style-src 'self' {_SCROLL_LOCK_STYLE_HASH}",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)

_STYLES = ("graphiql.min.css", "page.css")
# In this order: GraphiQL's UMD build expects the React and ReactDOM globals.
_SCRIPTS = (
    "react.production.min.js",
    "react-dom.production.min.js",
    "graphiql.min.js",
    "init.js",
)


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
) -> str:
    """The GraphiQL HTML page: loads only ASSETS_PATH files; the default query (HTML-escaped)
    is passed without inline script, in a ``data-default-query`` attribute read by
    ``init.js``."""
    attrs = {"data-endpoint": graphql_path}
    if default_query is not None:
        attrs["data-default-query"] = default_query
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
