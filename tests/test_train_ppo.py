"""scripts/train_ppo.py end to end at a tiny size: TensorBoard files, Ctrl-C and resume, bad input."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from syre_rl.policies import SyreActorCriticPolicy
from syre_rl.policies.choices import POLICY_CHOICES
from syre_rl.presets import PROJECT_ROOT
from syre_rl.rl.config import AGENT_SCHEMAS, agent_preset_names, load_agent_preset
from syre_rl.rl.model import policy_kwargs

SCRIPT = PROJECT_ROOT / "scripts" / "train_ppo.py"
SMOKE = ["--preset", "smoke", "--syre"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def load_script():
    from syre_rl.rl import command

    return command


def run_script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def scalars(tb_dir: Path) -> dict[str, list[int]]:
    """TensorBoard scalar tag -> steps, read back from the event files like TensorBoard does."""
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def anchors(model_zip: Path) -> dict[str, torch.Tensor]:
    return PPO.load(model_zip, device="cpu").policy.syre.anchors


def test_end_to_end_writes_tensorboard_checkpoints_and_final_model(tmp_path):
    run = tmp_path / "run"
    result = run_script(*SMOKE, "--run-dir", str(run), "--total-timesteps", "768")
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"tensorboard --logdir {run / 'tb'}" in result.stdout
    assert "steps/s" in result.stdout and "mean return" in result.stdout
    # the closing lines place the evaluation against the preset's committed plain-PPO seeds (mean 25, t-interval
    # 25 +- 12.706 * 5 over two seeds)
    assert "against plain PPO's 2 seeds on this preset (mean 25, 95% interval [-39, 89], range 20 to 30" in result.stdout
    assert re.search(r"made-up references\): (inside|above|below) that interval; method syre", result.stdout)

    tags = scalars(run / "tb")
    for key in (
        "rollout/ep_rew_mean",
        "time/fps",
        "train/loss",
        "eval/mean_reward",
        "syre/count",
        "syre/mean_std",
    ):
        assert key in tags, f"{key} missing from {sorted(tags)}"
    assert tags["syre/count"] == [0]  # logged once, at the start
    assert max(tags["time/fps"]) == 768
    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    assert "syre/summary/text_summary" in acc.Tags()["tensors"]

    final = PPO.load(run / "final" / "model.zip", device="cpu")
    assert final.num_timesteps == 768 and final.policy.syre.summary()["count"] > 0
    assert (run / "final" / "vecnormalize.pkl").is_file() and (run / "config.json").is_file()
    # checkpoints are taken after an update (at the next rollout's start), so none at the last step: final/ is it
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == [
        "step_000000000256",
        "step_000000000512",
    ]
    assert sorted(p.name for p in (run / "monitor").iterdir()) == ["from-0", "from-256", "from-512"]


def test_sigint_saves_a_checkpoint_and_resume_continues(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *SMOKE, "--run-dir", str(run), "--total-timesteps", "1000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
        cwd=PROJECT_ROOT,
    )
    deadline = time.monotonic() + 120
    while not list(run.glob("checkpoints/step_*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and "--resume" in out
    interrupted = sorted(run.glob("checkpoints/step_*"))[-1]
    stopped_at = int(interrupted.name.removeprefix("step_"))
    assert stopped_at >= 256
    before = anchors(interrupted / "model.zip")  # read now: the resumed run prunes old checkpoints

    total = stopped_at + 512
    result = run_script("--run-dir", str(run), "--resume", "--total-timesteps", str(total))
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming {run} at step {stopped_at:,}" in result.stdout
    final = run / "final" / "model.zip"
    assert PPO.load(final, device="cpu").num_timesteps >= total
    after = anchors(final)
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)

    steps = scalars(run / "tb")["time/fps"]  # one curve: the resumed part continues the step axis
    assert min(s for s in steps if s > stopped_at) <= stopped_at + 512 and max(steps) >= total
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2


def listing(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture
def script():
    return load_script()


def bad(script, capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        script.main(list(argv))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("train_ppo.py: error: "), err
    return err


def test_bad_arguments_exit_2_with_one_line(script, capsys, tmp_path):
    run = ["--run-dir", str(tmp_path / "never")]
    assert "NoSuchEnv-v0" in bad(script, capsys, "--env", "NoSuchEnv-v0", *run)
    assert "unknown preset 'nope'" in bad(script, capsys, "--preset", "nope", *run)
    assert "--total-timesteps" in bad(script, capsys, "--total-timesteps", "0", *run)
    assert "--total-timesteps" in bad(script, capsys, "--total-timesteps", "-5", *run)
    assert "--syre" in bad(script, capsys, "--syre-sigma0", "0.1", *run)
    assert "field 'syre': sigma0 must be" in bad(script, capsys, "--syre", "--syre-sigma0", "-1", *run)
    assert not (tmp_path / "never").exists()


def test_preset_with_wrong_field_exits_2(script, capsys, tmp_path, monkeypatch):
    (tmp_path / "ppo.yaml").write_text("default:\n  n_step: 128\n")
    monkeypatch.setattr("syre_rl.rl.config.AGENT_DIR", tmp_path)
    assert "n_step" in bad(script, capsys, "--run-dir", str(tmp_path / "never"))
    assert not (tmp_path / "never").exists()


def test_existing_run_dir_is_refused_and_untouched(script, capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "notes.txt").write_text("keep me")
    assert "--resume" in bad(script, capsys, *SMOKE, "--run-dir", str(run))
    assert "has no .syre_rl-run" in bad(script, capsys, *SMOKE, "--run-dir", str(run), "--force")
    assert listing(run) == {"notes.txt": b"keep me"}


def test_missing_or_corrupt_checkpoint_exits_2_and_changes_nothing(script, capsys, tmp_path):
    run = tmp_path / "run"
    assert "no config.json" in bad(script, capsys, "--run-dir", str(run), "--resume")

    run.mkdir()
    config = '{"algo": "ppo", "preset_name": "smoke", "seed": 0, "preset": {"env": "InvertedPendulumBulletEnv-v0"}}'
    (run / "config.json").write_text(config)
    assert "no checkpoint" in bad(script, capsys, "--run-dir", str(run), "--resume")

    step = run / "checkpoints" / "step_000000000512"
    step.mkdir(parents=True)
    (step / "model.zip").write_bytes(b"PK\x03\x04 truncated")
    before = listing(run)
    assert "cannot load checkpoint" in bad(script, capsys, "--run-dir", str(run), "--resume")
    assert listing(run) == before


def test_every_agent_preset_validates_and_the_paper_arms_share_one_decay():
    for algo in AGENT_SCHEMAS:
        for name in agent_preset_names(algo):
            load_agent_preset(algo, name)
    vanilla, wd, syre = (load_agent_preset("ppo", f"syre-paper{arm}") for arm in ("", "-wd", "-syre"))
    assert policy_kwargs(vanilla)["optimizer_kwargs"]["weight_decay"] == 0 and vanilla.method == "none"
    # The weight-decay arm is the l2 method (Adam's coupled decay) so that, like syre, it leaves log_std alone.
    assert wd.method == "l2" and policy_kwargs(wd)["optimizer_kwargs"]["weight_decay"] == 0
    assert wd.method_kwargs["l2"]["weight_decay"] == syre.syre_kwargs()["gamma"] == 2e-3
    assert policy_kwargs(syre)["optimizer_kwargs"]["weight_decay"] == 0
    assert POLICY_CHOICES[syre.method]("ppo", syre, {})[0] is SyreActorCriticPolicy
    assert dataclasses.replace(vanilla, weight_decay=0, method="none") == dataclasses.replace(
        syre, method="none", description=vanilla.description, syre={}
    )


def test_the_syre_group_is_syres_keyword_arguments_validated_by_syre(tmp_path, monkeypatch):
    """One group, one default (SyreConfig's), one validator (SyreConfig): flags and presets set its keys."""
    from syre_rl.core import SyreConfig
    from syre_rl.presets import PresetError

    SYRE_KEYS = SyreConfig.settings()
    from syre_rl.rl.train import agent_settings

    assert load_agent_preset("ppo", "default").syre == SyreConfig()
    preset = agent_settings("ppo", "syre-paper-syre", {"syre": {"mode": "decoupled"}})
    assert preset.syre == SyreConfig(gamma=2e-3, sigma0=0.01, mode="decoupled", anchor_scale="fan_in")
    assert {"anchor_scale"} <= set(SYRE_KEYS)
    assert {"gamma", "sigma0", "spread", "mode", "include", "exclude", "seed"} <= set(SYRE_KEYS)
    (tmp_path / "ppo.yaml").write_text(
        "default:\n  method: syre\n  syre: {gamma: .nan}\nother:\n  syre: {sigmo: 1}\n"
    )
    monkeypatch.setattr("syre_rl.rl.config.AGENT_DIR", tmp_path)
    with pytest.raises(PresetError, match="gamma must be a finite number"):
        load_agent_preset("ppo", "default")
    with pytest.raises(PresetError, match="unknown key.*sigmo"):
        load_agent_preset("ppo", "other")
