"""The map's report: cells.csv, a heat map of phenomena per cell, and report.md with the table."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.experiments.explore import (
    MEASURES,
    PHENOMENA,
    Explore,
    axis_margins,
    cell_table,
    paired_to_first,
)
from conceptweb.interfaces.blocks import Block, bullets, figure, h1, h2, para, table, write_report
from conceptweb.interfaces.plotting import new_figure, save_figure
from conceptweb.rundir import atomic_path


def plot_phenomena_map(table: pd.DataFrame, out: Path) -> Path:
    """Rows: cells; columns: phenomena; colour: fraction of seeds showing it; text: k/n."""
    names = list(PHENOMENA)
    frac = np.array(
        [
            [r[f"{p}_k"] / r[f"{p}_n"] if r[f"{p}_n"] else np.nan for p in names]
            for _, r in table.iterrows()
        ]
    )
    fig = new_figure(1.2 * len(names) + 3.5, 0.38 * len(table) + 1.6)
    ax = fig.subplots()
    ax.imshow(np.ma.masked_invalid(frac), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i, (_, r) in enumerate(table.iterrows()):
        for j, p in enumerate(names):
            k, n = r[f"{p}_k"], r[f"{p}_n"]
            txt = f"{k}/{n}" if n else "n/a"
            ax.text(
                j,
                i,
                txt,
                ha="center",
                va="center",
                fontsize=7,
                color="k" if frac[i, j] < 0.6 or math.isnan(frac[i, j]) else "w",
            )
    ax.set_xticks(
        range(len(names)), [p.replace("_", " ") for p in names], rotation=30, ha="right", fontsize=8
    )
    ax.set_yticks(range(len(table)), table["cell"].tolist(), fontsize=7)
    ax.set_title("Which phenomena appear where (seeds showing it / seeds measured)", fontsize=9)
    return save_figure(fig, out)


def _ci(r: Any, m: str, spec: str = ".3f") -> str:
    v, lo, hi = r[m], r[f"{m}_lo"], r[f"{m}_hi"]
    if not np.isfinite(v):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return format(v, spec)
    return f"{v:{spec}} [{lo:{spec}}, {hi:{spec}}]"


def _counts_cells(r: Any) -> list[str]:
    return [
        f"{r[f'{p}_k']}/{r[f'{p}_n']} [{r[f'{p}_lo']:.2f}, {r[f'{p}_hi']:.2f}]"
        if r[f"{p}_n"]
        else "n/a"
        for p in PHENOMENA
    ]


def margin_blocks(margins: pd.DataFrame, paired: pd.DataFrame) -> list[Block]:
    """Per axis value pooled over the rest, and paired differences to each axis's first value."""
    if margins.empty:
        return []
    rows = [
        [str(r["axis"]), str(r["value"]), str(r["runs"]), *_counts_cells(r)]
        for _, r in margins.iterrows()
    ]
    out = [
        h2("Per axis value, pooled over the other axes"),
        table(["axis", "value", "runs", *PHENOMENA], rows),
        figure("figures/margins.png", "Phenomena per axis value, pooled over the other axes."),
    ]
    if not paired.empty:
        prow = [
            [
                f"{r['axis']}: {r['value']} - {r['reference']}",
                str(r["measure"]),
                str(r["n"]),
                f"{r['mean_diff']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]",
                f"{r['p_t']:.3g}",
                f"{r['p_holm']:.3g}",
            ]
            for _, r in paired.iterrows()
        ]
        out += [
            h2("Paired differences to each axis's first value"),
            para(
                "Runs are paired by seed and every other axis value (one factor changed); mean "
                "difference with a 95% t-interval, paired t-test, p Holm-corrected over the "
                "axis's other values (docs/analysis.md)."
            ),
            table(["comparison", "measure", "pairs", "mean difference", "p", "Holm p"], prow),
        ]
    return out


def explore_blocks(
    ex: Explore,
    table_: pd.DataFrame,
    margins: pd.DataFrame | None = None,
    paired: pd.DataFrame | None = None,
) -> list[Block]:
    """The report: setting, the criteria, one table row per cell, what appeared nowhere, the map."""
    cfg = ex.cfg
    setting = (
        f"Base: preset `{cfg.preset}`"
        + (f" with {', '.join(cfg.sets)}" if cfg.sets else "")
        + f"; axes: {'; '.join(cfg.axes) or 'none'}; {cfg.seeds} seeds per cell (seeds "
        f"{cfg.first_seed}..{cfg.first_seed + cfg.seeds - 1}). A phenomenon is counted k/n (seeds "
        "where its per-run criterion holds / seeds where it could be measured) with a Wilson 95% "
        "interval; measures are means with 95% t-intervals."
    )
    head = ["cell", "seeds", *PHENOMENA, "final reward", "correct length", "forgetting / problem"]
    rows = []
    for _, r in table_.iterrows():
        ph = _counts_cells(r)
        rows.append(
            [
                str(r["cell"]),
                str(r["n_seeds"]),
                *ph,
                _ci(r, "final_reward"),
                _ci(r, "final_len_correct", ".1f"),
                _ci(r, "forgetting_per_problem", ".2f"),
            ]
        )
    nowhere = [p for p in PHENOMENA if table_[f"{p}_k"].sum() == 0]
    everywhere = [
        p
        for p in PHENOMENA
        if table_[f"{p}_n"].sum() and (table_[f"{p}_k"] == table_[f"{p}_n"]).all()
    ]
    return [
        h1("The map: which RLVR phenomena appear where"),
        para(setting),
        h2("Per-run criteria"),
        bullets([f"`{p}`: {text}" for p, text in PHENOMENA.items()]),
        h2("Cells"),
        table(head, rows),
        para(
            f"Appeared in no run: {', '.join(nowhere) or 'none'}. Appeared in every measured run: "
            f"{', '.join(everywhere) or 'none'}."
        ),
        figure("figures/map.png", "Phenomena per cell: seeds showing it / seeds measured."),
        *margin_blocks(
            pd.DataFrame() if margins is None else margins,
            pd.DataFrame() if paired is None else paired,
        ),
    ]


def write_explore_report(ex: Explore) -> Path:
    """cells.csv, margins.csv, paired.csv, figures/map.png and margins.png, report.md and
    report.html in the map directory."""
    results = ex.read_results()
    table_ = cell_table(results, ex.cfg.cells())
    with atomic_path(ex.out / "cells.csv") as tmp:
        table_.to_csv(tmp, index=False)
    margins = axis_margins(results, ex.cfg.axes) if len(results) else pd.DataFrame()
    paired = paired_to_first(results, ex.cfg.axes) if len(results) else pd.DataFrame()
    for name, frame in (("margins.csv", margins), ("paired.csv", paired)):
        with atomic_path(ex.out / name) as tmp:
            frame.to_csv(tmp, index=False)
    plot_phenomena_map(table_, ex.out / "figures" / "map.png")
    if not margins.empty:
        labelled = margins.assign(cell=margins["axis"] + "=" + margins["value"])
        plot_phenomena_map(labelled, ex.out / "figures" / "margins.png")
    return write_report(explore_blocks(ex, table_, margins, paired), ex.out)


__all__ = [
    "MEASURES",
    "explore_blocks",
    "margin_blocks",
    "plot_phenomena_map",
    "write_explore_report",
]
