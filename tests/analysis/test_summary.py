"""analyze_run on run directories: stable keys, determinism, LLM-like runs, clear errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conceptweb.analysis.summary import SECTION_KEYS, analyze, analyze_run, write_summary
from conceptweb.errors import ConceptwebError
from conceptweb.rundir import RunDir, atomic_savez


def test_summary_has_the_stable_keys(base_run):
    s = analyze_run(base_run)
    for section, keys in SECTION_KEYS.items():
        if section == "forgetting":
            assert s[section] is None
            continue
        assert s[section] is not None, section
        assert list(s[section])[: len(keys)] == keys, section
    assert isinstance(s["two_stage"]["is_two_stage"], bool)
    assert isinstance(s["v_shape"]["is_v"], bool)
    assert set(s["frustration_candidates"]) >= {
        "forgetting_peak_step",
        "v_bottom_step",
        "knee_step",
    }
    assert s["run"]["n_steps"] == 60 and s["run"]["n_checkpoints"] == 7
    json.dumps(s, allow_nan=False)  # plain JSON, no NaN


def test_summary_numbers_agree_with_the_records(base_run):
    a = analyze(base_run)
    s = a.summary
    last = a.topology.iloc[-1]
    assert s["web"]["final_avg_degree"] == pytest.approx(last["avg_degree"])
    assert s["web"]["n_bridges"] == last["n_bridges"]
    assert s["frustration"]["n_forgetting_events"] == int(a.frustration.forget.sum())
    steps = a.metrics["step"].to_numpy()
    assert steps[0] <= s["v_shape"]["min_step"] <= steps[-1]
    assert s["frustration_candidates"]["v_bottom_step"] == s["v_shape"]["min_step"]
    assert s["frustration_candidates"]["forgetting_peak_step"] == s["frustration"]["peak_step"]


def test_analysing_twice_gives_identical_summary_json(base_run, run_copy):
    run = run_copy(base_run)
    first = write_summary(run, analyze_run(run)).read_bytes()
    second = write_summary(run, analyze_run(run.path)).read_bytes()
    assert first == second


def test_sft_run_summary(sft_run):
    s = analyze_run(sft_run)
    assert s["two_stage"] is None and s["v_shape"] is None
    assert list(s["forgetting"])[:5] == SECTION_KEYS["forgetting"]
    # the counts are those of the evaluations before (step 0) and after the 20 SFT steps
    ev = sft_run.read_eval()
    ev = ev[ev["split"] == "train"]
    solved_0 = ev[ev["step"] == 0].set_index("problem")["accuracy"] >= 0.5
    solved_20 = ev[ev["step"] == 20].set_index("problem")["accuracy"] >= 0.5
    f = s["forgetting"]
    assert (f["solved_before"], f["solved_after_sft"]) == (solved_0.sum(), solved_20.sum())
    assert f["n_lost"] == (solved_0 & ~solved_20).sum()
    assert f["lost_frac"] == pytest.approx(f["n_lost"] / f["solved_before"])
    assert "SFT run" in s["notes"]["two_stage"]
    assert s["web"] is not None


def test_llm_run_without_checkpoints_or_eval(base_run, run_copy):
    run = run_copy(base_run, "llm")
    for p in run.checkpoints_dir.iterdir():
        p.unlink()
    run.eval_path.unlink()
    run.update_meta(kind="llm")
    s = analyze_run(run)
    assert s["web"] is None and "no checkpoints" in s["notes"]["web"]
    assert s["two_stage"] is not None and s["frustration"] is not None
    assert s["collapse"]["leaf_entropy_start"] is None
    assert s["collapse"]["diversity_start"] is not None


def _drop(name):
    def f(run):
        (run.path / name).unlink()

    return f


def _old_format(run):
    run.update_meta(format_version=0)


def _no_reward_column(run):
    run.write_table("metrics", run.read_metrics().drop(columns=["reward_mean"]))


def _garbage_metrics(run):
    run.metrics_path.write_bytes(b"not parquet")


def _checkpoint_without_logits(run):
    with np.load(run.checkpoint_path(10)) as raw:
        ck = {k: raw[k] for k in raw.files if k != "logits"}
    atomic_savez(run.checkpoint_path(10), ck)


def _no_rows(run):
    run.write_table("metrics", run.read_metrics().iloc[:0])


@pytest.mark.parametrize(
    "damage, message",
    [
        (_drop("metrics.parquet"), "incomplete: metrics.parquet is missing"),
        (_drop("problems.parquet"), "incomplete: problems.parquet is missing"),
        (_drop("run.json"), "not a conceptweb run directory"),
        (_old_format, "run format 0"),
        (_no_reward_column, "lacks column(s) reward_mean"),
        (_garbage_metrics, "cannot read"),
        (_checkpoint_without_logits, "lacks logits"),
        (_no_rows, "no rows"),
    ],
)
def test_broken_run_directories_give_clear_errors(base_run, run_copy, damage, message):
    run = run_copy(base_run)
    damage(run)
    with pytest.raises(ConceptwebError) as info:
        analyze_run(run.path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_not_a_directory(tmp_path):
    with pytest.raises(ConceptwebError, match="not a directory"):
        analyze_run(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ConceptwebError, match="not a conceptweb run"):
        analyze_run(tmp_path / "plain")


def test_snapshot_steps(base_run, sft_run):
    a = analyze(base_run)
    snaps = a.snapshot_steps()
    assert set(snaps) == {"islands", "frustrated", "final"}
    assert snaps["final"] == 60 and all(
        s in RunDir.open(base_run.path).checkpoint_steps() for s in snaps.values()
    )
    assert snaps["islands"] == int(
        a.topology["step"].to_numpy()[np.argmax(a.topology["n_components"])]
    )
    b = analyze(sft_run)
    assert b.snapshot_steps() == {"before SFT": 0, "after SFT": 20, "final": 40}
    assert isinstance(a.metrics, pd.DataFrame)
