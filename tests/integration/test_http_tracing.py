"""With OpenTelemetry installed, submit, claim and report are spans of the coordinator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from botfleet.clock import FakeClock
from tests.integration.conftest import ClientFactory
from tests.integration.harness import Api, make_app


async def test_a_job_traced_through_the_coordinator(
    tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory, span_exporter: Any
) -> None:
    api = Api(await aiohttp_client(make_app(tmp_path, clock, tracing=True)), clock)
    bot = await api.register()
    job_id = await api.submit()
    (job,) = await api.claim(bot)
    assert job["metadata"]["traceparent"].startswith("00-")
    status, _ = await api.post(
        f"/v1/jobs/{job_id}/complete", {"instance_id": bot.instance_id, "result": {}}, bot.headers
    )
    assert status == 200
    names = [span.name for span in span_exporter.get_finished_spans()]
    assert {"botfleet.submit", "botfleet.claim", "botfleet.report"} <= set(names)
    submit = next(s for s in span_exporter.get_finished_spans() if s.name == "botfleet.submit")
    assert job["metadata"]["traceparent"].split("-")[1] == format(submit.context.trace_id, "032x")
