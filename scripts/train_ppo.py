"""Train PPO (or A2C / SAC) with Stable-Baselines3 on a PyBullet task, with or without syre.

    python scripts/train_ppo.py --syre                          # the main job: ~10 minutes on a 2-core CPU
    python scripts/train_ppo.py --preset syre-paper --syre --env slippery_ant:study
    python scripts/train_ppo.py --syre --run-dir runs/a --resume   # continue after Ctrl-C or a crash

The same as ``python -m syre_rl train``; the command line is :mod:`syre_rl.rl.command`.
"""

import sys

from syre_rl.rl.command import main

if __name__ == "__main__":
    sys.exit(main())
