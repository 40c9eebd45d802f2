"""Tables and figures of an RL plasticity sweep (scripts/rl_plasticity.py runs): mean and 95% interval per arm.

    python scripts/report_rl_plasticity.py runs/sweeps/rl-vec-pendulum-plasticity --out docs/results/rl/vec-pendulum

The same as ``python -m syre_rl rl-report``; what it reads and writes: :mod:`syre_rl.rl.report`.
"""

import sys

from syre_rl.rl.report import main

if __name__ == "__main__":
    sys.exit(main())
