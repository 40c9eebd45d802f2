"""scripts/bench/gpu_check.py: the dry run writes the full report on the CPU; bad input is one line and changes nothing."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from conftest import needs_data

from syre_rl.presets import PROJECT_ROOT

_spec = importlib.util.spec_from_file_location("gpu_check", PROJECT_ROOT / "scripts" / "bench" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)


@needs_data("mnist")
def test_dry_run_writes_the_report_and_summary(tmp_path, capsys):
    out = tmp_path / "check"
    # One CUDA test (run on the CPU) keeps this fast; the benchmarks run whole, at their dry-run sizes.
    code = gpu_check.main(
        ["--out", str(out), "--dry-run", "-k", "formula and coupled-tensor and not decoupled"]
    )
    assert code == 0, capsys.readouterr().out[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["format"] == gpu_check.REPORT_FORMAT and report["dry_run"] is True
    tests = report["tests"]
    assert tests["counts"] == {"passed": 1, "failed": 0, "error": 0, "skipped": 0}, tests["output_tail"]
    assert tests["tests"][0]["name"] == "test_syre_on_device_tensors_is_the_formula[coupled-tensor]"
    bench = report["bench"]
    epoch = bench["pipeline"]["epoch"]
    assert (
        epoch["eager_s"] > 0
        and epoch["graph_s"] > 0
        and epoch["speedup"] == epoch["eager_s"] / epoch["graph_s"]
    )
    assert [row["members"] for row in bench["pipeline"]["seeds"]] == [2, 3]
    assert [row["variant"] for row in bench["optimizer"]["rows"]][0] == "fused AdamW"
    assert len(bench["optimizer"]["rows"]) == 4 and bench["optimizer"]["rows"][0]["ratio"] == 1.0
    assert set(bench["targets"]) == set(gpu_check._load_bench().TARGETS)
    assert all(v["met"] is None for v in bench["targets"].values())  # judged on CUDA only
    summary = (out / "summary.txt").read_text()
    assert "dry run on CPU" in summary and summary.rstrip().endswith("OK")
    assert sorted(p.name for p in out.iterdir()) == ["report.json", "summary.txt"]


def test_missing_data_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "check"
    code = gpu_check.main(["--out", str(out), "--dry-run", "--data-dir", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: MNIST is missing") and err.count("\n") == 1
    assert "train-images-idx3-ubyte" in err and not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@needs_data("mnist")
def test_without_cuda_it_says_so_and_exits_3(tmp_path, capsys):
    code = gpu_check.main(["--out", str(tmp_path / "check")])
    err = capsys.readouterr().err
    assert code == 3 and "no CUDA device" in err and err.count("\n") == 1
    assert not (tmp_path / "check").exists()
