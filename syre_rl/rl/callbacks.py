"""Every SB3 callback of the toolkit, one module: what watches training watches it from here.

- a run's own: the anchors summary in TensorBoard, stop on Ctrl-C, periodic atomic checkpoints with a divergence
  check, an evaluation that follows the regime of a changing task, methods told when the regime changes, and the
  regime logged to TensorBoard;
- measurements: how collapsed the networks are (:class:`PlasticityCallback`, from the activations of the
  training passes themselves), each regime's return and each regime's snapshot, and a checkpoint as each regime
  ends (the plasticity run kind, :mod:`syre_rl.rl.plasticity`, and the diagnosis).
"""

from __future__ import annotations

import math
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback, EvalCallback
from stable_baselines3.common.logger import TensorBoardOutputFormat
from torch import Tensor, nn

from syre_rl.cli import DivergedError
from syre_rl.core import peek_seed
from syre_rl.envs import regime_index
from syre_rl.methods import PlasticityMethod, ResetHead
from syre_rl.plasticity.activations import ActivationRecorder, HiddenLayer, hidden_layer_groups
from syre_rl.plasticity.metrics import (
    dead_fraction,
    distance_from_init,
    dormant_fraction,
    effective_rank,
    srank_fraction,
    weight_magnitude,
)
from syre_rl.rl.run_dir import RunDir, check_finite


class SyreSummaryCallback(BaseCallback):
    """Log the run's syre anchors once at the start of training: ``syre/<key>`` scalars and a text table.

    Keys come from :meth:`syre_rl.core.Syre.summary` (``count``, ``numel``, ``mean_std``, ``gamma``, ...);
    policies with one Syre per optimizer (SAC, TD3) log ``syre/actor/<key>`` and ``syre/critic/<key>``.
    Does nothing for policies without syre.
    """

    def _on_training_start(self) -> None:
        modules = getattr(self.model.policy, "syre_modules", {})
        rows = []
        for owner, syre in modules.items():
            prefix = f"syre/{owner}/" if owner else "syre/"
            for key, value in syre.summary().items():
                if isinstance(value, (int, float)) and key != "seed":  # a 62-bit seed is no useful scalar
                    self.logger.record(prefix + key, value)
                rows.append(f"| {owner or 'policy'} | {key} | {value} |")
        if not rows:
            return
        table = "| optimizer | key | value |\n|---|---|---|\n" + "\n".join(rows)
        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_text("syre/summary", table, self.num_timesteps)
        self.logger.dump(self.num_timesteps)

    def _on_step(self) -> bool:
        return True


class TaskChangeCallback(BaseCallback):
    """Call ``on_task_change()`` of every plasticity method in the policy when the first env's regime changes
    (``info["regime"]["index"]``): Shrink & Perturb's boundary form and the resets act there. The first regime seen
    (at the start, or after a resume) is no change. Envs without a regime (stationary tasks) never trigger it.

    :param change_reset: glob patterns of policy parameters reset at every change whatever the method (a
        benchmark's :attr:`~syre_rl.rl.config.AgentPreset.change_reset`), by a
        :class:`~syre_rl.methods.ResetHead` kept outside the policy, so saved models are those of the method
    """

    def __init__(self, change_reset: Sequence[str] = ()) -> None:
        super().__init__()
        self.regime: int | None = None
        self.changes = 0
        self.change_reset = tuple(change_reset)
        self.resetter: ResetHead | None = None

    def _init_callback(self) -> None:
        if self.change_reset and self.resetter is None:
            policy = self.model.policy
            self.resetter = ResetHead(policy, targets=self.change_reset, seed=peek_seed())
            self.resetter.attach(policy.optimizer)

    def _on_step(self) -> bool:
        index = regime_index(self.locals["infos"][0])
        if index is None:
            return True
        if self.regime is not None and index != self.regime:
            for module in self.model.policy.modules():
                if isinstance(module, PlasticityMethod):
                    module.on_task_change()
            if self.resetter is not None:
                self.resetter.reset()
            self.changes += 1
        self.regime = index
        return True


class StopOnSignalCallback(BaseCallback):
    """Turn SIGINT (Ctrl-C) and SIGTERM into a request to stop; :class:`RunCheckpointCallback` honours it after
    the current update, with a checkpoint.

    A second signal gets the default behaviour (immediate exit), and checkpoints are atomic, so that is safe.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        super().__init__()
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)

    def _on_training_start(self) -> None:
        self._previous = {sig: signal.signal(sig, self._handle) for sig in self.SIGNALS}

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class RunCheckpointCallback(BaseCallback):
    """Between updates: stop on divergence, checkpoint every ``every`` steps, and stop cleanly on a signal.

    All of it happens at the start of a rollout, that is after the update of the previous one, so a checkpoint
    holds every update made up to its step and a resumed run makes the same updates as an uninterrupted one.
    Counting on ``num_timesteps`` (not on calls) keeps the schedule across resumes and numbers of envs.

    :param run_dir: where checkpoints go
    :param every: environment steps between checkpoints
    :param on_checkpoint: called with ``(step, checkpoint)`` after each periodic checkpoint (the run restarts
        its environments there, exactly as a resume from that checkpoint would)
    :param stop: the run's signal catcher; when it has caught one, the callback saves a checkpoint and stops
    """

    def __init__(
        self,
        run_dir: RunDir,
        every: int,
        on_checkpoint: Callable[[int, Path], None] | None = None,
        stop: StopOnSignalCallback | None = None,
    ) -> None:
        super().__init__()
        self.run_dir, self.every, self.on_checkpoint, self.stop = run_dir, every, on_checkpoint, stop
        self.stopped_at: Path | None = None
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        check_finite(self.model)
        loss = self.logger.name_to_value.get("train/loss")
        if loss is not None and not math.isfinite(loss):
            raise DivergedError(f"training diverged at step {self.num_timesteps:,}: the loss is {loss}")
        step, saved = self.num_timesteps, None
        if step // self.every > self._last // self.every:
            saved = self.run_dir.save_checkpoint(self.model)
            self._last = step
            if self.on_checkpoint is not None and not self._stopping():
                self.on_checkpoint(step, saved)
        if self._stopping():
            self.stopped_at = saved or self.run_dir.save_checkpoint(self.model)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.received is not None

    def _on_step(self) -> bool:
        return self.stopped_at is None


class RegimeSyncedEvalCallback(EvalCallback):
    """SB3's ``EvalCallback`` whose evaluation env is moved to the training run's step before each evaluation.

    An evaluation env of a changing task counts only its own steps, so without this it would stay in the first
    regime; tasks of :mod:`syre_rl.envs` offer ``set_run_step`` for this. Plain gymnasium envs are evaluated as is.
    """

    def _on_step(self) -> bool:
        if self.eval_freq > 0 and self.n_calls % self.eval_freq == 0 and self._follows_regimes():
            self.eval_env.env_method("set_run_step", self.num_timesteps)
        return super()._on_step()

    def _follows_regimes(self) -> bool:
        try:
            self.eval_env.get_attr("set_run_step", indices=[0])
        except AttributeError:
            return False
        return True


class RegimeLoggerCallback(BaseCallback):
    """Record ``env/regime_index`` and ``env/<quantity>`` (e.g. ``env/friction``) of the first env every step.

    The logger keeps the last value until it dumps, so each TensorBoard point shows the regime at that time.
    Envs without a regime in ``info`` (stationary tasks) log nothing.
    """

    def _on_step(self) -> bool:
        regime = self.locals["infos"][0].get("regime")
        if regime:
            for key, value in regime.items():
                self.logger.record("env/regime_index" if key == "index" else f"env/{key}", value)
        return True


# ------------------------------------------------------------------------------------ measurements
def feature_metrics(features: Tensor, tau: float = 0.1) -> dict[str, float]:
    """The collapse measures of one hidden layer's activations ``[rows, units]``."""
    return {
        "dead_fraction": dead_fraction(features),
        "dormant_fraction": dormant_fraction(features, tau),
        "srank_fraction": srank_fraction(features),
        "effective_rank": effective_rank(features),
    }


class PlasticityCallback(BaseCallback):
    """Record ``plasticity/<group>/...`` scalars for the policy's networks every ``every_n_steps`` steps.

    Groups are those of :func:`~syre_rl.plasticity.activations.hidden_layer_groups`: ``actor`` and ``critic``
    for SB3 actor-critic policies (``shared`` too when a shared features extractor has Linear layers). Keys:

    - ``<group>/{dead_fraction,dormant_fraction,srank_fraction,effective_rank}``: the last hidden layer (the
      network's features); ``<group>/layer<i>/...``: each hidden layer. Stable rank is a fraction of the width,
      effective rank a number of dimensions.
    - ``<group>/weight_magnitude/<layer>`` and ``<group>/distance_from_init/<layer>``: ``layer<i>`` is hidden
      layer ``i``'s in-layer, ``head`` the output layer; distance is from the weights at the start of training.
    - ``<group>/grad_norm``: root mean square over the recorded updates of the loss gradient's norm over the
      group's Linear layers (before clipping and before any weight decay).
    - ``actor/entropy``: mean entropy of the action distribution on the recorded states.

    :param every_n_steps: environment steps between measurements.
    :param max_rows: rows of recent training activations measured (about that many training samples).
    :param tau: dormancy threshold.
    """

    def __init__(self, every_n_steps: int = 10_000, max_rows: int = 2048, tau: float = 0.1, verbose: int = 0):
        super().__init__(verbose)
        if not isinstance(every_n_steps, int) or every_n_steps < 1:
            raise ValueError(f"every_n_steps must be a positive integer, got {every_n_steps!r}")
        self.every_n_steps, self.max_rows, self.tau = every_n_steps, max_rows, tau
        self.groups: dict[str, list[HiddenLayer]] = {}
        self.recorder: ActivationRecorder | None = None
        self._weights: dict[str, dict[str, nn.Linear]] = {}
        self._initial: dict[int, Tensor] = {}
        self._grad_hooks: list[Any] = []
        self._grad_sq: dict[str, Tensor] = {}
        self._backward_passes: dict[str, int] = {}
        self._next = 0

    def _init_callback(self) -> None:
        self.groups = hidden_layer_groups(self.model.policy)
        layers = [layer for group in self.groups.values() for layer in group]
        self.recorder = ActivationRecorder({layer.name: layer.activation for layer in layers}, self.max_rows)
        in_layers = {id(layer.in_layer) for layer in layers}
        for group, hidden in self.groups.items():
            named = {f"layer{i}": layer.in_layer for i, layer in enumerate(hidden)}
            heads = [out for out in hidden[-1].out_layers if id(out) not in in_layers]
            named.update({"head" if len(heads) == 1 else f"head{j}": out for j, out in enumerate(heads)})
            self._weights[group] = named
        self._initial = {
            id(m): m.weight.detach().clone() for named in self._weights.values() for m in named.values()
        }

    def _on_training_start(self) -> None:
        self._next = self.num_timesteps

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if self.num_timesteps >= self._next:
            self._next = (self.num_timesteps // self.every_n_steps + 1) * self.every_n_steps
            self._start()

    def _on_rollout_start(self) -> None:
        if self.recorder is not None and self.recorder.recording:
            self._record()

    def _on_training_end(self) -> None:
        if self.recorder is not None and self.recorder.recording:
            self._record()
            self.logger.dump(self.num_timesteps)

    # ------------------------------------------------------------------------------------------ hooks
    def _start(self) -> None:
        assert self.recorder is not None
        self.recorder.clear()
        self.recorder.start()
        for group, named in self._weights.items():
            params = [p for m in named.values() for p in m.parameters() if p.requires_grad]
            self._grad_sq[group] = torch.zeros((), device=params[0].device)
            self._backward_passes[group] = 0
            self._grad_hooks += [p.register_post_accumulate_grad_hook(self._grad_hook(group)) for p in params]
            self._grad_hooks.append(params[0].register_post_accumulate_grad_hook(self._count_hook(group)))

    def _grad_hook(self, group: str) -> Any:
        def hook(param: Tensor) -> None:
            self._grad_sq[group] += param.grad.detach().square().sum()

        return hook

    def _count_hook(self, group: str) -> Any:
        def hook(param: Tensor) -> None:
            self._backward_passes[group] += 1

        return hook

    def _stop(self) -> None:
        assert self.recorder is not None
        self.recorder.stop()
        for handle in self._grad_hooks:
            handle.remove()
        self._grad_hooks = []

    # ---------------------------------------------------------------------------------- measurements
    @torch.no_grad()
    def measure(self) -> dict[str, float]:
        """The ``plasticity/...`` values of the activations and gradients recorded since the hooks were armed."""
        assert self.recorder is not None
        values: dict[str, float] = {}
        for group, hidden in self.groups.items():
            prefix = f"plasticity/{group}"
            for i, layer in enumerate(hidden):
                features = self.recorder.rows(layer.name)
                if features is None:
                    continue
                for key, value in feature_metrics(features, self.tau).items():
                    values[f"{prefix}/layer{i}/{key}"] = value
                    if i == len(hidden) - 1:
                        values[f"{prefix}/{key}"] = value
            for name, module in self._weights[group].items():
                values[f"{prefix}/weight_magnitude/{name}"] = weight_magnitude(module)[""]
                initial = {"weight": self._initial[id(module)]}
                values[f"{prefix}/distance_from_init/{name}"] = distance_from_init(module, initial)[""]
            if self._backward_passes.get(group):
                values[f"{prefix}/grad_norm"] = math.sqrt(
                    float(self._grad_sq[group]) / self._backward_passes[group]
                )
        entropy = self._entropy()
        if entropy is not None:
            values["plasticity/actor/entropy"] = entropy
        return values

    def _entropy(self) -> float | None:
        """Entropy of the action distribution on the recorded actor features (the policy's latent)."""
        policy = self.model.policy
        actor = self.groups.get("actor")
        if not actor or not hasattr(policy, "_get_action_dist_from_latent"):
            return None
        assert self.recorder is not None
        latent = self.recorder.rows(actor[-1].name)
        if latent is None:
            return None
        entropy = policy._get_action_dist_from_latent(latent).entropy()
        return float(entropy.mean()) if entropy is not None else None

    def _record(self) -> None:
        self._stop()
        for key, value in self.measure().items():
            headline = key.count("/") == 2
            self.logger.record(key, value, exclude=None if headline else ("stdout",))
        assert self.recorder is not None
        self.recorder.clear()


# ---------------------------------------------------------------------------------------- regimes
def regime_return(episodes: list[tuple[int, int, float]], k: int, change_every: int, tail: float) -> float:
    """Mean return of the episodes ``(run step at its end, regime, return)`` of regime ``k`` that end in the last
    ``tail`` of its steps; NaN when there are none."""
    lo, hi = (k + 1 - tail) * change_every, (k + 1) * change_every
    returns = [r for step, regime, r in episodes if regime == k and lo < step <= hi]
    return float(np.mean(returns)) if returns else float("nan")


class EpisodeReturnsCallback(BaseCallback):
    """Every finished episode of a task as ``(run step at its end, regime, return)`` in ``rows``, run steps
    counted from ``offset`` (a fresh agent's env starts mid-run; the diagnosis counts from 0).

    :param offset: the run step the model's first step counts as
    """

    def __init__(self, offset: int = 0) -> None:
        super().__init__()
        self.offset = offset
        self.rows: list[tuple[int, int, float]] = []

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            k = regime_index(info)
            if "episode" in info and k is not None:
                step = self.offset + self.num_timesteps
                self.rows.append((step, k, float(info["episode"]["r"])))
        return True


class RegimeReturnCallback(EpisodeReturnsCallback):
    """Collect every finished episode's return with its regime (``rows``); log ``plasticity/regime_return`` (and
    ``plasticity/return_vs_fresh`` where a fresh agent's regime return is known) once each regime ends.

    :param change_every: run steps per regime (the task's ``change_every``)
    :param tail: fraction of a regime's steps whose episodes count toward its regime return
    :param fresh: regime -> a fresh agent's regime return, for the plasticity figure
    """

    def __init__(self, change_every: int, tail: float = 0.25, fresh: dict[int, float] | None = None) -> None:
        super().__init__(offset=0)
        if change_every < 1 or not 0 < tail <= 1:
            raise ValueError(f"need change_every >= 1 and 0 < tail <= 1, got {change_every}, {tail}")
        self.change_every, self.tail = change_every, tail
        self.fresh = dict(fresh or {})
        self.returns: dict[int, float] = {}

    def _on_step(self) -> bool:
        super()._on_step()
        done = self.num_timesteps // self.change_every  # regimes 0 .. done-1 are over
        for k in range(len(self.returns), done):
            self._close(k)
        return True

    def _close(self, k: int) -> None:
        value = regime_return(self.rows, k, self.change_every, self.tail)
        self.returns[k] = value
        self.logger.record("plasticity/regime_return", value)
        self.logger.record("plasticity/regime", k)
        if k in self.fresh:
            self.logger.record("plasticity/return_vs_fresh", value - self.fresh[k])

    def figure(self) -> dict[int, float]:
        """Regime -> continuing minus fresh regime return, for the regimes with a fresh reference."""
        return {k: v - self.fresh[k] for k, v in self.returns.items() if k in self.fresh}


class RegimeSnapshotCallback(PlasticityCallback):
    """:class:`~syre_rl.plasticity.callback.PlasticityCallback` measured once per regime (at its end), keeping
    the values in ``snapshots`` (regime -> ``plasticity/...`` values) besides logging them."""

    def __init__(self, change_every: int, max_rows: int = 2048) -> None:
        super().__init__(every_n_steps=change_every, max_rows=max_rows)
        self.snapshots: dict[int, dict[str, float]] = {}

    def measure(self) -> dict[str, float]:
        values = super().measure()
        # Armed at the first rollout end at or past a multiple of change_every: the network as regime k-1 left it.
        k = round(self.num_timesteps / self.every_n_steps) - 1
        if k >= 0:
            self.snapshots[k] = values
        return values


class RegimeCheckpointCallback(BaseCallback):
    """Save the agent as each regime leaves it: at the first rollout start at or past every multiple of
    ``change_every`` (before any update on the new regime) and at the end of training, as
    ``checkpoints/step_<n>`` of ``run_dir``.

    :param change_every: run steps per regime
    :param run_dir: the run's directory (its atomic checkpoint writer)
    """

    def __init__(self, change_every: int, run_dir: RunDir) -> None:
        super().__init__()
        self.change_every, self.run_dir = change_every, run_dir
        self.saved: list[Path] = []

    def _on_rollout_start(self) -> None:
        if self.num_timesteps // self.change_every > len(self.saved):
            folder = self.run_dir.checkpoint_dir / f"step_{self.num_timesteps:012d}"
            self.saved.append(self.run_dir.save_checkpoint(self.model, folder))

    def _on_training_end(self) -> None:
        self._on_rollout_start()  # the last regime's end

    def _on_step(self) -> bool:
        return True
