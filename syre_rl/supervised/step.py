"""The training step of the supervised pipeline: one optimizer over the stacked members, the eager step, and
the same step captured as a CUDA graph (:class:`GraphedStep`)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from syre_rl.supervised.config import Experiment, Stage, SupervisedPreset
from syre_rl.supervised.methods import UNIT_METHODS

__all__ = ["GRAPH_WARMUP", "STEP_MODES", "UNGRAPHABLE_METHODS", "GraphedStep", "eager_step", "make_optimizer"]

STEP_MODES = ("eager", "graph")
# Eager steps before a capture: CUDA's lazy initialisation (cuBLAS handles, optimizer state) happens outside it.
GRAPH_WARMUP = 3
# Methods that act between steps with host-side counters, utilities and their own generators (Shrink & Perturb,
# CBP, ReDo), which a CUDA graph does not replay.
UNGRAPHABLE_METHODS = UNIT_METHODS


def make_optimizer(
    model: nn.Module, cfg: SupervisedPreset, capturable: bool = False
) -> torch.optim.Optimizer:
    """One Adam (or SGD) over all stacked members (elementwise, so it is ``E`` independent optimizers).

    :param capturable: keep Adam's step counts on the device, as a CUDA graph of the step needs (SGD keeps none).
    """
    impl = {"fused": True} if cfg.optimizer_impl == "fused" else {"foreach": True}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, **impl)
    return torch.optim.Adam(
        model.parameters(), lr=cfg.lr, betas=tuple(cfg.adam_betas), capturable=capturable, **impl
    )


# ------------------------------------------------------------------------------------------------ steps
def eager_step(
    experiment: Experiment,
    optimizer: torch.optim.Optimizer,
    stage: Stage,
    autocast: dict[str, Any],
    total: Tensor,
    batch: Tensor,
) -> None:
    """One training step: each member's loss on ``batch``, backward, the optimizer step; adds the losses to
    ``total``."""
    with torch.autocast(**autocast):
        losses = experiment.loss(batch, stage).float()
    optimizer.zero_grad(set_to_none=True)
    losses.sum().backward()
    optimizer.step()
    total += losses.detach()


class _EagerGraph:
    """Where CUDA graphs do not exist (CPU): "replay" runs the recorded step again, from the same static input,
    so the graphed path's logic runs, and is tested, everywhere."""

    def __init__(self, step: Callable[[], None]) -> None:
        self.replay = step


class GraphedStep:
    """The whole training step of one stage as a CUDA graph: :data:`GRAPH_WARMUP` eager steps, then one capture,
    then one replay per full batch, the batch's indices copied into the graph's static input on the device. A
    short batch (an epoch's last) runs eagerly. A new stage needs a new capture (its task, e.g. a pixel
    permutation, is part of the graph).

    The step is the eager one, kernel for kernel: syre's and the other methods' optimizer hooks run inside the
    capture. The optimizer must be capturable on CUDA (:func:`make_optimizer`).
    """

    def __init__(
        self,
        experiment: Experiment,
        optimizer: torch.optim.Optimizer,
        stage: Stage,
        autocast: dict[str, Any],
        total: Tensor,
    ) -> None:
        # Autocast's weight-cast cache would hand the graph tensors freed after the capture.
        self._step = functools.partial(
            eager_step, experiment, optimizer, stage, {**autocast, "cache_enabled": False}, total
        )
        self.cuda = total.device.type == "cuda"
        self.warmup = GRAPH_WARMUP
        self.static: Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | _EagerGraph | None = None
        self.optimizer = optimizer
        self.replays = 0

    def __call__(self, batch: Tensor) -> None:
        if self.graph is None and self.warmup > 0:
            self._eager(batch)
            self.warmup -= 1
            return
        if self.graph is None:
            self._capture(batch)
        if batch.shape != self.static.shape:  # type: ignore[union-attr]
            self._eager(batch)
            return
        self.static.copy_(batch)  # type: ignore[union-attr]
        self.graph.replay()  # type: ignore[union-attr]
        self.replays += 1

    def _eager(self, batch: Tensor) -> None:
        if not self.cuda:
            self._step(batch)
            return
        # CUDA's recipe: warm-up (and any eager step between replays) on a side stream.
        side = torch.cuda.Stream(device=batch.device)
        side.wait_stream(torch.cuda.current_stream(batch.device))
        with torch.cuda.stream(side):
            self._step(batch)
        torch.cuda.current_stream(batch.device).wait_stream(side)

    def _capture(self, batch: Tensor) -> None:
        self.static = batch.clone()
        self.optimizer.zero_grad(set_to_none=True)  # the graph allocates the gradients it writes
        if self.cuda:
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._step(self.static)
        else:
            self.graph = _EagerGraph(functools.partial(self._step, self.static))
