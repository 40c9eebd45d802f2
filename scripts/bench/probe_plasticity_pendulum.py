"""Does loss of plasticity show on the cheap task within minutes on a CPU?

PPO (SB3 MlpPolicy, ReLU) on ``drifting_pendulum:probe``: gravity alternates A-B-A-B, so the return reached on
the same gravity can be compared early and late in the run. After every rollout it measures the effective rank
and the dead fraction of the actor's last hidden layer on a fixed batch of pendulum states.

    python scripts/bench/probe_plasticity_pendulum.py --seed 0 --out runs/probe_pendulum_s0.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from torch import nn

from syre_rl.envs import load_task, make_vec_env
from syre_rl.plasticity import dead_fraction, effective_rank


def probe_batch(n: int = 1024, seed: int = 0) -> torch.Tensor:
    """Fixed pendulum states (angle uniform on the circle, speed uniform in [-8, 8]): the same inputs at every
    measurement, so rank changes come from the network and not from a changing state distribution."""
    rng = np.random.default_rng(seed)
    theta, speed = rng.uniform(-np.pi, np.pi, n), rng.uniform(-8, 8, n)
    return torch.as_tensor(np.stack([np.cos(theta), np.sin(theta), speed], axis=1), dtype=torch.float32)


class ProbeCallback(BaseCallback):
    """Episode returns per regime, and feature rank / dead units on a fixed batch after each rollout."""

    def __init__(self) -> None:
        super().__init__()
        self.returns: dict[int, list[float]] = defaultdict(list)
        self.features: list[dict[str, float]] = []
        self.batch = probe_batch()

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "episode" in info:
                self.returns[info["regime"]["index"]].append(float(info["episode"]["r"]))
        return True

    def _on_rollout_end(self) -> None:
        with torch.no_grad():
            latent = self.model.policy.mlp_extractor.forward_actor(self.batch)
        regime = self.locals["infos"][0]["regime"]["index"]
        self.features.append(
            {
                "step": self.num_timesteps,
                "regime": regime,
                "erank": effective_rank(latent),
                "dead": dead_fraction(latent),
            }
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="drifting_pendulum:probe")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="write the per-regime summary as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(1)

    task = load_task(*args.preset.split(":"))
    venv = make_vec_env(args.preset, n_envs=4, seed=args.seed)
    # RL Zoo's Pendulum-v1 PPO settings, with a ReLU MLP so that dead units can appear.
    model = PPO(
        "MlpPolicy",
        venv,
        n_steps=1024,
        gae_lambda=0.95,
        gamma=0.9,
        n_epochs=10,
        ent_coef=0.0,
        learning_rate=1e-3,
        clip_range=0.2,
        use_sde=True,
        sde_sample_freq=4,
        policy_kwargs={"activation_fn": nn.ReLU, "net_arch": [64, 64]},
        seed=args.seed,
        device="cpu",
    )
    probe = ProbeCallback()
    start = time.perf_counter()
    model.learn(task.total_steps, callback=probe)
    seconds = time.perf_counter() - start

    rows = []
    for k in range(task.regimes):  # SB3 overshoots total_steps by up to one rollout: drop that tail
        r = probe.returns[k]
        feats = [f for f in probe.features if f["regime"] == k]
        rows.append(
            {
                "regime": k,
                "gravity": task.ranges["gravity"][k % 2],
                "episodes": len(r),
                "first10": float(np.mean(r[:10])),
                "last10": float(np.mean(r[-10:])),
                "erank_end": feats[-1]["erank"] if feats else None,
                "dead_end": feats[-1]["dead"] if feats else None,
            }
        )
    print(
        f"{args.preset} seed {args.seed}: {task.total_steps:,} steps in {seconds:.0f} s ({task.total_steps / seconds:.0f} steps/s)"
    )
    print("| regime | gravity | first 10 ep. return | last 10 ep. return | eff. rank (of 64) | dead |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['regime']} | {row['gravity']:g} | {row['first10']:.0f} | {row['last10']:.0f} | "
            f"{row['erank_end']:.1f} | {row['dead_end']:.2f} |"
        )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(
                {
                    "preset": args.preset,
                    "seed": args.seed,
                    "seconds": seconds,
                    "regimes": rows,
                    "features": probe.features,
                },
                f,
            )


if __name__ == "__main__":
    main()
