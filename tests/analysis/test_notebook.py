"""The notebook API: conceptweb.open_run / open_ablation / open_suite, and the example script."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import conceptweb
from conceptweb.analysis.summary import analyze_run, write_summary
from conceptweb.analysis.topology import web_at_step
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.ablation import Ablation, AblationConfig
from conceptweb.jsonable import to_jsonable

ROOT = Path(__file__).resolve().parents[2]


def test_open_run_reads_the_records(base_run):
    run = conceptweb.open_run(base_run.path)
    assert run.kind == "conet" and run.config == base_run.read_config()
    assert run.metrics.equals(base_run.read_metrics())
    assert run.problems.equals(base_run.read_problems())
    assert run.evaluations.equals(base_run.read_eval())
    assert run.checkpoint_steps == base_run.checkpoint_steps()
    acc = run.accuracy()
    assert acc.shape == (60, 12)
    last = run.problems[run.problems["step"] == 60].sort_values("problem")
    assert acc.loc[60].tolist() == last["accuracy"].tolist()
    assert "status='finished'" in repr(run)


def test_web_is_the_analysis_web_with_annotations(base_run):
    run = conceptweb.open_run(base_run.path)
    web = run.web(30)
    cw = web_at_step(base_run, 30)
    assert sorted(web.edges) == sorted(cw.web.edges)
    bridges = {tuple(b) for b in cw.topology.bridges}
    assert {(min(a, b), max(a, b)) for a, b, d in web.edges(data=True) if d["bridge"]} == bridges
    assert {n for n, d in web.nodes(data=True) if d["leaf"]} == set(cw.topology.leaves)
    # every node of a problem's correct path lists that problem, and nothing else does
    for q, path in enumerate(cw.sample.paths):
        inside = {int(n) for n in path} if path is not None else set()
        for n, d in web.nodes(data=True):
            assert (q in d["problems"]) == (n in inside)
    assert run.topology(30)["avg_degree"] == pytest.approx(cw.topology.avg_degree)
    with pytest.raises(ConceptwebError, match="no checkpoint at step 31"):
        run.web(31)


def test_summary_reads_the_file_or_computes_it(base_run, run_copy):
    copy = run_copy(base_run)
    run = conceptweb.open_run(copy.path)
    computed = run.summary()
    assert computed == to_jsonable(analyze_run(copy))
    assert not copy.summary_path.exists()  # computing does not write
    write_summary(copy, {"marker": 1})
    assert conceptweb.open_run(copy.path).summary() == {"marker": 1}
    assert conceptweb.open_run(copy.path).summary(recompute=True) == computed


def test_open_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(ConceptwebError, match="not a conceptweb run directory"):
        conceptweb.open_run(tmp_path)
    with pytest.raises(ConceptwebError, match="not an ablation directory"):
        conceptweb.open_ablation(tmp_path)
    with pytest.raises(ConceptwebError, match="not a reproduction directory"):
        conceptweb.open_suite(tmp_path)


def test_open_ablation_and_its_runs(tmp_path):
    sets = ["model.N=40", "model.K=4", "model.L=20", "problems.Q=6", "problems.held_out=2"]
    sets += ["grpo.G=4", "eval.G=8", "steps=12"]
    cfg = AblationConfig(
        preset="tiny",
        sets=sets,
        seeds=2,
        arms=["plain", "rl_hard@5"],
        heat_steps=2,
        threshold=1.0,
    )
    Ablation.open_or_create(tmp_path / "abl", cfg).run(workers=1)
    abl = conceptweb.open_ablation(tmp_path / "abl")
    assert abl.arms == ["plain", "rl_hard@5"] and abl.seeds == [0, 1]
    assert len(abl.results) == 4 and set(abl.results["arm"]) == set(abl.arms)
    assert "rl_hard@5" in set(abl.comparisons()["arm"])
    runs = list(abl.runs())
    assert [(a, s) for a, s, _ in runs] == [
        ("plain", 0),
        ("plain", 1),
        ("rl_hard@5", 0),
        ("rl_hard@5", 1),
    ]
    heated = abl.run("rl_hard@5", 1)
    assert "rl_hard" in set(heated.metrics["phase"])
    with pytest.raises(ConceptwebError, match="unknown arm"):
        abl.run("sft@5", 0)


def test_open_suite_finds_its_runs(tmp_path, base_run):
    suite_dir = tmp_path / "repro"
    shutil.copytree(base_run.path, suite_dir / "runs" / "sparse" / "seed0")
    shutil.copytree(base_run.path, suite_dir / "phase" / "K4_Q16" / "seed1")
    (suite_dir / "suite.json").write_text(json.dumps({"quick": True}))
    suite = conceptweb.open_suite(suite_dir)
    assert suite.config == {"quick": True}
    assert suite.run_paths() == ["phase/K4_Q16/seed1", "runs/sparse/seed0"]
    assert suite.run("K4_Q16", 1).metrics.equals(base_run.read_metrics())
    assert suite.table.empty
    with pytest.raises(ConceptwebError, match="no run 'sparse' seed 3"):
        suite.run("sparse", 3)


def test_example_script_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    res = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "notebook_tour.py"), str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr
    assert "web at step 40" in res.stdout and "two-stage:" in res.stdout
    assert (tmp_path / "run" / "metrics.parquet").is_file()
