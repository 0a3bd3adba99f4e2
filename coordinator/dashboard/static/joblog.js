// The job view's log pane and attempts: what the open job did, live.
// Loaded after dashboard.js, whose `api()` it calls (same token, same errors). It
// watches the job drawer (#job-detail) itself, so dashboard.js needs no hook: when the
// drawer shows a job, this follows that job's log lines (GET /v1/jobs/{id}/logs with
// wait_ms, a cursor at a time) and lists its attempts, until the drawer closes, shows
// another job, or the job has ended and its last lines are in.
"use strict";

const JobLog = (() => {
  const WAIT_MS = 10000;
  const MAX_SHOWN = 5000; // lines kept on the page; older ones leave the top
  const RETRY_MS = 2000;
  let following = null; // {id, generation}
  let generation = 0;

  const node = (tag, cls, text) => {
    const element = document.createElement(tag);
    if (cls) element.className = cls;
    if (text !== undefined) element.textContent = text;
    return element;
  };

  const pane = node("section", "joblog");
  pane.id = "job-log";
  pane.hidden = true;
  const attemptsTitle = node("h3", "", "Attempts");
  const attempts = node("table", "grid joblog-attempts");
  attempts.id = "job-attempts";
  const logTitle = node("h3", "", "Log");
  const status = node("span", "joblog-status", "");
  status.id = "job-log-status";
  logTitle.append(" ", status);
  const lines = node("ol", "joblog-lines mono");
  lines.id = "job-log-lines";
  pane.append(attemptsTitle, attempts, logTitle, lines);

  function drawer() { return document.getElementById("job-detail"); }

  function shownJobId() {
    const aside = drawer();
    if (!aside || aside.hidden) return null;
    const title = document.getElementById("detail-title");
    const id = title ? title.textContent.trim() : "";
    return id && id !== "Job" ? id : null;
  }

  function place() {
    const aside = drawer();
    if (aside && pane.parentNode !== aside) {
      const fields = document.getElementById("detail-fields");
      if (fields && fields.nextSibling) aside.insertBefore(pane, fields.nextSibling);
      else aside.append(pane);
    }
  }

  // A time of day, the full moment on hover: the drawer is narrow.
  function time(timestamp) {
    const cell = node("td", "nowrap", "–");
    const moment = timestamp ? new Date(timestamp) : null;
    if (moment && !Number.isNaN(moment.getTime())) {
      cell.textContent = moment.toLocaleTimeString();
      cell.title = timestamp;
    }
    return cell;
  }

  function showAttempts(list) {
    const head = node("tr");
    for (const name of ["#", "bot", "started", "ended", "outcome", "error"]) head.append(node("th", "", name));
    const rows = list.map((attempt) => {
      const row = node("tr");
      row.append(
        node("td", "num", String(attempt.attempt)),
        node("td", "mono", attempt.bot_id),
        time(attempt.started_at),
        time(attempt.ended_at),
      );
      const outcomeCell = node("td");
      outcomeCell.append(node("span", `badge ${attempt.outcome || "running"}`, attempt.outcome || "running"));
      row.append(outcomeCell, node("td", "error", attempt.error || ""));
      return row;
    });
    const body = node("tbody");
    body.append(...rows);
    const headRow = node("thead");
    headRow.append(head);
    attempts.replaceChildren(headRow, body);
    attemptsTitle.hidden = list.length === 0;
    attempts.hidden = list.length === 0;
  }

  function appendLines(page) {
    for (const line of page.lines) {
      const item = node("li", `joblog-line ${line.level}`);
      item.dataset.seq = String(line.seq);
      item.title = `${line.ts} · attempt ${line.attempt}`;
      item.append(node("span", "joblog-attempt", `#${line.attempt}`), node("span", "joblog-text", line.text));
      lines.append(item);
    }
    while (lines.childElementCount > MAX_SHOWN) lines.firstElementChild.remove();
    if (page.lines.length) lines.lastElementChild.scrollIntoView({ block: "nearest" });
  }

  async function refreshAttempts(id, mine) {
    try {
      const answer = await api("GET", `/v1/jobs/${encodeURIComponent(id)}/attempts`);
      if (mine === generation) showAttempts(answer.attempts);
    } catch (_) { /* the drawer says what is wrong with the job */ }
  }

  async function follow(id, mine) {
    let after = 0;
    let attemptsSeen = -1;
    while (mine === generation) {
      let page;
      try {
        page = await api("GET", `/v1/jobs/${encodeURIComponent(id)}/logs?after=${after}&wait_ms=${WAIT_MS}`);
      } catch (error) {
        if (mine !== generation) return;
        if (error.status === 404 || error.status === 401 || error.status === 403) {
          status.textContent = error.status === 404 ? "" : "not allowed";
          return;
        }
        status.textContent = "reconnecting…";
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
        continue;
      }
      if (mine !== generation) return;
      appendLines(page);
      after = page.next_after;
      const latest = page.lines.length ? page.lines[page.lines.length - 1].attempt : attemptsSeen;
      if (latest !== attemptsSeen || page.done || page.state !== "running") {
        attemptsSeen = latest;
        refreshAttempts(id, mine);
      }
      status.textContent = page.done ? `${page.state}: complete` : `${page.state}: live`;
      status.className = `joblog-status ${page.done ? "done" : "live"}`;
      if (page.done && page.lines.length === 0) return;
    }
  }

  function sync() {
    place();
    const id = shownJobId();
    if (id === (following && following.id)) return;
    generation += 1;
    following = id ? { id, generation } : null;
    lines.replaceChildren();
    attempts.replaceChildren();
    status.textContent = "";
    pane.hidden = !id;
    if (id) {
      refreshAttempts(id, generation);
      follow(id, generation);
    }
  }

  function start() {
    const aside = drawer();
    if (!aside) return;
    place();
    const observer = new MutationObserver(sync);
    observer.observe(aside, { attributes: true, attributeFilter: ["hidden"] });
    const title = document.getElementById("detail-title");
    if (title) observer.observe(title, { childList: true, characterData: true, subtree: true });
    sync();
  }

  start();
  return { sync };
})();
