"""schemathesis against the OpenAPI document of a running app: no 5xx, no answer that breaks it.

The CI-sized run of bench/schemathesis_run.py: the app served on 127.0.0.1 port 0 (SQLite),
`schemathesis run` seeded, every phase (stateful through the document's links) and every check,
with an administrator's token and anonymously. Longer runs: `.venv/bin/python -m bench.schemathesis_run`.
"""
from __future__ import annotations

import pytest

from bench.schemathesis_run import UNDECLARED, Report, clean, run
from lib import storage
from lib.celery_config import prepare_folders
from tests.conftest import reset_database, sqlite_settings
from tests.web_fixtures import make_account, make_app

SEED = 20261203


@pytest.fixture
def api(tmp_path, serve):
    """(base URL, admin API token, device token) of the app served over HTTP on a fresh database."""
    cfg = sqlite_settings(tmp_path / "sensors.db")
    reset_database(cfg)
    cfg = cfg.with_overrides({"rabbitmq": {"host": ""},
                              "other": {"var_dir": str(tmp_path / "var"), "flask_path": str(tmp_path / "charts")},
                              "celery": {"embedded_dir": str(tmp_path / "celery")}})
    prepare_folders(cfg)
    engine = storage.make_engine(cfg.database_url)
    admin = make_account(engine, "admin", admin=True)
    device_token = storage.add_device(engine, "fuzz-pi")[1]
    engine.dispose()
    server = serve(make_app(cfg, TESTING=False))  # as served: errors become 500s, not test exceptions
    return server.url, admin.token, device_token


def explain(report: Report) -> str:
    """The failures of a run, for the assertion message."""
    lines = [f"{name}: {count} cases, e.g. {report.examples[name]}" for name, count in report.failures.items()]
    return "\n".join(lines + report.errors)


def test_no_server_error_and_no_answer_outside_the_document(api, tmp_path):
    url, admin_token, device_token = api
    # The coverage phase (every boundary and missing part of every operation) takes minutes: the
    # benchmark runs it; here examples, fuzzing in positive and negative mode, and the stateful phase.
    authed = run(url, tmp_path / "admin", seed=SEED, max_examples=3, admin_token=admin_token,
                 device_token=device_token, phases="examples,fuzzing,stateful", timeout=120)
    assert clean(authed), explain(authed)
    declared = [label for label in authed.rows if label != UNDECLARED]
    assert len(declared) >= 20 and all(authed.rows[label].cases for label in declared), authed.rows
    assert not authed.links.startswith("0 covered"), authed.links  # the stateful phase followed links

    anonymous = run(url, tmp_path / "anonymous", seed=SEED, max_examples=2, phases="fuzzing", timeout=120)
    assert clean(anonymous), explain(anonymous)
