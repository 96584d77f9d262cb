"""Health checks of what the web app needs: the database and Celery's broker.

Each check returns None when the part is fine, else a short reason fit to show anyone
(no passwords). They never raise for a down service, and give up after a few seconds.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lib import config as config_mod

TIMEOUT = 2.0  # seconds a check may take before the part counts as down
REASON_CHARS = 200

# engine URL -> (thread, start time) of its latest database check
_checks: dict[object, tuple[threading.Thread, float]] = {}
_checks_lock = threading.Lock()


def _reason(exc: BaseException, secrets: tuple[str, ...] = ()) -> str:
    """An exception as one short line, with any secret masked."""
    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error
    text = f"{type(orig).__name__}: {orig}".replace("\n", " ")
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text if len(text) <= REASON_CHARS else text[:REASON_CHARS] + "…"


def _select_one(engine: Engine, outcome: list) -> None:
    """Run SELECT 1 on a pooled connection; append None or the exception to `outcome`."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
    except Exception as exc:  # reported by check_database
        outcome.append(exc)
    else:
        outcome.append(None)


def check_database(engine: Engine, timeout: float = TIMEOUT) -> str | None:
    """None when the database answers SELECT 1 within `timeout` seconds, else why not."""
    # The driver's own timeouts can be long (PyMySQL waits 10 s to connect), so the query
    # runs on a daemon thread that is abandoned after `timeout`. While one such thread hangs,
    # later checks of the same database answer at once instead of piling up more threads.
    with _checks_lock:
        latest = _checks.get(engine.url)
        if latest is not None and latest[0].is_alive() and time.monotonic() - latest[1] > timeout:
            return f"no answer within {timeout:g} s (an earlier check is still waiting)"
        outcome: list = []
        thread = threading.Thread(target=_select_one, args=(engine, outcome), name="health-check",
                                  daemon=True)
        _checks[engine.url] = (thread, time.monotonic())
        thread.start()
    thread.join(timeout)
    if not outcome:
        return f"no answer within {timeout:g} s"
    return None if outcome[0] is None else _reason(outcome[0], _engine_secrets(engine))


def _engine_secrets(engine: Engine) -> tuple[str, ...]:
    """The engine's password, to keep it out of reasons."""
    password = engine.url.password
    return (str(password),) if password else ()


def check_broker(settings: config_mod.Config, timeout: float = TIMEOUT) -> str | None:
    """None when the broker is reachable: RabbitMQ accepts a login, or the embedded folder is writable."""
    if not settings.uses_rabbitmq:
        return _check_embedded_broker(settings)
    import kombu  # only the RabbitMQ check needs it

    mq = settings.rabbitmq
    try:
        # read/write timeouts bound the AMQP handshake of a server that accepts but never answers.
        with kombu.Connection(settings.broker_url, connect_timeout=timeout,
                              transport_options={"read_timeout": timeout, "write_timeout": timeout}) as conn:
            conn.ensure_connection(max_retries=0)  # one attempt: a health check must not wait
    except Exception as exc:  # refused, timed out, login refused...
        return _reason(exc, (mq.password, settings.broker_url))
    return None


def _check_embedded_broker(settings: config_mod.Config) -> str | None:
    """The embedded broker's message folder exists and this process may write to it."""
    folder = settings.celery.embedded_dir / "broker"  # where lib/celery_config.py puts messages
    if not folder.is_dir():
        return f"embedded broker folder {folder} does not exist (has a worker ever started?)"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"embedded broker folder {folder} is not writable"
    return None


class CachedCheck:
    """A check whose result is reused for `max_age` seconds, per key, in this process."""

    def __init__(self, check: Callable[..., str | None], max_age: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.check, self.max_age, self.clock = check, max_age, clock
        self._results: dict[object, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    def __call__(self, key: object, *args, **kwargs) -> str | None:
        """The cached result for `key`, or a fresh check(*args, **kwargs)."""
        # One thread checks while the others wait for its result: a burst of polls from
        # several load balancers opens one connection, not one each.
        with self._lock:
            when, result = self._results.get(key, (float("-inf"), None))
            if self.clock() - when >= self.max_age:
                result = self.check(*args, **kwargs)
                self._results[key] = (self.clock(), result)
            return result


# The broker's state, shared by a process's threads; a load balancer polling every second
# then costs at most one broker connection per process every 2 s.
broker_status = CachedCheck(check_broker)


def broker_key(settings: config_mod.Config) -> tuple:
    """What identifies a broker for the cache: its URL and the embedded folder."""
    return settings.broker_url, str(settings.celery.embedded_dir)
