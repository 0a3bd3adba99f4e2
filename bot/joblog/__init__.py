"""Job logs on the bot: capture by context, the bounded buffer, the log loop."""
