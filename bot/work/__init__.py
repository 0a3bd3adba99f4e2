"""The work: the claim loop, the job runner, the handler threads, the concurrency limit."""
