"""Measure RL plasticity on a continuing task: a continuing PPO agent against fresh agents, regime by regime.

    python scripts/rl_plasticity.py --preset vec-pendulum --seed 0                 # plain PPO, ~2 CPU-minutes
    python scripts/rl_plasticity.py --preset vec-pendulum --syre --syre-sigma0 1 --seed 0

The same as ``python -m syre_rl plasticity``; what it measures and writes: :mod:`syre_rl.rl.plasticity`.
"""

import sys

from syre_rl.rl.plasticity import main

if __name__ == "__main__":
    sys.exit(main())
