"""Private folders and files: created 0700/0600 whatever the umask, wider ones narrowed."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from botfleet.private_files import narrow_if_present, private_dir, private_file


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def test_a_new_folder_and_file_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    private_dir(folder)
    private_file(folder / "secret")
    assert (mode(folder), mode(folder / "secret")) == (0o700, 0o600)
    assert (folder / "secret").read_bytes() == b""


def test_an_existing_file_keeps_its_content_and_loses_the_others_bits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    file = tmp_path / "data"
    file.write_bytes(b"kept")
    file.chmod(0o664)
    with caplog.at_level(logging.WARNING):
        private_file(file)
    assert (mode(file), file.read_bytes()) == (0o600, b"kept")
    assert [r.getMessage() for r in caplog.records] == [
        f"the file {file} was open to other users (0664); narrowed it to 0600"
    ]


def test_an_existing_folder_open_to_others_is_narrowed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "state"
    folder.mkdir()
    folder.chmod(0o755)
    with caplog.at_level(logging.WARNING):
        private_dir(folder)
    assert mode(folder) == 0o700
    assert [r.getMessage() for r in caplog.records] == [
        f"the folder {folder} was open to other users (0755); narrowed it to 0700"
    ]


def test_private_ones_are_left_alone_silently(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "state"
    folder.mkdir(mode=0o700)
    file = folder / "token"
    file.write_text("x")
    file.chmod(0o400)  # narrower than 0600: not widened
    with caplog.at_level(logging.DEBUG):
        private_dir(folder)
        private_file(file)
        narrow_if_present(folder / "absent")
    assert (mode(folder), mode(file)) == (0o700, 0o400)
    assert caplog.records == []
