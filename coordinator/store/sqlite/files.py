"""The database file and its companions, private to this user (0600).

The database holds every payload and result. SQLite creates its `-wal` and `-shm`
files with the mode of the database file, whatever the umask, so a database created
0600 keeps all three private; files that an older version left wider are narrowed.
"""

from __future__ import annotations

from pathlib import Path

from botfleet.private_files import narrow_if_present, private_file

COMPANIONS = ("-wal", "-shm", "-journal")


def make_private(path: str) -> None:
    """Create the database file 0600 if missing; narrow it and its companions if wider."""
    database = Path(path)
    private_file(database)
    for suffix in COMPANIONS:
        narrow_if_present(database.with_name(database.name + suffix))
