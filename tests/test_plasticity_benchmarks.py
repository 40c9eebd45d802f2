"""Continual-learning benchmarks: their data against the sources' definitions, tiny runs end to end, and the
plasticity figure's first-vs-last change."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from syre_rl.presets import PROJECT_ROOT, load_preset
from syre_rl.supervised.config import Stage
from syre_rl.supervised.continual import (
    BitFlipping,
    KumarPermutedMnist,
    RandomLabelMnist,
    bit_flip_schedule,
    plasticity_change,
    target_network,
    target_output,
)
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.plasticity_report import main as report_main
from syre_rl.supervised.plasticity_report import summarise
from syre_rl.supervised.train import train

CPU = torch.device("cpu")


def tiny(name: str, **fields):
    experiment = EXPERIMENTS[name]
    cfg = load_preset(PROJECT_ROOT / "experiments" / f"{name}.yaml", "tiny", experiment.schema)
    return experiment, dataclasses.replace(cfg, **fields)


@pytest.fixture(scope="module")
def kumar():
    _, cfg = tiny("kumar-permuted-mnist", seeds=2, methods=["none", "syre"])
    return KumarPermutedMnist(cfg, CPU, None, False)  # a missing MNIST skips (tests/conftest.py)


# ----------------------------------------------------------------------------------------- permuted MNIST
def test_kumar_tasks_are_fixed_permutations_and_subsets_per_seed_and_task(kumar):
    assert kumar.seeds == [0, 1, 0, 1]  # plain seeds 0, 1, then syre seeds 0, 1
    assert kumar.x.min() == -1 and kumar.x.max() == 1  # Normalize(0.5, 0.5)
    kumar._prepare(0)
    assert torch.equal(kumar.perms, torch.arange(784).expand(4, -1))  # task 0: the original pixels
    kumar._prepare(3)
    perms, subsets = kumar.perms.clone(), kumar.subsets.clone()
    for perm in perms:
        assert torch.equal(perm.sort().values, torch.arange(784))  # a permutation
    for subset in subsets:
        assert len(subset.unique()) == kumar.cfg.task_size  # distinct images
    assert torch.equal(perms[0], perms[2]) and torch.equal(subsets[0], subsets[2])  # one seed, one stream
    assert not torch.equal(perms[0], perms[1]) and not torch.equal(subsets[0], subsets[1])  # seeds differ
    kumar._prepare(4)
    assert not torch.equal(kumar.perms[0], perms[0])  # a new task, a new permutation
    kumar._prepare(3)
    assert torch.equal(kumar.perms, perms) and torch.equal(kumar.subsets, subsets)  # fixed per (seed, task)
    # each example is the image with its pixels reordered by the member's permutation
    idx = subsets[:, :2]
    x = kumar._inputs(idx)
    assert torch.equal(x[1, 0], kumar.x[idx[1, 0]][perms[1]])


def test_kumar_batches_cover_the_task_subset(kumar):
    batches = list(kumar.batches(Stage(2, 2, 0)))
    assert len(batches) == kumar.cfg.steps_per_task and batches[0].shape == (4, kumar.cfg.batch_size)
    used = torch.cat(batches, 1)
    for e in range(4):
        assert set(used[e].tolist()) <= set(kumar.subsets[e].tolist())


# ------------------------------------------------------------------------------------- random labels
def test_random_labels_are_redrawn_per_task_among_a_fixed_image_set():
    _, cfg = tiny("random-label-mnist", seeds=2)
    exp = RandomLabelMnist(cfg, CPU, None, False)
    images = exp.images.clone()
    true = exp.y[images]
    l0, l1 = exp.task_labels(0), exp.task_labels(1)
    for e in range(len(exp.members)):
        assert torch.equal(l0[e].sort().values, true[e].sort().values)  # the same labels, shuffled
        assert torch.equal(l1[e].sort().values, true[e].sort().values)
    assert (l0 != l1).float().mean() > 0.5  # redrawn
    assert (l0 != true).float().mean() > 0.5  # task 0 is random too
    assert torch.equal(exp.task_labels(1), l1)  # fixed per (seed, task)
    exp.batches(Stage(1, 1, 0))
    assert torch.equal(exp.images, images)  # the images never change


# -------------------------------------------------------------------------------------- bit flipping
def test_target_network_follows_the_source_definition():
    net = target_network(seed=3, inputs=20, hidden=100, beta=0.7)
    for key in ("w1", "b1", "w2", "b2"):
        assert set(net[key].unique().tolist()) <= {-1.0, 1.0}
    w1, b1 = net["w1"], net["b1"]
    negatives = (w1 == -1).sum(0).float()  # S_j counts the -1 input weights, adjusted by the bias
    assert torch.allclose(net["tau"], 0.7 * 21 - (negatives + (b1 + 0) / 2))
    x = torch.randint(0, 2, (50, 20)).float()
    manual = torch.stack(
        [
            net["b2"][0]
            + sum(net["w2"][j] * float(x[n] @ w1[:, j] + b1[j] > net["tau"][j]) for j in range(100))
            for n in range(50)
        ]
    )
    assert torch.allclose(target_output(net, x), manual)
    assert target_output(net, x).std() > 0  # not constant
    assert torch.equal(target_network(3, 20, 100, 0.7)["w1"], w1)  # fixed by the seed


def test_flip_schedule_flips_one_bit_per_period_or_redraws_all():
    one = bit_flip_schedule(seed=5, periods=40, slow_bits=15, flip="one")
    assert ((one[1:] != one[:-1]).sum(1) == 1).all()
    assert len(torch.unique((one[1:] != one[:-1]).float().argmax(1))) > 5  # different bits flip
    redraw = bit_flip_schedule(seed=5, periods=40, slow_bits=15, flip="all")
    assert (redraw[1:] != redraw[:-1]).sum(1).float().mean() > 4  # about half of 15 bits change
    assert torch.equal(bit_flip_schedule(5, 40, 15, "one"), one)


def test_bit_flipping_stream_holds_slow_bits_for_a_period_and_matches_the_target():
    _, cfg = tiny("bit-flipping", flip="one", methods=["none", "l2"], weight_decay=[0.01])
    exp = BitFlipping(cfg, CPU, None, False)
    x, y = exp.stream(Stage(1, 1, 0))
    assert x.shape == (6, cfg.flip_every, 20)
    slow, fast = x[..., :15], x[..., 15:]
    assert (slow == slow[:, :1]).all() and torch.equal(slow[:, 0], exp.schedule[:, 1])
    assert fast.std(1).min() > 0.3  # random bits change every example
    for e in range(6):
        net = {k: v[e] for k, v in exp.target.items()}
        assert torch.allclose(y[e], target_output(net, x[e]))
    assert torch.equal(x[0], x[3]) and not torch.equal(x[0], x[1])  # seed 0's stream, for both arms
    first, last = exp.model.layers
    assert torch.all(first.bias == 0) and torch.all(last.bias == 0)  # the source's learner init
    assert first.weight.abs().max() <= (6 / 20) ** 0.5 and first.weight.abs().max() > 0.4
    assert torch.equal(first.weight[0], first.weight[3]) and not torch.equal(first.weight[0], first.weight[1])


# ------------------------------------------------------------------------------------------ end to end
@pytest.mark.parametrize(
    ("name", "figure"),
    [
        ("kumar-permuted-mnist", "train/online_accuracy"),
        ("random-label-mnist", "train/task_accuracy"),
        ("bit-flipping", "train/loss"),
    ],
)
def test_tiny_run_logs_the_plasticity_figure_and_hidden_measures(tmp_path, name, figure):
    experiment, cfg = tiny(name)
    results = train(experiment, cfg, run_dir=tmp_path / "run", log=lambda s: None)
    assert results["stages_done"] == results["stages"] == 3
    e = len(results["members"])
    for h in results["history"]:
        values = h["metrics"][figure]
        assert len(values) == e and all(np.isfinite(values))
        assert all(0 <= v <= 1 for v in h["metrics"]["hidden/dead_fraction"])
        assert all(0 <= v <= cfg.hidden[-1] for v in h["metrics"]["hidden/effective_rank"])
    if "accuracy" in figure:
        assert all(0 <= v <= 1 for h in results["history"] for v in h["metrics"][figure])
    out = tmp_path / "report"
    assert report_main([str(tmp_path / "run"), "--figure", figure, "--out", str(out)]) == 0
    rows = json.loads((out / "summary.json").read_text())
    arms = {r["arm"] for r in rows if r["metric"] == figure}
    assert "none" in arms and any(a.startswith("syre_") for a in arms) and len(arms) == 2


def test_bit_flipping_linear_baseline_has_no_hidden_layer(tmp_path):
    experiment, cfg = tiny("bit-flipping", hidden=[], methods=["none"])
    results = train(experiment, cfg, run_dir=tmp_path, log=lambda s: None)
    assert set(results["history"][-1]["metrics"]) == {"train/loss"}


# ------------------------------------------------------------------------------------ plasticity figure
def test_plasticity_change_from_a_known_sequence():
    curves = torch.tensor([[float(t) for t in range(1, 21)], [2.0] * 20])  # 20 tasks: 2 per 10% end
    assert torch.allclose(plasticity_change(curves), torch.tensor([19.5 - 1.5, 0.0], dtype=torch.float64))
    assert plasticity_change([[1.0, 0.0, 0.0, 0.5]], share=0.5).item() == pytest.approx(-0.25)


def test_summary_interval_excludes_zero_for_a_consistent_decline_only():
    rng = np.random.default_rng(0)
    decline = 0.9 - 0.002 * np.arange(100)[None] + rng.normal(0, 0.01, (12, 100))  # 0.9 -> 0.7
    flat = 0.9 + rng.normal(0, 0.01, (12, 100))
    rows = {r["arm"]: r for r in summarise({"decline": decline, "flat": flat})}
    d = rows["decline"]
    assert d["change"] == pytest.approx(-0.18, abs=0.01) and d["change_hi"] < 0 and d["excludes_zero"]
    assert d["window"] == 10 and d["seeds"] == 12
    assert rows["flat"]["change_lo"] < 0 < rows["flat"]["change_hi"]
    paired = {
        r["arm"]: r
        for r in summarise(
            {"none": flat, "decline": decline},
            seeds={"none": list(range(12)), "decline": list(range(12))},
        )
    }
    assert paired["decline"]["vs_reference"] == pytest.approx(-0.19, abs=0.01)
    assert paired["decline"]["vs_reference_hi"] < 0
    assert "vs_reference" not in paired["none"]
    partial = decline.copy()
    partial[3, 50:] = np.nan  # an unfinished seed: only stages every seed finished count
    assert {r["arm"]: r for r in summarise({"p": partial})}["p"]["stages"] == 50


def test_report_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        report_main([str(tmp_path), "--figure", "train/loss", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no results.json" in err


def test_redo_on_bit_flipping_scores_each_period_and_resets_units(tmp_path):
    """Online learning at batch 1: ReDo's window scores dormancy over the period's examples, not the last one."""
    experiment, cfg = tiny(
        "bit-flipping",
        seeds=2,
        methods=["redo"],
        method_kwargs={"redo": {"tau": 0.1, "every": 200, "window": True, "weight_decay": 0.0}},
    )
    results = train(experiment, cfg, run_dir=tmp_path / "run", log=lambda s: None)
    assert results["stages_done"] == 3 and [m["method"] for m in results["members"]] == ["redo", "redo"]
    assert all(np.isfinite(v) for h in results["history"] for v in h["metrics"]["train/loss"])
    resets = results["history"][-1]["metrics"]["methods/reset_units"]
    assert len(resets) == 2 and all(0 <= r <= 3 * 5 for r in resets)  # at most every unit, once per period


@pytest.mark.parametrize("name", ["kumar-permuted-mnist", "random-label-mnist", "bit-flipping"])
def test_every_benchmark_preset_builds_from_its_defaults_alone(name):
    """A preset that leaves a field out takes the dataclass default, which must itself pass the checks."""
    EXPERIMENTS[name].schema()  # raises on an unknown default method name
