"""Job logs and attempts over HTTP: a bot sends lines, producers read and follow them."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.integration.harness import ADMIN, Api, Bot, eventually


def batch(bot: Bot, *texts: str, attempt: int = 1, **extra: Any) -> dict[str, Any]:
    lines = [{"ts": "2026-01-19T10:15:00.123Z", "level": "info", "text": t} for t in texts]
    return {"instance_id": bot.instance_id, "attempt": attempt, "lines": lines, **extra}


async def get(api: Api, path: str) -> tuple[int, dict[str, Any]]:
    response = await api.client.get(path, headers=ADMIN)
    return response.status, dict(await response.json())


async def running_job(api: Api) -> tuple[Bot, str]:
    bot = await api.register()
    job_id = await api.submit(max_attempts=3)
    assert [job["id"] for job in await api.claim(bot)] == [job_id]
    return bot, job_id


async def test_lines_come_back_in_order_after_a_cursor(api: Api) -> None:
    bot, job_id = await running_job(api)
    status, data = await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "a", "b"), bot.headers)
    assert (status, data) == (200, {"status": "accepted", "stored": 2, "dropped": 0})
    await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "c"), bot.headers)

    status, page = await get(api, f"/v1/jobs/{job_id}/logs")
    assert status == 200
    assert [(line["seq"], line["text"]) for line in page["lines"]] == [(1, "a"), (2, "b"), (3, "c")]
    assert page["lines"][0]["ts"].startswith("2026-01-19T10:15:00.123")
    assert (page["state"], page["next_after"], page["done"]) == ("running", 3, False)
    status, page = await get(api, f"/v1/jobs/{job_id}/logs?after=2")
    assert [line["text"] for line in page["lines"]] == ["c"]


async def test_a_waiting_read_wakes_when_lines_arrive(api: Api) -> None:
    bot, job_id = await running_job(api)
    reader = asyncio.create_task(get(api, f"/v1/jobs/{job_id}/logs?wait_ms=20000"))
    await eventually(lambda: api.ctx.waiters.waiting() > 0, "the read waits")
    await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "hello"), bot.headers)
    status, page = await asyncio.wait_for(reader, 10)
    assert status == 200 and [line["text"] for line in page["lines"]] == ["hello"]


async def test_a_finished_job_reads_done_once_its_last_lines_had_time(api: Api) -> None:
    bot, job_id = await running_job(api)
    await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "working"), bot.headers)
    body = {"instance_id": bot.instance_id, "result": {"sum": 3}}
    assert (await api.post(f"/v1/jobs/{job_id}/complete", body, bot.headers))[0] == 200
    # Lines sent after the report still count: logs never hold a result back.
    await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "last words"), bot.headers)
    _, page = await get(api, f"/v1/jobs/{job_id}/logs")
    assert [line["text"] for line in page["lines"]] == ["working", "last words"]
    assert (page["state"], page["done"]) == ("succeeded", False)
    api.clock.advance(5)
    _, page = await get(api, f"/v1/jobs/{job_id}/logs?after=2&wait_ms=20000")
    assert (page["lines"], page["done"]) == ([], True)


async def test_lines_for_an_attempt_the_bot_does_not_hold_are_a_conflict(api: Api) -> None:
    _, job_id = await running_job(api)
    stranger = await api.register()
    status, data = await api.post(f"/v1/jobs/{job_id}/logs", batch(stranger, "x"), stranger.headers)
    assert status == 409 and data["error"]["code"] == "log_not_held"
    assert "not handed to this bot" in data["error"]["message"]
    status, data = await api.post("/v1/jobs/job_nope/logs", batch(stranger, "x"), stranger.headers)
    assert status == 404 and data["error"]["code"] == "job_not_found"
    status, _ = await api.post(f"/v1/jobs/{job_id}/logs", batch(stranger, "x"), ADMIN)
    assert status == 403  # the admin token is no bot's


async def test_an_oversized_batch_is_refused_whole_and_loses_nothing_else(api: Api) -> None:
    bot, job_id = await running_job(api)
    await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "before"), bot.headers)
    status, data = await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, *["x"] * 1001), bot.headers)
    assert status == 413 and data["error"]["code"] == "log_batch_too_large"
    status, _ = await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "y" * 600_000), bot.headers)
    assert status == 413
    status, _ = await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, "after"), bot.headers)
    assert status == 200
    _, page = await get(api, f"/v1/jobs/{job_id}/logs")
    assert [line["text"] for line in page["lines"]] == ["before", "after"]
    body = {"instance_id": bot.instance_id, "result": {"sum": 3}}
    assert (await api.post(f"/v1/jobs/{job_id}/complete", body, bot.headers))[0] == 200


async def test_the_cap_shows_one_line_saying_what_was_dropped(api: Api) -> None:
    bot, job_id = await running_job(api)
    cap = api.ctx.config.max_log_bytes
    big = "z" * 8000
    count = cap // 8000 + 3
    for start in range(0, count, 50):
        chunk = [big] * min(50, count - start)
        assert (await api.post(f"/v1/jobs/{job_id}/logs", batch(bot, *chunk), bot.headers))[
            0
        ] == 200
    _, page = await get(api, f"/v1/jobs/{job_id}/logs?limit=5000")
    kept = cap // 8001  # a line counts its text and a newline
    assert len(page["lines"]) == kept + 1
    marker = page["lines"][-1]
    assert marker["seq"] == kept + 1 and marker["level"] == "warning"
    assert f"{count - kept} line(s), {(count - kept) * 8001} byte(s) dropped" in marker["text"]
    # Read by cursor from the middle of the cap's worth: the lines after it, in order.
    _, part = await get(api, f"/v1/jobs/{job_id}/logs?after={kept - 2}")
    assert [line["seq"] for line in part["lines"]] == [kept - 1, kept, kept + 1]


async def test_text_that_is_no_utf8_gets_a_clear_answer(api: Api) -> None:
    bot, job_id = await running_job(api)
    headers = {**bot.headers, "Content-Type": "application/json"}
    path = f"/v1/jobs/{job_id}/logs"

    async def send(text: bytes) -> tuple[int, dict[str, Any]]:
        raw = (
            b'{"instance_id": "%s", "attempt": 1, "lines": [{"ts": "2026-01-19T10:15:00Z", '
            b'"text": "%s"}]}' % (bot.instance_id.encode(), text)
        )
        response = await api.client.post(path, data=raw, headers=headers)
        return response.status, dict(await response.json())

    # A lone surrogate is no text at all (the bot replaces it before sending).
    status, data = await send(b"bad \\udcff")
    assert status == 400 and data["error"]["code"] == "malformed_json"
    status, data = await send(b"bad \xff byte")
    assert status == 400
    # NUL is text, but no backend stores it: replaced.
    assert (await send(b"nul \\u0000 end"))[0] == 200
    _, page = await get(api, path)
    assert [line["text"] for line in page["lines"]] == ["nul \ufffd end"]


async def test_every_attempt_is_listed_with_its_error(api: Api) -> None:
    bot, job_id = await running_job(api)
    for error in ("first", "second"):
        body = {"instance_id": bot.instance_id, "error": error, "retry_after_ms": 0}
        assert (await api.post(f"/v1/jobs/{job_id}/fail", body, bot.headers))[0] == 200
        await api.claim(bot)
    status, data = await get(api, f"/v1/jobs/{job_id}/attempts")
    assert status == 200
    rows = [(a["attempt"], a["bot_id"], a.get("outcome"), a.get("error")) for a in data["attempts"]]
    assert rows == [(1, bot.id, "failed", "first"), (2, bot.id, "failed", "second"),
                    (3, bot.id, None, None)]  # fmt: skip
    assert all(a["started_at"] for a in data["attempts"])
    assert (await get(api, "/v1/jobs/job_nope/attempts"))[0] == 404
    response = await api.client.get(f"/v1/jobs/{job_id}/attempts", headers=bot.headers)
    assert response.status in (401, 403)  # a bot token reads no job's attempts


async def test_several_jobs_lines_in_one_call_each_get_their_answer(api: Api) -> None:
    bot, job_id = await running_job(api)
    other_job = await api.submit()
    line = {"ts": "2026-01-19T10:15:00Z", "text": "bulk"}
    body = {
        "instance_id": bot.instance_id,
        "batches": [
            {"job_id": job_id, "attempt": 1, "lines": [line, line]},
            {"job_id": other_job, "attempt": 1, "lines": [line]},  # queued: not this bot's
            {"job_id": "job_nope", "attempt": 1, "lines": [line]},
        ],
    }
    status, data = await api.post("/v1/jobs/logs", body, bot.headers)
    assert status == 200
    assert [(r["job_id"], r["status"], r["stored"]) for r in data["results"]] == [
        (job_id, "accepted", 2),
        (other_job, "conflict", 0),
        ("job_nope", "not_found", 0),
    ]
    _, page = await get(api, f"/v1/jobs/{job_id}/logs")
    assert [line["text"] for line in page["lines"]] == ["bulk", "bulk"]
    body["batches"] = [{"job_id": job_id, "attempt": 1, "lines": [line] * 1001}]
    status, data = await api.post("/v1/jobs/logs", body, bot.headers)
    assert status == 413 and data["error"]["code"] == "log_batch_too_large"


async def test_an_oversized_batch_without_a_length_is_refused_too(api: Api) -> None:
    bot, job_id = await running_job(api)

    async def chunks() -> Any:
        body = json.dumps(batch(bot, "x" * 300_000, "y" * 300_000)).encode()
        for start in range(0, len(body), 65536):
            yield body[start : start + 65536]

    headers = {**bot.headers, "Content-Type": "application/json"}
    response = await api.client.post(f"/v1/jobs/{job_id}/logs", data=chunks(), headers=headers)
    assert response.status == 413, await response.text()
    assert (await response.json())["error"]["code"] == "log_batch_too_large"
