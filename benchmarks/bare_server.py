"""A bare aiohttp server: one POST route that reads the body and answers a small JSON
object, on the event loop `BOTFLEET_EVENT_LOOP` chooses. The floor a coordinator
request cannot go below (benchmarks/round_trip.py).

    python -m benchmarks.bare_server --port 8080
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web

from botfleet import eventloop

ANSWER = b'{"jobs":[],"results":[]}'


async def answer(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=ANSWER, content_type="application/json")


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_post("/v1/jobs/claim", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()  # until the benchmark stops the process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    _, factory = eventloop.loop_factory()
    eventloop.run(serve(port), factory)


if __name__ == "__main__":
    main()
