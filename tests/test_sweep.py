"""scripts/sweep.py: grid expansion, bad input, and tiny real sweeps of train_ppo.py here and on a Ray cluster.

The end-to-end tests run the ``rl:smoke`` grid (2 methods x 2 seeds of 1,024 PPO steps on PyBullet's inverted
pendulum): interrupted mid-way and run again, and on a Ray cluster started for the test with one run killed.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syre_rl.presets import PROJECT_ROOT, PresetError, load_preset
from syre_rl.sweep.grid import GridPreset, expand, load_grid

SCRIPT = PROJECT_ROOT / "scripts" / "sweep.py"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
SMOKE_RUNS = ["ppo-s0", "ppo-syre-s0", "ppo-s1", "ppo-syre-s1"]  # seed by seed

from syre_rl.sweep import command as sweep_script  # noqa: E402


def sweep(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=ENV, timeout=timeout
    )


def finished(sweep_dir: Path) -> set[str]:
    return {p.parent.parent.name for p in sweep_dir.glob("*/final/model.zip")}


def early_checkpoint(run_dir: Path, before: int = 768) -> bool:
    """The run has checkpoints, all before step ``before`` (of the smoke preset's 1,024)."""
    steps = [int(p.name.removeprefix("step_")) for p in run_dir.glob("checkpoints/step_*")]
    return bool(steps) and max(steps) < before


# ------------------------------------------------------------------------------------------ the grid
def test_grid_expands_methods_tasks_params_and_seeds_into_runs(tmp_path):
    grid = GridPreset(
        script="train_ppo",
        methods={"ppo": [], "ppo-syre": ["--syre"]},
        tasks=["slippery_ant:study", "gravity_hopper:study"],
        params={"--syre-gamma": [1e-3, 2e-3], "--n-envs": [1]},
        args=["--preset", "study"],
        seeds=[0, 1, 2],
    )
    runs = expand(grid, tmp_path, ["--total-timesteps", "100"])
    assert len(runs) == 2 * 2 * 2 * 3
    assert len({r.id for r in runs}) == len(runs)
    assert len({r.run_dir for r in runs}) == len(runs)
    run = next(r for r in runs if r.id == "gravity_hopper-study-ppo-syre-syre-gamma0.002-n-envs1-s2")
    assert run.args == (
        "--preset", "study", "--env", "gravity_hopper:study", "--syre", "--syre-gamma", "0.002", "--n-envs", "1",
        "--total-timesteps", "100", "--seed", "2",
    )  # fmt: skip
    assert (run.method, run.seed, run.task, dict(run.params)) == (
        "ppo-syre",
        2,
        "gravity_hopper:study",
        {"--syre-gamma": 2e-3, "--n-envs": 1},
    )
    # a fresh run is (re)started with --force; its state comes from its directory alone
    assert run.state() == "new" and run.command("python")[-3:] == ["--run-dir", str(run.run_dir), "--force"]


def test_every_grid_preset_loads_and_the_study_compares_the_methods():
    grid = load_grid("rl:slippery-ant-study")
    assert list(grid.methods) == ["ppo", "ppo-l2", "ppo-syre", "ppo-syre-sigma1"]
    assert grid.tasks == ["slippery_ant:study"] and grid.methods["ppo-syre-sigma1"] == [
        "--syre",
        "--syre-sigma0",
        "1.0",
    ]
    for name in (
        "rl:dohare-slippery-ant",
        "rl:syre-paper",
        "rl:smoke",
        "supervised:paper",
        "supervised:tiny",
    ):
        assert load_grid(name).methods


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"script": "train_ppo", "methods": {}}, "'methods'"),
        ({"script": "train_ppo", "methods": {"a b": []}}, "label 'a b'"),
        ({"script": "train_ppo", "methods": {"a": "--syre"}}, "list of flags"),
        ({"script": "train_ppo", "methods": {"a": []}, "params": {"gamma": [1]}}, "flags like --syre-gamma"),
        ({"script": "train_ppo", "methods": {"a": []}, "seeds": [0, 0]}, "'seeds'"),
        ({"script": "train_dqn", "methods": {"a": []}}, "'script'"),
    ],
)
def test_bad_grid_fields_name_the_preset_and_field(tmp_path, fields, message):
    path = tmp_path / "grids.yaml"
    path.write_text(json.dumps({"bad": fields}))  # JSON is YAML
    with pytest.raises(PresetError, match=message) as err:
        load_preset(path, "bad", GridPreset)
    assert "grids.yaml:bad" in str(err.value)


# ----------------------------------------------------------------------------------------- the script
@pytest.mark.parametrize(
    "args, message",
    [
        (["rl:nope"], "unknown preset 'nope'"),
        (["nofile:smoke"], "unknown grid"),
        (["rl:smoke", "--seeds", "1,1"], "'seeds'"),
        (["rl:smoke", "--seeds", "a"], "comma-separated integers"),
        (["rl:smoke", "--methods", "ppo,dqn"], "dqn not in the grid"),
        (["rl:smoke", "--jobs", "0"], "--jobs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        sweep_script.main([*args, "--sweep-dir", str(tmp_path / "sw")])
    stderr = capsys.readouterr().err
    assert exit_.value.code == 2, stderr
    assert message in stderr and len(stderr.strip().splitlines()) == 1
    assert not (tmp_path / "sw").exists()


def test_address_without_ray_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where the extra is not installed
    with pytest.raises(SystemExit) as exit_:
        sweep_script.main(["rl:smoke", "--address", "127.0.0.1:1", "--sweep-dir", str(tmp_path / "sw")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "pip install -e '.[ray]'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "sw").exists()


def test_a_sweep_directory_in_use_is_refused(tmp_path, capsys):
    sweep_dir = tmp_path / "sw"
    sweep_dir.mkdir()
    with open(sweep_dir / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(SystemExit) as exit_:
            sweep_script.main(["rl:smoke", "--sweep-dir", str(sweep_dir)])
    assert exit_.value.code == 2 and "in use by another sweep" in capsys.readouterr().err
    assert list(sweep_dir.iterdir()) == [sweep_dir / ".lock"]  # no manifest, no run started


def test_dry_run_lists_every_run_and_runs_nothing(tmp_path):
    result = sweep(
        "rl:smoke", "--dry-run", "--sweep-dir", str(tmp_path / "sw"), "--", "--total-timesteps", "512"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[1].rstrip(":") for line in lines[:-1]] == SMOKE_RUNS
    assert all(line.startswith("new") and "--total-timesteps 512 --seed" in line for line in lines[:-1])
    assert "4 runs, 0 finished" in lines[-1]
    assert not (tmp_path / "sw").exists()


def test_interrupted_sweep_resumes_only_what_is_missing(tmp_path):
    """Ctrl-C mid-way: finished runs stay as they are, the others resume from their checkpoints."""
    sweep_dir = tmp_path / "sw"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "rl:smoke", "--jobs", "2", "--sweep-dir", str(sweep_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            # one run finished and another well before its end (at 1,024 steps train_ppo.py would need
            # a larger --total-timesteps to resume, which the sweep cannot give it)
            if finished(sweep_dir) and any(early_checkpoint(p) for p in sweep_dir.glob("ppo*")):
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the sweep ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    before = finished(sweep_dir)
    assert 0 < len(before) < 4, output
    stamps = {run: (sweep_dir / run / "final" / "model.zip").stat().st_mtime_ns for run in before}

    again = sweep("rl:smoke", "--jobs", "2", "--sweep-dir", str(sweep_dir))
    assert again.returncode == 0, again.stderr
    assert finished(sweep_dir) == set(SMOKE_RUNS)
    assert f"4 runs, {len(before)} finished before" in again.stderr
    for run in before:  # not run again
        assert (sweep_dir / run / "final" / "model.zip").stat().st_mtime_ns == stamps[run]
        assert f"starting {run}" not in again.stderr and f"resuming {run}" not in again.stderr
    resumed = [run for run in SMOKE_RUNS if f"resuming {run}" in again.stderr]
    assert resumed, again.stderr
    for run in resumed:  # train_ppo.py continued the run from its checkpoint
        log = (sweep_dir / "logs" / f"{run}.log").read_text()
        assert [line for line in log.splitlines() if line.startswith("===")][-1].endswith("--resume")
        assert f"resuming {sweep_dir / run} at step" in log
    manifest = json.loads((sweep_dir / "sweep.json").read_text())
    assert [r["id"] for r in manifest["runs"]] == SMOKE_RUNS
    assert {(r["method"], r["seed"]) for r in manifest["runs"]} == {
        (m, s) for m in ("ppo", "ppo-syre") for s in (0, 1)
    }


# ------------------------------------------------------------------------------------------- on Ray
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(tmp_path):
    """A one-node Ray cluster of 2 CPUs started for the test, stopped with everything it started.

    ``ray start --block`` in its own session and SIGTERM to it stop exactly this cluster; ``ray stop`` would
    stop every Ray process of the user on the machine, other people's included.
    """
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (optional extra: pip install -e .[ray])")
    port = free_port()
    ray = Path(sys.executable).with_name("ray")
    temp = Path("/tmp") / f"ray-sweep-test-{os.getpid()}"  # Ray's socket paths must stay short
    log = open(tmp_path / "ray.log", "w")
    head = subprocess.Popen(
        [str(ray), "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}",
         f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"],
        stdout=log, stderr=subprocess.STDOUT, env=ENV, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the head listens once it has started
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops the processes it started on SIGTERM
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(head.pid, signal.SIGKILL)  # anything of this cluster still there
        except ProcessLookupError:
            pass
        shutil.rmtree(temp, ignore_errors=True)
        log.close()


def processes_of(run_dir: Path) -> list[int]:
    """Process ids of training scripts running in ``run_dir`` (started by this test's sweep)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if f"--run-dir\0{run_dir}\0".encode() in cmdline.read_bytes():
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


@pytest.mark.slow
def test_sweep_on_a_ray_cluster_retries_a_run_that_dies(tmp_path, ray_cluster):
    """Both methods of the smoke grid (one seed, to keep it short) as Ray tasks; one run is killed mid-way."""
    sweep_dir = tmp_path / "sw"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "rl:smoke", "--seeds", "0", "--address", ray_cluster,
         "--sweep-dir", str(sweep_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, start_new_session=True,
    )  # fmt: skip
    victim = sweep_dir / "ppo-s0"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None and not early_checkpoint(victim):
            time.sleep(0.1)
        pids = processes_of(victim)
        assert pids and not (victim / "final").exists(), "the run finished before it could be killed"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)  # the run dies without saving anything
        output, _ = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output
    assert finished(sweep_dir) == {"ppo-s0", "ppo-syre-s0"}, output
    log = (sweep_dir / "logs" / "ppo-s0.log").read_text()
    attempts = [line for line in log.splitlines() if line.startswith("===")]
    assert len(attempts) == 2 and attempts[1].endswith("--resume"), attempts  # retried by Ray, resuming
    assert f"resuming {victim} at step" in log
    other = (sweep_dir / "logs" / "ppo-syre-s0.log").read_text()
    assert sum(line.startswith("===") for line in other.splitlines()) == 1
