"""The client's SQLite spool: order, seqs, bounds, counters, durability."""
from __future__ import annotations

import logging
import signal
import sqlite3
import subprocess
import sys
import types

import pytest

from lib.config import REPO_ROOT
from Pi_Sensor import spool as spool_mod
from Pi_Sensor.spool import Spool, Spooled

TS0 = 1_790_000_000_000
VALUES = {"co2": 612.5, "temperature": 21.25, "humidity": 40.0}
BIG = {f"m{i}": i * 1.123456789 for i in range(50)}  # about 1 kB of JSON per reading


@pytest.fixture
def path(tmp_path):
    """Where the spool file lives."""
    return tmp_path / "spool" / "spool.db"


@pytest.fixture
def fake_clock(monkeypatch):
    """A monotonic clock the test moves by hand (for the warning throttle)."""
    clock = types.SimpleNamespace(now=1000.0)
    monkeypatch.setattr(spool_mod, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    return clock


def fill(spool: Spool, n: int, values=VALUES, start: int = 0) -> list[int]:
    """Append n readings 1 ms apart and return their seqs."""
    return [spool.append(TS0 + start + i, values) for i in range(n)]


def test_append_returns_increasing_seqs(path):
    """Seqs grow by one per append and oldest() returns what was stored."""
    spool = Spool(path)
    seqs = fill(spool, 5)
    assert seqs == list(range(seqs[0], seqs[0] + 5))
    assert spool.oldest(10) == [Spooled(s, TS0 + i, VALUES) for i, s in enumerate(seqs)]
    assert len(spool) == 5
    spool.close()


def test_seqs_never_reused_after_remove(path):
    """Removing the newest readings does not free their seqs (AUTOINCREMENT)."""
    spool = Spool(path)
    seqs = fill(spool, 3)
    spool.remove(seqs)
    assert len(spool) == 0
    assert spool.append(TS0 + 10, VALUES) == seqs[-1] + 1
    spool.close()


def test_seqs_never_reused_after_reopen(path):
    """A reopened, emptied spool continues after the highest seq ever given."""
    spool = Spool(path)
    seqs = fill(spool, 4)
    spool.remove(seqs)
    spool.close()
    spool = Spool(path)
    assert len(spool) == 0
    assert spool.append(TS0 + 10, VALUES) == seqs[-1] + 1
    spool.close()


@pytest.mark.parametrize("stored,limit,expected",
                         [(0, 5, 0), (3, 5, 3), (10, 5, 5), (10, 10, 10), (10, 1, 1)])
def test_oldest_order_and_limit(path, stored, limit, expected):
    """oldest(limit) gives at most `limit` readings, oldest first."""
    spool = Spool(path)
    seqs = fill(spool, stored)
    batch = spool.oldest(limit)
    assert [r.seq for r in batch] == seqs[:expected]
    assert [r.ts_ms for r in batch] == [TS0 + i for i in range(expected)]
    spool.close()


@pytest.mark.parametrize("acked", [[], [0], [1, 3], [0, 1, 2, 3, 4], [4, 0]])
def test_remove_acked(path, acked):
    """remove() forgets exactly the given seqs; the rest keep their order."""
    spool = Spool(path)
    seqs = fill(spool, 5)
    spool.remove([seqs[i] for i in acked])
    assert [r.seq for r in spool.oldest(10)] == [s for i, s in enumerate(seqs) if i not in acked]
    spool.close()


def test_remove_unknown_or_repeated_seqs_is_harmless(path):
    """Acks for seqs already gone (a resend after reconnect) change nothing."""
    spool = Spool(path)
    seqs = fill(spool, 3)
    spool.remove([seqs[0], seqs[0], 10_000])
    assert [r.seq for r in spool.oldest(10)] == seqs[1:]
    spool.close()


def test_bound_by_readings_drops_oldest_and_counts(path, fake_clock):
    """Beyond max_readings the oldest go, counted in dropped (persisted)."""
    spool = Spool(path, max_readings=10)
    seqs = fill(spool, 25)
    assert [r.seq for r in spool.oldest(100)] == seqs[-10:]
    assert spool.counter("dropped") == 15
    assert spool.counter("appended") == 25
    spool.close()
    spool = Spool(path, max_readings=10)
    assert spool.counter("dropped") == 15
    fill(spool, 2, start=100)
    assert spool.counter("dropped") == 17 and len(spool) == 10
    spool.close()


def test_lower_bound_on_reopen_drops_on_next_append(path, fake_clock):
    """Reopening with a smaller bound sheds the excess at the next append."""
    spool = Spool(path, max_readings=100)
    seqs = fill(spool, 20)
    spool.close()
    spool = Spool(path, max_readings=5)
    new = spool.append(TS0 + 100, VALUES)
    assert [r.seq for r in spool.oldest(100)] == seqs[-4:] + [new]
    assert spool.counter("dropped") == 16
    spool.close()


def test_bound_by_bytes_drops_and_counts(path, fake_clock):
    """A small max_bytes keeps the database near the bound, dropping the oldest."""
    max_bytes = 64 * 1024
    spool = Spool(path, max_readings=10**9, max_bytes=max_bytes)
    seqs = fill(spool, 400, values=BIG)
    kept = [r.seq for r in spool.oldest(1000)]
    assert 0 < len(kept) < 100
    assert kept == seqs[-len(kept):]  # the newest survive, in order
    assert spool.counter("dropped") == 400 - len(kept)
    assert spool._used_bytes() <= max_bytes + 2 * 4096  # within a page or two of the bound
    assert path.stat().st_size <= max_bytes + 4 * 4096
    spool.close()


def test_counters_add_up(path, fake_clock):
    """appended = waiting + dropped + removed, whatever the mix."""
    spool = Spool(path, max_readings=50)
    seqs = fill(spool, 80)
    spool.remove(seqs[-20:])
    assert spool.counter("appended") == len(spool) + spool.counter("dropped") + 20
    spool.close()


def test_drop_warning_logged_and_throttled(path, fake_clock, caplog):
    """One warning a minute, the next one with the drops accumulated meanwhile."""
    caplog.set_level(logging.WARNING, logger="Pi_Sensor.spool")
    spool = Spool(path, max_readings=3)
    fill(spool, 3)
    assert not caplog.records
    fill(spool, 1, start=10)
    assert [r.getMessage() for r in caplog.records] == [
        "spool full (4 readings, %d bytes): dropped the 1 oldest readings" % spool._used_bytes()]
    fake_clock.now += 30
    fill(spool, 5, start=20)
    assert len(caplog.records) == 1  # throttled
    fake_clock.now += 31
    fill(spool, 1, start=30)
    assert len(caplog.records) == 2
    assert "dropped the 6 oldest readings" in caplog.records[1].getMessage()
    assert caplog.records[1].levelno == logging.WARNING
    assert spool.counter("dropped") == 7
    spool.close()


def test_counter_appended_and_last_ts(path):
    """appended counts every append; last_ts is the stamp of the latest one, kept on reopen."""
    spool = Spool(path)
    assert spool.counter("appended") == 0 and spool.counter("last_ts") == 0
    assert spool.counter("no such counter") == 0
    fill(spool, 7)
    assert spool.counter("appended") == 7
    assert spool.counter("last_ts") == TS0 + 6
    spool.remove([r.seq for r in spool.oldest(7)])
    spool.close()
    spool = Spool(path)
    assert spool.counter("appended") == 7 and spool.counter("last_ts") == TS0 + 6
    spool.close()


def test_wal_and_synchronous_full(path):
    """The file is in WAL mode and the spool's connection syncs FULL."""
    spool = Spool(path)
    fill(spool, 1)
    assert spool._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert spool._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    other = sqlite3.connect(path)
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent in the file
    other.close()
    spool.close()


CHILD = """
import sys
from Pi_Sensor.spool import Spool
spool = Spool(sys.argv[1])
for i in range(1_000_000):
    seq = spool.append({ts0} + i, {{"co2": 400.0 + i, "temperature": 20.5, "humidity": 41.0}})
    print(seq, {ts0} + i, flush=True)
"""


def test_readings_survive_sigkill(path):
    """Every append a killed child reported done is in the file when reopened."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD.format(ts0=TS0), str(path)],
                            cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        confirmed = [tuple(map(int, proc.stdout.readline().split())) for _ in range(150)]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    confirmed += [tuple(map(int, line.split())) for line in proc.stdout if line.strip()]
    proc.stdout.close()
    spool = Spool(path)
    stored = {r.seq: r for r in spool.oldest(10**6)}
    assert len(confirmed) >= 150
    for seq, ts in confirmed:
        assert stored[seq].ts_ms == ts
        assert stored[seq].values["co2"] == 400.0 + (ts - TS0)
    assert spool.counter("appended") == len(stored)
    assert spool.counter("last_ts") == max(r.ts_ms for r in stored.values())
    spool.close()


def test_parent_directory_is_created(tmp_path):
    """The spool creates missing parent folders."""
    spool = Spool(tmp_path / "a" / "b" / "spool.db")
    fill(spool, 1)
    assert (tmp_path / "a" / "b" / "spool.db").exists()
    spool.close()
