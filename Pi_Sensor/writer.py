"""The group commit's write function: readings in few transactions, failures kept to their device."""
from __future__ import annotations

import logging

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from lib import storage
from Pi_Sensor.batcher import Batch, Outcomes

log = logging.getLogger("Pi_Sensor.server")


class ReadingWriter:
    """Called in a writer thread with a batch of (column names, rows); one outcome per item."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __call__(self, batch: Batch) -> Outcomes:
        """Commit a batch (runs in a writer thread): one outcome per item, {row index: reason}.

        Rows are grouped by column layout. When a group fails for a reason that is not the
        database being down, each device's rows are retried alone, so a failure that belongs
        to one device (say, deleted mid-flight) fails only that device's readings.
        """
        outcomes: Outcomes = [{} for _ in batch]
        by_names: dict[tuple[str, ...], list[int]] = {}
        for i, (names, _rows) in enumerate(batch):
            by_names.setdefault(names, []).append(i)
        for names, items in by_names.items():
            self._write_group(names, [(i, batch[i][1]) for i in items], outcomes)
        return outcomes

    def _write_group(self, names, items: list[tuple[int, list]], outcomes: Outcomes) -> None:
        """Write items sharing one column layout; on failure, retry each device alone."""
        error = self._write_items(names, items, outcomes)
        devices = sorted({rows[0][0] for _, rows in items})  # a frame's rows are one device's
        if error is None or storage.is_unavailable(error) or len(devices) == 1:
            return
        for i, _ in items:  # each device's retry below sets only its failures
            outcomes[i] = {}
        for device in devices:
            self._write_items(names, [(i, rows) for i, rows in items if rows[0][0] == device], outcomes)

    def _write_items(self, names, items: list[tuple[int, list]], outcomes: Outcomes):
        """Write items in one transaction and set their outcomes; return the error, if any."""
        try:
            failed = storage.write_readings(self.engine, names, [r for _, rows in items for r in rows])
        except SQLAlchemyError as exc:
            log.warning("commit of %d rows of devices %s failed: %s", sum(len(r) for _, r in items),
                        sorted({rows[0][0] for _, rows in items}), storage.describe_error(exc))
            for i, _ in items:
                outcomes[i] = exc
            return exc
        if failed:  # the outcomes are {} already: nothing to do on the fast path
            _spread(failed, items, outcomes)
        return None


def _spread(failed: dict[int, str], items: list[tuple[int, list]], outcomes: Outcomes) -> None:
    """Split {row index in the group: reason} into each item's own {row index: reason}."""
    start = 0
    for i, rows in items:
        outcomes[i] = {k - start: v for k, v in failed.items() if start <= k < start + len(rows)}
        start += len(rows)
