"""Figures and report of the reproduction suite: claims over seeds, phase diagram, annealing."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from conceptweb.analysis.stats import mean_ci  # noqa: E402
from conceptweb.experiments.reproduce import (  # noqa: E402
    CORE_PRESETS,
    PARTLY_FRAC,
    REPRODUCED_FRAC,
    Suite,
    evaluate_claims,
    phase_table,
)
from conceptweb.rundir import RunDir, atomic_path, atomic_write_text  # noqa: E402

COLORS = {
    "sparse": "tab:blue",
    "paper": "tab:orange",
    "frustrated": "tab:red",
    "pretrained": "tab:green",
}


def _save(fig: plt.Figure, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _curves(runs: pd.DataFrame, column: str, table: str = "metrics") -> dict[str, pd.DataFrame]:
    """{label: wide frame (step x seed)} of one metric (or topology) column over the core runs."""
    out: dict[str, pd.DataFrame] = {}
    for label, g in runs.groupby("label"):
        cols = {}
        for _, r in g.iterrows():
            run = RunDir(r["path"])
            df = run.read_table(table, required=False)
            if column in df:
                cols[int(r["seed"])] = df.set_index("step")[column]
        if cols:
            out[str(label)] = pd.DataFrame(cols).sort_index()
    return out


def _band(ax: plt.Axes, wide: pd.DataFrame, label: str, color: str | None, smooth: int = 1) -> None:
    if smooth > 1:
        wide = wide.rolling(smooth, min_periods=1).mean()
    st = np.array([mean_ci(row) for row in wide.to_numpy()])
    ax.plot(wide.index, st[:, 0], color=color, label=f"{label} (n={wide.shape[1]})", lw=1.5)
    if wide.shape[1] > 1:
        ax.fill_between(wide.index, st[:, 1], st[:, 2], color=color, alpha=0.2, lw=0)


def plot_learning_curves(core: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, wide in _curves(core, "reward_mean").items():
        _band(ax, wide, label, COLORS.get(label), smooth=10)
        knees = core[core["label"] == label]["two_stage.knee_step"].dropna().to_numpy(dtype=float)
        if label == "sparse" and knees.size:
            m, lo, hi = mean_ci(knees)
            ax.axvline(m, color=COLORS[label], ls="--", lw=1)
            if np.isfinite(lo):
                ax.axvspan(lo, hi, color=COLORS[label], alpha=0.08)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward (rolling 10)")
    ax.set_title("Learning curves, mean and 95% band over seeds; dashed: sparse knee")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_lengths(core: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for label, wide in _curves(core, "len_correct_mean").items():
        _band(ax, wide, label, COLORS.get(label), smooth=20)
        mins = core[core["label"] == label]["v_shape.min_step"].dropna().to_numpy(dtype=float)
        if mins.size:
            ax.axvline(float(np.mean(mins)), color=COLORS.get(label), ls=":", lw=1)
    ax.set_xlabel("step")
    ax.set_ylabel("mean length of correct rollouts (rolling 20)")
    ax.set_yscale("log")
    ax.set_title("Length of correct rollouts; dotted: mean step of the smoothed minimum")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_web_over_training(core: pd.DataFrame, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for ax, column, ylabel in zip(
        axes,
        ("avg_degree", "n_components", "giant_fraction"),
        ("average degree <k>", "components (islands)", "giant component fraction"),
        strict=True,
    ):
        for label, wide in _curves(core, column, table="topology").items():
            _band(ax, wide, label, COLORS.get(label))
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if column == "avg_degree":
            ax.axhline(2.0, color="k", lw=0.6, ls=":")
    axes[0].legend(fontsize=8)
    fig.suptitle("The concept web (edges with pi >= 0.5) over training, 95% bands over seeds")
    return _save(fig, path)


def plot_frustration_steps(core: pd.DataFrame, path: Path) -> Path:
    keys = (
        ("frustration_candidates.forgetting_peak_step", "forgetting peak"),
        ("frustration_candidates.v_bottom_step", "V bottom"),
        ("frustration_candidates.knee_step", "learning-curve knee"),
    )
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    labels = [p for p in CORE_PRESETS if p in set(core["label"])]
    for j, (key, name) in enumerate(keys):
        for i, label in enumerate(labels):
            vals = pd.to_numeric(core[core["label"] == label].get(key), errors="coerce").to_numpy(
                dtype=float
            )
            m, lo, hi = mean_ci(vals)
            y = i + (j - 1) * 0.22
            if np.isfinite(m):
                err = [[m - lo], [hi - m]] if np.isfinite(lo) else None
                ax.errorbar(
                    m,
                    y,
                    xerr=err,
                    fmt="os^"[j],
                    color=f"C{j}",
                    label=name if i == 0 else None,
                    capsize=3,
                )
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("step")
    ax.set_title("Three candidates for the maximally frustrated state (mean, 95% CI)")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_sft_forgetting(sft: pd.DataFrame, sft_steps: int, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for split, color in (("train", "tab:blue"), ("new", "tab:purple")):
        cols = {}
        for _, r in sft.iterrows():
            p = RunDir(r["path"]).read_table("problems", required=False)
            if len(p):
                p = p[p["split"] == split]
                cols[int(r["seed"])] = p.groupby("step")["accuracy"].mean()
        if cols:
            name = "original problems" if split == "train" else "new problems (SFT targets)"
            _band(ax, pd.DataFrame(cols).sort_index(), name, color, smooth=3)
    ax.axvline(sft_steps + 0.5, color="k", lw=0.8, ls="--")
    ax.text(sft_steps, ax.get_ylim()[0], " SFT | RLVR", va="bottom")
    ax.set_xlabel("step of the SFT experiment")
    ax.set_ylabel("mean accuracy (rolling 3)")
    ax.set_title("SFT on new problems after RLVR: forgetting, then recovery under RLVR")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_phase_diagram(table: pd.DataFrame, path: Path) -> Path:
    panels = (
        ("final_reward", "final reward", "viridis", (0, 1)),
        ("frac_two_stage", "fraction two-stage", "Blues", (0, 1)),
        ("frac_v", "fraction V-shaped", "Oranges", (0, 1)),
        ("frac_plateau", "fraction on a frustrated plateau", "Reds", (0, 1)),
    )
    Ks = sorted(table["K"].unique())
    Qs = sorted(table["Q"].unique())
    fig, axes = plt.subplots(1, len(panels), figsize=(5.0 * len(panels), 3.8), layout="constrained")
    for ax, (col, title, cmap, (vmin, vmax)) in zip(axes, panels, strict=True):
        grid = table.pivot(index="Q", columns="K", values=col).reindex(index=Qs, columns=Ks)
        im = ax.imshow(
            grid.to_numpy(dtype=float),
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            origin="lower",
            aspect="auto",
        )
        for (qi, ki), val in np.ndenumerate(grid.to_numpy(dtype=float)):
            if np.isfinite(val):
                ax.text(
                    ki,
                    qi,
                    f"{val:.2f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if (val - vmin) / (vmax - vmin) > 0.6 else "black",
                )
        ax.set_xticks(range(len(Ks)), Ks)
        ax.set_yticks(range(len(Qs)), Qs)
        ax.set_xlabel("K (neighbours per node)")
        if ax is axes[0]:
            ax.set_ylabel("Q (training problems)")
        ax.set_title(title, fontsize=9)
        fig.colorbar(im, ax=ax, shrink=0.9)
    fig.suptitle("Phase diagram over graph sparsity K and load Q (fractions over seeds)")
    return _save(fig, path)


def plot_phase_curves(table: pd.DataFrame, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for i, (Q, g) in enumerate(table.groupby("Q")):
        g = g.sort_values("K")
        ax.plot(g["K"], g["final_reward"], "o-", color=f"C{i}", label=f"Q={Q}")
        ax.fill_between(
            g["K"], g["final_reward_lo"], g["final_reward_hi"], color=f"C{i}", alpha=0.2, lw=0
        )
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(table["K"].unique()), [str(k) for k in sorted(table["K"].unique())])
    ax.set_xlabel("K (neighbours per node)")
    ax.set_ylabel("final reward (last 10% of steps)")
    ax.set_title("Final reward vs sparsity, mean and 95% band over seeds")
    ax.legend()
    return _save(fig, path)


def _fmt(x: Any, spec: str = ".3f") -> str:
    try:
        xf = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "n/a" if math.isnan(xf) else format(xf, spec)


def _ablation_summary(suite: Suite) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Per preset: the sft@auto verdict for the claims table, and report lines for every arm."""
    verdicts: dict[str, dict[str, Any]] = {}
    lines: list[str] = []
    if "ablation" not in suite.cfg.sections:
        return verdicts, lines
    from conceptweb.interfaces.ablation_report import write_ablation_report

    for preset in suite.cfg.ablation_presets:
        abl = suite.ablation(preset)
        if abl.pending():
            lines.append(f"- {preset}: ablation incomplete ({len(abl.pending())} runs missing)")
            continue
        write_ablation_report(abl, title=f"Annealed-RLVR ablation on `{preset}`")
        comp = abl.comparisons()
        fa = (
            comp[(comp["metric"] == "final_acc") & comp["verdict"].notna()]
            if "verdict" in comp
            else comp.iloc[:0]
        )
        res = abl.read_results()
        lines.append(
            f"### `{preset}` ({abl.cfg.seeds} paired seeds, [full report](ablation/{preset}/report.md))"
        )
        lines.append("")
        lines.append(
            "| arm | heated runs | final accuracy vs plain [95% CI] | p (paired t) | p (Holm) | verdict |"
        )
        lines.append("|---|---|---|---|---|---|")
        for _, r in fa.iterrows():
            heated = int((res[res["arm"] == r["arm"]]["heat_step"] >= 0).sum())
            lines.append(
                f"| {r['arm']} | {heated}/{abl.cfg.seeds} | {_fmt(r['diff_mean_diff'], '+.4f')} "
                f"[{_fmt(r['diff_ci_low'], '+.4f')}, {_fmt(r['diff_ci_high'], '+.4f')}] | "
                f"{_fmt(r['diff_p_t'], '.3g')} | {_fmt(r['diff_p_holm'], '.3g')} | {r['verdict']} |"
            )
            if r["arm"] == "sft@auto":
                verdicts[preset] = {
                    "verdict": r["verdict"],
                    "n": int(r["n_pairs"]),
                    "measured": f"final accuracy {_fmt(r['diff_mean_diff'], '+.4f')} "
                    f"[{_fmt(r['diff_ci_low'], '+.4f')}, {_fmt(r['diff_ci_high'], '+.4f')}] vs plain over "
                    f"{int(r['n_pairs'])} paired seeds (p={_fmt(r['diff_p_t'], '.3g')}, Holm-corrected "
                    f"{_fmt(r['diff_p_holm'], '.3g')}); heated in "
                    f"{heated}/{abl.cfg.seeds} runs",
                }
        lines.append("")
        lines.append(f"![paired differences](ablation/{preset}/figures/paired_differences.png)")
        lines.append("")
    return verdicts, lines


def suite_markdown(suite: Suite) -> str:
    """Write the suite's figures and return the text of report.md."""
    cfg = suite.cfg
    runs = suite.read_runs()
    fig_dir = suite.out / "figures"
    fig_dir.mkdir(exist_ok=True)
    lines = [
        "# conceptweb reproduction of 'How LLMs Learn to Reason: A Complex Network Perspective'",
        "",
    ]
    lines.append(
        f"{'Quick version' if cfg.quick else 'Full suite'}: N={cfg.N}; core presets "
        f"{', '.join(CORE_PRESETS)} with {cfg.seeds} seeds each ({cfg.steps} steps, paper preset "
        f"{cfg.paper_steps}); SFT experiment: {cfg.sft_steps} SFT steps on {cfg.sft_new} new problems "
        f"then {cfg.recovery_steps} RLVR steps; phase diagram K in {cfg.phase_K}, Q in {cfg.phase_Q}, "
        f"{cfg.phase_seeds} seeds, {cfg.phase_steps} steps. Intervals are 95% Student-t intervals over seeds."
    )
    lines.append("")
    ablation_verdicts, ablation_lines = _ablation_summary(suite)
    core = runs[runs["group"] == "core"] if len(runs) else runs
    if len(core):
        claims = evaluate_claims(runs, cfg.steps, ablation_verdicts)
        lines += ["## The paper's claims", ""]
        lines.append(
            f"A claim is *reproduced* when its per-seed criterion holds in at least {REPRODUCED_FRAC:.0%} of "
            f"seeds, *partly reproduced* from {PARTLY_FRAC:.0%}, otherwise *not reproduced*."
        )
        lines.append("")
        lines.append("| claim | criterion (per seed) | measured | verdict |")
        lines.append("|---|---|---|---|")
        for c in claims:
            lines.append(f"| {c.claim} | {c.criterion} | {c.measured} | **{c.verdict}** |")
        lines.append("")
        figs = {
            "learning_curves.png": plot_learning_curves(core, fig_dir / "learning_curves.png"),
            "lengths.png": plot_lengths(core, fig_dir / "lengths.png"),
            "web_over_training.png": plot_web_over_training(
                core, fig_dir / "web_over_training.png"
            ),
            "frustration_steps.png": plot_frustration_steps(
                core, fig_dir / "frustration_steps.png"
            ),
        }
        lines += [
            "## Learning curves and the V",
            "",
            "![learning curves](figures/learning_curves.png)",
            "",
            "![lengths](figures/lengths.png)",
            "",
            "## The concept web",
            "",
            "![web over training](figures/web_over_training.png)",
            "",
            "Web snapshots (islands, the maximally frustrated state, the unified web) and the per-problem "
            "accuracy raster of one run: [runs/sparse/seed0/report.md](runs/sparse/seed0/report.md).",
            "",
            "## The maximally frustrated state",
            "",
            "![frustration steps](figures/frustration_steps.png)",
            "",
        ]
        per_preset = [
            "| preset | seeds | final reward | two-stage | V | final <k> | forgetting events |",
            "|---|---|---|---|---|---|---|",
        ]
        for label in CORE_PRESETS:
            g = core[core["label"] == label]
            if not len(g):
                continue
            m, lo, hi = mean_ci(g["final_reward"].to_numpy(dtype=float))
            per_preset.append(
                f"| {label} | {len(g)} | {_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}] | "
                f"{int(g['two_stage.is_two_stage'].fillna(False).astype(bool).sum())}/{len(g)} | "
                f"{int(g['v_shape.is_v'].fillna(False).astype(bool).sum())}/{len(g)} | "
                f"{_fmt(pd.to_numeric(g.get('web.final_avg_degree'), errors='coerce').mean(), '.2f')} | "
                f"{_fmt(pd.to_numeric(g.get('frustration.n_forgetting_events'), errors='coerce').mean(), '.1f')} |"
            )
        lines += ["## Per preset", "", *per_preset, ""]
        sft = runs[runs["group"] == "sft"]
        if len(sft):
            figs["sft_forgetting.png"] = plot_sft_forgetting(
                sft, cfg.sft_steps, fig_dir / "sft_forgetting.png"
            )
            lines += [
                "## Forgetting under SFT",
                "",
                "![sft forgetting](figures/sft_forgetting.png)",
                "",
            ]
    phase = runs[runs["group"] == "phase"] if len(runs) else runs
    if len(phase):
        table = phase_table(runs)
        with atomic_path(suite.out / "phase_diagram.csv") as tmp:
            table.to_csv(tmp, index=False)
        plot_phase_diagram(table, fig_dir / "phase_diagram.png")
        plot_phase_curves(table, fig_dir / "phase_curves.png")
        lines += [
            "## Phase diagram: sparsity K and load Q",
            "",
            "Where two-stage learning, the V and the frustrated plateau (final reward < 0.85 with a late "
            "slope that would add < 0.05 over the run) appear. Table: `phase_diagram.csv`.",
            "",
            "![phase diagram](figures/phase_diagram.png)",
            "",
            "![phase curves](figures/phase_curves.png)",
            "",
            "| K | Q | seeds | final reward [95% CI] | two-stage | V | plateau | final <k> |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for _, r in table.iterrows():
            lines.append(
                f"| {int(r['K'])} | {int(r['Q'])} | {int(r['n_seeds'])} | {_fmt(r['final_reward'])} "
                f"[{_fmt(r['final_reward_lo'])}, {_fmt(r['final_reward_hi'])}] | {_fmt(r['frac_two_stage'], '.2f')} "
                f"| {_fmt(r['frac_v'], '.2f')} | {_fmt(r['frac_plateau'], '.2f')} "
                f"| {_fmt(r['final_avg_degree'], '.2f')} |"
            )
        lines.append("")
    if ablation_lines:
        lines += [
            "## Annealed-RLVR",
            "",
            "Paired ablation against plain RLVR: every arm runs the same seeds and the same number of "
            "update steps (heating steps included); `OPERATOR@auto` heats when the online detector fires, "
            "`@early/@mid/@late` at fixed fractions of the run; `rl_hard` spends the heating steps on the "
            "same hard problems with plain GRPO (the 'just extra training on hard items' control).",
            "",
            *ablation_lines,
        ]
    return "\n".join(lines) + "\n"


def markdown_to_html(text: str, base: Path, title: str) -> str:
    """A small converter for the reports this package writes: headings, lists, tables, images, links."""

    def inline(s: str) -> str:
        s = html.escape(s, quote=False)
        s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
        s = re.sub(r"\*(.+?)\*", r"<i>\1</i>", s)
        s = re.sub(r"`(.+?)`", r"<code>\1</code>", s)
        return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', s)

    out = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
        "table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}</style></head><body>",
    ]
    in_list = False
    table: list[list[str]] = []

    def flush_table() -> None:
        if not table:
            return
        out.append("<table>")
        for i, row in enumerate(table):
            tag = "th" if i == 0 else "td"
            out.append("<tr>" + "".join(f"<{tag}>{inline(c)}</{tag}>" for c in row) + "</tr>")
        out.append("</table>")
        table.clear()

    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= {"-", ":"} for c in cells):
                table.append(cells)
            continue
        flush_table()
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        m = re.match(r"!\[([^\]]*)\]\(([^)]+)\)", line)
        if m:
            src = base / m.group(2)
            if src.is_file():
                data = base64.b64encode(src.read_bytes()).decode()
                out.append(
                    f"<p><img alt='{html.escape(m.group(1))}' src='data:image/png;base64,{data}'></p>"
                )
            continue
        h = re.match(r"(#+) (.*)", line)
        if h:
            n = len(h.group(1))
            out.append(f"<h{n}>{inline(h.group(2))}</h{n}>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{inline(line)}</p>")
    flush_table()
    if in_list:
        out.append("</ul>")
    out.append("</body></html>")
    return "\n".join(out)


def write_suite_report(suite: Suite) -> Path:
    """report.md and report.html (figures inline) in the suite directory; returns report.md."""
    text = suite_markdown(suite)
    path = suite.out / "report.md"
    atomic_write_text(path, text)
    atomic_write_text(
        suite.out / "report.html", markdown_to_html(text, suite.out, "conceptweb reproduction")
    )
    return path
