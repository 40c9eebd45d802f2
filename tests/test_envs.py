"""Continuing tasks on real PyBullet physics: registration, schedule semantics, read-back of the physics."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from syre_rl.envs import (
    TASKS,
    FrictionWrapper,
    RegimeSchedule,
    describe_task,
    load_task,
    make_task_env,
    make_vec_env,
)
from syre_rl.envs.tasks import TaskPreset
from syre_rl.presets import PresetError, build_preset
from syre_rl.rl.callbacks import RegimeLoggerCallback


def run(env: gym.Env, steps: int) -> list[dict]:
    """Step ``env`` with random actions, resetting at episode ends; the info of every step and reset, in order."""
    env.action_space.seed(0)
    _, info = env.reset(seed=0)
    infos = [info]
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        infos.append(info)
        if terminated or truncated:
            _, info = env.reset()
            infos.append(info)
    return infos


def engine_friction(env: gym.Env) -> set[float]:
    """Effective ground friction of every robot link with mass, read from Bullet: ground times link."""
    base = env.unwrapped
    p, body = base._p, base.robot.objects[0]
    ground = p.getDynamicsInfo(base.stadium_scene.ground_plane_mjcf[0], -1)[1]
    links = [k for k in range(-1, p.getNumJoints(body)) if p.getDynamicsInfo(body, k)[0] > 0]
    return {round(ground * p.getDynamicsInfo(body, k)[1], 9) for k in links}


def torso_xyz(env: gym.Env) -> np.ndarray:
    return np.array(env.unwrapped.robot.robot_body.pose().xyz())


@pytest.mark.filterwarnings("ignore:.*different from the unwrapped version")  # the wrappers are what we check
@pytest.mark.parametrize("task", list(TASKS))
def test_every_task_passes_gymnasium_and_sb3_checks(task: str) -> None:
    env = gym.make(TASKS[task], change_every=50)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    _, info = env.reset(seed=1)
    _, _, _, _, info = env.step(env.action_space.sample())
    quantity = next(iter(load_task(task).changes))
    assert info["regime"]["index"] == 0 and quantity in info["regime"]
    env.close()


def test_change_dynamics_friction_survives_reset_of_the_raw_env() -> None:
    """The fact the friction wrapper relies on: changeDynamics on the ground outlives reset()'s restoreState."""
    env = gym.make("AntBulletEnv-v0")
    env.reset(seed=0)
    ground = env.unwrapped.stadium_scene.ground_plane_mjcf[0]
    env.unwrapped._p.changeDynamics(ground, -1, lateralFriction=0.123)
    for _ in range(5):
        env.step(env.action_space.sample())
    env.reset()
    assert env.unwrapped._p.getDynamicsInfo(ground, -1)[1] == pytest.approx(0.123)
    env.close()


def test_effective_friction_in_the_engine_equals_the_regime_value() -> None:
    env = make_task_env("slippery_ant", seed=3, change_every=60)
    env.action_space.seed(0)
    env.reset(seed=0)
    seen = {}
    # Episodes of up to 70 steps, each starting in the regime due, until four regimes were seen (random actions
    # make the ant fall early in some episodes, which then see no new regime).
    for _ in range(20):
        if len(seen) >= 4:
            break
        _, info = env.reset()
        for _ in range(70):
            (effective,) = engine_friction(
                env
            )  # one value: every link with mass has the same contact friction
            assert effective == pytest.approx(info["regime"]["friction"], rel=1e-6)
            seen[info["regime"]["index"]] = info["regime"]["friction"]
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            if terminated or truncated:
                break
    assert len(seen) >= 4 and len(set(seen.values())) == len(seen)  # several regimes, each its own friction
    assert all(0.02 <= f <= 2.0 for f in seen.values())
    # the ant keeps its own friction (1.5); only the ground was scaled
    p, body = env.unwrapped._p, env.unwrapped.robot.objects[0]
    assert p.getDynamicsInfo(body, -1)[1] == pytest.approx(1.5)
    env.close()


def test_regime_changes_at_first_episode_end_after_change_every_and_not_before() -> None:
    # Pendulum episodes are 200 steps; the change time 250 falls inside the second episode (steps 200-399).
    env = make_task_env("drifting_pendulum", seed=0, change_every=250)
    env.reset(seed=0)
    gravities = []
    for t in range(600):
        _, _, _, truncated, info = env.step(env.action_space.sample())
        assert info["regime"]["index"] == (0 if t < 400 else 1), t
        gravities.append(env.unwrapped.g)
        if truncated:
            env.reset()
    assert len(set(gravities[:400])) == 1 and len(set(gravities[400:])) == 1
    assert gravities[0] != gravities[400]
    env.close()


def test_sequence_is_fixed_by_the_seed_and_identical_after_resume() -> None:
    def regimes(seed: int, start_step: int, steps: int) -> dict[int, float]:
        env = make_task_env("drifting_pendulum", seed=seed, change_every=300, start_step=start_step)
        return {info["regime"]["index"]: info["regime"]["gravity"] for info in run(env, steps)}

    full = regimes(seed=7, start_step=0, steps=2000)
    assert len(full) >= 6
    assert regimes(seed=7, start_step=0, steps=2000) == full
    assert regimes(seed=8, start_step=0, steps=2000) != full
    resumed = regimes(seed=7, start_step=1100, steps=900)
    assert min(resumed) == 1100 // 300  # the resumed run enters the regime due at its start step
    assert resumed == {k: v for k, v in full.items() if k in resumed}
    assert set(resumed) == {k for k in full if k >= 1100 // 300}


def test_global_step_counts_across_vector_envs() -> None:
    # 4 envs x 200-step episodes = 800 run steps per episode; change every 600 run steps -> regime 1 after the
    # first episode. A single env would still be in regime 0 (200 < 600).
    def index_after_first_episode(n_envs: int) -> list[int]:
        venv = make_vec_env("drifting_pendulum", n_envs=n_envs, seed=0, env_kwargs={"change_every": 600})
        venv.reset()
        for _ in range(201):
            _, _, _, infos = venv.step(np.zeros((n_envs, 1), dtype=np.float32))
        venv.close()
        return [info["regime"]["index"] for info in infos]

    assert index_after_first_episode(4) == [1, 1, 1, 1]
    assert index_after_first_episode(1) == [0]


def test_an_evaluation_env_follows_the_training_run_step() -> None:
    venv = make_vec_env("drifting_pendulum", n_envs=1, seed=0, env_kwargs={"change_every": 100})
    venv.reset()
    venv.env_method("set_run_step", 1234)
    venv.reset()
    _, _, _, infos = venv.step(np.zeros((1, 1), dtype=np.float32))
    assert infos[0]["regime"]["index"] == 12
    venv.close()


def test_start_step_reaches_every_env_of_a_vector_env() -> None:
    venv = make_vec_env("slippery_ant:dohare", n_envs=2, seed=0, start_step=5_000_000)
    venv.reset()
    _, _, _, infos = venv.step(np.zeros((2, 8), dtype=np.float32))
    assert [i["regime"]["index"] for i in infos] == [2, 2]
    assert infos[0]["regime"]["friction"] == infos[1]["regime"]["friction"]
    venv.close()


def test_slippery_ant_slides_further_with_the_same_actions() -> None:
    """A push at the same speed, no torques: on a slippery floor the ant slides further."""

    def slide(friction_regime: int) -> float:
        # alternate: regime 0 has friction 0.02, regime 1 has 2.0; change_every=1 switches at the next reset
        env = make_task_env("slippery_ant", seed=0, change_every=1, draw="alternate")
        env.reset(seed=0)
        for _ in range(friction_regime):
            env.step(np.zeros(8, dtype=np.float32))
            env.reset(seed=0)
        for _ in range(20):  # settle on the floor
            env.step(np.zeros(8, dtype=np.float32))
        start = torso_xyz(env)
        env.unwrapped._p.resetBaseVelocity(env.unwrapped.robot.objects[0], linearVelocity=[3.0, 0, 0])
        for _ in range(30):
            _, _, _, _, info = env.step(np.zeros(8, dtype=np.float32))
        assert info["regime"]["friction"] == [0.02, 2.0][friction_regime]
        distance = float(np.linalg.norm((torso_xyz(env) - start)[:2]))
        env.close()
        return distance

    slippery, grippy = slide(0), slide(1)
    assert slippery > 2 * grippy, (slippery, grippy)


def test_gravity_changes_fall_speed_and_engine_gravity() -> None:
    def drop(regime: int) -> float:
        env = make_task_env("gravity_hopper", seed=0, change_every=1, draw="alternate")
        env.reset(seed=0)
        for _ in range(regime):
            env.step(np.zeros(3, dtype=np.float32))
            env.reset(seed=0)
        expected = [5.0, 15.0][regime]
        params = env.unwrapped._p.getPhysicsEngineParameters()
        assert params["gravityAccelerationZ"] == pytest.approx(-expected)
        body = env.unwrapped.robot.objects[0]
        p = env.unwrapped._p
        p.resetBasePositionAndOrientation(body, [0, 0, 2.0], [0, 0, 0, 1])  # lift it clear of the floor
        z0 = torso_xyz(env)[2]
        for _ in range(8):
            env.step(np.zeros(3, dtype=np.float32))
        fallen = z0 - torso_xyz(env)[2]
        env.close()
        return fallen

    light, heavy = drop(0), drop(1)
    assert heavy == pytest.approx(3 * light, rel=0.15), (light, heavy)  # free fall: distance scales with g


def test_motor_strength_scales_torque() -> None:
    def joint_speed(regime: int) -> float:
        env = make_task_env("strength_walker", seed=0, change_every=1, draw="alternate")
        env.reset(seed=0)
        for _ in range(regime):
            env.step(np.zeros(6, dtype=np.float32))
            env.reset(seed=0)
        assert env.unwrapped.robot.power == pytest.approx(0.40 * [0.5, 2.0][regime])
        for _ in range(3):
            env.step(np.ones(6, dtype=np.float32))
        speed = float(np.abs(env.unwrapped.robot.joint_speeds).sum())
        env.close()
        return speed

    assert joint_speed(1) > 1.5 * joint_speed(0)


def test_unknown_names_give_one_clear_value_error() -> None:
    with pytest.raises(ValueError, match="slippery_ant, slippery_cheetah") as err:
        make_vec_env("slipery_ant", n_envs=1, seed=0)
    assert "unknown environment 'slipery_ant'" in str(err.value)
    with pytest.raises(ValueError, match="TASK one of"):
        make_vec_env("nope:default", n_envs=1, seed=0)
    with pytest.raises(PresetError, match="choose one of: default, study, dohare, syre-paper"):
        make_vec_env("slippery_ant:nope", n_envs=1, seed=0)
    with pytest.raises(PresetError, match="unknown quantity 'viscosity'"):
        build_preset(
            TaskPreset,
            {"base_env": "Pendulum-v1", "changes": {"viscosity": [1, 2]}, "change_every": 1, "regimes": 1},
            "x",
        )
    with pytest.raises(PresetError, match="0 < low <= high"):
        make_task_env("drifting_pendulum", changes={"gravity": [3.0, 1.0]})


def test_presets_describe_the_reference_schedules() -> None:
    assert load_task("slippery_ant", "dohare").change_every == 2_000_000
    assert load_task("slippery_ant", "syre-paper").change_every == 5_000_000
    study = load_task("slippery_ant", "study")
    assert study.total_steps == study.change_every * study.regimes == 400_000
    for task in TASKS:
        load_task(task, "default")
    line = describe_task("syre_rl/SlipperyAnt-v0")
    assert "slippery_ant:default" in line and "20,000" in line and "5 regimes" in line
    assert "stationary" in describe_task("AntBulletEnv-v0")


def test_regime_logger_writes_tensorboard_scalars(tmp_path) -> None:
    venv = make_vec_env("drifting_pendulum", n_envs=2, seed=0, env_kwargs={"change_every": 300})
    model = PPO(
        "MlpPolicy", venv, n_steps=200, batch_size=100, n_epochs=1, tensorboard_log=str(tmp_path), seed=0
    )
    model.learn(800, callback=RegimeLoggerCallback(), tb_log_name="probe")
    events = EventAccumulator(str(next(tmp_path.glob("probe*")))).Reload()
    index = [s.value for s in events.Scalars("env/regime_index")]
    gravity = [s.value for s in events.Scalars("env/gravity")]
    assert index == [0, 1]  # logged after each rollout: run steps 400 (regime 0), 800 (regime 1 since 600)
    assert all(4.0 <= g <= 16.0 for g in gravity) and gravity[0] != gravity[1]
    venv.close()


def test_friction_wrapper_rejects_a_bad_range() -> None:
    with pytest.raises(ValueError, match="friction: need 0 < low <= high"):
        FrictionWrapper(gym.make("AntBulletEnv-v0"), RegimeSchedule(10, seed=0), 0.0, 1.0)
