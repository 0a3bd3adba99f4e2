"""Jobs that wait for other jobs, in the PostgreSQL store (rules: `store.dependencies`).

A submit reads its dependencies' states under FOR SHARE, and a dependency's end updates
its row first: so either the submit sees the end, or the end's settlement (a later
statement of its transaction) sees the submit's links.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from coordinator.store.base import NewJob, SubmitOutcome
from coordinator.store.dependencies import UNSUCCESSFUL, settle, start
from coordinator.store.dependencies import resolve_after as resolve
from coordinator.store.postgres.notify import encode_notices
from coordinator.store.postgres.rows import job_from_row
from coordinator.store.postgres.tx import Tx


async def link_new_jobs(tx: Tx, jobs: Sequence[NewJob], outcomes: list[SubmitOutcome]) -> None:
    """Give the jobs just created with `after` their dependencies (in place: their
    outcomes are read back). A job whose dependency already failed starts cancelled."""
    ids = [outcome.job.id for outcome in outcomes]
    for index, (job, outcome) in enumerate(zip(jobs, outcomes, strict=True)):
        if not job.after or not outcome.created:
            continue
        after = resolve(job.after, ids)
        found = await tx.fetch("dependency_states_locked", after)
        decision = start(index, after, {row["id"]: row["state"] for row in found})
        job_id = outcome.job.id
        await tx.execute("set_after", job_id, after)
        if decision.error is not None:
            await tx.fetch("cancel_dependants", [job_id], [decision.error], tx.now)
            tx.changes.done.append(job_id)
        elif decision.pending:
            pending = list(decision.pending)
            await tx.execute("insert_dependencies", pending, [job_id] * len(pending))
            await tx.execute("set_waiting_on", [job_id], [len(pending)])
        else:
            tx.changes.ops.append(job.op)
            outcomes[index] = replace(outcome, job=replace(outcome.job, after=tuple(after)))
            continue
        row = await tx.fetchrow("get_job", job_id)
        outcomes[index] = SubmitOutcome(job=job_from_row(row), created=True)


async def settle_dependants(tx: Tx) -> None:
    """Settle the dependants of every job this transaction ended (`changes.done`),
    and theirs in turn, before it commits; notices for what that changed are sent
    here when the verb sent its own already."""
    changes = tx.changes
    first_op, first_done = len(changes.ops), len(changes.done)
    seen = 0
    while seen < len(changes.done):
        ended = set(changes.done[seen:])
        seen = len(changes.done)
        links = await tx.fetch("take_dependency_links", sorted(ended))
        if not links:
            continue
        own = sorted({row["job_id"] for row in links if row["job_id"] in ended})
        if own:
            await tx.execute("clear_waiting_on", own)
        outgoing = [(row["after_id"], row["job_id"]) for row in links if row["job_id"] not in ended]
        if not outgoing:
            continue
        found = await tx.fetch("dependency_states", sorted({after for after, _ in outgoing}))
        outcome = settle(outgoing, {row["id"]: row["state"] for row in found})
        if outcome.cancel:
            cancel = sorted(outcome.cancel)
            errors = [outcome.cancel[job_id] for job_id in cancel]
            rows = await tx.fetch("cancel_dependants", cancel, errors, tx.now)
            changes.done.extend(row["id"] for row in rows)
        if outcome.release:
            release = sorted(outcome.release)
            counts = [outcome.release[job_id] for job_id in release]
            rows = await tx.fetch("release_dependants", release, counts)
            changes.ops.extend(row["op"] for row in rows if row["waiting_on"] == 0)
    if changes.notified:
        ops, done = changes.ops[first_op:], changes.done[first_done:]
        for payload in encode_notices(tx.origin, ops, done, len(ops)):
            await tx.execute("notify", tx.channel, payload)


async def pending_dependencies(tx: Tx, job_id: str) -> list[tuple[str, str]]:
    """(id, state) of the jobs `job_id` still waits for."""
    rows = await tx.fetch("pending_dependencies", job_id)
    return [(row["id"], row["state"]) for row in rows if row["state"] not in UNSUCCESSFUL]
