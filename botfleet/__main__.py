"""`python -m botfleet …` runs the command line."""

import sys

from botfleet.cli.main import main

sys.exit(main())
