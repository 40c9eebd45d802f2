"""The RL configuration (the supervised side's counterpart is :mod:`syre_rl.supervised.config`): agent presets,
the schema of ``agents/<algo>.yaml``, one dataclass per algorithm.

A preset holds everything a run needs besides the seed: the task, the algorithm's hyperparameters, the network,
the optimizer, the plasticity method and its settings, and how often to evaluate and checkpoint. Fields map
one-to-one onto SB3 arguments where SB3 has them (``n_steps``, ``learning_rate``, ...), so RL Zoo settings can
be copied across.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from syre_rl.core import SyreConfig
from syre_rl.flags import collect_dataclass_flags
from syre_rl.methods import METHODS, check_adam_betas, check_method_kwargs
from syre_rl.presets import load_preset, preset_dir, preset_names

AGENT_DIR = preset_dir("agents")
MAX_ENVS = 4096  # environments in lockstep: each is a Python object in this process; more is a typo


# The keys a preset's syre group may set: the fields of SyreConfig.


def _positive(preset: Any, *names: str) -> None:
    for name in names:
        if getattr(preset, name) <= 0:
            raise ValueError(f"field {name!r} must be > 0, got {getattr(preset, name)!r}")


@dataclass
class AgentPreset:
    """Fields every algorithm shares.

    :param env: gymnasium id or task preset (``slippery_ant:study``), see :func:`syre_rl.envs.resolve_env`
    :param n_envs: environments stepped in lockstep (DummyVecEnv)
    :param total_timesteps: environment steps of the whole run
    :param normalize: VecNormalize observations and rewards (evaluation uses the training statistics)
    :param net_arch: hidden layer sizes, the same for actor and critic (separate networks)
    :param activation: hidden activation (``leaky_relu``: negative slope 0.1)
    :param layer_norm: LayerNorm (no gain or bias) before every hidden activation, actor and critic alike
        (:mod:`syre_rl.policies.layers`); combines with every method
    :param learning_rate: Adam's learning rate (constant)
    :param adam_betas: Adam's betas
    :param adam_eps: Adam's eps (SB3 uses 1e-5 for on-policy algorithms, torch 1e-8)
    :param weight_decay: Adam's coupled weight decay toward 0 (the weight-decay arm of the syre paper)
    :param gamma: discount factor
    :param method: plasticity method, a name of the registry :data:`syre_rl.methods.METHODS`
    :param syre: the settings of the method ``syre``, a :class:`syre_rl.core.SyreConfig` (in YAML a mapping of
        its fields: ``gamma``, the decay toward the anchors, ``sigma0``, ``anchor_scale``, ``spread``, ``mode``,
        ``include``, ``exclude``, ...); fields left out take SyreConfig's defaults, the project's (decoupled 0.1
        toward anchors at each tensor's initial spread). Validated by SyreConfig when the preset is built.
    :param method_kwargs: settings of the competing methods, by method name (``{redo: {tau: 0.1}}``); a method
        not named here runs with its reference settings
    :param change_reset: glob patterns of policy parameters reset at every regime change whatever the method
        (e.g. ``[action_net.*, log_std]``): part of a benchmark's definition, not an arm (see
        :class:`~syre_rl.methods.ResetHead`)
    :param plasticity_every: environment steps between plasticity measurements in TensorBoard (0: none)
    :param eval_freq: environment steps between evaluations (0: no evaluation)
    :param eval_episodes: episodes per evaluation (deterministic actions)
    :param checkpoint_freq: environment steps between checkpoints
    :param reference_returns: committed plain-PPO evaluation returns of this preset, one per seed, whose 95%
        interval a run's closing lines place the run against (empty: no comparison)
    :param reference: one line saying where ``reference_returns`` come from (seeds, steps, command)
    :param description: one line saying what the preset is for
    """

    env: str = "AntBulletEnv-v0"
    n_envs: int = 1
    total_timesteps: int = 1_000_000
    normalize: bool = False
    net_arch: list[int] = field(default_factory=lambda: [64, 64])
    activation: Literal["tanh", "relu", "leaky_relu"] = "tanh"
    layer_norm: bool = False
    learning_rate: float = 3e-4
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    adam_eps: float = 1e-5
    weight_decay: float = 0.0
    gamma: float = 0.99
    method: str = "none"
    syre: SyreConfig | dict[str, Any] = field(default_factory=SyreConfig)
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    change_reset: list[str] = field(default_factory=list)
    plasticity_every: int = 10_000
    eval_freq: int = 50_000
    eval_episodes: int = 5
    checkpoint_freq: int = 50_000
    reference_returns: list[float] = field(default_factory=list)
    reference: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        _positive(
            self, "n_envs", "total_timesteps", "learning_rate", "adam_eps", "eval_episodes", "checkpoint_freq"
        )
        if self.n_envs > MAX_ENVS:
            raise ValueError(f"field 'n_envs' must be at most {MAX_ENVS}, got {self.n_envs}")
        if not self.net_arch or any(n <= 0 for n in self.net_arch):
            raise ValueError(
                f"field 'net_arch' must be a non-empty list of positive sizes, got {self.net_arch!r}"
            )
        check_adam_betas(self.adam_betas)
        if not self.weight_decay >= 0:
            raise ValueError(f"field 'weight_decay' must be >= 0, got {self.weight_decay!r}")
        try:
            self.syre = SyreConfig.from_mapping(self.syre)
        except ValueError as err:
            raise ValueError(f"field 'syre': {err}") from None
        if self.method not in METHODS:
            raise ValueError(f"field 'method': {self.method!r} is not one of {', '.join(METHODS)}")
        check_method_kwargs(self.method_kwargs)
        if self.plasticity_every < 0:
            raise ValueError(f"field 'plasticity_every' must be >= 0, got {self.plasticity_every!r}")
        if self.eval_freq < 0:
            raise ValueError(f"field 'eval_freq' must be >= 0, got {self.eval_freq!r}")

    def algorithm_kwargs(self) -> dict[str, Any]:
        """The fields that go to the SB3 algorithm's constructor unchanged (those a subclass adds)."""
        shared = {f.name for f in dataclasses.fields(AgentPreset)}  # reference fields: reporting only
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in shared}

    def syre_kwargs(self) -> dict[str, Any]:
        """The ``syre`` group as a plain mapping, every field (for flags over the preset, config files)."""
        assert isinstance(self.syre, SyreConfig)  # made one in __post_init__
        return self.syre.as_kwargs()


@dataclass
class OnPolicyPreset(AgentPreset):
    """Fields PPO and A2C share (``ortho_init``, ``log_std_init``, gSDE, GAE, loss weights)."""

    n_steps: int = 2048
    gae_lambda: float = 0.95
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    use_sde: bool = False
    sde_sample_freq: int = -1
    ortho_init: bool = True
    log_std_init: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "n_steps", "max_grad_norm")

    def algorithm_kwargs(self) -> dict[str, Any]:
        kwargs = super().algorithm_kwargs()
        del kwargs["ortho_init"], kwargs["log_std_init"]  # policy kwargs, see syre_rl.rl.model
        return kwargs


@dataclass
class PPOPreset(OnPolicyPreset):
    """PPO: ``batch_size``, ``n_epochs``, ``clip_range``, ``target_kl``."""

    batch_size: int = 64
    n_epochs: int = 10
    clip_range: float = 0.2
    target_kl: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "batch_size", "n_epochs", "clip_range")


@dataclass
class A2CPreset(OnPolicyPreset):
    """A2C with Adam (the RL Zoo default is RMSprop; Adam keeps syre's setting comparable to PPO's)."""

    n_steps: int = 5
    normalize_advantage: bool = False


@dataclass
class SACPreset(AgentPreset):
    """SAC: replay buffer and update schedule."""

    adam_eps: float = 1e-8
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    activation: Literal["tanh", "relu", "leaky_relu"] = "relu"
    buffer_size: int = 1_000_000
    learning_starts: int = 100
    batch_size: int = 256
    tau: float = 0.005
    train_freq: int = 1
    gradient_steps: int = 1
    ent_coef: str = "auto"
    use_sde: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self, "buffer_size", "batch_size", "tau", "train_freq")


AGENT_SCHEMAS: dict[str, type[AgentPreset]] = {"ppo": PPOPreset, "a2c": A2CPreset, "sac": SACPreset}


def agent_preset_names(algo: str) -> list[str]:
    return preset_names(AGENT_DIR / f"{algo}.yaml")


def load_agent_preset(algo: str, name: str = "default") -> AgentPreset:
    """Preset ``name`` of ``agents/<algo>.yaml``, validated (PresetError names file, preset and field)."""
    return load_preset(AGENT_DIR / f"{algo}.yaml", name, AGENT_SCHEMAS[algo])


def preset_overrides(args: argparse.Namespace, fields: tuple[str, ...]) -> dict[str, Any]:
    """The preset fields among ``fields`` whose flags were given (lists as lists, as a preset holds them)."""
    given = collect_dataclass_flags(args, AgentPreset, only=fields)
    return {name: list(value) if isinstance(value, tuple) else value for name, value in given.items()}
