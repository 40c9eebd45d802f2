"""Continual-learning benchmarks in which a plain network loses plasticity, on the stacked pipeline.

Three settings from the plasticity literature, each an :class:`~syre_rl.supervised.config.Experiment`:

- ``kumar-permuted-mnist`` (Kumar et al. 2023, repository skumar9876/L2_Init): every task draws its own 10,000
  training images and a new pixel permutation (task 0: the original pixels), 625 steps of batch 16 per task,
  MLP 784-100-100-10 ReLU with PyTorch's default init, Adam. Plasticity figure: average online training accuracy
  of each task (each batch scored before the step on it).
- ``random-label-mnist`` (Kumar et al. 2023; Lyle et al. 2023): a fixed set of images whose labels are shuffled
  among them at every task (task 0 included), so each task is a fresh memorisation problem. Plasticity figure:
  training accuracy on the whole set at the end of each task.
- ``bit-flipping`` (Dohare et al. 2024, ``lop/slowly_changing_regression``): 20 input bits, 15 of them slow
  (fixed for ``flip_every`` examples, then one of them flipped, or all redrawn), 5 random every example; the
  target is a fixed random network of 100 linear threshold units; the learner, one hidden layer of 5 ReLU,
  trains online with SGD at batch 1. Plasticity figure: mean squared error of each ``flip_every``-example bin.

Every random choice of a member's data stream (image subsets, permutations, labels, target network, bit flips,
batch order) is a function of the member's seed and the task, so members that share a seed (the arms of one
seed) see the same stream, and a resumed run sees what it would have seen. Each member's initial weights come
from its own seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from syre_rl.plasticity.metrics import dead_fraction, effective_rank
from syre_rl.supervised.config import Experiment, Stage, SupervisedPreset
from syre_rl.supervised.data import load_dataset, mix_seed
from syre_rl.supervised.ensemble import member_generators
from syre_rl.supervised.models import MLP

__all__ = [
    "BitFlipping",
    "BitFlippingPreset",
    "KumarPermutedMnist",
    "RandomLabelMnist",
    "bit_flip_schedule",
    "kumar_pixels",
    "plasticity_change",
    "target_network",
]


def _generator(*parts: int | str) -> torch.Generator:
    return torch.Generator().manual_seed(mix_seed(*parts))


def _last_hidden(hidden: list[Tensor]) -> dict[str, list[float]]:
    """Effective rank and dead share of the last hidden layer ``[E, batch, units]``, per member."""
    if not hidden:
        return {}
    acts = hidden[-1].float()
    return {
        "hidden/effective_rank": [effective_rank(a) for a in acts],
        "hidden/dead_fraction": [dead_fraction(a) for a in acts],
    }


def plasticity_change(curves: Tensor | Sequence[Sequence[float]], share: float = 0.1) -> Tensor:
    """Per seed, the mean of the last ``share`` of a curve minus the mean of its first ``share``: ``[seeds]``.

    ``curves`` is ``[seeds, tasks]``; each end takes ``max(1, round(share * tasks))`` tasks.
    """
    curves = torch.as_tensor(curves, dtype=torch.float64)
    k = max(1, round(share * curves.shape[1]))
    return curves[:, -k:].mean(1) - curves[:, :k].mean(1)


# --------------------------------------------------------------------------------------- MNIST streams
@dataclass
class ContinualMnistPreset(SupervisedPreset):
    """:param tasks: number of tasks. :param steps_per_task: optimizer steps per task.
    :param task_size: training images a task uses."""

    tasks: int = 500
    steps_per_task: int = 625
    task_size: int = 10000
    hidden: list[int] = field(default_factory=lambda: [100, 100])
    batch_size: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("tasks", "steps_per_task", "task_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"field {name!r} must be >= 1, got {getattr(self, name)}")
        if self.task_size > 60000:
            raise ValueError(
                f"field 'task_size' must be <= 60000 (MNIST's training split), got {self.task_size}"
            )


def kumar_pixels(images: Tensor) -> Tensor:
    """MNIST as Kumar et al. feed it: pixels in [0, 1] mapped to [-1, 1] (``Normalize(0.5, 0.5)``), flattened."""
    return images.flatten(1) * 2 - 1


def _orders(n: int, length: int, seeds: Sequence[int], task: int, device: torch.device) -> Tensor:
    """``[members, length]`` indices into ``range(n)``: shuffled epochs, concatenated, per (seed, task)."""
    rows = []
    for seed in seeds:
        gen = _generator(seed, task, "order")
        epochs = [torch.randperm(n, generator=gen) for _ in range(-(-length // n))]
        rows.append(torch.cat(epochs)[:length])
    return torch.stack(rows).to(device)


class _ContinualMnist(Experiment):
    """Shared parts: MNIST pixels in [-1, 1] on the device, the MLP, one stage per task, online accuracy."""

    schema = ContinualMnistPreset

    def __init__(self, cfg: ContinualMnistPreset, device, data_dir: Path | None, download: bool) -> None:
        super().__init__(cfg, device, data_dir, download)
        self.cfg: ContinualMnistPreset = cfg
        data = load_dataset("mnist", data_dir, train=True, device=device, download=download)
        self.x = kumar_pixels(data.x * data.std + data.mean)  # [60000, 784]
        self.y = data.y
        self.model = MLP(784, cfg.hidden, 10, member_generators(self.seeds))
        # Tensors, not Python numbers: a graphed step (train's step="graph") replays tensor updates only.
        self._correct = torch.zeros(len(self.members), device=device)
        self._seen = torch.zeros((), device=device)

    def stages(self) -> list[Stage]:
        return [Stage(t, t, 0) for t in range(self.cfg.tasks)]

    def _inputs(self, idx: Tensor) -> Tensor:
        """Examples ``idx [E, batch]`` (rows of :attr:`x`) as each member sees them in the current task."""
        return self.x[idx]

    def _labels(self, idx: Tensor) -> Tensor:
        return self.y[idx]

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        logits = self.model(self._inputs(batch))
        target = self._labels(batch)
        self._correct += (logits.argmax(-1) == target).float().sum(1)
        self._seen += target.shape[1]
        return (
            F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), reduction="none")
            .view_as(target)
            .mean(1)
        )

    def _start_online(self) -> None:
        self._correct.zero_()
        self._seen.zero_()

    def _online_accuracy(self) -> list[float]:
        return (self._correct / self._seen.clamp(min=1)).tolist()


class KumarPermutedMnist(_ContinualMnist):
    """Permuted MNIST of Kumar et al. 2023: per task its own image subset, pixel permutation and batch order."""

    name = "kumar-permuted-mnist"

    def _prepare(self, task: int) -> None:
        cfg, n = self.cfg, len(self.x)
        subsets, perms = [], []
        for seed in self.seeds:
            subsets.append(torch.randperm(n, generator=_generator(seed, task, "subset"))[: cfg.task_size])
            perms.append(
                torch.arange(784)
                if task == 0
                else torch.randperm(784, generator=_generator(seed, task, "pixels"))
            )
        self.subsets = torch.stack(subsets).to(self.device)  # [E, task_size]
        self.perms = torch.stack(perms).to(self.device)  # [E, 784]
        self.task = task

    def _inputs(self, idx: Tensor) -> Tensor:
        x = self.x[idx]
        return torch.gather(x, 2, self.perms[:, None, :].expand_as(x))

    def batches(self, stage: Stage) -> Iterator[Tensor]:
        self._prepare(stage.task)
        self._start_online()
        cfg = self.cfg
        order = _orders(
            cfg.task_size, cfg.steps_per_task * cfg.batch_size, self.seeds, stage.task, self.device
        )
        rows = torch.gather(self.subsets, 1, order)
        return iter(rows.split(cfg.batch_size, dim=1))

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        hidden: list[Tensor] = []
        self.model(self._inputs(self.subsets[:, : self.cfg.eval_size]), hidden=hidden)
        return {"train/online_accuracy": self._online_accuracy(), **_last_hidden(hidden)}


class RandomLabelMnist(_ContinualMnist):
    """Random-label MNIST: a fixed image set per seed, its labels shuffled among the images at every task."""

    name = "random-label-mnist"

    def __init__(self, cfg: ContinualMnistPreset, device, data_dir: Path | None, download: bool) -> None:
        super().__init__(cfg, device, data_dir, download)
        n = len(self.x)
        self.images = torch.stack(
            [torch.randperm(n, generator=_generator(s, "subset"))[: cfg.task_size] for s in self.seeds]
        ).to(device)  # [E, task_size] rows of x, fixed for the whole run

    def task_labels(self, task: int) -> Tensor:
        """``[E, task_size]`` labels of task ``task``: the images' true labels shuffled among them."""
        true = self.y[self.images]
        shuffles = torch.stack(
            [torch.randperm(self.cfg.task_size, generator=_generator(s, task, "labels")) for s in self.seeds]
        ).to(self.device)
        return torch.gather(true, 1, shuffles)

    def batches(self, stage: Stage) -> Iterator[Tensor]:
        self.labels = self.task_labels(stage.task)
        self._start_online()
        cfg = self.cfg
        order = _orders(
            cfg.task_size, cfg.steps_per_task * cfg.batch_size, self.seeds, stage.task, self.device
        )
        return iter(order.split(cfg.batch_size, dim=1))  # positions in the member's image set

    def _inputs(self, idx: Tensor) -> Tensor:
        return self.x[torch.gather(self.images, 1, idx)]

    def _labels(self, idx: Tensor) -> Tensor:
        return torch.gather(self.labels, 1, idx)

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        e, n = len(self.members), self.cfg.task_size
        correct = torch.zeros(e, device=self.device)
        hidden: list[Tensor] = []
        for i, chunk in enumerate(torch.arange(n, device=self.device).split(2000)):
            idx = chunk.expand(e, -1)
            logits = self.model(self._inputs(idx), hidden=hidden if i == 0 else None)
            correct += (logits.argmax(-1) == self._labels(idx)).float().sum(1)
        return {
            "train/task_accuracy": (correct / n).tolist(),
            "train/online_accuracy": self._online_accuracy(),
            **_last_hidden(hidden),
        }


# ------------------------------------------------------------------------------------------ bit flipping
@dataclass
class BitFlippingPreset(SupervisedPreset):
    """Slowly-changing regression (Dohare et al. 2024).

    :param bins: stages of ``flip_every`` examples each (the run sees ``bins * flip_every`` examples).
    :param flip: ``one`` (one slow bit flips per period: the problem as the paper describes it) or ``all`` (all
        slow bits redrawn per period: the data of the source's default ``cfg/prob.json``).
    :param hidden: the learner's hidden widths (``[]``: the linear baseline).
    """

    bins: int = 100
    flip_every: int = 10000
    inputs: int = 20
    slow_bits: int = 15
    target_hidden: int = 100
    beta: float = 0.7
    flip: Literal["one", "all"] = "all"
    hidden: list[int] = field(default_factory=lambda: [5])
    batch_size: int = 1
    lr: float = 0.01
    optimizer: Literal["adam", "sgd"] = "sgd"
    methods: list[str] = field(default_factory=lambda: ["none"])
    eval_size: int = 1000

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("bins", "flip_every", "inputs", "target_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"field {name!r} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.slow_bits <= self.inputs:
            raise ValueError(f"field 'slow_bits' must be in [0, inputs], got {self.slow_bits}")
        if self.batch_size != 1:
            raise ValueError(f"field 'batch_size' must be 1 (online learning), got {self.batch_size}")


def target_network(seed: int, inputs: int, hidden: int, beta: float) -> dict[str, Tensor]:
    """The source's fixed target network (``FixLTUNet``): weights and biases drawn from {-1, +1}; unit ``j`` fires
    (outputs 1) when its pre-activation exceeds ``tau_j = beta * (inputs + 1) - S_j``, with
    ``S_j = (inputs - sum_i w_ij + b_j) / 2``; the output is linear in the units plus a bias."""
    gen = _generator(seed, "target")

    def signs(*shape: int) -> Tensor:
        return torch.randint(0, 2, shape, generator=gen).float() * 2 - 1

    w1, b1, w2, b2 = signs(inputs, hidden), signs(hidden), signs(hidden), signs(1)
    s = (inputs - w1.sum(0) + b1) / 2
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "tau": beta * (inputs + 1) - s}


def target_output(net: dict[str, Tensor], x: Tensor) -> Tensor:
    """``x [..., inputs] -> [...]``: the target network's output."""
    units = (x @ net["w1"] + net["b1"] > net["tau"]).float()
    return units @ net["w2"] + net["b2"]


def bit_flip_schedule(seed: int, periods: int, slow_bits: int, flip: str) -> Tensor:
    """``[periods, slow_bits]`` values of the slow bits per period: random at first; then each period flips one
    random bit of the previous (``flip="one"``) or redraws them all (``"all"``)."""
    gen = _generator(seed, "flips")
    bits = torch.randint(0, 2, (periods, slow_bits), generator=gen).float()
    if flip == "one" and slow_bits:
        for i in range(1, periods):
            bits[i] = bits[i - 1]
            j = int(torch.randint(slow_bits, (1,), generator=gen))
            bits[i, j] = 1 - bits[i, j]
    return bits


class BitFlipping(Experiment):
    """Online regression of a fixed target network on slowly changing bits; one stage per flip period."""

    name = "bit-flipping"
    schema = BitFlippingPreset

    def __init__(self, cfg: BitFlippingPreset, device, data_dir: Path | None, download: bool) -> None:
        super().__init__(cfg, device, data_dir, download)
        self.cfg: BitFlippingPreset = cfg
        nets = [target_network(s, cfg.inputs, cfg.target_hidden, cfg.beta) for s in self.seeds]
        self.target = {k: torch.stack([n[k] for n in nets]).to(device) for k in nets[0]}
        self.schedule = torch.stack(
            [bit_flip_schedule(s, cfg.bins, cfg.slow_bits, cfg.flip) for s in self.seeds]
        ).to(device)  # [E, bins, slow_bits]
        self.model = MLP(cfg.inputs, cfg.hidden, 1, member_generators(self.seeds))
        self._learner_init()

    def stages(self) -> list[Stage]:
        return [Stage(i, i, 0) for i in range(self.cfg.bins)]

    def _learner_init(self) -> None:
        """The source's learner init: Kaiming-uniform weights (ReLU gain into hidden units, linear gain into the
        output), zero biases; member ``e`` from its own seed."""
        layers = self.model.layers
        with torch.no_grad():
            for e, seed in enumerate(self.seeds):
                gen = _generator(seed, "learner-init")
                for i, layer in enumerate(layers):
                    gain = 1.0 if i == len(layers) - 1 else math.sqrt(2.0)
                    bound = gain * math.sqrt(3.0 / layer.in_features)
                    w = torch.rand(layer.in_features, layer.out_features, generator=gen) * 2 * bound - bound
                    layer.weight[e] = w
                    layer.bias[e] = 0.0

    def stream(self, stage: Stage) -> tuple[Tensor, Tensor]:
        """The stage's examples ``x [E, flip_every, inputs]`` and targets ``[E, flip_every]``."""
        cfg = self.cfg
        random_bits = (
            torch.stack(
                [
                    torch.randint(
                        0,
                        2,
                        (cfg.flip_every, cfg.inputs - cfg.slow_bits),
                        generator=_generator(s, stage.index, "bits"),
                    )
                    for s in self.seeds
                ]
            )
            .float()
            .to(self.device)
        )
        slow = self.schedule[:, stage.index, None, :].expand(-1, cfg.flip_every, -1)
        x = torch.cat([slow, random_bits], dim=2)
        y = torch.stack(
            [target_output({k: v[e] for k, v in self.target.items()}, x[e]) for e in range(len(x))]
        )
        return x, y

    def batches(self, stage: Stage) -> Iterator[Tensor]:
        x, y = self.stream(stage)
        self._last = x[:, -self.cfg.eval_size :]
        data = torch.cat([x, y[..., None]], dim=2)  # [E, n, inputs + 1]
        return iter(data.split(1, dim=1))

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        pred = self.model(batch[..., :-1])
        return (pred[..., 0] - batch[..., -1]).square().mean(1)

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        hidden: list[Tensor] = []
        self.model(self._last, hidden=hidden)
        return _last_hidden(hidden)


CONTINUAL: tuple[type[Experiment], ...] = (KumarPermutedMnist, RandomLabelMnist, BitFlipping)
