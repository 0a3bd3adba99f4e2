// Labels and why a job waits: the bots' labels as chips, a job's required labels and
// limits, and its `waiting_for` with the job ids in it made links to those jobs.
// Loaded before dashboard.js; its functions are called from there (el, jobLink) once
// everything has loaded.
"use strict";

const JOB_ID = /\bjob_[0-9a-f]+\b/g;

function chip(text) {
  return el("span", { class: "chip mono" }, text);
}

// A bot's labels, {gpu: "a100"} -> [gpu=a100]; "–" for none.
function labelChips(labels) {
  const entries = Object.entries(labels || {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return "–";
  return el("span", { class: "chips" }, entries.map(([key, value]) => chip(`${key}=${value}`)));
}

// A job's requirements, {gpu: ["a100", "h100"]} -> [gpu=a100|h100] (one of the values).
function requirementChips(requires) {
  const entries = Object.entries(requires || {}).sort(([a], [b]) => a.localeCompare(b));
  if (entries.length === 0) return null;
  return el("span", { class: "chips" },
    entries.map(([key, values]) => chip(`${key}=${[].concat(values).join("|")}`)));
}

// "waiting for job_… (running)": the text as sent, each job id in it a link to that job.
function waitingFor(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(JOB_ID)) {
    parts.push(text.slice(last, match.index), jobLink(match[0]));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return el("span", { class: "waiting", id: "detail-waiting" }, parts);
}

// The job view's fields for labels and waiting, to go after its state.
function controlFields(job) {
  const fields = [];
  if (job.state === "queued" && job.waiting_for) fields.push(["waiting for", waitingFor(job.waiting_for)]);
  const requires = requirementChips(job.requires);
  if (requires) fields.push(["requires", requires]);
  if ((job.limits || []).length > 0) fields.push(["limits", el("span", { class: "chips" }, job.limits.map(chip))]);
  return fields;
}
