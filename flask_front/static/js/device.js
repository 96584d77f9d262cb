// The device page: a chart per metric over the chosen range (raw readings, or the mean with a min-max band
// when the API answers with buckets), live readings appended while the range ends now, a CSV of the shown
// range, and the device's alert rules and recent events.
(function () {
  "use strict";
  const S = window.Sensors;
  const root = document.getElementById("device");
  const deviceId = Number(root.dataset.deviceId);
  const offlineMs = Number(root.dataset.offlineMs);
  const SPANS = { "1h": 3600e3, "24h": 86400e3, "7d": 7 * 86400e3, "30d": 30 * 86400e3 };
  const GROUP = "device-" + deviceId;
  const CATCH_UP_MS = 10 * 60e3; // a longer gap in the live link reloads the whole range
  const $ = (id) => document.getElementById(id);

  let metrics = [];
  let range = { kind: "24h", from: null, to: null }; // from/to: the shown range, epoch ms
  let shown = null; // {bucketMs, series: {metric: points}} of the last draw
  const charts = new Map(); // metric -> echarts instance
  let lastMs = null;
  let loadSeq = 0;

  // ---- range ----
  function readRangeFromUrl() {
    const params = new URL(window.location.href).searchParams;
    const kind = params.get("range");
    const from = Number(params.get("from"));
    const to = Number(params.get("to"));
    if (from && to && to > from) return { kind: "custom", from, to };
    return { kind: SPANS[kind] ? kind : "24h", from: null, to: null };
  }

  function writeRangeToUrl() {
    const url = new URL(window.location.href);
    ["range", "from", "to"].forEach((k) => url.searchParams.delete(k));
    if (range.kind === "custom") {
      url.searchParams.set("from", range.from);
      url.searchParams.set("to", range.to);
    } else if (range.kind !== "24h") {
      url.searchParams.set("range", range.kind);
    }
    history.replaceState(null, "", url);
  }

  const isLive = () => range.kind !== "custom";

  function resolveRange() {
    if (isLive()) {
      range.to = Date.now();
      range.from = range.to - SPANS[range.kind];
    }
  }

  function showRangeControls() {
    document.querySelectorAll(".ranges button").forEach((b) => {
      b.setAttribute("aria-pressed", String(b.dataset.range === range.kind));
    });
    $("custom-range").hidden = range.kind !== "custom";
    if (range.from !== null) {
      $("range-from").value = S.toLocalInput(range.from);
      $("range-to").value = S.toLocalInput(range.to);
    }
  }

  function csvHref() {
    const to = isLive() ? Date.now() : range.to;
    const from = isLive() ? to - SPANS[range.kind] : range.from;
    return "/api/v1/devices/" + deviceId + "/readings.csv" + S.query({ from, to, download: 1 });
  }

  // ---- charts ----
  function chartFor(metric) {
    if (charts.has(metric.name)) return charts.get(metric.name);
    const node = S.el("div", { class: "chart", role: "img", "aria-label": metric.label + " chart" });
    $("charts").append(S.el("section", { class: "card chart-card", dataset: { metric: metric.name } },
      S.el("h2", {}, metric.label + " ", S.el("span", { class: "unit", text: "(" + metric.unit + ")" })), node));
    const chart = echarts.init(node, S.prefersDark() ? "dark" : null, { renderer: "canvas" });
    chart.group = GROUP;
    charts.set(metric.name, chart);
    return chart;
  }

  function tooltipFormatter(metric, bucketed) {
    return (params) => {
      const first = Array.isArray(params) ? params[0] : params;
      const rows = shown && shown.series[metric.name];
      const point = rows && rows[first.dataIndex];
      if (!point) return "";
      const when = S.formatTime(point[0]);
      if (!bucketed) return when + "\n" + S.formatValue(point[1]) + " " + metric.unit;
      return when + "\nmean " + S.formatValue(point[1]) + " " + metric.unit + "\nmin " + S.formatValue(point[2]) +
        " · max " + S.formatValue(point[3]);
    };
  }

  function seriesFor(metric, points, bucketed) {
    if (!bucketed) {
      return [{ name: metric.label, type: "line", showSymbol: false, sampling: "lttb",
        data: points.map((p) => [p[0], p[1]]) }];
    }
    // The band: min drawn invisibly, then max - min stacked on it with an area.
    return [
      { name: "min", type: "line", stack: "band", showSymbol: false, silent: true, lineStyle: { opacity: 0 },
        data: points.map((p) => [p[0], p[2]]) },
      { name: "min-max", type: "line", stack: "band", showSymbol: false, silent: true, lineStyle: { opacity: 0 },
        areaStyle: { opacity: 0.25 }, data: points.map((p) => [p[0], p[3] - p[2]]) },
      { name: "mean", type: "line", showSymbol: false, data: points.map((p) => [p[0], p[1]]) },
    ];
  }

  function chartOption(metric, points, bucketed) {
    const color = S.prefersDark() ? ["#4c9aff", "#4c9aff", "#4c9aff"] : ["#1f6feb", "#1f6feb", "#1f6feb"];
    return {
      backgroundColor: "transparent", animation: false, color,
      grid: { left: 48, right: 16, top: 16, bottom: 56 },
      tooltip: { trigger: "axis", renderMode: "richText", formatter: tooltipFormatter(metric, bucketed) },
      xAxis: { type: "time", min: range.from, max: range.to },
      yAxis: { type: "value", scale: true },
      dataZoom: [{ type: "inside", filterMode: "none" }, { type: "slider", height: 20, bottom: 8, filterMode: "none" }],
      series: seriesFor(metric, points, bucketed),
    };
  }

  async function load() {
    const seq = ++loadSeq;
    resolveRange();
    showRangeControls();
    writeRangeToUrl();
    $("message").textContent = "Loading…";
    let body;
    try {
      body = await S.api("/devices/" + deviceId + "/readings" + S.query({
        from: range.from, to: range.to, agg: "avg,min,max" }));
    } catch (e) {
      if (seq === loadSeq) $("message").textContent = "Could not load the readings: " + e.message;
      return;
    }
    if (seq !== loadSeq) return; // a newer range was chosen meanwhile
    draw(body);
  }

  function draw(body) {
    const bucketed = body.bucket_ms > 0;
    shown = { bucketMs: body.bucket_ms, series: {} };
    let total = 0;
    metrics.forEach((m) => {
      const points = (body.series[m.name] || []).slice();
      shown.series[m.name] = points;
      total += points.length;
      chartFor(m).setOption(chartOption(m, points, bucketed), { notMerge: true });
    });
    echarts.connect(GROUP);
    $("range-label").textContent = S.formatTime(range.from, false) + " – " +
      (isLive() ? "now" : S.formatTime(range.to, false));
    $("resolution").textContent = bucketed
      ? "mean and min–max of " + describeBucket(body.bucket_ms) + " buckets"
      : "every reading";
    $("message").textContent = total ? "" : "No reading in this range.";
    root.dataset.drawn = String(Date.now()); // lets tests and benchmarks see a finished redraw
    root.dataset.points = String(total);
  }

  function describeBucket(ms) {
    if (ms < 60e3) return ms / 1e3 + " s";
    if (ms < 3600e3) return ms / 60e3 + " min";
    if (ms < 86400e3) return ms / 3600e3 + " h";
    return ms / 86400e3 + " day";
  }

  // ---- live ----
  let redrawTimer = null;
  function onReadings(readings) {
    const mine = readings.filter((r) => r.device_id === deviceId);
    if (!mine.length) return;
    mine.forEach((r) => { if (lastMs === null || r.ts > lastMs) lastMs = r.ts; });
    showSeen();
    if (!isLive() || !shown) return;
    const bucketed = shown.bucketMs > 0;
    mine.forEach((r) => Object.entries(r.values).forEach(([name, v]) => {
      const points = shown.series[name];
      // Older readings (a Pi's spool) show on the next load: the chart keeps time order.
      if (points && (!points.length || r.ts > points[points.length - 1][0])) {
        points.push(bucketed ? [r.ts, v, v, v] : [r.ts, v]);
      }
    }));
    if (!redrawTimer) redrawTimer = setTimeout(redrawLive, 100);
  }

  function redrawLive() {
    redrawTimer = null;
    range.to = Date.now();
    range.from = range.to - SPANS[range.kind];
    const bucketed = shown.bucketMs > 0;
    metrics.forEach((m) => {
      const chart = charts.get(m.name);
      if (!chart) return;
      chart.setOption({ xAxis: { min: range.from, max: range.to },
        series: seriesFor(m, shown.series[m.name], bucketed) });
    });
    root.dataset.drawn = String(Date.now());
    root.dataset.points = String(metrics.reduce((n, m) => n + shown.series[m.name].length, 0));
  }

  // After a gap in the live link: fetch the readings missed since sinceMs (a long gap reloads the range).
  async function catchUp(sinceMs) {
    loadDevice().catch(() => {});
    if (!isLive() || !shown) return;
    const now = Date.now();
    if (now - sinceMs > CATCH_UP_MS) { load(); return; }
    const body = await S.api("/devices/" + deviceId + "/readings" + S.query({
      from: Math.max(sinceMs, range.from), to: now, resolution: "raw" }));
    const byTs = new Map();
    Object.entries(body.series).forEach(([name, points]) => points.forEach(([ts, v]) => {
      if (!byTs.has(ts)) byTs.set(ts, { device_id: deviceId, ts, values: {} });
      byTs.get(ts).values[name] = v;
    }));
    onReadings([...byTs.values()].sort((a, b) => a.ts - b.ts));
  }

  function onResync(sinceMs) {
    catchUp(sinceMs).catch(() => load());
    loadAlerts().catch(() => {});
  }

  // ---- the device and its alerts ----
  async function loadDevice() {
    const info = await S.api("/devices/" + deviceId);
    if (info.last_seen_ms !== null && (lastMs === null || info.last_seen_ms > lastMs)) lastMs = info.last_seen_ms;
    root.dataset.revoked = String(info.revoked);
    showSeen();
  }

  function showSeen() {
    const now = Date.now();
    const online = lastMs !== null && now - lastMs <= offlineMs && root.dataset.revoked !== "true";
    const state = $("device-state");
    state.className = "badge " + (online ? "online" : "offline");
    state.textContent = root.dataset.revoked === "true" ? "revoked" : online ? "online" : "offline";
    $("device-seen").textContent = lastMs === null ? "no reading yet" : "last seen " + S.ago(lastMs, now);
    $("device-seen").title = lastMs === null ? "" : S.formatTime(lastMs) + " " + S.zoneLabel();
  }

  async function loadAlerts() {
    const [rules, events, firing] = await Promise.all([
      S.api("/alerts/rules"),
      S.api("/alerts/events" + S.query({ device_id: deviceId, limit: 20 })),
      S.api("/alerts/events" + S.query({ device_id: deviceId, state: "firing", limit: 1000 }))]);
    const firingRules = new Set(firing.map((e) => e.rule_id));
    const mine = rules.filter((r) => r.device_id === null || r.device_id === deviceId);
    $("rules").tBodies[0].replaceChildren(...mine.map((r) => S.el("tr",
      { class: firingRules.has(r.id) ? "firing" : "" },
      S.el("td", { text: r.name + (r.device_id === null ? " (every device)" : "") }),
      S.el("td", { text: r.condition }),
      S.el("td", { text: !r.enabled ? "disabled" : firingRules.has(r.id) ? "firing" : "ok" }))));
    $("no-rules").hidden = mine.length > 0;
    $("events").tBodies[0].replaceChildren(...events.map((e) => S.el("tr",
      { class: e.state === "firing" ? "firing" : "" },
      S.el("td", { text: e.rule }),
      S.el("td", { text: S.formatTime(e.fired_ms) }),
      S.el("td", { text: e.resolved_ms === null ? "firing" : S.formatTime(e.resolved_ms) }),
      S.el("td", { text: S.formatValue(e.value) }))));
    $("no-events").hidden = events.length > 0;
  }

  // ---- start ----
  function bindControls() {
    document.querySelectorAll(".ranges button").forEach((b) => b.addEventListener("click", () => {
      if (b.dataset.range === "custom") {
        const to = range.to || Date.now();
        range = { kind: "custom", from: range.from || to - SPANS["24h"], to };
        showRangeControls();
        return;
      }
      range = { kind: b.dataset.range, from: null, to: null };
      load();
    }));
    $("custom-range").addEventListener("submit", (event) => {
      event.preventDefault();
      const from = S.fromLocalInput($("range-from").value);
      const to = S.fromLocalInput($("range-to").value);
      if (from === null || to === null || to <= from) {
        $("message").textContent = "Choose a start before the end.";
        return;
      }
      range = { kind: "custom", from, to };
      load();
    });
    // The link is built when followed, so a live range ends at the moment of the click.
    const csv = $("csv");
    const refreshCsv = () => { csv.href = csvHref(); };
    ["pointerdown", "focus", "click"].forEach((type) => csv.addEventListener(type, refreshCsv));
    window.addEventListener("resize", () => charts.forEach((c) => c.resize()));
  }

  async function start() {
    range = readRangeFromUrl();
    bindControls();
    try {
      metrics = await S.api("/metrics");
    } catch (e) {
      $("message").textContent = "Could not load the metrics: " + e.message;
      return;
    }
    await load();
    $("csv").href = csvHref();
    loadDevice().catch(() => {});
    loadAlerts().catch(() => {});
    setInterval(showSeen, 10 * 1000);
    setInterval(() => loadAlerts().catch(() => {}), 60 * 1000);
    // ECharts themes are fixed at init: a change of the system's theme redraws with new charts.
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      charts.forEach((c) => c.dispose());
      charts.clear();
      $("charts").replaceChildren();
      load();
    });
    // Started after the first load: its first resync fetches what was stored since that load.
    S.startLive({ onReadings, onResync, onStatus: (s) => S.showStatus($("live-status"), s) });
  }

  S.ready(start);
})();
