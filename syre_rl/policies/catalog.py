"""A syre twin of every policy of every SB3 and sb3-contrib algorithm that trains with an optimizer.

Each twin is ``type(name, (SyreMixin, <SB3's class>), {})``: generated here from the algorithms' own
``policy_aliases``, so a policy SB3 adds is covered by adding its algorithm to :data:`ALGORITHMS`. Each twin is
also registered on its algorithms under ``"Syre" + <alias>``: ``PPO("SyreMlpPolicy", env)``,
``SAC("SyreMultiInputPolicy", env)``, ``RecurrentPPO("SyreMlpLstmPolicy", env)``. ARS is left out: it searches
parameters without gradients or an optimizer.
"""

from __future__ import annotations

import sb3_contrib
import stable_baselines3 as sb3
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.sac.policies import SACPolicy

from syre_rl.policies.mixin import PlasticityMixin, SyreMixin

__all__ = [
    "ALGORITHMS",
    "SYRE_TWINS",
    "PlasticityActorCriticPolicy",
    "PlasticitySACPolicy",
    "register_aliases",
    "syre_twin",
]

_SB3 = ("PPO", "A2C", "SAC", "TD3", "DDPG", "DQN")
_CONTRIB = ("RecurrentPPO", "MaskablePPO", "TRPO", "TQC", "CrossQ", "QRDQN")
# Every algorithm that trains its policy with an optimizer (CrossQ only where the installed sb3-contrib has it).
ALGORITHMS: tuple[type[BaseAlgorithm], ...] = tuple(
    getattr(package, name)
    for package, names in ((sb3, _SB3), (sb3_contrib, _CONTRIB))
    for name in names
    if hasattr(package, name)
)

# SB3 class -> its syre twin.
SYRE_TWINS: dict[type[BasePolicy], type[BasePolicy]] = {}


def _twin_name(base: type[BasePolicy], family: type[BasePolicy]) -> str:
    """``Syre`` + SB3's class name; SB3's generic ``CnnPolicy`` / ``MultiInputPolicy`` classes (SAC, TD3, DQN, ...)
    take their family's name: ``SyreSACCnnPolicy``, ``SyreTD3MultiInputPolicy``."""
    if base.__name__ in ("CnnPolicy", "MultiInputPolicy"):
        return "Syre" + family.__name__.removesuffix("Policy") + base.__name__
    return "Syre" + base.__name__


def syre_twin(base: type[BasePolicy]) -> type[BasePolicy]:
    """The syre twin of the SB3 policy class ``base`` (one class per base, created on first request)."""
    if base not in SYRE_TWINS:
        family = next(c for c in reversed(base.__mro__) if issubclass(c, BasePolicy) and c is not BasePolicy)
        name = _twin_name(base, family if family is not ActorCriticPolicy else base)
        doc = f"SB3's ``{base.__module__}.{base.__qualname__}`` with syre on every optimizer it owns."
        twin = type(name, (SyreMixin, base), {"__module__": __name__, "__qualname__": name, "__doc__": doc})
        SYRE_TWINS[base] = twin
        globals()[name] = twin  # importable by name, so cloudpickle (SB3's save) stores a reference
        __all__.append(name)
    return SYRE_TWINS[base]


for _algorithm in ALGORITHMS:
    for _base in _algorithm.policy_aliases.values():
        syre_twin(_base)


def register_aliases() -> None:
    """Offer each twin under ``"Syre" + <alias>`` on every algorithm whose alias names its base (idempotent)."""
    for algorithm in ALGORITHMS:
        if "policy_aliases" not in vars(algorithm):  # never write into a dict inherited from a parent class
            algorithm.policy_aliases = dict(algorithm.policy_aliases)
        aliases = algorithm.policy_aliases
        for alias, base in list(aliases.items()):
            if base in SYRE_TWINS:
                aliases.setdefault("Syre" + alias, SYRE_TWINS[base])


class PlasticityActorCriticPolicy(PlasticityMixin, ActorCriticPolicy):
    """``MlpPolicy`` of PPO and A2C trained with a competing plasticity method (``plasticity_method="redo"``...)."""


class PlasticitySACPolicy(PlasticityMixin, SACPolicy):
    """``MlpPolicy`` of SAC with a competing plasticity method on the actor's and the critic's optimizers."""


# The names of the first release, kept: they are the twins of these classes.
SyreActorCriticPolicy = syre_twin(ActorCriticPolicy)
SyreRecurrentActorCriticPolicy = syre_twin(RecurrentActorCriticPolicy)
SyreMaskableActorCriticPolicy = syre_twin(MaskableActorCriticPolicy)
