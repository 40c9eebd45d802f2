"""The batched-members model, the per-member decay, checkpoints and resume, and the script's bad-input handling."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from syre_rl.presets import PROJECT_ROOT, load_preset
from syre_rl.supervised import command as train_supervised
from syre_rl.supervised.ensemble import StackedConv2d, member_decay, member_generators, stacked_fan_in
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.models import MLP, to_grouped
from syre_rl.supervised.train import train


@pytest.mark.parametrize("mode", ["coupled", "decoupled"])
def test_stacked_members_equal_separate_models_trained_alone(mode):
    """E members in one model, one Adam, per-member decay (core's Syre with given D and anchors) = E plain
    nn.Linear nets, each with its own Adam and its own decay written as a loss penalty (coupled) or an explicit
    shrink (decoupled), in float64."""
    torch.manual_seed(0)
    seeds, gamma, sigma0, lr = [0, 1, 0], [0.0, 0.1, 0.1], [0.0, 0.0, 0.5], 1e-2
    model = MLP(6, [5, 4], 3, member_generators(seeds)).double()
    separate = [model.member(e) for e in range(3)]
    opt = torch.optim.Adam(model.parameters(), lr=lr, foreach=True)
    decay = member_decay(model, gamma, sigma0, mode=mode, seeds=seeds)
    decay.attach(opt)
    targets = decay.anchors  # name -> sigma0_e * theta0 in the stacked layout
    anchors = [
        [
            t
            for layer in range(3)
            for t in (targets[f"layers.{layer}.weight"][e].T, targets[f"layers.{layer}.bias"][e, 0])
        ]
        for e in range(3)
    ]
    opts = [torch.optim.Adam(net.parameters(), lr=lr) for net in separate]
    x, y = torch.randn(20, 4, 6, dtype=torch.float64), torch.randint(0, 3, (20, 4))
    for step in range(20):
        losses = F.cross_entropy(
            model(x[step].expand(3, 4, 6)).transpose(1, 2), y[step].expand(3, 4), reduction="none"
        )
        opt.zero_grad()
        losses.mean(1).sum().backward()
        opt.step()
        for e, (net, o) in enumerate(zip(separate, opts, strict=True)):
            loss = F.cross_entropy(net(x[step]), y[step])
            if mode == "coupled":
                loss = loss + gamma[e] / 2 * sum(
                    (p - a).square().sum() for p, a in zip(net.parameters(), anchors[e], strict=True)
                )
            o.zero_grad()
            loss.backward()
            if mode == "decoupled":
                with torch.no_grad():
                    for p, a in zip(net.parameters(), anchors[e], strict=True):
                        p.sub_(lr * gamma[e] * (p - a))
            o.step()
    for e, net in enumerate(separate):
        for a, b in zip(model.member(e).parameters(), net.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(model.layers[0].weight[0], model.layers[0].weight[2])  # syre moved member 2


def test_stacked_conv_is_each_members_own_convolution():
    conv = StackedConv2d(3, 4, 3, member_generators([0, 1]), padding=1)
    x = torch.randn(2, 5, 3, 8, 8)
    out = conv(to_grouped(x)).view(5, 2, 4, 8, 8)
    for e in range(2):
        expected = F.conv2d(x[e], conv.weight[e], conv.bias[e], padding=1)
        torch.testing.assert_close(out[:, e], expected, rtol=1e-5, atol=1e-5)


def test_member_decay_anchors_use_each_members_fan_in_and_d_holds_each_members_strength():
    model = nn.ModuleDict(
        {
            "fc": MLP(400, [300], 10, member_generators(range(4))),
            "conv": StackedConv2d(8, 16, 3, member_generators(range(4))),
            "bn": nn.BatchNorm2d(4 * 16),  # member-major [E * C], as after a stacked convolution
        }
    )
    fan_in = stacked_fan_in(model)
    assert (
        fan_in["fc.layers.0.weight"] == 400
        and fan_in["fc.layers.1.bias"] == 300
        and fan_in["conv.weight"] == 72
    )
    gamma = [0.0, 0.5, 1.0, 2.0]
    decay = member_decay(model, gamma, [0.0, 1.0, 1.0, 2.0], seeds=[0, 1, 2, 3])
    target = decay.anchors
    w = target["fc.layers.0.weight"]
    assert torch.all(w[0] == 0)  # sigma0 = 0: plain weight decay toward zero
    assert abs(float(w[1].std()) - 1 / 400**0.5) < 0.002  # std sigma0 / sqrt(400), not / sqrt(400 * 300)
    assert abs(float(target["conv.weight"][3].std()) - 2 / 72**0.5) < 0.02
    assert not torch.allclose(w[1], w[2])  # one anchor per member
    for name in ("fc.layers.0.weight", "conv.weight", "bn.weight"):
        d = decay.diagonals[name].view(4, -1)
        assert all(torch.all(d[e] == g) for e, g in enumerate(gamma)), name
    # Anchors and D are buffers of the Syre: its state_dict carries them to another build (a resumed run).
    other = member_decay(model, [1.0] * 4, [3.0] * 4, seeds=[4, 5, 6, 7])
    other.load_state_dict(decay.state_dict())
    assert torch.equal(other.anchors["conv.weight"], target["conv.weight"])
    assert torch.equal(other.diagonals["bn.weight"], decay.diagonals["bn.weight"])
    only_fc = member_decay(model, [1.0] * 4, [1.0] * 4, seeds=[0, 1, 2, 3], include="fc.*")
    assert only_fc.param_names == [
        "fc.layers.0.weight",
        "fc.layers.0.bias",
        "fc.layers.1.weight",
        "fc.layers.1.bias",
    ]


def _tiny(name: str, **fields):
    experiment = EXPERIMENTS[name]
    cfg = load_preset(PROJECT_ROOT / "experiments" / f"{name}.yaml", "tiny", experiment.schema)
    return experiment, dataclasses.replace(cfg, **fields)


FAST_SETTINGS = {  # settings that make CBP and ReDo reset units within a tiny run
    "cbp": {"maturity_threshold": 2, "replacement_rate": 0.05},
    "redo": {"every": 3, "tau": 0.5},
    "shrink-perturb": {"noise_std": 1e-3},
}


@pytest.mark.parametrize("methods", [["none", "l2", "syre"], ["shrink-perturb", "cbp", "redo", "l2-init"]])
def test_resume_continues_exactly_where_the_run_stopped(tmp_path, methods):
    """Per-member decay (Syre anchors and D) and the competing methods' state (utilities, counters, generators,
    Adam reset clocks) come back from the checkpoint."""
    experiment, cfg = _tiny(
        "permuted-mnist",
        methods=methods,
        method_kwargs=FAST_SETTINGS,
        tasks=2,
        eval_size=64,
        test_size=64,
        train_size=256,
    )
    whole = train(experiment, cfg, run_dir=tmp_path / "whole", log=lambda s: None)
    if "cbp" in methods:  # the resetting methods acted, and their per-member counts are reported
        final = whole["history"][-1]["metrics"]
        names = [m["name"] for m in whole["members"]]
        cbp, redo = names.index("cbp_seed0"), names.index("redo_seed0")
        assert final["methods/replaced_units"][cbp] > 0 and final["methods/replaced_units"][redo] == 0
        assert final["methods/reset_units"][redo] > 0 and final["methods/reset_units"][cbp] == 0
    first = train(experiment, cfg, run_dir=tmp_path / "split", max_stages=1, log=lambda s: None)
    assert first["stages_done"] == 1
    resumed = train(experiment, cfg, run_dir=tmp_path / "split", resume=True, log=lambda s: None)
    assert resumed["stages_done"] == 2
    for a, b in zip(whole["history"], resumed["history"], strict=True):
        assert a["metrics"] == b["metrics"]
    assert (tmp_path / "split" / "tb").is_dir() and any((tmp_path / "split" / "tb").iterdir())


def _run_main(args, capsys):
    try:
        code = train_supervised.main(args)
    except SystemExit as exit_info:
        code = exit_info.code
    err = capsys.readouterr().err.strip()
    return code, err


def test_bad_input_is_one_line_exit_2_and_changes_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--run-dir", str(run), "--preset", "tiny"]
    for args, message in [
        (["--experiment", "nope"], "unknown experiment 'nope'"),
        (["--experiment", "teacher-student", "--preset", "huge"], "unknown preset 'huge'"),
        (["--experiment", "teacher-student", "--lr", "-1"], "lr must be a finite number > 0"),
        (["--experiment", "teacher-student", "--weight-decay", "nan"], "expected a finite number, got 'nan'"),
        (["--experiment", "teacher-student", "--tasks", "3"], "--tasks applies to permuted-mnist only"),
        (["--experiment", "teacher-student", "--methods", "vanilla,l2-init"], "unknown ['vanilla']"),
        (["--experiment", "teacher-student", "--methods", "ns-adam"], "set adam_betas: [0.99, 0.99]"),
        (
            ["--experiment", "mnist-cnn", "--data-dir", str(tmp_path / "none")],
            "missing file train-images-idx3-ubyte",
        ),
        (["--experiment", "teacher-student", "--resume"], "nothing to resume"),
    ]:
        code, err = _run_main([*common, *args], capsys)
        assert (
            code == 2
            and err.startswith("train_supervised.py: error: ")
            and message in err
            and "\n" not in err
        ), (args, err)
    assert not run.exists() or not any(run.iterdir())
    with pytest.raises(SystemExit) as exit_info:  # argparse's own errors: one line too
        train_supervised.main(["--experiment", "teacher-student", "--lr", "abc"])
    assert exit_info.value.code == 2 and capsys.readouterr().err.count("\n") == 1

    assert _run_main(["--experiment", "teacher-student", *common, "--epochs", "1"], capsys)[0] == 0
    before = (run / "results.json").read_text()
    code, err = _run_main(["--experiment", "teacher-student", *common], capsys)
    assert code == 2 and "--resume to continue it or --force" in err
    code, err = _run_main(["--experiment", "teacher-student", *common, "--resume", "--epochs", "2"], capsys)
    assert code == 2 and "another configuration" in err
    (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:100])
    code, err = _run_main(["--experiment", "teacher-student", *common, "--resume", "--epochs", "1"], capsys)
    assert code == 2 and "corrupt checkpoint" in err and "\n" not in err
    assert (run / "results.json").read_text() == before
    assert json.loads(before)["stages_done"] == 1


def _train_members(members, steps: int = 24):
    """Members stacked in one float64 MLP through the pipeline's attach_methods; each member's batches come
    from its own seed. Returns the model and the attached methods."""
    from syre_rl.supervised.methods import attach_methods

    seeds = [m.seed for m in members]
    model = MLP(6, [16, 12], 3, member_generators(seeds)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, foreach=True)
    methods = attach_methods(
        model, optimizer, members, decay_mode="coupled", include=None, method_kwargs=FAST_SETTINGS
    )
    data = [torch.Generator().manual_seed(s) for s in seeds]
    for _ in range(steps):
        x = torch.stack([torch.randn(8, 6, generator=g, dtype=torch.float64) for g in data])
        loss = (model(x) - 1.0).square().mean(dim=(1, 2))
        optimizer.zero_grad()
        loss.sum().backward()
        optimizer.step()
    return model, methods


def test_stacked_member_equals_the_same_seed_trained_alone_for_every_method():
    """A stacked run mixing every method: member k ends with exactly the weights of its method and seed trained
    alone (its anchors, resets, noise and Adam reset clock depend on its own seed only), and CBP/ReDo made the
    same reset decisions."""
    from syre_rl.supervised.methods import Member

    members = [
        Member("cbp", 3),
        Member("none", 5),
        Member("redo", 7),
        Member("syre", 9, weight_decay=0.1, sigma0=1.0),
        Member("cbp", 11),
        Member("shrink-perturb", 13, weight_decay=1e-2),
        Member("l2-init", 15, weight_decay=0.5),
        Member("redo", 17),
    ]
    stack, stack_methods = _train_members(members)
    assert (
        sum(stack_methods["cbp"].replaced_per_layer) > 0 and sum(stack_methods["redo"].resets_per_layer) > 0
    )
    for k, member in enumerate(members):
        solo, solo_methods = _train_members([member])
        for a, b in zip(stack.member(k).parameters(), solo.member(0).parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
        if member.method in ("cbp", "redo"):
            index = stack_methods[member.method].members.index(k)
            counts = "replaced" if member.method == "cbp" else "resets"
            mine = [layer[index] for layer in getattr(stack_methods[member.method], counts)]
            assert mine == [layer[0] for layer in getattr(solo_methods[member.method], counts)]
            assert sum(mine) > 0, member  # it did reset units


def test_reset_entries_are_found_in_every_stacked_and_plain_layout():
    """The Adam reset clock's flat indices of a unit's rows equal the entries a mask written through the same
    view marks, for stacked in/out layers and plain Linear ones."""
    from syre_rl.methods.resets import _flat_rows, in_view, out_view

    stacked = MLP(5, [4], 3, member_generators([0, 1, 2])).layers
    plain = nn.Linear(5, 4)
    units = torch.tensor([3, 1])
    for module, view, bias in [
        (stacked[0], in_view, False),
        (stacked[0], in_view, True),
        (stacked[1], out_view, False),
        (plain, in_view, False),
        (plain, in_view, True),
        (plain, out_view, False),
    ]:
        param = module.bias if bias else module.weight
        for e in range(view(module, param, bias).shape[0]):
            mask = torch.zeros_like(param, dtype=torch.bool)
            view(module, mask, bias)[e].index_fill_(0, units, True)
            flat = _flat_rows(param, view(module, param, bias)[e], units)
            assert sorted(flat.tolist()) == mask.reshape(-1).nonzero().squeeze(1).tolist()
