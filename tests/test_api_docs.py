"""flask_front.api.docs: Swagger UI at /api/v1/docs from npm's install, with no inline script."""
from __future__ import annotations

import re

import pytest

from tests.web_fixtures import make_app


@pytest.fixture
def client(settings, tmp_path):
    """A test client (the docs need no database of their own; `settings` gives one anyway)."""
    cfg = settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}})
    return make_app(cfg).test_client()


def test_the_docs_page_loads_its_files_from_this_server(client):
    page = client.get("/api/v1/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources and all(s.startswith("/") and not s.startswith("//") for s in sources), sources
    for source in sources:  # tests/run.sh installs swagger-ui-dist, as start.sh does
        assert client.get(source).status_code == 200, source
    assert 'data-spec="/api/v1/openapi.json"' in html
    # No inline script, so a strict Content-Security-Policy can be sent with the page.
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []


@pytest.mark.parametrize("path", ["/static/vendor/swagger-ui/nope.js", "/static/vendor/swagger-ui/../package.json",
                                  "/static/vendor/swagger-ui/%2e%2e/package.json"])
def test_only_files_of_the_package_are_served(client, path):
    assert client.get(path).status_code == 404


def test_a_missing_install_says_how_to_install_it(settings, tmp_path):
    cfg = settings.with_overrides({"other": {"var_dir": str(tmp_path / "var")}})
    app = make_app(cfg, SWAGGER_UI_DIR=str(tmp_path / "absent"))
    response = app.test_client().get("/static/vendor/swagger-ui/swagger-ui-bundle.js")
    assert response.status_code == 404 and b"npm ci --prefix deploy/npm" in response.data
