"""Where an MLP's hidden units are, and what they output, without a second forward pass.

:class:`HiddenLayer` names the three modules that make up one hidden layer of units (the Linear that computes
them, the activation module that outputs them, the Linear layers that read them); :func:`hidden_layer_groups`
finds them in an ``nn.Sequential`` MLP or an SB3 actor-critic policy. :class:`ActivationRecorder` keeps the most
recent outputs of activation modules seen in the model's own training forward passes, by reference, so that
measurements and unit-resetting methods read real training activations at no extra forward cost.

Imports only torch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["ACTIVATION_TYPES", "ActivationRecorder", "HiddenLayer", "hidden_layer_groups", "hidden_layers"]

# Modules that turn a Linear's output into a hidden layer's features (elementwise, no weights but PReLU's).
ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.PReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Hardtanh,
)


@dataclass(frozen=True, eq=False)
class HiddenLayer:
    """One hidden layer of an MLP: unit ``i`` is row ``i`` of ``in_layer`` and column ``i`` of each out-layer.

    :param name: ``"<group>.<index>"``, e.g. ``"actor.0"`` or ``"model.2"``.
    :param in_layer: the Linear that computes the units' pre-activations (or a stacked linear layer).
    :param activation: the module whose output are the units' features (forward hooks read it).
    :param out_layers: every Linear that reads the units (two where a shared layer feeds two heads, or where
        two heads read the last hidden layer, like SAC's ``mu`` and ``log_std``).
    """

    name: str
    in_layer: nn.Module
    activation: nn.Module
    out_layers: tuple[nn.Module, ...]

    @property
    def width(self) -> int:
        return self.in_layer.out_features


def _leaves(module: nn.Module) -> list[nn.Module]:
    """Modules without children, in registration order (the order an ``nn.Sequential`` runs them)."""
    return [m for m in module.modules() if not any(True for _ in m.children())]


def _sequential_layers(
    module: nn.Module, group: str, next_layers: tuple[nn.Linear, ...]
) -> list[HiddenLayer]:
    """Linear -> activation pairs of a sequential stack; a trailing pair is read by ``next_layers``."""
    pairs: list[tuple[nn.Linear, nn.Module]] = []
    readers: list[tuple[nn.Linear, ...]] = []
    linear: nn.Linear | None = None
    for leaf in _leaves(module):
        if isinstance(leaf, nn.Linear):
            if len(readers) < len(pairs):
                readers.append((leaf,))
            linear = leaf
        elif isinstance(leaf, ACTIVATION_TYPES) and linear is not None:
            pairs.append((linear, leaf))
            linear = None
    if len(readers) < len(pairs):
        readers.append(next_layers)
    return [
        HiddenLayer(f"{group}.{i}", in_layer, activation, out)
        for i, ((in_layer, activation), out) in enumerate(zip(pairs, readers, strict=True))
    ]


def _first_linear(*modules: nn.Module) -> nn.Linear:
    """The first Linear of the first module that has one (the layer that reads a stack's output)."""
    for module in modules:
        for leaf in _leaves(module):
            if isinstance(leaf, nn.Linear):
                return leaf
    raise ValueError("no nn.Linear reads this stack's output")


def _is_actor_critic(model: nn.Module) -> bool:
    extractor = getattr(model, "mlp_extractor", None)
    return all(hasattr(extractor, a) for a in ("policy_net", "value_net")) and hasattr(model, "action_net")


def _heads(model: nn.Module) -> tuple[nn.Linear, ...] | None:
    """The Linear heads of a squashed-Gaussian actor (SB3's SAC ``Actor``: ``latent_pi`` read by ``mu`` and, without
    gSDE, the Linear ``log_std``), or ``None`` for other modules."""
    if not isinstance(getattr(model, "latent_pi", None), nn.Module) or not isinstance(
        getattr(model, "mu", None), nn.Linear
    ):
        return None
    log_std = getattr(model, "log_std", None)
    return (model.mu, log_std) if isinstance(log_std, nn.Linear) else (model.mu,)


def hidden_layer_groups(model: nn.Module) -> dict[str, list[HiddenLayer]]:
    """The hidden layers of ``model``, by network.

    - SB3 actor-critic policy (``mlp_extractor.policy_net`` / ``value_net``, heads ``action_net`` / ``value_net``):
      ``{"actor": [...], "critic": [...]}``, plus ``"shared"`` when a shared features extractor has Linear layers
      (its last layer is read by both networks). Separate extractors with Linear layers join their network.
    - SB3's SAC actor (``latent_pi`` then the heads ``mu`` and ``log_std``): ``{"actor": [...]}``, the last hidden
      layer read by every head.
    - any other module: its Linear -> activation pairs in registration order, as ``{"model": [...]}`` (an
      ``nn.Sequential`` MLP, nested or not; the final Linear is the last hidden layer's reader).

    Groups without hidden units are left out.
    """
    heads = _heads(model)
    if heads is not None:
        extractor = getattr(model, "features_extractor", None)
        stack = nn.Sequential(extractor, model.latent_pi) if extractor is not None else model.latent_pi
        return {"actor": _sequential_layers(stack, "actor", heads)}
    if not _is_actor_critic(model):
        layers = _sequential_layers(model, "model", ())
        if not layers:
            raise ValueError(
                f"found no Linear -> activation pairs in {type(model).__name__}; describe the hidden layers "
                "with HiddenLayer(...) and pass them as layers="
            )
        return {"model": layers}
    pi_net, vf_net = model.mlp_extractor.policy_net, model.mlp_extractor.value_net
    pi_reader = _first_linear(pi_net, model.action_net)
    vf_reader = _first_linear(vf_net, model.value_net)
    groups: dict[str, list[HiddenLayer]] = {}
    if getattr(model, "share_features_extractor", True):
        groups["shared"] = _sequential_layers(model.features_extractor, "shared", (pi_reader, vf_reader))
        actor = _sequential_layers(pi_net, "actor", (model.action_net,))
        critic = _sequential_layers(vf_net, "critic", (model.value_net,))
    else:
        actor = _sequential_layers(
            nn.Sequential(model.pi_features_extractor, pi_net), "actor", (model.action_net,)
        )
        critic = _sequential_layers(
            nn.Sequential(model.vf_features_extractor, vf_net), "critic", (model.value_net,)
        )
    groups["actor"], groups["critic"] = actor, critic
    return {name: layers for name, layers in groups.items() if layers}


def hidden_layers(model: nn.Module) -> list[HiddenLayer]:
    """All hidden layers of ``model`` (see :func:`hidden_layer_groups`), groups in order."""
    return [layer for layers in hidden_layer_groups(model).values() for layer in layers]


class ActivationRecorder:
    """Keep the most recent rows that some modules output, by reference, from the model's own forward passes.

    Forward hooks store the (detached) output tensors themselves: no copy, and only while :meth:`start`-ed, so
    a recorder costs nothing between measurements. Outputs of passes run without gradients (an RL rollout, an
    evaluation) are skipped by default, so what is kept is what the optimizer trains on.

    :param modules: name -> module whose outputs ``[..., units]`` to keep (flattened to ``[rows, units]``).
    :param max_rows: keep at least the last ``max_rows`` rows (whole batches, so up to one batch more);
        ``None`` keeps only the latest output.
    :param grad_only: skip outputs computed while gradients are disabled.
    """

    def __init__(self, modules: Mapping[str, nn.Module], max_rows: int | None = 2048, grad_only: bool = True):
        if max_rows is not None and (not isinstance(max_rows, int) or max_rows < 1):
            raise ValueError(f"max_rows must be a positive integer or None, got {max_rows!r}")
        self.modules = dict(modules)
        self.max_rows = max_rows
        self.grad_only = grad_only
        self._outputs: dict[str, deque[Tensor]] = {name: deque() for name in self.modules}
        self._rows = dict.fromkeys(self.modules, 0)
        self._handles: list[Any] = []

    @property
    def recording(self) -> bool:
        return bool(self._handles)

    def start(self) -> None:
        """Register the forward hooks (idempotent)."""
        if not self._handles:
            self._handles = [m.register_forward_hook(self._hook(name)) for name, m in self.modules.items()]

    def stop(self) -> None:
        """Remove the forward hooks; what was kept stays readable until :meth:`clear`."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def clear(self) -> None:
        for name in self.modules:
            self._outputs[name].clear()
            self._rows[name] = 0

    def _hook(self, name: str) -> Any:
        kept = self._outputs[name]

        def hook(module: nn.Module, args: Any, output: Tensor) -> None:
            if self.grad_only and not torch.is_grad_enabled():
                return
            rows = output.detach().reshape(-1, output.shape[-1])
            if self.max_rows is None:
                kept.clear()
                self._rows[name] = 0
            kept.append(rows)
            self._rows[name] += rows.shape[0]
            while self.max_rows is not None and self._rows[name] - kept[0].shape[0] >= self.max_rows:
                self._rows[name] -= kept.popleft().shape[0]

        return hook

    def latest(self, name: str) -> Tensor | None:
        """The last output kept for ``name`` (``[rows, units]``), or ``None`` if none was seen."""
        kept = self._outputs[name]
        return kept[-1] if kept else None

    def rows(self, name: str) -> Tensor | None:
        """The last ``max_rows`` rows kept for ``name`` (one tensor), or ``None`` if none was seen."""
        kept = self._outputs[name]
        if not kept:
            return None
        rows = torch.cat(list(kept)) if len(kept) > 1 else kept[0]
        return rows[-self.max_rows :] if self.max_rows is not None else rows
