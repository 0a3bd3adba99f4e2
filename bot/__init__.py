"""The botfleet bot: registers with a coordinator, claims jobs, runs plugin handlers, reports.

Plugin authors need only `op`, `Job` and `PluginError`; running a bot goes through
`bot.main.run_bot` (the command line) or `bot.machine.Bot`.
"""

from bot.errors import PluginError
from bot.jobs import op
from bot.state import Job

__all__ = ["Job", "PluginError", "op"]
