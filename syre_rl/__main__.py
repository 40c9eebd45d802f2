"""``python -m syre_rl <command> [options]``: every command line of the toolkit (:mod:`syre_rl.lifecycle`)."""

import sys

from syre_rl.lifecycle import main

sys.exit(main())
