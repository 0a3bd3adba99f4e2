"""Every route of the app against every role: the access table has a rule for each
route, and each role gets what its rule says (2xx/4xx-but-not-refused where allowed,
403 naming the roles needed where not).

The walk reads aiohttp's own route table, so a route added without a rule in
coordinator/access.py fails here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aiohttp import web

from coordinator.access import RULES, Rule, rule_for
from tests.integration.harness import ADMIN, ENROLL, Api, Bot
from tests.integration.roles_support import issue_headers

# Rules for routes that other parts of the code base register (bot revocation); until
# they are registered here, a rule without its route is expected for these only.
GATE = "this call needs"


@dataclass(frozen=True)
class Caller:
    role: str
    kind: str  # "server" (--admin-token / --enroll-token) or "issued" (POST /v1/tokens)

    def __str__(self) -> str:
        return f"{self.kind}-{self.role}"


CALLERS = [
    Caller("admin", "server"),
    Caller("enroll", "server"),
    *(Caller(role, "issued") for role in ("admin", "operator", "producer", "reader", "enroll")),
]


def _routes(app: web.Application) -> list[tuple[str, str]]:
    """(method, path pattern) of every route aiohttp serves."""
    found = set()
    for route in app.router.routes():
        found.add((route.method, route.resource.canonical if route.resource else ""))
    return sorted(found)


def test_every_rule_names_a_served_route_and_every_route_has_a_rule(api: Api) -> None:
    served = _routes(api.client.app)  # type: ignore[arg-type]
    assert [route for route in served if rule_for(*route) is None] == []
    named = {("GET" if method == "HEAD" else method, path) for method, path in served}
    assert set(RULES) - named == set()  # and no rule for a route that is gone


async def _headers(api: Api, caller: Caller) -> dict[str, str]:
    if caller.kind == "server":
        return ADMIN if caller.role == "admin" else ENROLL
    return await issue_headers(api, f"walker-{caller.role}", caller.role)


def _path(pattern: str, bot: Bot, job_id: str) -> str:
    if pattern == "/static":
        return "/static/dashboard.js"
    return (
        pattern.replace("{bot_id}", bot.id)
        .replace("{job_id}", job_id)
        .replace("{token_id}", "tok_missing")
        .replace("{name}", "walker")
    )


def _verdict(rule: Rule, route: tuple[str, str], role: str, status: int, message: str) -> str:
    """What is wrong with this answer; empty when it is what the rule says."""
    if rule.public:
        return "" if status < 400 else f"{status} on a public route"
    if rule.allows(role):
        # Let in: the handler answers (2xx, or 400/404/409 about the body, id or state).
        if status in (401, 403) or status >= 500:
            return f"refused although allowed ({status}): {message}"
        return ""
    if status != 403:
        return f"expected 403, got {status}"
    if route[0] != "HEAD" and rule.roles and rule.needs not in message:
        return f"403 without naming {rule.needs!r}: {message}"
    return ""


@pytest.mark.parametrize("caller", CALLERS, ids=str)
async def test_each_role_gets_what_its_rule_says(api: Api, caller: Caller) -> None:
    bot = await api.register()
    headers = await _headers(api, caller)
    own = await api.client.post("/v1/jobs", json={"op": "sum"}, headers=headers)
    job_id = (await own.json())["id"] if own.status == 201 else await api.submit()
    wrong: list[str] = []
    for method, pattern in _routes(api.client.app):  # type: ignore[arg-type]
        rule = rule_for(method, pattern)
        assert rule is not None
        body = {} if method in ("POST", "PUT", "PATCH") else None
        response = await api.client.request(
            method, _path(pattern, bot, job_id), json=body, headers=headers
        )
        message = ""
        if method != "HEAD" and response.status >= 400:
            message = (await response.json())["error"]["message"]
        problem = _verdict(rule, (method, pattern), caller.role, response.status, message)
        if problem:
            wrong.append(f"{method} {pattern}: {problem}")
    assert wrong == []


async def test_the_served_api_document_names_the_roles_of_each_operation(api: Api) -> None:
    document = await (await api.client.get("/openapi.json")).json()
    operations = document["paths"]["/v1/jobs"]
    assert operations["get"]["x-botfleet-roles"] == ["admin", "operator", "producer", "reader"]
    assert operations["post"]["x-botfleet-roles"] == ["admin", "producer"]
    assert document["paths"]["/v1/jobs/claim"]["post"]["x-botfleet-roles"] == ["bot"]
    assert document["paths"]["/v1/bots/{bot_id}"]["delete"]["x-botfleet-roles"] == [
        "admin",
        "operator",
        "bot",
    ]
    assert "x-botfleet-roles" not in document["paths"]["/healthz"]["get"]
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            assert ("security" in operation) == ("x-botfleet-roles" in operation), (method, path)
