"""Trend-chart choices without I/O: windows, data sources, themes and render file names."""
from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from lib.catalogue import Metric

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Window:
    """A chart's time span ending now: name (as stored in path.span) and length in ms."""

    name: str
    ms: int
    label: str

    def start(self, now_ms: int) -> int:
        """First millisecond of the window ending at now_ms (both ends belong to the window)."""
        return now_ms - self.ms


WINDOWS: tuple[Window, ...] = (
    Window("24h", DAY_MS, "last 24 hours"),
    Window("7d", 7 * DAY_MS, "last 7 days"),
    Window("30d", 30 * DAY_MS, "last 30 days"),
)
LONGEST_MS = max(w.ms for w in WINDOWS)

# Sources in order of preference: each is a table with one point per row.
RAW, MINUTE, HOUR = "raw", "1m", "1h"
BUCKET_MS = {MINUTE: MINUTE_MS, HOUR: HOUR_MS}
SOURCE_LABELS = {RAW: "raw readings", MINUTE: "1-minute means with min–max band",
                 HOUR: "hourly means with min–max band"}


def choose_source(raw_points: int, minute_points: int, max_points: int,
                  span_ms: int | None = None, raw_kept_ms: int | None = None) -> str:
    """Raw readings when they fit in max_points, else 1-minute rollups when they fit, else hourly.

    Raw is skipped when retention keeps less raw data than the span covers: the
    rollups then show the whole span where raw readings would show only its end.
    """
    if max_points < 1:
        raise ValueError(f"[charts] max_points must be at least 1, got {max_points}")
    raw_covers = span_ms is None or raw_kept_ms is None or span_ms <= raw_kept_ms
    if raw_covers and raw_points <= max_points:
        return RAW
    if minute_points <= max_points:
        return MINUTE
    return HOUR


# ---- look ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Theme:
    """Title and vertical background gradient (top colour, bottom colour) of a metric's charts."""

    title: str
    top: str
    bottom: str


THEMES = {
    "temperature": Theme("Temperature Monitoring", "#e28744", "#cede9f"),
    "co2": Theme("Carbon Dioxide Monitoring", "#13547a", "#80d0c7"),
    "humidity": Theme("Humidity Monitoring", "#5d6c81", "#afc9fa"),
}
DEFAULT_GRADIENT = ("#4b6584", "#d1d8e0")  # a calm slate for metrics added later


def theme_for(metric: Metric | str) -> Theme:
    """The original's look for the built-in metrics; "<label> Monitoring" on a default gradient else."""
    name = metric if isinstance(metric, str) else metric.name
    if name in THEMES:
        return THEMES[name]
    label = name.replace("_", " ").capitalize() if isinstance(metric, str) else metric.title
    return Theme(f"{label} Monitoring", *DEFAULT_GRADIENT)


def decimals_for(metric: Metric) -> int:
    """Decimals worth keeping: five significant digits of the metric's valid range (°C: 2, ppm: 0)."""
    span = metric.max_value - metric.min_value
    return min(6, max(0, 4 - math.floor(math.log10(span))))


def gap_breaks(times: list[int], floor_ms: int, factor: int = 3) -> set[int]:
    """Indices i where the step from times[i-1] is a gap: over factor × the median step and floor_ms.

    Charts break the line there instead of drawing a straight line across an outage.
    """
    if len(times) < 3:
        return set()
    steps = sorted(b - a for a, b in zip(times, times[1:]))
    limit = max(floor_ms, factor * steps[len(steps) // 2])
    return {i for i in range(1, len(times)) if times[i] - times[i - 1] > limit}


# ---- files -----------------------------------------------------------------------

RENDER_NAME = re.compile(r"^(\d{8}T\d{6}Z)-([0-9a-f]{6})$")
FILE_NAME = re.compile(r"^device-(\d+)_([a-z][a-z0-9_]*)_(24h|7d|30d)\.html$")


def render_name(now_ms: int, token: str | None = None) -> str:
    """Folder of one render: its UTC time and a short random id, e.g. 20260102T030405Z-1a2b3c."""
    stamp = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    token = token if token is not None else secrets.token_hex(3)
    name = f"{stamp}-{token}"
    if not RENDER_NAME.fullmatch(name):
        raise ValueError(f"bad render name {name!r}")
    return name


def is_render_name(name: str) -> bool:
    """True for folder names render_name makes (only such folders are ever deleted)."""
    return RENDER_NAME.fullmatch(name) is not None


def chart_file_name(device_id: int, metric: str, span: str) -> str:
    """File name of one chart inside a render folder."""
    return f"device-{int(device_id)}_{metric}_{span}.html"


@dataclass(frozen=True, slots=True)
class ChartFile:
    """One chart of a render; file is relative to [other] flask_path (render/name.html)."""

    device_id: int
    metric: str
    span: str
    file: str


@dataclass(frozen=True, slots=True)
class Render:
    """A complete render: its folder name, time and files."""

    name: str
    rendered_ms: int
    files: tuple[ChartFile, ...]
