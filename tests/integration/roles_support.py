"""Role tokens for in-process tests: issued through the API with the admin token."""

from __future__ import annotations

from typing import Any

from tests.integration.harness import ADMIN, Api


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def issue(api: Api, name: str, role: str, **fields: Any) -> dict[str, Any]:
    """POST /v1/tokens; the answer (with the secret in `token`)."""
    body = {"name": name, "role": role, **fields}
    response = await api.client.post("/v1/tokens", json=body, headers=ADMIN)
    assert response.status == 201, await response.text()
    return dict(await response.json())


async def issue_headers(api: Api, name: str, role: str, **fields: Any) -> dict[str, str]:
    return bearer((await issue(api, name, role, **fields))["token"])
