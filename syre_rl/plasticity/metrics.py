"""Measurements of collapse, one definition each. Imports only torch.

Activation-based measures take a 2-D tensor ``[batch, units]``; weight-based ones take a module.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = [
    "LayerSymmetry",
    "dead_fraction",
    "dead_mask",
    "distance_from_init",
    "dormant_fraction",
    "dormant_mask",
    "effective_rank",
    "linear_layers",
    "low_rank_fraction",
    "spectral_stable_rank",
    "srank_fraction",
    "weight_magnitude",
    "weight_symmetry",
]


def _matrix(x: Tensor, name: str) -> Tensor:
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor [batch, units], got shape {tuple(x.shape)}")
    return x.detach().double()


def _singular_values(features: Tensor) -> Tensor:
    return torch.linalg.svdvals(_matrix(features, "features"))


def effective_rank(features: Tensor) -> float:
    """Roy & Vetterli (2007): ``exp`` of the entropy of the singular values normalised to sum 1."""
    sv = _singular_values(features)
    total = sv.sum()
    if total <= 0:
        return 0.0
    p = sv / total
    p = p[p > 0]
    return math.exp(float(-(p * p.log()).sum()))


def srank_fraction(features: Tensor, threshold: float = 0.99) -> float:
    """Kumar et al. (2021)'s "srank" as Dohare et al. (2024) report it ("stable rank"): the smallest ``k`` whose
    top-``k`` singular values reach ``threshold`` of their sum, as a fraction of the width (number of columns)."""
    sv = _singular_values(features)
    total = sv.sum()
    if total <= 0:
        return 0.0
    cumulative = torch.cumsum(sv, 0) / total
    k = int(torch.searchsorted(cumulative, torch.tensor(threshold, dtype=cumulative.dtype)).item()) + 1
    return min(k, sv.numel()) / features.shape[1]


def spectral_stable_rank(x: Tensor) -> float:
    """The numerical "stable rank" of linear algebra (Rudelson & Vershynin 2007): ``||X||_F^2 / ||X||_2^2``, the sum
    of squared singular values over the largest one squared, in dimensions (1 for rank one, the width for an
    orthogonal matrix). Takes a weight matrix or features ``[batch, units]``."""
    sv = _singular_values(x)
    if sv.numel() == 0 or sv[0] <= 0:
        return 0.0
    return float(sv.square().sum() / sv[0].square())


def dead_mask(activations: Tensor, max_active: float = 0.01) -> Tensor:
    """Units (columns) that are active (> 0) on at most ``max_active`` of the rows: dead ReLU units."""
    active_share = (_matrix(activations, "activations") > 0).double().mean(0)
    return active_share <= max_active


def dead_fraction(activations: Tensor, max_active: float = 0.01) -> float:
    """Share of dead units (see :func:`dead_mask`)."""
    return float(dead_mask(activations, max_active).double().mean())


def dormant_mask(activations: Tensor, tau: float = 0.1) -> Tensor:
    """ReDo (Sokar et al. 2023): a unit is dormant when its mean ``|activation|`` over the batch, divided by
    the layer's mean of that, is at most ``tau`` (``tau = 0`` counts exact zeros only)."""
    score = _matrix(activations, "activations").abs().mean(0)
    layer_mean = score.mean()
    if layer_mean <= 0:
        return torch.ones_like(score, dtype=torch.bool)
    return score / layer_mean <= tau


def dormant_fraction(activations: Tensor, tau: float = 0.1) -> float:
    """Share of dormant units (see :func:`dormant_mask`)."""
    return float(dormant_mask(activations, tau).double().mean())


def low_rank_fraction(features: Tensor, threshold: float = 1e-3) -> float:
    """Share of the feature covariance's eigenvalues below ``threshold`` times the largest: "low-rankness"."""
    x = _matrix(features, "features")
    x = x - x.mean(0, keepdim=True)
    eig = torch.linalg.eigvalsh(x.T @ x / max(x.shape[0] - 1, 1))
    top = eig.max()
    if top <= 0:
        return 1.0
    return float((eig < threshold * top).double().mean())


def linear_layers(module: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` layers of a module, in registration order (the order of an MLP's layers)."""
    return [(name, m) for name, m in module.named_modules() if isinstance(m, nn.Linear)]


def _weighted_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    kinds = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
    return [(name, m) for name, m in module.named_modules() if isinstance(m, kinds)]


def weight_magnitude(module: nn.Module) -> dict[str, float]:
    """Mean ``|W|`` of each Linear/Conv layer's weight, keyed by the layer's name."""
    return {name: float(m.weight.detach().abs().mean()) for name, m in _weighted_layers(module)}


def distance_from_init(module: nn.Module, initial_state: dict[str, Tensor]) -> dict[str, float]:
    """Euclidean distance of each Linear/Conv weight from its value in ``initial_state`` (a ``state_dict``)."""
    out = {}
    for name, m in _weighted_layers(module):
        key = f"{name}.weight" if name else "weight"
        if key not in initial_state:
            raise ValueError(f"initial_state has no entry {key!r}")
        out[name] = float((m.weight.detach() - initial_state[key].to(m.weight.device)).double().norm())
    return out


@dataclass(frozen=True)
class LayerSymmetry:
    """Symmetric states of one hidden layer of an MLP (the units between two consecutive Linear layers).

    :param layer: name of the Linear layer whose outputs are the hidden units.
    :param width: number of hidden units.
    :param identical_pairs: unit pairs whose in-weights, bias and out-weights agree to ``tol`` (relative):
        the permutation-symmetric state that plain gradient descent cannot leave.
    :param distinct_units: units left when identical ones are merged (groups of mutually identical units).
    :param zero_units: units whose in-weights, bias and out-weights are all below ``tol`` (absolute).
    :param small_singular_values: singular values of the layer's weight below ``tol`` times the largest.
    :param min_pair_distance: smallest relative distance between two units' weight vectors.
    """

    layer: str
    width: int
    identical_pairs: int
    distinct_units: int
    zero_units: int
    small_singular_values: int
    min_pair_distance: float


def _unit_vectors(layer: nn.Linear, following: nn.Linear) -> Tensor:
    """One row per hidden unit: its in-weights, its bias and its out-weights."""
    parts = [layer.weight.detach()]
    if layer.bias is not None:
        parts.append(layer.bias.detach()[:, None])
    parts.append(following.weight.detach().T)
    return torch.cat(parts, dim=1).double()


def _count_groups(linked: Tensor) -> int:
    """Connected components of a symmetric boolean adjacency matrix (propagate the smallest label)."""
    labels = torch.arange(linked.shape[0])
    big = linked.shape[0]
    while True:
        spread = torch.where(linked, labels[None, :], big).amin(dim=1)
        new = torch.minimum(labels, spread)
        if torch.equal(new, labels):
            return int(labels.unique().numel())
        labels = new


def weight_symmetry(module: nn.Module, tol: float = 1e-6) -> list[LayerSymmetry]:
    """Report identical units, zero units and near-zero singular values for each hidden layer of an MLP.

    The module's ``nn.Linear`` layers are taken in registration order as consecutive layers of an MLP.
    """
    layers = linear_layers(module)
    if len(layers) < 2:
        raise ValueError("weight_symmetry needs an MLP with at least two nn.Linear layers")
    report = []
    for (name, layer), (_, following) in itertools.pairwise(layers):
        if following.in_features != layer.out_features:
            raise ValueError(
                f"layer {name!r} has {layer.out_features} outputs but the next takes {following.in_features}"
            )
        units = _unit_vectors(layer, following)
        norms = units.norm(dim=1)
        distance = torch.cdist(units, units)
        scale = torch.maximum(norms[:, None], norms[None, :]).clamp_min(torch.finfo(units.dtype).tiny)
        relative = distance / scale
        upper = torch.triu(torch.ones_like(relative, dtype=torch.bool), diagonal=1)
        pairs = relative[upper]
        sv = torch.linalg.svdvals(layer.weight.detach().double())
        report.append(
            LayerSymmetry(
                layer=name,
                width=layer.out_features,
                identical_pairs=int((pairs <= tol).sum()),
                distinct_units=_count_groups(relative <= tol),
                zero_units=int((units.abs().amax(dim=1) <= tol).sum()),
                small_singular_values=int((sv <= tol * sv.max().clamp_min(torch.finfo(sv.dtype).tiny)).sum()),
                min_pair_distance=float(pairs.min()) if pairs.numel() else math.inf,
            )
        )
    return report
