"""One error shape for every failure; bad input is 4xx naming the field, never a 500."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse

from botfleet.clock import FakeClock
from coordinator.config import MIN_BODY_BYTES, ServerConfig
from coordinator.store.sqlite import SQLiteStore
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, Api, make_app

LIMIT = ServerConfig().max_body_bytes


async def _error(response: ClientResponse) -> dict[str, Any]:
    data = await response.json()
    assert set(data) == {"error"}, data
    assert set(data["error"]) == {"code", "message"}, data
    assert response.content_type == "application/json"
    return dict(data["error"])


class TestBodies:
    async def test_malformed_json(self, api: Api) -> None:
        for body in (b"{", b"", b"\xff\xfe", b'{"op": "sum",}'):
            response = await api.client.post("/v1/jobs", data=body, headers=ADMIN)
            assert response.status == 400, body
            assert (await _error(response))["code"] == "malformed_json"

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("/v1/jobs", {"op": "sum", "priority": "high"}, "$.priority"),
            ("/v1/jobs", {"payload": {}}, "op"),
            ("/v1/jobs", {"op": "has space"}, "$.op"),
            ("/v1/jobs", {"op": "sum", "max_attempts": 0}, "$.max_attempts"),
            ("/v1/jobs", [1, 2], "object"),
            ("/v1/jobs/bulk", {"jobs": []}, "$.jobs"),
            ("/v1/jobs/bulk", {"jobs": [{"op": "sum"}, {"op": 5}]}, "$.jobs[1].op"),
            ("/v1/jobs", {"op": "sum", "run_at": "yesterday"}, "$.run_at"),
            ("/v1/jobs", {"op": "sum", "expires_in_ms": 0}, "$.expires_in_ms"),
            ("/v1/jobs", {"op": "sum", "expires_in_ms": -1}, "$.expires_in_ms"),
            ("/v1/jobs", {"op": "sum", "expires_in_ms": "x"}, "$.expires_in_ms"),
            (
                "/v1/jobs/bulk",
                {"jobs": [{"op": "sum"}, {"op": "sum", "expires_in_ms": 0}]},
                "$.jobs[1].expires_in_ms",
            ),
        ],
    )
    async def test_invalid_fields_are_named(
        self, api: Api, path: str, body: Any, field: str
    ) -> None:
        response = await api.client.post(path, json=body, headers=ADMIN)
        assert response.status == 400
        error = await _error(response)
        assert error["code"] == "invalid_body"
        assert field in error["message"]

    async def test_bot_calls_name_fields_too(self, api: Api) -> None:
        bot = await api.register()
        response = await api.client.post(
            "/v1/jobs/claim",
            json={"bot_id": bot.id, "operations": ["sum"], "limit": 1001},
            headers=bot.headers,
        )
        assert response.status == 400
        assert "$.limit" in (await _error(response))["message"]
        response = await api.client.put(
            f"/v1/bots/{bot.id}/heartbeat",
            json={"instance_id": bot.instance_id, "metrics": {"cpu": 2}},
            headers=bot.headers,
        )
        assert response.status == 400
        assert "$.metrics.cpu" in (await _error(response))["message"]

    async def test_an_attempt_too_large_for_the_store_is_named(self, api: Api) -> None:
        """An attempt past any store integer is refused at the door, never a 500."""
        bot = await api.register()
        job_id = await api.submit()
        huge = 2**63
        calls = [
            (f"/v1/jobs/{job_id}/progress", {"progress": 0.5}, "$.attempt"),
            (f"/v1/jobs/{job_id}/complete", {"result": {}}, "$.attempt"),
            (f"/v1/jobs/{job_id}/fail", {"error": "e"}, "$.attempt"),
            (
                "/v1/jobs/report",
                {"reports": [{"job_id": job_id, "action": "complete"}]},
                "$.reports[0].attempt",
            ),
        ]
        for path, body, field in calls:
            if path.endswith("report"):
                body["reports"][0]["attempt"] = huge
            else:
                body["attempt"] = huge
            body["instance_id"] = bot.instance_id
            response = await api.client.post(path, json=body, headers=bot.headers)
            assert response.status == 400, path
            assert field in (await _error(response))["message"], path

    async def test_a_body_over_the_limit_is_413(self, api: Api) -> None:
        body = b'{"op": "sum", "payload": {"blob": "' + b"x" * LIMIT + b'"}}'
        response = await api.client.post("/v1/jobs", data=io.BytesIO(body), headers=ADMIN)
        assert response.status == 413
        error = await _error(response)
        assert error["code"] == "body_too_large" and f"limit {LIMIT} bytes" in error["message"]

    async def test_a_chunked_body_over_the_limit_is_413_too(self, api: Api) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"op": "sum", "payload": {"blob": "'
            for _ in range(LIMIT // 65_536 + 4):
                yield b"x" * 65_536
            yield b'"}}'

        response = await api.client.post("/v1/jobs", data=chunks(), headers=ADMIN)
        assert response.status == 413
        assert (await _error(response))["code"] == "body_too_large"

    async def test_the_limit_is_a_setting(
        self, tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
    ) -> None:
        client = await aiohttp_client(make_app(tmp_path, clock, max_body_bytes=MIN_BODY_BYTES))
        blob = b"x" * MIN_BODY_BYTES
        body = b'{"op": "sum", "payload": {"blob": "' + blob + b'"}}'
        response = await client.post("/v1/jobs", data=io.BytesIO(body), headers=ADMIN)
        assert response.status == 413
        assert f"limit {MIN_BODY_BYTES} bytes" in (await _error(response))["message"]
        body = b'{"op": "sum", "payload": {"blob": "' + blob[:60_000] + b'"}}'
        response = await client.post("/v1/jobs", data=io.BytesIO(body), headers=ADMIN)
        assert response.status == 201, await response.text()


class TestRoutes:
    async def test_unknown_route_is_a_json_404(self, api: Api) -> None:
        response = await api.client.get("/v1/nothing-here", headers=ADMIN)
        assert response.status == 404
        assert (await _error(response))["code"] == "not_found"

    async def test_wrong_method_is_a_json_405(self, api: Api) -> None:
        response = await api.client.delete("/v1/jobs", headers=ADMIN)
        assert response.status == 405
        assert (await _error(response))["code"] == "method_not_allowed"
        assert "POST" in response.headers["Allow"]


class TestStoreFailure:
    async def test_503_with_retry_after(self, api: Api) -> None:
        await api.ctx.store.close()
        response = await api.client.post("/v1/jobs", json={"op": "sum"}, headers=ADMIN)
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await _error(response))["code"] == "store_unavailable"
        ready = await api.client.get("/readyz")
        assert ready.status == 503
        assert (await ready.json())["status"] == "unavailable"
        assert (await api.client.get("/healthz")).status == 200


class TestDatabaseFull:
    """SQLite with no room (`max_page_count`: the same SQLITE_FULL a full disk gives)."""

    async def test_a_full_database_refuses_clearly_and_loses_nothing(
        self, tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory
    ) -> None:
        api = Api(await aiohttp_client(make_app(tmp_path, clock)), clock)
        kept = [await api.submit(payload={"a": n, "b": 1}) for n in range(5)]
        store = api.ctx.store
        assert isinstance(store, SQLiteStore)
        transactions = store._tx
        assert transactions is not None
        writer = transactions.writer  # the one connection every write goes through
        (pages,) = writer.conn.execute("PRAGMA page_count").fetchone()
        writer.conn.execute(f"PRAGMA max_page_count = {pages}")

        big = [{"op": "sum", "payload": {"a": n, "b": 1, "pad": "x" * 2000}} for n in range(200)]
        response = await api.client.post("/v1/jobs/bulk", json={"jobs": big}, headers=ADMIN)
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        error = await _error(response)
        assert error["code"] == "store_full"
        assert "no room left" in error["message"] and "nothing" in error["message"]

        # Nothing of the refused request was written; everything acknowledged is there.
        stats = await api.client.get("/v1/stats", headers=ADMIN)
        assert (await stats.json())["jobs"]["queued"] == 5
        for job_id in kept:
            assert (await api.job(job_id))["state"] == "queued"

        writer.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed
        response = await api.client.post("/v1/jobs/bulk", json={"jobs": big}, headers=ADMIN)
        assert response.status == 201
        stats = await api.client.get("/v1/stats", headers=ADMIN)
        assert (await stats.json())["jobs"]["queued"] == 205
