"""The worker's Celery app: lib.celery_config plus reliability settings, task modules and beat schedule.

Nothing happens at import: make_celery builds an app for given settings, worker_app the one
`celery -A celery_tasks` runs. Tasks are declared with @shared_task and join whichever app runs them.
"""
from __future__ import annotations

import threading

from celery import Celery
from celery.signals import beat_init

from lib import config as config_mod
from lib.celery_config import celery_config, prepare_folders

TASK_MODULES = ("celery_tasks.rollup_tasks", "celery_tasks.draw_picture.draw", "celery_tasks.alerts")

_lock = threading.Lock()
_worker_app: Celery | None = None


def worker_config(settings: config_mod.Config) -> dict:
    """The sending settings of lib.celery_config, plus what only workers and beat use."""
    conf = celery_config(settings)
    conf.update({
        # A task is acknowledged after it ran, so a worker killed mid-task leaves it queued;
        # every task is idempotent, which is what makes that safe.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_consumer": "celery_tasks.consumer:QuickReconnectConsumer",
        "worker_concurrency": settings.celery.concurrency,
        "worker_send_task_events": True,  # Flower shows tasks as they run
        "task_track_started": True,
        "beat_schedule": beat_schedule(settings),
        "beat_schedule_filename": str(settings.celery.embedded_dir / "beat-schedule"),
        # Task options that come from settings, applied when a task joins the app.
        "task_annotations": {"celery_tasks.send_webhook": {"max_retries": settings.alerts.webhook_retries}},
    })
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
    """A worker's Celery app for `settings` (db_config.ini and SENSORS_* variables by default).

    Creates the embedded broker's folders and embedded_dir (beat's schedule lives there on every broker).
    """
    settings = settings or config_mod.load()
    prepare_folders(settings)
    app = Celery("celery_tasks", include=list(TASK_MODULES))
    app.conf.update(worker_config(settings))
    app.sensors = settings  # our settings, for the tasks (celery_tasks.db)
    return app


def worker_app() -> Celery:
    """The app of `celery -A celery_tasks`, made from db_config.ini on first call."""
    global _worker_app
    with _lock:
        if _worker_app is None:
            _worker_app = make_celery()
        return _worker_app


@beat_init.connect
def draw_on_start(sender=None, **_kwargs) -> None:
    """Draw the charts as soon as beat starts instead of one [charts] interval later."""
    sender.app.send_task("celery_tasks.draw_charts")
