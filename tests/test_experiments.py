"""Experiment suites: the paired ablation (resume, pairing, statistics) and the reproduction suite."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from conceptweb.analysis.stats import mean_ci, paired_comparison, verdict
from conceptweb.errors import ConceptwebError
from conceptweb.experiments.ablation import (
    Ablation,
    AblationConfig,
    arm_config,
    compare_arms,
    parse_arm,
)
from conceptweb.rundir import RunDir

TINY = [
    "model.N=60",
    "model.K=4",
    "model.L=30",
    "problems.Q=10",
    "problems.held_out=4",
    "grpo.G=8",
    "eval.G=16",
    "steps=40",
]


def _ablation(tmp_path, arms=("plain", "sft@15", "rl_hard@15"), seeds=3) -> Ablation:
    cfg = AblationConfig(
        preset="tiny",
        sets=TINY,
        seeds=seeds,
        arms=list(arms),
        heat_steps=5,
        threshold=0.9,
        checkpoint_every=10,
    )
    return Ablation.open_or_create(tmp_path / "abl", cfg)


def test_paired_statistics_match_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(1.0, 1.0, 20)
    b = a - 0.5 + rng.normal(0, 0.3, 20)
    comp = paired_comparison(a, b)
    t = stats.ttest_rel(a, b)
    assert comp["p_t"] == pytest.approx(t.pvalue)
    m, lo, hi = mean_ci(a - b)
    assert (comp["mean_diff"], comp["ci_low"], comp["ci_high"]) == pytest.approx((m, lo, hi))
    assert lo < 0.5 < hi
    assert verdict(comp) == "helped" and verdict(comp, higher_is_better=False) == "hurt"
    # noise without a shift: differences of mean zero are not significant
    noise = rng.normal(0, 1e-3, 20)
    noise -= noise.mean()
    comp = paired_comparison(a + noise, a)
    assert comp["p_t"] > 0.9 and comp["mean_diff"] == pytest.approx(0.0, abs=1e-12)
    assert verdict(comp) == "no significant difference"
    # the same noise around a shift of 1e-3 is significant: the test can tell the two apart
    assert verdict(paired_comparison(a + noise + 1e-3, a)) == "helped"
    # identical arms: p = 1 by definition
    same = paired_comparison(a, a)
    assert same["p_t"] == 1.0 and verdict(same) == "no significant difference"


def test_arm_names():
    assert parse_arm("plain") == ("plain", "")
    assert parse_arm("temperature@auto") == ("temperature", "auto")
    assert parse_arm("sft@150") == ("sft", "150")
    for bad in ("sft", "warp@auto", "sft@sometime"):
        with pytest.raises(ValueError):
            parse_arm(bad)
    with pytest.raises(ValueError):
        AblationConfig(arms=["plain", "plain"])


def test_arms_are_paired_and_spend_equal_steps(tmp_path):
    abl = _ablation(tmp_path)
    base = abl.cfg.base_config()
    cfgs = {a: arm_config(abl.cfg, base, a, 1) for a in abl.cfg.arms}
    assert {c.steps for c in cfgs.values()} == {40}
    assert {c.seed for c in cfgs.values()} == {1}
    assert cfgs["sft@15"].anneal.mode == "at" and cfgs["sft@15"].anneal.at_step == 15
    assert cfgs["rl_hard@15"].anneal.heat.operator == "rl_hard"
    assert cfgs["plain"].anneal.mode == "off"
    abl.run(workers=1)
    m = {a: RunDir.open(abl.run_path(a, 0)).read_metrics() for a in abl.cfg.arms}
    for arm in ("sft@15", "rl_hard@15"):
        assert len(m[arm]) == 40
        before = m[arm][m[arm]["step"] <= 15].drop(columns=["time_s"])
        ref = m["plain"][m["plain"]["step"] <= 15].drop(columns=["time_s"])
        pd.testing.assert_frame_equal(before[ref.columns], ref)  # identical until the heating
    assert (m["sft@15"]["phase"] == "sft").sum() == 5
    assert (m["rl_hard@15"]["phase"] == "rl_hard").sum() == 5
    res = abl.read_results()
    assert len(res) == 9 and set(res["arm"]) == set(abl.cfg.arms)
    comp = compare_arms(res)
    row = comp[(comp["arm"] == "sft@15") & (comp["metric"] == "final_acc")].iloc[0]
    ref = res[res["arm"] == "plain"].sort_values("seed")["final_acc"].to_numpy()
    cur = res[res["arm"] == "sft@15"].sort_values("seed")["final_acc"].to_numpy()
    assert row["diff_mean_diff"] == pytest.approx((cur - ref).mean())


def test_interrupted_ablation_resumes_without_redoing(tmp_path):
    abl = _ablation(tmp_path, arms=("plain", "sft@15"), seeds=2)
    calls = []

    def stop_after_two(arm, seed, i, n):
        calls.append((arm, seed))
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        abl.run(workers=1, on_done=stop_after_two)
    assert len(abl.read_results()) == 2
    done = [abl.run_path(a, s) / "metrics.parquet" for a, s in calls]
    stamps = [p.stat().st_mtime_ns for p in done]
    again = Ablation.open_or_create(tmp_path / "abl", None)
    assert len(again.pending()) == 2
    redone = []
    again.run(workers=1, on_done=lambda a, s, i, n: redone.append((a, s)))
    assert len(redone) == 2 and not set(redone) & set(calls)
    assert [p.stat().st_mtime_ns for p in done] == stamps
    assert len(again.read_results()) == 4


def test_ablation_refuses_other_settings_in_the_same_directory(tmp_path):
    _ablation(tmp_path)
    other = AblationConfig(preset="tiny", sets=TINY, seeds=2, arms=["plain", "sft@10"])
    with pytest.raises(ConceptwebError, match="another config"):
        Ablation.open_or_create(tmp_path / "abl", other)


def test_ablation_cli_writes_report(tmp_path):
    from typer.testing import CliRunner

    from conceptweb.interfaces.cli import app

    args = [
        "ablate",
        "-p",
        "tiny",
        "--seeds",
        "2",
        "--arms",
        "plain,sft@15",
        "--heat-steps",
        "4",
        "--threshold",
        "0.9",
        "--workers",
        "1",
        "-q",
        "--out",
        str(tmp_path / "a"),
    ]
    for s in TINY:
        args += ["-s", s]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    text = (tmp_path / "a" / "report.md").read_text()
    assert "sft@15" in text and "paired" in text
    for f in ("learning_curves.png", "paired_differences.png", "diversity_around_heating.png"):
        assert (tmp_path / "a" / "figures" / f).stat().st_size > 1000
    assert "<h1>" in (tmp_path / "a" / "report.html").read_text()
    # the same command again: nothing left to run, and it says so with the right counts
    res = CliRunner().invoke(app, [a for a in args if a != "-q"])
    assert res.exit_code == 0 and "0 of 4 runs left" in res.output, res.output
    page = (tmp_path / "a" / "interactive.html").read_text()  # the arms side by side
    assert page.count('"label":"') >= 2 and '"label":"plain"' in page
    res = CliRunner().invoke(
        app, ["ablate", "--arms", "plain,bogus@1", "--out", str(tmp_path / "b")]
    )
    assert res.exit_code == 2 and "bogus" in res.output


def _tiny_suite(tmp_path):
    from conceptweb.experiments.reproduce import Suite, SuiteConfig

    cfg = SuiteConfig(
        quick=True,
        N=60,
        seeds=2,
        steps=40,
        paper_steps=40,
        sft_new=4,
        sft_steps=5,
        recovery_steps=10,
        phase_K=[4, 8],
        phase_Q=[16],
        phase_seeds=2,
        phase_steps=30,
        ablation_presets=["sparse"],
        ablation_seeds=2,
        ablation_arms=["plain", "sft@auto"],
    )
    return Suite.open_or_create(tmp_path / "repro", cfg)


def test_reproduction_suite_end_to_end(tmp_path):
    from conceptweb.experiments.reproduce import CORE_PRESETS, Suite
    from conceptweb.interfaces.suite_report import write_suite_report

    suite = _tiny_suite(tmp_path)
    notes = []
    table = suite.run(workers=2, on_done=notes.append)
    assert len(notes) == suite.n_runs() == 4 * 2 + 2 + 2 * 2 + 2 * 2
    assert set(table["group"]) == {"core", "sft", "phase"}
    assert set(table[table["group"] == "core"]["label"]) == set(CORE_PRESETS)
    for path in table["path"]:
        assert (RunDir.open(path).path / "summary.json").is_file()
    report = write_suite_report(suite)
    text = report.read_text()
    for claim in (
        "Two-stage learning curve",
        "V-shaped length",
        "average degree near 2",
        "SFT after RLVR",
        "Policy collapse",
        "Annealed-RLVR",
    ):
        assert claim in text
    assert (
        text.count("**reproduced**") + text.count("**partly reproduced**") + text.count("**not")
        >= 8
    )
    html = (suite.out / "report.html").read_text()
    assert html.count("data:image/png;base64") >= 6
    assert (suite.out / "phase_diagram.csv").is_file()
    # a second run of the same command redoes nothing
    metrics = RunDir.open(table["path"].iloc[0]).metrics_path
    stamp = metrics.stat().st_mtime_ns
    Suite.open_or_create(suite.out, suite.cfg).run(workers=1)
    assert metrics.stat().st_mtime_ns == stamp


def test_reproduction_refuses_a_directory_with_other_settings(tmp_path):
    from conceptweb.experiments.reproduce import Suite, SuiteConfig

    _tiny_suite(tmp_path)
    with pytest.raises(ConceptwebError, match="other settings"):
        Suite.open_or_create(tmp_path / "repro", SuiteConfig.quick_version())
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("mine")
    with pytest.raises(ConceptwebError, match="not a reproduction"):
        Suite.open_or_create(tmp_path / "other", SuiteConfig.quick_version())


def test_reproduce_sizes_from_the_command_line(tmp_path):
    """--size sets the suite's sizes (a sparse-only core for the v3 claims); mistakes exit 2."""
    from typer.testing import CliRunner

    from conceptweb.experiments.reproduce import Suite, SuiteConfig
    from conceptweb.interfaces.cli import app

    sizes = ["N=60", "seeds=2", "steps=40", "core_presets=sparse", "phase_K=4,8"]
    cfg = SuiteConfig.with_sizes(False, sizes, sections=["core"])
    assert cfg.core_presets == ["sparse"] and cfg.phase_K == [4, 8] and not cfg.quick
    assert SuiteConfig.with_sizes(True, ["seeds=2"]).N == SuiteConfig.quick_version().N
    plans = Suite.open_or_create(tmp_path / "v3", cfg).all_jobs()
    assert {j.label for j in plans["core"]} == {"sparse"} and len(plans["sft"]) == 2
    args = ["reproduce", "--skip", "phase,ablation", "-q", "--out", str(tmp_path / "x")]
    for bad, msg in (
        ("seeds=0", "--size seeds"),
        ("colour=red", "KEY one of"),
        ("core_presets=tiny", "core presets must be among"),
    ):
        res = CliRunner().invoke(app, [*args, "--size", bad])
        assert res.exit_code == 2 and msg in res.output, res.output
    assert not (tmp_path / "x").exists()  # nothing written on a mistake
