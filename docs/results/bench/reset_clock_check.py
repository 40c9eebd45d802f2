"""How often the reset clock's tables differ from a per-entry ``pow`` in a real run (random-label MNIST, CBP and
ReDo, 2 tasks, 2 seeds): SYRE_RL_DATA=... python docs/results/bench/reset_clock_check.py (output: reset-clock.txt)."""

import sys, torch
from syre_rl.presets import PROJECT_ROOT
from syre_rl.baselines import resets
orig = resets.AdamResetClock.correct
stats = {"calls": 0, "mismatch": 0, "entries": 0, "nonint": 0}
def correct(self, optimizer):
    for index, (flat, last) in list(self.entries.items()):
        param = self.params[index]; state = optimizer.state.get(param, {})
        if "exp_avg" not in state or flat.numel() == 0: continue
        group = self._group(optimizer, param); (b1, b2) = group["betas"]
        step = torch.as_tensor(state["step"], dtype=torch.float32).to(param.device)
        own = (step - last[flat]).clamp_(min=1.0)
        first, second = self._corrections(b1, b2, optimizer, param)
        k = own.long()
        stats["nonint"] += int((own != k.float()).sum())
        stats["mismatch"] += int(((1 - b1**own) != first.index_select(0, k)).sum() + ((1 - b2**own).sqrt() != second.index_select(0, k)).sum())
        stats["entries"] += own.numel()
    stats["calls"] += 1
    return orig(self, optimizer)
resets.AdamResetClock.correct = correct
sys.argv = ["train_supervised.py", "--experiment", "random-label-mnist", "--preset", "resets", "--tasks", "2", "--seeds", "2", "--run-dir", "/tmp/chk_run", "--force", "--threads", "1"]
import importlib.util
spec = importlib.util.spec_from_file_location("ts", str(PROJECT_ROOT / "scripts/train_supervised.py")); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
try: m.main()
except SystemExit: pass
print(stats)
