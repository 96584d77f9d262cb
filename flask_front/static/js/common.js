// Helpers shared by the dashboard pages: the JSON API with the CSRF header, local times with the zone
// shown, "3 min ago", and building DOM nodes without innerHTML (names are text, never markup).
(function () {
  "use strict";
  const API = "/api/v1";

  function csrfToken() {
    const meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.content : "";
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.error)) || "HTTP " + status);
      this.status = status;
      this.body = body;
    }
  }

  // fetch JSON from the API: `path` is under /api/v1 unless it starts with /api/ or a scheme.
  async function api(path, options) {
    const opts = Object.assign({ method: "GET", credentials: "same-origin" }, options || {});
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    if (!["GET", "HEAD", "OPTIONS"].includes(opts.method.toUpperCase())) headers["X-CSRFToken"] = csrfToken();
    opts.headers = headers;
    const url = path.startsWith("/api/") || /^[a-z]+:/.test(path) ? path : API + path;
    const response = await fetch(url, opts);
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (e) { body = { detail: text.slice(0, 200) }; }
    if (!response.ok) throw new ApiError(response.status, body);
    return body;
  }

  function query(params) {
    const q = new URLSearchParams();
    Object.entries(params).forEach(([k, v]) => { if (v !== undefined && v !== null && v !== "") q.set(k, v); });
    const s = q.toString();
    return s ? "?" + s : "";
  }

  // ---- times: always the browser's zone, with the zone named somewhere on the page ----
  const pad = (n) => String(n).padStart(2, "0");

  function zoneName() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "local time"; } catch (e) { return "local time"; }
  }

  function utcOffset(ms) {
    const minutes = -new Date(ms === undefined ? Date.now() : ms).getTimezoneOffset();
    const sign = minutes < 0 ? "-" : "+";
    const abs = Math.abs(minutes);
    return "UTC" + sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
  }

  function zoneLabel() { return zoneName() + " (" + utcOffset() + ")"; }

  // "2026-12-03 11:13:03" in local time (seconds optional).
  function formatTime(ms, withSeconds) {
    if (ms === null || ms === undefined) return "–";
    const d = new Date(ms);
    const base = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
    return withSeconds === false ? base : base + ":" + pad(d.getSeconds());
  }

  function ago(ms, now) {
    if (ms === null || ms === undefined) return "never";
    const s = Math.max(0, Math.round(((now || Date.now()) - ms) / 1000));
    if (s < 10) return "just now";
    if (s < 60) return s + " s ago";
    const m = Math.round(s / 60);
    if (m < 60) return m + " min ago";
    const h = Math.round(m / 60);
    if (h < 48) return h + " h ago";
    return Math.round(h / 24) + " days ago";
  }

  // <input type="datetime-local"> holds local time without a zone.
  function toLocalInput(ms) {
    const d = new Date(ms);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
  }

  function fromLocalInput(value) {
    if (!value) return null;
    const ms = new Date(value).getTime(); // no zone in the string: read as local time
    return Number.isFinite(ms) ? ms : null;
  }

  function formatValue(v) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    const abs = Math.abs(v);
    const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : 2;
    return Number(v.toFixed(digits)).toLocaleString(undefined, { maximumFractionDigits: digits });
  }

  // el("a", {href: "/x", class: "y", dataset: {id: 1}}, "text", child) -> Element
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === undefined || v === null || v === false) return;
      if (k === "class") node.className = v;
      else if (k === "dataset") Object.assign(node.dataset, v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    });
    children.flat().forEach((c) => {
      if (c !== null && c !== undefined && c !== false) node.append(c instanceof Node ? c : String(c));
    });
    return node;
  }

  function prefersDark() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  }

  // The live link's state in a badge: live / reconnecting / polling.
  function showStatus(node, status) {
    if (!node) return;
    node.hidden = false;
    node.className = "badge " + status;
    node.textContent = status;
    node.title = {
      live: "readings arrive as they are stored",
      reconnecting: "the live link dropped: reconnecting",
      polling: "WebSockets are not available: asking the server every few seconds",
      connecting: "opening the live link",
    }[status] || status;
  }

  // Starts the live link (live.js, loaded by every page that shows live data).
  function startLive(handlers) {
    return window.SensorsLive.start(handlers);
  }

  // A <time> node of an epoch-ms instant in local time with its UTC offset; "–" for none.
  function timeNode(ms, iso) {
    return ms === null || ms === undefined ? "–"
      : el("time", { datetime: iso, title: formatTime(ms) + " (" + ago(ms) + ")" },
        formatTime(ms, false) + " " + utcOffset(ms));
  }

  // Puts rows in a table's body; the table is hidden when empty, and the `emptyId` hint shown.
  function fillTable(id, rows, emptyId) {
    const table = document.getElementById(id);
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;
    if (emptyId) document.getElementById(emptyId).hidden = rows.length !== 0;
  }

  function ready(fn) {
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", fn);
    else fn();
  }

  ready(() => {
    document.querySelectorAll("[data-tz]").forEach((n) => { n.textContent = "Times in " + zoneLabel(); });
  });

  window.Sensors = { api, ApiError, query, csrfToken, zoneName, utcOffset, zoneLabel, formatTime, ago,
    toLocalInput, fromLocalInput, formatValue, el, prefersDark, showStatus, startLive, timeNode, fillTable, ready };
})();
