// The limits panel: each fleet-wide limit's jobs running against its max_running, the
// rate its jobs started at (over the last 10 s, measured by the coordinators) against
// its per_second, and the jobs it holds back right now. Loaded after dashboard.js, whose
// refresh() calls Limits.refresh() on every poll and whose api() and el() it uses. A
// coordinator without limits answers GET /v1/limits with 404: the panel stays hidden.
"use strict";

const Limits = (() => {
  const panel = () => document.getElementById("limits-panel");

  function number(value) {
    return Number.isInteger(value) ? String(value) : value.toFixed(value < 10 ? 2 : 1).replace(/\.?0+$/, "");
  }

  // "2 of 2" with a meter that fills as the limit does; "3" when it has no cap.
  function use(value, cap, unit) {
    const text = `${number(value)}${unit}`;
    if (cap === null || cap === undefined) return el("span", { class: "use" }, text, el("small", {}, " no cap"));
    const full = value >= cap;
    const max = Math.max(cap, 1e-9); // a cap of 0 is a full meter, not an empty one
    return el("span", { class: full ? "use full" : "use" },
      el("meter", { min: 0, max, value: full ? max : value }),
      ` ${text} of ${number(cap)}${unit}`);
  }

  function draw(limits) {
    const table = document.getElementById("limits");
    document.getElementById("limits-empty").hidden = limits.length > 0;
    table.hidden = limits.length === 0;
    const sorted = [...limits].sort((a, b) => a.name.localeCompare(b.name));
    table.tBodies[0].replaceChildren(...sorted.map((limit) => el("tr", { "data-limit": limit.name },
      el("td", {}, el("strong", { class: "mono" }, limit.name)),
      el("td", { class: "running nowrap" }, use(limit.running, limit.max_running, "")),
      el("td", { class: "rate nowrap" }, use(limit.starts_per_second ?? 0, limit.per_second, "/s")),
      el("td", { class: "num" }, limit.per_second === null ? "–" : `${number(limit.tokens)} of ${limit.burst}`),
      el("td", { class: "num held" }, limit.held_back ?? 0))));
  }

  async function refreshLimits() {
    let listed;
    try {
      listed = await api("GET", "/v1/limits");
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        panel().hidden = true; // a coordinator without limits
        return;
      }
      if (error instanceof ApiError && error.status === 401) throw error; // asking for a token
      // The rest of the page is still good: say what went wrong here, keep the last list.
      problem(`Cannot read the limits: ${error.message}`);
      if (error instanceof ApiError) panel().hidden = false;
      return;
    }
    problem("");
    draw(listed.limits || []);
    panel().hidden = false;
  }

  function problem(text) {
    const node = document.getElementById("limits-error");
    node.textContent = text;
    node.hidden = !text;
  }

  return { refresh: refreshLimits };
})();
