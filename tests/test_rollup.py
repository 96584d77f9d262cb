"""Rollup maths: alignment, aggregates, retention cutoffs and work planning (no database)."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from lib import config as config_mod
from lib.rollup import (DAY_MS, HOUR_MS, MINUTE_MS, Aggregate, Cutoffs, Mark, Retained, RetentionPolicy,
                        aggregate_rows, align, hour_of, merge_all, minute_of, plan)

T = 1_767_225_600_000  # 2026-01-01T00:00:00Z, the start of an hour


@pytest.mark.parametrize("ts, minute, hour", [
    (T, T, T),
    (T + 1, T, T),
    (T + MINUTE_MS - 1, T, T),
    (T + MINUTE_MS, T + MINUTE_MS, T),
    (T + HOUR_MS - 1, T + HOUR_MS - MINUTE_MS, T),
    (T + HOUR_MS, T + HOUR_MS, T + HOUR_MS),
    (0, 0, 0),
    (-1, -MINUTE_MS, -HOUR_MS),  # floor, not truncation, before 1970
])
def test_alignment(ts, minute, hour):
    assert minute_of(ts) == minute
    assert hour_of(ts) == hour


@given(st.integers(-2**53, 2**53), st.sampled_from([MINUTE_MS, HOUR_MS, DAY_MS]))
def test_align_puts_ts_in_its_bucket(ts, size):
    start = align(ts, size)
    assert start % size == 0 and start <= ts < start + size


@pytest.mark.parametrize("values, expected", [
    ([], Aggregate(0, None, None, None)),
    ([None, None], Aggregate(0, None, None, None)),
    ([2.0], Aggregate(1, 2.0, 2.0, 2.0)),
    ([1.0, None, 3.0, -2.0], Aggregate(3, 2.0, -2.0, 3.0)),
])
def test_aggregate_of(values, expected):
    assert Aggregate.of(values) == expected


def test_mean():
    assert Aggregate.of([1.0, 2.0, 6.0]).mean == 3.0
    assert Aggregate().mean is None


values = st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), max_size=20)


@given(values, values)
def test_merge_equals_aggregate_of_union(a, b):
    merged = Aggregate.of(a).merge(Aggregate.of(b))
    whole = Aggregate.of(a + b)
    assert (merged.n, merged.min, merged.max) == (whole.n, whole.min, whole.max)
    if whole.n:
        assert math.isclose(merged.sum, whole.sum, rel_tol=1e-9, abs_tol=1e-6)
    else:
        assert merged.sum is None


@given(st.lists(values, max_size=6))
def test_merge_all_of_parts(parts):
    merged = merge_all(Aggregate.of(p) for p in parts)
    whole = Aggregate.of([v for p in parts for v in p])
    assert (merged.n, merged.min, merged.max) == (whole.n, whole.min, whole.max)


def test_aggregate_rows_groups_by_device_and_bucket():
    rows = [(1, T + 5, 10.0, None), (1, T + 59_999, 20.0, 1.0), (1, T + MINUTE_MS, 30.0, None),
            (2, T + 5, None, 4.0)]
    got = aggregate_rows(rows, ["a", "b"], MINUTE_MS)
    assert got == {(1, T): {"a": Aggregate(2, 30.0, 10.0, 20.0), "b": Aggregate(1, 1.0, 1.0, 1.0)},
                   (1, T + MINUTE_MS): {"a": Aggregate(1, 30.0, 30.0, 30.0), "b": Aggregate()},
                   (2, T): {"a": Aggregate(), "b": Aggregate(1, 4.0, 4.0, 4.0)}}
    assert set(aggregate_rows(rows, ["a", "b"], HOUR_MS)) == {(1, T), (2, T)}


# ---- retention ------------------------------------------------------------------------

def test_policy_from_settings():
    cfg = config_mod.load(environ={}).with_overrides(
        {"retention": {"raw_days": "2", "minute_days": "10", "batch_rows": "50"},
         "charts": {"keep_days": "0.5"}})
    assert RetentionPolicy.from_settings(cfg) == RetentionPolicy(2, 10, 0.5, 50)


def test_policy_defaults_match_the_shipped_config():
    assert RetentionPolicy.from_settings(config_mod.load(environ={})) == RetentionPolicy()


@pytest.mark.parametrize("field", ["raw_days", "minute_days", "chart_days", "batch_rows"])
@pytest.mark.parametrize("value", [0, -1])
def test_policy_refuses_non_positive(field, value):
    with pytest.raises(ValueError, match=field):
        RetentionPolicy(**{field: value})


def test_policy_refuses_minutes_kept_shorter_than_raw():
    """Hour rows are recomputed from minute rows, so those must outlive the raw readings."""
    with pytest.raises(ValueError, match="minute_days"):
        RetentionPolicy(raw_days=30, minute_days=29)
    assert RetentionPolicy(raw_days=30, minute_days=30).minute_days == 30


@pytest.mark.parametrize("now", [T, T + 1, T + HOUR_MS - 1, T + 17 * MINUTE_MS])
def test_cutoffs_fall_on_hour_starts(now):
    cut = RetentionPolicy(raw_days=30, minute_days=365, chart_days=7).cutoffs(now)
    assert cut == Cutoffs(raw_ms=hour_of(now - 30 * DAY_MS), minute_ms=hour_of(now - 365 * DAY_MS),
                          chart_ms=now - 7 * DAY_MS)
    assert cut.raw_ms % HOUR_MS == 0 and now - 30 * DAY_MS - HOUR_MS < cut.raw_ms <= now - 30 * DAY_MS


def test_fractional_days():
    assert RetentionPolicy(raw_days=0.5).cutoffs(T).raw_ms == T - 12 * HOUR_MS


# ---- planning ---------------------------------------------------------------------------

def test_plan_groups_marks_by_hour_oldest_first():
    marks = [Mark(T + HOUR_MS, 2, 0), Mark(T, 3, 1), Mark(T, 1, 5), Mark(T + HOUR_MS, 1, 0)]
    work = plan(marks)
    assert [(u.hour, u.device_ids) for u in work.units] == [(T, [1, 3]), (T + HOUR_MS, [1, 2])]
    assert work.units[0].marks == (Mark(T, 1, 5), Mark(T, 3, 1))  # gens kept as read
    assert work.units[0].end == T + HOUR_MS
    assert work.merges == ()


def test_plan_splits_large_hours():
    marks = [Mark(T, d, 0) for d in range(7)]
    work = plan(marks, max_devices=3)
    assert [u.device_ids for u in work.units] == [[0, 1, 2], [3, 4, 5], [6]]


@pytest.mark.parametrize("retained, merges", [
    (None, []),
    ({2: Retained(T + 2 * HOUR_MS, T)}, []),  # another device's retention
    ({1: Retained(T - HOUR_MS, T - HOUR_MS)}, []),  # retention has not reached these hours yet
    ({1: Retained(T, T)}, []),  # an hour starting at the cutoff is kept whole by retention
    ({1: Retained(T + 1, T)}, [(T, T, T + HOUR_MS)]),
    ({1: Retained(T + HOUR_MS, T)}, [(T, T, T + HOUR_MS)]),
    ({1: Retained(T + 2 * HOUR_MS, T)}, [(T, T, T + HOUR_MS), (T + HOUR_MS, T + HOUR_MS, T + 2 * HOUR_MS)]),
    # Minutes past their own retention get no rows: an empty span at the hour's end.
    ({1: Retained(T + 2 * HOUR_MS, T + HOUR_MS)},
     [(T, T + HOUR_MS, T + HOUR_MS), (T + HOUR_MS, T + HOUR_MS, T + 2 * HOUR_MS)]),
    ({1: Retained(T + 2 * HOUR_MS, T + 9 * HOUR_MS)},
     [(T, T + HOUR_MS, T + HOUR_MS), (T + HOUR_MS, T + 2 * HOUR_MS, T + 2 * HOUR_MS)]),
])
def test_plan_merges_the_marks_of_hours_retention_deleted(retained, merges):
    marks = [Mark(T, 1, 0, T + 5, T + 5), Mark(T + HOUR_MS, 1, 0)]
    work = plan(marks, retained)
    assert [(u.hour, u.start, u.end) for u in work.merges] == merges
    assert sorted([m for u in work.units + work.merges for m in u.marks]) == sorted(marks)


def test_plan_merges_by_hour_and_minute_retention():
    retained = {d: Retained(T + HOUR_MS, T + HOUR_MS * (d % 2)) for d in range(1, 6)}
    work = plan([Mark(T, d, 0) for d in range(1, 6)] + [Mark(T, 6, 0)], retained, max_devices=2)
    assert [(u.start, u.device_ids) for u in work.merges] == [
        (T, [2, 4]), (T + HOUR_MS, [1, 3]), (T + HOUR_MS, [5])]
    assert [u.device_ids for u in work.units] == [[6]]


def test_plan_empty():
    assert plan([]).units == ()


@pytest.mark.parametrize("marks, kwargs", [
    ([Mark(T + 1, 1, 0)], {}),  # not an hour start
    ([Mark(T, 1, 0)], {"max_devices": 0}),
])
def test_plan_refuses(marks, kwargs):
    with pytest.raises(ValueError):
        plan(marks, **kwargs)


@hsettings(max_examples=50)
@given(st.sets(st.tuples(st.integers(0, 5), st.integers(1, 30))), st.integers(1, 8))
def test_plan_covers_every_mark_once(keys, max_devices):
    marks = [Mark(T + h * HOUR_MS, d, 0, *([T + h * HOUR_MS + d * MINUTE_MS] * 2 if d % 3 else []))
             for h, d in keys]
    work = plan(marks, max_devices=max_devices)
    covered = [m for u in work.units for m in u.marks]
    assert sorted(covered) == sorted(marks)
    assert all(len(u.marks) <= max_devices for u in work.units)
    assert all({(m.hour, *m.span) for m in u.marks} == {(u.hour, u.start, u.end)} for u in work.units)


@pytest.mark.parametrize("lo, hi, span", [
    (None, None, (T, T + HOUR_MS)),  # a rebuild: the whole hour
    (T + 5, T + 7, (T, T + MINUTE_MS)),
    (T + 3 * MINUTE_MS, T + 5 * MINUTE_MS - 1, (T + 3 * MINUTE_MS, T + 5 * MINUTE_MS)),
    (T + 3 * MINUTE_MS, T + 5 * MINUTE_MS, (T + 3 * MINUTE_MS, T + 6 * MINUTE_MS)),
    (T, T + HOUR_MS - 1, (T, T + HOUR_MS)),
    (T + HOUR_MS - 1, T + HOUR_MS - 1, (T + HOUR_MS - MINUTE_MS, T + HOUR_MS)),
    (0, 0, (T, T + HOUR_MS)),  # the column default: a mark by an ingest older than the ranges
    (T - 1, T + 5, (T, T + HOUR_MS)),  # not inside the hour: unknown
    (T + 5, T + HOUR_MS, (T, T + HOUR_MS)),
    (T + 9, T + 5, (T, T + HOUR_MS)),
])
def test_mark_span_is_the_minutes_to_recompute(lo, hi, span):
    assert Mark(T, 1, 0, lo, hi).span == span


def test_plan_groups_an_hours_marks_by_span():
    late = Mark(T, 2, 0, T + 1, T + 40 * MINUTE_MS)  # a device catching up does not widen the others
    marks = [Mark(T, d, 0, T + 41 * MINUTE_MS + d, T + 42 * MINUTE_MS) for d in (1, 3, 4)] + [late]
    work = plan(marks + [Mark(T, 5, 0), Mark(T + HOUR_MS, 1, 0, T + HOUR_MS, T + HOUR_MS)], max_devices=2)
    assert [(u.hour, u.start, u.end, u.device_ids) for u in work.units] == [
        (T, T, T + 41 * MINUTE_MS, [2]),
        (T, T, T + HOUR_MS, [5]),
        (T, T + 41 * MINUTE_MS, T + 43 * MINUTE_MS, [1, 3]),
        (T, T + 41 * MINUTE_MS, T + 43 * MINUTE_MS, [4]),
        (T + HOUR_MS, T + HOUR_MS, T + HOUR_MS + MINUTE_MS, [1]),
    ]


@hsettings(max_examples=100)
@given(st.integers(0, HOUR_MS - 1), st.integers(0, HOUR_MS - 1))
def test_mark_span_covers_its_readings_in_whole_minutes(a, b):
    lo, hi = T + min(a, b), T + max(a, b)
    start, end = Mark(T, 1, 0, lo, hi).span
    assert T <= start <= lo <= hi < end <= T + HOUR_MS
    assert start % MINUTE_MS == 0 and end % MINUTE_MS == 0 and end - start <= hi - lo + 2 * MINUTE_MS
