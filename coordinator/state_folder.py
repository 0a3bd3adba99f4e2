"""The coordinator's state folder (generated tokens, the default database): 0700."""

from __future__ import annotations

from botfleet.private_files import private_dir
from coordinator.config import ServerConfig


def prepare_state_folder(config: ServerConfig) -> None:
    """Create the state folder 0700, or narrow an existing one, before anything is kept in it.

    A coordinator given both tokens and another database keeps nothing there: then a
    missing folder is not created (it may run where it cannot write), only an existing
    one narrowed.
    """
    keeps_something = (
        config.admin_token is None or config.enroll_token is None or config.db_url is None
    )
    if keeps_something or config.state_dir.exists():
        private_dir(config.state_dir)
