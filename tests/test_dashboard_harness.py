"""The browser test harness itself: it sees console errors, uncaught exceptions and requests to other hosts."""
from __future__ import annotations

from flask import Flask

PAGE = """<!doctype html><title>t</title><h1>{title}</h1>{body}"""


def tiny_app() -> Flask:
    """An app with a clean page and a misbehaving one (no project code: this tests the harness)."""
    app = Flask(__name__)

    @app.route("/clean")
    def clean():
        return PAGE.format(title="clean", body="")

    @app.route("/bad")
    def bad():
        body = ("<img src='http://example.invalid/pixel.png'>"
                "<script>console.error('boom'); fetch('https://example.invalid/api').catch(() => {});"
                "setTimeout(() => { throw new Error('uncaught one'); });</script>")
        return PAGE.format(title="bad", body=body)

    return app


def test_clean_page_has_no_problems(serve, new_page):
    page = new_page(serve(tiny_app()).url)
    page.goto("/clean")
    assert page.inner_text("h1") == "clean"
    assert new_page.guard.problems() == []


def test_guard_records_console_errors_and_foreign_requests(serve, new_page):
    page = new_page(serve(tiny_app()).url)
    page.goto("/bad")
    page.wait_for_timeout(300)
    guard = new_page.guard
    assert any("boom" in e for e in guard.errors), guard.errors
    assert any("uncaught one" in e for e in guard.errors), guard.errors
    assert "http://example.invalid/pixel.png" in guard.foreign
    assert "https://example.invalid/api" in guard.foreign
    # Handled here: the fixture would otherwise fail this test for them.
    guard.errors.clear()
    guard.foreign.clear()
