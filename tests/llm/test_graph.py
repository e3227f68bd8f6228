"""`conceptweb llm graph`: segmentation, one codebook across checkpoints, resume, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.llm.conftest import require_llm_packages

pytestmark = pytest.mark.llm
require_llm_packages()
pytest.importorskip("sklearn")

from conceptweb.analysis.reasoning import extracted_web, load_graph  # noqa: E402
from conceptweb.interfaces.cli import app  # noqa: E402
from conceptweb.llm import graph as graph_mod  # noqa: E402
from conceptweb.llm.graph import (  # noqa: E402
    PATTERNS,
    GraphSettings,
    assign_windows,
    auto_layers,
    build_graph,
    segment,
)
from conceptweb.llm.recorder import completions_frame  # noqa: E402
from conceptweb.llm.truth import score_token_graph  # noqa: E402
from conceptweb.rundir import RunDir  # noqa: E402

N_NODES = 10


def texts(spans: list[tuple[int, int]], text: str) -> list[str]:
    return [text[a:b] for a, b in spans]


def test_segmentations() -> None:
    t = "First step. Then 2.5+2=4.5!\nNext line\n\nNew para  here.\n"
    assert texts(segment(t, PATTERNS["line"]), t) == [
        "First step. Then 2.5+2=4.5!",
        "Next line",
        "New para  here.",
    ]
    assert texts(segment(t, PATTERNS["paragraph"]), t) == [
        "First step. Then 2.5+2=4.5!\nNext line",
        "New para  here.",
    ]
    assert texts(segment(t, PATTERNS["sentence"]), t) == [
        "First step.",
        "Then 2.5+2=4.5!",
        "Next line",
        "New para  here.",
    ]
    assert texts(segment(" n3 n41  n17", PATTERNS["token"]), " n3 n41  n17") == [
        "n3",
        "n41",
        "n17",
    ]
    assert texts(segment("a; b ;; c", r"[^;]+"), "a; b ;; c") == ["a", "b", "c"]
    assert segment("   \n\n ", PATTERNS["line"]) == []


def test_windows_partition_the_recorded_steps() -> None:
    rec = np.arange(1, 13)  # step s was sampled by the policy after s-1 updates
    own = assign_windows(rec, [0, 4, 8, 11], None)
    assert own.tolist() == [0, 4, 4, 4, 4, 8, 8, 8, 8, 11, 11, 11]
    own2 = assign_windows(rec, [0, 4, 8, 11], 2)
    assert own2.tolist() == [0, -1, -1, 4, 4, -1, -1, 8, 8, -1, 11, 11]
    initial = assign_windows(np.array([0, 0, 1, 2]), [0, 4], None)  # step 0: record_initial
    assert initial.tolist() == [0, 0, 0, 4]


def make_run(tmp: Path, n_walks: int = 40, seed: int = 0) -> tuple[Path, list[list[int]]]:
    """An LLM run of CoNet walks as text: a tiny model at steps 0, 4 and 8 and recorded walks."""
    import torch

    from conceptweb.llm.config import ScratchModelConfig
    from conceptweb.llm.models import build_scratch_model, build_wordlevel_tokenizer, save_model

    rng = np.random.default_rng(seed)
    nb = np.array([[(i + d) % N_NODES for d in (1, 2, 5)] for i in range(N_NODES)])
    tok = build_wordlevel_tokenizer([], ["from", "to", ":", *(f"n{i}" for i in range(N_NODES))])
    model = build_scratch_model(
        ScratchModelConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64), tok
    )
    cfg = {"model": {"scratch": {}}, "task": {"kind": "conet_walk", "graph": "g.npz"}}
    run = RunDir.create(tmp / "run", cfg, kind="llm")
    save_model(model, tok, run.path / "init")
    for step in (4, 8):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        save_model(model, tok, run.path / "checkpoints" / f"checkpoint-{step}")
    run.update_meta(last_step=8, status="finished")
    rows, walks = [], []
    for i in range(n_walks):
        s, t = rng.choice(N_NODES, 2, replace=False)
        pos, walk = int(s), []
        for _ in range(6):
            pos = int(nb[pos, rng.integers(3)])
            walk.append(pos)
        walks.append(walk)
        rows.append(
            {
                "step": 1 + i % 9,
                "problem": i % 5,
                "sample": i,
                "prompt": f"from n{s} to n{t} :",
                "text": " " + " ".join(f"n{x}" for x in walk),
                "n_tokens": len(walk),
                "correct": i % 4 != 3,
                "truncated": False,
            }
        )
    run.write_table("completions", completions_frame(rows))
    return run.path, walks


def test_graph_recovers_the_nodes_with_one_codebook(tmp_path: Path) -> None:
    path, _ = make_run(tmp_path)
    gdir = build_graph(path, GraphSettings(n_concepts=N_NODES, segment="token"))
    steps, edges, meta = load_graph(RunDir.open(path))
    assert gdir == path / "graph" and meta["segment"] == "token" and meta["layer"] == 2
    assert sorted(steps["step"].unique()) == [0, 4, 8] and steps["correct"].all()
    assert sorted(meta["sweep_concepts"]) == [5, 20]
    assert {"concept_k5", "concept_k20"} <= set(steps.columns)
    # one codebook: a node's steps get the same concept at every checkpoint
    per_node = steps.groupby("text")["concept"].nunique()
    assert (per_node == 1).mean() >= 0.9
    score = score_token_graph(steps, edges, tau=0.3)
    assert score["purity"].min() >= 0.9 and score["edge_f1"].min() >= 0.9
    assert (score["k_diff"].abs() <= 0.1).all()
    # edges are the transitions of the linked completions, with P(c'|c) summing to one
    assert np.allclose(edges.groupby(["step", "src"])["prob"].sum(), 1.0)
    assert edges["count"].sum() == len(steps) - steps.groupby(["record_step", "sample"]).ngroups


def test_a_concept_of_non_node_tokens_is_the_true_webs_other_class() -> None:
    from conceptweb.analysis.reasoning import edges_frame, sequences_of, transition_counts
    from conceptweb.llm.truth import score_checkpoint

    texts = ["to", "n1", "n2", "to", "n1", "n2", "n2", "n1"]
    steps = pd.DataFrame(
        {
            "step": 0,
            "record_step": 1,
            "problem": 0,
            "sample": [0, 0, 0, 1, 1, 1, 2, 2],
            "position": [0, 1, 2, 0, 1, 2, 0, 1],
            "text": texts,
            "concept": [{"to": 7, "n1": 3, "n2": 5}[t] for t in texts],
        }
    )
    edges = edges_frame(0, transition_counts(sequences_of(steps)))
    sc = score_checkpoint(steps, edges, 0.5)  # "to" -> n1 is an edge of both webs
    assert sc["purity"] == 1.0 and sc["n_true_edges"] == 3 and sc["edge_f1"] == 1.0


def test_the_truth_scorer_applies_the_support_threshold_to_both_webs() -> None:
    from conceptweb.analysis.reasoning import edges_frame, sequences_of, transition_counts
    from conceptweb.llm.truth import score_checkpoint

    # n1 -> n2 three times; n3 -> n4 once; "to" is followed by n6, n7, n1 (concept 7) and, once,
    # by n5 from a concept of its own (8): one observation makes P(n5 | 8) = 1
    seqs = [["n1", "n2"]] * 3 + [["n3", "n4"], ["to", "n6"], ["to", "n7"], ["to", "n1"]]
    seqs.append(["to", "n5"])
    rows = []
    for i, seq in enumerate(seqs):
        for pos, t in enumerate(seq):
            c = 8 if i == len(seqs) - 1 and t == "to" else 7 if t == "to" else 10 + int(t[1:])
            rows.append({"step": 0, "record_step": 1, "problem": 0, "sample": i, "position": pos})
            rows[-1].update(text=t, concept=c)
    steps = pd.DataFrame(rows)
    edges = edges_frame(0, transition_counts(sequences_of(steps)))
    one = score_checkpoint(steps, edges, 0.5)  # true: n1->n2, n3->n4; found also to->n5
    assert one["purity"] == 1.0 and one["n_true_edges"] == 2 and one["n_extracted_edges"] == 3
    assert one["edge_f1"] == pytest.approx(0.8) and not one["vacuous"]
    two = score_checkpoint(steps, edges, 0.5, min_count=2)  # n3 and concept 8: one transition
    assert two["n_true_edges"] == 1 and two["n_extracted_edges"] == 1
    assert two["edge_f1"] == 1.0 and two["k_diff"] == 0.0
    four = score_checkpoint(steps, edges, 0.5, min_count=4)
    assert four["vacuous"] and four["edge_f1"] == 1.0 and math.isnan(four["k_diff"])
    assert score_token_graph(steps, edges, 0.5, min_count=2)["edge_f1"].tolist() == [1.0]


def test_layer_auto_chooses_the_best_clustered_candidate(tmp_path: Path) -> None:
    assert auto_layers(1) == [1] and auto_layers(2) == [1, 2]
    assert auto_layers(28) == [7, 14, 21, 25]  # 1/4, 1/2, 3/4, 0.9 of the depth; never 0
    path, _ = make_run(tmp_path)
    build_graph(path, GraphSettings(n_concepts=N_NODES, segment="token", layer="auto"))
    steps, edges, meta = load_graph(RunDir.open(path))
    scores = {int(k): v for k, v in meta["layer_silhouette"].items()}
    assert sorted(scores) == [1, 2] and meta["layer"] == max(scores, key=scores.get)
    assert meta["layer_criterion"] == "silhouette over candidate layers"
    score = score_token_graph(steps, edges, tau=0.3)
    assert score["purity"].min() >= 0.9 and score["edge_f1"].min() >= 0.9
    res = cli(str(path), "--layer", "deep", "--concepts", "5")
    assert res.exit_code == 2 and "integer or auto" in res.output


def test_interrupted_build_resumes_from_the_cache(tmp_path: Path, monkeypatch) -> None:
    path, _ = make_run(tmp_path)
    calls: list[int] = []
    real = graph_mod.represent_checkpoint

    def counting(plan, step, rows):
        calls.append(step)
        if step == 8 and len(calls) == 3:
            raise KeyboardInterrupt
        return real(plan, step, rows)

    monkeypatch.setattr(graph_mod, "represent_checkpoint", counting)
    s = GraphSettings(n_concepts=N_NODES)
    with pytest.raises(KeyboardInterrupt):
        build_graph(path, s)
    assert not (path / "graph" / "meta.json").exists()
    build_graph(path, s)
    assert calls == [0, 4, 8, 8]  # 0 and 4 were not represented again
    first = pd.read_parquet(path / "graph" / "steps.parquet")
    build_graph(path, s)
    assert calls == [0, 4, 8, 8]
    pd.testing.assert_frame_equal(first, pd.read_parquet(path / "graph" / "steps.parquet"))


def cli(*args: str) -> object:
    return CliRunner().invoke(app, ["llm", "graph", *args])


def assert_user_error(res, path: Path, needle: str) -> None:
    assert res.exit_code == 2, res.output
    lines = [x for x in res.output.strip().splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], res.output
    assert not (path / "graph" / "meta.json").exists()


def test_bad_input_one_line_and_nothing_written(tmp_path: Path) -> None:
    path, _ = make_run(tmp_path)
    p = str(path)
    assert_user_error(cli(p, "--steps", "5"), path, "no checkpoint at step")
    assert_user_error(cli(p, "--layer", "7"), path, "out of range")
    assert_user_error(cli(p, "--concepts", "100000"), path, "only")
    assert_user_error(cli(p, "--segment", "regex", "--pattern", "zzz"), path, "no steps")
    assert_user_error(cli(p, "--min-count", "0"), path, "--min-count must be")
    assert not (path / "graph").exists()
    (path / "completions.parquet").unlink()
    assert_user_error(cli(p), path, "record_completions")


def test_unloadable_checkpoint_leaves_no_trace(tmp_path: Path) -> None:
    path, _ = make_run(tmp_path)
    (path / "checkpoints" / "checkpoint-8" / "model.safetensors").write_bytes(b"broken")
    res = cli(str(path), "--concepts", "5", "--quiet")
    assert_user_error(res, path, "cannot load the checkpoint")
    assert not (path / "graph").exists()


def test_cli_writes_and_summarises(tmp_path: Path) -> None:
    path, _ = make_run(tmp_path)
    args = ["--concepts", "10", "--quiet", "--represent", "text", "--fit-max", "50"]
    res = cli(str(path), *args, "--min-count", "3")
    assert res.exit_code == 0, res.output
    meta_file = path / "graph" / "meta.json"
    meta = json.loads(meta_file.read_text())
    assert meta["represent"] == "text" and meta["n_concepts"] == 10
    assert meta["codebook"]["n_fit"] == 50 < meta["codebook"]["n_steps"]
    assert meta["min_count"] == 3 and meta["settings"]["min_count"] == 3
    run = RunDir.open(path)
    assert extracted_web(run, 0.5, n_boot=2)[2]["method"]["min_count"] == 3  # analyze's default
    assert extracted_web(run, 0.5, n_boot=2, min_count=1)[2]["method"]["min_count"] == 1
    del meta["min_count"]  # a graph built before the knob reads as 1
    meta_file.write_text(json.dumps(meta))
    assert extracted_web(run, 0.5, n_boot=2)[2]["method"]["min_count"] == 1


def test_record_graph_analyze_on_a_trained_run(tmp_path: Path) -> None:
    from conceptweb.llm.train import prepare, train_llm
    from tests.llm.conftest import tiny_config

    out = tmp_path / "run"
    cfg = tiny_config(steps=4, save_steps=2, record_completions=5, record_initial=6)
    cfg.grpo.max_completion_length = 4
    train_llm(cfg, out, echo=lambda m: None)
    comp = RunDir.open(out).read_table("completions")  # appended parts
    assert list(comp.columns) == [
        "step",
        "problem",
        "sample",
        "prompt",
        "text",
        "n_tokens",
        "correct",
        "truncated",
    ]
    assert comp.groupby("step").size().tolist() == [6, 5, 5, 5, 5]  # 32 completions, 5 kept
    assert (comp["sample"] < 4).all() and (comp["n_tokens"] <= 4).all()
    assert (~comp["truncated"] | (comp["n_tokens"] == 4)).all()  # only full-length ones
    first = comp[comp["step"] == 0]  # record_initial: 6 problems, one sample each
    assert first["problem"].nunique() == 6 and (first["sample"] == 0).all()
    setup = prepare(cfg)
    answers = {p.id: p.answer for p in setup.data.problems}
    for r in first.itertuples():  # scored as GRPO scores its completions
        assert r.correct == setup.task.score(r.text, {"answer": answers[r.problem]}).correct
    res = cli(str(out), "--segment", "token", "--all", "--concepts", "3", "--quiet")
    assert res.exit_code == 0, res.output
    steps = pd.read_parquet(out / "graph" / "steps.parquet")
    assert set(steps.loc[steps["record_step"] == 0, "step"]) == {0}  # checkpoint 0's window
    res = CliRunner().invoke(app, ["analyze", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["web"] is not None and summary["web"]["final_step"] == 4
    rg = summary["reasoning_graph"]
    assert rg["method"]["n_concepts"] == 3 and rg["final_step"] == 4
    ks = {r["n_concepts"] for r in rg["degree_sensitivity"]}
    assert 3 in ks and ks <= {2, 3, 6}
    assert (out / "figures" / "degree_sensitivity.png").is_file()
    assert (out / "figures" / "reasoning_graph.png").is_file()
    assert "Web extracted from text" in (out / "report.md").read_text()
    assert rg["method"]["min_count"] == 1  # the graph's (llm graph's default)
    res = CliRunner().invoke(app, ["analyze", str(out), "-q", "--no-figures", "--min-count", "2"])
    assert res.exit_code == 0, res.output
    rg = json.loads((out / "summary.json").read_text())["reasoning_graph"]
    assert rg["method"]["min_count"] == 2
    assert "at least 2 outgoing transitions" in (out / "report.md").read_text()
