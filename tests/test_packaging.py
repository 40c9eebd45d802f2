"""A non-editable install works on its own: the wheel carries the presets, and a run started from a directory
outside the repository finds them inside the installed package."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from syre_rl.presets import PRESET_KINDS, PROJECT_ROOT

RUN = """
import sys, syre_rl
from syre_rl.presets import preset_dir
from syre_rl.rl.train import train
assert syre_rl.__file__.startswith(sys.argv[1]), syre_rl.__file__
assert all("preset_files" in str(preset_dir(kind)) for kind in ("agents", "envs", "experiments", "grids"))
result = train("run", preset="smoke", overrides={"total_timesteps": 256}, progress_bar=False)
print("steps", result.steps)
from stable_baselines3 import PPO
model = PPO("SyreMlpPolicy", "Pendulum-v1", n_steps=128, batch_size=64, seed=0).learn(256)
print("string policy", type(model.policy).__name__, model.num_timesteps)
"""


def test_wheel_ships_the_presets_and_an_installed_run_finds_them(tmp_path):
    wheels, site = tmp_path / "wheels", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(PROJECT_ROOT)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    (wheel,) = wheels.glob("syre_rl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for kind in PRESET_KINDS:
        shipped = {Path(n).name for n in names if n.startswith(f"syre_rl/preset_files/{kind}/")}
        assert shipped == {p.name for p in (PROJECT_ROOT / kind).glob("*.yaml")}, kind
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", RUN, str(site)], cwd=work, env=env, capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "steps 256" in result.stdout and (work / "run" / "final" / "model.zip").is_file()
    assert "string policy Syre" in result.stdout and result.stdout.rstrip().endswith(" 256"), result.stdout
    # The installed package runs a sweep of two runs here, outside the repository (python -m syre_rl and the
    # console command are the same entry point).
    sweep = [sys.executable, "-m", "syre_rl", "sweep", "rl:smoke", "--seeds", "0", "--jobs", "1", "--sweep-dir",
             "sw", "--", "--total-timesteps", "256"]  # fmt: skip
    result = subprocess.run(sweep, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    finals = sorted(p.parent.parent.name for p in (work / "sw").glob("*/final/model.zip"))
    assert finals == ["ppo-s0", "ppo-syre-s0"], result.stdout[-2000:]
    console = subprocess.run([str(site / "bin" / "syre-rl"), "--help"], env=env, capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert console.returncode == 0 and "sweep" in console.stdout, console.stderr
