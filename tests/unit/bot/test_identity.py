"""Identity: a stable bot_key on disk (0600, atomic), a fresh instance id per start."""

from __future__ import annotations

import itertools
import logging
import stat
from pathlib import Path

import msgspec
import pytest

from bot.errors import (
    IdentityTakenError,
    StateDirError,
)
from bot.identity import Identity, IdentityStore, compute_bot_key, new_instance_id
from bot.system.disk import Disk


def store(path: Path, disk: Disk | None = None) -> IdentityStore:
    numbers = itertools.count(1)
    return IdentityStore(path, disk=disk, make_instance_id=lambda: f"inst_{next(numbers)}")


def test_bot_key_is_sha256_of_host_platform_and_name() -> None:
    key = compute_bot_key("host", "Linux-x86_64", "default")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key != compute_bot_key("host", "Linux-x86_64", "other")
    assert compute_bot_key("ab", "c", "n") != compute_bot_key("a", "bc", "n")


def test_new_instance_ids_differ() -> None:
    assert new_instance_id() != new_instance_id()


def test_first_start_writes_a_private_identity_file(tmp_path: Path) -> None:
    identities = store(tmp_path / "state")
    identity = identities.rotate_instance_id(identities.load("worker", "host", "Linux-x86_64"))

    assert identity.bot_key == compute_bot_key("host", "Linux-x86_64", "worker")
    assert identity.instance_id == "inst_1"
    assert stat.S_IMODE(identities.path.stat().st_mode) == 0o600
    assert list(identities.path.parent.iterdir()) == [identities.path]  # no temp file left


def test_restart_keeps_the_key_and_rotates_the_instance(tmp_path: Path) -> None:
    first = store(tmp_path)
    one = first.rotate_instance_id(first.load("worker", "host-a", "Linux-x86_64"))
    # A container restart: new hostname, same state folder.
    second = store(tmp_path)
    loaded = second.load("worker", "host-b", "Linux-x86_64")
    assert loaded.bot_key == one.bot_key and loaded.instance_id == one.instance_id
    two = second.rotate_instance_id(loaded)
    assert two.bot_key == one.bot_key and two.instance_id != "" and two.instance_id == "inst_1"
    assert second.load("worker", "host-b", "Linux-x86_64").instance_id == two.instance_id


def test_renamed_bot_gets_a_new_key(tmp_path: Path) -> None:
    identities = store(tmp_path)
    old = identities.rotate_instance_id(identities.load("one", "host", "p"))
    new = identities.load("two", "host", "p")
    assert new.bot_key != old.bot_key and new.bot_key == compute_bot_key("host", "p", "two")


@pytest.mark.parametrize(
    "content", [b"{not json", b"", b'{"bot_key": 5, "name": "worker"}', b'{"bot_key": ""}', b"[]"]
)
def test_corrupted_file_is_replaced_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    identities = store(tmp_path)
    identities.path.write_bytes(content)
    caplog.set_level(logging.WARNING)

    identity = identities.rotate_instance_id(identities.load("worker", "host", "p"))

    assert identity.bot_key == compute_bot_key("host", "p", "worker")
    assert identities.load("worker", "host", "p") == identity
    if content != b'{"bot_key": ""}':
        assert "corrupted" in caplog.text
        assert (tmp_path / "identity.json.corrupt").read_bytes() == content


def test_corrupted_file_that_cannot_be_moved_is_still_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class NoRename(Disk):
        def replace(self, source: Path, target: Path) -> None:
            if target.name.endswith(".corrupt"):
                raise PermissionError("read-only")
            super().replace(source, target)

    identities = store(tmp_path, NoRename())
    identities.path.write_bytes(b"garbage")
    identity = identities.rotate_instance_id(identities.load("worker", "host", "p"))
    assert identities.load("worker", "host", "p") == identity
    assert "could not move" in caplog.text


def test_crash_before_rename_keeps_the_old_file(tmp_path: Path) -> None:
    class CrashOnRename(Disk):
        def replace(self, source: Path, target: Path) -> None:
            raise OSError("power cut")

    identities = store(tmp_path)
    first = identities.rotate_instance_id(identities.load("worker", "host", "p"))
    crashing = store(tmp_path, CrashOnRename())
    with pytest.raises(StateDirError, match="power cut"):
        crashing.rotate_instance_id(first)
    assert store(tmp_path).load("worker", "host", "p") == first
    assert [p.name for p in tmp_path.iterdir()] == ["identity.json"]


def test_state_folder_under_a_file_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateDirError, match="cannot read"):
        store(blocker / "state").load("worker", "host", "p")


def test_unwritable_state_folder_is_a_state_error(tmp_path: Path) -> None:
    class ReadOnly(Disk):
        def write_atomic(self, path: Path, data: bytes) -> None:
            raise PermissionError(13, "Permission denied")

    identities = store(tmp_path, ReadOnly())
    with pytest.raises(StateDirError, match="cannot write"):
        identities.rotate_instance_id(identities.load("worker", "host", "p"))


def test_unreadable_identity_is_a_state_error(tmp_path: Path) -> None:
    class Unreadable(Disk):
        def read_bytes(self, path: Path) -> bytes | None:
            raise PermissionError("denied")

    with pytest.raises(StateDirError, match="cannot read"):
        store(tmp_path, Unreadable()).load("worker", "host", "p")


def test_identity_check(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = IdentityStore(tmp_path, make_instance_id=lambda: "inst_1")
    mine = store.rotate_instance_id(store.load("w", "host", "Linux"))
    store.check(mine)
    store.path.unlink()
    store.check(mine)  # written again
    assert "was removed" in caplog.text and store.load("w", "host", "Linux") == mine

    other = IdentityStore(tmp_path, make_instance_id=lambda: "inst_2")
    other.rotate_instance_id(other.load("w", "host", "Linux"))
    with pytest.raises(IdentityTakenError, match="another bot process"):
        store.check(mine)
    store.path.write_bytes(msgspec.json.encode({"bot_key": mine.bot_key, "name": "w"}))
    with pytest.raises(IdentityTakenError):
        store.check(mine)
    assert isinstance(IdentityTakenError(), StateDirError)
    assert Identity("k", "w").instance_id == ""
