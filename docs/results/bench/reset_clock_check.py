"""How often the reset clock's tables differ from a per-entry ``pow`` in a real run (random-label MNIST, CBP and
ReDo, 2 tasks, 2 seeds): SYRE_RL_DATA=... python docs/results/bench/reset_clock_check.py (output: reset-clock.txt)."""

import importlib.util
import sys

import torch

from syre_rl.methods import resets
from syre_rl.presets import PROJECT_ROOT

stats = {"calls": 0, "mismatch": 0, "entries": 0, "nonint": 0}
correct = resets.AdamResetClock.correct


def checked_correct(self: resets.AdamResetClock, optimizer: torch.optim.Optimizer) -> None:
    """Compare the tables with ``pow`` per entry on every tracked entry, then correct as usual."""
    for index, (flat, last) in list(self.entries.items()):
        param = self.params[index]
        state = optimizer.state.get(param, {})
        if "exp_avg" not in state or flat.numel() == 0:
            continue
        b1, b2 = self._group(optimizer, param)["betas"]
        step = torch.as_tensor(state["step"], dtype=torch.float32).to(param.device)
        own = (step - last[flat]).clamp_(min=1.0)
        first, second = self._corrections(b1, b2, optimizer, param)
        k = own.long()
        stats["nonint"] += int((own != k.float()).sum())
        stats["mismatch"] += int(((1 - b1**own) != first.index_select(0, k)).sum())
        stats["mismatch"] += int(((1 - b2**own).sqrt() != second.index_select(0, k)).sum())
        stats["entries"] += own.numel()
    stats["calls"] += 1
    correct(self, optimizer)


resets.AdamResetClock.correct = checked_correct
sys.argv = ["train_supervised.py", "--experiment", "random-label-mnist", "--preset", "resets", "--tasks", "2",
            "--seeds", "2", "--run-dir", "/tmp/reset_clock_check", "--force", "--threads", "1"]  # fmt: skip
spec = importlib.util.spec_from_file_location("train_supervised", PROJECT_ROOT / "scripts" / "train_supervised.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
try:
    module.main()
except SystemExit:
    pass
print(stats)
