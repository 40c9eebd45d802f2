"""Methods that give chosen hidden units a fresh start: ReDo (dormant units) and CBP (low-utility units).

Both read the activations of the model's own training forward pass (forward hooks, see
:class:`~syre_rl.plasticity.activations.ActivationRecorder`) and act in an optimizer step post-hook, so a training
loop that only calls ``optimizer.step()`` runs them unchanged. A reset unit gets new in-weights drawn at the scale
of its layer's initialisation, a zero bias and zero out-weights (so the network's output does not jump), and the
optimizer's per-element state (Adam's moments) of those entries is cleared.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from syre_rl.baselines.base import SeededMethod
from syre_rl.baselines.regularizers import L2
from syre_rl.plasticity.activations import ActivationRecorder, HiddenLayer, hidden_layers
from syre_rl.plasticity.metrics import dormant_mask

__all__ = ["CBP", "ReDo", "reset_units"]


@torch.no_grad()
def reset_units(
    layer: HiddenLayer,
    units: Tensor,
    optimizer: torch.optim.Optimizer | None,
    init_std: float,
    generator: torch.Generator,
) -> None:
    """Re-initialise ``units`` (indices) of ``layer``: in-weights ``N(0, init_std^2)``, bias 0, out-weights 0.

    Every optimizer state tensor shaped like a touched parameter (Adam's ``exp_avg``/``exp_avg_sq``, SGD's
    momentum) is zeroed at the touched entries, so stale moments do not push the fresh weights.
    """
    weight = layer.in_layer.weight
    fresh = torch.randn(
        (units.numel(), weight.shape[1]), generator=generator, device=weight.device, dtype=weight.dtype
    )
    weight.index_copy_(0, units, fresh.mul_(init_std))
    touched = [(weight, 0)]
    if layer.in_layer.bias is not None:
        layer.in_layer.bias.index_fill_(0, units, 0.0)
        touched.append((layer.in_layer.bias, 0))
    for out in layer.out_layers:
        out.weight.index_fill_(1, units, 0.0)
        touched.append((out.weight, 1))
    if optimizer is None:
        return
    for param, dim in touched:
        for value in optimizer.state.get(param, {}).values():
            if isinstance(value, Tensor) and value.shape == param.shape:
                value.index_fill_(dim, units, 0.0)


class _UnitResetMethod(SeededMethod):
    """Shared by ReDo and CBP: the hidden layers, their activation recorder, init scales, optional L2."""

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[HiddenLayer] | None,
        weight_decay: float,
        seed: int | None,
        exclude: str | Iterable[str] | None = None,
    ) -> None:
        if not weight_decay >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        super().__init__(seed)
        self.layers = list(layers) if layers is not None else hidden_layers(model)
        if not self.layers:
            raise ValueError("no hidden layers to act on")
        # The latest training forward pass only: what the optimizer step that follows was computed from.
        self.recorder = ActivationRecorder(
            {layer.name: layer.activation for layer in self.layers}, max_rows=None
        )
        stds = [float(layer.in_layer.weight.detach().float().std()) for layer in self.layers]
        self.register_buffer("init_std", torch.tensor(stds, dtype=torch.float64))
        self.l2 = L2(model, weight_decay=weight_decay, exclude=exclude) if weight_decay > 0 else None

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        if self.l2 is not None:
            self.l2.attach(optimizer)
        self.recorder.start()
        self._handles.append(optimizer.register_step_post_hook(self._post_step))

    def _detach(self) -> None:
        self.recorder.stop()
        self.recorder.clear()
        if self.l2 is not None:
            self.l2.detach()

    def _reset(self, i: int, units: Tensor, optimizer: torch.optim.Optimizer) -> None:
        layer = self.layers[i]
        generator = self.generator(layer.in_layer.weight.device)
        reset_units(layer, units, optimizer, float(self.init_std[i]), generator)

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        raise NotImplementedError


class ReDo(_UnitResetMethod):
    """ReDo (Sokar et al. 2023): every ``every`` updates, reset the units that are dormant on the latest batch.

    Dormant is the shared definition :func:`~syre_rl.plasticity.metrics.dormant_mask` (mean ``|a|`` over the
    batch / layer mean ``<= tau``), on the activations of the training forward pass just before the step.

    :param model: the model; its hidden layers are found by :func:`~syre_rl.plasticity.activations.hidden_layers`.
    :param layers: the hidden layers to act on, when they cannot be found automatically.
    :param tau: dormancy threshold (0.1 in RL).
    :param every: optimizer steps between checks.
    :param weight_decay: coupled L2 added alongside (the reference setting 1e-4; 0 for none).
    :param seed: seed of the re-initialisation.
    :param exclude: glob patterns of parameter names the L2 leaves alone.
    """

    name = "redo"

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: Sequence[HiddenLayer] | None = None,
        tau: float = 0.1,
        every: int = 100,
        weight_decay: float = 1e-4,
        seed: int | None = None,
        exclude: str | Iterable[str] | None = None,
    ) -> None:
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau!r}")
        if not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        super().__init__(model, layers, weight_decay, seed, exclude)
        self.tau, self.every = float(tau), every
        self.updates = 0
        self.resets = [0] * len(self.layers)

    @torch.no_grad()
    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.updates += 1
        if self.updates % self.every:
            return
        for i, layer in enumerate(self.layers):
            activations = self.recorder.latest(layer.name)
            if activations is None:
                continue
            units = dormant_mask(activations, self.tau).nonzero().squeeze(1)
            if units.numel():
                self._reset(i, units.to(layer.in_layer.weight.device), optimizer)
                self.resets[i] += units.numel()

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "updates": self.updates, "resets": list(self.resets)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.updates, self.resets = state["updates"], list(state["resets"])


class CBP(_UnitResetMethod):
    """Continual backprop (Dohare et al. 2024): replace mature units of low contribution utility.

    After each step, per hidden layer: ``utility = decay * utility + (1 - decay) * mean|h| * sum|w_out|``
    and every unit ages by one. Units older than ``maturity_threshold`` are eligible; ``replacement_rate`` times
    their number accumulates each step, and each whole unit of it replaces the eligible unit of lowest utility
    (utility and age restart at 0). Utilities are not bias-corrected: only mature units are compared, for which
    ``1 - decay^age`` is 1.

    :param model: the model; its hidden layers are found by :func:`~syre_rl.plasticity.activations.hidden_layers`.
    :param layers: the hidden layers to act on, when they cannot be found automatically.
    :param replacement_rate: units replaced per eligible unit per step.
    :param maturity_threshold: steps a unit is protected after it is (re)initialised.
    :param decay: utility's running-average decay.
    :param weight_decay: coupled L2 added alongside (the reference setting 1e-4; 0 for none).
    :param seed: seed of the re-initialisation.
    :param exclude: glob patterns of parameter names the L2 leaves alone.
    """

    name = "cbp"

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: Sequence[HiddenLayer] | None = None,
        replacement_rate: float = 1e-4,
        maturity_threshold: int = 10_000,
        decay: float = 0.99,
        weight_decay: float = 1e-4,
        seed: int | None = None,
        exclude: str | Iterable[str] | None = None,
    ) -> None:
        if not 0.0 <= replacement_rate <= 1.0:
            raise ValueError(f"replacement_rate must be in [0, 1], got {replacement_rate!r}")
        if not isinstance(maturity_threshold, int) or maturity_threshold < 0:
            raise ValueError(f"maturity_threshold must be a non-negative integer, got {maturity_threshold!r}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        super().__init__(model, layers, weight_decay, seed, exclude)
        self.replacement_rate, self.maturity_threshold, self.decay = (
            float(replacement_rate),
            maturity_threshold,
            decay,
        )
        for i, layer in enumerate(self.layers):
            device = layer.in_layer.weight.device
            self.register_buffer(f"utility_{i}", torch.zeros(layer.width, device=device))
            self.register_buffer(f"age_{i}", torch.zeros(layer.width, dtype=torch.long, device=device))
        self.pending = [0.0] * len(self.layers)  # fractional replacements carried to the next step
        self.replaced = [0] * len(self.layers)

    def utility(self, i: int) -> Tensor:
        return getattr(self, f"utility_{i}")

    def age(self, i: int) -> Tensor:
        return getattr(self, f"age_{i}")

    @torch.no_grad()
    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for i, layer in enumerate(self.layers):
            features = self.recorder.latest(layer.name)
            if features is None:
                continue
            utility, age = self.utility(i), self.age(i)
            contribution = features.abs().mean(0)
            if layer.out_layers:
                contribution = contribution * sum(out.weight.abs().sum(0) for out in layer.out_layers)
            utility.mul_(self.decay).add_(contribution, alpha=1.0 - self.decay)
            age.add_(1)
            eligible = age > self.maturity_threshold
            n_eligible = int(eligible.sum())
            self.pending[i] += n_eligible * self.replacement_rate
            n_replace = min(int(self.pending[i]), n_eligible)
            if n_replace == 0:
                continue
            self.pending[i] -= n_replace
            units = utility.masked_fill(~eligible, float("inf")).topk(n_replace, largest=False).indices
            self._reset(i, units, optimizer)
            utility.index_fill_(0, units, 0.0)
            age.index_fill_(0, units, 0)
            self.replaced[i] += n_replace

    def get_extra_state(self) -> dict[str, Any]:
        return {**super().get_extra_state(), "pending": list(self.pending), "replaced": list(self.replaced)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        super().set_extra_state(state)
        self.pending, self.replaced = list(state["pending"]), list(state["replaced"])
