"""Optional OpenTelemetry tracing, free when the `tracing` extra is not installed.

One job's trace runs from the producer through the coordinator to the bot: the
coordinator writes the W3C trace context into the job's `metadata`
(`traceparent`, `tracestate`) at submit, and the bot continues it when it runs
and reports the job. Without `opentelemetry-api` every call here is a no-op.
Which exporter receives the spans is the application's choice (the standard
`OTEL_*` variables with `opentelemetry-instrument`, or a provider set in code).
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

TRACE_KEYS = ("traceparent", "tracestate")


def available() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


class Tracer:
    """Spans named `botfleet.<what>`; `enabled=False` (or no OpenTelemetry) costs nothing."""

    def __init__(self, component: str, enabled: bool | None = None) -> None:
        self.enabled = available() if enabled is None else enabled and available()
        self._tracer: Any = None
        if self.enabled:
            from opentelemetry import trace

            self._tracer = trace.get_tracer(f"botfleet.{component}")

    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool] | None = None,
        parent: Mapping[str, Any] | None = None,
    ) -> Iterator[None]:
        """A span, child of the trace context in `parent` (job metadata) when given."""
        if not self.enabled:
            yield
            return
        from opentelemetry.propagate import extract

        context = extract(_carrier(parent)) if parent is not None else None
        with self._tracer.start_as_current_span(
            f"botfleet.{name}", context=context, attributes=dict(attributes or {})
        ):
            yield

    def inject(self, metadata: MutableMapping[str, Any]) -> None:
        """Write the current trace context into job metadata (a no-op without a span)."""
        if not self.enabled:
            return
        from opentelemetry.propagate import inject

        carrier: dict[str, str] = {}
        inject(carrier)
        metadata.update({key: carrier[key] for key in TRACE_KEYS if key in carrier})


def _carrier(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(metadata[key]) for key in TRACE_KEYS if key in metadata}
