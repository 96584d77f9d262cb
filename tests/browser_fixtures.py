"""Fixtures of the browser tests: headless Debian Chromium driven by Playwright, the real app on port 0,
and pages that fail the test on any console error or any request to another host."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest

# Debian's chromium; Playwright's own browser downloads are never used (`playwright install` is not run).
CHROMIUM = Path(os.environ.get("SENSORS_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium for a test module; a missing browser skips, or fails under CI=true.
    Per module, not per session: while Playwright's sync API runs, its event loop counts as running
    in this thread, and other modules' asyncio.run() would fail."""
    from tests.conftest import require_service
    if not os.access(CHROMIUM, os.X_OK):
        require_service(f"Chromium at {CHROMIUM}", FileNotFoundError("run sh tests/run.sh, which installs it"))
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


class LiveServer:
    """A WSGI app served by werkzeug on 127.0.0.1, port 0, in a thread."""

    def __init__(self, app) -> None:
        from werkzeug.serving import make_server
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self._thread.join(10)
        self.server.server_close()


@pytest.fixture
def serve():
    """Factory: serve(app) -> LiveServer, stopped at the end of the test."""
    started: list[LiveServer] = []

    def start(app) -> LiveServer:
        started.append(LiveServer(app))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def live_server(web_app, serve) -> LiveServer:
    """The web app of `web_app` served over HTTP for the browser."""
    return serve(web_app)


@dataclass
class Guard:
    """What a page did wrong: console errors, uncaught exceptions, requests to other hosts."""

    errors: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def watch(self, context) -> None:
        """Record problems of every page of `context`; requests to other hosts are recorded and aborted."""
        context.on("page", self.watch_page)
        context.route("**/*", self._route)

    def watch_page(self, page) -> None:
        page.on("console", lambda msg: msg.type == "error" and self.errors.append(
            f"console: {msg.text} at {msg.location.get('url')}"))
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("websocket", lambda ws: self._check_url(ws.url))

    def _route(self, route) -> None:
        if self._check_url(route.request.url):
            route.continue_()
        else:
            route.abort()

    def _check_url(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about") or parts.hostname in LOCAL_HOSTS:
            return True
        self.foreign.append(url)
        return False

    def problems(self) -> list[str]:
        return self.errors + [f"request to another host: {url}" for url in self.foreign]


@pytest.fixture
def new_page(browser, serve):
    """Factory: new_page(base_url, viewport=DESKTOP, **context_options) -> a guarded Page.
    At the end of the test, any console error or request to another host fails it.
    (It depends on `serve` so that its pages close before the servers stop.)"""
    contexts: list = []
    guard = Guard()

    def make(base_url: str, viewport: dict | None = None, **options):
        context = browser.new_context(base_url=base_url, viewport=viewport or DESKTOP, **options)
        context.set_default_timeout(10_000)
        guard.watch(context)
        contexts.append(context)
        return context.new_page()

    make.guard = guard
    yield make
    problems = guard.problems()  # what happened during the test, not while the pages close
    for context in contexts:
        context.close()
    if problems:
        pytest.fail("the page misbehaved:\n" + "\n".join(problems), pytrace=False)


@pytest.fixture
def page(new_page, live_server):
    """A guarded page on live_server (desktop size)."""
    return new_page(live_server.url)


def log_in(page, name: str, password: str) -> None:
    """Log in through the login form."""
    page.goto("/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)


def horizontal_overflow(page) -> int:
    """How many pixels the page is wider than the viewport (0: no horizontal scroll)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
