"""Plot a sweep: mean over seeds and a 95% bootstrap band per method, one figure per task.

    python scripts/plot.py runs/sweeps/rl-slippery-ant-study
    python scripts/plot.py runs/sweeps/rl-main-job --finals ppo --out docs/results/rl/main-job

The same as ``python -m syre_rl plot``; the command line is :mod:`syre_rl.sweep.plot`.
"""

import sys

from syre_rl.sweep.plot import main

if __name__ == "__main__":
    sys.exit(main())
