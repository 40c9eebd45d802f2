"""The paper's supervised experiments (Ziyin, Xu & Chuang 2025, Section 6 and appendix), one class each.

Every experiment trains several members (methods x sweep values x seeds) as one stacked model through
:func:`syre_rl.supervised.train.train` and reports the paper's measurement per member. Presets live in
``experiments/<name>.yaml``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from syre_rl.plasticity.metrics import (
    dead_fraction,
    effective_rank,
    low_rank_fraction,
    srank_fraction,
    weight_symmetry,
)
from syre_rl.supervised.config import Experiment, Stage, SupervisedPreset
from syre_rl.supervised.continual import CONTINUAL
from syre_rl.supervised.data import (
    Dataset,
    epoch_batches,
    epoch_order,
    load_dataset,
    mix_seed,
    pixel_permutations,
)
from syre_rl.supervised.ensemble import StackedLinear, member_generators
from syre_rl.supervised.models import CNN, MLP, BetaVAE, ResNet18

__all__ = ["EXPERIMENTS"]

EVAL_CHUNK = 1000  # test examples per forward pass when measuring (bounds memory with many members)


def _per_member(hidden: list[Tensor], prefix: str) -> dict[str, list[float]]:
    """Rank and dead units of each hidden layer ``[E, batch, units]``, per member (shared metric functions)."""
    out: dict[str, list[float]] = {}
    for layer, acts in enumerate(hidden):
        acts = acts.float()
        out[f"{prefix}effective_rank/layer{layer}"] = [effective_rank(a) for a in acts]
        out[f"{prefix}srank_fraction/layer{layer}"] = [srank_fraction(a) for a in acts]
        out[f"{prefix}dead_fraction/layer{layer}"] = [dead_fraction(a) for a in acts]
    return out


def _stack(x: Tensor, members: int) -> Tensor:
    """The same examples for every member: ``[batch, ...] -> [E, batch, ...]`` (a view)."""
    return x.unsqueeze(0).expand(members, *x.shape)


def _load_split(
    name: str, cfg: SupervisedPreset, device: torch.device, data_dir: Path | None, download: bool
):
    train = load_dataset(name, data_dir, train=True, device=device, download=download).subset(cfg.train_size)
    test = load_dataset(name, data_dir, train=False, device=device, normalise_with=train).subset(
        cfg.test_size
    )
    return train, test


# ------------------------------------------------------------------------------------- teacher-student
@dataclass
class TeacherStudentPreset(SupervisedPreset):
    """:param identical_fraction: share of the student's hidden units that start identical (one cluster)."""

    in_features: int = 10
    teacher_hidden: int = 4
    student_hidden: int = 8
    identical_fraction: float = 0.5
    symmetry_tol: float = 1e-6

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.identical_fraction <= 1:
            raise ValueError(f"field 'identical_fraction' must be in [0, 1], got {self.identical_fraction}")


class TeacherStudent(Experiment):
    """Two-layer ReLU student started in a permutation-symmetric state, regressing a random teacher: the test
    loss, identical unit pairs and distinct hidden units (identical ones merged) of each member."""

    name = "teacher-student"
    schema = TeacherStudentPreset

    def __init__(self, cfg: TeacherStudentPreset, device, data_dir, download) -> None:
        super().__init__(cfg, device, data_dir, download)
        self.cfg: TeacherStudentPreset = cfg
        gen = torch.Generator().manual_seed(mix_seed(cfg.seed, "teacher"))
        teacher = MLP(cfg.in_features, [cfg.teacher_hidden], 1, [gen])
        n_train = cfg.train_size or 1024
        x = torch.randn(n_train + (cfg.test_size or 1024), 1, cfg.in_features, generator=gen)
        with torch.no_grad():
            y = teacher(x.transpose(0, 1)).transpose(0, 1)
        self.x_train, self.y_train = x[:n_train].to(device), y[:n_train].to(device)
        self.x_test, self.y_test = x[n_train:].to(device), y[n_train:].to(device)
        self.model = MLP(cfg.in_features, [cfg.student_hidden], 1, member_generators(self.seeds))
        self.identical = round(cfg.identical_fraction * cfg.student_hidden)
        with torch.no_grad():  # units 1..k-1 become copies of unit 0: in-weights, bias, out-weights
            first, last = self.model.layers
            first.weight[:, :, : self.identical] = first.weight[:, :, :1]
            first.bias[:, :, : self.identical] = first.bias[:, :, :1]
            last.weight[:, : self.identical] = last.weight[:, :1]

    def batches(self, stage: Stage) -> Iterator[Tensor]:
        return epoch_batches(
            epoch_order(len(self.x_train), self.seeds, stage.epoch, self.device), self.cfg.batch_size
        )

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        pred = self.model(self.x_train[batch, 0])
        return (pred - self.y_train[batch, 0]).square().mean(dim=(1, 2))

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        e = len(self.members)
        pred = self.model(_stack(self.x_test[:, 0], e))
        symmetry = [weight_symmetry(self.model.member(i), tol=self.cfg.symmetry_tol)[0] for i in range(e)]
        initial_distinct = self.cfg.student_hidden - max(self.identical - 1, 0)  # one cluster of copies
        return {
            "test/loss": (pred - _stack(self.y_test[:, 0], e)).square().mean(dim=(1, 2)).tolist(),
            "symmetry/identical_pairs": [float(s.identical_pairs) for s in symmetry],
            "symmetry/distinct_units": [float(s.distinct_units) for s in symmetry],
            "symmetry/min_pair_distance": [s.min_pair_distance for s in symmetry],
            "symmetry/initial_identical_pairs": [float(self.identical * (self.identical - 1) // 2)] * e,
            "symmetry/initial_distinct_units": [float(initial_distinct)] * e,
        }


# ----------------------------------------------------------------------------------- image classifiers
@dataclass
class MnistFcnPreset(SupervisedPreset):
    dataset: str = "mnist"
    hidden: list[int] = field(default_factory=lambda: [300, 300, 300, 300])


class Classifier(Experiment):
    """Image classification with cross-entropy: test accuracy, and rank / dead units of every hidden layer."""

    flatten = False
    dataset_name = "mnist"  # subclasses with a ``dataset`` preset field set it before this __init__

    def __init__(self, cfg, device, data_dir, download) -> None:
        super().__init__(cfg, device, data_dir, download)
        self.train_data, self.test_data = _load_split(self.dataset_name, cfg, device, data_dir, download)

    def inputs(self, data: Dataset, idx: Tensor, stage: Stage) -> Tensor:
        """Examples ``idx [E, batch]`` as the model's input (flattened for fully connected models)."""
        x = data.x[idx]
        return x.flatten(2) if self.flatten else x

    def batches(self, stage: Stage) -> Iterator[Tensor]:
        order = epoch_order(len(self.train_data), self.seeds, stage.index, self.device)
        return epoch_batches(order, self.cfg.batch_size)

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        logits = self.model(self.inputs(self.train_data, batch, stage))
        target = self.train_data.y[batch]
        return (
            F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), reduction="none")
            .view_as(target)
            .mean(1)
        )

    def accuracy(self, stage: Stage) -> list[float]:
        e, correct = len(self.members), 0
        idx = torch.arange(len(self.test_data), device=self.device)
        for chunk in idx.split(EVAL_CHUNK):
            logits = self.model(self.inputs(self.test_data, _stack(chunk, e), stage))
            correct = correct + (logits.argmax(-1) == self.test_data.y[chunk]).float().sum(1)
        return (correct / len(self.test_data)).tolist()

    def hidden_metrics(self, stage: Stage, prefix: str = "") -> dict[str, list[float]]:
        idx = _stack(
            torch.arange(min(self.cfg.eval_size, len(self.test_data)), device=self.device), len(self.members)
        )
        hidden: list[Tensor] = []
        self.model(self.inputs(self.test_data, idx, stage), hidden=hidden)
        return _per_member(hidden, prefix)

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        return {"test/accuracy": self.accuracy(stage), **self.hidden_metrics(stage, "test/")}


class MnistFcnWd(Classifier):
    """4x300 ReLU FCN on MNIST swept over weight decay (l2, syre) and dropout: accuracy and rank per layer."""

    name = "mnist-fcn-wd"
    schema = MnistFcnPreset
    flatten = True

    def __init__(self, cfg: MnistFcnPreset, device, data_dir, download) -> None:
        self.dataset_name = cfg.dataset
        super().__init__(cfg, device, data_dir, download)
        dropout = [m.dropout for m in self.members]
        self.model = MLP(784, cfg.hidden, 10, member_generators(self.seeds), dropout=dropout)


class MnistCnn(Classifier):
    """Small CNN on MNIST: accuracy and the rank of its hidden layers, none vs l2 vs syre."""

    name = "mnist-cnn"

    def __init__(self, cfg: SupervisedPreset, device, data_dir, download) -> None:
        super().__init__(cfg, device, data_dir, download)
        self.model = CNN(member_generators(self.seeds))


@dataclass
class PermutedMnistPreset(MnistFcnPreset):
    """:param tasks: the original images then ``tasks - 1`` pixel permutations; ``epochs`` is per task."""

    tasks: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tasks < 1:
            raise ValueError(f"field 'tasks' must be >= 1, got {self.tasks}")


class PermutedMnist(MnistFcnWd):
    """Continual learning over pixel-permuted MNIST: per-task accuracy, new-task accuracy, and rank and dead
    units at each task's start (measured on the new task's inputs before training on them)."""

    name = "permuted-mnist"
    schema = PermutedMnistPreset

    def __init__(self, cfg: PermutedMnistPreset, device, data_dir, download) -> None:
        super().__init__(cfg, device, data_dir, download)
        self.permutations = pixel_permutations(cfg.tasks, 784, cfg.seed, device)

    def stages(self) -> list[Stage]:
        epochs = self.cfg.epochs
        return [Stage(i, i // epochs, i % epochs) for i in range(self.cfg.tasks * epochs)]

    def inputs(self, data: Dataset, idx: Tensor, stage: Stage) -> Tensor:
        return data.x.flatten(1)[idx][..., self.permutations[stage.task]]

    def start_stage(self, stage: Stage) -> dict[str, list[float]]:
        return self.hidden_metrics(stage) if stage.epoch == 0 else {}

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        if stage.epoch != self.cfg.epochs - 1:
            return {"test/accuracy": self.accuracy(stage)}
        per_task = {
            f"tasks/accuracy_task{t}": self.accuracy(Stage(stage.index, t, 0)) for t in range(stage.task + 1)
        }
        mean = torch.tensor(list(per_task.values())).mean(0).tolist()
        return {
            "test/accuracy": per_task[f"tasks/accuracy_task{stage.task}"],
            "tasks/mean_accuracy": mean,
            **per_task,
        }


# --------------------------------------------------------------------------------------------- beta-VAE
@dataclass
class BetaVaePreset(SupervisedPreset):
    dataset: str = "fashion-mnist"
    beta: float = 10.0
    latent: int = 10
    hidden: int = 256
    active_threshold: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (math.isfinite(self.beta) and self.beta >= 0) or self.latent < 1 or self.hidden < 1:
            raise ValueError("fields 'beta' >= 0, 'latent' >= 1 and 'hidden' >= 1 required")


class BetaVae(Classifier):
    """beta-VAE on Fashion-MNIST, decay (l2 or syre) on the encoder only: the rank of the encoder's mean,
    active latent units (variance of the mean over the data > threshold; Burda et al.) and reconstruction."""

    name = "beta-vae"
    schema = BetaVaePreset
    decay_include = "encoder.*"
    flatten = True

    def __init__(self, cfg: BetaVaePreset, device, data_dir, download) -> None:
        self.dataset_name = cfg.dataset
        super().__init__(cfg, device, data_dir, download)
        self.cfg: BetaVaePreset = cfg
        self.model = BetaVAE(member_generators(self.seeds), 784, cfg.hidden, cfg.latent)

    def _terms(self, data: Dataset, idx: Tensor, stage: Stage) -> tuple[Tensor, Tensor, Tensor]:
        x = self.inputs(data, idx, stage)
        pixels = (x * data.std.flatten() + data.mean.flatten()).clamp(0, 1)  # Bernoulli targets in [0, 1]
        logits, mu, logvar = self.model(x)
        recon = F.binary_cross_entropy_with_logits(logits.float(), pixels, reduction="none").sum(-1).mean(1)
        kl = (0.5 * (mu.float().square() + logvar.float().exp() - 1 - logvar.float())).sum(-1).mean(1)
        return recon, kl, mu

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        recon, kl, _ = self._terms(self.train_data, batch, stage)
        return recon + self.cfg.beta * kl

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        idx = _stack(
            torch.arange(min(self.cfg.eval_size, len(self.test_data)), device=self.device), len(self.members)
        )
        recon, kl, mu = self._terms(self.test_data, idx, stage)
        mu = mu.float()
        return {
            "test/recon_loss": recon.tolist(),
            "test/kl": kl.tolist(),
            "encoder/mean_effective_rank": [effective_rank(m) for m in mu],
            "encoder/active_units": (mu.var(dim=1) > self.cfg.active_threshold).float().sum(-1).tolist(),
        }


# ------------------------------------------------------------------------------------------- CIFAR nets
def augment(
    x: Tensor,
    generator: torch.Generator | None = None,
    scale: tuple[float, float] = (1.0, 1.0),
    shift: float = 0.125,
    brightness: float = 0.0,
) -> Tensor:
    """Random crops (scale and shift), horizontal flips and brightness on the device, one affine resampling per
    image: ``x [E, batch, C, H, W]``."""
    n = x.shape[0] * x.shape[1]
    rand = torch.rand(n, 5, device=x.device, generator=generator)
    zoom = scale[0] + (scale[1] - scale[0]) * rand[:, 0]
    flip = torch.where(rand[:, 1] < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3, device=x.device)
    theta[:, 0, 0], theta[:, 1, 1] = zoom.sqrt() * flip, zoom.sqrt()
    theta[:, :, 2] = (rand[:, 2:4] * 2 - 1) * shift * 2
    flat = x.flatten(0, 1).float()
    grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
    out = F.grid_sample(flat, grid, padding_mode="reflection", align_corners=False)
    if brightness:
        out = out + (rand[:, 4:5, None, None] * 2 - 1) * brightness
    return out.view_as(x).to(x.dtype)


@dataclass
class Cifar10ResnetPreset(SupervisedPreset):
    dataset: str = "cifar10"
    width: int = 64


class Cifar10Resnet(Classifier):
    """ResNet-18 on CIFAR-10 over a sigma0 sweep: syre should leave the accuracy unchanged (compatibility)."""

    name = "cifar10-resnet"
    schema = Cifar10ResnetPreset

    def __init__(self, cfg: Cifar10ResnetPreset, device, data_dir, download) -> None:
        self.dataset_name = cfg.dataset
        super().__init__(cfg, device, data_dir, download)
        self.model = ResNet18(member_generators(self.seeds), self.train_data.num_classes, cfg.width)

    def inputs(self, data: Dataset, idx: Tensor, stage: Stage) -> Tensor:
        x = data.x[idx]
        return augment(x) if self.model.training else x


@dataclass
class SimclrPreset(SupervisedPreset):
    dataset: str = "cifar100"
    width: int = 64
    projection_dim: int = 128
    temperature: float = 0.5
    probe_steps: int = 300
    probe_lr: float = 1e-2
    probe_train_size: int = 10000


class Simclr(Classifier):
    """SimCLR (Chen et al. 2020): ResNet-18 + two-layer projection head, NT-Xent loss. Measured per member:
    linear-probe accuracy on the last layer (head output), the penultimate (head hidden) and the backbone,
    and the share of near-zero eigenvalues of each one's feature covariance (``low_rank_fraction``)."""

    name = "simclr"
    schema = SimclrPreset

    def __init__(self, cfg: SimclrPreset, device, data_dir, download) -> None:
        self.dataset_name = cfg.dataset
        super().__init__(cfg, device, data_dir, download)
        self.cfg: SimclrPreset = cfg
        gens = member_generators(self.seeds)
        backbone = ResNet18(gens, 0, cfg.width)
        self.model = nn.ModuleDict(
            {
                "backbone": backbone,
                "head": MLP(backbone.feature_dim, [backbone.feature_dim], cfg.projection_dim, gens),
            }
        )

    def _features(self, x: Tensor) -> list[Tensor]:
        """``[backbone, head hidden (penultimate), head output (last)]``, each ``[E, batch, d]``."""
        hidden: list[Tensor] = []
        h = self.model["backbone"](x)
        z = self.model["head"](h, hidden=hidden)
        return [h, hidden[0], z]

    def loss(self, batch: Tensor, stage: Stage) -> Tensor:
        x = self.train_data.x[batch]
        views = torch.cat(
            [augment(x, scale=(0.3, 1.0), brightness=0.4), augment(x, scale=(0.3, 1.0), brightness=0.4)], 1
        )
        z = F.normalize(self._features(views)[-1].float(), dim=-1)  # [E, 2B, d]
        n = z.shape[1] // 2
        sim = torch.bmm(z, z.transpose(1, 2)) / self.cfg.temperature
        sim = sim - torch.eye(2 * n, device=z.device) * 1e9  # no self-pairs
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
        return (
            F.cross_entropy(sim.flatten(0, 1), target.repeat(z.shape[0]), reduction="none")
            .view(-1, 2 * n)
            .mean(1)
        )

    def _embed(self, data: Dataset, n: int) -> list[Tensor]:
        idx = torch.arange(min(n, len(data)), device=self.device)
        chunks = [self._features(data.x[_stack(c, len(self.members))]) for c in idx.split(EVAL_CHUNK)]
        return [torch.cat([c[k] for c in chunks], 1).float() for k in range(3)]

    def _probe(self, train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor) -> list[float]:
        """Multinomial logistic regression on frozen features, all members at once (full-batch Adam)."""
        mean, std = train_x.mean(1, keepdim=True), train_x.std(1, keepdim=True) + 1e-6
        train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
        classes = self.train_data.num_classes
        probe = StackedLinear(train_x.shape[-1], classes, member_generators([0] * len(self.members))).to(
            self.device
        )
        opt = torch.optim.Adam(probe.parameters(), lr=self.cfg.probe_lr)
        with torch.enable_grad():
            for _ in range(self.cfg.probe_steps):
                logits = probe(train_x)
                loss = F.cross_entropy(logits.flatten(0, 1), train_y.repeat(len(self.members)))
                opt.zero_grad()
                (loss * len(self.members)).backward()
                opt.step()
        return (probe(test_x).argmax(-1) == test_y).float().mean(1).tolist()

    def evaluate(self, stage: Stage) -> dict[str, list[float]]:
        train = self._embed(self.train_data, self.cfg.probe_train_size)
        test = self._embed(self.test_data, len(self.test_data))
        ntr, nte = train[0].shape[1], test[0].shape[1]
        out: dict[str, list[float]] = {}
        for name, tr, te in zip(("backbone", "penultimate", "last"), train, test, strict=True):
            out[f"probe/{name}_accuracy"] = self._probe(
                tr, self.train_data.y[:ntr], te, self.test_data.y[:nte]
            )
            out[f"features/{name}_low_rank_fraction"] = [low_rank_fraction(f) for f in te]
            out[f"features/{name}_effective_rank"] = [effective_rank(f) for f in te]
        return out


EXPERIMENTS: dict[str, type[Experiment]] = {
    cls.name: cls
    for cls in (
        TeacherStudent,
        MnistFcnWd,
        MnistCnn,
        BetaVae,
        Simclr,
        Cifar10Resnet,
        PermutedMnist,
        *CONTINUAL,
    )
}
