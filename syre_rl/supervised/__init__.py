"""The paper's supervised experiments on one device-resident pipeline (see docs/supervised.md).

``data``: datasets as tensors on the device, index batches. ``ensemble``: members stacked in one model, and the
per-member decay toward syre anchors. ``models``: the stacked networks. ``methods``: the one place where each
member's method is chosen. ``train``: the training loop, checkpoints, results. ``experiments``: the experiments.
"""

from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.methods import METHODS, Member
from syre_rl.supervised.train import SupervisedPreset, train

__all__ = ["EXPERIMENTS", "METHODS", "Member", "SupervisedPreset", "train"]
