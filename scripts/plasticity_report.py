"""Report a supervised plasticity benchmark: the plasticity figure per arm over tasks, and its first-vs-last change.

    python scripts/plasticity_report.py runs/sweeps/supervised-plasticity-bit-flipping \
        --figure train/loss --baseline linear --smooth 2 --out docs/results/plasticity/bit-flipping

The same as ``python -m syre_rl plasticity-report``; what it reads and writes: :mod:`syre_rl.supervised.plasticity_report`.
"""

import sys

from syre_rl.supervised.plasticity_report import main

if __name__ == "__main__":
    sys.exit(main())
