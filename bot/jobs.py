"""Job handlers: the `@op` decorator, the `Registry` the scheduler runs from, plugin loading.

`@op("sum")` marks a function as the handler of an operation and records it in
`default_registry`. A bot builds its own `Registry` and `load_plugins` fills it
from the built-in `bot.plugins` package, from `botfleet.plugins` entry points and
from the modules named in BOT_PLUGINS: each loaded module is scanned for marked
functions, so no test ever has to patch a global registry.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import inspect
import logging
import pkgutil
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

import msgspec

from bot.errors import PluginError, SettingsError
from bot.state import Job
from bot.work.threads import HandlerThreads
from botfleet.protocol import encode
from botfleet.protocol import messages as m

log = logging.getLogger(__name__)

HandlerResult = Mapping[str, Any] | None
Handler = Callable[[Job], Awaitable[HandlerResult] | HandlerResult]
H = TypeVar("H", bound=Callable[..., Any])

ENTRY_POINT_GROUP = "botfleet.plugins"
BUILTIN_PACKAGE = "bot.plugins"
_OPS_ATTRIBUTE = "__botfleet_ops__"
MAX_ERROR_CHARS = 10_000  # the protocol's limit on `error`
_OP_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


class Registry:
    """Operation name -> handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, name: str, handler: Handler) -> None:
        if not _OP_NAME.match(name):
            raise PluginError(f"{name!r} is not a valid operation name (letters, digits, _.:-)")
        previous = self._handlers.get(name)
        if previous is not None and previous is not handler:
            log.warning(
                "operation %r: %s replaces %s", name, _describe(handler), _describe(previous)
            )
        self._handlers[name] = handler

    def get(self, name: str) -> Handler | None:
        return self._handlers.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._handlers

    def __len__(self) -> int:
        return len(self._handlers)

    def operations(self) -> tuple[str, ...]:
        return tuple(sorted(self._handlers))

    def collect(self, source: object) -> int:
        """Register the handlers `source` holds: a module's marked functions, one marked
        function, or a `register(registry)` hook. Returns how many operations it added."""
        before = len(self)
        if isinstance(source, ModuleType):
            for value in vars(source).values():
                for name in getattr(value, _OPS_ATTRIBUTE, ()):
                    self.register(name, value)
        elif getattr(source, _OPS_ATTRIBUTE, None):
            for name in getattr(source, _OPS_ATTRIBUTE):
                self.register(name, source)  # type: ignore[arg-type]
        elif callable(source):
            source(self)
        else:
            raise PluginError(f"{source!r} is neither a module, a handler nor a register hook")
        return len(self) - before


default_registry = Registry()


def op(name: str, *, registry: Registry | None = None) -> Callable[[H], H]:
    """Mark `handler` as the handler of operation `name` (async, or plain to run in a thread)."""

    def mark(handler: H) -> H:
        names = (*getattr(handler, _OPS_ATTRIBUTE, ()), name)
        setattr(handler, _OPS_ATTRIBUTE, names)
        (default_registry if registry is None else registry).register(name, handler)
        return handler

    return mark


def is_async(handler: Handler) -> bool:
    """An async function, or an object whose `__call__` is one."""
    return inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        type(handler).__call__
    )


# Whether each handler seen is async, by identity: `is_async` inspects code flags, a
# cost on every job of a busy bot. Handlers are few and live as long as the process.
_async_handlers: dict[int, tuple[Handler, bool]] = {}


def _is_async(handler: Handler) -> bool:
    known = _async_handlers.get(id(handler))
    if known is not None and known[0] is handler:
        return known[1]
    answer = is_async(handler)
    _async_handlers[id(handler)] = (handler, answer)
    return answer


def _describe(handler: object) -> str:
    module = getattr(handler, "__module__", "?")
    return f"{module}.{getattr(handler, '__qualname__', repr(handler))}"


# ---------------------------------------------------------------- loading


def load_plugins(
    registry: Registry,
    modules: Sequence[str] = (),
    *,
    builtin: bool = True,
    entry_points: Iterable[importlib.metadata.EntryPoint] | None = None,
) -> Registry:
    """Fill `registry`: built-ins, then entry points, then BOT_PLUGINS (the last one wins).

    A BOT_PLUGINS module that cannot be imported is a bad setting (`SettingsError`);
    a broken entry point of some installed package is logged and skipped.
    """
    if builtin:
        load_package(registry, BUILTIN_PACKAGE)
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    for entry_point in entry_points:
        try:
            added = registry.collect(entry_point.load())
        except Exception as exc:  # a third-party package's fault must not stop the bot
            log.error("plugin entry point %s could not be loaded: %s", entry_point.name, exc)
            continue
        log.debug("entry point %s: %d operation(s)", entry_point.name, added)
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            raise SettingsError("BOT_PLUGINS", f"cannot import {name!r}: {exc}") from exc
        registry.collect(module)
        if not _has_ops(module):
            log.warning("plugin module %s defines no @op handler", name)
    return registry


def load_package(registry: Registry, package_name: str) -> None:
    package = importlib.import_module(package_name)
    registry.collect(package)
    for info in pkgutil.iter_modules(package.__path__, prefix=f"{package_name}."):
        if info.name.rpartition(".")[2].startswith("_"):
            continue
        registry.collect(importlib.import_module(info.name))


def _has_ops(module: ModuleType) -> bool:
    return any(getattr(value, _OPS_ATTRIBUTE, None) for value in vars(module).values())


# ---------------------------------------------------------------- helpers for handlers


def number_args(payload: Mapping[str, Any], *names: str) -> tuple[int | float, ...]:
    """The payload's fields `names` as numbers; a missing field or a non-number
    (a string, a boolean, null) fails the job for good with a message naming it."""
    values: list[int | float] = []
    for name in names:
        if name not in payload:
            raise PluginError(f"invalid payload: missing number {name!r}")
        value = payload[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PluginError(
                f"invalid payload: {name!r} must be a number, got {type(value).__name__} {value!r}"[
                    :300
                ]
            )
        values.append(value)
    return tuple(values)


# ---------------------------------------------------------------- running one job


def completed(job: Job, result: Mapping[str, Any]) -> m.ReportItem:
    return m.ReportItem(job_id=job.id, attempt=job.attempt, action="complete", result=dict(result))


def failed(job: Job, error: str, *, retryable: bool) -> m.ReportItem:
    if len(error) > MAX_ERROR_CHARS:
        error = error[: MAX_ERROR_CHARS - 1] + "…"
    return m.ReportItem(
        job_id=job.id, attempt=job.attempt, action="fail", error=error, retryable=retryable
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a job: its report and, when its handler crashed, why (a crash
    loop counts these: an exception other than `PluginError`, a timeout, a bad result)."""

    report: m.ReportItem
    crash: str | None = None


async def execute(
    registry: Registry, job: Job, threads: HandlerThreads | None = None
) -> m.ReportItem:
    """Run `job`'s handler and turn whatever happens into its report (see `run`)."""
    return (await run(registry, job, threads)).report


async def run(registry: Registry, job: Job, threads: HandlerThreads | None = None) -> Outcome:
    """Run `job`'s handler and turn whatever happens into its `Outcome`.

    An unknown operation, a handler's exception, a timeout (`timeout_s`) or a result
    that is not a JSON object fail the job; nothing a handler does escapes, except
    cancellation, which belongs to the caller. A plain handler runs in a thread of
    `threads` (see `bot.work.threads`).
    """
    handler = registry.get(job.op)
    if handler is None:
        # Retryable: another bot of the fleet may handle it.
        return Outcome(
            failed(
                job,
                f"unknown operation {job.op!r}: this bot handles "
                f"{', '.join(registry.operations()) or 'nothing'}",
                retryable=True,
            )
        )
    threads = HandlerThreads() if threads is None else threads
    deadline: asyncio.Timeout | None = None
    try:
        if job.timeout_s is None:  # no deadline to arm: a timeout(None) still costs, every job
            outcome = await _call(handler, job, threads)
        else:
            async with asyncio.timeout(job.timeout_s) as deadline:
                outcome = await _call(handler, job, threads)
    except TimeoutError as exc:
        if deadline is not None and deadline.expired():
            job.cancel()
            text = f"timeout: the job ran longer than its timeout_s of {job.timeout_s:g} s"
            return Outcome(failed(job, text, retryable=True), crash="timeout")
        return _handler_failure(job, exc)
    except PluginError as exc:
        return Outcome(failed(job, str(exc), retryable=exc.retryable))
    except (Exception, SystemExit) as exc:
        return _handler_failure(job, exc)
    return _result(job, outcome)


async def _call(handler: Handler, job: Job, threads: HandlerThreads) -> Any:
    if _is_async(handler):
        return await handler(job)  # type: ignore[misc]
    outcome = await threads.call(handler, job, f"job:{job.id}")
    return await outcome if inspect.isawaitable(outcome) else outcome


def _handler_failure(job: Job, exc: BaseException) -> Outcome:
    log.warning("job %s (%s) failed: %s", job.id, job.op, exc, exc_info=exc)
    text = str(exc)
    error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return Outcome(failed(job, error, retryable=True), crash=error[:200])


def _result(job: Job, outcome: Any) -> Outcome:
    if outcome is None:
        outcome = {}
    if not isinstance(outcome, Mapping):
        error = (
            f"handler for {job.op!r} returned {type(outcome).__name__}; "
            "a handler returns a dict (or None)"
        )
        return Outcome(failed(job, error, retryable=False), crash=error)
    try:
        encode(outcome)
    except (TypeError, ValueError, msgspec.EncodeError) as exc:
        error = f"result of {job.op!r} is not JSON: {exc}"
        return Outcome(failed(job, error, retryable=False), crash=error[:200])
    return Outcome(completed(job, outcome))
