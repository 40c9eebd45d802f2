"""What every plasticity method shares: it acts through an optimizer's step hooks, and it has a state.

Code that only calls ``optimizer.step()`` (SB3's ``PPO.train``, a supervised loop) then runs any method
unchanged. A method is an ``nn.Module`` so that its state (anchors, utilities, counters, random state) is saved by
``state_dict`` and moved by ``.to(device)``, like :class:`syre_rl.core.Syre`; it holds references to the model's
layers without registering them.
"""

from __future__ import annotations

import weakref
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["PlasticityMethod", "SeededMethod"]


class PlasticityMethod(nn.Module):
    """A plasticity method for any model and ``torch.optim.Optimizer``: build it, then :meth:`attach` it."""

    name: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        self._handles: list[Any] = []
        self._optimizer: weakref.ref[torch.optim.Optimizer] | None = None

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        return self._optimizer() if self._optimizer is not None else None

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
        """Make ``optimizer`` apply the method inside every ``step()`` from now on; returns the optimizer."""
        if self._optimizer is not None:
            raise ValueError(
                f"this {type(self).__name__} is already attached to an optimizer; call detach() first"
            )
        self._optimizer = weakref.ref(optimizer)
        self._attach(optimizer)
        return optimizer

    def detach(self) -> None:
        """Stop applying the method; its state is kept (attach again to resume)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._optimizer is not None:
            self._detach()
        self._optimizer = None

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        raise NotImplementedError

    def _detach(self) -> None:
        """Undo what :meth:`_attach` did beyond registering hooks in ``self._handles``."""


class SeededMethod(PlasticityMethod):
    """A method that draws random numbers: one generator per method, seeded, its state saved with the method.

    :param seed: ``None`` draws one from torch's global generator (so ``torch.manual_seed`` fixes it).
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__()
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer or None, got {seed!r}")
        self.seed = seed
        self._generator: torch.Generator | None = None
        self._generator_state: torch.Tensor | None = None

    def generator(self, device: torch.device) -> torch.Generator:
        """The method's generator on ``device`` (created from the seed, or the loaded state, on first use)."""
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device).manual_seed(self.seed)
            if self._generator_state is not None:
                self._generator.set_state(self._generator_state)
                self._generator_state = None
        return self._generator

    def get_extra_state(self) -> dict[str, Any]:
        state = self._generator.get_state() if self._generator is not None else self._generator_state
        return {"seed": self.seed, "generator": state}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seed = state["seed"]
        self._generator_state = state["generator"]
        if self._generator is not None and self._generator_state is not None:
            self._generator.set_state(self._generator_state)
            self._generator_state = None
