"""Tables (Markdown) and figures (PNG) of a supervised run, from its ``results.json``.

    python scripts/report.py runs/pmnist docs/results/supervised/permuted-mnist
    python scripts/report.py --across beta docs/results/supervised/beta-vae runs/vae-b1 runs/vae-b4 runs/vae-b10

The same as ``python -m syre_rl report``; what it writes: :mod:`syre_rl.supervised.report`.
"""

import sys

from syre_rl.supervised.report import main

if __name__ == "__main__":
    sys.exit(main())
