"""Methods that change every weight at every step: L2, L2-Init, Shrink & Perturb, and NS-Adam's betas.

L2 and L2-Init are weight decay toward a fixed anchor (0, or the initial weights): exactly the mechanism of
:class:`syre_rl.core.Syre` with another anchor, so they are a ``Syre`` in coupled mode (``grad += wd (w - anchor)``
before the step, as ``torch.optim.Adam(weight_decay=)`` does) and share its step hook.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from syre_rl.baselines.base import PlasticityMethod, SeededMethod
from syre_rl.core import Syre

__all__ = ["L2", "NS_ADAM_BETAS", "L2Init", "NSAdam", "ShrinkPerturb"]

# Dohare et al. (2024): Adam with equal first and second moment decay ("non-stationary Adam").
NS_ADAM_BETAS = (0.99, 0.99)


class L2(PlasticityMethod):
    """Weight decay toward 0, coupled like ``Adam(weight_decay=)``: ``grad += weight_decay * w`` before the step.

    Works the same with any optimizer (with AdamW it adds a coupled decay to AdamW's own decoupled one).
    Dohare et al. (2024) use 1e-3 with PPO and NS-Adam.

    :param model: the model whose trainable parameters decay (the optimizer must hold them).
    :param weight_decay: decay strength (penalty ``weight_decay / 2 * ||w||^2``).
    :param include: glob patterns of parameter names to decay (default: all).
    :param exclude: glob patterns of parameter names to leave alone.
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
        self.decay = Syre(
            model,
            gamma=weight_decay,
            sigma0=0.0,
            mode="coupled",
            include=include,
            exclude=exclude,
            anchors=self._anchors(model),
        )

    def _anchors(self, model: nn.Module) -> dict[str, torch.Tensor] | None:
        """The point the weights decay toward (``None``: zero)."""
        return None

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        self.decay.attach(optimizer)

    def _detach(self) -> None:
        self.decay.detach()


class L2Init(L2):
    """Weight decay toward the initial weights (Kumar et al. 2023, "regenerative regularization"), coupled.

    The anchors are the weights when the method is built: build it before training. They are buffers, so a
    checkpoint of the method keeps the true initial weights. Kumar et al. sweep 1e-2 to 1e-4.
    """

    name = "l2-init"

    def _anchors(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: p.detach() for name, p in model.named_parameters()}


class ShrinkPerturb(SeededMethod):
    """Shrink & Perturb at every step (Ash & Adams 2020; continual form of Dohare et al. 2024).

    After each optimizer step, ``w <- (1 - shrink) w + noise_std * N(0, 1)`` for every trainable parameter.

    :param model: the model whose trainable parameters are shrunk and perturbed.
    :param shrink: fraction taken off each weight per step (the reference 1e-4 plays the role of weight decay).
    :param noise_std: std of the Gaussian noise added per step.
    :param seed: seed of the noise.
    :param exclude: glob patterns of parameter names to leave alone.
    """

    name = "shrink-perturb"

    def __init__(
        self,
        model: nn.Module,
        *,
        shrink: float = 1e-4,
        noise_std: float = 1e-5,
        seed: int | None = None,
        exclude: str | Iterable[str] | None = None,
    ) -> None:
        super().__init__(seed)
        if not 0.0 <= shrink < 1.0:
            raise ValueError(f"shrink must be in [0, 1), got {shrink!r}")
        if not noise_std >= 0.0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.shrink, self.noise_std = float(shrink), float(noise_std)
        patterns = (exclude,) if isinstance(exclude, str) else tuple(exclude or ())
        self._params = [
            p
            for n, p in model.named_parameters()
            if p.requires_grad and not any(fnmatch.fnmatchcase(n, pat) for pat in patterns)
        ]

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        self._handles.append(optimizer.register_step_post_hook(self._post_step))

    @torch.no_grad()
    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self.shrink:
            torch._foreach_mul_(self._params, 1.0 - self.shrink)
        if self.noise_std:
            gen = self.generator(self._params[0].device)
            noise = [
                torch.randn(p.shape, generator=gen, device=p.device, dtype=p.dtype) for p in self._params
            ]
            torch._foreach_add_(self._params, noise, alpha=self.noise_std)


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
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
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
