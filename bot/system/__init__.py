"""The machine the bot runs on: durable file writes, host facts and load."""
