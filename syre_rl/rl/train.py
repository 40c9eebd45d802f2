"""The RL run lifecycle: settings, run directory, resume, checkpoints, divergence and Ctrl-C, in one function.

:func:`train` is to Stable-Baselines3 runs what :func:`syre_rl.supervised.train.train` is to the supervised
experiments; ``scripts/train_ppo.py`` is a command line over it. Every check of a run (settings, device,
seed, run directory, checkpoint, building the environments and the model) passes before anything is written
or deleted.

Exact resumes: a periodic checkpoint is taken after an update, and at that point the run restarts its
environments (fresh episodes, seeded from the step) exactly as a resume from that checkpoint does. A run that
is killed and resumed therefore makes the same updates on the same data as one that never stopped (on-policy
algorithms; SAC's replay buffer is not checkpointed). A stop by Ctrl-C saves a checkpoint after the current
update; its resume restarts the environments there.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper
from torch.utils.tensorboard import SummaryWriter

from syre_rl import runs
from syre_rl.cli import CheckpointError, DivergedError, UsageError, check_device, check_writable
from syre_rl.envs import resolve_env
from syre_rl.presets import PresetError, build_preset, runs_root
from syre_rl.rl.callbacks import (
    PlasticityCallback,
    RegimeLoggerCallback,
    RegimeSyncedEvalCallback,
    RunCheckpointCallback,
    StopOnSignalCallback,
    SyreSummaryCallback,
    TaskChangeCallback,
)
from syre_rl.rl.config import AGENT_SCHEMAS, AgentPreset, agent_preset_names, load_agent_preset
from syre_rl.rl.model import ALGORITHMS, build_model, make_env
from syre_rl.rl.run_dir import (
    RunDir,
    check_finite,
    checkpoint_step,
    load_checkpoint,
    restore_normalization,
)
from syre_rl.stats import t_interval

__all__ = ["RunResult", "agent_settings", "default_run_dir", "train"]

RESUME_FIELDS = ("total_timesteps",)  # the only preset field a resume may change
OLD_SYRE_FIELDS = ("gamma", "sigma0", "spread", "mode")  # config.json of older runs: syre_<key> fields


@dataclass
class RunResult:
    """What a call of :func:`train` did.

    :param steps: the model's step count at the end
    :param new_steps: steps trained by this call
    :param seconds: wall time of the training loop
    :param interrupted: stopped by a signal before the end (a checkpoint was saved)
    :param checkpoint: the checkpoint or ``final/`` folder written last
    """

    run_dir: Path
    steps: int
    new_steps: int
    seconds: float
    interrupted: bool
    checkpoint: Path
    last_eval: float | None = None
    train_return: float | None = None
    episodes: int = 0


def agent_settings(algo: str, preset_name: str, overrides: dict[str, Any] | None = None) -> AgentPreset:
    """Preset ``preset_name`` of ``agents/<algo>.yaml`` with ``overrides`` (preset fields) applied and validated.

    Raises :class:`UsageError` or :class:`~syre_rl.presets.PresetError` naming the bad field.
    """
    if algo not in AGENT_SCHEMAS:
        raise UsageError(f"unknown algorithm {algo!r}; choose one of: {', '.join(AGENT_SCHEMAS)}")
    names = agent_preset_names(algo)
    if preset_name not in names:
        raise UsageError(f"unknown preset {preset_name!r} for {algo}; choose one of: {', '.join(names)}")
    preset = load_agent_preset(algo, preset_name)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    syre = {k: v for k, v in overrides.pop("syre", {}).items() if v is not None}
    if syre and overrides.get("method", preset.method) != "syre":
        raise UsageError(f"--syre-{next(iter(syre))} needs --syre (or a preset with method: syre)")
    fields = {**dataclasses.asdict(preset), **overrides, "syre": {**preset.syre_kwargs(), **syre}}
    preset = build_preset(AGENT_SCHEMAS[algo], fields, f"agents/{algo}.yaml:{preset_name} with flags")
    try:
        resolve_env(preset.env)
    except ValueError as err:  # names the choices
        raise UsageError(str(err)) from None
    return preset


def reference_line(value: float, references: list[float], source: str, method: str) -> str:
    """Where an evaluation return lies against plain PPO's seeds on the same preset: their mean, 95% interval
    and range. Across machines a run reproduces only statistically, so one seed's number is no yardstick."""
    mean, lo, hi, n = t_interval(references)
    where = "inside" if lo <= value <= hi else "above" if value > hi else "below"
    return (
        f"against plain PPO's {n} seeds on this preset (mean {mean:,.0f}, 95% interval [{lo:,.0f}, {hi:,.0f}], "
        f"range {min(references):,.0f} to {max(references):,.0f}; {source}): {where} that interval; method {method}"
    )


def default_run_dir(algo: str, preset_name: str, preset: AgentPreset, seed: int) -> Path:
    env = preset.env.replace(":", "-").replace("/", "-")
    return runs_root() / f"{algo}-{env}-{preset_name}-{preset.method}-s{seed}"


def _resume_settings(
    run: RunDir, algo: str | None, preset_name: str | None, seed: int | None, overrides: dict[str, Any]
) -> tuple[str, str, int, AgentPreset]:
    """The run's own settings from its config.json; flags that would change them are refused."""
    config = run.read_config()
    old_syre = {
        k: config["preset"].pop(f"syre_{k}") for k in OLD_SYRE_FIELDS if f"syre_{k}" in config["preset"]
    }
    if old_syre:  # a run written before the nested syre group
        config["preset"]["syre"] = old_syre
    if config["algo"] not in AGENT_SCHEMAS:
        raise CheckpointError(f"{run.config_file}: unknown algo {config['algo']!r}")
    try:
        preset = build_preset(AGENT_SCHEMAS[config["algo"]], config["preset"], str(run.config_file))
    except PresetError as err:
        raise CheckpointError(f"corrupt config: {err}") from None
    given = {"--algo": (algo, config["algo"]), "--preset": (preset_name, config["preset_name"])}
    given["--seed"] = (seed, config["seed"])
    for field, value in overrides.items():
        if field == "syre":
            for key, new in value.items():
                given[f"--syre-{key}"] = (new, preset.syre_kwargs().get(key))
        elif value is not None and field not in RESUME_FIELDS:
            given[f"--{field.replace('_', '-')}"] = (value, getattr(preset, field))
    same = lambda a, b: json.dumps(a, default=list) == json.dumps(b, default=list)  # noqa: E731  (tuple == list)
    differ = [
        f"{flag} {new} (the run has {old})"
        for flag, (new, old) in given.items()
        if new is not None and not same(new, old)
    ]
    if differ:
        raise UsageError(f"--resume continues {run.path} as it was started; it cannot change {differ[0]}")
    if overrides.get("total_timesteps") is not None:
        preset = dataclasses.replace(preset, total_timesteps=overrides["total_timesteps"])
    return config["algo"], config["preset_name"], config["seed"], preset


def _tensorboard_logger(folder: Path, purge_step: int | None) -> Logger:
    """SB3's TensorBoard logger; on a resume its writer hides the points the stopped run logged after its
    checkpoint (``purge_step``), so the step axis never goes back."""
    output = TensorBoardOutputFormat.__new__(TensorBoardOutputFormat)
    output.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)
    output._is_closed = False
    return Logger(str(folder), [output])


def _reseed_and_reset(model: BaseAlgorithm, seed: int) -> None:
    """What SB3's ``learn`` does at its start: seed everything, reset the environments (mirrors ``_setup_learn``)."""
    model.set_random_seed(seed)
    model._last_obs = model.env.reset()  # type: ignore[union-attr]
    model._last_episode_starts = np.ones((model.env.num_envs,), dtype=bool)  # type: ignore[union-attr]
    if model._vec_normalize_env is not None:
        model._last_original_obs = model._vec_normalize_env.get_original_obs()
    if getattr(model, "use_sde", False):
        model.policy.reset_noise(model.env.num_envs)  # type: ignore[union-attr, operator]


def _divergence(model: BaseAlgorithm) -> str:
    """What went non-finite, for a divergence SB3 reported as a ValueError."""
    try:
        check_finite(model)
    except DivergedError as err:
        return str(err)
    return f"training diverged at step {model.num_timesteps:,}: the policy's outputs are not finite"


def _swap_envs(running: VecEnv, fresh: VecEnv) -> None:
    """Put ``fresh``'s environments inside ``running``'s innermost VecEnv, closing the old ones.

    SB3 holds on to the VecEnv object during a rollout, so the environments are swapped inside it; wrappers
    around them (VecNormalize) keep their state.
    """
    inner, new = running, fresh
    while isinstance(inner, VecEnvWrapper):
        inner = inner.venv
    while isinstance(new, VecEnvWrapper):
        new = new.venv
    if not (isinstance(inner, DummyVecEnv) and isinstance(new, DummyVecEnv)):
        raise TypeError(f"cannot restart {type(inner).__name__} environments in place")
    for env in inner.envs:
        env.close()
    inner.envs = new.envs


@dataclass
class _Start:
    """Where a call of :func:`train` starts: the run, its settings, and the checkpoint it continues (if any)."""

    run: RunDir
    algo: str
    preset_name: str
    seed: int
    settings: AgentPreset
    checkpoint: Path | None = None
    start_step: int = 0


def _start(
    run_dir: str | Path | None,
    algo: str | None,
    preset: str | None,
    seed: int | None,
    overrides: dict[str, Any],
    resume: bool,
) -> _Start:
    """The run's settings: a fresh run reads the preset (+ overrides); a resumed run reads its own config.json,
    checked against the copy its checkpoint was saved with."""
    if not resume:
        algo, preset, seed = algo or "ppo", preset or "default", 0 if seed is None else seed
        settings = agent_settings(algo, preset, overrides)
        run = RunDir(run_dir if run_dir is not None else default_run_dir(algo, preset, settings, seed))
        return _Start(run, algo, preset, seed, settings)
    if run_dir is None:
        raise UsageError("--resume needs --run-dir")
    run = RunDir(run_dir)
    algo, preset, seed, settings = _resume_settings(run, algo, preset, seed, overrides)
    checkpoint = _resume_point(run)
    start_step = 0 if checkpoint == run.final_dir else checkpoint_step(checkpoint)
    run.check_config(checkpoint)
    return _Start(run, algo, preset, seed, settings, checkpoint, start_step)


def _resume_point(run: RunDir) -> Path:
    """Where a resume continues: ``final/`` of a finished run, else the newest step checkpoint."""
    return run.final_dir if (run.final_dir / runs.MODEL_FILE).is_file() else run.latest_checkpoint()


def _probe_model(start: _Start, device: str) -> BaseAlgorithm | None:
    """Build (or load) the model on environments that write no files: every check of the settings on this
    machine (finite anchors, a usable device, a loadable checkpoint) before anything is written or deleted."""
    settings = start.settings
    probe = make_env(settings, n_envs=settings.n_envs, seed=start.seed, start_step=start.start_step)
    try:
        if start.checkpoint is not None:
            return load_checkpoint(ALGORITHMS[start.algo], start.checkpoint, probe, device)
        try:
            build_model(start.algo, settings, probe, seed=start.seed, device=device)
        except (ValueError, RuntimeError) as err:
            raise UsageError(f"cannot build the model: {str(err).splitlines()[0]}") from None
        return None
    finally:
        probe.close()


def train(
    run_dir: str | Path | None = None,
    *,
    algo: str | None = None,
    preset: str | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int | None = None,
    device: str = "cpu",
    resume: bool = False,
    force: bool = False,
    progress_bar: bool = True,
    log: Callable[[str], None] = print,
) -> RunResult:
    """Train (or resume) one SB3 run in ``run_dir``; returns what it did.

    :param run_dir: the run directory (default: ``runs/<algo>-<env>-<preset>-<method>-s<seed>``)
    :param algo: a key of :data:`~syre_rl.rl.model.ALGORITHMS` (default ``ppo``)
    :param preset: a preset of ``agents/<algo>.yaml`` (default ``default``)
    :param overrides: preset fields to change (``method``, ``total_timesteps``, ..., and ``syre``: keys of the
        syre group such as ``{"gamma": 1e-3}``, merged into the preset's); a resume
        accepts only a larger ``total_timesteps`` and refuses the others if they differ from the run's
    :param seed: the run's seed (default 0)
    :param resume: continue the run in ``run_dir`` from its last checkpoint
    :param force: replace the run in ``run_dir`` (only an RL run this toolkit wrote)
    :raises UsageError, PresetError, CheckpointError: bad input, before anything is written
    :raises DivergedError: a non-finite loss or weight; the last good checkpoint stays the latest
    """
    device = check_device(device)
    start = _start(run_dir, algo, preset, seed, dict(overrides or {}), resume)
    run, settings = start.run, start.settings
    check_writable(run.path, "run directory")
    if not resume:
        runs.prepare_new_run(run.path, "rl", force)  # refuses before anything is built; checked again when claimed
    model = _probe_model(start, device)
    if model is not None:
        start.start_step = model.num_timesteps
    if start.checkpoint == run.final_dir and start.start_step >= settings.total_timesteps:
        log(f"{run.path} finished at step {start.start_step:,}; pass a larger --total-timesteps to continue it")
        return RunResult(run.path, start.start_step, 0, 0.0, False, run.final_dir)
    with runs.claim_run(run.path, "rl", resume=resume, force=force):
        if resume and _resume_point(run) != start.checkpoint:
            raise UsageError(f"{run.path} changed while this resume started (another process wrote it); try again")
        if model is not None and start.start_step >= settings.total_timesteps:
            saved = run.save_checkpoint(model, run.final_dir)  # stopped after the last update: finish the run
            log(f"{run.path} is at step {start.start_step:,} of {settings.total_timesteps:,}: wrote {saved}")
            return RunResult(run.path, start.start_step, 0, 0.0, False, saved)
        if model is None:
            config = {"algo": start.algo, "preset_name": start.preset_name, "seed": start.seed}
            run.write_config({**config, "preset": dataclasses.asdict(settings)})
        return _Training(start, model, device, log).run(progress_bar)


class _Training:
    """One call's training loop on a claimed run directory: environments, callbacks, learn, summary."""

    def __init__(self, start: _Start, model: BaseAlgorithm | None, device: str, log: Callable[[str], None]) -> None:
        self.start, self.log = start, log
        self.run_dir, self.settings, self.seed = start.run, start.settings, start.seed
        step = start.start_step
        if model is not None:
            model.set_env(self.environments(step, start.checkpoint))
            model.set_random_seed(self.seed + step)  # as at every periodic checkpoint, see restart()
            log(f"resuming {self.run_dir.path} at step {step:,} of {self.settings.total_timesteps:,} "
                f"({start.checkpoint.name})")  # type: ignore[union-attr]  # fmt: skip
        else:
            model = build_model(start.algo, self.settings, self.environments(0, None), seed=self.seed, device=device)
            log(f"training {start.algo} ({start.preset_name}, method {self.settings.method}) on "
                f"{self.settings.env} for {self.settings.total_timesteps:,} steps into {self.run_dir.path}")  # fmt: skip
        model.set_logger(_tensorboard_logger(self.run_dir.tb_dir, step + 1 if step else None))
        self.model = model

    def environments(self, step: int, saved: Path | None) -> VecEnv:
        settings = self.settings
        env = make_env(settings, n_envs=settings.n_envs, seed=self.seed, start_step=step,
                       monitor_dir=self.run_dir.monitor_dir(step))  # fmt: skip
        return env if saved is None else restore_normalization(saved, env)

    def restart(self, step: int, saved: Path) -> None:
        """Continue from the checkpoint just saved exactly as a resume from it would: fresh environments
        (their running normalization statistics are already the checkpoint's), reseeded from the step, and the
        regime seen first after it is no change (as after a resume)."""
        _swap_envs(self.model.get_env(), self.environments(step, None))
        _reseed_and_reset(self.model, self.seed + step)
        self.task_change.regime = None

    def callbacks(self) -> list[BaseCallback]:
        """Anchors summary, regime of a non-stationary task, the methods that act at regime changes (and the
        preset's change_reset), checkpoints (divergence, Ctrl-C), plasticity measurements, evaluation."""
        settings = self.settings
        stop = StopOnSignalCallback()
        self.task_change = TaskChangeCallback(settings.change_reset)
        self.checkpoints = RunCheckpointCallback(self.run_dir, settings.checkpoint_freq, on_checkpoint=self.restart,
                                                 stop=stop)  # fmt: skip
        callbacks: list[BaseCallback] = [SyreSummaryCallback(), RegimeLoggerCallback(), self.task_change, stop,
                                         self.checkpoints]  # fmt: skip
        if settings.plasticity_every > 0:
            callbacks.append(PlasticityCallback(every_n_steps=settings.plasticity_every))
        self.evaluation = None
        if settings.eval_freq > 0:
            eval_env = make_env(settings, n_envs=1, seed=self.seed + 10_000, start_step=self.start.start_step,
                                training=False)  # fmt: skip
            self.evaluation = RegimeSyncedEvalCallback(
                eval_env,
                n_eval_episodes=settings.eval_episodes,
                eval_freq=max(settings.eval_freq // settings.n_envs, 1),
                verbose=1,
            )
            callbacks.append(self.evaluation)
        return callbacks

    def run(self, progress_bar: bool) -> RunResult:
        """Learn (``reset_num_timesteps=False`` continues a resumed run's step count and TensorBoard curve),
        save ``final/`` and summarise; a divergence names the last good checkpoint."""
        model, start = self.model, self.start
        callbacks = self.callbacks()
        started = time.perf_counter()
        final = None
        try:
            model.learn(self.settings.total_timesteps - start.start_step, callback=callbacks,
                        reset_num_timesteps=start.checkpoint is None, progress_bar=progress_bar)  # fmt: skip
            if self.checkpoints.stopped_at is None:
                final = self.run_dir.save_checkpoint(model, self.run_dir.final_dir)  # DivergedError if not finite
        except (DivergedError, ValueError) as err:
            if not isinstance(err, DivergedError) and "nan" not in str(err).lower():
                raise
            # torch's distributions refuse NaN parameters (mid-update or mid-rollout) with a ValueError
            reason = str(err) if isinstance(err, DivergedError) else _divergence(model)
            kept = self.run_dir.checkpoints()
            where = f"the last good checkpoint is {kept[-1]}" if kept else "no checkpoint was saved"
            raise DivergedError(f"{reason}; {where}") from None
        finally:
            model.logger.close()
            model.get_env().close()
            if self.evaluation is not None:
                self.evaluation.eval_env.close()
        return self.summary(time.perf_counter() - started, final)

    def summary(self, wall: float, final: Path | None) -> RunResult:
        model, log, path, begin = self.model, self.log, self.run_dir.path, self.start.start_step
        stopped_at = self.checkpoints.stopped_at
        if stopped_at is not None:
            stopped = checkpoint_step(stopped_at)
            log(f"interrupted at step {stopped:,}; checkpoint {stopped_at}")
            log(f"continue with: python -m syre_rl train --run-dir {path} --resume")
            return RunResult(path, stopped, stopped - begin, wall, True, stopped_at)
        assert final is not None
        steps = model.num_timesteps - begin
        episodes = [info["r"] for info in model.ep_info_buffer]
        result = RunResult(path, model.num_timesteps, steps, wall, False, final, episodes=len(episodes))
        log(f"done: {model.num_timesteps:,} steps ({steps:,} now) in {wall / 60:.1f} min, {steps / wall:.0f} steps/s")
        evaluation, settings = self.evaluation, self.settings
        if evaluation is not None and evaluation.n_calls >= evaluation.eval_freq:
            result.last_eval = float(evaluation.last_mean_reward)
            log(f"last evaluation: mean return {result.last_eval:.1f} over {settings.eval_episodes} episodes")
            if settings.reference_returns:
                log(reference_line(result.last_eval, settings.reference_returns, settings.reference, settings.method))
        if episodes:
            result.train_return = float(np.mean(episodes))
            log(f"last {len(episodes)} training episodes: mean return {result.train_return:.1f}")
        log(f"final model: {final / runs.MODEL_FILE}")
        log(f"logs: tensorboard --logdir {self.run_dir.tb_dir}")
        return result
