"""LISTEN/NOTIFY between coordinators sharing one PostgreSQL database.

A transaction that makes jobs claimable or finishes jobs sends one notification (a
JSON `Notice`) on the store's channel; PostgreSQL delivers it at commit to every
listening connection. `NotificationRelay` keeps one dedicated listening connection
per store, reconnects it when it drops, and hands each notice to the store's
`StoreListener`, so a long-poll claim waiting on one coordinator wakes when a job is
submitted through another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

import asyncpg
import msgspec

log = logging.getLogger(__name__)

# PostgreSQL refuses payloads of 8000 bytes or more; stay well below.
_MAX_PAYLOAD_BYTES = 7000
_FIRST_BACKOFF_S = 0.1
_CONNECTION_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Notice(msgspec.Struct, frozen=True):
    """What one transaction changed: operations with claimable jobs, jobs now terminal."""

    origin: str  # the sending store, which has already told its own listener
    ops: tuple[str, ...] = ()
    done: tuple[str, ...] = ()
    count: int | None = None  # jobs claimable for `ops`; None: unknown (wake every waiter)


def encode_notices(
    origin: str, ops: Sequence[str], done: Sequence[str], count: int | None = None
) -> list[str]:
    """Payloads for one change, split so that none is too large for NOTIFY (split, the
    count of claimable jobs is not kept: each part says "unknown")."""
    payloads: list[str] = []
    chunks = list(_chunks(list(dict.fromkeys(ops)), list(dict.fromkeys(done))))
    for op_chunk, done_chunk in chunks:
        part_count = count if len(chunks) == 1 and op_chunk else None
        notice = Notice(origin, tuple(op_chunk), tuple(done_chunk), part_count)
        payloads.append(msgspec.json.encode(notice).decode())
    return payloads


def _chunks(ops: list[str], done: list[str]) -> Iterator[tuple[list[str], list[str]]]:
    items = [("op", op) for op in ops] + [("done", job_id) for job_id in done]
    chunk_ops: list[str] = []
    chunk_done: list[str] = []
    size = 0
    for kind, value in items:
        cost = len(value.encode()) + 4
        if size + cost > _MAX_PAYLOAD_BYTES and (chunk_ops or chunk_done):
            yield chunk_ops, chunk_done
            chunk_ops, chunk_done, size = [], [], 0
        (chunk_ops if kind == "op" else chunk_done).append(value)
        size += cost
    if chunk_ops or chunk_done:
        yield chunk_ops, chunk_done


def decode_notice(payload: str) -> Notice | None:
    try:
        return msgspec.json.decode(payload, type=Notice)
    except msgspec.DecodeError:
        log.warning("ignoring a malformed notification: %.200s", payload)
        return None


NoticeHandler = Callable[[Notice], None]
Connect = Callable[[], Awaitable[Any]]  # returns an asyncpg connection


class NotificationRelay:
    """One listening connection, kept alive: LISTEN, deliver, reconnect on loss.

    The liveness probe and the reconnect backoff use real time on purpose: they are
    about the network, and an injected FakeClock (whose sleep returns at once) would
    turn them into a busy loop.
    """

    def __init__(
        self,
        connect: Connect,
        channel: str,
        on_notice: NoticeHandler,
        on_reconnect: Callable[[], Awaitable[None]],
        probe_interval_s: float = 15.0,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._listening = asyncio.Event()
        self._lost = asyncio.Event()  # the server closed the connection
        self._on_notice = on_notice
        self._on_reconnect = on_reconnect
        self._probe_interval_s = probe_interval_s
        self._max_backoff_s = max_backoff_s
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    async def wait_listening(self) -> None:
        await self._listening.wait()

    async def start(self) -> None:
        """Listen now (errors propagate), then keep listening in the background."""
        if self._task is not None:
            return
        await self._listen()
        self._task = asyncio.create_task(self._supervise(), name=f"listen:{self._channel}")

    def start_soon(self) -> None:
        """Begin listening in the background (from synchronous code)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"listen:{self._channel}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # Its end, without taking its cancellation for ours: a stop that is itself
            # cancelled meanwhile still raises, and a crash of the task still shows.
            await asyncio.wait([task])
            if not task.cancelled():
                task.result()
        await self._drop_connection()

    async def _supervise(self) -> None:
        backoff_s = _FIRST_BACKOFF_S
        reconnecting = self._listening.is_set()  # start() made the first connection
        while True:
            try:
                if not self._listening.is_set():
                    await self._listen()
                    backoff_s = _FIRST_BACKOFF_S
                    if reconnecting:
                        log.info("listening connection on %s is back", self._channel)
                        await self._catch_up()
                reconnecting = True
                await self._watch()  # returns once the connection is gone
            except _CONNECTION_ERRORS as error:
                log.warning(
                    "listening connection on %s failed (%s); retrying in %.1fs",
                    self._channel,
                    error,
                    backoff_s,
                )
            except Exception:  # a bug here must not silently end this process's listening
                log.exception("listening on %s failed; retrying in %.1fs", self._channel, backoff_s)
                await self._drop_connection()
            reconnecting = True
            await asyncio.sleep(backoff_s)
            backoff_s = min(backoff_s * 2, self._max_backoff_s)

    async def _listen(self) -> None:
        self._lost.clear()
        connection = await self._connect()
        try:
            connection.add_termination_listener(self._terminated)
            await connection.add_listener(self._channel, self._deliver)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        self._listening.set()

    async def _watch(self) -> None:
        """Return once the connection is gone (closed by the server or a failed probe)."""
        while self._listening.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), self._probe_interval_s)
            if self._lost.is_set():
                log.warning("listening connection on %s was lost; reconnecting", self._channel)
                break
            try:
                await self._connection.execute("SELECT 1", timeout=self._probe_interval_s)
            except _CONNECTION_ERRORS as error:
                log.warning("listening connection on %s failed a probe: %s", self._channel, error)
                break
        self._listening.clear()
        await self._drop_connection()

    async def _catch_up(self) -> None:
        """Notices sent while we were away are lost: wake every waiter once."""
        try:
            await self._on_reconnect()
        except _CONNECTION_ERRORS as error:
            log.warning("could not catch up after reconnecting %s: %s", self._channel, error)

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        self._listening.clear()
        if connection is None or connection.is_closed():
            return
        try:
            connection.remove_termination_listener(self._terminated)
            await connection.close(timeout=5)
        except _CONNECTION_ERRORS as error:
            log.info("closing the listening connection on %s: %s", self._channel, error)
            connection.terminate()

    def _terminated(self, _connection: Any) -> None:
        self._lost.set()

    def _deliver(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = decode_notice(payload)
        if notice is not None:
            self._on_notice(notice)
