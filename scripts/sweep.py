"""Run a grid of training runs (methods x tasks x hyperparameters x seeds) here or on a Ray cluster.

    python scripts/sweep.py --list                                   # the grids in grids/*.yaml
    python scripts/sweep.py rl:slippery-ant-study --dry-run          # what would run
    python scripts/sweep.py rl:slippery-ant-study --jobs 2           # run it here, two at a time
    python scripts/sweep.py rl:slippery-ant-study --address HEAD:6379   # one Ray task per run

The same as ``python -m syre_rl sweep``; the command line is :mod:`syre_rl.sweep.command`.
"""

import sys

from syre_rl.sweep.command import main

if __name__ == "__main__":
    sys.exit(main())
