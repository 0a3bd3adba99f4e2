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
from contextlib import AbstractContextManager
from typing import Any

TRACE_KEYS = ("traceparent", "tracestate")

# Reusable: entering and leaving it does nothing, so one instance serves every caller.
NO_SPAN: AbstractContextManager[None] = contextlib.nullcontext()
_UNKNOWN = object()


def available() -> bool:
    return importlib.util.find_spec("opentelemetry") is not None


class Tracer:
    """Spans named `botfleet.<what>`; `enabled=False` (or no OpenTelemetry) costs nothing.

    With the API installed but no tracer provider set (the API's proxy), a span records
    nothing and, with no trace context coming in, carries none out either: such spans
    are skipped, as they cost more than the request's own routing does. Once a provider
    is set (the API allows that once per process), every span is made.
    """

    def __init__(self, component: str, enabled: bool | None = None) -> None:
        self.enabled = available() if enabled is None else enabled and available()
        self._tracer: Any = None
        self._trace: Any = None
        self._proxy_provider: tuple[type[Any], ...] = ()
        self._configured = False
        if self.enabled:
            from opentelemetry import trace

            self._trace = trace
            self._proxy_provider = (trace.ProxyTracerProvider,)
            self._tracer = trace.get_tracer(f"botfleet.{component}")

    def span(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool] | None = None,
        parent: Mapping[str, Any] | None = None,
    ) -> AbstractContextManager[None]:
        """A span, child of the trace context in `parent` (job metadata) when given."""
        if not self.enabled or self._inert(parent):
            return NO_SPAN
        return self._span(name, attributes, parent)

    def inject(self, metadata: MutableMapping[str, Any]) -> None:
        """Write the current trace context into job metadata (a no-op without a span)."""
        if not self.enabled or self._inert(None):
            return
        from opentelemetry.propagate import inject

        carrier: dict[str, str] = {}
        inject(carrier)
        metadata.update({key: carrier[key] for key in TRACE_KEYS if key in carrier})

    def _inert(self, parent: Mapping[str, Any] | None) -> bool:
        """True when a span would be the API's no-op: no provider set, no trace context
        in `parent`, and no valid span current (so there is nothing to continue)."""
        if self._configured:
            return False
        if self._provider_set():
            self._configured = True
            return False
        if parent is not None and any(key in parent for key in TRACE_KEYS):
            return False
        return not self._trace.get_current_span().get_span_context().is_valid

    def _provider_set(self) -> bool:
        # The API keeps the provider in a module global, None until one is set (in code,
        # or from OTEL_PYTHON_TRACER_PROVIDER by the get_tracer call in __init__).
        # Reading it costs nothing; get_tracer_provider() looks in os.environ on every
        # call while none is set, which showed in the coordinator's profile. Should the
        # global ever go away, the public call decides.
        provider = getattr(self._trace, "_TRACER_PROVIDER", _UNKNOWN)
        if provider is _UNKNOWN:
            return not isinstance(self._trace.get_tracer_provider(), self._proxy_provider)
        return provider is not None

    @contextlib.contextmanager
    def _span(
        self,
        name: str,
        attributes: Mapping[str, str | int | float | bool] | None,
        parent: Mapping[str, Any] | None,
    ) -> Iterator[None]:
        from opentelemetry.propagate import extract

        context = extract(_carrier(parent)) if parent is not None else None
        with self._tracer.start_as_current_span(
            f"botfleet.{name}", context=context, attributes=dict(attributes or {})
        ):
            yield


def _carrier(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(metadata[key]) for key in TRACE_KEYS if key in metadata}
