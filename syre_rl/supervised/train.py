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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from syre_rl import runs
from syre_rl.cli import (
    CheckpointError,
    CheckpointWriteError,
    DivergedError,
    UsageError,
    check_device,
    check_writable,
)
from syre_rl.core import first_non_finite
from syre_rl.supervised.config import Experiment, Stage, SupervisedPreset
from syre_rl.supervised.methods import attach_methods, method_metrics, on_task_change
from syre_rl.supervised.step import STEP_MODES, UNGRAPHABLE_METHODS, GraphedStep, eager_step, make_optimizer

__all__ = ["RunDirError", "load_results", "read_checkpoint", "train"]

CHECKPOINT_FORMAT = "syre_rl.supervised/3"  # 3: every method's state as tensors
OLD_FORMATS = ("syre_rl.supervised/2",)  # methods kept non-tensor extra state: loads where no method had any


class RunDirError(UsageError):
    """The run directory cannot be used as asked (nothing to resume)."""


# ---------------------------------------------------------------------------------------------- run dir
def _check_run_dir(run_dir: Path, resume: bool, force: bool) -> bool:
    """Whether an old run must be cleared before this one starts; raises before anything changes."""
    check_writable(run_dir, "run directory")
    if resume:
        if not (run_dir / runs.SUPERVISED_CHECKPOINT).is_file():
            raise RunDirError(f"nothing to resume: no {runs.SUPERVISED_CHECKPOINT} in {run_dir}")
        return False
    return runs.prepare_new_run(run_dir, "supervised", force)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`; any damage is one :class:`CheckpointError`."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (torch raises many kinds for a damaged file)
        raise CheckpointError(f"corrupt checkpoint {path}: {type(err).__name__}: {str(err)[:200]}") from None
    if not isinstance(state, dict) or state.get("format") not in (CHECKPOINT_FORMAT, *OLD_FORMATS):
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

# ------------------------------------------------------------------------------------------------ train
@dataclass
class _Run:
    """A supervised run built and checked, before anything is written: the experiment on its device, the
    optimizer and the members' methods, restored from the checkpoint when resuming."""

    experiment: Experiment
    optimizer: torch.optim.Optimizer
    methods: nn.ModuleDict
    device: torch.device
    config: dict[str, Any]
    start: int = 0
    elapsed: float = 0.0
    history: list[dict[str, Any]] = dataclasses.field(default_factory=list)


def _build(
    experiment_cls: type[Experiment],
    cfg: SupervisedPreset,
    device: torch.device,
    data_dir: str | Path | None,
    download: bool,
    capturable: bool,
) -> _Run:
    torch.manual_seed(cfg.seed)
    experiment = experiment_cls(cfg, device, Path(data_dir) if data_dir is not None else None, download)
    model = experiment.model.to(device)
    optimizer = make_optimizer(model, cfg, capturable=capturable)
    try:  # a method that does not fit the model (CBP or ReDo on a network without stacked hidden layers, ...)
        methods = attach_methods(model, optimizer, experiment.members, decay_mode=cfg.decay_mode,
                                 include=experiment.decay_include, method_kwargs=cfg.method_kwargs)  # fmt: skip
    except (ValueError, TypeError) as err:
        raise UsageError(f"cannot attach the methods: {' '.join(str(err).split())[:300]}") from None
    return _Run(experiment, optimizer, methods, device, dataclasses.asdict(cfg))


def _restore(run: _Run, checkpoint: dict[str, Any], path: Path, capturable: bool) -> None:
    """Continue ``run`` from ``checkpoint`` (its configuration checked by the caller)."""
    try:
        run.experiment.model.load_state_dict(checkpoint["model"])
        run.optimizer.load_state_dict(checkpoint["optimizer"])
        for group in run.optimizer.param_groups:  # the saved groups carry the flag of the run that saved them
            group["capturable"] = capturable
        run.methods.load_state_dict(checkpoint["methods"])
    except (KeyError, RuntimeError, ValueError) as err:
        if checkpoint.get("format") in OLD_FORMATS:
            raise CheckpointError(
                f"{path} was written by an older version whose method state (S&P, CBP, ReDo) this one cannot "
                "read; start the run again with --force"
            ) from None
        raise CheckpointError(f"{path} does not fit this model: {' '.join(str(err).split())[:300]}") from None
    _set_rng_state(checkpoint["rng"], run.device)
    run.start, run.elapsed, run.history = checkpoint["next_stage"], checkpoint["elapsed"], checkpoint["history"]


def _train_stage(run: _Run, stage: Stage, step: str, autocast: dict[str, Any], members: list[dict[str, Any]],
                 run_dir: Path) -> dict[str, list[float]]:  # fmt: skip
    """Train one stage and measure it; the stage's metrics, one value per member."""
    experiment, model = run.experiment, run.experiment.model
    if stage.task > 0 and stage.epoch == 0:
        on_task_change(run.methods)  # a new task starts (resumed runs checkpoint after the previous stage)
    model.eval()
    with torch.no_grad():
        metrics = {f"start/{k}": v for k, v in experiment.start_stage(stage).items()}
    model.train()
    total, steps = torch.zeros(len(experiment.members), device=run.device), 0
    if step == "graph":
        train_step: Callable[[Tensor], None] = GraphedStep(experiment, run.optimizer, stage, autocast, total)
    else:
        train_step = functools.partial(eager_step, experiment, run.optimizer, stage, autocast, total)
    for batch in experiment.batches(stage):
        train_step(batch)
        steps += 1
    _check_finite(model, total, stage, members, run_dir)
    model.eval()
    with torch.no_grad(), torch.autocast(**autocast):
        metrics.update(experiment.evaluate(stage))
    metrics["train/loss"] = (total / max(steps, 1)).tolist()
    metrics.update(method_metrics(run.methods, len(experiment.members)))
    return metrics


def _save(run: _Run, run_dir: Path, results: dict[str, Any], next_stage: int) -> None:
    """results.json, then the checkpoint: a kill between the two leaves complete results and a checkpoint one
    stage behind."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "experiment": run.experiment.name,
        "config": run.config,
        "next_stage": next_stage,
        "elapsed": run.elapsed,
        "history": run.history,
        "model": run.experiment.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "methods": run.methods.state_dict(),
        "rng": _rng_state(run.device),
    }
    path = run_dir / runs.SUPERVISED_CHECKPOINT
    try:
        runs.write_json(run_dir / runs.RESULTS, results)
        runs.atomic_write(path, functools.partial(torch.save, state))
    except (OSError, RuntimeError) as err:  # torch.save reports a full disk or a size limit as RuntimeError
        kept = f"the last good checkpoint is {path}" if path.is_file() else "no checkpoint was saved"
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        raise CheckpointWriteError(f"cannot write the checkpoint after stage {next_stage}: {reason}; {kept}") from None


def _modified(path: Path) -> int | None:
    """When ``path`` was last written (nanoseconds), None if it is not there."""
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return None


def _check_step(step: str, cfg: SupervisedPreset) -> None:
    if step not in STEP_MODES:
        raise UsageError(f"step must be one of {', '.join(STEP_MODES)}, got {step!r}")
    if step == "graph" and set(cfg.methods) & set(UNGRAPHABLE_METHODS):
        raise UsageError(
            f"step='graph' cannot capture {', '.join(sorted(set(cfg.methods) & set(UNGRAPHABLE_METHODS)))} "
            "(host-side state and random generators between steps); use step='eager'"
        )


def _checkpoint_of(experiment_cls: type[Experiment], cfg: SupervisedPreset, run_dir: Path) -> dict[str, Any]:
    """The run's checkpoint, which must have been written by this experiment with this configuration."""
    path = run_dir / runs.SUPERVISED_CHECKPOINT
    checkpoint = read_checkpoint(path)
    if (checkpoint["experiment"], checkpoint["config"]) != (experiment_cls.name, dataclasses.asdict(cfg)):
        changed = [k for k in dataclasses.asdict(cfg) if checkpoint["config"].get(k) != getattr(cfg, k)]
        what = f"{changed[0]} differs" if changed else f"it is a {checkpoint['experiment']} run"
        raise CheckpointError(
            f"{path} was written by another configuration ({what}); resume with the same experiment, preset "
            "and options"
        )
    return checkpoint


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
    :param force: start over in a ``run_dir`` that holds a previous run (only one this toolkit wrote).
    :param max_stages: stop (checkpointed) after this many stages of this call; ``resume`` continues.
    :param step: ``"eager"``, or ``"graph"``: each stage's training step captured once as a CUDA graph and
        replayed (:class:`~syre_rl.supervised.step.GraphedStep`; on CPU the same path runs without a graph).
        Not part of the configuration: a run may resume with the other.
    """
    _check_step(step, cfg)
    from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415  (heavy; only when training)

    run_dir, device = Path(run_dir), torch.device(check_device(str(device)))
    _check_run_dir(run_dir, resume, force)
    saved_at = _modified(run_dir / runs.SUPERVISED_CHECKPOINT) if resume else None
    checkpoint = _checkpoint_of(experiment_cls, cfg, run_dir) if resume else None
    capturable = step == "graph" and device.type == "cuda"
    run = _build(experiment_cls, cfg, device, data_dir, download, capturable)
    if checkpoint is not None:
        _restore(run, checkpoint, run_dir / runs.SUPERVISED_CHECKPOINT, capturable)
    experiment = run.experiment
    members = [dataclasses.asdict(m) | {"name": m.name} for m in experiment.members]
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda")
    stages = experiment.stages()
    end = len(stages) if max_stages is None else min(len(stages), run.start + max_stages)
    # a resumed finished run reports its results: read (and checked) before anything is written
    previous = load_results(run_dir) if checkpoint is not None and run.start >= len(stages) else None
    # Every check passed (settings, data, device, checkpoint): only now is the directory claimed (and an old
    # run deleted).
    with runs.claim_run(run_dir, "supervised", resume=resume, force=force):
        if resume and _modified(run_dir / runs.SUPERVISED_CHECKPOINT) != saved_at:
            raise UsageError(f"{run_dir} changed while this resume started (another process wrote it); try again")
        writer = SummaryWriter(str(run_dir / runs.TB), purge_step=run.start if run.start else None)
        log(f"{experiment.name}: {len(experiment.members)} members, {len(stages)} stages, device {device}, "
            f"run {run_dir}")  # fmt: skip
        results: dict[str, Any] = {}
        try:
            for stage in stages[run.start : end]:
                t0 = time.perf_counter()
                metrics = _train_stage(run, stage, step, autocast, members, run_dir)
                run.elapsed += time.perf_counter() - t0
                run.history.append({"stage": stage.index, "task": stage.task, "epoch": stage.epoch, "metrics": metrics})
                for key, values in metrics.items():
                    for member, value in zip(members, values, strict=True):
                        writer.add_scalar(f"{key}/{member['name']}", value, stage.index)
                writer.flush()
                results = {"experiment": experiment.name, "preset": preset, "device": str(device), "step": step,
                           "config": run.config, "members": members, "stages_done": stage.index + 1,
                           "stages": len(stages), "train_seconds": run.elapsed, "history": run.history}  # fmt: skip
                _save(run, run_dir, results, stage.index + 1)
                log(f"stage {stage.index + 1}/{len(stages)} (task {stage.task}, epoch {stage.epoch}) "
                    f"{time.perf_counter() - t0:.1f}s " + _headline(metrics, members))  # fmt: skip
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
    weight = first_non_finite(model.named_parameters())
    if bad or weight:
        what = f"the loss of {', '.join(bad[:3])}" if bad else f"{weight}"
        kept = run_dir / runs.SUPERVISED_CHECKPOINT
        where = f"the last good checkpoint is {kept}" if kept.is_file() else "no checkpoint was saved"
        raise DivergedError(f"training diverged in stage {stage.index + 1}: {what} is not finite; {where}")


def _headline(metrics: dict[str, list[float]], members: list[dict[str, Any]]) -> str:
    key = next((k for k in ("test/accuracy", "test/loss", "test/recon_loss") if k in metrics), None)
    if key is None:
        return ""
    return f"{key}: " + ", ".join(f"{m['name']}={v:.4g}" for m, v in zip(members, metrics[key], strict=True))
