"""What every operator command gets: the API client, the output, and the clock."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from botfleet.cli.render import Output
from botfleet.client import AsyncClient
from botfleet.clock import Clock


@dataclass(frozen=True, slots=True)
class Context:
    client: AsyncClient
    output: Output
    clock: Clock


Handler = Callable[[argparse.Namespace, Context], Awaitable[int]]
