"""Report a plasticity benchmark: the plasticity figure per arm over tasks, and its first-vs-last change.

    python scripts/plasticity_report.py runs/sweeps/supervised-plasticity-bit-flipping \
        --figure train/loss --baseline linear --smooth 2 --out docs/results/plasticity/bit-flipping

See :mod:`syre_rl.supervised.plasticity_report` for what it reads and writes. Bad input: one line on stderr,
exit status 2.
"""

from __future__ import annotations

import sys

from syre_rl.supervised.plasticity_report import main

if __name__ == "__main__":
    sys.exit(main())
