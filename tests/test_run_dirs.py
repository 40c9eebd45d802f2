"""One writer per run directory, ``--force`` that deletes only what the toolkit wrote, and resumes that refuse an
edited config: real processes, exit status, one line, and byte-identical trees where a refusal must change
nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from syre_rl import runs
from syre_rl.presets import PROJECT_ROOT

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
TRAIN_PPO = [sys.executable, str(PROJECT_ROOT / "scripts" / "train_ppo.py"), "--preset", "smoke"]
SUPERVISED = [sys.executable, str(PROJECT_ROOT / "scripts" / "train_supervised.py"), "--experiment",
              "teacher-student", "--preset", "tiny", "--threads", "1"]  # fmt: skip


def tree(path: Path) -> dict[str, bytes | str]:
    """Every path under ``path`` with its bytes (files) or kind (folders, links)."""
    found: dict[str, bytes | str] = {}
    for p in sorted(path.rglob("*")):
        key = str(p.relative_to(path))
        found[key] = f"link:{os.readlink(p)}" if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
    return found


def run(command: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=ENV)


def one_line_error(result: subprocess.CompletedProcess, code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == code, result.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def start(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for(condition, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the first run ended early: {process.stderr.read()[-2000:]}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the first run did not start in time"
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def finished_rl(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rl") / "run"
    result = run([*TRAIN_PPO, "--total-timesteps", "256", "--run-dir", str(path)])
    assert result.returncode == 0, result.stderr[-2000:]
    return path


def copy_run(source: Path, target: Path) -> Path:
    subprocess.run(["cp", "-a", str(source), str(target)], check=True)
    return target


# ------------------------------------------------------------------------------------------ the lock
@pytest.mark.slow
def test_a_second_writer_of_a_training_rl_run_is_refused_and_a_killed_one_blocks_nothing(finished_rl, tmp_path):
    path = copy_run(finished_rl, tmp_path / "run")
    events = lambda: len(list((path / "tb").glob("events.out.tfevents.*")))  # noqa: E731
    first = start([*TRAIN_PPO, "--run-dir", str(path), "--resume", "--total-timesteps", "1000000"])
    try:
        wait_for(lambda: events() == 2, first)  # the resume claimed the directory and opened its event file
        for flags in (["--resume", "--total-timesteps", "1000000"], ["--force"]):
            line = one_line_error(run([*TRAIN_PPO, "--run-dir", str(path), *flags]))
            assert "in use by another process" in line
        assert (path / "config.json").is_file() and events() == 2  # --force deleted nothing of the live run
    finally:
        stop(first)
    assert first.returncode == -signal.SIGKILL
    result = run([*TRAIN_PPO, "--run-dir", str(path), "--force", "--total-timesteps", "256"])
    assert result.returncode == 0, result.stderr[-2000:]  # the killed writer's lock went with it
    assert events() == 1 and runs.finished("rl", path)


@pytest.mark.slow
def test_two_fresh_rl_runs_started_at_once_on_one_directory_make_one_run(tmp_path):
    path = tmp_path / "run"
    path.mkdir()
    command = [*TRAIN_PPO, "--run-dir", str(path), "--total-timesteps", "2048"]
    both = [start(command), start(command)]
    codes = sorted(p.wait(timeout=180) for p in both)
    errors = [p.stderr.read() for p in both]  # type: ignore[union-attr]
    assert codes == [0, 2], errors
    line = next(e for e in errors if e.strip()).strip().splitlines()
    assert len(line) == 1 and ("in use by another process" in line[0] or "exists" in line[0]), errors
    assert len(list((path / "tb").glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
def test_a_second_writer_of_a_training_supervised_run_is_refused(tmp_path):
    path = tmp_path / "run"
    first = start([*SUPERVISED, "--epochs", "100000", "--run-dir", str(path)])
    try:
        wait_for(lambda: (path / runs.MARKER).is_file(), first)
        before = sorted(p.name for p in path.iterdir())
        line = one_line_error(run([*SUPERVISED, "--run-dir", str(path), "--force"]))
        assert "in use by another process" in line
        assert set(before) <= {p.name for p in path.iterdir()}  # nothing of the live run was deleted
    finally:
        stop(first)
    result = run([*SUPERVISED, "--epochs", "1", "--run-dir", str(path), "--force"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert runs.finished("supervised", path)


# ----------------------------------------------------------------------------------------- --force
FOREIGN = {
    "a note at the top": lambda run: (run / ".notes").write_text("mine\n"),
    "a .git folder": lambda run: (run / ".git" / "objects").mkdir(parents=True),
    "a folder among the checkpoints": lambda run: (run / "checkpoints" / "my-best-model").mkdir(parents=True),
    "a file among the checkpoints": lambda run: (run / "checkpoints").mkdir(exist_ok=True)
    or (run / "checkpoints" / "README.txt").write_text("read me\n"),
    "a file inside final/": lambda run: (run / "final" / "notes.md").write_text("mine\n"),
    "a file inside tb/": lambda run: (run / "tb" / "plot.png").write_bytes(b"png"),
    "a monitor folder of another name": lambda run: (run / "monitor" / "mine").mkdir(),
    "a symbolic link": lambda run: (run / "data").symlink_to("/etc"),
}


@pytest.mark.parametrize("what", list(FOREIGN))
def test_force_refuses_a_run_directory_holding_what_it_did_not_write(finished_rl, tmp_path, what):
    path = copy_run(finished_rl, tmp_path / "run")
    FOREIGN[what](path)
    before = tree(path)
    line = one_line_error(run([*TRAIN_PPO, "--run-dir", str(path), "--force", "--total-timesteps", "256"]))
    assert "--force deletes only what train_ppo.py writes" in line and str(path) in line
    assert tree(path) == before


def test_force_clears_the_leftovers_of_interrupted_writes(finished_rl, tmp_path):
    path = copy_run(finished_rl, tmp_path / "run")
    (path / ".config.json.tmp").write_text("{")
    (path / "checkpoints" / ".step_000000000512-k3j_x9qa").mkdir(parents=True)
    (path / "checkpoints" / ".step_000000000512-k3j_x9qa" / "model.zip").write_bytes(b"half")
    result = run([*TRAIN_PPO, "--run-dir", str(path), "--force", "--total-timesteps", "256"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert not (path / ".config.json.tmp").exists() and runs.finished("rl", path)
    assert not list((path / "checkpoints").glob(".*"))


def test_force_refuses_a_supervised_run_with_a_users_file(tmp_path):
    path = tmp_path / "run"
    assert run([*SUPERVISED, "--epochs", "1", "--run-dir", str(path)]).returncode == 0
    (path / "tb" / "notes.txt").write_text("mine\n")
    before = tree(path)
    line = one_line_error(run([*SUPERVISED, "--epochs", "1", "--run-dir", str(path), "--force"]))
    assert "tb/notes.txt" in line
    assert tree(path) == before


# ------------------------------------------------------------------------------------ edited config
@pytest.mark.parametrize(
    ("field", "value"),
    [("n_envs", 3), ("net_arch", [8, 8]), ("learning_rate", 0.5), ("env", "Pendulum-v1")],
)
def test_a_resume_refuses_an_edited_config_naming_the_field(finished_rl, tmp_path, field, value):
    path = copy_run(finished_rl, tmp_path / "run")
    config = json.loads((path / "config.json").read_text())
    config["preset"][field] = value
    (path / "config.json").write_text(json.dumps(config))
    before = tree(path)
    line = one_line_error(run([*TRAIN_PPO, "--run-dir", str(path), "--resume", "--total-timesteps", "512"]))
    assert f"preset.{field}" in line and "was edited" in line
    assert tree(path) == before


def test_a_resume_refuses_an_edited_seed(finished_rl, tmp_path):
    path = copy_run(finished_rl, tmp_path / "run")
    config = json.loads((path / "config.json").read_text())
    config["seed"] = 7
    (path / "config.json").write_text(json.dumps(config))
    before = tree(path)
    line = one_line_error(run([*TRAIN_PPO, "--run-dir", str(path), "--resume", "--total-timesteps", "512"]))
    assert "seed is 7" in line
    assert tree(path) == before


def test_a_resume_accepts_the_flags_the_run_was_started_with(tmp_path):
    """A sweep resumes a run with its own arguments: list-valued settings compare equal to their config.json."""
    path = tmp_path / "run"
    flags = ["--syre", "--syre-exclude", "log_std", "*.bias", "--syre-gamma", "0.01"]
    assert run([*TRAIN_PPO, *flags, "--total-timesteps", "256", "--run-dir", str(path)]).returncode == 0
    result = run([*TRAIN_PPO, *flags, "--total-timesteps", "512", "--run-dir", str(path), "--resume"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((path / "final" / "config.json").read_text())["preset"]["syre"]["exclude"] == ["log_std", "*.bias"]
