"""One OpenTelemetry SDK provider for the whole test run (the API allows setting it once)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture
def span_exporter() -> Iterator[Any]:
    """An in-memory exporter attached to the process's SDK provider, cleared per test."""
    sdk = pytest.importorskip("opentelemetry.sdk.trace", reason="tracing extra not installed")
    export = pytest.importorskip("opentelemetry.sdk.trace.export")
    memory_module = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if not isinstance(provider, sdk.TracerProvider):
        provider = sdk.TracerProvider()
        trace.set_tracer_provider(provider)
    memory = memory_module.InMemorySpanExporter()
    processor = export.SimpleSpanProcessor(memory)
    provider.add_span_processor(processor)
    yield memory
    memory.shutdown()  # the processor stays registered but exports nowhere
