"""The bot's logging: readable lines by default, JSON lines with `--log-format json`.

Every botfleet process logs the same way, so the parts live in `botfleet.logs`;
this module keeps the name the bot's users know.
"""

from botfleet.logs import (
    LOG_FORMATS,
    LogContext,
    LogFormat,
    bot_context,
    configure_logging,
    job_context,
    make_handler,
)

__all__ = [
    "LOG_FORMATS",
    "LogContext",
    "LogFormat",
    "bot_context",
    "configure_logging",
    "job_context",
    "make_handler",
]
