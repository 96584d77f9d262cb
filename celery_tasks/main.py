"""The Celery app: broker, result backend, queue and beat schedule, all from db_config.ini."""
from __future__ import annotations

from datetime import timedelta

from celery import Celery
from celery.signals import beat_init
from kombu import Queue

from celery_tasks import fs_transport  # noqa: F401  registers the embedded broker's sensorsfs://
from lib import config as config_mod

TASK_MODULES = ("celery_tasks.curb", "celery_tasks.draw_picture.draw", "celery_tasks.alerts")


def celery_config(settings: config_mod.Config) -> dict:
    """Celery settings derived from ours; beat and the embedded transport keep their files in embedded_dir."""
    queue = settings.celery.queue
    conf = {
        "broker_url": settings.broker_url,
        "enable_utc": True,
        "timezone": "UTC",
        "task_default_queue": queue,
        "task_queues": (Queue(queue, routing_key=queue),),
        "task_default_routing_key": queue,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_expires": timedelta(days=1),
        # A task is acknowledged after it ran, so a worker killed mid-task leaves it queued;
        # every task is idempotent, which is what makes that safe.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_concurrency": settings.celery.concurrency,
        "worker_send_task_events": True,  # Flower shows tasks as they run
        "task_send_sent_event": True,
        "task_track_started": True,
        "broker_connection_retry_on_startup": True,
        "beat_schedule": beat_schedule(settings),
    }
    folder = settings.celery.embedded_dir
    # Beat's schedule lives here on every broker, so the folder must exist with RabbitMQ too.
    folder.mkdir(parents=True, exist_ok=True)
    conf["beat_schedule_filename"] = str(folder / "beat-schedule")
    if settings.uses_rabbitmq:
        conf["result_backend"] = settings.celery.result_backend or "rpc://"
    else:
        for sub in ("broker", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        conf["broker_transport_options"] = {
            "data_folder_in": str(folder / "broker"), "data_folder_out": str(folder / "broker"),
            "control_folder": str(folder / "control"), "polling_interval": 0.2}
        conf["result_backend"] = (settings.celery.result_backend
                                  or f"db+sqlite:///{folder / 'results.sqlite'}")
    return conf


def beat_schedule(settings: config_mod.Config) -> dict:
    """Periodic tasks; each expires after one interval so a backlog never piles up."""
    def every(seconds: float, task: str) -> dict:
        return {"task": task, "schedule": seconds, "options": {"expires": seconds}}

    celery = settings.celery  # the intervals are checked positive when the settings load
    return {
        "rollup": every(celery.rollup_seconds, "celery_tasks.rollup"),
        "alerts": every(celery.alert_seconds, "celery_tasks.evaluate_alerts"),
        "charts": every(settings.charts.interval_seconds, "celery_tasks.draw_charts"),
        "retention": every(celery.retention_seconds, "celery_tasks.retention"),
    }


def make_celery(settings: config_mod.Config | None = None) -> Celery:
    """A Celery app for `settings` (db_config.ini and SENSORS_* variables by default)."""
    settings = settings or config_mod.load()
    app = Celery("celery_tasks", include=list(TASK_MODULES))
    app.conf.update(celery_config(settings))
    app.sensors = settings  # our settings, for the tasks (celery_tasks.db)
    return app


app = make_celery()


@beat_init.connect
def draw_on_start(sender=None, **_kwargs) -> None:
    """Draw the charts as soon as beat starts instead of one [charts] interval later."""
    sender.app.send_task("celery_tasks.draw_charts")
