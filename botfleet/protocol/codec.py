"""JSON encoding and validating decoding of protocol messages (msgspec)."""

from __future__ import annotations

import io
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


class ProtocolError(ValueError):
    """A message that is not valid JSON or does not match its schema."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    return decoder


def encode(message: Any) -> bytes:
    return _encoder.encode(message)


def decode(data: bytes | str, kind: type[T]) -> T:
    """Decode and validate; the error message names the offending field (`$.limit`)."""
    try:
        result: T = _decoder(kind).decode(data)
    except msgspec.ValidationError as exc:
        text = str(exc)
        field = text.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in text else None
        raise ProtocolError(text, field) from exc
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"malformed JSON: {exc}") from exc
    return result


# aiohttp writes a bytes body in one go, holding the event loop, and warns past this size;
# a file object it sends in chunks.
LARGE_BODY_BYTES = 1024 * 1024


def request_body(payload: bytes) -> bytes | io.BytesIO:
    """An encoded body as aiohttp sends it best: large ones from a file object."""
    return io.BytesIO(payload) if len(payload) > LARGE_BODY_BYTES else payload
