"""The botfleet coordinator: HTTP API over a store that holds bots, leases and the job queue."""
