"""The reports: the queue of finished jobs' reports, their delivery, the outbox."""
