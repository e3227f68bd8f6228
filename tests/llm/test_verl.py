"""verl runs: the reward hook, importing dumped generations, analysis of the result, heating data.

verl itself is not installed here (it pulls ray and a GPU stack); the tests use files in the
format of verl's dumped generations (`trainer.rollout_data_dir`: one <step>.jsonl per step, keys
input, output, gts, score, step plus what the reward function returned), one literal sample under
tests/data/verl_dump and larger ones written by `write_dump` below.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conceptweb.analysis.summary import analyze_run
from conceptweb.interfaces.cli import app
from conceptweb.llm.verl import heating_plan, import_verl_dump, read_verl_dump
from conceptweb.rundir import RunDir

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "verl_dump"


def accuracy_pattern(steps: int, problems: int, seed: int = 0) -> np.ndarray:
    """True per-step accuracies: most problems learned at staggered times, some forgotten later."""
    rng = np.random.default_rng(seed)
    t = np.arange(1, steps + 1)[:, None]
    onset = rng.uniform(3, steps * 0.6, problems)[None, :]
    acc = 1 / (1 + np.exp(-(t - onset) / 2.0))
    forget = rng.random(problems) < 0.3
    acc[:, forget] *= np.where(t > steps * 0.7, 0.2, 1.0)
    acc[:, -2:] = 0.0  # never learned: the heating candidates
    return acc


def write_dump(path: Path, acc: np.ndarray, n: int = 8, hook: bool = True, seed: int = 1) -> None:
    """Lines as verl dumps them; with `hook`, the fields conceptweb's compute_score returns."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True)
    for s in range(acc.shape[0]):
        lines = []
        for q in range(acc.shape[1]):
            for _ in range(n):
                ok = bool(rng.random() < acc[s, q])
                words = int(rng.integers(5, 40))
                row = {
                    "input": f"Problem {q}: compute {q} + {q}.",
                    "output": " ".join(["step"] * words)
                    + (f" \\boxed{{{2 * q}}}" if ok else " \\boxed{-1}"),
                    "gts": str(2 * q),
                    "score": 1.0 if ok else 0.0,
                    "step": s + 1,
                }
                if hook:
                    row.update({"acc": float(ok), "problem_id": q, "response_words": words + 1})
                lines.append(json.dumps(row))
        (path / f"{s + 1}.jsonl").write_text("\n".join(lines) + "\n")


def test_recorded_sample_imports_with_problems_from_prompts(tmp_path):
    frame = read_verl_dump(SAMPLE)
    assert len(frame) == 8 and frame["step"].tolist() == [1] * 4 + [2] * 4
    run = import_verl_dump(SAMPLE, tmp_path / "run")
    problems = run.read_problems().sort_values(["step", "problem"])
    # problem 0 is "2+3" (first seen), problem 1 is "7*6"; correctness is score > 0
    assert problems[["step", "problem", "accuracy"]].values.tolist() == [
        [1, 0, 0.5],
        [1, 1, 0.5],
        [2, 0, 1.0],
        [2, 1, 0.0],
    ]
    assert problems.loc[problems["step"] == 2, "n_distinct_correct"].tolist() == [2, 0]
    meta = run.read_meta()
    assert meta["kind"] == "llm" and meta["status"] == "finished" and meta["last_step"] == 2
    texts = pd.read_parquet(run.path / "verl_problems.parquet")
    assert texts["gts"].tolist() == ["5", "42"]


def test_imported_run_matches_the_dump_and_analyses(tmp_path):
    acc = accuracy_pattern(40, 12)
    write_dump(tmp_path / "dump", acc)
    res = CliRunner().invoke(
        app, ["llm", "verl-import", str(tmp_path / "dump"), "--out", str(tmp_path / "run")]
    )
    assert res.exit_code == 0, res.output
    run = RunDir.open(tmp_path / "run")
    lines = read_verl_dump(tmp_path / "dump")
    expected = lines.groupby(["step", "problem_id"])["acc"].mean()
    got = run.read_problems().set_index(["step", "problem"])["accuracy"]
    assert got.sort_index().tolist() == pytest.approx(expected.sort_index().tolist())
    metrics = run.read_metrics()
    assert metrics["reward_mean"].tolist() == pytest.approx(
        lines.groupby("step")["score"].mean().tolist()
    )
    summary = analyze_run(run)
    assert summary["frustration"]["n_forgetting_events"] > 0  # the forgotten problems
    assert summary["web"] is None  # no policy to extract a web from
    res = CliRunner().invoke(app, ["analyze", str(tmp_path / "run"), "--no-figures", "-q"])
    assert res.exit_code == 0, res.output


def test_heating_data_selects_the_hard_problems(tmp_path):
    acc = accuracy_pattern(30, 10)
    write_dump(tmp_path / "dump", acc)
    import_verl_dump(tmp_path / "dump", tmp_path / "run")
    step, plan = heating_plan(tmp_path / "run", threshold=0.1, recent=3)
    recent = acc[-3:].mean(axis=0)
    assert step == 30
    assert set(plan["problem"]) >= {8, 9}  # never learned
    assert set(plan["problem"]) <= {q for q in range(10) if recent[q] < 0.35}
    solutions = tmp_path / "solutions.jsonl"
    solutions.write_text("\n".join(json.dumps({"solution": f"{q}+{q}={2 * q}"}) for q in range(10)))
    out = tmp_path / "heat.parquet"
    res = CliRunner().invoke(
        app,
        [
            "llm",
            "verl-heat",
            str(tmp_path / "run"),
            "--out",
            str(out),
            "--solutions",
            str(solutions),
        ],
    )
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out)
    assert set(table["problem"]) == set(plan["problem"])
    row = table[table["problem"] == 9].iloc[0]
    assert row["prompt"] == "Problem 9: compute 9 + 9." and row["response"] == "9+9=18"


def test_not_a_verl_dump_is_a_user_error(tmp_path):
    (tmp_path / "d").mkdir()
    res = CliRunner().invoke(
        app, ["llm", "verl-import", str(tmp_path / "d"), "-o", str(tmp_path / "r")]
    )
    assert res.exit_code == 2 and "no <step>.jsonl files" in res.output
    (tmp_path / "d" / "3.jsonl").write_text('{"prompt": "x"}\n')
    res = CliRunner().invoke(
        app, ["llm", "verl-import", str(tmp_path / "d"), "-o", str(tmp_path / "r")]
    )
    assert res.exit_code == 2 and "not a verl dump" in res.output
    assert not (tmp_path / "r").exists()


def test_reward_hook_scores_and_identifies_the_problem():
    pytest.importorskip("math_verify")
    from conceptweb.llm.verl import compute_score

    good = compute_score(
        "deepscaler", "so the answer is \\boxed{\\frac{1}{2}}", "0.5", {"index": 7}
    )
    assert good == {"score": 1.0, "acc": 1.0, "problem_id": 7, "response_words": 5}
    bad = compute_score("deepscaler", "\\boxed{3}", "0.5", None)
    assert bad["score"] == 0.0 and bad["acc"] == 0.0 and bad["problem_id"] == -1


def test_truncation_is_unknown_unless_the_dump_or_verls_metrics_say_it(tmp_path):
    """A dump of text alone cannot say which responses were cut: NaN, not a rate of 0. Lines
    with `truncated` give per-problem rates; verl's metrics log gives each step's rate
    (response_length/clip_ratio, as verl's file logger writes it)."""
    acc = accuracy_pattern(6, 4)
    write_dump(tmp_path / "dump", acc)
    run = import_verl_dump(tmp_path / "dump", tmp_path / "plain")
    assert run.read_problems()["truncated_rate"].isna().all()
    assert run.read_metrics()["truncated_rate"].isna().all()
    # lines that say which responses were cut: every third one
    marked = tmp_path / "marked"
    marked.mkdir()
    for f in sorted((tmp_path / "dump").glob("*.jsonl")):
        rows = [json.loads(x) for x in f.read_text().splitlines()]
        for i, r in enumerate(rows):
            r["truncated"] = i % 3 == 0
        (marked / f.name).write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    lines = read_verl_dump(marked)
    run = import_verl_dump(marked, tmp_path / "cut")
    got = run.read_problems().set_index(["step", "problem"])["truncated_rate"].sort_index()
    expected = lines.groupby(["step", "problem_id"])["truncated"].mean().sort_index()
    assert got.tolist() == pytest.approx(expected.tolist()) and 0 < got.mean() < 1
    assert run.read_metrics()["truncated_rate"].tolist() == pytest.approx(
        lines.groupby("step")["truncated"].mean().tolist()
    )
    # verl's own per-step clip ratio, from its file logger's JSONL, through the CLI
    log = tmp_path / "metrics.jsonl"
    log.write_text(
        "\n".join(
            json.dumps({"step": s, "data": {"response_length/clip_ratio": s / 10, "x": 1}})
            for s in range(1, 7)
        )
    )
    res = import_with_metrics(tmp_path / "dump", tmp_path / "m", log)
    assert res.exit_code == 0, res.output
    m = RunDir.open(tmp_path / "m").read_metrics()
    assert m["truncated_rate"].tolist() == pytest.approx([s / 10 for s in range(1, 7)])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"step": 1, "data": {"loss": 0.1}}\n')
    res = import_with_metrics(tmp_path / "dump", tmp_path / "b", bad)
    assert res.exit_code == 2 and "response_length/clip_ratio" in res.output
    assert not (tmp_path / "b").exists()


def import_with_metrics(dump: Path, out: Path, metrics: Path):
    return CliRunner().invoke(
        app, ["llm", "verl-import", str(dump), "-o", str(out), "--metrics", str(metrics)]
    )
