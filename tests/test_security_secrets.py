"""Generated secrets: made with `secrets`, in files of mode 0600 whatever the umask, never empty.

The full run that greps every log for them: tests/test_security_logs.py.
"""
from __future__ import annotations

import ast
import os
import stat

import pytest

from celery_tasks.flower import PASSWORD_FILE, credentials
from flask_front import SECRET_FILE, create_app
from lib import config as config_mod, live
from lib.config import REPO_ROOT

# Every secret a start generates into [other] var_dir, and who makes it.
SECRET_FILES = {SECRET_FILE: "web app", live.SECRET_FILE: "web app and ingest server", PASSWORD_FILE: "Flower"}


def generate_all(cfg: config_mod.Config) -> dict[str, str]:
    """Have each process's code generate its secret, as a first start does."""
    app = create_app({"SENSORS": cfg, "SQLALCHEMY_DATABASE_URI": cfg.database_url})
    return {SECRET_FILE: app.config["SECRET_KEY"], live.SECRET_FILE: live.shared_secret(cfg),
            PASSWORD_FILE: credentials(cfg)[1]}


@pytest.fixture
def cfg(tmp_path) -> config_mod.Config:
    """Settings with var_dir in tmp_path and no configured secrets (they are generated)."""
    return config_mod.load(environ={
        "SENSORS_OTHER_VAR_DIR": str(tmp_path / "var"), "SENSORS_SQLITE_PATH": str(tmp_path / "sensors.db"),
        "SENSORS_MYSQL_DATABASE": "", "SENSORS_WEB_SECRET_KEY": "", "SENSORS_LIVE_SECRET": "",
        "SENSORS_AUTH_FLOWER_PASSWORD": ""})


@pytest.mark.parametrize("umask", [0o022, 0o000], ids=["umask-022", "umask-000"])
def test_every_generated_secret_file_is_0600(cfg, umask):
    """secret_key, live_secret, flower_password: owner-only even under a permissive umask, and distinct."""
    previous = os.umask(umask)
    try:
        values = generate_all(cfg)
    finally:
        os.umask(previous)
    files = {p.name: p for p in cfg.var_dir.iterdir() if p.is_file()}
    assert set(files) == set(SECRET_FILES)  # a new secret file must be added to SECRET_FILES (and checked)
    for name, path in files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert path.read_text().strip() == values[name]
        assert len(values[name]) >= 24, name  # at least 18 random bytes (secrets.token_urlsafe)
    assert len(set(values.values())) == 3
    assert generate_all(cfg) == values  # read back on the next start, not replaced


def test_an_empty_flower_password_file_is_refused(cfg):
    """A password file left empty (say, a crash while it was written) never means Flower without a password."""
    cfg.var_dir.mkdir(parents=True)
    (cfg.var_dir / PASSWORD_FILE).write_text("\n")
    with pytest.raises(ValueError, match="is empty: delete it"):
        credentials(cfg)


# Modules allowed to import `random`: neither makes a secret (simulated readings, reconnect jitter).
RANDOM_ALLOWED = {"Pi_Sensor/sensors.py", "Pi_Sensor/backoff.py"}


def test_secrets_come_from_the_secrets_module():
    """Tokens, passwords and keys are made with `secrets`; `random` is used nowhere else in the code."""
    importers = set()
    for package in ("lib", "flask_front", "celery_tasks", "Pi_Sensor"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            text = path.read_text()
            if "random" not in text:
                continue
            names = set()
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.Import):
                    names |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom):
                    names.add(node.module)
            if "random" in names:
                importers.add(path.relative_to(REPO_ROOT).as_posix())
    assert importers == RANDOM_ALLOWED
    for path in ("lib/secretfile.py", "lib/storage/__init__.py", "lib/storage/users.py"):
        assert "secrets.token_urlsafe(" in (REPO_ROOT / path).read_text(), path
