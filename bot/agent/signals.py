"""SIGTERM/SIGINT as stop requests, installed for a block and restored after it.

The first signal asks for a graceful stop (drain), the second for a hard one;
what they do is the bot's business (`Bot.request_stop`), this module only routes
them and puts the previous handlers back (as `procrastinate/signals.py` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals(
    on_signal: Callable[[str], None], signals: tuple[signal.Signals, ...] = STOP_SIGNALS
) -> Iterator[None]:
    """Call `on_signal(name)` on each of `signals` inside the block (in the running loop)."""
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in signals}
    installed: list[signal.Signals] = []
    try:
        for sig in signals:
            try:
                loop.add_signal_handler(sig, on_signal, sig.name)
            except (NotImplementedError, RuntimeError) as exc:  # not the main thread, Windows
                log.debug("cannot handle %s here: %s", sig.name, exc)
                continue
            installed.append(sig)
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
            handler = previous[sig]
            if handler is not None:
                signal.signal(sig, handler)
