"""`conceptweb detect`: the online detector replayed over recorded per-problem results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from conceptweb.interfaces.cli import app
from conceptweb.rundir import RunDir

runner = CliRunner()


def planted_table(wave: bool, seed: int = 0, steps: int = 160) -> pd.DataFrame:
    """5000 problems, 64 sampled per step and 256 sentinels every 5 steps (G = 8); with
    `wave`, a fifth of the problems and half the sentinels are forgotten around step 100
    (N(100, 8)) and relearned 30 steps later."""
    rng = np.random.default_rng(seed)
    Q, B, S = 5000, 64, 256
    p = rng.beta(0.3, 0.3, Q)
    sentinels = rng.choice(Q, S, replace=False)
    when = np.full(Q, np.inf)
    if wave:
        hit = np.union1d(rng.choice(Q, Q // 5, replace=False), sentinels[: S // 2])
        p[hit], when[hit] = 0.95, rng.normal(100, 8, hit.size)
    parts = []
    for step in range(1, steps + 1):
        acc = np.where((step >= when) & (step < when + 30), 0.05, p)
        q = np.unique(rng.integers(0, Q, B))
        if step % 5 == 0:
            q = np.union1d(q, sentinels)
        parts.append(pd.DataFrame({"step": step, "problem": q, "n": 8}))
        parts[-1]["n_correct"] = rng.binomial(8, acc[q])
    return pd.concat(parts, ignore_index=True)


def detect(*args: str) -> dict:
    result = runner.invoke(app, ["detect", *args, "--json", "--window", "5", "--patience", "8"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_detect_fires_on_a_planted_wave_and_not_without_one(tmp_path: Path) -> None:
    planted_table(True).to_csv(tmp_path / "wave.csv", index=False)
    planted_table(False).to_parquet(tmp_path / "flat.parquet")
    wave = detect(str(tmp_path / "wave.csv"))
    assert wave["fired"] and 100 <= wave["fire_step"] <= 120, wave
    assert wave["n_forgetting_events"] > 100 and wave["n_problems"] <= 5000
    flat = detect(str(tmp_path / "flat.parquet"))
    assert not flat["fired"] and flat["fire_step"] is None


def test_detect_reads_a_run_directory(tmp_path: Path) -> None:
    table = planted_table(True).assign(split="train", phase="rl")
    table["accuracy"] = table["n_correct"] / table["n"]
    run = RunDir.create(
        tmp_path / "run", {"anneal": {"detector": {"window": 5, "patience": 8}}}, kind="llm"
    )
    run.write_table("problems", table)
    steps = np.arange(1, 161)
    run.write_table("metrics", pd.DataFrame({"step": steps, "phase": "rl", "reward_mean": 0.5}))
    out = runner.invoke(app, ["detect", str(run.path)])  # settings from the run's config
    assert out.exit_code == 0, out.output
    assert "window 5, patience 8" in out.output and "fires at step 1" in out.output
    assert "steps 1..160 (160)" in out.output


def test_detect_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    pd.DataFrame({"step": [1], "problem": [0], "n": [8]}).to_csv(tmp_path / "t.csv", index=False)
    for args in (["detect", str(tmp_path / "t.csv")], ["detect", str(tmp_path / "nope.csv")]):
        out = runner.invoke(app, args)
        assert out.exit_code == 2
        assert out.output.startswith("error: ") and out.output.count("\n") == 1, out.output
