"""Role tokens over HTTP: created, listed and revoked by the admin; every bad credential
gets its own clear answer; `submitted_by` on jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from botfleet.clock import FakeClock
from coordinator.app import create_app
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, ENROLL, Api, server_config
from tests.integration.roles_support import bearer, issue, issue_headers
from tests.support.backends import BACKENDS, backend_stores


async def _get(api: Api, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    response = await api.client.get(path, headers=headers)
    return response.status, await response.json()


async def test_a_token_is_created_listed_and_revoked(api: Api) -> None:
    created = await issue(api, "ci", "producer", expires_in_s=3600)
    assert created["name"] == "ci" and created["role"] == "producer"
    assert created["id"].startswith("tok_") and created["token"].startswith("bft_")
    assert created["expires_at"] is not None

    status, listed = await _get(api, "/v1/tokens", ADMIN)
    assert status == 200
    (entry,) = listed["tokens"]
    assert entry["id"] == created["id"] and entry["role"] == "producer"
    assert "token" not in entry  # the secret is shown once, at creation
    assert entry["last_used_at"] is None

    status, me = await _get(api, "/v1/whoami", bearer(created["token"]))
    assert (status, me) == (200, {"name": "ci", "role": "producer"})

    response = await api.client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN)
    assert response.status == 200
    assert (await response.json())["revoked_at"] is not None
    status, listed = await _get(api, "/v1/tokens", ADMIN)
    assert listed["tokens"] == []
    response = await api.client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN)
    assert response.status == 404
    assert (await response.json())["error"]["code"] == "token_not_found"


async def test_last_used_is_kept_without_a_write_per_call(api: Api) -> None:
    headers = await issue_headers(api, "ci", "reader")
    first_use = api.clock.now()
    for _ in range(3):
        assert (await _get(api, "/v1/stats", headers))[0] == 200
        api.clock.advance(10)
    _, listed = await _get(api, "/v1/tokens", ADMIN)
    used = listed["tokens"][0]["last_used_at"]
    assert used is not None and used.startswith(first_use.strftime("%Y-%m-%dT%H:%M:%S"))
    api.clock.advance(60)
    await _get(api, "/v1/stats", headers)
    _, listed = await _get(api, "/v1/tokens", ADMIN)
    assert listed["tokens"][0]["last_used_at"] > used


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "ci", "role": "superuser"}, "$.role"),
        ({"name": "ci"}, "role"),
        ({"name": "", "role": "reader"}, "$.name"),
        ({"name": "has space", "role": "reader"}, "$.name"),
        ({"name": "x" * 65, "role": "reader"}, "$.name"),
        ({"name": "admin", "role": "reader"}, "$.name"),
        ({"name": "ci", "role": "reader", "expires_in_s": 0}, "$.expires_in_s"),
        ({"name": "ci", "role": "reader", "expires_in_s": "30d"}, "$.expires_in_s"),
    ],
)
async def test_a_bad_request_names_the_field(api: Api, body: dict[str, Any], field: str) -> None:
    response = await api.client.post("/v1/tokens", json=body, headers=ADMIN)
    assert response.status == 400
    data = await response.json()
    assert data["error"]["code"] == "invalid_body" and field in data["error"]["message"]


async def test_names_are_unique_until_revoked(api: Api) -> None:
    first = await issue(api, "ci", "producer")
    response = await api.client.post(
        "/v1/tokens", json={"name": "ci", "role": "reader"}, headers=ADMIN
    )
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "token_name_taken"
    await api.client.delete(f"/v1/tokens/{first['id']}", headers=ADMIN)
    assert (await issue(api, "ci", "reader"))["role"] == "reader"


async def test_only_the_admin_manages_tokens(api: Api) -> None:
    operator = await issue_headers(api, "ops", "operator")
    for method, path in (("GET", "/v1/tokens"), ("POST", "/v1/tokens"), ("DELETE", "/v1/tokens/t")):
        response = await api.client.request(
            method, path, json={"name": "x", "role": "admin"}, headers=operator
        )
        assert response.status == 403
        message = (await response.json())["error"]["message"]
        assert message == "this call needs the admin role; token 'ops' has the role operator"


class TestBadCredentials:
    async def test_an_unknown_token_is_401(self, api: Api) -> None:
        for token in ("bft_never-issued", "guess"):
            status, data = await _get(api, "/v1/jobs", bearer(token))
            assert (status, data["error"]["code"]) == (401, "unauthorized")

    async def test_a_revoked_token_is_401_token_revoked_at_once(self, api: Api) -> None:
        created = await issue(api, "ci", "reader")
        assert (await _get(api, "/v1/jobs", bearer(created["token"])))[0] == 200
        await api.client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN)
        status, data = await _get(api, "/v1/jobs", bearer(created["token"]))
        assert (status, data["error"]["code"]) == (401, "token_revoked")
        assert "'ci' was revoked" in data["error"]["message"]

    async def test_an_expired_token_is_401_token_expired(self, api: Api) -> None:
        headers = await issue_headers(api, "temp", "reader", expires_in_s=60)
        assert (await _get(api, "/v1/jobs", headers))[0] == 200
        api.clock.advance(60)
        status, data = await _get(api, "/v1/jobs", headers)
        assert (status, data["error"]["code"]) == (401, "token_expired")
        assert "'temp' expired at" in data["error"]["message"]

    async def test_a_valid_token_of_the_wrong_role_is_403_naming_the_roles(self, api: Api) -> None:
        headers = await issue_headers(api, "ci", "producer")
        status, data = await _get(api, "/v1/bots", headers)
        assert (status, data["error"]["code"]) == (403, "forbidden")
        assert data["error"]["message"] == (
            "this call needs one of the roles admin, operator, reader; "
            "token 'ci' has the role producer"
        )

    async def test_a_role_token_on_a_bot_route_is_403(self, api: Api) -> None:
        headers = await issue_headers(api, "ops", "operator")
        body = {"bot_id": "bot_x", "operations": ["sum"]}
        response = await api.client.post("/v1/jobs/claim", json=body, headers=headers)
        assert response.status == 403
        assert "bot's own token" in (await response.json())["error"]["message"]

    async def test_an_issued_enroll_token_registers_a_bot(self, api: Api) -> None:
        headers = await issue_headers(api, "rack-7", "enroll")
        body = {"bot_key": "k", "instance_id": "i", "version": "1.0.0", "capabilities": ["sum"]}
        response = await api.client.post("/v1/bots/register", json=body, headers=headers)
        assert response.status == 201
        assert (await _get(api, "/v1/jobs", headers))[0] == 403


async def test_jobs_record_who_submitted_them(api: Api) -> None:
    producer = await issue_headers(api, "ci", "producer")
    response = await api.client.post("/v1/jobs", json={"op": "sum"}, headers=producer)
    by_producer = (await response.json())["id"]
    by_admin = await api.submit()
    assert (await api.job(by_producer))["submitted_by"] == "ci"
    assert (await api.job(by_admin))["submitted_by"] == "admin"
    response = await api.client.post(
        "/v1/jobs/bulk", json={"jobs": [{"op": "sum"}, {"op": "sum"}]}, headers=producer
    )
    for job_id in (await response.json())["ids"]:
        assert (await api.job(job_id))["submitted_by"] == "ci"


async def test_the_server_tokens_keep_working(api: Api) -> None:
    assert (await _get(api, "/v1/whoami", ENROLL))[1] == {"name": "enroll", "role": "enroll"}
    assert (await _get(api, "/v1/tokens", ADMIN))[0] == 200


@pytest.fixture(params=BACKENDS)
async def two_apps(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    clock: FakeClock,
    aiohttp_client: ClientFactory,
) -> AsyncIterator[tuple[Api, Api]]:
    """Two coordinator apps on one database, as two processes would be."""
    async with backend_stores(request.param, tmp_path, clock, lambda attempt: 0.0) as stores:
        apps = []
        for name in ("one", "two"):
            app = create_app(server_config(tmp_path / name), stores(), clock)
            apps.append(Api(await aiohttp_client(app), clock))
        yield apps[0], apps[1]


async def test_a_revocation_through_one_coordinator_holds_at_once_in_another(
    two_apps: tuple[Api, Api],
) -> None:
    one, other = two_apps
    created = await issue(one, "ci", "operator")
    headers = bearer(created["token"])
    assert (await _get(other, "/v1/bots", headers))[0] == 200
    response = await one.client.delete(f"/v1/tokens/{created['id']}", headers=ADMIN)
    assert response.status == 200
    status, data = await _get(other, "/v1/bots", headers)
    assert (status, data["error"]["code"]) == (401, "token_revoked")
