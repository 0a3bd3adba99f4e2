"""Built-in job handlers: every public module of this package is loaded at start.

A module here defines handlers with `@op("name")`; modules whose name starts with
an underscore are skipped.
"""
