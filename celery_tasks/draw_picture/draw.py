"""The chart task: every active device's metrics over 24 h, 7 d and 30 d, as one recorded render."""
from __future__ import annotations

import logging
from typing import Iterable, Sequence

from celery import shared_task
from sqlalchemy.engine import Connection, Engine

from celery_tasks import db
from celery_tasks.draw_picture.picture_template import render_html
from celery_tasks.draw_picture.renders import RenderFolder, Writer, atomic_write
from lib import config as config_mod, storage
from lib.catalogue import Catalogue
from lib.charts import DAY_MS, LONGEST_MS, WINDOWS, Render, Window
from lib.storage import charts as chart_store

log = logging.getLogger(__name__)


@shared_task(name="celery_tasks.draw_charts")
def draw_charts(device_ids: Sequence[int] | None = None, now_ms: int | None = None) -> dict:
    """Draw all charts (or those of device_ids) as of now_ms; returns the render's name and file count."""
    now = storage.now_ms() if now_ms is None else int(now_ms)
    render = draw_all(db.engine(), db.settings(), now, device_ids)
    return {"render": render.name if render else None, "files": len(render.files) if render else 0}


def draw_all(engine: Engine, settings: config_mod.Config, now_ms: int,
             device_ids: Iterable[int] | None = None, writer: Writer = atomic_write) -> Render | None:
    """Render every active device × metric × window into a new folder and record it.

    Returns None, leaving no folder, when there is nothing to draw.
    """
    catalogue = storage.load_catalogue(engine)
    max_points = settings.charts.max_points
    echarts_url = settings.charts.echarts_url
    if not echarts_url.endswith("/"):
        echarts_url += "/"  # pyecharts appends "echarts.min.js" to it
    raw_kept_ms = int(settings.retention.raw_days * DAY_MS)
    with engine.connect() as conn:
        devices = chart_store.active_devices(conn, now_ms - LONGEST_MS, device_ids)
    if not devices:
        log.info("no device has data in the last 30 days: no charts drawn")
        return None
    with RenderFolder(settings.other.flask_path, now_ms, writer) as folder:
        for device in devices:
            with engine.connect() as conn:
                charts = device_charts(conn, catalogue, device.id, now_ms, max_points, raw_kept_ms)
            for metric, window, source, points in charts:
                html = render_html(device_name=device.name, metric=catalogue[metric], window=window,
                                   now_ms=now_ms, source=source, points=points, echarts_url=echarts_url)
                folder.add(device.id, metric, window.name, html)
        render = folder.commit(engine)
    if render is None:
        log.info("active devices have no values to draw: no charts drawn")
    else:
        log.info("drew %d charts of %d devices into %s", len(render.files), len(devices), render.name)
    return render


def device_charts(conn: Connection, catalogue: Catalogue, device_id: int, now_ms: int,
                  max_points: int, raw_kept_ms: int) -> list[tuple[str, Window, str, list]]:
    """(metric, window, source, points) of one device; metrics without data in any window are left out."""
    drawn: list[tuple[str, Window, str, list]] = []
    names = list(catalogue.names)
    for window in WINDOWS:
        start = window.start(now_ms)
        source = chart_store.pick_source(conn, device_id, start, now_ms, max_points, raw_kept_ms)
        points = chart_store.series(conn, source, device_id, names, start, now_ms)
        drawn += [(m, window, source, points[m]) for m in names]
    has_data = {m for m, _w, _s, points in drawn if points}
    return [chart for chart in drawn if chart[0] in has_data]
