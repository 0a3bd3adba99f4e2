"""How the bot calls its coordinator; the home of this is `bot.link.http`."""

from bot.link.http import Api, HttpApi, parse_retry_after

__all__ = ["Api", "HttpApi", "parse_retry_after"]
