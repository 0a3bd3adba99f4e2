"""Random bots' labels and jobs' requirements, on every backend: a claim never hands a
job to a bot whose labels do not meet its requirements, a bot that claims until it
gets nothing has taken every job it may take, and its outlook agrees with its claims."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botfleet.clock import FakeClock
from botfleet.protocol.labels import matches, normalised
from coordinator.store.base import ClaimInput, Store
from coordinator.store.records import BotRecord
from tests.unit.store.support import JOB_LEASE_TTL_S, complete, new_job, register

KEYS = ("gpu", "region", "os")
VALUES = ("a", "b", "c")
_examples = itertools.count()

labels = st.dictionaries(st.sampled_from(KEYS), st.sampled_from(VALUES), max_size=3)
requirement = st.one_of(
    st.sampled_from(VALUES),
    st.lists(st.sampled_from(VALUES), min_size=1, max_size=3, unique=True),
)
requires = st.one_of(
    st.none(), st.dictionaries(st.sampled_from(KEYS), requirement, min_size=1, max_size=2)
)


async def _claim(store: Store, bot: BotRecord, op: str, limit: int) -> list[str]:
    """One claim; every job it hands out must be one the bot may take. The jobs end at
    once, so the bot's slots never run out."""
    jobs = await store.claim_jobs(ClaimInput(bot.id, [op], limit, JOB_LEASE_TTL_S))
    assert jobs is not None
    for job in jobs:
        assert matches(bot.labels, job.requires), (bot.labels, job.requires)
    if jobs:
        await store.report(bot.id, [complete(job.id, job.attempt) for job in jobs])
    return [job.id for job in jobs]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    bots_labels=st.lists(labels, min_size=1, max_size=4),
    jobs_requires=st.lists(requires, min_size=1, max_size=12),
    claims=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 4)), max_size=10),
)
async def test_claims_honour_labels_and_reach_every_job_a_bot_may_take(
    store: Store,
    clock: FakeClock,
    bots_labels: list[dict[str, str]],
    jobs_requires: list[dict[str, str | list[str]] | None],
    claims: list[tuple[int, int]],
) -> None:
    op = f"labels{next(_examples)}"
    bots = [
        await register(store, clock, bot_key=f"{op}/bot{i}", capabilities=[op], labels=given)
        for i, given in enumerate(bots_labels)
    ]
    outcomes = await store.submit_jobs(
        [new_job(clock, op=op, requires=normalised(wanted)) for wanted in jobs_requires]
    )
    required = {
        o.job.id: normalised(wanted) for o, wanted in zip(outcomes, jobs_requires, strict=True)
    }
    taken: set[str] = set()
    for index, limit in claims:
        taken.update(await _claim(store, bots[index % len(bots)], op, limit))
    for bot in bots:
        left = [job_id for job_id in required if job_id not in taken]
        may_take = [job_id for job_id in left if matches(bot.labels, required[job_id])]
        # The outlook of a waiting claim: a job is due exactly when the bot may take one.
        assert (await store.next_run_at([op], bot.id) is not None) == bool(may_take)
        outlook = await store.claim_outlook(bot.id, [op])
        assert (outlook.next_run_at is not None) == bool(may_take)
        while claimed := await _claim(store, bot, op, 3):
            taken.update(claimed)
        assert set(may_take) <= taken
    for job_id, wanted in required.items():
        job = await store.get_job(job_id)
        assert job is not None
        if any(matches(bot.labels, wanted) for bot in bots):
            assert job.state == "succeeded", (job_id, wanted)
        else:
            assert job.state == "queued", (job_id, wanted)
