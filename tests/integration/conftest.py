"""Fixtures: a coordinator app on SQLite in tmp_path with a FakeClock, and its test client."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from botfleet.clock import FakeClock
from tests.integration.harness import Api, make_app

ClientFactory = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def api(tmp_path: Path, clock: FakeClock, aiohttp_client: ClientFactory) -> Api:
    client = await aiohttp_client(make_app(tmp_path, clock))
    return Api(client, clock)
