"""The Celery side of the comparisons: an app, a trivial `sum` task and the `nap` task of
`benchmarks/mixed.py`, benchmark-only.

The app carries no broker or backend here (no configuration at import): the workers get
them on their command line (`celery -b URL --result-backend URL`), the producer through
`configure`. Celery and Redis are never needed by botfleet itself.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO, Any

from celery import Celery, signals  # type: ignore[import-untyped, unused-ignore]

app = Celery("benchmarks.celery_tasks")

# Set on a worker, a folder where it writes one line per task it takes from the broker
# (`task id, wall-clock time`): when a prefetched task entered the worker's buffer.
RECEIPTS_DIR_ENV = "BENCH_CELERY_RECEIPTS_DIR"
_receipts: list[IO[str]] = []


@app.task(name="sum")  # type: ignore[untyped-decorator, unused-ignore]
def sum_task(a: int, b: int) -> dict[str, Any]:
    """The same work as botfleet's built-in `sum` op, with the same result shape."""
    return {"result": a + b}


@app.task(name="nap", bind=True)  # type: ignore[untyped-decorator, unused-ignore]
def nap_task(self: Any, seconds: float) -> dict[str, Any]:
    """The same work as `benchmarks.mixed_ops`' `nap`, answering when it ran and where."""
    started = time.time()
    if seconds > 0:
        time.sleep(seconds)
    return {"started": started, "ended": time.time(), "worker": self.request.hostname}


def note_receipt(request: Any = None, **_: Any) -> None:
    """`task_received`: runs in the worker's main process, when a message is taken."""
    if not _receipts:
        folder = Path(os.environ[RECEIPTS_DIR_ENV])
        # Line-buffered: every line is on disk as it is written, however the worker ends.
        _receipts.append((folder / f"received-{os.getpid()}.txt").open("a", buffering=1))
    _receipts[0].write(f"{request.id} {time.time()!r}\n")


if os.environ.get(RECEIPTS_DIR_ENV):
    signals.task_received.connect(note_receipt, weak=False)


def configure(redis_broker_url: str, redis_backend_url: str) -> Celery:
    """Point the producer side at the private Redis; Celery's defaults otherwise."""
    app.conf.update(
        broker_url=redis_broker_url,
        result_backend=redis_backend_url,
        broker_connection_retry_on_startup=True,
    )
    return app


def worker_args(
    redis_broker_url: str, redis_backend_url: str, number: int, concurrency: int | None = None
) -> list[str]:
    """`celery worker` arguments for one solo-pool worker (the fastest sensible set-up), or
    with `concurrency`, a worker of Celery's default pool (prefork) with that many slots.

    Gossip, mingle and the worker heartbeat are cluster chatter that slows start-up and
    adds nothing to a two-worker run; turning them off is what a tuned deployment does.
    """
    pool = (
        ["--pool", "solo"]
        if concurrency is None
        else ["--pool", "prefork", "--concurrency", str(concurrency)]
    )
    return [
        "-A", "benchmarks.celery_tasks",
        "-b", redis_broker_url,
        "--result-backend", redis_backend_url,
        "worker",
        *pool,
        "--loglevel", "WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
        "-n", f"bench-{number}@%h",
    ]  # fmt: skip
