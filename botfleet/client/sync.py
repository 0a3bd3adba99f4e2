"""`Client`: the same API, blocking.

It runs an `AsyncClient` on a private event loop in a thread it owns, so there is one
implementation of every call (retries, waiting, errors) and it works from any code,
including code that already runs an event loop of its own.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any, TypeVar, Unpack

from botfleet.client.aio import BULK_CONCURRENCY, DEFAULT_PAGE, AsyncClient, JobRef
from botfleet.client.retry import RetryPolicy
from botfleet.client.schedules import ScheduleTiming
from botfleet.client.settings import Settings
from botfleet.client.submitting import JobOptions, JobSpec, Requires
from botfleet.clock import Clock
from botfleet.protocol import joblogs as wire
from botfleet.protocol import limits as lim
from botfleet.protocol import messages as m
from botfleet.protocol import schedules as sched

T = TypeVar("T")


class _LoopThread:
    """An event loop running in a daemon thread; coroutines are handed to it."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="botfleet-client", daemon=True
        )
        self._thread.start()

    @property
    def stopped(self) -> bool:
        return self._loop.is_closed()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self.stopped:
            coroutine.close()
            # A call on a stopped loop would wait forever; say why instead.
            raise RuntimeError("the botfleet client is closed")
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C in the caller stops the call, too
            raise

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(_next(iterator))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and not self.stopped:
                self.run(close())

    def stop(self) -> None:
        if not self.stopped:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


class JobHandle:
    """A submitted job: `handle.result(timeout=30)`."""

    def __init__(self, client: Client, id: str, state: m.JobState = "queued") -> None:
        self.id = id
        self.state = state  # as submitted; `get()` for the current one
        self._client = client

    def __repr__(self) -> str:
        return f"JobHandle({self.id!r})"

    def get(self) -> m.JobView:
        return self._client.get(self.id)

    def wait(self, timeout: float | None = None) -> m.JobView:
        return self._client.wait(self.id, timeout)

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        return self._client.result(self.id, timeout)

    def cancel(self) -> m.JobView:
        return self._client.cancel(self.id)

    def logs(self, *, follow: bool = False) -> Iterator[wire.StoredLogLine]:
        return self._client.logs(self.id, follow=follow)


class Client:
    """The producer and operator API, blocking; use as `with Client(...) as client`.

    Takes the arguments of `AsyncClient`, and its methods do what the coroutines do.
    """

    def __init__(
        self,
        server: str | None = None,
        *,
        token: str | None = None,
        ca_file: str | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        timeout_s: float = 30.0,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        environ: Mapping[str, str] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._async = AsyncClient(
            server, token=token, ca_file=ca_file, client_cert=client_cert,
            client_key=client_key, timeout_s=timeout_s, retry=retry, clock=clock,
            environ=environ, rng=rng,
        )  # fmt: skip
        self._loop = _LoopThread()

    @property
    def settings(self) -> Settings:
        return self._async.settings

    @property
    def server(self) -> str:
        return self._async.server

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections and stop the thread; calling it again does nothing."""
        if not self._loop.stopped:
            self._loop.run(self._async.aclose())
            self._loop.stop()

    def submit(
        self,
        op: str | m.SubmitJob,
        payload: Mapping[str, Any] | None = None,
        **options: Unpack[JobOptions],
    ) -> JobHandle:
        handle = self._loop.run(self._async.submit(op, payload, **options))
        return JobHandle(self, handle.id, handle.state)

    def submit_many(
        self,
        jobs: Iterable[JobSpec],
        *,
        concurrency: int = BULK_CONCURRENCY,
        requires: Requires | None = None,
    ) -> list[JobHandle]:
        handles = self._loop.run(
            self._async.submit_many(jobs, concurrency=concurrency, requires=requires)
        )
        return [JobHandle(self, handle.id) for handle in handles]

    def get(self, job: JobRef, *, wait_ms: int = 0) -> m.JobView:
        return self._loop.run(self._async.get(job, wait_ms=wait_ms))

    def page(
        self,
        *,
        state: m.JobState | None = None,
        op: str | None = None,
        limit: int = DEFAULT_PAGE,
        cursor: str | None = None,
    ) -> m.JobList:
        return self._loop.run(self._async.page(state=state, op=op, limit=limit, cursor=cursor))

    def jobs(
        self,
        *,
        state: m.JobState | None = None,
        op: str | None = None,
        page_size: int = DEFAULT_PAGE,
    ) -> Iterator[m.JobView]:
        return self._loop.iterate(self._async.jobs(state=state, op=op, page_size=page_size))

    def wait(self, job: JobRef, timeout: float | None = None) -> m.JobView:
        return self._loop.run(self._async.wait(job, timeout))

    def result(self, job: JobRef, timeout: float | None = None) -> dict[str, Any]:
        return self._loop.run(self._async.result(job, timeout))

    def as_completed(
        self, jobs: Iterable[JobRef], timeout: float | None = None
    ) -> Iterator[m.JobView]:
        return self._loop.iterate(self._async.as_completed(list(jobs), timeout))

    def cancel(self, job: JobRef) -> m.JobView:
        return self._loop.run(self._async.cancel(job))

    def attempts(self, job: JobRef) -> list[wire.AttemptView]:
        return self._loop.run(self._async.attempts(job))

    def log_page(
        self, job: JobRef, *, after: int = 0, attempt: int | None = None, wait_ms: int = 0
    ) -> wire.JobLogs:
        return self._loop.run(
            self._async.log_page(job, after=after, attempt=attempt, wait_ms=wait_ms)
        )

    def logs(
        self, job: JobRef, *, follow: bool = False, attempt: int | None = None, after: int = 0
    ) -> Iterator[wire.StoredLogLine]:
        return self._loop.iterate(
            self._async.logs(job, follow=follow, attempt=attempt, after=after)
        )

    def retry(self, job: JobRef) -> m.JobView:
        return self._loop.run(self._async.retry(job))

    def bots(self) -> list[m.BotView]:
        return self._loop.run(self._async.bots())

    def bot(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.bot(bot_id))

    def update_bot(self, bot_id: str, patch: m.PatchBotRequest) -> m.BotView:
        return self._loop.run(self._async.update_bot(bot_id, patch))

    def pause(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.pause(bot_id))

    def resume(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.resume(bot_id))

    def drain(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.drain(bot_id))

    def quarantine(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.quarantine(bot_id))

    def release(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.release(bot_id))

    def revoke_bot(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.revoke_bot(bot_id))

    def allow_bot(self, bot_id: str) -> m.BotView:
        return self._loop.run(self._async.allow_bot(bot_id))

    def forget_bot(self, bot_id: str) -> None:
        self._loop.run(self._async.forget_bot(bot_id))

    def stats(self) -> m.Stats:
        return self._loop.run(self._async.stats())

    def ready(self) -> bool:
        return self._loop.run(self._async.ready())

    def whoami(self) -> m.WhoAmI:
        return self._loop.run(self._async.whoami())

    def create_token(
        self, name: str, role: m.Role, *, expires_in_s: int | None = None
    ) -> m.CreatedToken:
        return self._loop.run(self._async.create_token(name, role, expires_in_s=expires_in_s))

    def tokens(self) -> list[m.TokenView]:
        return self._loop.run(self._async.tokens())

    def revoke_token(self, token_id: str) -> m.TokenView:
        return self._loop.run(self._async.revoke_token(token_id))

    def put_limit(
        self,
        name: str,
        *,
        max_running: int | None = None,
        per_second: float | None = None,
        burst: int = 1,
    ) -> lim.LimitView:
        return self._loop.run(
            self._async.put_limit(name, max_running=max_running, per_second=per_second, burst=burst)
        )

    def limits(self) -> list[lim.LimitView]:
        return self._loop.run(self._async.limits())

    def delete_limit(self, name: str) -> lim.LimitView:
        return self._loop.run(self._async.delete_limit(name))

    def put_schedule(
        self, name: str, job: m.SubmitJob, **timing: Unpack[ScheduleTiming]
    ) -> sched.ScheduleView:
        return self._loop.run(self._async.put_schedule(name, job, **timing))

    def schedules(self) -> list[sched.ScheduleView]:
        return self._loop.run(self._async.schedules())

    def pause_schedule(self, name: str, paused: bool = True) -> sched.ScheduleView:
        return self._loop.run(self._async.pause_schedule(name, paused))

    def delete_schedule(self, name: str) -> sched.ScheduleDeleted:
        return self._loop.run(self._async.delete_schedule(name))
