"""botfleet: shared parts of the bot and the coordinator (wire contract, clock, command line)."""

__version__ = "0.1.0"

__all__ = ["__version__"]
