"""The graphed training step (``train(step="graph")``): the eager step, replayed, gives the same run.

On CPU the graphed path runs its whole logic (warm-up, static input, replays, the short last batch eagerly, a new
capture per stage) with the step re-run instead of a CUDA graph; the CUDA-marked tests (tests/test_cuda.py) check
the captured graph against the eager step on a GPU.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from syre_rl.presets import PROJECT_ROOT, load_preset
from syre_rl.supervised.experiments import EXPERIMENTS
from syre_rl.supervised.step import GRAPH_WARMUP, GraphedStep
from syre_rl.supervised.train import train


def _tiny(name: str, **fields):
    experiment = EXPERIMENTS[name]
    cfg = load_preset(PROJECT_ROOT / "experiments" / f"{name}.yaml", "tiny", experiment.schema)
    return experiment, dataclasses.replace(cfg, **fields)


def _final_weights(run_dir) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"]


@pytest.mark.parametrize("decay_mode", ["coupled", "decoupled"])
def test_graphed_step_gives_the_eager_run_bit_for_bit(tmp_path, monkeypatch, decay_mode):
    # 300 examples in batches of 64: four full batches and a short one per epoch, two tasks.
    experiment, cfg = _tiny(
        "permuted-mnist", tasks=2, train_size=300, eval_size=64, test_size=64, decay_mode=decay_mode
    )
    replays = []
    original = GraphedStep.__call__

    def counting(self, batch):
        original(self, batch)
        replays.append(self.replays)

    monkeypatch.setattr(GraphedStep, "__call__", counting)
    eager = train(experiment, cfg, run_dir=tmp_path / "eager", log=lambda s: None)
    graphed = train(experiment, cfg, run_dir=tmp_path / "graph", log=lambda s: None, step="graph")
    assert graphed["step"] == "graph" and eager["step"] == "eager"
    # Per stage: GRAPH_WARMUP eager steps, then replays of the captured step, then the short batch eagerly.
    per_stage = [0] * GRAPH_WARMUP + list(range(1, 5 - GRAPH_WARMUP)) + [4 - GRAPH_WARMUP]
    assert replays == per_stage * 2
    for a, b in zip(eager["history"], graphed["history"], strict=True):
        assert a["metrics"] == b["metrics"]
    weights_e, weights_g = _final_weights(tmp_path / "eager"), _final_weights(tmp_path / "graph")
    assert all(torch.equal(weights_e[k], weights_g[k]) for k in weights_e)


def test_a_run_resumes_with_the_other_step(tmp_path):
    experiment, cfg = _tiny("permuted-mnist", tasks=2, train_size=256, eval_size=64, test_size=64)
    whole = train(experiment, cfg, run_dir=tmp_path / "whole", log=lambda s: None)
    train(experiment, cfg, run_dir=tmp_path / "split", max_stages=1, log=lambda s: None)
    resumed = train(
        experiment, cfg, run_dir=tmp_path / "split", resume=True, log=lambda s: None, step="graph"
    )
    for a, b in zip(whole["history"], resumed["history"], strict=True):
        assert a["metrics"] == b["metrics"]


def test_graph_refuses_what_it_cannot_capture(tmp_path):
    experiment, cfg = _tiny("permuted-mnist", methods=["shrink-perturb"])
    with pytest.raises(ValueError, match="cannot capture shrink-perturb"):
        train(experiment, cfg, run_dir=tmp_path / "sp", step="graph", log=lambda s: None)
    with pytest.raises(ValueError, match="step must be one of eager, graph"):
        train(experiment, cfg, run_dir=tmp_path / "x", step="compiled", log=lambda s: None)
    assert not (tmp_path / "sp").exists() and not (tmp_path / "x").exists()
