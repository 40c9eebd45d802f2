"""The paper's supervised experiments on one device-resident pipeline (see docs/supervised.md).

``data``: datasets as tensors on the device, index batches. ``ensemble``: members stacked in one model, and the
per-member decay toward syre anchors. ``models``: the stacked networks. ``methods``: the one place where each
member's method (a name of the registry :data:`syre_rl.methods.METHOD_NAMES`) is chosen. ``train``: the training loop, checkpoints, results. ``experiments``: the experiments.
"""

from syre_rl.supervised.config import SupervisedPreset
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.methods import MEMBER_RULES, Member
from syre_rl.supervised.train import train

__all__ = ["EXPERIMENTS", "MEMBER_RULES", "Member", "SupervisedPreset", "train"]
