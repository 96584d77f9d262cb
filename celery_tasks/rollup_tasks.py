"""Rollup and retention tasks (was celery_tasks/curb.py): thin wrappers over lib.storage.rollups and retention."""
from __future__ import annotations

import logging

from celery import shared_task

from celery_tasks import db
from lib import storage
from lib.rollup import RetentionPolicy
from lib.storage import retention as retention_sql, rollups

log = logging.getLogger(__name__)

# Share of the beat interval a rollup run may take, so runs do not pile up behind each other,
# and share it may wait for the lock (retention holds it for one device's deletes at a time).
BUDGET_SHARE = 0.8
LOCK_WAIT_SHARE = 0.1
# How long retention waits for a running rollup: it must roll up before it deletes.
RETENTION_LOCK_WAIT_S = 300


@shared_task(name="celery_tasks.rollup")
def rollup() -> dict:
    """Roll up the pending (device, hour) marks of any age; returns counts, late and merged ones included."""
    settings = db.settings()
    cutoffs = RetentionPolicy.from_settings(settings).cutoffs(storage.now_ms())
    interval = settings.celery.rollup_seconds
    return rollups.run_rollup(db.engine(), stale_before=cutoffs.raw_ms, budget_s=BUDGET_SHARE * interval,
                              wait_s=LOCK_WAIT_SHARE * interval).as_dict()


@shared_task(name="celery_tasks.retention")
def retention() -> dict:
    """Roll up what is pending, then delete old raw readings, minute rollups and chart renders.

    The result holds the rollup's counts, the rows deleted, the devices whose cutoffs were
    recorded (later readings of their deleted hours are merged into the kept rollups) and the cutoffs.
    """
    from celery_tasks.draw_picture.renders import prune_renders  # another module; import late
    settings = db.settings()
    engine = db.engine()
    policy = RetentionPolicy.from_settings(settings)
    cutoffs = policy.cutoffs(storage.now_ms())
    done = retention_sql.roll_up_and_retain(engine, cutoffs, policy.batch_rows, RETENTION_LOCK_WAIT_S)
    renders = prune_renders(engine, settings.other.flask_path, cutoffs.chart_ms)
    if done is None:
        # Deleting raw data whose late readings are not rolled up yet would lose them.
        raise RuntimeError("retention: a rollup run held the lock too long; no readings deleted")
    rolled, deleted = done
    return {"rollup": rolled.as_dict(), **deleted.as_dict(), "renders": renders,
            "raw_cutoff_ms": cutoffs.raw_ms, "minute_cutoff_ms": cutoffs.minute_ms}


@shared_task(name="celery_tasks.rebuild_rollups")
def rebuild_rollups(device_id: int | None = None, start_ms: int | None = None,
                    end_ms: int | None = None) -> dict:
    """Recompute the rollups of existing raw readings (all devices and times by default)."""
    return rollups.rebuild(db.engine(), device_id, start_ms, end_ms).as_dict()
