"""scripts/plot.py and syre_rl.sweep.curves: binning and bootstrap, and the CSV of real sweeps checked against
the event files (RL) and results.json (supervised) read directly."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_data
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from syre_rl.presets import PROJECT_ROOT
from syre_rl.stats import bootstrap_band
from syre_rl.sweep.curves import bin_means, regime_changes

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}

from syre_rl.sweep import plot as plot_script  # noqa: E402


def run_sweep(grid: str, sweep_dir: Path, *extra: str) -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "scripts" / "sweep.py"), grid, "--jobs", "2",
         "--sweep-dir", str(sweep_dir), *extra],
        capture_output=True, text=True, env=ENV, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------- curves
def test_bin_means_average_the_points_inside_each_bin():
    steps = np.array([0, 5, 10, 19, 40])
    values = np.array([1.0, 3.0, 10.0, 20.0, 7.0])
    binned = bin_means(steps, values, np.array([0, 10, 20, 30, 41]))
    np.testing.assert_allclose(binned, [2.0, 15.0, np.nan, 7.0])


def test_bootstrap_band_brackets_the_mean_and_shrinks_with_agreement():
    rng = np.random.default_rng(1)
    spread = rng.normal(0, 1, size=(8, 1))
    curves = np.hstack([spread, 0.01 * spread, np.full((8, 1), 3.0)])
    curves[0, 2] = np.nan  # a seed without a value in the last bin
    mean, lo, hi, n = bootstrap_band(curves, resamples=4000)
    np.testing.assert_allclose(mean[:2], [spread.mean(), 0.01 * spread.mean()])
    assert (lo[:2] < mean[:2]).all() and (mean[:2] < hi[:2]).all()
    # the 95% interval of a mean of 8 standard normals is about +-1.96 * sd / sqrt(8)
    sd = spread.std(ddof=0)
    assert 0.6 * 3.92 * sd / np.sqrt(8) < hi[0] - lo[0] < 1.4 * 3.92 * sd / np.sqrt(8)
    np.testing.assert_allclose(hi[1] - lo[1], 0.01 * (hi[0] - lo[0]), rtol=0.2)
    assert (mean[2], lo[2], hi[2], n[2]) == (3.0, 3.0, 3.0, 7)  # seeds that agree: no band
    one = bootstrap_band(np.array([[2.0, np.nan]]))
    assert (one[0][0], one[1][0], one[2][0], one[3].tolist()) == (2.0, 2.0, 2.0, [1, 0])


def test_regime_changes_are_the_first_points_of_each_new_regime():
    steps = np.array([100, 200, 300, 400, 500, 600])
    assert regime_changes(steps, np.array([0, 0, 1, 1, 1, 2])) == [300, 600]
    assert regime_changes(steps[:1], np.array([0])) == []


# ---------------------------------------------------------------------------------------- the script
def test_not_a_sweep_directory_is_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        plot_script.main([str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "not a sweep directory" in err and len(err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def rl_smoke_sweep(tmp_path_factory) -> Path:
    """A real two-arm, two-seed train_ppo.py sweep of 768 steps (evaluated at step 512 of each env pair)."""
    sweep_dir = tmp_path_factory.mktemp("rl") / "sw"
    run_sweep("rl:smoke", sweep_dir, "--", "--total-timesteps", "768")
    return sweep_dir


def test_rl_sweep_csv_is_the_seed_mean_of_the_binned_events(rl_smoke_sweep, tmp_path):
    sweep_dir = rl_smoke_sweep
    out = tmp_path / "fig"
    metrics = ["return=rollout/ep_rew_mean", "value loss=train/value_loss", "rank=plasticity/nothing/*"]
    args = [str(sweep_dir), "--out", str(out), "--bins", "3"] + [f"--metric={m}" for m in metrics]
    assert plot_script.main(args) == 0
    assert (out / "sweep.png").stat().st_size > 1000 and (out / "sweep.svg").read_text().startswith("<?xml")
    rows = read_csv(out / "curves.csv")
    assert {r["metric"] for r in rows} == {"return", "value loss"}  # no run logs "rank": left out

    edges = np.linspace(0, 768 + 1, 4)  # bins of the largest logged step (768) plus one
    for metric, tag in (("return", "rollout/ep_rew_mean"), ("value loss", "train/value_loss")):
        per_method = defaultdict(list)
        for run in json.loads((sweep_dir / "sweep.json").read_text())["runs"]:
            acc = EventAccumulator(str(sweep_dir / run["id"] / "tb"))
            acc.Reload()
            events = acc.Scalars(tag)
            binned = []
            for lo, hi in zip(edges[:-1], edges[1:], strict=True):
                inside = [e.value for e in events if lo <= e.step < hi]
                binned.append(np.mean(inside) if inside else np.nan)
            per_method[run["method"]].append(binned)
        assert set(per_method) == {"ppo", "ppo-syre"}
        for method, seeds in per_method.items():
            got = [r for r in rows if r["metric"] == metric and r["method"] == method]
            with warnings.catch_warnings():  # a bin no seed has a point in: NaN, left out of the CSV
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = np.nanmean(seeds, axis=0)
            present = ~np.isnan(expected)
            assert [int(r["step"]) for r in got] == [
                int(s) for s in ((edges[:-1] + edges[1:]) / 2).round()[present]
            ]
            np.testing.assert_allclose([float(r["mean"]) for r in got], expected[present], rtol=1e-6)
            assert all(int(r["n_seeds"]) == 2 for r in got)
            assert all(float(r["lo"]) <= float(r["mean"]) <= float(r["hi"]) for r in got)


def test_finals_are_each_runs_last_values_and_the_paired_difference(rl_smoke_sweep, tmp_path):
    out = tmp_path / "fig"
    assert plot_script.main([str(rl_smoke_sweep), "--out", str(out), "--finals", "ppo"]) == 0
    last = {}  # (metric, method, seed) -> the last logged value, read from the event files directly
    for run in json.loads((rl_smoke_sweep / "sweep.json").read_text())["runs"]:
        acc = EventAccumulator(str(rl_smoke_sweep / run["id"] / "tb"))
        acc.Reload()
        for metric, tag in (("evaluation return", "eval/mean_reward"), ("training return", "rollout/ep_rew_mean")):
            last[metric, run["method"], run["seed"]] = acc.Scalars(tag)[-1].value
    per_run = read_csv(out / "finals_runs.csv")
    assert len(per_run) == len(last) == 8
    for r in per_run:
        assert float(r["value"]) == pytest.approx(last[r["metric"], r["method"], int(r["seed"])], rel=1e-6)
    rows = {(r["metric"], r["method"]): r for r in read_csv(out / "finals.csv")}
    for metric in ("evaluation return", "training return"):
        base, syre = rows[metric, "ppo"], rows[metric, "ppo-syre"]
        assert float(base["mean"]) == pytest.approx(np.mean([last[metric, "ppo", s] for s in (0, 1)]), rel=1e-6)
        diffs = [last[metric, "ppo-syre", s] - last[metric, "ppo", s] for s in (0, 1)]
        assert float(syre["diff"]) == pytest.approx(np.mean(diffs), rel=1e-6, abs=1e-6)
        assert float(syre["diff_lo"]) <= float(syre["diff"]) <= float(syre["diff_hi"]) and base["diff"] == ""
    assert "minus ppo, paired by seed" in (out / "finals.md").read_text()
    with pytest.raises(SystemExit) as exit_:
        plot_script.main([str(rl_smoke_sweep), "--out", str(out), "--finals", "nope"])
    assert exit_.value.code == 2


@needs_data("mnist")
def test_supervised_sweep_csv_groups_members_over_seeds(tmp_path):
    sweep_dir = tmp_path / "sw"
    run_sweep("supervised:tiny", sweep_dir)
    out = tmp_path / "fig"
    assert plot_script.main([str(sweep_dir), "--out", str(out)]) == 0
    assert (out / "permuted-mnist.png").is_file() and (out / "permuted-mnist.svg").is_file()
    rows = read_csv(out / "curves.csv")
    results = [
        json.loads((sweep_dir / f"permuted-mnist-paper-s{s}" / "results.json").read_text()) for s in (0, 1)
    ]
    names = [m["name"] for m in results[0]["members"]]
    assert names == ["none_seed0", "l2_wd0.001_seed0", "syre_wd0.001_s0.1_seed0"]
    for i, name in enumerate(names):
        method = name.removesuffix("_seed0")
        accuracy = [r for r in rows if r["metric"] == "new-task accuracy" and r["method"] == method]
        expected = np.mean(
            [[h["metrics"]["test/accuracy"][i] for h in r["history"]] for r in results], axis=0
        )
        assert [int(r["step"]) for r in accuracy] == [1, 2, 3]  # one point per task
        np.testing.assert_allclose([float(r["mean"]) for r in accuracy], expected, rtol=1e-9)
        rank = [r for r in rows if r["metric"] == "effective rank" and r["method"] == method]
        layers = [k for k in results[0]["history"][0]["metrics"] if k.startswith("start/effective_rank/")]
        assert len(layers) == 2
        expected = np.mean(
            [[np.mean([h["metrics"][k][i] for k in layers]) for h in r["history"]] for r in results], axis=0
        )
        np.testing.assert_allclose([float(r["mean"]) for r in rank], expected, rtol=1e-9)
        assert all(int(r["n_seeds"]) == 2 for r in accuracy + rank)
