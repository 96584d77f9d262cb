"""Rollup maths without I/O: bucket alignment, aggregates, retention cutoffs, work planning.

The SQL that applies these rules lives in lib/storage/rollups.py.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

# Devices per rollup statement: bounds the rows one INSERT ... SELECT reads (200 devices at one
# reading a second make 720,000) and the length of its IN list.
MAX_DEVICES_PER_UNIT = 200


def align(ts_ms: int, size_ms: int) -> int:
    """Start of the bucket of `size_ms` that holds `ts_ms` (floor, also before 1970)."""
    return ts_ms - ts_ms % size_ms


def minute_of(ts_ms: int) -> int:
    """Start of the UTC minute holding `ts_ms`."""
    return align(ts_ms, MINUTE_MS)


def hour_of(ts_ms: int) -> int:
    """Start of the UTC hour holding `ts_ms`."""
    return align(ts_ms, HOUR_MS)


# ---- aggregates -------------------------------------------------------------------

@dataclass(frozen=True)
class Aggregate:
    """Count, sum, min and max of one metric over a bucket; an empty bucket has n=0 and None."""

    n: int = 0
    sum: float | None = None
    min: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: Iterable[float | None]) -> Aggregate:
        """Aggregate of the non-None values."""
        present = [v for v in values if v is not None]
        if not present:
            return cls()
        return cls(len(present), math.fsum(present), min(present), max(present))

    def merge(self, other: Aggregate) -> Aggregate:
        """Aggregate of the union of both buckets' values."""
        if not other.n:
            return self
        if not self.n:
            return other
        return Aggregate(self.n + other.n, self.sum + other.sum,
                         min(self.min, other.min), max(self.max, other.max))

    @property
    def mean(self) -> float | None:
        """Mean of the values, None for an empty bucket."""
        return self.sum / self.n if self.n else None


def merge_all(aggregates: Iterable[Aggregate]) -> Aggregate:
    """Merge any number of aggregates (an hour from its minutes)."""
    total = Aggregate()
    for agg in aggregates:
        total = total.merge(agg)
    return total


def aggregate_rows(rows: Iterable[Sequence], metrics: Sequence[str],
                   size_ms: int) -> dict[tuple[int, int], dict[str, Aggregate]]:
    """Reference rollup of (device_id, ts, *values) rows: {(device, bucket): {metric: Aggregate}}."""
    groups: dict[tuple[int, int], list[Sequence]] = {}
    for row in rows:
        groups.setdefault((row[0], align(row[1], size_ms)), []).append(row)
    return {key: {m: Aggregate.of(r[2 + i] for r in members) for i, m in enumerate(metrics)}
            for key, members in groups.items()}


# ---- retention --------------------------------------------------------------------

@dataclass(frozen=True)
class Cutoffs:
    """Epoch ms before which rows go: raw readings, 1-minute rollups, rendered charts."""

    raw_ms: int
    minute_ms: int
    chart_ms: int


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data is kept; hourly rollups are kept forever."""

    raw_days: float = 30
    minute_days: float = 365
    chart_days: float = 1
    batch_rows: int = 5000

    def __post_init__(self) -> None:
        for name in ("raw_days", "minute_days", "chart_days", "batch_rows"):
            if not getattr(self, name) > 0:
                raise ValueError(f"retention {name} must be positive, got {getattr(self, name)!r}")
        # Hour rows are recomputed from an hour's minute rows while its raw readings are kept.
        if self.minute_days < self.raw_days:
            raise ValueError(f"retention minute_days ({self.minute_days!r}) must be at least "
                             f"raw_days ({self.raw_days!r})")

    @classmethod
    def from_settings(cls, settings) -> RetentionPolicy:
        """Policy from [retention] raw_days, minute_days, batch_rows and [charts] keep_days."""
        kept = settings.retention
        return cls(raw_days=kept.raw_days, minute_days=kept.minute_days,
                   chart_days=settings.charts.keep_days, batch_rows=kept.batch_rows)

    def cutoffs(self, now_ms: int) -> Cutoffs:
        """Cutoffs at `now_ms`; data cutoffs fall on hour starts, so an hour is kept whole or not at all."""
        return Cutoffs(raw_ms=hour_of(now_ms - round(self.raw_days * DAY_MS)),
                       minute_ms=hour_of(now_ms - round(self.minute_days * DAY_MS)),
                       chart_ms=now_ms - round(self.chart_days * DAY_MS))


class Retained(NamedTuple):
    """The cutoffs retention last applied to a device: its raw rows and minute rows before them are gone."""

    raw_ms: int
    minute_ms: int


# ---- planning a rollup run --------------------------------------------------------

@dataclass(frozen=True, order=True)
class Mark:
    """A pending (device, hour) as read or taken: the gen that must match to clear it, and the range to redo.

    lo and hi are the smallest and largest reading ts to redo (the mark's taken range);
    None stands for the whole hour (a rebuild, or a mark read but not taken).
    """

    hour: int
    device_id: int
    gen: int
    lo: int | None = None
    hi: int | None = None

    @property
    def span(self) -> tuple[int, int]:
        """[start, end) of the minutes to recompute, within the hour."""
        lo, hi = self.lo, self.hi
        # A range not inside the hour is unknown: the column default 0, or an empty range, left
        # by an ingest that predates the range columns. Redo the whole hour then.
        if lo is None or hi is None or not self.hour <= lo <= hi < self.hour + HOUR_MS:
            return self.hour, self.hour + HOUR_MS
        return minute_of(lo), minute_of(hi) + MINUTE_MS


@dataclass(frozen=True)
class WorkUnit:
    """Devices whose marks of hour `hour` span the same minutes [start, end), done in one transaction."""

    hour: int
    start: int
    end: int
    marks: tuple[Mark, ...]

    @property
    def device_ids(self) -> list[int]:
        """The devices, ascending."""
        return [m.device_id for m in self.marks]


@dataclass(frozen=True)
class Plan:
    """Work units to recompute and units to merge, each oldest hour first.

    A merge unit's hour was deleted from the raw readings by retention, so any raw rows now in
    it arrived later: they are added into the existing rollups, whole hour, then deleted. Its
    [start, end) is the minutes whose rows are merged too: the whole hour, or empty (start ==
    end) when retention deleted the hour's minute rows as well.
    """

    units: tuple[WorkUnit, ...]
    merges: tuple[WorkUnit, ...] = ()


def by_hour(marks: Iterable[Mark]) -> dict[int, list[Mark]]:
    """The marks grouped by hour, oldest first, each hour's by device."""
    groups: dict[int, list[Mark]] = {}
    for mark in sorted(marks):
        groups.setdefault(mark.hour, []).append(mark)
    return groups


def merge_span(hour: int, retained: Retained) -> tuple[int, int]:
    """Minutes of a retained hour whose rows are merged into: all, or none once minute retention took them."""
    end = hour + HOUR_MS
    return (hour, end) if hour >= retained.minute_ms else (end, end)


def plan(marks: Iterable[Mark], retained: Mapping[int, Retained] | None = None,
         max_devices: int = MAX_DEVICES_PER_UNIT) -> Plan:
    """Group marks by hour and span into units of at most `max_devices` devices.

    One span per unit keeps its statements simple primary-key ranges, and a device whose
    span is wide (late data) does not widen the others'. A mark of an hour before the raw
    cutoff that retention last applied to its device ({device_id: Retained}) is a merge:
    recomputing that hour from what is left of its raw readings would overwrite good rollups.
    An hour older than the current raw cutoff that retention has not reached yet is still
    whole, and is recomputed as usual.
    """
    if max_devices < 1:
        raise ValueError("max_devices must be at least 1")
    retained = retained or {}
    groups: dict[tuple[int, int, int], list[Mark]] = {}
    merges: dict[tuple[int, int, int], list[Mark]] = {}
    for mark in sorted(marks):
        if mark.hour % HOUR_MS:
            raise ValueError(f"pending hour {mark.hour} is not the start of an hour")
        kept = retained.get(mark.device_id)
        if kept is not None and mark.hour < kept.raw_ms:
            merges.setdefault((mark.hour, *merge_span(mark.hour, kept)), []).append(mark)
        else:
            groups.setdefault((mark.hour, *mark.span), []).append(mark)
    return Plan(_units(groups, max_devices), _units(merges, max_devices))


def _units(groups: Mapping[tuple[int, int, int], list[Mark]], max_devices: int) -> tuple[WorkUnit, ...]:
    """Units of at most `max_devices` marks per (hour, start, end) group, in key order."""
    return tuple(WorkUnit(hour, start, end, tuple(group[i:i + max_devices]))
                 for (hour, start, end), group in sorted(groups.items())
                 for i in range(0, len(group), max_devices))
