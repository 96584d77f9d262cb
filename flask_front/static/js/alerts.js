// /alerts: firing and recent events, the rules, and (administrators) adding and deleting rules.
// Data from /api/v1/alerts/*, /devices and /metrics only; refreshed as often as the evaluator runs.
(function () {
  "use strict";
  const S = window.Sensors;
  const { el } = S;
  const REFRESH_MS = 30000;
  const CONFIRM_MS = 5000;

  const root = document.getElementById("alerts-page");
  const isAdmin = root.dataset.admin === "true";
  const form = document.getElementById("rule-form");
  let units = {};
  let timer = null;

  const when = S.timeNode;
  const fill = S.fillTable;

  function value(v, ruleMetric) {
    const unit = ruleMetric && units[ruleMetric] ? " " + units[ruleMetric] : "";
    return v === null || v === undefined ? "–" : S.formatValue(v) + unit;
  }

  function eventRow(e, metricOf, withState) {
    const cells = [el("td", {}, e.rule), el("td", {}, el("a", { href: "/devices/" + e.device_id }, e.device)),
      el("td", { class: "num" }, value(e.value, metricOf[e.rule_id]))];
    if (withState) {
      return el("tr", { class: e.state === "firing" ? "firing" : null, dataset: { eventId: e.id } },
        el("td", { class: "state-" + e.state }, e.state), ...cells,
        el("td", {}, when(e.fired_ms, e.fired)), el("td", {}, when(e.resolved_ms, e.resolved)));
    }
    return el("tr", { class: "firing", dataset: { eventId: e.id } }, ...cells,
      el("td", {}, when(e.since_ms, e.since)), el("td", {}, when(e.fired_ms, e.fired)));
  }

  function deleteButton(rule) {
    const button = el("button", { type: "button", class: "delete" }, "Delete");
    let armed = null;
    button.addEventListener("click", async () => {
      if (!armed) { // a second click within CONFIRM_MS deletes: no native dialog to dismiss by mistake
        button.textContent = "Confirm delete";
        button.classList.add("danger");
        armed = setTimeout(() => { armed = null; button.textContent = "Delete"; button.classList.remove("danger"); },
          CONFIRM_MS);
        return;
      }
      clearTimeout(armed);
      button.disabled = true;
      try {
        await S.api("/alerts/rules/" + rule.id, { method: "DELETE" });
        button.closest("tr").remove();
        await load();
      } catch (e) {
        button.disabled = false;
        button.textContent = "Failed: " + e.message;
      }
    });
    return button;
  }

  function ruleRow(rule) {
    return el("tr", { dataset: { ruleId: rule.id } }, el("td", {}, rule.name),
      el("td", {}, rule.device_id === null ? "every device" : rule.device),
      el("td", {}, rule.condition), el("td", {}, when(rule.created_ms, rule.created)),
      isAdmin ? el("td", {}, deleteButton(rule)) : null);
  }

  async function load() {
    clearTimeout(timer);
    try {
      const [firing, recent, rules, metrics] = await Promise.all([
        S.api("/alerts/events?state=firing&limit=1000"), S.api("/alerts/events?limit=50"),
        S.api("/alerts/rules"), S.api("/metrics")]);
      units = Object.fromEntries(metrics.map((m) => [m.name, m.unit]));
      const metricOf = Object.fromEntries(rules.map((r) => [r.id, r.metric]));
      fill("firing", firing.map((e) => eventRow(e, metricOf, false)), "firing-empty");
      fill("events", recent.map((e) => eventRow(e, metricOf, true)), "events-empty");
      // Leave the rules alone while a delete waits for its confirmation.
      if (!document.querySelector("#rules button.danger")) fill("rules", rules.map(ruleRow), "rules-empty");
      if (form) await fillChoices(metrics);
      document.getElementById("alerts-updated").textContent = "Updated " + S.formatTime(Date.now());
    } catch (e) {
      document.getElementById("alerts-updated").textContent = "Could not load the alerts: " + e.message;
    }
    timer = setTimeout(load, REFRESH_MS);
  }

  // ---- adding a rule (administrators) ----
  let devicesLoaded = false;

  async function fillChoices(metrics) {
    const metric = form.elements.metric;
    if (!metric.options.length) {
      metric.replaceChildren(...metrics.map((m) => el("option", { value: m.name }, (m.label || m.name) +
        (m.unit ? " (" + m.unit + ")" : ""))));
    }
    if (devicesLoaded) return;
    const devices = await S.api("/devices");
    form.elements.device_id.append(...devices.filter((d) => !d.revoked)
      .map((d) => el("option", { value: d.id }, d.name)));
    devicesLoaded = true;
  }

  function showKind() {
    const nodata = form.elements.kind.value === "nodata";
    form.querySelectorAll("[data-kind=threshold]").forEach((n) => { n.hidden = nodata; });
    form.querySelectorAll("[data-kind=nodata]").forEach((n) => { n.hidden = !nodata; });
  }

  function ruleBody() {
    const f = form.elements;
    const body = { name: f.name.value.trim(), device_id: f.device_id.value ? Number(f.device_id.value) : null };
    if (f.kind.value === "nodata") {
      body.no_data_minutes = Number(f.no_data_minutes.value);
    } else {
      body.metric = f.metric.value;
      body[f.kind.value] = f.threshold.value === "" ? null : Number(f.threshold.value);
      body.duration = f.duration.value.trim() || "0";
      body.hysteresis = f.hysteresis.value === "" ? 0 : Number(f.hysteresis.value);
    }
    return body;
  }

  function errorText(e) {
    const detail = e.body && e.body.detail;
    if (detail && typeof detail === "object") {
      return Object.entries(detail).map(([k, v]) => k + ": " + [].concat(v).join(" ")).join("; ");
    }
    return e.message;
  }

  async function addRule(event) {
    event.preventDefault();
    const error = form.querySelector(".form-error");
    const submit = form.querySelector("button[type=submit]");
    error.hidden = true;
    submit.disabled = true;
    try {
      await S.api("/alerts/rules", { method: "POST", json: ruleBody() });
      form.elements.name.value = "";
      form.elements.threshold.value = "";
      await load();
    } catch (e) {
      error.textContent = errorText(e);
      error.hidden = false;
    } finally {
      submit.disabled = false;
    }
  }

  S.ready(() => {
    if (form) {
      form.elements.kind.addEventListener("change", showKind);
      form.addEventListener("submit", addRule);
      showKind();
    }
    load();
  });
})();
