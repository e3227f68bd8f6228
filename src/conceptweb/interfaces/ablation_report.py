"""Figures and report of an Annealed-RLVR ablation: curves with bands, heating moments, paired differences."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.experiments.ablation import METRICS, Ablation
from conceptweb.interfaces.blocks import Block, bullets, figure, h1, h2, para, table, write_report
from conceptweb.interfaces.numbers import fmt
from conceptweb.interfaces.plotting import new_figure, plot_band, save_figure
from conceptweb.rundir import RunDir, atomic_path

SMOOTH = 10
METRIC_LABELS = {
    "final_acc": "final train accuracy (mean@G_eval)",
    "final_best_at_k": "final train best@k",
    "heldout_acc": "held-out accuracy",
    "n_solved": "solved problems",
    "auc_reward": "area under the learning curve",
    "final_avg_degree": "final web <k>",
    "final_n_components": "final web components",
}


def load_curves(
    abl: Ablation, columns: tuple[str, ...] = ("reward_mean", "n_distinct_correct_mean")
) -> pd.DataFrame:
    """Per-step metrics of every finished run of the ablation, with arm and seed columns."""
    frames = []
    res = abl.read_results()
    for arm, seed in zip(res.get("arm", []), res.get("seed", []), strict=True):
        m = RunDir.open(abl.run_path(arm, seed)).read_metrics()
        keep = ["step", "phase", *[c for c in columns if c in m.columns]]
        frames.append(m[keep].assign(arm=arm, seed=seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def plot_learning_curves(abl: Ablation, curves: pd.DataFrame, path: Path) -> Path:
    """Reward of every arm (mean over seeds, 95% band), with the median heating step marked."""
    res = abl.read_results()
    fig = new_figure(13, 4.5)
    axes = fig.subplots(1, 2)
    for ax, zoom in zip(axes, (False, True), strict=True):
        for arm in abl.cfg.arms:
            sub = curves[curves["arm"] == arm]
            if len(sub):
                wide = sub.pivot(index="step", columns="seed", values="reward_mean").sort_index()
                plot_band(ax, wide, arm, smooth=SMOOTH, bounds=(0.0, 1.0))
            heat = res[(res["arm"] == arm) & (res["heat_step"] >= 0)]["heat_step"]
            if len(heat) and not zoom:
                ax.axvline(float(np.median(heat)), color=ax.lines[-1].get_color(), ls=":", lw=1)
        ax.set_xlabel("step")
        ax.set_ylabel(f"mean reward (rolling {SMOOTH})")
        if zoom:
            top = curves["step"].max()
            ax.set_xlim(top * 0.5, top)
            late = (
                curves[curves["step"] >= top * 0.5].groupby(["arm", "step"])["reward_mean"].mean()
            )
            if len(late):
                lo, hi = float(late.min()), float(late.max())
                pad = 0.1 * (hi - lo) + 1e-3
                ax.set_ylim(lo - pad, hi + pad)
            ax.set_title("second half (zoom)")
        else:
            ax.set_title("learning curves; dotted: median heating step")
    axes[0].legend(fontsize=7, ncol=2)
    return save_figure(fig, path)


def plot_diversity_around_heating(
    abl: Ablation, curves: pd.DataFrame, path: Path, before: int = 40, after: int = 100
) -> Path:
    """Distinct correct paths per problem around each run's heating step, minus plain's at the same steps."""
    res = abl.read_results()
    fig = new_figure(7, 4.5)
    ax = fig.add_subplot()
    plain = curves[curves["arm"] == "plain"]
    for arm in abl.cfg.arms:
        if arm == "plain":
            continue
        traces = []
        for _, r in res[(res["arm"] == arm) & (res["heat_step"] >= 0)].iterrows():
            run = curves[(curves["arm"] == arm) & (curves["seed"] == r["seed"])].set_index("step")
            ref = plain[plain["seed"] == r["seed"]].set_index("step")
            rel = np.arange(-before, after + 1)
            steps = r["heat_step"] + rel
            mine = run["n_distinct_correct_mean"].reindex(steps).to_numpy()
            base = (
                ref["n_distinct_correct_mean"].reindex(steps).to_numpy()
                if len(ref)
                else np.zeros(rel.size)
            )
            traces.append(mine - base)
        if traces:
            arr = np.array(traces)
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter(
                    "ignore", RuntimeWarning
                )  # steps past the end of a run are NaN
                mean = np.nanmean(arr, axis=0)
            ax.plot(
                np.arange(-before, after + 1),
                pd.Series(mean).rolling(5, min_periods=1).mean(),
                label=arm,
            )
    ax.axvline(0, color="k", lw=0.8)
    ax.axhline(0, color="gray", lw=0.6)
    ax.set_xlabel("steps since heating started")
    ax.set_ylabel("distinct correct paths per problem\n(arm minus plain, same seed)")
    ax.set_title("diversity around the heating")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no run heated", transform=ax.transAxes, ha="center")
    return save_figure(fig, path)


def plot_paired_differences(
    comparisons: pd.DataFrame,
    path: Path,
    metrics: tuple[str, ...] = ("final_acc", "heldout_acc", "auc_reward"),
) -> Path:
    """Bar chart: mean paired difference to plain with 95% CI, one panel per metric."""
    fig = new_figure(4.3 * len(metrics) + 1.5, 4.2, constrained=True)
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)
    for ax, metric in zip(axes[0], metrics, strict=True):
        sub = comparisons[(comparisons["metric"] == metric) & comparisons["diff_mean_diff"].notna()]
        y = np.arange(len(sub))
        d = sub["diff_mean_diff"].to_numpy()
        err = np.vstack([d - sub["diff_ci_low"].to_numpy(), sub["diff_ci_high"].to_numpy() - d])
        colors = [
            "tab:green" if v == "helped" else "tab:red" if v == "hurt" else "tab:gray"
            for v in sub["verdict"]
        ]
        ax.barh(y, d, xerr=np.nan_to_num(err), color=colors, alpha=0.8, capsize=3)
        ax.set_yticks(y, sub["arm"])
        ax.tick_params(axis="x", labelsize=8)
        ax.axvline(0, color="k", lw=0.8)
        ax.set_title(METRIC_LABELS.get(metric, metric), fontsize=9)
        ax.set_xlabel("arm - plain (paired, 95% CI)")
    fig.suptitle(
        "green: helped, red: hurt, gray: no significant difference (paired t-test, 5%)", fontsize=9
    )
    return save_figure(fig, path)


def ablation_blocks(
    abl: Ablation, comparisons: pd.DataFrame, title: str | None = None
) -> list[Block]:
    """The report: setting, one plain sentence per arm, a table per metric, the figures."""
    cfg = abl.cfg
    base = cfg.base_config()
    res = abl.read_results()
    blocks = [h1(title or "Annealed-RLVR ablation")]
    blocks.append(
        para(
            f"Preset `{cfg.preset}` (N={base.model.N}, K={base.model.K}, Q={base.problems.Q}, "
            f"G={base.grpo.G}, L={base.model.L}, {base.steps} steps), {cfg.seeds} paired seeds "
            f"per arm, heating for {cfg.heat_steps} steps on problems under accuracy "
            f"{cfg.threshold}. Every arm spends the same number of update steps. Differences are "
            "arm minus plain on the same seed, with 95% t-intervals; p_t is the paired t-test, "
            "p_w the Wilcoxon signed-rank test, p_holm the t-test's p-value after Holm's "
            "correction over the arms compared with plain. Verdicts use p_holm < 0.05."
        )
    )
    heat = res[res["heat_step"] >= 0].groupby("arm")["heat_step"]
    fa = comparisons[(comparisons["metric"] == "final_acc") & comparisons["diff_mean_diff"].notna()]
    items = []
    for _, r in fa.iterrows():
        if r["arm"] in heat.groups:
            hs = heat.get_group(r["arm"])
            when = (
                f", heated at step {int(np.median(hs))} (median; {len(hs)}/{cfg.seeds} runs heated)"
            )
        else:
            when = ", never heated"
        items.append(
            f"**{r['arm']}**{when}: {r['verdict']} — final accuracy {_diff(r)} vs plain "
            f"(p_t={fmt(r['diff_p_t'])}, p_holm={fmt(r['diff_p_holm'])}, "
            f"p_w={fmt(r['diff_p_wilcoxon'])})."
        )
    blocks += [h2("Verdicts on final train accuracy"), bullets(items)]
    for metric in METRICS:
        blocks += [
            h2(f"{METRIC_LABELS.get(metric, metric)} (`{metric}`)"),
            _metric_table(comparisons, metric),
        ]
    blocks.append(h2("Figures"))
    for name, caption in FIGURES.items():
        blocks.append(figure(f"figures/{name}.png", caption))
    return blocks


FIGURES = {
    "learning_curves": "Reward of every arm, mean over seeds with a 95% band; dotted: median heating step.",
    "paired_differences": "Paired differences to plain, 95% intervals; green helped, red hurt.",
    "diversity_around_heating": "Distinct correct paths per problem around the heating, arm minus plain.",
}


def _diff(r: Any) -> str:
    return (
        f"{fmt(r['diff_mean_diff'], '+.4f')} [{fmt(r['diff_ci_low'], '+.4f')}, "
        f"{fmt(r['diff_ci_high'], '+.4f')}]"
    )


def _metric_table(comparisons: pd.DataFrame, metric: str) -> Block:
    rows = []
    for _, r in comparisons[comparisons["metric"] == metric].iterrows():
        mean = f"{fmt(r['mean'], '.4f')} [{fmt(r['ci_low'], '.4f')}, {fmt(r['ci_high'], '.4f')}]"
        if isinstance(r.get("verdict"), str):
            p = [fmt(r["diff_p_t"]), fmt(r["diff_p_holm"]), fmt(r["diff_p_wilcoxon"])]
            rows.append([r["arm"], mean, _diff(r), *p, r["verdict"]])
        else:
            rows.append([r["arm"], mean, "(reference)", "", "", "", ""])
    head = ["arm", "mean [95% CI]", "diff vs plain [95% CI]", "p_t", "p_holm", "p_w", "verdict"]
    return table(head, rows)


def ablation_pass_at_k_blocks(abl: Ablation, fig_dir: Path) -> list[Block]:
    """pass@k across k per arm: comparisons_pass_at_k.csv, figures/pass_at_k.png, a report part."""
    from conceptweb.experiments.passk_arms import compare_pass_at_k
    from conceptweb.interfaces.figures_v3 import plot_pass_at_k

    tab = compare_pass_at_k(abl.read_results(), "plain", abl.cfg.arms)
    if tab.empty:
        return []
    with atomic_path(abl.out / "comparisons_pass_at_k.csv") as tmp:
        tab.to_csv(tmp, index=False)
    curves = {
        arm: grp.rename(columns={"mean": "pass_at_k", "ci_low": "lo", "ci_high": "hi"})
        for arm, grp in tab.groupby("arm", sort=False)
    }
    plot_pass_at_k(curves, fig_dir / "pass_at_k.png", "pass@k per arm (mean and 95% CI over seeds)")
    rows = []
    for _, r in tab.iterrows():
        mean = f"{fmt(r['mean'], '.4f')} [{fmt(r['ci_low'], '.4f')}, {fmt(r['ci_high'], '.4f')}]"
        has_diff = "diff_mean_diff" in r and pd.notna(r.get("diff_mean_diff"))
        diff = _diff(r) if has_diff else "(reference)"
        rows.append([r["arm"], str(r["k"]), mean, diff, fmt(r["diff_p_holm"]) if has_diff else ""])
    return [
        h2("pass@k across k (train problems, final evaluation)"),
        para(
            "Mean pass@k over seeds [95% CI]; for other arms the paired difference to plain [95% "
            "CI] and the t-test's p-value after Holm's correction over the arms at each k."
        ),
        table(["arm", "k", "pass@k [95% CI]", "diff vs plain [95% CI]", "p_holm"], rows),
        figure("figures/pass_at_k.png", "pass@k per arm over k, mean and 95% CI over seeds."),
    ]


def write_ablation_report(abl: Ablation, title: str | None = None) -> Path:
    """comparisons.csv, figures/*.png, report.md and report.html in the ablation directory."""
    comparisons = abl.comparisons()
    fig_dir = abl.out / "figures"
    with atomic_path(abl.out / "comparisons.csv") as tmp:
        comparisons.to_csv(tmp, index=False)
    curves = load_curves(abl)
    plot_learning_curves(abl, curves, fig_dir / "learning_curves.png")
    plot_diversity_around_heating(abl, curves, fig_dir / "diversity_around_heating.png")
    plot_paired_differences(comparisons, fig_dir / "paired_differences.png")
    blocks = ablation_blocks(abl, comparisons, title) + ablation_pass_at_k_blocks(abl, fig_dir)
    return write_report(blocks, abl.out)
