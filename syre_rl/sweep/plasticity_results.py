"""The finished runs of an RL plasticity sweep (``scripts/rl_plasticity.py`` runs), read and checked for
``scripts/report_rl_plasticity.py``: any damage is one :class:`~syre_rl.cli.UsageError` naming the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from syre_rl import runs as layout
from syre_rl.cli import UsageError
from syre_rl.sweep.figures import read_sweep

__all__ = ["arm_label", "load_plasticity_sweep", "read_plasticity_results"]

ROW_KEYS = ("regime_return", "figure")
RESULT_KEYS = ("seed", "rows", "steps_per_second")


def arm_label(run: dict) -> str:
    """A run's arm: its method label and its grid parameters."""
    params = " ".join(f"{k.lstrip('-')}={v}" for k, v in (run.get("params") or {}).items())
    return f"{run['method']} {params}".strip()


def read_plasticity_results(path: Path) -> dict[str, Any]:
    """A run's ``results.json``, with the fields the report reads (else :class:`UsageError` naming the file)."""
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise UsageError(
            f"{path} is unreadable ({str(err).splitlines()[0] if str(err) else type(err).__name__})"
        ) from None
    if not isinstance(results, dict):
        raise UsageError(f"{path} is not the results of an rl_plasticity.py run")
    missing = [key for key in RESULT_KEYS if key not in results]
    rows = results.get("rows")
    if missing or not isinstance(rows, list) or not rows:
        raise UsageError(
            f"{path} is not the results of an rl_plasticity.py run (no {', '.join(missing) or 'rows'})"
        )
    for k, row in enumerate(rows):
        if not (isinstance(row, dict) and all(key in row for key in ROW_KEYS)):
            raise UsageError(f"{path}: row {k} lacks {' or '.join(ROW_KEYS)}")
    return results


def load_plasticity_sweep(sweep_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The results of every finished run of the sweep, by arm (runs without ``results.json`` are left out)."""
    manifest = read_sweep(sweep_dir)  # a readable sweep.json whose runs have plain ids and a method
    arms: dict[str, list[dict[str, Any]]] = {}
    for run in manifest["runs"]:
        path = Path(sweep_dir) / run["id"] / layout.RESULTS
        if path.is_file():
            results = read_plasticity_results(path)
            if results.get("done"):
                arms.setdefault(arm_label(run), []).append(results)
    return arms
