"""Sweep grids: presets in ``grids/<file>.yaml`` expanded into runs (methods x tasks x parameters x seeds).

A grid preset names a training script, the flags of each method, the tasks, seeds and any hyperparameter
lists; every combination becomes one :class:`Run` with its own directory under the sweep directory::

    slippery-ant-study:
      script: train_ppo
      args: [--preset, study]          # given to every run
      methods: {ppo: [], ppo-syre: [--syre]}
      tasks: [slippery_ant:study]      # values of the script's task flag (--env, --experiment)
      params: {--syre-gamma: [1.0e-3, 2.0e-3]}
      seeds: [0, 1, 2]

The sweep directory's ``sweep.json`` lists the runs (id, labels, arguments); ``scripts/plot.py`` reads it.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from syre_rl.lifecycle import TRAINING, Command
from syre_rl.presets import PresetError, load_preset, preset_dir, preset_names
from syre_rl.runs import finished, resumable, write_json

__all__ = [
    "GRID_DIR",
    "GridPreset",
    "Run",
    "expand",
    "grid_names",
    "load_grid",
    "check_manifest",
    "read_manifest",
    "write_manifest",
]

GRID_DIR = preset_dir("grids")
MANIFEST = "sweep.json"
_LABEL = re.compile(r"[A-Za-z0-9_.+-]+")


@dataclass
class GridPreset:
    """Schema of one grid preset.

    :param script: the training command, a key of :data:`syre_rl.lifecycle.TRAINING` (named after its script)
    :param methods: method label -> the script flags that select it (``{ppo: [], ppo-syre: [--syre]}``)
    :param seeds: one run per seed (the script's ``--seed``)
    :param tasks: one run per task (the script's ``--env`` or ``--experiment``); empty: ``args`` decides
    :param params: flag -> values; one run per combination (``{--syre-gamma: [1.0e-3, 2.0e-3]}``)
    :param args: flags given to every run, before the grid's own
    :param cpus_per_run: CPUs a run uses (Ray resources; local parallelism is cores / this)
    :param gpus_per_run: GPUs a run uses (Ray resources)
    :param max_retries: how often a run that dies (a crash, a lost node) is started again, resuming
    :param description: one line for listings
    """

    script: Literal["train_ppo", "rl_plasticity", "train_supervised"]
    methods: dict[str, list[str]]
    seeds: list[int] = field(default_factory=lambda: [0])
    tasks: list[str] = field(default_factory=list)
    params: dict[str, list[Any]] = field(default_factory=dict)
    args: list[str] = field(default_factory=list)
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 2
    description: str = ""

    def __post_init__(self) -> None:
        if not self.methods:
            raise ValueError("field 'methods' must name at least one method")
        for label, flags in self.methods.items():
            if not isinstance(label, str) or not _LABEL.fullmatch(label):
                raise ValueError(f"field 'methods': label {label!r} must be letters, digits or _.+-")
            if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
                raise ValueError(f"field 'methods': {label} needs a list of flags, got {flags!r}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"field 'seeds' must be distinct integers >= 0, got {self.seeds!r}")
        if len(set(self.tasks)) != len(self.tasks):
            raise ValueError(f"field 'tasks' lists a task twice: {self.tasks!r}")
        for flag, values in self.params.items():
            if not (isinstance(flag, str) and flag.startswith("--")):
                raise ValueError(f"field 'params': keys are flags like --syre-gamma, got {flag!r}")
            if not isinstance(values, list) or not values:
                raise ValueError(f"field 'params': {flag} needs a non-empty list of values, got {values!r}")
            if not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
                raise ValueError(f"field 'params': {flag} values must be numbers or strings, got {values!r}")
        if self.cpus_per_run <= 0 or self.gpus_per_run < 0:
            raise ValueError("fields 'cpus_per_run' must be > 0 and 'gpus_per_run' >= 0")
        if self.max_retries < 0:
            raise ValueError(f"field 'max_retries' must be >= 0, got {self.max_retries}")


@dataclass(frozen=True)
class Run:
    """One training run of a sweep: ``script`` with ``args`` in ``run_dir`` (labels are for plots)."""

    id: str
    script: str
    args: tuple[str, ...]
    run_dir: Path
    method: str
    seed: int
    task: str | None = None
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def training(self) -> Command:
        return TRAINING[self.script]

    def state(self) -> Literal["finished", "resumable", "new"]:
        """Read from the run directory each time: it is the only record of a run's progress."""
        kind = self.training.kind
        assert kind is not None
        if finished(kind, self.run_dir):
            return "finished"
        return "resumable" if resumable(kind, self.run_dir) else "new"

    def command(self, python: str) -> list[str]:
        """The command that brings the run forward from where its directory is: resume it or (re)start it
        (``python -m syre_rl <command>``: the installed package's, wherever the sweep runs)."""
        training = self.training
        start = training.resume_flag if self.state() == "resumable" else training.restart_flag
        return [python, "-m", "syre_rl", training.name, *self.args, training.run_dir_flag, str(self.run_dir), start]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "script": self.script,
            "method": self.method,
            "seed": self.seed,
            "task": self.task,
            "params": dict(self.params),
            "args": list(self.args),
        }


def grid_names() -> list[str]:
    """Every grid as ``FILE:PRESET``."""
    return [f"{p.stem}:{name}" for p in sorted(GRID_DIR.glob("*.yaml")) for name in preset_names(p)]


def load_grid(name: str) -> GridPreset:
    """Load ``FILE:PRESET`` (``grids/FILE.yaml``, preset ``PRESET``); PresetError names what is wrong."""
    file, sep, preset = name.partition(":")
    path = GRID_DIR / f"{file}.yaml"
    if not sep or not path.is_file():
        raise PresetError(f"unknown grid {name!r}; choose one of: {', '.join(grid_names())}")
    return load_preset(path, preset, GridPreset)


def _slug(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9_.+=-]", "-", text)


def expand(grid: GridPreset, sweep_dir: Path, extra_args: list[str] = ()) -> list[Run]:
    """Every combination as a :class:`Run` in ``sweep_dir/<run-id>``, ordered seed by seed: the first seed of
    every method runs before any second seed, so a sweep cut short still compares all methods.

    :param extra_args: flags appended to every run's arguments (after the grid's)
    """
    script = TRAINING[grid.script]
    runs = []
    flags = list(grid.params)
    for task, (method, method_flags), values in itertools.product(
        grid.tasks or [None], grid.methods.items(), itertools.product(*grid.params.values())
    ):
        for seed in grid.seeds:
            args = list(grid.args)
            if task is not None:
                args += [script.task_flag, task]
            args += method_flags
            for flag, value in zip(flags, values, strict=True):
                args += [flag, str(value)]
            args += [*extra_args, script.seed_flag, str(seed)]
            parts = [
                task,
                method,
                *(f"{f.lstrip('-')}{_slug(v)}" for f, v in zip(flags, values, strict=True)),
            ]
            run_id = "-".join(_slug(p) for p in parts if p is not None) + f"-s{seed}"
            runs.append(
                Run(run_id, grid.script, tuple(args), sweep_dir / run_id, method, seed, task,
                    tuple(zip(flags, values, strict=True)))
            )  # fmt: skip
    runs.sort(key=lambda run: grid.seeds.index(run.seed))  # stable: methods keep their order within a seed
    ids = [r.id for r in runs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise PresetError(f"two runs of the grid get the same id {dup!r}; make method labels distinct")
    return runs


def read_manifest(sweep_dir: Path) -> dict[str, Any]:
    """The ``sweep.json`` of a sweep directory (PresetError if missing or unreadable)."""
    path = Path(sweep_dir) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise PresetError(f"{sweep_dir} is not a sweep directory (no {MANIFEST})") from None
    except (OSError, ValueError) as err:
        raise PresetError(f"{path} is unreadable ({err})") from None
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise PresetError(f"{path} has no list of runs")
    return data


# Flags renamed since a sweep may have recorded its runs: the old spelling means the same run.
RENAMED_FLAGS = {
    "train_ppo": {f"--{k}": f"--syre-{k}" for k in ("gamma", "sigma0", "spread", "mode", "anchor-scale")},
    "rl_plasticity": {f"--{k}": f"--syre-{k}" for k in ("gamma", "sigma0", "mode", "anchor-scale")},
    "train_supervised": {"--gamma": "--weight-decay"},
}


def _current_spelling(args: list[Any], script: str) -> list[Any]:
    renamed = RENAMED_FLAGS.get(script, {})
    return [renamed.get(a, a) if isinstance(a, str) else a for a in args]


def check_manifest(sweep_dir: Path, runs: list[Run]) -> dict[str, dict[str, Any]]:
    """Check that ``runs`` may be recorded in the sweep directory's ``sweep.json`` (if it has one), writing
    nothing: the file must be readable, and no run id it holds may have other arguments. A dry run checks this
    too. Returns the recorded runs by id.

    :raises PresetError: naming the file or the run
    """
    path = Path(sweep_dir) / MANIFEST
    if not (path.exists() or path.is_symlink()):
        return {}
    old: dict[str, dict[str, Any]] = {}
    for i, run in enumerate(read_manifest(sweep_dir)["runs"]):
        if not (
            isinstance(run, dict) and isinstance(run.get("id"), str) and isinstance(run.get("args"), list)
        ):
            raise PresetError(f"{path}: run {i} has no id or no list of args")
        old[run["id"]] = run
    for run in runs:
        before = old.get(run.id)
        if before is not None and _current_spelling(before["args"], run.script) != list(run.args):
            raise PresetError(
                f"{sweep_dir} already holds run {run.id} with other arguments ({' '.join(map(str, before['args']))}); "
                "use another --sweep-dir or remove that run"
            )
    return old


def write_manifest(sweep_dir: Path, grid_name: str, grid: GridPreset, runs: list[Run]) -> None:
    """Record the runs in ``sweep.json``, keeping runs an earlier, larger grid added.

    A run id that an earlier call recorded with other arguments is refused (PresetError): the directory
    would hold results of two different settings under one name.
    """
    old = check_manifest(sweep_dir, runs)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    merged = {**old, **{r.id: r.to_json() for r in runs}}
    data = {"grid": grid_name, "script": grid.script, "settings": asdict(grid), "runs": list(merged.values())}
    write_json(sweep_dir / MANIFEST, data)
