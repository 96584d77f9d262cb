"""lib/health.py: database and broker checks against real (and really absent) services."""
from __future__ import annotations

import socket
import time

import pytest
import sqlalchemy as sa

from lib import config as config_mod, health
from tests.conftest import MYSQL, RABBITMQ, require_rabbitmq

PASSWORD = "s3cret-pw"


def closed_port() -> int:
    """A port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_port():
    """A port that accepts TCP connections (the kernel's backlog) but never says a word."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def rabbitmq(tmp_path, **overrides) -> config_mod.Config:
    """Settings on the local RabbitMQ, with `overrides` of [rabbitmq] on top."""
    keys = {"host": RABBITMQ["host"], "port": str(RABBITMQ["port"]), "user": "guest",
            "password": "guest", "v_host": "", **overrides}
    return config_mod.load(environ={}).with_overrides(
        {"rabbitmq": keys, "celery": {"embedded_dir": str(tmp_path / "celery")}})


def embedded(tmp_path) -> config_mod.Config:
    """Settings on the embedded broker under tmp_path."""
    return config_mod.load(environ={}).with_overrides(
        {"rabbitmq": {"host": ""}, "celery": {"embedded_dir": str(tmp_path / "celery")}})


# ---- database -------------------------------------------------------------------------


def test_a_reachable_database_is_fine(engine):
    """SELECT 1 answers on both backends."""
    assert health.check_database(engine) is None


@pytest.mark.parametrize("url", [
    f"mysql+pymysql://root:{PASSWORD}@127.0.0.1:{{port}}/sensors",
    "sqlite:////nonexistent-folder/deeper/sensors.db",
], ids=["mysql-refused", "sqlite-unopenable"])
def test_a_database_that_is_down_gives_a_reason(url):
    """Refused or unopenable: a short reason at once, without the password."""
    # The closed port is found when the test runs: test ids must be the same in every xdist worker.
    engine = sa.create_engine(url.format(port=closed_port()))
    began = time.monotonic()
    reason = health.check_database(engine)
    assert time.monotonic() - began < 2
    assert reason and "OperationalError" in reason and PASSWORD not in reason
    assert len(reason) <= health.REASON_CHARS + 1
    engine.dispose()


def test_a_wrong_database_password_gives_a_reason_without_it(mysql_database):
    """The real server refuses the login; the reason says so and hides what was sent."""
    url = f"mysql+pymysql://root:{PASSWORD}@{MYSQL['host']}:{MYSQL['port']}/{mysql_database}"
    engine = sa.create_engine(url)
    try:
        reason = health.check_database(engine)
    finally:
        engine.dispose()
    assert reason and "Access denied" in reason and PASSWORD not in reason


def test_a_silent_database_times_out_and_does_not_pile_up(silent_port):
    """A server that accepts but never answers: the check gives up after its timeout; the next at once."""
    engine = sa.create_engine(f"mysql+pymysql://root@127.0.0.1:{silent_port}/x")
    began = time.monotonic()
    assert health.check_database(engine, timeout=0.5) == "no answer within 0.5 s"
    assert 0.5 <= time.monotonic() - began < 1.5
    began = time.monotonic()
    assert "still waiting" in health.check_database(engine, timeout=0.5)
    assert time.monotonic() - began < 0.2


# ---- broker ---------------------------------------------------------------------------


def test_rabbitmq_up_is_fine(tmp_path):
    """The local RabbitMQ accepts guest/guest."""
    require_rabbitmq()
    assert health.check_broker(rabbitmq(tmp_path)) is None


def test_rabbitmq_on_a_closed_port_gives_a_reason_quickly(tmp_path):
    """No retries, no back-off: refused is reported within a second."""
    cfg = rabbitmq(tmp_path).with_overrides({"rabbitmq": {"host": "127.0.0.1", "port": str(closed_port())}})
    began = time.monotonic()
    reason = health.check_broker(cfg)
    assert time.monotonic() - began < 1
    assert reason and "refused" in reason.lower()


def test_rabbitmq_that_never_answers_times_out(tmp_path, silent_port):
    """The AMQP handshake is bounded by the timeout too."""
    cfg = rabbitmq(tmp_path, host="127.0.0.1", port=str(silent_port))
    began = time.monotonic()
    reason = health.check_broker(cfg, timeout=0.5)
    assert reason and time.monotonic() - began < 2


def test_rabbitmq_refusing_the_login_hides_the_password(tmp_path):
    """A wrong password is a reason, which does not quote it."""
    require_rabbitmq()
    reason = health.check_broker(rabbitmq(tmp_path, password=PASSWORD))
    assert reason and "ACCESS_REFUSED" in reason and PASSWORD not in reason


def test_embedded_broker_needs_its_folder(tmp_path):
    """The embedded broker is fine once its message folder exists, and down without it."""
    cfg = embedded(tmp_path)
    reason = health.check_broker(cfg)
    assert reason and "does not exist" in reason and str(tmp_path / "celery" / "broker") in reason
    (tmp_path / "celery" / "broker").mkdir(parents=True)
    assert health.check_broker(cfg) is None


def test_embedded_broker_folder_must_be_a_folder(tmp_path):
    """A file where the folder should be is not a broker."""
    (tmp_path / "celery").mkdir()
    (tmp_path / "celery" / "broker").write_text("")
    assert health.check_broker(embedded(tmp_path))


# ---- cache ----------------------------------------------------------------------------


def test_cached_check_reuses_its_result_per_key_for_max_age():
    """Within max_age the check is not run again for a key; other keys and later calls run it."""
    now = [100.0]
    calls: list[str] = []

    def check(name):
        calls.append(name)
        return f"down {len(calls)}"

    cached = health.CachedCheck(check, max_age=2.0, clock=lambda: now[0])
    assert cached("a", "a") == "down 1"
    now[0] += 1.9
    assert cached("a", "a") == "down 1"
    assert cached("b", "b") == "down 2"
    now[0] += 0.1
    assert cached("a", "a") == "down 3"
    assert calls == ["a", "b", "a"]


def test_broker_status_is_cached_for_real(tmp_path):
    """The shared cache keeps an embedded broker's state ~2 s: removing the folder shows later."""
    cfg = embedded(tmp_path)
    (tmp_path / "celery" / "broker").mkdir(parents=True)
    cached = health.CachedCheck(health.check_broker, max_age=0.5)
    assert cached(health.broker_key(cfg), cfg) is None
    (tmp_path / "celery" / "broker").rmdir()
    assert cached(health.broker_key(cfg), cfg) is None  # still the cached answer
    time.sleep(0.6)
    assert "does not exist" in cached(health.broker_key(cfg), cfg)


def test_broker_key_tells_brokers_apart(tmp_path):
    """Two settings on different brokers do not share a cached state."""
    assert health.broker_key(embedded(tmp_path)) != health.broker_key(embedded(tmp_path / "x"))
    assert health.broker_key(rabbitmq(tmp_path)) != health.broker_key(rabbitmq(tmp_path, port="1"))
