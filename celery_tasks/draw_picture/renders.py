"""Render folders and their `path` rows (was submit_path.py): atomic files, recorded only when complete."""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from sqlalchemy.engine import Engine

from lib.charts import ChartFile, Render, chart_file_name, is_render_name, render_name
from lib.storage import charts as chart_store

log = logging.getLogger(__name__)

ORPHAN_AGE_S = 3600  # an unrecorded folder younger than this may be a render still being written

Writer = Callable[[Path, str], None]


def atomic_write(path: Path, text: str) -> None:
    """Write text to path through a temporary file in the same folder and a rename.

    A reader (the Flask app) sees the old file or the whole new one, never a part.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class RenderFolder:
    """The files of one render, written one by one and recorded together by commit().

    Use as a context manager: leaving it without a commit (an exception, a failed
    write) deletes the folder, so a partial render never stays on disk.
    """

    def __init__(self, chart_dir: Path, rendered_ms: int, writer: Writer = atomic_write) -> None:
        self.chart_dir = Path(chart_dir)
        self.rendered_ms = rendered_ms
        self.writer = writer
        self.name = render_name(rendered_ms)
        self.folder = self.chart_dir / self.name
        self.files: list[ChartFile] = []
        self.committed = False

    def __enter__(self) -> "RenderFolder":
        self.folder.mkdir(parents=True, exist_ok=False)
        return self

    def add(self, device_id: int, metric: str, span: str, html: str) -> ChartFile:
        """Write one chart's page into the folder."""
        name = chart_file_name(device_id, metric, span)
        self.writer(self.folder / name, html)
        chart = ChartFile(device_id, metric, span, f"{self.name}/{name}")
        self.files.append(chart)
        return chart

    def commit(self, engine: Engine) -> Render | None:
        """Record the render in `path`, after checking every file is there; None without files.

        A render without files is not committed, so its empty folder goes on exit.
        """
        if not self.files:
            return None
        missing = [f.file for f in self.files if not (self.chart_dir / f.file).is_file()]
        if missing:
            raise FileNotFoundError(f"render {self.name} lacks {len(missing)} files, e.g. {missing[0]}")
        chart_store.record_render(engine, self.name, self.rendered_ms, self.files)
        self.committed = True
        return Render(self.name, self.rendered_ms, tuple(self.files))

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.committed:
            return
        if exc_type is not None:
            log.warning("discarding incomplete render %s: %s", self.name, exc)
        shutil.rmtree(self.folder, ignore_errors=True)


def prune_renders(engine: Engine, chart_dir: Path, before_ms: int) -> int:
    """Delete renders recorded before before_ms and unrecorded folders left by crashed renders.

    Rows go first, so a folder is never listed in `path` after its files are gone; a
    folder whose deletion fails becomes an orphan and goes next time. Returns the
    number of renders removed.
    """
    chart_dir = Path(chart_dir)
    old = chart_store.renders_before(engine, before_ms)
    chart_store.delete_renders(engine, old)
    for name in old:
        _remove(chart_dir / name)
    orphans = _orphans(engine, chart_dir, time.time() - ORPHAN_AGE_S)
    for folder in orphans:
        _remove(folder)
    if old or orphans:
        log.info("pruned %d chart renders and %d unrecorded folders", len(old), len(orphans))
    return len(old) + len(orphans)


def _orphans(engine: Engine, chart_dir: Path, before_s: float) -> list[Path]:
    """Render folders that no `path` row names, unchanged since before_s."""
    if not chart_dir.is_dir():
        return []
    recorded = chart_store.render_names(engine)
    found = []
    for entry in chart_dir.iterdir():
        if (entry.is_dir() and not entry.is_symlink() and is_render_name(entry.name)
                and entry.name not in recorded and entry.stat().st_mtime < before_s):
            found.append(entry)
    return found


def _remove(folder: Path) -> None:
    """Delete a render folder, logging instead of failing (the next prune retries)."""
    if not is_render_name(folder.name):
        raise ValueError(f"refusing to delete {folder}: not a render folder")
    try:
        shutil.rmtree(folder)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not delete chart folder %s: %s", folder, exc)
