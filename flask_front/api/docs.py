"""Interactive API docs at /api/v1/docs: Swagger UI from npm's install, with no inline script."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, abort, current_app, render_template, send_from_directory

from lib.config import REPO_ROOT

# Installed by deploy/echarts.sh (npm ci) beside ECharts; never loaded from a CDN.
SWAGGER_DIST = REPO_ROOT / "deploy" / "npm" / "node_modules" / "swagger-ui-dist"
SWAGGER_ROUTE = "/static/vendor/swagger-ui/"
NOT_INSTALLED = ("Swagger UI is not installed: run `sh start.sh` (it installs it with npm; Node.js and npm "
                 "are needed) or `npm ci --prefix deploy/npm`.")

bp = Blueprint("api_docs", __name__)


def register(app: Flask, prefix: str) -> None:
    """Serve the docs page under `prefix` and Swagger UI's files; SWAGGER_UI_DIR may point elsewhere."""
    app.config.setdefault("SWAGGER_UI_DIR", str(SWAGGER_DIST))
    if bp.name not in app.blueprints:
        app.register_blueprint(bp, url_prefix=prefix)
        app.add_url_rule(SWAGGER_ROUTE + "<path:filename>", "swagger_ui_file", swagger_ui_file)


@bp.route("/docs")
def docs():
    """The interactive documentation of the OpenAPI document at /api/v1/openapi.json."""
    return render_template("api_docs.html", vendor=SWAGGER_ROUTE)


def swagger_ui_file(filename: str):
    """A file of the swagger-ui-dist package, e.g. swagger-ui-bundle.js."""
    folder = Path(current_app.config["SWAGGER_UI_DIR"])
    if not (folder / "swagger-ui-bundle.js").is_file():
        abort(404, description=NOT_INSTALLED)
    # A day of caching: the files change only when package-lock.json pins another version.
    return send_from_directory(folder, filename, max_age=86400)
