"""The worker's settings and database engine, one engine per worker process."""
from __future__ import annotations

import os

from celery import current_app
from sqlalchemy.engine import Engine

from lib import config as config_mod, storage

_engines: dict[int, Engine] = {}


def settings() -> config_mod.Config:
    """Settings of the app running the current task."""
    return current_app.sensors


def engine() -> Engine:
    """This process's engine; prefork children must not share their parent's connections."""
    pid = os.getpid()
    if pid not in _engines:
        _engines[pid] = storage.make_engine(settings().database_url)
    return _engines[pid]
