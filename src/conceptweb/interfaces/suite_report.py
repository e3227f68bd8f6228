"""Figures and report of the reproduction suite: claims over seeds, phase diagram, annealing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.analysis.stats import Interval, mean_ci, seed_interval
from conceptweb.experiments.reproduce import (
    CORE_PRESETS,
    PARTLY_FRAC,
    REPRODUCED_FRAC,
    Claim,
    Suite,
    evaluate_claims,
    phase_table,
)
from conceptweb.interfaces.blocks import (
    Block,
    bullets,
    figure,
    h1,
    h2,
    h3,
    para,
    table,
    write_report,
)
from conceptweb.interfaces.numbers import fmt, fmt_iv
from conceptweb.interfaces.plotting import new_figure, plot_band, save_figure
from conceptweb.rundir import RunDir, atomic_path

COLORS = {
    "sparse": "tab:blue",
    "paper": "tab:orange",
    "frustrated": "tab:red",
    "pretrained": "tab:green",
}
INTERVALS = (
    "Intervals are 95% intervals of the mean over seeds: percentile-bootstrap intervals for "
    "bounded quantities (fractions, steps, counts; they never leave the possible range), "
    "Student-t intervals otherwise, and none with fewer than 3 seeds (*too few seeds*). "
    "Figure bands are Student-t bands clipped to the quantity's range."
)


def _curves(
    runs: pd.DataFrame, column: str, table_name: str = "metrics"
) -> dict[str, pd.DataFrame]:
    """{label: wide frame (step x seed)} of one metric (or topology) column over the core runs."""
    out: dict[str, pd.DataFrame] = {}
    for label, g in runs.groupby("label"):
        cols = {}
        for _, r in g.iterrows():
            df = RunDir(r["path"]).read_table(table_name, required=False)
            if column in df:
                cols[int(r["seed"])] = df.set_index("step")[column]
        if cols:
            out[str(label)] = pd.DataFrame(cols).sort_index()
    return out


def plot_learning_curves(core: pd.DataFrame, path: Path) -> Path:
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    for label, wide in _curves(core, "reward_mean").items():
        plot_band(ax, wide, label, COLORS.get(label), smooth=10, bounds=(0.0, 1.0))
        knees = core[core["label"] == label]["two_stage.knee_step"].dropna().to_numpy(dtype=float)
        if label == "sparse" and knees.size:
            m, lo, hi = mean_ci(knees)
            ax.axvline(m, color=COLORS[label], ls="--", lw=1)
            if np.isfinite(lo):
                ax.axvspan(max(lo, 0.0), hi, color=COLORS[label], alpha=0.08)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward (rolling 10)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("Learning curves, mean and 95% band over seeds; dashed: sparse knee")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_lengths(core: pd.DataFrame, path: Path) -> Path:
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    for label, wide in _curves(core, "len_correct_mean").items():
        plot_band(ax, wide, label, COLORS.get(label), smooth=20, bounds=(1.0, np.inf))
        mins = core[core["label"] == label]["v_shape.min_step"].dropna().to_numpy(dtype=float)
        if mins.size:
            ax.axvline(float(np.mean(mins)), color=COLORS.get(label), ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("mean length of correct rollouts (rolling 20)")
    ax.set_yscale("log")
    ax.set_title("Length of correct rollouts; dotted: mean step of the smoothed minimum")
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_web_over_training(core: pd.DataFrame, path: Path) -> Path:
    fig = new_figure(15, 4)
    axes = fig.subplots(1, 3)
    for ax, column, ylabel, bounds in zip(
        axes,
        ("avg_degree", "n_components", "giant_fraction"),
        ("average degree <k>", "components (islands)", "giant component fraction"),
        ((0.0, np.inf), (0.0, np.inf), (0.0, 1.0)),
        strict=True,
    ):
        for label, wide in _curves(core, column, table_name="topology").items():
            plot_band(ax, wide, label, COLORS.get(label), bounds=bounds)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if column == "avg_degree":
            ax.axhline(2.0, color="k", lw=0.6, ls=":")
    axes[0].legend(fontsize=8)
    fig.suptitle("The concept web (edges with pi >= 0.5) over training, 95% bands over seeds")
    return save_figure(fig, path)


def plot_frustration_steps(core: pd.DataFrame, steps: int, path: Path) -> Path:
    keys = (
        ("frustration_candidates.forgetting_peak_step", "forgetting peak"),
        ("frustration_candidates.v_bottom_step", "V bottom"),
        ("frustration_candidates.knee_step", "learning-curve knee"),
    )
    fig = new_figure(7.5, 3.8)
    ax = fig.add_subplot()
    labels = [p for p in CORE_PRESETS if p in set(core["label"])]
    for j, (key, name) in enumerate(keys):
        for i, label in enumerate(labels):
            vals = pd.to_numeric(core[core["label"] == label].get(key), errors="coerce")
            iv = seed_interval(vals.to_numpy(dtype=float), bounds=(0.0, float(steps)))
            y = i + (j - 1) * 0.22
            if np.isfinite(iv.mean):
                err = [[iv.mean - iv.low], [iv.high - iv.mean]] if np.isfinite(iv.low) else None
                ax.errorbar(
                    iv.mean,
                    y,
                    xerr=err,
                    fmt="os^"[j],
                    color=f"C{j}",
                    label=name if i == 0 else None,
                    capsize=3,
                )
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("step")
    ax.set_title("Three candidates for the maximally frustrated state (mean, 95% interval)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path)


def plot_sft_forgetting(sft: pd.DataFrame, sft_steps: int, path: Path) -> Path:
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    for split, color in (("train", "tab:blue"), ("new", "tab:purple")):
        cols = {}
        for _, r in sft.iterrows():
            p = RunDir(r["path"]).read_table("problems", required=False)
            if len(p):
                p = p[p["split"] == split]
                cols[int(r["seed"])] = p.groupby("step")["accuracy"].mean()
        if cols:
            name = "original problems" if split == "train" else "new problems (SFT targets)"
            wide = pd.DataFrame(cols).sort_index()
            plot_band(ax, wide, name, color, smooth=3, bounds=(0.0, 1.0))
    ax.axvline(sft_steps + 0.5, color="k", lw=0.8, ls="--")
    ax.set_ylim(-0.02, 1.02)
    ax.text(
        sft_steps * 0.5, 1.04, "SFT", ha="center", va="bottom", transform=ax.get_xaxis_transform()
    )
    ax.text(
        sft_steps + 1, 1.04, "RLVR →", ha="left", va="bottom", transform=ax.get_xaxis_transform()
    )
    ax.set_xlabel("step of the SFT experiment")
    ax.set_ylabel("mean accuracy (rolling 3)")
    ax.set_title("SFT on new problems after RLVR: forgetting, then recovery", pad=16)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return save_figure(fig, path)


PHASE_PANELS = (
    ("final_reward", "final reward", "viridis"),
    ("frac_two_stage", "fraction two-stage", "Blues"),
    ("frac_v", "fraction V-shaped", "Oranges"),
    ("frac_plateau", "fraction on a frustrated plateau", "Reds"),
)


def plot_phase_diagram(phase: pd.DataFrame, path: Path) -> Path:
    """Heat maps over (K, Q), two per row; panels that are zero everywhere are left out."""
    panels = [p for p in PHASE_PANELS if p[0] == "final_reward" or phase[p[0]].fillna(0).any()]
    Ks, Qs = sorted(phase["K"].unique()), sorted(phase["Q"].unique())
    ncols = 2 if len(panels) > 1 else 1
    nrows = -(-len(panels) // ncols)
    fig = new_figure(5.2 * ncols, 0.9 * len(Qs) + 2.2 * nrows, constrained=True)
    axes = np.atleast_1d(fig.subplots(nrows, ncols)).ravel()
    for ax, (col, title, cmap) in zip(axes, panels, strict=False):
        grid = phase.pivot(index="Q", columns="K", values=col).reindex(index=Qs, columns=Ks)
        values = grid.to_numpy(dtype=float)
        im = ax.imshow(values, cmap=cmap, vmin=0, vmax=1, origin="lower", aspect="auto")
        for (qi, ki), val in np.ndenumerate(values):
            if np.isfinite(val):
                color = "white" if val > 0.6 else "black"
                ax.text(ki, qi, f"{val:.2f}", ha="center", va="center", fontsize=10, color=color)
        ax.set_xticks(range(len(Ks)), Ks)
        ax.set_yticks(range(len(Qs)), Qs)
        ax.set_xlabel("K (neighbours per node)")
        ax.set_ylabel("Q (training problems)")
        ax.set_title(title, fontsize=11)
        fig.colorbar(im, ax=ax, shrink=0.9)
    for ax in axes[len(panels) :]:
        ax.set_axis_off()
    missing = [t for c, t, _ in PHASE_PANELS if (c, t) not in {(p[0], p[1]) for p in panels}]
    title = "Phase diagram over sparsity K and load Q (fractions over seeds)"
    fig.suptitle(title + (f"; zero everywhere: {', '.join(missing)}" if missing else ""))
    return save_figure(fig, path)


def plot_phase_curves(phase: pd.DataFrame, path: Path) -> Path:
    fig = new_figure(7, 4.2)
    ax = fig.add_subplot()
    for i, (Q, g) in enumerate(phase.groupby("Q")):
        g = g.sort_values("K")
        ax.plot(g["K"], g["final_reward"], "o-", color=f"C{i}", label=f"Q={Q}")
        ax.fill_between(
            g["K"], g["final_reward_lo"], g["final_reward_hi"], color=f"C{i}", alpha=0.2, lw=0
        )
    ax.set_xscale("log", base=2)
    Ks = sorted(phase["K"].unique())
    ax.set_xticks(Ks, [str(k) for k in Ks])
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("K (neighbours per node)")
    ax.set_ylabel("final reward (last 10% of steps)")
    ax.set_title("Final reward vs sparsity: mean and 95% bootstrap band (3+ seeds)")
    ax.legend()
    return save_figure(fig, path)


def claim_measured(c: Claim) -> str:
    """The numbers measured for a claim, as one line of text."""
    if c.text:
        return c.text
    parts = [f"{c.n_met}/{c.n_seeds} seeds"]
    parts += [f"{label} {fmt_iv(iv, spec)}" for label, iv, spec in c.measured]
    return "; ".join(parts)


def _ablation_summary(suite: Suite) -> tuple[dict[str, dict[str, Any]], list[Block]]:
    """Per preset: the sft@auto verdict for the claims table, and report blocks for every arm."""
    verdicts: dict[str, dict[str, Any]] = {}
    blocks: list[Block] = []
    if "ablation" not in suite.cfg.sections:
        return verdicts, blocks
    from conceptweb.interfaces.ablation_report import write_ablation_report

    for preset in suite.cfg.ablation_presets:
        abl = suite.ablation(preset)
        if abl.pending():
            blocks.append(
                para(f"{preset}: ablation incomplete ({len(abl.pending())} runs missing)")
            )
            continue
        write_ablation_report(abl, title=f"Annealed-RLVR ablation on `{preset}`")
        comp = abl.comparisons()
        fa = (
            comp[(comp["metric"] == "final_acc") & comp["verdict"].notna()]
            if "verdict" in comp
            else comp.iloc[:0]
        )
        res = abl.read_results()
        blocks.append(
            h3(
                f"`{preset}` ({abl.cfg.seeds} paired seeds, "
                f"[full report](ablation/{preset}/report.md))"
            )
        )
        rows = []
        for _, r in fa.iterrows():
            heated = int((res[res["arm"] == r["arm"]]["heat_step"] >= 0).sum())
            diff = (
                f"{fmt(r['diff_mean_diff'], '+.4f')} [{fmt(r['diff_ci_low'], '+.4f')}, "
                f"{fmt(r['diff_ci_high'], '+.4f')}]"
            )
            rows.append(
                [
                    r["arm"],
                    f"{heated}/{abl.cfg.seeds}",
                    diff,
                    fmt(r["diff_p_t"]),
                    fmt(r["diff_p_holm"]),
                    r["verdict"],
                ]
            )
            if r["arm"] == "sft@auto":
                verdicts[preset] = {
                    "verdict": r["verdict"],
                    "n": int(r["n_pairs"]),
                    "measured": f"final accuracy {diff} vs plain over {int(r['n_pairs'])} paired "
                    f"seeds (p={fmt(r['diff_p_t'])}, Holm-corrected {fmt(r['diff_p_holm'])}); "
                    f"heated in {heated}/{abl.cfg.seeds} runs",
                }
        head = ["arm", "heated runs", "final accuracy vs plain [95% CI]", "p (paired t)"]
        blocks.append(table([*head, "p (Holm)", "verdict"], rows))
        blocks.append(
            figure(
                f"ablation/{preset}/figures/paired_differences.png",
                f"Paired differences to plain RLVR on `{preset}`, 95% intervals.",
            )
        )
    return verdicts, blocks


def _setting(suite: Suite) -> list[Block]:
    cfg = suite.cfg
    blocks = [
        h1("conceptweb reproduction of 'How LLMs Learn to Reason: A Complex Network Perspective'")
    ]
    if cfg.quick:
        blocks.append(
            para(
                "**Quick smoke run: its verdicts are provisional.** It checks that every part "
                f"of the suite works, at N={cfg.N} with {cfg.seeds} seeds and shorter runs; "
                "small sizes and few seeds can flip a verdict either way, and claims the quick "
                "sizes cannot test are marked *not tested at quick size*. The project's findings "
                "are the full suite's (`conceptweb reproduce --out repro`), summarised with "
                "their numbers in the README's Results section."
            )
        )
    blocks.append(
        para(
            f"{'Quick version' if cfg.quick else 'Full suite'}: N={cfg.N}; core presets "
            f"{', '.join(cfg.core_presets)} with {cfg.seeds} seeds each ({cfg.steps} steps, paper "
            f"preset {cfg.paper_steps}); SFT experiment: {cfg.sft_steps} SFT steps on "
            f"{cfg.sft_new} new problems then {cfg.recovery_steps} RLVR steps; phase diagram K "
            f"in {cfg.phase_K}, Q in {cfg.phase_Q}, {cfg.phase_seeds} seeds, {cfg.phase_steps} "
            f"steps. Sections run: {', '.join(cfg.sections)}. {INTERVALS}"
        )
    )
    return blocks


def _claims_blocks(claims: list[Claim]) -> list[Block]:
    rows = [[c.claim, c.criterion, claim_measured(c), f"**{c.verdict}**"] for c in claims]
    return [
        h2("The paper's claims"),
        para(
            f"A claim is *reproduced* when its per-seed criterion holds in at least "
            f"{REPRODUCED_FRAC:.0%} of seeds, *partly reproduced* from {PARTLY_FRAC:.0%}, "
            "otherwise *not reproduced*."
        ),
        table(["claim", "criterion (per seed)", "measured", "verdict"], rows),
    ]


def _per_preset_table(core: pd.DataFrame) -> Block:
    rows = []
    for label in CORE_PRESETS:
        g = core[core["label"] == label]
        if not len(g):
            continue
        reward = seed_interval(g["final_reward"].to_numpy(dtype=float), bounds=(0.0, 1.0))
        degree = pd.to_numeric(g.get("web.final_avg_degree"), errors="coerce").mean()
        events = pd.to_numeric(g.get("frustration.n_forgetting_events"), errors="coerce").mean()
        rows.append(
            [
                label,
                str(len(g)),
                fmt_iv(reward),
                f"{int(g['two_stage.is_two_stage'].fillna(False).astype(bool).sum())}/{len(g)}",
                f"{int(g['v_shape.is_v'].fillna(False).astype(bool).sum())}/{len(g)}",
                fmt(degree, ".2f"),
                fmt(events, ".1f"),
            ]
        )
    head = ["preset", "seeds", "final reward", "two-stage", "V", "final <k>", "forgetting events"]
    return table(head, rows)


def _core_blocks(suite: Suite, runs: pd.DataFrame, verdicts: dict[str, Any]) -> list[Block]:
    cfg, fig_dir = suite.cfg, suite.out / "figures"
    core = runs[runs["group"] == "core"]
    claims = evaluate_claims(runs, cfg.steps, verdicts, cfg)
    plot_learning_curves(core, fig_dir / "learning_curves.png")
    plot_lengths(core, fig_dir / "lengths.png")
    plot_web_over_training(core, fig_dir / "web_over_training.png")
    plot_frustration_steps(core, cfg.steps, fig_dir / "frustration_steps.png")
    blocks = _claims_blocks(claims)
    blocks += [
        h2("Learning curves and the V"),
        figure("figures/learning_curves.png", "Mean reward over seeds, 95% band."),
        figure("figures/lengths.png", "Length of correct rollouts over seeds, 95% band."),
        h2("The concept web"),
        figure("figures/web_over_training.png", "<k>, islands and giant fraction over training."),
        para(
            "Web snapshots (islands, the maximally frustrated state, the unified web) and the "
            "per-problem accuracy raster of one run: "
            "[runs/sparse/seed0/report.md](runs/sparse/seed0/report.md)."
        ),
        h2("The maximally frustrated state"),
        figure("figures/frustration_steps.png", "The three candidate steps per preset."),
        h2("Per preset"),
        _per_preset_table(core),
    ]
    sft = runs[runs["group"] == "sft"]
    if len(sft):
        plot_sft_forgetting(sft, cfg.sft_steps, fig_dir / "sft_forgetting.png")
        blocks += [
            h2("Forgetting under SFT"),
            figure("figures/sft_forgetting.png", "Accuracy through SFT and renewed RLVR."),
        ]
    return blocks


def _phase_blocks(suite: Suite, runs: pd.DataFrame) -> list[Block]:
    fig_dir = suite.out / "figures"
    ph = phase_table(runs)
    with atomic_path(suite.out / "phase_diagram.csv") as tmp:
        ph.to_csv(tmp, index=False)
    plot_phase_diagram(ph, fig_dir / "phase_diagram.png")
    plot_phase_curves(ph, fig_dir / "phase_curves.png")
    rows = [
        [
            str(int(r["K"])),
            str(int(r["Q"])),
            str(int(r["n_seeds"])),
            fmt_iv(_phase_iv(r)),
            fmt(r["frac_two_stage"], ".2f"),
            fmt(r["frac_v"], ".2f"),
            fmt(r["frac_plateau"], ".2f"),
            fmt(r["final_avg_degree"], ".2f"),
        ]
        for _, r in ph.iterrows()
    ]
    head = ["K", "Q", "seeds", "final reward", "two-stage", "V", "plateau", "final <k>"]
    return [
        h2("Phase diagram: sparsity K and load Q"),
        para(
            "Where two-stage learning, the V and the frustrated plateau (final reward < 0.85 "
            "with a late slope that would add < 0.05 over the run) appear. Table: "
            "`phase_diagram.csv`."
        ),
        figure("figures/phase_diagram.png", "Fractions of seeds per (K, Q)."),
        figure("figures/phase_curves.png", "Final reward against K, per Q."),
        table(head, rows),
    ]


def _phase_iv(r: pd.Series) -> Interval:
    n = int(r["n_seeds"])
    method = "bootstrap" if np.isfinite(r["final_reward_lo"]) else "too few seeds"
    return Interval(r["final_reward"], r["final_reward_lo"], r["final_reward_hi"], n, method)


ABLATION_TEXT = (
    "Paired ablation against plain RLVR: every arm runs the same seeds and the same number of "
    "update steps (heating steps included); `OPERATOR@auto` heats when the online detector "
    "fires, `@early/@mid/@late` at fixed fractions of the run; `rl_hard` spends the heating "
    "steps on the same hard problems with plain GRPO (the 'just extra training on hard items' "
    "control)."
)


def suite_blocks(suite: Suite) -> list[Block]:
    """Write the suite's figures and return the report's blocks."""
    runs = suite.read_runs()
    (suite.out / "figures").mkdir(exist_ok=True)
    blocks = _setting(suite)
    verdicts, ablation_blocks = _ablation_summary(suite)
    if len(runs) and (runs["group"] == "core").any():
        blocks += _core_blocks(suite, runs, verdicts)
    if len(runs) and (runs["group"] == "phase").any():
        blocks += _phase_blocks(suite, runs)
    if ablation_blocks:
        blocks += [h2("Annealed-RLVR"), para(ABLATION_TEXT), *ablation_blocks]
    if not len(runs):
        blocks.append(bullets(["no finished runs yet"]))
    return blocks


def write_suite_report(suite: Suite) -> Path:
    """report.md and report.html (figures inline) in the suite directory; returns report.md."""
    return write_report(suite_blocks(suite), suite.out)
