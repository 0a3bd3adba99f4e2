"""The event loop choice: uvloop by default where installed, asyncio on request, bad
values named."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest

from botfleet import eventloop


def _loop_module() -> str:
    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    _, factory = eventloop.loop_factory({})
    return eventloop.run(which(), factory)


def test_default_is_uvloop_where_installed() -> None:
    pytest.importorskip("uvloop", reason="uvloop is not installed on this platform")
    name, factory = eventloop.loop_factory({})
    assert name == "uvloop"
    assert factory is not None
    assert _loop_module().startswith("uvloop")


@pytest.mark.parametrize("value", ["asyncio", " ASYNCIO "])
def test_asyncio_on_request(value: str) -> None:
    assert eventloop.loop_factory({eventloop.ENV_VAR: value}) == ("asyncio", None)


def test_run_returns_what_main_returns_on_the_standard_loop() -> None:
    async def answer() -> tuple[int, str]:
        return 42, type(asyncio.get_running_loop()).__module__

    assert eventloop.run(answer(), None) == (42, "asyncio.unix_events")


def test_unknown_loop_is_named() -> None:
    with pytest.raises(eventloop.EventLoopError, match=r"BOTFLEET_EVENT_LOOP='tokio'.*auto"):
        eventloop.loop_factory({eventloop.ENV_VAR: "tokio"})


def test_without_uvloop_auto_falls_back_and_uvloop_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert eventloop.loop_factory({}) == ("asyncio", None)
    with pytest.raises(eventloop.EventLoopError, match="uvloop is not installed"):
        eventloop.loop_factory({eventloop.ENV_VAR: "uvloop"})


def test_freezing_the_startup_heap_keeps_it_out_of_collections() -> None:
    gc.unfreeze()
    try:
        eventloop.freeze_startup_heap()
        assert gc.get_freeze_count() > 1000  # this test process's modules and objects
    finally:
        gc.unfreeze()
