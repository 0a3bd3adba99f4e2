"""Job ids: opaque to clients (PROTOCOL.md), time-ordered inside.

`job_` + the creation time in milliseconds (12 hex digits) + 64 random bits (16 hex
digits). The time comes first so that jobs submitted together sit together in the
`jobs.id` index and the `attempts` key: on a long queue the oldest jobs, which claims
take first, are the ones in cache, where random ids would scatter every insert and
lookup over the whole index. The random part keeps ids unguessable and unique across
processes.
"""

from __future__ import annotations

import secrets
from datetime import datetime

PREFIX = "job_"


def new_job_id(now: datetime) -> str:
    millis = int(now.timestamp() * 1000)
    return f"{PREFIX}{millis:012x}{secrets.token_hex(8)}"
