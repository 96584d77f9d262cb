"""What every Celery client needs, worker or web app: the broker, the queue and the result backend."""
from __future__ import annotations

from datetime import timedelta

from kombu import Queue

from lib import config as config_mod
from lib import fs_transport  # noqa: F401  registers the embedded broker's sensorsfs://

# The tables Celery's database backend creates for itself (in our MySQL database by default);
# they are not ours, so schema comparisons leave them out (lib/migrations/env.py).
RESULT_TABLES = frozenset({"celery_taskmeta", "celery_tasksetmeta"})
RESULTS_FILE = "results.sqlite"


def result_backend(settings: config_mod.Config) -> str:
    """[celery] result_backend, else the database, so every process reads every result.

    With SQLite the results get their own file beside the broker's: a result written for
    each task must not queue behind the ingest server's writes for SQLite's one write lock.
    """
    if settings.celery.result_backend:
        return settings.celery.result_backend
    if settings.uses_mysql:
        return "db+" + settings.database_url
    return f"db+sqlite:///{settings.celery.embedded_dir / RESULTS_FILE}"


def celery_config(settings: config_mod.Config) -> dict:
    """Celery settings for sending tasks and reading their results; creates nothing."""
    queue = settings.celery.queue
    conf = {
        "broker_url": settings.broker_url,
        "result_backend": result_backend(settings),
        "enable_utc": True,
        "timezone": "UTC",
        "task_default_queue": queue,
        "task_queues": (Queue(queue, routing_key=queue),),
        "task_default_routing_key": queue,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "result_expires": timedelta(days=1),
        "task_send_sent_event": True,  # Flower shows tasks from the moment they are sent
        "broker_connection_retry_on_startup": True,
    }
    if not settings.uses_rabbitmq:
        folder = settings.celery.embedded_dir
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "broker"), "data_folder_out": str(folder / "broker"),
            "control_folder": str(folder / "control"), "polling_interval": 0.2}
    return conf


def prepare_folders(settings: config_mod.Config) -> None:
    """Create the embedded broker's folders (and embedded_dir, which beat needs on every broker)."""
    folder = settings.celery.embedded_dir
    folder.mkdir(parents=True, exist_ok=True)
    if not settings.uses_rabbitmq:
        for sub in ("broker", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)


def not_a_result_table(name: str | None, type_: str, _parent: object = None) -> bool:
    """Alembic include_name filter: False for Celery's result tables."""
    return not (type_ == "table" and name in RESULT_TABLES)
