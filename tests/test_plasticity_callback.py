"""The plasticity callback in real SB3 PPO runs, read back from real TensorBoard event files."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import pytest
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from syre_rl.plasticity import ActivationRecorder, hidden_layer_groups
from syre_rl.rl.callbacks import PlasticityCallback

WIDTH = 32
METRICS = ("dead_fraction", "dormant_fraction", "srank_fraction", "effective_rank")


def ppo(tmp_path: Path, **policy_kwargs: object) -> PPO:
    return PPO(
        "MlpPolicy",
        "Pendulum-v1",
        n_steps=128,
        batch_size=64,
        n_epochs=2,
        seed=0,
        device="cpu",
        tensorboard_log=str(tmp_path),
        policy_kwargs={
            "net_arch": {"pi": [WIDTH, WIDTH], "vf": [WIDTH, WIDTH]},
            "activation_fn": nn.ReLU,
            **policy_kwargs,
        },
    )


def scalars(tmp_path: Path) -> dict[str, list[float]]:
    (events,) = tmp_path.glob("*/events.out.tfevents.*")
    accumulator = EventAccumulator(str(events))
    accumulator.Reload()
    return {
        tag: [event.value for event in accumulator.Scalars(tag)]
        for tag in accumulator.Tags()["scalars"]
        if tag.startswith("plasticity/")
    }


def test_callback_writes_measurements_in_range_to_tensorboard(tmp_path: Path) -> None:
    model = ppo(tmp_path)
    callback = PlasticityCallback(every_n_steps=256, max_rows=200)
    model.learn(
        512, callback=callback
    )  # rollouts end at 128, 256, 384, 512: measured after the 1st, 2nd, 4th

    values = scalars(tmp_path)
    for group in ("actor", "critic"):
        prefix = f"plasticity/{group}"
        for layer in ("", "/layer0", "/layer1"):
            for key in METRICS:
                series = values[f"{prefix}{layer}/{key}"]
                assert len(series) == 3
                if key == "effective_rank":
                    assert all(0 < v <= WIDTH for v in series)
                else:
                    assert all(0 <= v <= 1 for v in series)
                    if key == "srank_fraction":
                        assert all(v > 0 for v in series)
        assert values[f"{prefix}/effective_rank"] == values[f"{prefix}/layer1/effective_rank"]
        for name in ("layer0", "layer1", "head"):
            assert all(v > 0 for v in values[f"{prefix}/weight_magnitude/{name}"])
            assert values[f"{prefix}/distance_from_init/{name}"][-1] > 0  # training moved every layer
        assert all(0 < v < math.inf for v in values[f"{prefix}/grad_norm"])
    assert all(math.isfinite(v) for v in values["plasticity/actor/entropy"])
    # Between measurements nothing stays hooked.
    assert not callback.recorder.recording
    assert not any(m._forward_hooks for m in model.policy.modules())
    assert not any(p._post_accumulate_grad_hooks for p in model.policy.parameters())


def test_a_collapsed_network_reports_dead_units_and_no_rank(tmp_path: Path) -> None:
    model = ppo(tmp_path)
    with torch.no_grad():  # zero first layers: every hidden unit outputs 0 (SB3 initialises biases at 0)
        for net in (model.policy.mlp_extractor.policy_net, model.policy.mlp_extractor.value_net):
            net[0].weight.zero_()
            net[0].bias.zero_()
    model.learn(256, callback=PlasticityCallback(every_n_steps=128))

    values = scalars(tmp_path)
    for group in ("actor", "critic"):
        prefix = f"plasticity/{group}"
        assert values[f"{prefix}/layer0/dead_fraction"] == [1.0, 1.0]
        assert values[f"{prefix}/layer0/effective_rank"] == [0.0, 0.0]
        assert all(v <= 1.0 for v in values[f"{prefix}/effective_rank"])
        assert all(v <= 1 / WIDTH for v in values[f"{prefix}/srank_fraction"])


def test_recorder_keeps_the_last_rows_of_training_passes_only() -> None:
    relu = nn.ReLU()
    recorder = ActivationRecorder({"relu": relu}, max_rows=100)
    recorder.start()
    for i in range(10):
        relu(torch.full((30, 4), float(i), requires_grad=True))
    with torch.no_grad():
        relu(torch.full((30, 4), -1.0))  # a rollout pass: skipped
    rows = recorder.rows("relu")
    assert rows.shape == (100, 4)
    assert rows[:, 0].tolist() == [6.0] * 10 + [7.0] * 30 + [8.0] * 30 + [9.0] * 30
    assert recorder.latest("relu")[0, 0] == 9.0
    recorder.stop()
    relu(torch.ones(5, 4, requires_grad=True))
    assert recorder.latest("relu")[0, 0] == 9.0


class MlpExtractor(BaseFeaturesExtractor):
    """A features extractor with weights, shared by actor and critic."""

    def __init__(self, observation_space: gym.Space) -> None:
        super().__init__(observation_space, features_dim=8)
        self.net = nn.Sequential(nn.Linear(observation_space.shape[0], 8), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations)


@pytest.mark.parametrize("share", [True, False])
def test_hidden_layer_groups_of_sb3_policies(tmp_path: Path, share: bool) -> None:
    policy = ppo(tmp_path, features_extractor_class=MlpExtractor, share_features_extractor=share).policy
    groups = hidden_layer_groups(policy)
    pi_net, vf_net = policy.mlp_extractor.policy_net, policy.mlp_extractor.value_net
    if share:
        assert list(groups) == ["shared", "actor", "critic"]
        assert groups["shared"][0].out_layers == (pi_net[0], vf_net[0])
    else:
        assert list(groups) == ["actor", "critic"]
        assert groups["actor"][0].in_layer is policy.pi_features_extractor.net[0]
        assert groups["critic"][0].in_layer is policy.vf_features_extractor.net[0]
    assert groups["actor"][-1].in_layer is pi_net[2] and groups["actor"][-1].out_layers == (
        policy.action_net,
    )
    assert groups["critic"][-1].in_layer is vf_net[2] and groups["critic"][-1].out_layers == (
        policy.value_net,
    )
