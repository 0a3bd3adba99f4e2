"""Random submits, claims, reports, lease expiries and restarts (a new store object on
the same database), on every backend: the jobs running under a limit never exceed its
max_running, and the starts under a rate limit in any window never exceed
per_second × window + burst."""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from botfleet.clock import FakeClock
from coordinator.store.base import ClaimInput, Store
from coordinator.store.limits import LimitSpec
from tests.support.backends import StoreFactory
from tests.unit.store.support import JOB_LEASE_TTL_S, complete, new_job, register

_examples = itertools.count()

action = st.one_of(
    st.tuples(
        st.just("submit"), st.sets(st.sampled_from(["cap", "rate"]), max_size=2), st.integers(1, 6)
    ),
    st.tuples(st.just("claim"), st.integers(0, 2), st.integers(1, 5)),
    st.tuples(st.just("claim"), st.integers(0, 2), st.integers(1, 5)),
    st.tuples(st.just("complete"), st.integers(0, 20)),
    st.tuples(st.just("advance"), st.sampled_from([0.1, 0.25, 0.5, 1.0, 3.0])),
    st.tuples(st.just("expire")),
    st.tuples(st.just("restart")),
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    max_running=st.integers(1, 3),
    op_max_running=st.one_of(st.none(), st.integers(1, 4)),
    per_second=st.sampled_from([0.5, 1.0, 4.0]),
    burst=st.integers(1, 3),
    actions=st.lists(action, min_size=5, max_size=40),
)
async def test_limits_hold_whatever_happens(
    store: Store,
    store_factory: StoreFactory,
    clock: FakeClock,
    max_running: int,
    op_max_running: int | None,
    per_second: float,
    burst: int,
    actions: list[tuple[object, ...]],
) -> None:
    op = f"limits{next(_examples)}"
    cap, rate = f"{op}-cap", f"{op}-rate"
    await store.put_limit(LimitSpec(cap, max_running=max_running))
    await store.put_limit(LimitSpec(rate, per_second=per_second, burst=burst))
    if op_max_running is not None:
        await store.put_limit(LimitSpec(f"op:{op}", max_running=op_max_running))
    keys = [f"{op}/bot{i}" for i in range(3)]
    bots = [await register(store, clock, bot_key=key, capabilities=[op]) for key in keys]
    names = {"cap": cap, "rate": rate}
    running: dict[str, tuple[str, int, tuple[str, ...]]] = {}  # id -> (bot, attempt, limits)
    starts: list[float] = []  # when jobs under the rate limit started (clock seconds)
    current, opened = store, []
    try:
        for step in actions:
            kind = step[0]
            if kind == "submit":
                chosen = tuple(sorted(names[name] for name in step[1]))  # type: ignore[attr-defined]
                count = int(step[2])  # type: ignore[call-overload]
                await current.submit_jobs([new_job(clock, op=op, limits=chosen)] * count)
            elif kind == "claim":
                bot = bots[int(step[1]) % len(bots)]  # type: ignore[call-overload]
                claim = ClaimInput(bot.id, [op], int(step[2]), JOB_LEASE_TTL_S)  # type: ignore[call-overload]
                jobs = await current.claim_jobs(claim)
                if jobs is None:  # offline after an expiry: it registers again
                    bots = [
                        await register(current, clock, bot_key=key, capabilities=[op])
                        for key in keys
                    ]
                    continue
                for job in jobs:
                    running[job.id] = (bot.id, job.attempt, job.limits)
                    if rate in job.limits:
                        starts.append(clock.now().timestamp())
            elif kind == "complete" and running:
                job_id = sorted(running)[int(step[1]) % len(running)]  # type: ignore[call-overload]
                bot_id, attempt, _ = running.pop(job_id)
                await current.report(bot_id, [complete(job_id, attempt)])
            elif kind == "advance":
                clock.advance(float(step[1]))  # type: ignore[arg-type]
            elif kind == "expire":
                clock.advance(JOB_LEASE_TTL_S + 1)
                await current.expire_leases()
                running.clear()
            elif kind == "restart":
                current = store_factory()
                await current.open()
                opened.append(current)
            under_cap = sum(1 for _, _, limits in running.values() if cap in limits)
            assert under_cap <= max_running
            if op_max_running is not None:
                assert len(running) <= op_max_running
            counted = {limit.name: limit.running for limit in await current.list_limits()}
            assert counted[cap] == under_cap
            _assert_rate(starts, per_second, burst)
    finally:
        for extra in opened:
            await extra.close()


def _assert_rate(starts: list[float], per_second: float, burst: int) -> None:
    for first, last in itertools.combinations(range(len(starts)), 2):
        window = starts[last] - starts[first]
        assert last - first + 1 <= per_second * window + burst + 1e-6, (starts, first, last)
