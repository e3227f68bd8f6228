"""Shared fixtures: small configs and graphs that keep the suite fast on 2 cores."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pytest

from conceptweb.config import RunConfig, resolve_config
from conceptweb.model.engines import get_engine, numba_available
from conceptweb.model.graph import random_regular_graph


def modules_loaded_by(code: str, names: set[str]) -> list[str]:
    """Which of `names` a fresh interpreter has imported once `code` has run (read at exit, so
    `code` may end by exiting), sorted."""
    probe = (
        "import atexit, sys; "
        f"atexit.register(lambda: print(sorted(set({sorted(names)!r}) & set(sys.modules)))); "
    )
    out = subprocess.run([sys.executable, "-c", probe + code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def small_config(**sets: object) -> RunConfig:
    """A small CoNet config (N=60, K=4, Q=12) for fast tests; `sets` are dotted overrides."""
    base = [
        "steps=40",
        "model.N=60",
        "model.K=4",
        "model.L=30",
        "problems.Q=12",
        "problems.held_out=6",
        "grpo.G=8",
        "eval.every=10",
        "eval.G=16",
        "checkpoint.every=10",
    ]
    base += [f"{k}={v}" for k, v in sets.items()]
    return resolve_config(None, None, base)


@pytest.fixture
def small_cfg() -> RunConfig:
    return small_config()


@pytest.fixture
def graph():
    return random_regular_graph(30, 4, seed=1)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(123)


ENGINES = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not numba_available(), reason="no numba")),
]


@pytest.fixture(params=ENGINES)
def engine(request):
    """Each rollout engine in turn (numba only where installed)."""
    return get_engine(request.param)


def restore_sigint() -> None:
    """preexec_fn for subprocesses that a test interrupts: a shell that starts a job in the
    background (as CI may) sets SIGINT to ignored, children inherit that, and Python then never
    raises KeyboardInterrupt; the default disposition makes SIGINT behave as Ctrl-C does."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
