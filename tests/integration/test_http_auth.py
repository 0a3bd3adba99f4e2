"""Who may call what: no or a wrong token is 401, a valid token in the wrong place 403.

Every role against every route: tests/integration/test_http_roles.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from botfleet.protocol.openapi import ROUTES, Route
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, ENROLL, Api, Bot, make_app

AUTHED = [route for route in ROUTES if route.auth is not None]


def _route_id(route: Route) -> str:
    return f"{route.method.upper()} {route.path}"


async def _call(api: Api, route: Route, headers: dict[str, str], bot: Bot) -> tuple[int, Any]:
    path = (
        route.path.replace("{bot_id}", bot.id)
        .replace("{job_id}", "job_x")
        .replace("{token_id}", "tok_x")
        .replace("{name}", "name_x")
    )
    kwargs: dict[str, Any] = {"headers": headers}
    if route.request is not None:
        kwargs["json"] = {}
    response = await api.client.request(route.method.upper(), path, **kwargs)
    return response.status, await response.json()


@pytest.fixture
async def bot(api: Api) -> Bot:
    return await api.register()


@pytest.mark.parametrize("route", AUTHED, ids=_route_id)
async def test_no_token_is_401(api: Api, bot: Bot, route: Route) -> None:
    status, data = await _call(api, route, {}, bot)
    assert status == 401, data
    assert data["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("route", AUTHED, ids=_route_id)
async def test_a_wrong_token_is_401(api: Api, bot: Bot, route: Route) -> None:
    for token in ("nonsense", f"{bot.id}.forged-secret"):
        status, data = await _call(api, route, {"Authorization": f"Bearer {token}"}, bot)
        assert status == 401, (token, data)


@pytest.mark.parametrize("route", AUTHED, ids=_route_id)
async def test_a_valid_token_of_another_kind_is_403(api: Api, bot: Bot, route: Route) -> None:
    others = {
        "admin": [ENROLL, bot.headers],
        "enroll": [bot.headers],  # the admin token may register a bot too
        "bot": [ADMIN, ENROLL],
        "token": [bot.headers],
        "bot or admin": [ENROLL],
    }[str(route.auth)]
    for headers in others:
        status, data = await _call(api, route, headers, bot)
        assert status == 403, (headers, data)
        assert data["error"]["code"] == "forbidden"


async def test_a_bots_token_does_not_work_for_another_bot(api: Api) -> None:
    a, b = await api.register(), await api.register()
    # heartbeat and deregister of b with a's token
    response = await api.client.put(
        f"/v1/bots/{b.id}/heartbeat", json={"instance_id": b.instance_id}, headers=a.headers
    )
    assert response.status == 403
    response = await api.client.delete(
        f"/v1/bots/{b.id}", json={"instance_id": b.instance_id}, headers=a.headers
    )
    assert response.status == 403
    # claim in b's name
    response = await api.client.post(
        "/v1/jobs/claim", json={"bot_id": b.id, "operations": ["sum"]}, headers=a.headers
    )
    assert response.status == 403


async def test_open_registration_needs_no_token(
    tmp_path: Path, clock: Any, aiohttp_client: ClientFactory
) -> None:
    client = await aiohttp_client(make_app(tmp_path, clock, open_registration=True))
    body = {"bot_key": "k", "instance_id": "i", "version": "1.0.0", "capabilities": ["sum"]}
    response = await client.post("/v1/bots/register", json=body)
    assert response.status == 201
    # the admin API stays closed
    assert (await client.get("/v1/bots")).status == 401


async def test_whoami_names_the_server_tokens(api: Api) -> None:
    for headers, expected in ((ADMIN, "admin"), (ENROLL, "enroll")):
        response = await api.client.get("/v1/whoami", headers=headers)
        assert response.status == 200
        assert await response.json() == {"name": expected, "role": expected}


async def test_unauthenticated_endpoints(api: Api) -> None:
    for path in ("/healthz", "/readyz", "/metrics", "/openapi.json", "/"):
        response = await api.client.get(path)
        assert response.status == 200, path
