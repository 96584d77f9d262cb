"""Fixtures of the web app: an app on each backend, its test client, users and their API tokens."""
from __future__ import annotations

from dataclasses import dataclass

import pytest

from lib.storage import users


@dataclass
class Account:
    """A user with the API token made for them."""

    id: int
    name: str
    password: str
    token: str
    is_admin: bool

    @property
    def headers(self) -> dict[str, str]:
        """Authorization headers carrying the user's API token."""
        return {"Authorization": f"Bearer {self.token}"}


def make_app(settings, **config):
    """A testing app on `settings` with a fixed secret key; `config` goes on top."""
    from flask_front import create_app

    return create_app({"SENSORS": settings, "SQLALCHEMY_DATABASE_URI": settings.database_url,
                       "TESTING": True, "SECRET_KEY": "test-secret", **config})


@pytest.fixture
def web_settings(settings, tmp_path):
    """The backend's settings with runtime files (secret key, charts) under tmp_path."""
    from lib.celery_config import prepare_folders

    cfg = settings.with_overrides({"other": {"var_dir": str(tmp_path / "var"),
                                             "flask_path": str(tmp_path / "var" / "charts")},
                                   "celery": {"embedded_dir": str(tmp_path / "var" / "celery")}})
    prepare_folders(cfg)  # as a worker would: the embedded broker and result files live here
    return cfg


@pytest.fixture
def web_app(web_settings):
    """The web app on a fresh database of each backend (SQLite and MariaDB)."""
    return make_app(web_settings)


@pytest.fixture
def web_client(web_app):
    """A test client of web_app."""
    return web_app.test_client()


def make_account(engine, name: str, admin: bool) -> Account:
    """A user with a password and an API token."""
    password = f"{name}-password"
    info = users.create_user(engine, name, password, admin=admin)
    return Account(info.id, name, password, users.create_api_token(engine, name)[1], admin)


@pytest.fixture
def admin(engine) -> Account:
    """An administrator with an API token."""
    return make_account(engine, "admin", admin=True)


@pytest.fixture
def user(engine) -> Account:
    """A user who is not an administrator, with an API token."""
    return make_account(engine, "reader", admin=False)
