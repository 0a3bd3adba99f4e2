"""Role tokens: who the caller is (any role token); create, list and revoke tokens (admin).

A new token's secret is in the answer to its creation and nowhere else: the store
keeps its hash, and no log line carries it.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from aiohttp import web

from botfleet.clock import to_rfc3339
from botfleet.protocol import messages as m
from coordinator.auth import ADMIN, ENROLL, new_api_token
from coordinator.context import context
from coordinator.errors import Conflict, InvalidBody, NotFound
from coordinator.gate import principal_of
from coordinator.routes.common import read_body, respond
from coordinator.store.api_tokens import new_token_id
from coordinator.store.base import NewApiToken
from coordinator.views import token_view

log = logging.getLogger(__name__)

# The server's own tokens act under these names (a job the admin token submits says
# `submitted_by: admin`), so no issued token may take them.
RESERVED_NAMES = frozenset({ADMIN.name, ENROLL.name})


def setup(router: web.UrlDispatcher) -> None:
    router.add_get("/v1/whoami", whoami)
    router.add_post("/v1/tokens", create_token)
    router.add_get("/v1/tokens", list_tokens)
    router.add_delete("/v1/tokens/{token_id}", revoke_token)


async def whoami(request: web.Request) -> web.Response:
    principal = principal_of(request)
    return respond(m.WhoAmI(name=principal.name, role=principal.role))


async def create_token(request: web.Request) -> web.Response:
    ctx = context(request)
    body = await read_body(request, m.CreateTokenRequest)
    if body.name in RESERVED_NAMES:
        raise InvalidBody(
            f"the name {body.name!r} is the server's own token's; choose another - at `$.name`"
        )
    token, token_hash = new_api_token()
    expires_at = (
        None
        if body.expires_in_s is None
        else ctx.clock.now() + timedelta(seconds=body.expires_in_s)
    )
    record = await ctx.store.create_api_token(
        NewApiToken(new_token_id(), body.name, body.role, token_hash, expires_at)
    )
    if record is None:
        raise Conflict(
            f"a token named {body.name!r} exists; revoke it first or choose another name",
            code="token_name_taken",
        )
    log.info("token %s (%s, role %s) created", record.name, record.id, record.role)
    created = m.CreatedToken(
        id=record.id,
        name=record.name,
        role=body.role,
        token=token,
        expires_at=None if record.expires_at is None else to_rfc3339(record.expires_at),
    )
    return respond(created, 201)


async def list_tokens(request: web.Request) -> web.Response:
    tokens = await context(request).store.list_api_tokens()
    return respond(m.TokenList(tokens=[token_view(token) for token in tokens]))


async def revoke_token(request: web.Request) -> web.Response:
    ctx = context(request)
    token_id = request.match_info["token_id"]
    record = await ctx.store.revoke_api_token(token_id)
    if record is None:
        raise NotFound(f"no token {token_id} (or it was revoked already)", code="token_not_found")
    log.info("token %s (%s, role %s) revoked", record.name, record.id, record.role)
    return respond(token_view(record))
