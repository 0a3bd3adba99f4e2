"""The circuit breaker: failures in a row open it, an answer closes it, every call counts."""

from __future__ import annotations

import logging

import pytest

from bot.errors import (
    AuthError,
    NetworkError,
    OverloadedError,
    ServerError,
    TlsError,
)
from bot.link.circuit import BreakerApi, Circuit, CircuitBreaker, unreachable
from bot.testing import FakeCoordinator
from botfleet.protocol import messages as m


def test_failures_in_a_row_open_the_circuit_and_an_answer_closes_it() -> None:
    changes: list[tuple[Circuit, Circuit]] = []
    breaker = CircuitBreaker(3, lambda a, b, why: changes.append((a, b)))
    breaker.record(NetworkError("down"))
    breaker.record(ServerError(502, "bad gateway"))
    breaker.record(None)  # an answer in between: the count starts again
    breaker.record(NetworkError("down"))
    breaker.record(NetworkError("down"))
    assert not breaker.is_open
    breaker.record(NetworkError("down"))
    assert breaker.opened == 1 and changes[-1] == (Circuit.CLOSED, Circuit.OPEN)

    breaker.probe()
    assert changes[-1][1] is Circuit.HALF_OPEN and breaker.is_open
    breaker.record(NetworkError("still down"))  # the probe failed: open again
    assert changes[-1][1] is Circuit.OPEN
    breaker.probe()
    breaker.record(OverloadedError(503, "busy"))  # shedding load is an answer
    assert breaker.state is Circuit.CLOSED and breaker.failures == 0
    assert changes == [
        (Circuit.CLOSED, Circuit.OPEN),
        (Circuit.OPEN, Circuit.HALF_OPEN),
        (Circuit.HALF_OPEN, Circuit.OPEN),
        (Circuit.OPEN, Circuit.HALF_OPEN),
        (Circuit.HALF_OPEN, Circuit.CLOSED),
    ]
    assert breaker.opened == 1  # re-opening after a failed probe is the same outage


def test_what_counts_as_unreachable() -> None:
    assert unreachable(NetworkError("x")) and unreachable(ServerError(500, "x"))
    assert not unreachable(OverloadedError(429, "x")) and not unreachable(AuthError(401, "x"))
    breaker = CircuitBreaker(1)
    breaker.probe()  # closed: a probe changes nothing
    assert breaker.state is Circuit.CLOSED
    with pytest.raises(ValueError, match="at least 1"):
        CircuitBreaker(0)


async def test_every_call_through_the_breaker_counts() -> None:
    fake = FakeCoordinator(features=list(m.ALL_FEATURES))
    breaker = CircuitBreaker(2)
    api = BreakerApi(fake, breaker)
    api.authenticate("t")
    assert fake.token == "t"
    answer = await api.register(
        m.RegisterRequest(bot_key="k", instance_id="i", version="1.0.0", capabilities=["sum"])
    )
    job_id = fake.add_job("sum", {"a": 1, "b": 1})
    await api.claim(m.ClaimRequest(bot_id=answer.bot_id, operations=["sum"]))
    await api.heartbeat(answer.bot_id, m.HeartbeatRequest(instance_id="i"))
    await api.progress(job_id, m.ProgressRequest(instance_id="i", progress=0.5))
    await api.report_batch(
        m.BatchReportRequest(
            instance_id="i", reports=[m.ReportItem(job_id=job_id, action="complete", result={})]
        )
    )
    await api.complete(job_id, m.CompleteRequest(instance_id="i", result={}))
    fake.unreachable = True
    with pytest.raises(NetworkError):
        await api.fail(job_id, m.FailRequest(instance_id="i", error="x"))
    with pytest.raises(NetworkError):
        await api.deregister(answer.bot_id, m.DeregisterRequest(instance_id="i"))
    assert breaker.is_open


def test_logging_is_quiet_about_half_open(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    breaker = CircuitBreaker(1)
    breaker.record(NetworkError("down"))
    breaker.probe()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == [
        "circuit closed -> open: 1 failures in a row, the last: down"
    ]


def test_every_listener_hears_every_change() -> None:
    first: list[Circuit] = []
    later: list[Circuit] = []
    breaker = CircuitBreaker(1, lambda previous, state, why: first.append(state))
    breaker.subscribe(lambda previous, state, why: later.append(state))
    breaker.failure(NetworkError("down"))
    breaker.success()
    assert first == later == [Circuit.OPEN, Circuit.CLOSED]


async def test_an_untrusted_certificate_is_not_an_outage_but_heard() -> None:
    class Untrusted(FakeCoordinator):
        async def heartbeat(self, bot_id: str, request: m.HeartbeatRequest) -> m.HeartbeatResponse:
            raise TlsError("https://coordinator.test/v1", "certificate verify failed: expired")

    heard: list[TlsError] = []
    breaker = CircuitBreaker(1)
    api = BreakerApi(Untrusted(), breaker, on_untrusted=heard.append)
    with pytest.raises(TlsError, match="cannot verify the certificate of https://coord"):
        await api.heartbeat("bot_1", m.HeartbeatRequest(instance_id="i"))
    assert len(heard) == 1 and not heard[0].transient
    assert not breaker.is_open and breaker.failures == 0
