"""Shared fixtures: real SQLite and MariaDB databases, a real ingest server on port 0."""
from __future__ import annotations

import asyncio
import atexit
import functools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa

from lib import config as config_mod, storage
from lib.config import REPO_ROOT
from lib.models import Base
from lib.storage.schema import VERSION_TABLE

MYSQL = dict(host=os.environ.get("TEST_MYSQL_HOST", "127.0.0.1"),
             port=int(os.environ.get("TEST_MYSQL_PORT", "3306")), user="root", password="")
IN_CI = os.environ.get("CI", "").lower() == "true"

pytest_plugins = ["tests.web_fixtures", "tests.browser_fixtures"]


def closed_port() -> int:
    """A port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_service(name: str, error: Exception) -> None:
    """A missing service fails the run under CI=true and skips the test elsewhere."""
    message = f"{name} is not reachable: {error}"
    if IN_CI:
        pytest.fail(message + " (CI=true: tests that need it must not be skipped)")
    pytest.skip(message)


@pytest.fixture(scope="session", autouse=True)
def cheap_bcrypt():
    """bcrypt at its lowest cost in this process: hashing at 12 took seconds per test module.

    Logins check at the cost stored in the hash, so nothing else changes; test_storage_users
    checks that production keeps 12. Servers started as subprocesses keep 12.
    """
    from lib.storage import users
    saved, users.BCRYPT_ROUNDS = users.BCRYPT_ROUNDS, 4
    yield
    users.BCRYPT_ROUNDS = saved


@pytest.fixture(scope="session")
def make_database():
    """Factory of fresh, uniquely named MariaDB databases, all dropped after the session."""
    try:
        admin = pymysql.connect(**MYSQL, connect_timeout=5, autocommit=True)
    except pymysql.MySQLError as exc:
        require_service("MariaDB at 127.0.0.1:3306", exc)
    created: list[str] = []

    def make(tag: str) -> str:
        # The name is built from the pid and hex digits only, so quoting it is enough.
        name = f"sensors_{tag}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        created.append(name)
        return name

    yield make
    with admin.cursor() as cur:
        for name in created:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture(scope="session")
def mysql_database(make_database) -> str:
    """A fresh MariaDB database for this test session."""
    return make_database("test")


def sqlite_settings(path: Path) -> config_mod.Config:
    """Settings for an embedded database at `path`."""
    return config_mod.load(environ={"SENSORS_SQLITE_PATH": str(path)})


def mysql_settings(database: str, port: int | None = None) -> config_mod.Config:
    """Settings for the local MariaDB database `database` (through `port` if given)."""
    return config_mod.load(environ={
        "SENSORS_MYSQL_HOST": MYSQL["host"], "SENSORS_MYSQL_PORT": str(port or MYSQL["port"]),
        "SENSORS_MYSQL_USER": MYSQL["user"], "SENSORS_MYSQL_DATABASE": database})


def reset_database(cfg: config_mod.Config) -> None:
    """Give `cfg` an empty, initialised database: emptied in place when its schema is as init_db made it."""
    path = None if cfg.uses_mysql else Path(cfg.sqlite.path)
    if path is not None and not path.exists():
        shutil.copyfile(_sqlite_template(), path)  # a new file: what init_db makes, without migrating again
        return
    engine = storage.make_engine(cfg.database_url)
    try:
        if cfg.uses_mysql and _CLEAN_SCHEMA.get(cfg.database_url) == _schema_fingerprint(engine):
            _empty_tables(engine)  # ~10x faster than dropping and migrating again on MariaDB
            storage.init_db(engine)  # seeds the built-in metrics
            return
        if cfg.uses_mysql:
            with engine.begin() as conn:
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
                for table in (*Base.metadata.tables, VERSION_TABLE):
                    conn.exec_driver_sql(f"DROP TABLE IF EXISTS `{table}`")
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")
        storage.init_db(engine)
        if cfg.uses_mysql:
            _CLEAN_SCHEMA[cfg.database_url] = _schema_fingerprint(engine)
    finally:
        engine.dispose()


@functools.cache
def _sqlite_template() -> Path:
    """An SQLite database fresh from init_db, made once per test process (migrating takes ~100 ms)."""
    path = Path(tempfile.mkdtemp(prefix="sensors-template-")) / "sensors.db"
    engine = storage.make_engine(f"sqlite:///{path}")
    try:
        storage.init_db(engine)
        with engine.connect() as conn:  # everything in the main file: the copy takes no -wal file
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        engine.dispose()
    atexit.register(shutil.rmtree, path.parent, True)
    return path


# MariaDB database URL -> its schema right after a full reset (tables, columns, indexes, version).
_CLEAN_SCHEMA: dict[str, tuple] = {}


def _schema_fingerprint(engine) -> tuple:
    """Everything a test could have changed in a MariaDB schema, in one comparable value."""
    with engine.connect() as conn:
        columns = conn.exec_driver_sql(
            "SELECT table_name, column_name, column_type, is_nullable, column_default FROM "
            "information_schema.columns WHERE table_schema = DATABASE() ORDER BY 1, 2").all()
        indexes = conn.exec_driver_sql(
            "SELECT table_name, index_name, seq_in_index, column_name FROM information_schema.statistics "
            "WHERE table_schema = DATABASE() ORDER BY 1, 2, 3").all()
        version = conn.exec_driver_sql(f"SELECT version_num FROM `{VERSION_TABLE}`").all() \
            if any(row[0] == VERSION_TABLE for row in columns) else None
    return tuple(map(tuple, columns)), tuple(map(tuple, indexes)), version


def _empty_tables(engine) -> None:
    """Delete every row of the project's tables; TRUNCATE those that used ids, so ids start at 1 again."""
    with engine.begin() as conn:
        counters = dict(conn.exec_driver_sql(
            "SELECT table_name, auto_increment FROM information_schema.tables "
            "WHERE table_schema = DATABASE()").all())
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
        for table in Base.metadata.tables:
            verb = "TRUNCATE TABLE" if (counters.get(table) or 1) > 1 else "DELETE FROM"
            conn.exec_driver_sql(f"{verb} `{table}`")
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")


def module_settings(request, folder: Path, tag: str) -> config_mod.Config:
    """Settings for a fresh, initialised database of the backend a module fixture's param names."""
    if request.param == "sqlite":
        cfg = sqlite_settings(folder / "sensors.db")
    else:
        cfg = mysql_settings(request.getfixturevalue("make_database")(tag))
    reset_database(cfg)
    return cfg.with_overrides({"other": {"var_dir": str(folder / "var")}})


@pytest.fixture(params=["sqlite", "mysql"])
def settings(request, tmp_path) -> config_mod.Config:
    """Settings for a fresh, initialised database on each backend."""
    if request.param == "sqlite":
        cfg = sqlite_settings(tmp_path / "sensors.db")
    else:
        cfg = mysql_settings(request.getfixturevalue("mysql_database"))
    reset_database(cfg)
    return cfg


@pytest.fixture
def engine(settings):
    """An engine on the fresh database."""
    eng = storage.make_engine(settings.database_url)
    yield eng
    eng.dispose()


@dataclass
class Device:
    id: int
    name: str
    token: str


@pytest.fixture
def device(engine) -> Device:
    """A registered device with its token."""
    info, token = storage.add_device(engine, f"pi-{uuid.uuid4().hex[:8]}")
    return Device(info.id, info.name, token)


@pytest.fixture
def devices(engine) -> list[int]:
    """Three registered devices."""
    return [storage.add_device(engine, f"pi-{uuid.uuid4().hex[:8]}")[0].id for _ in range(3)]


class ServerThread:
    """An IngestServer running on its own event loop in a thread, bound to `port` (0: a free one)."""

    def __init__(self, settings: config_mod.Config, engine=None, port: int = 0) -> None:
        from Pi_Sensor.server import IngestServer
        self.loop = asyncio.new_event_loop()
        self.server = IngestServer(settings, engine)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.call(self.server.start("127.0.0.1", port))
        self.port = self.server.address[1]
        self.url = f"ws://127.0.0.1:{self.port}/ingest"

    def call(self, coro, timeout: float = 30):
        """Run a coroutine on the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        """Shut the server down and stop its loop."""
        if self.server._server is not None:
            self.call(self.server.stop(timeout=5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def ingest(settings):
    """A running ingest server on the fresh database."""
    srv = ServerThread(settings)
    yield srv
    srv.stop()


def settings_env(settings: config_mod.Config) -> dict[str, str]:
    """Environment that makes a child process use exactly `settings`."""
    return {**os.environ, **settings.environ()}


class ServerProcess:
    """`python -m Pi_Sensor.server` as a child process on port 0."""

    LISTENING = re.compile(r"listening on [^:]+:(\d+)")

    def __init__(self, settings: config_mod.Config, log_path: Path, port: int = 0) -> None:
        env = settings_env(settings)
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "Pi_Sensor.server", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.port = self._wait_port()
        self.url = f"ws://127.0.0.1:{self.port}/ingest"

    def _wait_port(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = self.LISTENING.search(self.log_path.read_text())
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                raise RuntimeError(f"ingest server exited: {self.log_path.read_text()}")
            time.sleep(0.05)
        raise TimeoutError(f"ingest server did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._log.close()


@pytest.fixture
def server_process(settings, tmp_path):
    """Factory for ingest server child processes, killed at the end of the test."""
    started: list[ServerProcess] = []

    def start(port: int = 0, cfg: config_mod.Config | None = None) -> ServerProcess:
        proc = ServerProcess(cfg or settings, tmp_path / f"server-{len(started)}.log", port)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


def stored(engine, device_id: int) -> list[tuple]:
    """(ts, co2, temperature, humidity) rows of a device, oldest first."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT ts, co2, temperature, humidity FROM reading WHERE device_id = :d ORDER BY ts"),
            {"d": device_id})]


def hold_write_lock(engine):
    """Open a transaction that blocks writes to `reading` until the returned callable runs."""
    conn = engine.connect()
    if engine.dialect.name == "mysql":
        conn.exec_driver_sql("LOCK TABLES reading WRITE")
        release = "UNLOCK TABLES"
    else:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        release = "ROLLBACK"

    def unlock():
        conn.exec_driver_sql(release)
        conn.close()
    return unlock


# ---- Celery ---------------------------------------------------------------------

RABBITMQ = {"host": os.environ.get("TEST_RABBITMQ_HOST", "127.0.0.1"),
            "port": int(os.environ.get("TEST_RABBITMQ_PORT", "5672"))}


def require_rabbitmq() -> None:
    """Fail (CI) or skip (elsewhere) when RabbitMQ does not accept a connection."""
    import kombu
    try:
        with kombu.Connection(f"amqp://guest:guest@{RABBITMQ['host']}:{RABBITMQ['port']}//",
                              connect_timeout=5) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # kombu raises several types for an absent server
        require_service(f"RabbitMQ at {RABBITMQ['host']}:{RABBITMQ['port']}", exc)


def celery_settings(cfg: config_mod.Config, broker: str, tmp_path: Path) -> config_mod.Config:
    """`cfg` with its own queue, and either the local RabbitMQ or an embedded broker in tmp_path."""
    overrides = {"celery": {"queue": f"test-{uuid.uuid4().hex[:10]}",
                            "embedded_dir": str(tmp_path / "celery")},
                 "other": {"flask_path": str(tmp_path / "charts")}}
    if broker == "rabbitmq":
        require_rabbitmq()
        overrides["rabbitmq"] = {"host": RABBITMQ["host"], "port": str(RABBITMQ["port"]),
                                 "user": "guest", "password": "guest", "v_host": ""}
    else:
        overrides["rabbitmq"] = {"host": ""}
    return cfg.with_overrides(overrides)


class CeleryWorker:
    """`celery -A celery_tasks worker` as a child process, and an app that sends it tasks."""

    def __init__(self, cfg: config_mod.Config, log_path: Path, pool: str = "threads") -> None:
        from celery_tasks.main import make_celery
        self.settings = cfg
        self.log_path = log_path
        self.pool = pool
        self._log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", pool,
             "--concurrency", "2", "--loglevel", "INFO", "--without-mingle", "--without-gossip",
             "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"],
            cwd=REPO_ROOT, env=settings_env(cfg), stdout=self._log, stderr=subprocess.STDOUT)
        self.app = make_celery(cfg)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if " ready." in self.log_path.read_text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"celery worker exited: {self.log_path.read_text()}")
            time.sleep(0.1)
        raise TimeoutError(f"celery worker did not start: {self.log_path.read_text()}")

    def call(self, name: str, *args, timeout: float = 60, **kwargs):
        """Send task `name` to the worker and return its result."""
        return self.app.send_task(name, args=args, kwargs=kwargs).get(timeout=timeout)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        """End the worker; a threads pool is killed outright, as its warm shutdown on the embedded
        broker waits out 2-second polls (about 5 s a test), and a test is done with its tasks."""
        if self.proc.poll() is None:
            if self.pool != "prefork":
                self.proc.kill()
            else:
                self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        self.app.close()


@pytest.fixture
def celery_worker(tmp_path):
    """Factory: start_worker(cfg, broker="rabbitmq"|"embedded") -> CeleryWorker, stopped afterwards."""
    started: list[CeleryWorker] = []

    def start(cfg: config_mod.Config, broker: str = "rabbitmq", pool: str = "threads") -> CeleryWorker:
        worker = CeleryWorker(celery_settings(cfg, broker, tmp_path),
                              tmp_path / f"worker-{len(started)}.log", pool)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()
