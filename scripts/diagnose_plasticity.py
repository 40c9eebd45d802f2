"""Which part of an agent lost plasticity: counterfactual resets from a run's checkpoint at a regime change.

    python scripts/diagnose_plasticity.py runs/plasticity/RUN --step 100000 --seeds 3 --out diagnosis/RUN

RUN is a finished ``scripts/rl_plasticity.py`` run (it checkpoints at every change). Writes diagnosis.json, .csv,
.md and .png into --out (default: RUN-diagnosis beside the run). The same as ``python -m syre_rl diagnose``; the
logic: :mod:`syre_rl.rl.diagnose`.
"""

import sys

from syre_rl.rl.diagnose import main

if __name__ == "__main__":
    sys.exit(main())
