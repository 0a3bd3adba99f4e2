"""The usual browser protections on every answer: the dashboard's and the API's alike.

The dashboard is static files from this server and nothing else: its scripts and
styles come from `/static/`, it reads the API on the same origin, and it has no
inline code. The policy says exactly that, so a script injected into a job's payload
or result, should one ever reach the page, has nothing it may run or send to.
"""

from __future__ import annotations

from aiohttp import web

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate it
}


async def _add_security_headers(_: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def setup_security_headers(app: web.Application) -> None:
    """Every response, whatever made it (a route, the static files, an error), just
    before its headers are sent."""
    app.on_response_prepare.append(_add_security_headers)
