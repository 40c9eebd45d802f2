"""Other plasticity methods: each one's update checked exactly (or statistically), resume, and real SB3 PPO runs."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from stable_baselines3 import PPO
from torch import nn

from syre_rl.methods import CBP, METHODS, NS_ADAM_BETAS, AdamResetClock, ReDo, make_method
from syre_rl.plasticity import dormant_mask, hidden_layers


def mlp(width: int = 16, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 3)
    )


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor) -> None:
    optimizer.zero_grad()
    model(x).square().mean().backward()
    optimizer.step()


def zero_gradient_step(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """A step whose loss gradient is exactly zero, so only the method moves the weights."""
    optimizer.zero_grad()
    (model(torch.randn(4, model[0].in_features)) * 0).sum().backward()
    optimizer.step()


def test_hidden_layers_of_a_sequential_mlp() -> None:
    model = mlp()
    layers = hidden_layers(model)
    assert [layer.name for layer in layers] == ["model.0", "model.1"]
    assert (
        layers[0].in_layer is model[0]
        and layers[0].activation is model[1]
        and layers[0].out_layers == (model[2],)
    )
    assert layers[1].in_layer is model[2] and layers[1].out_layers == (model[4],)


def test_l2_one_step_is_exact_coupled_decay_toward_zero() -> None:
    model = mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    make_method("l2", model, optimizer, weight_decay=0.5)
    before = [p.detach().clone() for p in model.parameters()]
    zero_gradient_step(model, optimizer)
    for p, w in zip(model.parameters(), before, strict=True):
        torch.testing.assert_close(p.detach(), w - 0.1 * 0.5 * w, rtol=0, atol=1e-7)


def test_l2_matches_adam_weight_decay_step_for_step() -> None:
    model, twin = mlp(), mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-2, weight_decay=0.3)
    make_method("l2", model, optimizer, weight_decay=0.3)
    for _ in range(5):
        x = torch.randn(32, 6)
        train_step(model, optimizer, x)
        train_step(twin, twin_optimizer, x)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)


def test_l2_init_one_step_pulls_toward_the_stored_initial_weights() -> None:
    model = mlp()
    initial = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    make_method("l2-init", model, optimizer, weight_decay=0.5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))  # training moved the weights away from their initial values
    moved = [p.detach().clone() for p in model.parameters()]
    zero_gradient_step(model, optimizer)
    for p, w, w0 in zip(model.parameters(), moved, initial, strict=True):
        torch.testing.assert_close(p.detach(), w - 0.1 * 0.5 * (w - w0), rtol=0, atol=1e-6)


def test_shrink_perturb_one_step_is_dohares_formula() -> None:
    """Dohare et al.'s continual Shrink & Perturb under SGD: ``w <- w - lr * (g + wd * w)``, then
    ``w += noise_std * N(0, 1)`` on Linear weights and biases only, written out here."""
    model = mlp()
    log_std = nn.Parameter(
        torch.zeros(3)
    )  # a non-Linear parameter (like SB3's log_std): shrunk? never noised
    model.register_parameter("log_std", log_std)
    lr, wd, noise, seed = 0.1, 0.5, 0.01, 4
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    make_method("shrink-perturb", model, optimizer, weight_decay=wd, noise_std=noise, seed=seed)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randn(8, 6)
    optimizer.zero_grad()
    model(x).square().mean().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    optimizer.step()
    gen = torch.Generator().manual_seed(seed)
    for index in (0, 2, 4):  # Linear modules in order, weight then bias
        for kind in ("weight", "bias"):
            name = f"{index}.{kind}"
            expected = before[name] - lr * (grads[name] + wd * before[name])
            expected = expected + noise * torch.randn(before[name].shape, generator=gen)
            torch.testing.assert_close(model.get_parameter(name).detach(), expected, rtol=0, atol=1e-6)
    assert torch.equal(log_std.detach(), before["log_std"])  # excluded by default: neither shrunk nor noised


def test_shrink_perturb_noise_has_its_std_and_the_boundary_form_acts_only_at_task_changes() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(1000, 1000)
    with torch.no_grad():
        layer.weight.normal_()
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    method = make_method(
        "shrink-perturb", layer, optimizer, form="boundary", shrink=0.4, noise_std=0.01, seed=1
    )
    before = layer.weight.detach().clone()
    optimizer.zero_grad()
    (layer(torch.randn(2, 1000)) * 0).sum().backward()
    optimizer.step()
    assert torch.equal(layer.weight, before)  # nothing during a task
    method.on_task_change()
    after = layer.weight.detach()
    factor = float((before * after).sum() / before.square().sum())
    assert abs(factor - 0.4) < 1e-4  # noise moves this estimate by ~1e-5
    noise = after - 0.4 * before
    assert abs(float(noise.mean())) < 5 * 0.01 / 1000  # five standard errors of the mean of 1e6 draws
    assert abs(float(noise.std()) / 0.01 - 1) < 0.01  # the std's standard error is 0.07%


def test_ns_adam_sets_betas_and_steps_like_adam_with_them() -> None:
    model, twin = mlp(), mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-2, betas=(0.99, 0.99))
    method = make_method("ns-adam", model, optimizer)
    assert NS_ADAM_BETAS == (0.99, 0.99)
    assert all(group["betas"] == (0.99, 0.99) for group in optimizer.param_groups)
    for _ in range(3):
        x = torch.randn(32, 6)
        train_step(model, optimizer, x)
        train_step(twin, twin_optimizer, x)
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    method.detach()
    assert optimizer.param_groups[0]["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="betas"):
        make_method("ns-adam", model, torch.optim.SGD(model.parameters(), lr=0.1))


@pytest.mark.parametrize("window", [False, True])
def test_redo_window_scores_dormancy_over_every_batch_since_the_last_check(window: bool) -> None:
    model = mlp()
    with torch.no_grad():  # unit 2 of the first layer fires only when input 0 is large (the first batch)
        model[0].weight[2] = 0.0
        model[0].weight[2, 0] = 1.0
        model[0].bias[2] = -5.0
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # no learning: the units stay as they are
    redo = make_method("redo", model, optimizer, every=3, window=window, weight_decay=0.0, seed=0)
    seen: list[torch.Tensor] = []
    model[1].register_forward_hook(lambda m, a, out: seen.append(out.detach().clone()))
    torch.manual_seed(1)
    batches = [torch.randn(8, 6).clamp(-3, 3) for _ in range(3)]
    batches[0][:, 0] = 10.0
    for x in batches:
        train_step(model, optimizer, x)
    scored = torch.cat(seen) if window else seen[-1]  # equal batches: the window's mean is the batches' mean
    expected = dormant_mask(scored, 0.1)
    assert redo.resets_per_layer[0] == int(expected.sum())
    assert bool(expected[2]) is not window  # the latest batch alone calls unit 2 dormant, the window does not
    assert bool(model[0].bias[2] == -5.0) is window  # a reset unit's bias is 0


def test_redo_resets_exactly_the_dormant_units_and_their_adam_state() -> None:
    model = mlp()
    with torch.no_grad():  # units 1 and 3 of the first layer and unit 5 of the second never fire
        model[0].weight[[1, 3]] = 0.0
        model[0].bias[[1, 3]] = -1.0
        model[2].weight[5] = 0.0
        model[2].bias[5] = -1.0
    twin = copy.deepcopy(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    twin_optimizer = torch.optim.Adam(twin.parameters(), lr=1e-2)
    redo = make_method("redo", model, optimizer, every=3, weight_decay=0.0, seed=0)
    seen: dict[int, torch.Tensor] = {}
    for i in (1, 3):
        model[i].register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(i, out.detach().clone()))

    for step in range(3):
        x = torch.randn(64, 6)
        train_step(model, optimizer, x)
        train_step(twin, twin_optimizer, x)
        if step < 2:  # no check before the third update: nothing reset
            assert all(torch.equal(p, q) for p, q in zip(model.parameters(), twin.parameters(), strict=True))

    reset0, reset1 = dormant_mask(seen[1], 0.1), dormant_mask(seen[3], 0.1)
    assert reset0[[1, 3]].all() and reset1[5]
    assert redo.resets_per_layer == [int(reset0.sum()), int(reset1.sum())] and redo.updates == 3

    def state(opt: torch.optim.Optimizer, p: torch.Tensor) -> torch.Tensor:
        return opt.state[p]["exp_avg"]

    # First hidden layer: in-weights of reset units are fresh (not the twin's), bias 0, Adam moments 0.
    w0, tw0 = model[0].weight, twin[0].weight
    assert torch.equal(w0[~reset0], tw0[~reset0]) and (w0[reset0] != 0).all()
    assert (model[0].bias[reset0] == 0).all() and torch.equal(model[0].bias[~reset0], twin[0].bias[~reset0])
    for key in ("exp_avg", "exp_avg_sq"):
        assert (optimizer.state[w0][key][reset0] == 0).all()
        assert torch.equal(optimizer.state[w0][key][~reset0], twin_optimizer.state[tw0][key][~reset0])
    # Second Linear: rows of reset second-layer units are fresh, columns of reset first-layer units zero.
    w2, tw2 = model[2].weight, twin[2].weight
    keep_rows = ~reset1
    assert (w2[keep_rows][:, reset0] == 0).all()
    assert (state(optimizer, w2)[keep_rows][:, reset0] == 0).all()
    assert (state(optimizer, w2)[reset1] == 0).all()
    assert torch.equal(w2[keep_rows][:, ~reset0], tw2[keep_rows][:, ~reset0])
    assert torch.equal(
        state(optimizer, w2)[keep_rows][:, ~reset0], state(twin_optimizer, tw2)[keep_rows][:, ~reset0]
    )
    # Output layer: columns of reset second-layer units zero, the rest untouched.
    assert (model[4].weight[:, reset1] == 0).all()
    assert torch.equal(model[4].weight[:, ~reset1], twin[4].weight[:, ~reset1])
    assert torch.equal(model[4].bias, twin[4].bias)


def test_cbp_replaces_mature_units_at_its_rate_and_never_immature_ones() -> None:
    model = mlp(width=50)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    rate, maturity = 0.03, 5
    cbp = make_method(
        "cbp", model, optimizer, replacement_rate=rate, maturity_threshold=maturity, weight_decay=0.0
    )
    assert isinstance(cbp, CBP)
    owed = [0.0, 0.0]
    for _ in range(80):
        ages = [cbp.age(i)[0].clone() for i in range(2)]
        train_step(model, optimizer, torch.randn(32, 6))
        replaced = [cbp.age(i)[0] == 0 for i in range(2)]
        for i, layer in enumerate(cbp.layers):
            eligible = ages[i] + 1 > maturity
            owed[i] += int(eligible.sum()) * rate
            assert int(replaced[i].sum()) == int(owed[i])
            owed[i] -= int(owed[i])
            assert eligible[replaced[i]].all()  # immature units are never replaced
            assert (cbp.utility(i)[0, replaced[i]] == 0).all() and (
                layer.in_layer.bias[replaced[i]] == 0
            ).all()
            kept_rows = ~replaced[i + 1] if i + 1 < 2 else torch.ones(3, dtype=torch.bool)
            assert (layer.out_layers[0].weight[kept_rows][:, replaced[i]] == 0).all()
    # About rate * eligible units per step: ~(80 - 5) steps * 50 units * 0.03 = 112 replacements per layer.
    assert all(90 < n < 125 for n in cbp.replaced_per_layer)


STATEFUL = {
    "cbp": {"replacement_rate": 0.1, "maturity_threshold": 1},
    "redo": {"every": 1, "tau": 0.5},
    "shrink-perturb": {"noise_std": 1e-2},
    "l2-init": {"weight_decay": 0.1},
    "reset-head": {"targets": ["4.*"], "every": 2},
}


@pytest.mark.parametrize("name", sorted(STATEFUL))
def test_a_restored_method_continues_exactly(name: str) -> None:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    seed = {"seed": 3} if name != "l2-init" else {}
    method = make_method(name, model, optimizer, **seed, **STATEFUL[name])
    batches = [torch.randn(32, 6) for _ in range(6)]
    for x in batches[:3]:
        train_step(model, optimizer, x)
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), method.state_dict()))

    resumed = mlp(seed=1)  # different initial weights: everything must come from the checkpoint
    resumed.load_state_dict(saved[0])
    resumed_optimizer = torch.optim.Adam(resumed.parameters(), lr=1e-2)
    resumed_optimizer.load_state_dict(saved[1])
    resumed_method = make_method(name, resumed, resumed_optimizer, **STATEFUL[name])  # another seed
    resumed_method.load_state_dict(saved[2])
    for x in batches[3:]:
        train_step(model, optimizer, x)
        train_step(resumed, resumed_optimizer, x)
    for p, q in zip(model.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_bad_settings_are_refused_with_the_argument_named() -> None:
    model = mlp()
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(ValueError, match="unknown plasticity method 'dropout'"):
        make_method("dropout", model, optimizer)
    with pytest.raises(ValueError, match="replacement_rate"):
        make_method("cbp", model, optimizer, replacement_rate=2.0)
    with pytest.raises(ValueError, match="every"):
        make_method("redo", model, optimizer, every=0)
    with pytest.raises(ValueError, match="shrink"):
        make_method("shrink-perturb", model, optimizer, shrink=1.5)


PPO_SETTINGS = {
    "none": {},
    "syre": {},
    "l2": {},
    "l2-init": {},
    "shrink-perturb": {},
    "cbp": {"maturity_threshold": 2, "replacement_rate": 0.05},
    "redo": {"every": 2},
    "ns-adam": {},
    "reset-head": {"every": 3},
    "reset-all": {"every": 5},
}


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_runs_inside_sb3_ppo(name: str) -> None:
    model = PPO(
        "MlpPolicy",
        "CartPole-v1",
        n_steps=64,
        batch_size=32,
        n_epochs=2,
        seed=0,
        device="cpu",
        policy_kwargs={"net_arch": {"pi": [16, 16], "vf": [16, 16]}, "activation_fn": nn.ReLU},
    )
    policy = model.policy
    initial = {n: p.detach().clone() for n, p in policy.named_parameters()}
    method = make_method(name, policy, policy.optimizer, **PPO_SETTINGS[name])
    model.learn(128)  # two rollouts, 2 epochs x 2 minibatches each: 8 optimizer steps
    assert all(torch.isfinite(p).all() for p in policy.parameters())
    assert not torch.equal(policy.action_net.weight, initial["action_net.weight"])
    if isinstance(method, ReDo):
        assert method.updates == 8 and [layer.name for layer in method.layers] == [
            "actor.0",
            "actor.1",
            "critic.0",
            "critic.1",
        ]
        assert method.layers[1].out_layers == (policy.action_net,)
    if isinstance(method, CBP):
        assert sum(method.replaced_per_layer) > 0 and max(int(method.age(i).max()) for i in range(4)) <= 8
    if name == "l2-init":
        anchors = method.decay.anchors
        assert all(torch.equal(anchors[n], initial[n]) for n in initial)
    if name == "ns-adam":
        assert policy.optimizer.param_groups[0]["betas"] == (0.99, 0.99)


def test_cbp_replacement_keeps_the_mean_output_on_the_recorded_batch() -> None:
    """Dohare's bias correction: the replaced unit's mean contribution ``W_out[:, u] * mean_act[u]`` moves into the
    reader's bias. With the same batch every step (and lr 0, so nothing else moves) the bias-corrected running mean
    is the batch mean, so the mean output on that batch stays put; without the correction it jumps."""
    torch.manual_seed(0)
    x = torch.randn(64, 6)
    jumps = {}
    for correct in (True, False):
        model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        with torch.no_grad():
            model[0].bias.fill_(2.0)  # every unit active, mean activation about 2
        optimizer = torch.optim.Adam(model.parameters(), lr=0.0)
        cbp = make_method(
            "cbp",
            model,
            optimizer,
            replacement_rate=1 / 16,
            maturity_threshold=5,
            weight_decay=0.0,
            bias_correction=correct,
            seed=0,
        )
        for _ in range(5):
            train_step(model, optimizer, x)
        before = model(x).mean(0).detach()
        assert cbp.replaced_per_layer == [0]
        train_step(model, optimizer, x)  # the sixth step makes one unit eligible... and replaces it
        assert cbp.replaced_per_layer == [1]
        jumps[correct] = float((model(x).mean(0).detach() - before).abs().max())
    assert jumps[True] < 1e-6
    assert jumps[False] > 1e-2  # the test has teeth: the unit's contribution was large


@pytest.mark.parametrize("betas", [(0.9, 0.999), (0.99, 0.99)])
def test_the_first_adam_update_of_a_reset_unit_is_a_fresh_adams(betas) -> None:
    """After 300 steps, ReDo resets dead units; the next update of their out-weights (the only ones with a gradient:
    zero out-weights block the in-weights' gradient) must be a fresh Adam's first update, ``lr g / (|g| + eps)``,
    not torch's with the tensor's step 301 (1.6 x lr with betas (0.9, 0.999), 0.2 x lr with (0.99, 0.99))."""
    torch.manual_seed(0)
    model = mlp(width=16)
    with torch.no_grad():  # units 1 and 3 of the second hidden layer never fire
        model[2].weight[[1, 3]] = 0.0
        model[2].bias[[1, 3]] = -1.0
    lr = 1e-3
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas)
    redo = make_method("redo", model, optimizer, every=300, tau=0.0, weight_decay=0.0, seed=0)
    for _ in range(300):
        train_step(model, optimizer, torch.randn(32, 6))
    assert redo.resets_per_layer[1] >= 2
    reset = model[4].weight.detach()[:, [1, 3]].clone()
    assert (reset == 0).all()
    x = torch.randn(32, 6)
    optimizer.zero_grad()
    model(x).square().mean().backward()
    grad = model[4].weight.grad[:, [1, 3]].clone()
    optimizer.step()
    step = model[4].weight.detach()[:, [1, 3]] - reset
    fresh = -lr * grad / (grad.abs() + 1e-8)  # m = (1 - b1) g, v = (1 - b2) g^2, both bias-corrected at k = 1
    assert (grad.abs() > 1e-7).all()
    torch.testing.assert_close(step, fresh, rtol=0.01, atol=0)
    b1, b2 = betas  # what torch's one step count per tensor would have done: far from it
    stale = (
        -lr * grad * (1 - b1) / (1 - b1**301) / (grad.abs() * (1 - b2) ** 0.5 / (1 - b2**301) ** 0.5 + 1e-8)
    )
    assert not torch.allclose(stale, fresh, rtol=0.3)


@pytest.mark.parametrize("name", ["syre", "l2", "l2-init", "shrink-perturb", "cbp", "redo"])
def test_exclude_adds_to_the_default_that_keeps_log_std_out(name: str) -> None:
    """A method's ``exclude=`` adds patterns; SB3's ``log_std`` stays out whatever is passed."""
    model = mlp()
    model.register_parameter("log_std", nn.Parameter(torch.ones(3)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    strong = {"weight_decay": 0.5} if name != "syre" else {"gamma": 0.5}
    make_method(name, model, optimizer, exclude="0.*", **strong)
    with torch.no_grad():  # away from L2-Init's anchors
        for p in model.parameters():
            p.add_(1.0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    zero_gradient_step(model, optimizer)
    after = dict(model.named_parameters())
    assert torch.equal(after["log_std"], before["log_std"])
    assert torch.equal(after["0.weight"], before["0.weight"]) and torch.equal(
        after["0.bias"], before["0.bias"]
    )
    assert not torch.equal(after["4.weight"], before["4.weight"])  # the rest decays


def test_adam_reset_clock_tables_are_the_vectorised_powers() -> None:
    """The clock looks its bias corrections up in tables; they hold exactly what torch's vectorised ``pow`` gives
    for every count, as far as a tracked entry's own count can reach (the horizon plus one pruning interval)."""
    param = nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.Adam([param], betas=(0.9, 0.999))
    clock = AdamResetClock([param])
    first, second = clock._corrections(0.9, 0.999, optimizer, param)
    counts = torch.arange(1, first.numel(), dtype=torch.float32)[torch.randperm(first.numel() - 1)]
    assert torch.equal(first.index_select(0, counts.long()), 1 - 0.9**counts)
    assert torch.equal(second.index_select(0, counts.long()), (1 - 0.999**counts).sqrt())
    assert first.numel() > math.log(AdamResetClock.TOLERANCE) / math.log(0.999) + AdamResetClock.PRUNE_EVERY
