"""Folders and files only their owner may read: state folders 0700, the files in them 0600.

The coordinator's state folder holds its tokens and its database (every payload and
result); the bot's holds its identity and its outbox of results. Neither is anybody
else's business on a shared machine, whatever the umask.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
_OTHERS = 0o077  # the group and world bits


def private_dir(path: Path) -> None:
    """Create `path` (and missing parents) with the leaf 0700, or narrow an existing one.

    A folder that others may enter is narrowed once, with one log line saying so. One
    this process does not own is left alone (chmod would fail; narrowing a shared folder
    such as /tmp would be wrong) and the log says that too.
    """
    try:
        path.mkdir(parents=True, mode=PRIVATE_DIR)
    except FileExistsError:
        _narrow(path, PRIVATE_DIR, "folder")
        return
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode is masked by the umask; be exact


def private_file(path: Path) -> None:
    """Create `path` empty with mode 0600 if missing, or narrow an existing wider one."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        _narrow(path, PRIVATE_FILE, "file")
        return
    try:
        os.fchmod(descriptor, PRIVATE_FILE)
    finally:
        os.close(descriptor)


def narrow_if_present(path: Path) -> None:
    """Make an existing file 0600 (a file that is not there is no error)."""
    if path.exists():
        _narrow(path, PRIVATE_FILE, "file")


def _narrow(path: Path, mode: int, what: str) -> None:
    info = path.stat()
    current = stat.S_IMODE(info.st_mode)
    if not current & _OTHERS:
        return
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        log.warning(
            "the %s %s is open to other users (%04o) and belongs to another user; left as it is",
            what,
            path,
            current,
        )
        return
    os.chmod(path, mode)
    log.warning(
        "the %s %s was open to other users (%04o); narrowed it to %04o", what, path, current, mode
    )
