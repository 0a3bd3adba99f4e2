"""How the coordinator and the bot run: on uvloop where it is installed, with the heap
of their start-up frozen.

Every request costs both sides their event loop's work (selector, transports,
callbacks), and on the hot paths that is much of what a request costs; uvloop does
that work for less CPU (docs/performance.md). uvloop is a dependency on Linux and
macOS; elsewhere, or with `BOTFLEET_EVENT_LOOP=asyncio`, the standard loop runs the
same code.
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import os
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
ENV_VAR = "BOTFLEET_EVENT_LOOP"
CHOICES = ("auto", "uvloop", "asyncio")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class EventLoopError(ValueError):
    """`BOTFLEET_EVENT_LOOP` names no loop, or one that is not installed."""


def loop_factory(env: Mapping[str, str] | None = None) -> tuple[str, LoopFactory | None]:
    """The loop `BOTFLEET_EVENT_LOOP` asks for (default `auto`: uvloop if installed),
    and its factory (None: asyncio's default)."""
    wanted = (os.environ if env is None else env).get(ENV_VAR, "auto").strip().lower() or "auto"
    if wanted not in CHOICES:
        raise EventLoopError(f"{ENV_VAR}={wanted!r}: expected one of {', '.join(CHOICES)}")
    if wanted == "asyncio":
        return "asyncio", None
    try:
        uvloop: Any = importlib.import_module("uvloop")
    except ImportError:
        if wanted == "uvloop":
            raise EventLoopError(f"{ENV_VAR}=uvloop, but uvloop is not installed") from None
        return "asyncio", None
    factory: LoopFactory = uvloop.new_event_loop
    return "uvloop", factory


def run(main: Coroutine[Any, Any, T], factory: LoopFactory | None) -> T:
    """`asyncio.run(main)` on the loop `factory` makes (None: asyncio's own)."""
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def freeze_startup_heap() -> None:
    """Move everything alive now (modules, classes, the app) out of the garbage
    collector's reach, so a full collection, which pauses every request, skips the
    objects made at start-up that live until the end anyway. Call once, just before
    the loop starts."""
    gc.collect()  # what is garbage now is collected, not kept for ever
    gc.freeze()
