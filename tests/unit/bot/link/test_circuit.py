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
from bot.link.circuit import (
    QUICK_OPEN_FACTOR,
    BreakerApi,
    Circuit,
    CircuitBreaker,
    unreachable,
)
from bot.testing import FakeCoordinator
from botfleet.clock import FakeClock
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
        "circuit closed -> open: 1 failures in a row over 0.0 s, the last: down"
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


def test_a_streak_opens_the_circuit_only_once_it_has_lasted_the_window() -> None:
    """On a lossy network a few lost calls in a row are not an outage: the streak must
    also last `window_s`; an answer in between starts it again."""
    clock = FakeClock()
    breaker = CircuitBreaker(3, window_s=1.0, monotonic=clock.monotonic)
    for _ in range(5):  # five failures within 0.4 s
        breaker.record(NetworkError("lost"))
        clock.advance(0.1)
    assert not breaker.is_open
    breaker.record(None)
    for _ in range(3):
        clock.advance(0.3)
        breaker.record(NetworkError("lost"))
    assert not breaker.is_open  # the streak began 0.6 s ago
    clock.advance(0.5)
    breaker.record(NetworkError("down"))
    assert breaker.is_open and breaker.opened == 1


def test_a_long_enough_streak_opens_the_circuit_inside_the_window() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(3, window_s=1.0, monotonic=clock.monotonic)
    for _ in range(3 * QUICK_OPEN_FACTOR - 1):
        breaker.record(NetworkError("down"))
    assert not breaker.is_open
    breaker.record(NetworkError("down"))
    assert breaker.is_open and clock.monotonic() == 1000.0  # no time passed


def test_a_negative_window_is_refused() -> None:
    with pytest.raises(ValueError, match="window_s"):
        CircuitBreaker(3, window_s=-1.0)
