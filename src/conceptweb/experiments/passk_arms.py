"""pass@k across k for ablation arms: per-run columns, paired comparisons per k, and the report part.

A run's final evaluation holds n = `eval.final_G` (or `eval.G`) samples per problem; the
ablation stores mean train pass@k for k = 1, 2, 4, ... up to n as columns `pass_at_<k>` of
results.parquet. Each k is compared with the reference arm over paired seeds, with Holm's
correction over the arms at that k, as the ablation does for its other measures.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from conceptweb.analysis.passk import default_ks, pass_at_k_array
from conceptweb.analysis.stats import holm, mean_ci, paired_comparison
from conceptweb.rundir import RunDir

__all__ = [
    "pass_at_k_metrics",
    "pass_at_k_of_run",
    "pass_at_k_columns",
    "compare_pass_at_k",
    "pass_at_k_markdown",
]

_COL = re.compile(r"^pass_at_(\d+)$")


def pass_at_k_metrics(train_eval: pd.DataFrame) -> dict[str, float]:
    """{'pass_at_<k>': mean over problems} for k = 1, 2, 4, ... up to the samples per problem."""
    if train_eval.empty:
        return {}
    G = int(train_eval["G"].min())
    n, c = train_eval["G"].to_numpy(), train_eval["n_correct"].to_numpy()
    return {f"pass_at_{k}": float(pass_at_k_array(n, c, k).mean()) for k in default_ks(G)}


def pass_at_k_of_run(run: RunDir) -> dict[str, float]:
    """pass_at_k_metrics of a run's last evaluation of its training problems."""
    ev = run.read_eval()
    if ev.empty:
        return {}
    last = ev[ev["step"] == ev["step"].max()]
    return pass_at_k_metrics(last[last["split"] == "train"])


def pass_at_k_columns(results: pd.DataFrame) -> list[tuple[int, str]]:
    """(k, column) of the pass@k columns present in every row, sorted by k."""
    cols = [(int(m.group(1)), c) for c in results.columns if (m := _COL.match(c))]
    return sorted((k, c) for k, c in cols if results[c].notna().all())


def compare_pass_at_k(
    results: pd.DataFrame, reference: str = "plain", arms: list[str] | None = None
) -> pd.DataFrame:
    """One row per (arm, k): mean [CI] over seeds, and for other arms the paired difference to
    `reference` with its CI, p-values and Holm's correction over the arms at that k."""
    arms = [a for a in (arms or list(dict.fromkeys(results["arm"]))) if a in set(results["arm"])]
    ref = results[results["arm"] == reference].set_index("seed")
    rows: list[dict[str, Any]] = []
    for k, col in pass_at_k_columns(results):
        block = []
        for arm in arms:
            cur = results[results["arm"] == arm].set_index("seed")
            m, lo, hi = mean_ci(cur[col].to_numpy())
            row: dict[str, Any] = {"arm": arm, "k": k, "mean": m, "ci_low": lo, "ci_high": hi}
            if arm != reference and len(ref):
                seeds = ref.index.intersection(cur.index)
                comp = paired_comparison(
                    cur.loc[seeds, col].to_numpy(), ref.loc[seeds, col].to_numpy()
                )
                row.update(
                    {f"diff_{key}" if key != "n" else "n_pairs": v for key, v in comp.items()}
                )
            block.append(row)
        others = [r for r in block if "diff_p_t" in r]
        for r, p in zip(others, holm(np.array([r["diff_p_t"] for r in others])), strict=True):
            r["diff_p_holm"] = float(p)
        rows += block
    return pd.DataFrame(rows)


def pass_at_k_markdown(table: pd.DataFrame, reference: str = "plain") -> str:
    """A Markdown section: pass@k per arm and k, and the paired difference to the reference."""
    if table.empty:
        return ""
    lines = [
        "## pass@k across k (train problems, final evaluation)",
        "",
        f"Mean pass@k over seeds [95% CI]; for other arms the paired difference to {reference} "
        "[95% CI] and the t-test's p-value after Holm's correction over the arms at each k.",
        "",
        "| arm | k | pass@k [95% CI] | diff vs " + reference + " [95% CI] | p_holm |",
        "|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        mean = f"{r['mean']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        if "diff_mean_diff" in r and pd.notna(r.get("diff_mean_diff")):
            diff = f"{r['diff_mean_diff']:+.4f} [{r['diff_ci_low']:+.4f}, {r['diff_ci_high']:+.4f}]"
            lines.append(f"| {r['arm']} | {r['k']} | {mean} | {diff} | {r['diff_p_holm']:.3g} |")
        else:
            lines.append(f"| {r['arm']} | {r['k']} | {mean} | (reference) | |")
    return "\n".join(lines) + "\n"
