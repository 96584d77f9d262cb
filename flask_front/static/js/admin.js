// Administration: devices (register with the token shown once, revoke), metrics (list, add), users (add with a
// generated password shown once, change role or password, delete).
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

  // A form sending JSON to the API (POST unless `method`): body(form) builds it, done(reply) follows a success.
  function jsonForm(form, path, body, done, method) {
    const error = form.querySelector(".form-error");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const submit = form.querySelector("button[type=submit]");
      error.hidden = true;
      submit.disabled = true;
      try {
        const reply = await S.api(path, { method: method || "POST", json: body(form.elements) });
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

  function copyButtons() {
    document.querySelectorAll("button.copy").forEach((b) => b.addEventListener("click",
      () => copy(document.getElementById(b.dataset.copy), b)));
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
    copyButtons();
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
  const me = Number(root.dataset.me);

  // "Set password": a small form in the user's row, sent as PATCH.
  function passwordForm(u, cell, opener) {
    const form = el("form", { class: "admin-form inline-form", novalidate: true },
      el("input", { name: "password", type: "password", minlength: 8, autocomplete: "new-password",
        "aria-label": "New password of " + u.name, placeholder: "new password" }),
      el("button", { type: "submit" }, "Save"), el("p", { class: "form-error", role: "alert", hidden: true }));
    jsonForm(form, "/users/" + u.id, (f) => ({ password: f.password.value }), () => {
      form.replaceWith(el("span", { class: "done" }, "Password changed"));
    }, "PATCH");
    opener.hidden = true;
    cell.append(form);
    form.elements.password.focus();
  }

  function userActions(u) {
    if (u.id === me) return el("td", { class: "hint" }, "you");  // the server refuses self-demotion anyway
    const cell = el("td", { class: "actions" });
    cell.append(confirmButton(u.is_admin ? "Remove admin" : "Make admin",
      u.is_admin ? "Confirm: remove admin" : "Confirm: make admin", async () => {
        await S.api("/users/" + u.id, { method: "PATCH", json: { admin: !u.is_admin } });
        await loadUsers();
      }));
    const opener = el("button", { type: "button", class: "set-password" }, "Set password");
    opener.addEventListener("click", () => passwordForm(u, cell, opener));
    cell.append(opener, confirmButton("Delete", "Confirm delete", async () => {
      await S.api("/users/" + u.id, { method: "DELETE" });
      await loadUsers();
    }));
    return cell;
  }

  async function loadUsers() {
    const users = await S.api("/users");
    fill("users", users.map((u) => el("tr", { dataset: { userId: u.id, user: u.name } }, el("td", {}, u.name),
      el("td", {}, u.is_admin ? "administrator" : "reader"), el("td", {}, when(u.created_ms, u.created)),
      userActions(u))));
  }

  function showPassword(user) {
    document.querySelectorAll("#new-user .user-name").forEach((n) => { n.textContent = user.name; });
    document.getElementById("new-password").value = user.password;
    document.getElementById("new-user").hidden = false;
    document.getElementById("new-password").focus();
  }

  function hidePassword() {
    document.getElementById("new-password").value = "";
    document.getElementById("new-user").hidden = true;
  }

  function setUpUsers() {
    const form = document.getElementById("user-form");
    const generate = () => {
      form.elements.password.disabled = form.elements.generate.checked;
      if (form.elements.generate.checked) form.elements.password.value = "";
    };
    form.elements.generate.addEventListener("change", generate);
    form.addEventListener("reset", () => setTimeout(generate));
    jsonForm(form, "/users", (f) => Object.assign({ name: f.name.value.trim(), admin: f.admin.checked },
      f.generate.checked ? {} : { password: f.password.value }), (user) => {
      if (user.password) showPassword(user); else hidePassword();
      return loadUsers();
    });
    copyButtons();
    document.getElementById("password-done").addEventListener("click", hidePassword);
    return loadUsers();
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
