// The schedules panel: each schedule's timing, next run and last job, with pause and
// resume for a token that may act (signin.js's canAct(); the coordinator checks anyway).
// Loaded after dashboard.js, whose refresh() calls Schedules.refresh() on every poll
// and whose api(), el(), badge(), ago() and jobLink() it uses. A coordinator without
// schedules answers GET /v1/schedules with 404: the panel then stays hidden.
"use strict";

const Schedules = (() => {
  const panel = () => document.getElementById("schedules-panel");

  function every(seconds) {
    for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
      if (seconds % size === 0) return `every ${seconds / size}${unit}`;
    }
    return `every ${seconds}s`;
  }

  function timing(schedule) {
    if (schedule.cron) return el("code", {}, schedule.cron);
    return Number.isInteger(schedule.every_s) ? every(schedule.every_s) : "–";
  }

  function nextRun(schedule) {
    if (schedule.paused || !schedule.next_run_at) return "–";
    return el("span", { title: schedule.next_run_at }, ago(schedule.next_run_at));
  }

  function actions(schedule) {
    if (!canAct()) return null;
    const [action, label] = schedule.paused ? ["resume", "Resume"] : ["pause", "Pause"];
    return el("td", { class: "acts" }, el("div", { class: "actions" },
      el("button", { type: "button", "data-action": action, onclick: () => setPaused(schedule) }, label)));
  }

  function draw(schedules) {
    const table = document.getElementById("schedules");
    document.getElementById("schedules-empty").hidden = schedules.length > 0;
    table.hidden = schedules.length === 0;
    const sorted = [...schedules].sort((a, b) => a.name.localeCompare(b.name));
    table.tBodies[0].replaceChildren(...sorted.map((schedule) => el("tr", { "data-schedule": schedule.name },
      el("td", {}, el("strong", {}, schedule.name)),
      el("td", {}, timing(schedule)),
      el("td", {}, schedule.timezone || "UTC"),
      el("td", { class: "nowrap" }, nextRun(schedule)),
      el("td", {}, schedule.last_job_id ? jobLink(schedule.last_job_id) : "–"),
      el("td", {}, schedule.paused ? badge("paused") : badge("active")),
      actions(schedule))));
  }

  // PUT the schedule as it is, with `paused` flipped (the contract has no PATCH).
  async function setPaused(schedule) {
    if (!canAct()) return;
    const body = { timezone: schedule.timezone, job: schedule.job, paused: !schedule.paused };
    if (schedule.cron) body.cron = schedule.cron;
    else body.every_s = schedule.every_s;
    const verb = body.paused ? "paused" : "resumed";
    try {
      await api("PUT", `/v1/schedules/${encodeURIComponent(schedule.name)}`, body);
      toast(`${schedule.name}: ${verb}`);
      await refresh();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 401)) toast(`${schedule.name}: ${error.message}`, true);
    }
  }

  async function refreshSchedules() {
    let listed;
    try {
      listed = await api("GET", "/v1/schedules");
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        panel().hidden = true; // a coordinator without schedules
        return;
      }
      if (error instanceof ApiError && error.status === 401) throw error; // asking for a token
      // The rest of the page is still good: say what went wrong here, keep the last list.
      problem(`Cannot read the schedules: ${error.message}`);
      if (error instanceof ApiError) panel().hidden = false;
      return;
    }
    problem("");
    draw(listed.schedules || []);
    panel().hidden = false;
  }

  function problem(text) {
    const node = document.getElementById("schedules-error");
    node.textContent = text;
    node.hidden = !text;
  }

  return { refresh: refreshSchedules };
})();
