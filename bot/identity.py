"""Who the bot is: a stable `bot_key` kept on disk and a fresh `instance_id` per process.

`bot_key` is the sha256 of hostname, platform and BOT_NAME the first time; after
that the stored key is kept for as long as the name stays the same, so a container
that gets a new hostname at every restart stays the same bot. The instance id
changes at every start, which tells the coordinator that the previous process is
gone (its jobs are requeued at once).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import msgspec

from bot.errors import IdentityTakenError, StateDirError
from bot.system.disk import Disk

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"


@dataclass(frozen=True, slots=True)
class Identity:
    bot_key: str
    name: str
    instance_id: str = ""


class _IdentityFile(msgspec.Struct, kw_only=True):
    bot_key: str
    name: str
    instance_id: str = ""


def compute_bot_key(hostname: str, platform: str, name: str) -> str:
    # NUL separators: ("ab", "c") and ("a", "bc") must not give the same key.
    return hashlib.sha256(f"{hostname}\0{platform}\0{name}".encode()).hexdigest()


def new_instance_id() -> str:
    return f"inst_{uuid.uuid4().hex}"


class IdentityStore:
    def __init__(
        self,
        state_dir: Path,
        *,
        disk: Disk | None = None,
        make_instance_id: Callable[[], str] = new_instance_id,
    ) -> None:
        self.path = state_dir / IDENTITY_FILE
        self._disk = disk or Disk()
        self._make_instance_id = make_instance_id

    def load(self, name: str, hostname: str, platform: str) -> Identity:
        """The stored identity for `name`, or a new one; a corrupted file is set aside."""
        stored = self._read()
        if stored is not None and stored.name == name and stored.bot_key:
            return Identity(stored.bot_key, name, stored.instance_id)
        if stored is not None:
            log.info("bot name changed from %r to %r: a new bot_key", stored.name, name)
        return Identity(compute_bot_key(hostname, platform, name), name)

    def rotate_instance_id(self, identity: Identity) -> Identity:
        """A fresh instance id, saved before it is used."""
        rotated = replace(identity, instance_id=self._make_instance_id())
        self.save(rotated)
        return rotated

    def check(self, identity: Identity) -> None:
        """Make sure the state folder still holds `identity`, writing it again if it went.

        Raises `IdentityTakenError` when another process started with this folder (its
        instance id is there now), `StateDirError` when the identity cannot be kept.
        """
        stored = self._read()
        if stored is None:
            log.warning("%s was removed; writing it again", self.path)
            self.save(identity)
        elif (stored.bot_key, stored.instance_id) != (identity.bot_key, identity.instance_id):
            raise IdentityTakenError(
                f"{self.path} now holds instance {stored.instance_id}, not this process's "
                f"{identity.instance_id}: another bot process started with this state folder"
            )

    def save(self, identity: Identity) -> None:
        data = msgspec.json.encode(
            _IdentityFile(
                bot_key=identity.bot_key, name=identity.name, instance_id=identity.instance_id
            )
        )
        try:
            self._disk.make_dir(self.path.parent)
            self._disk.write_atomic(self.path, data + b"\n")
        except OSError as exc:
            raise StateDirError(f"cannot write {self.path}: {exc}") from exc

    def _read(self) -> _IdentityFile | None:
        try:
            data = self._disk.read_bytes(self.path)
        except OSError as exc:
            raise StateDirError(f"cannot read {self.path}: {exc}") from exc
        if data is None:
            return None
        try:
            return msgspec.json.decode(data, type=_IdentityFile)
        except msgspec.DecodeError as exc:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning("%s is corrupted (%s); moved to %s, starting afresh", self.path, exc, aside)
            try:
                self._disk.replace(self.path, aside)
            except OSError as move_exc:
                log.warning("could not move %s aside: %s", self.path, move_exc)
            return None
