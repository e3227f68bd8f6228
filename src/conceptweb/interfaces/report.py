"""The report of one analysed run: report.md and report.html (figures inline) stating the numbers.

Built from the blocks of `interfaces.blocks`, like every report of the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conceptweb.interfaces.blocks import Block, write_report
from conceptweb.interfaces.numbers import fmt, is_finite, pct
from conceptweb.rundir import RunDir

FIGURE_CAPTIONS = {
    "learning_curve": "Mean reward per step, the continuous two-segment fit with its knee, and the "
    "saturating fit a - b exp(-t/c).",
    "length_curve": "Mean length of correct rollouts, smoothed, with the minimum of the V marked.",
    "frustration": "Forgetting and learning events per step (smoothed) and the three candidate "
    "steps of the maximally frustrated state.",
    "accuracy_raster": "Per-problem accuracy over steps (problems ordered by when they are first "
    "solved); black dots are forgetting events.",
    "web_topology": "Average degree ⟨k⟩ of the concept web, number of islands and fraction of web "
    "nodes in the largest one, per checkpoint.",
    "web_snapshots": "The concept web (edges with pi >= tau) drawn at three checkpoints; dark: "
    "largest component, red: trunk edges crossed by the correct paths of 2+ problems.",
    "trees": "The directed web (dominant successors, pi >= tau): in-trees and cyclic components, the "
    "tree-like fraction, problems whose greedy paths merge, and the fraction of the final web "
    "frozen by each checkpoint; dashed: end of nucleation, dotted: start of freezing.",
    "pass_at_k": "pass@k (unbiased estimator) over k at the last evaluation, per split.",
    "degree_sensitivity": "⟨k⟩ of the web extracted from text against tau, one line per number "
    "of concepts, with 95% bootstrap bands over completions: ⟨k⟩ is a property of the extraction "
    "settings as much as of the model.",
    "reasoning_graph": "Directed structure of the extracted web per checkpoint: cycles, diameter, "
    "merge nodes and roots; fractions of in-tree islands and of concepts with a dominant successor.",
    "sft_forgetting": "Accuracy of the old problems through SFT on new problems (shaded) and "
    "renewed RLVR; the dotted line marks recovery.",
}


NO_TEST = "-"  # rows without a formal criterion: the numbers speak


def _verdict(flag: Any) -> str:
    if flag is None:
        return "n/a"
    return "**observed**" if flag else "not observed"


def build_blocks(summary: dict[str, Any], name: str, figures: dict[str, str]) -> list[Block]:
    """The report's blocks from a summary.json dict; figures maps figure name -> relative path."""
    run = summary.get("run") or {}
    ts, vs, web = summary.get("two_stage"), summary.get("v_shape"), summary.get("web")
    fr, col, fg = summary.get("frustration"), summary.get("collapse"), summary.get("forgetting")
    cand = summary.get("frustration_candidates") or {}
    tr = summary.get("transitions") or {}
    ana = summary.get("analysis") or {}
    notes = summary.get("notes") or {}
    blocks = [Block("h1", f"conceptweb analysis: {name}")]
    blocks.append(
        Block(
            "p",
            f"A {run.get('kind', '?')} run"
            + (f" (preset {run['preset']})" if run.get("preset") else "")
            + f", steps {run.get('first_step')} to {run.get('last_step')}, "
            f"{run.get('n_problems')} training problems, {run.get('n_checkpoints')} checkpoints"
            + (f", starting with {run['sft_steps']} SFT steps" if run.get("sft_steps") else "")
            + f". Web threshold tau = {fmt(ana.get('tau'))}; a problem is solved at accuracy >= "
            f"{fmt(ana.get('solved_threshold'))}. Verdicts are given where a definition has a "
            "criterion (two-stage curve, V, SFT forgetting); elsewhere the numbers stand alone. "
            "Definitions: docs/analysis.md of conceptweb.",
        )
    )
    rows: list[list[str]] = []
    if ts is not None:
        rows.append(
            [
                "Two-stage learning curve",
                f"knee at step {fmt(ts['knee_step'], '.0f')}; slopes {fmt(ts['slope_early'])} / "
                f"{fmt(ts['slope_late'])} per step (ratio {fmt(ts['slope_ratio'], '.1f')}); BIC "
                f"piecewise {fmt(ts['bic_piecewise'], '.1f')} vs saturating "
                f"{fmt(ts['bic_saturating'], '.1f')}",
                _verdict(ts["is_two_stage"]) + f" ({ts.get('reason', '')})",
            ]
        )
    if vs is not None:
        rows.append(
            [
                "V-shaped length of correct rollouts",
                f"{fmt(vs['start_len'], '.1f')} -> {fmt(vs['min_len'], '.1f')} at step "
                f"{fmt(vs['min_step'])} -> {fmt(vs['end_len'], '.1f')}; fall "
                f"{pct(vs['drop_frac'])}, rise {pct(vs['rise_frac'])}",
                _verdict(vs["is_v"]) + f" ({vs.get('reason', '')})",
            ]
        )
    if web is not None:
        rows.append(
            [
                "Sparse, tree-like web (⟨k⟩ near 2)",
                f"final ⟨k⟩ = {fmt(web['final_avg_degree'], '.2f')} over "
                f"{fmt(web.get('final_n_nodes'))} nodes; {web['n_bridges']} bridges of "
                f"{fmt(web.get('final_n_edges'))} edges",
                NO_TEST,
            ]
        )
        rows.append(
            [
                "Islands early, then one web" if not run.get("sft_steps") else "Islands",
                f"most islands ({fmt(web.get('peak_n_components'))}) at step "
                f"{fmt(web['peak_islands_step'])}; at the end {web['final_n_components']} components, "
                f"largest holds {pct(web['final_giant_fraction'])} of web nodes",
                NO_TEST,
            ]
        )
    rg = summary.get("reasoning_graph")
    if rg is not None:
        rows.extend(_reasoning_rows(rg))
    if fr is not None:
        rows.append(
            [
                "Frustration-induced forgetting",
                f"{fr['n_forgetting_events']} forgetting and {fr['n_learning_events']} learning "
                f"events; F(t) peaks at step {fmt(fr['peak_step'])} "
                f"({fmt(fr.get('peak_value'), '.2f')} events/step)",
                NO_TEST,
            ]
        )
    if any(cand.get(k) is not None for k in ("forgetting_peak_step", "v_bottom_step")):
        rows.append(
            [
                "Maximally frustrated state: candidates",
                f"peak of forgetting {fmt(cand.get('forgetting_peak_step'))}, bottom of the V "
                f"{fmt(cand.get('v_bottom_step'))}, knee {fmt(cand.get('knee_step'), '.0f')} "
                f"(spread {fmt(cand.get('spread'), '.0f')} steps)",
                NO_TEST,
            ]
        )
    if tr.get("n_fitted"):
        rows.append(
            [
                "Phase-transition-like learning",
                f"{tr['n_transitions']} of {tr['n_fitted']} problems rise by >= 0.5 along a "
                f"logistic; median 10-90% width {fmt(tr.get('median_width'), '.0f')} steps "
                f"(IQR {fmt(tr.get('width_q25'), '.0f')}-{fmt(tr.get('width_q75'), '.0f')})",
                NO_TEST,
            ]
        )
    if col is not None:
        rows.append(
            [
                "Policy collapse",
                f"distinct correct paths per problem {fmt(col['diversity_start'], '.2f')} -> "
                f"{fmt(col['diversity_end'], '.2f')} (peak {fmt(col.get('diversity_peak'), '.2f')}); "
                f"leaf entropy {fmt(col['leaf_entropy_start'], '.2f')} -> "
                f"{fmt(col['leaf_entropy_end'], '.2f')} nats",
                NO_TEST,
            ]
        )
    if fg is not None:
        rows.append(
            [
                "Catastrophic forgetting under SFT",
                f"solved {fg['solved_before']} -> {fg['solved_after_sft']} after "
                f"{fg.get('sft_steps')} SFT steps: lost {pct(fg['lost_frac'])}; "
                f"{pct(fg['lost_downstream_of_cut_bridges_frac'])} of the lost sat behind a "
                f"bridge SFT cut (loss rate {pct(fg.get('lost_rate_crossing_cut_bridge'))} "
                f"across cut bridges vs {pct(fg.get('lost_rate_elsewhere'))} elsewhere); "
                f"recovered in {fmt(fg['recovery_steps'], '.0f')} RL steps",
                _verdict(bool(fg["lost_frac"]) if is_finite(fg["lost_frac"]) else None),
            ]
        )
    rows.extend(v3_rows(summary))
    blocks.append(Block("h2", "What this run shows"))
    blocks.append(Block("table", (["phenomenon", "measured", "verdict"], rows)))
    if notes:
        blocks.append(Block("h2", "Not measured"))
        blocks.append(Block("list", [f"{k}: {v}" for k, v in notes.items()]))
    if figures:
        blocks.append(Block("h2", "Figures"))
        for key, rel in figures.items():
            blocks.append(Block("figure", (rel, FIGURE_CAPTIONS.get(key, key))))
    blocks.append(Block("h2", "Definitions used"))
    blocks.append(
        Block(
            "list",
            [
                "Two-stage: a continuous two-segment line beats a - b exp(-t/c) by BIC and the "
                "early slope is >= 5x the late one.",
                "V: smoothed length minimum outside the first and last 10% of steps, falling "
                ">= 15% before and rising >= 15% after it"
                + (
                    f" (moving average over {ana['length_smooth_window']} steps)."
                    if ana.get("length_smooth_window")
                    else "."
                ),
                f"Forgetting event: solved (accuracy smoothed over {fmt(ana.get('event_window'))} "
                "steps >= 0.5) at t-1 and not at t; F(t): events per step, moving average over "
                f"{fmt(ana.get('frustration_window'))} steps.",
                "Web: edges with pi >= tau; topology on its undirected projection; bridges whose "
                "removal disconnects the web; leaves have degree 1.",
            ],
        )
    )
    return blocks


def v3_rows(summary: dict[str, Any]) -> list[list[str]]:
    """Report rows of the v3 sections: inverse trees, freezing and phases, pass@k."""
    rows: list[list[str]] = []
    tr, fz, pk = summary.get("trees"), summary.get("freezing"), summary.get("pass_at_k")
    if tr is not None:
        rows.append(
            [
                "Inverse trees (directed web)",
                f"{tr['n_trees']} in-trees and {tr['n_cyclic']} cyclic parts over "
                f"{tr['n_web_nodes']} web nodes: tree-like {pct(tr['tree_fraction'])}; "
                f"{tr['n_roots_at_answers']} roots are answer nodes; {tr['n_multi_input_trees']} "
                f"trees carry 2+ starts; {tr['n_merge_nodes']} merge nodes (max in-degree "
                f"{tr['max_in_degree']}); {pct(tr['merged_problems_frac'])} of problems' greedy "
                f"paths merge; greedy paths solve {pct(tr['greedy_solved_frac'])}",
                NO_TEST,
            ]
        )
    if fz is not None:
        rows.append(
            [
                "Freezing (nucleation, growth, freezing)",
                f"{fz['n_frozen']} of {fz['n_nodes']} final web nodes frozen (entropy < "
                f"{fmt(fz['entropy_threshold'])} nats, successor fixed); median freezing step "
                f"{fmt(fz['median_step'], '.0f')} (10-90%: {fmt(fz['q10_step'], '.0f')}-"
                f"{fmt(fz['q90_step'], '.0f')}); nucleation ends {fmt(fz['nucleation_end'], '.0f')}, "
                f"freezing starts {fmt(fz['freezing_start'], '.0f')}",
                _verdict(fz["phases_ordered"]) + " (phases in order)",
            ]
        )
    if pk is not None:
        parts = [
            f"{split}: "
            + ", ".join(f"@{k} {fmt(v, '.3f')}" for k, v in vals.items() if int(k) in _SHOWN_KS)
            for split, vals in pk.items()
            if isinstance(vals, dict)
        ]
        rows.append(
            [
                f"pass@k (step {pk['step']}, {pk['G']} samples)",
                "; ".join(parts),
                NO_TEST,
            ]
        )
    return rows


_SHOWN_KS = {1, 8, 64, 256, 1024}


def _reasoning_rows(rg: dict[str, Any]) -> list[list[str]]:
    """Report rows of a web extracted from text: how, its directed structure, <k>'s sensitivity."""
    m = rg.get("method") or {}
    how = (
        f"{m.get('n_concepts')} concepts ({m.get('concepts_criterion')}) from "
        f"{m.get('represent')} representations"
        + (
            f" at layer {m.get('layer')} of {m.get('n_layers')} ({m.get('layer_criterion')})"
            if m.get("layer") is not None
            else ""
        )
        + f", steps segmented by {m.get('segment')}, {m.get('include')} completions"
        + (
            f"; edges only out of concepts with at least {m['min_count']} outgoing transitions"
            if (m.get("min_count") or 1) > 1
            else ""
        )
    )
    sens = rg.get("degree_sensitivity") or []
    ks = "; ".join(
        f"K={r['n_concepts']}, tau={fmt(r['tau'])}: {fmt(r['avg_degree'], '.2f')} "
        f"[{fmt(r['lo'], '.2f')}, {fmt(r['hi'], '.2f')}]"
        for r in sens
        if r["tau"] in (0.3, 0.5, 0.7)
    )
    return [
        ["Web extracted from text", how, NO_TEST],
        [
            "Directed structure (in-trees)",
            f"at step {fmt(rg.get('final_step'))}: {pct(rg.get('final_frac_in_trees'))} of islands "
            f"are in-trees; {fmt(rg.get('final_n_roots'))} roots merge through "
            f"{fmt(rg.get('final_n_merges'))} merge nodes (up to {fmt(rg.get('final_max_in_degree'))} "
            f"inputs); {pct(rg.get('final_frac_dominant'))} of concepts have a dominant successor; "
            f"{fmt(rg.get('final_n_cycles'))} cycles, diameter {fmt(rg.get('final_diameter'))}, "
            f"small-world index {fmt(rg.get('final_small_world'), '.2f')}",
            NO_TEST,
        ],
        ["⟨k⟩ against concepts and tau (95% bootstrap)", ks or "n/a", NO_TEST],
    ]


def write_run_report(
    run: RunDir | str | Path,
    summary: dict[str, Any],
    figures: dict[str, Path] | None = None,
) -> Path:
    """Write report.md and report.html into the run directory; returns the path of report.md.

    figures: {figure name: path} as returned by figures.run_figures; if None, the PNGs already in
    the run's figures/ directory with the standard names are used.
    """
    from conceptweb.interfaces.figures import FIGURE_FILES

    run = run if isinstance(run, RunDir) else RunDir.open(run)
    base = run.path
    if figures is None:
        figures = {
            k: run.figures_dir / f
            for k, f in FIGURE_FILES.items()
            if (run.figures_dir / f).is_file()
        }
    rel: dict[str, str] = {}
    for key, p in figures.items():
        p = Path(p)
        try:
            rel[key] = p.resolve().relative_to(base.resolve()).as_posix()
        except ValueError:
            rel[key] = p.resolve().as_posix()
    return write_report(build_blocks(summary, run.path.resolve().name, rel), base)
