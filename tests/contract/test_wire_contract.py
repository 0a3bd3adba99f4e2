"""The seed's message shapes hold, checked with jsonschema against the generated OpenAPI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from botfleet.protocol import ProtocolError, decode, encode
from botfleet.protocol import messages as m
from botfleet.protocol.openapi import ROUTES, generate

# A copy of ../shared/seed-fixtures, kept in the repository so a clean checkout tests alone:
# TestSeedShapes checks these copies everywhere; only their likeness to the originals needs
# the originals beside the checkout.
FIXTURES = Path(__file__).parent / "fixtures"
SHARED_SEED = Path(__file__).resolve().parents[3] / "shared" / "seed-fixtures"


def _seed(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.skipif(
    not SHARED_SEED.is_dir(),
    reason="no ../shared/seed-fixtures beside this checkout to compare the copies with "
    "(the copies themselves are still tested)",
)
@pytest.mark.parametrize("name", ["register_response.json", "claim_jobs_response.json"])
def test_fixture_copies_match_the_shared_seed(name: str) -> None:
    assert _seed(name) == json.loads((SHARED_SEED / name).read_text())


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return generate()


def _validator(spec: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}
    return jsonschema.Draft202012Validator(schema)


def _errors(spec: dict[str, Any], name: str, document: Any) -> list[str]:
    return [e.message for e in _validator(spec, name).iter_errors(document)]


REGISTER_REQUEST = {
    "bot_key": "3f5a…",
    "instance_id": "inst-1",
    "version": "1.0.0",
    "capabilities": ["sum", "subtract"],
    "resources": {"cpu_cores": 2, "mem_mb": 2048},
    "constraints": {},
    "meta": {"hostname": "worker-1", "os": "linux"},
}


class TestSchemasAreValid:
    def test_every_component_is_a_valid_json_schema(self, spec: dict[str, Any]) -> None:
        meta = jsonschema.Draft202012Validator(jsonschema.Draft202012Validator.META_SCHEMA)
        schemas = spec["components"]["schemas"]
        invalid = {
            name: [error.message for error in meta.iter_errors(schema)]
            for name, schema in schemas.items()
        }
        assert {name: errors for name, errors in invalid.items() if errors} == {}
        assert {"RegisterRequest", "ClaimResponse", "JobView", "ErrorResponse"} <= set(schemas)

    def test_every_route_references_known_components(self, spec: dict[str, Any]) -> None:
        names = set(spec["components"]["schemas"])
        text = json.dumps(spec["paths"])
        for route in ROUTES:
            for kind in (route.request, route.response):
                if kind is not None:
                    assert kind.__name__ in names
                    assert f"#/components/schemas/{kind.__name__}" in text


class TestSeedShapes:
    def test_register_request(self, spec: dict[str, Any]) -> None:
        assert _errors(spec, "RegisterRequest", REGISTER_REQUEST) == []
        assert decode(json.dumps(REGISTER_REQUEST), m.RegisterRequest).capabilities == [
            "sum",
            "subtract",
        ]

    @pytest.mark.parametrize(
        ("change", "field"),
        [
            ({"capabilities": []}, "$.capabilities"),
            ({"version": "1.0"}, "$.version"),
            ({"bot_key": 7}, "$.bot_key"),
        ],
    )
    def test_register_request_rejects(
        self, spec: dict[str, Any], change: dict[str, Any], field: str
    ) -> None:
        document = REGISTER_REQUEST | change
        assert _errors(spec, "RegisterRequest", document)
        with pytest.raises(ProtocolError) as caught:
            decode(json.dumps(document), m.RegisterRequest)
        assert caught.value.field == field

    def test_seed_register_response_is_accepted(self, spec: dict[str, Any]) -> None:
        seed = _seed("register_response.json")
        assert _errors(spec, "RegisterResponse", seed) == []
        response = decode(json.dumps(seed), m.RegisterResponse)
        assert response.bot_id == "bot_abc123"
        assert response.auth is not None and response.auth.expires_in == 3600
        assert response.config is not None and response.config.heartbeat_interval == 30
        assert response.config.features == []  # a seed server offers no extensions

    def test_seed_claim_response_is_accepted(self, spec: dict[str, Any]) -> None:
        seed = _seed("claim_jobs_response.json")
        assert _errors(spec, "ClaimResponse", seed) == []
        response = decode(json.dumps(seed), m.ClaimResponse)
        assert [job.id for job in response.jobs] == ["job_550e8400", "job_660f9511", "job_771fa622"]
        assert response.jobs[2].attempt == 2
        assert response.jobs[0].metadata["priority"] == "normal"

    def test_heartbeat_request(self, spec: dict[str, Any]) -> None:
        document = {
            "instance_id": "inst-1",
            "running": [{"job_id": "job_1", "op": "sum", "elapsed_ms": 1200, "progress": 0.5}],
            "metrics": {"cpu": 0.25, "mem_mb": 512},
            "state": "PROCESS",
        }
        assert _errors(spec, "HeartbeatRequest", document) == []
        assert _errors(spec, "HeartbeatRequest", document | {"metrics": {"cpu": 2}})
        # Finished jobs whose reports wait (an addition): left out when there are none.
        assert _errors(spec, "HeartbeatRequest", document | {"unreported": ["job_2"]}) == []
        assert _errors(spec, "HeartbeatRequest", document | {"unreported": [""]})
        assert "unreported" not in json.loads(encode(m.HeartbeatRequest(instance_id="i")))

    # Up to 100 in the seed's contract; up to 1000 with the `prefetch` feature (the
    # coordinator refuses 101..1000 with 400 when it does not offer the feature).
    @pytest.mark.parametrize(
        ("limit", "valid"), [(0, False), (1, True), (100, True), (1000, True), (1001, False)]
    )
    def test_claim_request_limit(self, spec: dict[str, Any], limit: int, valid: bool) -> None:
        document = {"bot_id": "bot_1", "operations": ["sum"], "limit": limit, "wait_ms": 0}
        assert (_errors(spec, "ClaimRequest", document) == []) is valid
        if valid:
            assert decode(json.dumps(document), m.ClaimRequest).limit == limit
        else:
            with pytest.raises(ProtocolError, match=r"\$\.limit"):
                decode(json.dumps(document), m.ClaimRequest)

    def test_claim_request_carrying_reports(self, spec: dict[str, Any]) -> None:
        """`report_on_claim`: the seed's claim plus `instance_id` and `reports`."""
        request = m.ClaimRequest(bot_id="bot_1", operations=["sum"], limit=2)
        seed_shape = json.loads(encode(request))
        assert seed_shape == {"bot_id": "bot_1", "operations": ["sum"], "limit": 2, "wait_ms": 0}
        request.instance_id = "inst-1"
        request.reports = [
            m.ReportItem(job_id="job_1", action="complete", attempt=1, result={"result": 3}),
            m.ReportItem(job_id="job_2", action="fail", error="boom", retryable=False),
        ]
        document = json.loads(encode(request))
        assert _errors(spec, "ClaimRequest", document) == []
        assert decode(json.dumps(document), m.ClaimRequest) == request
        assert _errors(spec, "ClaimRequest", document | {"reports": [{"job_id": "job_1"}]})

    def test_complete_report(self, spec: dict[str, Any]) -> None:
        document = {"instance_id": "inst-1", "attempt": 1, "result": {"result": 100}}
        assert _errors(spec, "CompleteRequest", document) == []
        assert _errors(spec, "CompleteRequest", document | {"result": "100"})

    def test_fail_report(self, spec: dict[str, Any]) -> None:
        document = {"instance_id": "inst-1", "error": "boom", "retry_after_ms": 5000}
        assert _errors(spec, "FailRequest", document) == []
        assert _errors(spec, "FailRequest", document | {"error": {"text": "boom"}})
        assert _errors(spec, "FailRequest", {"instance_id": "inst-1"})  # error is required
        assert decode(json.dumps(document), m.FailRequest).retryable is True

    def test_bare_server_minimal_answers_decode(self) -> None:
        assert decode(b'{"bot_id": "bot_1"}', m.RegisterResponse).config is None
        heartbeat = decode(b'{"lease_extended_to": "2026-01-19T10:15:00Z"}', m.HeartbeatResponse)
        assert heartbeat.command is None and heartbeat.cancel == []

    def test_job_view_attempts_used(self, spec: dict[str, Any]) -> None:
        """An addition: the attempts charged against max_attempts, beside the fencing
        `attempt`; optional, so an older coordinator's view still validates and decodes."""
        older = {
            "id": "job_1", "op": "sum", "payload": {}, "state": "running", "attempt": 4,
            "max_attempts": 3, "created_at": "2026-01-19T10:15:00Z",
        }  # fmt: skip
        assert _errors(spec, "JobView", older) == []
        assert decode(json.dumps(older), m.JobView).attempts_used is msgspec.UNSET
        assert _errors(spec, "JobView", older | {"attempts_used": 2}) == []
        assert _errors(spec, "JobView", older | {"attempts_used": -1})
        assert decode(json.dumps(older | {"attempts_used": 2}), m.JobView).attempts_used == 2
        view = decode(json.dumps(older), m.JobView)
        assert "attempts_used" not in json.loads(encode(view))


class TestRoundTrip:
    def test_encoded_responses_validate_against_their_schema(self, spec: dict[str, Any]) -> None:
        samples: list[Any] = [
            m.RegisterResponse(
                bot_id="bot_1",
                auth=m.Auth(access_token="t", expires_in=3600),
                assignment=m.Assignment(operations=["sum"], max_concurrency=2),
                config=m.BotConfig(heartbeat_interval=30, features=list(m.ALL_FEATURES)),
            ),
            m.HeartbeatResponse(lease_until="2026-01-19T10:15:00Z", command="drain"),
            m.ClaimResponse(jobs=[m.ClaimedJob(id="job_1", op="sum", payload={"a": 1})]),
            m.ClaimResponse(jobs=[], results=[m.ReportResult(job_id="job_0", status="conflict")]),
            m.BatchReportResponse(results=[m.ReportResult(job_id="job_1", status="accepted")]),
            m.JobView(
                id="job_1",
                op="sum",
                payload={},
                state="queued",
                attempt=4,
                max_attempts=3,
                attempts_used=2,
                created_at="2026-01-19T10:15:00Z",
            ),
            m.ErrorResponse(error=m.ErrorBody(code="invalid_body", message="$.limit")),
        ]
        for sample in samples:
            document = json.loads(encode(sample))
            assert _errors(spec, type(sample).__name__, document) == [], sample
