"""Other plasticity methods behind one interface: L2, L2-Init, Shrink & Perturb, CBP, ReDo, NS-Adam.

Each is built from the model, then attached to any ``torch.optim.Optimizer``, and acts inside ``optimizer.step()``
through step hooks (and forward hooks for the activations CBP and ReDo read):

    method = make_method("redo", policy, policy.optimizer)
"""

from syre_rl.baselines.base import PlasticityMethod, SeededMethod
from syre_rl.baselines.registry import METHODS, make_method
from syre_rl.baselines.regularizers import L2, NS_ADAM_BETAS, L2Init, NSAdam, ShrinkPerturb
from syre_rl.baselines.resets import CBP, ReDo, reset_units

__all__ = [
    "CBP",
    "L2",
    "METHODS",
    "NS_ADAM_BETAS",
    "L2Init",
    "NSAdam",
    "PlasticityMethod",
    "ReDo",
    "SeededMethod",
    "ShrinkPerturb",
    "make_method",
    "reset_units",
]
