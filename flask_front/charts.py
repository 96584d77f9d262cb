"""Serving the trend charts: rendered pages from [other] flask_path and ECharts from npm's install."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, send_from_directory

from lib.config import REPO_ROOT

# Installed by deploy/echarts.sh (npm ci); the chart pages load it from ECHARTS_ROUTE.
ECHARTS_DIST = REPO_ROOT / "deploy" / "npm" / "node_modules" / "echarts" / "dist"
ECHARTS_ROUTE = "/static/vendor/echarts/"
NOT_INSTALLED = ("ECharts is not installed: run `sh start.sh` (it installs it with npm; Node.js and npm "
                 "are needed) or `npm ci --prefix deploy/npm`.")

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
    return send_from_directory(folder, filename, max_age=0)
