// /charts: the Celery worker's pyecharts renders in sandboxed frames, and "Redraw now" for administrators,
// which queues a render and follows its task until it is done. Data from /api/v1/charts and /tasks only.
(function () {
  "use strict";
  const S = window.Sensors;
  const { el } = S;
  const POLL_MS = 1000;
  const GIVE_UP_MS = 10 * 60 * 1000; // a render of every device takes seconds; this means no worker runs
  const STEPS = { PENDING: [1, "queued, waiting for a worker"], RETRY: [1, "retrying"], STARTED: [2, "drawing"] };

  const root = document.getElementById("charts-page");
  const list = document.getElementById("chart-list");
  const message = document.getElementById("charts-message");
  const spanSelect = document.getElementById("chart-span");
  const deviceSelect = document.getElementById("chart-device");
  let charts = [];
  let labels = {};

  function drawnText(ms) {
    return "Drawn " + S.formatTime(ms) + " " + S.utcOffset(ms) + " (" + S.ago(ms) + ")";
  }

  function fillDevices() {
    const chosen = deviceSelect.value;
    const names = new Map();
    charts.forEach((c) => names.set(String(c.device_id), c.device || "device " + c.device_id));
    const sorted = [...names].sort((a, b) => a[1].localeCompare(b[1]));
    deviceSelect.replaceChildren(el("option", { value: "" }, "every device"),
      ...sorted.map(([id, name]) => el("option", { value: id, selected: id === chosen }, name)));
  }

  function card(chart) {
    const title = (labels[chart.metric] || chart.metric) + ", " + chart.span;
    // No allow-same-origin: the generated page runs its own scripts in an opaque origin, away from ours.
    const frame = el("iframe", { src: chart.url, title: title + " chart of " + chart.device,
      sandbox: "allow-scripts", loading: "lazy", referrerpolicy: "same-origin" });
    return el("figure", { class: "chart-card", dataset: { metric: chart.metric, span: chart.span } }, frame,
      el("figcaption", { class: "drawn" }, el("strong", {}, title), " · ",
        el("time", { datetime: chart.rendered, title: chart.rendered }, drawnText(chart.rendered_ms))));
  }

  function draw() {
    const span = spanSelect.value;
    const device = deviceSelect.value;
    const shown = charts.filter((c) => c.span === span && (!device || String(c.device_id) === device));
    const order = Object.keys(labels);
    const rank = (m) => (order.indexOf(m) < 0 ? order.length : order.indexOf(m));
    const byDevice = new Map();
    shown.sort((a, b) => a.device.localeCompare(b.device) || rank(a.metric) - rank(b.metric))
      .forEach((c) => { if (!byDevice.has(c.device_id)) byDevice.set(c.device_id, []); byDevice.get(c.device_id).push(c); });
    list.replaceChildren(...[...byDevice.values()].map((items) => el("section", {
      class: "device-charts", dataset: { deviceId: items[0].device_id } },
    el("h2", {}, el("a", { href: "/devices/" + items[0].device_id }, items[0].device)),
    el("div", { class: "chart-grid" }, items.map(card)))));
    message.textContent = charts.length === 0
      ? "No chart has been drawn yet: the worker draws them every hour once a device has sent readings."
      : shown.length === 0 ? "No " + span + " chart for this choice." : "";
  }

  async function load() {
    try {
      const [found, metrics] = await Promise.all([S.api("/charts"), S.api("/metrics")]);
      charts = found;
      labels = Object.fromEntries(metrics.map((m) => [m.name, m.label || m.name]));
      fillDevices();
      draw();
    } catch (e) {
      message.textContent = "Could not load the charts: " + e.message;
    }
  }

  // ---- Redraw now (administrators) ----
  const button = document.getElementById("redraw");
  const progress = document.getElementById("redraw-progress");
  const status = document.getElementById("redraw-status");

  function show(step, text, state) {
    progress.hidden = step === null;
    if (step !== null) progress.value = step;
    status.textContent = text;
    status.dataset.state = state || "";
  }

  async function follow(taskId, started) {
    let task;
    try {
      task = await S.api("/tasks/" + encodeURIComponent(taskId));
    } catch (e) {
      task = { state: "UNKNOWN", ready: false, error: e.message };
    }
    const seconds = Math.round((Date.now() - started) / 1000);
    if (task.ready) {
      button.disabled = false;
      if (task.state === "SUCCESS") {
        const files = task.result && task.result.files !== undefined ? task.result.files : "the";
        show(3, "Done: " + files + " charts drawn in " + seconds + " s.", "done");
        await load();
      } else {
        show(null, "The render failed: " + (task.error || task.state), "failed");
      }
      return;
    }
    if (Date.now() - started > GIVE_UP_MS) {
      button.disabled = false;
      show(null, "No worker finished the render within 10 minutes: is the Celery worker running?", "failed");
      return;
    }
    const [step, text] = STEPS[task.state] || [1, task.error ? "waiting (" + task.error + ")" : "waiting"];
    show(step, text + "… " + seconds + " s", "running");
    setTimeout(() => follow(taskId, started), POLL_MS);
  }

  async function redraw() {
    button.disabled = true;
    show(0, "Queueing the render…", "running");
    try {
      const queued = await S.api("/charts/refresh", { method: "POST", json: {} });
      root.dataset.task = queued.task_id;
      follow(queued.task_id, Date.now());
    } catch (e) {
      button.disabled = false;
      show(null, "Could not queue the render: " + e.message, "failed");
    }
  }

  S.ready(() => {
    spanSelect.addEventListener("change", draw);
    deviceSelect.addEventListener("change", draw);
    if (button) button.addEventListener("click", redraw);
    load();
  });
})();
