"""Benchmarks: botfleet against Celery, and botfleet at scale (docs/performance.md).

Run from the repository root: `python -m benchmarks.vs_celery`, `python -m benchmarks.scale`.
They print figures and never assert speed, because figures depend on the machine; the
smoke tests in tests/perf only check that each one runs and prints its table.
"""
