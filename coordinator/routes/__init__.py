"""Every route of the API (docs/protocol.md), one module per audience."""

from __future__ import annotations

from aiohttp import web

from coordinator.routes import (
    admin,
    bots,
    health,
    joblogs,
    jobs,
    limits,
    prefetch,
    revocation,
    schedules,
    tokens,
    work,
)


def setup_routes(router: web.UrlDispatcher) -> None:
    # Fixed paths (/v1/jobs/claim, /v1/jobs/report, /v1/jobs/release, /v1/jobs/bulk) before
    # /v1/jobs/{job_id}.
    work.setup(router)
    prefetch.setup(router)
    jobs.setup(router)
    joblogs.setup(router)
    bots.setup(router)
    admin.setup(router)
    tokens.setup(router)
    revocation.setup(router)
    limits.setup(router)
    schedules.setup(router)
    health.setup(router)
