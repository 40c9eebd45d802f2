"""Every method behind one interface and one registry: none, syre, L2, L2-Init, Shrink & Perturb, CBP, ReDo,
NS-Adam, and the resets of whole tensors (reset-head, reset-all). Each class owns its settings and their defaults
(:meth:`PlasticityMethod.defaults`); syre's are the fields of :class:`syre_rl.core.SyreConfig`. The SB3 policy
that carries each method for each algorithm is :data:`syre_rl.policies.choices.POLICY_CHOICES`.

Each is built from the model, then attached to any ``torch.optim.Optimizer``, and acts inside ``optimizer.step()``
through step hooks (and forward hooks for the activations CBP and ReDo read):

    method = make_method("redo", policy, policy.optimizer)
"""

from syre_rl.methods.base import DEFAULT_EXCLUDE, STATE_PREFIX, PlasticityMethod, SeededMethod
from syre_rl.methods.registry import (
    METHOD_NAMES,
    METHODS,
    SUPERVISED_ONLY,
    check_method_kwargs,
    make_method,
    method_settings,
)
from syre_rl.methods.regularizers import (
    L2,
    NS_ADAM_BETAS,
    L2Init,
    NoMethod,
    NSAdam,
    ShrinkPerturb,
    SyreMethod,
    check_adam_betas,
    noisy_layers,
)
from syre_rl.methods.reinit import ResetAll, ResetHead
from syre_rl.methods.resets import CBP, AdamResetClock, ReDo, UnitResetMethod

__all__ = [
    "CBP",
    "DEFAULT_EXCLUDE",
    "L2",
    "METHODS",
    "METHOD_NAMES",
    "NS_ADAM_BETAS",
    "check_adam_betas",
    "STATE_PREFIX",
    "SUPERVISED_ONLY",
    "AdamResetClock",
    "L2Init",
    "NSAdam",
    "NoMethod",
    "PlasticityMethod",
    "ReDo",
    "ResetAll",
    "ResetHead",
    "SeededMethod",
    "ShrinkPerturb",
    "SyreMethod",
    "UnitResetMethod",
    "check_method_kwargs",
    "make_method",
    "method_settings",
    "noisy_layers",
]
