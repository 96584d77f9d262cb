"""The Content-Security-Policy of the HTML pages: scripts, styles and data from this site only,
plus the ingest server's live WebSocket."""
from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request

from lib import live

HEADER = "Content-Security-Policy"
# No inline script, style or event handler anywhere: the pages load their code from /static.
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
          "connect-src 'self' {live}; frame-src 'self'; frame-ancestors 'self'; base-uri 'self'; "
          "form-action 'self'; object-src 'none'")


def init_app(app: Flask) -> None:
    """Send the policy with every HTML response that has none of its own (chart files set theirs)."""
    app.after_request(add_policy)
    app.after_request(no_sniffing)


def no_sniffing(response: Response) -> Response:
    """Every response, whatever its type (JSON, CSV, scripts, errors): browsers must not guess another."""
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def add_policy(response: Response) -> Response:
    """The strict policy on every HTML page (error pages and the API docs included)."""
    if response.mimetype != "text/html" or HEADER in response.headers:
        return response
    response.headers[HEADER] = POLICY.format(live=live_origin())
    response.headers.setdefault("Referrer-Policy", "same-origin")
    return response


def live_origin() -> str:
    """scheme://host:port of the live WebSocket that the browser opens (lib.live.browser_url)."""
    url = live.browser_url(current_app.config["SENSORS"], request.host, request.is_secure)
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
