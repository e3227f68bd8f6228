"""The chained-arithmetic text task: its data, its known step concepts, and the whole chain."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.llm.conftest import require_llm_packages

pytestmark = pytest.mark.llm
require_llm_packages()
pytest.importorskip("sklearn")

from conceptweb.llm.data import CHAIN_CONCEPTS, chain_apply, load_problems, synthetic_chain  # noqa: E402
from conceptweb.llm.graph import PATTERNS, segment  # noqa: E402
from conceptweb.llm.rewards import make_task  # noqa: E402
from conceptweb.llm.truth import chain_concepts, score_checkpoint  # noqa: E402


def test_chain_solutions_follow_the_question_and_are_scored() -> None:
    rows = synthetic_chain(50, seed=4)
    assert rows == synthetic_chain(50, seed=4) and rows != synthetic_chain(50, seed=5)
    task = make_task("math")
    for r in rows:
        sol = r["solution"]
        sentences = [sol[a:b] for a, b in segment(sol, PATTERNS["sentence"])]
        ops = [q.split()[0] for q in r["problem"].rstrip(" :").split(" , ")]
        names = [CHAIN_CONCEPTS[i] for i in chain_concepts(pd.Series(sentences))]
        assert names == [*ops, "answer"] and 3 <= len(ops) <= 5
        x = int(sentences[0].split()[1])
        for q, s in zip(r["problem"].rstrip(" :").split(" , ")[1:], sentences[1:-1], strict=True):
            k = int(q.split()[1]) if len(q.split()) > 1 else 0
            x = chain_apply(q.split()[0], x, k)
            assert s.endswith(f"gives {x} .")
        assert r["answer"] == str(x) and sentences[-1] == f"answer {x} ."
        assert task.score(sol, r).correct
        assert not task.score(re.sub(r"answer \d", f"answer {(x + 1) % 10}", sol), r).correct
    loaded = load_problems("synthetic-chain")
    assert len(loaded.problems) == 200 and loaded.n_skipped == 0


def test_scores_against_known_concepts_on_a_hand_built_graph() -> None:
    from conceptweb.analysis.reasoning import edges_frame, sequences_of, transition_counts

    rows = []
    for i, r in enumerate(synthetic_chain(30, seed=1)):
        sol = r["solution"]
        for pos, (a, b) in enumerate(segment(sol, PATTERNS["sentence"])):
            rows.append(
                {"record_step": 1, "problem": i, "sample": 0, "position": pos, "text": sol[a:b]}
            )
    steps = pd.DataFrame(rows)
    truth = chain_concepts(steps["text"])
    steps["concept"] = (truth + 3) % len(CHAIN_CONCEPTS)  # a relabelling: the same partition
    edges = edges_frame(0, transition_counts(sequences_of(steps)))
    sc = score_checkpoint(steps, edges, 0.5, labeler=chain_concepts)
    assert sc["purity"] == 1.0 and sc["edge_f1"] == 1.0 and sc["k_diff"] == 0.0
    assert sc["n_true_edges"] >= 3  # the dominant successors give the true web edges
    merged = steps.assign(concept=np.minimum(truth, 2))  # three concepts merged into one
    edges = edges_frame(0, transition_counts(sequences_of(merged)))
    bad = score_checkpoint(merged, edges, 0.5, labeler=chain_concepts)
    assert bad["purity"] < 0.8 and bad["edge_f1"] < 1.0


def test_digit_purity_tells_a_partition_by_digits_from_one_by_operations() -> None:
    from conceptweb.experiments.chain_text import digit_purity, sentence_digits

    texts = pd.Series(["start 7 .", "add 4 gives 1 .", "double gives 2 .", "answer 2 ."])
    assert sentence_digits(texts).tolist() == [7, 1, 2, 2]
    assert sentence_digits(pd.Series(["double gives .", ""])).tolist() == [-1, -1]
    texts = [s for r in synthetic_chain(60, seed=2) for s in r["solution"].split(" . ") if s]
    steps = pd.DataFrame({"step": 0, "text": texts})
    by_op = steps.assign(concept=chain_concepts(steps["text"]))
    by_digit = steps.assign(concept=sentence_digits(steps["text"]))
    assert digit_purity(by_digit) == [1.0] and digit_purity(by_op)[0] < 0.5


def test_chain_record_graph_analyze_on_a_tiny_instance(tmp_path: Path) -> None:
    from conceptweb.experiments.chain_text import ChainConfig, run_chain
    from conceptweb.interfaces.cli import app
    from conceptweb.llm.recorder import read_completions
    from conceptweb.rundir import RunDir

    cfg = ChainConfig(
        problems=8,
        sft_examples=64,
        sft_steps=4,
        sft_batch=16,
        steps=2,
        prompts=4,
        G=2,
        hidden=16,
        heads=2,
        checkpoints=1,
        record=8,
        max_length=24,
    )
    frame = run_chain(cfg, tmp_path / "chain", seed=0, echo=lambda m: None)
    run = tmp_path / "chain" / "run"
    assert frame["step"].tolist() == [0, 2]
    assert frame["purity"].between(0, 1).all() and frame["layer"].iloc[0] in (1, 2)
    meta = json.loads((run / "graph" / "meta.json").read_text())
    assert meta["segment"] == "sentence" and meta["n_concepts"] == len(CHAIN_CONCEPTS)
    assert len(read_completions(RunDir.open(run))) == 16  # 8 per step, 2 steps
    res = CliRunner().invoke(app, ["analyze", str(run)])
    assert res.exit_code == 0, res.output
    assert json.loads((run / "summary.json").read_text())["web"] is not None
