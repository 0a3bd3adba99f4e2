"""`python -m bot`: the same as `botfleet bot`."""

import sys

from bot.main import main

sys.exit(main())
