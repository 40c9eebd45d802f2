"""The shared collapse measurements on inputs whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from syre_rl.plasticity import (
    dead_fraction,
    distance_from_init,
    dormant_fraction,
    dormant_mask,
    effective_rank,
    low_rank_fraction,
    spectral_stable_rank,
    srank_fraction,
    weight_magnitude,
    weight_symmetry,
)


def test_ranks_of_known_spectra() -> None:
    eye = torch.eye(8)
    assert effective_rank(eye) == pytest.approx(8.0)
    assert srank_fraction(eye) == pytest.approx(1.0)
    rank_one = torch.ones(100, 1) @ torch.randn(1, 8)
    assert effective_rank(rank_one) == pytest.approx(1.0, abs=1e-6)
    assert srank_fraction(rank_one) == pytest.approx(1 / 8)
    # Singular values 4, 2, 1, 1: entropy of (0.5, 0.25, 0.125, 0.125) is 1.75 bits.
    diag = torch.diag(torch.tensor([4.0, 2.0, 1.0, 1.0]))
    assert effective_rank(diag) == pytest.approx(math.exp(1.75 * math.log(2)))
    assert srank_fraction(diag, threshold=0.99) == pytest.approx(1.0)
    assert srank_fraction(diag, threshold=0.75) == pytest.approx(0.5)
    assert effective_rank(torch.zeros(5, 3)) == 0.0
    # ||X||_F^2 / ||X||_2^2 = (16 + 4 + 1 + 1) / 16, a number of dimensions, not a fraction.
    assert spectral_stable_rank(diag) == pytest.approx(22 / 16)
    assert spectral_stable_rank(eye) == pytest.approx(8.0)
    assert spectral_stable_rank(rank_one) == pytest.approx(1.0)


def test_dead_and_dormant_units() -> None:
    acts = torch.rand(1000, 10) + 0.5
    acts[:, 0] = 0.0  # never active: dead and dormant
    acts[:, 1] = 0.0
    acts[:5, 1] = 1.0  # active on 0.5% of rows: still dead
    acts[:, 2] = 0.0
    acts[:20, 2] = 1.0  # active on 2%: alive, but its mean |a| is tiny: dormant
    assert dead_fraction(acts) == pytest.approx(0.2)
    mask = dormant_mask(acts, tau=0.1)
    assert mask[:3].all() and not mask[3:].any()
    assert dormant_fraction(acts, tau=0.0) == pytest.approx(0.1)  # tau 0 counts exact zeros only
    with pytest.raises(ValueError, match="2-D"):
        dead_fraction(torch.zeros(3))


def test_low_rank_fraction_counts_collapsed_directions() -> None:
    gen = torch.Generator().manual_seed(0)
    full = torch.randn(2000, 10, generator=gen)
    assert low_rank_fraction(full) == 0.0
    collapsed = torch.cat([full[:, :3], torch.zeros(2000, 7)], dim=1)
    assert low_rank_fraction(collapsed) == pytest.approx(0.7)


def test_weight_magnitude_and_distance_from_init() -> None:
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.fill_(-0.5)
        net[2].weight.fill_(2.0)
    assert weight_magnitude(net) == {"0": pytest.approx(0.5), "2": pytest.approx(2.0)}
    start = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net[2].weight.add_(1.0)  # 8 entries moved by 1: distance sqrt(8)
    assert distance_from_init(net, start) == {"0": 0.0, "2": pytest.approx(math.sqrt(8))}


def test_weight_symmetry_counts_identical_and_zero_units() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 2))
    with torch.no_grad():
        net[0].weight[1] = net[0].weight[0]  # units 0 and 1 of the first hidden layer: identical...
        net[0].bias[1] = net[0].bias[0]
        net[2].weight[:, 1] = net[2].weight[:, 0]  # ...including their out-weights
        net[0].weight[3] = net[0].weight[2]  # units 2 and 3 share in-weights only: not a symmetric state
        net[0].bias[3] = net[0].bias[2]
        net[2].weight[4].zero_()  # unit 4 of the second hidden layer: zero in, bias and out
        net[2].bias[4] = 0.0
        net[4].weight[:, 4] = 0.0
    first, second = weight_symmetry(net)
    assert (first.identical_pairs, first.distinct_units, first.zero_units) == (1, 5, 0)
    assert first.min_pair_distance == 0.0
    assert first.small_singular_values == 1  # two equal rows make the first weight rank-deficient
    assert (second.identical_pairs, second.zero_units) == (0, 1)
    assert second.small_singular_values == 1  # the zero row (the equal columns fit in the 5 rows left)
    with torch.no_grad():  # units {0, 1, 5} and {2, 3} identical: 3 + 1 pairs, 3 distinct units
        for copy_of, unit in [(0, 1), (0, 5), (2, 3)]:
            net[0].weight[unit], net[0].bias[unit] = net[0].weight[copy_of], net[0].bias[copy_of]
            net[2].weight[:, unit] = net[2].weight[:, copy_of]
    first = weight_symmetry(net)[0]
    assert (first.identical_pairs, first.distinct_units) == (4, 3)
    with pytest.raises(ValueError, match="two nn.Linear"):
        weight_symmetry(nn.Linear(2, 2))
