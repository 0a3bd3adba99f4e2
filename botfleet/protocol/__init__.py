"""The wire contract shared by the bot and the coordinator.

Messages live in `botfleet.protocol.messages`; `encode`/`decode` are the only
way either side turns them into bytes and back.
"""

from botfleet.protocol.codec import ProtocolError, decode, encode

__all__ = ["ProtocolError", "decode", "encode"]
