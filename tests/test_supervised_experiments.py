"""Every supervised experiment at a tiny size on CPU, with its measurements checked for meaning."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_supervised_data import write_cifar

from syre_rl.presets import PROJECT_ROOT, load_preset
from syre_rl.supervised.config import Stage
from syre_rl.supervised.ensemble import member_decay
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.report import seed_summary, upgrade_results, write_across, write_report
from syre_rl.supervised.train import train

CPU = torch.device("cpu")


from syre_rl.supervised import command as train_supervised  # noqa: E402
from syre_rl.supervised import report as report_script  # noqa: E402


def tiny(name: str, **fields):
    experiment = EXPERIMENTS[name]
    cfg = load_preset(PROJECT_ROOT / "experiments" / f"{name}.yaml", "tiny", experiment.schema)
    return experiment, dataclasses.replace(cfg, **fields)


def final(results: dict) -> dict[str, dict[str, float]]:
    """``{metric: {member name: value}}`` of the last stage."""
    names = [m["name"] for m in results["members"]]
    return {k: dict(zip(names, v, strict=True)) for k, v in results["history"][-1]["metrics"].items()}


def test_teacher_student_syre_separates_duplicate_units_none_does_not(tmp_path):
    experiment, cfg = tiny("teacher-student")
    metrics = final(train(experiment, cfg, run_dir=tmp_path, log=lambda s: None))
    pairs, distance = metrics["symmetry/identical_pairs"], metrics["symmetry/min_pair_distance"]
    distinct = metrics["symmetry/distinct_units"]
    assert metrics["symmetry/initial_identical_pairs"]["none_seed0"] == 15  # 6 of 8 units identical
    assert metrics["symmetry/initial_distinct_units"]["none_seed0"] == 3  # the cluster of 6 and 2 others
    assert pairs["none_seed0"] == 15 and pairs["l2_wd0.01_seed0"] == 15  # trapped: Adam keeps them identical
    assert distinct["none_seed0"] == 3 and distinct["l2_wd0.01_seed0"] == 3  # fewer than the width, 8
    assert distance["none_seed0"] == 0
    assert pairs["syre_wd0.01_s0.1_seed0"] == 0 and distance["syre_wd0.01_s0.1_seed0"] > 1e-3  # escaped
    assert distinct["syre_wd0.01_s0.1_seed0"] == 8  # every unit its own
    assert all(v < 1 for v in metrics["test/loss"].values())
    table = (write_report(tmp_path, tmp_path / "report") / "tables.md").read_text()
    assert "| distinct units (of 8) |" in table
    assert "| none_seed0 | 3 | 3 | 15 | 0 |" in table and "| syre_wd0.01_s0.1_seed0 | 8 | 3 | 0 |" in table


def test_mnist_fcn_measures_rank_and_dead_units_of_each_layer_and_sees_collapse(tmp_path):
    experiment, cfg = tiny("mnist-fcn-wd")
    metrics = final(train(experiment, cfg, run_dir=tmp_path, log=lambda s: None))
    assert set(metrics["test/accuracy"]) == {
        "l2_wd0.1_seed0",
        "l2_wd10_seed0",
        "syre_wd0.1_s0.01_seed0",
        "syre_wd10_s0.01_seed0",
        "dropout_p0.3_seed0",
    } and all(0.3 < a <= 1 for a in metrics["test/accuracy"].values())  # 512 examples: well above chance
    for layer in (0, 1):
        assert all(1 <= r <= 32 for r in metrics[f"test/effective_rank/layer{layer}"].values())
    # A collapsed member reports it: rank-1 weights give rank 1, a large negative bias gives dead units.
    model_run = experiment(cfg, CPU, None, False)
    with torch.no_grad():
        layers = model_run.model.layers
        layers[1].weight[0] = torch.outer(torch.rand(32), torch.rand(32))
        layers[1].bias[0] = 0
        layers[0].bias[1] = -1e3
    model_run.model.eval()
    with torch.no_grad():
        m = model_run.hidden_metrics(Stage(0, 0, 0))
    assert m["effective_rank/layer1"][0] < 1.5 and m["effective_rank/layer1"][2] > 10
    assert m["dead_fraction/layer0"][1] == 1.0 and m["dead_fraction/layer0"][0] < 0.5


def test_permuted_mnist_reports_every_task_and_the_tasks_really_differ(tmp_path):
    experiment, cfg = tiny("permuted-mnist", methods=["none", "syre"])
    train(experiment, cfg, run_dir=tmp_path, max_stages=1, log=lambda s: None)
    # After task 0 only: good on the original images, near chance on task 1's permuted pixels.
    run = experiment(cfg, CPU, None, False)
    run.model.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=True)["model"])
    run.model.eval()
    with torch.no_grad():
        assert min(run.accuracy(Stage(0, 0, 0))) > 0.4 and max(run.accuracy(Stage(0, 1, 0))) < 0.3
    history = train(experiment, cfg, run_dir=tmp_path, resume=True, log=lambda s: None)["history"]
    assert [h["task"] for h in history] == [0, 1, 2]
    for h in history:
        assert all(f"start/effective_rank/layer{i}" in h["metrics"] for i in (0, 1))
        assert sorted(k for k in h["metrics"] if k.startswith("tasks/accuracy_task")) == [
            f"tasks/accuracy_task{t}" for t in range(h["task"] + 1)
        ]
        assert h["metrics"]["test/accuracy"] == h["metrics"][f"tasks/accuracy_task{h['task']}"]


def test_permuted_mnist_runs_l2_init_and_shrink_perturb_as_their_own_runs(tmp_path):
    """Each competing method trains the same member (seed 0: same initial weights and batches) as none; strong
    settings make its effect plain: L2-Init stays closer to the initial weights, Shrink & Perturb shrinks them."""
    settings = {"l2-init": {"weight_decay": 3.0}, "shrink-perturb": {"weight_decay": 0.3, "noise_std": 1e-3}}
    weights, states = {}, {}
    for method in ("none", "l2-init", "shrink-perturb"):
        experiment, cfg = tiny(
            "permuted-mnist", methods=[method], method_kwargs=settings, tasks=1, eval_size=64
        )
        results = train(experiment, cfg, run_dir=tmp_path / method, log=lambda s: None)
        assert [m["name"] for m in results["members"]] == [f"{method}_seed0"]
        assert results["history"][-1]["metrics"]["test/accuracy"][0] > 0.2  # it learns (chance: 0.1)
        state = torch.load(tmp_path / method / "checkpoint.pt", weights_only=True)
        weights[method] = torch.cat([w[0].flatten() for w in state["model"].values()])
        states[method] = state["methods"]
    initial_model = experiment(cfg, CPU, None, False).model
    initial = torch.cat([p[0].detach().flatten() for p in initial_model.parameters()])
    moved = {m: float((w - initial).norm()) for m, w in weights.items()}
    assert moved["l2-init"] < 0.5 * moved["none"]
    assert float(weights["shrink-perturb"].norm()) < 0.9 * float(weights["none"].norm())
    # Their state is checkpointed: L2-Init's anchors are the initial weights, S&P's noise generators are saved.
    assert torch.equal(
        states["l2-init"]["decay.theta0/layers/0/weight"], initial_model.layers[0].weight.detach()
    )
    saved = states["shrink-perturb"]
    assert saved["shrink-perturb.state/generator/0"].dtype == torch.uint8  # a generator's state, as a tensor
    assert all(isinstance(v, torch.Tensor) for v in saved.values())
    assert states["none"] == {}


def test_mnist_cnn_trains_and_measures_its_hidden_layers(tmp_path):
    experiment, cfg = tiny("mnist-cnn")
    metrics = final(train(experiment, cfg, run_dir=tmp_path, log=lambda s: None))
    assert len(metrics["test/accuracy"]) == 3 and all(0 <= a <= 1 for a in metrics["test/accuracy"].values())
    assert all(1 <= r <= 128 for r in metrics["test/effective_rank/layer1"].values())  # fc1: 128 units


def test_beta_vae_decays_only_the_encoder_and_counts_active_latents(tmp_path):
    experiment, cfg = tiny("beta-vae")
    metrics = final(train(experiment, cfg, run_dir=tmp_path, log=lambda s: None))
    assert all(0 <= u <= 10 for u in metrics["encoder/active_units"].values())
    assert all(0 < r <= 10 for r in metrics["encoder/mean_effective_rank"].values())
    assert all(
        0 < loss < 784 * 0.7 for loss in metrics["test/recon_loss"].values()
    )  # below a coin flip per pixel
    run = experiment(cfg, CPU, None, False)
    decay = member_decay(run.model, [1.0, 1.0], [0.0, 0.01], seeds=[0, 0], include=experiment.decay_include)
    assert decay.param_names and all(n.startswith("encoder.") for n in decay.param_names)
    with torch.no_grad():  # a collapsed encoder mean (posterior collapse) has no active units and rank 0
        run.model.encoder.layers[-1].weight[1].mul_(100)  # member 1: a mean that varies with the input
        run.model.encoder.layers[-1].weight[0].zero_()
        run.model.encoder.layers[-1].bias[0].zero_()
        run.model.eval()
        m = run.evaluate(Stage(0, 0, 0))
    assert m["encoder/active_units"][0] == 0 and m["encoder/mean_effective_rank"][0] == 0
    assert m["encoder/active_units"][1] > 0


def run_script(tmp_path, capsys, *args: str) -> dict:
    """``scripts/train_supervised.py`` on the command line's path (``--data-dir``), its results.json read back."""
    code = train_supervised.main(["--run-dir", str(tmp_path / "run"), "--threads", "1", *args])
    assert code == 0, capsys.readouterr().err
    return json.loads((tmp_path / "run" / "results.json").read_text())


def test_simclr_probes_and_low_rankness_on_cifar100_layout(tmp_path, capsys):
    """The CIFAR-100 pickle folder a user unpacks (``cifar-100-python/{train,test}``) runs from the command line."""
    write_cifar(tmp_path, "cifar100", n=64)
    experiment, cfg = tiny("simclr")
    args = ("--experiment", "simclr", "--preset", "tiny", "--data-dir", str(tmp_path))
    metrics = final(run_script(tmp_path, capsys, *args))
    for layer in ("backbone", "penultimate", "last"):
        assert all(0 <= a <= 1 for a in metrics[f"probe/{layer}_accuracy"].values())
        assert all(0 <= f <= 1 for f in metrics[f"features/{layer}_low_rank_fraction"].values())
    run = experiment(cfg, CPU, tmp_path, False)
    with torch.no_grad():  # a last layer that outputs a constant is entirely low-rank
        run.model["head"].layers[-1].weight[0].zero_()
        run.model.eval()
        m = run.evaluate(Stage(0, 0, 0))
    assert m["features/last_low_rank_fraction"][0] == 1.0 and m["features/last_low_rank_fraction"][1] < 1.0


def test_cifar10_resnet_sweeps_sigma0(tmp_path, capsys):
    """The CIFAR-10 pickle folder (``cifar-10-batches-py/{data_batch_1..5,test_batch}``) runs from the command
    line; without it the run stops with one line that names the folder it looked in."""
    with pytest.raises(SystemExit) as exit_info:
        train_supervised.main(
            [
                "--experiment",
                "cifar10-resnet",
                "--preset",
                "tiny",
                "--data-dir",
                str(tmp_path),
                "--run-dir",
                str(tmp_path / "none"),
            ]
        )
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and "cifar-10-batches-py" in err
    write_cifar(tmp_path, "cifar10", n=16)
    args = ("--experiment", "cifar10-resnet", "--preset", "tiny", "--data-dir", str(tmp_path))
    results = run_script(tmp_path, capsys, *args)
    metrics = final(results)
    assert set(metrics["test/accuracy"]) == {
        "l2_wd0.0005_seed0",
        "syre_wd0.0005_s0.01_seed0",
        "syre_wd0.0005_s0.5_seed0",
    }
    assert all(0 <= a <= 1 for a in metrics["test/accuracy"].values())
    assert results["stages_done"] == 1


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_experiment_has_default_and_tiny_presets(name):
    for preset in ("default", "tiny"):
        cfg = load_preset(PROJECT_ROOT / "experiments" / f"{name}.yaml", preset, EXPERIMENTS[name].schema)
        assert cfg.members()


def test_results_written_under_the_old_names_are_read_under_todays():
    """Committed results from before the one registry (``vanilla``, ``wd``, ``stable_rank``) still report."""
    old = json.loads((PROJECT_ROOT / "docs/results/supervised/permuted-mnist/results.json").read_text())
    assert {m["method"] for m in old["members"]} >= {"vanilla", "wd"}
    new = upgrade_results(old)
    assert {m["method"] for m in new["members"]} >= {"none", "l2"}
    assert all(not m["name"].startswith(("vanilla", "wd_")) for m in new["members"])
    keys = {k for h in new["history"] for k in h["metrics"]}
    assert any("/srank_fraction/" in k for k in keys) and not any("stable_rank" in k for k in keys)


def test_report_summarises_each_setting_over_its_seeds(tmp_path):
    """Members that differ only in their seed form one setting: its mean, bootstrap interval and range."""
    members, accuracy, rank = [], [], []
    for method, wd, s0, values in (
        ("none", 0.0, 0.0, [0.9, 0.92, 0.94]),
        ("syre", 1.0, 0.1, [0.5, 0.5, 0.5]),
    ):
        for seed, v in enumerate(values):
            name = f"{method}_wd1_s0.1_seed{seed}" if method == "syre" else f"{method}_seed{seed}"
            members.append(
                {
                    "name": name,
                    "method": method,
                    "seed": seed,
                    "weight_decay": wd,
                    "sigma0": s0,
                    "dropout": 0.0,
                }
            )
            accuracy.append(v)
            rank.append(10.0 * (seed + 1))
    metrics = {"test/accuracy": accuracy}
    for kind in ("effective_rank", "srank_fraction", "dead_fraction"):
        metrics |= {f"test/{kind}/layer0": rank, f"test/{kind}/layer1": rank}
    results = {
        "experiment": "mnist-fcn-wd",
        "preset": "paper",
        "members": members,
        "history": [{"metrics": metrics}],
        "stages_done": 1,
        "stages": 1,
        "train_seconds": 1.0,
        "device": "cpu",
        "config": {},
    }
    rows = seed_summary(results)
    assert [(r["setting"], r["seeds"]) for r in rows] == [("none", 3), ("syre_wd1_s0.1", 3)]
    acc = rows[0]["test/accuracy"]
    assert acc["mean"] == pytest.approx(0.92) and acc["min"] == 0.9 and acc["max"] == 0.94
    assert 0.9 <= acc["lo"] < 0.92 < acc["hi"] <= 0.94
    assert rows[1]["test/accuracy"] == dict.fromkeys(("mean", "lo", "hi", "min", "max"), 0.5)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(results))
    out = write_report(tmp_path / "run", tmp_path / "report")
    assert (out / "figure.png").stat().st_size > 0
    csv_lines = (out / "summary.csv").read_text().splitlines()
    assert (
        len(csv_lines) == 3
        and "test/accuracy:lo" in csv_lines[0]
        and csv_lines[2].startswith("syre_wd1_s0.1,3")
    )
    assert "| none | 3 | 0.92 [" in (out / "tables.md").read_text()
    # Runs that differ in one field (beta-VAE's beta): each setting's summary per value of the field.
    for beta, run in ((10.0, "run10"), (1.0, "run1")):
        (tmp_path / run).mkdir()
        (tmp_path / run / "results.json").write_text(json.dumps({**results, "config": {"beta": beta}}))
    out = write_across("beta", [tmp_path / "run10", tmp_path / "run1"], tmp_path / "across")
    lines = (out / "across.csv").read_text().splitlines()
    assert [line.split(",")[:2] for line in lines[1:]] == [
        ["1.0", "none"],
        ["1.0", "syre_wd1_s0.1"],
        ["10.0", "none"],
        ["10.0", "syre_wd1_s0.1"],
    ]
    assert "| none | 0.92 [" in (out / "across.md").read_text() and (out / "across.png").stat().st_size > 0
    args = ["--across", "beta", str(tmp_path / "cli"), str(tmp_path / "run1"), str(tmp_path / "run10")]
    assert (
        report_script.main(args) == 0
        and (tmp_path / "cli" / "across.csv").read_text() == (out / "across.csv").read_text()
    )
    with pytest.raises(SystemExit) as exit_info:  # a run without the field: one line, exit 2, nothing written
        report_script.main(["--across", "gamma", str(tmp_path / "cli2"), str(tmp_path / "run1")])
    assert exit_info.value.code == 2 and not (tmp_path / "cli2").exists()
