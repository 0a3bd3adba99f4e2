// The botfleet dashboard: polls the operator API and draws what it gets.
// Plain browser JavaScript, no build step and nothing loaded from elsewhere; signin.js
// (loaded first) holds the token and the role.
"use strict";

const POLL_MS = 1500;
const CHART_WINDOW_MS = 10 * 60 * 1000;
const RATE_WINDOW_MS = 5000;
const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const BOT_ACTIONS = {
  pause: { body: { assignment: { paused: true } } },
  resume: { body: { assignment: { paused: false } } },
  drain: { body: { command: "drain" }, confirm: "Drain bot %s? It finishes its jobs, then stops." },
  quarantine: { body: { command: "quarantine" }, confirm: "Quarantine bot %s? It stops taking jobs." },
  release: { body: { command: "release" } },
  revoke: {
    method: "POST", suffix: "/revoke",
    confirm: "Revoke bot %s? Its token stops working at once, its jobs go back to the queue, "
      + "and it cannot register again until allowed.",
  },
  allow: { method: "POST", suffix: "/allow" },
  forget: { method: "DELETE", suffix: "", confirm: "Forget bot %s? Its jobs keep its id." },
};

const view = {
  jobFilter: "",
  openJobId: null,
  samples: [], // {t, succeeded, failed}: totals from /v1/stats, for the throughput chart
  timer: null,
};

// ------------------------------------------------------------------ helpers

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(state, extra) {
  return el("span", { class: `badge ${state}` }, extra || state);
}

function ago(timestamp) {
  if (!timestamp) return "–";
  const seconds = (Date.now() - Date.parse(timestamp)) / 1000;
  if (!Number.isFinite(seconds)) return timestamp;
  const abs = Math.abs(seconds);
  const text = abs < 60 ? `${Math.round(abs)}s`
    : abs < 3600 ? `${Math.round(abs / 60)}m`
    : abs < 86400 ? `${(abs / 3600).toFixed(1)}h` : `${(abs / 86400).toFixed(1)}d`;
  return seconds < 0 ? `in ${text}` : `${text} ago`;
}

function short(text, width = 90) {
  text = String(text).replace(/\s+/g, " ");
  return text.length <= width ? text : `${text.slice(0, width - 1)}…`;
}

function outcome(job) {
  if (job.error) return short(job.error);
  if (job.result !== null && job.result !== undefined) return short(JSON.stringify(job.result));
  if (job.state === "queued" && job.waiting_for) return short(job.waiting_for);
  if (job.progress !== null && job.progress !== undefined) return `${Math.round(job.progress * 100)}%`;
  return "";
}

// The attempts charged against max_attempts. `attempt` is the fencing number (lost claims
// and retries raise it too); a coordinator older than `attempts_used` sends only that.
function attemptsUsed(job) {
  return Number.isInteger(job.attempts_used) ? job.attempts_used : job.attempt;
}

function attemptsDetail(job) {
  const used = attemptsUsed(job);
  const text = `${used} of ${job.max_attempts}`;
  return used === job.attempt ? text : `${text} (attempt #${job.attempt})`;
}

function toast(text, bad) {
  const node = $("toast");
  node.textContent = text;
  node.className = bad ? "toast bad" : "toast";
  node.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { node.hidden = true; }, 3500);
}

// ------------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (!response.ok) {
    const error = (data && data.error) || { code: "http_error", message: text.slice(0, 200) };
    if (response.status === 401) askForToken(`The coordinator refused the token: ${error.message}`);
    throw new ApiError(response.status, error.code, error.message);
  }
  return data;
}

// ------------------------------------------------------------------ polling

function setLive(kind, text) {
  const node = $("live");
  node.className = `live ${kind}`;
  node.textContent = text;
}

function stopPolling() {
  clearTimeout(view.timer);
  view.timer = null;
}

function startPolling() {
  stopPolling();
  poll();
}

async function poll() {
  try {
    await refresh();
    setLive("ok", `live · updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return; // asking for the token
    setLive("bad", `cannot reach the coordinator (${error.message}); retrying`);
  }
  if (token()) view.timer = setTimeout(poll, POLL_MS);
}

async function refresh() {
  const filter = view.jobFilter ? `&state=${encodeURIComponent(view.jobFilter)}` : "";
  const [stats, bots, jobs, failures] = await Promise.all([
    api("GET", "/v1/stats"),
    api("GET", "/v1/bots"),
    api("GET", `/v1/jobs?limit=25${filter}`),
    api("GET", "/v1/jobs?state=failed&limit=10"),
    typeof Schedules === "undefined" ? null : Schedules.refresh(), // schedules.js draws them
    typeof Limits === "undefined" ? null : Limits.refresh(), // limits.js draws them
  ]);
  showStats(stats);
  showBots(bots.bots);
  showJobs(jobs.jobs);
  showFailures(failures.jobs);
  if (view.openJobId) await showJob(view.openJobId, { quiet: true });
}

// ------------------------------------------------------------------ counts and chart

function showStats(stats) {
  for (const state of STATES) $(`count-${state}`).textContent = stats.jobs[state] ?? 0;
  $("count-bots").textContent = stats.bots.online ?? 0;
  $("rate").textContent = stats.throughput.per_second.toFixed(1);
  const now = Date.now();
  view.samples.push({
    t: now, succeeded: stats.jobs.succeeded ?? 0, failed: stats.jobs.failed ?? 0,
  });
  while (view.samples.length > 2 && view.samples[0].t < now - CHART_WINDOW_MS) view.samples.shift();
  drawChart();
}

function rates() {
  // Each point: jobs finished per second over the ~5 s before it (smooths the polling jitter).
  const points = [];
  let j = 0;
  for (let i = 1; i < view.samples.length; i++) {
    const b = view.samples[i];
    while (j < i - 1 && view.samples[j + 1].t <= b.t - RATE_WINDOW_MS) j++;
    const a = view.samples[j];
    const seconds = (b.t - a.t) / 1000;
    const ok = b.succeeded - a.succeeded;
    const bad = b.failed - a.failed;
    // A drop means the counts restarted (another coordinator, a wiped store): skip it.
    if (seconds <= 0 || ok < 0 || bad < 0) continue;
    points.push({ t: b.t, ok: ok / seconds, bad: bad / seconds });
  }
  return points;
}

function chartSpan(now) {
  // From when the page opened, at least a minute, at most CHART_WINDOW_MS.
  const first = view.samples.length ? view.samples[0].t : now;
  const minutes = Math.ceil((now - first) / 60000);
  return Math.min(CHART_WINDOW_MS, Math.max(1, minutes) * 60000);
}

function spanLabel(ms) {
  return ms >= 60000 ? `-${Math.round(ms / 60000)}m` : `-${Math.round(ms / 1000)}s`;
}

function drawChart() {
  // Drawn at the panel's own pixel size, so text is never stretched.
  const width = Math.max(320, $("chart").clientWidth || 1000);
  const height = 180;
  const pad = { left: 44, right: 12, top: 12, bottom: 22 };
  const points = rates();
  const now = Date.now();
  const span = chartSpan(now);
  const start = now - span;
  const top = niceMax(Math.max(1, ...points.map((p) => Math.max(p.ok, p.bad))));
  const x = (t) => pad.left + ((t - start) / span) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (v / top) * (height - pad.top - pad.bottom);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "jobs finished per second");
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (let i = 0; i <= 4; i++) {
    const value = (top / 4) * i;
    add("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: y(value), y2: y(value) });
    add("text", { class: "tick", x: pad.left - 6, y: y(value) + 4, "text-anchor": "end" },
      String(Number(value.toFixed(2))));
  }
  for (let i = 0; i <= 5; i++) {
    const back = (span / 5) * (5 - i);
    add("text", {
      class: "tick", x: x(now - back), y: height - 6,
      "text-anchor": i === 0 ? "start" : i === 5 ? "end" : "middle",
    }, back === 0 ? "now" : spanLabel(back));
  }
  const visible = points.filter((p) => p.t >= start);
  if (visible.length > 0) {
    const line = (key) => visible.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(" ");
    const first = x(visible[0].t).toFixed(1);
    const last = x(visible[visible.length - 1].t).toFixed(1);
    add("polygon", { class: "ok-area", points: `${first},${y(0)} ${line("ok")} ${last},${y(0)}` });
    add("polyline", { class: "ok", points: line("ok") });
    add("polyline", { class: "bad", points: line("bad") });
  }
  add("text", { class: "legend", x: width - pad.right, y: pad.top + 2, "text-anchor": "end",
    fill: "var(--succeeded)" }, "succeeded/s");
  add("text", { class: "legend", x: width - pad.right - 80, y: pad.top + 2, "text-anchor": "end",
    fill: "var(--failed)" }, "failed/s");
  $("chart").replaceChildren(svg);
}

function niceMax(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) if (step * magnitude >= value) return step * magnitude;
  return 10 * magnitude;
}

// ------------------------------------------------------------------ bots

function showBots(bots) {
  $("bots-empty").hidden = bots.length > 0;
  $("bots").hidden = bots.length === 0;
  bots.sort((a, b) => (a.state === b.state ? a.name.localeCompare(b.name) : a.state === "online" ? -1 : 1));
  const rows = bots.map((bot) => {
    const assignment = bot.assignment || { operations: [], max_concurrency: 0, paused: false };
    const ops = assignment.operations.length ? assignment.operations.join(", ") : "all";
    const online = bot.state === "online";
    return el("tr", { "data-bot": bot.id },
      el("td", {}, el("strong", {}, bot.name)),
      el("td", { class: "mono" }, bot.id),
      el("td", {}, bot.revoked_at ? badge("revoked") : badge(bot.state),
        bot.lifecycle && bot.lifecycle !== bot.state ? el("span", { class: "sub" }, bot.lifecycle) : null,
        assignment.paused ? [" ", badge("paused")] : null),
      el("td", { class: "nowrap", title: bot.last_heartbeat || "" }, ago(bot.last_heartbeat)),
      el("td", { class: "num" }, bot.running.length,
        // Prefetched, not started: held apart from running (older coordinators send none).
        (bot.held || []).length ? el("span", { class: "sub" }, ` +${bot.held.length} held`) : null),
      el("td", {}, `${ops} × ${assignment.max_concurrency}`),
      el("td", { class: "labels" }, labelChips(bot.labels)),
      el("td", {}, bot.pending_command || "–"),
      canAct() ? botActions(bot, assignment, online) : null);
  });
  $("bots").tBodies[0].replaceChildren(...rows);
}

function botActions(bot, assignment, online) {
  // A revoked bot can only be allowed again (forgetting it would free its bot_key).
  if (bot.revoked_at) {
    return el("td", { class: "acts" }, el("div", { class: "actions" },
      actionButton(bot, "allow", "Allow")));
  }
  return el("td", { class: "acts" }, el("div", { class: "actions" },
    assignment.paused
      ? actionButton(bot, "resume", "Resume")
      : actionButton(bot, "pause", "Pause"),
    actionButton(bot, "drain", "Drain", !online),
    bot.lifecycle === "quarantined" || bot.pending_command === "quarantine"
      ? actionButton(bot, "release", "Release")
      : actionButton(bot, "quarantine", "Quarantine", !online),
    actionButton(bot, "revoke", "Revoke", false, "danger"),
    online ? null : actionButton(bot, "forget", "Forget", false, "danger")));
}

function actionButton(bot, action, label, disabled, kind) {
  return el("button", {
    type: "button", disabled: Boolean(disabled), "data-action": action, class: kind,
    onclick: () => botAction(bot, action),
  }, label);
}

async function botAction(bot, action) {
  if (!canAct()) return;
  const spec = BOT_ACTIONS[action];
  if (spec.confirm && !window.confirm(spec.confirm.replace("%s", bot.name))) return;
  try {
    const path = `/v1/bots/${encodeURIComponent(bot.id)}${spec.suffix || ""}`;
    await api(spec.method || "PATCH", path, spec.body);
    toast(`${bot.name}: ${action} sent`);
    await refresh();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) toast(`${bot.name}: ${error.message}`, true);
  }
}

// ------------------------------------------------------------------ jobs

function jobLink(id) {
  return el("a", {
    class: "job mono", href: `#job=${encodeURIComponent(id)}`,
    onclick: (event) => { event.preventDefault(); openJob(id); },
  }, id);
}

function showJobs(jobs) {
  $("jobs-empty").hidden = jobs.length > 0;
  const rows = jobs.map((job) => el("tr", { onclick: () => openJob(job.id) },
    el("td", {}, jobLink(job.id)),
    el("td", {}, job.op),
    el("td", {}, badge(job.state)),
    el("td", { class: "num" }, `${attemptsUsed(job)}/${job.max_attempts}`),
    el("td", { class: "nowrap", title: job.created_at }, ago(job.created_at)),
    el("td", { class: "clip", title: outcome(job) }, outcome(job))));
  $("jobs").tBodies[0].replaceChildren(...rows);
}

function showFailures(jobs) {
  $("failures-empty").hidden = jobs.length > 0;
  $("failures").replaceChildren(...jobs.map((job) => el("li", {},
    jobLink(job.id), " ", el("span", { class: "sub" }, `${job.op} · ${ago(job.finished_at)}`),
    el("span", { class: "error" }, job.error || "(no error text)"))));
}

document.querySelectorAll("#job-tabs button").forEach((button) => {
  button.addEventListener("click", () => {
    view.jobFilter = button.dataset.state;
    document.querySelectorAll("#job-tabs button").forEach((b) => b.classList.toggle("active", b === button));
    refresh().catch((error) => toast(error.message, true));
  });
});

// ------------------------------------------------------------------ one job

function openJob(id) {
  view.openJobId = id;
  history.replaceState(null, "", `#job=${encodeURIComponent(id)}`);
  $("detail-message").hidden = true;
  showJob(id, { quiet: false });
}

function closeJob() {
  view.openJobId = null;
  $("job-detail").hidden = true;
  history.replaceState(null, "", location.pathname);
}

async function showJob(id, { quiet }) {
  let job;
  try {
    job = await api("GET", `/v1/jobs/${encodeURIComponent(id)}`);
  } catch (error) {
    if (quiet || (error instanceof ApiError && error.status === 401)) return;
    $("detail-title").textContent = id;
    $("detail-fields").replaceChildren();
    $("detail-cancel").disabled = true;
    $("detail-retry").disabled = true;
    message(error.status === 404 ? `No job ${id}.` : error.message, true);
    $("job-detail").hidden = false;
    return;
  }
  if (view.openJobId !== id) return;
  const json = (value) => el("pre", { class: "mono" }, JSON.stringify(value, null, 2));
  const fields = [
    ["state", badge(job.state)],
    ...controlFields(job),
    ["op", job.op],
    ["attempts", attemptsDetail(job)],
    ["priority", job.priority ?? 0],
    ["payload", json(job.payload)],
  ];
  if (job.result !== null && job.result !== undefined) fields.push(["result", json(job.result)]);
  if (job.error) fields.push(["error", el("span", { class: "error" }, job.error)]);
  if (job.progress !== null && job.progress !== undefined) {
    fields.push(["progress", `${Math.round(job.progress * 100)}% ${job.progress_message || ""}`]);
  }
  fields.push(["bot", job.bot_id || "–"]);
  for (const [label, key] of [["created", "created_at"], ["run at", "run_at"], ["started", "started_at"],
    ["finished", "finished_at"], ["lease until", "lease_until"]]) {
    if (job[key]) fields.push([label, `${job[key]} (${ago(job[key])})`]);
  }
  if (job.idempotency_key) fields.push(["idempotency key", job.idempotency_key]);
  $("detail-title").replaceChildren(el("span", { class: "mono" }, job.id));
  $("detail-fields").replaceChildren(...fields.flatMap(([label, value]) => [el("dt", {}, label), el("dd", {}, value)]));
  $("detail-cancel").disabled = !(job.state === "queued" || job.state === "running");
  $("detail-retry").disabled = !(job.state === "failed" || job.state === "cancelled");
  $("job-detail").hidden = false;
}

function message(text, bad) {
  const node = $("detail-message");
  node.textContent = text;
  node.className = bad ? "message error" : "message";
  node.hidden = false;
}

async function jobAction(action) {
  const id = view.openJobId;
  if (!id || !canAct()) return;
  if (action === "cancel" && !window.confirm(`Cancel job ${id}?`)) return;
  try {
    const job = await api("POST", `/v1/jobs/${encodeURIComponent(id)}/${action}`);
    message(`${action === "cancel" ? "Cancelled" : "Queued again"}: now ${job.state}.`, false);
    await showJob(id, { quiet: true });
    await refresh();
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) message(error.message, true);
  }
}

$("detail-close").addEventListener("click", closeJob);
$("detail-cancel").addEventListener("click", () => jobAction("cancel"));
$("detail-retry").addEventListener("click", () => jobAction("retry"));
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && view.openJobId) closeJob();
});
$("find-job").addEventListener("submit", (event) => {
  event.preventDefault();
  const id = $("find-job-id").value.trim();
  if (id) openJob(id);
});

// ------------------------------------------------------------------ start

function start() {
  wireSignIn();
  takeTokenFromAddress();
  drawChart();
  const match = /^#job=(.+)$/.exec(location.hash);
  if (match) view.openJobId = decodeURIComponent(match[1]);
  if (token()) signIn();
  else askForToken("");
}

start();
