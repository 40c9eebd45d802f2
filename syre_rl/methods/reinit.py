"""Methods that re-initialise whole parameter tensors: the output side (Nikishin et al. 2022) or everything.

Nikishin et al. ("The primacy bias in deep reinforcement learning", ICML 2022) reset an agent's last layers,
periodically or at a task change, and recover the plasticity that an early commitment took away. In an SB3
actor-critic policy the output side is the actor's head ``action_net``, its state-independent ``log_std`` and the
critic's head ``value_net``; :class:`ResetHead` resets the first two by default. :class:`ResetAll` resets every
tensor at each change: a fresh network and a fresh optimizer, the control arm of an RL plasticity study (its
plasticity figure must be about 0, or the harness is wrong).

A reset draws each tensor afresh from the family its initial value came from: a 2-D weight whose singular values
were all equal (SB3's ``ortho_init``) as an orthogonal matrix of that gain; any other tensor with a spread (torch's
default init of Linear layers) uniformly with the initial tensor's mean and std; a constant tensor (zero biases,
``log_std``) back to its value. The optimizer's state of a reset tensor is dropped, so Adam starts it again at step
0, exactly as for a new network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from syre_rl.core import matches
from syre_rl.core import patterns as core_patterns
from syre_rl.methods.base import SeededMethod

__all__ = ["ResetAll", "ResetHead", "matching_parameters"]


def matching_parameters(model: nn.Module, patterns: str | Iterable[str]) -> list[tuple[str, Tensor]]:
    """The trainable ``(name, parameter)`` pairs of ``model`` whose names match any glob pattern."""
    selected = core_patterns("patterns", patterns)
    return [
        (name, p) for name, p in model.named_parameters() if p.requires_grad and matches(name, selected, None)
    ]


def _draw_rule(initial: Tensor) -> tuple[str, float, float]:
    """How to draw ``initial``'s tensor afresh: ``("orthogonal", gain, 0)``, ``("uniform", mean, std)`` or
    ``("constant", 0, 0)``."""
    x = initial.double().cpu()
    if x.numel() < 2 or float(x.std()) == 0.0:
        return "constant", 0.0, 0.0
    if x.dim() == 2:
        singular = torch.linalg.svdvals(x)
        if float(singular.max() - singular.min()) <= 1e-4 * float(singular.max()):
            return "orthogonal", float(singular.mean()), 0.0
    return "uniform", float(x.mean()), float(x.std())


class ResetHead(SeededMethod):
    """Reset the actor's output layer and log_std at each task change or every N updates (Nikishin et al. 2022).

    :param model: the model (an SB3 policy, or any module)
    :param targets: glob patterns of the parameter names to reset (default ``action_net.*`` and ``log_std``;
        add ``value_net.*`` for the critic's head)
    :param every: also reset every this many optimizer steps (0: only at task changes)
    :param at_change: reset at every :meth:`on_task_change`
    :param seed: seed of the fresh draws
    """

    name = "reset-head"
    TARGETS: tuple[str, ...] = ("action_net.*", "log_std")

    def __init__(
        self,
        model: nn.Module,
        *,
        targets: str | Sequence[str] | None = None,
        every: int = 0,
        at_change: bool = True,
        seed: int | None = None,
    ) -> None:
        if not (isinstance(every, int) and every >= 0):
            raise ValueError(f"every must be an integer >= 0, got {every!r}")
        super().__init__(seed)
        self.targets = tuple(
            self.TARGETS if targets is None else (targets,) if isinstance(targets, str) else targets
        )
        found = matching_parameters(model, self.targets)
        if not found:
            raise ValueError(f"{self.name}: no trainable parameter matches {', '.join(self.targets)}")
        self.names = [name for name, _ in found]
        self._params = [p for _, p in found]
        for i, (_, p) in enumerate(found):
            self.register_buffer(f"initial_{i}", p.detach().clone())
        self.every, self.at_change = every, at_change
        self.resets = 0
        self._steps = 0

    def _attach(self, optimizer: torch.optim.Optimizer) -> None:
        if self.every:
            self._handles.append(optimizer.register_step_post_hook(self._post_step))

    def _post_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self._steps += 1
        if self._steps % self.every == 0:
            self.reset()

    def on_task_change(self) -> None:
        if self.at_change:
            self.reset()

    @torch.no_grad()
    def reset(self) -> None:
        """Draw every target afresh (see the module's docstring) and drop its optimizer state."""
        optimizer = self.optimizer
        gen = self.generator(torch.device("cpu"))
        for i, param in enumerate(self._params):
            # a buffer: a loaded method draws from the true initial values
            initial = getattr(self, f"initial_{i}")
            rule, a, b = _draw_rule(initial)
            fresh = torch.empty(param.shape, dtype=torch.float64)
            if rule == "orthogonal":
                nn.init.orthogonal_(fresh, gain=a, generator=gen)
            elif rule == "uniform":
                fresh.uniform_(a - 3**0.5 * b, a + 3**0.5 * b, generator=gen)
            else:
                fresh = initial
            param.copy_(fresh.to(device=param.device, dtype=param.dtype))
            if optimizer is not None:
                optimizer.state.pop(param, None)
        self.resets += 1

    def _state_tensors(self) -> dict[str, Tensor]:
        return {
            **super()._state_tensors(),
            "resets": torch.tensor(self.resets, dtype=torch.int64),
            "steps": torch.tensor(self._steps, dtype=torch.int64),
        }

    def _load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        super()._load_state_tensors(tensors)
        self.resets, self._steps = int(tensors["resets"]), int(tensors["steps"])


class ResetAll(ResetHead):
    """A fresh network and optimizer at each task change: every parameter reset (the control arm).

    Keyword arguments as :class:`ResetHead`; ``targets`` defaults to every parameter.
    """

    name = "reset-all"
    TARGETS = ("*",)
