"""`python -m coordinator [flags]`: the same as `botfleet server [flags]`."""

from __future__ import annotations

import argparse

from coordinator.server import add_server_arguments, run_server


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m coordinator", description="Run the botfleet coordinator."
    )
    add_server_arguments(parser)
    return run_server(parser.parse_args())


if __name__ == "__main__":
    raise SystemExit(main())
