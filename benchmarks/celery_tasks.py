"""The Celery side of the comparison: an app and a trivial `sum` task, benchmark-only.

The app carries no broker or backend here (no configuration at import): the workers get
them on their command line (`celery -b URL --result-backend URL`), the producer through
`configure`. Celery and Redis are never needed by botfleet itself.
"""

from __future__ import annotations

from typing import Any

from celery import Celery  # type: ignore[import-untyped, unused-ignore]

app = Celery("benchmarks.celery_tasks")


@app.task(name="sum")  # type: ignore[untyped-decorator, unused-ignore]
def sum_task(a: int, b: int) -> dict[str, Any]:
    """The same work as botfleet's built-in `sum` op, with the same result shape."""
    return {"result": a + b}


def configure(redis_broker_url: str, redis_backend_url: str) -> Celery:
    """Point the producer side at the private Redis; Celery's defaults otherwise."""
    app.conf.update(
        broker_url=redis_broker_url,
        result_backend=redis_backend_url,
        broker_connection_retry_on_startup=True,
    )
    return app


def worker_args(redis_broker_url: str, redis_backend_url: str, number: int) -> list[str]:
    """`celery worker` arguments for one solo-pool worker (the fastest sensible set-up).

    Gossip, mingle and the worker heartbeat are cluster chatter that slows start-up and
    adds nothing to a two-worker run; turning them off is what a tuned deployment does.
    """
    return [
        "-A", "benchmarks.celery_tasks",
        "-b", redis_broker_url,
        "--result-backend", redis_backend_url,
        "worker",
        "--pool", "solo",
        "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"bench-{number}@%h",
    ]  # fmt: skip
