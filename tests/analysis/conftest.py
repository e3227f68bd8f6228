"""Small CoNet runs shared by the analysis tests (trained once per session, copied when written to)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conceptweb.experiments.runs import train_run
from conceptweb.rundir import RunDir
from tests.conftest import small_config


@pytest.fixture(scope="session")
def base_run(tmp_path_factory) -> RunDir:
    """A small RLVR run: N=60, K=4, Q=12, 60 steps, checkpoints every 10 steps."""
    return train_run(small_config(steps=60), tmp_path_factory.mktemp("runs") / "base")


@pytest.fixture(scope="session")
def sft_run(tmp_path_factory, base_run) -> RunDir:
    """20 SFT steps on 8 new problems from base_run's final policy, then 20 RLVR steps.

    The SFT is strong enough (lr 0.5) that it unsolves some training problems (4 of 12 today),
    so the forgetting tests see forgetting.
    """
    sets = {"sft.steps": 20, "sft.problems": "new:8", "sft.lr": 0.5, "init_from": base_run.path}
    cfg = small_config(steps=40, **sets)
    return train_run(cfg, tmp_path_factory.mktemp("runs") / "sft")


@pytest.fixture
def run_copy(tmp_path):
    """copy(run) -> a private copy of a run directory that a test may modify."""

    def copy(run: RunDir, name: str = "copy") -> RunDir:
        dst = Path(tmp_path) / name
        shutil.copytree(run.path, dst)
        return RunDir.open(dst)

    return copy
