"""The map (`conceptweb explore`): axes, cells, per-run criteria, counts with intervals, the command."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from typer.testing import CliRunner

from conceptweb.errors import ConceptwebError
from conceptweb.experiments.explore import (
    PHENOMENA,
    ExploreConfig,
    axis_margins,
    axis_sets,
    cell_name,
    cell_table,
    islands_then_web,
    judge_run,
    paired_to_first,
    wilson,
)
from conceptweb.interfaces.cli import app


def test_axis_values_become_config_overrides():
    assert axis_sets("graph", "barabasi_albert-directed") == [
        "model.graph=barabasi_albert",
        "model.directed=true",
    ]
    assert axis_sets("structure", "answers:16") == ["problems.n_answers=16"]
    assert axis_sets("structure", "distinct") == ["problems.distinct=true"]
    assert axis_sets("structure", "random") == []
    assert axis_sets("problems.Q", "512") == ["problems.Q=512"]
    for name, bad in (("graph", "er-undirected"), ("structure", "answers:x")):
        with pytest.raises(ConceptwebError):
            axis_sets(name, bad)


def test_cells_are_the_product_of_the_axes():
    cfg = ExploreConfig(preset="tiny", axes=["graph=random_regular,erdos_renyi", "problems.Q=8,16"])
    cells = cfg.cells()
    assert len(cells) == 4 and cells[0] == {"graph": "random_regular", "problems.Q": "8"}
    assert cell_name(cells[3]) == "graph=erdos_renyi+problems.Q=16"
    data = cfg.cell_config(cells[3], seed=7)
    assert (
        data["model"]["graph"] == "erdos_renyi"
        and data["problems"]["Q"] == 16
        and data["seed"] == 7
    )
    with pytest.raises(ValueError):
        ExploreConfig(axes=["graph=a", "graph=b"])


def _summary(**over):
    s = {
        "two_stage": {"is_two_stage": True},
        "v_shape": {"is_v": False},
        "web": {"final_avg_degree": 1.9},
        "frustration": {"n_forgetting_events": 6},
        "collapse": {"diversity_peak": 3.0, "diversity_end": 2.0},
        "trees": {"tree_fraction": 0.95, "n_multi_input_trees": 2, "merged_problems_frac": 0.5},
        "freezing": {"frozen_frac": 0.7, "phases_ordered": True},
        "_islands": True,
    }
    s.update(over)
    return s


def test_judge_run_applies_the_stated_criteria():
    metrics = pd.DataFrame({"reward_mean": [0.1] * 9 + [0.9], "len_correct_mean": [5.0] * 10})
    got = judge_run(_summary(), metrics, n_problems=10)
    assert got["two_stage"] and not got["v_shape"] and got["forgetting"]  # 0.6 events / problem
    assert got["collapse"] and got["inverse_trees"] and got["islands_then_web"]
    assert got["final_reward"] == pytest.approx(0.9) and got["final_len_correct"] == 5.0
    got = judge_run(
        _summary(
            frustration={"n_forgetting_events": 4},
            trees={"tree_fraction": 0.8, "n_multi_input_trees": 2, "merged_problems_frac": 0.5},
            web=None,
            _islands=None,
        ),
        metrics,
        n_problems=10,
    )
    assert got["forgetting"] is False and got["inverse_trees"] is False
    assert got["islands_then_web"] is None and math.isnan(got["final_avg_degree"])


def test_islands_then_web_rule():
    topo = pd.DataFrame(
        {
            "step": [0, 10, 20, 30],
            "n_components": [0, 6, 4, 2],
            "giant_fraction": [0, 0.2, 0.4, 0.7],
        }
    )
    assert islands_then_web(topo) is True
    topo.loc[3, "giant_fraction"] = 0.3
    assert islands_then_web(topo) is False
    assert islands_then_web(topo.iloc[:0]) is None


def test_wilson_interval_and_cell_table():
    lo, hi = wilson(5, 5)
    assert hi == 1.0 and 0.5 < lo < 0.6
    assert wilson(0, 5)[0] == 0.0
    rows = []
    for seed in range(3):
        rows.append(
            {
                "cell": "a=1",
                "seed": seed,
                **{p: seed > 0 for p in PHENOMENA},
                "final_reward": 0.5 + 0.1 * seed,
                "final_len_correct": 5.0,
                "forgetting_per_problem": 1.0,
                "final_avg_degree": 2.0,
                "tree_fraction": 1.0,
                "frozen_frac": math.nan,
            }
        )
    table = cell_table(pd.DataFrame(rows), [{"a": "1"}])
    r = table.iloc[0]
    assert r["n_seeds"] == 3 and r["two_stage_k"] == 2 and r["two_stage_n"] == 3
    assert r["final_reward"] == pytest.approx(0.6) and r["final_reward_lo"] < 0.6


def _grid_results():
    """Two axes, 3 seeds; estimator b adds 0.1 to final reward only in structure s2."""
    rows = []
    for est in ("a", "b", "c"):
        for st in ("s1", "s2"):
            for seed in range(3):
                bump = 0.1 if (est == "b" and st == "s2") else 0.0
                rows.append(
                    {
                        "estimator": est,
                        "structure": st,
                        "seed": seed,
                        "final_reward": 0.5 + 0.01 * seed + 0.001 * (st == "s2") + bump,
                        "v_shape": est == "a" and seed == 0,
                    }
                )
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # order must not matter


def test_margins_pool_each_axis_value_over_the_others():
    m = axis_margins(_grid_results(), ["estimator=a,b,c", "structure=s1,s2", "seed_like=x"])
    assert list(m["axis"]) == ["estimator"] * 3 + ["structure"] * 2  # one-valued axes skipped
    a = m[(m["axis"] == "estimator") & (m["value"] == "a")].iloc[0]
    assert a["runs"] == 6 and a["v_shape_k"] == 2 and a["v_shape_n"] == 6
    assert a["two_stage_n"] == 0  # not measured: no interval, not a zero


def test_paired_differences_pair_by_seed_and_the_other_axes():
    axes = ["estimator=a,b,c", "structure=s1,s2"]
    d = paired_to_first(_grid_results(), axes, ["final_reward"]).set_index(["axis", "value"])
    b = d.loc[("estimator", "b")]
    assert b["reference"] == "a" and b["n"] == 6  # 2 structures x 3 seeds
    assert b["mean_diff"] == pytest.approx(0.05)  # +0.1 in half the pairs, seed offsets cancel
    c = d.loc[("estimator", "c")]
    assert c["mean_diff"] == pytest.approx(0.0) and c["p_t"] == 1.0
    assert b["p_holm"] >= b["p_t"]  # corrected over b and c
    s2 = d.loc[("structure", "s2")]
    assert s2["n"] == 9 and s2["mean_diff"] == pytest.approx(0.001 + 0.1 / 3)


def test_explore_command_runs_a_small_map(tmp_path):
    out = tmp_path / "map"
    args = ["explore", "--preset", "tiny", "--axis", "structure=random,answers:2", "--seeds", "1"]
    for item in ("steps=20", "model.N=60", "model.K=4", "problems.Q=8", "problems.held_out=4"):
        args += ["--set", item]
    args += ["--workers", "1", "--out", str(out), "-q"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    results = pd.read_parquet(out / "results.parquet")
    assert sorted(results["cell"]) == ["structure=answers:2", "structure=random"]
    text = (out / "report.md").read_text()
    assert "| structure=answers:2 | 1 |" in text and (out / "figures" / "map.png").is_file()
    assert "Per axis value, pooled" in text and "| structure | answers:2 | 1 |" in text
    assert (out / "figures" / "margins.png").is_file()
    paired = pd.read_csv(out / "paired.csv")
    assert set(paired["value"]) == {"answers:2"} and set(paired["n"]) == {1}
    res = CliRunner().invoke(app, ["explore", "--out", str(out), "-q"])  # resume: nothing to do
    assert res.exit_code == 0 and len(pd.read_parquet(out / "results.parquet")) == 2
    res = CliRunner().invoke(app, ["explore", "--axis", "graph=nope", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "error:" in res.output
