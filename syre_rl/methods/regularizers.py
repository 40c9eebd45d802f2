"""Methods that change every weight: syre, L2, L2-Init, Shrink & Perturb, and NS-Adam's betas (and ``none``).

syre, L2 and L2-Init are all weight decay toward a fixed anchor (random, 0, or the initial weights): each is a
:class:`syre_rl.core.Syre` (L2 and L2-Init in coupled mode, ``grad += wd (w - anchor)`` before the step, as
``torch.optim.Adam(weight_decay=)`` does) and shares its step hook. Shrink & Perturb's shrink is the same coupled
decay toward 0 (Dohare et al. 2024 set it as the optimizer's ``weight_decay``), plus Gaussian noise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import torch
from torch import Tensor, nn

from syre_rl.core import MAX_SEED, Syre, SyreConfig, matches, patterns, peek_seed
from syre_rl.methods.base import PlasticityMethod, SeededMethod, exclude_patterns

__all__ = [
    "L2",
    "NS_ADAM_BETAS",
    "L2Init",
    "NSAdam",
    "NoMethod",
    "ShrinkPerturb",
    "SyreMethod",
    "noisy_layers",
]

# Dohare et al. (2024): Adam with equal first and second moment decay ("non-stationary Adam").
NS_ADAM_BETAS = (0.99, 0.99)
# Layers whose weight and bias Shrink & Perturb perturbs (a stacked layer marks itself with ``stacked = True``).
_NOISY_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


class NoMethod(PlasticityMethod):
    """No plasticity method: the optimizer as it is (the baseline arm)."""

    name = "none"

    def __init__(self, model: nn.Module | None = None) -> None:
        super().__init__()


class _Decay(PlasticityMethod):
    """A method that is one :class:`~syre_rl.core.Syre` (``self.decay``): attach and detach are its own."""

    decay: Syre

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.decay.attach(optimizer)

    def _detach(self) -> None:
        self.decay.detach()


class SyreMethod(_Decay):
    """syre (Ziyin, Xu & Chuang 2025): weight decay toward fixed random anchors.

    The method interface around :class:`syre_rl.core.Syre`. Its settings are :class:`~syre_rl.core.SyreConfig`'s
    fields, with their defaults (the same in every policy and in this registry): give a ``config``, single
    settings, or both (settings over the config). Like every method, syre leaves
    :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE` (SB3's ``log_std``) alone; an ``exclude`` adds to it.

    In a policy (:class:`~syre_rl.policies.MethodMixin`) the method is the bare :class:`~syre_rl.core.Syre`, one
    per optimizer, under the policy's ``syre`` attribute (so checkpoints of the ``Syre*`` policies keep their
    keys): see :meth:`for_optimizer`.
    """

    name = "syre"
    copyable = True

    def __init__(
        self, model: nn.Module | Iterable[Any], config: SyreConfig | None = None, **settings: Any
    ) -> None:
        super().__init__()
        self.config = SyreConfig.from_mapping(settings, config)
        self.decay = Syre(model, self.own_config(self.config))

    @staticmethod
    def own_config(config: SyreConfig) -> SyreConfig:
        """``config`` with :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE` added to its ``exclude``."""
        return dataclasses.replace(config, exclude=exclude_patterns(config.exclude, config.include) or None)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        return dataclasses.asdict(SyreConfig())

    @classmethod
    def policy_settings(cls, given: SyreConfig | Mapping[str, Any] | None) -> dict[str, Any]:
        """Every setting (defaults filled in; given ones as given), and a seed: ``None`` takes one from torch's
        global generator without advancing it (so building a policy changes nothing a run draws afterwards), and
        records it, so a saved policy rebuilds with the same anchors."""
        if isinstance(given, SyreConfig):
            given = given.as_kwargs()
        given = dict(given or {})
        settings = {**SyreConfig.from_mapping(given).as_kwargs(), **given}
        if settings.get("seed") is None:
            settings["seed"] = peek_seed()
        return settings

    @classmethod
    def for_optimizer(
        cls, owner: nn.Module, optimizer: torch.optim.Optimizer, index: int, settings: Mapping[str, Any]
    ) -> Syre:
        """A :class:`~syre_rl.core.Syre` on the parameters of ``owner`` that ``optimizer`` trains, its anchor seed
        the policy's seed plus ``index`` (one seed per optimizer), attached."""
        config = SyreConfig.from_mapping(settings)
        config = dataclasses.replace(cls.own_config(config), seed=(config.seed or 0) + index)
        config = dataclasses.replace(config, seed=config.seed % MAX_SEED)
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        syre = Syre([(n, p) for n, p in owner.named_parameters() if id(p) in held], config)
        syre.attach(optimizer)
        return syre


class L2(_Decay):
    """Weight decay toward 0, coupled like ``Adam(weight_decay=)``: ``grad += weight_decay * w`` before the step.

    Works the same with any optimizer (with AdamW it adds a coupled decay to AdamW's own decoupled one).
    Dohare et al. (2024) use 1e-3 with PPO and Adam betas (0.99, 0.99).

    :param model: the model whose trainable parameters decay (the optimizer must hold them).
    :param weight_decay: decay strength (penalty ``weight_decay / 2 * ||w||^2``).
    :param include: glob patterns of parameter names to decay (default: all).
    :param exclude: glob patterns of parameter names to leave alone, added to
        :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE`.
    """

    name = "l2"

    def __init__(
        self,
        model: nn.Module,
        *,
        weight_decay: float = 1e-3,
        include: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
    ) -> None:
        super().__init__()
        # An anchor of std 0 is the zero tensor: syre's decay toward it is plain L2.
        config = SyreConfig(
            gamma=weight_decay,
            sigma0=0.0,
            anchor_scale="fan_in",
            mode="coupled",
            include=include,
            exclude=exclude_patterns(exclude, include) or None,
        )
        self.decay = Syre(model, config, anchors=self._anchors(model))

    def _anchors(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The point the weights decay toward (``None``: zero)."""
        return None


class L2Init(L2):
    """Weight decay toward the initial weights (Kumar et al. 2023, "regenerative regularization"), coupled.

    The anchors are the weights when the method is built: build it before training. They are buffers, so a
    checkpoint of the method keeps the true initial weights. Kumar et al. sweep 1e-2 to 1e-4.
    """

    name = "l2-init"

    def _anchors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in model.named_parameters()}


def noisy_layers(
    model: nn.Module,
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> list[tuple[str, Tensor, bool]]:
    """``(name, parameter, stacked)`` of every weight and bias of a Linear or convolution (plain or stacked)
    that the patterns select: what Shrink & Perturb perturbs (never norms, embeddings or SB3's ``log_std``)."""
    include_p, exclude_p = patterns("include", include), exclude_patterns(exclude, include)
    found = []
    for module_name, module in model.named_modules():
        stacked = bool(getattr(module, "stacked", False))
        if not (stacked or isinstance(module, _NOISY_TYPES)):
            continue
        for param_name, param in module.named_parameters(recurse=False):
            name = f"{module_name}.{param_name}" if module_name else param_name
            if param.requires_grad and matches(name, include_p, exclude_p):
                found.append((name, param, stacked))
    return found


class ShrinkPerturb(SeededMethod):
    """Shrink & Perturb: Dohare et al.'s continual form (default) or Ash & Adams' form at task boundaries.

    ``form="continual"`` (Dohare et al. 2024, ``lop/algos/bp.py`` and ``rl/ppo.py``): the shrink is the optimizer's
    coupled weight decay (``grad += weight_decay * w`` before each step, every selected parameter), and after each
    step ``w += noise_std * N(0, 1)`` on the weights and biases of Linear (and convolution) layers only.

    ``form="boundary"`` (Ash & Adams 2020): nothing during training; at each :meth:`on_task_change`,
    ``w <- shrink * w + noise_std * N(0, 1)`` on the same weights and biases.

    :param model: the model.
    :param weight_decay: the continual form's coupled decay (Dohare: 1e-4 on permuted MNIST, 1e-5 on ImageNet).
    :param noise_std: std of the noise (continual: per step, Dohare sweeps 1e-4 to 1e-6 and uses 1e-5;
        boundary: once per boundary, default 0.01, our choice).
    :param form: ``"continual"`` or ``"boundary"``.
    :param shrink: the boundary form's factor ``lambda`` (default 0.4, our choice; Ash & Adams sweep it).
    :param members: for a stacked model (weights ``[members, ...]``), the members perturbed (default all);
        each draws from its own generator.
    :param include: glob patterns of parameter names acted on (default: all).
    :param exclude: patterns added to :data:`~syre_rl.methods.base.DEFAULT_EXCLUDE`.
    :param seed: seed of the noise (one per perturbed member for a stacked model).
    """

    name = "shrink-perturb"
    FORMS = ("continual", "boundary")

    def __init__(
        self,
        model: nn.Module,
        *,
        weight_decay: float = 1e-4,
        noise_std: float | None = None,
        form: Literal["continual", "boundary"] = "continual",
        shrink: float = 0.4,
        members: Sequence[int] | None = None,
        include: str | Iterable[str] | None = None,
        exclude: str | Iterable[str] | None = None,
        seed: int | Sequence[int] | None = None,
    ) -> None:
        if form not in self.FORMS:
            raise ValueError(f"form must be one of {', '.join(self.FORMS)}, got {form!r}")
        if noise_std is None:
            noise_std = 1e-5 if form == "continual" else 1e-2
        if not noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
        if not 0.0 <= shrink <= 1.0:
            raise ValueError(f"shrink must be in [0, 1], got {shrink!r}")
        super().__init__(seed)
        self.form, self.noise_std, self.shrink = form, float(noise_std), float(shrink)
        self.weight_decay = float(weight_decay)
        self._layers = noisy_layers(model, include, exclude)
        if not self._layers:
            raise ValueError("shrink-perturb found no Linear or convolution weights to perturb")
        stacked = [p.shape[0] for _, p, s in self._layers if s]
        if stacked:
            self.members = list(members) if members is not None else list(range(stacked[0]))
            if len(self.members) != len(self.seeds):
                raise ValueError(f"give one seed per perturbed member: {len(self.members)} members")
        elif members is not None:
            raise ValueError("members is for stacked models (no stacked layer found)")
        else:
            self.members = []
        self.l2 = (
            L2(model, weight_decay=weight_decay, include=include, exclude=exclude)
            if form == "continual" and weight_decay > 0
            else None
        )

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        if self.l2 is not None:
            self.l2.attach(optimizer)
        if self.form == "continual" and self.noise_std:
            self._handles.append(optimizer.register_step_post_hook(self._post_step))

    def _detach(self) -> None:
        if self.l2 is not None:
            self.l2.detach()

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.perturb(1.0)

    def on_task_change(self) -> None:
        if self.form == "boundary":
            self.perturb(self.shrink)

    @torch.no_grad()
    def perturb(self, factor: float) -> None:
        """``w <- factor * w + noise_std * N(0, 1)`` on every perturbed weight and bias (members own draws)."""
        for _, param, stacked in self._layers:
            if not stacked:
                gen = self.generator(param.device)
                if factor != 1.0:
                    param.mul_(factor)
                noise = torch.randn(param.shape, generator=gen, device=param.device, dtype=param.dtype)
                param.add_(noise, alpha=self.noise_std)
                continue
            for k, e in enumerate(self.members):
                gen = self.generator(param.device, k)
                if factor != 1.0:
                    param[e].mul_(factor)
                noise = torch.randn(param.shape[1:], generator=gen, device=param.device, dtype=param.dtype)
                param[e].add_(noise, alpha=self.noise_std)


def check_adam_betas(betas: Any, field: str = "adam_betas") -> None:
    """Adam's betas: two numbers in [0, 1) (NS-Adam and every preset schema with an optimizer check them here)."""
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise ValueError(f"field {field!r} must be two numbers in [0, 1), got {betas!r}")


class NSAdam(PlasticityMethod):
    """Adam with ``betas = (0.99, 0.99)`` (Dohare et al. 2024): an optimizer setting, set on every param group.

    Prefer passing ``betas=NS_ADAM_BETAS`` when the optimizer is built (SB3: ``optimizer_kwargs``); this method
    exists so that every method can be chosen the same way. :meth:`detach` restores the previous betas.

    :param model: unused (every method takes the model first).
    :param betas: the betas to set.
    """

    name = "ns-adam"

    def __init__(self, model: nn.Module | None = None, *, betas: tuple[float, float] = NS_ADAM_BETAS) -> None:
        super().__init__()
        check_adam_betas(betas, "betas")
        self.betas = (float(betas[0]), float(betas[1]))
        self._previous: list[Any] = []

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        if not all("betas" in group for group in optimizer.param_groups):
            self._optimizer = None
            raise ValueError(
                f"ns-adam needs an Adam-like optimizer with betas, got {type(optimizer).__name__}"
            )
        self._previous = [group["betas"] for group in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["betas"] = self.betas

    def _detach(self) -> None:
        optimizer = self.optimizer
        if optimizer is not None:
            for group, betas in zip(optimizer.param_groups, self._previous, strict=False):
                group["betas"] = betas
        self._previous = []
