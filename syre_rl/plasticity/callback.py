"""Log how collapsed an SB3 policy's networks are, from the activations of its own training passes.

Every ``every_n_steps`` environment steps, the callback arms forward hooks at the end of a rollout, so they keep
the last ``max_rows`` rows of each hidden layer's activations seen in the training update that follows, and
gradient hooks that sum the squared loss gradients. At the start of the next rollout (or at the end of training)
it measures them with the shared definitions of :mod:`syre_rl.plasticity.metrics`, records ``plasticity/...``
scalars and removes the hooks. No forward pass is added; between measurements nothing is hooked.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from stable_baselines3.common.callbacks import BaseCallback
from torch import Tensor, nn

from syre_rl.plasticity.activations import ActivationRecorder, HiddenLayer, hidden_layer_groups
from syre_rl.plasticity.metrics import (
    dead_fraction,
    distance_from_init,
    dormant_fraction,
    effective_rank,
    srank_fraction,
    weight_magnitude,
)

__all__ = ["PlasticityCallback", "feature_metrics"]


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
