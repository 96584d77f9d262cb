// Administration: devices (register with the token shown once, revoke), metrics (list, add), users (list).
// Data from /api/v1 only; writes carry the CSRF header (common.js).
(function () {
  "use strict";
  const S = window.Sensors;
  const { el } = S;
  const CONFIRM_MS = 5000;

  const root = document.getElementById("admin-page");
  const section = root.dataset.section;

  function errorText(e) {
    const detail = e.body && e.body.detail;
    if (detail && typeof detail === "object") {
      return Object.entries(detail).map(([k, v]) => k + ": " + [].concat(v).join(" ")).join("; ");
    }
    return e.message;
  }

  const when = S.timeNode;
  const fill = S.fillTable;

  // A form posting JSON to the API: body(form) builds it, done(reply) follows a success.
  function jsonForm(form, path, body, done) {
    const error = form.querySelector(".form-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const submit = form.querySelector("button[type=submit]");
      error.hidden = true;
      submit.disabled = true;
      try {
        const reply = await S.api(path, { method: "POST", json: body(form.elements) });
        form.reset();
        await done(reply);
      } catch (e) {
        error.textContent = errorText(e);
        error.hidden = false;
      } finally {
        submit.disabled = false;
      }
    });
  }

  // A button that acts on a second click within CONFIRM_MS (no native dialog).
  function confirmButton(label, confirmLabel, action) {
    const button = el("button", { type: "button" }, label);
    let armed = null;
    button.addEventListener("click", async () => {
      if (!armed) {
        button.textContent = confirmLabel;
        button.classList.add("danger");
        armed = setTimeout(() => { armed = null; button.textContent = label; button.classList.remove("danger"); },
          CONFIRM_MS);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      try {
        await action();
      } catch (e) {
        button.disabled = false;
        button.textContent = "Failed: " + errorText(e);
      }
    });
    return button;
  }

  async function copy(target, button) {
    const text = target.value;
    let copied = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        copied = true;
      }
    } catch (e) { /* denied: fall back to selecting the text */ }
    if (!copied) {
      target.select();
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    }
    button.textContent = copied ? "Copied" : "Press Ctrl+C";
    setTimeout(() => { button.textContent = "Copy"; }, 2000);
  }

  // ---- devices ----
  function deviceState(d) {
    const state = d.revoked ? "revoked" : d.online ? "online" : "offline";
    return el("td", { class: "state-" + state }, state);
  }

  async function loadDevices() {
    const devices = await S.api("/devices");
    fill("devices", devices.map((d) => el("tr", { dataset: { deviceId: d.id } },
      el("td", { class: "num" }, d.id), el("td", {}, el("a", { href: "/devices/" + d.id }, d.name)),
      deviceState(d), el("td", {}, d.last_seen_ms === null ? "never" : when(d.last_seen_ms, d.last_seen)),
      el("td", {}, when(d.created_ms, d.created)),
      el("td", {}, d.revoked ? "" : confirmButton("Revoke", "Confirm revoke", async () => {
        await S.api("/devices/" + d.id, { method: "DELETE" });
        await loadDevices();
      })))), "devices-empty");
  }

  function showToken(device) {
    const panel = document.getElementById("new-device");
    const command = ".venv/bin/python -m Pi_Sensor.client --url " + root.dataset.ingestUrl +
      " --token=" + device.token + " --sensor scd30";
    panel.querySelector(".device-name").textContent = device.name;
    document.getElementById("new-token").value = device.token;
    document.getElementById("new-command").value = command;
    panel.hidden = false;
    document.getElementById("new-token").focus();
  }

  function hideToken() {
    // The token leaves the page for good: it exists nowhere else but on the Pi.
    document.getElementById("new-token").value = "";
    document.getElementById("new-command").value = "";
    document.getElementById("new-device").hidden = true;
  }

  function setUpDevices() {
    jsonForm(document.getElementById("device-form"), "/devices", (f) => ({ name: f.name.value.trim() }),
      (device) => { showToken(device); return loadDevices(); });
    document.querySelectorAll("button.copy").forEach((b) => b.addEventListener("click",
      () => copy(document.getElementById(b.dataset.copy), b)));
    document.getElementById("token-done").addEventListener("click", hideToken);
    return loadDevices();
  }

  // ---- metrics ----
  const number = (v) => (v === "" ? null : Number(v));

  async function loadMetrics() {
    const metrics = await S.api("/metrics");
    fill("metrics", metrics.map((m) => el("tr", { dataset: { metric: m.name } }, el("td", {}, el("code", {}, m.name)),
      el("td", {}, m.label), el("td", {}, m.unit), el("td", { class: "num" }, m.min), el("td", { class: "num" }, m.max))));
  }

  function setUpMetrics() {
    jsonForm(document.getElementById("metric-form"), "/metrics", (f) => ({
      name: f.name.value.trim(), label: f.label.value.trim(), unit: f.unit.value.trim(),
      min: number(f.min.value), max: number(f.max.value) }), loadMetrics);
    return loadMetrics();
  }

  // ---- users ----
  async function setUpUsers() {
    const users = await S.api("/users");
    fill("users", users.map((u) => el("tr", { dataset: { userId: u.id } }, el("td", {}, u.name),
      el("td", {}, u.is_admin ? "administrator" : "reader"), el("td", {}, when(u.created_ms, u.created)))));
  }

  S.ready(async () => {
    const setUp = { devices: setUpDevices, metrics: setUpMetrics, users: setUpUsers }[section];
    try {
      await setUp();
    } catch (e) {
      root.append(el("p", { class: "form-error", role: "alert" }, "Could not load the " + section + ": " + errorText(e)));
    }
  });
})();
