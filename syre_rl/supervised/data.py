"""Datasets as tensors on the training device, and batches drawn from them by index.

A whole dataset (MNIST is 47 MB as uint8) fits on any training device, so there is no DataLoader: an epoch is a
permutation of the example indices drawn on the device, and a batch is one gather. Continual tasks permute the
pixels with one more gather. Nothing here crosses the host-device boundary inside the training loop.

Files are read from a torchvision-style root: ``ROOT/MNIST/raw/*-ubyte[.gz]``, ``ROOT/FashionMNIST/raw/...``,
``ROOT/cifar-10-batches-py/``, ``ROOT/cifar-100-python/``; the root is ``--data-dir``, else ``$SYRE_RL_DATA``, else
the per-user cache folder (:mod:`syre_rl.supervised.download`). ``download=True`` fetches missing files there,
checked and atomically.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from syre_rl.cli import UsageError
from syre_rl.supervised.download import DownloadError, resolve_data_dir
from syre_rl.supervised.download import download as fetch

__all__ = [
    "DATASETS",
    "DataError",
    "Dataset",
    "default_data_dir",
    "epoch_batches",
    "epoch_order",
    "load_dataset",
    "mix_seed",
    "pixel_permutations",
]

DATASETS = ("mnist", "fashion-mnist", "cifar10", "cifar100")
_IDX_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
MISSING_HINT = (
    "(pass --data-dir, set SYRE_RL_DATA, or fetch it: --download, or python -m syre_rl.supervised.download NAME)"
)


class DataError(UsageError):
    """A dataset file is missing, truncated or malformed; the message names the file and where it looked."""


def default_data_dir() -> Path:
    """``$SYRE_RL_DATA`` if set, else the per-user cache folder (see :func:`~syre_rl.supervised.download.cache_dir`)."""
    return resolve_data_dir()


@dataclass
class Dataset:
    """One split of a dataset on a device: ``x`` float in ``[batch, *shape]`` (standardised), ``y`` int64 labels."""

    name: str
    x: Tensor
    y: Tensor
    num_classes: int
    mean: Tensor  # per-channel statistics the standardisation used, [1, channels, 1, 1]
    std: Tensor

    def __len__(self) -> int:
        return self.x.shape[0]

    def to(self, device: torch.device | str) -> Dataset:
        return Dataset(
            self.name,
            self.x.to(device),
            self.y.to(device),
            self.num_classes,
            self.mean.to(device),
            self.std.to(device),
        )

    def subset(self, n: int) -> Dataset:
        """The first ``n`` examples (all of them when ``n`` is 0 or larger than the split)."""
        if n <= 0 or n >= len(self):
            return self
        return Dataset(self.name, self.x[:n], self.y[:n], self.num_classes, self.mean, self.std)


# ------------------------------------------------------------------------------------------- file readers
def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(
            f"cannot read {path}: {err} (the file is truncated or not gzip; download it again)"
        ) from None


def _read_idx(path: Path, magic: int, item_shape: tuple[int, ...]) -> np.ndarray:
    """An IDX file (MNIST's format): big-endian magic, counts, then uint8 items; checked against its header."""
    data = _read_bytes(path)
    header = 4 * (1 + 1 + len(item_shape))
    if len(data) < header:
        raise DataError(f"{path} is truncated: {len(data)} bytes, shorter than its {header}-byte header")
    fields = np.frombuffer(data, ">u4", count=header // 4)
    if int(fields[0]) != magic or tuple(int(v) for v in fields[2:]) != item_shape:
        raise DataError(f"{path} is not an IDX file of {item_shape} items (header {fields.tolist()})")
    count = int(fields[1])
    expected = header + count * int(np.prod(item_shape, dtype=np.int64))
    if len(data) != expected:
        raise DataError(f"{path} is truncated or padded: {len(data)} bytes, its header says {expected}")
    return np.frombuffer(data, np.uint8, offset=header).reshape(count, *item_shape)


def _find(folder: Path, stem: str, dataset: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise DataError(
        f"{dataset}: missing file {stem}[.gz], looked in {folder} " + MISSING_HINT
    )


def _load_idx_dataset(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    folder = root / _IDX_FOLDERS[name] / "raw"
    prefix = "train" if train else "t10k"
    images = _read_idx(_find(folder, f"{prefix}-images-idx3-ubyte", name), 2051, (28, 28))
    labels = _read_idx(_find(folder, f"{prefix}-labels-idx1-ubyte", name), 2049, ())
    if len(images) != len(labels):
        raise DataError(f"{name} in {folder}: {len(images)} images but {len(labels)} labels")
    return images[:, None], labels  # [n, 1, 28, 28]


def _unpickle(path: Path, dataset: str) -> dict:
    if not path.is_file():
        raise DataError(
            f"{dataset}: missing file {path.name}, looked in {path.parent} " + MISSING_HINT
        )
    try:
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as err:
        raise DataError(
            f"cannot read {path}: {err} (the file is truncated or corrupt; download it again)"
        ) from None
    if not isinstance(batch, dict) or b"data" not in batch:
        raise DataError(f"{path} is not a CIFAR python batch (no b'data' entry)")
    return batch


def _load_cifar(name: str, root: Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    if name == "cifar10":
        folder, label_key = root / "cifar-10-batches-py", b"labels"
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    else:
        folder, label_key = root / "cifar-100-python", b"fine_labels"
        files = ["train" if train else "test"]
    images, labels = [], []
    for file in files:
        batch = _unpickle(folder / file, name)
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        if (
            data.ndim != 2
            or data.shape[1] != 3072
            or label_key not in batch
            or len(batch[label_key]) != len(data)
        ):
            raise DataError(f"{folder / file}: expected data [n, 3072] and {len(data)} {label_key.decode()}")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    *,
    train: bool,
    device: torch.device | str = "cpu",
    download: bool = False,
    normalise_with: Dataset | None = None,
) -> Dataset:
    """Load one split as standardised float tensors on ``device``.

    :param name: one of :data:`DATASETS`.
    :param root: the torchvision-style data folder (default :func:`default_data_dir`).
    :param train: the training split, or the test split.
    :param download: fetch missing files first (:func:`syre_rl.supervised.download.download`).
    :param normalise_with: use that split's per-channel mean and std (the test split takes the training split's).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    root = Path(root) if root is not None else default_data_dir()
    if download:
        try:
            fetch(name, root)
        except DownloadError as err:
            raise DataError(str(err)) from None
    images, labels = (_load_idx_dataset if name in _IDX_FOLDERS else _load_cifar)(name, root, train)
    x = torch.from_numpy(np.array(images)).to(device).float().div_(255)
    y = torch.from_numpy(np.array(labels)).to(device=device, dtype=torch.int64)
    if normalise_with is None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True)
    else:
        mean, std = normalise_with.mean.to(device), normalise_with.std.to(device)
    return Dataset(name, (x - mean) / std, y, 100 if name == "cifar100" else 10, mean, std)


# ---------------------------------------------------------------------------------------- batching
def mix_seed(*parts: int | str) -> int:
    """A 62-bit seed from several parts, the same in every process (unlike ``hash``, which is salted)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 2


def epoch_order(n: int, seeds: Sequence[int], epoch: int, device: torch.device | str) -> Tensor:
    """One permutation of ``range(n)`` per seed, ``[len(seeds), n]``, drawn on ``device``.

    The order depends only on ``(seed, epoch)``, so a resumed run sees the batches it would have seen, and
    members that share a seed (none and syre of one seed) see the same batches.
    """
    rows = []
    for seed in seeds:
        gen = torch.Generator(device=device).manual_seed(mix_seed(seed, epoch, "order"))
        rows.append(torch.randperm(n, generator=gen, device=device))
    return torch.stack(rows)


def epoch_batches(order: Tensor, batch_size: int) -> Iterator[Tensor]:
    """Split ``[members, n]`` epoch orders into index batches ``[members, batch]``; the last one may be short,
    so every example is drawn exactly once per epoch."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    yield from order.split(batch_size, dim=1)


def pixel_permutations(
    num_tasks: int, num_pixels: int, seed: int, device: torch.device | str, identity_first: bool = True
) -> Tensor:
    """``[num_tasks, num_pixels]`` pixel orders for permuted-input continual learning; task 0 is the original
    images when ``identity_first``. Fixed by ``seed``, so every member and every resume sees the same tasks."""
    gen = torch.Generator(device=device).manual_seed(mix_seed(seed, "pixels"))
    perms = [torch.randperm(num_pixels, generator=gen, device=device) for _ in range(num_tasks)]
    if identity_first and num_tasks:
        perms[0] = torch.arange(num_pixels, device=device)
    return torch.stack(perms) if perms else torch.empty(0, num_pixels, dtype=torch.int64, device=device)
