"""Train one of the paper's supervised experiments; every member (method x sweep value x seed) in one batched model.

    python scripts/train_supervised.py --experiment permuted-mnist --run-dir runs/pmnist
    python scripts/train_supervised.py --experiment teacher-student --syre --sigma0 0.1 --weight-decay 0.01
    python scripts/train_supervised.py --experiment permuted-mnist --device cuda --step graph

The same as ``python -m syre_rl supervised``; the command line is :mod:`syre_rl.supervised.command`.
"""

import sys

from syre_rl.supervised.command import main

if __name__ == "__main__":
    sys.exit(main())
