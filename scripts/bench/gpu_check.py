"""The device check: the CUDA tests and the GPU benchmarks in one call, one JSON report and a text summary.

    python scripts/bench/gpu_check.py --out DIR [--data-dir ROOT] [--wheels DIR]
    python scripts/bench/gpu_check.py --out DIR --dry-run        # everything but CUDA, small sizes, on the CPU

On a CUDA machine it runs the tests marked ``cuda`` (tests/test_cuda.py: device-resident data, stacked ensembles,
Syre on CUDA tensors in both modes and storages, save/reload on and across devices, fused Adam with syre's hooks,
the graphed training step, the SB3 policy on ``device="cuda"``), then ``scripts/bench/bench_gpu.py``'s benchmarks,
and writes ``DIR/report.json`` and ``DIR/summary.txt``. It needs nothing outside the repository but:

- MNIST's raw files: ``ROOT/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`` (11 MB gzipped), ROOT
  from ``--data-dir`` (default ``$SYRE_RL_DATA``, else the per-user cache folder); for a machine that receives only the
  repository, copy them into the ignored folder ``.gpu/data`` (``make gpu-data``) and pass ``--data-dir .gpu/data``.
- for the SB3 test, Stable-Baselines3, sb3-contrib and gymnasium: installed, or as wheels in ``--wheels`` (default
  ``.gpu/wheels`` when it exists; ``make gpu-wheels`` downloads them), installed into a temporary folder.

Exit status: 0 all ran and every test passed (benchmark targets are reported, not enforced); 1 a test failed or
a benchmark broke; 2 bad input (missing data, unusable --out); 3 no CUDA device and no ``--dry-run``. It stays
within about 8 minutes on one H100.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
MNIST_FILES = [
    f"{split}-{kind}-ubyte" for split in ("train", "t10k") for kind in ("images-idx3", "labels-idx1")
]
SB3_PACKAGES = ("stable_baselines3", "sb3_contrib", "gymnasium")
TEST_TIMEOUT_S = 300
REPORT_FORMAT = "syre_rl.gpu_check/1"


def _load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "scripts" / "bench" / "bench_gpu.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bench_gpu"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def missing_mnist(data_dir: Path) -> list[str]:
    folder = data_dir / "MNIST" / "raw"
    return [
        name for name in MNIST_FILES if not any((folder / f"{name}{ext}").is_file() for ext in (".gz", ""))
    ]


def install_wheels(wheels: Path | None, target: Path) -> list[str]:
    """Install the wheels in ``wheels`` into ``target`` when SB3 is not importable; returns what was installed."""
    if all(importlib.util.find_spec(p) is not None for p in SB3_PACKAGES):
        return []
    files = sorted(wheels.glob("*.whl")) if wheels is not None and wheels.is_dir() else []
    if not files:
        return []
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
         "--target", str(target), *map(str, files)],
        check=True,
    )  # fmt: skip
    return [f.name for f in files]


def run_tests(out: Path, env: dict[str, str], select: str | None) -> dict[str, Any]:
    """``pytest -m cuda tests/test_cuda.py``; the outcome of every test from its JUnit XML."""
    xml = out / "tests.xml"
    command = [sys.executable, "-m", "pytest", "tests/test_cuda.py", "-m", "cuda", "-q", "-rfEs",
               "-p", "no:cacheprovider", f"--junitxml={xml}"]  # fmt: skip
    if select:
        command += ["-k", select]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TEST_TIMEOUT_S
        )
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        code, output = -1, f"timed out after {TEST_TIMEOUT_S} s\n{err.stdout or ''}"
    tests = []
    if xml.is_file():
        for case in ET.parse(xml).getroot().iter("testcase"):
            outcome, message = "passed", ""
            for tag in ("failure", "error", "skipped"):
                node = case.find(tag)
                if node is not None:
                    outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
                    message = (node.get("message") or "")[:300]
            tests.append({"name": case.get("name"), "outcome": outcome, "seconds": float(case.get("time", 0)),
                          "message": message})  # fmt: skip
        xml.unlink()
    counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "error", "skipped")}
    return {
        "command": " ".join(command[1:]),
        "exit_code": code,
        "seconds": time.perf_counter() - start,
        "counts": counts,
        "tests": tests,
        "output_tail": output[-4000:],
    }


def _commit() -> str | None:
    """The checked-out commit, when the copy has its git folder and git is installed."""
    try:
        proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return proc.stdout.strip() or None


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def summarise(report: dict[str, Any], bench: Any, dry_run: bool) -> tuple[list[str], bool]:
    """The summary's lines, and whether the tests and benchmarks all passed."""
    counts = report["tests"]["counts"]
    tests_ok = report["tests"]["exit_code"] in (0, 5) and not counts["failed"] and not counts["error"]
    bench_ok = report["bench"] is None or "error" not in report["bench"]
    lines = [
        f"gpu_check {'(dry run on CPU) ' if dry_run else ''}at {report['started']}, commit {report['commit']}",
        f"tests (pytest -m cuda): {counts['passed']} passed, {counts['failed']} failed, {counts['error']} errors, "
        f"{counts['skipped']} skipped in {report['tests']['seconds']:.0f} s",
    ]
    lines += [
        f"  {t['outcome']}: {t['name']} {t['message']}"
        for t in report["tests"]["tests"]
        if t["outcome"] != "passed"
    ]
    if report["bench"] is not None and bench_ok:
        lines += bench.summary(report["bench"])
    elif report["bench"] is not None:
        lines.append(f"benchmarks broke: {report['bench']['error']}")
    lines.append(f"total {report['seconds']:.0f} s; {'OK' if tests_ok and bench_ok else 'FAILED'}")
    return lines, tests_ok and bench_ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for report.json and summary.txt")
    p.add_argument(
        "--data-dir", type=Path, default=None, help="folder holding MNIST/raw/ (default: as the pipeline)"
    )
    p.add_argument("--dry-run", action="store_true", help="everything but CUDA, on the CPU, at small sizes")
    p.add_argument(
        "--wheels", type=Path, default=ROOT / ".gpu" / "wheels", help="wheels to install for the SB3 test"
    )
    p.add_argument(
        "-k", dest="select", default=None, help="only the cuda tests matching this pytest -k expression"
    )
    p.add_argument("--no-bench", action="store_true", help="run the tests only")
    args = p.parse_args(argv)

    from syre_rl.supervised.data import default_data_dir  # noqa: PLC0415  (after argparse: fast --help)

    data_dir = (args.data_dir or default_data_dir()).resolve()
    missing = missing_mnist(data_dir)
    if missing:
        print(
            f"error: MNIST is missing in {data_dir / 'MNIST' / 'raw'} ({', '.join(missing)}[.gz]); pass --data-dir "
            "(on a machine that receives only the repository: make gpu-data, then --data-dir .gpu/data)",
            file=sys.stderr,
        )
        return 2
    cuda = torch.cuda.is_available()
    if not cuda and not args.dry_run:
        print(
            "error: no CUDA device here; gpu_check needs one (--dry-run checks it on the CPU)",
            file=sys.stderr,
        )
        return 3
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        print(f"error: cannot use --out {args.out}: {err.strerror}", file=sys.stderr)
        return 2

    started = time.perf_counter()
    device = torch.device("cpu" if args.dry_run else "cuda")
    if args.dry_run:  # small CPU work: more threads only spin against each other on a shared machine
        torch.set_num_threads(1)
    bench = _load_bench()
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "dry_run": args.dry_run,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "data_dir": str(data_dir),
        "info": bench.device_info(device),
    }
    with tempfile.TemporaryDirectory() as site:
        installed = install_wheels(args.wheels, Path(site))
        report["wheels_installed"] = installed
        env = dict(os.environ, SYRE_RL_DATA=str(data_dir), PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *([site] if installed else []), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        if args.dry_run:
            env.update(SYRE_RL_CUDA_TESTS_ON_CPU="1", OMP_NUM_THREADS="1")
        print(f"gpu_check: cuda tests on {device} ...", flush=True)
        report["tests"] = run_tests(args.out, env, args.select)
    counts = report["tests"]["counts"]
    print(f"gpu_check: tests {counts} in {report['tests']['seconds']:.0f} s", flush=True)

    report["bench"] = None
    if not args.no_bench:
        try:
            report["bench"] = bench.run(device, data_dir, bench.DRY if args.dry_run else bench.FULL)
        except Exception as err:  # noqa: BLE001  (a broken benchmark is reported, the report still written)
            report["bench"] = {"error": f"{type(err).__name__}: {err}"[:1000]}
    report["seconds"] = time.perf_counter() - started

    lines, ok = summarise(report, bench, args.dry_run)
    write_atomic(args.out / "report.json", json.dumps(report, indent=1) + "\n")
    write_atomic(args.out / "summary.txt", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
