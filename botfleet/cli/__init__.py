"""The `botfleet` command line: server, bot, operator commands and the demo."""

from botfleet.cli.main import main

__all__ = ["main"]
