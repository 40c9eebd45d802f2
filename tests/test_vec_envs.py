"""The vectorized pendulum against gymnasium's Pendulum-v1, its VecEnv semantics, and the observation maps."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from syre_rl.envs import (
    ObservationMapWrapper,
    RegimeClock,
    RegimeSchedule,
    VecObservationMap,
    VecPendulum,
    make_task_env,
    make_vec_env,
    make_vec_task,
    observation_map,
)
from syre_rl.envs.observation import apply_map


def pendulums(n: int, seed: int, gravity: float = 10.0, mass: float = 1.0) -> VecPendulum:
    schedule = RegimeSchedule(10**9, seed, n_envs=n)
    return VecPendulum(n, schedule, {"gravity": (gravity, gravity), "mass": (mass, mass)}, seed=seed)


@pytest.mark.parametrize(("gravity", "mass"), [(10.0, 1.0), (4.0, 2.5)])
def test_vectorized_pendulum_matches_pendulum_v1_step_for_step(gravity: float, mass: float) -> None:
    n, seed = 4, 3
    venv = pendulums(n, seed, gravity, mass)
    refs = [gym.make("Pendulum-v1") for _ in range(n)]
    obs = venv.reset()
    for i, ref in enumerate(refs):
        ref.unwrapped.g, ref.unwrapped.m = gravity, mass
        ref_obs, _ = ref.reset(seed=seed + i)  # the same initial state from the same seed
        np.testing.assert_array_equal(obs[i], ref_obs)
    rng = np.random.default_rng(0)
    for t in range(450):  # across two automatic resets (200-step time limit)
        actions = rng.uniform(-2.5, 2.5, size=(n, 1)).astype(np.float32)  # beyond the torque limit: clipped
        obs, rewards, dones, infos = venv.step(actions)
        for i, ref in enumerate(refs):
            ref_obs, ref_reward, terminated, truncated, _ = ref.step(actions[i])
            assert not terminated and dones[i] == truncated
            np.testing.assert_allclose(rewards[i], ref_reward, rtol=1e-5, atol=1e-5)
            if truncated:
                np.testing.assert_allclose(infos[i]["terminal_observation"], ref_obs, rtol=1e-5, atol=1e-6)
                assert infos[i]["TimeLimit.truncated"]
                ref_obs, _ = ref.reset()  # the generator continues, as in the vectorized task
                np.testing.assert_array_equal(obs[i], ref_obs)
            else:
                np.testing.assert_allclose(obs[i], ref_obs, rtol=1e-5, atol=1e-6)
        assert dones.all() == (t % 200 == 199)


def test_vec_env_shapes_dtypes_and_seeding() -> None:
    venv = make_vec_env("vec_pendulum:default", n_envs=5, seed=7)
    assert venv.num_envs == 5
    obs = venv.reset()
    assert obs.shape == (5, 3) and obs.dtype == np.float32
    assert venv.observation_space.contains(obs[0]) and venv.action_space.shape == (1,)
    obs, rewards, dones, infos = venv.step(np.zeros((5, 1), dtype=np.float32))
    assert obs.shape == (5, 3) and rewards.shape == (5,) and dones.shape == (5,) and dones.dtype == bool
    assert len(infos) == 5 and all(set(info["regime"]) == {"index", "gravity"} for info in infos)
    again = make_vec_env("vec_pendulum:default", n_envs=5, seed=7)
    other = make_vec_env("vec_pendulum:default", n_envs=5, seed=8)
    np.testing.assert_array_equal(again.reset(), venv.seed(7) and venv.reset())
    assert not np.allclose(other.reset(), again.reset())
    # every env of the batch starts from its own state
    assert len({tuple(row) for row in venv.reset()}) == 5


def test_auto_reset_reports_the_terminal_observation_and_monitor_episodes() -> None:
    venv = make_vec_env("vec_pendulum:default", n_envs=3, seed=0)
    venv.reset()
    zeros = np.zeros((3, 1), dtype=np.float32)
    for _ in range(199):
        last, _, dones, _ = venv.step(zeros)
        assert not dones.any()
    obs, _, dones, infos = venv.step(zeros)
    assert dones.all()
    for i, info in enumerate(infos):
        term = info["terminal_observation"]
        assert term.shape == (3,) and not np.array_equal(term, obs[i])  # obs is the new episode's first
        assert info["episode"]["l"] == 200  # VecMonitor counts the episode
        assert abs(np.hypot(term[0], term[1]) - 1) < 1e-5


def test_regimes_switch_at_episode_starts_and_follow_the_schedule() -> None:
    venv = make_vec_task("vec_pendulum", "default", seed=1, n_envs=4, change_every=1000)
    venv.reset()
    seen = []
    for step in range(1, 701):  # 4 envs: 250 steps per regime, episodes of 200 steps
        _, _, dones, infos = venv.step(np.zeros((4, 1), dtype=np.float32))
        index = infos[0]["regime"]["index"]
        assert index == ((step - 1) // 200) * 200 * 4 // 1000  # the regime due at the episode's start
        assert infos[0]["regime"]["gravity"] == venv.schedule.value("gravity", 4.0, 16.0, index=index)
        seen.append(index)
    assert sorted(set(seen)) == [0, 1, 2]
    venv.env_method("set_run_step", 10_000)  # an evaluation env follows the training run
    venv.reset()
    assert list(venv.get_attr("regime_index")) == [10] * 4


def test_observation_maps_are_fixed_per_regime_and_seed_and_repeat_with_the_cycle() -> None:
    for regime in range(6):
        perm = observation_map("permute", 0, regime, 17)
        assert sorted(perm.tolist()) == list(range(17))  # a permutation
        np.testing.assert_array_equal(perm, observation_map("permute", 0, regime, 17))
        q = observation_map("linear", 0, regime, 5)
        np.testing.assert_allclose(q @ q.T, np.eye(5), atol=1e-6)  # orthogonal
    assert not np.array_equal(observation_map("permute", 0, 0, 17), observation_map("permute", 0, 1, 17))
    assert not np.array_equal(observation_map("permute", 0, 0, 17), observation_map("permute", 1, 0, 17))
    for regime in range(2, 8):  # A, B, A, B, ...
        np.testing.assert_array_equal(
            observation_map("linear", 4, regime, 5, cycle=2),
            observation_map("linear", 4, regime % 2, 5, cycle=2),
        )
    x = np.arange(17, dtype=np.float32)
    np.testing.assert_array_equal(
        apply_map("permute", observation_map("permute", 0, 3, 17), x), x[observation_map("permute", 0, 3, 17)]
    )


@pytest.mark.parametrize("kind", ["permute", "linear"])
def test_gym_and_vec_wrappers_map_the_same_observation(kind: str) -> None:
    schedule = RegimeSchedule(200, seed=5)
    env = RegimeClock(ObservationMapWrapper(gym.make("Pendulum-v1"), schedule, kind, cycle=0), schedule)
    raw = pendulums(1, seed=5)
    raw.schedule = RegimeSchedule(200, seed=5)
    venv = VecObservationMap(raw, seed=5, kind=kind)
    obs, info = env.reset(seed=5)
    np.testing.assert_allclose(venv.reset()[0], obs, atol=1e-6)
    for _ in range(250):  # crosses one episode end: regime 1 with a new map
        action = np.array([0.5], dtype=np.float32)
        obs, _, _, truncated, info = env.step(action)
        vobs, _, dones, vinfos = venv.step(action[None])
        if truncated:
            np.testing.assert_allclose(vinfos[0]["terminal_observation"], obs, atol=1e-5)
            obs, info = env.reset()
            assert vinfos[0]["regime"]["observation_map"] == 0
            assert info["regime"]["observation_map"] == 1
        np.testing.assert_allclose(vobs[0], obs, atol=1e-5)
    assert venv.observation_space.contains(vobs[0])


def test_per_env_task_takes_the_observation_map_from_its_preset() -> None:
    env = make_task_env("drifting_pendulum", "default", seed=2, observation="permute", observation_cycle=2)
    obs, info = env.reset(seed=0)
    assert info["regime"]["observation_map"] == 0
    raw = env.unwrapped._get_obs()
    np.testing.assert_array_equal(obs, raw[observation_map("permute", 2, 0, 3, 2)])


def test_vectorized_task_rejects_bad_presets() -> None:
    with pytest.raises(ValueError, match="friction"):
        make_vec_task("vec_pendulum", "default", changes={"friction": [0.1, 1.0]})
    with pytest.raises(ValueError, match="observation"):
        make_vec_task("vec_pendulum", "default", observation="shuffle")
    with pytest.raises(ValueError, match="vectorized"):
        make_task_env("vec_pendulum")
