"""Plasticity measurements: how collapsed a network is (dead units, ranks, weights, symmetric states)."""

from syre_rl.plasticity.metrics import (
    LayerSymmetry,
    dead_fraction,
    dead_mask,
    distance_from_init,
    dormant_fraction,
    dormant_mask,
    effective_rank,
    linear_layers,
    low_rank_fraction,
    stable_rank,
    weight_magnitude,
    weight_symmetry,
)

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
    "stable_rank",
    "weight_magnitude",
    "weight_symmetry",
]
