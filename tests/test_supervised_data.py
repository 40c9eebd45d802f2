"""Data loading and device-resident batching of the supervised pipeline."""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from syre_rl.supervised.data import (
    DataError,
    default_data_dir,
    epoch_batches,
    epoch_order,
    load_dataset,
    pixel_permutations,
)


def test_mnist_loader_reads_the_real_files_and_matches_the_readme():
    train = load_dataset("mnist", default_data_dir(), train=True)
    test = load_dataset("mnist", default_data_dir(), train=False, normalise_with=train)
    assert train.x.shape == (60000, 1, 28, 28) and test.x.shape == (10000, 1, 28, 28)
    assert round(float(train.mean), 4) == 0.1307  # the README's pixel mean
    assert int((train.y == 1).sum()) == 6742  # the README's count of ones
    assert abs(float(train.x.mean())) < 1e-4 and abs(float(train.x.std()) - 1) < 1e-3  # standardised
    assert set(test.y.unique().tolist()) == set(range(10))


def _write_idx(folder: Path, stem: str, array: np.ndarray, magic: int, gz: bool) -> Path:
    header = np.array([magic, len(array), *array.shape[1:]], dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    path = folder / (stem + (".gz" if gz else ""))
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def test_idx_loader_reads_gunzipped_files_and_names_a_truncated_or_missing_one(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    _write_idx(raw, "t10k-images-idx3-ubyte", images, 2051, gz=False)
    labels_path = _write_idx(raw, "t10k-labels-idx1-ubyte", np.array([4, 0, 9]), 2049, gz=True)
    data = load_dataset("fashion-mnist", tmp_path, train=False)
    assert data.y.tolist() == [4, 0, 9]
    restored = data.x * data.std + data.mean
    assert torch.allclose(restored[:, 0] * 255, torch.tensor(images, dtype=torch.float32), atol=1e-3)

    labels_path.write_bytes(labels_path.read_bytes()[:-5])  # truncated gzip stream
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz"):
        load_dataset("fashion-mnist", tmp_path, train=False)
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\[\.gz\], looked in .*FashionMNIST"):
        load_dataset("fashion-mnist", tmp_path, train=True)


def write_cifar(root: Path, name: str, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Small CIFAR files in the exact python-pickle layout of the official archives."""
    rng = np.random.default_rng(seed)
    written = {}
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    else:
        folder = root / "cifar-100-python"
        files = ["train", "test"]
    folder.mkdir(parents=True)
    for file in files:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10 if name == "cifar10" else 100, n).tolist()
        batch = {b"batch_label": file.encode(), b"data": data, b"filenames": [b"x.png"] * n}
        if name == "cifar10":
            batch[b"labels"] = labels
        else:
            batch[b"fine_labels"], batch[b"coarse_labels"] = labels, [lab // 5 for lab in labels]
        with (folder / file).open("wb") as f:
            pickle.dump(batch, f)
        written[file] = (data, np.array(labels))
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_loaders_read_the_pickle_layout(tmp_path, name):
    written = write_cifar(tmp_path, name, n=6)
    train = load_dataset(name, tmp_path, train=True)
    test = load_dataset(name, tmp_path, train=False, normalise_with=train)
    assert train.num_classes == (10 if name == "cifar10" else 100)
    first = "data_batch_1" if name == "cifar10" else "train"
    assert train.x.shape == ((30 if name == "cifar10" else 6), 3, 32, 32) and test.x.shape == (6, 3, 32, 32)
    data, labels = written[first]
    assert train.y[:6].tolist() == labels.tolist()
    pixels = (train.x[:6] * train.std + train.mean) * 255
    # Rows are 1024 red, then green, then blue values, each plane row-major.
    assert torch.allclose(pixels[2, 1, 3, 5], torch.tensor(float(data[2, 1024 + 3 * 32 + 5])), atol=1e-2)
    (
        tmp_path / ("cifar-10-batches-py/test_batch" if name == "cifar10" else "cifar-100-python/test")
    ).write_bytes(b"\x80")
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_dataset(name, tmp_path, train=False)


def test_every_example_once_per_epoch_and_orders_fixed_by_seed_and_epoch():
    n, seeds = 103, [0, 1, 0]
    order = epoch_order(n, seeds, epoch=0, device="cpu")
    batches = list(epoch_batches(order, 10))
    assert [b.shape for b in batches] == [(3, 10)] * 10 + [(3, 3)]
    drawn = torch.cat(batches, dim=1)
    for member in drawn:
        assert sorted(member.tolist()) == list(range(n))
    assert torch.equal(drawn[0], drawn[2]) and not torch.equal(
        drawn[0], drawn[1]
    )  # shared seed, shared order
    assert torch.equal(epoch_order(n, seeds, 0, "cpu"), order)
    assert not torch.equal(epoch_order(n, seeds, 1, "cpu"), order)


def test_pixel_permutations_start_with_the_original_images():
    perms = pixel_permutations(4, 784, seed=3, device="cpu")
    assert torch.equal(perms[0], torch.arange(784))
    for p in perms[1:]:
        assert sorted(p.tolist()) == list(range(784)) and not torch.equal(p, perms[0])
    assert torch.equal(perms, pixel_permutations(4, 784, seed=3, device="cpu"))
    assert torch.equal(pixel_permutations(2, 784, seed=3, device="cpu"), perms[:2])
