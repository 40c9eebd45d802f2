"""Plasticity measurements: how collapsed a network is (dead units, ranks, weights, symmetric states).

The SB3 callback that logs them during training is :class:`syre_rl.rl.callbacks.PlasticityCallback` (this
package needs only torch).
"""

from syre_rl.plasticity.activations import (
    ACTIVATION_TYPES,
    ActivationRecorder,
    HiddenLayer,
    hidden_layer_groups,
    hidden_layers,
)
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
    spectral_stable_rank,
    srank_fraction,
    weight_magnitude,
    weight_symmetry,
)

__all__ = [
    "ACTIVATION_TYPES",
    "ActivationRecorder",
    "HiddenLayer",
    "LayerSymmetry",
    "dead_fraction",
    "dead_mask",
    "distance_from_init",
    "dormant_fraction",
    "dormant_mask",
    "effective_rank",
    "hidden_layer_groups",
    "hidden_layers",
    "linear_layers",
    "low_rank_fraction",
    "spectral_stable_rank",
    "srank_fraction",
    "weight_magnitude",
    "weight_symmetry",
]
