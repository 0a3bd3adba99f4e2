#!/usr/bin/env python3
"""`python bin/bot.py`: the same as `botfleet bot`, from a checkout without installing."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.main import main

if __name__ == "__main__":
    sys.exit(main())
