"""More bad inputs, each through a script's real command line in a subprocess: the convention of
``syre_rl/cli.py`` holds (one line ``<prog>: error: ...`` on stderr, exit status 2, no traceback) and the
directories the command was pointed at are byte-for-byte as they were, with nothing new beside them.

Classes: a traceback that should be one line (a missing optional dependency, an algorithm that does not fit
the action space, a run directory that cannot be made, a checkpoint folder with a foreign name, a full disk
while checkpointing), input that was accepted and should be refused (an empty preset, a key twice in a YAML
file, sizes out of bounds, an unreachable Ray head, conflicting or repeated options, a corrupt sweep.json in a
dry run), something written before a refusal, and several lines for one failure.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_robustness import ENV, SCRIPTS, rl_run, supervised_run

from syre_rl.presets import PROJECT_ROOT

PYTHON_ENV = {**ENV, "PYTHONPATH": str(PROJECT_ROOT)}


# ------------------------------------------------------------------------------------------ helpers
def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (itself included) as {relative path: sha256 of a file's bytes, 'dir', or
    'link -> target'}: equal snapshots mean nothing was written, deleted or added."""
    root = Path(root)
    out: dict[str, str] = {}
    for path in [root, *sorted(root.rglob("*"))]:
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = f"link -> {os.readlink(path)}"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def script(name: str, *args: str, preexec_fn=None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPTS / f"{name}.py"), *args],
        capture_output=True, text=True, env=PYTHON_ENV, timeout=timeout, preexec_fn=preexec_fn, cwd=PROJECT_ROOT,
    )  # fmt: skip


def assert_one_line(result: subprocess.CompletedProcess, name: str, message: str, code: int = 2) -> str:
    err = result.stderr.strip()
    assert result.returncode == code, (result.returncode, err[-3000:])
    assert "Traceback" not in err and len(err.splitlines()) == 1, err[-3000:]
    assert err.startswith(f"{name}.py: error: ") and message in err, err
    return err


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def area(tmp_path_factory) -> dict[str, Path]:
    """A finished RL run (a checkpoint at step 256, final/ at 512), a finished supervised run, an RL sweep of
    the RL run, and an RL plasticity sweep whose run has made-up results."""
    root = tmp_path_factory.mktemp("more")
    rl, sup = root / "rl", root / "sup"
    rl_run(rl, steps=512)
    supervised_run(sup)
    sweep = root / "sweep"
    sweep.mkdir()
    shutil.copytree(rl, sweep / "a")
    manifest = {"script": "train_ppo", "runs": [{"id": "a", "method": "ppo", "seed": 0}]}
    (sweep / "sweep.json").write_text(json.dumps(manifest))
    plastic = root / "plastic"
    (plastic / "a").mkdir(parents=True)
    rows = [
        {"regime": k, "regime_return": -100.0 - k, "fresh_return": -90.0, "figure": -10.0 - k}
        for k in range(3)
    ]
    results = {"done": True, "seed": 0, "rows": rows, "steps_per_second": 100.0}
    (plastic / "a" / "results.json").write_text(json.dumps(results))
    (plastic / "sweep.json").write_text(json.dumps({"runs": [{"id": "a", "method": "ppo", "seed": 0}]}))
    return {"root": root, "rl": rl, "sup": sup, "sweep": sweep, "plastic": plastic}


@pytest.fixture
def case(area, tmp_path) -> dict[str, Path]:
    """A scratch folder for one case, with copies of the prepared run directories it may damage."""
    return {"tmp": tmp_path, **area}


def dangling(tmp: Path) -> Path:
    link = tmp / "dangling"
    link.symlink_to(tmp / "no-such-target")
    return link


# ------------------------------------------------------------------------------- table of bad inputs
# (script, argv, expected part of the message); {tmp} is a fresh folder per case (its snapshot must not
# change), {rl}, {sup}, {sweep}, {plastic} the prepared directories (their snapshots must not change).
PPO = ["--preset", "smoke"]
SUP = ["--experiment", "teacher-student", "--preset", "tiny"]
PLASTIC = ["--preset", "vec-pendulum-smoke", "--no-fresh", "--run-dir", "{tmp}/run"]
LONG = "x" * 300
CASES: list[tuple[str, list[str], str]] = [
    # tracebacks that are one line now
    (
        "train_ppo",
        ["--algo", "sac", "--env", "CartPole-v1", *PPO, "--run-dir", "{tmp}/run"],
        "does not support the action space",
    ),
    ("train_ppo", [*PPO, "--run-dir", "/proc/syre_rl_run"], "no folder can be created in /proc"),
    ("train_ppo", [*PPO, "--run-dir", f"{{tmp}}/{LONG}"], "File name too long"),
    ("train_ppo", [*PPO, "--run-dir", f"{{tmp}}/{LONG}/run"], "File name too long"),
    ("train_ppo", [*PPO, "--run-dir", "{tmp}/dangling"], "link to a missing target"),
    ("train_ppo", [*PPO, "--run-dir", "{tmp}/dangling/run"], "link to a missing target"),
    ("train_supervised", [*SUP, "--run-dir", "/proc/syre_rl_run"], "no folder can be created in /proc"),
    ("rl_plasticity", [*PLASTIC[:-1], "/proc/syre_rl_run"], "no folder can be created in /proc"),
    ("rl_plasticity", [*PLASTIC, "--fresh-dir", "{tmp}/dangling"], "link to a missing target"),
    ("rl_plasticity", [*PLASTIC, "--weight-decay", "inf"], "finite"),
    ("rl_plasticity", [*PLASTIC, "--weight-decay", "nan"], "finite"),
    ("rl_plasticity", [*PLASTIC, "--weight-decay", "-1"], "must be >= 0"),
    ("rl_plasticity", [*PLASTIC, "--syre", "--syre-gamma", "inf"], "finite"),
    ("rl_plasticity", [*PLASTIC, "--syre", "--gamma", "0.1"], "--gamma is gone; use --syre-gamma"),
    ("plot", ["{sweep}", "--out", "/proc/syre_rl_figures"], "no folder can be created in /proc"),
    ("plot", ["{sweep}", "--out", "{tmp}/dangling/figures"], "link to a missing target"),
    # accepted before, refused now
    ("train_ppo", ["--preset", "", "--run-dir", "{tmp}/run"], "--preset: must not be empty"),
    ("train_ppo", ["--preset", "  ", "--run-dir", "{tmp}/run"], "--preset: must not be empty"),
    ("train_ppo", [*PPO, "--n-envs", str(2**62), "--run-dir", "{tmp}/run"], "'n_envs' must be at most 4096"),
    ("train_ppo", [*PPO, "--n-envs", "4097", "--run-dir", "{tmp}/run"], "'n_envs' must be at most 4096"),
    ("train_supervised", [*SUP, "--seeds", "100000000", "--run-dir", "{tmp}/run"], "[1, 10,000]"),
    ("train_supervised", [*SUP, "--seeds", "10001", "--run-dir", "{tmp}/run"], "[1, 10,000]"),
    ("train_supervised", [*SUP, "--seeds", "5000", "--methods", "none,syre", "--run-dir", "{tmp}/run"],
     "at most 10,000 train as one stacked model"),
    ("diagnose_plasticity", ["{tmp}/run", "--only", "bogus"], "unknown counterfactual 'bogus'"),
    ("rl_plasticity", [*PLASTIC, "--regimes", "1e11"], "must be at most 10,000"),
    ("train_ppo", [*PPO, "--run-dir", ""], "--run-dir: must not be empty"),
    ("train_supervised", [*SUP, "--run-dir", " "], "--run-dir: must not be empty"),
    ("sweep", ["rl:smoke", "--sweep-dir", ""], "--sweep-dir: must not be empty"),
    ("train_supervised", [*SUP, "--run-dir", "{sup}", "--resume", "--force"], "not allowed with"),
    ("train_ppo", ["--run-dir", "{rl}", "--resume", "--force"], "not allowed with"),
    (
        "train_supervised",
        [*SUP, "--methods", "none,none", "--run-dir", "{tmp}/run"],
        "none is listed more than once",
    ),
    (
        "train_supervised",
        [*SUP, "--methods", "none,,syre", "--run-dir", "{tmp}/run"],
        "comma-separated names",
    ),
    (
        "sweep",
        ["rl:smoke", "--sweep-dir", "{tmp}/sw", "--methods", "ppo,ppo"],
        "ppo is listed more than once",
    ),
    ("sweep", ["rl:smoke", "--sweep-dir", "{tmp}/sw", "--address", "no-port"], "--address must be HOST:PORT"),
    (
        "sweep",
        ["rl:smoke", "--sweep-dir", "/proc/syre_rl_sweep", "--dry-run"],
        "no folder can be created in /proc",
    ),
    # several lines for one failure: now one
    (
        "plot",
        ["{sweep}", "--metric", "x=no/such/tag", "--out", "{tmp}/figures"],
        "has logged any of the metrics x",
    ),
    (
        "report_rl_plasticity",
        ["{plastic}", "--out", "/proc/syre_rl_report"],
        "no folder can be created in /proc",
    ),
]


@pytest.mark.parametrize(
    ("name", "argv", "message"), CASES, ids=[f"{c[0]}:{' '.join(c[1])[-60:]}" for c in CASES]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, name, argv, message):
    dangling(case["tmp"])
    watched = ("tmp", "rl", "sup", "sweep", "plastic")
    before = {key: snapshot(case[key]) for key in watched}
    result = script(name, *[a.format(**{k: str(v) for k, v in case.items()}) for a in argv])
    assert_one_line(result, name, message)
    assert {key: snapshot(case[key]) for key in watched} == before


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="Box2D is installed here")
def test_an_environment_whose_dependency_is_missing_is_one_line(tmp_path):
    result = script("train_ppo", *PPO, "--env", "CarRacing-v3", "--run-dir", str(tmp_path / "run"))
    assert_one_line(result, "train_ppo", "CarRacing-v3 cannot be made here: Box2D is not installed")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------ damaged directories
def damaged_sweep(tmp: Path, manifest: object, results: object | None = None) -> Path:
    sweep = tmp / "sweep"
    (sweep / "a").mkdir(parents=True)
    (sweep / "sweep.json").write_text(manifest if isinstance(manifest, str) else json.dumps(manifest))
    if results is not None:
        (sweep / "a" / "results.json").write_text(
            results if isinstance(results, str) else json.dumps(results)
        )
    return sweep


ONE_RUN = {"script": "train_ppo", "runs": [{"id": "a", "method": "ppo", "seed": 0}]}
ESCAPE = {"script": "train_ppo", "runs": [{"id": "../../etc", "method": "ppo", "seed": 0}]}
PLOT_DAMAGE = {  # what is in run a of the sweep -> the message
    "corrupt-events": ({"a/tb/events.out.tfevents.1.x.1.0": os.urandom(200)}, "1 without readable logs: a"),
    "empty-events": ({"a/tb/events.out.tfevents.1.x.1.0": b""}, "1 without readable logs: a"),
    "no-tb": ({"a/config.json": b"{}"}, "1 without readable logs: a"),
    "no-run-dir": ({}, "1 without readable logs: a"),
}


@pytest.mark.parametrize("damage", list(PLOT_DAMAGE))
def test_plot_of_unreadable_runs_is_one_line_and_writes_nothing(tmp_path, damage):
    files, message = PLOT_DAMAGE[damage]
    sweep = damaged_sweep(tmp_path, ONE_RUN)
    if damage == "no-run-dir":
        (sweep / "a").rmdir()
    for rel, data in files.items():
        (sweep / rel).parent.mkdir(parents=True, exist_ok=True)
        (sweep / rel).write_bytes(data)
    before = snapshot(tmp_path)
    assert_one_line(script("plot", str(sweep)), "plot", message)
    assert snapshot(tmp_path) == before  # no figures/ folder either


REPORT_DAMAGE = {
    "corrupt-sweep-json": ("{not json", None, "sweep.json is unreadable"),
    "no-runs": ({"script": "rl_plasticity"}, None, "has no list of runs"),
    "escaping-id": ({"runs": [{"id": "../../etc", "method": "ppo"}]}, None, "is not a plain folder name"),
    "corrupt-results": ({"runs": [{"id": "a", "method": "ppo"}]}, "[1, 2", "a/results.json is unreadable"),
    "results-without-rows": ({"runs": [{"id": "a", "method": "ppo"}]}, {"done": True, "seed": 0}, "no rows"),
}


@pytest.mark.parametrize("damage", list(REPORT_DAMAGE))
def test_report_of_a_damaged_sweep_is_one_line_and_writes_nothing(tmp_path, damage):
    manifest, results, message = REPORT_DAMAGE[damage]
    sweep = damaged_sweep(tmp_path, manifest, results)
    before = snapshot(tmp_path)
    assert_one_line(
        script("report_rl_plasticity", str(sweep), "--out", str(tmp_path / "report")),
        "report_rl_plasticity",
        message,
    )
    assert snapshot(tmp_path) == before


def test_plot_refuses_a_run_id_that_leaves_the_sweep(tmp_path):
    sweep = damaged_sweep(tmp_path, ESCAPE)
    before = snapshot(tmp_path)
    assert_one_line(script("plot", str(sweep)), "plot", "'../../etc' is not a plain folder name")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "real"])
def test_a_corrupt_sweep_json_is_refused_before_the_lock_file_and_by_a_dry_run(tmp_path, dry_run):
    sweep = damaged_sweep(tmp_path, "{corrupt")
    before = snapshot(tmp_path)
    result = script("sweep", "rl:smoke", "--sweep-dir", str(sweep), *(["--dry-run"] if dry_run else []))
    assert_one_line(result, "sweep", "sweep.json is unreadable")
    assert snapshot(tmp_path) == before  # no .lock, no logs/


def test_a_dry_run_refuses_a_run_recorded_with_other_arguments(tmp_path):
    runs = [{"id": "ppo-s0", "method": "ppo", "seed": 0, "args": ["--other"]}]
    sweep = damaged_sweep(tmp_path, {"script": "train_ppo", "runs": runs})
    before = snapshot(tmp_path)
    result = script("sweep", "rl:smoke", "--sweep-dir", str(sweep), "--dry-run")
    assert_one_line(result, "sweep", "with other arguments")
    assert snapshot(tmp_path) == before


def test_an_unreachable_ray_head_is_refused_within_seconds_and_creates_nothing(tmp_path):
    port = closed_port()
    started = time.monotonic()
    result = script(
        "sweep", "rl:smoke", "--sweep-dir", str(tmp_path / "sw"), "--address", f"127.0.0.1:{port}"
    )
    assert_one_line(result, "sweep", f"cannot reach the Ray head at 127.0.0.1:{port}")
    assert time.monotonic() - started < 30 and list(tmp_path.iterdir()) == []


def test_a_foreign_checkpoint_folder_is_refused_on_resume(case):
    run = case["tmp"] / "run"
    shutil.copytree(case["rl"], run)
    shutil.rmtree(run / "final")
    (run / "checkpoints" / "step_abc").mkdir()
    before = snapshot(run)
    result = script("train_ppo", "--run-dir", str(run), "--resume")
    assert_one_line(result, "train_ppo", "step_abc is not a checkpoint of this toolkit")
    assert snapshot(run) == before


def test_a_garbage_results_json_on_resume_is_named_and_no_event_file_is_made(case):
    run = case["tmp"] / "sup"
    shutil.copytree(case["sup"], run)
    (run / "results.json").write_text("garbage{")
    before = snapshot(run)
    result = script("train_supervised", *SUP, "--run-dir", str(run), "--resume")
    assert_one_line(result, "train_supervised", f"{run / 'results.json'} is corrupt")
    assert snapshot(run) == before


def test_a_file_size_limit_while_checkpointing_stops_with_exit_3_and_no_temporary_folder(case):
    run = case["tmp"] / "run"
    shutil.copytree(case["rl"], run)
    shutil.rmtree(run / "final")  # resumes at step 256; the next checkpoint (step 512) cannot be written
    size = (run / "checkpoints" / "step_000000000256" / "model.zip").stat().st_size

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size // 2, size // 2))

    result = script(
        "train_ppo", "--run-dir", str(run), "--resume", "--total-timesteps", "1024", preexec_fn=limit
    )
    err = assert_one_line(result, "train_ppo", "cannot write checkpoint", code=3)
    assert (
        "File too large" in err
        and f"the last good checkpoint is {run / 'checkpoints' / 'step_000000000256'}" in err
    )
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["step_000000000256"]  # no hidden folder
    assert not [p for p in run.rglob(".*") if p.name not in (".syre_rl-run", ".syre_rl-lock")]


def test_a_file_size_limit_while_saving_a_supervised_checkpoint_stops_with_exit_3(tmp_path):
    """The checkpoint (20 kB here) cannot be written, results.json (2 kB) can: exit 3, no temporary file left."""
    run = tmp_path / "run"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000))

    result = script("train_supervised", *SUP, "--threads", "1", "--epochs", "1", "--run-dir", str(run),
                    preexec_fn=limit)  # fmt: skip
    err = assert_one_line(result, "train_supervised", "cannot write the checkpoint after stage 1", code=3)
    assert "no checkpoint was saved" in err and not (run / "checkpoint.pt").exists()
    assert not [p for p in run.rglob(".*") if p.name not in (".syre_rl-run", ".syre_rl-lock")]  # no temporary file


# ------------------------------------------------------------------------------------ preset files
@pytest.fixture(scope="module")
def project_copy(tmp_path_factory) -> Path:
    """A copy of the package, scripts and preset files, whose presets a test may damage."""
    root = tmp_path_factory.mktemp("project")
    for name in ("syre_rl", "scripts", "agents", "envs", "experiments", "grids"):
        shutil.copytree(PROJECT_ROOT / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(
    ("where", "insert_after", "line"),
    [("nested", "smoke:\n", "  n_envs: 4\n"), ("top level", None, "smoke:\n  n_envs: 1\n")],
)
def test_a_key_given_twice_in_a_preset_file_is_refused(project_copy, tmp_path, where, insert_after, line):
    path = project_copy / "agents" / "ppo.yaml"
    original = path.read_text()
    try:
        text = original.replace(insert_after, insert_after + line, 1) if insert_after else original + line
        path.write_text(text)
        result = subprocess.run(
            [sys.executable, str(project_copy / "scripts" / "train_ppo.py"), *PPO, "--run-dir", str(tmp_path / "run")],
            capture_output=True, text=True, env={**PYTHON_ENV, "PYTHONPATH": str(project_copy)}, timeout=120,
        )  # fmt: skip
    finally:
        path.write_text(original)
    key = "'n_envs'" if where == "nested" else "'smoke'"
    err = assert_one_line(result, "train_ppo", f"ppo.yaml: key {key} is given twice (lines ")
    assert str(path) in err and list(tmp_path.iterdir()) == []
