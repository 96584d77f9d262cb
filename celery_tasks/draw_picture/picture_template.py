"""The pyecharts Line of one device, metric and window, in the original's look."""
from __future__ import annotations

import html
from typing import Sequence

import orjson
from pyecharts import options as opts
from pyecharts.charts import Line
from pyecharts.charts.base import default as pyecharts_default
from pyecharts.commons.utils import JsCode, replace_placeholder

from lib.catalogue import Metric
from lib.charts import BUCKET_MS, RAW, SOURCE_LABELS, MINUTE_MS, Window, decimals_for, gap_breaks, theme_for

LINE_COLOUR = "#1d2b36"
BAND_COLOUR = "rgba(255, 255, 255, 0.45)"
TEXT_COLOUR = "#1d2b36"
TITLE_COLOUR = "#ffffff"
RAW_GAP_FLOOR_MS = 5 * MINUTE_MS  # raw lines break only at silences longer than this

# Shows min, mean and max of a bucket (the band's upper series carries max as a third value).
# pyecharts JSON-encodes JS code, so it uses single quotes and no backslashes.
TOOLTIP = JsCode(
    "function (items) { var out = [items[0].axisValueLabel];"
    " items.forEach(function (p) { var v = p.value;"
    " if (v[1] === null || v[1] === undefined) { return; }"
    " var shown = p.seriesId === 'max' ? v[2] : v[1];"
    " out.push(p.marker + echarts.format.encodeHTML(p.seriesName) + ': ' + shown); });"
    " return out.join('<br/>'); }")


def gradient(top: str, bottom: str) -> JsCode:
    """The original's vertical background gradient."""
    return JsCode("new echarts.graphic.LinearGradient(0, 0, 0, 1, "
                  f"[{{offset: 0, color: '{top}'}}, {{offset: 1, color: '{bottom}'}}], false)")


class SafeLine(Line):
    """A Line whose options are compact JSON that cannot close its <script> element.

    pyecharts walks every data point to drop None options and indents its JSON with a
    pure-Python encoder; with thousands of points that was most of a chart's time.
    Device names reach the titles, so "</" is escaped to keep a name from ending the script.
    """

    def get_options(self) -> dict:
        """pyecharts' cleaned options, with the series data (numbers and None gaps) left as they are."""
        series = self.options.get("series", [])
        data = [s.pop("data", None) for s in series]
        try:
            options = super().get_options()
        finally:
            for item, points in zip(series, data):
                item["data"] = points
        for item, points in zip(options.get("series", []), data):
            item["data"] = points
        return options

    def dump_options(self) -> str:
        # orjson writes NaN as null, as pyecharts' ignore_nan does
        text = orjson.dumps(self.get_options(), default=pyecharts_default).decode()
        return replace_placeholder(text.replace("</", "<\\/").replace("<!--", "<\\u0021--"))


def _with_breaks(rows: Sequence[Sequence], floor_ms: int) -> list[Sequence]:
    """Rows with a row of Nones inserted at every gap, so lines stop at outages."""
    breaks = gap_breaks([r[0] for r in rows], floor_ms)
    if not breaks:
        return list(rows)
    out: list[Sequence] = []
    for i, row in enumerate(rows):
        if i in breaks:
            out.append((rows[i - 1][0] + 1,) + (None,) * (len(row) - 1))
        out.append(row)
    return out


def _round(value: float | None, digits: int) -> float | None:
    """A value rounded for display, or None (a line break)."""
    return None if value is None else round(value, digits)


def _series(line: Line, series_id: str, name: str, data: list, *, colour: str,
            stack: str | None = None, area: bool = False, width: float = 1.5) -> None:
    """Add a series whose data are [ms, value, ...] rows (a time axis needs the pairs)."""
    line.add_yaxis(
        name, [], is_symbol_show=False, stack=stack, color=colour,
        label_opts=opts.LabelOpts(is_show=False), is_connect_nones=False,
        linestyle_opts=opts.LineStyleOpts(width=width, color=colour, opacity=0 if area or stack else 1),
        areastyle_opts=opts.AreaStyleOpts(opacity=1, color=colour) if area else opts.AreaStyleOpts())
    series = line.options["series"][-1]
    series.update(id=series_id, data=data)
    series.pop("hoverAnimation", None)  # deprecated in ECharts 6 (emphasis.scale replaces it)


def build_chart(*, device_name: str, metric: Metric, window: Window, now_ms: int, source: str,
                points: Sequence[Sequence], echarts_url: str) -> Line:
    """A Line of one device's metric over `window`: the readings, or bucket means in a min–max band."""
    theme = theme_for(metric)
    digits = decimals_for(metric)
    label = metric.title
    line = SafeLine(init_opts=opts.InitOpts(
        width="100%", height="520px", js_host=echarts_url, bg_color=gradient(theme.top, theme.bottom),
        page_title=html.escape(f"{device_name} · {theme.title} · {window.name}"),
        animation_opts=opts.AnimationOpts(animation=False)))
    line.locale = "EN"
    line.add_xaxis([])
    if source == RAW:
        rows = _with_breaks(points, RAW_GAP_FLOOR_MS)
        _series(line, "value", label, [[r[0], _round(r[1], digits)] for r in rows], colour=LINE_COLOUR)
    else:
        rows = _with_breaks(points, BUCKET_MS[source])
        lows = [[r[0], _round(r[2], digits)] for r in rows]
        highs = [_round(r[3], digits) for r in rows]
        # The band's top is min + range, so range comes from the rounded values and meets max exactly.
        ranges = [[low[0], None, None] if high is None else [low[0], round(high - low[1], digits), high]
                  for low, high in zip(lows, highs)]
        _series(line, "min", "min", lows, colour=BAND_COLOUR, stack="band")
        _series(line, "max", "max", ranges, colour=BAND_COLOUR, stack="band", area=True)
        _series(line, "mean", f"mean {label.lower()}", [[r[0], _round(r[1], digits)] for r in rows],
                colour=LINE_COLOUR)
    _set_options(line, device_name, metric, window, now_ms, source)
    return line


def _set_options(line: Line, device_name: str, metric: Metric, window: Window, now_ms: int,
                 source: str) -> None:
    """Title, axes (time below, values on the right), tooltip and zoom."""
    theme = theme_for(metric)
    text = opts.TextStyleOpts(color=TEXT_COLOUR)
    line.set_global_opts(
        title_opts=opts.TitleOpts(
            title=theme.title, subtitle=f"{device_name} · {window.label} · {SOURCE_LABELS[source]}",
            title_textstyle_opts=opts.TextStyleOpts(color=TITLE_COLOUR),
            subtitle_textstyle_opts=opts.TextStyleOpts(color=TITLE_COLOUR)),
        legend_opts=opts.LegendOpts(is_show=False),
        tooltip_opts=opts.TooltipOpts(trigger="axis", formatter=TOOLTIP),
        xaxis_opts=opts.AxisOpts(
            type_="time", min_=window.start(now_ms), max_=now_ms,
            axislabel_opts=opts.LabelOpts(color=TEXT_COLOUR),
            axisline_opts=opts.AxisLineOpts(linestyle_opts=opts.LineStyleOpts(color=TEXT_COLOUR))),
        yaxis_opts=opts.AxisOpts(
            type_="value", position="right", is_scale=True, name=metric.unit,
            name_textstyle_opts=text, axislabel_opts=opts.LabelOpts(color=TEXT_COLOUR),
            splitline_opts=opts.SplitLineOpts(
                is_show=True, linestyle_opts=opts.LineStyleOpts(color="rgba(255,255,255,0.35)"))),
        datazoom_opts=[opts.DataZoomOpts(type_="inside", range_start=0, range_end=100),
                       opts.DataZoomOpts(type_="slider", range_start=0, range_end=100)],
    )


def render_html(**kwargs) -> str:
    """The chart page as an HTML string (see build_chart for the arguments)."""
    return build_chart(**kwargs).render_embed()
