"""GraphiQL and CORS in a real headless browser (Debian's Chromium, driven by Playwright).

The gateway runs on the embedded stand-in. GraphiQL (5, with the explorer open) must work with
every request that leaves 127.0.0.1 blocked (no CDN), under its strict CSP: run its default
query, build a query by clicking in the explorer, whose choices decide what the gateway asks
the billing API for, and subscribe to live seat balances over Server-Sent Events (on `gateway
serve`, the stand-in moving every second) until stopped. A page on a second local origin,
listed in ``cors_origins``, must be able to query the gateway with credentials headers, and
with every header the gateway reads or GraphQL clients send (through Chromium's own preflight:
while Playwright routes a page's requests it answers preflights itself), and the same page on
an unlisted origin must not. The HTTP-level checks of the page and of CORS need no browser.

``GATEWAY_SCREENSHOT=docs/graphiql-explorer.png`` makes the explorer test save its screenshot
there (the README's picture).

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``) and the ``playwright`` Python
package; Playwright never downloads a browser here. Without either, the browser tests are
skipped, unless ``GATEWAY_REQUIRE_BROWSER`` is set (as in CI), which makes that a failure.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from gateway.app import demo_query, demo_subscription
from gateway.config import Settings
from gateway.graphiql import ASSETS_PATH, AUTHORIZATION_TABS, CONTENT_SECURITY_POLICY, render_page
from gateway.standin import DEMO_CONTRACT_ID, DEMO_CUSTOMER_ID, DEMO_TOKEN, create_standin_app
from tests.support import Gateway, gateway_process, running_gateway, serve

pytestmark = pytest.mark.process  # the process tier: drives chromium

CHROMIUM = Path("/usr/bin/chromium")
# How Chromium must start on these machines: no sandbox as root, and none of its background
# connections, which the closed network would refuse.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 30_000  # the first load parses about 7 MB of JavaScript on a 2-core machine
SEAT = re.compile(r"[\w.+-]+@acme\.example")

# A subscription for render_page's tabs (the stand-in's own is gateway.app.demo_subscription).
LIVE_SEATS = f"""subscription LiveSeats {{
  seatBalanceUpdates(
    customerId: "{DEMO_CUSTOMER_ID}"
    contractId: "{DEMO_CONTRACT_ID}"
    seatIds: ["ada.dijkstra@acme.example", "ada.goldberg@acme.example"]
  ) {{
    reason
    at
    seats {{ seatId balances {{ creditTypeId balance }} }}
  }}
}}
"""


# --- servers: the gateway on the stand-in, and pages on other local origins --------------------

# Every request header the gateway reads or the README tells callers to send, and those common
# GraphQL clients send (Apollo Client's client awareness, Apollo's CSRF-prevention headers).
# None of them is CORS-safelisted, so a browser sends them only after a preflight allows them.
CLIENT_HEADERS = {
    "X-Gateway-Cost": "true",
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
    "X-Request-ID": "cross-origin-page-1",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "tracestate": "vendor=opaque",
    "apollographql-client-name": "seat-dashboard",
    "apollographql-client-version": "1.4.2",
    "apollo-require-preflight": "true",
    "x-apollo-operation-name": "Seats",
}

CROSS_ORIGIN_PAGE = """<!doctype html>
<html lang="en">
  <head><meta charset="utf-8"><title>Another origin</title></head>
  <body data-state="loading">
    <ul id="seats"></ul>
    <p id="error"></p>
    <pre id="result"></pre>
    <script>
      const params = new URLSearchParams(location.search);
      const gateway = params.get("gateway");
      const { query, token, clientHeaders } = __CONFIG__;
      // ?client-headers: every header the gateway reads or common GraphQL clients send.
      const extra = params.has("client-headers") ? clientHeaders : {};
      fetch(`${gateway}/graphql`, {
        method: "POST",
        credentials: "include",
        headers: {
          "Authorization": `Bearer ${token}`,
          "content-type": "application/json",
          ...extra,
        },
        body: JSON.stringify({ query }),
      })
        .then(async (response) => {
          const body = await response.json();
          document.getElementById("result").textContent = JSON.stringify({
            requestId: response.headers.get("x-request-id"),
            cost: body.extensions?.cost ?? null,
          });
          return body;
        })
        .then((body) => {
          for (const edge of body.data.seatBalances.edges) {
            const item = document.createElement("li");
            item.textContent = edge.node.seatId;
            document.getElementById("seats").append(item);
          }
          document.body.dataset.state = "done";
        })
        .catch((error) => {
          document.getElementById("error").textContent = String(error);
          document.body.dataset.state = "failed";
        });
    </script>
  </body>
</html>
""".replace(
    "__CONFIG__",
    json.dumps(
        {
            "query": f"""{{ seatBalances(customerId: "{DEMO_CUSTOMER_ID}",
              contractId: "{DEMO_CONTRACT_ID}", first: 3) {{ edges {{ node {{ seatId }} }} }} }}""",
            "token": DEMO_TOKEN,
            "clientHeaders": CLIENT_HEADERS,
        }
    ),
    1,
)


def cross_origin_app() -> Starlette:
    """One page that queries the gateway named in its ``?gateway=`` from the browser."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(CROSS_ORIGIN_PAGE)

    async def no_icon(request: Request) -> Response:
        return Response(status_code=204)  # a browser asks; a 404 would be a console error

    return Starlette(routes=[Route("/", page), Route("/favicon.ico", no_icon)])


@pytest.fixture(scope="module")
def listed_origin() -> Iterator[str]:
    """A second local origin, the one the gateway lists in ``cors_origins``."""
    with serve(cross_origin_app()) as url:
        yield url


@pytest.fixture(scope="module")
def unlisted_origin() -> Iterator[str]:
    """A third local origin that the gateway does not list."""
    with serve(cross_origin_app()) as url:
        yield url


@pytest.fixture(scope="module")
def embedded(listed_origin: str) -> Iterator[Gateway]:
    """A gateway on the embedded stand-in (no base URL), allowing ``listed_origin``."""
    settings = Settings(cors_origins=[listed_origin])
    with running_gateway(settings, httpx.ASGITransport(app=create_standin_app())) as gateway:
        yield gateway


# --- the browser: Debian's Chromium, or skipped (locally) / failed (CI) ------------------------


def _unavailable(reason: str) -> None:
    if os.environ.get("GATEWAY_REQUIRE_BROWSER"):
        pytest.fail(f"{reason} (GATEWAY_REQUIRE_BROWSER is set)")
    pytest.skip(f"{reason}: the browser tests need it")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from /usr/bin/chromium; Playwright downloads nothing."""
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is missing (pip install playwright)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, timeout=TIMEOUT_MS
        )
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Watched:
    """A page, and what it did that a test may need to refuse."""

    page: Any
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched(browser: Any) -> Iterator[Watched]:
    """A page in a fresh browser context that may reach 127.0.0.1 only; every other request is
    aborted and kept, as are console errors (CSP violations among them) and HTTP errors."""
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    watched = Watched(page)

    def route(route: Any) -> None:
        url = route.request.url
        watched.requests.append(url)
        if urlsplit(url).hostname == "127.0.0.1":
            route.continue_()
        else:
            watched.blocked.append(url)
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and watched.errors.append(m.text))
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and watched.failed.append(f"{r.status} {r.url}"),
    )
    try:
        yield watched
    finally:
        context.close()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


# --- GraphiQL ----------------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self.root: dict[str, str | None] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v is not None]
        self.inline_styles += tag == "style" or "style" in found
        self._in_script = tag == "script" and not found.get("src")
        if found.get("id") == "graphiql":
            self.root = found

    def handle_data(self, data: str) -> None:
        self.inline_scripts += self._in_script and bool(data.strip())

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False


def test_graphiql_loads_only_the_gateways_own_assets_under_a_strict_csp(
    embedded: Gateway,
) -> None:
    """GET /graphql for a browser is GraphiQL with the CSP, no inline code, every file local."""
    response = embedded.http.get(f"{embedded.url}/graphql", headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    csp = dict(d.strip().split(" ", 1) for d in CONTENT_SECURITY_POLICY.split(";"))
    assert csp["default-src"] == "'none'"
    assert csp["script-src"] == "'self'"
    assert csp["worker-src"] == "'self'"
    assert csp["connect-src"] == "'self'"
    # Monaco writes style attributes and <style> elements at run time: the one 'unsafe-' kept.
    assert [d for d, v in csp.items() if "unsafe" in v] == ["style-src"]
    assert "unsafe-eval" not in CONTENT_SECURITY_POLICY
    assert "blob:" not in CONTENT_SECURITY_POLICY

    links = _Links()
    links.feed(response.text)
    assert links.inline_scripts == 0
    assert links.inline_styles == 0
    assert links.root["data-endpoint"] == "/graphql"
    tabs = json.loads(links.root["data-tabs"] or "")
    assert [tab["query"] for tab in tabs] == [
        demo_query(),
        demo_subscription(),
        AUTHORIZATION_TABS["stand-in"],
    ]
    workers = [links.root[f"data-{label}-worker"] for label in ("editor", "json", "graphql")]
    assets = [url for url in links.urls + workers if url and not url.startswith("data:")]
    assert len(assets) == 5, assets
    for url in assets:
        assert url.startswith(f"{ASSETS_PATH}/"), url
        asset = embedded.http.get(f"{embedded.url}{url}")
        assert asset.status_code == 200, url
        kind = "javascript" if urlsplit(url).path.endswith(".js") else "css"
        assert kind in asset.headers["content-type"], url


def test_the_tabs_are_escaped_into_an_attribute() -> None:
    """A default query with markup in it stays text: no element, no script, nothing unescaped."""
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    page = render_page(default_query=hostile, graphql_path='/g"ql')
    links = _Links()
    links.feed(page)
    assert json.loads(links.root["data-tabs"] or "")[0] == {"query": hostile}
    assert links.root["data-endpoint"] == '/g"ql'
    assert "<script>alert" not in page
    assert "<img" not in page
    assert links.inline_scripts == 0
    # Without a default query (a real billing API), the page opens on the Authorization tab.
    links = _Links()
    links.feed(render_page())
    assert [tab["query"] for tab in json.loads(links.root["data-tabs"] or "")] == [
        AUTHORIZATION_TABS["forwarding"]
    ]


def test_a_default_subscription_opens_as_the_second_tab() -> None:
    """Given a subscription, the page opens on the default query, the subscription and the
    Authorization tab, in that order; the subscription alone opens before the Authorization
    tab."""
    links = _Links()
    links.feed(render_page(default_query="{ __typename }", default_subscription=LIVE_SEATS))
    tabs = json.loads(links.root["data-tabs"] or "")
    assert [tab["query"] for tab in tabs] == [
        "{ __typename }",
        LIVE_SEATS,
        AUTHORIZATION_TABS["forwarding"],
    ]
    links = _Links()
    links.feed(render_page(default_subscription=LIVE_SEATS, caller_mode="jwt"))
    tabs = json.loads(links.root["data-tabs"] or "")
    assert [tab["query"] for tab in tabs] == [LIVE_SEATS, AUTHORIZATION_TABS["jwt"]]


@pytest.mark.parametrize(
    ("mode", "header"),
    [
        ("forwarding", "Bearer <your Metronome API token>"),
        ("jwt", "Bearer <JWT from your identity provider>"),
        ("stand-in", "Bearer <a stand-in token>"),
    ],
)
def test_the_authorization_tab_says_where_the_token_goes(mode: str, header: str) -> None:
    """The second tab explains, in comments, what this gateway does with a caller's token and
    the Headers editor's JSON to send it (tests/test_side_doors.py checks each mode's page)."""
    tab = AUTHORIZATION_TABS[mode]  # type: ignore[index]
    comments = [line for line in tab.splitlines() if line.startswith("#")]
    text = "\n".join(comments)
    assert f'{{ "Authorization": "{header}" }}' in text
    assert '"Headers"' in text
    assert "persist headers" in text
    assert "TokenCheck" in tab


def _editor_text(page: Any, editor: str) -> str:
    """The text Monaco shows in one of GraphiQL's editors (it renders spaces as NBSP)."""
    text: str = page.locator(f"{editor} .view-lines").inner_text()
    return text.replace("\u00a0", " ")


def _shown_answer(page: Any) -> str:
    """The start of the answer GraphiQL shows, without the spaces and breaks of its wrapping."""
    from playwright.sync_api import expect

    expect(page.locator(".result-window .view-lines")).to_contain_text("data")
    return re.sub(r"\s", "", _editor_text(page, ".result-window"))


def _run(page: Any) -> dict[str, Any]:
    """Press GraphiQL's run button; the JSON body of the answer it got."""
    # GraphiQL's own introspection may still be on its way: wait for the answer to the run.
    with page.expect_response(
        lambda r: (
            urlsplit(r.url).path == "/graphql"
            and r.request.method == "POST"
            and "__schema" not in (r.request.post_data or "")
        )
    ) as answer:
        page.locator(".graphiql-execute-button").click()
    body: dict[str, Any] = answer.value.json()
    return body


def _clean(watched: Watched, gateway: Gateway) -> None:
    assert watched.blocked == [], "GraphiQL tried to leave 127.0.0.1"
    assert {_origin(url) for url in watched.requests} == {gateway.url}
    assert watched.failed == []
    assert watched.errors == []


def test_graphiql_runs_the_default_query_without_the_internet(
    embedded: Gateway, watched: Watched
) -> None:
    """In Chromium with only 127.0.0.1 reachable, GraphiQL shows the demo query, runs it, shows
    seats, opens the docs, the Authorization tab and a dialog, with no CSP violation or other
    console error; Monaco's three workers come from the gateway."""
    page = watched.page
    from playwright.sync_api import expect

    workers: list[str] = []
    page.on("worker", lambda worker: workers.append(worker.url))
    page.goto(f"{embedded.url}/graphql")
    expect(page.locator(".graphiql-query-editor .view-lines")).to_contain_text("FirstSeats")
    query = _editor_text(page, ".graphiql-query-editor")
    assert DEMO_CONTRACT_ID in query
    assert DEMO_CUSTOMER_ID in query

    body = _run(page)
    assert "errors" not in body, body
    seats = [edge["node"]["seatId"] for edge in body["data"]["seatBalances"]["edges"]]
    assert seats and all(SEAT.fullmatch(seat) for seat in seats), seats
    assert f'"seatId":"{seats[0]}"' in _shown_answer(page)

    page.get_by_role("tab", name="TokenCheck").click()
    expect(page.locator(".graphiql-query-editor .view-lines")).to_contain_text("Headers")

    page.get_by_label("Show Documentation Explorer").click()
    docs = page.locator(".graphiql-doc-explorer")
    docs.get_by_text("Query", exact=True).click()
    expect(docs.get_by_text("seatBalances", exact=True)).to_be_visible()

    page.get_by_label("Open settings dialog").click()
    expect(page.get_by_role("dialog")).to_contain_text("Settings")
    page.keyboard.press("Escape")
    expect(page.get_by_role("dialog")).to_have_count(0)

    assert {urlsplit(url).path.rsplit("/", 1)[-1] for url in workers} == {
        "editor.worker.js",
        "json.worker.js",
        "graphql.worker.js",
    }
    assert all(_origin(url) == embedded.url for url in workers), workers
    _clean(watched, embedded)


def test_the_explorer_builds_a_query_by_clicking_and_each_choice_is_asked_for(
    embedded: Gateway, watched: Watched
) -> None:
    """In the explorer (open on load): clicking seatBalances, filling its ids and ticking
    seatId and commits > commitId runs a query that shows seats with commits, and asks the
    billing API for commits; unticking commits gives seats without them, and no commits asked."""
    page = watched.page
    from playwright.sync_api import expect

    page.set_viewport_size({"width": 1400, "height": 900})
    page.goto(f"{embedded.url}/graphql")
    explorer = page.locator(".graphiql-explorer-root")
    expect(explorer).to_be_visible()
    # A new, empty tab (after the query, the subscription and the token tabs): the demo query's
    # tab would show its fields already ticked.
    page.get_by_role("button", name="New tab").click()
    expect(page.get_by_role("tab")).to_have_count(4)

    def field(name: str, within: str | None = None) -> Any:
        scope = explorer.locator(f".graphiql-explorer-{within}") if within else explorer
        return scope.locator(f'[data-field-name="{name}"]').first

    field("seatBalances").click()
    explorer.locator('[data-arg-name="customerId"] input').fill(DEMO_CUSTOMER_ID)
    explorer.locator('[data-arg-name="contractId"] input').fill(DEMO_CONTRACT_ID)
    field("edges", within="seatBalances").click()
    field("node", within="edges").click()
    field("seatId", within="edges").click()
    field("commits", within="edges").click()
    field("commitId", within="commits").click()
    expect(page.locator(".graphiql-query-editor .view-lines")).to_contain_text("commitId")
    # GraphiQL takes the operation's name from an edit 100 ms later (and shows it as the tab's
    # title); a run before that would still send the first tab's name.
    expect(page.get_by_role("tab", name="MyQuery")).to_be_visible()
    query = _editor_text(page, ".graphiql-query-editor")
    assert re.search(r"commits\s*\{\s*commitId\s*\}", query), query

    calls = len(embedded.calls)
    body = _run(page)
    assert "errors" not in body, body
    nodes = [edge["node"] for edge in body["data"]["seatBalances"]["edges"]]
    assert nodes and all(SEAT.fullmatch(node["seatId"]) for node in nodes), nodes
    assert any(node["commits"] for node in nodes), nodes
    commit = next(node["commits"][0]["commitId"] for node in nodes if node["commits"])
    assert f'"commitId":"{commit}"' in _shown_answer(page)
    asked = [call.body for call in embedded.calls[calls:]]
    assert asked and all(body.get("include_credits_and_commits") for body in asked), asked
    if path := os.environ.get("GATEWAY_SCREENSHOT"):
        page.screenshot(path=path)

    field("commits", within="edges").click()
    expect(page.locator(".graphiql-query-editor .view-lines")).not_to_contain_text("commits")
    calls = len(embedded.calls)
    body = _run(page)
    assert "errors" not in body, body
    nodes = [edge["node"] for edge in body["data"]["seatBalances"]["edges"]]
    assert nodes and all(set(node) == {"seatId"} for node in nodes), nodes
    shown = _shown_answer(page)
    assert f'"seatId":"{nodes[0]["seatId"]}"' in shown
    assert "commits" not in shown
    asked = [call.body for call in embedded.calls[calls:]]
    assert asked and not any(body.get("include_credits_and_commits") for body in asked), asked
    _clean(watched, embedded)


# --- live seat balances: a subscription over Server-Sent Events --------------------------------

# What the answer pane shows, each time it changes: GraphiQL replaces the answer with every
# event, and a SNAPSHOT may be on screen for a second only, too short to poll for. Playwright
# evaluates this outside the page's CSP, which allows no inline script.
_RECORD_ANSWERS = """() => {
  const pane = document.querySelector(".result-window");
  window.shownAnswers = [];
  new MutationObserver(() => {
    const text = pane.querySelector(".view-lines")?.textContent ?? "";
    if (window.shownAnswers.at(-1) !== text) window.shownAnswers.push(text);
  }).observe(pane, { subtree: true, childList: true, characterData: true });
}"""


def _reasons_shown(page: Any) -> list[str]:
    """The ``reason`` of each answer the pane has shown since :data:`_RECORD_ANSWERS`, in
    order (Monaco renders spaces as NBSP)."""
    texts: list[str] = page.evaluate("() => window.shownAnswers")
    found = (re.search(r'"reason":"(\w+)"', re.sub(r"\s", "", text)) for text in texts)
    reasons = [match.group(1) for match in found if match]
    return [r for i, r in enumerate(reasons) if i == 0 or r != reasons[i - 1]]


def _until(what: str, ready: Callable[[], Any], seconds: float) -> Any:
    """``ready()``'s first truthy value within ``seconds``, polled every 0.1 s."""
    deadline = time.monotonic() + seconds
    while not (value := ready()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.1)
    return value


def _live_subscriptions(url: str) -> int:
    """The gateway's ``gateway_live_subscriptions`` gauge: subscriptions it is serving now."""
    metrics = httpx.get(f"{url}/metrics").text
    match = re.search(r"^gateway_live_subscriptions(?:\{[^}]*\})? (\S+)$", metrics, re.M)
    assert match, "no gateway_live_subscriptions in /metrics"
    return int(float(match.group(1)))


def test_graphiql_subscribes_to_live_balances_over_sse_until_stopped(watched: Watched) -> None:
    """On `gateway serve` with nothing configured and the stand-in moving balances every second,
    GraphiQL's second tab is the demo contract's live balances: run, it POSTs the subscription
    with ``Accept: text/event-stream`` and the pane shows a SNAPSHOT, then, within 15 s, an
    update a webhook or a poll brought; the stop button ends the request, and the gateway
    serves no live subscription any more."""
    page = watched.page
    from playwright.sync_api import expect

    with gateway_process(env={"GATEWAY_DEMO_LIVE_SECONDS": "1"}) as (_, url, output):
        page.goto(f"{url}/graphql")
        expect(page.get_by_role("tab").nth(1)).to_contain_text("LiveSeats")
        page.get_by_role("tab", name="LiveSeats").click()
        expect(page.locator(".graphiql-query-editor .view-lines")).to_contain_text(
            "seatBalanceUpdates"
        )
        # GraphiQL takes the tab's operation name 100 ms after the editor changes, in the step
        # that also saves the query: a run before that sends the first tab's name (a 400).
        _until(
            "GraphiQL taking the operation of the tab",
            lambda: "LiveSeats" in page.evaluate("() => localStorage['graphiql:query'] ?? ''"),
            10,
        )

        page.evaluate(_RECORD_ANSWERS)
        with page.expect_response(
            lambda r: r.request.headers.get("accept") == "text/event-stream"
        ) as stream:
            page.locator(".graphiql-execute-button").click()
        assert stream.value.status == 200, "".join(output)
        assert stream.value.headers["content-type"].startswith("text/event-stream")
        assert urlsplit(stream.value.url).path == "/graphql"
        assert stream.value.request.method == "POST"
        assert "LiveSeats" in (stream.value.request.post_data or "")

        _until("a SNAPSHOT shown", lambda: _reasons_shown(page), 15)
        assert _reasons_shown(page)[0] == "SNAPSHOT", _reasons_shown(page)
        later = _until("an update after the SNAPSHOT", lambda: _reasons_shown(page)[1:], 15)
        assert set(later) <= {"WEBHOOK", "POLL"}, later
        assert _live_subscriptions(url) == 1

        stop = page.locator(".graphiql-execute-button")
        expect(stop).to_have_attribute("aria-label", re.compile("^Stop"))
        stop.click()
        expect(stop).to_have_attribute("aria-label", re.compile("^Execute"))
        _until("the gateway seeing the request end", lambda: _live_subscriptions(url) == 0, 10)
        answers = page.evaluate("() => window.shownAnswers.length")
        time.sleep(2)  # two of the stand-in's moves: nothing more reaches the pane
        assert page.evaluate("() => window.shownAnswers.length") == answers

    assert watched.blocked == [], "GraphiQL tried to leave 127.0.0.1"
    assert {_origin(request) for request in watched.requests} == {url}
    assert watched.failed == []
    assert watched.errors == []


# --- CORS ----------------------------------------------------------------------------------------


def _open_cross_origin_page(watched: Watched, origin: str, gateway: Gateway) -> Any:
    watched.page.goto(f"{origin}/?gateway={gateway.url}")
    body = watched.page.locator("body")
    from playwright.sync_api import expect

    expect(body).not_to_have_attribute("data-state", "loading")
    return body


def test_a_page_on_a_listed_origin_queries_the_gateway_from_the_browser(
    embedded: Gateway, listed_origin: str, watched: Watched
) -> None:
    """A page on a listed origin sends a preflighted, credentialed query and shows the seats."""
    body = _open_cross_origin_page(watched, listed_origin, embedded)
    assert body.get_attribute("data-state") == "done", watched.page.inner_text("#error")
    seats = watched.page.locator("#seats li").all_inner_texts()
    assert len(seats) == 3
    assert all(SEAT.fullmatch(seat) for seat in seats), seats
    assert [call.authorization for call in embedded.calls[-1:]] == [f"Bearer {DEMO_TOKEN}"]
    assert watched.blocked == []
    assert watched.errors == []


def test_a_page_on_a_listed_origin_may_send_every_header_the_gateway_reads_or_clients_send(
    embedded: Gateway, listed_origin: str, browser: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Chromium's own preflight for a fetch with X-Gateway-Cost, Cache-Control, Pragma,
    X-Request-ID, trace context and Apollo's client headers is allowed, and the gateway reads
    them: the answer carries extensions.cost and echoes the request id (an exposed header)."""
    from playwright.sync_api import expect

    caplog.set_level(logging.INFO, logger="gateway.access")
    # Not the `watched` page: Playwright answers preflights itself while it routes requests,
    # allowing whatever was asked. Nothing here leaves 127.0.0.1 anyway.
    context = browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        requested: list[str] = []
        errors: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda m: m.type == "error" and errors.append(m.text))
        page.goto(f"{listed_origin}/?gateway={embedded.url}&client-headers")
        body = page.locator("body")
        expect(body).not_to_have_attribute("data-state", "loading")
        assert body.get_attribute("data-state") == "done", (page.inner_text("#error"), errors)
        assert len(page.locator("#seats li").all_inner_texts()) == 3
        result = json.loads(page.inner_text("#result"))
    finally:
        context.close()
    assert errors == []
    assert all(urlsplit(url).hostname == "127.0.0.1" for url in requested), requested
    assert result["requestId"] == CLIENT_HEADERS["X-Request-ID"]
    assert result["cost"]["estimatedCost"] > 0
    assert [call.authorization for call in embedded.calls[-1:]] == [f"Bearer {DEMO_TOKEN}"]
    # The browser asked the gateway first (a real preflight), then sent the query.
    seen = [
        (line["method"], line["status"], line["requestId"])
        for line in (record.msg for record in caplog.records if record.name == "gateway.access")
        if isinstance(line, dict) and line["path"] == "/graphql"
    ]
    assert [(method, status) for method, status, _ in seen] == [("OPTIONS", 200), ("POST", 200)]
    assert seen[1][2] == CLIENT_HEADERS["X-Request-ID"]


def test_a_page_on_an_unlisted_origin_cannot_read_the_gateway(
    embedded: Gateway, unlisted_origin: str, watched: Watched
) -> None:
    """The same page on an origin that is not listed gets no answer from the browser's fetch."""
    body = _open_cross_origin_page(watched, unlisted_origin, embedded)
    assert body.get_attribute("data-state") == "failed"
    assert watched.page.locator("#seats li").count() == 0
    assert any("CORS" in error for error in watched.errors), watched.errors


def _preflight(gateway: Gateway, origin: str) -> httpx.Response:
    return gateway.http.options(
        f"{gateway.url}/graphql",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )


def test_the_preflight_from_a_listed_origin_allows_credentials_and_authorization(
    embedded: Gateway, listed_origin: str
) -> None:
    """OPTIONS /graphql from a listed origin names it, allows credentials and Authorization."""
    response = _preflight(embedded, listed_origin)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == listed_origin
    assert response.headers["access-control-allow-credentials"] == "true"
    allowed = response.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed
    assert "content-type" in allowed
    assert {name.lower() for name in CLIENT_HEADERS} <= set(allowed.split(", "))
    assert "POST" in response.headers["access-control-allow-methods"]

    post = embedded.http.post(
        f"{embedded.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"Origin": listed_origin},
    )
    assert post.headers["access-control-allow-origin"] == listed_origin
    assert post.headers["access-control-allow-credentials"] == "true"


def test_an_unlisted_origin_gets_no_cors_headers(embedded: Gateway, unlisted_origin: str) -> None:
    """A preflight or a query from an origin that is not listed is not allowed to read."""
    # Starlette still sends its fixed allow-* headers here, but without allow-origin a browser
    # grants nothing (the Fetch standard's CORS check fails on the origin first).
    response = _preflight(embedded, unlisted_origin)
    assert response.status_code == 400
    assert "access-control-allow-origin" not in response.headers
    post = embedded.http.post(
        f"{embedded.url}/graphql",
        json={"query": "{ __typename }"},
        headers={"Origin": unlisted_origin},
    )
    assert "access-control-allow-origin" not in post.headers


def test_cors_is_off_by_default(listed_origin: str) -> None:
    """With no cors_origins configured the gateway answers no CORS header to anyone."""
    with running_gateway(Settings(), httpx.ASGITransport(app=create_standin_app())) as gateway:
        for response in (
            _preflight(gateway, listed_origin),
            gateway.http.post(
                f"{gateway.url}/graphql",
                json={"query": "{ __typename }"},
                headers={"Origin": listed_origin},
            ),
        ):
            assert not any(name.startswith("access-control-") for name in response.headers)
