"""File operations for the bot's durable state, one step per method.

Identity and outbox write through a `Disk`, so a test can replace one step (make
`replace` raise to simulate a crash mid-rewrite, make `open_append` hand out a file
whose writes fail with ENOSPC) without patching `os`.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO

from botfleet.private_files import PRIVATE_FILE, private_dir

log = logging.getLogger(__name__)


class Disk:
    def make_dir(self, path: Path) -> None:
        """The state folder, 0700: created so, or narrowed (once, logged) if wider."""
        private_dir(path)

    def read_bytes(self, path: Path) -> bytes | None:
        """The file's content, or None when it does not exist."""
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None

    def open_append(self, path: Path) -> BinaryIO:
        """An unbuffered handle that appends; the file is private (0600): created so, or
        narrowed if an older version left it wider."""
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, PRIVATE_FILE)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_FILE:
                os.fchmod(fd, PRIVATE_FILE)
        except OSError:
            os.close(fd)
            raise
        return os.fdopen(fd, "ab", buffering=0)

    def fsync(self, handle: BinaryIO) -> None:
        handle.flush()
        os.fsync(handle.fileno())

    def replace(self, source: Path, target: Path) -> None:
        os.replace(source, target)

    def remove(self, path: Path) -> None:
        """Delete `path`; a file that is not there is no error."""
        path.unlink(missing_ok=True)

    def same_file(self, path: Path, handle: BinaryIO) -> bool:
        """Whether `path` still names the open file `handle` (not removed, replaced, moved)."""
        try:
            named = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        held = os.fstat(handle.fileno())
        return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)

    def probe_dir(self, path: Path) -> None:
        """Create and remove a file in `path`: raises OSError when the folder takes no writes."""
        probe = path / f".probe.{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
        os.close(fd)
        os.unlink(probe)

    def fsync_dir(self, path: Path) -> None:
        """Make a rename in `path` durable (the directory entry itself is fsynced)."""
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_atomic(self, path: Path, data: bytes) -> None:
        """Replace `path` with `data` all at once: temp file, fsync, rename, fsync the folder.

        A crash at any step leaves either the old content or the new, never a mix.
        """
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), PRIVATE_FILE)
                handle.write(data)
                self.fsync(handle)
            self.replace(temp, path)
        except BaseException:
            try:
                temp.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove the temporary file %s: %s", temp, exc)
            raise
        self.fsync_dir(path.parent)
