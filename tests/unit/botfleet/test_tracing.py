"""Trace context travels in job metadata, and tracing off costs nothing."""

from __future__ import annotations

from typing import Any

from botfleet.tracing import Tracer


def test_one_trace_from_producer_to_bot(span_exporter: Any) -> None:
    producer, bot = Tracer("coordinator"), Tracer("bot")
    metadata: dict[str, Any] = {"priority": 1}
    with producer.span("submit", {"botfleet.op": "sum"}):
        producer.inject(metadata)
    assert metadata["traceparent"].startswith("00-")
    with bot.span("run", {"botfleet.job_id": "job_1"}, parent=metadata), bot.span("report"):
        pass
    spans = {span.name: span for span in span_exporter.get_finished_spans()}
    assert set(spans) == {"botfleet.submit", "botfleet.run", "botfleet.report"}
    trace_ids = {span.context.trace_id for span in spans.values()}
    assert len(trace_ids) == 1
    assert spans["botfleet.run"].parent.span_id == spans["botfleet.submit"].context.span_id
    assert spans["botfleet.report"].parent.span_id == spans["botfleet.run"].context.span_id


def test_disabled_tracer_records_nothing(span_exporter: Any) -> None:
    tracer = Tracer("bot", enabled=False)
    metadata: dict[str, Any] = {}
    with tracer.span("run", parent={"traceparent": "garbage"}):
        tracer.inject(metadata)
    assert metadata == {}
    assert span_exporter.get_finished_spans() == ()


def test_unparseable_trace_context_starts_a_new_trace(span_exporter: Any) -> None:
    with Tracer("bot").span("run", parent={"traceparent": "not-a-trace"}):
        pass
    (span,) = span_exporter.get_finished_spans()
    assert span.parent is None


def test_no_provider_set_costs_no_span(span_exporter: Any, monkeypatch: Any) -> None:
    """The API's proxy (no provider set): nothing to record and nothing to carry on."""
    from opentelemetry import trace

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    tracer = Tracer("coordinator")
    metadata: dict[str, Any] = {}
    with tracer.span("claim", {"botfleet.limit": 2}) as entered:
        tracer.inject(metadata)
    assert entered is None
    assert metadata == {}
    assert tracer.span("report") is tracer.span("claim")  # one shared no-op, no allocation
    assert span_exporter.get_finished_spans() == ()


def test_no_provider_set_still_continues_incoming_context(monkeypatch: Any) -> None:
    """A producer's trace context in the job is passed on even with no provider set."""
    from opentelemetry import trace

    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    tracer = Tracer("coordinator")
    parent = {"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    assert tracer.span("submit", parent=parent) is not tracer.span("claim")


def test_provider_set_later_is_used(span_exporter: Any, monkeypatch: Any) -> None:
    from opentelemetry import trace

    real = trace.get_tracer_provider()
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    tracer = Tracer("coordinator")
    with tracer.span("before"):
        pass
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", real)
    with tracer.span("after"):
        pass
    assert [span.name for span in span_exporter.get_finished_spans()] == ["botfleet.after"]


def test_without_the_api_global_the_public_call_decides(monkeypatch: Any) -> None:
    from opentelemetry import trace

    tracer = Tracer("coordinator")
    monkeypatch.delattr(trace, "_TRACER_PROVIDER")
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    assert tracer.span("claim") is tracer.span("report")
