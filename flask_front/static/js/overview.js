// The overview: a tile per device (state, last seen, current values, a sparkline of the last hour),
// kept current by the live link (live.js) and coloured while one of its alerts fires.
(function () {
  "use strict";
  const S = window.Sensors;
  const HOUR = 3600 * 1000;
  const root = document.getElementById("overview");
  const offlineMs = Number(root.dataset.offlineMs);
  const tilesNode = document.getElementById("tiles");
  const filterInput = document.getElementById("filter");
  const countNode = document.getElementById("count");
  const statusNode = document.getElementById("live-status");
  const messageNode = document.getElementById("message");

  let metrics = [];
  const devices = new Map(); // id -> {id, name, lastMs, tile, rows: {metric: {row, value}}, spark}
  const rules = new Map(); // rule id -> metric (null: a no-data rule about the whole device)
  let firing = new Map(); // device id -> [{rule, metric}]

  // ---- tiles ----
  function makeTile(d) {
    const rows = {};
    const list = S.el("div", { class: "metrics" });
    metrics.forEach((m) => {
      const value = S.el("span", { class: "value", text: "–" });
      const row = S.el("div", { class: "metric", dataset: { metric: m.name } },
        S.el("span", { class: "label", title: m.label, text: m.label }),
        S.el("span", { class: "reading" }, value, S.el("span", { class: "unit", text: m.unit })),
        S.el("div", { class: "spark", "aria-hidden": "true" }));
      rows[m.name] = { row, value, spark: row.lastChild };
      list.append(row);
    });
    const state = S.el("span", { class: "badge" });
    const seen = S.el("span", { class: "seen" });
    const alert = S.el("span", { class: "badge firing", hidden: true, text: "alert" });
    const tile = S.el("article", { class: "tile", dataset: { deviceId: d.id, name: d.name.toLowerCase() } },
      S.el("div", { class: "tile-head" }, S.el("a", { href: "/devices/" + d.id, text: d.name }), state),
      S.el("div", { class: "tile-head" }, seen, alert), list);
    Object.assign(d, { tile, rows, state, seen, alert, spark: null });
    return tile;
  }

  function setValues(d, values) {
    Object.entries(values || {}).forEach(([name, v]) => {
      const r = d.rows[name];
      if (r && v !== null && v !== undefined) r.value.textContent = S.formatValue(v);
    });
    d.tile.dataset.lastMs = d.lastMs === null ? "" : String(d.lastMs);
  }

  function showSeen(d, now) {
    const online = d.lastMs !== null && now - d.lastMs <= offlineMs;
    d.tile.classList.toggle("offline", !online);
    d.state.className = "badge " + (online ? "online" : "offline");
    d.state.textContent = online ? "online" : "offline";
    d.seen.textContent = d.lastMs === null ? "no reading yet" : "last seen " + S.ago(d.lastMs, now);
    d.seen.title = d.lastMs === null ? "" : S.formatTime(d.lastMs) + " " + S.zoneLabel();
  }

  function addDevice(info) {
    const d = { id: info.id, name: info.name, lastMs: info.last_seen_ms };
    devices.set(d.id, d);
    makeTile(d);
    setValues(d, info.latest);
    showSeen(d, Date.now());
    sparkObserver.observe(d.tile);
    return d;
  }

  function sortTiles() {
    const sorted = [...devices.values()].sort((a, b) => a.name.localeCompare(b.name, undefined, { numeric: true }));
    tilesNode.replaceChildren(...sorted.map((d) => d.tile));
  }

  async function refreshDevices() {
    const list = await S.api("/devices");
    const keep = new Set();
    list.filter((info) => !info.revoked).forEach((info) => {
      keep.add(info.id);
      const d = devices.get(info.id) || addDevice(info);
      if (info.last_seen_ms !== null && (d.lastMs === null || info.last_seen_ms >= d.lastMs)) {
        d.lastMs = info.last_seen_ms;
        setValues(d, info.latest);
      }
    });
    [...devices.keys()].filter((id) => !keep.has(id)).forEach((id) => {
      const d = devices.get(id);
      if (d.spark) d.spark.charts.forEach((c) => c.dispose());
      sparkObserver.unobserve(d.tile);
      devices.delete(id);
    });
    sortTiles();
    applyFilter();
    refreshSeen();
    document.getElementById("no-devices").hidden = devices.size > 0;
  }

  function refreshSeen() {
    const now = Date.now();
    devices.forEach((d) => showSeen(d, now));
  }

  // ---- filter ----
  function applyFilter() {
    const q = filterInput.value.trim().toLowerCase();
    let shown = 0;
    devices.forEach((d) => {
      const hide = q !== "" && !d.tile.dataset.name.includes(q);
      d.tile.hidden = hide;
      if (!hide) shown += 1;
    });
    countNode.textContent = q ? shown + " of " + devices.size + " devices" : devices.size + " devices";
    const url = new URL(window.location.href);
    if (q) url.searchParams.set("q", q); else url.searchParams.delete("q");
    history.replaceState(null, "", url);
  }

  // ---- sparklines: drawn when a tile first becomes visible (200 tiles must stay light) ----
  const sparkObserver = new IntersectionObserver((entries) => {
    entries.filter((e) => e.isIntersecting).forEach((e) => {
      sparkObserver.unobserve(e.target);
      const d = devices.get(Number(e.target.dataset.deviceId));
      if (d) loadSpark(d).catch(() => { /* the tile keeps its values without a sparkline */ });
    });
  }, { rootMargin: "200px" });

  function sparkOption(points, now) {
    return {
      animation: false, silent: true, grid: { left: 1, right: 1, top: 2, bottom: 2 },
      xAxis: { type: "time", show: false, min: now - HOUR, max: now },
      yAxis: { type: "value", show: false, scale: true },
      series: [{ type: "line", data: points, showSymbol: false, lineStyle: { width: 1.3, color: sparkColor() },
        connectNulls: false }],
    };
  }

  function sparkColor() {
    return getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#1f6feb";
  }

  async function loadSpark(d) {
    const now = Date.now();
    const body = await S.api("/devices/" + d.id + "/readings" + S.query({
      from: now - HOUR, to: now, agg: "avg" }));
    if (d.spark) d.spark.charts.forEach((c) => c.dispose());
    const data = {};
    const charts = [];
    metrics.forEach((m) => {
      data[m.name] = (body.series[m.name] || []).map((p) => [p[0], p[1]]);
      const chart = echarts.init(d.rows[m.name].spark, null, { renderer: "canvas" });
      chart.setOption(sparkOption(data[m.name], now));
      charts.push(chart);
    });
    d.spark = { data, charts };
  }

  function appendSpark(d, ts, values) {
    if (!d.spark) return;
    Object.entries(values).forEach(([name, v]) => {
      const series = d.spark.data[name];
      if (!series) return;
      series.push([ts, v]);
      while (series.length && series[0][0] < ts - HOUR) series.shift();
    });
    d.sparkDirty = true;
    scheduleSparkDraw();
  }

  let drawPending = false;
  function scheduleSparkDraw() {
    if (drawPending) return;
    drawPending = true;
    setTimeout(() => {
      drawPending = false;
      const now = Date.now();
      devices.forEach((d) => {
        if (!d.sparkDirty || !d.spark) return;
        d.sparkDirty = false;
        metrics.forEach((m, i) => d.spark.charts[i].setOption({
          xAxis: { min: now - HOUR, max: now }, series: [{ data: d.spark.data[m.name] }] }));
      });
    }, 250);
  }

  // ---- alerts ----
  async function refreshAlerts() {
    const [ruleList, events] = await Promise.all([
      S.api("/alerts/rules"), S.api("/alerts/events" + S.query({ state: "firing", limit: 1000 }))]);
    rules.clear();
    ruleList.forEach((r) => rules.set(r.id, r.metric));
    firing = new Map();
    events.forEach((e) => {
      const list = firing.get(e.device_id) || [];
      list.push({ rule: e.rule, metric: rules.has(e.rule_id) ? rules.get(e.rule_id) : null });
      firing.set(e.device_id, list);
    });
    devices.forEach(showAlerts);
  }

  function showAlerts(d) {
    const list = firing.get(d.id) || [];
    d.tile.classList.toggle("firing", list.length > 0);
    d.alert.hidden = list.length === 0;
    d.alert.title = list.map((f) => f.rule).join(", ");
    d.alert.textContent = list.length > 1 ? list.length + " alerts" : "alert";
    Object.entries(d.rows).forEach(([name, r]) => {
      r.row.classList.toggle("firing", list.some((f) => f.metric === name));
    });
  }

  // ---- live ----
  let refreshing = null;
  function onReadings(readings) {
    let unknown = false;
    readings.forEach((r) => {
      const d = devices.get(r.device_id);
      if (!d) { unknown = true; return; }
      if (d.lastMs === null || r.ts >= d.lastMs) {
        d.lastMs = r.ts;
        setValues(d, r.values);
        showSeen(d, Date.now());
      }
      appendSpark(d, r.ts, r.values);
    });
    if (unknown && !refreshing) { // a device registered since the page loaded
      refreshing = refreshDevices().finally(() => { refreshing = null; });
    }
  }

  function onResync() {
    refreshDevices().catch(showError);
    refreshAlerts().catch(() => {});
    devices.forEach((d) => { if (d.spark) loadSpark(d).catch(() => {}); });
  }

  function showError(e) { messageNode.textContent = "Could not load the devices: " + e.message; }

  async function start() {
    filterInput.value = new URL(window.location.href).searchParams.get("q") || "";
    filterInput.addEventListener("input", applyFilter);
    try {
      metrics = await S.api("/metrics");
      await refreshDevices();
    } catch (e) {
      showError(e);
      return;
    }
    refreshAlerts().catch(() => {});
    setInterval(refreshSeen, 10 * 1000);
    setInterval(() => refreshAlerts().catch(() => {}), 30 * 1000);
    // Started after the first fetch: its first resync fetches what was stored since then.
    S.startLive({ onReadings, onResync, onStatus: (s) => S.showStatus(statusNode, s) });
  }

  S.ready(start);
})();
