"""The link to the coordinator: HTTP calls, circuit breaker, heartbeat, session, backoff."""
