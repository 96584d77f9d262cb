"""Figures of the soak bench: windows summed over processes, the table per row, the verdicts, the plot."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.soak_load import ACK_BUCKETS_PER_S, Window
from bench.soak_stack import Sample

MISSING_PLOT = ("matplotlib is missing: the plot needs the bench's extra packages, "
                "`.venv/bin/pip install -r bench/requirements.txt` (or run with --no-plot)")
CPU_PARTS = ("server", "mariadb", "rabbitmq", "worker", "generators", "viewers")


def merge(into: Window, other: Window) -> None:
    """Add one process's window to the sum."""
    into.sent += other.sent
    into.acked += other.acked
    into.ack_hist.update(other.ack_hist)
    into.behind_s = max(into.behind_s, other.behind_s)
    into.live_readings += other.live_readings
    into.live_hist.update(other.live_hist)
    into.errors += other.errors
    into.error_count += other.error_count


def percentile(hist: Counter, fraction: float, per_unit: float = 1.0) -> float:
    """Nearest-rank percentile of a histogram of integer buckets, in bucket units / per_unit."""
    total = sum(hist.values())
    if not total:
        return float("nan")
    rank, seen = max(1, math.ceil(fraction * total)), 0
    for bucket in sorted(hist):
        seen += hist[bucket]
        if seen >= rank:
            return bucket / per_unit
    return float("nan")


def ack_ms(hist: Counter, fraction: float) -> float:
    """A percentile of ack latency in ms."""
    return 1000 * percentile(hist, fraction, ACK_BUCKETS_PER_S)


@dataclass
class Row:
    """A span of the run: summed windows and the samples taken in it."""

    start: float  # seconds since the run began
    seconds: float
    window: Window = field(default_factory=Window)
    samples: list[Sample] = field(default_factory=list)

    def rss(self) -> float:
        """The ingest server's highest RSS (MB) sampled in the row."""
        values = [s.rss_mb for s in self.samples if s.rss_mb == s.rss_mb]
        return max(values) if values else float("nan")

    def lag(self) -> float:
        """The longest rollup lag (s) sampled in the row."""
        return max((s.lag_s for s in self.samples), default=float("nan"))


def rows_of(windows: list[Window], samples: list[Sample], start: float, tick: float,
            per_row: int) -> list[Row]:
    """Group the ticks' windows per_row at a time, each row with the samples taken in its span."""
    rows = []
    for first in range(0, len(windows), per_row):
        row = Row(first * tick, min(per_row, len(windows) - first) * tick)
        for window in windows[first:first + per_row]:
            merge(row.window, window)
        lo, hi = start + row.start, start + row.start + row.seconds
        row.samples = [s for s in samples if lo <= s.t < hi]
        rows.append(row)
    return rows


HEADER = (f"{'t (s)':>7} {'sent/s':>8} {'acked/s':>8} {'behind':>7} {'p99 ack':>8} {'live p95':>9} "
          f"{'live/s':>8} {'RSS MB':>7} {'lag s':>6}  cpu % srv/db/mq/wrk/gen/view/all  cpu wait %")


def row_line(row: Row, cpu: dict[str, float]) -> str:
    """One line of the table: rates per second, latencies in ms, RSS, rollup lag, CPU % of a core."""
    w = row.window
    parts = "/".join(f"{cpu.get(p, float('nan')):.0f}" for p in CPU_PARTS)
    return (f"{row.start + row.seconds:7.4g} {w.sent / row.seconds:8,.0f} {w.acked / row.seconds:8,.0f} "
            f"{1000 * w.behind_s:5.0f}ms {ack_ms(w.ack_hist, 0.99):6.1f}ms "
            f"{percentile(w.live_hist, 0.95):7.0f}ms {w.live_readings / row.seconds:8,.0f} "
            f"{row.rss():7.1f} {row.lag():6.1f}  {parts}/{cpu.get('machine', float('nan')):.0f}"
            f"  {cpu.get('stalled', float('nan')):.0f}")


def cpu_percent(samples: list[Sample]) -> dict[str, float]:
    """CPU of each part between the first and last sample, in % of one core."""
    if len(samples) < 2:
        return {}
    first, last = samples[0], samples[-1]
    wall = last.t - first.t
    return {k: 100 * (last.cpu[k] - first.cpu.get(k, 0.0)) / wall for k in last.cpu} if wall > 0 else {}


@dataclass
class Verdict:
    """One line of the final table."""

    name: str
    measured: str
    target: str
    ok: bool | None  # None: information only
    correctness: bool = False  # a failure here fails the run (exit status 1), not only a target

    def line(self) -> str:
        """The verdict as a row of the final table."""
        result = "" if self.ok is None else "PASS" if self.ok else "FAIL"
        return f"  {self.name:<44} {self.measured:<34} {self.target:<26} {result}"


def rss_growth(rows: list[Row]) -> tuple[float, float, float]:
    """(RSS at the end of the first row, peak RSS after it, growth in %)."""
    base = rows[0].samples[-1].rss_mb if rows and rows[0].samples else float("nan")
    peak = max((r.rss() for r in rows[1:]), default=base)
    return base, peak, 100 * (peak - base) / base


def plot(ticks: list[Row], samples: list[Sample], start: float, rate: float, interval: float,
         path: Path) -> None:
    """Throughput, latencies, ingest RSS and rollup lag over time, one panel each, into a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    t = [r.start + r.seconds for r in ticks]
    samples = [s for s in samples if s.t >= start]
    st = [s.t - start for s in samples]
    fig, axes = plt.subplots(4, 1, figsize=(9, 10), sharex=True)
    axes[0].plot(t, [r.window.acked / r.seconds for r in ticks], label="acked/s")
    axes[0].axhline(rate, color="grey", linestyle=":", label="offered")
    axes[1].plot(t, [ack_ms(r.window.ack_hist, 0.99) for r in ticks], label="p99 ack")
    axes[1].plot(t, [percentile(r.window.live_hist, 0.95) for r in ticks], label="p95 live")
    axes[1].axhline(50, color="C0", linestyle=":")
    axes[1].axhline(200, color="C1", linestyle=":")
    axes[2].plot(st, [s.rss_mb for s in samples], label="ingest server RSS")
    axes[3].plot(st, [s.lag_s for s in samples], label="rollup lag")
    axes[3].axhline(2 * interval, color="grey", linestyle=":", label="2 intervals")
    for ax, unit in zip(axes, ("readings/s", "ms", "MB", "s")):
        ax.set_ylabel(unit)
        ax.set_ylim(bottom=0)
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds since the start")
    fig.suptitle(f"bench.soak: {rate:,.0f} readings/s offered, {t[-1] if t else 0:.0f} s")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def verdicts(args, windows: list[Window], counts: dict[str, int], rows: list[Row], found: Counter,
             rolled: tuple[int, int, int, int], tasks: dict, elapsed: float) -> list[Verdict]:
    """The final table: correctness first, then the targets (windows: the ticks', then the drain's)."""
    V = Verdict
    total = Window()
    for window in windows:
        merge(total, window)
    rate = sum(w.acked for w in windows[:-1]) / args.seconds
    behind = max(w.behind_s for w in windows)
    base, peak, growth = rss_growth(rows)
    lag = max(r.lag() for r in rows[1:] or rows)
    ack99, live95 = ack_ms(total.ack_hist, 0.99), percentile(total.live_hist, 0.95)
    expected_live = (found["acked"] + found["stored, not acked"]) * args.viewers  # every commit is pushed
    failed_tasks = sum(f for _, f, _ in tasks.values())
    pending, raw, summed, events = rolled
    troubles = [counts.get("unanswered", 0), counts.get("not sent (connection gone)", 0),
                counts.get("bad replies", 0), total.error_count]
    return [
        V("readings sent / acked", f"{total.sent:,} / {found['acked']:,}", "equal",
          total.sent == found["acked"], True),
        V("lost (acked, not in the database)", f"{found['lost']:,}", "0", found["lost"] == 0, True),
        V("duplicated (acked twice, unexpected ack)",
          f"{found['acked twice'] + counts.get('unexpected acks', 0):,}", "0",
          found["acked twice"] + counts.get("unexpected acks", 0) == 0, True),
        V("stored, ack not received (connection lost)", f"{found['stored, not acked']:,}", "0",
          found["stored, not acked"] == 0),
        V("unanswered, not sent, bad replies, errors", ", ".join(f"{n:,}" for n in troubles), "0, 0, 0, 0",
          not any(troubles), True),
        V("device connections lost", f"{counts.get('connections lost', 0):,}", "0",
          not counts.get("connections lost"), True),
        V("throughput, acked during the run", f"{rate:,.1f} readings/s", f">= {0.99 * args.rate:,.1f} (99 %)",
          rate >= 0.99 * args.rate),
        V("generator behind its schedule, max", f"{1000 * behind:,.0f} ms", "<= 500 ms (load offered)",
          behind <= 0.5),
        V("ingest RSS growth after warm-up", f"{growth:+.1f} % ({base:.0f} -> {peak:.0f} MB peak)", "<= 10 %",
          growth <= 10),
        V("p99 ack latency", f"{ack99:.1f} ms", "<= 50 ms", ack99 <= 50),
        V("p95 live latency (sent -> viewer)", f"{live95:.0f} ms", "<= 200 ms", live95 <= 200),
        V("live readings received / expected", f"{total.live_readings:,} / {expected_live:,}", "", None),
        V("rollup lag after warm-up, max", f"{lag:.1f} s = {lag / args.rollup_seconds:.2f} intervals",
          "<= 2 intervals", lag <= 2 * args.rollup_seconds),
        V("rollups caught up after the load", f"{pending} marks pending", "0", pending == 0),
        V("rollups hold every reading (once caught up)", f"{summed:,} of {raw:,}", "equal",
          summed == raw if pending == 0 else None, True),
        V("worker tasks failed", f"{failed_tasks}", "0", failed_tasks == 0, True),
        V("alert events fired", f"{events:,}", "", None),
        V("elapsed (set-up, load, drain, checks)", f"{elapsed:,.0f} s", "", None),
    ]
