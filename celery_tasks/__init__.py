"""Background work on Celery: rollups, retention, charts and alerts.

Run with `celery -A celery_tasks worker|beat|flower` from the repository root. Importing the
package builds nothing: Celery's -A looks up `celery_tasks.app`, which is made on first access
from db_config.ini (celery_tasks.main.worker_app); tests build their own with make_celery.
"""
from __future__ import annotations

# Imported now, not on first access: `.venv/bin/celery -A` puts the current folder on sys.path
# only while it imports this package, and `lib` must be found then. Importing builds nothing.
from celery_tasks import main as _main


def __getattr__(name: str):
    """`app`, built on first access (module __getattr__, PEP 562)."""
    if name == "app":
        return _main.worker_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
