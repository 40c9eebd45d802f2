"""What a supervised experiment is: the preset schema every experiment shares, its stages, and the
:class:`Experiment` base class (data, stacked model, loss, measurements) that :func:`syre_rl.supervised.train.train`
runs. The supervised side's counterpart of :mod:`syre_rl.rl.config`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor, nn

from syre_rl.cli import MAX_MEMBERS
from syre_rl.methods import check_adam_betas
from syre_rl.supervised.methods import Member, build_members, check_methods

__all__ = ["Experiment", "Stage", "SupervisedPreset"]


def _positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


@dataclass
class SupervisedPreset:
    """Fields every supervised experiment has (``experiments/<name>.yaml``); experiments add their own.

    :param methods: method names (the registry's: ``none``, ``l2``, ``syre``, ``l2-init``, ``shrink-perturb``,
        ``cbp``, ``redo``, ``dropout``), compared side by side in one stacked model; any mix.
    :param method_kwargs: settings of ``l2-init``, ``shrink-perturb``, ``cbp`` and ``redo`` (keyword arguments of
        their :mod:`syre_rl.methods` classes) by method name; unset ones keep the reference settings.
    :param weight_decay: decay strengths swept by ``l2`` and ``syre`` (``decay_mode`` says which convention).
    :param sigma0: anchor scales swept by ``syre`` (the anchor std is ``sigma0 / sqrt(fan_in)``).
    :param dropout: rates swept by the ``dropout`` method.
    :param seeds: members per setting; member seeds are ``seed, seed + 1, ...``.
    :param train_size: use the first examples only (0: all); for quick runs and tests.
    :param eval_size: test examples used for ranks and dead units (accuracy uses ``test_size``).
    :param optimizer_impl: ``fused`` (one kernel per step where the device supports it) or ``foreach``.
    :param adam_betas: Adam's betas for every member (``[0.99, 0.99]``: Dohare et al.'s "ns-adam").
    :param optimizer: ``adam`` (the paper's experiments) or ``sgd`` (plain SGD, e.g. the online regression of the
        plasticity benchmarks); elementwise either way, so the stacked members stay independent.
    """

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    methods: list[str] = field(default_factory=lambda: ["none", "syre"])
    weight_decay: list[float] = field(default_factory=lambda: [1e-2])
    sigma0: list[float] = field(default_factory=lambda: [1e-2])
    dropout: list[float] = field(default_factory=list)
    method_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)
    decay_mode: Literal["coupled", "decoupled"] = "coupled"
    seeds: int = 1
    seed: int = 0
    train_size: int = 0
    test_size: int = 0
    eval_size: int = 2000
    amp: bool = True
    optimizer_impl: Literal["fused", "foreach"] = "fused"
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    optimizer: Literal["adam", "sgd"] = "adam"

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "seeds", "eval_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"field {name!r} must be >= 1, got {getattr(self, name)}")
        for name in ("train_size", "test_size", "seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"field {name!r} must be >= 0, got {getattr(self, name)}")
        _positive("lr", self.lr)
        for name in ("weight_decay", "sigma0"):
            for v in getattr(self, name):
                if not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"field {name!r} values must be finite and >= 0, got {v!r}")
        if any(not 0 <= p < 1 for p in self.dropout):
            raise ValueError(f"field 'dropout' values must be in [0, 1), got {self.dropout}")
        check_adam_betas(self.adam_betas)
        check_methods(self.methods, self.method_kwargs)
        if self.member_count() > MAX_MEMBERS:  # bounded before any member is built
            raise ValueError(
                f"{self.member_count():,} members (methods x sweep values x seeds); at most {MAX_MEMBERS:,} train "
                "as one stacked model"
            )

    def member_count(self) -> int:
        """How many members :meth:`members` builds, computed without building them (an upper bound)."""
        values = max(1, len(self.weight_decay)) * max(1, len(self.sigma0)) + max(1, len(self.dropout))
        return len(self.methods) * values * self.seeds

    def members(self) -> list[Member]:
        seeds = range(self.seed, self.seed + self.seeds)
        return build_members(
            self.methods, seeds, self.weight_decay, self.sigma0, self.dropout, self.method_kwargs
        )


@dataclass(frozen=True)
class Stage:
    """One unit of training between measurements and checkpoints: an epoch of a task."""

    index: int
    task: int
    epoch: int


class Experiment:
    """What a supervised experiment trains and measures; :func:`train` runs it.

    Subclasses set :attr:`model` (stacked over :attr:`members`) in ``__init__`` and implement :meth:`batches`,
    :meth:`loss` and :meth:`evaluate`. Metrics are ``{key: [one value per member]}``.
    """

    name = ""
    schema: type[SupervisedPreset] = SupervisedPreset
    decay_include: str | list[str] | None = None  # Syre include patterns of the decayed parameters

    def __init__(
        self, cfg: SupervisedPreset, device: torch.device, data_dir: Path | None, download: bool
    ) -> None:
        self.cfg, self.device = cfg, device
        self.members = cfg.members()
        self.model: nn.Module = nn.Identity()

    @property
    def seeds(self) -> list[int]:
        return [m.seed for m in self.members]

    def stages(self) -> list[Stage]:
        return [Stage(i, 0, i) for i in range(self.cfg.epochs)]

    def start_stage(self, stage: Stage) -> dict[str, list[float]]:
        """Measurements before a stage's training (e.g. at a task's start)."""
        return {}

    def batches(self, stage: Stage) -> Iterator[Tensor]:
        raise NotImplementedError

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        """Each member's mean loss, ``[E]``; their sum is differentiated (each member gets its own gradient)."""
        raise NotImplementedError

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        raise NotImplementedError
