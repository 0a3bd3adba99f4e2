"""Handlers: the @op decorator, registries, plugin loading, and running one job safely."""

from __future__ import annotations

import asyncio
import importlib.metadata
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.errors import PluginError, SettingsError
from bot.jobs import (
    ENTRY_POINT_GROUP,
    Registry,
    default_registry,
    execute,
    is_async,
    load_plugins,
    number_args,
    op,
)
from bot.state import Job


def job(op_name: str = "sum", payload: dict[str, Any] | None = None, **fields: Any) -> Job:
    return Job(id="job_1", op=op_name, payload=payload or {}, attempt=2, **fields)


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder on sys.path for plugin modules written by the test (removed afterwards)."""
    sys.path.insert(0, str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in set(sys.modules) - before:
        del sys.modules[name]


def write_module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


# ---------------------------------------------------------------- registry and decorator


def test_op_marks_and_records_in_the_given_registry() -> None:
    registry = Registry()

    @op("double", registry=registry)
    @op("twice", registry=registry)
    async def double(job: Job) -> dict[str, Any]:
        return {}

    assert registry.operations() == ("double", "twice")
    assert registry.get("double") is double and "twice" in registry
    assert double.__botfleet_ops__ == ("twice", "double")  # type: ignore[attr-defined]
    assert "double" not in default_registry


def test_op_without_registry_uses_the_default_one() -> None:
    @op("test.default-registry")
    def handler(job: Job) -> None:
        return None

    assert default_registry.get("test.default-registry") is handler


def test_bad_operation_name_is_refused() -> None:
    with pytest.raises(PluginError, match="not a valid operation name"):
        Registry().register("has space", lambda job: None)


def test_a_later_handler_replaces_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    registry = Registry()

    def first(job: Job) -> None: ...
    def second(job: Job) -> None: ...

    registry.register("x", first)
    registry.register("x", first)  # the same again: quiet
    assert "replaces" not in caplog.text
    registry.register("x", second)
    assert registry.get("x") is second and "replaces" in caplog.text


def test_collect_accepts_a_register_hook_and_refuses_other_things() -> None:
    registry = Registry()
    registry.collect(lambda r: r.register("hooked", lambda job: None))
    assert "hooked" in registry
    with pytest.raises(PluginError, match="neither a module"):
        registry.collect(42)


def test_is_async_sees_async_callables() -> None:
    class AsyncCallable:
        async def __call__(self, job: Job) -> None: ...

    class SyncCallable:
        def __call__(self, job: Job) -> None: ...

    async def coroutine(job: Job) -> None: ...

    assert is_async(coroutine) and is_async(AsyncCallable())
    assert not is_async(SyncCallable()) and not is_async(lambda job: None)


# ---------------------------------------------------------------- loading


def test_builtin_plugins(tmp_path: Path) -> None:
    registry = load_plugins(Registry(), entry_points=())
    assert registry.operations() == ("subtract", "sum")


def test_plugins_from_a_bot_plugins_module(plugin_dir: Path) -> None:
    write_module(
        plugin_dir,
        "my_plugins",
        """
        from bot.jobs import op

        @op("multiply")
        async def multiply(job):
            return {"result": job.payload["a"] * job.payload["b"]}

        @op("sum")
        def my_sum(job):
            return {"result": "mine"}

        def helper():
            return None
        """,
    )
    registry = load_plugins(Registry(), ["my_plugins"], entry_points=())
    assert registry.operations() == ("multiply", "subtract", "sum")
    assert getattr(registry.get("sum"), "__module__", None) == "my_plugins"  # the last one wins


def test_module_without_handlers_warns(plugin_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_module(plugin_dir, "empty_plugins", "VALUE = 1\n")
    load_plugins(Registry(), ["empty_plugins"], builtin=False, entry_points=())
    assert "defines no @op handler" in caplog.text


def test_plugin_module_that_fails_to_import_names_bot_plugins(plugin_dir: Path) -> None:
    write_module(plugin_dir, "broken_plugins", "raise RuntimeError('oops')\n")
    with pytest.raises(SettingsError, match=r"BOT_PLUGINS: cannot import 'broken_plugins': oops"):
        load_plugins(Registry(), ["broken_plugins"], entry_points=())


def test_entry_points(plugin_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_module(
        plugin_dir,
        "ep_plugins",
        """
        from bot.jobs import op

        @op("from-entry-point")
        async def handler(job):
            return {}

        def register(registry):
            registry.register("from-hook", handler)
        """,
    )

    def entry(name: str, value: str) -> importlib.metadata.EntryPoint:
        return importlib.metadata.EntryPoint(name, value, ENTRY_POINT_GROUP)

    registry = load_plugins(
        Registry(),
        builtin=False,
        entry_points=[
            entry("module", "ep_plugins"),
            entry("hook", "ep_plugins:register"),
            entry("handler", "ep_plugins:handler"),
            entry("broken", "no_such_module_here:thing"),
        ],
    )
    assert registry.operations() == ("from-entry-point", "from-hook")
    assert "entry point broken could not be loaded" in caplog.text


def test_installed_entry_points_are_read_by_default() -> None:
    registry = load_plugins(Registry())  # whatever is installed, at least the built-ins
    assert {"sum", "subtract"} <= set(registry.operations())


# ---------------------------------------------------------------- running


async def test_async_handler_result_becomes_a_complete_report() -> None:
    registry = load_plugins(Registry(), entry_points=())
    report = await execute(registry, job("sum", {"a": 42, "b": 58}))
    assert (report.action, report.job_id, report.attempt) == ("complete", "job_1", 2)
    assert report.result == {"result": 100}


async def test_plain_handler_runs_off_the_event_loop() -> None:
    registry = Registry()
    loop_thread = threading.get_ident()

    def blocking(job: Job) -> dict[str, bool]:
        return {"in_loop_thread": threading.get_ident() == loop_thread}

    registry.register("blocking", blocking)
    report = await execute(registry, job("blocking"))
    assert report.result == {"in_loop_thread": False}


async def test_plain_handler_returning_an_awaitable_is_awaited() -> None:
    registry = Registry()

    async def inner() -> dict[str, int]:
        return {"n": 1}

    registry.register("indirect", lambda job: inner())
    assert (await execute(registry, job("indirect"))).result == {"n": 1}


async def test_none_result_is_an_empty_result() -> None:
    registry = Registry()
    registry.register("nothing", lambda job: None)
    assert (await execute(registry, job("nothing"))).result == {}


@pytest.mark.parametrize(
    ("outcome", "message"),
    [([1, 2], "returned list"), ({"when": object()}, "not JSON")],
)
async def test_results_that_are_not_json_objects_fail_for_good(
    outcome: object, message: str
) -> None:
    registry = Registry()
    registry.register("odd", lambda job: outcome)  # type: ignore[arg-type,return-value]
    report = await execute(registry, job("odd"))
    assert report.action == "fail" and report.retryable is False
    assert message in (report.error or "")


async def test_unknown_operation_fails_with_a_clear_message() -> None:
    report = await execute(load_plugins(Registry(), entry_points=()), job("multiply"))
    assert report.action == "fail" and report.retryable is True
    assert report.error == "unknown operation 'multiply': this bot handles subtract, sum"
    empty = await execute(Registry(), job("multiply"))
    assert (empty.error or "").endswith("handles nothing")


@pytest.mark.parametrize(
    ("raised", "error"),
    [
        (ValueError("bad thing"), "ValueError: bad thing"),
        (KeyError("a"), "KeyError: 'a'"),
        (RuntimeError(), "RuntimeError"),
        (SystemExit(3), "SystemExit: 3"),
        (TimeoutError("own timeout"), "TimeoutError: own timeout"),
    ],
)
@pytest.mark.parametrize("timeout_s", [30, None])
async def test_handler_exception_fails_the_job_with_its_text(
    raised: BaseException, error: str, timeout_s: float | None
) -> None:
    registry = Registry()

    async def explode(job: Job) -> None:
        raise raised

    registry.register("explode", explode)
    report = await execute(registry, job("explode", timeout_s=timeout_s))
    assert (report.action, report.error, report.retryable) == ("fail", error, True)


async def test_plugin_error_chooses_retryable() -> None:
    registry = Registry()

    async def later(job: Job) -> None:
        raise PluginError("try again", retryable=True)

    registry.register("later", later)
    report = await execute(registry, job("later"))
    assert (report.error, report.retryable) == ("try again", True)


async def test_long_errors_are_cut_to_the_protocol_limit() -> None:
    registry = Registry()

    async def verbose(job: Job) -> None:
        raise PluginError("x" * 20_000)

    registry.register("verbose", verbose)
    report = await execute(registry, job("verbose"))
    assert len(report.error or "") == 10_000 and (report.error or "").endswith("…")


async def test_timeout_fails_the_job() -> None:
    registry = Registry()

    async def forever(job: Job) -> None:
        await asyncio.Event().wait()

    registry.register("forever", forever)
    report = await execute(registry, job("forever", timeout_s=0.05))
    assert (report.action, report.error, report.retryable) == (
        "fail",
        "timeout: the job ran longer than its timeout_s of 0.05 s",
        True,
    )


async def test_cancellation_belongs_to_the_caller() -> None:
    registry = Registry()
    started = asyncio.Event()

    async def forever(job: Job) -> None:
        started.set()
        await asyncio.Event().wait()

    registry.register("forever", forever)
    task = asyncio.create_task(execute(registry, job("forever")))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# ---------------------------------------------------------------- payload helpers, plugins


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"b": 1}, "missing number 'a'"),
        ({"a": "1", "b": 2}, "'a' must be a number, got str '1'"),
        ({"a": True, "b": 2}, "'a' must be a number, got bool True"),
        ({"a": 1, "b": None}, "'b' must be a number, got NoneType None"),
        ({"a": 1, "b": [2]}, "'b' must be a number, got list [2]"),
    ],
)
@pytest.mark.parametrize("operation", ["sum", "subtract"])
async def test_builtin_plugins_reject_bad_payloads(
    payload: dict[str, Any], message: str, operation: str
) -> None:
    report = await execute(load_plugins(Registry(), entry_points=()), job(operation, payload))
    assert report.action == "fail" and report.retryable is False
    assert report.error == f"invalid payload: {message}"


@pytest.mark.parametrize(
    ("operation", "a", "b", "result"),
    [("sum", 42, 58, 100), ("sum", -5, 15, 10), ("subtract", 7, 9, -2), ("sum", 0.5, 0.25, 0.75)],
)
async def test_builtin_plugins_compute(operation: str, a: float, b: float, result: float) -> None:
    report = await execute(
        load_plugins(Registry(), entry_points=()), job(operation, {"a": a, "b": b})
    )
    assert report.result == {"result": result}


def test_number_args_returns_the_numbers() -> None:
    assert number_args({"a": 1, "b": 2.5, "c": "x"}, "a", "b") == (1, 2.5)
