"""Every answer carries the browser protections: the dashboard, its files, the API, errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from botfleet.clock import FakeClock
from coordinator.security_headers import SECURITY_HEADERS
from tests.integration.conftest import ClientFactory
from tests.integration.harness import ADMIN, make_app

ANSWERS = [
    ("GET", "/", {}, 200),
    ("GET", "/static/dashboard.js", {}, 200),
    ("GET", "/static/dashboard.css", {}, 200),
    ("GET", "/static/missing.js", {}, 404),
    ("GET", "/healthz", {}, 200),
    ("GET", "/metrics", {}, 200),
    ("GET", "/openapi.json", {}, 200),
    ("GET", "/v1/stats", ADMIN, 200),
    ("GET", "/v1/stats", {}, 401),
    ("GET", "/v1/jobs/job_nope", ADMIN, 404),
    ("POST", "/v1/jobs", ADMIN, 400),
    ("DELETE", "/healthz", {}, 405),
    ("GET", "/no/such/route", {}, 404),
]


@pytest.mark.parametrize(("method", "path", "headers", "status"), ANSWERS)
async def test_every_answer_has_the_security_headers(
    tmp_path: Path,
    aiohttp_client: ClientFactory,
    method: str,
    path: str,
    headers: dict[str, str],
    status: int,
) -> None:
    client = await aiohttp_client(make_app(tmp_path, FakeClock()))
    body = b"{" if method == "POST" else None  # a malformed body: a 400 from the middleware
    response = await client.request(method, path, headers=headers, data=body)
    assert response.status == status
    assert {name: response.headers.get(name) for name in SECURITY_HEADERS} == SECURITY_HEADERS


def test_the_policy_allows_only_this_servers_files_and_no_framing() -> None:
    policy = dict(
        directive.split(" ", 1)
        for directive in SECURITY_HEADERS["Content-Security-Policy"].split("; ")
    )
    assert policy["default-src"] == "'self'"
    assert policy["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert SECURITY_HEADERS["X-Content-Type-Options"] == "nosniff"
    assert SECURITY_HEADERS["Referrer-Policy"] == "no-referrer"


def test_the_dashboard_page_has_no_inline_script_or_style() -> None:
    page = (Path(__file__).parents[2] / "coordinator/dashboard/static/index.html").read_text()
    assert "<style" not in page and " style=" not in page
    assert all("src=" in tag.split(">", 1)[0] for tag in page.split("<script")[1:])
    assert re.search(r"<[^>]*\son[a-z]+\s*=", page) is None  # no onclick="…" handlers
