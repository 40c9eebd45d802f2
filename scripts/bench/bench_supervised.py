"""Benchmark the supervised pipeline against a plain DataLoader loop, side by side in one run.

Same model (the 4x300 ReLU FCN of the MNIST experiments), same data (the first --examples MNIST training
images), batch 64, Adam. Measured per device (CPU, and CUDA when present):

  dataloader        TensorDataset + DataLoader(shuffle) + nn.Sequential + Adam: the usual loop
  resident          the pipeline's way: data on the device, index batches from a per-epoch permutation,
                    one stacked member (baddbmm), fused Adam
  E sequential      E runs of `resident` one after another (E seeds)
  E stacked         the E seeds as one batched model (weights [E, in, out], one Adam)

    python scripts/bench/bench_supervised.py --threads 1 --members 10
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from syre_rl.bench import best_time
from syre_rl.supervised.data import DataError, default_data_dir, epoch_batches, epoch_order, load_dataset
from syre_rl.supervised.ensemble import member_generators
from syre_rl.supervised.models import MLP

HIDDEN = [300, 300, 300, 300]




def dataloader_epoch(
    x: torch.Tensor, y: torch.Tensor, device: torch.device, batch: int
) -> Callable[[], None]:
    """The usual loop: the dataset on the host, a DataLoader, one plain network, Adam."""
    model = nn.Sequential(
        *[m for a, b in zip([784, *HIDDEN], HIDDEN, strict=False) for m in (nn.Linear(a, b), nn.ReLU())],
        nn.Linear(HIDDEN[-1], 10),
    ).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x.cpu(), y.cpu()), batch_size=batch, shuffle=True)

    def epoch() -> None:
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return epoch


def resident_epoch(
    x: torch.Tensor, y: torch.Tensor, members: int, batch: int, fused: bool
) -> Callable[[], None]:
    """The pipeline's loop: ``members`` seeds stacked in one model, batches drawn by index on the device."""
    seeds = list(range(members))
    model = MLP(784, HIDDEN, 10, member_generators(seeds)).to(x.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **({"fused": True} if fused else {"foreach": True}))
    counter = iter(range(10**9))

    def epoch() -> None:
        for idx in epoch_batches(epoch_order(len(x), seeds, next(counter), x.device), batch):
            logits = model(x[idx])
            loss = (
                F.cross_entropy(logits.flatten(0, 1), y[idx].flatten(), reduction="none")
                .view(idx.shape)
                .mean(1)
            )
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()

    return epoch


def bench_device(
    device: torch.device, data_dir: Path, examples: int, members: int, batch: int, repeats: int
) -> None:
    data = load_dataset("mnist", data_dir, train=True, device=device).subset(examples)
    x, y = data.x.flatten(1), data.y
    t_loader = best_time(dataloader_epoch(x, y, device, batch), device, repeats)
    t_foreach = best_time(resident_epoch(x, y, 1, batch, fused=False), device, repeats)
    t_resident = best_time(resident_epoch(x, y, 1, batch, fused=True), device, repeats)
    t_stacked = best_time(resident_epoch(x, y, members, batch, fused=True), device, repeats)
    t_sequential = members * t_resident  # E independent runs of the same loop take E times one run
    steps = -(-len(x) // batch)
    print(f"\n{device.type}: {len(x)} examples, batch {batch}, {steps} steps per epoch, best of {repeats}")
    print(f"  {'loop':44s} {'s/epoch':>8s} {'ms/step':>8s} {'ratio':>7s}")
    rows = [
        ("dataloader, 1 seed", t_loader, 1.0),
        ("resident, 1 seed, foreach Adam", t_foreach, t_loader / t_foreach),
        ("resident, 1 seed, fused Adam", t_resident, t_loader / t_resident),
        (f"dataloader, {members} seeds sequential", members * t_loader, 1.0),
        (f"resident, {members} seeds sequential", t_sequential, t_loader / t_resident),
        (f"resident, {members} seeds stacked (one model)", t_stacked, members * t_loader / t_stacked),
    ]
    for name, seconds, ratio in rows:
        print(f"  {name:44s} {seconds:8.2f} {1000 * seconds / steps:8.2f} {ratio:6.2f}x")
    print(
        f"  stacked / sequential time: {t_stacked / t_sequential:.2f}  (speed-up {t_sequential / t_stacked:.2f}x)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=default_data_dir(), help="torchvision-style data root")
    p.add_argument("--examples", type=int, default=10000, help="MNIST training examples per epoch")
    p.add_argument("--members", type=int, default=10, help="seeds stacked in one model")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    try:
        for device in devices:
            bench_device(device, args.data_dir, args.examples, args.members, args.batch_size, args.repeats)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
