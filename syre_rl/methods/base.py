"""What every plasticity method shares: it acts through an optimizer's step hooks, and it has a state.

Code that only calls ``optimizer.step()`` (SB3's ``PPO.train``, a supervised loop) then runs any method
unchanged. A method is an ``nn.Module`` so that its state (anchors, utilities, counters, random state) is saved by
``state_dict`` and moved by ``.to(device)``, like :class:`syre_rl.core.Syre`; it holds references to the model's
layers without registering them.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn

__all__ = ["DEFAULT_EXCLUDE", "PlasticityMethod", "SeededMethod", "exclude_patterns"]

# Parameters no method touches unless its ``include`` names them literally (``include=["*", "log_std"]``): SB3's
# state-independent exploration noise ``log_std`` (a policy setting, not a network weight). A method's
# ``exclude=`` adds to this list, it never replaces it.
DEFAULT_EXCLUDE: tuple[str, ...] = ("log_std",)


def _patterns(value: str | Iterable[str] | None) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value or ())


def exclude_patterns(
    exclude: str | Iterable[str] | None, include: str | Iterable[str] | None = None
) -> tuple[str, ...]:
    """:data:`DEFAULT_EXCLUDE` (less what ``include`` names literally) plus the caller's ``exclude`` patterns."""
    named = set(_patterns(include))
    default = tuple(p for p in DEFAULT_EXCLUDE if p not in named)
    return default + tuple(p for p in _patterns(exclude) if p not in default)


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

    def on_task_change(self) -> None:
        """Called at a task or regime boundary (supervised continual tasks, RL regime changes).

        Most methods act every step and do nothing here; Shrink & Perturb's ``boundary`` form acts only here.
        """

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        """Register the step hooks (in ``self._handles``) or attach the sub-methods."""

    def _detach(self) -> None:
        """Undo what :meth:`_attach` did beyond registering hooks in ``self._handles``."""


class SeededMethod(PlasticityMethod):
    """A method that draws random numbers: one seeded generator per member, their states saved with the method.

    A plain model is one member. A stacked model (weights ``[members, ...]``, see ``syre_rl.supervised``) has one
    generator per member it acts on, so each member draws exactly what it would draw trained alone.

    :param seed: ``None`` draws one from torch's global generator (so ``torch.manual_seed`` fixes it); or one seed
        per member (a sequence).
    """

    def __init__(self, seed: int | Sequence[int] | None = None) -> None:
        super().__init__()
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        seeds = [seed] if isinstance(seed, int) else list(seed)
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ValueError(f"seed must be a non-negative integer, a list of them, or None, got {seed!r}")
        self.seeds = seeds
        self._generators: list[torch.Generator] | None = None
        self._generator_states: list[torch.Tensor] | None = None

    @property
    def seed(self) -> int:
        """The first member's seed (the seed, for a plain model)."""
        return self.seeds[0]

    def generator(self, device: torch.device, member: int = 0) -> torch.Generator:
        """Member ``member``'s generator on ``device`` (created from its seed, or the loaded state, on first use)."""
        if self._generators is None or self._generators[0].device != device:
            self._generators = [torch.Generator(device=device).manual_seed(s) for s in self.seeds]
            if self._generator_states is not None:
                for gen, state in zip(self._generators, self._generator_states, strict=True):
                    gen.set_state(state)
                self._generator_states = None
        return self._generators[member]

    def get_extra_state(self) -> dict[str, Any]:
        states = (
            [g.get_state() for g in self._generators]
            if self._generators is not None
            else self._generator_states
        )
        return {"seeds": list(self.seeds), "generators": states}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.seeds = list(state["seeds"])
        self._generator_states = state["generators"]
        self._generators = None
