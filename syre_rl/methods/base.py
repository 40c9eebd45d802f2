"""What every plasticity method shares: it acts through an optimizer's step hooks, and it has a state.

Code that only calls ``optimizer.step()`` (SB3's ``PPO.train``, a supervised loop) then runs any method
unchanged. A method is an ``nn.Module`` so that its state (anchors, utilities, counters, random state) is saved by
``state_dict`` and moved by ``.to(device)``, like :class:`syre_rl.core.Syre`; it holds references to the model's
layers without registering them.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from syre_rl.core import draw_seed, patterns

__all__ = ["DEFAULT_EXCLUDE", "STATE_PREFIX", "PlasticityMethod", "SeededMethod", "exclude_patterns"]

# Parameters no method touches unless its ``include`` names them literally (``include=["*", "log_std"]``): SB3's
# state-independent exploration noise ``log_std`` (a policy setting, not a network weight). A method's
# ``exclude=`` adds to this list, it never replaces it.
DEFAULT_EXCLUDE: tuple[str, ...] = ("log_std",)

# A method's state beyond its registered buffers (generator states, counters, lists of varying length) is saved
# as tensors under keys that start with this prefix (no dots, so torch never mistakes them for submodules).
STATE_PREFIX = "state/"


def exclude_patterns(
    exclude: str | Iterable[str] | None, include: str | Iterable[str] | None = None
) -> tuple[str, ...]:
    """:data:`DEFAULT_EXCLUDE` (less what ``include`` names literally) plus the caller's ``exclude`` patterns."""
    named = set(patterns("include", include) or ())
    default = tuple(p for p in DEFAULT_EXCLUDE if p not in named)
    return default + tuple(p for p in patterns("exclude", exclude) or () if p not in default)


class PlasticityMethod(nn.Module):
    """A plasticity method for any model and ``torch.optim.Optimizer``: build it, then :meth:`attach` it.

    Each method class owns its settings: the keyword-only arguments of its constructor (and of its bases'
    constructors it passes ``**shared`` settings to), their defaults and their docs; :meth:`defaults` lists them.
    Its ``state_dict`` holds tensors only: buffers, plus what :meth:`_state_tensors` returns.
    """

    name: ClassVar[str]
    # Whether a policy carrying this method can be copied (deepcopy, pickle): the copy attaches it again.
    copyable: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self._handles: list[Any] = []
        self._optimizer: weakref.ref[torch.optim.Optimizer] | None = None

    # ------------------------------------------------------------------------------------------- settings
    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Setting name -> default: the keyword-only constructor arguments of this class and its bases."""
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if "__init__" not in vars(klass) or not issubclass(klass, PlasticityMethod):
                continue
            for p in inspect.signature(vars(klass)["__init__"]).parameters.values():
                if p.kind is inspect.Parameter.KEYWORD_ONLY:
                    out[p.name] = p.default
        return out

    @classmethod
    def policy_settings(cls, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """The settings a policy records for this method (its constructor parameters, saved by SB3)."""
        return dict(given or {})

    @classmethod
    def for_optimizer(
        cls, owner: nn.Module, optimizer: torch.optim.Optimizer, index: int, settings: Mapping[str, Any]
    ) -> nn.Module:
        """Build the method for ``owner`` (a policy, or its actor or critic) and attach it to ``optimizer``, the
        ``index``-th optimizer of the policy: what a policy carrying the method calls."""
        method = cls(owner, **settings)
        method.attach(optimizer)
        return method

    # ---------------------------------------------------------------------------------------- optimizer
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

    # -------------------------------------------------------------------------------------------- state
    def _state_tensors(self) -> dict[str, Tensor]:
        """State beyond the buffers, as tensors (name -> tensor; names without dots); saved as
        ``state/<name>``. A name with a slash is optional: a checkpoint may lack it."""
        return {}

    def _load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        """Restore what :meth:`_state_tensors` saved (``tensors``: name -> tensor, on the CPU or anywhere)."""

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        for name, tensor in self._state_tensors().items():
            destination[prefix + STATE_PREFIX + name] = tensor if keep_vars else tensor.detach()

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict[str, Any],
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        start = prefix + STATE_PREFIX
        mine = {k for k in state_dict if k.startswith(start) and "." not in k[len(prefix) :]}
        unexpected_keys[:] = [k for k in unexpected_keys if k not in mine]
        # Names with a slash are optional (generator states before the first draw, per-layer lists); the others
        # (seeds, counters) must be there.
        absent = [start + n for n in self._state_tensors() if "/" not in n and start + n not in mine]
        if absent:
            missing_keys.extend(absent)
            return
        try:
            self._load_state_tensors({k[len(start) :]: state_dict[k] for k in mine})
        except (KeyError, ValueError, RuntimeError, IndexError) as err:
            error_msgs.append(
                f"{prefix}{STATE_PREFIX}*: cannot load the state of {type(self).__name__}: {err}"
            )


class SeededMethod(PlasticityMethod):
    """A method that draws random numbers: one seeded generator per member, their states saved with the method.

    A plain model is one member. A stacked model (weights ``[members, ...]``, see ``syre_rl.supervised``) has one
    generator per member it acts on, so each member draws exactly what it would draw trained alone. The state
    dict holds the seeds (``state/seeds``) and, once the generators have drawn, their states
    (``state/generator/<member>``, uint8 tensors as :meth:`torch.Generator.get_state` gives them).

    :param seed: ``None`` draws one from torch's global generator (so ``torch.manual_seed`` fixes it); or one seed
        per member (a sequence).
    """

    def __init__(self, seed: int | Sequence[int] | None = None) -> None:
        super().__init__()
        if seed is None:
            seed = draw_seed()
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

    def _state_tensors(self) -> dict[str, Tensor]:
        states = (
            [g.get_state() for g in self._generators]
            if self._generators is not None
            else self._generator_states
        )
        out = {"seeds": torch.tensor(self.seeds, dtype=torch.int64)}
        for k, state in enumerate(states or []):
            out[f"generator/{k}"] = state
        return out

    def _load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        self.seeds = [int(s) for s in tensors["seeds"].tolist()]
        states = [tensors[f"generator/{k}"] for k in range(len(self.seeds)) if f"generator/{k}" in tensors]
        if states and len(states) != len(self.seeds):
            raise ValueError(f"{len(states)} generator states for {len(self.seeds)} seeds")
        self._generator_states = [s.detach().to("cpu", torch.uint8).clone() for s in states] or None
        self._generators = None
