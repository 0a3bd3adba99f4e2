"""The Python client of botfleet's producer and operator API.

```python
from botfleet.client import Client

with Client("http://127.0.0.1:8000", token="…") as client:
    print(client.submit("sum", {"a": 1, "b": 2}).result(timeout=30))
```

`AsyncClient` has the same methods as coroutines. docs/client.md explains the rest.
"""

from botfleet.client.aio import AsyncClient, AsyncJobHandle
from botfleet.client.errors import (
    ApiError,
    BadRequest,
    BotfleetError,
    CertificateFailed,
    Conflict,
    ConnectionFailed,
    Forbidden,
    JobCancelled,
    JobError,
    JobFailed,
    NotFound,
    Unauthorized,
    Unavailable,
    UnexpectedAnswer,
    WaitTimeout,
)
from botfleet.client.retry import RetryPolicy
from botfleet.client.sync import Client, JobHandle

__all__ = [
    "ApiError",
    "AsyncClient",
    "AsyncJobHandle",
    "BadRequest",
    "BotfleetError",
    "CertificateFailed",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "JobCancelled",
    "JobError",
    "JobFailed",
    "JobHandle",
    "NotFound",
    "RetryPolicy",
    "Unauthorized",
    "Unavailable",
    "UnexpectedAnswer",
    "WaitTimeout",
]
