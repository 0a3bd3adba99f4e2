"""What the tables, the detail view, the progress bar and the demo summary show."""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

from rich.console import Console, RenderableType

from botfleet.cli.demo_report import DemoOutcome, WhereNext, demo_jobs, summary, tally_by_bot
from botfleet.cli.jobs import batch_summary
from botfleet.cli.progress import StateProgress
from botfleet.cli.render import (
    Output,
    ago,
    bots_table,
    job_detail,
    jobs_table,
    outcome,
    shorten,
    stats_view,
)
from botfleet.protocol import messages as m

NOW = datetime(2026, 1, 19, 10, 1, 0, tzinfo=UTC)


def _text(renderable: RenderableType) -> str:
    console = Console(width=200, record=True, file=io.StringIO(), color_system=None)
    console.print(renderable)
    return console.export_text()


def _job(job_id: str = "job_01", state: str = "succeeded", **extra: object) -> m.JobView:
    fields: dict[str, object] = {
        "id": job_id, "op": "sum", "payload": {"a": 1, "b": 2}, "state": state, "attempt": 1,
        "max_attempts": 3, "created_at": "2026-01-19T10:00:00Z", "bot_id": "bot_1",
    }  # fmt: skip
    fields.update(extra)
    return m.JobView(**fields)  # type: ignore[arg-type]


def _bot(**extra: object) -> m.BotView:
    fields: dict[str, object] = {
        "id": "bot_1", "name": "alpha", "bot_key": "host:alpha", "instance_id": "i1",
        "state": "online", "lifecycle": "draining", "version": "1.0.0",
        "capabilities": ["sum", "subtract"], "running": ["job_01", "job_02"],
        "assignment": m.Assignment(operations=["sum"], max_concurrency=4, paused=True),
        "registered_at": "2026-01-19T09:00:00Z", "last_heartbeat": "2026-01-19T10:00:55Z",
    }  # fmt: skip
    fields.update(extra)
    return m.BotView(**fields)  # type: ignore[arg-type]


def test_ago() -> None:
    assert ago("2026-01-19T10:00:55Z", NOW) == "5s ago"
    assert ago("2026-01-19T09:58:00Z", NOW) == "3m ago"
    assert ago("2026-01-19T10:02:00Z", NOW) == "in 1m"
    assert ago(None, NOW) == "-"
    assert ago("yesterday", NOW) == "yesterday"


def test_outcome_prefers_the_error_then_the_result() -> None:
    assert outcome(_job(result={"result": 3})) == '{"result":3}'
    assert outcome(_job(state="failed", error="payload field 'b' is missing")) == (
        "payload field 'b' is missing"
    )
    assert outcome(_job(state="running", progress=0.5)) == "50%"
    assert shorten("x" * 100, 10) == "x" * 9 + "…"


def test_jobs_table_shows_whole_ids_and_states() -> None:
    text = _text(
        jobs_table(
            [_job("job_0123456789abcdef", result={"result": 3}), _job(state="failed", error="no")],
            NOW,
        )
    )
    assert "job_0123456789abcdef" in text
    assert "succeeded" in text
    assert "failed" in text
    assert "1/3" in text
    assert "1m ago" in text
    assert '{"result":3}' in text


def test_job_detail() -> None:
    text = _text(job_detail(_job(result={"result": 3}, finished_at="2026-01-19T10:00:30Z"), NOW))
    assert "payload" in text
    assert '{"a":1,"b":2}' in text
    assert "finished" in text
    assert "30s ago" in text
    assert "submitted by" not in text
    assert "submitted by  ci" in _text(job_detail(_job(submitted_by="ci"), NOW))


def test_job_detail_shows_requirements_and_what_a_queued_job_waits_for() -> None:
    waiting = _job(
        state="queued",
        requires={"gpu": ["a100", "h100"], "region": ["eu"]},
        waiting_for="no online bot has gpu=a100|h100",
    )
    text = _text(job_detail(waiting, NOW))
    assert "requires     gpu=a100|h100,region=eu" in text
    assert "waiting for  no online bot has gpu=a100|h100" in text
    plain = _text(job_detail(_job(), NOW))
    assert "requires" not in plain and "waiting for" not in plain


def test_attempts_are_the_used_ones_of_max() -> None:
    """After lost claims the attempt number passes max_attempts; the attempts used do not."""
    lost = _job(state="running", attempt=4, attempts_used=2)
    assert "2/3" in _text(jobs_table([lost], NOW))
    assert "4/3" not in _text(jobs_table([lost], NOW))
    assert "2 of 3 (attempt #4)" in _text(job_detail(lost, NOW))
    plain = _job(attempt=2, attempts_used=2)
    assert "2 of 3" in _text(job_detail(plain, NOW))
    assert "attempt #" not in _text(job_detail(plain, NOW))
    older = _job(attempt=2)  # a coordinator that does not send attempts_used
    assert "2/3" in _text(jobs_table([older], NOW))
    assert "attempt #" not in _text(job_detail(older, NOW))


def test_bots_table() -> None:
    text = _text(bots_table([_bot()], NOW))
    assert "alpha" in text
    assert "online (draining)" in text
    assert "5s ago" in text
    assert "sum ×4 paused" in text
    assert "gpu=a100,region=eu" in _text(
        bots_table([_bot(labels={"gpu": "a100", "region": "eu"})], NOW)
    )


def test_a_revoked_bot_shows_revoked() -> None:
    revoked = _bot(state="offline", lifecycle="safe_halt", revoked_at="2026-01-19T10:00:00Z")
    text = _text(bots_table([revoked], NOW))
    assert "revoked" in text and "offline" not in text


def test_stats_view() -> None:
    stats = m.Stats(
        jobs={"queued": 4, "succeeded": 10},
        jobs_by_op={"sum": {"succeeded": 10, "queued": 4}},
        bots={"online": 2},
        throughput=m.Throughput(window_s=60, succeeded=10, failed=0, per_second=0.17),
        oldest_queued_age_s=75,
    )
    text = _text(stats_view(stats))
    assert "queued" in text
    assert "Jobs by operation" in text
    assert "0.2 jobs/s" in text
    assert "Oldest queued job waits for 1m" in text


def test_batch_summary_lists_example_errors() -> None:
    views = [_job(f"job_{i}") for i in range(3)] + [_job("job_x", "failed", error="bad b")]
    text = _text(batch_summary(views))
    assert "4 jobs" in text
    assert "job_x" in text
    assert "bad b" in text


def test_json_output_is_plain() -> None:
    out = io.StringIO()
    output = Output(out=Console(file=out), err=Console(file=io.StringIO()), as_json=True)
    output.json(m.SubmitResponse(id="job_1", state="queued"))
    assert out.getvalue() == '{\n  "id": "job_1",\n  "state": "queued"\n}\n'


def test_progress_shows_counts_by_state() -> None:
    file = io.StringIO()
    console = Console(file=file, width=200, force_terminal=False, color_system=None)
    with StateProgress(console, total=10) as bar:
        bar.update({"succeeded": 6, "failed": 1, "running": 2, "queued": 1})
    text = file.getvalue()
    assert "7/10" in text
    assert "succeeded 6" in text
    assert "failed 1" in text
    assert "running 2" in text


def test_demo_jobs_are_a_mix_with_a_few_invalid() -> None:
    jobs = demo_jobs(1000)
    assert len(jobs) == 1000
    assert Counter(job.op for job in jobs) == {"sum": 500, "subtract": 500}
    invalid = [
        job for job in jobs if not all(isinstance(job.payload.get(key), int) for key in ("a", "b"))
    ]
    assert len(invalid) == 20
    assert demo_jobs(50) == jobs[:50]  # deterministic


def test_demo_summary() -> None:
    jobs = [_job(f"job_{i}") for i in range(3)] + [
        _job("job_bad", "failed", error="payload field 'b' is missing", bot_id="bot_2")
    ]
    per_bot = tally_by_bot(jobs, {"bot_1": "demo-bot-1", "bot_2": "demo-bot-2"})
    assert per_bot == {"demo-bot-1": {"succeeded": 3}, "demo-bot-2": {"failed": 1}}
    outcome_ = DemoOutcome(
        submitted=4,
        counts={"succeeded": 3, "failed": 1},
        elapsed_s=2.0,
        per_bot=per_bot,
        failures=[jobs[-1]],
    )
    where = WhereNext(
        server="http://127.0.0.1:5000",
        coordinator_dir="/tmp/demo/coordinator",
        logs_dir="/tmp/demo/logs",
        kept_running=True,
    )
    text = _text(summary(outcome_, where))
    assert "2 jobs/s" in text
    assert "demo-bot-2" in text
    assert "payload field 'b' is missing" in text
    assert "http://127.0.0.1:5000/" in text
    state = "--server http://127.0.0.1:5000 --state-dir /tmp/demo/coordinator"
    assert f"botfleet jobs --state failed {state}" in text
    assert f"botfleet dashboard {state}" in text
    assert "/tmp/demo/logs" in text
    finished = _text(summary(outcome_, replace(where, kept_running=False)))
    assert "botfleet server --state-dir /tmp/demo/coordinator" in finished
    assert "botfleet jobs --state failed --state-dir /tmp/demo/coordinator" in finished
    assert "botfleet demo --keep" in finished
