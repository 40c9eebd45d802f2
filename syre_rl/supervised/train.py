"""The one training pipeline of the supervised experiments.

An :class:`Experiment` says what to train (data on the device, a stacked model, a loss, measurements); the
pipeline does the rest, the same way for all of them: one Adam over the stacked members (fused where the device
supports it), the members' methods attached to it, bfloat16 autocast on CUDA, TensorBoard scalars and a
``results.json`` per run, and an atomic checkpoint after every stage (an epoch, or an epoch of a task) that
``resume`` continues from exactly. With ``step="graph"`` the whole training step (loss, backward, the optimizer
step with the members' methods) is captured once per stage as a CUDA graph and replayed for every full batch.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from syre_rl import runs
from syre_rl.cli import DivergedError, UsageError, check_device, check_writable
from syre_rl.supervised.methods import (
    UNIT_METHODS,
    Member,
    attach_methods,
    build_members,
    check_methods,
    method_metrics,
    on_task_change,
)

__all__ = [
    "STEP_MODES",
    "CheckpointError",
    "DivergedError",
    "Experiment",
    "GraphedStep",
    "RunDirError",
    "Stage",
    "SupervisedPreset",
    "train",
]

CHECKPOINT_FORMAT = "syre_rl.supervised/2"
STEP_MODES = ("eager", "graph")
# Eager steps before a capture: CUDA's lazy initialisation (cuBLAS handles, optimizer state) happens outside it.
GRAPH_WARMUP = 3
# Methods that act between steps with host-side counters, utilities and their own generators (Shrink & Perturb,
# CBP, ReDo), which a CUDA graph does not replay.
UNGRAPHABLE_METHODS = UNIT_METHODS


class RunDirError(UsageError):
    """The run directory cannot be used as asked (nothing to resume)."""


class CheckpointError(ValueError):
    """A checkpoint is unreadable or belongs to another configuration."""


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass
class SupervisedPreset:
    """Fields every supervised experiment has (``experiments/<name>.yaml``); experiments add their own.

    :param methods: method names (the registry's: ``none``, ``l2``, ``syre``, ``l2-init``, ``shrink-perturb``,
        ``cbp``, ``redo``, ``dropout``), compared side by side in one stacked model; any mix.
    :param method_kwargs: settings of ``l2-init``, ``shrink-perturb``, ``cbp`` and ``redo`` (keyword arguments of
        their :mod:`syre_rl.baselines` classes) by method name; unset ones keep the reference settings.
    :param weight_decay: decay strengths swept by ``l2`` and ``syre`` (``decay_mode`` says which convention).
    :param sigma0: anchor scales swept by ``syre`` (the anchor std is ``sigma0 / sqrt(fan_in)``).
    :param dropout: rates swept by the ``dropout`` method.
    :param seeds: members per setting; member seeds are ``seed, seed + 1, ...``.
    :param train_size: use the first examples only (0: all); for quick runs and tests.
    :param eval_size: test examples used for ranks and dead units (accuracy uses ``test_size``).
    :param optimizer_impl: ``fused`` (one kernel per step where the device supports it) or ``foreach``.
    :param adam_betas: Adam's betas for every member (``[0.99, 0.99]``: Dohare et al.'s "ns-adam").
    :param optimizer: ``adam`` (the paper's experiments) or ``sgd`` (plain SGD, e.g. the online regression of the
        plasticity benchmarks); elementwise either way, so the stacked members stay independent.
    """

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    methods: list[str] = field(default_factory=lambda: ["none", "syre"])
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
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
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
        if len(self.adam_betas) != 2 or not all(0 <= b < 1 for b in self.adam_betas):
            raise ValueError(f"field 'adam_betas' must be two numbers in [0, 1), got {self.adam_betas!r}")
        check_methods(self.methods, self.method_kwargs)

    def members(self) -> list[Member]:
        seeds = range(self.seed, self.seed + self.seeds)
        return build_members(
            self.methods, seeds, self.weight_decay, self.sigma0, self.dropout, self.method_kwargs
        )


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
def _check_run_dir(run_dir: Path, resume: bool, force: bool) -> bool:
    """Whether an old run must be cleared before this one starts; raises before anything changes."""
    check_writable(run_dir, "run directory")
    if resume:
        if not (run_dir / runs.SUPERVISED_CHECKPOINT).is_file():
            raise RunDirError(f"nothing to resume: no {runs.SUPERVISED_CHECKPOINT} in {run_dir}")
        return False
    return runs.prepare_new_run(run_dir, "supervised", force)


def _write_json(path: Path, data: Any) -> None:
    runs.atomic_write_text(path, json.dumps(data, indent=1, allow_nan=True) + "\n")


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


def make_optimizer(
    model: nn.Module, cfg: SupervisedPreset, capturable: bool = False
) -> torch.optim.Optimizer:
    """One Adam (or SGD) over all stacked members (elementwise, so it is ``E`` independent optimizers).

    :param capturable: keep Adam's step counts on the device, as a CUDA graph of the step needs (SGD keeps none).
    """
    impl = {"fused": True} if cfg.optimizer_impl == "fused" else {"foreach": True}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, **impl)
    return torch.optim.Adam(
        model.parameters(), lr=cfg.lr, betas=tuple(cfg.adam_betas), capturable=capturable, **impl
    )


# ------------------------------------------------------------------------------------------------ steps
def eager_step(
    experiment: Experiment,
    optimizer: torch.optim.Optimizer,
    stage: Stage,
    autocast: dict[str, Any],
    total: Tensor,
    batch: Tensor,
) -> None:
    """One training step: each member's loss on ``batch``, backward, the optimizer step; adds the losses to
    ``total``."""
    with torch.autocast(**autocast):
        losses = experiment.loss(batch, stage).float()
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    optimizer.step()
    total += losses.detach()


class _EagerGraph:
    """Where CUDA graphs do not exist (CPU): "replay" runs the recorded step again, from the same static input,
    so the graphed path's logic runs, and is tested, everywhere."""

    def __init__(self, step: Callable[[], None]) -> None:
        self.replay = step


class GraphedStep:
    """The whole training step of one stage as a CUDA graph: :data:`GRAPH_WARMUP` eager steps, then one capture,
    then one replay per full batch, the batch's indices copied into the graph's static input on the device. A
    short batch (an epoch's last) runs eagerly. A new stage needs a new capture (its task, e.g. a pixel
    permutation, is part of the graph).

    The step is the eager one, kernel for kernel: syre's and the other methods' optimizer hooks run inside the
    capture. The optimizer must be capturable on CUDA (:func:`make_optimizer`).
    """

    def __init__(
        self,
        experiment: Experiment,
        optimizer: torch.optim.Optimizer,
        stage: Stage,
        autocast: dict[str, Any],
        total: Tensor,
    ) -> None:
        # Autocast's weight-cast cache would hand the graph tensors freed after the capture.
        self._step = functools.partial(
            eager_step, experiment, optimizer, stage, {**autocast, "cache_enabled": False}, total
        )
        self.cuda = total.device.type == "cuda"
        self.warmup = GRAPH_WARMUP
        self.static: Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | _EagerGraph | None = None
        self.optimizer = optimizer
        self.replays = 0

    def __call__(self, batch: Tensor) -> None:
        if self.graph is None and self.warmup > 0:
            self._eager(batch)
            self.warmup -= 1
            return
        if self.graph is None:
            self._capture(batch)
        if batch.shape != self.static.shape:  # type: ignore[union-attr]
            self._eager(batch)
            return
        self.static.copy_(batch)  # type: ignore[union-attr]
        self.graph.replay()  # type: ignore[union-attr]
        self.replays += 1

    def _eager(self, batch: Tensor) -> None:
        if not self.cuda:
            self._step(batch)
            return
        # CUDA's recipe: warm-up (and any eager step between replays) on a side stream.
        side = torch.cuda.Stream(device=batch.device)
        side.wait_stream(torch.cuda.current_stream(batch.device))
        with torch.cuda.stream(side):
            self._step(batch)
        torch.cuda.current_stream(batch.device).wait_stream(side)

    def _capture(self, batch: Tensor) -> None:
        self.static = batch.clone()
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients it writes
        if self.cuda:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._step(self.static)
        else:
            self.graph = _EagerGraph(functools.partial(self._step, self.static))


# ------------------------------------------------------------------------------------------------ train
def load_results(run_dir: Path) -> dict[str, Any]:
    """The ``results.json`` of a run directory; a missing, unreadable or malformed file is one
    :class:`CheckpointError` naming it."""
    path = Path(run_dir) / runs.RESULTS
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; the run cannot report its results") from None
    except (OSError, ValueError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise CheckpointError(
            f"{path} is corrupt ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    if not isinstance(results, dict) or not isinstance(results.get("history"), list):
        raise CheckpointError(f"{path} is corrupt (not the results of a supervised run)")
    return results


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
    step: str = "eager",
) -> dict[str, Any]:
    """Train ``experiment_cls`` with ``cfg`` in ``run_dir``; returns (and writes) the results.

    :param resume: continue from ``run_dir/checkpoint.pt`` (its configuration must equal ``cfg``).
    :param force: start over in a ``run_dir`` that holds a previous run.
    :param max_stages: stop (checkpointed) after this many stages of this call; ``resume`` continues.
    :param step: ``"eager"``, or ``"graph"``: each stage's training step captured once as a CUDA graph and
        replayed (:class:`GraphedStep`; on CPU the same path runs without a graph). Not part of the configuration:
        a run may resume with the other.
    """
    if step not in STEP_MODES:
        raise ValueError(f"step must be one of {', '.join(STEP_MODES)}, got {step!r}")
    if step == "graph" and set(cfg.methods) & set(UNGRAPHABLE_METHODS):
        raise ValueError(
            f"step='graph' cannot capture {', '.join(sorted(set(cfg.methods) & set(UNGRAPHABLE_METHODS)))} "
            "(host-side state and random generators between steps); use step='eager'"
        )
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415  (heavy; only when training)

    run_dir, device = Path(run_dir), torch.device(check_device(str(device)))
    replace = _check_run_dir(run_dir, resume, force)
    config = dataclasses.asdict(cfg)
    checkpoint = load_checkpoint(run_dir / runs.SUPERVISED_CHECKPOINT) if resume else None
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
    capturable = step == "graph" and device.type == "cuda"
    optimizer = make_optimizer(model, cfg, capturable=capturable)
    methods = attach_methods(
        model,
        optimizer,
        experiment.members,
        decay_mode=cfg.decay_mode,
        include=experiment.decay_include,
        method_kwargs=cfg.method_kwargs,
    )
    history: list[dict[str, Any]] = []
    start, elapsed = 0, 0.0
    if checkpoint is not None:
        try:
            model.load_state_dict(checkpoint["model"])
            optimizer.load_state_dict(checkpoint["optimizer"])
            for group in optimizer.param_groups:  # the saved groups carry the flag of the run that saved them
                group["capturable"] = capturable
            methods.load_state_dict(checkpoint["methods"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(
                f"{run_dir / 'checkpoint.pt'} does not fit this model: {str(err)[:200]}"
            ) from None
        _set_rng_state(checkpoint["rng"], device)
        start, elapsed, history = checkpoint["next_stage"], checkpoint["elapsed"], checkpoint["history"]
    # Every check passed (settings, data, device, checkpoint): only now may an old run go.
    if replace:
        runs.clear_run(run_dir)
    if not resume:
        runs.write_marker(run_dir, "supervised")

    # a finished run has nothing to train: its results must be readable before a new event file is made
    previous = load_results(run_dir) if checkpoint is not None and start >= len(experiment.stages()) else None
    members = [dataclasses.asdict(m) | {"name": m.name} for m in experiment.members]
    writer = SummaryWriter(str(run_dir / runs.TB), purge_step=start if start else None)
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    stages = experiment.stages()
    log(
        f"{experiment.name}: {len(experiment.members)} members, {len(stages)} stages, device {device}, run {run_dir}"
    )
    results: dict[str, Any] = {}
    end = len(stages) if max_stages is None else min(len(stages), start + max_stages)
    try:
        for stage in stages[start:end]:
            t0 = time.perf_counter()
            if stage.task > 0 and stage.epoch == 0:
                on_task_change(
                    methods
                )  # a new task starts (resumed runs checkpoint after the previous stage)
            model.eval()
            with torch.no_grad():
                metrics = {f"start/{k}": v for k, v in experiment.start_stage(stage).items()}
            model.train()
            total, steps = torch.zeros(len(experiment.members), device=device), 0
            if step == "graph":
                train_step: Callable[[Tensor], None] = GraphedStep(
                    experiment, optimizer, stage, autocast, total
                )
            else:
                train_step = functools.partial(eager_step, experiment, optimizer, stage, autocast, total)
            for batch in experiment.batches(stage):
                train_step(batch)
                steps += 1
            _check_finite(model, total, stage, members, run_dir)
            model.eval()
            with torch.no_grad(), torch.autocast(**autocast):
                metrics.update(experiment.evaluate(stage))
            metrics["train/loss"] = (total / max(steps, 1)).tolist()
            metrics.update(method_metrics(methods, len(experiment.members)))
            elapsed += time.perf_counter() - t0
            history.append(
                {"stage": stage.index, "task": stage.task, "epoch": stage.epoch, "metrics": metrics}
            )
            for key, values in metrics.items():
                for member, value in zip(members, values, strict=True):
                    writer.add_scalar(f"{key}/{member['name']}", value, stage.index)
            writer.flush()
            results = {
                "experiment": experiment.name,
                "preset": preset,
                "device": str(device),
                "step": step,
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
            # results first: a kill between the two leaves complete results and a checkpoint one stage behind
            _write_json(run_dir / runs.RESULTS, results)
            runs.atomic_write(run_dir / runs.SUPERVISED_CHECKPOINT, functools.partial(torch.save, state))
            log(
                f"stage {stage.index + 1}/{len(stages)} (task {stage.task}, epoch {stage.epoch}) "
                f"{time.perf_counter() - t0:.1f}s " + _headline(metrics, members)
            )
    finally:
        writer.close()
    if not results:  # resumed a finished run
        results = previous if previous is not None else load_results(run_dir)
    return results


def _check_finite(
    model: nn.Module, losses: Tensor, stage: Stage, members: list[dict[str, Any]], run_dir: Path
) -> None:
    """Stop the run (before measuring or checkpointing) if a member's loss or any weight is not finite."""
    bad = [m["name"] for m, ok in zip(members, torch.isfinite(losses).tolist(), strict=True) if not ok]
    weights = [n for n, p in model.named_parameters() if not bool(torch.isfinite(p).all())]
    if bad or weights:
        what = f"the loss of {', '.join(bad[:3])}" if bad else f"{weights[0]}"
        kept = run_dir / runs.SUPERVISED_CHECKPOINT
        where = f"the last good checkpoint is {kept}" if kept.is_file() else "no checkpoint was saved"
        raise DivergedError(f"training diverged in stage {stage.index + 1}: {what} is not finite; {where}")


def _headline(metrics: dict[str, list[float]], members: list[dict[str, Any]]) -> str:
    key = next((k for k in ("test/accuracy", "test/loss", "test/recon_loss") if k in metrics), None)
    if key is None:
        return ""
    return f"{key}: " + ", ".join(f"{m['name']}={v:.4g}" for m, v in zip(members, metrics[key], strict=True))
