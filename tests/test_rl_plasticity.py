"""The RL plasticity figure on a tiny run, and anchors relative to each tensor's initial spread."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import torch
from torch import nn

from syre_rl.core import Syre
from syre_rl.presets import PROJECT_ROOT
from syre_rl.rl import plasticity as rl_plasticity
from syre_rl.rl import report
from syre_rl.rl.callbacks import regime_return


def test_regime_return_counts_the_tail_of_its_own_regime() -> None:
    episodes = [(100, 0, -5.0), (800, 0, -3.0), (1000, 0, -1.0), (1001, 1, -9.0), (1900, 1, -7.0)]
    assert regime_return(episodes, 0, 1000, 0.25) == -2.0  # steps 750 < s <= 1000
    assert regime_return(episodes, 1, 1000, 0.25) == -7.0
    assert regime_return(episodes, 2, 1000, 0.25) != regime_return(episodes, 2, 1000, 0.25)  # NaN: none


@pytest.mark.slow
def test_tiny_run_compares_the_continuing_agent_with_fresh_agents(tmp_path) -> None:
    common = ["--preset", "vec-pendulum-smoke", "--fresh-dir", str(tmp_path / "fresh")]
    assert rl_plasticity.main([*common, "--seed", "1", "--run-dir", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    fresh_files = sorted((tmp_path / "fresh").iterdir())
    assert plain["done"] and len(plain["rows"]) == 2 and len(fresh_files) == 2  # one fresh agent per regime
    first, second = plain["rows"]
    # In regime 0 the continuing plain agent *is* a fresh agent: same seed, settings and env, so figure 0.
    assert first["figure"] == 0.0 and first["regime_return"] == first["fresh_return"]
    assert second["figure"] == second["regime_return"] - second["fresh_return"]
    assert 0 <= first["plasticity/actor/dead_fraction"] <= 1 and first["plasticity/critic/effective_rank"] > 0
    assert list((tmp_path / "plain" / "tb").iterdir())  # TensorBoard events

    # Another method reuses the cached fresh agents and differs from them already in regime 0.
    args = [
        *common,
        "--seed",
        "1",
        "--syre",
        "--syre-sigma0",
        "1",
        "--syre-gamma",
        "0.5",
        "--run-dir",
        str(tmp_path / "s"),
    ]
    assert rl_plasticity.main(args) == 0
    syre = json.loads((tmp_path / "s" / "results.json").read_text())
    assert sorted((tmp_path / "fresh").iterdir()) == fresh_files
    assert syre["rows"][0]["fresh_return"] == first["fresh_return"]
    assert syre["rows"][0]["figure"] != 0.0

    # --force replaces a run of this script, never a folder it did not write (nor a train_ppo.py run).
    foreign = tmp_path / "foreign"
    (foreign / "src").mkdir(parents=True)
    (foreign / "results.json").write_text("{}")
    (foreign / "src" / "a.py").write_text("keep")
    with pytest.raises(SystemExit) as refused:
        rl_plasticity.main([*common, "--seed", "1", "--run-dir", str(foreign), "--force"])
    assert refused.value.code == 2 and (foreign / "src" / "a.py").read_text() == "keep"
    with pytest.raises(SystemExit) as exists:
        rl_plasticity.main(args)  # no --force: the finished run stays
    assert exists.value.code == 2 and json.loads((tmp_path / "s" / "results.json").read_text()) == syre
    assert rl_plasticity.main([*args, "--force"]) == 0

    # The report of the two runs as a sweep: per-run rows as written, and syre's figure minus plain's by seed.
    runs = [{"id": "plain", "method": "ppo", "seed": 1}, {"id": "s", "method": "ppo-syre", "seed": 1}]
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": runs}))
    assert report.main([str(tmp_path), "--out", str(tmp_path / "report")]) == 0
    with open(tmp_path / "report" / "runs.csv") as f:
        rows = {(r["arm"], int(r["regime"])): r for r in csv.DictReader(f)}
    assert float(rows["ppo-syre", 1]["figure"]) == pytest.approx(syre["rows"][1]["figure"], rel=1e-3)
    with open(tmp_path / "report" / "table.csv") as f:
        table = {(r["arm"], r["metric"]): r for r in csv.DictReader(f)}
    after = syre["rows"][1]["figure"] - plain["rows"][1]["figure"]  # regimes 1.. averaged: one regime here
    assert float(table["ppo-syre", "figure_after_minus_ppo"]["mean"]) == pytest.approx(after, rel=1e-3, abs=1e-3)
    assert ("ppo", "figure_after_minus_ppo") not in table and (tmp_path / "report" / "figure.png").is_file()


@pytest.mark.parametrize(
    ("flags", "says"), [(["--env", "Pendulum-v1"], "stationary"), (["--seed", "-1"], "--seed")]
)
def test_bad_input_is_one_line_and_status_2(tmp_path, flags: list[str], says: str) -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "rl_plasticity.py"), *flags, "--run-dir", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        check=False,
    )
    lines = result.stderr.splitlines()  # PyBullet's import banner included: it is silenced
    assert result.returncode == 2 and len(lines) == 1 and says in lines[0] and result.stdout == ""
    assert not (tmp_path / "r").exists()


def test_anchor_scale_init_is_relative_to_each_tensors_initial_spread() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 2))
    nn.init.orthogonal_(net[1].weight, gain=0.01)  # SB3's small-gain action head
    nn.init.zeros_(net[1].bias)
    syre = Syre(net, gamma=1e-3, sigma0=1.0, anchor_scale="init", seed=0)
    anchors = syre.anchors
    for name in ("0.weight", "1.weight", "0.bias"):
        own = float(dict(net.named_parameters())[name].detach().std())
        assert abs(float(anchors[name].std()) / own - 1) < 0.35, name
    assert float(anchors["1.weight"].std()) < 0.01  # not the 0.125 of the fan-in rule
    assert abs(float(anchors["1.bias"].std()) * 8 - 1) < 0.8  # zero bias: the fan-in rule, 1/sqrt(64)
    fan_in = Syre(net, gamma=1e-3, sigma0=1.0, anchor_scale="fan_in", seed=0)
    assert float(fan_in.anchors["1.weight"].std()) > 10 * float(anchors["1.weight"].std())
