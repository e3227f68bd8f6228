"""The CoNet-as-text demonstration: its data, its pretraining corpus, and a tiny full run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.llm.conftest import require_llm_packages

pytestmark = pytest.mark.llm
require_llm_packages()

from conceptweb.algorithms.trainer import build_world  # noqa: E402
from conceptweb.experiments.conet_demo import (  # noqa: E402
    DemoConfig,
    conet_config,
    pretraining_rows,
    run_demo,
    walk_rows,
)
from conceptweb.interfaces.conet_demo_report import write_demo_report  # noqa: E402
from conceptweb.llm.graph import assign_windows, run_checkpoints  # noqa: E402
from conceptweb.llm.recorder import read_completions  # noqa: E402
from conceptweb.llm.rewards import WalkTask  # noqa: E402
from conceptweb.rundir import RunDir  # noqa: E402


def small() -> DemoConfig:
    return DemoConfig.preset(
        quick=True,
        sets=[
            "N=16",
            "Q=6",
            "held_out=4",
            "L=8",
            "steps=12",
            "hidden=32",
            "pretrain_walks=300",
            "pretrain_epochs=1",
            "eval_k=4",
            "heat_steps=2",
            "detector.min_steps=4",
            "detector.window=2",
            "detector.patience=2",
            "detector.min_forgetting=0",
        ],
    )


def test_problems_as_text_are_the_conet_problems() -> None:
    dc = small()
    world, _, _ = build_world(conet_config(dc, seed=0, anneal=False))
    rows = walk_rows(world, "train")
    task = WalkTask(world.graph.neighbors, max_walk=dc.L)
    assert len(rows) == dc.Q
    for row, s, t in zip(rows, world.train.sources, world.train.targets, strict=True):
        assert row["problem"] == f"from n{s} to n{t} :" and row["answer"] == f"n{t}"
        score = task.score(row["solution"], row)  # the reference solution is a correct walk
        assert score.correct and score.length == row["distance"]


def test_pretraining_walks_are_uniform_walks_that_stop_at_the_target() -> None:
    dc = small()
    world, _, _ = build_world(conet_config(dc, seed=0, anneal=False))
    nb = world.graph.neighbors
    rows = pretraining_rows(nb, 400, dc.L, np.random.default_rng(0))
    hits = 0
    for r in rows:
        s, t = int(r["prompt"].split()[1][1:]), int(r["prompt"].split()[3][1:])
        walk = [int(x[1:]) for x in r["completion"].split()]
        assert 1 <= len(walk) <= dc.L
        assert all(b in nb[a] for a, b in zip([s, *walk], walk, strict=False))
        assert t not in walk[:-1]  # the walk stops on reaching the target
        hits += walk[-1] == t
    assert 0 < hits < len(rows)


def test_tiny_demo_end_to_end(tmp_path: Path) -> None:
    report = write_demo_report(run_demo(small(), tmp_path / "demo", echo=lambda m: None))
    text = report.read_text()
    assert "| conet | 1 |" in text and "| transformer | 1 |" in text
    assert (tmp_path / "demo" / "figures" / "curves.png").is_file()
    results = json.loads((tmp_path / "demo" / "results.json").read_text())
    runs = results["runs"]["0"]
    assert set(runs) == {"conet", "conet-annealed", "transformer", "transformer-annealed"}
    for r in runs.values():
        assert 0 <= r["reward_end"] <= 1 and r["frustration"] is not None
    assert results["seeds"]["0"]["pretrained_walks"]["edge_validity"] > 0
    run = RunDir.open(tmp_path / "demo" / "seed0" / "transformer")
    comp = read_completions(run)
    per_step = min(small().record, small().Q * small().G)
    assert (comp["step"] == 0).sum() == per_step  # the pre-trained model's extra sample
    cks = sorted(run_checkpoints(run))
    windows = pd.Series(assign_windows(comp["step"].to_numpy(), cks, None)).value_counts()
    assert sorted(windows.index) == cks and len(cks) == 7  # 0, 2, ..., 12
    # checkpoint 0's window (the extra sample and GRPO's first step) is as large as the later
    # ones; the final checkpoint's misses the step its policy would have sampled next
    assert windows[cks[:-1]].tolist() == [2 * per_step] * 6 and windows[12] == per_step
