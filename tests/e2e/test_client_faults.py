"""The client through a proxy that drops connections, before the coordinator sees a
request and after it acted: every submit is retried until it is answered, and the
idempotency key each carries makes exactly one job of it, one at a time and in bulk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from botfleet.client import Client, RetryPolicy
from tests.e2e.faultproxy import FaultProxy, Faults, summary
from tests.support.processes import Coordinator, logs_on_failure, start_coordinator

pytestmark = pytest.mark.e2e

SEED = 20261205
# Enough retries that a run of drops never exhausts them; short pauses keep it quick.
PATIENT = RetryPolicy(connect_retries=20, base_s=0.01, cap_s=0.2)


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[Coordinator]:
    server = start_coordinator(tmp_path)
    try:
        with logs_on_failure(lambda: [server.process]):
            yield server
    finally:
        server.process.stop()


def _jobs_of(client: Client, op: str) -> int:
    return sum(client.stats().jobs_by_op.get(op, {}).values())


def test_a_thousand_submits_make_a_thousand_jobs(coordinator: Coordinator) -> None:
    faults = Faults(drop_before=0.05, drop_after=0.05, delay=0.05)
    with (
        FaultProxy(coordinator.url, faults, seed=SEED) as proxy,
        Client(proxy.url, token=coordinator.admin_token, retry=PATIENT, environ={}) as client,
    ):
        ids = [client.submit("faulty", {"n": n}).id for n in range(1000)]
        counts = summary(proxy)
    assert counts.get("drop_before", 0) > 0 and counts.get("drop_after", 0) > 0, counts
    assert len(set(ids)) == 1000
    with Client(coordinator.url, token=coordinator.admin_token, environ={}) as direct:
        assert _jobs_of(direct, "faulty") == 1000


def test_bulk_submits_retried_after_lost_answers_make_each_job_once(
    coordinator: Coordinator,
) -> None:
    faults = Faults(drop_before=0.2, drop_after=0.4)
    with (
        FaultProxy(coordinator.url, faults, seed=SEED) as proxy,
        Client(proxy.url, token=coordinator.admin_token, retry=PATIENT, environ={}) as client,
    ):
        handles = client.submit_many([("faulty-bulk", {"n": n}) for n in range(5000)])
        counts = summary(proxy)
    assert counts.get("drop_after", 0) > 0, counts
    assert len({handle.id for handle in handles}) == 5000
    with Client(coordinator.url, token=coordinator.admin_token, environ={}) as direct:
        assert _jobs_of(direct, "faulty-bulk") == 5000
        assert [direct.get(handles[n]).payload["n"] for n in (0, 2500, 4999)] == [0, 2500, 4999]
