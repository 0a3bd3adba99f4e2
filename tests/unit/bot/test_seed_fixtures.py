"""The seed's answers (extra fields, string priority, an operation the bot lacks) are accepted."""

from __future__ import annotations

from pathlib import Path

from bot.identity import Identity
from bot.jobs import Registry, execute, load_plugins
from bot.link.session import Session
from bot.settings import Settings
from bot.state import Job
from botfleet.protocol import decode
from botfleet.protocol import messages as m

FIXTURES = Path(__file__).resolve().parents[2] / "contract" / "fixtures"


def test_register_response_fixture() -> None:
    answer = decode((FIXTURES / "register_response.json").read_bytes(), m.RegisterResponse)
    session = Session.start(Settings(), Identity("key", "bot", "inst"), ("subtract", "sum"))
    session.registered(answer)

    assert session.bot_id == "bot_abc123"
    assert answer.auth is not None and answer.auth.access_token.startswith("eyJ")
    assert session.features == frozenset()  # no `features`: only the five base calls
    assert session.heartbeat_interval_s == 30 and session.claim_batch_size == 10
    assert session.job_lease_ttl_s == 300
    assert session.assignment.max_concurrency == 5
    assert session.claimable() == ("sum", "subtract")  # multiply is assigned, not handled


async def test_claim_response_fixture() -> None:
    answer = decode((FIXTURES / "claim_jobs_response.json").read_bytes(), m.ClaimResponse)
    jobs = [Job.from_claimed(claimed) for claimed in answer.jobs]
    assert [job.metadata["priority"] for job in jobs] == ["normal", "high", "low"]
    assert jobs[2].attempt == 2 and jobs[2].metadata["previous_attempts"][0]["error"] == "timeout"
    assert all(job.lease_until is not None for job in jobs)

    registry = load_plugins(Registry(), entry_points=())
    reports = [await execute(registry, job) for job in jobs]
    assert [(r.job_id, r.action) for r in reports] == [
        ("job_550e8400", "complete"),
        ("job_660f9511", "fail"),
        ("job_771fa622", "complete"),
    ]
    assert reports[0].result == {"result": 100} and reports[2].result == {"result": 10}
    assert reports[2].attempt == 2
    assert "unknown operation 'multiply'" in (reports[1].error or "")
