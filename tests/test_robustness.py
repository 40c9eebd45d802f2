"""Nothing lost: --force deletes only its own kind of run and only after every check, a run stopped after its
last update finishes on resume, divergence stops cleanly, and every bad input of every script is one line with
exit status 2 that leaves an existing run byte-for-byte as it was."""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from stable_baselines3 import PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from syre_rl import runs
from syre_rl.cli import DivergedError
from syre_rl.presets import PROJECT_ROOT
from syre_rl.rl.train import train as train_rl
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.train import train as train_supervised

SCRIPTS = PROJECT_ROOT / "scripts"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
QUIET = {"progress_bar": False, "log": lambda line: None}


def load(name: str):
    """The command module behind ``scripts/<name>.py``."""
    from syre_rl.lifecycle import COMMANDS

    scripts = {"train_ppo": "train", "rl_plasticity": "plasticity", "train_supervised": "supervised"}
    return COMMANDS[scripts.get(name, name)].load()


def listing(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def rl_run(run_dir: Path, steps: int = 256, **overrides) -> None:
    train_rl(
        run_dir, preset="smoke", overrides={"total_timesteps": steps, "method": "syre", **overrides}, **QUIET
    )


def supervised_run(run_dir: Path, **fields) -> dict:
    experiment = EXPERIMENTS["teacher-student"]
    from syre_rl.presets import load_preset

    cfg = load_preset(PROJECT_ROOT / "experiments" / "teacher-student.yaml", "tiny", experiment.schema)
    for key, value in fields.items():
        setattr(cfg, key, value)
    return train_supervised(experiment, cfg, run_dir=run_dir, preset="tiny", log=lambda s: None)


@pytest.fixture(scope="module")
def dirs(tmp_path_factory) -> dict[str, Path]:
    """An RL run, a supervised run, a foreign folder that looks like a run, and two damaged RL runs."""
    root = tmp_path_factory.mktemp("robust")
    rl, sup = root / "rl", root / "sup"
    rl_run(rl)
    supervised_run(sup)
    foreign = root / "foreign"
    (foreign / "src").mkdir(parents=True)
    (foreign / "config.json").write_text("{}")
    (foreign / "src" / "a.py").write_text("keep me\n")
    for name, change in {
        "badtype": {"seed": "zero"},
        "badfield": {"preset": {"learning_rate": "fast"}},
    }.items():
        shutil.copytree(rl, root / name)
        config = json.loads((rl / "config.json").read_text())
        if "preset" in change:
            config["preset"].update(change["preset"])
        else:
            config.update(change)
        (root / name / "config.json").write_text(json.dumps(config))
    (root / "afile").write_text("a file\n")
    sweep = root / "sweep"
    sweep.mkdir()
    (sweep / "sweep.json").write_text(json.dumps({"script": "train_ppo", "runs": [{"method": "ppo"}]}))
    good = root / "goodsweep"
    good.mkdir()
    (good / "sweep.json").write_text(
        json.dumps({"script": "train_ppo", "runs": [{"id": "a", "method": "ppo"}]})
    )
    return {"root": root, "rl": rl, "sup": sup, "foreign": foreign, "sweep": sweep, "goodsweep": good}


# --------------------------------------------------------------------------------- bad-input table
RL, SUP, FOREIGN, FILE = "{rl}", "{sup}", "{foreign}", "{root}/afile"
PPO_SMOKE = ["--preset", "smoke", "--syre"]
SUP_TINY = ["--experiment", "teacher-student", "--preset", "tiny"]
BAD_INPUTS: list[tuple[str, list[str], str]] = [
    # train_ppo.py: --force with a check that fails must leave the old run alone
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--syre-gamma", "nan"], "finite"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--syre-sigma0", "inf"], "finite"),
    (
        "train_ppo",
        [*PPO_SMOKE, "--run-dir", RL, "--force", "--syre-sigma0", "1e40"],
        "anchors would not be finite",
    ),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--device", "bogus"], "not a torch device"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--seed", "-1"], "--seed"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--seed", str(2**40)], "--seed"),
    (
        "train_ppo",
        [*PPO_SMOKE, "--run-dir", RL, "--force", "--total-timesteps", "1e400"],
        "--total-timesteps",
    ),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--total-timesteps", "0"], "--total-timesteps"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--total-timesteps", "abc"], "--total-timesteps"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--n-envs", "-3"], "--n-envs"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--env", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    ("train_ppo", ["--preset", "nope", "--run-dir", RL, "--force"], "unknown preset 'nope'"),
    ("train_ppo", ["--algo", "dqn", "--run-dir", RL, "--force"], "--algo"),
    (
        "train_ppo",
        [*PPO_SMOKE, "--run-dir", RL, "--force", "--syre-spread", "1.5"],
        "spread must be a number in [0, 1)",
    ),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL, "--force", "--syre-mode", "sideways"], "--syre-mode"),
    ("train_ppo", ["--preset", "smoke", "--syre-sigma0", "0.1", "--run-dir", RL, "--force"], "needs --syre"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", RL], "--force to replace it"),
    ("train_ppo", ["--run-dir", RL, "--resume", "--l2"], "cannot change --method"),
    ("train_ppo", ["--run-dir", RL, "--resume", "--seed", "5"], "cannot change --seed"),
    ("train_ppo", ["--run-dir", RL, "--resume", "--env", "AntBulletEnv-v0"], "cannot change --env"),
    ("train_ppo", ["--run-dir", RL, "--resume", "--syre-gamma", "0.5"], "cannot change --syre-gamma"),
    ("train_ppo", ["--run-dir", RL, "--resume", "--force"], "not allowed with"),
    ("train_ppo", ["--run-dir", "{badtype}", "--resume"], "seed must be a int"),
    ("train_ppo", ["--run-dir", "{badfield}", "--resume"], "learning_rate"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", FOREIGN, "--force"], "has no .syre_rl-run"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", SUP, "--force"], "holds a run of train_supervised.py"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", f"{FILE}/run"], "is a file"),
    ("train_ppo", [*PPO_SMOKE, "--run-dir", FILE], "is a file"),
    # train_supervised.py
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--lr", "nan"], "finite"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--lr", "1e400"], "finite"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--weight-decay", "inf"], "finite"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--sigma0", "-1"], "sigma0"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--seed", "-1"], "--seed"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--seed", str(2**40)], "--seed"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--device", "bogus"], "not a torch device"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--epochs", "1e400"], "--epochs"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--seeds", "0"], "--seeds"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--force", "--threads", "0"], "--threads"),
    (
        "train_supervised",
        [
            "--experiment",
            "permuted-mnist",
            "--preset",
            "tiny",
            "--run-dir",
            SUP,
            "--force",
            "--data-dir",
            "/nonexistent",
        ],
        "missing file",
    ),
    ("train_supervised", [*SUP_TINY, "--run-dir", RL, "--force"], "holds a run of train_ppo.py"),
    ("train_supervised", [*SUP_TINY, "--run-dir", FOREIGN, "--force"], "has no .syre_rl-run"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP], "--force to replace it"),
    ("train_supervised", [*SUP_TINY, "--run-dir", SUP, "--resume", "--epochs", "2"], "another configuration"),
    ("train_supervised", [*SUP_TINY, "--run-dir", f"{FILE}/run"], "is a file"),
    ("train_supervised", ["--experiment", "nope", "--run-dir", SUP, "--force"], "unknown experiment"),
    # sweep.py: every run's arguments are checked before any run starts
    ("sweep", ["rl:smoke", "--sweep-dir", "{root}/sw", "--tasks", "NoSuchEnv-v0"], "NoSuchEnv-v0"),
    ("sweep", ["rl:smoke", "--sweep-dir", "{root}/sw", "--", "--syre-gamma", "nan"], "finite"),
    ("sweep", ["rl:smoke", "--sweep-dir", "{root}/sw", "--", "--no-such-flag"], "unrecognized"),
    ("sweep", ["rl:smoke", "--sweep-dir", "{root}/sw", "--", "--seed", "-1"], "--seed"),
    ("sweep", ["rl:smoke", "--sweep-dir", f"{FILE}/sw"], "is a file"),
    ("sweep", ["rl:smoke", "--sweep-dir", "{root}/sw", "--jobs", "0"], "--jobs"),
    ("sweep", ["rl:smoke", "--sweep-dir", "{root}/sw", "--seeds", "-1"], "--seeds"),
    # plot.py
    ("plot", ["{root}/nosweep"], "not a sweep directory"),
    ("plot", ["{sweep}"], "has no id"),
    ("plot", ["{rl}"], "not a sweep directory"),
    ("plot", ["{goodsweep}", "--out", f"{FILE}/out"], "is a file"),
    ("plot", ["{sweep}", "--bins", "0"], "--bins"),
    # report.py
    ("report", ["{root}/nosweep", "{root}/report"], "cannot read"),
    ("report", ["{sup}", f"{FILE}/report"], "is a file"),
    ("plot", ["{sweep}", "--confidence", "nan"], "--confidence"),
]


def test_every_bad_input_is_one_line_exit_2_and_changes_nothing(dirs, capsys):
    assert len(BAD_INPUTS) >= 40
    before = {name: listing(dirs[name]) for name in ("rl", "sup", "foreign")}
    modules = {name: load(name) for name in {script for script, _, _ in BAD_INPUTS}}
    names = {k: str(v) for k, v in dirs.items()} | {"badtype": str(dirs["root"] / "badtype")}
    names["badfield"] = str(dirs["root"] / "badfield")
    for script, argv, message in BAD_INPUTS:
        args = [a.format(**names) for a in argv]
        with pytest.raises(SystemExit) as exit_info:
            modules[script].main(args)
        err = capsys.readouterr().err.strip()
        assert exit_info.value.code == 2, (script, args, err)
        assert len(err.splitlines()) == 1 and "Traceback" not in err, (script, args, err)
        assert err.startswith(f"{script}.py: error: ") and message in err, (script, args, err)
    assert {name: listing(dirs[name]) for name in before} == before
    assert not (dirs["root"] / "sw").exists() and not (dirs["root"] / "report").exists()


def test_report_script_writes_the_tables_of_a_supervised_run(dirs, tmp_path, capsys):
    assert load("report").main([str(dirs["sup"]), str(tmp_path / "report")]) == 0
    assert "teacher-student: results" in (tmp_path / "report" / "tables.md").read_text()
    assert (tmp_path / "report" / "results.json").read_bytes() == (dirs["sup"] / "results.json").read_bytes()


# ------------------------------------------------------------------------------ data-loss regressions
def test_force_replaces_only_its_own_kind_of_run_after_every_check(tmp_path):
    run = tmp_path / "run"
    rl_run(run)
    (run / "notes.txt").write_text("mine")  # something an RL run does not write: --force must refuse
    script = load("train_ppo")
    with pytest.raises(SystemExit):
        script.main([*PPO_SMOKE, "--run-dir", str(run), "--force"])
    assert (run / "notes.txt").read_text() == "mine"
    (run / "notes.txt").unlink()
    old_config = (run / "config.json").read_text()
    train_rl(run, preset="smoke", overrides={"total_timesteps": 256}, force=True, **QUIET)
    assert (
        json.loads((run / "config.json").read_text())["preset"]["method"]
        == "none"
        != json.loads(old_config)["preset"]["method"]
    )
    assert runs.run_kind(run) == "rl" and (run / "final" / "model.zip").is_file()


def test_a_run_stopped_after_its_last_update_finishes_on_resume(tmp_path):
    run = tmp_path / "run"
    rl_run(run, steps=512)
    last = run / "checkpoints" / "step_000000000512"
    shutil.copytree(run / "final", last)  # killed after the last checkpoint, before final/ was renamed
    shutil.rmtree(run / "final")
    assert runs.resumable("rl", run) and not runs.finished("rl", run)
    result = subprocess.run(
        [sys.executable, str(SCRIPTS / "train_ppo.py"), "--run-dir", str(run), "--resume"],
        capture_output=True, text=True, env=ENV, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "is at step 512 of 512" in result.stdout and runs.finished("rl", run)
    final = (run / "final" / "model.zip").read_bytes()
    again = train_rl(run, resume=True, **QUIET)  # a finished run: nothing to do, nothing rewritten
    assert again.new_steps == 0 and (run / "final" / "model.zip").read_bytes() == final
    longer = train_rl(run, resume=True, overrides={"total_timesteps": 768}, **QUIET)  # continues from final/
    assert longer.steps == 768 and longer.new_steps == 256


def test_divergence_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(DivergedError, match="not finite|diverged") as info:
        train_rl(run, preset="smoke", overrides={"method": "syre", "syre": {"mode": "decoupled", "gamma": 1e8},
                 "learning_rate": 1.0}, **QUIET)  # fmt: skip
    assert "\n" not in str(info.value)
    assert not (run / "final").exists()
    for checkpoint in (run / "checkpoints").glob("step_*"):
        state = PPO.load(checkpoint / "model.zip", device="cpu").policy.state_dict()
        assert all(torch.isfinite(t).all() for t in state.values() if isinstance(t, torch.Tensor))

    sup = tmp_path / "sup"
    with pytest.raises(DivergedError, match="not finite"):
        supervised_run(sup, lr=1e30, epochs=2)
    assert not (sup / "checkpoint.pt").exists()  # never a checkpoint of non-finite weights


def test_syre_refuses_anchors_that_are_not_finite():
    from syre_rl.core import Syre

    with pytest.raises(ValueError, match="anchors would not be finite"):
        Syre(torch.nn.Linear(4, 4), gamma=1e-3, sigma0=1e40)


# ---------------------------------------------------------------------------------- fault injection
def tb_steps(tb_dir: Path, tag: str = "time/fps") -> list[int]:
    acc = EventAccumulator(str(tb_dir))
    acc.Reload()
    return [event.step for event in acc.Scalars(tag)]


@pytest.mark.slow
def test_killed_and_resumed_runs_equal_an_uninterrupted_one(tmp_path):
    """SIGKILL a small PPO run at random points after its checkpoints, resume it each time: it finishes, every
    checkpoint loads, the TensorBoard step axis never goes back, and the final model is the uninterrupted one."""
    # 16 checkpoints (every 256 steps): three kills a short random time after a new checkpoint cannot reach the
    # end even on a fast machine, so the run is killed exactly three times.
    total = 4096
    args = ["--preset", "smoke", "--syre", "--total-timesteps", str(total)]
    script = [sys.executable, str(SCRIPTS / "train_ppo.py")]
    whole = tmp_path / "whole"  # the uninterrupted run, in this process (also: same numbers as the script)
    train_rl(whole, preset="smoke", overrides={"method": "syre", "total_timesteps": total}, **QUIET)
    rng, run, kills = random.Random(0), tmp_path / "killed", 0
    command = [*args, "--run-dir", str(run)]
    for _attempt in range(10):
        proc = subprocess.Popen(
            [*script, *command], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        seen, deadline = set(run.glob("checkpoints/step_*")), time.monotonic() + 120
        while (
            proc.poll() is None
            and set(run.glob("checkpoints/step_*")) == seen
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        if proc.poll() is None and kills < 3:
            time.sleep(rng.uniform(0, 0.15))
            proc.send_signal(signal.SIGKILL)
            kills += 1
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:
            break
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        for checkpoint in run.glob("checkpoints/step_*"):
            PPO.load(checkpoint / "model.zip", device="cpu")  # every complete checkpoint loads
        command = (
            ["--run-dir", str(run), "--resume"]
            if runs.resumable("rl", run)
            else [*args, "--run-dir", str(run), "--force"]
        )
    assert kills == 3 and runs.finished("rl", run), kills
    steps = tb_steps(run / "tb")
    # the killed branch's points after its checkpoint are purged: the step axis never goes back or repeats
    assert steps == sorted(steps) and len(set(steps)) == len(steps) and steps[-1] == total, steps
    a = PPO.load(whole / "final" / "model.zip", device="cpu").policy.state_dict()
    b = PPO.load(run / "final" / "model.zip", device="cpu").policy.state_dict()
    tensors = [k for k in a if isinstance(a[k], torch.Tensor)]
    assert tensors and all(torch.equal(a[k], b[k]) for k in tensors)
    assert not math.isnan(float(b[tensors[0]].sum()))


def test_ctrl_c_in_train_supervised_says_where_the_checkpoint_is(dirs, capsys, monkeypatch):
    script = load("train_supervised")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(script, "train", interrupted)
    code = script.main([*SUP_TINY, "--run-dir", str(dirs["sup"]), "--resume"])
    err = capsys.readouterr().err
    assert code == 130 and "Traceback" not in err
    assert f"the last checkpoint is {dirs['sup'] / 'checkpoint.pt'}" in err and "--resume" in err


def test_a_run_written_before_the_syre_group_resumes(tmp_path):
    run = tmp_path / "run"
    rl_run(run, steps=512)
    shutil.rmtree(run / "final")
    for saved in (run / "checkpoints").glob("*/config.json"):  # checkpoints of such runs carry no config
        saved.unlink()
    config = json.loads((run / "config.json").read_text())
    config["preset"].pop("syre")
    config["preset"].update(syre_gamma=2e-3, syre_sigma0=0.01, syre_spread=0.0, syre_mode="coupled")
    (run / "config.json").write_text(json.dumps(config))
    result = train_rl(run, resume=True, overrides={"total_timesteps": 768}, **QUIET)
    assert result.steps == 768 and runs.finished("rl", run)


def test_a_resume_hides_the_points_the_stopped_run_logged_after_its_checkpoint(tmp_path):
    """As if killed just before final/: the resumed run logs steps 512 and 768 again; TensorBoard (and plot.py,
    which reads through the same EventAccumulator) shows each step once, from the resumed run."""
    run = tmp_path / "run"
    rl_run(run, steps=768)
    shutil.rmtree(run / "final")
    shutil.rmtree(run / "checkpoints" / "step_000000000512")  # the run is back at step 256
    train_rl(run, resume=True, **QUIET)
    steps = tb_steps(run / "tb")
    assert len(list((run / "tb").glob("events.out.tfevents.*"))) == 2
    assert steps == sorted(set(steps)) and steps[-1] == 768, steps
