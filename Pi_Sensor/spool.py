"""The client's on-disk spool: every reading is kept here until the server acks it."""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: a seq is never reused
    ts_ms INTEGER NOT NULL,
    readings TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    """A reading waiting in the spool."""

    seq: int
    ts_ms: int
    values: dict[str, float]


class Spool:
    """A bounded FIFO of readings in SQLite (WAL, synchronous=FULL: a power cut loses nothing).

    One connection shared by the reader and the sender threads, serialised by a lock;
    each call is one short transaction.
    """

    def __init__(self, path: str | Path, max_readings: int = 1_000_000,
                 max_bytes: int = 200 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_readings = max_readings
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._unreported_drops = 0
        self._last_report = float("-inf")  # the first drop is reported at once
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=5000"):
            self._db.execute(f"PRAGMA {pragma}")
        self._db.executescript(SCHEMA)

    def append(self, ts_ms: int, values: dict[str, float]) -> int:
        """Store a reading durably and return its seq; drop the oldest if over the bound."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            seq = self._db.execute("INSERT INTO spool (ts_ms, readings) VALUES (?, ?)",
                                   (ts_ms, json.dumps(values, allow_nan=False))).lastrowid
            self._count("appended", 1)
            self._db.execute("INSERT OR REPLACE INTO counters VALUES ('last_ts', ?)", (ts_ms,))
            self._enforce_bound()
        return seq

    def _count(self, name: str, amount: int) -> None:
        """Add to a persistent counter (inside the caller's transaction)."""
        self._db.execute("INSERT INTO counters VALUES (?, ?) ON CONFLICT(name) "
                         "DO UPDATE SET value = value + excluded.value", (name, amount))

    def _enforce_bound(self) -> None:
        """Delete the oldest readings beyond max_readings or max_bytes, counting them."""
        count = self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]
        excess = count - self.max_readings
        if excess <= 0 and self._used_bytes() > self.max_bytes:
            excess = max(1, count // 100)  # shed 1% at a time until under the byte bound
        if excess <= 0:
            return
        self._db.execute("DELETE FROM spool WHERE seq IN "
                         "(SELECT seq FROM spool ORDER BY seq LIMIT ?)", (excess,))
        self._count("dropped", excess)
        self._unreported_drops += excess
        if time.monotonic() - self._last_report > 60:  # one warning a minute, with the count
            log.warning("spool full (%d readings, %d bytes): dropped the %d oldest readings",
                        count, self._used_bytes(), self._unreported_drops)
            self._unreported_drops, self._last_report = 0, time.monotonic()

    def _used_bytes(self) -> int:
        """Bytes of the database file in use (free pages are reused, so not counted)."""
        pages = self._db.execute("PRAGMA page_count").fetchone()[0]
        free = self._db.execute("PRAGMA freelist_count").fetchone()[0]
        size = self._db.execute("PRAGMA page_size").fetchone()[0]
        return (pages - free) * size

    def oldest(self, limit: int) -> list[Spooled]:
        """Up to `limit` readings, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, ts_ms, readings FROM spool ORDER BY seq LIMIT ?",
                                    (limit,)).fetchall()
        return [Spooled(seq, ts, json.loads(values)) for seq, ts, values in rows]

    def remove(self, seqs: list[int]) -> None:
        """Forget readings the server acked or finally rejected."""
        if not seqs:
            return
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("DELETE FROM spool WHERE seq = ?", [(s,) for s in seqs])

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0]

    def counter(self, name: str) -> int:
        """A persistent counter: appended, dropped (spool full), last_ts (newest stamp)."""
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
