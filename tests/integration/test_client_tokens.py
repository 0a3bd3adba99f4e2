"""The client's token calls against a real coordinator, in both forms, and the error
classes a bad credential maps to (with the server's code)."""

from __future__ import annotations

from typing import Any

import pytest

from botfleet.client import Conflict, Forbidden, NotFound, Unauthorized
from tests.integration.client_support import async_client
from tests.integration.harness import Api


async def test_create_list_whoami_and_revoke(client: Any, api: Api) -> None:
    assert (await client.whoami()).role == "admin"
    created = await client.create_token("ci", "producer", expires_in_s=3600)
    assert created.token.startswith("bft_") and created.expires_at is not None
    (listed,) = await client.tokens()
    assert (listed.id, listed.name, listed.role) == (created.id, "ci", "producer")

    async with async_client(api, token=created.token) as producer:
        me = await producer.whoami()
        assert (me.name, me.role) == ("ci", "producer")
        with pytest.raises(Forbidden) as refused:
            await producer.bots()
        assert refused.value.code == "forbidden"
        assert "one of the roles admin, operator, reader" in refused.value.message

        revoked = await client.revoke_token(created.id)
        assert revoked.revoked_at is not None
        with pytest.raises(Unauthorized) as refused:
            await producer.whoami()
        assert refused.value.code == "token_revoked"

    assert await client.tokens() == []
    with pytest.raises(NotFound):
        await client.revoke_token(created.id)


async def test_a_taken_name_is_a_conflict(client: Any) -> None:
    await client.create_token("ci", "reader")
    with pytest.raises(Conflict) as refused:
        await client.create_token("ci", "reader")
    assert refused.value.code == "token_name_taken"


async def test_an_expired_token_is_unauthorized_with_its_code(client: Any, api: Api) -> None:
    created = await client.create_token("temp", "reader", expires_in_s=5)
    api.clock.advance(5)
    async with async_client(api, token=created.token) as expired:
        with pytest.raises(Unauthorized) as refused:
            await expired.stats()
    assert refused.value.code == "token_expired"
