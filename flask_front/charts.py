"""Serving the trend charts: rendered pages from [other] flask_path, ECharts from npm's install,
and the original project's /co2, /temperature and /humidity pages."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, abort, current_app, send_from_directory

from flask_front.extensions import db
from lib.storage import charts as chart_store

from lib.config import REPO_ROOT

# Installed by deploy/echarts.sh (npm ci); the chart pages load it from ECHARTS_ROUTE.
ECHARTS_DIST = REPO_ROOT / "deploy" / "npm" / "node_modules" / "echarts" / "dist"
ECHARTS_ROUTE = "/static/vendor/echarts/"
NOT_INSTALLED = ("ECharts is not installed: run `sh start.sh` (it installs it with npm; Node.js and npm "
                 "are needed) or `npm ci --prefix deploy/npm`.")

# The original's pages (/co2, /temperature, /humidity) show the first device's 24-hour chart.
ORIGINAL_SPAN = "24h"

# pyecharts pages carry their chart in inline scripts, so they cannot live under the dashboard's strict
# policy. They get their own: inline code only in them, loaded from here only, and sandboxed into an
# opaque origin so that even a script slipped into one could not read the dashboard or use its session.
CHART_CSP = ("default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
             "img-src 'self' data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; "
             "sandbox allow-scripts")
CSP_HEADER = "Content-Security-Policy"

bp = Blueprint("chart_files", __name__)


def register(app: Flask) -> None:
    """Attach the chart routes (once); ECHARTS_DIR may point elsewhere (tests, packaged installs)."""
    app.config.setdefault("ECHARTS_DIR", str(ECHARTS_DIST))
    if bp.name not in app.blueprints:
        app.register_blueprint(bp)


@bp.route(ECHARTS_ROUTE + "<path:filename>")
def echarts_file(filename: str):
    """A file of ECharts' dist folder, e.g. echarts.min.js."""
    folder = Path(current_app.config["ECHARTS_DIR"])
    if not (folder / "echarts.min.js").is_file():
        abort(404, description=NOT_INSTALLED)
    # A day of caching: the files change only when package-lock.json pins another version.
    return send_from_directory(folder, filename, max_age=86400)


@bp.route("/charts/<path:filename>")
def chart_file(filename: str):
    """A rendered chart page, by its path relative to [other] flask_path (as in the `path` table)."""
    folder = current_app.config["SENSORS"].other.flask_path
    return chart_page(send_from_directory(folder, filename, max_age=0))


def chart_page(response: Response) -> Response:
    """A rendered chart page with its own, relaxed policy (see CHART_CSP)."""
    response.headers[CSP_HEADER] = CHART_CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def latest_chart(metric: str, span: str = ORIGINAL_SPAN) -> str | None:
    """The file of the newest `span` chart of `metric` for the lowest device id that has one."""
    paths = [p for p in chart_store.latest_paths(db.engine) if p.metric == metric and p.span == span]
    return min(paths, key=lambda p: p.device_id).file if paths else None


def original_page(metric: str):
    """The latest pre-rendered 24-hour chart page of `metric`, as the original served it."""
    file = latest_chart(metric)
    if file is None:
        abort(404, description=f"No {metric} chart has been drawn yet. Charts are drawn every "
                               "[charts] interval_seconds by the Celery worker once a device has sent readings.")
    return chart_page(send_from_directory(current_app.config["SENSORS"].other.flask_path, file, max_age=0))


@bp.route("/co2")
def co2():
    """The original's CO₂ page."""
    return original_page("co2")


@bp.route("/temperature")
def temperature():
    """The original's temperature page."""
    return original_page("temperature")


@bp.route("/humidity")
def humidity():
    """The original's humidity page."""
    return original_page("humidity")
