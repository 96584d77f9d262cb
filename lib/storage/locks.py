"""Locks by name shared by every process using one database: MariaDB's GET_LOCK, a file beside SQLite's."""
from __future__ import annotations

import contextlib
import fcntl
import os
import time
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lib.storage import dialect as dialects

POLL_S = 0.05  # how often a wait for a SQLite lock file tries again (flock has no timeout)


@contextlib.contextmanager
def named_lock(engine: Engine, name: str, wait_s: float = 0) -> Iterator[bool]:
    """Hold the lock `name` of the engine's database while the block runs; yields False when
    another holder kept it for longer than `wait_s`. An in-memory SQLite database has one user."""
    if dialects.has_named_locks(engine.dialect.name):
        with _server_lock(engine, name, wait_s) as got:
            yield got
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    with _file_lock(f"{database}.{name}.lock", wait_s) as got:
        yield got


@contextlib.contextmanager
def _server_lock(engine: Engine, name: str, wait_s: float) -> Iterator[bool]:
    """GET_LOCK on a connection of its own, released by RELEASE_LOCK (or by the connection ending)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = conn.scalar(sa.text(dialects.get_lock_sql(name)), {"wait": wait_s})
        try:
            yield bool(got)
        finally:
            if got:
                conn.scalar(sa.text(dialects.release_lock_sql(name)))


@contextlib.contextmanager
def _file_lock(path: str, wait_s: float) -> Iterator[bool]:
    """flock on `path`, which the kernel releases when its holder dies (no stale lock files)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(POLL_S)
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
