"""`/openapi.json`, generated from the message structs (`messages` names them all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from botfleet import __version__
from botfleet.protocol import joblogs as logs
from botfleet.protocol import limits as lim
from botfleet.protocol import messages as m
from botfleet.protocol import prefetch as pre
from botfleet.protocol import schedules as sched


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    summary: str
    auth: str | None  # "admin", "enroll", "bot", "token" (any role token),
    # alternatives as "bot or admin", or None
    request: type | None
    response: type | None
    status: int = 200
    query: tuple[tuple[str, str], ...] = ()


ROUTES: tuple[Route, ...] = (
    Route(
        "post",
        "/v1/bots/register",
        "Register a bot",
        "enroll",
        m.RegisterRequest,
        m.RegisterResponse,
        201,
    ),
    Route(
        "put",
        "/v1/bots/{bot_id}/heartbeat",
        "Heartbeat: keep the bot lease, extend job leases",
        "bot",
        m.HeartbeatRequest,
        m.HeartbeatResponse,
    ),
    Route(
        "delete",
        "/v1/bots/{bot_id}",
        "Deregister at the end of a drain (bot token); forget an offline bot (admin token)",
        "bot or admin",
        m.DeregisterRequest,
        m.ReportAccepted,
    ),
    Route(
        "post",
        "/v1/jobs/claim",
        "Claim a batch of jobs under a lease",
        "bot",
        m.ClaimRequest,
        m.ClaimResponse,
    ),
    Route(
        "post",
        "/v1/jobs/{job_id}/complete",
        "Report a result",
        "bot",
        m.CompleteRequest,
        m.ReportAccepted,
    ),
    Route(
        "post", "/v1/jobs/{job_id}/fail", "Report a failure", "bot", m.FailRequest, m.ReportAccepted
    ),
    Route(
        "post",
        "/v1/jobs/{job_id}/progress",
        "Report progress",
        "bot",
        m.ProgressRequest,
        m.ReportAccepted,
    ),
    Route(
        "post",
        "/v1/jobs/report",
        "Report several results at once",
        "bot",
        m.BatchReportRequest,
        m.BatchReportResponse,
    ),
    Route(
        "post",
        "/v1/jobs/release",
        "Give back prefetched jobs not started yet, without using an attempt",
        "bot",
        pre.ReleaseRequest,
        pre.ReleaseResponse,
    ),
    Route("post", "/v1/jobs", "Submit a job", "admin", m.SubmitJob, m.SubmitResponse, 201),
    Route(
        "post",
        "/v1/jobs/bulk",
        "Submit up to 1000 jobs",
        "admin",
        m.BulkSubmitRequest,
        m.BulkSubmitResponse,
        201,
    ),
    Route(
        "get",
        "/v1/jobs",
        "List jobs, newest first",
        "admin",
        None,
        m.JobList,
        query=(("state", "string"), ("op", "string"), ("limit", "integer"), ("cursor", "string")),
    ),
    Route(
        "get",
        "/v1/jobs/{job_id}",
        "One job; ?wait_ms waits for a terminal state",
        "admin",
        None,
        m.JobView,
        query=(("wait_ms", "integer"),),
    ),
    Route(
        "post",
        "/v1/jobs/{job_id}/cancel",
        "Cancel a queued or running job",
        "admin",
        None,
        m.JobView,
    ),
    Route(
        "post",
        "/v1/jobs/{job_id}/retry",
        "Queue a failed or cancelled job again",
        "admin",
        None,
        m.JobView,
    ),
    Route(
        "get",
        "/v1/jobs/{job_id}/attempts",
        "Every attempt of a job: its bot, times, outcome and error",
        "admin",
        None,
        logs.AttemptList,
    ),
    Route(
        "get",
        "/v1/jobs/{job_id}/logs",
        "A job's log lines after a cursor; ?wait_ms waits for new ones",
        "admin",
        None,
        logs.JobLogs,
        query=(
            ("attempt", "integer"),
            ("after", "integer"),
            ("limit", "integer"),
            ("wait_ms", "integer"),
        ),
    ),
    Route(
        "post",
        "/v1/jobs/{job_id}/logs",
        "Send a batch of a job's log lines (feature logs)",
        "bot",
        logs.LogBatch,
        logs.LogBatchAccepted,
    ),
    Route(
        "post",
        "/v1/jobs/logs",
        "Send several jobs' log lines at once (feature logs_bulk)",
        "bot",
        logs.BulkLogRequest,
        logs.BulkLogResponse,
    ),
    Route("get", "/v1/bots", "List bots", "admin", None, m.BotList),
    Route("get", "/v1/bots/{bot_id}", "One bot", "admin", None, m.BotView),
    Route(
        "patch",
        "/v1/bots/{bot_id}",
        "Change a bot's assignment or send it a command",
        "admin",
        m.PatchBotRequest,
        m.BotView,
    ),
    Route(
        "post",
        "/v1/bots/{bot_id}/revoke",
        "Revoke a bot: its token dies, its jobs are queued again, its bot_key is refused",
        "admin",
        None,
        m.BotView,
    ),
    Route(
        "post",
        "/v1/bots/{bot_id}/allow",
        "Lift a bot's revocation: its bot_key may register again",
        "admin",
        None,
        m.BotView,
    ),
    Route("get", "/v1/stats", "Counts and throughput", "admin", None, m.Stats),
    Route("get", "/v1/whoami", "The calling token's name and role", "token", None, m.WhoAmI),
    Route(
        "post",
        "/v1/tokens",
        "Create a role token (its secret is shown once)",
        "admin",
        m.CreateTokenRequest,
        m.CreatedToken,
        201,
    ),
    Route("get", "/v1/tokens", "List the tokens not revoked", "admin", None, m.TokenList),
    Route(
        "delete",
        "/v1/tokens/{token_id}",
        "Revoke a token: its next call is refused",
        "admin",
        None,
        m.TokenView,
    ),
    Route(
        "put",
        "/v1/limits/{name}",
        "Create or change a fleet-wide limit",
        "token",
        lim.PutLimitRequest,
        lim.LimitView,
    ),
    Route(
        "get", "/v1/limits", "Every limit, its running jobs and rate", "token", None, lim.LimitList
    ),
    Route("delete", "/v1/limits/{name}", "Remove a limit", "token", None, lim.LimitView),
    Route(
        "put",
        "/v1/schedules/{name}",
        "Create or replace a schedule (exactly one of cron and every_s)",
        "admin",
        sched.PutScheduleRequest,
        sched.ScheduleView,
    ),
    Route(
        "get",
        "/v1/schedules",
        "Every schedule, its next run and last job",
        "admin",
        None,
        sched.ScheduleList,
    ),
    Route(
        "delete",
        "/v1/schedules/{name}",
        "Delete a schedule (the jobs it made stay)",
        "admin",
        None,
        sched.ScheduleDeleted,
    ),
    Route("get", "/healthz", "Process alive", None, None, m.Health),
    Route("get", "/readyz", "Store reachable", None, None, m.Health),
)

_ERROR_STATUSES = {
    "400": "Malformed or invalid body; the message names the field",
    "401": "Missing or bad token",
    "403": "Token valid but not allowed",
    "404": "Unknown id",
    "409": "Conflict: lease lost or job already terminal",
    "413": "Body too large",
}

_SECURITY = {
    "admin": "adminToken",
    "enroll": "enrollToken",
    "bot": "botToken",
    "token": "roleToken",
}


def _ref(kind: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{kind.__name__}"}


def _operation(route: Route) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": route.summary, "operationId": _operation_id(route)}
    params = [
        {"name": name.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
        for name in route.path.split("/")
        if name.startswith("{")
    ]
    params += [
        {"name": name, "in": "query", "required": False, "schema": {"type": kind}}
        for name, kind in route.query
    ]
    if params:
        operation["parameters"] = params
    if route.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(route.request)}},
        }
    responses: dict[str, Any] = {}
    if route.response is not None:
        responses[str(route.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": _ref(route.response)}},
        }
    for status, text in _ERROR_STATUSES.items():
        responses[status] = {
            "description": text,
            "content": {"application/json": {"schema": _ref(m.ErrorResponse)}},
        }
    operation["responses"] = responses
    if route.auth is not None:
        operation["security"] = [{_SECURITY[name]: []} for name in route.auth.split(" or ")]
    return operation


def _operation_id(route: Route) -> str:
    words = [w for w in route.path.replace("{", "").replace("}", "").split("/") if w and w != "v1"]
    return route.method + "_" + "_".join(words)


def generate() -> dict[str, Any]:
    kinds = {r.request for r in ROUTES if r.request} | {r.response for r in ROUTES if r.response}
    kinds.add(m.ErrorResponse)
    ordered = sorted(kinds, key=lambda k: k.__name__)
    _, components = msgspec.json.schema_components(
        ordered, ref_template="#/components/schemas/{name}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "botfleet",
            "version": __version__,
            "description": "The botfleet coordinator API (docs/protocol.md).",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                name: {"type": "http", "scheme": "bearer"} for name in _SECURITY.values()
            },
        },
    }
