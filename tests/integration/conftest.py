"""Fixtures: a coordinator app with a FakeClock and its test client, on each store backend.

`api` runs on every store backend (`tests/support/backends.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from botfleet.client import Client
from botfleet.clock import FakeClock
from coordinator.app import create_app
from coordinator.store.base import Store
from tests.integration.client_support import Blocking, async_client, url_of
from tests.integration.harness import ADMIN_TOKEN, Api, server_config
from tests.support.backends import BACKENDS, backend_stores

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=BACKENDS)
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[Store]:
    """An unopened store; the app opens and closes it."""
    async with backend_stores(request.param, tmp_path, clock, lambda attempt: 0.0) as stores:
        yield stores()


@pytest.fixture
async def api(tmp_path: Path, clock: FakeClock, store: Store, aiohttp_client: ClientFactory) -> Api:
    client = await aiohttp_client(create_app(server_config(tmp_path), store, clock))
    return Api(client, clock)


@pytest.fixture(params=["async", "sync"])
async def client(request: pytest.FixtureRequest, api: Api) -> AsyncIterator[Any]:
    """An `AsyncClient`, or a `Client` driven through `Blocking`: the same calls."""
    if request.param == "async":
        async with async_client(api) as aio:
            yield aio
        return
    blocking = Blocking(Client(url_of(api), token=ADMIN_TOKEN, environ={}))
    try:
        yield blocking
    finally:
        await blocking.close()
