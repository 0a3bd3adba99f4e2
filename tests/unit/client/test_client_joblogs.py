"""The client's log iterator over pages: paging, following until done."""

from __future__ import annotations

from botfleet.client.joblogs import FOLLOW_WAIT_MS, log_lines
from botfleet.protocol import joblogs as wire


def page(lines: list[int], *, done: bool = False, state: str = "running") -> wire.JobLogs:
    stored = [
        wire.StoredLogLine(seq=n, attempt=1, ts="2026-01-19T10:15:00Z", level="info", text=f"l{n}")
        for n in lines
    ]
    after = lines[-1] if lines else 0
    return wire.JobLogs(job_id="job_1", state=state, lines=stored, next_after=after, done=done)  # type: ignore[arg-type]


class Pages:
    def __init__(self, *pages: wire.JobLogs) -> None:
        self.pages = list(pages)
        self.asked: list[tuple[int, int]] = []

    async def __call__(self, after: int, wait_ms: int) -> wire.JobLogs:
        self.asked.append((after, wait_ms))
        answer = self.pages.pop(0)
        if not answer.lines:
            answer.next_after = after
        return answer


async def test_without_follow_the_lines_there_are_now() -> None:
    pages = Pages(page([1, 2]), page([3]), page([]))
    seen = [line.text async for line in log_lines(pages, after=0)]
    assert seen == ["l1", "l2", "l3"]
    assert pages.asked == [(0, 0), (2, 0), (3, 0)]


async def test_following_waits_for_new_lines_until_the_log_is_done() -> None:
    pages = Pages(page([1]), page([]), page([2], state="succeeded"), page([], done=True))
    seen = [line.text async for line in log_lines(pages, after=0, follow=True)]
    assert seen == ["l1", "l2"]
    assert pages.asked == [(0, FOLLOW_WAIT_MS), (1, FOLLOW_WAIT_MS), (1, FOLLOW_WAIT_MS),
                           (2, FOLLOW_WAIT_MS)]  # fmt: skip
