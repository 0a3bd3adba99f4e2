"""The wire, pinned by hand-written documents: one per request and per response of every
call of the contract (documents/*.json), written from the contract, not from the code.

Each document must decode with its message struct, validate against the schema that
`/openapi.json` gives its route, and encode back to itself: every field it states comes
back with the same name, value and JSON type, and every field it leaves out decoded to
its default. So a field renamed or retyped in a message struct fails here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from botfleet.protocol import ProtocolError, decode, encode
from botfleet.protocol import joblogs as logs
from botfleet.protocol import limits as lim
from botfleet.protocol import messages as m
from botfleet.protocol import prefetch as pre
from botfleet.protocol import schedules as sched
from botfleet.protocol.openapi import ROUTES, generate

DOCUMENTS = Path(__file__).parent / "documents"


@dataclass(frozen=True)
class Call:
    """One call of the contract and the names of its documents (None: it has no body)."""

    method: str
    path: str
    status: int
    request: str | None
    request_kind: type[Any] | None
    response: str
    response_kind: type[Any]


CALLS: tuple[Call, ...] = (
    # Bot ⇄ coordinator, the seed's calls.
    Call("post", "/v1/bots/register", 201, "register", m.RegisterRequest,
         "register", m.RegisterResponse),
    Call("put", "/v1/bots/{bot_id}/heartbeat", 200, "heartbeat", m.HeartbeatRequest,
         "heartbeat", m.HeartbeatResponse),
    Call("post", "/v1/jobs/claim", 200, "claim", m.ClaimRequest, "claim", m.ClaimResponse),
    Call("post", "/v1/jobs/{job_id}/complete", 200, "complete", m.CompleteRequest,
         "complete", m.ReportAccepted),
    Call("post", "/v1/jobs/{job_id}/fail", 200, "fail", m.FailRequest,
         "fail", m.ReportAccepted),
    # The extensions a coordinator lists in `config.features`.
    Call("post", "/v1/jobs/claim", 200, "claim_long_poll", m.ClaimRequest,
         "claim_long_poll", m.ClaimResponse),
    Call("post", "/v1/jobs/report", 200, "batch_report", m.BatchReportRequest,
         "batch_report", m.BatchReportResponse),
    Call("post", "/v1/jobs/{job_id}/progress", 200, "progress", m.ProgressRequest,
         "progress", m.ReportAccepted),
    Call("delete", "/v1/bots/{bot_id}", 200, "deregister", m.DeregisterRequest,
         "deregister", m.ReportAccepted),
    Call("post", "/v1/jobs/claim", 200, "claim_with_reports", m.ClaimRequest,
         "claim_with_reports", m.ClaimResponse),
    Call("post", "/v1/jobs/claim", 200, "claim_with_id", m.ClaimRequest,
         "claim_with_id", m.ClaimResponse),
    # Prefetch: claims beyond the free slots, held jobs in heartbeats, releases.
    Call("post", "/v1/jobs/claim", 200, "claim_with_prefetch", m.ClaimRequest,
         "claim_with_prefetch", m.ClaimResponse),
    Call("put", "/v1/bots/{bot_id}/heartbeat", 200, "heartbeat_holding", m.HeartbeatRequest,
         "heartbeat", m.HeartbeatResponse),
    Call("post", "/v1/jobs/release", 200, "release", pre.ReleaseRequest,
         "release", pre.ReleaseResponse),
    # Producer and operator.
    Call("post", "/v1/jobs", 201, "submit", m.SubmitJob, "submit", m.SubmitResponse),
    Call("post", "/v1/jobs/bulk", 201, "bulk_submit", m.BulkSubmitRequest,
         "bulk_submit", m.BulkSubmitResponse),
    Call("get", "/v1/jobs/{job_id}", 200, None, None, "get_job", m.JobView),
    # Submit's expires_in_ms, and a job that expired while queued.
    Call("post", "/v1/jobs", 201, "submit_expiring", m.SubmitJob, "submit", m.SubmitResponse),
    Call("post", "/v1/jobs/bulk", 201, "bulk_submit_expiring", m.BulkSubmitRequest,
         "bulk_submit", m.BulkSubmitResponse),
    Call("get", "/v1/jobs/{job_id}", 200, None, None, "get_job_expired", m.JobView),
    # Labels: a bot that declares them, jobs that require them, one waiting for a bot.
    Call("post", "/v1/bots/register", 201, "register_labelled", m.RegisterRequest,
         "register", m.RegisterResponse),
    Call("post", "/v1/jobs", 201, "submit_requiring", m.SubmitJob, "submit", m.SubmitResponse),
    Call("post", "/v1/jobs/bulk", 201, "bulk_submit_requiring", m.BulkSubmitRequest,
         "bulk_submit", m.BulkSubmitResponse),
    Call("get", "/v1/jobs/{job_id}", 200, None, None, "get_job_waiting", m.JobView),
    Call("get", "/v1/bots/{bot_id}", 200, None, None, "get_bot_labelled", m.BotView),
    # Submit's `after`: a graph in one bulk submit, and a job waiting for others.
    Call("post", "/v1/jobs/bulk", 201, "bulk_submit_graph", m.BulkSubmitRequest,
         "bulk_submit", m.BulkSubmitResponse),
    Call("get", "/v1/jobs/{job_id}", 200, None, None, "get_job_after", m.JobView),
    Call("get", "/v1/jobs", 200, None, None, "list_jobs", m.JobList),
    Call("post", "/v1/jobs/{job_id}/cancel", 200, None, None, "cancel_job", m.JobView),
    Call("post", "/v1/jobs/{job_id}/retry", 200, None, None, "retry_job", m.JobView),
    Call("get", "/v1/bots", 200, None, None, "list_bots", m.BotList),
    Call("get", "/v1/bots/{bot_id}", 200, None, None, "get_bot", m.BotView),
    Call("patch", "/v1/bots/{bot_id}", 200, "patch_bot_assignment", m.PatchBotRequest,
         "patch_bot", m.BotView),
    Call("patch", "/v1/bots/{bot_id}", 200, "patch_bot_command", m.PatchBotRequest,
         "patch_bot", m.BotView),
    Call("patch", "/v1/bots/{bot_id}", 200, "patch_bot_follow_bot", m.PatchBotRequest,
         "patch_bot", m.BotView),
    Call("post", "/v1/bots/{bot_id}/revoke", 200, None, None, "revoke_bot", m.BotView),
    Call("post", "/v1/bots/{bot_id}/allow", 200, None, None, "allow_bot", m.BotView),
    # Job logs and attempts (feature `logs` for the bot's batches).
    Call("post", "/v1/jobs/{job_id}/logs", 200, "job_logs", logs.LogBatch,
         "job_logs", logs.LogBatchAccepted),
    Call("post", "/v1/jobs/logs", 200, "job_logs_bulk", logs.BulkLogRequest,
         "job_logs_bulk", logs.BulkLogResponse),
    Call("get", "/v1/jobs/{job_id}/logs", 200, None, None, "read_job_logs", logs.JobLogs),
    Call("get", "/v1/jobs/{job_id}/attempts", 200, None, None, "list_attempts",
         logs.AttemptList),
    Call("get", "/v1/stats", 200, None, None, "stats", m.Stats),
    Call("get", "/v1/whoami", 200, None, None, "whoami", m.WhoAmI),
    # Role tokens.
    Call("post", "/v1/tokens", 201, "create_token", m.CreateTokenRequest,
         "create_token", m.CreatedToken),
    Call("post", "/v1/tokens", 201, "create_token_no_expiry", m.CreateTokenRequest,
         "create_token_no_expiry", m.CreatedToken),
    Call("get", "/v1/tokens", 200, None, None, "list_tokens", m.TokenList),
    Call("delete", "/v1/tokens/{token_id}", 200, None, None, "revoke_token", m.TokenView),
    # Fleet-wide limits, and jobs that name them.
    Call("put", "/v1/limits/{name}", 200, "put_limit", lim.PutLimitRequest,
         "put_limit", lim.LimitView),
    Call("get", "/v1/limits", 200, None, None, "list_limits", lim.LimitList),
    Call("delete", "/v1/limits/{name}", 200, None, None, "delete_limit", lim.LimitView),
    Call("post", "/v1/jobs", 201, "submit_limited", m.SubmitJob, "submit", m.SubmitResponse),
    Call("get", "/v1/jobs/{job_id}", 200, None, None, "get_job_limited", m.JobView),
    # Schedules.
    Call("put", "/v1/schedules/{name}", 200, "put_schedule", sched.PutScheduleRequest,
         "put_schedule", sched.ScheduleView),
    Call("put", "/v1/schedules/{name}", 200, "put_schedule_every", sched.PutScheduleRequest,
         "put_schedule_every", sched.ScheduleView),
    Call("get", "/v1/schedules", 200, None, None, "list_schedules", sched.ScheduleList),
    Call("delete", "/v1/schedules/{name}", 200, None, None, "delete_schedule",
         sched.ScheduleDeleted),
    Call("get", "/healthz", 200, None, None, "healthz", m.Health),
    Call("get", "/readyz", 200, None, None, "readyz", m.Health),
)  # fmt: skip

ERROR = "error.response.json"


@dataclass(frozen=True)
class Document:
    call: Call
    side: str  # "request" or "response"

    @property
    def file(self) -> str:
        stem = self.call.request if self.side == "request" else self.call.response
        return f"{stem}.{self.side}.json"

    @property
    def kind(self) -> type[Any]:
        kind = self.call.request_kind if self.side == "request" else self.call.response_kind
        assert kind is not None
        return kind

    def read(self) -> Any:
        return json.loads((DOCUMENTS / self.file).read_text())

    def __str__(self) -> str:
        return f"{self.call.method.upper()} {self.call.path} {self.file}"


EVERY_DOCUMENT = [
    Document(call, side)
    for call in CALLS
    for side in ("request", "response")
    if side == "response" or call.request is not None
]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return generate()


def _schema_errors(spec: dict[str, Any], body: dict[str, Any], document: Any) -> list[str]:
    schema = body["content"]["application/json"]["schema"]
    validator = jsonschema.Draft202012Validator({**schema, "components": spec["components"]})
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(document)]


def _route_body(spec: dict[str, Any], document: Document) -> dict[str, Any]:
    operation = spec["paths"][document.call.path][document.call.method]
    body: dict[str, Any] = (
        operation["requestBody"]
        if document.side == "request"
        else operation["responses"][str(document.call.status)]
    )
    return body


def _default(field: msgspec.structs.FieldInfo) -> Any:
    if field.default is not msgspec.NODEFAULT:
        return field.default
    assert field.default_factory is not msgspec.NODEFAULT, f"{field.name} is required"
    return field.default_factory()


def stated(value: Any, encoded: Any, document: Any, where: str = "$") -> Any:
    """The part of `encoded` (the encoding of `value`) that `document` states.

    A struct field the document leaves out must hold its default; one it states is kept
    as encoded, so the caller can compare the two.
    """
    if isinstance(value, msgspec.Struct) and isinstance(document, dict):
        kept: dict[str, Any] = {}
        for field in msgspec.structs.fields(value):
            here = f"{where}.{field.encode_name}"
            if field.encode_name in document:
                kept[field.encode_name] = stated(
                    getattr(value, field.name),
                    encoded[field.encode_name],
                    document[field.encode_name],
                    here,
                )
            else:
                assert getattr(value, field.name) == _default(field), f"{here} is not its default"
        return kept
    if isinstance(value, list) and isinstance(document, list) and len(value) == len(document):
        return [
            stated(item, encoded[i], document[i], f"{where}[{i}]") for i, item in enumerate(value)
        ]
    return encoded


def _as_text(document: Any) -> str:
    """JSON text, so that 30 and 30.0 differ as they do on the wire."""
    return json.dumps(document, sort_keys=True)


@pytest.mark.parametrize("document", EVERY_DOCUMENT, ids=str)
def test_the_document_decodes_and_encodes_back_to_itself(document: Document) -> None:
    written = document.read()

    message = decode(json.dumps(written), document.kind)

    back = stated(message, json.loads(encode(message)), written)
    assert back == written
    assert _as_text(back) == _as_text(written)


@pytest.mark.parametrize("document", EVERY_DOCUMENT, ids=str)
def test_the_document_validates_against_its_route(spec: dict[str, Any], document: Document) -> None:
    body = _route_body(spec, document)

    assert body["content"]["application/json"]["schema"] == {
        "$ref": f"#/components/schemas/{document.kind.__name__}"
    }
    assert _schema_errors(spec, body, document.read()) == []


def test_every_route_has_its_documents() -> None:
    routes = {(route.method, route.path): route for route in ROUTES}
    covered = {(call.method, call.path) for call in CALLS}
    assert covered == set(routes)
    for call in CALLS:
        route = routes[(call.method, call.path)]
        assert (call.request_kind, call.response_kind, call.status) == (
            route.request,
            route.response,
            route.status,
        ), call


def test_every_document_belongs_to_a_call() -> None:
    named = {document.file for document in EVERY_DOCUMENT} | {ERROR}
    assert {path.name for path in DOCUMENTS.glob("*.json")} == named


def test_the_error_shape(spec: dict[str, Any]) -> None:
    written = json.loads((DOCUMENTS / ERROR).read_text())
    message = decode(json.dumps(written), m.ErrorResponse)
    assert (message.error.code, message.error.message) == (
        "invalid_body",
        "Expected `int` >= 1 - at `$.limit`",
    )
    assert json.loads(encode(message)) == written
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status in ("400", "401", "403", "404", "409", "413"):
                body = operation["responses"][status]
                assert _schema_errors(spec, body, written) == [], (method, path, status)
                assert body["content"]["application/json"]["schema"]["$ref"].endswith(
                    "/ErrorResponse"
                )


@pytest.mark.parametrize(
    ("file", "kind", "change"),
    [
        ("register.request.json", m.RegisterRequest, {"bot_key": 7}),
        ("claim.request.json", m.ClaimRequest, {"limit": 0}),
        ("heartbeat.request.json", m.HeartbeatRequest, {"metrics": {"cpu": 1.5}}),
        ("fail.request.json", m.FailRequest, {"retryable": "no"}),
        ("submit.request.json", m.SubmitJob, {"priority": "high"}),
    ],
)
def test_a_document_off_the_contract_is_refused(
    spec: dict[str, Any], file: str, kind: type, change: dict[str, Any]
) -> None:
    """The checks above have teeth: a wrong type or range fails both the struct and the schema."""
    document = json.loads((DOCUMENTS / file).read_text()) | change
    with pytest.raises(ProtocolError, match=r"\$\."):
        decode(json.dumps(document), kind)
    schema = {"$ref": f"#/components/schemas/{kind.__name__}", "components": spec["components"]}
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(document))
