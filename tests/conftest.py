"""Settings every test shares, and what a test does where the datasets are missing."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch

from syre_rl.supervised.data import DataError, default_data_dir

# Where this is set (CI sets it, with SYRE_RL_DATA), a test that finds no dataset fails instead of skipping.
REQUIRE_DATA = "SYRE_RL_REQUIRE_DATA"


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One torch thread: on a shared 2-core machine more threads spin against each other (up to 10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def missing_data_reason(message: str) -> str:
    return (
        f"needs a dataset that is not in {default_data_dir()} ({message.split(' (')[0]}); provide it with "
        "`python -m syre_rl.supervised.download mnist fashion-mnist` or set SYRE_RL_DATA to a folder holding it"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A test that stops on a missing dataset (DataError "missing file") is skipped with a reason that says how
    to provide it, unless $SYRE_RL_REQUIRE_DATA is set."""
    outcome = yield
    report = outcome.get_result()
    excinfo = call.excinfo
    if (
        report.failed
        and excinfo is not None
        and excinfo.errisinstance(DataError)
        and "missing file" in str(excinfo.value)
        and not os.environ.get(REQUIRE_DATA)
    ):
        report.outcome = "skipped"
        report.longrepr = (str(item.path), item.location[1] or 0, "Skipped: " + missing_data_reason(str(excinfo.value)))


def needs_data(*names: str) -> pytest.MarkDecorator:
    """Skip a test whose dataset folders are missing (for tests that read data in a subprocess)."""
    folders = {"mnist": "MNIST/raw", "fashion-mnist": "FashionMNIST/raw"}
    missing = [n for n in names if not any((default_data_dir() / folders[n]).glob("train-images-idx3-ubyte*"))]
    return pytest.mark.skipif(
        bool(missing) and not os.environ.get(REQUIRE_DATA),
        reason=missing_data_reason(f"{', '.join(missing)}: missing file") if missing else "",
    )
