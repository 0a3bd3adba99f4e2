"""Benchmarks of issue 7: botfleet against Celery, and botfleet at scale.

Run from the repository root: `python -m benchmarks.vs_celery`, `python -m benchmarks.scale`.
They print figures; they never assert speed (the smoke tests in tests/perf only check
that each one runs and prints its table).
"""
