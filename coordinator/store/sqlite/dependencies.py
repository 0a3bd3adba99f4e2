"""Jobs that wait for other jobs, in the SQLite store (rules: `store.dependencies`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from coordinator.store.base import NewJob, SubmitOutcome
from coordinator.store.dependencies import UNSUCCESSFUL, settle, start
from coordinator.store.dependencies import resolve_after as resolve
from coordinator.store.sqlite.rows import id_list, job_from_row
from coordinator.store.sqlite.tx import Tx


def link_new_jobs(tx: Tx, jobs: Sequence[NewJob], outcomes: list[SubmitOutcome]) -> None:
    """Give the jobs just created with `after` their dependencies (in place: their
    outcomes are read back). A job whose dependency already failed starts cancelled."""
    ids = [outcome.job.id for outcome in outcomes]
    for index, (job, outcome) in enumerate(zip(jobs, outcomes, strict=True)):
        if not job.after or not outcome.created:
            continue
        after = resolve(job.after, ids)
        found = tx.all("dependency_states", {"ids": id_list(after)})
        decision = start(index, after, {row["id"]: row["state"] for row in found})
        job_id = outcome.job.id
        tx.run("set_after", {"job_id": job_id, "after_ids": id_list(after)})
        if decision.error is not None:
            params = {"job_id": job_id, "error": decision.error, "now": tx.now}
            tx.run("cancel_dependants", params)
            tx.changes.done.append(job_id)
        elif decision.pending:
            tx.many(
                "insert_dependencies",
                ({"after_id": after_id, "job_id": job_id} for after_id in decision.pending),
            )
            tx.run("set_waiting_on", {"job_id": job_id, "waiting_on": len(decision.pending)})
        else:
            tx.changes.ops.append(job.op)
            outcomes[index] = replace(outcome, job=replace(outcome.job, after=tuple(after)))
            continue
        row = tx.one("get_job", {"id": job_id})
        outcomes[index] = SubmitOutcome(job=job_from_row(row), created=True)


def settle_dependants(tx: Tx) -> None:
    """Settle the dependants of every job this transaction ended (`changes.done`),
    and theirs in turn, before it commits."""
    done = tx.changes.done
    seen = 0
    while seen < len(done):
        ended = set(done[seen:])
        seen = len(done)
        links = tx.all("take_dependency_links", {"ids": id_list(ended)})
        if not links:
            continue
        for job_id in {row["job_id"] for row in links if row["job_id"] in ended}:
            tx.run("clear_waiting_on", {"job_id": job_id})
        outgoing = [(row["after_id"], row["job_id"]) for row in links if row["job_id"] not in ended]
        if not outgoing:
            continue
        found = tx.all("dependency_states", {"ids": id_list({after for after, _ in outgoing})})
        outcome = settle(outgoing, {row["id"]: row["state"] for row in found})
        for job_id, error in outcome.cancel.items():
            params = {"job_id": job_id, "error": error, "now": tx.now}
            if tx.one("cancel_dependants", params) is not None:
                done.append(job_id)
        for job_id, count in outcome.release.items():
            row = tx.one("release_dependants", {"job_id": job_id, "n": count})
            if row is not None and row["waiting_on"] == 0:
                tx.changes.ops.append(row["op"])


def pending_dependencies(tx: Tx, job_id: str) -> list[tuple[str, str]]:
    """(id, state) of the jobs `job_id` still waits for."""
    rows = tx.all("pending_dependencies", {"job_id": job_id})
    return [(row["id"], row["state"]) for row in rows if row["state"] not in UNSUCCESSFUL]
