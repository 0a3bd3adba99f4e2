"""Fixtures shared by every test folder."""

from tests.support.tracing import span_exporter

__all__ = ["span_exporter"]
