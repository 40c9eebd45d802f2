"""The one training pipeline of the supervised experiments.

An :class:`Experiment` says what to train (data on the device, a stacked model, a loss, measurements); the
pipeline does the rest, the same way for all of them: one Adam over the stacked members (fused where the device
supports it), the members' methods attached to it, bfloat16 autocast on CUDA, TensorBoard scalars and a
``results.json`` per run, and an atomic checkpoint after every stage (an epoch, or an epoch of a task) that
``resume`` continues from exactly.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from syre_rl.supervised.methods import Member, attach_methods, build_members, check_methods

__all__ = ["CheckpointError", "Experiment", "RunDirError", "Stage", "SupervisedPreset", "train"]

CHECKPOINT_FORMAT = "syre_rl.supervised/2"


class RunDirError(Exception):
    """The run directory cannot be used as asked (exists without --force/--resume, nothing to resume)."""


class CheckpointError(Exception):
    """A checkpoint is unreadable or belongs to another configuration."""


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass
class SupervisedPreset:
    """Fields every supervised experiment has (``experiments/<name>.yaml``); experiments add their own.

    :param methods: keys of :data:`syre_rl.supervised.methods.METHODS`, compared side by side (``l2-init`` and
        ``shrink-perturb`` act on every member, so each is a run's only method).
    :param method_kwargs: settings of ``l2-init`` / ``shrink-perturb`` (keyword arguments of
        :func:`syre_rl.baselines.make_method`) by method name; unset ones keep the reference settings.
    :param weight_decay: decay strengths swept by ``wd`` and ``syre`` (``decay_mode`` says which convention).
    :param sigma0: anchor scales swept by ``syre`` (the anchor std is ``sigma0 / sqrt(fan_in)``).
    :param dropout: rates swept by the ``dropout`` method.
    :param seeds: members per setting; member seeds are ``seed, seed + 1, ...``.
    :param train_size: use the first examples only (0: all); for quick runs and tests.
    :param eval_size: test examples used for ranks and dead units (accuracy uses ``test_size``).
    :param optimizer_impl: ``fused`` (one kernel per step where the device supports it) or ``foreach``.
    :param optimizer: ``adam`` (the paper's experiments) or ``sgd`` (plain SGD, e.g. the online regression of the
        plasticity benchmarks); elementwise either way, so the stacked members stay independent.
    """

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    methods: list[str] = field(default_factory=lambda: ["vanilla", "syre"])
    weight_decay: list[float] = field(default_factory=lambda: [1e-2])
    sigma0: list[float] = field(default_factory=lambda: [1e-2])
    dropout: list[float] = field(default_factory=list)
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    decay_mode: Literal["coupled", "decoupled"] = "coupled"
    seeds: int = 1
    seed: int = 0
    train_size: int = 0
    test_size: int = 0
    eval_size: int = 2000
    amp: bool = True
    optimizer_impl: Literal["fused", "foreach"] = "fused"
    optimizer: Literal["adam", "sgd"] = "adam"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "seeds", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"field {name!r} must be >= 1, got {getattr(self, name)}")
        for name in ("train_size", "test_size", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"field {name!r} must be >= 0, got {getattr(self, name)}")
        _positive("lr", self.lr)
        for name in ("weight_decay", "sigma0"):
            for v in getattr(self, name):
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"field {name!r} values must be finite and >= 0, got {v!r}")
        if any(not 0 <= p < 1 for p in self.dropout):
            raise ValueError(f"field 'dropout' values must be in [0, 1), got {self.dropout}")
        check_methods(self.methods, self.method_kwargs)

    def members(self) -> list[Member]:
        seeds = range(self.seed, self.seed + self.seeds)
        return build_members(self.methods, seeds, self.weight_decay, self.sigma0, self.dropout)


@dataclass(frozen=True)
class Stage:
    """One unit of training between measurements and checkpoints: an epoch of a task."""

    index: int
    task: int
    epoch: int


class Experiment:
    """What a supervised experiment trains and measures; :func:`train` runs it.

    Subclasses set :attr:`model` (stacked over :attr:`members`) in ``__init__`` and implement :meth:`batches`,
    :meth:`loss` and :meth:`evaluate`. Metrics are ``{key: [one value per member]}``.
    """

    name = ""
    schema: type[SupervisedPreset] = SupervisedPreset
    decay_include: str | list[str] | None = None  # Syre include patterns of the decayed parameters

    def __init__(
        self, cfg: SupervisedPreset, device: torch.device, data_dir: Path | None, download: bool
    ) -> None:
        self.cfg, self.device = cfg, device
        self.members = cfg.members()
        self.model: nn.Module = nn.Identity()

    @property
    def seeds(self) -> list[int]:
        return [m.seed for m in self.members]

    def stages(self) -> list[Stage]:
        return [Stage(i, 0, i) for i in range(self.cfg.epochs)]

    def start_stage(self, stage: Stage) -> dict[str, list[float]]:
        """Measurements before a stage's training (e.g. at a task's start)."""
        return {}

    def batches(self, stage: Stage) -> Iterator[Tensor]:
        raise NotImplementedError

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        """Each member's mean loss, ``[E]``; their sum is differentiated (each member gets its own gradient)."""
        raise NotImplementedError

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        raise NotImplementedError


# ---------------------------------------------------------------------------------------------- run dir
def _prepare_run_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse to clobber a previous run unless asked; with ``force`` remove only what a run writes."""
    outputs = [run_dir / n for n in ("checkpoint.pt", "results.json", "tb")]
    exists = any(p.exists() for p in outputs)
    if resume:
        if not (run_dir / "checkpoint.pt").is_file():
            raise RunDirError(f"nothing to resume: no checkpoint.pt in {run_dir}")
        return
    if exists and not force:
        raise RunDirError(
            f"run directory {run_dir} already holds a run; pass --resume to continue or --force to restart"
        )
    for path in outputs:
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, data: Any) -> None:
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=1, allow_nan=True) + "\n"))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`; any damage is one :class:`CheckpointError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch raises many kinds for a damaged file)
        raise CheckpointError(f"corrupt checkpoint {path}: {type(err).__name__}: {str(err)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a supervised checkpoint ({CHECKPOINT_FORMAT})")
    return state


def _rng_state(device: torch.device) -> dict[str, Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict[str, Tensor], device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def make_optimizer(model: nn.Module, cfg: SupervisedPreset) -> torch.optim.Optimizer:
    """One Adam (or SGD) over all stacked members (elementwise, so it is ``E`` independent optimizers)."""
    impl = {"fused": True} if cfg.optimizer_impl == "fused" else {"foreach": True}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, **impl)
    return torch.optim.Adam(model.parameters(), lr=cfg.lr, **impl)


# ------------------------------------------------------------------------------------------------ train
def train(
    experiment_cls: type[Experiment],
    cfg: SupervisedPreset,
    *,
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    data_dir: str | Path | None = None,
    download: bool = False,
    resume: bool = False,
    force: bool = False,
    preset: str = "",
    max_stages: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train ``experiment_cls`` with ``cfg`` in ``run_dir``; returns (and writes) the results.

    :param resume: continue from ``run_dir/checkpoint.pt`` (its configuration must equal ``cfg``).
    :param force: start over in a ``run_dir`` that holds a previous run.
    :param max_stages: stop (checkpointed) after this many stages of this call; ``resume`` continues.
    """
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415  (heavy; only when training)

    run_dir, device = Path(run_dir), torch.device(device)
    _prepare_run_dir(run_dir, resume, force)
    config = dataclasses.asdict(cfg)
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt") if resume else None
    if checkpoint is not None and (checkpoint["experiment"], checkpoint["config"]) != (
        experiment_cls.name,
        config,
    ):
        raise CheckpointError(
            f"{run_dir / 'checkpoint.pt'} was written by another configuration "
            f"({checkpoint['experiment']}); resume with the same experiment, preset and options"
        )

    torch.manual_seed(cfg.seed)
    experiment = experiment_cls(cfg, device, Path(data_dir) if data_dir is not None else None, download)
    model = experiment.model.to(device)
    optimizer = make_optimizer(model, cfg)
    methods = attach_methods(
        model,
        optimizer,
        experiment.members,
        decay_mode=cfg.decay_mode,
        include=experiment.decay_include,
        anchor_seed=cfg.seed,
        method_kwargs=cfg.method_kwargs,
    )
    history: list[dict[str, Any]] = []
    start, elapsed = 0, 0.0
    if checkpoint is not None:
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            methods.load_state_dict(checkpoint["methods"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"{run_dir / 'checkpoint.pt'} does not fit this model: {str(err)[:200]}"
            ) from None
        _set_rng_state(checkpoint["rng"], device)
        start, elapsed, history = checkpoint["next_stage"], checkpoint["elapsed"], checkpoint["history"]

    members = [dataclasses.asdict(m) | {"name": m.name} for m in experiment.members]
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=start if start else None)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    stages = experiment.stages()
    log(
        f"{experiment.name}: {len(experiment.members)} members, {len(stages)} stages, device {device}, run {run_dir}"
    )
    results: dict[str, Any] = {}
    end = len(stages) if max_stages is None else min(len(stages), start + max_stages)
    for stage in stages[start:end]:
        t0 = time.perf_counter()
        model.eval()
        with torch.no_grad():
            metrics = {f"start/{k}": v for k, v in experiment.start_stage(stage).items()}
        model.train()
        total, steps = torch.zeros(len(experiment.members), device=device), 0
        for batch in experiment.batches(stage):
            with torch.autocast(**autocast):
                losses = experiment.loss(batch, stage).float()
            optimizer.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimizer.step()
            total += losses.detach()
            steps += 1
        model.eval()
        with torch.no_grad(), torch.autocast(**autocast):
            metrics.update(experiment.evaluate(stage))
        metrics["train/loss"] = (total / max(steps, 1)).tolist()
        elapsed += time.perf_counter() - t0
        history.append({"stage": stage.index, "task": stage.task, "epoch": stage.epoch, "metrics": metrics})
        for key, values in metrics.items():
            for member, value in zip(members, values, strict=True):
                writer.add_scalar(f"{key}/{member['name']}", value, stage.index)
        writer.flush()
        results = {
            "experiment": experiment.name,
            "preset": preset,
            "device": str(device),
            "config": config,
            "members": members,
            "stages_done": stage.index + 1,
            "stages": len(stages),
            "train_seconds": elapsed,
            "history": history,
        }
        state = {
            "format": CHECKPOINT_FORMAT,
            "experiment": experiment.name,
            "config": config,
            "next_stage": stage.index + 1,
            "elapsed": elapsed,
            "history": history,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "methods": methods.state_dict(),
            "rng": _rng_state(device),
        }
        _atomic_write(run_dir / "checkpoint.pt", functools.partial(torch.save, state))
        _write_json(run_dir / "results.json", results)
        log(
            f"stage {stage.index + 1}/{len(stages)} (task {stage.task}, epoch {stage.epoch}) "
            f"{time.perf_counter() - t0:.1f}s " + _headline(metrics, members)
        )
    writer.close()
    if not results:  # resumed a finished run
        results = json.loads((run_dir / "results.json").read_text())
    return results


def _headline(metrics: dict[str, list[float]], members: list[dict[str, Any]]) -> str:
    key = next((k for k in ("test/accuracy", "test/loss", "test/recon_loss") if k in metrics), None)
    if key is None:
        return ""
    return f"{key}: " + ", ".join(f"{m['name']}={v:.4g}" for m, v in zip(members, metrics[key], strict=True))
