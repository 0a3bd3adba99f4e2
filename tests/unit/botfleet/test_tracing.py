"""Trace context travels in job metadata, and tracing off costs nothing."""

from __future__ import annotations

from typing import Any

import pytest

from botfleet.tracing import Tracer

sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="the tracing extra is not installed")
export = pytest.importorskip("opentelemetry.sdk.trace.export")
in_memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


@pytest.fixture(scope="module")
def exporter() -> Any:
    from opentelemetry import trace

    provider = sdk.TracerProvider()
    memory = in_memory.InMemorySpanExporter()
    provider.add_span_processor(export.SimpleSpanProcessor(memory))
    trace.set_tracer_provider(provider)
    return memory


def test_one_trace_from_producer_to_bot(exporter: Any) -> None:
    exporter.clear()
    producer, bot = Tracer("coordinator"), Tracer("bot")
    metadata: dict[str, Any] = {"priority": 1}
    with producer.span("submit", {"botfleet.op": "sum"}):
        producer.inject(metadata)
    assert metadata["traceparent"].startswith("00-")
    with bot.span("run", {"botfleet.job_id": "job_1"}, parent=metadata), bot.span("report"):
        pass
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"botfleet.submit", "botfleet.run", "botfleet.report"}
    trace_ids = {span.context.trace_id for span in spans.values()}
    assert len(trace_ids) == 1
    assert spans["botfleet.run"].parent.span_id == spans["botfleet.submit"].context.span_id
    assert spans["botfleet.report"].parent.span_id == spans["botfleet.run"].context.span_id


def test_disabled_tracer_records_nothing(exporter: Any) -> None:
    exporter.clear()
    tracer = Tracer("bot", enabled=False)
    metadata: dict[str, Any] = {}
    with tracer.span("run", parent={"traceparent": "garbage"}):
        tracer.inject(metadata)
    assert metadata == {}
    assert exporter.get_finished_spans() == ()


def test_unparseable_trace_context_starts_a_new_trace(exporter: Any) -> None:
    exporter.clear()
    with Tracer("bot").span("run", parent={"traceparent": "not-a-trace"}):
        pass
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
